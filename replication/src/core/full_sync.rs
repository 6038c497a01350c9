//! Full Sync in the replication core: the shards' durable changes through Raft.
//!
//! On the leader, the shards apply every change eagerly and emit it on their output rings
//! (`shards::state::port`); [`drain_loop`] takes what they emitted, makes each batch one
//! log entry (a `Proposal` of records), proposes it (several batches in flight), and once
//! an entry is committed marks its changes durable on each shard's ring (the shards hold
//! acknowledgements until then). On a follower, committed records reach the shards in
//! log order ([`apply_committed`]), each on the shard its own placement picks.
//!
//! Leadership: a node starts draining ([`promote`]) once it leads and has applied every
//! committed entry, so its shards hold exactly the committed state; it stops ([`demote`])
//! the moment it does not lead, discarding what its shards applied eagerly and applying
//! the committed state again (the machine's copy, `committed.rs`). Called by the core's
//! tick and effects tasks.

use super::{Core, Shared, COMMIT_TIMEOUT};
use crate::proposal::Proposal;
use shards::runtime::{Control, Inboxes, RuntimeMsg};
use shards::state::port::{Emitted, OutputDrain, OutputRing};
use shards::state::snapshot::Snapshot;
use shards::state::Record;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

/// Changes taken from one ring per batch.
const TAKE_PER_SHARD: usize = 2048;

/// Entries proposed and not yet committed, at most.
const IN_FLIGHT_MAX: usize = 8;

/// The core's Full Sync state.
pub(crate) struct Replication {
    drain: OutputDrain,
    /// The term in which this node leads and proposes its shards' changes.
    pub(crate) leading: Option<u64>,
    in_flight: usize,
}

impl Replication {
    /// Replication over the shards' rings (empty: the node runs without them).
    pub(crate) fn new(rings: Vec<Arc<OutputRing>>) -> Replication {
        Replication {
            drain: OutputDrain::new(rings),
            leading: None,
            in_flight: 0,
        }
    }

    fn discard_pending(&self) {
        let mut scratch = Vec::new();
        for shard in 0..self.drain.rings().len() {
            while self.drain.take(shard, TAKE_PER_SHARD, &mut scratch) > 0 {
                scratch.clear();
            }
        }
    }
}

/// Sends `records` to the shards that hold them on this node: a session's to its home
/// shard, a retained message's to every shard (each holds a copy).
pub(crate) fn to_shards(inboxes: &Inboxes, records: Vec<Record>) {
    let shards = inboxes.shards();
    let snapshot = Snapshot {
        records,
        ..Snapshot::default()
    };
    for (shard, restore) in shards::persist::split(snapshot, shards)
        .into_iter()
        .enumerate()
    {
        if !restore.records.is_empty() {
            let msg = RuntimeMsg::Control(Control::ApplyRecords(restore.records));
            inboxes.send(shard as u8, msg);
        }
    }
}

/// Committed records of an entry of `term`: to the shards, unless this node proposed them
/// as that term's leader (its shards applied them before proposing).
pub(crate) fn apply_committed(core: &mut Core, term: u64, records: Vec<Record>) {
    if core.replication.leading == Some(term) {
        return;
    }
    to_shards(&core.inboxes, records);
}

/// A snapshot replaced the committed state: the shards discard theirs and take it.
pub(crate) fn install(core: &mut Core, records: Vec<Record>) {
    reset_shards(&core.inboxes);
    to_shards(&core.inboxes, records);
}

fn reset_shards(inboxes: &Inboxes) {
    for shard in 0..inboxes.shards() {
        inboxes.send(shard as u8, RuntimeMsg::Control(Control::ResetDurable));
    }
}

/// This node leads `term` with every committed entry applied: its shards' changes are
/// proposed from now on.
pub(crate) fn promote(core: &Shared, term: u64) {
    {
        let mut guard = core.borrow_mut();
        if guard.replication.leading == Some(term) {
            return;
        }
        // What the shards emitted before (changes of sessions on the admin listener, or
        // the reset of a former leadership) is not this term's to propose.
        guard.replication.discard_pending();
        guard.replication.leading = Some(term);
        guard.replication.in_flight = 0;
    }
    log::info!("HA: this node replicates its sessions (Full Sync leader, term {term}).");
}

/// This node stopped leading: what its shards applied eagerly is discarded, and the
/// committed state applied again.
pub(crate) fn demote(core: &Shared) {
    let mut guard = core.borrow_mut();
    let Some(term) = guard.replication.leading.take() else {
        return;
    };
    let records = guard
        .member
        .as_ref()
        .and_then(|member| member.node.as_ref())
        .map(|node| node.machine.committed_records())
        .unwrap_or_default();
    guard.replication.discard_pending();
    reset_shards(&guard.inboxes);
    to_shards(&guard.inboxes, records);
    log::info!(
        "HA: this node no longer leads (term {term}): its shards hold the committed state \
         again."
    );
}

/// For the node's lifetime: takes the shards' changes and, while this node leads, proposes
/// them (otherwise they are not the cluster's, and are dropped).
pub(crate) async fn drain_loop(core: Shared) {
    let mut emitted: Vec<Emitted> = Vec::with_capacity(TAKE_PER_SHARD);
    loop {
        let (Some(term), Some(raft)) = (core.borrow().replication.leading, super::raft(&core))
        else {
            core.borrow().replication.discard_pending();
            let parked = std::future::poll_fn(|cx| {
                if core.borrow().replication.drain.park(cx.waker()) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            let _ = monoio::time::timeout(super::lease::TICK, parked).await;
            continue;
        };
        let batch = {
            let guard = core.borrow();
            let drain = &guard.replication.drain;
            let mut records = Vec::new();
            let mut marks = Vec::new();
            for shard in 0..drain.rings().len() {
                emitted.clear();
                if drain.take(shard, TAKE_PER_SHARD, &mut emitted) == 0 {
                    continue;
                }
                records.extend(emitted.iter().map(|e| e.emission.to_record()));
                if let Some(last) = emitted.last() {
                    marks.push((shard, last.seq));
                }
            }
            (!records.is_empty()).then_some((records, marks))
        };
        let Some((records, marks)) = batch else {
            // Nothing emitted: park until a shard emits (bounded, to notice a change of
            // leadership).
            let parked = std::future::poll_fn(|cx| {
                let guard = core.borrow();
                if guard.replication.leading != Some(term)
                    || guard.replication.drain.park(cx.waker())
                {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            let _ = monoio::time::timeout(super::lease::TICK, parked).await;
            continue;
        };
        while core.borrow().replication.in_flight >= IN_FLIGHT_MAX
            && core.borrow().replication.leading == Some(term)
        {
            monoio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        if core.borrow().replication.leading != Some(term) {
            continue;
        }
        core.borrow_mut().replication.in_flight += 1;
        let proposal = Proposal {
            records,
            ..Proposal::default()
        };
        let core = core.clone();
        monoio::spawn(async move {
            let write = raft.client_write(proposal.encode());
            let committed = matches!(
                monoio::time::timeout(COMMIT_TIMEOUT, write).await,
                Ok(Ok(_))
            );
            let mut guard = core.borrow_mut();
            guard.replication.in_flight = guard.replication.in_flight.saturating_sub(1);
            if !committed || guard.replication.leading != Some(term) {
                return;
            }
            for (shard, seq) in marks {
                if let Some(ring) = guard.replication.drain.rings().get(shard) {
                    ring.durable.fetch_max(seq, Ordering::AcqRel);
                }
            }
        });
    }
}
