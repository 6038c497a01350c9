//! Messages from other shards that the shard state handles (deliveries, interest, retained
//! updates, kicks, barriers): the whole of `ShardMsg`. Runtime messages (hand-offs,
//! commands) travel in `runtime::inbox` and never reach here.
//!
//! Also the interest epoch's reading side: before the runtime hands a shard the packets it
//! just read, [`Shard::catch_up_interest`] applies the interest other shards announced
//! since (draining the mesh, in order, from the reader's turn), so a publish read after a
//! subscription was taken on another core is routed with it.

use super::Shard;
use crate::limits::MESH_DRAIN_BUDGET;
use crate::mesh::{InterestWord, ShardMsg};

impl Shard {
    /// Handles one mesh message.
    pub fn on_mesh(&mut self, msg: ShardMsg) {
        match msg {
            ShardMsg::Deliver(batch) => {
                for message in &batch.messages {
                    self.deliver_local(message, None);
                }
            }
            ShardMsg::DeliverShared(shared) => self.deliver_shared_local(&shared.0, &shared.1),
            ShardMsg::Interest { source, change } => self.interest_changed(source, change),
            ShardMsg::RetainRequest(request) => self.retain_as_owner(*request),
            ShardMsg::RetainDone { token } => self.retain_done(token),
            ShardMsg::RetainApply(retained) => self.set_retained(&retained.0, retained.1),
            ShardMsg::Kick(kicks) => self.kick(&kicks),
            ShardMsg::Barrier { source, barrier } => {
                self.mesh.send(source, ShardMsg::BarrierPassed { barrier });
            }
            ShardMsg::BarrierPassed { barrier } => self.barrier_passed(barrier),
        }
    }

    /// Called by the runtime before it hands the shard a batch of packets it read, with the
    /// interest word it loaded ([`crate::mesh::Mesh::interest`]): when other shards
    /// announced interest since this one last caught up, drains the mesh first.
    #[inline]
    pub fn catch_up_interest(&mut self, word: InterestWord) {
        if word.epoch() != self.interest_seen {
            self.drain_for_interest(word.epoch());
        }
    }

    /// Drains every ring addressed to this shard, in order (the `Interest` messages and
    /// whatever precedes them from the same source), as the mesh task would: stopping
    /// while a consumer is backlogged (backpressure), and within the mesh task's budget.
    /// The epoch counts as caught up only when the rings were emptied.
    #[cold]
    fn drain_for_interest(&mut self, epoch: u64) {
        if self.flush.backlogged() {
            return;
        }
        let mesh = self.mesh.mesh_handle();
        let handled = mesh.drain(self.id, MESH_DRAIN_BUDGET, |msg| {
            self.on_mesh(msg);
            !self.flush.backlogged()
        });
        if handled < MESH_DRAIN_BUDGET && !self.flush.backlogged() {
            self.interest_seen = epoch;
        }
    }

    /// The mesh task drained every ring after reading `word`: the interest announced up
    /// to its epoch is applied.
    pub fn interest_caught_up(&mut self, word: InterestWord) {
        self.interest_seen = self.interest_seen.max(word.epoch());
    }

    /// Announces the `Interest` messages this shard just broadcast. Its own announcement
    /// needs no catching up when it was caught up before.
    pub(super) fn interest_announced(&mut self) {
        let before = self.mesh.interest_pushed();
        if before == self.interest_seen {
            self.interest_seen = before + 1;
        }
    }
}
