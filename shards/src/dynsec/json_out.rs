//! JSON writer producing the exact bytes cJSON prints in Mosquitto: compact for control
//! responses (`cJSON_PrintUnformatted`, spec §4.5) and tab-indented for the
//! `dynamic-security.json` file (`cJSON_Print`, spec §11.3).
//!
//! Called by `control::render` and `store`. Callers build an [`Out`] tree (key order is
//! the order of insertion) and print it once.

/// A value to print. Keys are static because every key Mosquitto writes is a fixed name.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// An object; members are printed in this order.
    Object(Vec<(&'static str, Out)>),
    /// An array.
    Array(Vec<Out>),
    /// A string given as raw bytes (printed without UTF-8 validation, as cJSON does).
    Str(Vec<u8>),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

impl Out {
    /// A string value from bytes.
    pub fn str(bytes: &[u8]) -> Out {
        Out::Str(bytes.to_vec())
    }
}

/// Prints `value` compactly (no whitespace at all).
pub fn to_compact(value: &Out) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    print(value, &mut out, None);
    out
}

/// Prints `value` like `cJSON_Print`: TAB indentation, `"key":<TAB>value`, members on
/// their own lines, array elements inline separated by `", "`, no trailing newline.
pub fn to_formatted(value: &Out) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    print(value, &mut out, Some(0));
    out
}

/// `depth` is `None` for compact output, otherwise cJSON's current nesting depth.
fn print(value: &Out, out: &mut Vec<u8>, depth: Option<usize>) {
    match value {
        Out::Object(members) => print_object(members, out, depth),
        Out::Array(items) => {
            let inner = depth.map(|d| d + 1);
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                    if depth.is_some() {
                        out.push(b' ');
                    }
                }
                print(item, out, inner);
            }
            out.push(b']');
        }
        Out::Str(bytes) => print_string(bytes, out),
        Out::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Out::Bool(true) => out.extend_from_slice(b"true"),
        Out::Bool(false) => out.extend_from_slice(b"false"),
    }
}

fn print_object(members: &[(&'static str, Out)], out: &mut Vec<u8>, depth: Option<usize>) {
    out.push(b'{');
    let Some(depth) = depth else {
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            print_string(key.as_bytes(), out);
            out.push(b':');
            print(value, out, None);
        }
        out.push(b'}');
        return;
    };
    let inner = depth + 1;
    out.push(b'\n');
    for (i, (key, value)) in members.iter().enumerate() {
        out.extend(std::iter::repeat_n(b'\t', inner));
        print_string(key.as_bytes(), out);
        out.extend_from_slice(b":\t");
        print(value, out, Some(inner));
        if i + 1 < members.len() {
            out.push(b',');
        }
        out.push(b'\n');
    }
    out.extend(std::iter::repeat_n(b'\t', depth));
    out.push(b'}');
}

/// cJSON escaping: `"` `\` and the short control escapes; other bytes below 0x20 as
/// `\u00xx` (lower-case hex); everything else, including `/`, DEL and non-ASCII, raw.
fn print_string(bytes: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_escaping_matches_cjson() {
        let v = Out::Object(vec![(
            "t",
            Out::str("tab\there \"q\" back\\slash /slash é \u{1} \n end".as_bytes()),
        )]);
        assert_eq!(
            String::from_utf8(to_compact(&v)).unwrap(),
            r#"{"t":"tab\there \"q\" back\\slash /slash é \u0001 \n end"}"#
        );
    }

    #[test]
    fn formatted_layout_matches_cjson_print() {
        let v = Out::Object(vec![
            ("a", Out::Bool(true)),
            (
                "l",
                Out::Array(vec![
                    Out::Object(vec![("x", Out::Int(-1))]),
                    Out::Object(vec![("y", Out::Int(2))]),
                ]),
            ),
            ("e", Out::Array(vec![])),
        ]);
        let expected = "{\n\t\"a\":\ttrue,\n\t\"l\":\t[{\n\t\t\t\"x\":\t-1\n\t\t}, {\n\t\t\t\"y\":\t2\n\t\t}],\n\t\"e\":\t[]\n}";
        assert_eq!(String::from_utf8(to_formatted(&v)).unwrap(), expected);
    }
}
