//! Inbound PUBLISH: the checks a client's message must pass, and the routing of an accepted
//! message to local sessions, other shards and shared subscriptions.
//!
//! This is the publish path. It allocates nothing per message (topic and payload stay
//! slices of the read buffer; scratch vectors are reused), takes no lock, and crosses to
//! another core only when that core has a matching subscription.

use super::{Flow, Shard};
use crate::access::Action;
use crate::connection::ConnId;
use crate::limits::SHARDS_MAX;
use crate::mesh::{ShardId, ShardMsg};
use crate::message::Message;
use crate::mqtt::{reason, Ack, AckProperties, Packet, PacketId, Publish, QoS};
use crate::packet_log::{publish_line, PublishFacts, PublishVerb};
use crate::state::{Delta, SessionDelta, SessionKey};
use crate::stats::bump;

impl Shard {
    pub(super) fn on_publish(&mut self, id: ConnId, mut publish: Publish) -> Flow {
        let Some(conn) = self.conns.get_mut(id.slot as usize).filter(|c| c.id == id) else {
            return Flow::Close;
        };
        let listener = &self.settings.listeners[conn.listener];
        let v5 = conn.protocol.is_v5();
        if let Some(alias) = publish.properties.topic_alias {
            if alias == 0 || alias > listener.max_topic_alias {
                return self.violate(
                    id,
                    reason::TOPIC_ALIAS_INVALID,
                    "used a topic alias out of range",
                );
            }
            let slot = usize::from(alias - 1);
            if publish.topic.is_empty() {
                match conn.topic_aliases.get(slot) {
                    Some(Some(topic)) => publish.topic = topic.clone(),
                    _ => {
                        return self.violate(
                            id,
                            reason::PROTOCOL_ERROR,
                            "used an undefined topic alias",
                        )
                    }
                }
            } else {
                if conn.topic_aliases.len() <= slot {
                    conn.topic_aliases.resize(slot + 1, None);
                }
                conn.topic_aliases[slot] = Some(publish.topic.compact());
            }
        }
        if !publish.properties.subscription_identifiers.is_empty() {
            return self.violate(
                id,
                reason::PROTOCOL_ERROR,
                "sent a subscription identifier in PUBLISH",
            );
        }
        if publish.qos as u8 > listener.max_qos {
            return self.violate(
                id,
                reason::QOS_NOT_SUPPORTED,
                "published above the maximum QoS",
            );
        }
        if publish.retain && !self.settings.retain_available {
            return self.violate(
                id,
                reason::RETAIN_NOT_SUPPORTED,
                "published a retained message",
            );
        }
        let Some(key) = conn.session else {
            return Flow::Close;
        };
        let packet_id = publish.packet_id;
        if let (QoS::ExactlyOnce, Some(packet_id)) = (publish.qos, packet_id) {
            let Some(session) = self.store.get(key) else {
                return Flow::Close;
            };
            if session.inbound_qos2.contains(&packet_id.get()) {
                // A resend of a message already delivered: acknowledge again, deliver once.
                if crate::packet_log::enabled() {
                    self.log_publish(id, PublishVerb::Received, &publish);
                }
                let pubrec = ack(packet_id, reason::SUCCESS);
                self.send_ack_held(id, pubrec, AckKind::PubRec, 0);
                return Flow::Continue;
            }
            let maximum = usize::from(self.settings.max_inflight_messages.max(1));
            if session.inbound_qos2.len() >= maximum {
                return self.violate(
                    id,
                    reason::RECEIVE_MAXIMUM_EXCEEDED,
                    "exceeded the receive maximum",
                );
            }
        }
        let stats = &self.stats[usize::from(self.id)];
        bump(&stats.publish_received, 1);
        bump(&stats.publish_bytes_received, publish.payload.len() as u64);
        let verdict = self.admit_publish(id, &publish);
        let qos = publish.qos;
        if verdict == reason::SUCCESS {
            // `$CONTROL/...` is never routed to subscribers nor retained; a handler may
            // take it, and it is acknowledged with Success either way (dynsec.md §3.2).
            let mut wait_for_owner = None;
            // Other shards whose changes the acknowledgement confirms (gated shards only).
            let mut remote = 0;
            let matched = if publish.topic.starts_with("$CONTROL/") {
                self.control_request(id, &publish);
                true
            } else {
                let message = self.message_from(id, publish);
                if message.retain {
                    let gated = self.gate.is_some();
                    wait_for_owner = self.retain(&message, packet_id.is_some() && !gated);
                    if gated && packet_id.is_some() {
                        // The owner's durable barrier (behind the request) stands for its
                        // `RetainDone`: it answers after it ordered and broadcast the update.
                        remote |= self.retained_owner_bit(&message.topic);
                    }
                }
                let (matched, targets) = self.route(message, Some(key));
                if packet_id.is_some() {
                    remote |= targets;
                }
                matched
            };
            let ack = self.acknowledge_publish(key, qos, packet_id, matched || !v5);
            match (ack, wait_for_owner) {
                (Some(ack), Some(token)) => self.retained_acks.push((token, id, ack)),
                (Some((ack, kind)), None) => self.send_ack_held(id, ack, kind, remote),
                (None, _) => {}
            }
        } else {
            self.refuse_publish(id, qos, packet_id, verdict);
        }
        Flow::Continue
    }

    /// Hands a control publish to the thread that owns its topic, if one does.
    fn control_request(&mut self, id: ConnId, publish: &Publish) {
        use crate::control::ControlTopic;
        let Some(port) = &self.control else { return };
        let topic = match ControlTopic::of(publish.topic.as_str()) {
            Some(ControlTopic::Ha) if !self.settings.control_api => return,
            Some(topic) => topic,
            None => return,
        };
        let Some(conn) = self.conn(id) else { return };
        let request = crate::control::ControlRequest {
            topic,
            payload: publish.payload.clone(),
            client_id: conn.client_id.clone(),
            username: conn.username.clone(),
            shard: self.id,
        };
        if port
            .send(crate::control::ServiceMsg::Request(request))
            .is_err()
        {
            log::error!("Error: the control service stopped; request dropped.");
        }
    }

    /// Payload size and ACL checks; returns the reason code to refuse with, or SUCCESS.
    fn admit_publish(&self, id: ConnId, publish: &Publish) -> u8 {
        let Some(conn) = self.conn(id) else {
            return reason::UNSPECIFIED_ERROR;
        };
        let limit = self.settings.message_size_limit;
        let verdict = if limit != 0 && publish.payload.len() > limit {
            // Mosquitto answers 0x95 (Packet too large), which is not a reason code PUBACK
            // or PUBREC may carry (§3.4.2.1): 5.0 clients may refuse it. 0x97 (Quota
            // exceeded: an administrative limit) is the valid code that says the same.
            // 3.1.1 acknowledgements carry no code; 0x95 keeps Mosquitto's log line.
            if conn.protocol.is_v5() {
                reason::QUOTA_EXCEEDED
            } else {
                reason::PACKET_TOO_LARGE
            }
        } else if !self.conn_allows(conn, Action::Publish, publish.topic.as_str()) {
            reason::NOT_AUTHORIZED
        } else {
            reason::SUCCESS
        };
        if crate::packet_log::enabled() {
            let verb = match verdict {
                reason::SUCCESS => PublishVerb::Received,
                reason::PACKET_TOO_LARGE | reason::QUOTA_EXCEEDED => PublishVerb::TooLarge,
                _ => PublishVerb::Denied,
            };
            self.log_publish(id, verb, publish);
        }
        verdict
    }

    /// Mosquitto's debug line for an inbound PUBLISH: received, denied or too large.
    #[cold]
    fn log_publish(&self, id: ConnId, verb: PublishVerb, publish: &Publish) {
        let Some(conn) = self.conn(id) else { return };
        let listener = &self.settings.listeners[conn.listener];
        let mount = listener.mount_point.as_deref().unwrap_or("");
        let facts = PublishFacts::received(publish, mount);
        log::debug!("{}", publish_line(verb, conn.client_id.as_str(), &facts));
    }

    fn message_from(&self, id: ConnId, publish: Publish) -> Message {
        let listener = self.conn(id).map_or(0, |c| c.listener);
        let mount_point = self.settings.listeners[listener].mount_point.as_deref();
        let mut properties = publish.properties;
        let expires_at = properties.existing_mut().and_then(|p| {
            p.topic_alias = None;
            p.message_expiry_interval
                .take()
                .map(|s| self.now.unix_s + u64::from(s))
        });
        Message {
            topic: super::mount(mount_point, publish.topic),
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
            expires_at,
        }
    }

    /// Acknowledges an accepted message. A 5.0 QoS 1 publish that matched no subscription
    /// gets 0x10 (No matching subscribers); QoS 2 always gets Success. That is exactly what
    /// Mosquitto 2.0 answers, so clients written against it see no difference.
    /// The acknowledgement an accepted QoS 1/2 message gets (the caller sends it now, or
    /// once the retained store's owner ordered the message).
    fn acknowledge_publish(
        &mut self,
        key: SessionKey,
        qos: QoS,
        packet_id: Option<PacketId>,
        matched_or_v3: bool,
    ) -> Option<(Ack, AckKind)> {
        let packet_id = packet_id?;
        let code = if qos == QoS::AtLeastOnce && !matched_or_v3 {
            reason::NO_MATCHING_SUBSCRIBERS
        } else {
            reason::SUCCESS
        };
        if qos == QoS::ExactlyOnce {
            self.apply(Delta::Update {
                key,
                change: SessionDelta::InboundQos2Received { packet_id },
            });
            Some((ack(packet_id, code), AckKind::PubRec))
        } else {
            Some((ack(packet_id, code), AckKind::PubAck))
        }
    }

    /// Answers a refused message: 5.0 clients get the reason, 3.1.1 clients a plain
    /// acknowledgement (they have no way to hear a refusal; Mosquitto does the same: the
    /// encoder leaves the reason code out for them).
    fn refuse_publish(&mut self, id: ConnId, qos: QoS, packet_id: Option<PacketId>, code: u8) {
        bump(&self.my_stats().publish_dropped, 1);
        let Some(packet_id) = packet_id else { return };
        // A 3.1.1 acknowledgement carries no reason code on the wire; it is kept for the
        // debug line, which names it as Mosquitto's does.
        let kind = if qos == QoS::ExactlyOnce {
            AckKind::PubRec
        } else {
            AckKind::PubAck
        };
        self.send_ack(id, ack(packet_id, code), kind);
    }

    /// Sends an acknowledgement that confirms nothing durable (a refusal).
    pub(super) fn send_ack(&mut self, id: ConnId, ack: Ack, kind: AckKind) {
        self.send_ack_as(id, ack, kind, None);
    }

    /// Sends an acknowledgement of changes: on a gated shard it waits until they are
    /// durable here and on the shards of `remote` (bits) (`gate.rs`).
    pub(super) fn send_ack_held(&mut self, id: ConnId, ack: Ack, kind: AckKind, remote: u64) {
        let hold = self.hold(remote);
        self.send_ack_as(id, ack, kind, hold);
    }

    fn send_ack_as(&mut self, id: ConnId, ack: Ack, kind: AckKind, hold: Option<u64>) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let packet = match kind {
            AckKind::PubAck => Packet::PubAck(ack),
            AckKind::PubRec => Packet::PubRec(ack),
            AckKind::PubRel => Packet::PubRel(ack),
            AckKind::PubComp => Packet::PubComp(ack),
        };
        conn.send_held(&packet, hold);
    }

    /// The bit of the shard that orders `topic`'s retained message, when that is another.
    fn retained_owner_bit(&self, topic: &crate::mqtt::ByteStr) -> u64 {
        if self.mesh.shards() == 1 {
            return 0;
        }
        let owner = self.home_of(topic.as_bytes());
        if owner == self.id {
            0
        } else {
            1u64 << owner
        }
    }

    /// Publishes an accepted message: updates the retained store if needed and routes it.
    /// Returns true when at least one subscription (here or on another shard) matched.
    pub fn publish_message(&mut self, message: Message, origin: Option<SessionKey>) -> bool {
        if message.retain {
            self.retain(&message, false);
        }
        self.route(message, origin).0
    }

    /// Delivers `message` to every matching subscription in the broker. Returns whether
    /// one matched, and the other shards it was sent to (bits).
    pub(super) fn route(&mut self, message: Message, origin: Option<SessionKey>) -> (bool, u64) {
        let (mut matched, mask) = self.deliver_routed(&message, origin);
        matched |= mask != 0;
        let mut targets = mask;
        if !self.shared_interest.shards.is_empty() {
            let (shared, shared_targets) = self.route_shared(&message);
            matched |= shared;
            targets |= shared_targets;
        }
        // The last target takes the message itself (no extra reference count).
        let last = shard_bits(mask).last();
        for target in shard_bits(mask) {
            if Some(target) == last {
                self.mesh.deliver_owned(target, message);
                break;
            }
            self.mesh.deliver(target, &message);
        }
        (matched, targets)
    }

    /// Sends `message` to one member of each matching shared subscription: a shard is
    /// chosen round robin among those with members, then a member there. Returns whether
    /// one matched, and the other shards it was sent to.
    fn route_shared(&mut self, message: &Message) -> (bool, u64) {
        let mut keys = std::mem::take(&mut self.shared_matches);
        keys.clear();
        self.shared_interest
            .trie
            .for_each_match(message.topic.as_bytes(), |key, ()| keys.push(key.clone()));
        let matched = !keys.is_empty();
        let mut targets = 0;
        for key in keys.drain(..) {
            let Some(entry) = self.shared_interest.shards.get_mut(&key) else {
                continue;
            };
            let Some(target) = next_shard(&entry.members, &mut entry.cursor) else {
                continue;
            };
            if target == self.id {
                self.deliver_shared_local(&key, message);
            } else {
                targets |= 1u64 << target;
                self.mesh.send(
                    target,
                    ShardMsg::DeliverShared(Box::new((key, message.clone()))),
                );
            }
        }
        self.shared_matches = keys;
        (matched, targets)
    }
}

/// Which acknowledgement to send (the variants are MQTT's packet names).
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AckKind {
    PubAck,
    PubRec,
    PubRel,
    PubComp,
}

/// An acknowledgement with a reason code and no properties.
pub(super) fn ack(packet_id: PacketId, reason_code: u8) -> Ack {
    Ack {
        packet_id,
        reason_code,
        properties: AckProperties::default(),
    }
}

/// The shards whose bits are set in `mask`, lowest first.
pub(super) fn shard_bits(mut mask: u64) -> impl Iterator<Item = ShardId> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let bit = mask.trailing_zeros();
        mask &= mask - 1;
        Some(bit as ShardId)
    })
}

/// Round robin over shards that have members.
fn next_shard(members: &[u32], cursor: &mut usize) -> Option<ShardId> {
    let count = members.len().min(SHARDS_MAX);
    for step in 0..count {
        let candidate = (*cursor + step) % count;
        if members[candidate] > 0 {
            *cursor = candidate + 1;
            return Some(candidate as ShardId);
        }
    }
    None
}
