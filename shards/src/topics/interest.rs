//! Which shards have subscribers for which topic filters, for routing a PUBLISH to the shards
//! that need it and no others.
//!
//! Owns [`InterestTable`]. A shard whose own [`SubscriptionTrie`](super::SubscriptionTrie)
//! gains or loses a subscriber announces it to every shard, and each applies it with
//! [`add`](InterestTable::add) or [`remove`](InterestTable::remove). The publish path on the
//! shard that read the PUBLISH calls [`shards_matching`](InterestTable::shards_matching) and
//! hops the message to each shard in the mask.
//!
//! It is a [`SubscriptionTrie`](super::SubscriptionTrie) keyed by shard id whose value is the
//! number of that shard's subscriptions to the filter, so matching, pruning and the `$` rule
//! are the trie's, not a second copy of them.

use super::trie::SubscriptionTrie;

pub use crate::limits::SHARDS_MAX;

/// For every topic filter, the shards holding at least one subscription to it, each with a
/// count of those subscriptions.
///
/// Placement: copy on every shard. Every shard applies the same stream of add/remove
/// announcements, so each can route its own clients' publishes without asking another core
/// (Redpanda's `shard_table`).
///
/// Allocation: [`shards_matching`](Self::shards_matching) allocates nothing;
/// [`add`](Self::add) allocates only for new trie nodes.
#[derive(Debug, Default)]
pub struct InterestTable {
    /// Key: shard id below [`SHARDS_MAX`]. Value: that shard's subscription count, never 0.
    trie: SubscriptionTrie<u8, u32>,
}

impl InterestTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one more subscription of `shard` to `filter`. Returns `true` when it is the
    /// shard's first for that filter (its count went from 0 to 1).
    ///
    /// # Panics
    ///
    /// On a `filter` that is not valid by [`valid_topic_filter`](super::valid_topic_filter) or
    /// a `shard` not below [`SHARDS_MAX`]: a programmer error.
    pub fn add(&mut self, filter: &[u8], shard: u8) -> bool {
        assert!(
            usize::from(shard) < SHARDS_MAX,
            "shard {shard} out of range"
        );
        if let Some(count) = self.trie.get_mut(filter, &shard) {
            assert!(*count > 0, "a zero count was kept in the interest table");
            assert!(*count < u32::MAX, "interest count overflow");
            *count += 1;
            return false;
        }
        let replaced = self.trie.insert(filter, shard, 1);
        assert!(replaced.is_none());
        true
    }

    /// Counts one subscription fewer of `shard` to `filter`. Returns `true` when it was the
    /// shard's last for that filter (its count went from 1 to 0), and `false` both when some
    /// remain and when the shard had none (nothing changes then).
    ///
    /// # Panics
    ///
    /// On a `shard` not below [`SHARDS_MAX`]: a programmer error.
    pub fn remove(&mut self, filter: &[u8], shard: u8) -> bool {
        assert!(
            usize::from(shard) < SHARDS_MAX,
            "shard {shard} out of range"
        );
        let Some(count) = self.trie.get_mut(filter, &shard) else {
            return false;
        };
        assert!(*count > 0, "a zero count was kept in the interest table");
        if *count > 1 {
            *count -= 1;
            return false;
        }
        let removed = self.trie.remove(filter, &shard);
        assert_eq!(removed, Some(1));
        true
    }

    /// The shards with at least one subscription matching `topic`, as a bitmask with bit `s`
    /// set for shard `s`. Follows [`matches`](super::matches), including the `$` rule.
    ///
    /// The publish path: allocates nothing and never panics.
    pub fn shards_matching(&self, topic: &[u8]) -> u64 {
        let mut mask: u64 = 0;
        self.trie
            .for_each_match(topic, |&shard, _| mask |= 1_u64 << shard);
        mask
    }

    /// The subscription count of `shard` for exactly `filter` (0 when none).
    pub fn count(&self, filter: &[u8], shard: u8) -> u32 {
        self.trie.get(filter, &shard).copied().unwrap_or(0)
    }

    /// Number of (filter, shard) pairs with a non-zero count.
    pub fn len(&self) -> usize {
        self.trie.len()
    }

    /// Whether no shard has any subscription.
    pub fn is_empty(&self) -> bool {
        self.trie.is_empty()
    }

    /// Number of trie nodes besides the root: zero exactly when everything was removed and
    /// pruned. For tests and memory diagnostics; O(nodes).
    pub fn node_count(&self) -> usize {
        self.trie.node_count()
    }
}

#[cfg(test)]
mod tests {
    use super::InterestTable;

    #[test]
    fn counts_transitions_per_shard() {
        let mut table = InterestTable::new();
        assert!(table.add(b"sport/#", 3));
        assert!(!table.add(b"sport/#", 3));
        assert!(table.add(b"sport/#", 0));
        assert!(table.add(b"+/tennis", 63));
        assert_eq!(table.count(b"sport/#", 3), 2);
        assert_eq!(
            table.shards_matching(b"sport/tennis"),
            (1 << 3) | 1 | (1 << 63)
        );
        assert_eq!(table.shards_matching(b"sport"), (1 << 3) | 1);
        assert_eq!(table.shards_matching(b"$SYS/tennis"), 0);
        assert!(!table.remove(b"sport/#", 3));
        assert!(table.remove(b"sport/#", 3));
        assert!(!table.remove(b"sport/#", 3));
        assert!(!table.remove(b"never/added", 5));
        assert_eq!(table.shards_matching(b"sport/tennis"), 1 | (1 << 63));
        assert!(table.remove(b"sport/#", 0));
        assert!(table.remove(b"+/tennis", 63));
        assert!(table.is_empty());
        assert_eq!(table.node_count(), 0);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn shard_ids_fit_the_mask() {
        InterestTable::new().add(b"a", 64);
    }
}
