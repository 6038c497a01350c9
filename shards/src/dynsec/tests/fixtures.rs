//! Golden fixtures other than the replay sequence: password vectors, the config-load
//! cases, and the `mosquitto_ctrl` 2.0.11 request/response mapping.

use super::support::{apply_deviations, compact, fixture, respond, ADMIN};
use crate::dynsec::acl::{AclSnapshot, AuthDenied, AuthResult};
use crate::dynsec::control::handle_request;
use crate::dynsec::deviations::Target;
use crate::dynsec::json::{self, Value};
use crate::dynsec::password::PasswordHash;
use crate::dynsec::store;

fn bytes<'a>(value: &'a Value, key: &str) -> &'a [u8] {
    value
        .get(key)
        .and_then(Value::as_bytes)
        .unwrap_or_else(|| panic!("no {key}"))
}

/// Every vector written by the broker (and the hand-made 1000-iteration one) verifies with
/// its password, fails with a near miss, and logs in through a snapshot.
#[test]
fn password_vectors_verify() {
    let vectors = fixture("password-vectors.json");
    let list = vectors.get("vectors").and_then(Value::as_array).unwrap();
    assert_eq!(list.len(), 9);
    let mut file = String::from(r#"{"clients":["#);
    for (i, vector) in list.iter().enumerate() {
        let password = bytes(vector, "password");
        let iterations = vector.get("iterations").and_then(Value::as_i64).unwrap();
        let hash = PasswordHash::from_triple(
            bytes(vector, "password_hash"),
            bytes(vector, "salt"),
            iterations,
        )
        .expect("vector decodes");
        assert!(hash.verify(password), "vector {i}");
        let mut wrong = password.to_vec();
        wrong.push(b'x');
        assert!(!hash.verify(&wrong), "vector {i} near miss");
        let (encoded, _, _) = hash.triple().unwrap();
        assert_eq!(encoded, bytes(vector, "password_hash"), "round trip");
        if i > 0 {
            file.push(',');
        }
        file.push_str(&format!(
            r#"{{"username":"{}","password":"{}","salt":"{}","iterations":{iterations}}}"#,
            String::from_utf8_lossy(bytes(vector, "username")),
            String::from_utf8_lossy(bytes(vector, "password_hash")),
            String::from_utf8_lossy(bytes(vector, "salt")),
        ));
    }
    file.push_str("]}");
    let (state, warnings) = store::load(file.as_bytes()).unwrap();
    assert!(warnings.is_empty());
    let snapshot = AclSnapshot::build(&state);
    for vector in list {
        let username = Some(bytes(vector, "username"));
        let password = Some(bytes(vector, "password"));
        assert_eq!(
            snapshot.authenticate(username, password, b"any-id"),
            AuthResult::Allow
        );
        assert_eq!(
            snapshot.authenticate(username, Some(b"wrong"), b"any-id"),
            AuthResult::Deny(AuthDenied::WrongPassword)
        );
    }
    let example = vectors.get("mosquitto_2_1_encoded_form_example").unwrap();
    let encoded = PasswordHash::from_encoded(bytes(example, "encoded_password"));
    assert!(encoded.verify(bytes(example, "password")));
    assert_eq!(
        encoded.encoded().unwrap(),
        bytes(example, "encoded_password")
    );
}

/// The hand-written file of `config-load-cases.json` loads like Mosquitto 2.0.11 loaded it
/// (responses to read-only commands and the re-saved file), apart from the edits of the
/// deviations table.
#[test]
fn config_load_cases_match_mosquitto() {
    let cases = fixture("config-load-cases.json");
    let input = compact(cases.get("input").unwrap());
    let (mut state, warnings) = store::load(&input).unwrap();
    assert_eq!(warnings.len(), 7, "{warnings:#?}");
    let observed = cases.get("observed").unwrap();
    for command in [
        "listClients",
        "listGroups",
        "listRoles",
        "getDefaultACLAccess",
        "getAnonymousGroup",
    ] {
        let verbose = if command.starts_with("list") {
            r#","verbose":true"#
        } else {
            ""
        };
        let request = format!(r#"{{"commands":[{{"command":"{command}"{verbose}}}]}}"#);
        let got = respond(&mut state, &request);
        let expected = apply_deviations(
            Target::ConfigLoad(command),
            &compact(observed.get(command).unwrap()),
        );
        assert_eq!(got, String::from_utf8(expected).unwrap(), "{command}");
    }
    let snapshot = AclSnapshot::build(&state);
    assert_eq!(
        snapshot.authenticate(Some(b"iter1000"), Some(b"iterpw"), b"c"),
        AuthResult::Allow
    );
    assert_eq!(
        snapshot.authenticate(Some(b"admin"), Some(b"adminpass123"), b"c"),
        AuthResult::Allow
    );
    for user in [
        "ok1",
        "badsalt",
        "salt64",
        "noiter",
        "encoded21",
        "CaseKeys",
    ] {
        let result = snapshot.authenticate(Some(user.as_bytes()), Some(b"guess"), b"cid");
        assert_ne!(result, AuthResult::Allow, "{user}");
    }
    let trigger = respond(
        &mut state,
        r#"{"commands":[{"command":"setDefaultACLAccess","acls":[]}]}"#,
    );
    let expected_trigger = compact(observed.get("save_trigger").unwrap());
    assert_eq!(trigger.as_bytes(), expected_trigger.as_slice());
    let resaved = bytes(&cases, "resaved_file_text");
    let expected = apply_deviations(Target::ConfigLoad("resaved"), resaved);
    let saved = store::serialise(&state);
    assert!(
        saved == expected,
        "re-saved file differs\n--- expected\n{}\n--- got\n{}",
        String::from_utf8_lossy(&expected),
        String::from_utf8_lossy(&saved)
    );
}

/// Every request Debian 2.0.11 `mosquitto_ctrl` sent (in the order captured, from the
/// `dynsec init` file) gets the response the broker gave it, compared as JSON values with
/// key order. Lines the tool refused locally sent nothing and are not replayed.
#[test]
fn mosquitto_ctrl_requests_get_the_captured_responses() {
    let mapping = fixture("mosquitto_ctrl-2.0.11-mapping.json");
    let initial = super::support::fixture_bytes("initial-dynamic-security.json");
    let (mut state, _) = store::load(&initial).unwrap();
    let mut replayed = 0;
    for result in mapping.get("results").and_then(Value::as_array).unwrap() {
        let Some(request) = result.get("request").filter(|r| **r != Value::Null) else {
            assert_eq!(result.get("response"), Some(&Value::Null));
            continue;
        };
        let outcome = handle_request(&mut state, &compact(request), &ADMIN);
        let got = json::parse(&outcome.response.unwrap()).unwrap();
        let expected = result.get("response").unwrap();
        assert_eq!(
            &got,
            expected,
            "{:?}",
            String::from_utf8_lossy(&compact(request))
        );
        replayed += 1;
    }
    assert_eq!(replayed, 44);
}
