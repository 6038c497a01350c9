//! How connections and sessions end: DISCONNECT, socket loss, protocol violations, keep
//! alive, session expiry, and the will messages all of these may release.
//!
//! Called by the runtime (`closed`, `decode_failed`, `tick`) and by the packet handlers.

use super::Shard;
use crate::access::{Action, Identity};
use crate::connection::{CloseReason, ConnId};
use crate::mqtt::{reason, DecodeError, Disconnect, DisconnectProperties, Packet, Protocol};
use crate::state::{Delta, SessionDelta, SessionKey, EXPIRY_NEVER};
use crate::stats::{bump, drop_by, set};

/// Whether the reader should keep reading a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Stop reading: the connection is closing (the writer flushes what is queued).
    Close,
}

impl Shard {
    /// Dispatches one packet received on connection `id` (after CONNECT).
    pub fn handle(&mut self, id: ConnId, packet: Packet) -> Flow {
        let Some(conn) = self.conn(id) else {
            return Flow::Close;
        };
        if conn.closing.is_some() {
            return Flow::Close;
        }
        bump(&self.my_stats().messages_received, 1);
        match packet {
            Packet::Publish(publish) => self.on_publish(id, publish),
            Packet::PubAck(ack) => self.on_puback(id, ack),
            Packet::PubRec(ack) => self.on_pubrec(id, ack),
            Packet::PubRel(ack) => self.on_pubrel(id, ack),
            Packet::PubComp(ack) => self.on_pubcomp(id, ack),
            Packet::Subscribe(subscribe) if self.mesh.shards() > 1 => {
                // Other shards wait for its interest before they route what they read.
                let _mark = crate::mesh::Subscribing::begin(self.mesh.mesh_handle());
                self.on_subscribe(id, subscribe)
            }
            Packet::Subscribe(subscribe) => self.on_subscribe(id, subscribe),
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(id, unsubscribe),
            Packet::PingReq => {
                if let Some(conn) = self.conn_mut(id) {
                    conn.send(&Packet::PingResp);
                }
                Flow::Continue
            }
            Packet::Disconnect(disconnect) => self.on_disconnect(id, *disconnect),
            Packet::Connect(_) => self.violate_silently(id, "sent a second CONNECT"),
            Packet::Auth(_) => self.violate(
                id,
                reason::PROTOCOL_ERROR,
                "sent AUTH without an authentication method",
            ),
            Packet::ConnAck(_) => self.violate_silently(id, "sent CONNACK"),
            Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                self.violate(id, reason::PROTOCOL_ERROR, "sent a server-to-client packet")
            }
        }
    }

    /// Records that bytes arrived on `id` (keep alive).
    pub fn touch(&mut self, id: ConnId) {
        let now = self.now.mono_ms;
        if let Some(conn) = self.conn_mut(id) {
            conn.last_activity_ms = now;
        }
    }

    /// The codec refused bytes from `id`: DISCONNECT with the reason code (5.0), then close.
    pub fn decode_failed(&mut self, id: ConnId, error: &DecodeError) -> Flow {
        let why = error.to_string();
        self.violate(id, error.reason_code(), &why)
    }

    /// Closes `id` for a protocol violation, telling a 5.0 client why ([MQTT-4.13.1]) with
    /// a bare DISCONNECT carrying `code`, as Mosquitto does. A Reason String is added only
    /// with `reason_strings true` and when the client did not turn problem information
    /// off.
    pub(super) fn violate(&mut self, id: ConnId, code: u8, why: &str) -> Flow {
        let reason_strings = self.settings.reason_strings;
        // Already closing (bytes read after the broker decided): it was told once.
        let Some(conn) = self.conn_mut(id).filter(|conn| conn.closing.is_none()) else {
            return Flow::Close;
        };
        log::info!(
            "Client {} disconnected due to protocol error: {why}.",
            conn.client_id
        );
        if conn.protocol.is_v5() {
            let mut disconnect = Disconnect {
                reason_code: code,
                ..Default::default()
            };
            if reason_strings && conn.problem_information {
                disconnect.properties.reason_string =
                    Some(crate::mqtt::ByteStr::from(why.to_string()));
            }
            conn.send(&Packet::Disconnect(Box::new(disconnect)));
        }
        conn.close(CloseReason::ProtocolViolation(code));
        Flow::Close
    }

    /// Closes `id` for a protocol violation without a DISCONNECT, where Mosquitto closes
    /// silently and clients and test suites written against it expect that: a second
    /// CONNECT, a CONNACK sent by a client. Everywhere else a 5.0 client is told why, as
    /// the specification asks ([MQTT-4.13.1]: SHOULD).
    pub(super) fn violate_silently(&mut self, id: ConnId, why: &str) -> Flow {
        let Some(conn) = self.conn_mut(id).filter(|conn| conn.closing.is_none()) else {
            return Flow::Close;
        };
        log::info!(
            "Client {} disconnected due to protocol error: {why}.",
            conn.client_id
        );
        conn.close(CloseReason::ProtocolViolation(reason::PROTOCOL_ERROR));
        Flow::Close
    }

    fn on_disconnect(&mut self, id: ConnId, disconnect: Disconnect) -> Flow {
        let Some(conn) = self.conn(id) else {
            return Flow::Close;
        };
        let key = conn.session;
        let protocol = conn.protocol;
        if let (Some(key), Some(expiry)) = (key, disconnect.properties.session_expiry_interval) {
            let current = self.store.get(key).map_or(0, |s| s.expiry_interval);
            if protocol.is_v5() && current == 0 && expiry != 0 {
                // [MQTT-3.14.2-2]: a session that was not persistent cannot become so here.
                return self.violate(
                    id,
                    reason::PROTOCOL_ERROR,
                    "set a session expiry on DISCONNECT after connecting with none",
                );
            }
            self.apply(Delta::Update {
                key,
                change: SessionDelta::ExpiryChanged {
                    expiry_interval: expiry,
                },
            });
        }
        if let Some(conn) = self.conn_mut(id) {
            conn.will_on_close = protocol == Protocol::V5
                && disconnect.reason_code == reason::DISCONNECT_WITH_WILL_MESSAGE;
            conn.close(CloseReason::ClientDisconnect);
        }
        Flow::Close
    }

    /// The runtime finished with connection `id` (socket closed and writer done): detach it
    /// from its session, publish or schedule its will, end or keep the session.
    pub fn closed(&mut self, id: ConnId) {
        if self.conn(id).is_none() {
            return;
        }
        let mut conn = self.conns.remove(id.slot as usize);
        // The runtime wakes the readers after this (`connection_task`).
        conn.release_backlog();
        conn.release_queue();
        let reason = conn.closing.unwrap_or(CloseReason::SocketClosed);
        drop_by(self.my_stats().listener(conn.listener), 1);
        if self.settings.connection_messages {
            log_disconnect(&conn.client_id, reason);
        }
        let Some(key) = conn.session else { return };
        self.set_online(key, None);
        drop_by(&self.my_stats().clients_connected, 1);
        self.session_disconnected(
            key,
            conn.will_on_close && reason != CloseReason::ServerShutdown,
        );
    }

    pub(super) fn session_disconnected(&mut self, key: SessionKey, publish_will: bool) {
        let Some(session) = self.store.get(key) else {
            return;
        };
        let expiry = session.expiry_interval;
        match (&session.will, publish_will) {
            (Some(will), true) if will.delay_interval > 0 && expiry > 0 => {
                let delay_ms = u64::from(will.delay_interval.min(expiry)) * 1000;
                self.delayed_wills.push((self.now.mono_ms + delay_ms, key));
            }
            (Some(_), true) => self.publish_will_now(key),
            (Some(_), false) => {
                self.apply(Delta::Update {
                    key,
                    change: SessionDelta::WillChanged { will: None },
                });
            }
            (None, _) => {}
        }
        if expiry == 0 {
            self.end_session(key);
        } else {
            let at = self.now.unix_s;
            self.apply(Delta::Update {
                key,
                change: SessionDelta::Disconnected { at },
            });
        }
    }

    /// Ends session `key`: a will still waiting is published first ([MQTT-3.1.3-9]).
    pub(super) fn end_session(&mut self, key: SessionKey) {
        self.publish_pending_will(key);
        self.delayed_wills.retain(|(_, k)| *k != key);
        self.apply(Delta::Update {
            key,
            change: SessionDelta::Ended,
        });
    }

    /// Publishes the will of an offline session whose will is still pending.
    pub(super) fn publish_pending_will(&mut self, key: SessionKey) {
        if self.conn_of(key).is_none() && self.store.get(key).is_some_and(|s| s.will.is_some()) {
            self.publish_will_now(key);
        }
    }

    /// A reconnect before the will delay elapsed cancels the will ([MQTT-3.1.3-9]).
    pub(super) fn cancel_delayed_will(&mut self, key: SessionKey) {
        self.delayed_wills.retain(|(_, k)| *k != key);
    }

    /// Takes the session's will and publishes it like any message.
    pub(super) fn publish_will_now(&mut self, key: SessionKey) {
        let Some(will) = self.store.get(key).and_then(|s| s.will.clone()) else {
            return;
        };
        self.delayed_wills.retain(|(_, k)| *k != key);
        self.apply(Delta::Update {
            key,
            change: SessionDelta::WillChanged { will: None },
        });
        let mut message = will.message;
        message.expires_at = will
            .message_expiry_interval
            .map(|s| self.now.unix_s + u64::from(s));
        // A will is a publish by its client, checked when it is about to go out
        // (dynsec.md §8.1): rights may have changed since CONNECT.
        let Some(session) = self.store.get(key) else {
            return;
        };
        let who = Identity {
            listener: 0,
            client_id: session.client_id.as_str(),
            username: session.username.as_deref(),
        };
        if !self
            .access
            .allows(Action::Publish, &who, message.topic.as_str())
        {
            log::debug!(
                "Denied will of {} to '{}'.",
                session.client_id,
                message.topic
            );
            return;
        }
        self.publish_message(message, None);
    }

    /// Periodic housekeeping: keep alive, delayed wills, session expiry, gauges.
    pub fn tick(&mut self) {
        let packets = self.flush.take_packets_sent();
        bump(&self.my_stats().messages_sent, packets);
        self.check_keep_alive();
        self.update_gauges();
        let now_ms = self.now.mono_ms;
        let due: Vec<SessionKey> = self
            .delayed_wills
            .iter()
            .filter(|(at, _)| *at <= now_ms)
            .map(|(_, k)| *k)
            .collect();
        for key in due {
            self.publish_will_now(key);
        }
        self.expire_sessions();
    }

    /// Refreshes the gauges behind `$SYS` (sessions, subscriptions, stored messages).
    fn update_gauges(&mut self) {
        let stats = &self.stats[usize::from(self.id)];
        let mut stored = 0u64;
        let mut stored_bytes = 0u64;
        for (_, session) in self.store.iter() {
            let outbound = &session.outbound;
            stored += (outbound.queue.len() + outbound.inflight.len()) as u64;
            stored_bytes += (outbound.queued_bytes + outbound.inflight_bytes) as u64;
        }
        let shared: usize = self
            .store
            .index
            .groups
            .values()
            .map(|group| group.members.len())
            .sum();
        set(&stats.sessions, self.store.len() as u64);
        set(
            &stats.subscriptions,
            (self.store.index.plain.len() + shared) as u64,
        );
        set(&stats.shared_subscriptions, shared as u64);
        set(&stats.stored_messages, stored);
        set(&stats.stored_bytes, stored_bytes);
    }

    fn check_keep_alive(&mut self) {
        let now = self.now.mono_ms;
        for (_, conn) in self.conns.iter_mut() {
            if conn.out.is_empty() && conn.out.capacity() > 0 && !conn.queued {
                // An idle connection keeps no outbound buffer (released at most once per
                // tick, so a busy connection does not allocate per flush).
                conn.out = bytes::BytesMut::new();
            }
            if conn.keep_alive_ms == 0 || conn.closing.is_some() {
                continue;
            }
            // [MQTT-3.1.2-24]: one and a half times the keep alive.
            if now.saturating_sub(conn.last_activity_ms) > conn.keep_alive_ms * 3 / 2 {
                if conn.protocol.is_v5() {
                    let disconnect = Disconnect {
                        reason_code: reason::KEEP_ALIVE_TIMEOUT,
                        properties: DisconnectProperties::default(),
                    };
                    conn.send(&Packet::Disconnect(Box::new(disconnect)));
                }
                conn.close(CloseReason::KeepAliveTimeout);
            }
        }
    }

    fn expire_sessions(&mut self) {
        let now = self.now.unix_s;
        let limit = self.settings.persistent_client_expiration;
        let expired: Vec<SessionKey> = self
            .store
            .iter()
            .filter(|(key, session)| {
                self.conn_of(*key).is_none()
                    && (session.expiry_interval != EXPIRY_NEVER || limit.is_some())
                    // Whole seconds: expire strictly after the instant, never before it.
                    && session.expires_at(limit).is_some_and(|at| at < now)
            })
            .map(|(key, _)| key)
            .collect();
        for key in expired {
            if let Some(session) = self.store.get(key) {
                log::info!("Expiring client {} due to timeout.", session.client_id);
            }
            bump(&self.my_stats().clients_expired, 1);
            self.end_session(key);
        }
    }

    /// Begins shutdown: every connection is told (5.0: DISCONNECT 0x8B) and closed.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        for (_, conn) in self.conns.iter_mut() {
            if conn.protocol.is_v5() && conn.closing.is_none() {
                let disconnect = Disconnect {
                    reason_code: reason::SERVER_SHUTTING_DOWN,
                    ..Default::default()
                };
                conn.send(&Packet::Disconnect(Box::new(disconnect)));
            }
            conn.close(CloseReason::ServerShutdown);
        }
    }

    /// Disconnects the clients named by `kicks` (their rights changed) that connected
    /// before the change: 5.0 clients get DISCONNECT 0x98 (Administrative action) first,
    /// and no will is published (`dynsec.md` §10).
    pub fn kick(&mut self, kicks: &crate::dynsec::Kicks) {
        use crate::dynsec::Kick;
        for (_, conn) in self.conns.iter_mut() {
            if conn.opened >= kicks.opened_before {
                continue;
            }
            let name = conn
                .username
                .as_ref()
                .map(|n| n.as_bytes())
                .filter(|n| !n.is_empty());
            let hit = kicks.who.iter().any(|kick| match kick {
                Kick::Anonymous => name.is_none(),
                Kick::Username(user) => name == Some(&user[..]),
            });
            if !hit || conn.closing.is_some() {
                continue;
            }
            if conn.protocol.is_v5() {
                let disconnect = Disconnect {
                    reason_code: reason::ADMINISTRATIVE_ACTION,
                    ..Default::default()
                };
                conn.send(&Packet::Disconnect(Box::new(disconnect)));
            }
            conn.will_on_close = false;
            conn.close(CloseReason::Administrative);
        }
    }
}

impl Shard {
    /// True when listener `listener` is closed to clients ([`Shard::close_listeners`]).
    pub fn listener_closed(&self, listener: usize) -> bool {
        self.closed_listeners.contains(&listener)
    }

    /// Stops serving clients on `listeners`: every connection that came in through one is
    /// closed (5.0: DISCONNECT "server shutting down"), without its will, since the
    /// session is the cluster's, not this node's; CONNECTs still on their way are refused.
    /// Called when a cluster node stops leading (the sockets themselves are shut down by
    /// their owner).
    pub fn close_listeners(&mut self, listeners: &[usize]) {
        for listener in listeners {
            if !self.closed_listeners.contains(listener) {
                self.closed_listeners.push(*listener);
            }
        }
        for (_, conn) in self.conns.iter_mut() {
            if !listeners.contains(&conn.listener) || conn.closing.is_some() {
                continue;
            }
            if conn.protocol.is_v5() {
                let disconnect = Disconnect {
                    reason_code: reason::SERVER_SHUTTING_DOWN,
                    ..Default::default()
                };
                conn.send(&Packet::Disconnect(Box::new(disconnect)));
            }
            conn.will_on_close = false;
            conn.close(CloseReason::Administrative);
        }
    }

    /// Serves clients on `listeners` again (their sockets were bound anew).
    pub fn open_listeners(&mut self, listeners: &[usize]) {
        self.closed_listeners
            .retain(|listener| !listeners.contains(listener));
    }
}

/// Mosquitto's disconnect log lines.
fn log_disconnect(client_id: &str, reason: CloseReason) {
    match reason {
        CloseReason::ClientDisconnect => log::info!("Client {client_id} disconnected."),
        CloseReason::SocketClosed => log::info!("Client {client_id} closed its connection."),
        CloseReason::KeepAliveTimeout => {
            log::info!("Client {client_id} has exceeded timeout, disconnecting.")
        }
        CloseReason::Administrative => {
            log::info!("Client {client_id} been disconnected by administrative action.")
        }
        CloseReason::TakenOver
        | CloseReason::ProtocolViolation(_)
        | CloseReason::ServerShutdown => {}
    }
}
