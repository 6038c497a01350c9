//! `ByteStr`: a `Bytes` slice known to hold a valid MQTT UTF-8 string.
//!
//! Owns the invariant "valid UTF-8 without U+0000" ([MQTT-1.5.4-1], [MQTT-1.5.4-2]). The codec
//! constructs it after validation; everything downstream (topic matching, session keys) reads
//! it as bytes or as `&str` without checking again.

use bytes::Bytes;
use std::fmt;

use crate::mqtt::DecodeError;

/// Checks that `bytes` is an MQTT UTF-8 string: valid UTF-8 ([MQTT-1.5.4-1]) without U+0000
/// ([MQTT-1.5.4-2]). This is the one place that decides which strings the codec accepts.
///
/// The control characters U+0001..U+001F and U+007F..U+009F and the non-characters are
/// accepted: the specification says a receiver MAY refuse them (§1.5.4), and whether Culex
/// does is decided by differential tests against Mosquitto. Refusing them is a change here.
pub(crate) fn validate_string(bytes: &[u8]) -> Result<&str, DecodeError> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Err(DecodeError::Malformed(
            "[MQTT-1.5.4-1] string is not valid UTF-8",
        ));
    };
    if bytes.contains(&0) {
        return Err(DecodeError::Malformed(
            "[MQTT-1.5.4-2] string contains U+0000",
        ));
    }
    Ok(text)
}

/// An immutable, cheaply clonable UTF-8 string that shares the buffer it was decoded from.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteStr(Bytes);

impl ByteStr {
    /// An empty string.
    pub const fn new() -> ByteStr {
        ByteStr(Bytes::new())
    }

    /// Wraps `bytes` if it is valid UTF-8 without U+0000; otherwise returns `None`.
    pub fn from_bytes(bytes: Bytes) -> Option<ByteStr> {
        ByteStr::decode(bytes).ok()
    }

    /// Wraps `bytes` read from the wire if [`validate_string`] accepts them; otherwise
    /// returns the Malformed error naming the rule that failed.
    pub(crate) fn decode(bytes: Bytes) -> Result<ByteStr, DecodeError> {
        validate_string(&bytes)?;
        Ok(ByteStr(bytes))
    }

    /// Re-wraps bytes that are an exact copy of another `ByteStr`'s (a copy of valid text
    /// is valid text). Checked in debug builds.
    pub(crate) fn from_copy_of_valid(bytes: Bytes) -> ByteStr {
        debug_assert!(validate_string(&bytes).is_ok());
        ByteStr(bytes)
    }

    /// A string from static text. Panics on U+0000, which no caller writes.
    pub fn from_static(text: &'static str) -> ByteStr {
        assert!(!text.contains('\0'), "MQTT strings cannot hold U+0000");
        ByteStr(Bytes::from_static(text.as_bytes()))
    }

    /// Copies `text` into a new buffer. Panics on U+0000: callers build these from
    /// configuration or broker-made names that were validated already.
    pub fn copy_from_str(text: &str) -> ByteStr {
        assert!(!text.contains('\0'), "MQTT strings cannot hold U+0000");
        ByteStr(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// The string as text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checked that the bytes are valid UTF-8 and the buffer
        // is immutable, so the check still holds.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying shared buffer.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Copies the string into an exact-size buffer of its own, so that it no longer keeps a
    /// larger read buffer alive. Used before storing a value for long (sessions, retained).
    pub fn compact(&self) -> ByteStr {
        ByteStr(Bytes::copy_from_slice(&self.0))
    }
}

impl fmt::Debug for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ByteStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::ops::Deref for ByteStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for ByteStr {
    fn from(text: &'static str) -> ByteStr {
        ByteStr::from_static(text)
    }
}

impl From<String> for ByteStr {
    fn from(text: String) -> ByteStr {
        assert!(!text.contains('\0'), "MQTT strings cannot hold U+0000");
        ByteStr(Bytes::from(text))
    }
}

impl std::borrow::Borrow<[u8]> for ByteStr {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}
