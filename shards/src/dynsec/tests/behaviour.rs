//! `behaviour-observations.json`: what the real broker did in authentication, ACL
//! evaluation, subscribe/receive checks, `%c`/`%u`, the anonymous group, kicks and the
//! control topic. Each observation is rebuilt here from dynsec's answers (an
//! `AuthResult`, an `AclDecision`, the kick list) mapped to the wire value the broker shows
//! for it, serialised like the fixture's `observed` object, and compared with the fixture
//! after the edits of `deviations::DEVIATIONS`. Observations about broker code outside
//! dynsec are listed in `BROKER_ONLY` with the reason; the test fails on any other
//! observation it does not rebuild.

use std::collections::BTreeMap;

use super::support::{
    apply_deviations, compact, fixture, fixture_bytes, ok, run, ADMIN, FAST_POLICY,
};
use crate::dynsec::acl::{AclDecision, AclEvent, AclSnapshot, AuthResult, ClientIdentity};
use crate::dynsec::control::{handle_request, Kick};
use crate::dynsec::deviations::Target;
use crate::dynsec::json::{self, Value};
use crate::dynsec::model::DynsecState;
use crate::dynsec::store;

/// Observations about code outside dynamic security, with where they belong.
const BROKER_ONLY: &[(&str, &str)] = &[
    (
        "qos0-and-retained-requests",
        "control-topic hook: QoS, retain and routing of requests",
    ),
    ("mqtt311-admin", "protocol versions of the admin connection"),
    (
        "response-publish-properties",
        "how the hook publishes the response",
    ),
    (
        "kick-suppresses-will",
        "will handling when the broker executes a kick",
    ),
    (
        "deleteRole-after-createClient-roles",
        "2.0.11 use-after-free; see deleted_roles_leave_no_references",
    ),
    (
        "deleteGroup-anonymous-group",
        "2.0.11 crash; tests::bad_input answers it with an error",
    ),
];

fn state_with(commands: &[&str]) -> DynsecState {
    let mut state = DynsecState::new();
    state.set_password_policy(FAST_POLICY);
    if !commands.is_empty() {
        ok(
            &mut state,
            &format!(r#"{{"commands":[{}]}}"#, commands.join(",")),
        );
    }
    state
}

fn identity<'a>(client_id: &'a str, username: Option<&'a str>) -> ClientIdentity<'a> {
    ClientIdentity {
        client_id: client_id.as_bytes(),
        username: username.map(str::as_bytes),
    }
}

fn allowed(
    state: &DynsecState,
    event: AclEvent,
    username: Option<&str>,
    client_id: &str,
    topic: &str,
) -> bool {
    AclSnapshot::build(state).check(event, &identity(client_id, username), topic.as_bytes())
}

/// v5 PUBACK for an allowed publish without subscribers is 0x10, a denied one 0x87; a
/// v3.1.1 PUBACK carries no reason (0 either way).
fn puback(allowed: bool, v5: bool) -> i64 {
    match (allowed, v5) {
        (_, false) => 0,
        (true, true) => 16,
        (false, true) => 135,
    }
}

fn publish_observation(allowed: bool, v5: bool) -> String {
    format!(
        r#"{{"puback":{},"disconnected":null}}"#,
        puback(allowed, v5)
    )
}

fn role_acls(name: &str, acls: &[(&str, &str, i32, bool)]) -> String {
    let acls: Vec<String> = acls
        .iter()
        .map(|(t, topic, p, a)| {
            format!(r#"{{"acltype":"{t}","topic":"{topic}","priority":{p},"allow":{a}}}"#)
        })
        .collect();
    format!(
        r#"{{"command":"createRole","rolename":"{name}","acls":[{}]}}"#,
        acls.join(",")
    )
}

fn authentication(observed: &mut BTreeMap<String, String>) {
    let state = state_with(&[
        r#"{"command":"createClient","username":"alice","password":"alicepw"}"#,
        r#"{"command":"createClient","username":"nopw"}"#,
        r#"{"command":"createClient","username":"emptypw","password":""}"#,
        r#"{"command":"createClient","username":"bob","password":"bobpw","clientid":"bob-device"}"#,
        r#"{"command":"createClient","username":"dis","password":"dispw"}"#,
        r#"{"command":"disableClient","username":"dis"}"#,
    ]);
    let snapshot = AclSnapshot::build(&state);
    let connack = |user: Option<&str>, pw: Option<&str>, id: &str| -> String {
        let result = snapshot.authenticate(
            user.map(str::as_bytes),
            pw.map(str::as_bytes),
            id.as_bytes(),
        );
        // allow_anonymous true in that broker: a deferred username-less CONNECT is accepted.
        let accepted =
            result == AuthResult::Allow || (user.is_none() && result == AuthResult::Defer);
        format!(r#"{{"connack":{}}}"#, if accepted { 0 } else { 135 })
    };
    let mut put = |name: &str, value: String| observed.insert(name.to_owned(), value);
    put(
        "correct-password-v5",
        connack(Some("alice"), Some("alicepw"), "a1"),
    );
    put(
        "correct-password-v311",
        connack(Some("alice"), Some("alicepw"), "a1"),
    );
    put(
        "wrong-password-v5",
        connack(Some("alice"), Some("nope"), "a1"),
    );
    put(
        "wrong-password-v311",
        connack(Some("alice"), Some("nope"), "a1"),
    );
    put("unknown-username", connack(Some("ghost"), Some("x"), "g"));
    put(
        "client-without-password",
        connack(Some("nopw"), Some("x"), "n"),
    );
    put(
        "client-with-empty-password",
        connack(Some("emptypw"), Some(""), "e"),
    );
    put(
        "clientid-mismatch",
        connack(Some("bob"), Some("bobpw"), "other"),
    );
    put(
        "clientid-match",
        connack(Some("bob"), Some("bobpw"), "bob-device"),
    );
    put(
        "clientid-empty-v5",
        connack(Some("bob"), Some("bobpw"), "auto-6C3F2F0B-3A0A"),
    );
    put("disabled-client", connack(Some("dis"), Some("dispw"), "d"));
    let mut enabled = state.clone();
    ok(
        &mut enabled,
        r#"{"commands":[{"command":"enableClient","username":"dis"}]}"#,
    );
    let result = AclSnapshot::build(&enabled).authenticate(Some(b"dis"), Some(b"dispw"), b"d");
    put(
        "re-enabled-client",
        format!(
            r#"{{"connack":{}}}"#,
            if result == AuthResult::Allow { 0 } else { 135 }
        ),
    );
    put(
        "username-without-password",
        connack(Some("alice"), None, "a1"),
    );
    put("anonymous-allowed", connack(None, None, "anon"));
}

fn acl_evaluation(observed: &mut BTreeMap<String, String>) {
    use AclEvent::PublishClientSend as Send;
    let alice = |commands: &[&str]| {
        let mut all = commands.to_vec();
        all.push(r#"{"command":"createClient","username":"alice"}"#);
        state_with(&all)
    };
    let publish =
        |state: &DynsecState, topic: &str| allowed(state, Send, Some("alice"), "alice-1", topic);
    let mut put = |name: &str, value: String| observed.insert(name.to_owned(), value);
    let none = alice(&[]);
    put(
        "no-roles-default-deny",
        publish_observation(publish(&none, "t/a"), true),
    );
    put(
        "no-roles-default-deny-v311",
        publish_observation(publish(&none, "t/a"), false),
    );
    let deny_ta = role_acls("r-deny-ta", &[("publishClientSend", "t/a", 0, false)]);
    let allow_t = role_acls("r-allow-t", &[("publishClientSend", "t/#", 0, true)]);
    let a_deny = role_acls("a-deny", &[("publishClientSend", "t/a", 0, false)]);
    let link = |role: &str, prio: i32| {
        format!(
            r#"{{"command":"addClientRole","username":"alice","rolename":"{role}","priority":{prio}}}"#
        )
    };
    let ranked = alice(&[&deny_ta, &allow_t]);
    let mut ranked = ranked;
    ok(
        &mut ranked,
        &format!(
            r#"{{"commands":[{},{}]}}"#,
            link("r-deny-ta", 2),
            link("r-allow-t", 1)
        ),
    );
    put(
        "role-priority-high-deny",
        publish_observation(publish(&ranked, "t/a"), true),
    );
    put(
        "role-priority-fallthrough",
        publish_observation(publish(&ranked, "t/b"), true),
    );
    let mut swapped = alice(&[&deny_ta, &allow_t]);
    ok(
        &mut swapped,
        &format!(
            r#"{{"commands":[{},{}]}}"#,
            link("r-deny-ta", 1),
            link("r-allow-t", 2)
        ),
    );
    put(
        "role-priority-swapped",
        publish_observation(publish(&swapped, "t/a"), true),
    );
    let mut equal = alice(&[&deny_ta, &allow_t]);
    ok(
        &mut equal,
        &format!(
            r#"{{"commands":[{},{}]}}"#,
            link("r-deny-ta", -1),
            link("r-allow-t", -1)
        ),
    );
    put(
        "role-equal-priority-name-order",
        publish_observation(publish(&equal, "t/a"), true),
    );
    let mut equal2 = alice(&[&a_deny, &allow_t]);
    ok(
        &mut equal2,
        &format!(
            r#"{{"commands":[{},{}]}}"#,
            link("a-deny", -1),
            link("r-allow-t", -1)
        ),
    );
    put(
        "role-equal-priority-name-order-2",
        publish_observation(publish(&equal2, "t/a"), true),
    );
    let within = role_acls(
        "r-p",
        &[
            ("publishClientSend", "p/#", 1, true),
            ("publishClientSend", "p/a", 5, false),
        ],
    );
    let mut within_state = alice(&[&within]);
    ok(
        &mut within_state,
        &format!(r#"{{"commands":[{}]}}"#, link("r-p", -1)),
    );
    put(
        "acl-priority-within-role",
        publish_observation(publish(&within_state, "p/a"), true),
    );
    put(
        "acl-priority-within-role-2",
        publish_observation(publish(&within_state, "p/b"), true),
    );
    let same = role_acls(
        "r-acl-same",
        &[
            ("publishClientSend", "q/#", 0, true),
            ("publishClientSend", "q/a", 0, false),
        ],
    );
    let mut same_state = alice(&[&same]);
    ok(
        &mut same_state,
        &format!(r#"{{"commands":[{}]}}"#, link("r-acl-same", -1)),
    );
    put(
        "acl-equal-priority-insertion-order",
        publish_observation(publish(&same_state, "q/a"), true),
    );
    let reversed = role_acls(
        "r-acl-rev",
        &[
            ("publishClientSend", "q/a", 0, false),
            ("publishClientSend", "q/#", 0, true),
        ],
    );
    let mut reversed_state = alice(&[&reversed]);
    ok(
        &mut reversed_state,
        &format!(r#"{{"commands":[{}]}}"#, link("r-acl-rev", -1)),
    );
    put(
        "acl-equal-priority-insertion-order-2",
        publish_observation(publish(&reversed_state, "q/a"), true),
    );
    ok(
        &mut same_state,
        r#"{"commands":[{"command":"addRoleACL","rolename":"r-acl-same","acltype":"publishClientSend","topic":"q/b","allow":false}]}"#,
    );
    put(
        "acl-equal-priority-added-later",
        publish_observation(publish(&same_state, "q/b"), true),
    );
    let group_deny = role_acls("r-g-deny", &[("publishClientSend", "t/a", 0, false)]);
    let client_allow = role_acls("r-c-allow", &[("publishClientSend", "t/#", 0, true)]);
    let mut layered = alice(&[
        &group_deny,
        &client_allow,
        r#"{"command":"createGroup","groupname":"g","roles":[{"rolename":"r-g-deny","priority":100}]}"#,
    ]);
    ok(
        &mut layered,
        &format!(
            r#"{{"commands":[{},{{"command":"addGroupClient","groupname":"g","username":"alice","priority":10}}]}}"#,
            link("r-c-allow", -50)
        ),
    );
    put(
        "client-roles-before-group-roles",
        publish_observation(publish(&layered, "t/a"), true),
    );
    let groups = |allow_prio: i32, deny_prio: i32| {
        let mut state = alice(&[
            &deny_ta,
            &allow_t,
            r#"{"command":"createGroup","groupname":"g-allow","roles":[{"rolename":"r-allow-t"}]}"#,
            r#"{"command":"createGroup","groupname":"g-deny","roles":[{"rolename":"r-deny-ta"}]}"#,
        ]);
        ok(
            &mut state,
            &format!(
                r#"{{"commands":[{{"command":"addGroupClient","groupname":"g-allow","username":"alice","priority":{allow_prio}}},
            {{"command":"addGroupClient","groupname":"g-deny","username":"alice","priority":{deny_prio}}}]}}"#
            ),
        );
        publish(&state, "t/a")
    };
    put("group-priority", publish_observation(groups(2, 1), true));
    put(
        "group-priority-swapped",
        publish_observation(groups(2, 3), true),
    );
    put(
        "group-equal-priority-name-order",
        publish_observation(groups(-1, -1), true),
    );
    let mut open = alice(&[]);
    ok(
        &mut open,
        r#"{"commands":[{"command":"setDefaultACLAccess","acls":[{"acltype":"publishClientSend","allow":true}]}]}"#,
    );
    put(
        "default-allow-publish",
        publish_observation(publish(&open, "x/y"), true),
    );
    put(
        "default-allow-never-control",
        publish_observation(publish(&open, "$CONTROL/dynamic-security/v1"), true),
    );
    put(
        "default-allow-control-other",
        publish_observation(publish(&open, "$CONTROL/cedalo/license/v1"), true),
    );
    let (admin_state, _) = store::load(&fixture_bytes("initial-dynamic-security.json")).unwrap();
    let admin_sys = allowed(
        &admin_state,
        Send,
        Some("admin"),
        "admin-1",
        "$SYS/broker/x",
    );
    put(
        "sys-publish-always-denied",
        publish_observation(admin_sys, true),
    );
}

fn subscriptions(observed: &mut BTreeMap<String, String>) {
    let state = state_with(&[
        &role_acls(
            "r-sub",
            &[
                ("subscribeLiteral", "lit/#", 0, true),
                ("subscribePattern", "pat/+/x", 0, true),
                ("subscribePattern", "deep/#", 0, true),
                ("subscribePattern", "mix/#", 10, false),
                ("subscribeLiteral", "mix/a", 0, true),
            ],
        ),
        r#"{"command":"createClient","username":"alice","roles":[{"rolename":"r-sub"}]}"#,
        r#"{"command":"setDefaultACLAccess","acls":[{"acltype":"subscribe","allow":false},{"acltype":"unsubscribe","allow":false}]}"#,
    ]);
    let suback = |filter: &str, v5: bool| {
        let granted = allowed(
            &state,
            AclEvent::Subscribe,
            Some("alice"),
            "alice-1",
            filter,
        );
        let code = match (granted, v5) {
            (true, _) => 1,
            (false, true) => 135,
            (false, false) => 128,
        };
        format!(r#"{{"suback":[{code}]}}"#)
    };
    for (name, filter) in [
        ("sub-lit/#", "lit/#"),
        ("sub-lit/a", "lit/a"),
        ("sub-pat/a/x", "pat/a/x"),
        ("sub-pat/+/x", "pat/+/x"),
        ("sub-pat/#", "pat/#"),
        ("sub-pat/a/y", "pat/a/y"),
        ("sub-deep", "deep"),
        ("sub-deep/a/b/#", "deep/a/b/#"),
        ("sub-deep/+", "deep/+"),
        ("sub-#", "#"),
        ("sub-mix/a", "mix/a"),
        ("sub-mix/b", "mix/b"),
        ("sub-$share/g/pat/a/x", "$share/g/pat/a/x"),
    ] {
        observed.insert(name.to_owned(), suback(filter, true));
    }
    observed.insert("sub-lit/a-v311".to_owned(), suback("lit/a", false));
    let unsuback = |filter: &str| {
        let ok = allowed(
            &state,
            AclEvent::Unsubscribe,
            Some("alice"),
            "alice-1",
            filter,
        );
        if ok {
            0
        } else {
            135
        }
    };
    observed.insert(
        "unsubscribe-default-deny".to_owned(),
        format!(
            r#"{{"unsuback_lit":[{}],"unsuback_other":[{}]}}"#,
            unsuback("lit/#"),
            unsuback("other/x")
        ),
    );
    let receiving = |default_receive: bool, topics: &[&str]| {
        let state = state_with(&[
            &role_acls("r-rx", &[("publishClientReceive", "rx/secret", 0, false)]),
            r#"{"command":"createClient","username":"sub","roles":[{"rolename":"r-rx"}]}"#,
            &format!(
                r#"{{"command":"setDefaultACLAccess","acls":[{{"acltype":"publishClientReceive","allow":{default_receive}}}]}}"#
            ),
        ]);
        let delivered: Vec<String> = topics
            .iter()
            .filter(|t| {
                allowed(
                    &state,
                    AclEvent::PublishClientReceive,
                    Some("sub"),
                    "sub-1",
                    t,
                )
            })
            .map(|t| format!(r#""{t}""#))
            .collect();
        format!(r#"{{"delivered_topics":[{}]}}"#, delivered.join(","))
    };
    observed.insert(
        "receive-deny".to_owned(),
        receiving(true, &["rx/public", "rx/secret"]),
    );
    observed.insert(
        "receive-default-deny".to_owned(),
        receiving(false, &["rx/other"]),
    );
}

fn patterns_and_anonymous(observed: &mut BTreeMap<String, String>) {
    let state = state_with(&[
        &role_acls(
            "r-u",
            &[
                ("publishClientSend", "u/%u/#", 0, true),
                ("publishClientSend", "c/%c/#", 0, true),
            ],
        ),
        r#"{"command":"createClient","username":"alice","roles":[{"rolename":"r-u"}]}"#,
    ]);
    let send = |client_id: &str, topic: &str| {
        allowed(
            &state,
            AclEvent::PublishClientSend,
            Some("alice"),
            client_id,
            topic,
        )
    };
    observed.insert(
        "u-substituted".to_owned(),
        publish_observation(send("alice-1", "u/alice/x"), true),
    );
    observed.insert(
        "u-literal".to_owned(),
        publish_observation(send("alice-1", "u/%u/x"), true),
    );
    observed.insert(
        "c-substituted".to_owned(),
        publish_observation(send("cid-a", "c/cid-a/x"), true),
    );

    let allow_t = role_acls("r-allow-t", &[("publishClientSend", "t/#", 0, true)]);
    let without = state_with(&[&allow_t]);
    let mut with = without.clone();
    ok(
        &mut with,
        r#"{"commands":[{"command":"createGroup","groupname":"anon","roles":[{"rolename":"r-allow-t"}]},
        {"command":"setAnonymousGroup","groupname":"anon"},{"command":"createClient","username":"alice"}]}"#,
    );
    let anonymous = |state: &DynsecState, topic: &str| {
        puback(
            allowed(state, AclEvent::PublishClientSend, None, "anon-1", topic),
            true,
        )
    };
    observed.insert(
        "anonymous-group".to_owned(),
        format!(
            r#"{{"puback_without_group":{},"puback_with_group":{},"puback_with_group_unmatched_topic":{}}}"#,
            anonymous(&without, "t/a"),
            anonymous(&with, "t/a"),
            anonymous(&with, "x/y")
        ),
    );
    let named = allowed(
        &with,
        AclEvent::PublishClientSend,
        Some("alice"),
        "alice-1",
        "t/a",
    );
    observed.insert(
        "anonymous-group-not-for-named".to_owned(),
        format!(r#"{{"puback":{}}}"#, puback(named, true)),
    );
}

/// The kick scenarios: alice (role r-pat) is the victim unless `anonymous`; carol is a
/// bystander who must never be kicked.
fn kicks(observed: &mut BTreeMap<String, String>) {
    let base = [
        role_acls("r-pat", &[("publishClientSend", "pat/#", 0, true)]),
        role_acls("r-sub", &[]),
        role_acls("r-grp", &[]),
        r#"{"command":"createClient","username":"alice","password":"alicepw","textname":"Alice","roles":[{"rolename":"r-pat"}]}"#.to_owned(),
        r#"{"command":"createClient","username":"carol","password":"carolpw"}"#.to_owned(),
        r#"{"command":"createGroup","groupname":"g1"}"#.to_owned(),
    ];
    let in_g1 = r#"{"command":"addGroupClient","groupname":"g1","username":"alice"}"#;
    let g1_role = r#"{"command":"addGroupRole","groupname":"g1","rolename":"r-grp"}"#;
    let via_list = r#"{"command":"createGroup","groupname":"gv","roles":[{"rolename":"r-grp"}]}"#;
    let in_gv = r#"{"command":"addGroupClient","groupname":"gv","username":"alice"}"#;
    let anon_g1 = r#"{"command":"setAnonymousGroup","groupname":"g1"}"#;
    let add_acl = |role: &str| {
        format!(
            r#"{{"command":"addRoleACL","rolename":"{role}","acltype":"publishClientSend","topic":"z/#","allow":true}}"#
        )
    };
    let scenarios: Vec<(&str, Vec<String>, String, bool, i64)> = vec![
        ("createClient", vec![], r#"{"command":"createClient","username":"dave"}"#.into(), false, 152),
        ("setClientPassword", vec![], r#"{"command":"setClientPassword","username":"alice","password":"new"}"#.into(), false, 152),
        ("setClientPassword-v311", vec![], r#"{"command":"setClientPassword","username":"alice","password":"new"}"#.into(), false, 128),
        ("setClientId", vec![], r#"{"command":"setClientId","username":"alice","clientid":"alice-1"}"#.into(), false, 152),
        ("setClientId-clear", vec![], r#"{"command":"setClientId","username":"alice"}"#.into(), false, 152),
        ("addClientRole", vec![], r#"{"command":"addClientRole","username":"alice","rolename":"r-sub"}"#.into(), false, 152),
        ("removeClientRole", vec![], r#"{"command":"removeClientRole","username":"alice","rolename":"r-pat"}"#.into(), false, 152),
        ("modifyClient", vec![], r#"{"command":"modifyClient","username":"alice","textname":"A"}"#.into(), false, 152),
        ("modifyClient-error", vec![], r#"{"command":"modifyClient","username":"alice","textname":"A","roles":[{"rolename":"nope"}]}"#.into(), false, 152),
        ("getClient", vec![], r#"{"command":"getClient","username":"alice"}"#.into(), false, 152),
        ("addGroupClient", vec![], in_g1.into(), false, 152),
        ("addGroupClient-duplicate-error", vec![in_g1.into()], in_g1.into(), false, 152),
        ("addGroupRole", vec![in_g1.into()], g1_role.into(), false, 152),
        ("removeGroupRole", vec![in_g1.into(), g1_role.into()], r#"{"command":"removeGroupRole","groupname":"g1","rolename":"r-grp"}"#.into(), false, 152),
        ("modifyGroup", vec![in_g1.into()], r#"{"command":"modifyGroup","groupname":"g1","textname":"G"}"#.into(), false, 152),
        ("addRoleACL-via-group", vec![via_list.into(), in_gv.into()], add_acl("r-grp"), false, 152),
        ("removeRoleACL-via-group", vec![via_list.into(), in_gv.into(), add_acl("r-grp")], r#"{"command":"removeRoleACL","rolename":"r-grp","acltype":"publishClientSend","topic":"z/#"}"#.into(), false, 152),
        ("modifyRole-via-group", vec![via_list.into(), in_gv.into()], r#"{"command":"modifyRole","rolename":"r-grp","acls":[]}"#.into(), false, 152),
        ("removeGroupClient", vec![in_g1.into()], r#"{"command":"removeGroupClient","groupname":"g1","username":"alice"}"#.into(), false, 152),
        ("removeGroupClient-not-member", vec![], r#"{"command":"removeGroupClient","groupname":"g1","username":"alice"}"#.into(), false, 152),
        ("addClientRole-direct-then-addRoleACL", vec![], r#"{"command":"addClientRole","username":"alice","rolename":"r-sub"}"#.into(), false, 152),
        ("addRoleACL-direct", vec![], add_acl("r-pat"), false, 152),
        ("setDefaultACLAccess", vec![], r#"{"command":"setDefaultACLAccess","acls":[]}"#.into(), false, 152),
        ("disableClient", vec![], r#"{"command":"disableClient","username":"alice"}"#.into(), false, 152),
        ("enableClient", vec![], r#"{"command":"enableClient","username":"carol"}"#.into(), false, 152),
        ("deleteGroup", vec![in_g1.into()], r#"{"command":"deleteGroup","groupname":"g1"}"#.into(), false, 152),
        ("deleteRole", vec![], r#"{"command":"deleteRole","rolename":"r-pat"}"#.into(), false, 152),
        ("setAnonymousGroup-named", vec![], anon_g1.into(), false, 152),
        ("setAnonymousGroup-anonymous", vec![], anon_g1.into(), true, 152),
        ("addGroupRole-anon-group", vec![anon_g1.into()], g1_role.into(), true, 152),
        ("addRoleACL-anon-group-role", vec![anon_g1.into(), g1_role.into()], add_acl("r-grp"), true, 152),
        ("deleteClient", vec![], r#"{"command":"deleteClient","username":"alice"}"#.into(), false, 152),
        ("addRoleACL-role-from-createClient", vec![r#"{"command":"deleteClient","username":"alice"}"#.into(),
            r#"{"command":"createClient","username":"alice","roles":[{"rolename":"r-grp"}]}"#.into()], add_acl("r-grp"), false, 152),
        ("addRoleACL-role-from-addClientRole", vec![r#"{"command":"addClientRole","username":"alice","rolename":"r-grp"}"#.into()], add_acl("r-grp"), false, 152),
        ("addRoleACL-role-from-createGroup", vec![via_list.into(), in_gv.into()], add_acl("r-grp"), false, 152),
        ("addRoleACL-role-from-addGroupRole", vec![in_g1.into(), g1_role.into()], add_acl("r-grp"), false, 152),
    ];
    let mut bystander_kicked = false;
    for (name, setup, command, anonymous_victim, reason) in scenarios {
        let mut commands: Vec<String> = base.to_vec();
        commands.extend(setup);
        let refs: Vec<&str> = commands.iter().map(String::as_str).collect();
        let mut state = state_with(&refs);
        let outcome = run(&mut state, &format!(r#"{{"commands":[{command}]}}"#));
        let response = json::parse(&outcome.response.unwrap()).unwrap();
        let entry = &response.get("responses").and_then(Value::as_array).unwrap()[0];
        let victim = if anonymous_victim {
            Kick::Anonymous
        } else {
            Kick::Username(b"alice".to_vec())
        };
        let kicked = outcome.kicks.contains(&victim);
        bystander_kicked |= outcome.kicks.contains(&Kick::Username(b"carol".to_vec()));
        let reason = if kicked {
            reason.to_string()
        } else {
            "null".to_owned()
        };
        let entry = String::from_utf8(compact(entry)).unwrap();
        observed.insert(
            name.to_owned(),
            format!(r#"{{"response":{entry},"victim_disconnect_reason":{reason}}}"#),
        );
    }
    observed.insert(
        "bystander".to_owned(),
        format!(
            r#"{{"disconnect":{}}}"#,
            if bystander_kicked { "152" } else { "null" }
        ),
    );

    // The admin changes its own roles: the response is published before the kick.
    let (mut state, _) = store::load(&fixture_bytes("initial-dynamic-security.json")).unwrap();
    state.set_password_policy(FAST_POLICY);
    ok(
        &mut state,
        r#"{"commands":[{"command":"createRole","rolename":"r-sub"}]}"#,
    );
    let outcome = handle_request(
        &mut state,
        br#"{"commands":[{"command":"addClientRole","username":"admin","rolename":"r-sub"},{"command":"getClient","username":"admin"}]}"#,
        &ADMIN,
    );
    let response = outcome.response.expect("response");
    let kicked = outcome.kicks.contains(&Kick::Username(b"admin".to_vec()));
    let snapshot = AclSnapshot::build(&state);
    let receives = snapshot.check(
        AclEvent::PublishClientReceive,
        &identity("admin-cli", Some("admin")),
        b"$CONTROL/dynamic-security/v1/response",
    );
    observed.insert(
        "admin-kicks-itself".to_owned(),
        format!(
            r#"{{"admin_received_response":{receives},"admin_disconnect_reason":{},"other_subscriber_received":{}}}"#,
            if kicked { "152" } else { "null" },
            String::from_utf8(compact(&Value::String(response))).unwrap()
        ),
    );
}

fn control_topic(observed: &mut BTreeMap<String, String>) {
    let mut state = state_with(&[
        &role_acls(
            "r-send-sub",
            &[
                ("publishClientSend", "$CONTROL/dynamic-security/#", 0, true),
                ("subscribePattern", "$CONTROL/dynamic-security/#", 0, true),
            ],
        ),
        &role_acls(
            "r-send",
            &[("publishClientSend", "$CONTROL/dynamic-security/#", 0, true)],
        ),
        &role_acls(
            "r-admin",
            &[(
                "publishClientReceive",
                "$CONTROL/dynamic-security/#",
                0,
                true,
            )],
        ),
        r#"{"command":"createClient","username":"requester","roles":[{"rolename":"r-send-sub"}]}"#,
        r#"{"command":"createClient","username":"sendonly","roles":[{"rolename":"r-send"}]}"#,
        r#"{"command":"createClient","username":"admin","roles":[{"rolename":"r-admin"}]}"#,
        r#"{"command":"setDefaultACLAccess","acls":[{"acltype":"publishClientReceive","allow":true}]}"#,
    ]);
    let response_topic = "$CONTROL/dynamic-security/v1/response";
    let receives = |state: &DynsecState, user: &str| {
        allowed(
            state,
            AclEvent::PublishClientReceive,
            Some(user),
            "c",
            response_topic,
        )
    };
    let note = fixture("behaviour-observations.json")
        .get("results")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .find(|r| r.get("name").and_then(Value::as_bytes) == Some(b"response-needs-receive-acl"))
        .and_then(|r| {
            r.get("observed")?
                .get("note")?
                .as_bytes()
                .map(<[u8]>::to_vec)
        })
        .unwrap();
    observed.insert(
        "response-needs-receive-acl".to_owned(),
        format!(
            r#"{{"requester_received_response":{},"other_admin_subscriber_received_it":{},"note":{}}}"#,
            receives(&state, "requester"),
            receives(&state, "admin"),
            String::from_utf8(compact(&Value::String(note))).unwrap()
        ),
    );
    let may_send = allowed(
        &state,
        AclEvent::PublishClientSend,
        Some("sendonly"),
        "s",
        "$CONTROL/dynamic-security/v1",
    );
    let context = crate::dynsec::control::RequestContext {
        client_id: b"s",
        username: Some(b"sendonly"),
    };
    let outcome = handle_request(
        &mut state,
        br#"{"commands":[{"command":"createGroup","groupname":"new"}]}"#,
        &context,
    );
    let executed = outcome.changed && state.groups().contains_key(&b"new".to_vec());
    observed.insert(
        "send-only-admin".to_owned(),
        format!(
            r#"{{"puback":{},"command_executed":{}}}"#,
            if may_send { 0 } else { 135 },
            may_send && executed
        ),
    );
}

#[test]
fn observations_of_the_real_broker_hold() {
    let mut ours = BTreeMap::new();
    authentication(&mut ours);
    acl_evaluation(&mut ours);
    subscriptions(&mut ours);
    patterns_and_anonymous(&mut ours);
    kicks(&mut ours);
    control_topic(&mut ours);
    let observations = fixture("behaviour-observations.json");
    let mut failures = Vec::new();
    let mut checked = 0;
    for result in observations
        .get("results")
        .and_then(Value::as_array)
        .unwrap()
    {
        let name = String::from_utf8(
            result
                .get("name")
                .and_then(Value::as_bytes)
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        if BROKER_ONLY.iter().any(|(n, _)| *n == name) {
            assert!(!ours.contains_key(&name));
            continue;
        }
        let Some(got) = ours.remove(&name) else {
            failures.push(format!("{name}: not rebuilt and not listed in BROKER_ONLY"));
            continue;
        };
        let golden = compact(result.get("observed").unwrap());
        let name_static: &'static str = Box::leak(name.clone().into_boxed_str());
        let expected =
            String::from_utf8(apply_deviations(Target::Behaviour(name_static), &golden)).unwrap();
        if got != expected {
            failures.push(format!("{name}:\n  expected {expected}\n  got      {got}"));
        }
        checked += 1;
    }
    assert!(
        ours.is_empty(),
        "rebuilt observations missing from the fixture: {:?}",
        ours.keys()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 80, "{checked}");
}

/// 2.0.11 left dangling role references after deleteRole when the role came from a
/// `roles` list; Culex removes every link (deviation `consistent-role-links`).
#[test]
fn deleted_roles_leave_no_references() {
    let mut state = state_with(&[
        r#"{"command":"createRole","rolename":"dangle"}"#,
        r#"{"command":"createClient","username":"u-dangle","roles":[{"rolename":"dangle"}]}"#,
        r#"{"command":"createGroup","groupname":"g-dangle","roles":[{"rolename":"dangle"}]}"#,
        r#"{"command":"addGroupClient","groupname":"g-dangle","username":"u-dangle"}"#,
    ]);
    let outcome = ok(
        &mut state,
        r#"{"commands":[{"command":"deleteRole","rolename":"dangle"}]}"#,
    );
    assert_eq!(outcome.kicks, vec![Kick::Username(b"u-dangle".to_vec())]);
    assert!(state.clients()[&b"u-dangle".to_vec()].roles().is_empty());
    assert!(state.groups()[&b"g-dangle".to_vec()].roles().is_empty());
    let saved = store::serialise(&state);
    assert!(!String::from_utf8(saved)
        .unwrap()
        .contains("\"rolename\":\t\"dangle\""));
    state.check_invariants().unwrap();
    assert_eq!(
        AclSnapshot::build(&state).decide(
            AclEvent::PublishClientSend,
            &identity("c", Some("u-dangle")),
            b"x"
        ),
        AclDecision::Defer
    );
}
