//! Delivery to the sessions of this shard: matching, per-subscriber QoS and flags, the
//! in-flight window, the queue, and encoding into the connection's outbound buffer.
//!
//! Called by `publish` (local matches), `mesh_in` (messages routed here by other shards),
//! `subscribe` (retained messages) and `acks`/`connect` (queue drain, redelivery).
//!
//! A message is passed by reference with a [`Route`] (what the matching subscriptions
//! decided for one subscriber); it is cloned (reference counts only) just when a QoS 1/2
//! delivery must be kept in the window or the queue. A QoS 0 delivery to a connected client
//! is encoded straight from the shared message into the connection's buffer.

use super::gate::hold_in;
use super::publish::ack;
use super::Shard;
use crate::access::{Action, Identity};
use crate::connection::{ConnId, Connection};
use crate::limits::{
    OUTBOUND_BYTES_SOFT_MAX, QUEUE_BACKLOG_HIGH, QUEUE_HOLD_MAX_MS, SLOW_CONSUMER_AFTER_MS,
};
use crate::message::{Delivery, Message, SubscriptionIds};
use crate::mqtt::{ByteStr, Packet, PacketId, PublishEncode, QoS};
use crate::state::store::SharedKey;
use crate::state::{Delta, InflightState, SessionDelta, SessionKey, Subscription};
use crate::stats::{bump, ShardStats};

/// What the subscriptions of one session decided for one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Route {
    /// QoS of the delivery.
    pub qos: QoS,
    /// Retain flag to send.
    pub retain: bool,
    /// Identifiers of the matching subscriptions.
    pub subscription_ids: SubscriptionIds,
}

impl Route {
    fn stored(self, message: &Message) -> Delivery {
        Delivery {
            message: message.clone(),
            qos: self.qos,
            retain: self.retain,
            subscription_ids: self.subscription_ids,
        }
    }
}

impl Shard {
    /// Delivers `message` to every local session with a matching plain subscription.
    ///
    /// Overlapping subscriptions of one session: a 3.1/3.1.1 session gets one copy at the
    /// highest matching QoS ([MQTT-3.3.5-1]); a 5.0 session gets one copy per matching
    /// subscription, each with that subscription's QoS and identifier, which 5.0 §3.3.4
    /// allows and Mosquitto does. `origin` is the publishing session, for No Local.
    /// Returns true when any subscription matched (No Local ones included).
    pub(super) fn deliver_local(&mut self, message: &Message, origin: Option<SessionKey>) -> bool {
        self.deliver_routed(message, origin).0
    }

    /// [`Shard::deliver_local`], also returning the mask of other shards that want the
    /// message (one route lookup for both).
    pub(super) fn deliver_routed(
        &mut self,
        message: &Message,
        origin: Option<SessionKey>,
    ) -> (bool, u64) {
        let mut matches = std::mem::take(&mut self.matches);
        let remote = self.route_of(&message.topic, &mut matches);
        let upgrade = self.settings.upgrade_outgoing_qos;
        let mut start = 0;
        while start < matches.len() {
            let key = matches[start].0;
            let end = start + matches[start..].iter().take_while(|m| m.0 == key).count();
            let from_self = origin == Some(key);
            let v5 = self.store.get(key).is_some_and(|s| s.protocol.is_v5());
            if v5 {
                for (_, _, sub) in &matches[start..end] {
                    if let Some(route) =
                        merge(message, std::slice::from_ref(sub), from_self, upgrade)
                    {
                        self.deliver_to_session(key, message, route);
                    }
                }
            } else if let Some(route) = merge(
                message,
                matches[start..end].iter().map(|m| &m.2),
                from_self,
                upgrade,
            ) {
                self.deliver_to_session(key, message, route);
            }
            start = end;
        }
        let any = !matches.is_empty();
        self.matches = matches;
        (any, remote)
    }

    /// Delivers to one member of the shared subscription `key` on this shard, preferring
    /// connected members, round robin.
    pub(super) fn deliver_shared_local(&mut self, key: &SharedKey, message: &Message) {
        let Some(group) = self.store.index.groups.get_mut(key) else {
            // The last local member left while the message was on its way.
            bump(&self.stats[usize::from(self.id)].publish_dropped, 1);
            return;
        };
        let count = group.members.len();
        let online = &self.online;
        let is_online = |k: SessionKey| online.get(k as usize).copied().flatten().is_some();
        let start = group.cursor % count.max(1);
        let pick = (0..count)
            .map(|step| (start + step) % count)
            .find(|&i| is_online(group.members[i].0))
            .unwrap_or(start);
        group.cursor = pick + 1;
        let (member, sub) = group.members[pick];
        let route = Route {
            qos: cap_qos(
                message.qos,
                sub.options.qos,
                self.settings.upgrade_outgoing_qos,
            ),
            retain: sub.options.retain_as_published && message.retain,
            subscription_ids: sub.identifier.into_iter().collect(),
        };
        self.deliver_to_session(member, message, route);
    }

    /// Sends, queues or drops one delivery of `message` to session `key`.
    pub(super) fn deliver_to_session(&mut self, key: SessionKey, message: &Message, route: Route) {
        if message.expired(self.now.unix_s) {
            return;
        }
        let Some(session) = self.store.get(key) else {
            return;
        };
        // The listener of the current connection (its ACL file, with per_listener_settings);
        // an offline session is checked against the first listener's rules.
        let topic = message.topic.as_str();
        let allowed = match self.conn_of(key).and_then(|id| self.conn(id)) {
            // A connection runs as its session's identity; its memo answers.
            Some(conn) => self.conn_allows(conn, Action::Receive, topic),
            None => {
                let who = Identity {
                    listener: 0,
                    client_id: session.client_id.as_str(),
                    username: session.username.as_deref(),
                };
                self.access.allows(Action::Receive, &who, topic)
            }
        };
        if !allowed {
            return;
        }
        match (self.conn_of(key), route.qos) {
            (Some(id), QoS::AtMostOnce) => self.send_qos0(id, message, &route),
            (Some(_), _) => self.send_or_queue(key, message, route),
            (None, QoS::AtMostOnce) if !self.settings.queue_qos0_messages => {}
            (None, _) => self.enqueue(key, route.stored(message)),
        }
    }

    fn send_qos0(&mut self, id: ConnId, message: &Message, route: &Route) {
        let now = self.now.unix_s;
        let stats = &self.stats[usize::from(self.id)];
        let Some(conn) = self.conns.get_mut(id.slot as usize).filter(|c| c.id == id) else {
            return;
        };
        if conn.out.len() >= OUTBOUND_BYTES_SOFT_MAX {
            bump(&stats.publish_dropped, 1);
            return;
        }
        match Outgoing::routed(message, route).encode(conn, None, false, now, None) {
            Some(_) => count_sent(stats, message),
            None => bump(&stats.publish_dropped, 1),
        }
    }

    /// QoS 1/2 to a connected session: into the window if it has room and nothing is
    /// queued ahead (order is kept), else into the queue.
    fn send_or_queue(&mut self, key: SessionKey, message: &Message, route: Route) {
        let Some(id) = self.conn_of(key) else { return };
        let Some(conn) = self.conns.get_mut(id.slot as usize).filter(|c| c.id == id) else {
            return;
        };
        let Some(session) = self.store.get(key) else {
            return;
        };
        let outbound = &session.outbound;
        let window = window_size(
            conn.client_receive_maximum,
            self.settings.max_inflight_messages,
        );
        let bytes_max = self.settings.max_inflight_bytes;
        let room = outbound.queue.is_empty()
            && outbound.inflight.len() < window
            && (bytes_max == 0 || outbound.inflight_bytes + message.payload.len() <= bytes_max);
        let packet_id = if room {
            outbound.next_packet_id()
        } else {
            None
        };
        let Some(packet_id) = packet_id else {
            self.enqueue(key, route.stored(message));
            return;
        };
        let stats = &self.stats[usize::from(self.id)];
        let hold = match route.qos {
            QoS::ExactlyOnce => hold_in(&mut self.gate, self.turn, 0),
            _ => None,
        };
        if Outgoing::routed(message, &route)
            .encode(conn, Some(packet_id), false, self.now.unix_s, hold)
            .is_none()
        {
            // Too large for this client: discarded as if delivered ([MQTT-3.1.2-25]).
            bump(&stats.publish_dropped, 1);
            return;
        }
        count_sent(stats, message);
        let delivery = route.stored(message);
        self.apply(Delta::Update {
            key,
            change: SessionDelta::Sent {
                packet_id,
                delivery,
            },
        });
    }

    /// Appends to the session's queue, or drops when `max_queued_*` is reached. A QoS 1/2
    /// delivery takes its packet identifier either way, as Mosquitto's do (one dropped at
    /// the limit has used it up).
    fn enqueue(&mut self, key: SessionKey, delivery: Delivery) {
        let Some(session) = self.store.get(key) else {
            return;
        };
        let outbound = &session.outbound;
        let count_max = self.settings.max_queued_messages;
        let bytes_max = self.settings.max_queued_bytes;
        let full = (count_max != 0 && outbound.queue.len() >= count_max)
            || (bytes_max != 0
                && outbound.queued_bytes + delivery.message.payload.len() > bytes_max);
        let packet_id = match delivery.qos {
            QoS::AtMostOnce => None,
            _ => match outbound.next_packet_id() {
                Some(packet_id) => Some(packet_id),
                // All 65,535 identifiers in flight: nothing can take one.
                None => {
                    bump(&self.my_stats().publish_dropped, 1);
                    return;
                }
            },
        };
        if full {
            bump(&self.my_stats().publish_dropped, 1);
            if let Some(packet_id) = packet_id {
                self.apply(Delta::Update {
                    key,
                    change: SessionDelta::PacketIdTaken { packet_id },
                });
            }
            return;
        }
        // Own copies: a queued message may wait long, it must not pin a read buffer.
        let delivery = Delivery {
            message: delivery.message.compact(),
            ..delivery
        };
        self.apply(Delta::Update {
            key,
            change: SessionDelta::Queued {
                packet_id,
                delivery,
            },
        });
        let queued = self.store.get(key).map_or(0, |s| s.outbound.queue.len());
        let (high, _) = queue_marks(self.settings.max_queued_messages);
        if queued >= high {
            let now_ms = self.now.mono_ms;
            if let Some(conn) = self.conn_of(key).and_then(|id| self.conn_mut(id)) {
                conn.hold_for_queue(now_ms);
            }
        }
    }

    /// Moves queued deliveries into the window while it has room (after an
    /// acknowledgement, or on reconnect), then updates the hold the queue may have on the
    /// shard's readers (see `Connection::queue_backlogged`).
    pub(super) fn drain_queue(&mut self, key: SessionKey) {
        let queued = |shard: &Self| shard.store.get(key).map_or(0, |s| s.outbound.queue.len());
        let before = queued(self);
        self.move_queue_to_window(key);
        let after = queued(self);
        let (_, low) = queue_marks(self.settings.max_queued_messages);
        let now_ms = self.now.mono_ms;
        let Some(conn) = self.conn_of(key).and_then(|id| self.conn_mut(id)) else {
            return;
        };
        if after <= low {
            conn.queue_stalled = false;
            conn.release_queue();
        } else if after < before {
            conn.queue_moved_ms = now_ms;
        }
    }

    /// Releases the hold of every queue that stood still for `SLOW_CONSUMER_AFTER_MS`
    /// (its client stopped acknowledging) or has held for `QUEUE_HOLD_MAX_MS` (it drains,
    /// but too slowly, e.g. a long backlog from offline time): one client must not stop
    /// the shard's other publishers for longer. Such a client holds nobody back again
    /// until its queue is down to the low mark. True when it released one and no hold is
    /// left (the flush queue then also says so: [`crate::connection::FlushQueue::take_unblocked`]).
    pub fn release_stalled_queues(&mut self) -> bool {
        let now_ms = self.now.mono_ms;
        let mut released = false;
        for (_, conn) in self.conns.iter_mut() {
            if conn.queue_backlogged
                && (now_ms.saturating_sub(conn.queue_moved_ms) >= SLOW_CONSUMER_AFTER_MS
                    || now_ms.saturating_sub(conn.queue_held_ms) >= QUEUE_HOLD_MAX_MS)
            {
                conn.queue_stalled = true;
                conn.release_queue();
                released = true;
            }
        }
        released && !self.flush.backlogged()
    }

    /// True when connection `id` has QoS 1/2 messages awaiting its acknowledgement: its
    /// socket is read even while the shard holds readers back, since only its
    /// acknowledgements can drain the queues that hold them.
    pub fn awaits_acks(&self, id: ConnId) -> bool {
        self.conn(id)
            .and_then(|conn| conn.session)
            .and_then(|key| self.store.get(key))
            .is_some_and(|session| !session.outbound.inflight.is_empty())
    }

    /// True while connection `id` should not be read: the shard is congested (a mesh ring
    /// is full, or a consumer of this shard is backlogged) and the client has nothing in
    /// flight to acknowledge.
    pub fn holds_back(&self, id: ConnId) -> bool {
        (self.mesh.congested() || self.flush.backlogged() || self.output.congested())
            && !self.awaits_acks(id)
    }

    fn move_queue_to_window(&mut self, key: SessionKey) {
        loop {
            let Some(id) = self.conn_of(key) else { return };
            let now = self.now.unix_s;
            let Some(conn) = self.conns.get_mut(id.slot as usize).filter(|c| c.id == id) else {
                return;
            };
            let Some(session) = self.store.get(key) else {
                return;
            };
            let outbound = &session.outbound;
            let Some(queued) = outbound.queue.front() else {
                return;
            };
            let front = &queued.delivery;
            let stats = &self.stats[usize::from(self.id)];
            let change = if front.message.expired(now) {
                SessionDelta::QueueFrontDropped
            } else if front.qos == QoS::AtMostOnce {
                if Outgoing::stored(front)
                    .encode(conn, None, false, now, None)
                    .is_some()
                {
                    count_sent(stats, &front.message);
                }
                SessionDelta::QueueFrontDropped
            } else {
                let window = window_size(
                    conn.client_receive_maximum,
                    self.settings.max_inflight_messages,
                );
                if outbound.inflight.len() >= window {
                    return;
                }
                let Some(packet_id) = outbound.dequeue_packet_id() else {
                    return;
                };
                let hold = match front.qos {
                    QoS::ExactlyOnce => hold_in(&mut self.gate, self.turn, 0),
                    _ => None,
                };
                if Outgoing::stored(front)
                    .encode(conn, Some(packet_id), false, now, hold)
                    .is_some()
                {
                    count_sent(stats, &front.message);
                    SessionDelta::Dequeued { packet_id }
                } else {
                    bump(&stats.publish_dropped, 1);
                    SessionDelta::QueueFrontDropped
                }
            };
            self.apply(Delta::Update { key, change });
        }
    }

    /// On reconnect with a session present: resend the window in order (PUBLISH with DUP,
    /// or PUBREL after PUBREC) ([MQTT-4.4.0-1]), then drain the queue.
    pub(super) fn resume_outbound(&mut self, key: SessionKey) {
        let Some(id) = self.conn_of(key) else { return };
        let now = self.now.unix_s;
        let Some(conn) = self.conns.get_mut(id.slot as usize).filter(|c| c.id == id) else {
            return;
        };
        let Some(session) = self.store.get(key) else {
            return;
        };
        // The exchange may still wait for its changes to be durable (a quick reconnect):
        // on a gated shard, QoS 2 resends wait too.
        for entry in &session.outbound.inflight {
            match (&entry.state, &entry.delivery) {
                (InflightState::AwaitPubComp, _) => {
                    let hold = hold_in(&mut self.gate, self.turn, 0);
                    conn.send_held(&Packet::PubRel(ack(entry.packet_id, 0)), hold)
                }
                (_, Some(delivery)) => {
                    let hold = match delivery.qos {
                        QoS::ExactlyOnce => hold_in(&mut self.gate, self.turn, 0),
                        _ => None,
                    };
                    let packet_id = Some(entry.packet_id);
                    let _ = Outgoing::stored(delivery).encode(conn, packet_id, true, now, hold);
                }
                (_, None) => {}
            }
        }
        self.drain_queue(key);
    }
}

/// Combines matching subscriptions of one session: highest QoS, retain as published if
/// any asks for it, every identifier. `from_self` drops No Local ones; `None` when nothing
/// is left.
fn merge<'a>(
    message: &Message,
    subscriptions: impl IntoIterator<Item = &'a Subscription>,
    from_self: bool,
    upgrade: bool,
) -> Option<Route> {
    let mut qos = None;
    let mut retain = false;
    let mut subscription_ids = SubscriptionIds::new();
    for sub in subscriptions {
        if from_self && sub.options.no_local {
            continue;
        }
        qos = qos.max(Some(sub.options.qos));
        retain |= sub.options.retain_as_published && message.retain;
        subscription_ids.extend(sub.identifier);
    }
    Some(Route {
        qos: cap_qos(message.qos, qos?, upgrade),
        retain,
        subscription_ids,
    })
}

/// The QoS a subscriber receives: the lower of the two, unless `upgrade_outgoing_qos`.
pub(super) fn cap_qos(published: QoS, granted: QoS, upgrade: bool) -> QoS {
    if upgrade {
        granted
    } else {
        published.min(granted)
    }
}

/// The window: the client's Receive Maximum and `max_inflight_messages` (0 = no limit).
fn window_size(client: u16, configured: u16) -> usize {
    let configured = if configured == 0 {
        u16::MAX
    } else {
        configured
    };
    usize::from(client.min(configured))
}

/// The queue lengths at which a connected client's queue starts (high) and stops (low)
/// holding the shard's readers back, for `max_queued_messages` (0 = no limit): the high
/// mark stays below the limit, so publishers are slowed before anything is dropped.
fn queue_marks(max_queued: usize) -> (usize, usize) {
    let high = match max_queued {
        0 => QUEUE_BACKLOG_HIGH,
        max => QUEUE_BACKLOG_HIGH.min(max / 2).max(1),
    };
    (high, high / 4)
}

/// One PUBLISH to write: a message and what one subscriber gets of it.
struct Outgoing<'a> {
    message: &'a Message,
    qos: QoS,
    retain: bool,
    subscription_ids: &'a [u32],
}

impl<'a> Outgoing<'a> {
    fn routed(message: &'a Message, route: &'a Route) -> Outgoing<'a> {
        Outgoing {
            message,
            qos: route.qos,
            retain: route.retain,
            subscription_ids: &route.subscription_ids,
        }
    }

    fn stored(delivery: &'a Delivery) -> Outgoing<'a> {
        Outgoing {
            message: &delivery.message,
            qos: delivery.qos,
            retain: delivery.retain,
            subscription_ids: &delivery.subscription_ids,
        }
    }

    /// Encodes into `conn`'s outbound buffer; `None` when too large for the client.
    /// `hold`: the gate's turn for a QoS 2 PUBLISH on a gated shard (`gate.rs`).
    fn encode(
        &self,
        conn: &mut Connection,
        packet_id: Option<PacketId>,
        dup: bool,
        now: u64,
        hold: Option<u64>,
    ) -> Option<usize> {
        let message = self.message;
        conn.send_publish(
            &PublishEncode {
                dup,
                qos: self.qos,
                retain: self.retain,
                topic: message.topic.as_bytes(),
                packet_id,
                topic_alias: None,
                message_expiry_interval: message.remaining_expiry(now),
                subscription_identifiers: self.subscription_ids,
                properties: &message.properties,
                payload: &message.payload,
            },
            hold,
        )
    }
}

fn count_sent(stats: &ShardStats, message: &Message) {
    bump(&stats.publish_sent, 1);
    bump(&stats.messages_sent, 1);
    bump(&stats.publish_bytes_sent, message.payload.len() as u64);
}

impl Shard {
    /// Fills `matches` with the local subscriptions matching `topic`, grouped by session in
    /// the index's order, and returns the mask of other shards interested in it — from the
    /// route cache when the subscriptions did not change since, else by walking the tries.
    pub(super) fn route_of(
        &mut self,
        topic: &ByteStr,
        matches: &mut Vec<super::route_cache::LocalMatch>,
    ) -> u64 {
        matches.clear();
        let generation = self.routes_generation;
        if let Some(remote) = self.routes.get(topic.as_bytes(), generation, matches) {
            return remote;
        }
        let mut position = 0u32;
        self.store
            .index
            .plain
            .for_each_match(topic.as_bytes(), |key, sub| {
                matches.push((*key, position, *sub));
                position += 1;
            });
        if matches.len() > 1 {
            // Group by session, keeping the index's order within a session.
            matches.sort_unstable_by_key(|(key, position, _)| (*key, *position));
        }
        let remote = if self.mesh.shards() > 1 {
            self.interest.shards_matching(topic.as_bytes()) & !(1u64 << self.id)
        } else {
            0
        };
        self.routes.insert(topic, generation, matches, remote);
        remote
    }
}
