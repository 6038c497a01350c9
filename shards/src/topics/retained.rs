//! Retained messages by exact topic name, and which of them a new subscription receives
//! (MQTT 5.0 §3.3.1.3).
//!
//! Owns [`RetainedTree`]. Called by the PUBLISH handler of the shard that owns a topic's
//! retained message (insert on a retained PUBLISH, remove on a retained PUBLISH with an empty
//! payload [MQTT-3.3.1-6]), by the SUBSCRIBE handler to find the messages to send
//! ([`for_each_match`](RetainedTree::for_each_match)), and by persistence and replication
//! ([`iter`](RetainedTree::iter)).
//!
//! ```text
//!   root ─┬─ children["sport"] ─── children["tennis"] ── retained: (sport/tennis, m1)
//!         │                     └─ retained: (sport, m2)
//!         └─ children["$SYS"] ──── children["uptime"] ── retained: ($SYS/uptime, m3)
//! ```
//!
//! This is the dual of the [`SubscriptionTrie`](super::SubscriptionTrie): the tree holds
//! topic names and is walked by a filter's levels, so `+` visits every child of one node and
//! `#` a whole subtree, and a literal level is one hash lookup. A walk never scans topics the
//! filter cannot match.

use std::collections::hash_map::Values;

use rustc_hash::FxHashMap;

use super::levels::{starts_with_dollar, Levels, MULTI_LEVEL, SINGLE_LEVEL};
use super::trie::release_spare_capacity;
use super::validate::{valid_topic_filter, valid_topic_name};

/// Retained messages keyed by topic name, at most one per topic.
///
/// Placement: one per shard, holding the retained messages of the topics that hash to that
/// shard, so a retained PUBLISH is stored by exactly one core and needs no lock. A SUBSCRIBE
/// asks every shard's tree (the filter may match topics of any shard).
///
/// Each stored message keeps its full topic next to the value, so
/// [`for_each_match`](Self::for_each_match) and [`iter`](Self::iter) hand out `&[u8]` topics
/// without rebuilding them; the cost is the topic bytes stored once more.
///
/// Allocation: [`get`](Self::get) and [`for_each_match`](Self::for_each_match) allocate
/// nothing; [`insert`](Self::insert) allocates the topic copy and new nodes;
/// [`remove`](Self::remove) prunes nodes left empty.
#[derive(Debug)]
pub struct RetainedTree<V> {
    /// The position before the first level; it never holds a message.
    root: Node<V>,
    /// Number of retained messages.
    len: usize,
}

#[derive(Debug)]
struct Node<V> {
    /// The message retained on the topic that ends here.
    retained: Option<Retained<V>>,
    /// Children by level bytes.
    children: FxHashMap<Box<[u8]>, Node<V>>,
}

#[derive(Debug)]
struct Retained<V> {
    topic: Box<[u8]>,
    value: V,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self {
            retained: None,
            children: FxHashMap::default(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.retained.is_none() && self.children.is_empty()
    }

    fn descendants(&self) -> usize {
        self.children
            .values()
            .map(|child| 1 + child.descendants())
            .sum()
    }
}

impl<V> Default for RetainedTree<V> {
    fn default() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> RetainedTree<V> {
    /// An empty tree. Allocates nothing until the first insert.
    pub fn new() -> Self {
        Self::default()
    }

    /// Retains `value` on `topic`, returning the message it replaces [MQTT-3.3.1-5].
    ///
    /// # Panics
    ///
    /// On a topic that is not valid by [`valid_topic_name`](super::valid_topic_name): a
    /// programmer error, because the tree's depth relies on the level limit that validation
    /// enforces.
    pub fn insert(&mut self, topic: &[u8], value: V) -> Option<V> {
        assert!(
            valid_topic_name(topic),
            "insert of an unvalidated topic name"
        );
        let replaced = insert_at(&mut self.root, Levels::new(topic), topic, value);
        if replaced.is_none() {
            self.len += 1;
        }
        assert!(self.root.retained.is_none(), "the root holds no topic");
        replaced
    }

    /// Drops the message retained on `topic` and returns it, or `None` when there is none.
    /// Nodes left empty are dropped. Any bytes are accepted as `topic`.
    ///
    /// # Panics
    ///
    /// Never on any input; the assertions check the tree's own count against its nodes.
    pub fn remove(&mut self, topic: &[u8]) -> Option<V> {
        let removed = remove_at(&mut self.root, Levels::new(topic))?;
        assert!(
            self.len > 0,
            "removed a message from a tree that counted none"
        );
        self.len -= 1;
        if self.len == 0 {
            assert!(self.root.is_empty(), "an empty tree kept nodes");
        }
        Some(removed)
    }

    /// The message retained on exactly `topic`.
    pub fn get(&self, topic: &[u8]) -> Option<&V> {
        let mut node = &self.root;
        for level in Levels::new(topic) {
            node = node.children.get(level)?;
        }
        node.retained.as_ref().map(|retained| &retained.value)
    }

    /// Calls `f` with the full topic and message of every retained message whose topic
    /// `filter` matches, in no particular order. Follows [`matches`](super::matches),
    /// including [MQTT-4.7.2-1]: a filter starting with `+` or `#` skips topics starting with
    /// `$`.
    ///
    /// Allocates nothing; recursion is bounded by the depth of the tree.
    ///
    /// # Panics
    ///
    /// On a filter that is not valid by [`valid_topic_filter`](super::valid_topic_filter)
    /// (for a shared subscription, pass the part after the `ShareName`): a programmer error.
    pub fn for_each_match<F>(&self, filter: &[u8], mut f: F)
    where
        F: FnMut(&[u8], &V),
    {
        assert!(
            valid_topic_filter(filter),
            "match of an unvalidated topic filter"
        );
        match_at(&self.root, Levels::new(filter), Depth::Root, &mut f);
    }

    /// Every retained message with its topic, in no particular order. Allocates a stack as
    /// deep as the tree.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> + '_ {
        Iter {
            stack: vec![self.root.children.values()],
            remaining: self.len,
        }
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no message is retained.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of nodes besides the root, counted by walking the tree: zero exactly when the
    /// tree is empty and every node was pruned. For tests and memory diagnostics; O(nodes).
    pub fn node_count(&self) -> usize {
        self.root.descendants()
    }
}

/// Whether a walk stands on the root, where the `$` rule applies to wildcards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Depth {
    Root,
    Below,
}

/// Recursion: once per level, bounded by [`TOPIC_LEVELS_MAX`](super::TOPIC_LEVELS_MAX).
fn insert_at<V>(node: &mut Node<V>, mut levels: Levels<'_>, topic: &[u8], value: V) -> Option<V> {
    let Some(level) = levels.next() else {
        return match &mut node.retained {
            Some(retained) => Some(std::mem::replace(&mut retained.value, value)),
            None => {
                node.retained = Some(Retained {
                    topic: Box::from(topic),
                    value,
                });
                None
            }
        };
    };
    if let Some(child) = node.children.get_mut(level) {
        return insert_at(child, levels, topic, value);
    }
    let mut child = Node::default();
    let replaced = insert_at(&mut child, levels, topic, value);
    debug_assert!(replaced.is_none(), "a new branch replaced a message");
    node.children.insert(Box::from(level), child);
    replaced
}

/// Recursion: once per level, at most the depth of the tree.
fn remove_at<V>(node: &mut Node<V>, mut levels: Levels<'_>) -> Option<V> {
    let Some(level) = levels.next() else {
        return node.retained.take().map(|retained| retained.value);
    };
    let child = node.children.get_mut(level)?;
    let removed = remove_at(child, levels)?;
    if child.is_empty() {
        let pruned = node.children.remove(level);
        debug_assert!(pruned.is_some());
        release_spare_capacity(&mut node.children);
    }
    Some(removed)
}

/// Reports the matches of the rest of a filter, `levels`, below `node`.
///
/// Recursion: once per level, at most the depth of the tree.
fn match_at<V, F>(node: &Node<V>, mut levels: Levels<'_>, depth: Depth, f: &mut F)
where
    F: FnMut(&[u8], &V),
{
    let Some(level) = levels.next() else {
        report(node, f);
        return;
    };
    if level == MULTI_LEVEL {
        // `#` matches the parent level too (§4.7.1.2); the root has no message.
        report(node, f);
        for child in wildcard_children(node, depth) {
            report_subtree(child, f);
        }
    } else if level == SINGLE_LEVEL {
        for child in wildcard_children(node, depth) {
            match_at(child, levels, Depth::Below, f);
        }
    } else if let Some(child) = node.children.get(level) {
        match_at(child, levels, Depth::Below, f);
    }
}

/// The children a wildcard level may enter: all of them, except at the root, where topics
/// starting with `$` are out of a wildcard's reach [MQTT-4.7.2-1].
fn wildcard_children<V>(node: &Node<V>, depth: Depth) -> impl Iterator<Item = &Node<V>> {
    node.children
        .iter()
        .filter(move |(level, _)| depth == Depth::Below || !starts_with_dollar(level))
        .map(|(_, child)| child)
}

fn report<V, F>(node: &Node<V>, f: &mut F)
where
    F: FnMut(&[u8], &V),
{
    if let Some(retained) = &node.retained {
        f(&retained.topic, &retained.value);
    }
}

/// Recursion: once per level, at most the depth of the tree.
fn report_subtree<V, F>(node: &Node<V>, f: &mut F)
where
    F: FnMut(&[u8], &V),
{
    report(node, f);
    for child in node.children.values() {
        report_subtree(child, f);
    }
}

/// Iterator behind [`RetainedTree::iter`]: depth first, one map iterator per level.
struct Iter<'a, V> {
    stack: Vec<Values<'a, Box<[u8]>, Node<V>>>,
    remaining: usize,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a [u8], &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let node = match self.stack.last_mut()?.next() {
                Some(node) => node,
                None => {
                    self.stack.pop();
                    continue;
                }
            };
            self.stack.push(node.children.values());
            if let Some(retained) = &node.retained {
                assert!(
                    self.remaining > 0,
                    "the tree holds more messages than it counts"
                );
                self.remaining -= 1;
                return Some((&retained.topic, &retained.value));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

#[cfg(test)]
mod tests {
    use super::RetainedTree;

    fn matching(tree: &RetainedTree<u32>, filter: &str) -> Vec<(String, u32)> {
        let mut found = Vec::new();
        tree.for_each_match(filter.as_bytes(), |topic, &value| {
            found.push((String::from_utf8_lossy(topic).into_owned(), value));
        });
        found.sort();
        found
    }

    fn entries(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
        pairs
            .iter()
            .map(|&(topic, value)| (topic.to_owned(), value))
            .collect()
    }

    fn tree() -> RetainedTree<u32> {
        let mut tree = RetainedTree::new();
        let topics = [
            "sport",
            "sport/tennis",
            "sport/tennis/player1",
            "/",
            "/finance",
            "$SYS/uptime",
        ];
        for (value, topic) in (1..).zip(topics) {
            assert_eq!(tree.insert(topic.as_bytes(), value), None);
        }
        tree
    }

    #[test]
    fn wildcards_walk_the_tree() {
        let tree = tree();
        assert_eq!(
            matching(&tree, "sport/#"),
            entries(&[
                ("sport", 1),
                ("sport/tennis", 2),
                ("sport/tennis/player1", 3)
            ])
        );
        assert_eq!(matching(&tree, "sport/+"), entries(&[("sport/tennis", 2)]));
        assert_eq!(matching(&tree, "+"), entries(&[("sport", 1)]));
        assert_eq!(
            matching(&tree, "+/+"),
            entries(&[("/", 4), ("/finance", 5), ("sport/tennis", 2)])
        );
        assert_eq!(matching(&tree, "/+"), entries(&[("/", 4), ("/finance", 5)]));
        assert_eq!(matching(&tree, "#").len(), 5);
        assert_eq!(matching(&tree, "$SYS/#"), entries(&[("$SYS/uptime", 6)]));
        assert_eq!(matching(&tree, "+/uptime"), entries(&[]));
        assert_eq!(
            matching(&tree, "sport/tennis/player1/#"),
            entries(&[("sport/tennis/player1", 3)])
        );
        assert_eq!(matching(&tree, "nothing/#"), entries(&[]));
    }

    #[test]
    fn insert_replaces_and_remove_prunes() {
        let mut tree = tree();
        assert_eq!(tree.len(), 6);
        assert_eq!(tree.insert(b"sport", 10), Some(1));
        assert_eq!(tree.get(b"sport"), Some(&10));
        assert_eq!(tree.get(b"sport/tennis/player2"), None);
        assert_eq!(tree.remove(b"sport"), Some(10));
        assert_eq!(tree.remove(b"sport"), None);
        assert_eq!(tree.get(b"sport/tennis"), Some(&2));
        let mut all: Vec<(Vec<u8>, u32)> = tree
            .iter()
            .map(|(topic, &value)| (topic.to_vec(), value))
            .collect();
        all.sort();
        assert_eq!(all.len(), tree.iter().size_hint().0);
        for (topic, value) in all {
            assert_eq!(tree.remove(&topic), Some(value));
        }
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 0);
        assert_eq!(tree.iter().count(), 0);
    }
}
