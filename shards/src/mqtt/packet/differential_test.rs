//! Differential tests against mqttbytes-ng 0.7.1 for MQTT 3.1.1: packets it encodes decode
//! here to the same fields (and re-encode to the same bytes), and packets encoded here
//! decode there to the same fields.
//!
//! Skipped, because mqttbytes-ng is wrong or narrower there (deps.md §4): 5.0 DISCONNECT
//! `e0 00` and AUTH (it refuses both), MQTT 3.1 (it has no `MQIsdp`), an empty user name or
//! password (it treats empty as absent), a password without a user name, binary passwords
//! (it reads them as UTF-8 strings), and empty topic filters (it accepts them, we refuse).

use bytes::{Bytes, BytesMut};
use mqttbytes_ng::v4;
use proptest::collection::vec;
use proptest::prelude::*;

use super::strategy_test as strategy;
use crate::mqtt::{
    decode, Ack, ByteStr, ConnAck, Connect, Packet, PacketId, Protocol, Publish, QoS, SubAck,
    Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};

fn their_qos(qos: QoS) -> mqttbytes_ng::QoS {
    match qos {
        QoS::AtMostOnce => mqttbytes_ng::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes_ng::QoS::AtLeastOnce,
        QoS::ExactlyOnce => mqttbytes_ng::QoS::ExactlyOnce,
    }
}

fn our_qos(qos: mqttbytes_ng::QoS) -> QoS {
    match qos {
        mqttbytes_ng::QoS::AtMostOnce => QoS::AtMostOnce,
        mqttbytes_ng::QoS::AtLeastOnce => QoS::AtLeastOnce,
        mqttbytes_ng::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn id(pkid: u16) -> PacketId {
    PacketId::new(pkid).expect("mqttbytes-ng packets here carry non-zero ids")
}

fn text(text: &str) -> ByteStr {
    ByteStr::copy_from_str(text)
}

fn their_return_code(code: u8) -> v4::ConnectReturnCode {
    use v4::ConnectReturnCode::*;
    [
        Success,
        RefusedProtocolVersion,
        BadClientId,
        ServiceUnavailable,
        BadUserNamePassword,
        NotAuthorized,
    ][usize::from(code)]
}

fn their_suback_code(code: u8) -> v4::SubscribeReasonCode {
    match code {
        0x80 => v4::SubscribeReasonCode::Failure,
        qos => v4::SubscribeReasonCode::Success(their_qos(QoS::from_u8(qos).unwrap())),
    }
}

/// Translates an mqttbytes-ng 3.1.1 CONNECT into ours.
fn our_connect(c: &v4::Connect) -> Connect {
    Connect {
        protocol: Protocol::V311,
        clean_start: c.clean_session,
        keep_alive: c.keep_alive,
        properties: Default::default(),
        client_id: text(&c.client_id),
        will: c.last_will.as_ref().map(|w| Will {
            topic: text(&w.topic),
            payload: w.message.clone(),
            qos: our_qos(w.qos),
            retain: w.retain,
            delay_interval: None,
            properties: Default::default(),
        }),
        username: c.login.as_ref().map(|l| text(&l.username)),
        password: c
            .login
            .as_ref()
            .map(|l| Bytes::copy_from_slice(l.password.as_bytes())),
    }
}

/// Translates an mqttbytes-ng 3.1.1 packet into ours, field by field.
fn ours(packet: &v4::Packet) -> Packet {
    match packet {
        v4::Packet::Connect(c) => Packet::Connect(Box::new(our_connect(c))),
        v4::Packet::ConnAck(c) => Packet::ConnAck(Box::new(ConnAck {
            session_present: c.session_present,
            reason_code: c.code as u8,
            properties: Default::default(),
        })),
        v4::Packet::Publish(p) => Packet::Publish(Publish {
            dup: p.dup,
            qos: our_qos(p.qos),
            retain: p.retain,
            topic: text(&p.topic),
            packet_id: PacketId::new(p.pkid),
            properties: Default::default(),
            payload: p.payload.clone(),
        }),
        v4::Packet::PubAck(a) => Packet::PubAck(Ack::new(id(a.pkid))),
        v4::Packet::PubRec(a) => Packet::PubRec(Ack::new(id(a.pkid))),
        v4::Packet::PubRel(a) => Packet::PubRel(Ack::new(id(a.pkid))),
        v4::Packet::PubComp(a) => Packet::PubComp(Ack::new(id(a.pkid))),
        v4::Packet::Subscribe(s) => Packet::Subscribe(Subscribe {
            packet_id: id(s.pkid),
            properties: Default::default(),
            filters: s
                .filters
                .iter()
                .map(|f| (text(&f.path), SubscriptionOptions::with_qos(our_qos(f.qos))))
                .collect(),
        }),
        v4::Packet::SubAck(s) => Packet::SubAck(SubAck {
            packet_id: id(s.pkid),
            properties: Default::default(),
            reason_codes: s
                .return_codes
                .iter()
                .map(|code| match code {
                    v4::SubscribeReasonCode::Success(qos) => *qos as u8,
                    v4::SubscribeReasonCode::Failure => 0x80,
                })
                .collect(),
        }),
        v4::Packet::Unsubscribe(u) => Packet::Unsubscribe(Unsubscribe {
            packet_id: id(u.pkid),
            properties: Default::default(),
            filters: u.topics.iter().map(|t| text(t)).collect(),
        }),
        v4::Packet::UnsubAck(u) => Packet::UnsubAck(UnsubAck {
            packet_id: id(u.pkid),
            properties: Default::default(),
            reason_codes: Vec::new(),
        }),
        v4::Packet::PingReq => Packet::PingReq,
        v4::Packet::PingResp => Packet::PingResp,
        v4::Packet::Disconnect => Packet::Disconnect(Default::default()),
    }
}

fn ascii(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[ -~é€😀]{{0,{max}}}")).unwrap()
}

fn topic() -> impl Strategy<Value = String> {
    "[a-z0-9/é $]{1,16}"
}

fn their_will() -> impl Strategy<Value = v4::LastWill> {
    (
        topic(),
        vec(any::<u8>(), 0..16),
        strategy::qos(),
        any::<bool>(),
    )
        .prop_map(|(t, m, q, r)| v4::LastWill::new(t, m, their_qos(q), r))
}

fn their_connect() -> impl Strategy<Value = v4::Packet> {
    (
        any::<bool>(),
        any::<u16>(),
        ascii(23),
        proptest::option::of(their_will()),
        proptest::option::of(("[a-z]{1,8}", "[ -~]{1,8}")),
    )
        .prop_map(|(clean, keep_alive, client_id, will, login)| {
            v4::Packet::Connect(v4::Connect {
                protocol: mqttbytes_ng::Protocol::V4,
                keep_alive,
                client_id,
                clean_session: clean,
                last_will: will,
                login: login.map(|(u, p)| v4::Login::new(u, p)),
            })
        })
}

fn their_publish() -> impl Strategy<Value = v4::Packet> {
    (
        strategy::qos(),
        any::<bool>(),
        any::<bool>(),
        topic(),
        1..=u16::MAX,
        vec(any::<u8>(), 0..200),
    )
        .prop_map(|(qos, dup, retain, topic, pkid, payload)| {
            let mut p = v4::Publish::new(topic, their_qos(qos), payload);
            p.retain = retain;
            if qos != QoS::AtMostOnce {
                p.dup = dup;
                p.pkid = pkid;
            }
            v4::Packet::Publish(p)
        })
}

/// Every 3.1.1 packet mqttbytes-ng encodes correctly.
fn their_packet() -> impl Strategy<Value = v4::Packet> {
    let pkid = 1..=u16::MAX;
    prop_oneof![
        their_connect(),
        (any::<bool>(), 0..=5u8).prop_map(|(session, code)| {
            v4::Packet::ConnAck(v4::ConnAck::new(their_return_code(code), session))
        }),
        their_publish(),
        pkid.clone()
            .prop_map(|p| v4::Packet::PubAck(v4::PubAck::new(p))),
        pkid.clone()
            .prop_map(|p| v4::Packet::PubRec(v4::PubRec::new(p))),
        pkid.clone()
            .prop_map(|p| v4::Packet::PubRel(v4::PubRel::new(p))),
        pkid.clone()
            .prop_map(|p| v4::Packet::PubComp(v4::PubComp::new(p))),
        (pkid.clone(), vec((topic(), strategy::qos()), 1..4)).prop_map(|(p, filters)| {
            let mut s = v4::Subscribe::new_many(
                filters
                    .into_iter()
                    .map(|(t, q)| v4::SubscribeFilter::new(t, their_qos(q))),
            );
            s.pkid = p;
            v4::Packet::Subscribe(s)
        }),
        (
            pkid.clone(),
            vec(proptest::sample::select(strategy::V3_SUBACK_CODES), 1..4)
        )
            .prop_map(|(p, codes)| v4::Packet::SubAck(v4::SubAck::new(
                p,
                codes.into_iter().map(their_suback_code).collect()
            ))),
        (pkid.clone(), vec(topic(), 1..4)).prop_map(|(p, topics)| {
            v4::Packet::Unsubscribe(v4::Unsubscribe { pkid: p, topics })
        }),
        pkid.prop_map(|p| v4::Packet::UnsubAck(v4::UnsubAck::new(p))),
        Just(v4::Packet::PingReq),
        Just(v4::Packet::PingResp),
        Just(v4::Packet::Disconnect),
    ]
}

/// Our 3.1.1 packets that mqttbytes-ng represents faithfully (see the module doc).
fn our_packet() -> impl Strategy<Value = Packet> {
    strategy::packet(Protocol::V311).prop_filter("outside mqttbytes-ng's model", |packet| {
        match packet {
            Packet::Connect(c) => {
                let login_ok = match (&c.username, &c.password) {
                    (None, None) => true,
                    (Some(user), Some(pass)) => {
                        !user.is_empty() && !pass.is_empty() && std::str::from_utf8(pass).is_ok()
                    }
                    _ => false,
                };
                login_ok
            }
            _ => true,
        }
    })
}

proptest! {
    #[test]
    fn their_encoding_decodes_here_to_the_same_fields(theirs in their_packet()) {
        let mut bytes = BytesMut::new();
        theirs.write(&mut bytes, usize::MAX).unwrap();
        let expected = ours(&theirs);
        let mut buf = bytes.clone();
        let decoded = decode(&mut buf, Some(Protocol::V311), usize::MAX);
        prop_assert_eq!(decoded, Ok(Some(expected.clone())));
        prop_assert!(buf.is_empty());
        // Both write the minimal form in the same field order: the bytes agree too.
        let mut again = BytesMut::new();
        expected.encode(Protocol::V311, &mut again).unwrap();
        prop_assert_eq!(again, bytes);
    }

    #[test]
    fn our_encoding_decodes_there_to_the_same_fields(packet in our_packet()) {
        let mut bytes = BytesMut::new();
        packet.encode(Protocol::V311, &mut bytes).unwrap();
        let theirs = v4::Packet::read(&mut bytes, usize::MAX);
        let theirs = theirs.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(ours(&theirs), packet);
        prop_assert!(bytes.is_empty());
    }
}
