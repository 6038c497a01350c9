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
use crate::mesh::{RetainRequest, ShardMsg};
use crate::message::Message;
use crate::mqtt::ByteStr;
use crate::stats::{bump, drop_by, set};

impl Shard {
    /// Records `message` as the retained message of its topic (or clears it when the
    /// payload is empty, [MQTT-3.3.1-6]).
    ///
    /// With `want_done`, returns a token when the owner is another shard: the owner answers
    /// `RetainDone` with it after broadcasting the update, and the publisher's
    /// acknowledgement waits for that. A client that got PUBACK for a retained message can
    /// then subscribe on any shard and find it (see `Shard::await_barrier`).
    pub(super) fn retain(&mut self, message: &Message, want_done: bool) -> Option<u64> {
        let topic = message.topic.compact();
        let value = (!message.payload.is_empty()).then(|| {
            let mut stored = message.compact();
            stored.retain = true;
            stored
        });
        self.set_retained(&topic, value.clone());
        if self.mesh.shards() == 1 {
            self.emit_retained(&topic, value.as_ref());
            return None;
        }
        let owner = self.home_of(topic.as_bytes());
        if owner == self.id {
            self.emit_retained(&topic, value.as_ref());
            self.mesh
                .broadcast(|| ShardMsg::RetainApply(Box::new((topic.clone(), value.clone()))));
            return None;
        }
        let token = want_done.then(|| {
            self.next_token += 1;
            self.next_token
        });
        let request = RetainRequest {
            topic,
            message: value,
            source: self.id,
            token,
        };
        self.mesh
            .send(owner, ShardMsg::RetainRequest(Box::new(request)));
        token
    }

    /// As the owner: apply a retained update from another shard, broadcast it, and tell the
    /// source it is done when it waits for that.
    pub(super) fn retain_as_owner(&mut self, request: RetainRequest) {
        let RetainRequest {
            topic,
            message,
            source,
            token,
        } = request;
        self.set_retained(&topic, message.clone());
        self.emit_retained(&topic, message.as_ref());
        self.mesh
            .broadcast(|| ShardMsg::RetainApply(Box::new((topic.clone(), message.clone()))));
        if let Some(token) = token {
            self.mesh.send(source, ShardMsg::RetainDone { token });
        }
    }

    /// The owner ordered a retained message this shard published: its acknowledgement goes
    /// out now.
    pub(super) fn retain_done(&mut self, token: u64) {
        let Some(index) = self.retained_acks.iter().position(|(t, _, _)| *t == token) else {
            return;
        };
        let (_, id, (ack, kind)) = self.retained_acks.swap_remove(index);
        self.send_ack_held(id, ack, kind, 0);
    }

    /// As the topic's owner: tells the consumer (replication) of a retained change, in the
    /// order this shard decided it. The broker's own `$SYS` values are not durable state.
    fn emit_retained(&mut self, topic: &ByteStr, message: Option<&Message>) {
        if self.output.attached() && !topic.starts_with("$SYS/") {
            self.output.emit(crate::state::port::Emission::Retained {
                topic: topic.clone(),
                message: message.cloned(),
            });
        }
    }

    /// Changes this shard's copy.
    pub(super) fn set_retained(&mut self, topic: &ByteStr, message: Option<Message>) {
        if !topic.starts_with("$SYS/") {
            // The broker's own statistics are not the user's data changing.
            bump(&self.my_stats().durable_changes, 1);
        }
        let added = message.as_ref().map_or(0, |m| m.payload.len());
        let replaced = match message {
            Some(message) => self.retained.insert(topic.as_bytes(), message),
            None => self.retained.remove(topic.as_bytes()),
        };
        let removed = replaced.map_or(0, |m| m.payload.len());
        let stats = self.my_stats();
        set(&stats.retained, self.retained.len() as u64);
        bump(&stats.retained_bytes, added as u64);
        drop_by(&stats.retained_bytes, removed as u64);
    }
}
