//! Table tests of the ACL-file semantics. Every row names where its answer comes from:
//!
//! * `Run("X")`: probe X of `testdata/real_broker_runs.sh` against Debian's mosquitto
//!   2.0.11, loading the same `testdata/real_broker.acl`; the recorded outcome in
//!   `testdata/real_broker_runs.txt` (SUBACK code for Subscribe rows, DELIVERED / NOT
//!   delivered for the others) is checked against the row by `rows_agree_with_the_run`;
//! * `RunDiffers("X", why)`: the run shows something else, for the reason given;
//! * `Code(..)`: `src/security_default.c` / `src/security.c` of Mosquitto 2.0 (read in the
//!   `eclipse-mosquitto/mosquitto` snapshot);
//! * `Man(..)`: a sentence of mosquitto.conf(5) 2.0.11;
//! * `Culex(..)`: a deliberate Culex rule (module docs).

use std::path::Path;

use super::*;

const REAL: &str = include_str!("testdata/real_broker.acl");
const RUNS: &str = include_str!("testdata/real_broker_runs.txt");

#[derive(Debug, Clone, Copy)]
enum Source {
    Run(&'static str),
    RunDiffers(&'static str, &'static str),
    Code(&'static str),
    Man(&'static str),
    Culex(&'static str),
}

impl Source {
    /// The citation, for failure messages.
    fn describe(&self) -> String {
        match self {
            Run(probe) => format!("real broker, probe {probe} of real_broker_runs.txt"),
            RunDiffers(probe, why) => format!("differs from probe {probe}: {why}"),
            Code(what) => format!("Mosquitto 2.0 source: {what}"),
            Man(sentence) => format!("mosquitto.conf(5): {sentence}"),
            Culex(rule) => format!("Culex: {rule}"),
        }
    }
}

use AclAccess::{Read, Subscribe, Unsubscribe, Write};
use Source::{Code, Culex, Man, Run, RunDiffers};

type Row = (
    AclAccess,
    &'static str,         // client id
    Option<&'static str>, // username
    &'static str,         // topic or filter
    bool,                 // allowed
    Source,
);

const ALICE: Option<&str> = Some("alice");

/// Rows over `real_broker.acl`, one or two per probe of the real broker.
const REAL_ROWS: &[Row] = &[
    (Read, "sub", None, "anon/1", true, Run("A1")),
    (Write, "pub", None, "public/x", true, Run("A2")),
    (Write, "pub", None, "anon/1", false, Run("A3")),
    (Read, "sub", Some("dave"), "anon/1", false, Run("A4")),
    (Read, "sub", ALICE, "alice/1", true, Run("U1")),
    (Write, "pub", ALICE, "r/1", false, Run("U2")),
    (Read, "sub", ALICE, "r/1", true, Run("U3")),
    (Subscribe, "sub", ALICE, "w/#", true, Run("U4")),
    (Read, "sub", ALICE, "w/1", false, Run("U4")),
    (Write, "pub", ALICE, "w/1", true, Run("U5")),
    (Read, "sub", ALICE, "d/secret", false, Run("U6")),
    (Read, "sub", ALICE, "d/open", true, Run("U7")),
    (Write, "pub", ALICE, "d/secret", false, Run("U8")),
    (Read, "sub", ALICE, "space topic/x", true, Run("U9")),
    (Subscribe, "sub", ALICE, "#", true, Run("U10")),
    (Read, "sub", ALICE, "alice/2", true, Run("U10")),
    (Read, "sub", ALICE, "other/1", false, Run("U11")),
    (Write, "pub", Some("eve"), "read", true, Run("U12")),
    (Read, "sub", ALICE, "again/1", true, Run("U13")),
    (Read, "sub", ALICE, "p/alice/x", true, Run("P1")),
    (Read, "sub", ALICE, "p/bob/x", false, Run("P2")),
    (Read, "sub", None, "p//x", false, Run("P3")),
    (Read, "devA", Some("dave"), "c/devA", true, Run("P4")),
    (Read, "devA", Some("dave"), "c/devB", false, Run("P5")),
    (Read, "devA", None, "c/devA", true, Run("P6")),
    (Write, "K", Some("dave"), "mid/xKy", true, Run("P7")),
    (Read, "sub", Some("carol"), "pd/blocked", true, Run("P8")),
    (Read, "devA", Some("a+b"), "c/devA", false, Run("P9")),
    (Read, "dev+A", Some("dave"), "p/dave/x", false, Run("P10")),
    (
        Read,
        "sub",
        Some("x/y"),
        "slash/x/y/z",
        false,
        RunDiffers(
            "P11",
            "Culex: a '/' in a substituted username matches nothing; 2.0.11 substitutes it",
        ),
    ),
    (
        Read,
        "sub",
        Some("bob"),
        "$SYS/broker/uptime",
        false,
        Run("S1"),
    ),
    (
        Read,
        "sub",
        Some("root"),
        "$SYS/broker/uptime",
        true,
        Run("S2"),
    ),
    (
        Write,
        "pub",
        Some("root"),
        "$SYS/test/x",
        true,
        RunDiffers(
            "S3",
            "the broker refuses $SYS writes before the ACL file (acl__check_dollar; Culex \
             shard/publish.rs); the file itself grants readwrite $SYS/#",
        ),
    ),
    (Read, "sub", Some("bob"), "$NOTSYS/x", false, Run("S4")),
    (Read, "sub", ALICE, "other/retained", false, Run("R1")),
    (Read, "sub", Some("bob"), "other/retained", true, Run("R2")),
];

/// A second file for rules the run does not cover.
const MORE: &str = "\
# anonymous
topic read pub/#
topic deny pub/secret

user u1
topic deny x/#
topic readwrite x/ok
topic readwrite $SYS/broker/#
topic write both/#
topic read both/#
topic read c/%c
topic read lit/+/end

user u2
topic readwrite own/#

user a+b
topic read plus/#

pattern deny own/%u/private
pattern readwrite own/%u/#
pattern read shared/#
pattern read c/%c
";

const MORE_ROWS: &[Row] = &[
    (Read, "c", None, "pub/open", true, Man("The first set of topics are applied to anonymous clients")),
    (Read, "c", None, "pub/secret", false, Man("Any \"deny\" topics are handled before topics that grant read/write access")),
    (Read, "c", Some("u1"), "x/ok", false, Code("add__acl: \"Put deny acls at front of the list\"")),
    (Write, "c", Some("u1"), "x/ok", false, Code("add__acl: deny matches whatever the access asked")),
    (Read, "c", Some("u1"), "$SYS/broker/load", true, Man("<topic> can contain the + or # wildcards as in subscriptions")),
    (Read, "c", Some("u1"), "$SYS/other", false, Code("mosquitto_topic_matches_sub")),
    (Read, "c", Some("u1"), "both/1", true, Code("access bits: a read line and a write line add up")),
    (Write, "c", Some("u1"), "both/1", true, Code("access bits: a read line and a write line add up")),
    (Read, "c", Some("u1"), "c/%c", true, Code("add__acl stores a topic line as written: no substitution")),
    (Read, "cid", Some("u1"), "c/cid", true, Man("Pattern ACLs apply to all users even if the \"user\" keyword has previously been given")),
    (Read, "c", Some("u1"), "lit/a/end", true, Code("mosquitto_topic_matches_sub: + is one level")),
    (Read, "c", Some("u1"), "lit//end", true, Code("mosquitto_topic_matches_sub: + matches an empty level")),
    (Read, "c", Some("u1"), "lit/a/b/end", false, Code("mosquitto_topic_matches_sub: + is one level")),
    (Read, "c", Some("U1"), "both/1", false, Code("acl__find_acls: strcmp on the username")),
    (Read, "c", Some("u2"), "own/u2/private", true, Code("mosquitto_acl_check_default: the user's grant returns before patterns")),
    (Read, "c", Some("u3"), "own/u3/private", false, Code("mosquitto_acl_check_default: \"ACL denial patterns are iterated over first\"")),
    (Read, "c", Some("u3"), "own/u3/x", true, Man("pattern [read|write|readwrite|deny] <topic>; %u to match the username of the client")),
    (Read, "c", Some("u3"), "own/u3", true, Code("mosquitto_topic_matches_sub: \"foo matching foo/#\"")),
    (Read, "c", Some("u3"), "shared/a", true, Man("Pattern ACLs apply to all users")),
    (Read, "c", None, "shared/a", true, Man("Pattern ACLs apply to all users")),
    (Read, "c", None, "own//x", false, Code("mosquitto_acl_check_default: a %u pattern is skipped without a username")),
    (Read, "c", Some(""), "own//x", false, Culex("an empty substitution value matches nothing")),
    (Read, "c", Some(""), "pub/open", false, Code("acl__find_acls: a username, even empty, never gets the anonymous rules")),
    (Read, "c", Some(""), "shared/a", true, Man("Pattern ACLs apply to all users")),
    (Read, "c#", Some("u2"), "own/x", true, Code("mosquitto_acl_check_default: the dangerous-id check comes after the user's rules")),
    (Read, "c#", Some("u2"), "shared/a", false, Code("mosquitto_acl_check_default: \"ACL denying access to client with dangerous client id\"")),
    (Read, "c", Some("a+b"), "plus/1", true, Code("mosquitto_acl_check_default: the dangerous-id check comes after the user's rules")),
    (Read, "c", Some("a+b"), "shared/a", false, Code("mosquitto_acl_check_default: \"ACL denying access to client with dangerous username\"")),
    (Write, "c", Some("u1"), "both/+", false, Code("mosquitto_topic_matches_sub returns MOSQ_ERR_INVAL for a topic with wildcards")),
    (Read, "c", Some("u1"), "", false, Code("mosquitto_topic_matches_sub returns MOSQ_ERR_INVAL for an empty topic")),
    (Subscribe, "c", Some("nobody"), "#", true, Code("\"if(ed->access == MOSQ_ACL_SUBSCRIBE || ed->access == MOSQ_ACL_UNSUBSCRIBE) return MOSQ_ERR_SUCCESS\"")),
    (Unsubscribe, "c", None, "x/+", true, Code("MOSQ_ACL_UNSUBSCRIBE returns MOSQ_ERR_SUCCESS")),
];

fn parse(text: &str) -> AclFile {
    AclFile::parse(Path::new("/acl"), text).unwrap()
}

fn run_rows(file: &AclFile, rows: &[Row]) {
    for (access, client_id, username, topic, expected, source) in rows {
        let got = file.check(
            *access,
            client_id.as_bytes(),
            username.map(str::as_bytes),
            topic.as_bytes(),
        );
        assert_eq!(
            got,
            *expected,
            "{access:?} client {client_id:?} user {username:?} topic {topic:?} ({})",
            source.describe()
        );
    }
}

#[test]
fn real_broker_rows() {
    let file = parse(REAL);
    assert_eq!(file.len(), 19);
    run_rows(&file, REAL_ROWS);
}

#[test]
fn rows_from_source_and_man_page() {
    let file = parse(MORE);
    run_rows(&file, MORE_ROWS);
}

/// The recorded outcome of every probe cited by a `Run` row matches the row, and every
/// `RunDiffers` row really differs from it.
#[test]
fn rows_agree_with_the_run() {
    for (access, _, _, _, expected, source) in REAL_ROWS {
        let (probe, agrees) = match source {
            Run(probe) => (probe, true),
            RunDiffers(probe, _) => (probe, false),
            _ => continue,
        };
        let line = RUNS
            .lines()
            .find(|line| line.starts_with(&format!("{probe} ")))
            .unwrap_or_else(|| panic!("probe {probe} is in the transcript"));
        let observed = match access {
            Subscribe | Unsubscribe => line.contains("Subscribed (mid: 1): 0 "),
            Read | Write => line.ends_with(" DELIVERED"),
        };
        assert_eq!(
            observed == *expected,
            agrees,
            "{probe}: {line} ({})",
            source.describe()
        );
    }
}

#[test]
fn empty_file_refuses_reads_and_writes() {
    let file = parse("# nothing\n\n");
    assert!(file.is_empty());
    for access in [Read, Write] {
        assert!(!file.check(access, b"c", None, b"a"));
        assert!(!file.check(access, b"c", Some(b"u"), b"a"));
    }
    assert!(file.check(Subscribe, b"c", None, b"#"));
}

#[test]
fn without_patterns_a_dangerous_username_is_just_a_name() {
    let file = parse("user a#\ntopic read t\n");
    assert!(file.check(Read, b"c+", Some(b"a#"), b"t"));
    assert!(!file.refuses_identity(b"c+", Some(b"a#")));
    let file = parse("pattern read %u/#\n");
    assert!(file.refuses_identity(b"c+", None));
    assert!(file.refuses_identity(b"c", Some(b"a#")));
    assert!(!file.refuses_identity(b"c", Some(b"a/b")));
}

/// Mosquitto 2.0.11's messages for each refused line, from the transcript's "parse
/// errors" section (exit code 3); Culex shows the whole line where 2.0 shows its first
/// word.
#[test]
fn refused_lines_name_file_and_line() {
    let cases: &[(&str, &str)] = &[
        (
            "topic foo bar",
            "Invalid topic access type \"foo\" in acl_file \"/acl\"",
        ),
        ("topic", "Empty topic in acl_file \"/acl\""),
        ("pattern   ", "Empty topic in acl_file \"/acl\""),
        (
            "bogus line",
            "Invalid line in acl_file \"/acl\": bogus line",
        ),
        ("user", "Missing username in acl_file \"/acl\""),
        ("user \t ", "Missing username in acl_file \"/acl\""),
        (
            "topic read a/#/b",
            "Invalid ACL topic \"a/#/b\" in acl_file \"/acl\"",
        ),
        (
            "topic read a+",
            "Invalid ACL topic \"a+\" in acl_file \"/acl\"",
        ),
        (
            "pattern deny #/x",
            "Invalid ACL topic \"#/x\" in acl_file \"/acl\"",
        ),
        (
            "  # comment with leading spaces",
            "Invalid line in acl_file \"/acl\":   # comment with leading spaces",
        ),
        (
            "\ttopic read x",
            "Invalid line in acl_file \"/acl\": \ttopic read x",
        ),
        (
            "Topic read x",
            "Invalid line in acl_file \"/acl\": Topic read x",
        ),
        (
            "topic READ x",
            "Invalid topic access type \"READ\" in acl_file \"/acl\"",
        ),
    ];
    for (line, message) in cases {
        let text = format!("# header\n\nuser u\n{line}\ntopic read fine\n");
        let error = AclFile::parse(Path::new("/acl"), &text).unwrap_err();
        assert_eq!(
            (error.line, error.message.as_str()),
            (4, *message),
            "{line:?}"
        );
    }
    let deep = format!("topic read {}", "a/".repeat(201) + "a");
    let error = AclFile::parse(Path::new("/acl"), &deep).unwrap_err();
    assert_eq!(error.line, 1);
    assert!(error.message.starts_with("Invalid ACL topic"));
    let error = AclFile::parse(Path::new("/etc/mosquitto/acl"), "topic\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "Error: Empty topic in acl_file \"/etc/mosquitto/acl\". Error found at \
         /etc/mosquitto/acl:1."
    );
}

#[test]
fn line_forms_mosquitto_accepts() {
    let file = parse(
        "  topic   read    spaced/topic   \r\n\
         topic deny\n\
         user  john doe \n\
         topic write j/#\n\
         #topic read commented\n\
         \x20\x20\n",
    );
    assert!(
        file.check(Read, b"c", None, b"spaced/topic"),
        "leading spaces and CRLF"
    );
    assert!(
        file.check(Write, b"c", None, b"deny"),
        "`topic deny` alone is the topic \"deny\" with readwrite"
    );
    assert!(
        file.check(Write, b"c", Some(b"john doe"), b"j/1"),
        "usernames may hold spaces"
    );
    assert!(!file.check(Read, b"c", None, b"commented"));
    assert!(file.warnings().is_empty(), "{:?}", file.warnings());
}

#[test]
fn warnings_for_patterns_without_substitution_and_topics_with_one() {
    let file = parse("pattern read nosubst\nuser u\ntopic read t/%u\n");
    assert_eq!(
        file.warnings(),
        [
            "Warning: ACL pattern 'nosubst' does not contain '%c' or '%u'.",
            "Warning: ACL topic 't/%u' on line 3 of acl_file \"/acl\" contains '%c' or '%u', \
             which only 'pattern' lines substitute.",
        ]
    );
    assert!(
        file.check(Read, b"anyone", None, b"nosubst"),
        "the pattern still applies (transcript: exit=0)"
    );
}

#[test]
fn latin1_comments_load_from_disk() {
    let dir = std::env::temp_dir().join(format!("culex-authfile-acl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("acl");
    std::fs::write(&path, b"# Zugriffsrechte f\xfcr G\xe4ste\ntopic read g/#\n").unwrap();
    let file = AclFile::load(&path).unwrap();
    assert!(file.check(Read, b"c", None, b"g/1"));
    let missing = AclFile::load(&dir.join("none")).unwrap_err();
    assert!(
        missing.message.starts_with("Unable to open acl_file \""),
        "{missing}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
