//! Records from outside cannot hurt a node: a damaged file or frame is refused whole, and a
//! valid record that does not fit the state is refused without changing it, never a panic.
//!
//! The records come from simulation runs (`super::Sim`), so they are the changes a real
//! broker emits, in every variant the clients provoke.

use super::node::{settings, Node};
use super::{through_the_wire, Sim};
use crate::shard::Now;
use crate::state::snapshot::{self, Snapshot};
use crate::state::{Decoded, Record};

/// The records a seed's run emitted (save + log of its last stretch, and more).
fn records_of(seed: u64, steps: usize) -> Vec<Record> {
    let mut sim = Sim::new(seed);
    for _ in 0..steps {
        sim.step().expect("a correct broker passes its own checks");
    }
    sim.history
}

#[test]
fn every_damaged_byte_and_every_truncation_of_a_file_is_refused() {
    for seed in 1..=4 {
        let records = records_of(seed, 120);
        assert!(!records.is_empty());
        let file = snapshot::encode(&Snapshot {
            saved_at: 1,
            records,
        });
        for at in 0..file.len() {
            let mut damaged = file.clone();
            damaged[at] ^= 1 << (at % 8);
            assert!(
                snapshot::decode(&damaged).is_err(),
                "seed {seed}: byte {at}"
            );
        }
        for len in 0..file.len() {
            assert!(
                snapshot::decode(&file[..len]).is_err(),
                "seed {seed}: {len} bytes"
            );
        }
    }
}

#[test]
fn records_out_of_order_are_refused_without_changing_anything() {
    for seed in 1..=30 {
        let mut records = records_of(seed, 200);
        // A follower that missed, repeated and reordered changes.
        let mut rng = super::rng::Rng::new(seed ^ 0xF00D);
        for _ in 0..records.len() / 3 {
            let a = rng.below(records.len());
            let b = rng.below(records.len());
            records.swap(a, b);
        }
        let now = Now {
            unix_s: 1_700_000_000,
            mono_ms: 1_000,
        };
        let mut node = Node::new(1 + rng.below(4), settings(), now);
        for record in records {
            let record = through_the_wire(&record).expect("a valid record travels");
            let Ok(decoded) = record.decode() else {
                continue;
            };
            let before = node.canonical();
            let target = match &decoded {
                Decoded::Session { client_id, .. } => usize::from(crate::placement::home_shard(
                    client_id.as_bytes(),
                    node.shards.len(),
                )),
                _ => 0,
            };
            if node.shards[target].apply_decoded(decoded).is_err() {
                assert_eq!(
                    node.canonical(),
                    before,
                    "seed {seed}: a refusal changed state"
                );
            }
            node.pump();
            node.shards[target]
                .store
                .check_invariants()
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
    }
}
