//! The reference matcher: does one topic filter match one topic name (MQTT 5.0 §4.7)?
//!
//! Owns [`matches`], written to be obviously correct rather than fast: it walks the filter
//! and the topic level by level, side by side. The property tests hold the
//! [`SubscriptionTrie`](super::SubscriptionTrie), the [`InterestTable`](super::InterestTable)
//! and the [`RetainedTree`](super::RetainedTree) to it. Production code may call it for a
//! one-off check (an ACL pattern, a bridge rule); the publish path uses the trie instead.

use super::levels::{starts_with_dollar, Levels};

/// Whether topic filter `filter` matches topic name `topic`.
///
/// - Levels are compared byte for byte, so matching is case sensitive and empty levels count
///   (`+/+` and `/+` match `/finance`; `+` does not).
/// - `+` matches exactly one level, including an empty one (§4.7.1.3).
/// - `#` matches its parent level and any number of child levels, so `sport/#` matches
///   `sport`, `sport/` and `sport/tennis/player1` (§4.7.1.2).
/// - A filter starting with `+` or `#` never matches a topic starting with `$`, such as
///   `$SYS/broker/uptime` [MQTT-4.7.2-1]; `$SYS/#` does.
///
/// Both arguments are expected to be valid ([`valid_topic_filter`](super::valid_topic_filter)
/// and [`valid_topic_name`](super::valid_topic_name)); for anything else the answer means
/// nothing but is still computed without panicking. No allocation.
pub fn matches(filter: &[u8], topic: &[u8]) -> bool {
    let wildcard_first = matches!(filter.first(), Some(b'+' | b'#'));
    if wildcard_first && starts_with_dollar(topic) {
        return false;
    }
    let mut filter_levels = Levels::new(filter);
    let mut topic_levels = Levels::new(topic);
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some(b"#"), _) => return true,
            (Some(b"+"), Some(_)) => {}
            (Some(filter_level), Some(topic_level)) if filter_level == topic_level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    /// (filter, topic, expected). The first block is every example of MQTT 5.0 §4.7.1.2,
    /// §4.7.1.3 and §4.7.2 that names both a filter and a topic.
    const CASES: &[(&str, &str, bool)] = &[
        // §4.7.1.2 Multi-level wildcard.
        ("sport/tennis/player1/#", "sport/tennis/player1", true),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/ranking",
            true,
        ),
        (
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon",
            true,
        ),
        ("sport/#", "sport", true),
        ("#", "sport/tennis/player1", true),
        // §4.7.1.3 Single-level wildcard.
        ("sport/tennis/+", "sport/tennis/player1", true),
        ("sport/tennis/+", "sport/tennis/player2", true),
        ("sport/tennis/+", "sport/tennis/player1/ranking", false),
        ("sport/+", "sport", false),
        ("sport/+", "sport/", true),
        ("+/+", "/finance", true),
        ("/+", "/finance", true),
        ("+", "/finance", false),
        ("sport/+/player1", "sport/tennis/player1", true),
        ("+/tennis/#", "sport/tennis/player1/ranking", true),
        // §4.7.2 Topics beginning with $.
        ("#", "$SYS/broker/clients", false),
        ("+/monitor/Clients", "$SYS/monitor/Clients", false),
        ("$SYS/#", "$SYS/monitor/Clients", true),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ("+", "$SYS", false),
        ("#", "$", false),
        ("$SYS/#", "$SYS", true),
        ("$SYS", "$SYS", true),
        ("+/#", "a$/b", true),
        ("a/#", "a/$SYS", true),
        ("a/+", "a/$SYS", true),
        // §4.7.3 Case sensitivity and exactness.
        ("ACCOUNTS", "Accounts", false),
        ("Accounts payable", "Accounts payable", true),
        ("sport/tennis", "sport/tennis/", false),
        ("sport/tennis/", "sport/tennis", false),
        // Empty levels and `/` alone.
        ("/", "/", true),
        ("+/+", "/", true),
        ("+", "/", false),
        ("#", "/", true),
        ("/#", "/", true),
        ("/#", "/a/b", true),
        ("/#", "a", false),
        ("a//b", "a//b", true),
        ("a/+/b", "a//b", true),
        ("a/+/b", "a/b", false),
        ("+/+/+", "//", true),
        ("a/+", "a/", true),
        ("a/+/#", "a/", true),
        ("a/+/#", "a", false),
        // `#` against its parent level and deeper levels.
        ("a/#", "a", true),
        ("a/#", "a/", true),
        ("a/#", "ab", false),
        ("a/b/#", "a", false),
        ("+/#", "a", true),
        ("#", "a", true),
        ("a", "a/b", false),
        ("a/b", "a", false),
    ];

    #[test]
    fn spec_examples_and_edges() {
        for &(filter, topic, expected) in CASES {
            let actual = matches(filter.as_bytes(), topic.as_bytes());
            assert_eq!(
                actual, expected,
                "filter {filter:?} against topic {topic:?}"
            );
        }
    }
}
