//! Reading a command's fields strictly: every key must be one the command knows (matched
//! ASCII case-insensitively, as cJSON looks keys up), no key may appear twice, and every
//! value must have the right type and range. Each error names the field, as a path when it
//! is nested (`nodes[1].port`, counting from 0).
//!
//! Called only by the command parsers in `control::command`. The error texts are built
//! here, so that every command words the same problem the same way:
//! `Missing <field>`, `Invalid <field>: <what it must be>`, `Unknown field '<key>'`,
//! `Duplicate field '<field>'`.

use shards::dynsec::json::Value;

/// Keys every command may carry besides its own fields.
const ENVELOPE_KEYS: &[&str] = &["command", "correlationData"];

/// What a node id must be (also used by the node-list checks).
pub(super) const NODE_ID_RULE: &str = "must be an integer from 1 to 1023";
/// What a port must be.
const PORT_RULE: &str = "must be an integer from 1 to 65535";
/// What an address must be.
const ADDRESS_RULE: &str = "must be a host name or IP address (letters, digits and . - _ : %, \
                            at most 253 characters)";
/// What a cluster name must be.
const NAME_RULE: &str = "must be a non-empty string of printable UTF-8, at most 255 bytes";
/// Longest accepted cluster name, in bytes.
const NAME_BYTES_MAX: usize = 255;
/// Longest accepted address (a DNS name's limit; IP literals are shorter).
const ADDRESS_BYTES_MAX: usize = 253;
/// Highest node id (the seed's range 1-1023).
pub(super) const NODE_ID_MAX: u16 = 1023;

/// `Missing <field>`.
pub(super) fn missing(path: &str) -> String {
    format!("Missing {path}")
}

/// `Invalid <field>: <rule>`.
pub(super) fn invalid(path: &str, rule: &str) -> String {
    format!("Invalid {path}: {rule}")
}

/// One JSON object being read: the object and the path prefix of its fields in errors
/// (`""` for the command itself, `"nodes[2]."` for a node entry).
pub(super) struct Fields<'a> {
    object: &'a Value,
    prefix: String,
}

impl<'a> Fields<'a> {
    /// Checks the keys of `object` (a JSON object) against `allowed`; the envelope keys
    /// are allowed too when `envelope` is set. The first unknown or repeated key, in
    /// document order, is the error.
    pub(super) fn new(
        object: &'a Value,
        prefix: String,
        allowed: &[&str],
        envelope: bool,
    ) -> Result<Fields<'a>, String> {
        let Value::Object(members) = object else {
            return Err(format!("Invalid {}: must be an object", trim(&prefix)));
        };
        let known = |key: &[u8]| {
            let extra: &[&str] = if envelope { ENVELOPE_KEYS } else { &[] };
            allowed
                .iter()
                .chain(extra)
                .copied()
                .find(|name| name.as_bytes().eq_ignore_ascii_case(key))
        };
        for (index, (key, _)) in members.iter().enumerate() {
            let Some(name) = known(key) else {
                return Err(format!(
                    "Unknown field '{prefix}{}'",
                    String::from_utf8_lossy(key)
                ));
            };
            if members[..index]
                .iter()
                .any(|(earlier, _)| earlier.eq_ignore_ascii_case(key))
            {
                return Err(format!("Duplicate field '{prefix}{name}'"));
            }
        }
        Ok(Fields { object, prefix })
    }

    /// The path of `key` in errors.
    pub(super) fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key)
    }

    /// A required field, present with any value.
    pub(super) fn required(&self, key: &str) -> Result<&'a Value, String> {
        self.get(key).ok_or_else(|| missing(&self.path(key)))
    }

    /// `clustername`: a non-empty printable UTF-8 string of at most 255 bytes.
    pub(super) fn cluster_name(&self, key: &str) -> Result<String, String> {
        let value = self.required(key)?;
        value
            .as_bytes()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .filter(|text| {
                !text.is_empty()
                    && text.len() <= NAME_BYTES_MAX
                    && !text.chars().any(char::is_control)
            })
            .map(str::to_owned)
            .ok_or_else(|| invalid(&self.path(key), NAME_RULE))
    }

    /// `address`: a host name or an IP address literal (IPv6 with an optional `%zone`).
    pub(super) fn address(&self, key: &str) -> Result<String, String> {
        let value = self.required(key)?;
        value
            .as_bytes()
            .filter(|bytes| {
                !bytes.is_empty()
                    && bytes.len() <= ADDRESS_BYTES_MAX
                    && bytes
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(b))
            })
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .ok_or_else(|| invalid(&self.path(key), ADDRESS_RULE))
    }

    /// `port`: 1..=65535.
    pub(super) fn port(&self, key: &str) -> Result<u16, String> {
        self.integer(key, 1, u16::MAX, PORT_RULE)
    }

    /// `nodeid`: 1..=1023.
    pub(super) fn node_id(&self, key: &str) -> Result<u16, String> {
        self.integer(key, 1, NODE_ID_MAX, NODE_ID_RULE)
    }

    /// A required integer in `min..=max`. JSON numbers are doubles: a value with a
    /// fraction, or outside the range, is refused rather than truncated.
    fn integer(&self, key: &str, min: u16, max: u16, rule: &str) -> Result<u16, String> {
        let value = self.required(key)?;
        match value {
            Value::Number(n)
                if n.fract() == 0.0 && *n >= f64::from(min) && *n <= f64::from(max) =>
            {
                // In range and whole, so the conversion is exact.
                Ok(*n as u16)
            }
            _ => Err(invalid(&self.path(key), rule)),
        }
    }

    /// An optional boolean; `None` when absent.
    pub(super) fn optional_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(&self.path(key), "must be true or false")),
        }
    }

    /// An optional string field; `None` when absent, an error when not a string.
    pub(super) fn optional_bytes(&self, key: &str, rule: &str) -> Result<Option<&'a [u8]>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_bytes()
                .map(Some)
                .ok_or_else(|| invalid(&self.path(key), rule)),
        }
    }
}

/// `"nodes[2]."` → `"nodes[2]"`, for errors about the object itself.
fn trim(prefix: &str) -> &str {
    prefix.strip_suffix('.').unwrap_or(prefix)
}
