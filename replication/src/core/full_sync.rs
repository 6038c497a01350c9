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
use shards::shard::Replication as ShardMode;
use shards::state::port::{Emitted, OutputDrain, OutputRing};
use shards::state::snapshot::Snapshot;
use shards::state::Record;
use std::sync::Arc;
use std::task::{Poll, Waker};

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
    /// The drain loop, while it waits for an entry in flight to commit.
    slot_waker: Option<Waker>,
    /// What the shards were last told (`Control::Replicate`): `Some(true)` passive
    /// followers, `Some(false)` deciding on their own; `None` at start.
    passive: Option<bool>,
}

impl Replication {
    /// Replication over the shards' rings (empty: the node runs without them).
    pub(crate) fn new(rings: Vec<Arc<OutputRing>>) -> Replication {
        Replication {
            drain: OutputDrain::new(rings),
            leading: None,
            in_flight: 0,
            slot_waker: None,
            passive: None,
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

/// Tells every shard how its changes leave it and whether it decides wills and expiry.
/// Sent through the shards' inboxes, so it takes effect before anything the core sends
/// after it (the `Listen` that opens the client listeners, committed records).
fn set_shards(core: &mut super::Core, gated: bool, passive: bool) {
    core.replication.passive = Some(passive);
    for shard in 0..core.inboxes.shards() {
        let replication = match core.replication.drain.rings().get(shard) {
            Some(ring) if gated => ShardMode::Gated(ring.clone()),
            _ => ShardMode::Off,
        };
        let msg = RuntimeMsg::Control(Control::Replicate {
            replication,
            passive,
        });
        core.inboxes.send(shard as u8, msg);
    }
}

/// A Full Sync node that does not lead: its shards emit nothing and decide nothing on
/// their own (the leader's decisions arrive as committed records). Once per change.
pub(crate) fn follow(core: &Shared) {
    let mut guard = core.borrow_mut();
    if guard.replication.passive != Some(true) && guard.replication.leading.is_none() {
        set_shards(&mut guard, false, true);
    }
}

/// Not a Full Sync node (Dynamic-Security Sync, or the node left its cluster): the shards
/// emit nothing and decide on their own, as a standalone broker's.
pub(crate) fn standalone(core: &mut super::Core) {
    if core.replication.passive != Some(false) {
        set_shards(core, false, false);
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
        // The shards gate their acknowledgements, re-arm will delays from the committed
        // state and end the sessions of clients connected to the old leader, before the
        // listeners open (the `Listen` follows in their inboxes).
        set_shards(&mut guard, true, false);
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
    if let Some(waker) = guard.replication.slot_waker.take() {
        waker.wake();
    }
    let records = guard
        .member
        .as_ref()
        .and_then(|member| member.node.as_ref())
        .map(|node| node.machine.committed_records())
        .unwrap_or_default();
    // Acknowledgements still held were never committed: their connections are closed
    // (`Shard::replicate`), so the clients send again to the next leader.
    set_shards(&mut guard, false, true);
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
        // A slot first, then the batch: while every slot waits on its commit, the shards'
        // changes gather into the next (larger) entry.
        std::future::poll_fn(|cx| {
            let mut guard = core.borrow_mut();
            let replication = &mut guard.replication;
            if replication.in_flight < IN_FLIGHT_MAX || replication.leading != Some(term) {
                Poll::Ready(())
            } else {
                replication.slot_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        if core.borrow().replication.leading != Some(term) {
            continue;
        }
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
            if let Some(waker) = guard.replication.slot_waker.take() {
                waker.wake();
            }
            if !committed || guard.replication.leading != Some(term) {
                return;
            }
            for (shard, seq) in marks {
                if let Some(ring) = guard.replication.drain.rings().get(shard) {
                    ring.set_durable(seq);
                }
            }
        });
    }
}
