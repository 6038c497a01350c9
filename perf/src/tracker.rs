//! Delivery accounting: which sequence numbers each subscriber received from each
//! publisher, and what was lost, duplicated or misrouted.
//!
//! Owns the bit sets and the arithmetic that turns them into the correctness verdict of a
//! run. Subscribers call [`Received::record`] for every message; publishers keep an
//! [`BitSet`] of the sequence numbers the broker acknowledged (QoS 1/2) or that were
//! written (QoS 0). The engine calls [`count_missing`] at the end. Pure: no I/O.

/// A growable set of `u32` sequence numbers.
#[derive(Clone, Debug, Default)]
pub struct BitSet {
    words: Vec<u64>,
    len: u64,
}

impl BitSet {
    /// Inserts `value`; returns false when it was already present.
    pub fn insert(&mut self, value: u32) -> bool {
        let word = (value / 64) as usize;
        if word >= self.words.len() {
            let grown = (word + 1).max(self.words.len() * 2);
            self.words.resize(grown, 0);
        }
        let bit = 1u64 << (value % 64);
        let fresh = self.words[word] & bit == 0;
        self.words[word] |= bit;
        if fresh {
            self.len += 1;
        }
        fresh
    }

    /// Number of values present.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Number of values in `self` that `other` lacks.
    pub fn count_not_in(&self, other: &BitSet) -> u64 {
        self.words
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let o = other.words.get(i).copied().unwrap_or(0);
                u64::from((w & !o).count_ones())
            })
            .sum()
    }
}

/// What one subscriber received, per publisher.
#[derive(Debug, Default)]
pub struct Received {
    /// Per publisher index: the sequence numbers seen. Only expected publishers have a
    /// slot; see [`Received::expect`].
    pub by_publisher: Vec<Option<BitSet>>,
    /// Messages received again with a sequence number already seen.
    pub duplicates: u64,
    /// Messages from a publisher this subscriber did not subscribe to, or unreadable.
    pub foreign: u64,
    /// Every message received (duplicates included).
    pub total: u64,
}

impl Received {
    /// A tracker for a subscriber that expects messages from `publishers`.
    pub fn expect(publishers: &[u32]) -> Received {
        let slots = publishers
            .iter()
            .map(|&p| p as usize + 1)
            .max()
            .unwrap_or(0);
        let mut by_publisher = vec![None; slots];
        for &p in publishers {
            by_publisher[p as usize] = Some(BitSet::default());
        }
        Received {
            by_publisher,
            ..Received::default()
        }
    }

    /// Records one message; returns true when it was new.
    pub fn record(&mut self, publisher: u32, seq: u32) -> bool {
        self.total += 1;
        match self.by_publisher.get_mut(publisher as usize) {
            Some(Some(set)) => {
                let fresh = set.insert(seq);
                if !fresh {
                    self.duplicates += 1;
                }
                fresh
            }
            _ => {
                self.foreign += 1;
                false
            }
        }
    }

    /// Records a message whose payload the harness could not read.
    pub fn record_unreadable(&mut self) {
        self.total += 1;
        self.foreign += 1;
    }

    /// Distinct messages received.
    pub fn distinct(&self) -> u64 {
        self.by_publisher.iter().flatten().map(BitSet::len).sum()
    }
}

/// Messages that `confirmed[p]` says publisher `p` got through to the broker but that the
/// subscriber did not receive, summed over the subscriber's expected publishers.
pub fn count_missing(received: &Received, confirmed: &[BitSet]) -> u64 {
    received
        .by_publisher
        .iter()
        .enumerate()
        .filter_map(|(p, set)| Some((confirmed.get(p)?, set.as_ref()?)))
        .map(|(sent, got)| sent.count_not_in(got))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset_counts_inserts_once() {
        let mut set = BitSet::default();
        assert_eq!(set.len(), 0);
        assert!(set.insert(0));
        assert!(set.insert(1000));
        assert!(!set.insert(1000));
        assert_eq!(set.len(), 2);
        assert!(!set.insert(0));
        assert!(set.insert(999));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn count_not_in_is_set_difference() {
        let mut a = BitSet::default();
        let mut b = BitSet::default();
        for v in 0..200 {
            a.insert(v);
        }
        for v in (0..100).step_by(2) {
            b.insert(v);
        }
        b.insert(5000);
        assert_eq!(a.count_not_in(&b), 150);
        assert_eq!(b.count_not_in(&a), 1);
    }

    #[test]
    fn received_finds_loss_duplicates_and_foreign_messages() {
        let mut received = Received::expect(&[0, 2]);
        for seq in 0..10 {
            received.record(0, seq);
        }
        received.record(0, 3);
        received.record(1, 0);
        for seq in [0, 1, 2, 4] {
            received.record(2, seq);
        }
        let mut confirmed = vec![BitSet::default(); 3];
        for seq in 0..10 {
            confirmed[0].insert(seq);
            confirmed[2].insert(seq);
        }
        assert_eq!(received.duplicates, 1);
        assert_eq!(received.foreign, 1);
        assert_eq!(received.distinct(), 14);
        assert_eq!(received.total, 16);
        assert_eq!(count_missing(&received, &confirmed), 6);
    }
}
