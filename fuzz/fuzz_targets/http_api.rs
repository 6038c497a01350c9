//! The HTTP endpoint of the `http_api` listener (`/metrics`, `/healthz`, `/readyz`): the
//! request head as a client sends it. No panic on any input; a complete or oversized
//! request always gets an HTTP/1.1 answer.
//!
//! Input: the request bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shards::http::{respond, View, REQUEST_MAX};

fuzz_target!(|data: &[u8]| {
    let view = View {
        stats: &[],
        listeners: &[],
        uptime_s: 42,
        ready: data.first().is_some_and(|b| b & 1 == 0),
        version: "culex version fuzz",
        cluster: None,
    };
    match respond(data, &view) {
        Some(answer) => assert!(answer.starts_with(b"HTTP/1.1 "), "not an HTTP answer"),
        None => assert!(
            data.len() < REQUEST_MAX,
            "an oversized request got no answer"
        ),
    }
});
