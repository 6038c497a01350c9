//! Tests of the server → client alias table: a client's view of every choice stays
//! consistent (property test), the replacement rule keeps a stable set under cyclic load
//! and follows a change of busy topics, and `policy_comparison` measures the bytes saved
//! against no aliases, Mosquitto 2.1's first-come table and LRU replacement.

use super::*;
use crate::mqtt::PublishProperties;
use crate::mqtt::QoS;
use proptest::prelude::*;
use std::collections::HashMap;

/// What the client knows: alias → topic, as it learns from each PUBLISH.
#[derive(Default)]
struct ClientView {
    topics: HashMap<u16, Vec<u8>>,
}

impl ClientView {
    /// Applies one choice for `topic` the way the client reads the PUBLISH, and returns
    /// the bytes the topic field and alias property took on the wire.
    fn receive(&mut self, max: u16, topic: &[u8], choice: Choice) -> usize {
        match choice {
            Choice::Known(alias) => {
                assert!((1..=max).contains(&alias), "alias {alias} within 1..={max}");
                assert_eq!(
                    self.topics.get(&alias).map(Vec::as_slice),
                    Some(topic),
                    "alias {alias} names the topic the client was told"
                );
                2 + ALIAS_BYTES
            }
            Choice::Assign(assignment) => {
                let alias = assignment.alias();
                assert!((1..=max).contains(&alias), "alias {alias} within 1..={max}");
                self.topics.insert(alias, topic.to_vec());
                2 + topic.len() + ALIAS_BYTES
            }
            Choice::Plain => 2 + topic.len(),
        }
    }
}

fn send(table: &mut ServerAliases, view: &mut ClientView, topic: &[u8]) -> usize {
    let choice = table.choose(topic);
    if let Choice::Assign(assignment) = choice {
        table.assign(assignment, topic);
    }
    view.receive(table.max(), topic, choice)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the sequence of topics, and whether or not the caller records a new alias
    /// (it does not when the packet with it would be too large for the client), the
    /// client never sees an alias it was not given for that topic, nor one above its
    /// maximum. Pools larger than the tables make replacements frequent; tables above
    /// `VICTIM_SAMPLE` entries take the sampled path.
    #[test]
    fn every_alias_the_client_sees_names_its_topic(
        max in prop_oneof![1u16..6, 17u16..40],
        pool_len in 2usize..64,
        sequence in prop::collection::vec((0usize..64, any::<bool>()), 1..1500),
    ) {
        let pool: Vec<Vec<u8>> = (0..pool_len)
            .map(|i| format!("t/{}{}", "x".repeat(i % 7), i).into_bytes())
            .chain(["a", "ab", "abc"].iter().map(|s| s.as_bytes().to_vec()))
            .collect();
        let mut table = ServerAliases::new(max);
        let mut view = ClientView::default();
        for (pick, record) in sequence {
            let topic = &pool[pick % pool.len()];
            let choice = table.choose(topic);
            match choice {
                Choice::Assign(assignment) if record => {
                    table.assign(assignment, topic);
                    view.receive(max, topic, choice);
                }
                // Not recorded: the client got the topic alone.
                Choice::Assign(_) => {
                    view.receive(max, topic, Choice::Plain);
                }
                _ => {
                    view.receive(max, topic, choice);
                }
            }
            for alias in 1..=max {
                if let Some(known) = table.topic_of(alias) {
                    prop_assert_eq!(view.topics.get(&alias).map(Vec::as_slice), Some(known));
                    // The index finds every entry (replacements keep it whole).
                    let slot = usize::from(alias) - 1;
                    prop_assert_eq!(table.find(hash(known), known), Some(slot));
                }
            }
        }
    }
}

#[test]
fn topics_of_three_bytes_or_less_never_get_an_alias() {
    let mut table = ServerAliases::new(10);
    for _ in 0..3 {
        for topic in ["a", "ab", "abc"] {
            assert_eq!(table.choose(topic.as_bytes()), Choice::Plain);
        }
    }
    assert!(matches!(table.choose(b"abcd"), Choice::Assign(_)));
}

#[test]
fn no_table_without_a_maximum_on_both_sides() {
    assert!(ServerAliases::for_client(None, 10).is_none());
    assert!(ServerAliases::for_client(Some(0), 10).is_none());
    assert!(ServerAliases::for_client(Some(5), 0).is_none());
    assert_eq!(
        ServerAliases::for_client(Some(5), 10).map(|t| t.max()),
        Some(5)
    );
    assert_eq!(
        ServerAliases::for_client(Some(500), 10).map(|t| t.max()),
        Some(10)
    );
}

#[test]
fn the_first_message_names_the_topic_and_later_ones_only_the_alias() {
    let mut table = ServerAliases::new(2);
    let Choice::Assign(first) = table.choose(b"plant/line-1/temperature") else {
        panic!("a free alias is assigned")
    };
    table.assign(first, b"plant/line-1/temperature");
    assert_eq!(first.alias(), 1);
    assert_eq!(table.choose(b"plant/line-1/temperature"), Choice::Known(1));
    let Choice::Assign(second) = table.choose(b"plant/line-2/temperature") else {
        panic!("the second free alias is assigned")
    };
    assert_eq!(second.alias(), 2);
}

/// More busy topics than aliases, visited in a cycle (the worst case of LRU): the table
/// settles on the topics that save most (the longest) within a few rounds and then keeps
/// its set, so no message pays for a new alias again.
#[test]
fn a_cycle_over_more_topics_than_aliases_settles() {
    let topics = topics(20);
    let mut table = ServerAliases::new(10);
    let mut view = ClientView::default();
    let mut replacements_by_round = Vec::new();
    for _ in 0..5000 {
        let mut replacements = 0;
        for topic in &topics {
            let choice = table.choose(topic);
            if let Choice::Assign(assignment) = choice {
                table.assign(assignment, topic);
                replacements += 1;
            }
            view.receive(10, topic, choice);
        }
        replacements_by_round.push(replacements);
    }
    let settled = replacements_by_round
        .iter()
        .rposition(|r| *r > 0)
        .map_or(0, |last| last + 1);
    assert!(settled <= 500, "replacements until round {settled}");
    let mut longest = topics.clone();
    longest.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for topic in &longest[..10] {
        assert!(matches!(table.choose(topic), Choice::Known(_)));
    }
}

/// When the busy topics change, the new ones take the aliases over within a few thousand
/// messages, and then keep them.
#[test]
fn new_busy_topics_take_the_aliases_over() {
    let old = topics(10);
    let new: Vec<Vec<u8>> = topics(20).split_off(10);
    let mut table = ServerAliases::new(10);
    let mut view = ClientView::default();
    for _ in 0..2000 {
        for topic in &old {
            send(&mut table, &mut view, topic);
        }
    }
    let mut messages = 0;
    while !new
        .iter()
        .all(|topic| (1..=10).any(|alias| table.topic_of(alias) == Some(topic)))
    {
        for topic in &new {
            send(&mut table, &mut view, topic);
        }
        messages += new.len();
        assert!(messages < 20_000, "new topics still without aliases");
    }
    for topic in &new {
        assert!(matches!(table.choose(topic), Choice::Known(_)));
    }
}

/// Topics of 40 to 100 bytes, all different.
fn topics(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let mut topic = format!("site/{i:04}/sensor/").into_bytes();
            topic.resize(40 + (i * 37) % 61, b'x');
            topic
        })
        .collect()
}

/// A deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// How a policy sends one topic.
enum Form {
    Plain,
    New,
    Known,
}

trait Policy {
    fn send(&mut self, topic: &[u8]) -> Form;
}

struct NoAliases;

impl Policy for NoAliases {
    fn send(&mut self, _: &[u8]) -> Form {
        Form::Plain
    }
}

/// Mosquitto 2.1: aliases to the first topics, until full; never replaced.
struct FirstCome(HashMap<Vec<u8>, ()>, usize);

impl Policy for FirstCome {
    fn send(&mut self, topic: &[u8]) -> Form {
        if self.0.contains_key(topic) {
            Form::Known
        } else if self.0.len() < self.1 {
            self.0.insert(topic.to_vec(), ());
            Form::New
        } else {
            Form::Plain
        }
    }
}

/// Least recently used topic loses its alias to every new one.
struct Lru {
    last_use: HashMap<Vec<u8>, u64>,
    clock: u64,
    max: usize,
}

impl Policy for Lru {
    fn send(&mut self, topic: &[u8]) -> Form {
        self.clock += 1;
        if let Some(used) = self.last_use.get_mut(topic) {
            *used = self.clock;
            return Form::Known;
        }
        if self.last_use.len() >= self.max {
            let oldest = self
                .last_use
                .iter()
                .min_by_key(|(_, used)| **used)
                .map(|(topic, _)| topic.clone());
            if let Some(oldest) = oldest {
                self.last_use.remove(&oldest);
            }
        }
        self.last_use.insert(topic.to_vec(), self.clock);
        Form::New
    }
}

impl Policy for ServerAliases {
    fn send(&mut self, topic: &[u8]) -> Form {
        match self.choose(topic) {
            Choice::Known(_) => Form::Known,
            Choice::Assign(assignment) => {
                self.assign(assignment, topic);
                Form::New
            }
            Choice::Plain => Form::Plain,
        }
    }
}

/// Bytes of the QoS 0 MQTT 5.0 PUBLISH of a 64-byte payload in `form`.
fn wire_bytes(topic: &[u8], form: &Form) -> usize {
    let properties = PublishProperties::default();
    let publish = PublishEncode {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic,
        packet_id: None,
        topic_alias: None,
        message_expiry_interval: None,
        subscription_identifiers: &[],
        properties: &properties,
        payload: &[0; 64],
    };
    let publish = match form {
        Form::Plain => publish,
        Form::New => PublishEncode {
            topic_alias: Some(1),
            ..publish
        },
        Form::Known => PublishEncode {
            topic: &[],
            topic_alias: Some(1),
            ..publish
        },
    };
    publish_encoded_len(Protocol::V5, &publish).expect("valid PUBLISH")
}

/// A workload: the topic of each of 100,000 messages.
fn workload(name: &str) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let count = 100_000;
    match name {
        "10 topics, cycle" => cycle(&topics(10), count),
        "20 topics, cycle" => cycle(&topics(20), count),
        "10 topics, then 10 others" => {
            let all = topics(20);
            let mut first = cycle(&all[..10], count / 2);
            first.extend(cycle(&all[10..], count / 2));
            first
        }
        "Zipf over 1000 topics" => {
            let all = topics(1000);
            let weights: Vec<f64> = (1..=all.len()).map(|k| 1.0 / k as f64).collect();
            let total: f64 = weights.iter().sum();
            let mut cumulative = Vec::with_capacity(weights.len());
            let mut sum = 0.0;
            for weight in weights {
                sum += weight / total;
                cumulative.push(sum);
            }
            (0..count)
                .map(|_| {
                    let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
                    let k = cumulative.partition_point(|c| *c < u).min(all.len() - 1);
                    all[k].clone()
                })
                .collect()
        }
        "uniform over 1000 topics" => {
            let all = topics(1000);
            (0..count)
                .map(|_| all[rng.below(all.len())].clone())
                .collect()
        }
        other => panic!("unknown workload {other}"),
    }
}

fn cycle(topics: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
    topics.iter().cycle().take(count).cloned().collect()
}

fn total_bytes(policy: &mut dyn Policy, messages: &[Vec<u8>]) -> usize {
    messages
        .iter()
        .map(|topic| wire_bytes(topic, &policy.send(topic)))
        .sum()
}

/// Bytes on the wire for 100,000 QoS 0 messages of 64 bytes on 40–100 byte topics to a
/// client allowing 10 aliases, under each policy (run with `--nocapture` for the table).
/// Asserted: this table's policy never sends more than no aliases, nor more than
/// first-come; it beats LRU where LRU cycles and first-come where the topics change.
#[test]
fn policy_comparison() {
    let workloads = [
        "10 topics, cycle",
        "20 topics, cycle",
        "10 topics, then 10 others",
        "Zipf over 1000 topics",
        "uniform over 1000 topics",
    ];
    println!(
        "{:<28} {:>11} {:>11} {:>11} {:>11}",
        "workload (bytes)", "no aliases", "first-come", "LRU", "Culex"
    );
    for name in workloads {
        let messages = workload(name);
        let none = total_bytes(&mut NoAliases, &messages);
        let first = total_bytes(&mut FirstCome(HashMap::new(), 10), &messages);
        let lru = total_bytes(
            &mut Lru {
                last_use: HashMap::new(),
                clock: 0,
                max: 10,
            },
            &messages,
        );
        let culex = total_bytes(&mut ServerAliases::new(10), &messages);
        println!("{name:<28} {none:>11} {first:>11} {lru:>11} {culex:>11}");
        assert!(culex <= none, "{name}: never worse than no aliases");
        assert!(culex <= first, "{name}: never worse than first-come");
        match name {
            "20 topics, cycle" => assert!(culex < lru, "{name}: LRU cycles"),
            "10 topics, then 10 others" => assert!(culex < first, "{name}: topics change"),
            _ => {}
        }
    }
}
