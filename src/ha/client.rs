//! A small blocking MQTT 3.1.1 / 5.0 client for the brokers' JSON control APIs
//! (`$CONTROL/.../v1`, Mosquitto's request/response envelope): connect, subscribe to the
//! response topic, publish one request, wait (bounded) for the response entry that carries
//! the request's `correlationData`, disconnect. Plain TCP only (the admin listener is on
//! the private network).
//!
//! Called by `culex ha` (`super`), and by the `ha_client` integration test, which includes
//! this file as it is and drives it against a real broker's dynamic-security API: so this
//! file depends on nothing of the binary, only on `shards` (the MQTT codec and the JSON
//! reader) and std.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use shards::dynsec::json::{self, Value};
use shards::mqtt::{
    self, Ack, AckProperties, ByteStr, Connect, ConnectProperties, Disconnect,
    DisconnectProperties, Packet, PacketId, Protocol, PublishEncode, PublishProperties, QoS,
    Subscribe, SubscribeProperties, SubscriptionOptions,
};

/// Keep alive asked for in CONNECT, seconds (pings go out at half of it while waiting).
const KEEP_ALIVE_S: u16 = 60;
/// Largest packet accepted from the broker (MQTT's own limit).
const MAX_PACKET_SIZE: usize = 268_435_460;
/// Packet id of the SUBSCRIBE.
const SUBSCRIBE_ID: PacketId = PacketId::MIN;
/// Packet id of the request PUBLISH (QoS 1, so that a 5.0 broker can say "not
/// authorized" in its PUBACK instead of dropping the request silently).
const PUBLISH_ID: PacketId = match PacketId::new(2) {
    Some(id) => id,
    None => PacketId::MIN,
};

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Username, if any.
    pub username: Option<String>,
    /// Password, if any (sent only with a username, as MQTT 3.1.1 requires).
    pub password: Option<String>,
    /// Client identifier.
    pub client_id: String,
    /// MQTT 3.1.1 or 5.0.
    pub protocol: Protocol,
    /// The whole exchange, connection included, must end within this.
    pub timeout: Duration,
}

/// The two topics of a control API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topics<'a> {
    /// Where requests are published, e.g. `$CONTROL/cedalo/ha/v1`.
    pub request: &'a str,
    /// Where responses come, e.g. `$CONTROL/cedalo/ha/v1/response`.
    pub response: &'a str,
}

/// Why no response was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The broker could not be reached, or the connection broke.
    Network(String),
    /// The broker refused the connection, the subscription or the request.
    Refused(String),
    /// No matching response came before the deadline.
    Timeout(Duration),
    /// The broker sent something this client cannot read.
    Protocol(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Network(text) | CallError::Refused(text) | CallError::Protocol(text) => {
                f.write_str(text)
            }
            CallError::Timeout(after) => write!(
                f,
                "no response within {} s (is this client allowed to publish the request and \
                 to receive the response topic?)",
                after.as_secs_f64()
            ),
        }
    }
}

/// A response that answers the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The response payload as received (`{"responses":[…]}`).
    pub payload: Bytes,
    /// Its entry with the request's `correlationData`, parsed.
    pub entry: Value,
}

/// Sends `payload` (a request whose command carries `correlationData` = `correlation`)
/// on `topics.request` and returns the response that has an entry with the same
/// `correlationData`. Responses for other requests (other admins' traffic on the same
/// topic) are skipped.
pub fn call(
    endpoint: &Endpoint,
    topics: Topics<'_>,
    payload: &[u8],
    correlation: &[u8],
) -> Result<Reply, CallError> {
    let deadline = Instant::now() + endpoint.timeout;
    let mut session = Session::connect(endpoint, deadline)?;
    session.subscribe(topics.response)?;
    session.publish(topics.request, payload)?;
    let reply = session.wait_for_entry(topics.response, correlation)?;
    session.disconnect();
    Ok(reply)
}

/// One connection to the broker.
struct Session {
    stream: TcpStream,
    protocol: Protocol,
    inbound: BytesMut,
    deadline: Instant,
    timeout: Duration,
    keep_alive: Duration,
    last_sent: Instant,
}

impl Session {
    /// Opens the TCP connection, sends CONNECT (clean) and waits for a successful CONNACK.
    fn connect(endpoint: &Endpoint, deadline: Instant) -> Result<Session, CallError> {
        let stream = open(&endpoint.host, endpoint.port, deadline, endpoint.timeout)?;
        let _ = stream.set_nodelay(true);
        let mut session = Session {
            stream,
            protocol: endpoint.protocol,
            inbound: BytesMut::with_capacity(4096),
            deadline,
            timeout: endpoint.timeout,
            keep_alive: Duration::from_secs(u64::from(KEEP_ALIVE_S)),
            last_sent: Instant::now(),
        };
        let text = |value: &str, what: &str| {
            ByteStr::from_bytes(Bytes::copy_from_slice(value.as_bytes()))
                .ok_or_else(|| CallError::Refused(format!("{what} contains a NUL character")))
        };
        let username = endpoint
            .username
            .as_deref()
            .map(|name| text(name, "the username"))
            .transpose()?;
        let password = username.as_ref().and(endpoint.password.as_ref());
        let connect = Connect {
            protocol: endpoint.protocol,
            clean_start: true,
            keep_alive: KEEP_ALIVE_S,
            properties: ConnectProperties::default(),
            client_id: text(&endpoint.client_id, "the client id")?,
            will: None,
            username,
            password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        };
        session.send(&Packet::Connect(Box::new(connect)))?;
        match session.next()? {
            Packet::ConnAck(ack) if ack.reason_code == 0 => {
                if let Some(seconds) = ack.properties.server_keep_alive.filter(|s| *s > 0) {
                    session.keep_alive = Duration::from_secs(u64::from(seconds));
                }
                Ok(session)
            }
            Packet::ConnAck(ack) => Err(CallError::Refused(format!(
                "the broker refused the connection: {}",
                connack_text(endpoint.protocol, ack.reason_code)
            ))),
            other => Err(unexpected(&other, "CONNACK")),
        }
    }

    /// Subscribes to `topic` at QoS 0 and waits for the SUBACK.
    fn subscribe(&mut self, topic: &str) -> Result<(), CallError> {
        let filter = ByteStr::from_bytes(Bytes::copy_from_slice(topic.as_bytes()))
            .ok_or_else(|| CallError::Refused("the response topic contains NUL".into()))?;
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: SUBSCRIBE_ID,
            properties: SubscribeProperties::default(),
            filters: vec![(filter, SubscriptionOptions::default())],
        }))?;
        loop {
            match self.next()? {
                Packet::SubAck(ack) if ack.packet_id == SUBSCRIBE_ID => {
                    let code = ack.reason_codes.first().copied().unwrap_or(0x80);
                    if code >= 0x80 {
                        return Err(CallError::Refused(format!(
                            "the broker refused the subscription to {topic}: {}",
                            reason_text(code)
                        )));
                    }
                    return Ok(());
                }
                other => self.handle_other(other)?,
            }
        }
    }

    /// Publishes the request at QoS 1 (the PUBACK is checked in `wait_for_entry`).
    fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<(), CallError> {
        let properties = PublishProperties::default();
        let publish = PublishEncode {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: topic.as_bytes(),
            packet_id: Some(PUBLISH_ID),
            topic_alias: None,
            message_expiry_interval: None,
            subscription_identifiers: &[],
            properties: &properties,
            payload,
        };
        let mut out = BytesMut::new();
        mqtt::encode_publish(self.protocol, &publish, &mut out)
            .map_err(|e| CallError::Protocol(format!("cannot encode the request: {e:?}")))?;
        self.write(&out)
    }

    /// Reads until the response entry carrying `correlation` arrives on `topic`.
    fn wait_for_entry(&mut self, topic: &str, correlation: &[u8]) -> Result<Reply, CallError> {
        loop {
            match self.next()? {
                Packet::Publish(publish) => {
                    if let Some(id) = publish.packet_id {
                        self.acknowledge(publish.qos, id)?;
                    }
                    if publish.topic.as_bytes() != topic.as_bytes() {
                        continue;
                    }
                    if let Some(entry) = matching_entry(&publish.payload, correlation) {
                        return Ok(Reply {
                            payload: publish.payload,
                            entry,
                        });
                    }
                }
                Packet::PubAck(ack) if ack.packet_id == PUBLISH_ID && ack.reason_code >= 0x80 => {
                    return Err(CallError::Refused(format!(
                        "the broker refused the request: {}",
                        reason_text(ack.reason_code)
                    )));
                }
                other => self.handle_other(other)?,
            }
        }
    }

    /// Sends DISCONNECT and closes; failures do not matter any more.
    fn disconnect(mut self) {
        let _ = self.send(&Packet::Disconnect(Box::new(Disconnect {
            reason_code: 0,
            properties: DisconnectProperties::default(),
        })));
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Packets that need no answer, or end the session.
    fn handle_other(&mut self, packet: Packet) -> Result<(), CallError> {
        match packet {
            Packet::Disconnect(disconnect) => Err(CallError::Refused(format!(
                "the broker closed the connection: {}",
                reason_text(disconnect.reason_code)
            ))),
            Packet::PubRel(ack) => self.send(&Packet::PubComp(plain_ack(ack.packet_id))),
            _ => Ok(()),
        }
    }

    /// Acknowledges a QoS 1 or 2 publish from the broker.
    fn acknowledge(&mut self, qos: QoS, id: PacketId) -> Result<(), CallError> {
        match qos {
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce => self.send(&Packet::PubAck(plain_ack(id))),
            QoS::ExactlyOnce => self.send(&Packet::PubRec(plain_ack(id))),
        }
    }

    fn send(&mut self, packet: &Packet) -> Result<(), CallError> {
        let mut out = BytesMut::new();
        packet.encode(self.protocol, &mut out).map_err(|e| {
            CallError::Protocol(format!("cannot encode {:?}: {e:?}", packet.packet_type()))
        })?;
        self.write(&out)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        let remaining = self.remaining()?;
        let _ = self.stream.set_write_timeout(Some(remaining));
        self.stream.write_all(bytes).map_err(|e| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => CallError::Timeout(self.timeout),
            _ => CallError::Network(format!("cannot send to the broker: {e}")),
        })?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Time left before the deadline; a timeout error when none.
    fn remaining(&self) -> Result<Duration, CallError> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(CallError::Timeout(self.timeout))
    }

    /// The next packet from the broker, reading as needed, pinging while idle.
    fn next(&mut self) -> Result<Packet, CallError> {
        let mut chunk = [0u8; 4096];
        loop {
            match mqtt::decode(&mut self.inbound, Some(self.protocol), MAX_PACKET_SIZE) {
                Ok(Some(packet)) => return Ok(packet),
                Ok(None) => {}
                Err(e) => {
                    return Err(CallError::Protocol(format!(
                        "the broker sent a packet this client cannot decode: {e:?}"
                    )))
                }
            }
            let ping_at = self.last_sent + self.keep_alive / 2;
            let now = Instant::now();
            if now >= ping_at {
                self.send(&Packet::PingReq)?;
                continue;
            }
            let wait = self.remaining()?.min(ping_at - now);
            let _ = self
                .stream
                .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(CallError::Network(
                        "the broker closed the connection".into(),
                    ))
                }
                Ok(n) => self.inbound.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(CallError::Network(format!(
                        "cannot read from the broker: {e}"
                    )))
                }
            }
        }
    }
}

/// Connects to the first address of `host` that answers, within the deadline.
fn open(
    host: &str,
    port: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, CallError> {
    let addresses: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| CallError::Network(format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = format!("{host} has no address");
    for address in addresses {
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        else {
            return Err(CallError::Timeout(timeout));
        };
        match TcpStream::connect_timeout(&address, left) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("cannot connect to {address}: {e}"),
        }
    }
    Err(CallError::Network(last))
}

/// The entry of `payload`'s `responses` whose `correlationData` is `correlation`.
pub fn matching_entry(payload: &[u8], correlation: &[u8]) -> Option<Value> {
    let tree = json::parse(payload).ok()?;
    let entries = tree.get("responses")?.as_array()?;
    entries
        .iter()
        .find(|entry| entry.get("correlationData").and_then(Value::as_bytes) == Some(correlation))
        .cloned()
}

fn plain_ack(packet_id: PacketId) -> Ack {
    Ack {
        packet_id,
        reason_code: 0,
        properties: AckProperties::default(),
    }
}

fn unexpected(packet: &Packet, wanted: &str) -> CallError {
    CallError::Protocol(format!(
        "expected {wanted} from the broker, got {:?}",
        packet.packet_type()
    ))
}

/// A CONNACK refusal in words (3.1.1 return codes, 5.0 reason codes).
fn connack_text(protocol: Protocol, code: u8) -> String {
    const NOT_AUTHORISED: &str = "not authorised (check the username and password)";
    if protocol.is_v5() {
        return match code {
            0x87 => format!("{NOT_AUTHORISED} (0x87)"),
            _ => reason_text(code),
        };
    }
    let text = match code {
        1 => "unacceptable protocol version",
        2 => "client identifier rejected",
        3 => "server unavailable",
        4 => "bad username or password",
        5 => NOT_AUTHORISED,
        _ => "unknown reason",
    };
    format!("{text} (code {code})")
}

/// An MQTT 5.0 reason code (and SUBACK's 3.1.1 failure 0x80) in words.
fn reason_text(code: u8) -> String {
    let text = match code {
        0x00 => "normal disconnection",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad username or password",
        0x87 => "not authorised (this client lacks the rights)",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8A => "banned",
        0x8B => "server shutting down",
        0x8E => "session taken over (another client uses this client id)",
        0x8F => "topic filter invalid",
        0x90 => "topic name invalid",
        0x95 => "packet too large",
        0x97 => "quota exceeded",
        0x98 => "administrative action",
        _ => "unknown reason",
    };
    format!("{text} (0x{code:02x})")
}
