//! Retained messages: this shard's copy, and the ordering protocol that keeps every copy
//! the same.
//!
//! Each topic has an owner shard (`home_shard(topic)`). A shard receiving a retained
//! publish applies it to its own copy at once (so its clients read their own writes) and
//! asks the owner; the owner applies it and broadcasts it to every other shard in the order
//! it applied it. Concurrent writes from different shards therefore settle on the owner's
//! order everywhere; the publisher's early application is overwritten by the owner's
//! broadcast if another write won.

use super::Shard;
use crate::mesh::ShardMsg;
use crate::message::Message;
use crate::mqtt::ByteStr;
use crate::stats::{bump, set};

impl Shard {
    /// Records `message` as the retained message of its topic (or clears it when the
    /// payload is empty, [MQTT-3.3.1-6]).
    pub(super) fn retain(&mut self, message: &Message) {
        let topic = message.topic.compact();
        let value = (!message.payload.is_empty()).then(|| {
            let mut stored = message.compact();
            stored.retain = true;
            stored
        });
        self.set_retained(&topic, value.clone());
        if self.mesh.shards() == 1 {
            return;
        }
        let owner = self.home_of(topic.as_bytes());
        if owner == self.id {
            self.mesh
                .broadcast(|| ShardMsg::RetainApply(Box::new((topic.clone(), value.clone()))));
        } else {
            self.mesh
                .send(owner, ShardMsg::RetainRequest(Box::new((topic, value))));
        }
    }

    /// As the owner: apply a retained update from another shard and broadcast it.
    pub(super) fn retain_as_owner(&mut self, topic: ByteStr, message: Option<Message>) {
        self.set_retained(&topic, message.clone());
        self.mesh
            .broadcast(|| ShardMsg::RetainApply(Box::new((topic.clone(), message.clone()))));
    }

    /// Changes this shard's copy.
    pub(super) fn set_retained(&mut self, topic: &ByteStr, message: Option<Message>) {
        if !topic.starts_with("$SYS/") {
            // The broker's own statistics are not the user's data changing.
            bump(&self.my_stats().durable_changes, 1);
        }
        match message {
            Some(message) => {
                self.retained.insert(topic.as_bytes(), message);
            }
            None => {
                self.retained.remove(topic.as_bytes());
            }
        }
        set(&self.my_stats().retained, self.retained.len() as u64);
    }
}
