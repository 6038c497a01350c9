//! ACL-file topic filters and the matcher that runs them against a topic name, with
//! `%c`/`%u` substitution done level by level so that a check never allocates.
//!
//! Owned by [`super::acl_file`], which compiles every `topic`/`pattern` line into an
//! [`AclTopic`] once, at load time, and calls [`AclTopic::matches`] per check.
//!
//! Semantics (Mosquitto 2.0.11, `mosquitto_topic_matches_sub` called by
//! `mosquitto_acl_check_default` in `src/security_default.c`):
//!
//! * ordinary MQTT filter matching: `+` is one level (possibly empty), `#` is the rest
//!   including the parent (`a/#` matches `a`);
//! * a filter whose first level is `+` or `#` never matches a topic starting with `$`
//!   (the filter text cannot start with `$`, and 2.0 requires both or neither to);
//! * in `pattern` lines `%c` and `%u` are replaced by the client id and the username
//!   wherever they occur, as 2.0's string substitution does (`devices/x%cy` works; 2.1
//!   and the man page only substitute a whole level, a 2.0 filter using the whole-level
//!   form behaves the same in both);
//! * Culex hardening (the brief, and dynsec's `topic.rs`): a substituted value that is
//!   empty or contains `/`, `+` or `#` makes the filter match nothing. Mosquitto 2.0 denies
//!   the whole check for `+`/`#` (see `AclFile::check`), but substitutes a `/` (so user
//!   `x/y` gets `slash/x/y/z` from `pattern read slash/%u/z`) and an empty username.

/// Separator between topic levels.
const SEPARATOR: u8 = b'/';

/// One piece of a level that contains a substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    /// Bytes matched as they are.
    Literal(Box<[u8]>),
    /// `%c`: the client id.
    ClientId,
    /// `%u`: the username.
    Username,
}

/// One level of a compiled filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Level {
    /// `+`.
    Plus,
    /// `#` (only ever the last level: the parser rejects other filters).
    Hash,
    /// A level without substitution, matched byte for byte.
    Exact(Box<[u8]>),
    /// A level of a `pattern` line with at least one `%c`/`%u`.
    Template(Box<[Segment]>),
}

/// The identity substituted into `%c` and `%u`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Identity<'a> {
    /// The connection's client id.
    pub client_id: &'a [u8],
    /// The connection's username, if it gave one.
    pub username: Option<&'a [u8]>,
}

impl<'a> Identity<'a> {
    fn value(&self, segment: &Segment) -> Option<&'a [u8]> {
        let value = match segment {
            Segment::ClientId => Some(self.client_id),
            Segment::Username => self.username,
            Segment::Literal(_) => None,
        }?;
        is_substitutable(value).then_some(value)
    }
}

/// Whether a client id or username may stand in for `%c`/`%u`: non-empty and free of
/// `/`, `+` and `#`, so a substitution can never widen a filter or change its depth.
pub(super) fn is_substitutable(value: &[u8]) -> bool {
    !value.is_empty() && !value.iter().any(|b| matches!(b, b'/' | b'+' | b'#'))
}

/// A `topic` or `pattern` filter split into levels once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AclTopic {
    levels: Box<[Level]>,
}

impl AclTopic {
    /// A `topic` line's filter: `%c`/`%u` are plain text there (Mosquitto's `add__acl`
    /// stores the topic as written).
    pub(super) fn literal(raw: &[u8]) -> AclTopic {
        AclTopic::compile(raw, false)
    }

    /// A `pattern` line's filter.
    pub(super) fn pattern(raw: &[u8]) -> AclTopic {
        AclTopic::compile(raw, true)
    }

    fn compile(raw: &[u8], substitute: bool) -> AclTopic {
        let levels = raw
            .split(|&b| b == SEPARATOR)
            .map(|level| match level {
                b"+" => Level::Plus,
                b"#" => Level::Hash,
                other if substitute => compile_level(other),
                other => Level::Exact(other.into()),
            })
            .collect();
        AclTopic { levels }
    }

    /// Whether this filter contains a `%c` (`%u` when `username`) substitution.
    pub(super) fn substitutes(&self, username: bool) -> bool {
        let wanted = if username {
            Segment::Username
        } else {
            Segment::ClientId
        };
        self.levels.iter().any(|level| match level {
            Level::Template(segments) => segments.contains(&wanted),
            _ => false,
        })
    }

    /// Whether the filter matches `topic`, a topic name the caller has checked to be
    /// non-empty and free of `+` and `#`. Never allocates.
    pub(super) fn matches(&self, topic: &[u8], who: &Identity<'_>) -> bool {
        let starts_with_wildcard = matches!(self.levels.first(), Some(Level::Plus | Level::Hash));
        if starts_with_wildcard && topic.first() == Some(&b'$') {
            return false;
        }
        let mut topic_levels = topic.split(|&b| b == SEPARATOR);
        for level in self.levels.iter() {
            if let Level::Hash = level {
                return true;
            }
            let Some(topic_level) = topic_levels.next() else {
                return false;
            };
            let same = match level {
                Level::Plus | Level::Hash => true,
                Level::Exact(bytes) => **bytes == *topic_level,
                Level::Template(segments) => template_matches(segments, topic_level, who),
            };
            if !same {
                return false;
            }
        }
        topic_levels.next().is_none()
    }
}

/// Splits one level of a `pattern` line at `%c`/`%u`, scanning left to right as 2.0's
/// substitution loop does (`%%c` is a `%` followed by the client id).
fn compile_level(level: &[u8]) -> Level {
    let mut segments = Vec::new();
    let mut literal = Vec::new();
    let mut index = 0;
    while index < level.len() {
        let substitution = match (level[index], level.get(index + 1)) {
            (b'%', Some(b'c')) => Some(Segment::ClientId),
            (b'%', Some(b'u')) => Some(Segment::Username),
            _ => None,
        };
        match substitution {
            Some(segment) => {
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal).into()));
                }
                segments.push(segment);
                index += 2;
            }
            None => {
                literal.push(level[index]);
                index += 1;
            }
        }
    }
    if segments.is_empty() {
        return Level::Exact(literal.into());
    }
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal.into()));
    }
    Level::Template(segments.into())
}

fn template_matches(segments: &[Segment], topic_level: &[u8], who: &Identity<'_>) -> bool {
    let mut rest = topic_level;
    for segment in segments {
        let wanted = match segment {
            Segment::Literal(bytes) => &bytes[..],
            Segment::ClientId | Segment::Username => match who.value(segment) {
                Some(value) => value,
                None => return false,
            },
        };
        match rest.strip_prefix(wanted) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: Identity<'static> = Identity {
        client_id: b"dev1",
        username: Some(b"alice"),
    };

    fn topic(filter: &str, name: &str) -> bool {
        AclTopic::literal(filter.as_bytes()).matches(name.as_bytes(), &ALICE)
    }

    fn pattern(filter: &str, name: &str, who: &Identity<'_>) -> bool {
        AclTopic::pattern(filter.as_bytes()).matches(name.as_bytes(), who)
    }

    /// Cases from the behaviour of `mosquitto_topic_matches_sub` (2.0 `lib/util_topic.c`).
    #[test]
    fn mqtt_matching() {
        assert!(topic("a/b", "a/b"));
        assert!(!topic("a/b", "a/b/c"));
        assert!(!topic("a/b/c", "a/b"));
        assert!(topic("a/#", "a"), "foo matching foo/#");
        assert!(topic("a/#", "a/"));
        assert!(topic("a/#", "a/b/c"));
        assert!(topic("#", "a/b"));
        assert!(topic("+", ""));
        assert!(topic("a/+", "a/"));
        assert!(!topic("a/+", "a"));
        assert!(topic("+/+", "/x"));
        assert!(topic("a/+/#", "a/b"), "foo/bar matching foo/+/#");
        assert!(topic("+/#", "a"));
        assert!(topic("a//b", "a//b"));
        assert!(!topic("a/b", "A/b"), "case-sensitive");
    }

    #[test]
    fn dollar_topics_need_a_dollar_filter() {
        assert!(!topic("#", "$SYS/x"));
        assert!(!topic("+/x", "$SYS/x"));
        assert!(!topic("+", "$SYS"));
        assert!(topic("$SYS/#", "$SYS/x"));
        assert!(topic("$SYS/+", "$SYS/x"));
        assert!(!topic("$SYS/#", "SYS/x"));
        assert!(topic("#", "a$/b"));
    }

    #[test]
    fn topic_lines_do_not_substitute() {
        assert!(topic("c/%c", "c/%c"));
        assert!(!topic("c/%c", "c/dev1"));
    }

    #[test]
    fn substitution_anywhere_in_a_level() {
        assert!(pattern("c/%c", "c/dev1", &ALICE));
        assert!(!pattern("c/%c", "c/dev", &ALICE));
        assert!(!pattern("c/%c", "c/dev12", &ALICE));
        assert!(pattern("u/%u/#", "u/alice/x/y", &ALICE));
        assert!(pattern("m/x%cy", "m/xdev1y", &ALICE), "2.0 mid-level form");
        assert!(pattern("m/%u-%c", "m/alice-dev1", &ALICE));
        assert!(pattern("m/%%c", "m/%dev1", &ALICE), "left-to-right scan");
        assert!(pattern("m/%x", "m/%x", &ALICE));
        assert!(pattern("m/50%", "m/50%", &ALICE));
        assert!(!pattern("m/%u", "m/%u", &ALICE));
        assert!(pattern("%c", "dev1", &ALICE));
    }

    #[test]
    fn unusable_values_match_nothing() {
        for (client_id, username, filter, name) in [
            (&b"a/b"[..], None, "c/%c", "c/a/b"),
            (b"", None, "c/%c/x", "c//x"),
            (b"d", Some(&b""[..]), "u/%u/x", "u//x"),
            (b"d", None, "u/%u", "u/"),
            (b"d", Some(&b"x/y"[..]), "u/%u/z", "u/x/y/z"),
            (b"d", Some(&b"a+"[..]), "u/%u", "u/a+"),
            (b"d#", None, "c/%c", "c/d#"),
        ] {
            let who = Identity {
                client_id,
                username,
            };
            assert!(!pattern(filter, name, &who), "{filter} vs {name}");
        }
    }

    #[test]
    fn a_dollar_client_id_lands_where_2_0_puts_it() {
        let who = Identity {
            client_id: b"$SYS",
            username: None,
        };
        assert!(pattern("%c/#", "$SYS/x", &who));
    }

    #[test]
    fn substitution_flags() {
        let p = AclTopic::pattern(b"a/%u/x%c");
        assert!(p.substitutes(true) && p.substitutes(false));
        let p = AclTopic::pattern(b"a/b");
        assert!(!p.substitutes(true) && !p.substitutes(false));
        assert!(!AclTopic::literal(b"a/%u").substitutes(true));
    }
}
