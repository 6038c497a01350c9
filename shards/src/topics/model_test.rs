//! Property tests: every index in `topics` against a plain model and the [`matches`] oracle.
//!
//! Method: proptest generates sequences of operations over a small alphabet of levels, so
//! filters and topics collide often. The alphabet has `+`, `#`, `$SYS`, and the empty level
//! (which yields leading, trailing and doubled `/`). After every operation the structure is
//! compared with a `BTreeMap` model: counts, exact lookups, and the full set of matches for a
//! probe topic or filter, computed naively with [`matches`]. At the end everything is removed
//! and the structure must be empty and hold no nodes. The validators are compared with
//! independent split-based definitions.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;

use super::{
    matches, parse_subscription, valid_topic_filter, valid_topic_name, InterestTable, RetainedTree,
    Subscription, SubscriptionTrie,
};

fn join(levels: Vec<&str>) -> Vec<u8> {
    levels.join("/").into_bytes()
}

/// Topic names of 1 to 4 levels, e.g. `a`, `/`, `$SYS/a/`, `b//a`.
fn topic() -> impl Strategy<Value = Vec<u8>> {
    let level = prop::sample::select(vec!["a", "b", "", "$SYS"]);
    let topic = prop::collection::vec(level, 1..=4).prop_map(join);
    // One empty level joins to the empty string, which is no topic [MQTT-4.7.3-1].
    topic.prop_filter("topic names are non-empty", |topic| !topic.is_empty())
}

/// Valid topic filters of 1 to 4 levels, e.g. `+`, `#`, `/#`, `$SYS/+/a`, `a//+`.
fn filter() -> impl Strategy<Value = Vec<u8>> {
    let level = prop::sample::select(vec!["a", "b", "", "$SYS", "+"]);
    let plain = prop::collection::vec(level.clone(), 1..=4)
        .prop_map(join)
        .prop_filter("topic filters are non-empty", |filter| !filter.is_empty());
    let multi_level = prop::collection::vec(level, 0..=3).prop_map(|mut levels| {
        levels.push("#");
        join(levels)
    });
    prop_oneof![plain, multi_level]
}

/// An existing model entry chosen by `index`, or `fallback` when the model is empty or the
/// operation asks for a (probably) absent one.
fn pick<K, V>(model: &BTreeMap<K, V>, existing: bool, index: &Index, fallback: K) -> K
where
    K: Clone,
{
    if !existing || model.is_empty() {
        return fallback;
    }
    model
        .keys()
        .nth(index.index(model.len()))
        .cloned()
        .unwrap_or(fallback)
}

#[derive(Clone, Debug)]
enum TrieOp {
    Subscribe {
        filter: Vec<u8>,
        key: u8,
    },
    Unsubscribe {
        existing: bool,
        index: Index,
        filter: Vec<u8>,
        key: u8,
    },
}

fn trie_op() -> impl Strategy<Value = TrieOp> {
    prop_oneof![
        3 => (filter(), 0..3_u8).prop_map(|(filter, key)| TrieOp::Subscribe { filter, key }),
        2 => (any::<bool>(), any::<Index>(), filter(), 0..3_u8).prop_map(
            |(existing, index, filter, key)| TrieOp::Unsubscribe { existing, index, filter, key }
        ),
    ]
}

type TrieModel = BTreeMap<(Vec<u8>, u8), u32>;
/// The trie's value carries its own filter, so a match report names the (filter, key) pair.
type ModelTrie = SubscriptionTrie<u8, (Vec<u8>, u32)>;

fn trie_matches(trie: &ModelTrie, topic: &[u8]) -> Vec<(Vec<u8>, u8, u32)> {
    let mut found = Vec::new();
    trie.for_each_match(topic, |&key, (filter, seq)| {
        found.push((filter.clone(), key, *seq))
    });
    found.sort();
    found
}

fn model_matches(model: &TrieModel, topic: &[u8]) -> Vec<(Vec<u8>, u8, u32)> {
    let mut found: Vec<_> = model
        .iter()
        .filter(|((filter, _), _)| matches(filter, topic))
        .map(|((filter, key), &seq)| (filter.clone(), *key, seq))
        .collect();
    found.sort();
    found
}

fn apply_trie_op(trie: &mut ModelTrie, model: &mut TrieModel, op: TrieOp, seq: u32) {
    match op {
        TrieOp::Subscribe { filter, key } => {
            let replaced = trie.insert(&filter, key, (filter.clone(), seq));
            let expected = model.insert((filter.clone(), key), seq);
            assert_eq!(replaced.map(|(_, old)| old), expected);
            assert_eq!(trie.get(&filter, &key).map(|(_, seq)| *seq), Some(seq));
        }
        TrieOp::Unsubscribe {
            existing,
            index,
            filter,
            key,
        } => {
            let (filter, key) = pick(model, existing, &index, (filter, key));
            let removed = trie.remove(&filter, &key).map(|(_, seq)| seq);
            assert_eq!(removed, model.remove(&(filter.clone(), key)));
            assert_eq!(trie.get(&filter, &key), None);
        }
    }
}

fn check_trie_counts(trie: &ModelTrie, model: &TrieModel) {
    let mut filters: Vec<&Vec<u8>> = model.keys().map(|(filter, _)| filter).collect();
    filters.dedup();
    assert_eq!(trie.len(), model.len());
    assert_eq!(trie.filter_count(), filters.len());
    assert_eq!(trie.is_empty(), model.is_empty());
}

fn check_trie_listing(trie: &ModelTrie, model: &TrieModel) {
    let mut listed: Vec<(Vec<u8>, u8, u32)> = trie
        .filters()
        .map(|(filter, &key, (own_filter, seq))| {
            assert_eq!(&filter[..], &own_filter[..]);
            (filter.to_vec(), key, *seq)
        })
        .collect();
    listed.sort();
    let expected: Vec<_> = model
        .iter()
        .map(|((filter, key), &seq)| (filter.clone(), *key, seq))
        .collect();
    assert_eq!(listed, expected);
}

#[derive(Clone, Debug)]
enum InterestOp {
    Add {
        filter: Vec<u8>,
        shard: u8,
    },
    Remove {
        existing: bool,
        index: Index,
        filter: Vec<u8>,
        shard: u8,
    },
}

fn shard() -> impl Strategy<Value = u8> {
    prop_oneof![0..4_u8, Just(63_u8)]
}

fn interest_op() -> impl Strategy<Value = InterestOp> {
    prop_oneof![
        3 => (filter(), shard()).prop_map(|(filter, shard)| InterestOp::Add { filter, shard }),
        2 => (any::<bool>(), any::<Index>(), filter(), shard()).prop_map(
            |(existing, index, filter, shard)| InterestOp::Remove { existing, index, filter, shard }
        ),
    ]
}

type InterestModel = BTreeMap<(Vec<u8>, u8), u32>;

fn apply_interest_op(table: &mut InterestTable, model: &mut InterestModel, op: InterestOp) {
    match op {
        InterestOp::Add { filter, shard } => {
            let count = model.entry((filter.clone(), shard)).or_insert(0);
            *count += 1;
            assert_eq!(table.add(&filter, shard), *count == 1);
            assert_eq!(table.count(&filter, shard), *count);
        }
        InterestOp::Remove {
            existing,
            index,
            filter,
            shard,
        } => {
            let (filter, shard) = pick(model, existing, &index, (filter, shard));
            let went_to_zero = match model.get_mut(&(filter.clone(), shard)) {
                None => false,
                Some(1) => {
                    model.remove(&(filter.clone(), shard));
                    true
                }
                Some(count) => {
                    *count -= 1;
                    false
                }
            };
            assert_eq!(table.remove(&filter, shard), went_to_zero);
        }
    }
}

fn naive_shards(model: &InterestModel, topic: &[u8]) -> u64 {
    model
        .keys()
        .filter(|(filter, _)| matches(filter, topic))
        .fold(0, |mask, (_, shard)| mask | (1_u64 << shard))
}

#[derive(Clone, Debug)]
enum RetainedOp {
    Insert {
        topic: Vec<u8>,
    },
    Remove {
        existing: bool,
        index: Index,
        topic: Vec<u8>,
    },
}

fn retained_op() -> impl Strategy<Value = RetainedOp> {
    prop_oneof![
        3 => topic().prop_map(|topic| RetainedOp::Insert { topic }),
        2 => (any::<bool>(), any::<Index>(), topic()).prop_map(
            |(existing, index, topic)| RetainedOp::Remove { existing, index, topic }
        ),
    ]
}

type RetainedModel = BTreeMap<Vec<u8>, u32>;

fn apply_retained_op(
    tree: &mut RetainedTree<u32>,
    model: &mut RetainedModel,
    op: RetainedOp,
    seq: u32,
) {
    match op {
        RetainedOp::Insert { topic } => {
            assert_eq!(tree.insert(&topic, seq), model.insert(topic.clone(), seq));
            assert_eq!(tree.get(&topic), Some(&seq));
        }
        RetainedOp::Remove {
            existing,
            index,
            topic,
        } => {
            let topic = pick(model, existing, &index, topic);
            assert_eq!(tree.remove(&topic), model.remove(&topic));
            assert_eq!(tree.get(&topic), None);
        }
    }
}

fn retained_matches(tree: &RetainedTree<u32>, filter: &[u8]) -> Vec<(Vec<u8>, u32)> {
    let mut found = Vec::new();
    tree.for_each_match(filter, |topic, &seq| found.push((topic.to_vec(), seq)));
    found.sort();
    found
}

fn model_retained_matches(model: &RetainedModel, filter: &[u8]) -> Vec<(Vec<u8>, u32)> {
    model
        .iter()
        .filter(|(topic, _)| matches(filter, topic))
        .map(|(topic, &seq)| (topic.clone(), seq))
        .collect()
}

/// Split-based definition of a valid topic filter, independent of the one-pass scanner.
fn reference_valid_filter(filter: &[u8]) -> bool {
    let levels: Vec<&[u8]> = filter.split(|&byte| byte == b'/').collect();
    let last = levels.len() - 1;
    !filter.is_empty()
        && !filter.contains(&0)
        && levels.len() <= super::TOPIC_LEVELS_MAX
        && levels.iter().enumerate().all(|(position, level)| {
            let wildcards = level
                .iter()
                .filter(|&&byte| byte == b'+' || byte == b'#')
                .count();
            wildcards == 0 || *level == b"+" || (*level == b"#" && position == last)
        })
}

fn reference_valid_name(topic: &[u8]) -> bool {
    !topic.is_empty()
        && !topic
            .iter()
            .any(|&byte| byte == b'+' || byte == b'#' || byte == 0)
}

/// Strings over the bytes that matter to validation and `$share` parsing.
fn raw_filter() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop::sample::select(vec!["a", "/", "+", "#", "$", "\0", "$share", "$share/"]);
    prop::collection::vec(pieces, 0..8).prop_map(|pieces| pieces.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The subscription trie reports exactly the model's matching (filter, key) pairs, each
    /// once, after every subscribe and unsubscribe.
    #[test]
    fn trie_equals_model(steps in prop::collection::vec((trie_op(), topic()), 1..60)) {
        let mut trie = ModelTrie::new();
        let mut model = TrieModel::new();
        for (seq, (op, probe)) in (0_u32..).zip(steps) {
            apply_trie_op(&mut trie, &mut model, op, seq);
            check_trie_counts(&trie, &model);
            prop_assert_eq!(trie_matches(&trie, &probe), model_matches(&model, &probe));
        }
        check_trie_listing(&trie, &model);
        for ((filter, key), seq) in std::mem::take(&mut model) {
            prop_assert_eq!(trie.remove(&filter, &key).map(|(_, seq)| seq), Some(seq));
        }
        prop_assert!(trie.is_empty());
        prop_assert_eq!(trie.filter_count(), 0);
        prop_assert_eq!(trie.node_count(), 0);
        prop_assert_eq!(trie.filters().count(), 0);
    }

    /// The interest table's mask is the OR of the shards of the model's matching filters,
    /// and add/remove report exactly the 0→1 and 1→0 transitions.
    #[test]
    fn interest_equals_model(steps in prop::collection::vec((interest_op(), topic()), 1..60)) {
        let mut table = InterestTable::new();
        let mut model = InterestModel::new();
        for (op, probe) in steps {
            apply_interest_op(&mut table, &mut model, op);
            prop_assert_eq!(table.len(), model.len());
            prop_assert_eq!(table.shards_matching(&probe), naive_shards(&model, &probe));
        }
        for ((filter, shard), count) in std::mem::take(&mut model) {
            for remaining in (0..count).rev() {
                prop_assert_eq!(table.remove(&filter, shard), remaining == 0);
            }
        }
        prop_assert!(table.is_empty());
        prop_assert_eq!(table.node_count(), 0);
    }

    /// The retained tree yields exactly the model's topics that a probe filter matches.
    #[test]
    fn retained_equals_model(steps in prop::collection::vec((retained_op(), filter()), 1..60)) {
        let mut tree = RetainedTree::new();
        let mut model = RetainedModel::new();
        for (seq, (op, probe)) in (0_u32..).zip(steps) {
            apply_retained_op(&mut tree, &mut model, op, seq);
            prop_assert_eq!(tree.len(), model.len());
            let expected = model_retained_matches(&model, &probe);
            prop_assert_eq!(retained_matches(&tree, &probe), expected);
        }
        let mut listed: Vec<(Vec<u8>, u32)> =
            tree.iter().map(|(topic, &seq)| (topic.to_vec(), seq)).collect();
        listed.sort();
        prop_assert_eq!(listed, model.clone().into_iter().collect::<Vec<_>>());
        for (topic, seq) in std::mem::take(&mut model) {
            prop_assert_eq!(tree.remove(&topic), Some(seq));
        }
        prop_assert!(tree.is_empty());
        prop_assert_eq!(tree.node_count(), 0);
    }

    /// The one-pass validators agree with split-based definitions, and a shared subscription
    /// reassembles into the string it was parsed from.
    #[test]
    fn validation_equals_reference(raw in raw_filter()) {
        prop_assert_eq!(valid_topic_filter(&raw), reference_valid_filter(&raw));
        prop_assert_eq!(valid_topic_name(&raw), reference_valid_name(&raw));
        match parse_subscription(&raw) {
            Ok(Subscription::Plain { filter }) => {
                prop_assert_eq!(filter, &raw[..]);
                prop_assert!(!raw.starts_with(b"$share/"));
                prop_assert!(valid_topic_filter(filter));
            }
            Ok(Subscription::Shared { group, filter }) => {
                prop_assert_eq!([&b"$share/"[..], group, b"/", filter].concat(), raw.clone());
                prop_assert!(valid_topic_filter(filter));
            }
            Err(_) => prop_assert!(raw.starts_with(b"$share") || !valid_topic_filter(&raw)),
        }
    }
}
