//! Golden replay: feeds every captured request of `dynsec-golden/` (Debian Mosquitto
//! 2.0.11) to `handle_request`, in `index.json` order, starting from
//! `initial-dynamic-security.json`, and demands for each capture:
//!
//! * the response parses to the same JSON value (keys in the same order) as the capture's
//!   `response_raw`, and is byte-identical to it;
//! * `ControlOutcome::changed` equals the capture's `config_file_rewritten`;
//! * the state invariants hold.
//!
//! After the sequence the saved file must be byte-identical to
//! `final-dynamic-security.json`. The only adjustments are the edits listed in
//! `deviations::DEVIATIONS` and, for passwords set during the replay (random salts), a
//! check that both Mosquitto's and Culex's hash verify the plaintext the requests sent,
//! after which Mosquitto's hash is put in Culex's state so that the file bytes compare.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::support::{apply_deviations, compact, fixture, fixture_bytes, ADMIN};
use crate::dynsec::control::handle_request;
use crate::dynsec::deviations::{Target, DEVIATIONS};
use crate::dynsec::json::{self, Value};
use crate::dynsec::password::{PasswordHash, PasswordPolicy, StoredForm};
use crate::dynsec::store;

struct Capture {
    seq: u16,
    name: String,
    payload: Vec<u8>,
    response_raw: Vec<u8>,
    rewritten: bool,
}

fn text(value: &Value, key: &str) -> String {
    let bytes = value
        .get(key)
        .and_then(Value::as_bytes)
        .unwrap_or_else(|| panic!("no {key}"));
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn load_capture(file: &str) -> Capture {
    let capture = fixture(file);
    let payload = match text(&capture, "request_format").as_str() {
        "json" => compact(capture.get("request").unwrap()),
        "text" => capture
            .get("request")
            .and_then(Value::as_bytes)
            .unwrap()
            .to_vec(),
        "base64" => BASE64.decode(text(&capture, "request_raw_base64")).unwrap(),
        other => panic!("{file}: unknown request_format {other}"),
    };
    Capture {
        seq: capture
            .get("seq")
            .and_then(Value::as_i32)
            .unwrap()
            .try_into()
            .unwrap(),
        name: text(&capture, "name"),
        payload,
        response_raw: capture
            .get("response_raw")
            .and_then(Value::as_bytes)
            .unwrap()
            .to_vec(),
        rewritten: capture
            .get("config_file_rewritten")
            .and_then(Value::as_bool)
            .unwrap(),
    }
}

/// The captures in `index.json` order; checks that the index and the directory agree.
fn captures() -> Vec<Capture> {
    let index = fixture("index.json");
    let files: Vec<String> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| text(entry, "file"))
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(super::support::golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.as_bytes()[0].is_ascii_digit())
        .collect();
    on_disk.sort();
    let mut indexed = files.clone();
    indexed.sort();
    assert_eq!(indexed, on_disk, "index.json must list every capture");
    assert!(
        files.len() >= 240,
        "expected the full capture set, found {}",
        files.len()
    );
    files.iter().map(|f| load_capture(f)).collect()
}

/// The response Culex must give for a capture: the capture, edited by the deviations.
fn expected_response(capture: &Capture) -> Vec<u8> {
    apply_deviations(Target::Response(capture.seq), &capture.response_raw)
}

/// Passwords the requests set, by username (creates with a string password, successful
/// setClientPassword, non-empty modifyClient passwords); removed with the client.
fn track_passwords(payload: &[u8], response: &[u8], passwords: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
    let (Ok(request), Ok(response)) = (json::parse(payload), json::parse(response)) else {
        return;
    };
    let (Some(commands), Some(entries)) = (
        request.get("commands").and_then(Value::as_array),
        response.get("responses").and_then(Value::as_array),
    ) else {
        return;
    };
    for (command, entry) in commands.iter().zip(entries) {
        if entry.get("error").is_some() {
            continue;
        }
        let name = command
            .get("command")
            .and_then(Value::as_bytes)
            .unwrap_or_default();
        let username = command
            .get("username")
            .and_then(Value::as_bytes)
            .unwrap_or_default();
        let password = command.get("password").and_then(Value::as_bytes);
        match (name.to_ascii_lowercase().as_slice(), password) {
            (b"deleteclient", _) => {
                passwords.remove(username);
            }
            (b"createclient" | b"setclientpassword", Some(pw)) => {
                passwords.insert(username.to_vec(), pw.to_vec());
            }
            (b"modifyclient", Some(pw)) if !pw.is_empty() => {
                passwords.insert(username.to_vec(), pw.to_vec());
            }
            _ => {}
        }
    }
}

fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() > 600 {
        format!("{}… ({} bytes)", &text[..600], text.len())
    } else {
        text.into_owned()
    }
}

#[test]
fn replay_matches_mosquitto_2_0_11_captures() {
    let initial = fixture_bytes("initial-dynamic-security.json");
    let (mut state, warnings) = store::load(&initial).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // The file is in 2.0's format, so new passwords are too.
    assert_eq!(state.password_policy(), PasswordPolicy::MOSQUITTO_2_0);
    let mut passwords = BTreeMap::new();
    let mut failures = Vec::new();
    for capture in captures() {
        let outcome = handle_request(&mut state, &capture.payload, &ADMIN);
        let got = outcome
            .response
            .clone()
            .expect("response within size limit");
        let expected = expected_response(&capture);
        let same_value = json::parse(&got).ok() == json::parse(&expected).ok();
        if !same_value || got != expected {
            failures.push(format!(
                "{:03} {}: value equal: {same_value}\n  expected {}\n  got      {}",
                capture.seq,
                capture.name,
                show(&expected),
                show(&got)
            ));
        }
        if outcome.changed != capture.rewritten {
            failures.push(format!(
                "{:03} {}: changed={} but Mosquitto rewrote the file: {}",
                capture.seq, capture.name, outcome.changed, capture.rewritten
            ));
        }
        if let Err(e) = state.check_invariants() {
            failures.push(format!(
                "{:03} {}: invariant broken: {e}",
                capture.seq, capture.name
            ));
        }
        track_passwords(&capture.payload, &got, &mut passwords);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    compare_final_file(&mut state, &passwords);
}

/// Compares the file Culex would save with `final-dynamic-security.json`.
fn compare_final_file(
    state: &mut crate::dynsec::model::DynsecState,
    passwords: &BTreeMap<Vec<u8>, Vec<u8>>,
) {
    let expected = apply_deviations(
        Target::FinalFile,
        &fixture_bytes("final-dynamic-security.json"),
    );
    let golden = json::parse(&expected).unwrap();
    let golden_clients = golden.get("clients").and_then(Value::as_array).unwrap();
    assert!(!passwords.is_empty());
    for (username, plaintext) in passwords {
        let ours = state
            .clients
            .get_mut(username)
            .expect("client with a replayed password");
        let hash = ours.password.clone().expect("password set by the replay");
        assert!(
            hash.verify(plaintext),
            "Culex hash of {username:?} must verify"
        );
        let (_, salt, iterations) = hash
            .triple()
            .expect("new passwords keep the file's 2.0 form");
        assert_eq!(
            (salt.len(), iterations),
            (16, 101),
            "12-byte salt, as 2.0 writes"
        );
        assert!(
            matches!(hash, PasswordHash::Pbkdf2 { form: StoredForm::Triple, ref salt, .. } if salt.len() == 12)
        );
        assert!(hash.readable_by_2_0());
        let theirs = golden_clients
            .iter()
            .find(|c| c.get("username").and_then(Value::as_bytes) == Some(username))
            .expect("client in the final file");
        let field = |key: &str| theirs.get(key).and_then(Value::as_bytes).unwrap();
        let iterations = theirs.get("iterations").and_then(Value::as_i64).unwrap();
        let mosquitto = PasswordHash::from_triple(field("password"), field("salt"), iterations)
            .expect("Mosquitto's triple");
        assert!(
            mosquitto.verify(plaintext),
            "Mosquitto hash of {username:?} must verify"
        );
        ours.password = Some(mosquitto);
    }
    let saved = store::serialise(state);
    assert!(
        saved == expected,
        "final file differs\n--- expected\n{}\n--- got\n{}",
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(&saved)
    );
    let (reloaded, warnings) = store::load(&saved).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(&reloaded.clients, &state.clients);
    assert_eq!(&reloaded.groups, &state.groups);
    assert_eq!(&reloaded.roles, &state.roles);
}

#[test]
fn every_deviation_is_documented() {
    let mut ids: Vec<&str> = DEVIATIONS.iter().map(|d| d.id).collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "deviation ids are unique");
    for deviation in DEVIATIONS {
        assert!(!deviation.mosquitto.is_empty() && !deviation.culex.is_empty());
        assert!(!deviation.reason.is_empty());
    }
}
