//! proptest strategies for arbitrary valid packets of each protocol version, shared by the
//! round-trip, fuzz and differential tests. A strategy for version `p` generates only what
//! `p` can carry: properties and 5.0 reason codes only for 5.0, AUTH only for 5.0.

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use crate::mqtt::{
    Ack, AckProperties, Auth, AuthProperties, ByteStr, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, Disconnect, DisconnectProperties, Packet, PacketId, Protocol, Publish,
    PublishProperties, QoS, SubAck, SubAckProperties, Subscribe, SubscribeProperties,
    SubscriptionOptions, UnsubAck, Unsubscribe, UnsubscribeProperties, UserProperties, Will,
};

/// The largest subscription identifier (§3.3.2.3.8).
pub const SUBSCRIPTION_ID_MAX: u32 = 268_435_455;

pub fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::V31),
        Just(Protocol::V311),
        Just(Protocol::V5)
    ]
}

pub fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

pub fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|id| PacketId::new(id).unwrap())
}

/// Any MQTT string: every Unicode scalar value but U+0000.
pub fn text(max: usize) -> impl Strategy<Value = ByteStr> {
    proptest::string::string_regex(&format!("[^\\x00]{{0,{max}}}"))
        .unwrap()
        .prop_map(ByteStr::from)
}

/// A topic name: at least one character, no wildcard.
pub fn topic() -> impl Strategy<Value = ByteStr> {
    "[^\\x00+#]{1,12}".prop_map(ByteStr::from)
}

/// A topic filter: at least one character (wildcard placement is not the codec's).
pub fn filter() -> impl Strategy<Value = ByteStr> {
    "[^\\x00]{1,12}".prop_map(ByteStr::from)
}

pub fn binary(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

pub fn user_properties() -> impl Strategy<Value = UserProperties> {
    vec((text(6), text(6)), 0..3).prop_map(|pairs| {
        UserProperties::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    })
}

fn boolean_byte() -> impl Strategy<Value = Option<u8>> {
    proptest::option::of(0..=1u8)
}

fn code(table: &'static [u8]) -> impl Strategy<Value = u8> {
    proptest::sample::select(table)
}

pub const CONNACK_CODES: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
pub const PUBACK_CODES: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
pub const PUBREL_CODES: &[u8] = &[0x00, 0x92];
pub const SUBACK_CODES: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
pub const V3_SUBACK_CODES: &[u8] = &[0x00, 0x01, 0x02, 0x80];
pub const UNSUBACK_CODES: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
pub const DISCONNECT_CODES: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
pub const AUTH_CODES: &[u8] = &[0x00, 0x18, 0x19];

/// PUBLISH properties as a client or server may send them (`with_topic_alias` decides
/// whether a topic alias is present).
pub fn publish_properties(with_topic_alias: bool) -> impl Strategy<Value = PublishProperties> {
    let alias = if with_topic_alias {
        (1..=u16::MAX).prop_map(Some).boxed()
    } else {
        proptest::option::of(1..=u16::MAX).boxed()
    };
    (
        boolean_byte(),
        proptest::option::of(any::<u32>()),
        alias,
        proptest::option::of(topic()),
        proptest::option::of(binary(8)),
        user_properties(),
        vec(1..=SUBSCRIPTION_ID_MAX, 0..3),
        proptest::option::of(text(8)),
    )
        .prop_map(
            |(pfi, expiry, alias, response, correlation, user, ids, content)| PublishProperties {
                payload_format_indicator: pfi,
                message_expiry_interval: expiry,
                topic_alias: alias,
                response_topic: response,
                correlation_data: correlation,
                user_properties: user,
                subscription_identifiers: ids,
                content_type: content,
                order: Default::default(),
            },
        )
}

pub fn publish(protocol: Protocol) -> impl Strategy<Value = Publish> {
    let v5 = protocol.is_v5();
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        packet_id(),
        any::<bool>(),
        binary(300),
    )
        .prop_flat_map(move |(qos, dup, retain, id, empty_topic, payload)| {
            let empty_topic = v5 && empty_topic;
            let properties = if v5 {
                publish_properties(empty_topic).boxed()
            } else {
                Just(PublishProperties::default()).boxed()
            };
            let topic = if empty_topic {
                Just(ByteStr::new()).boxed()
            } else {
                topic().boxed()
            };
            (topic, properties).prop_map(move |(topic, properties)| Publish {
                dup: dup && qos != QoS::AtMostOnce,
                qos,
                retain,
                topic,
                packet_id: (qos != QoS::AtMostOnce).then_some(id),
                properties: properties.into(),
                payload: payload.clone(),
            })
        })
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(1..=u16::MAX),
            proptest::option::of(1..=u32::MAX),
            proptest::option::of(any::<u16>()),
            boolean_byte(),
            boolean_byte(),
        ),
        user_properties(),
        proptest::option::of((text(8), proptest::option::of(binary(8)))),
    )
        .prop_map(
            |((expiry, receive, packet, alias, response, problem), user, auth)| {
                let (method, data) = match auth {
                    Some((method, data)) => (Some(method), data),
                    None => (None, None),
                };
                ConnectProperties {
                    session_expiry_interval: expiry,
                    receive_maximum: receive,
                    maximum_packet_size: packet,
                    topic_alias_maximum: alias,
                    request_response_information: response,
                    request_problem_information: problem,
                    user_properties: user,
                    authentication_method: method,
                    authentication_data: data,
                }
            },
        )
}

fn will(protocol: Protocol) -> impl Strategy<Value = Will> {
    let v5 = protocol.is_v5();
    (
        topic(),
        binary(16),
        qos(),
        any::<bool>(),
        proptest::option::of(any::<u32>()),
    )
        .prop_flat_map(move |(topic, payload, qos, retain, delay)| {
            let properties = if v5 {
                publish_properties(false)
                    .prop_map(|mut p| {
                        p.topic_alias = None;
                        p.subscription_identifiers.clear();
                        p
                    })
                    .boxed()
            } else {
                Just(PublishProperties::default()).boxed()
            };
            properties.prop_map(move |properties| Will {
                topic: topic.clone(),
                payload: payload.clone(),
                qos,
                retain,
                delay_interval: if v5 { delay } else { None },
                properties,
            })
        })
}

pub fn connect(protocol: Protocol) -> impl Strategy<Value = Connect> {
    let properties = if protocol.is_v5() {
        connect_properties().boxed()
    } else {
        Just(ConnectProperties::default()).boxed()
    };
    (
        (any::<bool>(), any::<u16>(), properties, text(23)),
        proptest::option::of(will(protocol)),
        proptest::option::of(text(8)),
        proptest::option::of(binary(8)),
    )
        .prop_map(
            move |((clean_start, keep_alive, properties, client_id), will, user, pass)| {
                // Before 5.0 a password needs a user name ([MQTT-3.1.2-22]).
                let password = if protocol.is_v5() || user.is_some() {
                    pass
                } else {
                    None
                };
                Connect {
                    protocol,
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will,
                    username: user,
                    password,
                }
            },
        )
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    (
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(1..=u16::MAX),
            boolean_byte(),
            boolean_byte(),
            proptest::option::of(1..=u32::MAX),
            proptest::option::of(text(8)),
            proptest::option::of(any::<u16>()),
            proptest::option::of(text(8)),
        ),
        (
            user_properties(),
            boolean_byte(),
            boolean_byte(),
            boolean_byte(),
            proptest::option::of(any::<u16>()),
            proptest::option::of(text(8)),
            proptest::option::of(text(8)),
            proptest::option::of((text(8), proptest::option::of(binary(8)))),
        ),
    )
        .prop_map(|(a, b)| {
            let (method, data) = b.7.map_or((None, None), |(m, d)| (Some(m), d));
            ConnAckProperties {
                session_expiry_interval: a.0,
                receive_maximum: a.1,
                maximum_qos: a.2,
                retain_available: a.3,
                maximum_packet_size: a.4,
                assigned_client_identifier: a.5,
                topic_alias_maximum: a.6,
                reason_string: a.7,
                user_properties: b.0,
                wildcard_subscription_available: b.1,
                subscription_identifiers_available: b.2,
                shared_subscription_available: b.3,
                server_keep_alive: b.4,
                response_information: b.5,
                server_reference: b.6,
                authentication_method: method,
                authentication_data: data,
            }
        })
}

pub fn connack(protocol: Protocol) -> BoxedStrategy<ConnAck> {
    if protocol.is_v5() {
        (any::<bool>(), code(CONNACK_CODES), connack_properties())
            .prop_map(|(session_present, reason_code, properties)| ConnAck {
                session_present,
                reason_code,
                properties,
            })
            .boxed()
    } else {
        (any::<bool>(), 0..=5u8)
            .prop_map(|(session_present, reason_code)| ConnAck {
                session_present,
                reason_code,
                properties: ConnAckProperties::default(),
            })
            .boxed()
    }
}

pub fn ack(protocol: Protocol, table: &'static [u8]) -> BoxedStrategy<Ack> {
    if !protocol.is_v5() {
        return packet_id().prop_map(Ack::new).boxed();
    }
    let properties = (proptest::option::of(text(8)), user_properties()).prop_map(
        |(reason_string, user_properties)| AckProperties {
            reason_string,
            user_properties,
        },
    );
    (packet_id(), code(table), properties)
        .prop_map(|(packet_id, reason_code, properties)| Ack {
            packet_id,
            reason_code,
            properties,
        })
        .boxed()
}

fn options(protocol: Protocol) -> BoxedStrategy<SubscriptionOptions> {
    if !protocol.is_v5() {
        return qos().prop_map(SubscriptionOptions::with_qos).boxed();
    }
    (qos(), any::<bool>(), any::<bool>(), 0..=2u8)
        .prop_map(
            |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
                qos,
                no_local,
                retain_as_published,
                retain_handling,
            },
        )
        .boxed()
}

pub fn subscribe(protocol: Protocol) -> impl Strategy<Value = Subscribe> {
    let v5 = protocol.is_v5();
    let properties = (
        proptest::option::of(1..=SUBSCRIPTION_ID_MAX),
        user_properties(),
    )
        .prop_map(move |(id, user)| {
            if v5 {
                SubscribeProperties {
                    subscription_identifier: id,
                    user_properties: user,
                }
            } else {
                SubscribeProperties::default()
            }
        });
    (
        packet_id(),
        properties,
        vec((filter(), options(protocol)), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| Subscribe {
            packet_id,
            properties,
            filters,
        })
}

fn suback_properties(protocol: Protocol) -> impl Strategy<Value = SubAckProperties> {
    let v5 = protocol.is_v5();
    (proptest::option::of(text(8)), user_properties()).prop_map(move |(reason, user)| {
        if v5 {
            SubAckProperties {
                reason_string: reason,
                user_properties: user,
            }
        } else {
            SubAckProperties::default()
        }
    })
}

pub fn suback(protocol: Protocol) -> impl Strategy<Value = SubAck> {
    let table = if protocol.is_v5() {
        SUBACK_CODES
    } else {
        V3_SUBACK_CODES
    };
    (
        packet_id(),
        suback_properties(protocol),
        vec(code(table), 1..4),
    )
        .prop_map(|(packet_id, properties, reason_codes)| SubAck {
            packet_id,
            properties,
            reason_codes,
        })
}

pub fn unsubscribe(protocol: Protocol) -> impl Strategy<Value = Unsubscribe> {
    let v5 = protocol.is_v5();
    (packet_id(), user_properties(), vec(filter(), 1..4)).prop_map(move |(id, user, filters)| {
        Unsubscribe {
            packet_id: id,
            properties: UnsubscribeProperties {
                user_properties: if v5 { user } else { UserProperties::new() },
            },
            filters,
        }
    })
}

pub fn unsuback(protocol: Protocol) -> impl Strategy<Value = UnsubAck> {
    let count = if protocol.is_v5() { 1..4 } else { 0..1 };
    (
        packet_id(),
        suback_properties(protocol),
        vec(code(UNSUBACK_CODES), count),
    )
        .prop_map(|(packet_id, properties, reason_codes)| UnsubAck {
            packet_id,
            properties,
            reason_codes,
        })
}

pub fn disconnect(protocol: Protocol) -> BoxedStrategy<Disconnect> {
    if !protocol.is_v5() {
        return Just(Disconnect::default()).boxed();
    }
    let properties = (
        proptest::option::of(any::<u32>()),
        proptest::option::of(text(8)),
        user_properties(),
        proptest::option::of(text(8)),
    )
        .prop_map(|(expiry, reason, user, server)| DisconnectProperties {
            session_expiry_interval: expiry,
            reason_string: reason,
            user_properties: user,
            server_reference: server,
        });
    let properties = prop_oneof![Just(DisconnectProperties::default()), properties];
    (code(DISCONNECT_CODES), properties)
        .prop_map(|(reason_code, properties)| Disconnect {
            reason_code,
            properties,
        })
        .boxed()
}

pub fn auth() -> impl Strategy<Value = Auth> {
    let properties = (
        proptest::option::of(text(8)),
        proptest::option::of(binary(8)),
        proptest::option::of(text(8)),
        user_properties(),
    )
        .prop_map(|(method, data, reason, user)| AuthProperties {
            authentication_method: method,
            authentication_data: data,
            reason_string: reason,
            user_properties: user,
        });
    let properties = prop_oneof![Just(AuthProperties::default()), properties];
    (code(AUTH_CODES), properties).prop_map(|(reason_code, properties)| Auth {
        reason_code,
        properties,
    })
}

/// Any packet valid for `protocol`, of every type that version has.
pub fn packet(protocol: Protocol) -> BoxedStrategy<Packet> {
    let mut kinds = vec![
        connect(protocol)
            .prop_map(|c| Packet::Connect(Box::new(c)))
            .boxed(),
        connack(protocol)
            .prop_map(|c| Packet::ConnAck(Box::new(c)))
            .boxed(),
        publish(protocol).prop_map(Packet::Publish).boxed(),
        ack(protocol, PUBACK_CODES).prop_map(Packet::PubAck).boxed(),
        ack(protocol, PUBACK_CODES).prop_map(Packet::PubRec).boxed(),
        ack(protocol, PUBREL_CODES).prop_map(Packet::PubRel).boxed(),
        ack(protocol, PUBREL_CODES)
            .prop_map(Packet::PubComp)
            .boxed(),
        subscribe(protocol).prop_map(Packet::Subscribe).boxed(),
        suback(protocol).prop_map(Packet::SubAck).boxed(),
        unsubscribe(protocol).prop_map(Packet::Unsubscribe).boxed(),
        unsuback(protocol).prop_map(Packet::UnsubAck).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(protocol)
            .prop_map(|d| Packet::Disconnect(Box::new(d)))
            .boxed(),
    ];
    if protocol.is_v5() {
        kinds.push(auth().prop_map(|a| Packet::Auth(Box::new(a))).boxed());
    }
    proptest::strategy::Union::new(kinds).boxed()
}

/// A protocol version and a packet valid for it.
pub fn versioned_packet() -> impl Strategy<Value = (Protocol, Packet)> {
    protocol().prop_flat_map(|protocol| (Just(protocol), packet(protocol)))
}
