//! Robustness: `decode` never panics, on arbitrary bytes and on mutated valid encodings
//! (bit flips, truncation, insertions, overwrites), for any protocol argument and limit.
//! Whatever it returns keeps its contract: `Ok(None)` leaves the buffer as it was and
//! reserves nothing, `Ok(Some)` consumed at most the limit and re-encodes to a packet that
//! decodes to itself.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;

use super::strategy_test as strategy;
use crate::mqtt::{decode, Packet, Protocol};

/// Decodes packets from `bytes` until the buffer waits or fails, checking the contract of
/// every outcome.
fn decode_all(bytes: &[u8], protocol: Option<Protocol>, limit: usize) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::from(bytes);
    let mut protocol = protocol;
    loop {
        let before = buf.clone();
        let capacity = buf.capacity();
        match decode(&mut buf, protocol, limit) {
            Ok(Some(packet)) => {
                let consumed = before.len() - buf.len();
                prop_assert!(consumed > 0);
                prop_assert!(consumed <= limit);
                let level = match &packet {
                    Packet::Connect(connect) => connect.protocol,
                    _ => protocol.unwrap_or(Protocol::V311),
                };
                check_reencodes(level, &packet)?;
                // The first CONNECT fixes the version of what follows, as in a connection.
                protocol = protocol.or(Some(level));
            }
            Ok(None) => {
                prop_assert_eq!(&buf[..], &before[..]);
                prop_assert_eq!(buf.capacity(), capacity);
                return Ok(());
            }
            Err(_) => return Ok(()),
        }
    }
}

/// Anything the decoder accepted can be encoded, and decodes back to itself.
fn check_reencodes(protocol: Protocol, packet: &Packet) -> Result<(), TestCaseError> {
    let mut out = BytesMut::new();
    packet
        .encode(protocol, &mut out)
        .map_err(|e| TestCaseError::fail(format!("{e}")))?;
    let again = decode(&mut out, Some(protocol), usize::MAX);
    prop_assert_eq!(again, Ok(Some(packet.clone())));
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Overwrite(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(i, bit)| Mutation::FlipBit(i, bit)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Overwrite(i, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match *mutation {
        Mutation::FlipBit(i, bit) => bytes[i % len] ^= 1 << bit,
        Mutation::Truncate(i) => bytes.truncate(i % len),
        Mutation::Insert(i, byte) => bytes.insert(i % (len + 1), byte),
        Mutation::Overwrite(i, byte) => bytes[i % len] = byte,
    }
}

fn protocol_argument() -> impl Strategy<Value = Option<Protocol>> {
    proptest::option::of(strategy::protocol())
}

fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![Just(usize::MAX), 0..700usize]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..600),
        protocol in protocol_argument(),
        limit in limit(),
    ) {
        decode_all(&bytes, protocol, limit)?;
    }

    #[test]
    fn arbitrary_bodies_behind_valid_headers_never_panic(
        first in any::<u8>(),
        body in vec(any::<u8>(), 0..200),
        protocol in protocol_argument(),
    ) {
        // A plausible fixed header makes the body reach the packet decoders.
        let mut bytes = vec![first, body.len() as u8 & 0x7F];
        bytes.extend_from_slice(&body[..body.len().min(127)]);
        decode_all(&bytes, protocol, usize::MAX)?;
    }

    #[test]
    fn mutated_encodings_never_panic(
        (protocol, packets) in strategy::protocol().prop_flat_map(|protocol| {
            (Just(protocol), vec(strategy::packet(protocol), 1..4))
        }),
        mutations in vec(mutation(), 1..4),
        announce in any::<bool>(),
        limit in limit(),
    ) {
        let mut bytes = Vec::new();
        for packet in &packets {
            let mut out = BytesMut::new();
            packet.encode(protocol, &mut out).unwrap();
            bytes.extend_from_slice(&out);
        }
        for mutation in &mutations {
            apply(&mut bytes, mutation);
        }
        let argument = if announce { Some(protocol) } else { None };
        decode_all(&bytes, argument, limit)?;
    }
}
