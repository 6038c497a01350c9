//! Property test of the compiled `AclSnapshot`: random rule sets (roles with ACLs of all
//! six types and random priorities, groups, clients with role links and memberships, an
//! optional anonymous group, random default access) are installed through the control API,
//! and for random (event, connection, topic) triples the snapshot's decision must equal a
//! direct evaluation of spec §8.2 written plainly below from the generated data — with
//! string splitting, sorting at every call and no precomputation.
//!
//! The oracle encodes the documented semantics: 2.0.11's decision procedure and
//! subscribe-pattern algorithm, first-wins for duplicate ACLs (deviation
//! `duplicate-acls-first-wins`) and `%c`/`%u` substitution (deviation
//! `pattern-substitution`).

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::support::ok;
use crate::dynsec::acl::{AclDecision, AclEvent, AclSnapshot, ClientIdentity};
use crate::dynsec::model::{AclType, DynsecState};

const ROLES: [&str; 4] = ["r0", "r1", "r2", "r3"];
const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
const USERNAMES: [&str; 3] = ["a", "b", "u1"];
const ACL_LEVELS: [&str; 12] = [
    "a", "a", "b", "+", "+", "#", "#", "%c", "%u", "$SYS", "", "$CONTROL",
];
const TOPIC_LEVELS: [&str; 8] = ["a", "b", "a", "u1", "c1", "$SYS", "", "$CONTROL"];
const CLIENT_IDS: [&str; 6] = ["c1", "a", "", "x/y", "+", "u1"];

#[derive(Debug, Clone)]
struct AclSpec {
    acl_type: AclType,
    topic: String,
    priority: i32,
    allow: bool,
}

#[derive(Debug, Clone)]
struct ClientSpec {
    roles: BTreeMap<usize, i32>,
    groups: BTreeMap<usize, i32>,
}

#[derive(Debug, Clone)]
struct RuleSet {
    default: [bool; 4],
    roles: Vec<Vec<AclSpec>>,
    groups: Vec<BTreeMap<usize, i32>>,
    clients: BTreeMap<usize, ClientSpec>,
    anonymous: Option<usize>,
}

fn topic_from(levels: Vec<&'static str>) -> String {
    levels.join("/")
}

fn acl_strategy() -> impl Strategy<Value = AclSpec> {
    (
        prop::sample::select(AclType::ALL.to_vec()),
        prop::collection::vec(prop::sample::select(ACL_LEVELS.to_vec()), 1..3),
        -2..=2i32,
        any::<bool>(),
    )
        .prop_map(|(acl_type, levels, priority, allow)| AclSpec {
            acl_type,
            topic: topic_from(levels),
            priority,
            allow,
        })
}

fn links(count: usize) -> impl Strategy<Value = BTreeMap<usize, i32>> {
    prop::collection::btree_map(0..count, -2..=2i32, 1..=count)
}

fn rule_set_strategy() -> impl Strategy<Value = RuleSet> {
    (
        prop::array::uniform4(any::<bool>()),
        prop::collection::vec(prop::collection::vec(acl_strategy(), 2..16), ROLES.len()),
        prop::collection::vec(links(ROLES.len()), GROUPS.len()),
        prop::collection::vec(
            prop::option::weighted(
                0.85,
                (links(ROLES.len()), links(GROUPS.len()))
                    .prop_map(|(roles, groups)| ClientSpec { roles, groups }),
            ),
            USERNAMES.len(),
        ),
        prop::option::weighted(0.8, 0..GROUPS.len()),
    )
        .prop_map(|(default, roles, groups, clients, anonymous)| RuleSet {
            default,
            roles,
            groups,
            clients: clients
                .into_iter()
                .enumerate()
                .filter_map(|(i, c)| c.map(|c| (i, c)))
                .collect(),
            anonymous,
        })
}

fn link_list(key: &str, names: &[&str], links: &BTreeMap<usize, i32>) -> String {
    let items: Vec<String> = links
        .iter()
        .map(|(i, p)| format!(r#"{{"{key}":"{}","priority":{p}}}"#, names[*i]))
        .collect();
    format!("[{}]", items.join(","))
}

/// Installs the rule set through control commands.
fn install(rules: &RuleSet) -> DynsecState {
    let mut state = DynsecState::new();
    let mut commands = Vec::new();
    for (name, acls) in ROLES.iter().zip(&rules.roles) {
        let acls: Vec<String> = acls
            .iter()
            .map(|a| {
                format!(
                    r#"{{"acltype":"{}","topic":"{}","priority":{},"allow":{}}}"#,
                    a.acl_type.name(),
                    a.topic,
                    a.priority,
                    a.allow
                )
            })
            .collect();
        commands.push(format!(
            r#"{{"command":"createRole","rolename":"{name}","acls":[{}]}}"#,
            acls.join(",")
        ));
    }
    for (name, roles) in GROUPS.iter().zip(&rules.groups) {
        commands.push(format!(
            r#"{{"command":"createGroup","groupname":"{name}","roles":{}}}"#,
            link_list("rolename", &ROLES, roles)
        ));
    }
    for (index, client) in &rules.clients {
        commands.push(format!(
            r#"{{"command":"createClient","username":"{}","roles":{},"groups":{}}}"#,
            USERNAMES[*index],
            link_list("rolename", &ROLES, &client.roles),
            link_list("groupname", &GROUPS, &client.groups)
        ));
    }
    if let Some(group) = rules.anonymous {
        commands.push(format!(
            r#"{{"command":"setAnonymousGroup","groupname":"{}"}}"#,
            GROUPS[group]
        ));
    }
    let names = [
        "publishClientSend",
        "publishClientReceive",
        "subscribe",
        "unsubscribe",
    ];
    let access: Vec<String> = names
        .iter()
        .zip(rules.default)
        .map(|(n, allow)| format!(r#"{{"acltype":"{n}","allow":{allow}}}"#))
        .collect();
    commands.push(format!(
        r#"{{"command":"setDefaultACLAccess","acls":[{}]}}"#,
        access.join(",")
    ));
    ok(
        &mut state,
        &format!(r#"{{"commands":[{}]}}"#, commands.join(",")),
    );
    state
}

// ---------------------------------------------------------------------------------------
// The oracle: spec §8 written plainly.

fn valid_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('+') && *level != "+" {
            return false;
        }
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return false;
        }
    }
    !filter.is_empty()
}

/// `%c` / `%u` value, or `None` when it cannot match anything.
fn substitute(level: &str, client_id: &str, username: Option<&str>) -> Option<String> {
    let value = match level {
        "%c" => client_id,
        "%u" => username?,
        other => return Some(other.to_owned()),
    };
    if value.is_empty() || value.contains(['/', '+', '#']) {
        return None;
    }
    Some(value.to_owned())
}

fn topic_matches(acl: &str, topic: &str, client_id: &str, username: Option<&str>) -> bool {
    if !valid_filter(acl) || topic.is_empty() {
        return false;
    }
    if acl.starts_with('$') != topic.starts_with('$') {
        return false;
    }
    let filter: Vec<&str> = acl.split('/').collect();
    let topic: Vec<&str> = topic.split('/').collect();
    for (i, level) in filter.iter().enumerate() {
        if *level == "#" {
            return true;
        }
        if i >= topic.len() {
            return false;
        }
        if *level == "+" {
            continue;
        }
        match substitute(level, client_id, username) {
            Some(value) if value == topic[i] => {}
            _ => return false,
        }
    }
    filter.len() == topic.len()
}

/// Spec §8.3 steps 1–5 for subscribePattern / unsubscribePattern.
fn covers(acl: &str, filter: &str, client_id: &str, username: Option<&str>) -> bool {
    if acl == "#" {
        return true;
    }
    let (acl_body, acl_hash) = match acl.strip_suffix("/#") {
        Some(body) => (body, true),
        None => (acl, false),
    };
    let (filter_levels, filter_hash): (Vec<&str>, bool) = if filter == "#" {
        // Stripping the lone `#` leaves one empty level (spec §8.3 step 2).
        (vec![""], true)
    } else {
        match filter.strip_suffix("/#") {
            Some(body) => (body.split('/').collect(), true),
            None => (filter.split('/').collect(), false),
        }
    };
    if filter_hash && !acl_hash {
        return false;
    }
    let acl_levels: Vec<&str> = acl_body.split('/').collect();
    if acl_levels.len() > filter_levels.len() {
        return false;
    }
    if filter_levels.len() > acl_levels.len() && !acl_hash {
        return false;
    }
    for (acl_level, requested) in acl_levels.iter().zip(&filter_levels) {
        if *acl_level == "+" {
            continue;
        }
        match substitute(acl_level, client_id, username) {
            Some(value) if value == *requested => {}
            _ => return false,
        }
    }
    true
}

/// A role's ACLs of one type in evaluation order: duplicates of a topic dropped (first
/// wins), then a stable sort by priority, highest first.
fn ordered(acls: &[AclSpec], acl_type: AclType) -> Vec<AclSpec> {
    let mut kept: Vec<AclSpec> = Vec::new();
    for acl in acls.iter().filter(|a| a.acl_type == acl_type) {
        if !kept.iter().any(|k| k.topic == acl.topic) {
            kept.push(acl.clone());
        }
    }
    kept.sort_by_key(|a| std::cmp::Reverse(a.priority));
    kept
}

/// Role indices by link priority (highest first), ties by name.
fn by_priority(links: &BTreeMap<usize, i32>, names: &[&str]) -> Vec<usize> {
    let mut list: Vec<(usize, i32)> = links.iter().map(|(i, p)| (*i, *p)).collect();
    list.sort_by(|x, y| y.1.cmp(&x.1).then(names[x.0].cmp(names[y.0])));
    list.into_iter().map(|(i, _)| i).collect()
}

fn check_role(
    acls: &[AclSpec],
    event: AclEvent,
    topic: &str,
    client_id: &str,
    username: Option<&str>,
) -> Option<bool> {
    let (literal, pattern) = match event {
        AclEvent::PublishClientSend | AclEvent::PublishClientReceive => {
            let acl_type = if event == AclEvent::PublishClientSend {
                AclType::PublishClientSend
            } else {
                AclType::PublishClientReceive
            };
            return ordered(acls, acl_type)
                .into_iter()
                .find(|a| topic_matches(&a.topic, topic, client_id, username))
                .map(|a| a.allow);
        }
        AclEvent::Subscribe => (AclType::SubscribeLiteral, AclType::SubscribePattern),
        AclEvent::Unsubscribe => (AclType::UnsubscribeLiteral, AclType::UnsubscribePattern),
    };
    if let Some(acl) = ordered(acls, literal)
        .into_iter()
        .find(|a| a.topic == topic)
    {
        return Some(acl.allow);
    }
    ordered(acls, pattern)
        .into_iter()
        .find(|a| covers(&a.topic, topic, client_id, username))
        .map(|a| a.allow)
}

fn oracle(
    rules: &RuleSet,
    event: AclEvent,
    client_id: &str,
    username: Option<&str>,
    topic: &str,
) -> AclDecision {
    let username = username.filter(|u| !u.is_empty());
    let mut role_lists: Vec<Vec<usize>> = Vec::new();
    match username {
        Some(name) => {
            let Some(index) = USERNAMES.iter().position(|u| *u == name) else {
                return AclDecision::Defer;
            };
            let Some(client) = rules.clients.get(&index) else {
                return AclDecision::Defer;
            };
            role_lists.push(by_priority(&client.roles, &ROLES));
            for group in by_priority(&client.groups, &GROUPS) {
                role_lists.push(by_priority(&rules.groups[group], &ROLES));
            }
        }
        None => {
            if let Some(group) = rules.anonymous {
                role_lists.push(by_priority(&rules.groups[group], &ROLES));
            }
        }
    }
    for list in role_lists {
        for role in list {
            if let Some(allow) = check_role(&rules.roles[role], event, topic, client_id, username) {
                return if allow {
                    AclDecision::Allow
                } else {
                    AclDecision::Deny
                };
            }
        }
    }
    let index = AclEvent::ALL.iter().position(|e| *e == event).unwrap();
    if rules.default[index] && !topic.starts_with("$CONTROL") {
        AclDecision::Allow
    } else {
        AclDecision::Defer
    }
}

// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Query {
    event: AclEvent,
    client_id: &'static str,
    username: Option<&'static str>,
    topic: String,
}

fn query_strategy() -> impl Strategy<Value = Query> {
    let usernames = prop::sample::select(vec![
        Some("a"),
        Some("b"),
        Some("u1"),
        Some("a"),
        Some("b"),
        Some("u1"),
        Some("zz"),
        Some(""),
        None,
        None,
    ]);
    let topic = prop_oneof![
        prop::collection::vec(prop::sample::select(TOPIC_LEVELS.to_vec()), 1..4)
            .prop_map(topic_from),
        prop::collection::vec(prop::sample::select(ACL_LEVELS.to_vec()), 1..3).prop_map(topic_from),
    ];
    (
        prop::sample::select(AclEvent::ALL.to_vec()),
        prop::sample::select(CLIENT_IDS.to_vec()),
        usernames,
        topic,
    )
        .prop_filter_map(
            "publish topics carry no wildcards, filters are valid",
            |(event, client_id, username, topic)| {
                let publish = matches!(
                    event,
                    AclEvent::PublishClientSend | AclEvent::PublishClientReceive
                );
                let usable = if publish {
                    !topic.contains(['+', '#']) && !topic.is_empty()
                } else {
                    valid_filter(&topic)
                };
                usable.then_some(Query {
                    event,
                    client_id,
                    username,
                    topic,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn snapshot_decides_like_the_spec(
        rules in rule_set_strategy(),
        queries in prop::collection::vec(query_strategy(), 64),
    ) {
        let state = install(&rules);
        let snapshot = AclSnapshot::build(&state);
        for query in &queries {
            let identity = ClientIdentity {
                client_id: query.client_id.as_bytes(),
                username: query.username.map(str::as_bytes),
            };
            let expected = oracle(&rules, query.event, query.client_id, query.username, &query.topic);
            let got = snapshot.decide(query.event, &identity, query.topic.as_bytes());
            prop_assert_eq!(got, expected, "{:?}", query);
            let subject = snapshot.subject(identity.username);
            prop_assert_eq!(
                snapshot.decide_subject(subject, query.event, &identity, query.topic.as_bytes()),
                expected
            );
            prop_assert_eq!(snapshot.check(query.event, &identity, query.topic.as_bytes()), expected == AclDecision::Allow);
        }
    }
}

/// The property above is only worth something if random rule sets produce every outcome.
#[test]
fn random_rule_sets_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeMap::new();
    for _ in 0..200 {
        let rules = rule_set_strategy().new_tree(&mut runner).unwrap().current();
        let query = query_strategy().new_tree(&mut runner).unwrap().current();
        let decision = oracle(
            &rules,
            query.event,
            query.client_id,
            query.username,
            &query.topic,
        );
        *seen.entry(format!("{decision:?}")).or_insert(0) += 1;
    }
    println!("{seen:?}");
    // Deny only ever comes from a matching ACL, so it measures how often rules match.
    for outcome in ["Allow", "Deny", "Defer"] {
        assert!(seen.get(outcome).copied().unwrap_or(0) >= 25, "{seen:?}");
    }
}
