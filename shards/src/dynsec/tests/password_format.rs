//! New passwords keep the format of the file they go into: a file written by Mosquitto 2.0
//! (`password`/`salt`/`iterations`) stays readable by 2.0 after passwords are set through
//! the API, a file in 2.1's `encoded_password` form stays in that form, and a file without
//! passwords gets 2.0's. Each case goes file bytes → load → control API → saved bytes →
//! load, as the broker does across a restart.

use super::support::{fixture_bytes, ok};
use crate::dynsec::json::{self, Value};
use crate::dynsec::model::DynsecState;
use crate::dynsec::password::{PasswordPolicy, StoredForm};
use crate::dynsec::store;

/// A 2.1 file: one client whose `encoded_password` is "secret" (`$7$`, 101 iterations).
const FILE_2_1: &str = concat!(
    r#"{"clients":[{"username":"old","roles":[],"encoded_password":"$7$101$w7BqHiV+WZe+/+qn$"#,
    "DZATR3F3coRxh/GC6AkNi0XMPfq56VlSv9sPQo+THrzBFqTavVuRfCX6eKrIG4MRJcsn5X2dvlwsLqiKjW+mZQ==",
    r#""}],"roles":[]}"#
);

/// Creates `new` and changes `changed`'s password through the control API.
fn set_passwords(state: &mut DynsecState, changed: &str) {
    ok(
        state,
        &format!(
            r#"{{"commands":[{{"command":"createClient","username":"new","password":"pw-new"}},
            {{"command":"setClientPassword","username":"{changed}","password":"pw-changed"}}]}}"#
        ),
    );
}

/// The saved entry of client `username`.
fn saved_client(saved: &[u8], username: &str) -> Value {
    let file = json::parse(saved).expect("saved file is JSON");
    let clients = file
        .get("clients")
        .and_then(Value::as_array)
        .expect("clients");
    clients
        .iter()
        .find(|c| c.get("username").and_then(Value::as_bytes) == Some(username.as_bytes()))
        .cloned()
        .unwrap_or_else(|| panic!("{username} saved"))
}

/// Loads the saved bytes again and checks both passwords log in there.
fn reload_and_verify(saved: &[u8], changed: &str) -> DynsecState {
    let (reloaded, warnings) = store::load(saved).expect("saved file loads");
    assert!(warnings.is_empty(), "{warnings:?}");
    for (username, password) in [("new", "pw-new"), (changed, "pw-changed")] {
        let hash = reloaded.clients()[username.as_bytes()]
            .password
            .as_ref()
            .expect("password kept");
        assert!(hash.verify(password.as_bytes()), "{username}");
    }
    reloaded
}

#[test]
fn a_mosquitto_2_0_file_stays_in_2_0_format() {
    let (mut state, _) = store::load(&fixture_bytes("initial-dynamic-security.json")).unwrap();
    assert_eq!(store::file_form(&state), Some(StoredForm::Triple));
    assert_eq!(state.password_policy(), PasswordPolicy::MOSQUITTO_2_0);
    set_passwords(&mut state, "admin");
    let saved = store::serialise(&state);
    for username in ["new", "admin"] {
        let entry = saved_client(&saved, username);
        assert!(entry.get("encoded_password").is_none(), "{username}");
        assert_eq!(entry.get("iterations").and_then(Value::as_i32), Some(101));
        let salt = entry.get("salt").and_then(Value::as_bytes).expect("salt");
        assert_eq!(
            salt.len(),
            16,
            "{username}: base64 of the 12-byte salt 2.0 requires"
        );
        let hash = entry
            .get("password")
            .and_then(Value::as_bytes)
            .expect("hash");
        assert_eq!(hash.len(), 88, "{username}");
    }
    let reloaded = reload_and_verify(&saved, "admin");
    assert_eq!(reloaded.password_policy(), PasswordPolicy::MOSQUITTO_2_0);
    assert!(store::unreadable_by_2_0(&reloaded).is_empty());
}

#[test]
fn a_mosquitto_2_1_file_stays_in_2_1_format() {
    let (mut state, warnings) = store::load(FILE_2_1.as_bytes()).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(store::file_form(&state), Some(StoredForm::Encoded));
    assert_eq!(state.password_policy(), PasswordPolicy::MOSQUITTO_2_1);
    set_passwords(&mut state, "old");
    let saved = store::serialise(&state);
    for username in ["new", "old"] {
        let entry = saved_client(&saved, username);
        assert!(entry.get("password").is_none(), "{username}");
        assert!(entry.get("salt").is_none(), "{username}");
        let encoded = entry
            .get("encoded_password")
            .and_then(Value::as_bytes)
            .expect("encoded_password");
        assert!(encoded.starts_with(b"$7$1000$"), "{username}");
    }
    let reloaded = reload_and_verify(&saved, "old");
    assert_eq!(reloaded.password_policy(), PasswordPolicy::MOSQUITTO_2_1);
}

#[test]
fn a_file_without_passwords_gets_the_2_0_format() {
    for content in [
        &b""[..],
        b"{}",
        br#"{"clients":[{"username":"nopw","roles":[]}]}"#,
    ] {
        let (state, _) = store::load(content).unwrap();
        assert_eq!(store::file_form(&state), None);
        assert_eq!(state.password_policy(), PasswordPolicy::MOSQUITTO_2_0);
    }
    assert_eq!(PasswordPolicy::default(), PasswordPolicy::MOSQUITTO_2_0);
}

#[test]
fn a_2_0_file_with_2_1_passwords_added_is_a_2_0_file() {
    // What an earlier Culex left behind: Mosquitto 2.0's admin plus a client it added in
    // 2.1's form. The file goes on in 2.0 format; the odd client is named for the log.
    let (mut state, _) = store::load(&fixture_bytes("initial-dynamic-security.json")).unwrap();
    let (from_2_1, _) = store::load(FILE_2_1.as_bytes()).unwrap();
    let odd = from_2_1.clients()[&b"old"[..]].clone();
    state.clients.insert(b"old".to_vec(), odd);
    let (mixed, _) = store::load(&store::serialise(&state)).unwrap();
    assert_eq!(store::file_form(&mixed), Some(StoredForm::Triple));
    assert_eq!(mixed.password_policy(), PasswordPolicy::MOSQUITTO_2_0);
    assert_eq!(store::unreadable_by_2_0(&mixed), [&b"old"[..]]);
    let mut mixed = mixed;
    set_passwords(&mut mixed, "old");
    assert!(
        store::unreadable_by_2_0(&mixed).is_empty(),
        "re-set in 2.0 format"
    );
    reload_and_verify(&store::serialise(&mixed), "old");
}

#[test]
fn an_explicit_policy_overrides_the_file() {
    let (mut state, _) = store::load(&fixture_bytes("initial-dynamic-security.json")).unwrap();
    state.set_password_policy(PasswordPolicy::MOSQUITTO_2_1);
    set_passwords(&mut state, "admin");
    let saved = store::serialise(&state);
    assert!(saved_client(&saved, "new")
        .get("encoded_password")
        .is_some());
    reload_and_verify(&saved, "admin");
}
