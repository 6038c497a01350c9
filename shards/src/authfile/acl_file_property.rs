//! Property test of the compiled [`AclFile::check`]: for random small ACL files and random
//! (access, client id, username, topic) the answer equals a naive re-evaluation written
//! plainly below — the file's lines re-read with `split_whitespace`, every rule walked on
//! every call, `%c`/`%u` substituted by building strings, and MQTT matching on `split('/')`
//! vectors with 2.0's "both or neither start with `$`" rule.
//!
//! The oracle encodes the man page and `mosquitto_acl_check_default` (2.0): the client's
//! own section (anonymous rules before the first `user` line, or its user's sections),
//! denies first, then grants of the requested access; then, when there are patterns, a
//! refusal for `+`/`#` in the username or client id, pattern denies, pattern grants;
//! subscribe/unsubscribe always allowed; plus Culex's rule that an empty or `/`-containing
//! substitution value matches nothing.

use std::path::Path;

use proptest::prelude::*;

use super::*;

const ACL_LEVELS: [&str; 14] = [
    "a", "b", "+", "+", "#", "%c", "%u", "%u", "x%cy", "$SYS", "", "c1", "%%u", "%c",
];
const TOPIC_LEVELS: [&str; 15] = [
    "a", "b", "a", "c1", "u1", "x", "xc1y", "xay", "$SYS", "", "", "%u", "%c", "a+", "y",
];
const SECTION_USERS: [&str; 5] = ["a", "b", "u1", "x/y", "u+"];
const CLIENT_IDS: [&str; 9] = ["c1", "a", "x/y", "c+", "$SYS", "u1", "%c", "b#", ""];
const USERNAMES: [Option<&str>; 9] = [
    None,
    Some("a"),
    Some("b"),
    Some("u1"),
    Some("x/y"),
    Some("u+"),
    Some(""),
    Some("%u"),
    Some("c1"),
];
const ACCESS_WORDS: [Option<&str>; 5] = [
    None,
    Some("read"),
    Some("write"),
    Some("readwrite"),
    Some("deny"),
];
const ACCESSES: [AclAccess; 4] = [
    AclAccess::Read,
    AclAccess::Write,
    AclAccess::Subscribe,
    AclAccess::Unsubscribe,
];

fn acl_topic() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ACL_LEVELS.to_vec()), 1..4)
        .prop_map(|levels| {
            let last = levels.len() - 1;
            let levels: Vec<&str> = levels
                .into_iter()
                .enumerate()
                .map(|(i, level)| {
                    if level == "#" && i != last {
                        "+"
                    } else {
                        level
                    }
                })
                .collect();
            levels.join("/")
        })
        .prop_filter("a topic line needs a topic", |topic| !topic.is_empty())
}

fn topic_name() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOPIC_LEVELS.to_vec()), 1..4)
        .prop_map(|levels| levels.join("/"))
}

fn rule_line(keyword: &'static str) -> impl Strategy<Value = String> {
    (
        prop::sample::select(ACCESS_WORDS.to_vec()),
        acl_topic(),
        prop::sample::select(vec![" ", "  "]),
        prop::sample::select(vec!["", " ", "\t", "\r"]),
    )
        .prop_map(move |(access, topic, gap, trailing)| match access {
            Some(access) => format!("{keyword}{gap}{access}{gap}{topic}{trailing}"),
            None => format!("{keyword}{gap}{topic}{trailing}"),
        })
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => rule_line("topic"),
        2 => rule_line("pattern"),
        2 => prop::sample::select(SECTION_USERS.to_vec()).prop_map(|user| format!("user {user}")),
        1 => Just("# comment: topic deny #".to_string()),
        1 => Just(String::new()),
    ]
}

#[derive(Debug, Clone)]
struct Question {
    access: AclAccess,
    client_id: &'static str,
    username: Option<&'static str>,
    topic: String,
}

fn question() -> impl Strategy<Value = Question> {
    (
        prop::sample::select(ACCESSES.to_vec()),
        prop::sample::select(CLIENT_IDS.to_vec()),
        prop::sample::select(USERNAMES.to_vec()),
        topic_name(),
    )
        .prop_map(|(access, client_id, username, topic)| Question {
            access,
            client_id,
            username,
            topic,
        })
}

/// One rule as the oracle reads it.
struct OracleRule {
    pattern: bool,
    section: Option<String>,
    access: String,
    topic: String,
}

fn oracle_read(text: &str) -> Vec<OracleRule> {
    let mut rules = Vec::new();
    let mut section = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["user", name @ ..] => section = Some(name.join(" ")),
            [keyword, topic] => rules.push(OracleRule {
                pattern: *keyword == "pattern",
                section: section.clone(),
                access: "readwrite".into(),
                topic: topic.to_string(),
            }),
            [keyword, access, topic] => rules.push(OracleRule {
                pattern: *keyword == "pattern",
                section: section.clone(),
                access: access.to_string(),
                topic: topic.to_string(),
            }),
            other => panic!("generator made an unexpected line {other:?}"),
        }
    }
    rules
}

fn oracle_matches(filter: &str, topic: &str) -> bool {
    if topic.is_empty() || topic.contains('+') || topic.contains('#') {
        return false;
    }
    if filter.starts_with('$') != topic.starts_with('$') {
        return false;
    }
    let filter: Vec<&str> = filter.split('/').collect();
    let topic: Vec<&str> = topic.split('/').collect();
    for (i, level) in filter.iter().enumerate() {
        if *level == "#" {
            return true;
        }
        if i >= topic.len() {
            return false;
        }
        if *level != "+" && *level != topic[i] {
            return false;
        }
    }
    filter.len() == topic.len()
}

fn usable(value: &str) -> bool {
    !value.is_empty() && !value.contains(['/', '+', '#'])
}

fn substitute(topic: &str, client_id: &str, username: Option<&str>) -> Option<String> {
    let mut out = String::new();
    let mut chars = topic.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('%', Some('c')) => {
                chars.next();
                if !usable(client_id) {
                    return None;
                }
                out.push_str(client_id);
            }
            ('%', Some('u')) => {
                chars.next();
                match username {
                    Some(name) if usable(name) => out.push_str(name),
                    _ => return None,
                }
            }
            _ => out.push(c),
        }
    }
    Some(out)
}

fn oracle_check(rules: &[OracleRule], question: &Question) -> bool {
    let wanted = match question.access {
        AclAccess::Subscribe | AclAccess::Unsubscribe => return true,
        AclAccess::Read => "read",
        AclAccess::Write => "write",
    };
    let grants = |access: &str| access == wanted || access == "readwrite";
    let topic = question.topic.as_str();
    let own: Vec<&OracleRule> = rules
        .iter()
        .filter(|rule| !rule.pattern && rule.section.as_deref() == question.username)
        .collect();
    if own
        .iter()
        .any(|rule| rule.access == "deny" && oracle_matches(&rule.topic, topic))
    {
        return false;
    }
    if own
        .iter()
        .any(|rule| grants(&rule.access) && oracle_matches(&rule.topic, topic))
    {
        return true;
    }
    let patterns: Vec<&OracleRule> = rules.iter().filter(|rule| rule.pattern).collect();
    if patterns.is_empty() {
        return false;
    }
    let dangerous = |value: &str| value.contains(['+', '#']);
    if dangerous(question.client_id) || question.username.is_some_and(dangerous) {
        return false;
    }
    let substituted: Vec<(&str, String)> = patterns
        .iter()
        .filter_map(|rule| {
            substitute(&rule.topic, question.client_id, question.username)
                .map(|topic| (rule.access.as_str(), topic))
        })
        .collect();
    if substituted
        .iter()
        .any(|(access, filter)| *access == "deny" && oracle_matches(filter, topic))
    {
        return false;
    }
    substituted
        .iter()
        .any(|(access, filter)| grants(access) && oracle_matches(filter, topic))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn compiled_check_equals_the_plain_reading(
        lines in prop::collection::vec(line(), 0..14),
        questions in prop::collection::vec(question(), 48),
    ) {
        let text = lines.join("\n");
        let file = AclFile::parse(Path::new("/acl"), &text).unwrap();
        let rules = oracle_read(&text);
        for question in &questions {
            let got = file.check(
                question.access,
                question.client_id.as_bytes(),
                question.username.map(str::as_bytes),
                question.topic.as_bytes(),
            );
            prop_assert_eq!(got, oracle_check(&rules, question), "{:?}\n--- file:\n{}", question, text);
        }
    }
}
