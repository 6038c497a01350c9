//! Validation of topic names and topic filters (MQTT 5.0 §4.7, MQTT 3.1.1 §4.7).
//!
//! Owns the rules for what a topic name (in PUBLISH, a Will, a retained message) and a topic
//! filter (in SUBSCRIBE and UNSUBSCRIBE) may contain, and the limits on their size. Called by
//! the connection handlers on every packet that carries a topic, by
//! [`parse_subscription`](super::parse_subscription), and asserted by
//! [`SubscriptionTrie::insert`](super::SubscriptionTrie::insert) and
//! [`RetainedTree::insert`](super::RetainedTree::insert), whose recursion depth relies on
//! [`TOPIC_LEVELS_MAX`].
//!
//! Inputs are bytes that the codec has already checked to be well-formed UTF-8; these
//! functions only look for the ASCII bytes that matter (`/`, `+`, `#`, NUL), which never
//! occur inside a multi-byte UTF-8 sequence.

use super::levels::SEPARATOR;

/// Most bytes in a topic name or filter: they are UTF-8 Encoded Strings, whose length prefix
/// is two bytes [MQTT-4.7.3-3].
pub const TOPIC_BYTES_MAX: usize = 65_535;

/// Most levels in a topic name or filter, that is at most 200 `/` separators.
///
/// The specification sets no such limit. Mosquitto's broker refuses more than 200 separators
/// in both topic names and filters (`TOPIC_HIERARCHY_LIMIT`, added for CVE-2019-11779, where a
/// SUBSCRIBE of about 65,400 `/` exhausted the stack), so a Mosquitto user never sees a topic
/// this broker accepts and Mosquitto refuses, or the reverse. Culex relies on it for the same
/// reason: the trie and retained-tree walks recurse once per level, and so does dropping their
/// nodes, so this bounds every recursion in `topics`.
pub const TOPIC_LEVELS_MAX: usize = 201;

// A walk recurses once per level with a frame of a few words; keep depth × frame far below
// the 2 MiB default stack of a spawned thread.
const _: () = assert!(TOPIC_LEVELS_MAX <= 1_024);
const _: () = assert!(TOPIC_LEVELS_MAX <= TOPIC_BYTES_MAX);

/// Whether `topic` is a valid topic name: what a PUBLISH may be sent to.
///
/// A topic name is non-empty [MQTT-4.7.3-1], at most [`TOPIC_BYTES_MAX`] bytes
/// [MQTT-4.7.3-3], contains no wildcard `+` or `#` [MQTT-3.3.2-2] and no NUL
/// [MQTT-4.7.3-2], and has at most [`TOPIC_LEVELS_MAX`] levels (a Mosquitto limit, see
/// there). Empty levels are valid: `/`, `a//b` and `/finance` are all topic names.
///
/// One pass over the bytes, no allocation.
pub fn valid_topic_name(topic: &[u8]) -> bool {
    if topic.is_empty() || topic.len() > TOPIC_BYTES_MAX {
        return false;
    }
    let mut separators: usize = 0;
    for &byte in topic {
        match byte {
            b'+' | b'#' | 0 => return false,
            SEPARATOR => separators += 1,
            _ => {}
        }
    }
    separators < TOPIC_LEVELS_MAX
}

/// Whether `filter` is a valid topic filter: what a SUBSCRIBE or UNSUBSCRIBE may name.
///
/// A topic filter is non-empty [MQTT-4.7.3-1], at most [`TOPIC_BYTES_MAX`] bytes, has no NUL
/// [MQTT-4.7.3-2] and at most [`TOPIC_LEVELS_MAX`] levels. `#` must be a whole level and the
/// last one [MQTT-4.7.1-1]; `+` must be a whole level [MQTT-4.7.1-2] and may appear at any
/// level, several times. So `#`, `sport/#`, `+`, `+/tennis/#` and `/+` are valid, while
/// `sport/tennis#`, `sport/tennis/#/ranking` and `sport+` are not.
///
/// This checks the filter itself; a `$share/{ShareName}/{filter}` string is split by
/// [`parse_subscription`](super::parse_subscription), which calls this on the part after the
/// share name.
///
/// One pass over the bytes, no allocation.
pub fn valid_topic_filter(filter: &[u8]) -> bool {
    if filter.is_empty() || filter.len() > TOPIC_BYTES_MAX {
        return false;
    }
    let mut separators: usize = 0;
    for (index, &byte) in filter.iter().enumerate() {
        match byte {
            0 => return false,
            SEPARATOR => separators += 1,
            b'+' if !(starts_level(filter, index) && ends_level(filter, index)) => return false,
            b'#' if !(starts_level(filter, index) && index + 1 == filter.len()) => return false,
            _ => {}
        }
    }
    separators < TOPIC_LEVELS_MAX
}

/// Whether the byte at `index` is the first byte of its level.
fn starts_level(bytes: &[u8], index: usize) -> bool {
    index == 0 || bytes.get(index - 1) == Some(&SEPARATOR)
}

/// Whether the byte at `index` is the last byte of its level.
fn ends_level(bytes: &[u8], index: usize) -> bool {
    bytes.get(index + 1).is_none_or(|&next| next == SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::{valid_topic_filter, valid_topic_name, TOPIC_BYTES_MAX, TOPIC_LEVELS_MAX};

    /// Topic names from MQTT 5.0 §4.7 and the edges around them: empty levels, `/` alone,
    /// `$SYS`, spaces, non-ASCII, and the size limits.
    #[test]
    fn topic_names() {
        let cases: &[(&[u8], bool)] = &[
            (b"sport/tennis/player1", true),
            (b"sport/tennis/player1/ranking", true),
            (b"/", true),
            (b"//", true),
            (b"/finance", true),
            (b"finance/", true),
            (b"a//b", true),
            (b"$SYS/broker/clients/connected", true),
            (b"$", true),
            (b"ACCOUNTS", true),
            (b"Accounts payable", true),
            (" caf\u{e9}/\u{1F600}".as_bytes(), true),
            (b"", false),
            (b"+", false),
            (b"#", false),
            (b"sport/+", false),
            (b"sport/#", false),
            (b"sport/tennis#", false),
            (b"sport+", false),
            (b"a\0b", false),
        ];
        for (topic, expected) in cases {
            let shown = String::from_utf8_lossy(topic);
            assert_eq!(valid_topic_name(topic), *expected, "topic name {shown:?}");
        }
    }

    /// Topic filters from MQTT 5.0 §4.7.1.2 and §4.7.1.3, plus empty levels and shapes that
    /// put a wildcard next to other characters.
    #[test]
    fn topic_filters() {
        let cases: &[(&[u8], bool)] = &[
            (b"#", true),
            (b"sport/tennis/#", true),
            (b"sport/#", true),
            (b"+", true),
            (b"+/tennis/#", true),
            (b"sport/+/player1", true),
            (b"+/+", true),
            (b"/+", true),
            (b"/#", true),
            (b"+/", true),
            (b"+//+", true),
            (b"/", true),
            (b"$SYS/#", true),
            (b"$SYS/monitor/+", true),
            (b"sport/tennis/player1", true),
            (b"$share/group/x", true),
            (b"", false),
            (b"sport/tennis#", false),
            (b"sport/tennis/#/ranking", false),
            (b"#/", false),
            (b"##", false),
            (b"#/#", false),
            (b"sport+", false),
            (b"+sport", false),
            (b"sport/+tennis", false),
            (b"++", false),
            (b"+#", false),
            (b"a/b\0", false),
        ];
        for (filter, expected) in cases {
            let shown = String::from_utf8_lossy(filter);
            assert_eq!(
                valid_topic_filter(filter),
                *expected,
                "topic filter {shown:?}"
            );
        }
    }

    #[test]
    fn length_limit_is_65535_bytes() {
        let longest = vec![b'a'; TOPIC_BYTES_MAX];
        let too_long = vec![b'a'; TOPIC_BYTES_MAX + 1];
        assert!(valid_topic_name(&longest));
        assert!(valid_topic_filter(&longest));
        assert!(!valid_topic_name(&too_long));
        assert!(!valid_topic_filter(&too_long));
    }

    /// Mosquitto accepts 200 separators (201 levels) and refuses 201; so do we.
    #[test]
    fn level_limit_matches_mosquitto() {
        let deepest = vec![b'/'; TOPIC_LEVELS_MAX - 1];
        let too_deep = vec![b'/'; TOPIC_LEVELS_MAX];
        assert!(valid_topic_name(&deepest));
        assert!(!valid_topic_name(&too_deep));

        let deepest_filter: Vec<u8> = (0..TOPIC_LEVELS_MAX)
            .map(|_| &b"+"[..])
            .collect::<Vec<_>>()
            .join(&b'/');
        assert!(valid_topic_filter(&deepest_filter));
        let too_deep_filter = [&deepest_filter[..], b"/#"].concat();
        assert!(!valid_topic_filter(&too_deep_filter));
    }
}
