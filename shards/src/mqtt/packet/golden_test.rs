//! Byte-vector tests: every packet of 3.1.1 and 5.0 as it appears on the wire (the
//! specification's examples where it gives one), decoded to the expected fields and encoded
//! back to the same bytes; 3.1.1 vectors are also checked against mqttbytes-ng's encoder.

use bytes::{Bytes, BytesMut};

use crate::mqtt::{
    decode, Ack, AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, Disconnect, DisconnectProperties, Packet, PacketId, Protocol, Publish,
    PublishProperties, QoS, SubAck, Subscribe, SubscribeProperties, SubscriptionOptions, UnsubAck,
    Unsubscribe, UserProperties, Will,
};

/// Parses a readable byte vector: hex bytes and `'ascii'` runs, separated by spaces; `|`
/// separates fields for the reader and is skipped.
pub(super) fn h(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for token in text.split_whitespace() {
        if token == "|" {
            continue;
        }
        if let Some(ascii) = token.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
            out.extend_from_slice(ascii.as_bytes());
        } else {
            out.push(u8::from_str_radix(token, 16).expect("hex byte"));
        }
    }
    out
}

fn id(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

/// `bytes` decodes to `packet` under `protocol`, and `packet` encodes to `bytes`.
fn golden(protocol: Protocol, bytes: &[u8], packet: Packet) {
    decodes_to(protocol, bytes, &packet);
    let mut out = BytesMut::new();
    packet.encode(protocol, &mut out).unwrap();
    assert_eq!(&out[..], bytes, "{packet:?} encodes differently");
    assert_eq!(packet.encoded_len(protocol), Ok(bytes.len()));
}

/// `bytes` decodes to `packet` under `protocol` and is consumed whole (no encoding check:
/// for forms the encoder never writes, like non-minimal lengths).
fn decodes_to(protocol: Protocol, bytes: &[u8], packet: &Packet) {
    let mut buf = BytesMut::from(bytes);
    assert_eq!(
        decode(&mut buf, Some(protocol), bytes.len()),
        Ok(Some(packet.clone()))
    );
    assert!(buf.is_empty());
}

/// mqttbytes-ng writes `theirs` as `bytes` (3.1.1).
fn they_write(theirs: mqttbytes_ng::v4::Packet, bytes: &[u8]) {
    let mut out = BytesMut::new();
    theirs.write(&mut out, usize::MAX).unwrap();
    assert_eq!(&out[..], bytes);
}

fn publish(
    topic: &'static str,
    qos: QoS,
    packet_id: Option<u16>,
    payload: &'static [u8],
) -> Publish {
    Publish {
        qos,
        topic: topic.into(),
        packet_id: packet_id.map(id),
        payload: Bytes::from_static(payload),
        ..Default::default()
    }
}

#[test]
fn connect_311_spec_example() {
    // §3.1.2.10 of 3.1.1: flags CE = user name, password, will QoS 1, will, clean session.
    let bytes = h(
        "10 27 | 00 04 'MQTT' 04 CE 00 0A | 00 04 'test' | 00 02 '/a' \
                   | 00 07 'offline' | 00 04 'rust' | 00 02 'mq'",
    );
    let connect = Connect {
        protocol: Protocol::V311,
        clean_start: true,
        keep_alive: 10,
        properties: ConnectProperties::default(),
        client_id: "test".into(),
        will: Some(Will {
            topic: "/a".into(),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: false,
            delay_interval: None,
            properties: PublishProperties::default(),
        }),
        username: Some("rust".into()),
        password: Some(Bytes::from_static(b"mq")),
    };
    golden(Protocol::V311, &bytes, Packet::Connect(Box::new(connect)));
    let mut theirs = mqttbytes_ng::v4::Connect::new("test");
    theirs.keep_alive = 10;
    theirs.last_will = Some(mqttbytes_ng::v4::LastWill::new(
        "/a",
        "offline",
        mqttbytes_ng::QoS::AtLeastOnce,
        false,
    ));
    theirs.set_login("rust", "mq");
    they_write(mqttbytes_ng::v4::Packet::Connect(theirs), &bytes);
}

#[test]
fn connect_31_and_bridge_levels() {
    let minimal = |protocol| Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        properties: ConnectProperties::default(),
        client_id: "c".into(),
        will: None,
        username: None,
        password: None,
    };
    let v31 = h("10 0F | 00 06 'MQIsdp' 03 02 00 3C | 00 01 'c'");
    golden(
        Protocol::V31,
        &v31,
        Packet::Connect(Box::new(minimal(Protocol::V31))),
    );
    // Mosquitto bridges set 0x80 on the level ("try_private"); the connection is 3.1/3.1.1.
    let bridge31 = h("10 0F | 00 06 'MQIsdp' 83 02 00 3C | 00 01 'c'");
    decodes_to(
        Protocol::V311,
        &bridge31,
        &Packet::Connect(Box::new(minimal(Protocol::V31))),
    );
    let bridge311 = h("10 0D | 00 04 'MQTT' 84 02 00 3C | 00 01 'c'");
    decodes_to(
        Protocol::V311,
        &bridge311,
        &Packet::Connect(Box::new(minimal(Protocol::V311))),
    );
    let mut buf = BytesMut::from(&bridge311[..]);
    assert!(matches!(
        decode(&mut buf, None, 1024),
        Ok(Some(Packet::Connect(_)))
    ));
}

#[test]
fn connect_5_spec_example() {
    // §3.1.2.12 of 5.0: flags C2 = user name, password, clean start; keep alive 10;
    // properties: session expiry interval 10.
    let bytes = h(
        "10 23 | 00 04 'MQTT' 05 C2 00 0A | 05 11 00 00 00 0A | 00 03 'cid' \
                   | 00 04 'user' | 00 06 'secret'",
    );
    let connect = Connect {
        protocol: Protocol::V5,
        clean_start: true,
        keep_alive: 10,
        properties: ConnectProperties {
            session_expiry_interval: Some(10),
            ..Default::default()
        },
        client_id: "cid".into(),
        will: None,
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"secret")),
    };
    golden(Protocol::V5, &bytes, Packet::Connect(Box::new(connect)));
}

#[test]
fn connect_5_with_will_properties_and_password_only() {
    // Will delay 5, will payload format 1, will QoS 2 + retain; password without user name
    // is legal in 5.0.
    let bytes = h("10 24 | 00 04 'MQTT' 05 74 00 00 | 00 | 00 00 \
                   | 07 18 00 00 00 05 01 01 | 00 03 'w/t' | 00 03 'bye' | 00 03 'pw!'");
    let connect = Connect {
        protocol: Protocol::V5,
        clean_start: false,
        keep_alive: 0,
        properties: ConnectProperties::default(),
        client_id: "".into(),
        will: Some(Will {
            topic: "w/t".into(),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::ExactlyOnce,
            retain: true,
            delay_interval: Some(5),
            properties: PublishProperties {
                payload_format_indicator: Some(1),
                ..Default::default()
            },
        }),
        username: None,
        password: Some(Bytes::from_static(b"pw!")),
    };
    golden(Protocol::V5, &bytes, Packet::Connect(Box::new(connect)));
}

#[test]
fn connack_both_versions() {
    let accepted = ConnAck {
        session_present: true,
        reason_code: 0,
        ..Default::default()
    };
    golden(
        Protocol::V311,
        &h("20 02 01 00"),
        Packet::ConnAck(Box::new(accepted.clone())),
    );
    they_write(
        mqttbytes_ng::v4::Packet::ConnAck(mqttbytes_ng::v4::ConnAck::new(
            mqttbytes_ng::v4::ConnectReturnCode::Success,
            true,
        )),
        &h("20 02 01 00"),
    );
    let refused = ConnAck {
        reason_code: 5,
        ..Default::default()
    };
    golden(
        Protocol::V311,
        &h("20 02 00 05"),
        Packet::ConnAck(Box::new(refused)),
    );
    golden(
        Protocol::V5,
        &h("20 03 01 00 00"),
        Packet::ConnAck(Box::new(accepted)),
    );
    let v5 = ConnAck {
        session_present: false,
        reason_code: 0,
        properties: ConnAckProperties {
            receive_maximum: Some(20),
            maximum_qos: Some(1),
            assigned_client_identifier: Some("auto-1".into()),
            topic_alias_maximum: Some(10),
            ..Default::default()
        },
    };
    // Mosquitto's order: topic alias maximum, assigned id, then receive maximum, maximum QoS.
    let bytes = h("20 14 00 00 | 11 22 00 0A 12 00 06 'auto-1' 21 00 14 24 01");
    golden(Protocol::V5, &bytes, Packet::ConnAck(Box::new(v5)));
}

#[test]
fn publish_311() {
    let qos1 = publish("a/b", QoS::AtLeastOnce, Some(10), b"hi");
    let bytes = h("32 09 | 00 03 'a/b' | 00 0A | 'hi'");
    golden(Protocol::V311, &bytes, Packet::Publish(qos1));
    let mut theirs = mqttbytes_ng::v4::Publish::new("a/b", mqttbytes_ng::QoS::AtLeastOnce, "hi");
    theirs.pkid = 10;
    they_write(mqttbytes_ng::v4::Packet::Publish(theirs), &bytes);
    let mut qos2 = publish("t", QoS::ExactlyOnce, Some(1), b"");
    qos2.dup = true;
    qos2.retain = true;
    golden(
        Protocol::V311,
        &h("3D 05 00 01 't' 00 01"),
        Packet::Publish(qos2),
    );
    let qos0 = publish("t", QoS::AtMostOnce, None, b"x");
    golden(
        Protocol::V311,
        &h("30 04 00 01 't' 'x'"),
        Packet::Publish(qos0.clone()),
    );
    // A non-minimal remaining length (0x84 0x00 = 4) is accepted, as Mosquitto does.
    decodes_to(
        Protocol::V311,
        &h("30 84 00 00 01 't' 'x'"),
        &Packet::Publish(qos0),
    );
}

#[test]
fn publish_5_with_properties() {
    let mut message = publish("a/b", QoS::AtLeastOnce, Some(10), b"hi");
    message.properties = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        topic_alias: Some(5),
        user_properties: UserProperties::from_pairs([("k", "v")]),
        subscription_identifiers: vec![1, 300],
        content_type: Some("t/p".into()),
        ..Default::default()
    }
    .into();
    // Written in the encoder's order: alias, subscription ids, the forwarded properties,
    // expiry last (Mosquitto's order; it sends no alias).
    let bytes = h("32 26 | 00 03 'a/b' | 00 0A | 1C 23 00 05 0B 01 0B AC 02 \
                   01 01 26 00 01 'k' 00 01 'v' 03 00 03 't/p' 02 00 00 00 3C | 'hi'");
    golden(Protocol::V5, &bytes, Packet::Publish(message.clone()));
    // mqttbytes-ng writes the same message with the properties in another order.
    let theirs = mqttbytes_ng::v5::Publish {
        dup: false,
        qos: mqttbytes_ng::QoS::AtLeastOnce,
        retain: false,
        topic: Bytes::from_static(b"a/b"),
        pkid: 10,
        payload: Bytes::from_static(b"hi"),
        properties: Some(mqttbytes_ng::v5::PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: Some(5),
            response_topic: None,
            correlation_data: None,
            user_properties: vec![("k".into(), "v".into())],
            subscription_identifiers: vec![1, 300],
            content_type: Some("t/p".into()),
        }),
    };
    let mut out = BytesMut::new();
    mqttbytes_ng::v5::Packet::Publish(theirs)
        .write(&mut out, None)
        .unwrap();
    decodes_to(Protocol::V5, &out, &Packet::Publish(message));
    // An empty topic with a topic alias, and empty properties.
    let mut aliased = publish("", QoS::AtMostOnce, None, b"p");
    aliased.properties.make_mut().topic_alias = Some(5);
    golden(
        Protocol::V5,
        &h("30 07 00 00 03 23 00 05 'p'"),
        Packet::Publish(aliased),
    );
    let plain = publish("t", QoS::AtMostOnce, None, b"");
    golden(
        Protocol::V5,
        &h("30 04 00 01 't' 00"),
        Packet::Publish(plain),
    );
}

#[test]
fn acknowledgements_311() {
    use mqttbytes_ng::v4 as them;
    let ack = Ack::new(id(10));
    golden(
        Protocol::V311,
        &h("40 02 00 0A"),
        Packet::PubAck(ack.clone()),
    );
    golden(
        Protocol::V311,
        &h("50 02 00 0A"),
        Packet::PubRec(ack.clone()),
    );
    golden(
        Protocol::V311,
        &h("62 02 00 0A"),
        Packet::PubRel(ack.clone()),
    );
    golden(Protocol::V311, &h("70 02 00 0A"), Packet::PubComp(ack));
    they_write(
        them::Packet::PubAck(them::PubAck::new(10)),
        &h("40 02 00 0A"),
    );
    they_write(
        them::Packet::PubRec(them::PubRec::new(10)),
        &h("50 02 00 0A"),
    );
    they_write(
        them::Packet::PubRel(them::PubRel::new(10)),
        &h("62 02 00 0A"),
    );
    they_write(
        them::Packet::PubComp(them::PubComp::new(10)),
        &h("70 02 00 0A"),
    );
}

#[test]
fn acknowledgements_5_short_and_long_forms() {
    let success = Ack::new(id(10));
    golden(
        Protocol::V5,
        &h("40 02 00 0A"),
        Packet::PubAck(success.clone()),
    );
    // Reason code and an empty property block may be present; they mean the same.
    decodes_to(
        Protocol::V5,
        &h("40 03 00 0A 00"),
        &Packet::PubAck(success.clone()),
    );
    decodes_to(
        Protocol::V5,
        &h("40 04 00 0A 00 00"),
        &Packet::PubAck(success),
    );
    let no_match = Ack {
        reason_code: 0x10,
        ..Ack::new(id(10))
    };
    golden(Protocol::V5, &h("40 03 00 0A 10"), Packet::PubAck(no_match));
    let refused = Ack {
        reason_code: 0x87,
        properties: AckProperties {
            reason_string: Some("acl".into()),
            ..Default::default()
        },
        ..Ack::new(id(10))
    };
    golden(
        Protocol::V5,
        &h("50 0A 00 0A 87 06 1F 00 03 'acl'"),
        Packet::PubRec(refused),
    );
    let not_found = Ack {
        reason_code: 0x92,
        ..Ack::new(id(7))
    };
    golden(
        Protocol::V5,
        &h("62 03 00 07 92"),
        Packet::PubRel(not_found.clone()),
    );
    golden(
        Protocol::V5,
        &h("70 03 00 07 92"),
        Packet::PubComp(not_found),
    );
}

#[test]
fn subscribe_and_suback_311_spec_examples() {
    // §3.8.3 of 3.1.1: "a/b" QoS 1 and "c/d" QoS 2.
    let subscribe = Subscribe {
        packet_id: id(10),
        properties: SubscribeProperties::default(),
        filters: vec![
            (
                "a/b".into(),
                SubscriptionOptions::with_qos(QoS::AtLeastOnce),
            ),
            (
                "c/d".into(),
                SubscriptionOptions::with_qos(QoS::ExactlyOnce),
            ),
        ],
    };
    let bytes = h("82 0E | 00 0A | 00 03 'a/b' 01 | 00 03 'c/d' 02");
    golden(Protocol::V311, &bytes, Packet::Subscribe(subscribe));
    let mut theirs = mqttbytes_ng::v4::Subscribe::new("a/b", mqttbytes_ng::QoS::AtLeastOnce);
    theirs.add("c/d".into(), mqttbytes_ng::QoS::ExactlyOnce);
    theirs.pkid = 10;
    they_write(mqttbytes_ng::v4::Packet::Subscribe(theirs), &bytes);
    // §3.9.3 of 3.1.1: granted QoS 0, granted QoS 2, failure.
    let suback = SubAck {
        packet_id: id(10),
        properties: Default::default(),
        reason_codes: vec![0, 2, 0x80],
    };
    golden(
        Protocol::V311,
        &h("90 05 00 0A 00 02 80"),
        Packet::SubAck(suback),
    );
    // A 5.0 failure code is written as the one 3.1.1 failure code.
    let denied = SubAck {
        packet_id: id(1),
        properties: Default::default(),
        reason_codes: vec![0x87],
    };
    let mut out = BytesMut::new();
    Packet::SubAck(denied)
        .encode(Protocol::V311, &mut out)
        .unwrap();
    assert_eq!(&out[..], &h("90 03 00 01 80")[..]);
}

#[test]
fn subscribe_and_suback_5() {
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: 2,
    };
    let subscribe = Subscribe {
        packet_id: id(10),
        properties: SubscribeProperties {
            subscription_identifier: Some(7),
            ..Default::default()
        },
        filters: vec![("a/+".into(), options)],
    };
    golden(
        Protocol::V5,
        &h("82 0B 00 0A 02 0B 07 00 03 'a/+' 2D"),
        Packet::Subscribe(subscribe),
    );
    let suback = SubAck {
        packet_id: id(10),
        properties: Default::default(),
        reason_codes: vec![0x01, 0x87],
    };
    golden(
        Protocol::V5,
        &h("90 05 00 0A 00 01 87"),
        Packet::SubAck(suback),
    );
}

#[test]
fn unsubscribe_and_unsuback_both_versions() {
    let unsubscribe = Unsubscribe {
        packet_id: id(10),
        properties: Default::default(),
        filters: vec!["a/b".into(), "c/d".into()],
    };
    let v311 = h("A2 0C | 00 0A | 00 03 'a/b' | 00 03 'c/d'");
    golden(
        Protocol::V311,
        &v311,
        Packet::Unsubscribe(unsubscribe.clone()),
    );
    they_write(
        mqttbytes_ng::v4::Packet::Unsubscribe(mqttbytes_ng::v4::Unsubscribe {
            pkid: 10,
            topics: vec!["a/b".into(), "c/d".into()],
        }),
        &v311,
    );
    let v5 = h("A2 0D | 00 0A | 00 | 00 03 'a/b' | 00 03 'c/d'");
    golden(Protocol::V5, &v5, Packet::Unsubscribe(unsubscribe));
    let unsuback = UnsubAck {
        packet_id: id(10),
        properties: Default::default(),
        reason_codes: vec![],
    };
    golden(
        Protocol::V311,
        &h("B0 02 00 0A"),
        Packet::UnsubAck(unsuback),
    );
    they_write(
        mqttbytes_ng::v4::Packet::UnsubAck(mqttbytes_ng::v4::UnsubAck::new(10)),
        &h("B0 02 00 0A"),
    );
    let v5ack = UnsubAck {
        packet_id: id(10),
        properties: Default::default(),
        reason_codes: vec![0x00, 0x11],
    };
    golden(
        Protocol::V5,
        &h("B0 05 00 0A 00 00 11"),
        Packet::UnsubAck(v5ack),
    );
}

#[test]
fn ping_disconnect_and_auth() {
    for protocol in [Protocol::V31, Protocol::V311, Protocol::V5] {
        golden(protocol, &h("C0 00"), Packet::PingReq);
        golden(protocol, &h("D0 00"), Packet::PingResp);
        golden(protocol, &h("E0 00"), Packet::Disconnect(Box::default()));
    }
    they_write(mqttbytes_ng::v4::Packet::PingReq, &h("C0 00"));
    they_write(mqttbytes_ng::v4::Packet::PingResp, &h("D0 00"));
    they_write(mqttbytes_ng::v4::Packet::Disconnect, &h("E0 00"));
    let with_will = Disconnect {
        reason_code: 0x04,
        ..Default::default()
    };
    golden(
        Protocol::V5,
        &h("E0 01 04"),
        Packet::Disconnect(Box::new(with_will)),
    );
    let expiry = Disconnect {
        reason_code: 0x00,
        properties: DisconnectProperties {
            session_expiry_interval: Some(0),
            ..Default::default()
        },
    };
    golden(
        Protocol::V5,
        &h("E0 07 00 05 11 00 00 00 00"),
        Packet::Disconnect(Box::new(expiry)),
    );
    golden(Protocol::V5, &h("F0 00"), Packet::Auth(Box::default()));
    let continue_auth = Auth {
        reason_code: 0x18,
        properties: AuthProperties {
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(Bytes::from_static(b"\x01\x02")),
            ..Default::default()
        },
    };
    let bytes = h("F0 0F 18 0D 15 00 05 'SCRAM' 16 00 02 01 02");
    golden(Protocol::V5, &bytes, Packet::Auth(Box::new(continue_auth)));
    // A lone reason code is accepted (Mosquitto accepts it); it is written with a block.
    let reauth = Auth {
        reason_code: 0x19,
        ..Default::default()
    };
    decodes_to(
        Protocol::V5,
        &h("F0 01 19"),
        &Packet::Auth(Box::new(reauth.clone())),
    );
    golden(
        Protocol::V5,
        &h("F0 02 19 00"),
        Packet::Auth(Box::new(reauth)),
    );
}

#[test]
fn version_specific_fields_are_left_out_for_311() {
    // Properties and reason codes of 5.0 are not written for 3.1.1; AUTH cannot be.
    let ack = Ack {
        reason_code: 0x80,
        ..Ack::new(id(3))
    };
    let mut out = BytesMut::new();
    Packet::PubAck(ack)
        .encode(Protocol::V311, &mut out)
        .unwrap();
    assert_eq!(&out[..], &h("40 02 00 03")[..]);
    let disconnect = Disconnect {
        reason_code: 0x8E,
        ..Default::default()
    };
    out.clear();
    Packet::Disconnect(Box::new(disconnect))
        .encode(Protocol::V311, &mut out)
        .unwrap();
    assert_eq!(&out[..], &h("E0 00")[..]);
    let auth = Packet::Auth(Box::default());
    assert!(matches!(
        auth.encode(Protocol::V311, &mut out),
        Err(crate::mqtt::EncodeError::Invalid(_))
    ));
}

#[test]
fn decoded_fields_share_the_read_buffer() {
    let bytes = h("32 09 | 00 03 'a/b' | 00 0A | 'hi'");
    let mut buf = BytesMut::from(&bytes[..]);
    let Ok(Some(Packet::Publish(p))) = decode(&mut buf, Some(Protocol::V311), 64) else {
        panic!("not a PUBLISH");
    };
    // Topic and payload are adjacent slices of one allocation (no copies).
    let topic_end = p.topic.as_bytes().as_ptr() as usize + p.topic.len();
    assert_eq!(topic_end + 2, p.payload.as_ptr() as usize);
}
