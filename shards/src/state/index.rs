//! `SubscriptionIndex`: which subscriptions of one shard match a topic, derived from the
//! shard's sessions, and the interest changes other shards must learn.
//!
//! Changed only by `SessionStore` while it applies `Subscribed`, `Unsubscribed` and `Ended`;
//! read by the shard's routing (`shard::deliver::route_of`).

use super::{SessionKey, Subscription};
use crate::mqtt::ByteStr;
use crate::topics::{parse_subscription, Subscription as ParsedFilter, SubscriptionTrie};
use rustc_hash::FxHashMap;
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

/// The interest changes one apply caused, in order.
pub type InterestChanges = SmallVec<[InterestChange; 1]>;

impl SubscriptionIndex {
    /// Local subscribers of the plain filter `filter`.
    pub fn plain_count(&self, filter: &[u8]) -> u32 {
        self.plain_counts.get(filter).copied().unwrap_or(0)
    }

    /// Plain filters with at least one local subscriber.
    pub fn plain_filter_count(&self) -> usize {
        self.plain_counts.len()
    }

    pub(super) fn insert(
        &mut self,
        key: SessionKey,
        filter: &ByteStr,
        sub: Subscription,
        out: &mut InterestChanges,
    ) {
        match parse_subscription(filter.as_bytes()) {
            Ok(ParsedFilter::Plain { .. }) => {
                if self.plain.insert(filter.as_bytes(), key, sub).is_none() {
                    let count = self.plain_counts.entry(filter.clone()).or_insert(0);
                    *count += 1;
                    if *count == 1 {
                        out.push(InterestChange::Plain {
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
                out.push(InterestChange::Shared {
                    key: shared_key,
                    added: true,
                });
            }
            Err(_) => panic!("invalid filter {filter:?} reached the index"),
        }
    }

    pub(super) fn remove(&mut self, key: SessionKey, filter: &ByteStr, out: &mut InterestChanges) {
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
                    out.push(InterestChange::Plain {
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
                out.push(InterestChange::Shared {
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
