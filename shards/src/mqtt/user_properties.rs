//! `UserProperties`: the 0x26 User Property list of any 5.0 packet, kept in wire form.
//!
//! Owns the representation of user properties. They are forwarded unchanged from publisher
//! to subscriber ([MQTT-3.3.2-17]), so they are stored as the exact bytes that go back on
//! the wire: a sequence of `0x26, u16 key length, key, u16 value length, value`. Decoding a
//! packet whose user properties are contiguous makes this a zero-copy slice of the read
//! buffer; encoding copies the bytes as they are.

use bytes::{BufMut, Bytes, BytesMut};

/// Property identifier of a user property.
pub const USER_PROPERTY_ID: u8 = 0x26;

/// An ordered list of (key, value) UTF-8 string pairs, stored in wire form.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct UserProperties(Bytes);

impl UserProperties {
    /// No user properties.
    pub const fn new() -> UserProperties {
        UserProperties(Bytes::new())
    }

    /// Wraps bytes that the decoder has already validated as a sequence of well-formed user
    /// properties (identifier, two MQTT UTF-8 strings, repeated).
    pub fn from_wire_unchecked(wire: Bytes) -> UserProperties {
        debug_assert!(Self::validate(&wire));
        UserProperties(wire)
    }

    /// True when `wire` is a sequence of well-formed user properties.
    pub fn validate(wire: &[u8]) -> bool {
        let mut rest = wire;
        while !rest.is_empty() {
            if rest[0] != USER_PROPERTY_ID {
                return false;
            }
            rest = &rest[1..];
            for _ in 0..2 {
                let Some((text, tail)) = split_string(rest) else {
                    return false;
                };
                match std::str::from_utf8(text) {
                    Ok(s) if !s.contains('\0') => {}
                    _ => return false,
                }
                rest = tail;
            }
        }
        true
    }

    /// Builds a list from pairs (allocates; for packets the broker makes, and for tests).
    /// Panics if a key or value is longer than 65,535 bytes or holds U+0000.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> UserProperties {
        let mut out = BytesMut::new();
        for (key, value) in pairs {
            out.put_u8(USER_PROPERTY_ID);
            for text in [key, value] {
                assert!(!text.contains('\0'), "MQTT strings cannot hold U+0000");
                let len = u16::try_from(text.len()).expect("user property longer than 65535");
                out.put_u16(len);
                out.put_slice(text.as_bytes());
            }
        }
        UserProperties(out.freeze())
    }

    /// The wire bytes (identifiers included), as written into a property block.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// Number of wire bytes these properties add to a property block.
    pub fn wire_len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no user properties.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over (key, value) pairs in order.
    pub fn iter(&self) -> UserPropertiesIter<'_> {
        UserPropertiesIter { rest: &self.0 }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Copies the properties into an exact-size buffer of their own (see
    /// `ByteStr::compact`).
    pub fn compact(&self) -> UserProperties {
        UserProperties(Bytes::copy_from_slice(&self.0))
    }
}

impl std::fmt::Debug for UserProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over the pairs of [`UserProperties`].
pub struct UserPropertiesIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for UserPropertiesIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let body = self.rest.get(1..)?;
        let (key, tail) = split_string(body)?;
        let (value, tail) = split_string(tail)?;
        self.rest = tail;
        // The constructor validated UTF-8; an invalid pair would have been refused.
        Some((
            std::str::from_utf8(key).ok()?,
            std::str::from_utf8(value).ok()?,
        ))
    }
}

/// Bytes taken by the first `count` user properties of the wire form `wire` (all of it when
/// it holds fewer). `wire` is a validated block, as [`UserProperties::wire`] returns.
pub(crate) fn wire_prefix_len(wire: &[u8], count: usize) -> usize {
    let mut rest = wire;
    for _ in 0..count {
        let Some(body) = rest.get(1..) else {
            break;
        };
        let Some((_, tail)) = split_string(body) else {
            break;
        };
        let Some((_, tail)) = split_string(tail) else {
            break;
        };
        rest = tail;
    }
    wire.len() - rest.len()
}

/// Splits a two-byte-length-prefixed string off the front of `bytes`.
fn split_string(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = usize::from(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]));
    let end = 2 + len;
    Some((bytes.get(2..end)?, bytes.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip_through_wire_form() {
        let props = UserProperties::from_pairs([("a", "1"), ("key", ""), ("a", "2")]);
        let pairs: Vec<_> = props.iter().collect();
        assert_eq!(pairs, vec![("a", "1"), ("key", ""), ("a", "2")]);
        assert!(UserProperties::validate(props.wire()));
        assert_eq!(props.wire()[0], USER_PROPERTY_ID);
        assert_eq!(props.len(), 3);
    }

    #[test]
    fn validate_refuses_truncated_and_foreign_bytes() {
        assert!(UserProperties::validate(&[]));
        assert!(!UserProperties::validate(&[0x26, 0, 1, b'a', 0]));
        assert!(!UserProperties::validate(&[0x1F, 0, 0, 0, 0]));
        assert!(!UserProperties::validate(&[0x26, 0, 1, 0, 0, 0]));
        assert!(!UserProperties::validate(&[0x26, 0, 1, 0xFF, 0, 0]));
    }
}
