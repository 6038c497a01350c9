//! Topic matching for dynsec ACLs (spec §8.3), independent of the broker's subscription
//! trie because Mosquitto's ACL rules differ from routing:
//!
//! * publish-send / publish-receive: MQTT filter-against-topic matching, with the `$` rule
//!   applied on the raw first byte (a filter starting with `+`, `#` or `%c` never matches a
//!   `$…` topic, a `$…` filter never matches a normal topic), `a/#` matching `a`, and
//!   invalid filters never matching;
//! * subscribe/unsubscribe pattern: Mosquitto 2.0.11's "does the ACL cover the requested
//!   filter" algorithm (spec §8.3 steps 1–5);
//! * literal types: exact byte equality, done by the caller.
//!
//! In pattern ACLs a level that is exactly `%c` or `%u` stands for the client id or the
//! username (Mosquitto 2.1). The substitution happens level by level during the walk, so a
//! check never allocates. A value that is empty, absent, or contains `/`, `+` or `#`
//! matches nothing.
//!
//! Called by `acl` (compiled snapshot) and by the property test's oracle.

use super::validate::is_valid_acl_topic;

/// One level of a compiled ACL topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Level {
    /// Matches a level with exactly these bytes.
    Literal(Box<[u8]>),
    /// `+`.
    Plus,
    /// `#` (for publish matching only valid as the last level).
    Hash,
    /// `%c`: the connection's client id.
    ClientId,
    /// `%u`: the connection's username.
    Username,
}

/// An ACL topic split into levels once, when the snapshot is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    raw: Box<[u8]>,
    levels: Box<[Level]>,
    /// Non-empty and a valid subscription filter; invalid ones never match a topic.
    valid_filter: bool,
}

/// The values substituted for `%c` and `%u`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Substitution<'a> {
    /// Client id of the connection.
    pub client_id: &'a [u8],
    /// Username of the connection, if any.
    pub username: Option<&'a [u8]>,
}

impl Substitution<'_> {
    fn value(&self, level: &Level) -> Option<&[u8]> {
        let value = match level {
            Level::ClientId => Some(self.client_id),
            Level::Username => self.username,
            _ => None,
        }?;
        let usable = !value.is_empty() && !value.iter().any(|b| matches!(b, b'/' | b'+' | b'#'));
        usable.then_some(value)
    }
}

impl Pattern {
    /// Splits `raw` into levels; `%c`/`%u` levels become substitutions.
    pub(crate) fn compile(raw: &[u8]) -> Pattern {
        let levels = raw
            .split(|&b| b == b'/')
            .map(|level| match level {
                b"+" => Level::Plus,
                b"#" => Level::Hash,
                b"%c" => Level::ClientId,
                b"%u" => Level::Username,
                other => Level::Literal(other.into()),
            })
            .collect();
        Pattern {
            raw: raw.into(),
            levels,
            valid_filter: !raw.is_empty() && is_valid_acl_topic(raw),
        }
    }

    /// Whether this ACL filter matches a concrete (wildcard-free) topic.
    pub(crate) fn matches_topic(&self, topic: &[u8], with: &Substitution<'_>) -> bool {
        if !self.valid_filter || topic.is_empty() {
            return false;
        }
        if (self.raw[0] == b'$') != (topic[0] == b'$') {
            return false;
        }
        let mut topic_levels = topic.split(|&b| b == b'/');
        for level in self.levels.iter() {
            let wanted: &[u8] = match level {
                Level::Hash => return true,
                Level::Plus => {
                    if topic_levels.next().is_none() {
                        return false;
                    }
                    continue;
                }
                Level::Literal(bytes) => bytes,
                Level::ClientId | Level::Username => match with.value(level) {
                    Some(value) => value,
                    None => return false,
                },
            };
            if topic_levels.next() != Some(wanted) {
                return false;
            }
        }
        topic_levels.next().is_none()
    }

    /// Mosquitto 2.0.11's subscribePattern/unsubscribePattern rule: whether this ACL covers
    /// the requested subscription filter (spec §8.3).
    pub(crate) fn covers_filter(&self, filter: &[u8], with: &Substitution<'_>) -> bool {
        if &*self.raw == b"#" {
            return true;
        }
        let acl_hash = self.raw.ends_with(b"/#");
        let acl_body = if acl_hash {
            &self.levels[..self.levels.len() - 1]
        } else {
            &self.levels[..]
        };
        let (filter_body, filter_hash) = if filter == b"#" {
            // Stripping a lone `#` leaves one empty level (spec §8.3 step 2), which `+` or
            // an empty ACL level covers: `+/#` and `/#` cover `#`, `deep/#` does not.
            (Some(&b""[..]), true)
        } else if let Some(body) = filter.strip_suffix(b"/#") {
            (Some(body), true)
        } else {
            (Some(filter), false)
        };
        if filter_hash && !acl_hash {
            return false;
        }
        let filter_count = filter_body.map_or(0, |b| b.iter().filter(|&&c| c == b'/').count() + 1);
        if acl_body.len() > filter_count || (filter_count > acl_body.len() && !acl_hash) {
            return false;
        }
        let mut filter_levels = filter_body
            .into_iter()
            .flat_map(|b| b.split(|&c| c == b'/'));
        acl_body.iter().all(|level| {
            let Some(requested) = filter_levels.next() else {
                return false;
            };
            match level {
                Level::Plus => true,
                Level::Hash => requested == b"#",
                Level::Literal(bytes) => requested == &bytes[..],
                Level::ClientId | Level::Username => with.value(level) == Some(requested),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBODY: Substitution<'static> = Substitution {
        client_id: b"cid-a",
        username: Some(b"alice"),
    };

    fn m(filter: &str, topic: &str) -> bool {
        Pattern::compile(filter.as_bytes()).matches_topic(topic.as_bytes(), &NOBODY)
    }

    fn c(acl: &str, filter: &str) -> bool {
        Pattern::compile(acl.as_bytes()).covers_filter(filter.as_bytes(), &NOBODY)
    }

    #[test]
    fn publish_matching() {
        assert!(m("a/b", "a/b"));
        assert!(!m("a/b", "a/b/c"));
        assert!(m("a/#", "a"));
        assert!(m("a/#", "a/b/c"));
        assert!(m("#", "a/b"));
        assert!(!m("#", "$SYS/x"));
        assert!(!m("+/x", "$SYS/x"));
        assert!(m("$SYS/#", "$SYS/x"));
        assert!(!m("$SYS/#", "SYS/x"));
        assert!(m("a/+", "a/"));
        assert!(m("+/#", "a"));
        assert!(!m("a/+", "a"));
        assert!(m("a//b", "a//b"));
        assert!(!m("a/#/b", "a/x/b"), "invalid filters never match");
        assert!(!m("a+", "a+"));
        assert!(!m("", ""));
        assert!(!m("$CONTROL/#", "$CONTROLX"));
    }

    #[test]
    fn substitution() {
        assert!(m("u/%u/#", "u/alice/x"));
        assert!(!m("u/%u/#", "u/%u/x"));
        assert!(!m("u/%u/#", "u/ali/x"));
        assert!(m("c/%c", "c/cid-a"));
        assert!(!m("c/%c", "c/cid-ab"));
        assert!(m("%u", "alice"));
        let anonymous = Substitution {
            client_id: b"a/b",
            username: None,
        };
        let p = Pattern::compile(b"u/%u");
        assert!(!p.matches_topic(b"u/", &anonymous));
        let p = Pattern::compile(b"c/%c/x");
        assert!(!p.matches_topic(b"c/a/b/x", &anonymous));
        assert!(c("u/%u/#", "u/alice/+"));
        assert!(!c("u/%u/#", "u/bob/+"));
    }

    #[test]
    fn subscribe_cover_examples_from_the_spec() {
        assert!(c("pat/+/x", "pat/a/x"));
        assert!(c("pat/+/x", "pat/+/x"));
        assert!(!c("pat/+/x", "pat/#"));
        assert!(!c("pat/+/x", "pat/a/y"));
        assert!(c("deep/#", "deep"));
        assert!(c("deep/#", "deep/+"));
        assert!(c("deep/#", "deep/a/b/#"));
        assert!(!c("deep/#", "#"));
        // A lone `#` filter is one empty level once stripped: `+/#` and `/#` cover it
        // (verified against Mosquitto 2.0.11 by the interop dynsec tests).
        assert!(c("+/#", "#"));
        assert!(c("/#", "#"));
        assert!(c("#", "$SYS/#"));
        assert!(c("+/#", "$SYS/#"));
        assert!(c("a/b", "a/b"));
        assert!(!c("a/b", "a/b/c"));
        assert!(!c("a/b/c", "a/b"));
        assert!(!c("a/+", "a/#"));
    }
}
