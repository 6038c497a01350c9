//! Bad input: every malformed request is answered with the spec's error text and leaves
//! the state exactly as it was (compared with a clone taken before), including a random
//! command generator that checks "an error changes nothing" for every command.

use proptest::prelude::*;

use super::support::{ok, run, ADMIN, FAST_POLICY};
use crate::dynsec::control::{handle_request, Kick};
use crate::dynsec::json::{self, Value};
use crate::dynsec::model::DynsecState;
use crate::dynsec::store;

/// A state with a bit of everything, built through the control API.
fn populated() -> DynsecState {
    let mut state = DynsecState::new();
    state.set_password_policy(FAST_POLICY);
    ok(
        &mut state,
        r#"{"commands":[
        {"command":"createRole","rolename":"r1","acls":[{"acltype":"publishClientSend","topic":"a/#","allow":true}]},
        {"command":"createRole","rolename":"r2"},
        {"command":"createGroup","groupname":"g1","roles":[{"rolename":"r1","priority":2}]},
        {"command":"createGroup","groupname":"anon"},
        {"command":"setAnonymousGroup","groupname":"anon"},
        {"command":"createClient","username":"alice","password":"pw","roles":[{"rolename":"r2"}],
         "groups":[{"groupname":"g1","priority":1}]},
        {"command":"createClient","username":"bob","clientid":"bob-id"}
    ]}"#,
    );
    state
}

/// Runs `request` on a copy of `state` and checks the response text, that nothing changed
/// and that nobody is kicked.
fn rejected(state: &DynsecState, request: &[u8], expected: &str) {
    let mut copy = state.clone();
    let outcome = handle_request(&mut copy, request, &ADMIN);
    let response = String::from_utf8(outcome.response.unwrap()).unwrap();
    assert_eq!(
        response,
        expected,
        "request {}",
        String::from_utf8_lossy(request)
    );
    assert_eq!(
        &copy,
        state,
        "state changed by {}",
        String::from_utf8_lossy(request)
    );
    assert!(!outcome.changed);
    assert!(outcome.kicks.is_empty(), "{:?}", outcome.kicks);
    assert!(outcome.audit.is_empty());
}

fn err(command: &str, error: &str) -> String {
    format!(r#"{{"responses":[{{"command":"{command}","error":"{error}"}}]}}"#)
}

#[test]
fn envelope_errors() {
    let state = populated();
    let not_json = err("Unknown command", "Payload not valid JSON");
    for payload in [
        &b"not json"[..],
        b"",
        b"   ",
        b"{\"commands\":[",
        b"{\"commands\":[{\"command\":\"listClients\",}]}",
        b"\xff\xfe",
        b"{\"commands\":[\"\\x\"]}",
    ] {
        rejected(&state, payload, &not_json);
    }
    let deep = format!("{}{}", "[".repeat(1001), "]".repeat(1001));
    rejected(&state, deep.as_bytes(), &not_json);
    let missing = err("Unknown command", "Invalid/missing commands");
    for payload in [
        &b"[]"[..],
        b"{}",
        b"{\"commands\":\"x\"}",
        b"{\"commands\":null}",
        b"7",
        b"\"s\"",
    ] {
        rejected(&state, payload, &missing);
    }
    rejected(&state, b"{\"commands\":[]}", r#"{"responses":[]}"#);
    rejected(
        &state,
        br#"{"commands":[1,"x",null,[]]}"#,
        &format!(
            r#"{{"responses":[{}]}}"#,
            [r#"{"command":"Unknown command","error":"Command not an object"}"#; 4].join(",")
        ),
    );
    rejected(
        &state,
        br#"{"commands":[{}]}"#,
        &err("Unknown command", "Missing command"),
    );
    rejected(
        &state,
        br#"{"commands":[{"command":true}]}"#,
        &err("Unknown command", "Missing command"),
    );
    for unknown in ["listGroupClients", "getDetails", "", "createclientx"] {
        let request = format!(r#"{{"commands":[{{"command":"{unknown}"}}]}}"#);
        rejected(&state, request.as_bytes(), &err(unknown, "Unknown command"));
    }
}

#[test]
fn wrong_correlation_data_stops_the_request() {
    let state = populated();
    for bad in ["{}", "[]", "1", "true", "null"] {
        let request = format!(
            r#"{{"commands":[{{"command":"createRole","rolename":"zz","correlationData":{bad}}},
            {{"command":"createRole","rolename":"yy"}}]}}"#
        );
        rejected(
            &state,
            request.as_bytes(),
            &err("createRole", "Invalid correlationData data type."),
        );
    }
}

#[test]
fn field_errors_in_spec_order() {
    let state = populated();
    let long = "u".repeat(65_537);
    let topic_long = "t".repeat(65_536);
    let cases: Vec<(String, &str, &str)> = vec![
        (r#"{"command":"createClient"}"#.into(), "createClient", "Invalid/missing username"),
        (r#"{"command":"createClient","username":12}"#.into(), "createClient", "Invalid/missing username"),
        (format!(r#"{{"command":"createClient","username":"{long}"}}"#), "createClient", "Username not valid UTF-8"),
        (r#"{"command":"createClient","username":"a\u0007"}"#.into(), "createClient", "Username not valid UTF-8"),
        (r#"{"command":"createClient","username":"n","password":1}"#.into(), "createClient", "Invalid/missing password"),
        (r#"{"command":"createClient","username":"n","clientid":[]}"#.into(), "createClient", "Invalid/missing client id"),
        (r#"{"command":"createClient","username":"n","clientid":"\u0001"}"#.into(), "createClient", "Client ID not valid UTF-8"),
        (r#"{"command":"createClient","username":"n","textname":{}}"#.into(), "createClient", "Invalid/missing textname"),
        (r#"{"command":"createClient","username":"n","textdescription":null}"#.into(), "createClient", "Invalid/missing textdescription"),
        (r#"{"command":"createClient","username":"alice"}"#.into(), "createClient", "Client already exists"),
        (r#"{"command":"createClient","username":"n","roles":"r1"}"#.into(), "createClient", "'roles' not an array or missing/invalid rolename"),
        (r#"{"command":"createClient","username":"n","roles":[{"rolename":"r1"},{"x":1}]}"#.into(), "createClient", "'roles' not an array or missing/invalid rolename"),
        (r#"{"command":"createClient","username":"n","roles":[{"rolename":"nope"},{"x":1}]}"#.into(), "createClient", "Role not found"),
        (r#"{"command":"createClient","username":"n","groups":[{"groupname":"nope"}]}"#.into(), "createClient", "Group not found"),
        (r#"{"command":"createClient","username":"n","groups":[{"groupname":"g1"},{"groupname":"g1"}]}"#.into(), "createClient", "Internal error"),
        (r#"{"command":"deleteClient","username":7}"#.into(), "deleteClient", "Invalid/missing username"),
        (r#"{"command":"deleteClient","username":"ghost"}"#.into(), "deleteClient", "Client not found"),
        (r#"{"command":"setClientId","username":"alice","clientid":5}"#.into(), "setClientId", "Invalid/missing client ID"),
        (r#"{"command":"setClientPassword","username":"alice"}"#.into(), "setClientPassword", "Invalid/missing password"),
        (r#"{"command":"setClientPassword","username":"alice","password":""}"#.into(), "setClientPassword", "Empty password is not allowed"),
        (r#"{"command":"setClientPassword","username":"ghost","password":"x"}"#.into(), "setClientPassword", "Client not found"),
        (r#"{"command":"disableClient","username":"ghost"}"#.into(), "disableClient", "Client not found"),
        (r#"{"command":"modifyClient","username":"ghost"}"#.into(), "modifyClient", "Client not found"),
        (r#"{"command":"modifyClient","username":"alice","textname":"CHANGED","clientid":"c","password":"new","roles":[{"rolename":"nope"}]}"#.into(), "modifyClient", "Role not found"),
        (r#"{"command":"modifyClient","username":"alice","textname":"CHANGED","roles":{}}"#.into(), "modifyClient", "'roles' not an array or missing/invalid rolename"),
        (r#"{"command":"addClientRole","username":"alice","rolename":"r2"}"#.into(), "addClientRole", "Internal error"),
        (r#"{"command":"addClientRole","username":"ghost","rolename":"nope"}"#.into(), "addClientRole", "Client not found"),
        (r#"{"command":"addClientRole","username":"alice"}"#.into(), "addClientRole", "Invalid/missing rolename"),
        (r#"{"command":"removeClientRole","username":"alice","rolename":"nope"}"#.into(), "removeClientRole", "Role not found"),
        (r#"{"command":"createGroup","groupname":["x"]}"#.into(), "createGroup", "Invalid/missing groupname"),
        (format!(r#"{{"command":"createGroup","groupname":"{long}"}}"#), "createGroup", "Group name not valid UTF-8"),
        (r#"{"command":"createGroup","groupname":"g1"}"#.into(), "createGroup", "Group already exists"),
        (r#"{"command":"createGroup","groupname":"n","roles":"r1"}"#.into(), "createGroup", "Internal error"),
        (r#"{"command":"createGroup","groupname":"n","roles":[{"rolename":"nope"}]}"#.into(), "createGroup", "Role not found"),
        (r#"{"command":"deleteGroup","groupname":"anon"}"#.into(), "deleteGroup", "Deleting the anonymous group is forbidden"),
        (r#"{"command":"deleteGroup","groupname":"ghost"}"#.into(), "deleteGroup", "Group not found"),
        (r#"{"command":"modifyGroup","groupname":"g1","textname":"CHANGED","clients":[{"username":"bob"}],"roles":[{"rolename":"nope"}]}"#.into(), "modifyGroup", "Role not found"),
        (r#"{"command":"addGroupRole","groupname":"g1","rolename":"r1"}"#.into(), "addGroupRole", "Group is already in this role"),
        (r#"{"command":"addGroupRole","groupname":"ghost","rolename":"nope"}"#.into(), "addGroupRole", "Group not found"),
        (r#"{"command":"setAnonymousGroup","groupname":"ghost"}"#.into(), "setAnonymousGroup", "Group not found"),
        (r#"{"command":"createRole","rolename":"r1"}"#.into(), "createRole", "Role already exists"),
        (format!(r#"{{"command":"createRole","rolename":"{long}"}}"#), "createRole", "Role name not valid UTF-8"),
        (r#"{"command":"modifyRole","rolename":"ghost","acls":[]}"#.into(), "modifyRole", "Role does not exist"),
        (r#"{"command":"deleteRole","rolename":"ghost"}"#.into(), "deleteRole", "Role not found"),
        (r#"{"command":"addRoleACL","rolename":"ghost","acltype":"x"}"#.into(), "addRoleACL", "Role not found"),
        (r#"{"command":"addRoleACL","rolename":"r1"}"#.into(), "addRoleACL", "Invalid/missing acltype"),
        (r#"{"command":"addRoleACL","rolename":"r1","acltype":"subscribe","topic":"a"}"#.into(), "addRoleACL", "Unknown acltype"),
        (r#"{"command":"addRoleACL","rolename":"r1","acltype":"publishClientSend","topic":false}"#.into(), "addRoleACL", "Invalid/missing topic"),
        (r#"{"command":"addRoleACL","rolename":"r1","acltype":"publishClientSend","topic":"a/\u0001b"}"#.into(), "addRoleACL", "Topic not valid UTF-8"),
        (r#"{"command":"addRoleACL","rolename":"r1","acltype":"publishClientSend","topic":"a+/b"}"#.into(), "addRoleACL", "Invalid ACL topic"),
        (r#"{"command":"addRoleACL","rolename":"r1","acltype":"publishClientSend","topic":"\u0080"}"#.into(), "addRoleACL", "Topic not valid UTF-8"),
        (format!(r#"{{"command":"addRoleACL","rolename":"r1","acltype":"publishClientSend","topic":"{topic_long}"}}"#), "addRoleACL", "Invalid ACL topic"),
        (format!(r#"{{"command":"addRoleACL","rolename":"r1","acltype":"publishClientSend","topic":"{}a"}}"#, "a/".repeat(201)), "addRoleACL", "Invalid ACL topic"),
        (r#"{"command":"addRoleACL","rolename":"r1","acltype":"publishClientSend","topic":"a/#"}"#.into(), "addRoleACL", "ACL with this topic already exists"),
        (r#"{"command":"removeRoleACL","rolename":"r1","acltype":"subscribeLiteral","topic":"a/#"}"#.into(), "removeRoleACL", "ACL not found"),
        (r#"{"command":"setDefaultACLAccess","acls":{}}"#.into(), "setDefaultACLAccess", "Missing/invalid actions array"),
    ];
    for (command, name, error) in cases {
        let request = format!(r#"{{"commands":[{command}]}}"#);
        rejected(&state, request.as_bytes(), &err(name, error));
    }
}

#[test]
fn invalid_utf8_names_are_refused() {
    let state = populated();
    for (field_command, name, error) in [
        (
            "createClient\",\"username",
            "createClient",
            "Username not valid UTF-8",
        ),
        (
            "createGroup\",\"groupname",
            "createGroup",
            "Group name not valid UTF-8",
        ),
        (
            "createRole\",\"rolename",
            "createRole",
            "Role name not valid UTF-8",
        ),
    ] {
        for bad in [&b"\xff"[..], b"\xc0\xaf", b"\xed\xa0\x80", b"\xef\xbf\xbe"] {
            let mut request =
                format!(r#"{{"commands":[{{"command":"{field_command}":""#).into_bytes();
            request.extend_from_slice(bad);
            request.extend_from_slice(b"\"}]}");
            rejected(&state, &request, &err(name, error));
        }
    }
}

#[test]
fn many_commands_in_one_payload_are_independent() {
    let state = populated();
    let failing = r#"{"command":"getClient","username":"ghost"}"#;
    let request = format!(r#"{{"commands":[{}]}}"#, vec![failing; 500].join(","));
    let expected_entry = r#"{"command":"getClient","error":"Client not found"}"#;
    let expected = format!(
        r#"{{"responses":[{}]}}"#,
        vec![expected_entry; 500].join(",")
    );
    rejected(&state, request.as_bytes(), &expected);

    let mut mixed = state.clone();
    let outcome = run(
        &mut mixed,
        r#"{"commands":[{"command":"createRole","rolename":"new"},
        {"command":"createRole","rolename":"r1"},
        {"command":"addRoleACL","rolename":"new","acltype":"publishClientSend","topic":"x/#"},
        {"command":"deleteGroup","groupname":"anon"}]}"#,
    );
    assert_eq!(
        String::from_utf8(outcome.response.unwrap()).unwrap(),
        r#"{"responses":[{"command":"createRole"},{"command":"createRole","error":"Role already exists"},{"command":"addRoleACL"},{"command":"deleteGroup","error":"Deleting the anonymous group is forbidden"}]}"#
    );
    assert!(outcome.changed);
    assert_eq!(mixed.generation(), state.generation() + 1);
    assert!(mixed.roles().contains_key(&b"new".to_vec()));
    assert_eq!(mixed.roles().len(), state.roles().len() + 1);
}

#[test]
fn failed_group_membership_commands_still_kick_like_2_0_11() {
    let state = populated();
    let mut copy = state.clone();
    let outcome = run(
        &mut copy,
        r#"{"commands":[{"command":"addGroupClient","groupname":"g1","username":"alice"}]}"#,
    );
    assert_eq!(
        String::from_utf8(outcome.response.unwrap()).unwrap(),
        err("addGroupClient", "Client is already in this group")
    );
    assert_eq!(copy, state);
    assert_eq!(outcome.kicks, vec![Kick::Username(b"alice".to_vec())]);
}

/// Commands drawn from a small grammar with random field types; each request holds one
/// command. Whatever happens, the response is a well-formed envelope with one entry, the
/// invariants hold, and an error response means the state is unchanged.
fn command_strategy() -> impl Strategy<Value = String> {
    let names = prop::sample::select(vec![
        "createClient",
        "deleteClient",
        "getClient",
        "listClients",
        "setClientId",
        "setClientPassword",
        "enableClient",
        "disableClient",
        "modifyClient",
        "addClientRole",
        "removeClientRole",
        "createGroup",
        "deleteGroup",
        "getGroup",
        "listGroups",
        "modifyGroup",
        "addGroupClient",
        "removeGroupClient",
        "addGroupRole",
        "removeGroupRole",
        "setAnonymousGroup",
        "getAnonymousGroup",
        "createRole",
        "deleteRole",
        "getRole",
        "listRoles",
        "modifyRole",
        "addRoleACL",
        "removeRoleACL",
        "setDefaultACLAccess",
        "getDefaultACLAccess",
        "CREATECLIENT",
        "nonsense",
    ]);
    let scalar = prop::sample::select(vec![
        r#""alice""#,
        r#""bob""#,
        r#""r1""#,
        r#""r2""#,
        r#""g1""#,
        r#""anon""#,
        r#""new""#,
        r#""""#,
        r#""a/#""#,
        r#""a/#/b""#,
        r#""pw""#,
        "1",
        "-1",
        "2.5",
        "true",
        "false",
        "null",
        "{}",
        r#""publishClientSend""#,
        r#""subscribePattern""#,
        r#""bad\u0001""#,
    ]);
    let list_item = prop::sample::select(vec![
        r#"{"rolename":"r1","priority":3}"#,
        r#"{"rolename":"r2"}"#,
        r#"{"rolename":"nope"}"#,
        r#"{"groupname":"g1"}"#,
        r#"{"groupname":"anon","priority":5}"#,
        r#"{"groupname":"x"}"#,
        r#"{"username":"alice"}"#,
        r#"{"username":"bob","priority":1}"#,
        r#"{"acltype":"publishClientSend","topic":"a/b","allow":true}"#,
        r#"{"acltype":"subscribe","allow":false}"#,
        "7",
        r#""s""#,
    ]);
    let value = prop_oneof![
        3 => scalar.prop_map(str::to_owned),
        1 => prop::collection::vec(list_item, 0..4).prop_map(|items| format!("[{}]", items.join(","))),
    ];
    let keys = prop::sample::select(vec![
        "username",
        "groupname",
        "rolename",
        "password",
        "clientid",
        "textname",
        "textdescription",
        "roles",
        "groups",
        "clients",
        "acls",
        "acltype",
        "topic",
        "priority",
        "allow",
        "verbose",
        "count",
        "offset",
    ]);
    (names, prop::collection::vec((keys, value), 0..6)).prop_map(|(name, fields)| {
        let mut members = vec![format!(r#""command":"{name}""#)];
        members.extend(fields.into_iter().map(|(k, v)| format!(r#""{k}":{v}"#)));
        format!(r#"{{"commands":[{{{}}}]}}"#, members.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn an_error_changes_nothing(requests in prop::collection::vec(command_strategy(), 1..12)) {
        let mut state = populated();
        for request in requests {
            let before = state.clone();
            let outcome = handle_request(&mut state, request.as_bytes(), &ADMIN);
            prop_assert_eq!(state.check_invariants(), Ok(()));
            let response = json::parse(&outcome.response.unwrap()).unwrap();
            let entries = response.get("responses").and_then(Value::as_array).unwrap();
            prop_assert_eq!(entries.len(), 1);
            let command = entries[0].get("command").and_then(Value::as_bytes).unwrap().to_vec();
            if entries[0].get("error").is_some() {
                prop_assert!(state == before, "{} changed the state", request);
                prop_assert!(!outcome.changed);
                let kicks_on_error = command == b"addGroupClient" || command == b"removeGroupClient";
                prop_assert!(kicks_on_error || outcome.kicks.is_empty(), "{}", request);
            } else if command.starts_with(b"get") || command.starts_with(b"list") {
                prop_assert!(state == before && !outcome.changed && outcome.kicks.is_empty());
            } else {
                prop_assert!(outcome.changed, "{} succeeded without changing", request);
                prop_assert_eq!(state.generation(), before.generation() + 1);
            }
        }
        // Whatever the commands did, the file round-trips.
        let (reloaded, warnings) = store::load(&store::serialise(&state)).unwrap();
        prop_assert!(warnings.is_empty(), "{:?}", warnings);
        prop_assert_eq!(reloaded.clients(), state.clients());
        prop_assert_eq!(reloaded.groups(), state.groups());
        prop_assert_eq!(reloaded.roles(), state.roles());
        prop_assert_eq!(reloaded.anonymous_group(), state.anonymous_group());
        prop_assert_eq!(reloaded.default_access(), state.default_access());
    }

    #[test]
    fn arbitrary_bytes_never_panic(payload in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut state = populated();
        let before = state.clone();
        let outcome = handle_request(&mut state, &payload, &ADMIN);
        let response = json::parse(&outcome.response.unwrap()).unwrap();
        prop_assert!(response.get("responses").and_then(Value::as_array).is_some());
        prop_assert_eq!(state, before);
    }
}
