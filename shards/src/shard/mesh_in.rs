//! Messages from other shards that the shard state handles (deliveries, interest, retained
//! updates). Handoffs and control messages are the runtime's and never reach here.

use super::Shard;
use crate::mesh::ShardMsg;

impl Shard {
    /// Handles one mesh message. Returns it back if it is for the runtime.
    pub fn on_mesh(&mut self, msg: ShardMsg) -> Option<ShardMsg> {
        match msg {
            ShardMsg::Deliver(message) => {
                self.deliver_local(&message, None);
            }
            ShardMsg::DeliverShared { key, message } => self.deliver_shared_local(&key, &message),
            ShardMsg::Interest { source, change } => self.interest_changed(source, change),
            ShardMsg::RetainRequest { topic, message } => self.retain_as_owner(topic, message),
            ShardMsg::RetainApply { topic, message } => self.set_retained(&topic, message),
            ShardMsg::Kick(kicks) => self.kick(&kicks),
            ShardMsg::Barrier { source, barrier } => {
                self.mesh.send(source, ShardMsg::BarrierPassed { barrier });
            }
            ShardMsg::BarrierPassed { barrier } => self.barrier_passed(barrier),
            other @ (ShardMsg::Handoff(_) | ShardMsg::Control(_)) => return Some(other),
        }
        None
    }
}
