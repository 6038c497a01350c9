//! Line handling shared by the password-file and ACL-file parsers, reproducing the C
//! library calls Mosquitto reads them with: `fgets` lines, `isspace` trimming
//! (`misc__trimblanks`) and `strtok_r` tokens.
//!
//! Files are handled as bytes: Mosquitto never checks their encoding, so a comment in
//! Latin-1 must not stop the broker. A value that is not UTF-8 simply never equals an MQTT
//! username or topic (which are UTF-8).

/// The C locale's `isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`.
pub(super) fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `misc__trimblanks`: drops `isspace` bytes at both ends.
pub(super) fn trim_blanks(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_c_space(b))
        .map_or(start, |last| last + 1);
    &bytes[start..end.max(start)]
}

/// The file's lines with their 1-based numbers, without the `\n`. A final newline does not
/// produce an extra empty line.
pub(super) fn numbered_lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    body.split(|&b| b == b'\n')
        .enumerate()
        .filter(move |_| !empty)
        .map(|(index, line)| (index + 1, line))
}

/// `strtok_r(…, " ", …)`: the next run of non-space bytes (only `' '` separates, as in
/// Mosquitto; a tab is part of a token) and what follows the byte that ended it.
/// `None` when only spaces are left.
pub(super) fn next_token(bytes: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let start = bytes.iter().position(|&b| b != b' ')?;
    let rest = &bytes[start..];
    match rest.iter().position(|&b| b == b' ') {
        Some(end) => Some((&rest[..end], Some(&rest[end + 1..]))),
        None => Some((rest, None)),
    }
}

/// Text for messages: lossy UTF-8.
pub(super) fn display(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming() {
        assert_eq!(trim_blanks(b"  a b \t\r"), b"a b");
        assert_eq!(trim_blanks(b" \t "), b"");
        assert_eq!(trim_blanks(b""), b"");
        assert_eq!(trim_blanks(b"x"), b"x");
    }

    #[test]
    fn lines() {
        let all: Vec<_> = numbered_lines(b"a\n\nb\n").collect();
        assert_eq!(all, vec![(1, &b"a"[..]), (2, b""), (3, b"b")]);
        let all: Vec<_> = numbered_lines(b"a\r\nb").collect();
        assert_eq!(all, vec![(1, &b"a\r"[..]), (2, b"b")]);
        assert_eq!(numbered_lines(b"").count(), 0);
        assert_eq!(numbered_lines(b"\n").count(), 1);
    }

    #[test]
    fn tokens() {
        assert_eq!(
            next_token(b"  topic  read x"),
            Some((&b"topic"[..], Some(&b" read x"[..])))
        );
        assert_eq!(next_token(b"topic"), Some((&b"topic"[..], None)));
        assert_eq!(next_token(b"topic "), Some((&b"topic"[..], Some(&b""[..]))));
        assert_eq!(next_token(b"   "), None);
        assert_eq!(
            next_token(b"\ttopic read"),
            Some((&b"\ttopic"[..], Some(&b"read"[..])))
        );
    }
}
