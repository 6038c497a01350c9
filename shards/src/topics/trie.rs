//! The subscription index of one shard: which (topic filter, subscriber) pairs match a topic.
//!
//! Owns [`SubscriptionTrie`]. Called by the shard's fan-out step, which runs
//! [`for_each_match`](SubscriptionTrie::for_each_match) for every PUBLISH delivered to the
//! shard; by the SUBSCRIBE and UNSUBSCRIBE handlers ([`insert`](SubscriptionTrie::insert),
//! [`remove`](SubscriptionTrie::remove)); by session persistence and debugging
//! ([`filters`](SubscriptionTrie::filters)); and by the [`InterestTable`](super::InterestTable),
//! which is this trie keyed by shard id.
//!
//! ```text
//!   root ─┬─ children["sport"] ─┬─ children["tennis"] ── subscribers {c1}   sport/tennis
//!         │                     └─ multi_level {c2}                          sport/#
//!         ├─ single_level ────────── children["status"] ── subscribers {c3}  +/status
//!         └─ multi_level {c4}                                                #
//! ```
//!
//! A node is one position in the filter hierarchy. The filter `a/b` is stored in the
//! `subscribers` of the node reached by `a` then `b`; `a/#` in the `multi_level` map of the node
//! reached by `a` (a `#` level can have no children, so it needs no node of its own); `+`
//! levels go through the dedicated `single_level` child. Only literal levels are keys of the
//! `children` map, so a lookup never has to tell a wildcard from a literal.

use std::collections::hash_map::Iter as MapIter;
use std::hash::{BuildHasher, Hash};
use std::rc::Rc;

use rustc_hash::FxHashMap;

use super::levels::{starts_with_dollar, Levels, MULTI_LEVEL, SEPARATOR, SINGLE_LEVEL};
use super::validate::valid_topic_filter;

/// A hash map whose capacity is at least this is shrunk once it is three quarters empty.
/// Below it the spare capacity is a few hundred bytes and not worth a rehash.
const SHRINK_CAPACITY_MIN: usize = 64;

/// Index of subscriptions by topic filter, for matching topic names against all of them at
/// once. Each entry is a (filter, key) pair with a value: the key says who subscribed (a
/// session id, or a shard id in the [`InterestTable`](super::InterestTable)), the value what
/// the subscription asked for (QoS, options, subscription identifier, share group).
///
/// Placement: one per shard. Each shard indexes only the subscriptions of the sessions it
/// owns, so the publish path walks it without locks or atomics, and the shard that owns a
/// session is the only one that ever changes its entries. Which shards to send a message to
/// at all is decided first by the [`InterestTable`](super::InterestTable), a copy on every
/// shard.
///
/// Costs, with L the number of levels:
/// - [`for_each_match`](Self::for_each_match): O(L × nodes visited + matches); allocates
///   nothing: it walks levels as sub-slices of the topic and recurses at most once per level
///   of the trie ([`TOPIC_LEVELS_MAX`](super::TOPIC_LEVELS_MAX) bounds it), calling `f` on
///   entries in place.
/// - [`insert`](Self::insert) and [`remove`](Self::remove): O(L + 1) amortized, independent of
///   how many subscribers share the filter: each filter's subscribers are a hash map keyed by
///   `K`. `insert` allocates only for new nodes and for map growth.
/// - [`remove`](Self::remove) prunes nodes left empty and shrinks maps left mostly empty, so
///   memory returns when subscribers leave.
///
/// Hashing uses `rustc-hash` (Fx), which is fast but not resistant to chosen collisions:
/// `K` should be a broker-assigned id, never a client-chosen string.
#[derive(Debug)]
pub struct SubscriptionTrie<K, V> {
    /// The position before the first level. Its `subscribers` stay empty: every filter has at
    /// least one level.
    root: Node<K, V>,
    /// Number of (filter, key) pairs.
    len: usize,
    /// Number of non-empty subscriber maps, that is of distinct filters.
    filter_count: usize,
}

/// One position in the filter hierarchy.
#[derive(Debug)]
struct Node<K, V> {
    /// Subscribers whose filter ends at this position.
    subscribers: FxHashMap<K, V>,
    /// Subscribers whose filter is this position followed by `/#` (or `#` alone, at the root).
    multi_level: FxHashMap<K, V>,
    /// The `+` child.
    single_level: Option<Box<Node<K, V>>>,
    /// Children by literal level bytes; never `+` or `#`.
    children: FxHashMap<Box<[u8]>, Node<K, V>>,
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Self {
            subscribers: FxHashMap::default(),
            multi_level: FxHashMap::default(),
            single_level: None,
            children: FxHashMap::default(),
        }
    }
}

impl<K, V> Node<K, V> {
    /// Whether this node holds nothing, so its parent may drop it.
    fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
            && self.multi_level.is_empty()
            && self.single_level.is_none()
            && self.children.is_empty()
    }

    fn terminal(&self, terminal: Terminal) -> &FxHashMap<K, V> {
        match terminal {
            Terminal::Exact => &self.subscribers,
            Terminal::MultiLevel => &self.multi_level,
        }
    }

    fn terminal_mut(&mut self, terminal: Terminal) -> &mut FxHashMap<K, V> {
        match terminal {
            Terminal::Exact => &mut self.subscribers,
            Terminal::MultiLevel => &mut self.multi_level,
        }
    }

    /// Nodes below this one.
    fn descendants(&self) -> usize {
        let single_level = self
            .single_level
            .as_deref()
            .map_or(0, |child| 1 + child.descendants());
        let children: usize = self
            .children
            .values()
            .map(|child| 1 + child.descendants())
            .sum();
        single_level + children
    }
}

/// Which map of the final node a filter's subscribers live in.
#[derive(Clone, Copy, Debug)]
enum Terminal {
    /// `subscribers`: the filter ends with a literal or `+` level.
    Exact,
    /// `multi_level`: the filter ends with `#`.
    MultiLevel,
}

/// Splits a filter into the levels that lead to its node and the map it lives in there.
fn split_filter(filter: &[u8]) -> (Levels<'_>, Terminal) {
    if filter == MULTI_LEVEL {
        return (Levels::none(), Terminal::MultiLevel);
    }
    match filter.strip_suffix(b"/#") {
        Some(prefix) => (Levels::new(prefix), Terminal::MultiLevel),
        None => (Levels::new(filter), Terminal::Exact),
    }
}

/// What [`insert_at`] did, for the trie's counters.
struct Inserted<V> {
    replaced: Option<V>,
    new_filter: bool,
}

/// What [`remove_at`] did, for the trie's counters.
struct Removed<V> {
    value: V,
    filter_gone: bool,
}

impl<K, V> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
            filter_count: 0,
        }
    }
}

impl<K, V> SubscriptionTrie<K, V>
where
    K: Eq + Hash,
{
    /// An empty trie. Allocates nothing until the first insert.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes `key` to `filter` with `value`. Returns the previous value when `key` was
    /// already subscribed to this exact filter, which MQTT treats as a replacement
    /// [MQTT-3.8.4-3].
    ///
    /// `filter` must be valid by [`valid_topic_filter`](super::valid_topic_filter) (for a
    /// shared subscription, the part after the ShareName); callers get there through
    /// [`parse_subscription`](super::parse_subscription).
    ///
    /// # Panics
    ///
    /// On a filter that is not valid: a programmer error, because the trie's recursion depth
    /// relies on the level limit that validation enforces.
    pub fn insert(&mut self, filter: &[u8], key: K, value: V) -> Option<V> {
        assert!(
            valid_topic_filter(filter),
            "insert of an unvalidated topic filter"
        );
        let len_before = self.len;
        let (levels, terminal) = split_filter(filter);
        let inserted = insert_at(&mut self.root, levels, terminal, key, value);
        if inserted.replaced.is_none() {
            self.len += 1;
        }
        if inserted.new_filter {
            assert!(
                inserted.replaced.is_none(),
                "a new filter replaced a subscriber"
            );
            self.filter_count += 1;
        }
        assert!(self.filter_count <= self.len);
        assert!(self.len >= len_before);
        inserted.replaced
    }

    /// Unsubscribes `key` from `filter` and returns its value, or `None` when `key` was not
    /// subscribed to that exact filter (an UNSUBSCRIBE of an unknown filter is allowed
    /// [MQTT-3.10.4-5]). Nodes left empty are dropped and maps left mostly empty are shrunk.
    /// Any bytes are accepted as `filter`; one that was never inserted finds nothing.
    ///
    /// # Panics
    ///
    /// Never on any input; the assertions check the trie's own counters against its nodes.
    pub fn remove(&mut self, filter: &[u8], key: &K) -> Option<V> {
        let (levels, terminal) = split_filter(filter);
        let removed = remove_at(&mut self.root, levels, terminal, key)?;
        assert!(
            self.len > 0,
            "removed a subscriber from a trie that counted none"
        );
        self.len -= 1;
        if removed.filter_gone {
            assert!(self.filter_count > 0);
            self.filter_count -= 1;
        }
        assert!(self.filter_count <= self.len);
        if self.len == 0 {
            assert!(self.root.is_empty(), "an empty trie kept nodes");
        }
        Some(removed.value)
    }

    /// The value `key` subscribed to `filter` with, if it did.
    pub fn get(&self, filter: &[u8], key: &K) -> Option<&V> {
        let (levels, terminal) = split_filter(filter);
        let mut node = &self.root;
        for level in levels {
            node = if level == SINGLE_LEVEL {
                node.single_level.as_deref()?
            } else {
                node.children.get(level)?
            };
        }
        node.terminal(terminal).get(key)
    }

    /// The value `key` subscribed to `filter` with, mutably, if it did.
    pub fn get_mut(&mut self, filter: &[u8], key: &K) -> Option<&mut V> {
        let (levels, terminal) = split_filter(filter);
        let mut node = &mut self.root;
        for level in levels {
            node = if level == SINGLE_LEVEL {
                node.single_level.as_deref_mut()?
            } else {
                node.children.get_mut(level)?
            };
        }
        node.terminal_mut(terminal).get_mut(key)
    }

    /// Calls `f` once for every (filter, key) pair whose filter matches `topic`, with that
    /// key and its value, in no particular order. A key subscribed through several matching
    /// filters is reported once per filter; MQTT leaves the merge to the caller
    /// [MQTT-3.3.4-2].
    ///
    /// Follows [`matches`](super::matches) exactly, including [MQTT-4.7.2-1]: filters that
    /// start with `+` or `#` are skipped for topics starting with `$`.
    ///
    /// The publish path: allocates nothing and never panics. `topic` should be a valid topic
    /// name, but any bytes are accepted; the walk goes no deeper than the trie.
    pub fn for_each_match<F>(&self, topic: &[u8], mut f: F)
    where
        F: FnMut(&K, &V),
    {
        let root = &self.root;
        debug_assert!(root.subscribers.is_empty());
        let mut levels = Levels::new(topic);
        let Some(first) = levels.next() else {
            return;
        };
        if let Some(child) = root.children.get(first) {
            match_at(child, levels, &mut f);
        }
        if !starts_with_dollar(topic) {
            // [MQTT-4.7.2-1]: only here, at the first level, can a wildcard meet a `$`.
            if let Some(single_level) = root.single_level.as_deref() {
                match_at(single_level, levels, &mut f);
            }
            report(&root.multi_level, &mut f);
        }
    }

    /// Number of (filter, key) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the trie holds no subscription.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of distinct filters with at least one subscriber.
    pub fn filter_count(&self) -> usize {
        self.filter_count
    }

    /// Number of nodes besides the root, counted by walking the trie: zero exactly when the
    /// trie is empty and every node was pruned. For tests and memory diagnostics; O(nodes).
    pub fn node_count(&self) -> usize {
        self.root.descendants()
    }

    /// Every (filter, key, value) entry, in no particular order, for persistence and
    /// debugging. Not for the publish path: it allocates one filter string per distinct
    /// filter (shared by that filter's keys) and a stack of nodes still to visit.
    pub fn filters(&self) -> impl Iterator<Item = (Rc<[u8]>, &K, &V)> + '_ {
        Filters {
            pending: vec![(None, &self.root)],
            groups: Vec::new(),
            current: None,
        }
    }
}

/// Walks the node reached by the levels before `levels`, reporting every match below.
///
/// Order: at each level the exact child first, then `+`, then `#`, so the most specific
/// filters come first. Mosquitto delivers overlapping subscriptions in this order for
/// filters subscribed from specific to general, and 5.0 clients receive one copy per
/// subscription in it.
///
/// Recursion: once per level, at most the depth of the trie.
fn match_at<K, V, F>(node: &Node<K, V>, mut levels: Levels<'_>, f: &mut F)
where
    F: FnMut(&K, &V),
{
    match levels.next() {
        None => report(&node.subscribers, f),
        Some(level) => {
            if let Some(child) = node.children.get(level) {
                match_at(child, levels, f);
            }
            if let Some(single_level) = node.single_level.as_deref() {
                match_at(single_level, levels, f);
            }
        }
    }
    // `#` matches the parent level as well as any number of child levels (§4.7.1.2), so
    // it is reported whether or not the topic goes on.
    report(&node.multi_level, f);
}

fn report<K, V, F>(subscribers: &FxHashMap<K, V>, f: &mut F)
where
    F: FnMut(&K, &V),
{
    for (key, value) in subscribers {
        f(key, value);
    }
}

/// Inserts below `node`, creating the nodes the remaining `levels` need.
///
/// Recursion: once per level, bounded by [`TOPIC_LEVELS_MAX`](super::TOPIC_LEVELS_MAX).
fn insert_at<K, V>(
    node: &mut Node<K, V>,
    mut levels: Levels<'_>,
    terminal: Terminal,
    key: K,
    value: V,
) -> Inserted<V>
where
    K: Eq + Hash,
{
    let Some(level) = levels.next() else {
        let subscribers = node.terminal_mut(terminal);
        let new_filter = subscribers.is_empty();
        let replaced = subscribers.insert(key, value);
        return Inserted {
            replaced,
            new_filter,
        };
    };
    debug_assert!(level != MULTI_LEVEL, "split_filter strips the trailing #");
    if level == SINGLE_LEVEL {
        let child = node.single_level.get_or_insert_with(Box::default);
        return insert_at(child, levels, terminal, key, value);
    }
    if let Some(child) = node.children.get_mut(level) {
        return insert_at(child, levels, terminal, key, value);
    }
    // A new branch: build it, then move it in, so the level's bytes are copied only here.
    let mut child = Node::default();
    let inserted = insert_at(&mut child, levels, terminal, key, value);
    node.children.insert(Box::from(level), child);
    inserted
}

/// Removes below `node` and drops the children that the removal left empty.
///
/// Recursion: once per level, at most the depth of the trie.
fn remove_at<K, V>(
    node: &mut Node<K, V>,
    mut levels: Levels<'_>,
    terminal: Terminal,
    key: &K,
) -> Option<Removed<V>>
where
    K: Eq + Hash,
{
    let Some(level) = levels.next() else {
        let subscribers = node.terminal_mut(terminal);
        let value = subscribers.remove(key)?;
        let filter_gone = subscribers.is_empty();
        release_spare_capacity(subscribers);
        return Some(Removed { value, filter_gone });
    };
    if level == SINGLE_LEVEL {
        let child = node.single_level.as_deref_mut()?;
        let removed = remove_at(child, levels, terminal, key)?;
        if child.is_empty() {
            node.single_level = None;
        }
        return Some(removed);
    }
    let child = node.children.get_mut(level)?;
    let removed = remove_at(child, levels, terminal, key)?;
    if child.is_empty() {
        let pruned = node.children.remove(level);
        debug_assert!(pruned.is_some());
        release_spare_capacity(&mut node.children);
    }
    Some(removed)
}

/// Gives memory back after a removal: frees an empty map's table and halves a large map that
/// is at most a quarter full. The shrink costs O(len) but needs at least len removals since
/// the last resize, so it is O(1) amortized per removal.
pub(crate) fn release_spare_capacity<Q, T, S>(map: &mut std::collections::HashMap<Q, T, S>)
where
    Q: Eq + Hash,
    S: BuildHasher,
{
    if map.is_empty() {
        map.shrink_to(0);
    } else if map.capacity() >= SHRINK_CAPACITY_MIN && map.len() * 4 <= map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

/// A node still to visit, with its filter so far (`None` for the root).
type Pending<'a, K, V> = (Option<Vec<u8>>, &'a Node<K, V>);

/// A subscriber map with the filter its entries share.
type Group<'a, K, V> = (Rc<[u8]>, &'a FxHashMap<K, V>);

/// The filter and the rest of the subscriber map being yielded.
type Yielding<'a, K, V> = (Rc<[u8]>, MapIter<'a, K, V>);

/// Iterator behind [`SubscriptionTrie::filters`]: a depth-first walk that rebuilds each
/// node's filter from its parent's.
struct Filters<'a, K, V> {
    /// Nodes still to visit.
    pending: Vec<Pending<'a, K, V>>,
    /// Subscriber maps of the last visited node still to yield.
    groups: Vec<Group<'a, K, V>>,
    /// The subscriber map being yielded.
    current: Option<Yielding<'a, K, V>>,
}

impl<'a, K, V> Iterator for Filters<'a, K, V> {
    type Item = (Rc<[u8]>, &'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((filter, entries)) = &mut self.current {
                if let Some((key, value)) = entries.next() {
                    return Some((Rc::clone(filter), key, value));
                }
                self.current = None;
            }
            if let Some((filter, subscribers)) = self.groups.pop() {
                self.current = Some((filter, subscribers.iter()));
                continue;
            }
            let (path, node) = self.pending.pop()?;
            self.visit(path.as_deref(), node);
        }
    }
}

impl<'a, K, V> Filters<'a, K, V> {
    fn visit(&mut self, path: Option<&[u8]>, node: &'a Node<K, V>) {
        if let Some(path) = path {
            if !node.subscribers.is_empty() {
                self.groups.push((Rc::from(path), &node.subscribers));
            }
        } else {
            debug_assert!(node.subscribers.is_empty(), "the root holds no filter");
        }
        if !node.multi_level.is_empty() {
            self.groups
                .push((Rc::from(join(path, MULTI_LEVEL)), &node.multi_level));
        }
        if let Some(single_level) = node.single_level.as_deref() {
            self.pending
                .push((Some(join(path, SINGLE_LEVEL)), single_level));
        }
        for (level, child) in &node.children {
            self.pending.push((Some(join(path, level)), child));
        }
    }
}

/// `path/level`, or `level` below the root.
fn join(path: Option<&[u8]>, level: &[u8]) -> Vec<u8> {
    match path {
        None => level.to_vec(),
        Some(path) => [path, &[SEPARATOR], level].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::SubscriptionTrie;

    fn matching(trie: &SubscriptionTrie<u32, &'static str>, topic: &str) -> Vec<(u32, String)> {
        let mut found = Vec::new();
        trie.for_each_match(topic.as_bytes(), |&key, &value| {
            found.push((key, value.to_owned()))
        });
        found.sort();
        found
    }

    fn entry(key: u32, filter: &str) -> (u32, String) {
        (key, filter.to_owned())
    }

    /// Several filters, one topic: each matching (filter, key) pair is reported once, and
    /// the `$` rule hides wildcard-first filters from `$SYS`.
    #[test]
    fn reports_each_matching_pair_once() {
        let mut trie = SubscriptionTrie::new();
        for filter in [
            "sport/tennis/player1",
            "sport/#",
            "sport/+/player1",
            "#",
            "+/+/+",
        ] {
            assert_eq!(trie.insert(filter.as_bytes(), 1, filter), None);
        }
        assert_eq!(trie.insert(b"sport/#", 2, "sport/#"), None);
        assert_eq!(trie.insert(b"$SYS/#", 3, "$SYS/#"), None);
        let mut expected = vec![
            entry(1, "#"),
            entry(1, "+/+/+"),
            entry(1, "sport/#"),
            entry(1, "sport/+/player1"),
            entry(1, "sport/tennis/player1"),
            entry(2, "sport/#"),
        ];
        expected.sort();
        assert_eq!(matching(&trie, "sport/tennis/player1"), expected);
        assert_eq!(
            matching(&trie, "sport"),
            vec![entry(1, "#"), entry(1, "sport/#"), entry(2, "sport/#")]
        );
        assert_eq!(
            matching(&trie, "$SYS/broker/uptime"),
            vec![entry(3, "$SYS/#")]
        );
        assert_eq!(trie.len(), 7);
        assert_eq!(trie.filter_count(), 6);
    }

    #[test]
    fn insert_replaces_and_remove_prunes() {
        let mut trie = SubscriptionTrie::new();
        assert_eq!(trie.insert(b"a/+/c", 7, "first"), None);
        assert_eq!(trie.insert(b"a/+/c", 7, "second"), Some("first"));
        assert_eq!(trie.get(b"a/+/c", &7), Some(&"second"));
        assert_eq!(trie.get(b"a/+/c", &8), None);
        assert_eq!(trie.get(b"a/+", &7), None);
        assert_eq!(
            (trie.len(), trie.filter_count(), trie.node_count()),
            (1, 1, 3)
        );
        assert_eq!(trie.remove(b"a/+/c", &8), None);
        assert_eq!(trie.remove(b"a/b/c", &7), None);
        assert_eq!(trie.remove(b"a/+/c", &7), Some("second"));
        assert!(trie.is_empty());
        assert_eq!((trie.filter_count(), trie.node_count()), (0, 0));
    }

    /// The `filters` listing rebuilds every filter exactly, including `#` alone, `/`, and
    /// empty levels.
    #[test]
    fn filters_lists_every_entry() {
        let mut trie = SubscriptionTrie::new();
        let filters = [
            "#", "/", "/#", "+", "+/#", "a//b", "a/+/#", "$SYS/#", "a/#", "a",
        ];
        for (key, filter) in (0_u32..).zip(filters) {
            trie.insert(filter.as_bytes(), key, filter);
            trie.insert(filter.as_bytes(), key + 100, filter);
        }
        let mut listed: Vec<(String, u32, &str)> = trie
            .filters()
            .map(|(filter, &key, &value)| {
                (String::from_utf8_lossy(&filter).into_owned(), key, value)
            })
            .collect();
        listed.sort();
        let mut expected: Vec<(String, u32, &str)> = (0_u32..)
            .zip(filters)
            .flat_map(|(key, filter)| {
                [
                    (filter.to_owned(), key, filter),
                    (filter.to_owned(), key + 100, filter),
                ]
            })
            .collect();
        expected.sort();
        assert_eq!(listed, expected);
        for (filter, _, value) in &listed {
            assert_eq!(filter, value);
        }
    }

    /// 100,000 subscribers on one filter: each insert and remove is a hash-map operation,
    /// so this finishes quickly; a linear scan per operation would take ~10^10 steps.
    #[test]
    fn many_subscribers_on_one_filter() {
        const SUBSCRIBERS: u32 = 100_000;
        let mut trie = SubscriptionTrie::new();
        for key in 0..SUBSCRIBERS {
            assert_eq!(trie.insert(b"fleet/+/telemetry", key, "fleet"), None);
        }
        assert_eq!((trie.len(), trie.filter_count()), (SUBSCRIBERS as usize, 1));
        let mut reported = 0_usize;
        trie.for_each_match(b"fleet/truck7/telemetry", |_, _| reported += 1);
        assert_eq!(reported, SUBSCRIBERS as usize);
        for key in (0..SUBSCRIBERS).rev() {
            assert_eq!(trie.remove(b"fleet/+/telemetry", &key), Some("fleet"));
        }
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 0);
    }

    /// A topic of tens of thousands of levels (longer than any valid one) walks a trie of
    /// `+` levels without deep recursion and reports nothing it should not.
    #[test]
    fn huge_topics_are_bounded_by_the_trie_depth() {
        let mut trie = SubscriptionTrie::new();
        trie.insert(b"+/+/+", 1, "+/+/+");
        trie.insert(b"/#", 2, "/#");
        let topic = vec![b'/'; 60_000];
        assert_eq!(
            matching(&trie, std::str::from_utf8(&topic).unwrap_or_default()),
            vec![entry(2, "/#")]
        );
        assert_eq!(
            matching(&trie, "//"),
            vec![entry(1, "+/+/+"), entry(2, "/#")]
        );
    }

    #[test]
    #[should_panic(expected = "unvalidated topic filter")]
    fn insert_refuses_invalid_filters() {
        let mut trie = SubscriptionTrie::new();
        trie.insert(b"a/#/b", 1, "bad");
    }
}
