//! A table of refused inputs: each row is one rule of the decoder, the bytes that break it,
//! and the exact error (variant, reason code, and the rule the message cites).

use bytes::BytesMut;

use super::golden_test::h;
use crate::mqtt::{decode, reason, DecodeError, Protocol};

const V31: Option<Protocol> = Some(Protocol::V31);
const V3: Option<Protocol> = Some(Protocol::V311);
const V5: Option<Protocol> = Some(Protocol::V5);
const NONE: Option<Protocol> = None;

/// The expected error: its variant, and a fragment of its message (the cited rule).
#[derive(Debug)]
enum Expect {
    Malformed(&'static str),
    Protocol(&'static str),
    TopicNameInvalid(&'static str),
    Exactly(DecodeError),
}

use Expect::{Exactly, Malformed, Protocol as Proto, TopicNameInvalid as Topic};

/// (what the row checks, protocol argument, bytes, expected error)
const CASES: &[(&str, Option<Protocol>, &str, Expect)] = &[
    // Fixed header (§2.1, [MQTT-2.2.2-1/2]).
    ("packet type 0", V3, "00 00", Proto("§2.1.2")),
    ("AUTH before 5.0", V3, "F0 00", Proto("§2.1.2")),
    (
        "PUBREL flags 0011",
        V3,
        "63 02 00 01",
        Malformed("[MQTT-2.2.2-1]"),
    ),
    (
        "PUBREL flags 0000",
        V5,
        "60 02 00 01",
        Malformed("[MQTT-2.2.2-1]"),
    ),
    (
        "PUBREL DUP outside 3.1",
        V3,
        "6A 02 00 01",
        Malformed("[MQTT-2.2.2-1]"),
    ),
    (
        "SUBSCRIBE flags 0000",
        V3,
        "80 06 00 01 00 01 't' 00",
        Malformed("[MQTT-2.2.2-1]"),
    ),
    (
        "UNSUBSCRIBE flags 0000",
        V3,
        "A0 05 00 01 00 01 't'",
        Malformed("[MQTT-2.2.2-1]"),
    ),
    (
        "PUBACK flags 0001",
        V3,
        "41 02 00 01",
        Malformed("[MQTT-2.2.2-1]"),
    ),
    ("PINGREQ flags", V3, "C1 00", Malformed("[MQTT-2.2.2-1]")),
    ("DISCONNECT flags", V5, "E2 00", Malformed("[MQTT-2.2.2-1]")),
    ("CONNECT flags", NONE, "11 00", Malformed("[MQTT-2.2.2-1]")),
    (
        "remaining length of 5 bytes",
        V3,
        "30 FF FF FF FF 01",
        Malformed("§2.1.4"),
    ),
    ("PINGREQ with a body", V3, "C0 01 00", Malformed("§3.12")),
    ("PINGRESP with a body", V5, "D0 01 00", Malformed("§3.12")),
    (
        "3.1.1 DISCONNECT with a body",
        V3,
        "E0 01 00",
        Malformed("§3.14"),
    ),
    (
        "3.1.1 PUBACK too long",
        V3,
        "40 03 00 01 00",
        Malformed("§3.4"),
    ),
    ("PUBACK too short", V3, "40 01 00", Malformed("§1.5")),
    (
        "3.1.1 UNSUBACK too long",
        V3,
        "B0 03 00 01 00",
        Malformed("§3.11"),
    ),
    (
        "first packet not CONNECT",
        NONE,
        "30 02 00 00",
        Exactly(DecodeError::NotConnect),
    ),
    (
        "first packet garbage",
        NONE,
        "47 45 54 20",
        Exactly(DecodeError::NotConnect),
    ),
    // PUBLISH (§3.3).
    (
        "PUBLISH QoS 3",
        V3,
        "36 03 00 01 't'",
        Malformed("[MQTT-3.3.1-4]"),
    ),
    (
        "PUBLISH packet id 0",
        V3,
        "32 05 00 01 't' 00 00",
        Proto("[MQTT-2.2.1-3]"),
    ),
    (
        "PUBLISH QoS 1 without id",
        V3,
        "32 04 00 01 't' 00",
        Malformed("§1.5"),
    ),
    (
        "topic with +",
        V3,
        "30 05 00 03 'a/+'",
        Topic("[MQTT-3.3.2-2]"),
    ),
    (
        "topic with #",
        V5,
        "30 06 00 03 'a/#' 00",
        Topic("[MQTT-3.3.2-2]"),
    ),
    (
        "3.1.1 empty topic",
        V3,
        "30 03 00 00 'x'",
        Topic("[MQTT-4.7.3-1]"),
    ),
    (
        "5.0 empty topic without alias",
        V5,
        "30 04 00 00 00 'x'",
        Proto("§3.3.2.3.4"),
    ),
    (
        "topic alias 0",
        V5,
        "30 07 00 01 't' 03 23 00 00",
        Malformed("[MQTT-3.3.2-8]"),
    ),
    (
        "payload format indicator 2",
        V5,
        "30 06 00 01 't' 02 01 02",
        Proto("§3.3.2.3.2"),
    ),
    (
        "subscription identifier 0",
        V5,
        "30 06 00 01 't' 02 0B 00",
        Proto("§3.3.2.3.8"),
    ),
    (
        "property twice",
        V5,
        "30 08 00 01 't' 04 01 00 01 01",
        Proto("§2.2.2.2"),
    ),
    (
        "content type twice",
        V5,
        "30 0C 00 01 't' 08 03 00 01 'a' 03 00 01 'b'",
        Proto("§2.2.2.2"),
    ),
    (
        "property of another packet",
        V5,
        "30 09 00 01 't' 05 11 00 00 00 00",
        Malformed("§2.2.2.2"),
    ),
    (
        "unknown property",
        V5,
        "30 06 00 01 't' 02 7F 00",
        Malformed("§2.2.2.2"),
    ),
    (
        "property length past the end",
        V5,
        "30 04 00 01 't' 09",
        Malformed("§2.2.2.1"),
    ),
    (
        "property value past the block",
        V5,
        "30 07 00 01 't' 03 02 00 00",
        Malformed("§1.5"),
    ),
    (
        "topic not UTF-8",
        V3,
        "30 04 00 02 C3 28",
        Malformed("[MQTT-1.5.4-1]"),
    ),
    (
        "topic with a surrogate",
        V5,
        "30 06 00 03 ED A0 80 00",
        Malformed("[MQTT-1.5.4-1]"),
    ),
    (
        "topic with U+0000",
        V3,
        "30 04 00 02 't' 00",
        Malformed("[MQTT-1.5.4-2]"),
    ),
    (
        "topic past the end",
        V3,
        "30 03 00 05 't'",
        Malformed("§1.5"),
    ),
    (
        "user property not UTF-8",
        V5,
        "30 0B 00 01 't' 07 26 00 01 'k' 00 01 FF",
        Malformed("[MQTT-1.5.4-1]"),
    ),
    // CONNECT (§3.1).
    (
        "protocol name",
        NONE,
        "10 0C 00 04 'MQTX' 04 02 00 3C 00 00",
        Exactly(DecodeError::InvalidProtocolName),
    ),
    (
        "MQTT at level 3",
        NONE,
        "10 0C 00 04 'MQTT' 03 02 00 3C 00 00",
        Exactly(DecodeError::UnsupportedProtocolVersion(3)),
    ),
    (
        "MQIsdp at level 4",
        NONE,
        "10 0E 00 06 'MQIsdp' 04 02 00 3C 00 00",
        Exactly(DecodeError::UnsupportedProtocolVersion(4)),
    ),
    (
        "MQTT at level 6",
        NONE,
        "10 0C 00 04 'MQTT' 06 02 00 3C 00 00",
        Exactly(DecodeError::UnsupportedProtocolVersion(6)),
    ),
    (
        "bridge bit on 5.0",
        NONE,
        "10 0D 00 04 'MQTT' 85 02 00 3C 00 00 00",
        Exactly(DecodeError::UnsupportedProtocolVersion(0x85)),
    ),
    (
        "reserved connect flag",
        NONE,
        "10 0C 00 04 'MQTT' 04 03 00 3C 00 00",
        Malformed("[MQTT-3.1.2-3]"),
    ),
    (
        "will QoS 3",
        NONE,
        "10 0C 00 04 'MQTT' 04 1E 00 3C 00 00",
        Malformed("[MQTT-3.1.2-12]"),
    ),
    (
        "will QoS without will",
        NONE,
        "10 0C 00 04 'MQTT' 04 0A 00 3C 00 00",
        Malformed("[MQTT-3.1.2-11]"),
    ),
    (
        "will retain without will",
        NONE,
        "10 0C 00 04 'MQTT' 04 22 00 3C 00 00",
        Malformed("[MQTT-3.1.2-13]"),
    ),
    (
        "3.1.1 password without user name",
        NONE,
        "10 0E 00 04 'MQTT' 04 42 00 3C 00 00 00 00",
        Malformed("[MQTT-3.1.2-22]"),
    ),
    (
        "3.1 password without user name",
        NONE,
        "10 10 00 06 'MQIsdp' 03 42 00 3C 00 00 00 00",
        Malformed("[MQTT-3.1.2-22]"),
    ),
    (
        "empty will topic",
        NONE,
        "10 10 00 04 'MQTT' 04 06 00 3C 00 00 00 00 00 00",
        Proto("[MQTT-4.7.3-1]"),
    ),
    (
        "will topic with wildcard",
        NONE,
        "10 13 00 04 'MQTT' 04 06 00 3C 00 00 00 03 'a/#' 00 00",
        Proto("§4.7.1"),
    ),
    (
        "CONNECT trailing byte",
        NONE,
        "10 0D 00 04 'MQTT' 04 02 00 3C 00 00 FF",
        Malformed("§3.1.3"),
    ),
    (
        "CONNECT truncated",
        NONE,
        "10 03 00 04 'M'",
        Malformed("§1.5"),
    ),
    (
        "user name flag without user name",
        NONE,
        "10 0C 00 04 'MQTT' 04 82 00 3C 00 00",
        Malformed("§1.5"),
    ),
    (
        "receive maximum 0",
        NONE,
        "10 10 00 04 'MQTT' 05 02 00 3C 03 21 00 00 00 00",
        Proto("§3.1.2.11.3"),
    ),
    (
        "maximum packet size 0",
        NONE,
        "10 12 00 04 'MQTT' 05 02 00 3C 05 27 00 00 00 00 00 00",
        Proto("§3.1.2.11.4"),
    ),
    (
        "request problem information 2",
        NONE,
        "10 0F 00 04 'MQTT' 05 02 00 3C 02 17 02 00 00",
        Proto("§3.1.2.11.7"),
    ),
    (
        "request response information 2",
        NONE,
        "10 0F 00 04 'MQTT' 05 02 00 3C 02 19 02 00 00",
        Proto("§3.1.2.11.6"),
    ),
    (
        "authentication data without method",
        NONE,
        "10 11 00 04 'MQTT' 05 02 00 3C 04 16 00 01 'x' 00 00",
        Proto("§3.1.2.11.10"),
    ),
    (
        "topic alias in CONNECT",
        NONE,
        "10 10 00 04 'MQTT' 05 02 00 3C 03 23 00 01 00 00",
        Malformed("§2.2.2.2"),
    ),
    // SUBSCRIBE and UNSUBSCRIBE (§3.8, §3.10).
    (
        "SUBSCRIBE without filters",
        V3,
        "82 02 00 01",
        Proto("[MQTT-3.8.3-2]"),
    ),
    (
        "5.0 SUBSCRIBE without filters",
        V5,
        "82 03 00 01 00",
        Proto("[MQTT-3.8.3-2]"),
    ),
    (
        "3.1.1 reserved option bits",
        V3,
        "82 06 00 01 00 01 't' 04",
        Malformed("[MQTT-3.8.3-4]"),
    ),
    (
        "5.0 reserved option bits",
        V5,
        "82 07 00 01 00 00 01 't' 40",
        Malformed("[MQTT-3.8.3-5]"),
    ),
    (
        "subscription QoS 3",
        V3,
        "82 06 00 01 00 01 't' 03",
        Malformed("§3.8.3.1"),
    ),
    (
        "retain handling 3",
        V5,
        "82 07 00 01 00 00 01 't' 30",
        Malformed("§3.8.3.1"),
    ),
    (
        "empty topic filter",
        V3,
        "82 05 00 01 00 00 01",
        Malformed("[MQTT-4.7.3-1]"),
    ),
    (
        "SUBSCRIBE packet id 0",
        V3,
        "82 06 00 00 00 01 't' 01",
        Malformed("[MQTT-2.2.1-3]"),
    ),
    (
        "SUBSCRIBE options missing",
        V3,
        "82 05 00 01 00 01 't'",
        Malformed("§1.5"),
    ),
    (
        "two subscription identifiers",
        V5,
        "82 0B 00 01 04 0B 01 0B 02 00 01 't' 00",
        Proto("§2.2.2.2"),
    ),
    (
        "SUBSCRIBE subscription id 0",
        V5,
        "82 09 00 01 02 0B 00 00 01 't' 00",
        Proto("§3.3.2.3.8"),
    ),
    (
        "UNSUBSCRIBE without filters",
        V3,
        "A2 02 00 01",
        Proto("[MQTT-3.10.3-2]"),
    ),
    (
        "5.0 UNSUBSCRIBE without filters",
        V5,
        "A2 03 00 01 00",
        Proto("[MQTT-3.10.3-2]"),
    ),
    (
        "empty unsubscribe filter",
        V3,
        "A2 04 00 01 00 00",
        Malformed("[MQTT-4.7.3-1]"),
    ),
    (
        "reason string in UNSUBSCRIBE",
        V5,
        "A2 0A 00 01 04 1F 00 01 'r' 00 01 't'",
        Malformed("§2.2.2.2"),
    ),
    // Acknowledgements (§3.2, §3.4 to §3.7, §3.9, §3.11).
    (
        "PUBACK packet id 0",
        V3,
        "40 02 00 00",
        Proto("[MQTT-2.2.1-3]"),
    ),
    (
        "PUBACK reason 0x92",
        V5,
        "40 03 00 01 92",
        Proto("§3.4.2.1"),
    ),
    (
        "PUBREL reason 0x10",
        V5,
        "62 03 00 01 10",
        Proto("§3.4.2.1"),
    ),
    (
        "PUBACK properties past the end",
        V5,
        "40 05 00 01 00 05 1F",
        Malformed("§2.2.2.1"),
    ),
    (
        "topic alias in PUBACK",
        V5,
        "40 07 00 01 00 03 23 00 01",
        Malformed("§2.2.2.2"),
    ),
    (
        "CONNACK reserved flags",
        V3,
        "20 02 02 00",
        Malformed("[MQTT-3.2.2-1]"),
    ),
    (
        "CONNACK return code 6",
        V3,
        "20 02 00 06",
        Proto("§3.2.2.3"),
    ),
    (
        "5.0 CONNACK without properties",
        V5,
        "20 02 00 00",
        Malformed("§1.5"),
    ),
    (
        "maximum QoS 2",
        V5,
        "20 05 00 00 02 24 02",
        Proto("§3.2.2.3.4"),
    ),
    (
        "retain available 2",
        V5,
        "20 05 00 00 02 25 02",
        Proto("§3.2.2.3.5"),
    ),
    (
        "CONNACK reason 0x10",
        V5,
        "20 03 00 10 00",
        Proto("§3.2.2.2"),
    ),
    (
        "SUBACK without codes",
        V3,
        "90 02 00 01",
        Proto("[MQTT-3.9.3-1]"),
    ),
    ("SUBACK code 3", V31, "90 03 00 01 03", Proto("§3.9.3")),
    (
        "UNSUBACK without codes",
        V5,
        "B0 03 00 01 00",
        Proto("[MQTT-3.11.3-1]"),
    ),
    // DISCONNECT and AUTH (§3.14, §3.15).
    ("DISCONNECT reason 0x05", V5, "E0 01 05", Proto("§3.14.2.1")),
    (
        "DISCONNECT session expiry twice",
        V5,
        "E0 0C 00 0A 11 00 00 00 01 11 00 00 00 02",
        Proto("§2.2.2.2"),
    ),
    (
        "DISCONNECT trailing byte",
        V5,
        "E0 03 00 00 00",
        Malformed("§3.14"),
    ),
    ("AUTH reason 0x01", V5, "F0 01 01", Proto("§3.15.2.1")),
    (
        "subscription identifier in AUTH",
        V5,
        "F0 04 18 02 0B 01",
        Malformed("§2.2.2.2"),
    ),
];

fn check(name: &str, protocol: Option<Protocol>, bytes: &[u8], expected: &Expect) {
    let mut buf = BytesMut::from(bytes);
    let got = decode(&mut buf, protocol, 1024);
    let Err(error) = got else {
        panic!("{name}: expected {expected:?}, decoded {got:?}");
    };
    let (message, code) = match (&error, expected) {
        (DecodeError::Malformed(m), Malformed(f)) => (m, (f, reason::MALFORMED_PACKET)),
        (DecodeError::Protocol(m), Proto(f)) => (m, (f, reason::PROTOCOL_ERROR)),
        (DecodeError::TopicNameInvalid(m), Topic(f)) => (m, (f, reason::PROTOCOL_ERROR)),
        (error, Exactly(exact)) => {
            assert_eq!(error, exact, "{name}");
            return;
        }
        _ => panic!("{name}: expected {expected:?}, got {error:?}"),
    };
    assert!(
        message.contains(code.0),
        "{name}: {message:?} does not cite {}",
        code.0
    );
    assert_eq!(error.reason_code(), code.1, "{name}");
}

/// Accepted where Mosquitto accepts them and the specification lets the receiver choose:
/// DUP on a QoS 0 PUBLISH is ignored [MQTT-3.3.1-2], and MQTT 3.1 leaves the reserved
/// connect flag unchecked.
#[test]
fn tolerated_as_mosquitto_tolerates() {
    for (protocol, bytes) in [(V3, "38 03 00 01 't'"), (V5, "38 04 00 01 't' 00")] {
        let mut buf = BytesMut::from(&h(bytes)[..]);
        let Ok(Some(crate::mqtt::Packet::Publish(publish))) = decode(&mut buf, protocol, 1024)
        else {
            panic!("DUP with QoS 0 ({protocol:?}) is accepted");
        };
        assert!(!publish.dup, "and the DUP flag dropped");
    }
    let v31 = "10 0E 00 06 'MQIsdp' 03 03 00 3C 00 00";
    let mut buf = BytesMut::from(&h(v31)[..]);
    assert!(matches!(
        decode(&mut buf, NONE, 1024),
        Ok(Some(crate::mqtt::Packet::Connect(_)))
    ));
}

#[test]
fn every_row_is_refused_with_its_rule() {
    assert!(CASES.len() >= 40);
    for (name, protocol, bytes, expected) in CASES {
        check(name, *protocol, &h(bytes), expected);
    }
}

#[test]
fn too_large_is_refused_from_the_fixed_header() {
    // 16,386 bytes announced, 3 present: refused at once, nothing reserved.
    let mut buf = BytesMut::from(&h("30 FF 7F 00")[..]);
    let capacity = buf.capacity();
    let got = decode(&mut buf, Some(Protocol::V311), 1000);
    assert_eq!(
        got,
        Err(DecodeError::TooLarge {
            size: 16_386,
            limit: 1000
        })
    );
    assert_eq!(got.unwrap_err().reason_code(), reason::PACKET_TOO_LARGE);
    assert_eq!(buf.capacity(), capacity);
    // Exactly at the limit is fine.
    let mut buf = BytesMut::from(&h("C0 00")[..]);
    assert!(decode(&mut buf, Some(Protocol::V311), 2).unwrap().is_some());
}

#[test]
fn reason_codes_of_connect_errors() {
    assert_eq!(DecodeError::InvalidProtocolName.reason_code(), 0x84);
    assert_eq!(
        DecodeError::UnsupportedProtocolVersion(6).reason_code(),
        0x84
    );
    assert_eq!(DecodeError::NotConnect.reason_code(), 0x82);
}

#[test]
fn mqtt_31_tolerates_dup_on_pubrel_subscribe_unsubscribe() {
    // 3.1 clients set DUP on re-sent PUBREL/SUBSCRIBE/UNSUBSCRIBE; Mosquitto accepts it.
    for bytes in [
        "6A 02 00 01",
        "8A 06 00 01 00 01 't' 00",
        "AA 05 00 01 00 01 't'",
    ] {
        let mut buf = BytesMut::from(&h(bytes)[..]);
        assert!(
            decode(&mut buf, Some(Protocol::V31), 64).unwrap().is_some(),
            "{bytes}"
        );
    }
}
