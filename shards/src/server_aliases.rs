//! The topic aliases the broker assigns to the topics it sends one MQTT 5.0 client
//! (§3.3.2.3.4): the first PUBLISH on a topic carries the topic and its alias, later ones
//! the alias and an empty topic.
//!
//! Owned by a [`crate::connection::Connection`] and used by `Connection::send_publish`
//! only. Aliases last as long as one network connection: they are never part of the
//! session (whose state is saved and replicated), a reconnect starts with an empty table,
//! and a resent PUBLISH (DUP) goes with its topic and no alias. A client that announced no
//! Topic Alias Maximum has no table, which costs the publish path one branch.
//!
//! Which topics get the aliases: the table fills first come, first served. Once it is
//! full, a topic without an alias takes over the alias that saves the fewest bytes, and
//! only when it would save more: recent frequency × (topic length − 3) decides, 3 being
//! the bytes of the Topic Alias property. Frequencies of topics with an alias are counted
//! per entry, of the others in a small count-min sketch; both are halved every few
//! thousand messages so the table follows a change of busy topics (TinyLFU's admission
//! rule with size-aware scores). A client with more busy topics than aliases keeps one
//! stable set instead of cycling through them, which with LRU replacement would add the
//! 3 bytes of a new alias to every message; `policy_comparison` below measures this.
//!
//! Cost with aliases on: one hash of the topic and one topic comparison per message; no
//! allocation once each alias has held a topic as long as the longest one since (a
//! replacement reuses the entry's buffer).

use crate::mqtt::{publish_encoded_len, Protocol, PublishEncode};
use std::hash::Hasher;

/// Bytes the Topic Alias property adds to a PUBLISH (identifier and two-byte value); an
/// alias saves the topic's length minus this on every message after the first.
const ALIAS_BYTES: usize = 3;
/// Entries looked at to choose the one whose alias a busier topic takes: all of them in
/// tables this small, a run from a pseudo-random start in larger ones (a fixed stride
/// could fall into step with a cycle of topics and never look at some entries).
const VICTIM_SAMPLE: usize = 16;
/// Counters of the sketch of topics without an alias: four per alias, within these bounds
/// (a smaller sketch mixes up the counts of a client with many more topics than aliases).
const SKETCH_LEN_MIN: usize = 1024;
const SKETCH_LEN_MAX: usize = 4096;
/// Every count is halved after this many topics per alias (at least `AGE_PERIOD_MIN`).
const AGE_PERIOD_PER_ALIAS: u32 = 64;
const AGE_PERIOD_MIN: u32 = 1024;

/// One client's server → client aliases.
#[derive(Debug)]
pub struct ServerAliases {
    /// Most aliases: the client's Topic Alias Maximum, capped by the listener's.
    max: u16,
    /// Entry `i` is alias `i + 1`; grows up to `max` entries, never shrinks.
    entries: Vec<Entry>,
    /// Open addressing over `entries` by topic hash: 0 = empty, else entry index + 1.
    /// Length a power of two, at least twice the entries.
    index: Vec<u32>,
    /// Recent frequency of topics without an alias (conservative count-min update, two
    /// positions per topic); allocated when the table is first full.
    sketch: Vec<u16>,
    /// State of the generator choosing where a victim sample starts (xorshift, non-zero).
    hand: u64,
    /// Topics seen since counts were last halved.
    since_aging: u32,
    /// Topics between two halvings.
    age_period: u32,
}

#[derive(Debug)]
struct Entry {
    hash: u64,
    /// Recent frequency.
    hits: u32,
    topic: Vec<u8>,
}

/// What to send for one topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The client knows this alias: send it with an empty topic.
    Known(u16),
    /// Send the topic with a new alias, then record it with [`ServerAliases::assign`].
    Assign(Assignment),
    /// Send the topic without an alias.
    Plain,
}

/// An alias to give a topic, returned by [`ServerAliases::choose`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    alias: u16,
    hash: u64,
    hits: u32,
}

impl Assignment {
    /// The alias to send.
    pub fn alias(&self) -> u16 {
        self.alias
    }
}

impl ServerAliases {
    /// The table for a client that announced `client_max` (its CONNECT's Topic Alias
    /// Maximum) on a listener that assigns at most `listener_max`; `None` when either is 0.
    pub fn for_client(client_max: Option<u16>, listener_max: u16) -> Option<Box<ServerAliases>> {
        let max = client_max.unwrap_or(0).min(listener_max);
        (max > 0).then(|| Box::new(ServerAliases::new(max)))
    }

    /// An empty table of at most `max` (> 0) aliases; nothing is allocated until used.
    pub fn new(max: u16) -> ServerAliases {
        ServerAliases {
            max,
            entries: Vec::new(),
            index: Vec::new(),
            sketch: Vec::new(),
            hand: 0x9e37_79b9_7f4a_7c15,
            since_aging: 0,
            age_period: (u32::from(max) * AGE_PERIOD_PER_ALIAS).max(AGE_PERIOD_MIN),
        }
    }

    /// Most aliases this table assigns.
    pub fn max(&self) -> u16 {
        self.max
    }

    /// The form of `publish` to write: with an empty topic and the alias the client knows,
    /// with its topic and a new alias (recorded here), or unchanged. A new alias that
    /// would take the packet over `max_packet_size` is not given (the caller checked that
    /// the unchanged packet fits; a known alias only makes it smaller, for topics longer
    /// than 3 bytes, the only ones with aliases).
    pub fn apply<'a>(
        &mut self,
        publish: &PublishEncode<'a>,
        max_packet_size: u32,
    ) -> PublishEncode<'a> {
        match self.choose(publish.topic) {
            Choice::Known(alias) => PublishEncode {
                topic: &[],
                topic_alias: Some(alias),
                ..*publish
            },
            Choice::Assign(assignment) => {
                let with_alias = PublishEncode {
                    topic_alias: Some(assignment.alias),
                    ..*publish
                };
                let fits = publish_encoded_len(Protocol::V5, &with_alias)
                    .is_ok_and(|len| len <= max_packet_size as usize);
                if fits {
                    self.assign(assignment, publish.topic);
                    with_alias
                } else {
                    *publish
                }
            }
            Choice::Plain => *publish,
        }
    }

    /// Counts one message on `topic` and says how to send it. Changes no alias: an
    /// [`Choice::Assign`] takes effect with [`ServerAliases::assign`].
    pub fn choose(&mut self, topic: &[u8]) -> Choice {
        if topic.len() <= ALIAS_BYTES {
            return Choice::Plain;
        }
        let hash = hash(topic);
        self.age();
        if let Some(slot) = self.find(hash, topic) {
            let entry = &mut self.entries[slot];
            entry.hits = entry.hits.saturating_add(1);
            return Choice::Known(alias_of(slot));
        }
        if self.entries.len() < usize::from(self.max) {
            return Choice::Assign(Assignment {
                alias: alias_of(self.entries.len()),
                hash,
                hits: 1,
            });
        }
        let hits = self.count_miss(hash);
        let victim = self.victim();
        let entry = &self.entries[victim];
        if saving(hits, topic.len()) > saving(entry.hits, entry.topic.len()) {
            Choice::Assign(Assignment {
                alias: alias_of(victim),
                hash,
                hits,
            })
        } else {
            Choice::Plain
        }
    }

    /// Records that `assignment`'s alias now names `topic` (the one it was chosen for),
    /// after the PUBLISH announcing it was written.
    pub fn assign(&mut self, assignment: Assignment, topic: &[u8]) {
        let slot = usize::from(assignment.alias) - 1;
        if slot == self.entries.len() && slot < usize::from(self.max) {
            self.entries.push(Entry {
                hash: assignment.hash,
                hits: assignment.hits,
                topic: topic.to_vec(),
            });
            if self.entries.len() * 2 > self.index.len() {
                self.rebuild_index();
            } else {
                self.index_insert(slot);
            }
        } else if slot < self.entries.len() {
            self.index_remove(slot);
            let entry = &mut self.entries[slot];
            entry.hash = assignment.hash;
            entry.hits = assignment.hits;
            entry.topic.clear();
            entry.topic.extend_from_slice(topic);
            self.index_insert(slot);
        }
    }

    /// The topic alias `alias` names, if any (for tests and diagnostics).
    pub fn topic_of(&self, alias: u16) -> Option<&[u8]> {
        let slot = usize::from(alias).checked_sub(1)?;
        self.entries.get(slot).map(|entry| entry.topic.as_slice())
    }

    fn find(&self, hash: u64, topic: &[u8]) -> Option<usize> {
        if self.index.is_empty() {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut at = hash as usize & mask;
        // At most half the positions are taken, so an empty one ends the probe.
        loop {
            let slot = self.index[at].checked_sub(1)? as usize;
            let entry = &self.entries[slot];
            if entry.hash == hash && entry.topic == topic {
                return Some(slot);
            }
            at = (at + 1) & mask;
        }
    }

    fn index_insert(&mut self, slot: usize) {
        let mask = self.index.len() - 1;
        let mut at = self.entries[slot].hash as usize & mask;
        while self.index[at] != 0 {
            at = (at + 1) & mask;
        }
        self.index[at] = slot as u32 + 1;
    }

    /// Removes entry `slot` from the index, shifting later entries of its probe run back
    /// (no tombstones, so lookups stay short whatever the number of replacements).
    fn index_remove(&mut self, slot: usize) {
        let mask = self.index.len() - 1;
        let target = slot as u32 + 1;
        let mut hole = self.entries[slot].hash as usize & mask;
        let mut probes = 0;
        while self.index[hole] != target {
            hole = (hole + 1) & mask;
            probes += 1;
            if probes > mask {
                return;
            }
        }
        let mut at = (hole + 1) & mask;
        while let Some(moved) = self.index[at].checked_sub(1) {
            let home = self.entries[moved as usize].hash as usize & mask;
            // The entry at `at` may fill the hole when its home is not after the hole.
            if at.wrapping_sub(home) & mask >= at.wrapping_sub(hole) & mask {
                self.index[hole] = self.index[at];
                hole = at;
            }
            at = (at + 1) & mask;
        }
        self.index[hole] = 0;
    }

    fn rebuild_index(&mut self) {
        let len = (self.entries.len() * 2).next_power_of_two().max(16);
        self.index.clear();
        self.index.resize(len, 0);
        for slot in 0..self.entries.len() {
            self.index_insert(slot);
        }
    }

    /// Counts a message on a topic without an alias; returns its recent frequency.
    fn count_miss(&mut self, hash: u64) -> u32 {
        if self.sketch.is_empty() {
            let len = (usize::from(self.max) * 4)
                .next_power_of_two()
                .clamp(SKETCH_LEN_MIN, SKETCH_LEN_MAX);
            self.sketch = vec![0; len];
        }
        let mask = self.sketch.len() - 1;
        let a = (hash >> 16) as usize & mask;
        let b = (hash >> 40) as usize & mask;
        let count = self.sketch[a].min(self.sketch[b]).saturating_add(1);
        self.sketch[a] = self.sketch[a].max(count);
        self.sketch[b] = self.sketch[b].max(count);
        u32::from(count)
    }

    /// The entry saving the fewest bytes among [`VICTIM_SAMPLE`] of them.
    fn victim(&mut self) -> usize {
        let len = self.entries.len();
        let start = if len <= VICTIM_SAMPLE {
            0
        } else {
            self.hand ^= self.hand << 13;
            self.hand ^= self.hand >> 7;
            self.hand ^= self.hand << 17;
            (self.hand % len as u64) as usize
        };
        let score = |slot: usize| {
            let entry = &self.entries[slot];
            saving(entry.hits, entry.topic.len())
        };
        let mut best = start;
        let mut best_score = score(best);
        for step in 1..VICTIM_SAMPLE.min(len) {
            let slot = (start + step) % len;
            let slot_score = score(slot);
            if slot_score < best_score {
                best = slot;
                best_score = slot_score;
            }
        }
        best
    }

    /// Halves every count once per `age_period` topics.
    fn age(&mut self) {
        self.since_aging += 1;
        if self.since_aging < self.age_period {
            return;
        }
        self.since_aging = 0;
        for entry in &mut self.entries {
            entry.hits /= 2;
        }
        for count in &mut self.sketch {
            *count /= 2;
        }
    }
}

fn alias_of(slot: usize) -> u16 {
    // Slots stay below `max`, a u16.
    (slot + 1) as u16
}

/// Bytes an alias saves over `hits` messages on a topic of `len` (> 3) bytes.
fn saving(hits: u32, len: usize) -> u64 {
    u64::from(hits) * (len - ALIAS_BYTES) as u64
}

/// FxHash of the topic, mixed (murmur3's finaliser) so every bit can index.
fn hash(topic: &[u8]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(topic);
    let mut h = hasher.finish();
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
#[path = "server_aliases_tests.rs"]
mod tests;
