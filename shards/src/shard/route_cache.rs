//! A per-shard cache of where a topic's messages go: the local subscriptions that match it
//! (already grouped by session) and the other shards that want it.
//!
//! Why: matching walks two tries per publish (the local subscription index and the copy of
//! every shard's interest), a hash lookup and a comparison per topic level each, and that
//! was the largest single cost of the publish path in profiles. Devices publish to the
//! same topics over and over, so one hash lookup of the whole topic replaces both walks.
//! Correctness: every change to the local index or to any shard's interest bumps the
//! shard's routing generation, and an entry from an older generation is recomputed. Bound:
//! at [`ENTRIES_MAX`] entries the cache is emptied (no per-entry bookkeeping on the hot
//! path). Placement: one per shard.

use crate::mqtt::ByteStr;
use crate::state::{SessionKey, Subscription};
use rustc_hash::FxHashMap;

use crate::limits::ROUTE_CACHE_ENTRIES_MAX as ENTRIES_MAX;

/// One local match: session, position in the index's order, subscription.
pub type LocalMatch = (SessionKey, u32, Subscription);

/// Where one topic goes.
struct Route {
    generation: u64,
    local: Box<[LocalMatch]>,
    remote: u64,
}

/// The cache.
#[derive(Default)]
pub struct RouteCache {
    entries: FxHashMap<ByteStr, Route>,
}

impl RouteCache {
    /// The route of `topic` if it was computed at `generation`: copies its local matches
    /// into `matches` and returns the mask of other shards.
    pub fn get(&self, topic: &[u8], generation: u64, matches: &mut Vec<LocalMatch>) -> Option<u64> {
        let route = self
            .entries
            .get(topic)
            .filter(|route| route.generation == generation)?;
        matches.extend_from_slice(&route.local);
        Some(route.remote)
    }

    /// Remembers the route of `topic` (copying the topic, so it pins no read buffer).
    pub fn insert(&mut self, topic: &ByteStr, generation: u64, local: &[LocalMatch], remote: u64) {
        if self.entries.len() >= ENTRIES_MAX && !self.entries.contains_key(topic.as_bytes()) {
            self.entries.clear();
        }
        let route = Route {
            generation,
            local: local.into(),
            remote,
        };
        match self.entries.get_mut(topic.as_bytes()) {
            Some(entry) => *entry = route,
            None => {
                self.entries.insert(topic.compact(), route);
            }
        }
    }

    /// Number of topics remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is remembered.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_generations_miss_and_the_cache_stays_bounded() {
        let mut cache = RouteCache::default();
        let mut matches = Vec::new();
        let topic = ByteStr::from_static("a/b");
        cache.insert(&topic, 1, &[], 0b10);
        assert_eq!(cache.get(b"a/b", 1, &mut matches), Some(0b10));
        assert_eq!(
            cache.get(b"a/b", 2, &mut matches),
            None,
            "a newer generation recomputes"
        );
        for n in 0..ENTRIES_MAX + 5 {
            cache.insert(&ByteStr::from(format!("t/{n}")), 1, &[], 0);
        }
        assert!(cache.len() <= ENTRIES_MAX && !cache.is_empty());
    }
}
