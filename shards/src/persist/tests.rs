//! The state file: current layout round trips, the version-1 layout still loads, and a
//! damaged file is refused whole.

use super::{decode, split, verify, LoadError};
use crate::mqtt::QoS;
use crate::state::snapshot::{self, Snapshot};
use crate::state::{Decoded, SessionStore};

/// A state file written by Culex 0.1 (format version 1), with: `keeper` (3.1.1, clean
/// session false, `fix/#` QoS 1) and `keeper5` (5.0, expiry 3600, `fix/+/x` QoS 2), both
/// offline; a retained `fix/r` published with a user property and a content type; then
/// `fix/a` QoS 1, `fix/b/x` QoS 2, `fix/a` QoS 1 queued for them.
const VERSION_1_FILE: &[u8] = include_bytes!("fixtures/culex-0.1-state.db");

fn stores(snapshot: Snapshot) -> SessionStore {
    let mut store = SessionStore::default();
    for restore in split(snapshot, 1) {
        for record in restore.records {
            if let Ok(Decoded::Session { client_id, change }) = record.decode() {
                store.apply_named(client_id, change).expect("fits");
            }
        }
    }
    store
}

#[test]
fn a_version_1_file_loads_with_its_sessions_queues_and_retained_messages() {
    let snapshot = decode(VERSION_1_FILE).expect("version 1 loads");
    verify(&split(snapshot.clone(), 2)).expect("its records fit together");
    let store = stores(snapshot.clone());
    let keeper = store
        .get(store.key_of("keeper").expect("keeper"))
        .expect("session");
    let queued: Vec<(Option<u16>, &[u8])> = keeper
        .outbound
        .queue
        .iter()
        .map(|q| {
            (
                q.packet_id.map(|p| p.get()),
                &q.delivery.message.payload[..],
            )
        })
        .collect();
    assert_eq!(
        queued,
        vec![
            (Some(1), &b"retained-1"[..]),
            (Some(2), b"queued-1"),
            (Some(3), b"queued-2"),
            (Some(4), b"queued-3")
        ],
        "version 1 queued messages take their packet ids in order"
    );
    assert_eq!(keeper.outbound.last_packet_id, 4);
    assert!(keeper.disconnected_at.is_some());
    let keeper5 = store
        .get(store.key_of("keeper5").expect("keeper5"))
        .expect("session");
    assert_eq!(keeper5.expiry_interval, 3600);
    assert_eq!(keeper5.outbound.queue.len(), 1);
    assert_eq!(keeper5.outbound.queue[0].delivery.qos, QoS::ExactlyOnce);
    let retained: Vec<_> = snapshot
        .records
        .into_iter()
        .filter_map(|record| match record.decode() {
            Ok(Decoded::Retained { topic, message }) if !topic.starts_with("$SYS/") => message,
            _ => None,
        })
        .collect();
    assert_eq!(retained.len(), 1);
    let properties = &retained[0].properties;
    assert_eq!(properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        properties.user_properties.iter().collect::<Vec<_>>(),
        vec![("k", "v")]
    );
}

#[test]
fn the_current_layout_round_trips_and_every_damaged_byte_is_refused() {
    let old = decode(VERSION_1_FILE).expect("version 1 loads");
    let file = snapshot::encode(&old);
    assert_eq!(decode(&file).expect("current layout loads"), old);
    for at in 0..file.len() {
        let mut damaged = file.clone();
        damaged[at] ^= 0x5A;
        assert!(decode(&damaged).is_err(), "byte {at} damaged and accepted");
    }
    for len in 0..file.len() {
        assert!(
            decode(&file[..len]).is_err(),
            "truncated to {len} and accepted"
        );
    }
}

#[test]
fn records_that_do_not_fit_together_refuse_the_file() {
    let mut snapshot = decode(VERSION_1_FILE).expect("version 1 loads");
    // The same sessions twice: the second `Created` finds the session there.
    let again = snapshot.records.clone();
    snapshot.records.extend(again);
    let refused = verify(&split(snapshot, 1));
    assert!(matches!(refused, Err(LoadError::Apply(_))), "{refused:?}");
}
