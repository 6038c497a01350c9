//! A JSON reader that behaves like the cJSON library inside Mosquitto, where that behaviour
//! is visible on the wire or on disk (spec §4.2).
//!
//! Called by `control` (request payloads) and `store` (the `dynamic-security.json` file).
//! Differences from a strict RFC 8259 parser, all deliberate:
//!
//! * strings are byte strings: invalid UTF-8 is kept so that name validation can answer
//!   "… not valid UTF-8" instead of "Payload not valid JSON";
//! * a `\u0000` escape ends the string's value (C strings), the rest of the literal is
//!   still parsed;
//! * the input ends at its first NUL byte (Mosquitto hands cJSON a C string);
//! * trailing data after the first complete value is ignored;
//! * object members keep their order and duplicates; [`Value::get`] is ASCII
//!   case-insensitive and returns the first match;
//! * numbers are `f64`, parsed like `strtod` over cJSON's character set;
//! * nesting deeper than [`JSON_DEPTH_MAX`] is an error.

use super::limits::JSON_DEPTH_MAX;

/// A parsed JSON value. Placement: transient, built and dropped while handling one request
/// or loading one file.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Every number, as cJSON stores it.
    Number(f64),
    /// A string's bytes after unescaping, cut at the first `\u0000`.
    String(Vec<u8>),
    /// An array, in order.
    Array(Vec<Value>),
    /// An object's members in document order, duplicates kept.
    Object(Vec<(Vec<u8>, Value)>),
}

/// Why a document was refused. Mosquitto reports every case the same way ("Payload not
/// valid JSON"), so only the position is kept, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset at which parsing failed.
    pub offset: usize,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not valid JSON (at byte {})", self.offset)
    }
}

impl std::error::Error for ParseError {}

impl Value {
    /// The first member whose key equals `key` ignoring ASCII case, as `cJSON_GetObjectItem`.
    /// `None` for non-objects.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key.as_bytes()))
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::String(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The value of a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The elements of an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is an object.
    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    /// A number as cJSON's `valueint`: truncated toward zero and saturated to `i32`.
    pub fn as_i32(&self) -> Option<i32> {
        match self {
            // `as` on f64 → i32 truncates toward zero and saturates, exactly like cJSON.
            Value::Number(n) => Some(*n as i32),
            _ => None,
        }
    }

    /// A number as `i64` (used only for the file's `iterations`), truncated and saturated.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => Some(*n as i64),
            _ => None,
        }
    }
}

/// Parses the first JSON value of `input` with cJSON's rules (see the module doc).
pub fn parse(input: &[u8]) -> Result<Value, ParseError> {
    let end = input.iter().position(|&b| b == 0).unwrap_or(input.len());
    let mut parser = Parser {
        input: &input[..end],
        pos: 0,
        depth: 0,
    };
    if parser.input.starts_with(b"\xEF\xBB\xBF") {
        parser.pos = 3;
    }
    parser.skip_whitespace();
    parser.value()
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn error<T>(&self) -> Result<T, ParseError> {
        Err(ParseError { offset: self.pos })
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// cJSON skips every byte up to and including the space as whitespace.
    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|b| b <= b' ') {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        let rest = &self.input[self.pos..];
        if rest.starts_with(b"null") {
            self.pos += 4;
            return Ok(Value::Null);
        }
        if rest.starts_with(b"false") {
            self.pos += 5;
            return Ok(Value::Bool(false));
        }
        if rest.starts_with(b"true") {
            self.pos += 4;
            return Ok(Value::Bool(true));
        }
        match self.peek() {
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => self.array(),
            Some(b'{') => self.object(),
            _ => self.error(),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth >= JSON_DEPTH_MAX {
            return self.error();
        }
        self.depth += 1;
        Ok(())
    }

    fn array(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1;
        self.skip_whitespace();
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value()?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => break,
                _ => return self.error(),
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn object(&mut self) -> Result<Value, ParseError> {
        self.enter()?;
        self.pos += 1;
        self.skip_whitespace();
        let mut members = Vec::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return self.error();
            }
            let key = self.string()?;
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return self.error();
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.value()?;
            members.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => break,
                _ => return self.error(),
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(Value::Object(members))
    }

    /// Parses a string literal starting at the opening quote. Control bytes and invalid
    /// UTF-8 inside the literal are accepted as cJSON does.
    fn string(&mut self) -> Result<Vec<u8>, ParseError> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let mut out = Vec::new();
        let mut truncated = false;
        loop {
            let Some(byte) = self.peek() else {
                return self.error();
            };
            self.pos += 1;
            match byte {
                b'"' => return Ok(out),
                b'\\' => {
                    let mut decoded = [0u8; 4];
                    let len = self.escape(&mut decoded)?;
                    if decoded[..len].contains(&0) {
                        truncated = true;
                    }
                    if !truncated {
                        out.extend_from_slice(&decoded[..len]);
                    }
                }
                _ => {
                    if !truncated {
                        out.push(byte);
                    }
                }
            }
        }
    }

    /// Decodes one escape sequence (after the backslash) into `out`, returning its length.
    fn escape(&mut self, out: &mut [u8; 4]) -> Result<usize, ParseError> {
        let Some(kind) = self.peek() else {
            return self.error();
        };
        self.pos += 1;
        let simple = match kind {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'"' | b'\\' | b'/' => kind,
            b'u' => return self.unicode_escape(out),
            _ => return self.error(),
        };
        out[0] = simple;
        Ok(1)
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let Some(digits) = self.input.get(self.pos..self.pos + 4) else {
            return self.error();
        };
        let mut value = 0u32;
        for &digit in digits {
            let nibble = match digit {
                b'0'..=b'9' => digit - b'0',
                b'a'..=b'f' => digit - b'a' + 10,
                b'A'..=b'F' => digit - b'A' + 10,
                _ => return self.error(),
            };
            value = (value << 4) | u32::from(nibble);
        }
        self.pos += 4;
        Ok(value)
    }

    /// `\uXXXX`, with surrogate pairs combined; a lone or reversed surrogate is an error.
    fn unicode_escape(&mut self, out: &mut [u8; 4]) -> Result<usize, ParseError> {
        let first = self.hex4()?;
        let code = if (0xDC00..=0xDFFF).contains(&first) {
            return self.error();
        } else if (0xD800..=0xDBFF).contains(&first) {
            if !self.input[self.pos..].starts_with(b"\\u") {
                return self.error();
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return self.error();
            }
            0x10000 + (((first & 0x3FF) << 10) | (second & 0x3FF))
        } else {
            first
        };
        let Some(ch) = char::from_u32(code) else {
            return self.error();
        };
        Ok(ch.encode_utf8(out).len())
    }

    /// cJSON copies the run of `0-9 + - e E .` and hands it to `strtod`; whatever `strtod`
    /// does not consume is left for the enclosing structure (which then usually fails).
    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        let run = self.input[start..]
            .iter()
            .take_while(|b| matches!(b, b'0'..=b'9' | b'+' | b'-' | b'e' | b'E' | b'.'))
            .count();
        let consumed = strtod_prefix(&self.input[start..start + run]);
        if consumed == 0 {
            return self.error();
        }
        let text = std::str::from_utf8(&self.input[start..start + consumed]).ok();
        let Some(number) = text.and_then(|t| t.parse::<f64>().ok()) else {
            return self.error();
        };
        self.pos = start + consumed;
        Ok(Value::Number(number))
    }
}

/// Length of the longest prefix of `run` that `strtod` would accept as a decimal number:
/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`. Zero when none.
fn strtod_prefix(run: &[u8]) -> usize {
    let mut i = 0;
    if matches!(run.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let int_digits = run[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if run.get(i) == Some(&b'.') {
        frac_digits = run[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if int_digits > 0 || frac_digits > 0 {
            i += 1 + frac_digits;
        }
    }
    if int_digits == 0 && frac_digits == 0 {
        return 0;
    }
    if matches!(run.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(run.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_digits = run[j..].iter().take_while(|b| b.is_ascii_digit()).count();
        if exp_digits > 0 {
            i = j + exp_digits;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: &Value) -> &[(Vec<u8>, Value)] {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn trailing_garbage_is_ignored_like_cjson() {
        let v = parse(b"{\"a\":1} trailing garbage").unwrap();
        assert_eq!(v.get("a"), Some(&Value::Number(1.0)));
    }

    #[test]
    fn keys_are_case_insensitive_and_first_duplicate_wins() {
        let v = parse(br#"{"UserName":"first","username":"second"}"#).unwrap();
        assert_eq!(
            v.get("username").and_then(Value::as_bytes),
            Some(&b"first"[..])
        );
        assert_eq!(obj(&v).len(), 2);
    }

    #[test]
    fn nul_escape_truncates_string() {
        let v = parse(br#"{"rolename":"ab\u0000cd","x":"y"}"#).unwrap();
        assert_eq!(
            v.get("rolename").and_then(Value::as_bytes),
            Some(&b"ab"[..])
        );
        assert_eq!(v.get("x").and_then(Value::as_bytes), Some(&b"y"[..]));
    }

    #[test]
    fn raw_nul_ends_the_document() {
        assert!(parse(b"{\"a\":1}\0garbage").is_ok());
        assert!(parse(b"{\"a\":\0 1}").is_err());
    }

    #[test]
    fn invalid_utf8_is_kept_in_strings() {
        let v = parse(b"{\"n\":\"bad\xff\"}").unwrap();
        assert_eq!(v.get("n").and_then(Value::as_bytes), Some(&b"bad\xff"[..]));
    }

    #[test]
    fn numbers_truncate_and_saturate_to_i32() {
        let v = parse(br#"[2.9,-2.9,1e20,-1e20,7]"#).unwrap();
        let ints: Vec<_> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_i32().unwrap())
            .collect();
        assert_eq!(ints, vec![2, -2, i32::MAX, i32::MIN, 7]);
    }

    #[test]
    fn strtod_prefix_rules() {
        assert_eq!(strtod_prefix(b"12"), 2);
        assert_eq!(strtod_prefix(b"1."), 2);
        assert_eq!(strtod_prefix(b".5"), 2);
        assert_eq!(strtod_prefix(b"1e"), 1);
        assert_eq!(strtod_prefix(b"1e+5"), 4);
        assert_eq!(strtod_prefix(b"-"), 0);
        assert_eq!(strtod_prefix(b"."), 0);
        assert_eq!(strtod_prefix(b"1.2.3"), 3);
    }

    #[test]
    fn surrogate_pairs_decode_and_lone_surrogates_fail() {
        let v = parse(br#""\ud83d\ude00""#).unwrap();
        assert_eq!(v.as_bytes(), Some("😀".as_bytes()));
        assert!(parse(br#""\ude00""#).is_err());
        assert!(parse(br#""\ud83d x""#).is_err());
    }

    #[test]
    fn depth_limit_is_1000_levels() {
        let ok = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(1001), "]".repeat(1001));
        assert!(parse(deep.as_bytes()).is_err());
    }

    #[test]
    fn malformed_documents_fail() {
        for bad in [
            &b""[..],
            b"   ",
            b"this is not json",
            b"{\"a\":1,}",
            b"[1,]",
            b"{\"a\" 1}",
            b"\"unterminated",
            b"\"bad escape \\x\"",
            b"{a:1}",
            b"nul",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn whitespace_bom_and_controls_are_skipped() {
        let v = parse(b"\xEF\xBB\xBF \t\x01{ \"a\" : [ true , false , null ] }").unwrap();
        let arr = v.get("A").and_then(Value::as_array).unwrap();
        assert_eq!(arr, &[Value::Bool(true), Value::Bool(false), Value::Null]);
    }
}
