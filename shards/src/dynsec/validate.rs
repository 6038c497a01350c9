//! Input checks that Mosquitto applies to names and ACL topics (spec §5, §6.4).
//!
//! Called by `control` before any command mutates state. Pure functions over bytes.

use super::limits::{ACL_TOPIC_BYTES_MAX, ACL_TOPIC_SEPARATORS_MAX, NAME_BYTES_MAX};

/// Mosquitto's `mosquitto_validate_utf8`: well-formed UTF-8 (no overlongs, surrogates or
/// code points above U+10FFFF), no non-characters (U+FDD0–U+FDEF, U+xxFFFE, U+xxFFFF), no
/// control characters (U+0000–U+001F, U+007F–U+009F), at most [`NAME_BYTES_MAX`] bytes.
pub fn is_valid_name(bytes: &[u8]) -> bool {
    if bytes.len() > NAME_BYTES_MAX {
        return false;
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    text.chars().all(|c| {
        let code = u32::from(c);
        let control = code <= 0x1F || (0x7F..=0x9F).contains(&code);
        let non_character = (0xFDD0..=0xFDEF).contains(&code) || (code & 0xFFFE) == 0xFFFE;
        !control && !non_character
    })
}

/// Mosquitto's `mosquitto_sub_topic_check` as built into the broker: `+` occupies a whole
/// level, `#` is the whole last level, at most [`ACL_TOPIC_BYTES_MAX`] bytes and
/// [`ACL_TOPIC_SEPARATORS_MAX`] separators. The empty topic passes (2.0.11, capture 069).
pub fn is_valid_acl_topic(topic: &[u8]) -> bool {
    if topic.len() > ACL_TOPIC_BYTES_MAX {
        return false;
    }
    let separators = topic.iter().filter(|&&b| b == b'/').count();
    if separators > ACL_TOPIC_SEPARATORS_MAX {
        return false;
    }
    let mut levels = topic.split(|&b| b == b'/').peekable();
    while let Some(level) = levels.next() {
        let has_plus = level.contains(&b'+');
        let has_hash = level.contains(&b'#');
        if has_plus && level != b"+" {
            return false;
        }
        if has_hash && (level != b"#" || levels.peek().is_some()) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_valid_name(b""));
        assert!(is_valid_name("röle-✓ 😀".as_bytes()));
        assert!(!is_valid_name(b"bad\x01name"));
        assert!(!is_valid_name(b"del\x7f"));
        assert!(!is_valid_name("c1\u{85}".as_bytes()));
        assert!(!is_valid_name(b"bad\xff"));
        assert!(!is_valid_name(b"\xc0\xaf"));
        assert!(!is_valid_name(b"\xed\xa0\x80"));
        assert!(!is_valid_name("\u{FDD0}".as_bytes()));
        assert!(!is_valid_name("\u{FFFE}".as_bytes()));
        assert!(!is_valid_name("\u{1FFFF}".as_bytes()));
        assert!(is_valid_name(&vec![b'u'; NAME_BYTES_MAX]));
        assert!(!is_valid_name(&vec![b'u'; NAME_BYTES_MAX + 1]));
    }

    #[test]
    fn acl_topics() {
        for ok in [
            "", "a", "a/b", "+", "#", "a/+/b", "a/#", "+/+", "/", "a//b", "%c/x",
        ] {
            assert!(is_valid_acl_topic(ok.as_bytes()), "{ok}");
        }
        for bad in ["a/#/b", "a+", "+a", "a/b#", "#/a", "##", "a/++"] {
            assert!(!is_valid_acl_topic(bad.as_bytes()), "{bad}");
        }
        let two_hundred = "a/".repeat(200) + "a";
        assert!(is_valid_acl_topic(two_hundred.as_bytes()));
        let two_hundred_one = "a/".repeat(201) + "a";
        assert!(!is_valid_acl_topic(two_hundred_one.as_bytes()));
        assert!(is_valid_acl_topic(&vec![b't'; ACL_TOPIC_BYTES_MAX]));
        assert!(!is_valid_acl_topic(&vec![b't'; ACL_TOPIC_BYTES_MAX + 1]));
    }
}
