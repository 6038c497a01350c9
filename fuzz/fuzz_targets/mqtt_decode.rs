//! MQTT decode of every packet of 3.1, 3.1.1 and 5.0, as the connection state machine calls
//! it on socket bytes: no panic on any input, and whatever decodes re-encodes to bytes that
//! decode to the same packet and encode to the same bytes again (decode → encode → decode).
//!
//! Input: byte 0 picks the protocol the connection is at (none yet, 3.1, 3.1.1, 5.0) and
//! byte 1 the packet size limit; the rest is what the socket delivered.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shards::mqtt::{decode, Packet, Protocol};

fuzz_target!(|data: &[u8]| {
    let [selector, limit, rest @ ..] = data else {
        return;
    };
    let mut protocol = match selector & 3 {
        0 => None,
        1 => Some(Protocol::V31),
        2 => Some(Protocol::V311),
        _ => Some(Protocol::V5),
    };
    // Mostly no practical limit; sometimes a small one, so the size check is exercised.
    let limit = if limit & 0x80 == 0 {
        usize::MAX
    } else {
        usize::from(limit & 0x7F) * 4
    };
    let mut buf = BytesMut::from(rest);
    loop {
        let before = buf.clone();
        match decode(&mut buf, protocol, limit) {
            Ok(Some(packet)) => {
                let consumed = before.len() - buf.len();
                assert!(
                    consumed > 0 && consumed <= limit,
                    "consumed {consumed} of {limit}"
                );
                let level = match &packet {
                    Packet::Connect(connect) => connect.protocol,
                    _ => protocol.unwrap_or(Protocol::V311),
                };
                reencode(level, &packet);
                // The first CONNECT fixes the version of what follows, as in a connection.
                protocol = protocol.or(Some(level));
            }
            Ok(None) => {
                assert_eq!(&buf[..], &before[..], "Ok(None) changed the buffer");
                return;
            }
            Err(_) => return,
        }
    }
});

/// Anything the decoder accepted encodes (to the length `encoded_len` predicts), decodes
/// back to itself, and encodes to the same bytes again.
fn reencode(protocol: Protocol, packet: &Packet) {
    let mut first = BytesMut::new();
    if let Err(error) = packet.encode(protocol, &mut first) {
        panic!("a decoded packet does not encode: {error} ({packet:?})");
    }
    assert_eq!(
        packet.encoded_len(protocol).ok(),
        Some(first.len()),
        "encoded_len is wrong"
    );
    let bytes = first.clone();
    let again = decode(&mut first, Some(protocol), usize::MAX);
    assert_eq!(
        again.as_ref(),
        Ok(&Some(packet.clone())),
        "decode(encode(p)) != p"
    );
    assert!(first.is_empty(), "decode(encode(p)) left bytes over");
    let mut second = BytesMut::new();
    if let Some(Ok(())) = again
        .ok()
        .flatten()
        .map(|p| p.encode(protocol, &mut second))
    {
        assert_eq!(second, bytes, "encode(decode(encode(p))) != encode(p)");
    }
}
