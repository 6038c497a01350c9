//! CONNECT: admission on the accepting shard, then session set-up and CONNACK on the
//! client id's home shard.
//!
//! Split in two because a connection lands on whichever core the kernel picked, while its
//! session lives on `home_shard(client_id)`. [`Shard::admit`] runs where the connection
//! landed: everything decidable without the session (protocol level, client id rules,
//! keep alive, authentication), so a refused client never crosses cores. [`Shard::open`]
//! runs on the home shard after the runtime handed the socket over: takeover, session
//! present, will, CONNACK and redelivery.

use super::Shard;
use crate::access::{Action, AuthDecision, AuthRequest, Identity};
use crate::connection::{CloseReason, ConnId, Connection};
use crate::mesh::ShardId;
use crate::message::Message;
use crate::mqtt::{
    reason, ByteStr, ConnAck, ConnAckProperties, Connect, Disconnect, Packet, Protocol,
};
use crate::server_aliases::ServerAliases;
use crate::state::{Delta, SessionDelta, SessionKey, StoredWill, EXPIRY_NEVER};
use crate::stats::{bump, drop_by};
use std::net::SocketAddr;

/// What the runtime knows about a connection before its CONNECT.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// Listener index.
    pub listener: usize,
    /// Peer address.
    pub peer: SocketAddr,
    /// The user name a verified client certificate gives, on listeners with
    /// `use_identity_as_username`/`use_subject_as_username`; `None` when no certificate was
    /// presented.
    pub certificate_username: Option<ByteStr>,
}

/// A CONNECT that passed admission.
#[derive(Debug)]
pub struct ConnectRequest {
    /// The packet.
    pub connect: Box<Connect>,
    /// Client identifier to use (assigned, or the user name, or as sent).
    pub client_id: ByteStr,
    /// The client sent an empty id and the broker assigned `client_id`.
    pub assigned: bool,
    /// User name the session runs as.
    pub username: Option<ByteStr>,
    /// Keep alive in effect, seconds.
    pub keep_alive: u16,
    /// Server Keep Alive to announce (5.0), when it differs from the client's.
    pub server_keep_alive: Option<u16>,
}

/// A CONNECT that was refused: what to send before closing, and the log line.
#[derive(Debug)]
pub struct Refusal {
    /// CONNACK with the failure code, or `None` to close silently.
    pub connack: Option<Box<ConnAck>>,
    /// Protocol to encode the CONNACK with.
    pub protocol: Protocol,
    /// Log line (Mosquitto's wording).
    pub log: String,
}

impl Shard {
    /// Admission of a CONNECT on the shard where the connection landed. Returns the request
    /// and the shard that must open it.
    pub fn admit(
        &mut self,
        accepted: &Accepted,
        connect: Box<Connect>,
    ) -> Result<(ConnectRequest, ShardId), Refusal> {
        let Some(listener) = self.settings.listeners.get(accepted.listener) else {
            return Err(refuse(
                connect.protocol,
                reason::SERVER_UNAVAILABLE,
                "unknown listener",
            ));
        };
        let no = Refuser {
            protocol: connect.protocol,
            who: format!(
                "Client {} [{}]",
                display_id(&connect.client_id),
                accepted.peer
            ),
        };
        if self.listener_closed(accepted.listener) {
            // The cluster closed this node's client listeners (it stopped leading) while
            // the CONNECT was on its way.
            return Err(no.with(
                reason::SERVER_UNAVAILABLE,
                reason::v3::SERVER_UNAVAILABLE,
                "listener closed (this node does not serve clients now)",
            ));
        }
        if !listener.accepts_level(connect.protocol.level()) {
            let why = "protocol version not accepted on this listener";
            return Err(no.with(
                reason::UNSUPPORTED_PROTOCOL_VERSION,
                reason::v3::UNACCEPTABLE_PROTOCOL_VERSION,
                why,
            ));
        }
        if connect.properties.authentication_method.is_some() {
            let why = "unsupported authentication method";
            return Err(no.with(
                reason::BAD_AUTHENTICATION_METHOD,
                reason::v3::NOT_AUTHORIZED,
                why,
            ));
        }
        if let Some(will) = &connect.will {
            if will.qos as u8 > listener.max_qos {
                return Err(no.with(
                    reason::QOS_NOT_SUPPORTED,
                    reason::v3::NOT_AUTHORIZED,
                    "will QoS not supported",
                ));
            }
            if will.retain && !self.settings.retain_available {
                return Err(no.with(
                    reason::RETAIN_NOT_SUPPORTED,
                    reason::v3::NOT_AUTHORIZED,
                    "retain not supported",
                ));
            }
        }
        let (keep_alive, server_keep_alive) = self.keep_alive_for(&connect);
        let (client_id, assigned) = self.client_id_for(accepted, &connect)?;
        let no = Refuser {
            who: format!("Client {client_id} [{}]", accepted.peer),
            ..no
        };
        // `clientid_prefixes`: checked on the id in use (an assigned one too) before any
        // credential, with Mosquitto's codes.
        let prefix = self.settings.clientid_prefixes.as_deref().unwrap_or("");
        if !client_id.as_bytes().starts_with(prefix.as_bytes()) {
            let why = "not authorised";
            return Err(no.with(reason::NOT_AUTHORIZED, reason::v3::NOT_AUTHORIZED, why));
        }
        let listener = &self.settings.listeners[accepted.listener];
        if listener.certificate_username.is_some() && accepted.certificate_username.is_none() {
            // Mosquitto: a certificate identity listener without a certificate is a bad
            // user name (4 / 0x86), not "not authorised".
            return Err(no.with(
                reason::BAD_USER_NAME_OR_PASSWORD,
                reason::v3::BAD_USER_NAME_OR_PASSWORD,
                "no client certificate",
            ));
        }
        let Some(username) = self.authenticate(accepted, &connect, &client_id) else {
            return Err(no.with(
                reason::NOT_AUTHORIZED,
                reason::v3::NOT_AUTHORIZED,
                "not authorised",
            ));
        };
        let listener = &self.settings.listeners[accepted.listener];
        let (client_id, assigned) = match (listener.use_username_as_clientid, &username) {
            (true, Some(name)) => (name.clone(), false),
            (true, None) => {
                return Err(no.with(
                    reason::NOT_AUTHORIZED,
                    reason::v3::NOT_AUTHORIZED,
                    "not authorised",
                ))
            }
            (false, _) => (client_id, assigned),
        };
        let home = self.home_of(client_id.as_bytes());
        // Own copies, so the session does not pin the buffer CONNECT was read into.
        let request = ConnectRequest {
            connect,
            client_id: client_id.compact(),
            assigned,
            username: username.as_ref().map(ByteStr::compact),
            keep_alive,
            server_keep_alive,
        };
        self.check_connack_fits(accepted, &request)?;
        Ok((request, home))
    }

    /// The CONNACK must fit the client's Maximum Packet Size like every packet the server
    /// sends ([MQTT-3.1.2-24]); one that does not is never sent, and the connection is
    /// closed before any session changes, as Mosquitto closes it. (Culex counts the whole
    /// packet; Mosquitto 2.0 leaves out the fixed header's first byte.)
    fn check_connack_fits(
        &self,
        accepted: &Accepted,
        request: &ConnectRequest,
    ) -> Result<(), Refusal> {
        let protocol = request.connect.protocol;
        let Some(max) = request.connect.properties.maximum_packet_size else {
            return Ok(());
        };
        let connack = self.connack(accepted.listener, request, false);
        let size = Packet::ConnAck(Box::new(connack)).encoded_len(protocol);
        if size.is_ok_and(|size| size <= max as usize) {
            return Ok(());
        }
        Err(Refusal {
            connack: None,
            protocol,
            log: format!(
                "Client {} [{}] disconnected, CONNACK exceeds its maximum packet size.",
                request.client_id, accepted.peer
            ),
        })
    }

    /// The user name the session runs as, or `None` when the client may not connect.
    fn authenticate(
        &mut self,
        accepted: &Accepted,
        connect: &Connect,
        client_id: &ByteStr,
    ) -> Option<Option<ByteStr>> {
        let listener = &self.settings.listeners[accepted.listener];
        if listener.certificate_username.is_some() {
            // `use_identity_as_username`: the verified certificate is the credential; the
            // MQTT user name and password are ignored (Mosquitto's documented behaviour).
            return accepted.certificate_username.clone().map(Some);
        }
        let request = AuthRequest {
            listener: accepted.listener,
            client_id: client_id.as_str(),
            username: connect.username.as_ref(),
            password: connect.password.as_ref(),
        };
        match self.access.authenticate(&request, &mut self.auth_cache) {
            AuthDecision::Allow { username } => Some(username),
            AuthDecision::NotAuthorized => None,
        }
    }

    /// Keep alive after `max_keepalive`: a 5.0 client asking for more (or for none) is
    /// told the server's value in Server Keep Alive; 3.1/3.1.1 have no way to tell the
    /// client, so their value stands (Mosquitto 2.0.11 accepts them the same way).
    fn keep_alive_for(&self, connect: &Connect) -> (u16, Option<u16>) {
        let max = self.settings.max_keepalive;
        let asked = connect.keep_alive;
        if max == u16::MAX || (asked != 0 && asked <= max) || !connect.protocol.is_v5() {
            return (asked, None);
        }
        (max, Some(max))
    }

    /// The client id rules of §3.1.3.1 and Mosquitto's options.
    fn client_id_for(
        &self,
        accepted: &Accepted,
        connect: &Connect,
    ) -> Result<(ByteStr, bool), Refusal> {
        let protocol = connect.protocol;
        let no = Refuser {
            protocol,
            who: format!("Client <unknown> [{}]", accepted.peer),
        };
        // 5.0 leaves the code open (0x85 MAY be used); Mosquitto answers 0x80, and clients
        // written against it expect that.
        let rejected = |why: &str| {
            no.with(
                reason::UNSPECIFIED_ERROR,
                reason::v3::IDENTIFIER_REJECTED,
                why,
            )
        };
        let id = &connect.client_id;
        if protocol == Protocol::V31 && (id.is_empty() || id.len() > 23) {
            return Err(rejected("MQTT 3.1 client ids must be 1 to 23 characters"));
        }
        if !id.is_empty() {
            return Ok((id.clone(), false));
        }
        let listener = &self.settings.listeners[accepted.listener];
        if !connect.clean_start && !protocol.is_v5() {
            return Err(rejected("empty client id requires clean session"));
        }
        if !listener.allow_zero_length_clientid {
            return Err(rejected("empty client id not allowed"));
        }
        Ok((
            self.assign_client_id(&listener.auto_id_prefix, accepted),
            true,
        ))
    }

    /// An id `<prefix><uuid-like hex>` that hashes to this shard, so the connection never
    /// needs to move.
    fn assign_client_id(&self, prefix: &str, accepted: &Accepted) -> ByteStr {
        let mut seed =
            (self.now.mono_ms << 20) ^ u64::from(accepted.peer.port()) ^ self.generation as u64;
        loop {
            seed = splitmix(seed);
            let (a, b) = (splitmix(seed), splitmix(seed ^ 0x5555));
            let id = format!(
                "{prefix}{:08X}-{:04X}-{:04X}-{:04X}-{:012X}",
                a >> 32,
                (a >> 16) & 0xFFFF,
                a & 0xFFFF,
                b >> 48,
                b & 0xFFFF_FFFF_FFFF
            );
            if self.home_of(id.as_bytes()) == self.id {
                return ByteStr::from(id);
            }
        }
    }

    /// Opens an admitted connection on this, its home, shard: takeover, session, will,
    /// CONNACK, then redelivery of what the session holds.
    pub fn open(&mut self, accepted: Accepted, request: ConnectRequest) -> ConnId {
        assert_eq!(
            self.home_of(request.client_id.as_bytes()),
            self.id,
            "opened on the wrong shard"
        );
        let connect = &request.connect;
        let protocol = connect.protocol;
        let expiry = session_expiry(connect);
        let existing = self.store.key_of(request.client_id.as_str());
        // A session with expiry 0 ends with its connection ([MQTT-3.1.2-6], and 3.1.1's
        // CleanSession=1): a CONNECT that takes over a still-open connection of such a
        // session starts afresh, even when the old socket's close was not seen yet.
        let resumable = existing.filter(|key| {
            !connect.clean_start && self.store.get(*key).is_some_and(|s| s.expiry_interval != 0)
        });
        if let Some(key) = existing {
            self.take_over(key, resumable.is_none());
        }
        let resumed = resumable;
        let key = match resumed {
            Some(key) => {
                self.apply(Delta::Update {
                    key,
                    change: SessionDelta::Resumed {
                        protocol,
                        username: request.username.clone(),
                        expiry_interval: expiry,
                    },
                });
                key
            }
            None => {
                if let Some(old) = existing {
                    self.end_session(old);
                }
                let create = Delta::Create {
                    client_id: request.client_id.clone(),
                    protocol,
                    expiry_interval: expiry,
                    username: request.username.clone(),
                };
                self.apply(create)
                    .unwrap_or_else(|| unreachable!("Create returns its key"))
            }
        };
        self.cancel_delayed_will(key);
        if resumed.is_some() {
            self.drop_forbidden_subscriptions(key, accepted.listener);
        }
        let will = connect
            .will
            .as_ref()
            .map(|will| Box::new(self.stored_will(accepted.listener, will)));
        let has_will = will.is_some();
        self.apply(Delta::Update {
            key,
            change: SessionDelta::WillChanged { will },
        });
        let id = self.insert_connection(&accepted, &request, key, has_will);
        let session_present = resumed.is_some() && protocol != Protocol::V31;
        self.log_connected(id, &request);
        // A session that outlives its connection is the cluster's: CONNACK says it exists.
        let gated = expiry != 0 || resumed.is_some();
        self.send_connack(id, &request, session_present, gated);
        if resumed.is_some() {
            self.resume_outbound(key);
        }
        id
    }

    /// Detaches and closes the connection currently attached to `key`, and settles its will
    /// as Mosquitto does: published at once if the old session ends here (`session_ends`:
    /// Clean Start, or a session with expiry 0), dropped otherwise.
    fn take_over(&mut self, key: SessionKey, session_ends: bool) {
        let Some(old) = self.conn_of(key) else {
            if session_ends {
                self.publish_pending_will(key);
            }
            return;
        };
        if let Some(conn) = self.conn_mut(old) {
            log::info!(
                "Client {} already connected, closing old connection.",
                conn.client_id
            );
            if conn.protocol.is_v5() {
                let packet = Packet::Disconnect(Box::new(Disconnect {
                    reason_code: reason::SESSION_TAKEN_OVER,
                    ..Default::default()
                }));
                conn.send(&packet);
            }
            conn.session = None;
            conn.will_on_close = false;
            conn.close(CloseReason::TakenOver);
        }
        self.set_online(key, None);
        drop_by(&self.my_stats().clients_connected, 1);
        if session_ends {
            self.publish_will_now(key);
        } else {
            self.apply(Delta::Update {
                key,
                change: SessionDelta::WillChanged { will: None },
            });
        }
    }

    fn stored_will(&self, listener: usize, will: &crate::mqtt::Will) -> StoredWill {
        let mount_point = self.settings.listeners[listener].mount_point.as_deref();
        let mut properties = will.properties.clone();
        properties.topic_alias = None;
        let message_expiry_interval = properties.message_expiry_interval.take();
        let message = Message {
            topic: super::mount(mount_point, will.topic.clone()),
            payload: will.payload.clone(),
            qos: will.qos,
            retain: will.retain,
            properties: properties.into(),
            expires_at: None,
        };
        StoredWill {
            message: message.compact(),
            delay_interval: will.delay_interval.unwrap_or(0),
            message_expiry_interval,
        }
    }

    fn insert_connection(
        &mut self,
        accepted: &Accepted,
        request: &ConnectRequest,
        key: SessionKey,
        will: bool,
    ) -> ConnId {
        self.generation = self.generation.wrapping_add(1);
        let connect = &request.connect;
        let entry = self.conns.vacant_entry();
        let id = ConnId {
            slot: entry.key() as u32,
            generation: self.generation,
        };
        let props = &connect.properties;
        entry.insert(Connection {
            id,
            session: Some(key),
            protocol: connect.protocol,
            client_id: request.client_id.clone(),
            username: request.username.clone(),
            peer: accepted.peer,
            listener: accepted.listener,
            keep_alive_ms: u64::from(request.keep_alive) * 1000,
            last_activity_ms: self.now.mono_ms,
            client_receive_maximum: props.receive_maximum.unwrap_or(u16::MAX),
            client_max_packet_size: props.maximum_packet_size.unwrap_or(u32::MAX),
            problem_information: props.request_problem_information != Some(0),
            topic_aliases: Vec::new(),
            server_aliases: ServerAliases::for_client(
                props.topic_alias_maximum,
                self.settings.listeners[accepted.listener].max_topic_alias_broker,
            ),
            mount_len: self.settings.listeners[accepted.listener]
                .mount_point
                .as_ref()
                .map_or(0, |point| point.len().min(usize::from(u16::MAX)) as u16),
            out: bytes::BytesMut::new(),
            out_taken: 0,
            marks: std::collections::VecDeque::new(),
            held: false,
            flush: self.flush.clone(),
            queued: false,
            write_blocked: false,
            backlogged: false,
            slow_consumer: false,
            queue_backlogged: false,
            queue_moved_ms: 0,
            queue_held_ms: 0,
            queue_stalled: false,
            closing: None,
            will_on_close: will,
            opened: crate::connection::next_opened(),
            acl_memo: Default::default(),
        });
        self.set_online(key, Some(id));
        let stats = self.my_stats();
        bump(&stats.clients_connected, 1);
        bump(&stats.connections_opened, 1);
        bump(stats.listener(accepted.listener), 1);
        id
    }

    /// Sends CONNACK; `gated`: it waits until the session's changes are durable
    /// (`gate.rs`).
    fn send_connack(
        &mut self,
        id: ConnId,
        request: &ConnectRequest,
        session_present: bool,
        gated: bool,
    ) {
        let Some(conn) = self.conns.get(id.slot as usize) else {
            return;
        };
        let packet = Packet::ConnAck(Box::new(self.connack(
            conn.listener,
            request,
            session_present,
        )));
        let hold = if gated { self.hold(0) } else { None };
        if let Some(conn) = self.conn_mut(id) {
            conn.send_held(&packet, hold);
        }
    }

    /// The CONNACK accepting `request` on `listener`.
    fn connack(&self, listener: usize, request: &ConnectRequest, session_present: bool) -> ConnAck {
        let settings = &self.settings;
        let listener = &settings.listeners[listener];
        let mut properties = ConnAckProperties::default();
        if request.connect.protocol.is_v5() {
            if settings.max_inflight_messages != u16::MAX {
                properties.receive_maximum = Some(settings.max_inflight_messages);
            }
            if listener.max_qos < 2 {
                properties.maximum_qos = Some(listener.max_qos);
            }
            if !settings.retain_available {
                properties.retain_available = Some(0);
            }
            properties.maximum_packet_size = settings.max_packet_size;
            if request.assigned {
                properties.assigned_client_identifier = Some(request.client_id.clone());
            }
            properties.topic_alias_maximum = Some(listener.max_topic_alias).filter(|max| *max > 0);
            properties.server_keep_alive = request.server_keep_alive;
        }
        ConnAck {
            session_present,
            reason_code: reason::SUCCESS,
            properties,
        }
    }

    /// `New client connected ...` and, at debug level, the will: before the CONNACK, in
    /// Mosquitto's order.
    fn log_connected(&self, id: ConnId, request: &ConnectRequest) {
        if !self.settings.connection_messages {
            return;
        }
        let Some(conn) = self.conn(id) else { return };
        let connect = &request.connect;
        let user = match &request.username {
            Some(name) => format!(", u'{name}'"),
            None => String::new(),
        };
        log::info!(
            "New client connected from {} as {} (p{}, c{}, k{}{}).",
            conn.peer,
            conn.client_id,
            log_protocol_number(connect.protocol),
            u8::from(connect.clean_start),
            connect.keep_alive,
            user
        );
        if crate::packet_log::enabled() {
            let listener = &self.settings.listeners[conn.listener];
            let mount = listener.mount_point.as_deref().unwrap_or("");
            for line in crate::packet_log::will_lines(connect.will.as_ref(), mount) {
                crate::packet_log::emit(line);
            }
        }
    }
}

/// The Session Expiry Interval a CONNECT asks for: 5.0 says so explicitly, 3.1/3.1.1 clean
/// session false means "keep forever".
pub fn session_expiry(connect: &Connect) -> u32 {
    if connect.protocol.is_v5() {
        connect.properties.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        EXPIRY_NEVER
    }
}

/// Mosquitto 2.0's protocol numbers in the connect log line: 1 = 3.1, 2 = 3.1.1, 5 = 5.0.
fn log_protocol_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::V31 => 1,
        Protocol::V311 => 2,
        Protocol::V5 => 5,
    }
}

fn display_id(id: &ByteStr) -> &str {
    if id.is_empty() {
        "<unknown>"
    } else {
        id.as_str()
    }
}

/// Builds refusals for one CONNECT: the code for its protocol and Mosquitto's log line.
struct Refuser {
    protocol: Protocol,
    who: String,
}

impl Refuser {
    /// Refused with `v5` (5.0) or `v3` (3.1/3.1.1), logging "<who> disconnected, <why>.".
    fn with(&self, v5: u8, v3: u8, why: &str) -> Refusal {
        let code = if self.protocol.is_v5() { v5 } else { v3 };
        refuse(
            self.protocol,
            code,
            &format!("{} disconnected, {why}.", self.who),
        )
    }
}

fn refuse(protocol: Protocol, code: u8, log: &str) -> Refusal {
    let connack = ConnAck {
        session_present: false,
        reason_code: code,
        properties: Default::default(),
    };
    Refusal {
        connack: Some(Box::new(connack)),
        protocol,
        log: log.to_string(),
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Shard {
    /// On resume, removes the subscriptions the client may no longer make: rights can
    /// change while it is away (and a kick after a rights change is followed by exactly
    /// such a reconnect). Mosquitto does the same since CVE-2021-34434.
    fn drop_forbidden_subscriptions(&mut self, key: SessionKey, listener: usize) {
        let Some(session) = self.store.get(key) else {
            return;
        };
        let who = Identity {
            listener,
            client_id: session.client_id.as_str(),
            username: session.username.as_deref(),
        };
        let forbidden: Vec<ByteStr> = session
            .subscriptions
            .keys()
            .filter(|filter| !self.access.allows(Action::Subscribe, &who, filter.as_str()))
            .cloned()
            .collect();
        for filter in forbidden {
            self.apply(Delta::Update {
                key,
                change: SessionDelta::Unsubscribed { filter },
            });
        }
    }
}
