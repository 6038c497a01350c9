//! The packet-level `debug` log lines, worded exactly as Mosquitto 2.0 words them.
//!
//! With `log_type debug` (or `all`, or `-v`) Mosquitto logs every packet it receives and
//! sends: `Received PUBLISH from c (d0, q1, r0, m1, 't', ... (8 bytes))`, `Sending CONNACK
//! to c (0, 0)`, the filters of a SUBSCRIBE, the will of a CONNECT. Users debug with these
//! lines and scripts grep them, so the wording, spacing and numbers are Mosquitto's,
//! including its quirks: a refused CONNECT's CONNACK names the peer's address (the client
//! id is not set yet), an acknowledgement to a 3.1.1 client names the reason code it does
//! not carry on the wire, and no outgoing DISCONNECT is logged (Mosquitto's bridge-enabled
//! build, Debian's included, compiles that line out).
//!
//! The formatters are pure functions of what the packet says. The hooks call them only
//! under [`enabled`], one relaxed atomic load and a compare (the `log` crate's maximum
//! level, which the process's logger lowers to `Info` when `debug` is not in `log_type`),
//! so with debug lines off a PUBLISH pays three well-predicted branches (decoded,
//! admitted, each copy sent) and nothing else. A hook must not make a value's address
//! escape on the hot path when off (see `handle_bytes`: that cost a copy of each packet).
//!
//! Callers: the runtime's reader (`runtime::connection::handle_bytes`, every decoded packet
//! but PUBLISH), [`crate::connection::Connection::send`] and `send_publish` (everything
//! the broker sends), the shard's publish admission (received, denied and too large
//! PUBLISH), SUBSCRIBE and UNSUBSCRIBE handling (one line per filter), the CONNECT
//! acceptance (will) and the handshake's refusals (CONNACK to an address).

use crate::mqtt::{Packet, PacketId, Publish, PublishEncode, QoS, Will};
use std::fmt::Write;
use std::net::IpAddr;

/// True when debug lines are wanted. Cheap enough for the publish path: the level check
/// against the `log` crate's global maximum comes first and fails when debug is off.
#[inline(always)]
pub fn enabled() -> bool {
    log::log_enabled!(log::Level::Debug)
}

/// How a PUBLISH line begins: which way it went, or why it went nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishVerb {
    /// Accepted from a client.
    Received,
    /// Refused by the access rules.
    Denied,
    /// Refused for `message_size_limit`.
    TooLarge,
    /// Written to a client.
    Sending,
}

impl PublishVerb {
    fn words(self) -> &'static str {
        match self {
            PublishVerb::Received => "Received PUBLISH from",
            PublishVerb::Denied => "Denied PUBLISH from",
            PublishVerb::TooLarge => "Dropped too large PUBLISH from",
            PublishVerb::Sending => "Sending PUBLISH to",
        }
    }
}

/// What a PUBLISH line shows of the packet.
#[derive(Clone, Copy, Debug)]
pub struct PublishFacts<'a> {
    /// DUP flag.
    pub dup: bool,
    /// QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Packet identifier (logged as 0 at QoS 0).
    pub packet_id: Option<PacketId>,
    /// The listener's mount point, shown before `topic` (Mosquitto logs the mounted topic).
    pub mount: &'a str,
    /// Topic name.
    pub topic: &'a [u8],
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl<'a> PublishFacts<'a> {
    /// The facts of a received PUBLISH (its topic alias already resolved).
    pub fn received(publish: &'a Publish, mount: &'a str) -> PublishFacts<'a> {
        PublishFacts {
            dup: publish.dup,
            qos: publish.qos,
            retain: publish.retain,
            packet_id: publish.packet_id,
            mount,
            topic: publish.topic.as_bytes(),
            payload_len: publish.payload.len(),
        }
    }

    /// The facts of a PUBLISH about to be written (topic as the broker holds it).
    pub fn sending(publish: &PublishEncode<'a>) -> PublishFacts<'a> {
        PublishFacts {
            dup: publish.dup,
            qos: publish.qos,
            retain: publish.retain,
            packet_id: publish.packet_id,
            mount: "",
            topic: publish.topic,
            payload_len: publish.payload.len(),
        }
    }
}

/// `<verb> PUBLISH from|to <client> (d0, q1, r0, m1, '<topic>', ... (8 bytes))`.
pub fn publish_line(verb: PublishVerb, client: &str, facts: &PublishFacts<'_>) -> String {
    let mut line = String::with_capacity(64 + client.len() + facts.topic.len());
    let _ = write!(
        line,
        "{} {client} (d{}, q{}, r{}, m{}, '{}{}', ... ({} bytes))",
        verb.words(),
        u8::from(facts.dup),
        facts.qos as u8,
        u8::from(facts.retain),
        mid(facts.packet_id),
        facts.mount,
        String::from_utf8_lossy(facts.topic),
        facts.payload_len
    );
    line
}

/// The line Mosquitto logs when it handles `packet` from `client`, for every packet type
/// but PUBLISH (see [`publish_line`]); `None` where it logs nothing (CONNECT, and CONNACK
/// or AUTH from a client).
pub fn received(client: &str, packet: &Packet) -> Option<String> {
    let line = match packet {
        Packet::PubAck(ack) => format!(
            "Received PUBACK from {client} (Mid: {}, RC:{})",
            ack.packet_id, ack.reason_code
        ),
        Packet::PubRec(ack) => format!("Received PUBREC from {client} (Mid: {})", ack.packet_id),
        Packet::PubRel(ack) => format!("Received PUBREL from {client} (Mid: {})", ack.packet_id),
        Packet::PubComp(ack) => format!(
            "Received PUBCOMP from {client} (Mid: {}, RC:{})",
            ack.packet_id, ack.reason_code
        ),
        Packet::Subscribe(_) => format!("Received SUBSCRIBE from {client}"),
        Packet::Unsubscribe(_) => format!("Received UNSUBSCRIBE from {client}"),
        Packet::PingReq => format!("Received PINGREQ from {client}"),
        Packet::PingResp => format!("Received PINGRESP from {client}"),
        Packet::SubAck(_) => format!("Received SUBACK from {client}"),
        Packet::UnsubAck(_) => format!("Received UNSUBACK from {client}"),
        Packet::Disconnect(_) => format!("Received DISCONNECT from {client}"),
        Packet::Publish(_) | Packet::Connect(_) | Packet::ConnAck(_) | Packet::Auth(_) => {
            return None
        }
    };
    Some(line)
}

/// The line Mosquitto logs when it sends `packet` to `client`; `None` where it logs
/// nothing (DISCONNECT, and packets only a client sends).
pub fn sending(client: &str, packet: &Packet) -> Option<String> {
    let line = match packet {
        Packet::ConnAck(connack) => {
            connack_line(client, connack.session_present, connack.reason_code)
        }
        Packet::Publish(publish) => publish_line(
            PublishVerb::Sending,
            client,
            &PublishFacts::sending(&publish.as_encode()),
        ),
        Packet::PubAck(ack) => format!(
            "Sending PUBACK to {client} (m{}, rc{})",
            ack.packet_id, ack.reason_code
        ),
        Packet::PubRec(ack) => format!(
            "Sending PUBREC to {client} (m{}, rc{})",
            ack.packet_id, ack.reason_code
        ),
        Packet::PubRel(ack) => format!("Sending PUBREL to {client} (m{})", ack.packet_id),
        Packet::PubComp(ack) => format!("Sending PUBCOMP to {client} (m{})", ack.packet_id),
        Packet::SubAck(_) => format!("Sending SUBACK to {client}"),
        Packet::UnsubAck(_) => format!("Sending UNSUBACK to {client}"),
        Packet::PingResp => format!("Sending PINGRESP to {client}"),
        Packet::Disconnect(_)
        | Packet::Auth(_)
        | Packet::Connect(_)
        | Packet::Subscribe(_)
        | Packet::Unsubscribe(_)
        | Packet::PingReq => return None,
    };
    Some(line)
}

/// `Sending CONNACK to <who> (<session present>, <reason code>)`.
fn connack_line(who: &str, session_present: bool, reason_code: u8) -> String {
    format!(
        "Sending CONNACK to {who} ({}, {reason_code})",
        u8::from(session_present)
    )
}

/// The CONNACK refusing a CONNECT from `peer`: Mosquitto names the address (no port),
/// having not yet taken the client id.
pub fn connack_refused(peer: IpAddr, reason_code: u8) -> String {
    connack_line(&peer.to_string(), false, reason_code)
}

/// One filter of a SUBSCRIBE, with the QoS granted before the access check (after the
/// listener's `max_qos` and mount point): a tab, then `<filter> (QoS <n>)`.
pub fn subscribe_filter(filter: &str, qos: QoS) -> String {
    format!("\t{filter} (QoS {})", qos as u8)
}

/// One filter of an UNSUBSCRIBE (mount point applied): a tab, then the filter.
pub fn unsubscribe_filter(filter: &str) -> String {
    format!("\t{filter}")
}

/// The lines after `New client connected ...`: the will's size, retain and QoS, then its
/// topic (mount point first) after a tab; or that there is none.
pub fn will_lines(will: Option<&Will>, mount: &str) -> [Option<String>; 2] {
    match will {
        Some(will) => [
            Some(format!(
                "Will message specified ({} bytes) (r{}, q{}).",
                will.payload.len(),
                u8::from(will.retain),
                will.qos as u8
            )),
            Some(format!("\t{mount}{}", will.topic)),
        ],
        None => [Some("No will message specified.".to_string()), None],
    }
}

fn mid(packet_id: Option<PacketId>) -> u16 {
    packet_id.map_or(0, PacketId::get)
}

/// Logs `line` at debug level (the caller checked [`enabled`]).
pub fn emit(line: Option<String>) {
    if let Some(line) = line {
        log::debug!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{
        Ack, AckProperties, ByteStr, Bytes, ConnAck, Disconnect, SubAck, Subscribe, UnsubAck,
        Unsubscribe,
    };

    fn pid(n: u16) -> Option<PacketId> {
        PacketId::new(n)
    }

    fn ack(n: u16, reason_code: u8) -> Ack {
        Ack {
            packet_id: PacketId::new(n).unwrap(),
            reason_code,
            properties: AckProperties::default(),
        }
    }

    fn one() -> PacketId {
        PacketId::MIN
    }

    fn suback() -> SubAck {
        SubAck {
            packet_id: one(),
            properties: Default::default(),
            reason_codes: vec![0],
        }
    }

    fn unsuback() -> UnsubAck {
        UnsubAck {
            packet_id: one(),
            properties: Default::default(),
            reason_codes: Vec::new(),
        }
    }

    fn publish(topic: &str, payload: &[u8], qos: QoS, id: u16) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: ByteStr::from(topic.to_string()),
            packet_id: pid(id),
            properties: Default::default(),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn received_publish_at_each_qos() {
        let p = publish("t/0", b"hello000", QoS::AtMostOnce, 0);
        assert_eq!(
            publish_line(
                PublishVerb::Received,
                "pub",
                &PublishFacts::received(&p, "")
            ),
            "Received PUBLISH from pub (d0, q0, r0, m0, 't/0', ... (8 bytes))"
        );
        let mut p = publish("t/2", b"hello002", QoS::ExactlyOnce, 6);
        p.dup = true;
        p.retain = true;
        assert_eq!(
            publish_line(
                PublishVerb::Received,
                "pub",
                &PublishFacts::received(&p, "")
            ),
            "Received PUBLISH from pub (d1, q2, r1, m6, 't/2', ... (8 bytes))"
        );
    }

    #[test]
    fn refused_publishes_show_the_mounted_topic() {
        let p = publish("a/b", b"m", QoS::AtLeastOnce, 2);
        assert_eq!(
            publish_line(
                PublishVerb::Denied,
                "mnt",
                &PublishFacts::received(&p, "mp/")
            ),
            "Denied PUBLISH from mnt (d0, q1, r0, m2, 'mp/a/b', ... (1 bytes))"
        );
        let p = publish("open/big", b"0123456789ABCDEF", QoS::ExactlyOnce, 4);
        assert_eq!(
            publish_line(
                PublishVerb::TooLarge,
                "acl4",
                &PublishFacts::received(&p, "")
            ),
            "Dropped too large PUBLISH from acl4 (d0, q2, r0, m4, 'open/big', ... (16 bytes))"
        );
    }

    #[test]
    fn sending_publish() {
        let p = publish("r/1", b"ret", QoS::AtLeastOnce, 3);
        let mut encode = p.as_encode();
        encode.retain = true;
        assert_eq!(
            publish_line(PublishVerb::Sending, "sub", &PublishFacts::sending(&encode)),
            "Sending PUBLISH to sub (d0, q1, r1, m3, 'r/1', ... (3 bytes))"
        );
        assert_eq!(
            sending("sub", &Packet::Publish(p)).as_deref(),
            Some("Sending PUBLISH to sub (d0, q1, r0, m3, 'r/1', ... (3 bytes))")
        );
    }

    #[test]
    fn received_lines_of_every_client_packet() {
        let cases: Vec<(Packet, Option<&str>)> = vec![
            (
                Packet::PubAck(ack(1, 0)),
                Some("Received PUBACK from c (Mid: 1, RC:0)"),
            ),
            (
                Packet::PubAck(ack(7, 16)),
                Some("Received PUBACK from c (Mid: 7, RC:16)"),
            ),
            (
                Packet::PubRec(ack(2, 0x80)),
                Some("Received PUBREC from c (Mid: 2)"),
            ),
            (
                Packet::PubRel(ack(6, 0)),
                Some("Received PUBREL from c (Mid: 6)"),
            ),
            (
                Packet::PubComp(ack(2, 0)),
                Some("Received PUBCOMP from c (Mid: 2, RC:0)"),
            ),
            (
                Packet::Subscribe(Subscribe {
                    packet_id: one(),
                    properties: Default::default(),
                    filters: Vec::new(),
                }),
                Some("Received SUBSCRIBE from c"),
            ),
            (
                Packet::Unsubscribe(Unsubscribe {
                    packet_id: one(),
                    properties: Default::default(),
                    filters: Vec::new(),
                }),
                Some("Received UNSUBSCRIBE from c"),
            ),
            (Packet::PingReq, Some("Received PINGREQ from c")),
            (Packet::PingResp, Some("Received PINGRESP from c")),
            (Packet::SubAck(suback()), Some("Received SUBACK from c")),
            (
                Packet::UnsubAck(unsuback()),
                Some("Received UNSUBACK from c"),
            ),
            (
                Packet::Disconnect(Box::default()),
                Some("Received DISCONNECT from c"),
            ),
            (Packet::ConnAck(Box::default()), None),
            (Packet::Auth(Box::default()), None),
        ];
        for (packet, line) in cases {
            assert_eq!(received("c", &packet).as_deref(), line, "{packet:?}");
        }
    }

    #[test]
    fn sending_lines_of_every_server_packet() {
        let connack = |session_present, reason_code| {
            Packet::ConnAck(Box::new(ConnAck {
                session_present,
                reason_code,
                properties: Default::default(),
            }))
        };
        let cases: Vec<(Packet, Option<&str>)> = vec![
            (connack(false, 0), Some("Sending CONNACK to c (0, 0)")),
            (connack(true, 0), Some("Sending CONNACK to c (1, 0)")),
            (
                Packet::PubAck(ack(5, 0)),
                Some("Sending PUBACK to c (m5, rc0)"),
            ),
            (
                Packet::PubAck(ack(7, 16)),
                Some("Sending PUBACK to c (m7, rc16)"),
            ),
            (
                Packet::PubRec(ack(4, 149)),
                Some("Sending PUBREC to c (m4, rc149)"),
            ),
            (Packet::PubRel(ack(2, 0)), Some("Sending PUBREL to c (m2)")),
            (
                Packet::PubComp(ack(6, 0)),
                Some("Sending PUBCOMP to c (m6)"),
            ),
            (Packet::SubAck(suback()), Some("Sending SUBACK to c")),
            (Packet::UnsubAck(unsuback()), Some("Sending UNSUBACK to c")),
            (Packet::PingResp, Some("Sending PINGRESP to c")),
            (
                Packet::Disconnect(Box::new(Disconnect {
                    reason_code: 0x8E,
                    ..Default::default()
                })),
                None,
            ),
        ];
        for (packet, line) in cases {
            assert_eq!(sending("c", &packet).as_deref(), line, "{packet:?}");
        }
    }

    #[test]
    fn refused_connack_names_the_address() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            connack_refused(peer, 5),
            "Sending CONNACK to 127.0.0.1 (0, 5)"
        );
        let peer: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            connack_refused(peer, 135),
            "Sending CONNACK to ::1 (0, 135)"
        );
    }

    #[test]
    fn filters_are_indented_with_a_tab() {
        assert_eq!(subscribe_filter("t/#", QoS::ExactlyOnce), "\tt/# (QoS 2)");
        assert_eq!(unsubscribe_filter("zzz"), "\tzzz");
    }

    #[test]
    fn will_or_none() {
        let will = Will {
            topic: ByteStr::from("will/t".to_string()),
            payload: Bytes::from_static(b"gone!"),
            qos: QoS::AtLeastOnce,
            retain: false,
            delay_interval: None,
            properties: Default::default(),
        };
        assert_eq!(
            will_lines(Some(&will), ""),
            [
                Some("Will message specified (5 bytes) (r0, q1).".to_string()),
                Some("\twill/t".to_string())
            ]
        );
        let will = Will {
            retain: true,
            qos: QoS::ExactlyOnce,
            ..will
        };
        assert_eq!(
            will_lines(Some(&will), "mp/"),
            [
                Some("Will message specified (5 bytes) (r1, q2).".to_string()),
                Some("\tmp/will/t".to_string())
            ]
        );
        assert_eq!(
            will_lines(None, ""),
            [Some("No will message specified.".to_string()), None]
        );
    }

    #[test]
    fn off_without_a_logger() {
        // No logger is installed in unit tests: the log crate's maximum level is Off.
        assert!(!enabled());
    }
}
