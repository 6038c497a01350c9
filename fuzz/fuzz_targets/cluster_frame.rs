//! The cluster link's frames (replication's wire format: 32-byte header, rkyv archive), as
//! a node reads them from a peer, and what it then makes of a message (openraft requests,
//! entries, memberships). No panic on any input; a message that decodes encodes to a frame
//! that decodes to the same message.
//!
//! Input: byte 0 picks the form; even: the rest is the whole frame, read in one piece
//! (`decode`); odd: the rest is the body, with a valid header, read as header and body apart
//! (`decode_parts`), so that the archive checks are reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use replication::types::TypeConfig;
use replication::wire::{self, Msg, WAppendRequest, LINK_MAGIC, LINK_VERSION};
use shards::state::frame;

fuzz_target!(|data: &[u8]| {
    let [form, rest @ ..] = data else {
        return;
    };
    let decoded = if form % 2 == 0 {
        let _ = wire::body_len(rest);
        wire::decode(rest)
    } else {
        let header = frame::header(&LINK_MAGIC, LINK_VERSION, rest);
        wire::decode_parts(&header, rest)
    };
    let Ok(msg) = decoded else {
        return;
    };
    let again = wire::decode(&wire::encode(&msg));
    assert_eq!(
        again.ok().as_ref(),
        Some(&msg),
        "encode → decode changed the message"
    );
    match &msg {
        Msg::Append(request) => use_request(request),
        Msg::Snapshot { meta, .. } => {
            let _ = meta.membership.to_membership();
        }
        _ => {}
    }
});

/// What the follower does with an append request: openraft's request, each entry.
fn use_request(request: &WAppendRequest) {
    let _ = request.to_request::<TypeConfig>();
    for entry in &request.entries {
        let _ = entry.to_entry();
    }
}
