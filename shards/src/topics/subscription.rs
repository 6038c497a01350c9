//! Parsing the topic filter of one SUBSCRIBE or UNSUBSCRIBE entry into a plain or a shared
//! subscription (MQTT 5.0 §4.8.2).
//!
//! Owns [`Subscription`], [`FilterError`] and [`parse_subscription`]. Called by the
//! SUBSCRIBE and UNSUBSCRIBE handlers on each filter string, before anything is inserted into
//! a [`SubscriptionTrie`](super::SubscriptionTrie) or announced to the
//! [`InterestTable`](super::InterestTable); both of those index the `filter` part only.
//!
//! Mosquitto honours `$share/` for MQTT 3.1.1 clients as well as 5.0 ones, so this parser does
//! not look at the protocol version.

use std::fmt;

use super::levels::SEPARATOR;
use super::validate::valid_topic_filter;

/// The prefix of a shared subscription's topic filter [MQTT-4.8.2-1].
const SHARE_PREFIX: &[u8] = b"$share";

/// One subscription request, borrowed from the packet that carried it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription<'a> {
    /// An ordinary subscription: every matching message goes to this subscriber.
    Plain {
        /// The topic filter, valid by [`valid_topic_filter`].
        filter: &'a [u8],
    },
    /// A shared subscription `$share/{group}/{filter}`: each matching message goes to one
    /// member of the group (MQTT 5.0 §4.8.2).
    Shared {
        /// The ShareName: non-empty, without `/`, `+` or `#`.
        group: &'a [u8],
        /// The topic filter after the ShareName, valid by [`valid_topic_filter`].
        filter: &'a [u8],
    },
}

impl<'a> Subscription<'a> {
    /// The topic filter that matching uses, without any `$share/{group}/` prefix.
    pub fn filter(&self) -> &'a [u8] {
        match *self {
            Subscription::Plain { filter } | Subscription::Shared { filter, .. } => filter,
        }
    }
}

/// Why a SUBSCRIBE or UNSUBSCRIBE topic filter was refused. An MQTT 5.0 handler answers each
/// variant with reason code 0x8F (Topic Filter invalid) for that entry; an MQTT 3.1.1 handler
/// answers SUBSCRIBE with 0x80 (Failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterError {
    /// Occurs when the topic filter (the whole string of a plain subscription, or the part
    /// after the ShareName of a shared one) breaks MQTT 5.0 §4.7: it is empty, longer than
    /// 65,535 bytes, has more than 200 `/`, holds a NUL, has `+` or `#` sharing a level with
    /// other characters, or has `#` before the last level.
    InvalidFilter,
    /// Occurs when a string starting with `$share/` (or equal to `$share`) has an empty
    /// ShareName [MQTT-4.8.2-1] or a ShareName containing `+` or `#` [MQTT-4.8.2-2].
    InvalidShareName,
    /// Occurs when a ShareName is not followed by `/` and a Topic Filter, as in `$share/g`
    /// and `$share/g/` [MQTT-4.8.2-2].
    MissingFilter,
}

impl fmt::Display for FilterError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            FilterError::InvalidFilter => {
                "invalid topic filter (MQTT 5.0 §4.7: wildcard placement, length, levels or NUL)"
            }
            FilterError::InvalidShareName => {
                "[MQTT-4.8.2-1] shared subscription ShareName is empty or contains + or #"
            }
            FilterError::MissingFilter => {
                "[MQTT-4.8.2-2] shared subscription ShareName is not followed by a topic filter"
            }
        })
    }
}

impl std::error::Error for FilterError {}

/// Splits one SUBSCRIBE or UNSUBSCRIBE topic filter into a plain or shared subscription and
/// validates it.
///
/// - `$share/{ShareName}/{filter}` is shared: the ShareName is everything up to the next `/`,
///   must be non-empty and free of `+` and `#`; the rest is the filter and must be valid and
///   non-empty. `$share` alone and `$share/` have no ShareName; `$share/g` and `$share/g/`
///   have no filter.
/// - Anything else, including `$sharefoo/x` and `$SYS/#`, is a plain filter.
///
/// The result borrows from `raw`; no allocation.
///
/// # Errors
///
/// [`FilterError`] says which rule `raw` breaks; each variant documents when it occurs.
pub fn parse_subscription(raw: &[u8]) -> Result<Subscription<'_>, FilterError> {
    let Some(after_prefix) = raw.strip_prefix(SHARE_PREFIX) else {
        return plain(raw);
    };
    let shared = match after_prefix.split_first() {
        None => return Err(FilterError::InvalidShareName),
        Some((&SEPARATOR, shared)) => shared,
        Some(_) => return plain(raw),
    };
    let (group, filter) = match shared.iter().position(|&byte| byte == SEPARATOR) {
        Some(separator) => (&shared[..separator], &shared[separator + 1..]),
        None => (shared, &b""[..]),
    };
    if group.is_empty() || group.iter().any(|&byte| byte == b'+' || byte == b'#') {
        return Err(FilterError::InvalidShareName);
    }
    if filter.is_empty() {
        return Err(FilterError::MissingFilter);
    }
    if !valid_topic_filter(filter) {
        return Err(FilterError::InvalidFilter);
    }
    debug_assert!(!group.contains(&SEPARATOR));
    Ok(Subscription::Shared { group, filter })
}

/// A string that is not a shared subscription: valid exactly when it is a valid filter.
fn plain(filter: &[u8]) -> Result<Subscription<'_>, FilterError> {
    if valid_topic_filter(filter) {
        Ok(Subscription::Plain { filter })
    } else {
        Err(FilterError::InvalidFilter)
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_subscription, FilterError, Subscription};

    fn plain(filter: &[u8]) -> Result<Subscription<'_>, FilterError> {
        Ok(Subscription::Plain { filter })
    }

    fn shared<'a>(group: &'a [u8], filter: &'a [u8]) -> Result<Subscription<'a>, FilterError> {
        Ok(Subscription::Shared { group, filter })
    }

    /// Shared forms from MQTT 5.0 §4.8.2 and the edges of the `$share` prefix.
    #[test]
    fn table() {
        let cases: &[(&[u8], Result<Subscription<'_>, FilterError>)] = &[
            (b"sport/tennis/+", plain(b"sport/tennis/+")),
            (b"#", plain(b"#")),
            (b"$SYS/#", plain(b"$SYS/#")),
            (b"$sharefoo/x", plain(b"$sharefoo/x")),
            (b"$share+", Err(FilterError::InvalidFilter)),
            (b"$SHARE/g/x", plain(b"$SHARE/g/x")),
            (
                b"$share/consumer1/sport/tennis/+",
                shared(b"consumer1", b"sport/tennis/+"),
            ),
            (
                b"$share/consumer2/sport/tennis/+",
                shared(b"consumer2", b"sport/tennis/+"),
            ),
            (b"$share/g/#", shared(b"g", b"#")),
            (b"$share/g/+", shared(b"g", b"+")),
            (b"$share/g//", shared(b"g", b"/")),
            (b"$share/g//x", shared(b"g", b"/x")),
            (b"$share/$g/$SYS/#", shared(b"$g", b"$SYS/#")),
            (b"$share/g/$share/h/x", shared(b"g", b"$share/h/x")),
            (b"$share", Err(FilterError::InvalidShareName)),
            (b"$share/", Err(FilterError::InvalidShareName)),
            (b"$share//x", Err(FilterError::InvalidShareName)),
            (b"$share/+/x", Err(FilterError::InvalidShareName)),
            (b"$share/#/x", Err(FilterError::InvalidShareName)),
            (b"$share/g+/x", Err(FilterError::InvalidShareName)),
            (b"$share/#", Err(FilterError::InvalidShareName)),
            (b"$share/g", Err(FilterError::MissingFilter)),
            (b"$share/g/", Err(FilterError::MissingFilter)),
            (b"$share/g/a/#/b", Err(FilterError::InvalidFilter)),
            (b"$share/g/a+", Err(FilterError::InvalidFilter)),
            (b"", Err(FilterError::InvalidFilter)),
            (b"sport/tennis#", Err(FilterError::InvalidFilter)),
            (b"a\0", Err(FilterError::InvalidFilter)),
        ];
        for (raw, expected) in cases {
            let shown = String::from_utf8_lossy(raw);
            assert_eq!(parse_subscription(raw), *expected, "subscription {shown:?}");
        }
    }

    #[test]
    fn filter_accessor_strips_the_share_prefix() {
        let parsed = parse_subscription(b"$share/g/a/+");
        assert_eq!(
            parsed.map(|subscription| subscription.filter()),
            Ok(&b"a/+"[..])
        );
        let parsed = parse_subscription(b"a/+");
        assert_eq!(
            parsed.map(|subscription| subscription.filter()),
            Ok(&b"a/+"[..])
        );
    }

    #[test]
    fn errors_name_the_rule() {
        assert!(FilterError::InvalidShareName
            .to_string()
            .contains("MQTT-4.8.2-1"));
        assert!(FilterError::MissingFilter
            .to_string()
            .contains("MQTT-4.8.2-2"));
    }
}
