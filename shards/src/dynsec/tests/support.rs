//! Helpers shared by the dynsec tests: fixture loading, a JSON writer for request
//! payloads, and small state builders.

use std::path::PathBuf;

use crate::dynsec::control::{handle_request, ControlOutcome, RequestContext};
use crate::dynsec::deviations::{Target, DEVIATIONS};
use crate::dynsec::json::{self, Value};
use crate::dynsec::model::DynsecState;
use crate::dynsec::password::{PasswordPolicy, StoredForm};

/// The golden fixture directory.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/dynsec/testdata/golden")
}

/// Reads and parses a fixture.
pub fn fixture(name: &str) -> Value {
    let path = golden_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    json::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a fixture's raw bytes.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = golden_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compact JSON as Python's `json.dumps(v, separators=(",", ":"), ensure_ascii=False)`
/// writes it (how the capture tool produced the request payloads).
pub fn compact(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_compact(value, &mut out);
    out
}

fn write_string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn write_compact(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => {
            out.extend_from_slice(format!("{}", *n as i64).as_bytes())
        }
        Value::Number(n) => out.extend_from_slice(format!("{n}").as_bytes()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_compact(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_compact(item, out);
            }
            out.push(b'}');
        }
    }
}

/// A cheap password policy for tests that create many clients (PBKDF2 in debug builds is
/// slow); the golden replay uses the real default.
pub const FAST_POLICY: PasswordPolicy = PasswordPolicy {
    iterations: 2,
    salt_bytes: 12,
    form: StoredForm::Encoded,
};

/// The admin connection used by the captures.
pub const ADMIN: RequestContext<'static> = RequestContext {
    client_id: b"admin-cli",
    username: Some(b"admin"),
};

/// Runs one request given as JSON text.
pub fn run(state: &mut DynsecState, request: &str) -> ControlOutcome {
    handle_request(state, request.as_bytes(), &ADMIN)
}

/// Runs one request and returns the response as text.
pub fn respond(state: &mut DynsecState, request: &str) -> String {
    let outcome = run(state, request);
    String::from_utf8(outcome.response.expect("response within size limit")).expect("UTF-8")
}

/// Runs `request` and asserts that every command in it succeeded.
pub fn ok(state: &mut DynsecState, request: &str) -> ControlOutcome {
    let outcome = run(state, request);
    let response = outcome.response.clone().expect("response");
    let parsed = json::parse(&response).expect("response is JSON");
    for entry in parsed
        .get("responses")
        .and_then(Value::as_array)
        .expect("responses")
    {
        assert!(
            entry.get("error").is_none(),
            "request {request} failed: {}",
            String::from_utf8_lossy(&response)
        );
    }
    outcome
}

/// A golden text as Culex must produce it: every edit of `deviations::DEVIATIONS` for
/// `target` applied in table order, each required to match exactly once.
pub fn apply_deviations(target: Target, golden: &[u8]) -> Vec<u8> {
    let mut text = String::from_utf8(golden.to_vec()).expect("golden texts are UTF-8");
    for deviation in DEVIATIONS {
        for edit in deviation.edits.iter().filter(|e| e.target == target) {
            assert_eq!(
                text.matches(edit.find).count(),
                1,
                "edit of {target:?} for deviation {} must match exactly once: {:?}",
                deviation.id,
                edit.find
            );
            text = text.replacen(edit.find, edit.replace, 1);
        }
    }
    text.into_bytes()
}
