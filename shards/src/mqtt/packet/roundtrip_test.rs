//! Property tests: for arbitrary valid packets of every type and version, `decode` inverts
//! `encode`, consumes exactly the encoded bytes, waits (`Ok(None)`, buffer untouched) on
//! every strict prefix, and `encoded_len` / `publish_encoded_len` predict the bytes written.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::strategy_test::{self as strategy, SUBSCRIPTION_ID_MAX};
use crate::mqtt::{
    decode, encode_publish, publish_encoded_len, DecodeError, Packet, Protocol, PublishEncode,
};

/// Encodes `packet`, checking that `encoded_len` predicted the size.
fn encode(protocol: Protocol, packet: &Packet) -> BytesMut {
    let mut out = BytesMut::new();
    packet.encode(protocol, &mut out).unwrap();
    assert_eq!(out.len(), packet.encoded_len(protocol).unwrap());
    out
}

proptest! {
    #[test]
    fn decode_inverts_encode((protocol, packet) in strategy::versioned_packet()) {
        let encoded = encode(protocol, &packet);
        let size = encoded.len();
        // A following packet stays in the buffer, untouched.
        let mut buf = encoded.clone();
        buf.extend_from_slice(&[0xC0, 0x00]);
        let decoded = decode(&mut buf, Some(protocol), size).unwrap();
        prop_assert_eq!(decoded.as_ref(), Some(&packet));
        prop_assert_eq!(&buf[..], &[0xC0, 0x00]);
        // Decoding is stable: the decoded packet encodes to the same bytes.
        prop_assert_eq!(encode(protocol, &decoded.unwrap()), encoded.clone());
        // One byte under the packet's size is refused from the fixed header.
        let mut buf = encoded.clone();
        let refused = decode(&mut buf, Some(protocol), size - 1);
        prop_assert_eq!(refused, Err(DecodeError::TooLarge { size, limit: size - 1 }));
    }

    #[test]
    fn every_strict_prefix_waits((protocol, packet) in strategy::versioned_packet()) {
        let encoded = encode(protocol, &packet);
        for end in 0..encoded.len() {
            let mut prefix = BytesMut::from(&encoded[..end]);
            let capacity = prefix.capacity();
            prop_assert_eq!(decode(&mut prefix, Some(protocol), usize::MAX), Ok(None));
            prop_assert_eq!(&prefix[..], &encoded[..end]);
            prop_assert_eq!(prefix.capacity(), capacity);
        }
    }

    #[test]
    fn connect_decodes_before_the_protocol_is_known(
        connect in strategy::protocol().prop_flat_map(strategy::connect)
    ) {
        let packet = Packet::Connect(Box::new(connect));
        let mut buf = encode(Protocol::V311, &packet);
        prop_assert_eq!(decode(&mut buf, None, usize::MAX), Ok(Some(packet)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn encode_publish_writes_what_publish_encoded_len_says(
        protocol in strategy::protocol(),
        publish in strategy::protocol().prop_flat_map(strategy::publish),
        alias in proptest::option::of(1..=u16::MAX),
        expiry in proptest::option::of(any::<u32>()),
        ids in proptest::collection::vec(1..=SUBSCRIPTION_ID_MAX, 0..4),
        prefix in strategy::binary(4),
    ) {
        // The per-delivery fields replace the message's own.
        let mut p = publish.as_encode();
        p.topic_alias = alias;
        p.message_expiry_interval = expiry;
        p.subscription_identifiers = &ids;
        let expected = publish_encoded_len(protocol, &p);
        let mut out = BytesMut::from(&prefix[..]);
        let written = encode_publish(protocol, &p, &mut out);
        prop_assert_eq!(&written, &expected);
        let Ok(written) = written else {
            // Refused: only an empty topic without a usable alias can be refused here.
            prop_assert!(p.topic.is_empty());
            prop_assert_eq!(&out[..], &prefix[..]);
            return Ok(());
        };
        prop_assert_eq!(out.len(), prefix.len() + written);
        let mut buf = out.split_off(prefix.len());
        let Some(Packet::Publish(decoded)) = decode(&mut buf, Some(protocol), written).unwrap()
        else {
            return Err(TestCaseError::fail("not a PUBLISH"));
        };
        check_delivery(protocol, &p, &decoded);
    }
}

/// Checks that `decoded` carries what `p` asked to write for `protocol`.
fn check_delivery(protocol: Protocol, p: &PublishEncode<'_>, decoded: &crate::mqtt::Publish) {
    assert_eq!(decoded.topic.as_bytes(), p.topic);
    assert_eq!(decoded.payload, Bytes::copy_from_slice(p.payload));
    assert_eq!(
        (decoded.dup, decoded.qos, decoded.retain),
        (p.dup, p.qos, p.retain)
    );
    assert_eq!(decoded.packet_id, p.packet_id);
    if !protocol.is_v5() {
        assert_eq!(decoded.properties, Default::default());
        return;
    }
    let props = &decoded.properties;
    assert_eq!(props.topic_alias, p.topic_alias);
    assert_eq!(props.message_expiry_interval, p.message_expiry_interval);
    assert_eq!(props.subscription_identifiers, p.subscription_identifiers);
    assert_eq!(props.user_properties, p.properties.user_properties);
    assert_eq!(props.response_topic, p.properties.response_topic);
    assert_eq!(props.correlation_data, p.properties.correlation_data);
    assert_eq!(props.content_type, p.properties.content_type);
    assert_eq!(
        props.payload_format_indicator,
        p.properties.payload_format_indicator
    );
}

/// Remaining lengths on both sides of every variable-byte-integer boundary decode and
/// encode alike (payload sizes chosen so the remaining length is 127, 128, 16,383, 16,384).
#[test]
fn remaining_length_boundaries_round_trip() {
    for remaining in [127usize, 128, 16_383, 16_384, 2_097_152] {
        for protocol in [Protocol::V311, Protocol::V5] {
            // Topic "t" (3 bytes), QoS 0, plus an empty property block in 5.0.
            let overhead = 3 + usize::from(protocol.is_v5());
            let publish = crate::mqtt::Publish {
                topic: "t".into(),
                payload: Bytes::from(vec![0xA5; remaining - overhead]),
                ..Default::default()
            };
            let packet = Packet::Publish(publish);
            let encoded = encode(protocol, &packet);
            let header_len = encoded.len() - remaining;
            assert_eq!(header_len, 1 + super::varint_len(remaining));
            let mut buf = encoded.clone();
            assert_eq!(
                decode(&mut buf, Some(protocol), usize::MAX),
                Ok(Some(packet))
            );
        }
    }
}

/// One property of a PUBLISH as a client may write it.
#[derive(Clone, Debug)]
enum Item {
    PayloadFormat(u8),
    ContentType(String),
    ResponseTopic(String),
    Correlation(Vec<u8>),
    User(String, String),
    Expiry(u32),
    Alias(u16),
}

impl Item {
    fn wire(&self) -> Vec<u8> {
        let string = |out: &mut Vec<u8>, s: &[u8]| {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s);
        };
        let mut out = Vec::new();
        match self {
            Item::PayloadFormat(v) => out.extend_from_slice(&[0x01, *v]),
            Item::ContentType(s) => {
                out.push(0x03);
                string(&mut out, s.as_bytes());
            }
            Item::ResponseTopic(s) => {
                out.push(0x08);
                string(&mut out, s.as_bytes());
            }
            Item::Correlation(d) => {
                out.push(0x09);
                string(&mut out, d);
            }
            Item::User(k, v) => {
                out.push(0x26);
                string(&mut out, k.as_bytes());
                string(&mut out, v.as_bytes());
            }
            Item::Expiry(s) => {
                out.push(0x02);
                out.extend_from_slice(&s.to_be_bytes());
            }
            Item::Alias(a) => {
                out.push(0x23);
                out.extend_from_slice(&a.to_be_bytes());
            }
        }
        out
    }

    /// Forwarded to subscribers as written (everything but expiry and the alias).
    fn forwarded(&self) -> bool {
        !matches!(self, Item::Expiry(_) | Item::Alias(_))
    }
}

/// A client's PUBLISH properties in any order: each single-valued property at most once,
/// up to four user properties anywhere among them.
fn shuffled_items() -> impl Strategy<Value = Vec<Item>> {
    let word = "[a-z]{0,3}";
    let singles = (
        proptest::option::of(0u8..=1),
        proptest::option::of(word),
        proptest::option::of("[a-z]{1,3}"),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..3)),
        proptest::option::of(1u32..1000),
        proptest::option::of(1u16..=10),
    );
    let users = proptest::collection::vec((word, word), 0..4);
    (singles, users)
        .prop_map(|((pfi, ct, rt, cd, expiry, alias), users)| {
            let mut items: Vec<Item> = Vec::new();
            items.extend(pfi.map(Item::PayloadFormat));
            items.extend(ct.map(Item::ContentType));
            items.extend(rt.map(Item::ResponseTopic));
            items.extend(cd.map(Item::Correlation));
            items.extend(expiry.map(Item::Expiry));
            items.extend(alias.map(Item::Alias));
            items.extend(users.into_iter().map(|(k, v)| Item::User(k, v)));
            items
        })
        .prop_shuffle()
}

proptest! {
    /// A subscriber gets the publisher's forwarded properties in the order it wrote them,
    /// after the subscription identifiers and before the remaining message expiry, as
    /// Mosquitto sends them.
    #[test]
    fn forwarded_properties_keep_the_publishers_order(items in shuffled_items()) {
        let block: Vec<u8> = items.iter().flat_map(Item::wire).collect();
        let mut body = vec![0x00, 0x01, b't'];
        body.push(block.len() as u8);
        body.extend_from_slice(&block);
        body.extend_from_slice(b"pay");
        let mut frame = BytesMut::from(&[0x30, body.len() as u8][..]);
        frame.extend_from_slice(&body);
        let Some(Packet::Publish(publish)) = decode(&mut frame, Some(Protocol::V5), 1024).unwrap()
        else {
            panic!("a PUBLISH");
        };
        let sent = PublishEncode {
            topic_alias: None,
            message_expiry_interval: Some(7),
            subscription_identifiers: &[5],
            ..publish.as_encode()
        };
        let mut out = BytesMut::new();
        encode_publish(Protocol::V5, &sent, &mut out).unwrap();
        let mut expected: Vec<u8> = vec![0x0B, 5];
        expected.extend(items.iter().filter(|i| i.forwarded()).flat_map(Item::wire));
        expected.extend_from_slice(&[0x02, 0, 0, 0, 7]);
        let start = 2 + 3 + 1;
        prop_assert_eq!(&out[start..start + expected.len()], &expected[..]);
    }
}
