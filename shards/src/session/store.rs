//! `SessionStore`: the sessions of one shard, the subscription index derived from them, and
//! [`SessionStore::apply`], the single function that changes durable session state.
//!
//! Called by the shard's protocol code (`shard::*`) with deltas it decided on, by `persist`
//! when a snapshot is restored (as a stream of deltas), and later by the replication apply
//! path on followers.

use super::delta::{Delta, SessionDelta};
use super::outbound::{Inflight, InflightState};
use super::{Session, SessionKey, Subscription};
use crate::mqtt::{ByteStr, QoS};
use crate::topics::{parse_subscription, Subscription as ParsedFilter, SubscriptionTrie};
use rustc_hash::FxHashMap;
use slab::Slab;
use smallvec::SmallVec;

/// A shared subscription's identity: (share name, topic filter) ([MQTT-4.8.2]).
pub type SharedKey = (ByteStr, ByteStr);

/// The members on this shard of one shared subscription.
#[derive(Clone, Debug, Default)]
pub struct SharedGroup {
    /// Sessions subscribed through this share, with their options.
    pub members: Vec<(SessionKey, Subscription)>,
    /// Round-robin position of the next delivery.
    pub cursor: usize,
}

/// Which subscriptions of this shard match a topic. Placement: one per shard, covering only
/// the sessions that live on it; other shards learn only *that* this shard is interested
/// (see [`InterestChange`]).
#[derive(Default)]
pub struct SubscriptionIndex {
    /// Plain subscriptions: filter → (session, options).
    pub plain: SubscriptionTrie<SessionKey, Subscription>,
    /// Local subscriber count per plain filter, to report 0 ↔ 1 transitions.
    plain_counts: FxHashMap<ByteStr, u32>,
    /// Shared subscriptions: filter → share key (the members are in `groups`).
    pub shared: SubscriptionTrie<SharedKey, ()>,
    /// Members per shared subscription.
    pub groups: FxHashMap<SharedKey, SharedGroup>,
}

/// A change in what this shard subscribes to, which every other shard must learn so it
/// routes matching publishes here. Produced by `apply`, broadcast by the shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterestChange {
    /// The first local subscriber of a plain filter appeared (`added`) or the last one left.
    Plain {
        /// Filter (after mount point).
        filter: ByteStr,
        /// True for 0 → 1, false for 1 → 0.
        added: bool,
    },
    /// A local member joined or left a shared subscription.
    Shared {
        /// The shared subscription.
        key: SharedKey,
        /// True for join, false for leave.
        added: bool,
    },
}

/// What `apply` did besides mutating: the created key and interest changes to broadcast.
#[derive(Debug, Default)]
pub struct Applied {
    /// Key of a session created by `Delta::Create`.
    pub created: Option<SessionKey>,
    /// Interest changes, in order.
    pub interest: SmallVec<[InterestChange; 1]>,
}

/// All sessions of one shard.
#[derive(Default)]
pub struct SessionStore {
    sessions: Slab<Session>,
    by_client_id: FxHashMap<ByteStr, SessionKey>,
    /// The subscription index, derived from the sessions' subscriptions.
    pub index: SubscriptionIndex,
}

impl SessionStore {
    /// The session with `client_id`, if any.
    pub fn key_of(&self, client_id: &str) -> Option<SessionKey> {
        self.by_client_id.get(client_id.as_bytes()).copied()
    }

    /// The session `key`.
    pub fn get(&self, key: SessionKey) -> Option<&Session> {
        self.sessions.get(key as usize)
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// All sessions with their keys.
    pub fn iter(&self) -> impl Iterator<Item = (SessionKey, &Session)> {
        self.sessions
            .iter()
            .map(|(key, session)| (key as SessionKey, session))
    }

    /// Applies one delta. Panics if `Update` names a session that does not exist or a
    /// packet id the window does not hold: the protocol code checked both before deciding,
    /// so either would be a bug in this shard, not bad input.
    pub fn apply(&mut self, delta: Delta) -> Applied {
        let mut applied = Applied::default();
        match delta {
            Delta::Create {
                client_id,
                protocol,
                expiry_interval,
                username,
            } => {
                assert!(
                    !self.by_client_id.contains_key(&client_id),
                    "session exists"
                );
                let mut session = Session::new(client_id.clone(), protocol, expiry_interval);
                session.username = username;
                let key = self.sessions.insert(session) as SessionKey;
                self.by_client_id.insert(client_id, key);
                applied.created = Some(key);
            }
            Delta::Update { key, change } => self.update(key, change, &mut applied),
        }
        applied
    }

    fn update(&mut self, key: SessionKey, change: SessionDelta, applied: &mut Applied) {
        if let SessionDelta::Ended = change {
            self.end(key, applied);
            return;
        }
        if let SessionDelta::Subscribed {
            filter,
            subscription,
        } = change
        {
            self.subscribe(key, filter, subscription, applied);
            return;
        }
        if let SessionDelta::Unsubscribed { filter } = change {
            self.unsubscribe(key, &filter, applied);
            return;
        }
        let session = self.sessions.get_mut(key as usize);
        let Some(session) = session else {
            panic!("delta for unknown session {key}");
        };
        apply_to_session(session, change);
    }

    fn subscribe(
        &mut self,
        key: SessionKey,
        filter: ByteStr,
        subscription: Subscription,
        applied: &mut Applied,
    ) {
        let Some(session) = self.sessions.get_mut(key as usize) else {
            panic!("subscribe for unknown session {key}");
        };
        session.subscriptions.insert(filter.clone(), subscription);
        self.index.insert(key, &filter, subscription, applied);
    }

    fn unsubscribe(&mut self, key: SessionKey, filter: &ByteStr, applied: &mut Applied) {
        let Some(session) = self.sessions.get_mut(key as usize) else {
            panic!("unsubscribe for unknown session {key}");
        };
        if session.subscriptions.remove(filter).is_some() {
            self.index.remove(key, filter, applied);
        }
    }

    fn end(&mut self, key: SessionKey, applied: &mut Applied) {
        assert!(
            self.sessions.contains(key as usize),
            "ending unknown session {key}"
        );
        let session = self.sessions.remove(key as usize);
        for filter in session.subscriptions.keys() {
            self.index.remove(key, filter, applied);
        }
        let removed = self.by_client_id.remove(&session.client_id);
        assert_eq!(removed, Some(key), "client id index out of step");
    }
}

/// Applies the changes that touch only the session itself.
fn apply_to_session(session: &mut Session, change: SessionDelta) {
    let outbound = &mut session.outbound;
    match change {
        SessionDelta::Resumed {
            protocol,
            username,
            expiry_interval,
        } => {
            session.protocol = protocol;
            session.username = username;
            session.expiry_interval = expiry_interval;
            session.disconnected_at = None;
        }
        SessionDelta::ExpiryChanged { expiry_interval } => {
            session.expiry_interval = expiry_interval
        }
        SessionDelta::WillChanged { will } => session.will = will,
        SessionDelta::Disconnected { at } => session.disconnected_at = Some(at),
        SessionDelta::Queued { delivery } => {
            outbound.queued_bytes += delivery.message.payload.len();
            outbound.queue.push_back(delivery);
        }
        SessionDelta::Sent {
            packet_id,
            delivery,
        } => {
            assert!(delivery.qos != QoS::AtMostOnce, "QoS 0 is never in flight");
            assert!(outbound.position(packet_id).is_none(), "packet id in use");
            outbound.inflight_bytes += delivery.message.payload.len();
            outbound.last_packet_id = packet_id.get();
            let state = first_state(delivery.qos);
            outbound.inflight.push_back(Inflight {
                packet_id,
                state,
                delivery: Some(delivery),
            });
        }
        SessionDelta::Dequeued { packet_id } => {
            let Some(delivery) = outbound.queue.pop_front() else {
                panic!("dequeue from an empty queue");
            };
            outbound.queued_bytes -= delivery.message.payload.len();
            apply_to_session(
                session,
                SessionDelta::Sent {
                    packet_id,
                    delivery,
                },
            );
        }
        SessionDelta::QueueFrontDropped => {
            if let Some(delivery) = outbound.queue.pop_front() {
                outbound.queued_bytes -= delivery.message.payload.len();
            }
        }
        SessionDelta::PubRecReceived { packet_id } => {
            let Some(position) = outbound.position(packet_id) else {
                panic!("PUBREC for packet id {packet_id} not in flight");
            };
            let entry = &mut outbound.inflight[position];
            assert_eq!(entry.state, InflightState::AwaitPubRec);
            entry.state = InflightState::AwaitPubComp;
            if let Some(delivery) = entry.delivery.take() {
                outbound.inflight_bytes -= delivery.message.payload.len();
            }
        }
        SessionDelta::Completed { packet_id } => {
            let Some(position) = outbound.position(packet_id) else {
                panic!("completion for packet id {packet_id} not in flight");
            };
            if let Some(entry) = outbound.inflight.remove(position) {
                if let Some(delivery) = entry.delivery {
                    outbound.inflight_bytes -= delivery.message.payload.len();
                }
            }
        }
        SessionDelta::InboundQos2Received { packet_id } => {
            session.inbound_qos2.insert(packet_id.get());
        }
        SessionDelta::InboundQos2Released { packet_id } => {
            session.inbound_qos2.remove(&packet_id.get());
        }
        SessionDelta::Subscribed { .. }
        | SessionDelta::Unsubscribed { .. }
        | SessionDelta::Ended => {
            unreachable!("handled by SessionStore::update")
        }
    }
}

/// The state a QoS 1/2 delivery enters the window in.
fn first_state(qos: QoS) -> InflightState {
    if qos == QoS::ExactlyOnce {
        InflightState::AwaitPubRec
    } else {
        InflightState::AwaitPubAck
    }
}

impl SubscriptionIndex {
    fn insert(&mut self, key: SessionKey, filter: &ByteStr, sub: Subscription, out: &mut Applied) {
        match parse_subscription(filter.as_bytes()) {
            Ok(ParsedFilter::Plain { .. }) => {
                if self.plain.insert(filter.as_bytes(), key, sub).is_none() {
                    let count = self.plain_counts.entry(filter.clone()).or_insert(0);
                    *count += 1;
                    if *count == 1 {
                        out.interest.push(InterestChange::Plain {
                            filter: filter.clone(),
                            added: true,
                        });
                    }
                }
            }
            Ok(ParsedFilter::Shared {
                group,
                filter: inner,
            }) => {
                let shared_key = shared_key(filter, group, inner);
                let group = self.groups.entry(shared_key.clone()).or_default();
                if let Some(member) = group.members.iter_mut().find(|(k, _)| *k == key) {
                    member.1 = sub;
                    return;
                }
                group.members.push((key, sub));
                if group.members.len() == 1 {
                    self.shared
                        .insert(shared_key.1.as_bytes(), shared_key.clone(), ());
                }
                out.interest.push(InterestChange::Shared {
                    key: shared_key,
                    added: true,
                });
            }
            Err(_) => panic!("invalid filter {filter:?} reached the index"),
        }
    }

    fn remove(&mut self, key: SessionKey, filter: &ByteStr, out: &mut Applied) {
        match parse_subscription(filter.as_bytes()) {
            Ok(ParsedFilter::Plain { .. }) => {
                if self.plain.remove(filter.as_bytes(), &key).is_none() {
                    return;
                }
                let Some(count) = self.plain_counts.get_mut(filter) else {
                    panic!("subscriber count missing for {filter:?}");
                };
                *count -= 1;
                if *count == 0 {
                    self.plain_counts.remove(filter);
                    out.interest.push(InterestChange::Plain {
                        filter: filter.clone(),
                        added: false,
                    });
                }
            }
            Ok(ParsedFilter::Shared {
                group,
                filter: inner,
            }) => {
                let shared_key = shared_key(filter, group, inner);
                let Some(members) = self.groups.get_mut(&shared_key) else {
                    return;
                };
                let before = members.members.len();
                members.members.retain(|(k, _)| *k != key);
                if members.members.len() == before {
                    return;
                }
                if members.members.is_empty() {
                    self.groups.remove(&shared_key);
                    self.shared.remove(shared_key.1.as_bytes(), &shared_key);
                }
                out.interest.push(InterestChange::Shared {
                    key: shared_key,
                    added: false,
                });
            }
            Err(_) => panic!("invalid filter {filter:?} reached the index"),
        }
    }
}

/// Builds the (group, filter) key as slices of the subscribed filter string.
fn shared_key(full: &ByteStr, group: &[u8], filter: &[u8]) -> SharedKey {
    let bytes = full.clone().into_bytes();
    let group_start = group.as_ptr() as usize - bytes.as_ptr() as usize;
    let filter_start = filter.as_ptr() as usize - bytes.as_ptr() as usize;
    let slice = |start: usize, len: usize| {
        ByteStr::from_bytes(bytes.slice(start..start + len))
            .unwrap_or_else(|| unreachable!("a slice of valid UTF-8 at '/' boundaries is valid"))
    };
    (
        slice(group_start, group.len()),
        slice(filter_start, filter.len()),
    )
}
