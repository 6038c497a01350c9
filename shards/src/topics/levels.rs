//! Splitting topic names and topic filters into levels without allocating.
//!
//! Owns [`Levels`], the one way the rest of `topics` walks the levels of a topic: the
//! [`matches`](super::matches) oracle, the [`SubscriptionTrie`](super::SubscriptionTrie) and
//! the [`RetainedTree`](super::RetainedTree) all split with it, so "what is a level" is
//! decided in exactly one place. Nothing outside `topics` uses it.

/// The topic level separator, U+002F `/` (MQTT 5.0 §4.7.1.1).
pub(crate) const SEPARATOR: u8 = b'/';

/// The multi-level wildcard `#` (MQTT 5.0 §4.7.1.2).
pub(crate) const MULTI_LEVEL: &[u8] = b"#";

/// The single-level wildcard `+` (MQTT 5.0 §4.7.1.3).
pub(crate) const SINGLE_LEVEL: &[u8] = b"+";

/// Iterator over the levels of a topic name or filter, split on `/`.
///
/// Empty levels are kept, because the specification makes them significant: `/finance` has
/// the levels `""` and `"finance"`, `a//b` has `"a"`, `""`, `"b"`, and `/` alone has two
/// empty levels. An empty input has one empty level.
///
/// Allocation: none. Each level is a sub-slice of the input, found by a forward byte scan
/// for the next `/`. The iterator is two words and `Copy`, so a recursive walk that branches
/// (an exact child and a `+` child from the same point) passes the rest of the topic by value
/// instead of collecting levels into a `Vec`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Levels<'a> {
    /// What has not been yielded yet; `None` once the last level was yielded.
    rest: Option<&'a [u8]>,
}

impl<'a> Levels<'a> {
    /// The levels of `bytes`: at least one, even for an empty slice.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { rest: Some(bytes) }
    }

    /// An iterator that yields no level at all. Used for the empty prefix in front of a
    /// filter that is `#` alone, which no slice can express (an empty slice is one level).
    pub(crate) fn none() -> Self {
        Self { rest: None }
    }
}

#[allow(
    clippy::copy_iterator,
    reason = "walks branch by copying the position; every copy is deliberate"
)]
impl<'a> Iterator for Levels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&byte| byte == SEPARATOR) {
            Some(separator) => {
                let (level, tail) = rest.split_at(separator);
                // `tail` starts with the separator itself; the next level begins after it.
                debug_assert_eq!(tail.first(), Some(&SEPARATOR));
                self.rest = tail.get(1..);
                Some(level)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

impl std::iter::FusedIterator for Levels<'_> {}

/// Whether a topic starts with `$`, the prefix reserved for broker topics such as `$SYS`.
/// Wildcards at the start of a filter never match such a topic [MQTT-4.7.2-1].
pub(crate) fn starts_with_dollar(topic: &[u8]) -> bool {
    topic.first() == Some(&b'$')
}

#[cfg(test)]
mod tests {
    use super::Levels;

    fn levels(bytes: &[u8]) -> Vec<&[u8]> {
        Levels::new(bytes).collect()
    }

    #[test]
    fn empty_levels_are_kept() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"", &[b""]),
            (b"a", &[b"a"]),
            (b"/", &[b"", b""]),
            (b"/finance", &[b"", b"finance"]),
            (b"finance/", &[b"finance", b""]),
            (b"a//b", &[b"a", b"", b"b"]),
            (b"sport/tennis/player1", &[b"sport", b"tennis", b"player1"]),
            (b"//", &[b"", b"", b""]),
        ];
        for (input, expected) in cases {
            assert_eq!(
                levels(input),
                *expected,
                "levels of {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn agrees_with_slice_split() {
        for input in [
            &b""[..],
            b"/",
            b"a/b",
            b"//a//",
            b"$SYS/broker/uptime",
            b"+/#",
        ] {
            let expected: Vec<&[u8]> = input.split(|&byte| byte == b'/').collect();
            assert_eq!(levels(input), expected);
        }
    }

    #[test]
    fn none_yields_nothing() {
        assert_eq!(Levels::none().count(), 0);
    }
}
