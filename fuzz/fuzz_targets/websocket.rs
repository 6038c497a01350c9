//! WebSocket listeners (`protocol websockets`): the upgrade request, then frames (masking,
//! fragmentation, ping, close), fed in pieces as a socket delivers them. No panic on any
//! input; MQTT bytes only come out of an open connection, never more than went in.
//!
//! Input: byte 0 picks the listener (bit 0: serves files from `http_dir`; bit 1: an
//! `websockets_origin` list) and byte 1 where the bytes are cut in two reads; the rest is
//! what the client sent.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shards::transport::websocket::WebSocket;

fuzz_target!(|data: &[u8]| {
    let [listener, cut, input @ ..] = data else {
        return;
    };
    let origins = if listener & 2 == 0 {
        Vec::new()
    } else {
        vec!["http://example.com".to_string()]
    };
    let mut ws = WebSocket::new(origins, 4096);
    if listener & 1 == 1 {
        ws = ws.serving_files();
    }
    let cut = usize::from(*cut).min(input.len());
    let mut mqtt = BytesMut::new();
    let mut reply = BytesMut::new();
    for piece in [&input[..cut], &input[cut..]] {
        if ws.ingest(piece, &mut mqtt, &mut reply).is_err() {
            break;
        }
    }
    assert!(mqtt.len() <= input.len(), "more MQTT bytes than input");
    // MQTT bytes come only from frames, after the upgrade was answered (the connection may
    // have been closed again since, by a close frame or a protocol error).
    let upgraded = reply.starts_with(b"HTTP/1.1 101 ");
    assert!(mqtt.is_empty() || upgraded, "MQTT bytes without an upgrade");
    let mut out = BytesMut::new();
    ws.wrap(&mqtt, &mut out);
    ws.close(1000, &mut out);
});
