//! Messages from other shards that the shard state handles (deliveries, interest, retained
//! updates, kicks, barriers, durable barriers of `gate.rs`): the whole of `ShardMsg`.
//! Runtime messages (hand-offs, commands) travel in `runtime::inbox` and never reach here.

use super::Shard;
use crate::mesh::ShardMsg;

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
            ShardMsg::DurableBarrier { source, turn } => self.durable_barrier(source, turn),
            ShardMsg::DurableBarrierPassed { turn } => self.durable_barrier_passed(turn),
        }
    }
}
