//! Tests of `culex ha`'s argument parsing, the JSON it sends (compared with the product
//! documentation's examples byte for byte, whitespace aside) and its printed output.

use super::*;

fn run(args: &[&str]) -> Result<Parsed, UsageError> {
    parse(args.iter().map(OsString::from), "test-client".to_owned())
}

fn invocation(args: &[&str]) -> Invocation {
    match run(args) {
        Ok(Parsed::Run(invocation)) => *invocation,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn action(args: &[&str]) -> Action {
    invocation(args).action
}

fn usage_text(args: &[&str]) -> String {
    match run(args) {
        Err(UsageError(text)) => text,
        other => panic!("{args:?}: {other:?}"),
    }
}

/// JSON text without the whitespace outside strings.
fn minify(text: &str) -> String {
    let mut out = String::new();
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if !c.is_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// The JSON `culex ha` sends for these arguments, without the correlationData.
fn sent(args: &[&str]) -> String {
    let object = command_object(&action(args));
    String::from_utf8(to_compact(&Out::Object(vec![(
        "commands",
        Out::Array(vec![object]),
    )])))
    .unwrap()
}

const SEED_NODES: [&str; 6] = [
    "--node",
    "1@192.168.1.1:7000",
    "--node",
    "2@192.168.1.2:7000",
    "--node",
    "3@192.168.1.3:7000",
];

fn with_nodes(head: &[&'static str], tail: &[&'static str]) -> Vec<&'static str> {
    head.iter()
        .chain(SEED_NODES.iter())
        .chain(tail)
        .copied()
        .collect()
}

// The product documentation's examples ("Control API for Cluster"), as printed there.

const SEED_CREATE: &str = r#"{
"commands": [
{
"command": "createCluster",
"clustername": "name",
"nodes": [
{ "address": "192.168.1.1", "port": 7000, "nodeid": 1, "mynode": true },
{ "address": "192.168.1.2", "port": 7000, "nodeid": 2 },
{ "address": "192.168.1.3", "port": 7000, "nodeid": 3 }
]
}
]
}"#;

const SEED_JOIN: &str = r#"{
"commands": [
{
"command": "joinCluster",
"clustername": "name",
"nodes": [
{ "address": "192.168.1.1", "port": 7000, "nodeid": 1 },
{ "address": "192.168.1.2", "port": 7000, "nodeid": 2, "mynode": true },
{ "address": "192.168.1.3", "port": 7000, "nodeid": 3 }
]
}
]
}"#;

const SEED_ADD: &str = r#"{
"commands": [
{
"command": "addNode",
"clustername": "name",
"address": "192.168.1.4",
"port": 7000,
"nodeid": 4
}
]
}"#;

const SEED_REMOVE: &str = r#"{
"commands": [
{
"command": "removeNode",
"clustername": "name",
"address": "192.168.1.2",
"port": 7000,
"nodeid": 2
}
]
}"#;

const SEED_LEAVE: &str = r#"{
"commands": [
{
"command": "leaveCluster",
"clustername": "name",
"address": "192.168.1.2",
"port": 7000,
"nodeid": 2
}
]
}"#;

const SEED_DELETE: &str = r#"{
"commands": [
{
"command": "deleteCluster",
"clustername": "name"
}
]
}"#;

const SEED_GET_CLUSTER: &str = r#"{
"commands": [
{
"command": "getCluster"
}
]
}"#;

const SEED_GET_NODE: &str = r#"{
"commands": [
{
"command": "getNode"
}
]
}"#;

const SEED_SET_LEADER: &str = r#"{
"commands": [
{
"command": "setLeader",
"nodeid": 4
}
]
}"#;

#[test]
fn json_equals_the_documentation_examples() {
    let create = with_nodes(&["create", "--name", "name"], &["--mine", "1"]);
    assert_eq!(sent(&create), minify(SEED_CREATE));
    let join = with_nodes(&["join", "--name", "name"], &["--mine", "2"]);
    assert_eq!(sent(&join), minify(SEED_JOIN));
    let cases: [(&[&str], &str); 7] = [
        (
            &["add", "--name", "name", "--node", "4@192.168.1.4:7000"],
            SEED_ADD,
        ),
        (
            &["remove", "--name", "name", "--node", "2@192.168.1.2:7000"],
            SEED_REMOVE,
        ),
        (
            &["leave", "--node", "2@192.168.1.2:7000", "--name", "name"],
            SEED_LEAVE,
        ),
        (&["delete", "--name", "name"], SEED_DELETE),
        (&["status"], SEED_GET_CLUSTER),
        (&["node"], SEED_GET_NODE),
        (&["leader", "4"], SEED_SET_LEADER),
    ];
    for (args, seed) in cases {
        assert_eq!(sent(args), minify(seed), "{args:?}");
    }
}

#[test]
fn json_of_the_commands_without_an_example() {
    assert_eq!(
        sent(&["raft-status"]),
        r#"{"commands":[{"command":"getRaftStatus"}]}"#
    );
    assert_eq!(
        sent(&["is-leader"]),
        r#"{"commands":[{"command":"isLeader"}]}"#
    );
    let dynsec = with_nodes(
        &["create", "--sync", "dynsec", "--name", "c1"],
        &["--mine", "3"],
    );
    assert_eq!(
        sent(&dynsec),
        concat!(
            r#"{"commands":[{"command":"createCluster","clustername":"c1","nodes":["#,
            r#"{"address":"192.168.1.1","port":7000,"nodeid":1},"#,
            r#"{"address":"192.168.1.2","port":7000,"nodeid":2},"#,
            r#"{"address":"192.168.1.3","port":7000,"nodeid":3,"mynode":true}],"#,
            r#""syncmode":"dynsec"}]}"#
        )
    );
    // IPv6 in brackets on the command line, bare in the JSON; names are escaped.
    assert_eq!(
        sent(&["add", "--name", "a\"b", "--node", "9@[fd00::9]:7001"]),
        concat!(
            r#"{"commands":[{"command":"addNode","clustername":"a\"b","#,
            r#""address":"fd00::9","port":7001,"nodeid":9}]}"#
        )
    );
}

#[test]
fn the_request_carries_the_correlation_data_last() {
    assert_eq!(
        String::from_utf8(request_payload(&Action::Leader { node_id: 2 }, "id-1")).unwrap(),
        r#"{"commands":[{"command":"setLeader","nodeid":2,"correlationData":"id-1"}]}"#
    );
    let a = correlation_data();
    assert!(a.starts_with(&format!("culex-ha-{}-", std::process::id())));
}

#[test]
fn actions_from_arguments() {
    assert_eq!(
        action(&with_nodes(&["create", "--name", "c1"], &["--mine", "2"])),
        Action::Create {
            name: "c1".into(),
            nodes: (1..=3)
                .map(|id| NodeArg {
                    id,
                    address: format!("192.168.1.{id}"),
                    port: 7000,
                })
                .collect(),
            mine: 2,
            sync: None,
        }
    );
    assert_eq!(
        action(&["leave", "--name", "c", "--node", "7@node-7.internal:7100"]),
        Action::Leave {
            name: "c".into(),
            node: NodeArg {
                id: 7,
                address: "node-7.internal".into(),
                port: 7100
            }
        }
    );
    for (sub, expected) in [
        ("status", Action::Status),
        ("node", Action::Node),
        ("raft-status", Action::RaftStatus),
        ("is-leader", Action::IsLeader),
    ] {
        assert_eq!(action(&[sub]), expected);
    }
    assert_eq!(
        action(&["leader", "1023"]),
        Action::Leader { node_id: 1023 }
    );
    assert_eq!(
        action(&["delete", "--name", "x"]).command(),
        "deleteCluster"
    );
}

#[test]
fn connection_options_like_mosquitto_rr() {
    let defaults = invocation(&["status"]);
    assert_eq!(
        defaults.endpoint,
        Endpoint {
            host: "127.0.0.1".into(),
            port: 1885,
            username: None,
            password: None,
            client_id: "test-client".into(),
            protocol: Protocol::V5,
            timeout: Duration::from_secs(10),
        }
    );
    assert!(!defaults.json);
    let all = invocation(&[
        "node", "-h", "10.0.0.2", "-p", "18850", "-u", "admin", "-P", "secret", "-i", "me", "-V",
        "mqttv311", "-W", "3", "--json",
    ]);
    assert_eq!(
        all.endpoint,
        Endpoint {
            host: "10.0.0.2".into(),
            port: 18850,
            username: Some("admin".into()),
            password: Some("secret".into()),
            client_id: "me".into(),
            protocol: Protocol::V311,
            timeout: Duration::from_secs(3),
        }
    );
    assert!(all.json);
    let long = invocation(&[
        "node",
        "--host",
        "10.0.0.2",
        "--port",
        "18850",
        "--username",
        "admin",
        "--pw",
        "secret",
        "--id",
        "me",
        "--protocol-version",
        "311",
        "-W",
        "3",
        "--json",
    ]);
    assert_eq!(long, all);
    assert_eq!(
        invocation(&["node", "-V", "5"]).endpoint.protocol,
        Protocol::V5
    );
}

#[test]
fn help() {
    assert_eq!(run(&[]), Ok(Parsed::Help));
    assert_eq!(run(&["--help"]), Ok(Parsed::Help));
    assert_eq!(run(&["help"]), Ok(Parsed::Help));
    assert_eq!(run(&["create", "--help"]), Ok(Parsed::Help));
    let text = usage();
    for needle in [
        "create --name CLUSTER --node ID@ADDRESS:PORT ... --mine ID [--sync full|dynsec]",
        "leader ID",
        "-h HOST",
        "default 1885",
        "Exit status: 0 success, 1",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    assert!(text.lines().all(|l| l.len() <= 90), "{text}");
}

#[test]
fn usage_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["bogus"], "unknown command 'bogus'"),
        (&["status", "--bogus"], "unknown option '--bogus'"),
        (&["status", "extra"], "unexpected argument 'extra'"),
        (
            &["leader"],
            "'culex ha leader' needs the new leader's node id",
        ),
        (&["leader", "2", "3"], "unexpected argument '3'"),
        (
            &["leader", "0"],
            "culex ha leader: '0' is not a node id (1 to 1023)",
        ),
        (
            &["leader", "1024"],
            "culex ha leader: '1024' is not a node id (1 to 1023)",
        ),
        (&["status", "-p"], "-p needs a value"),
        (&["status", "-p", "0"], "-p: '0' is not a port (1 to 65535)"),
        (
            &["status", "-p", "65536"],
            "-p: '65536' is not a port (1 to 65535)",
        ),
        (
            &["status", "-V", "4"],
            "-V must be mqttv5 or mqttv311, not '4'",
        ),
        (
            &["status", "-W", "0"],
            "-W: '0' is not a number of seconds (1 to 3600)",
        ),
        (
            &["status", "-W", "1.5"],
            "-W: '1.5' is not a number of seconds (1 to 3600)",
        ),
        (
            &["status", "--name", "c"],
            "--name does not apply to 'culex ha status'",
        ),
        (
            &["delete", "--name", "c", "--node", "1@a:1"],
            "--node does not apply to 'culex ha delete'",
        ),
        (
            &["join", "--sync", "full"],
            "--sync does not apply to 'culex ha join'",
        ),
        (&["delete"], "'culex ha delete' needs --name CLUSTER"),
        (
            &["add", "--name", "c"],
            "'culex ha add' needs --node ID@ADDRESS:PORT",
        ),
        (
            &[
                "remove", "--name", "c", "--node", "1@a:1", "--node", "2@b:1",
            ],
            "'culex ha remove' takes one --node",
        ),
        (
            &["create", "--name", "c", "--mine", "1"],
            "'culex ha create' needs every node of the cluster: --node ID@ADDRESS:PORT for each",
        ),
        (
            &["create", "--name", "c", "--node", "1@a:1"],
            "'culex ha create' needs --mine ID: the node this command is sent to",
        ),
        (
            &["join", "--name", "c", "--node", "1@a:1", "--mine", "2"],
            "--mine 2 is not one of the --node ids",
        ),
        (
            &["create", "--sync", "partial"],
            "--sync must be full or dynsec, not 'partial'",
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(usage_text(args), *expected, "{args:?}");
    }
    for bad in [
        "192.168.1.1:7000",
        "1@192.168.1.1",
        "1@:7000",
        "1@fd00::1:7000",
        "1@[fd00::1:7000",
        "x@a:1",
    ] {
        assert!(
            usage_text(&["add", "--name", "c", "--node", bad]).contains("--node"),
            "{bad}"
        );
    }
    assert_eq!(
        usage_text(&["add", "--name", "c", "--node", "1@a:0"]),
        "--node '1@a:0': '0' is not a port (1 to 65535)"
    );
    assert_eq!(
        usage_text(&["add", "--name", "c", "--node", "0@a:1"]),
        "--node '0@a:1': '0' is not a node id (1 to 1023)"
    );
    assert_eq!(
        UsageError("x".into()).to_string(),
        "Error: x",
        "printed with the Error: prefix"
    );
}

// ---------------------------------------------------------------------------------------
// Printed output
// ---------------------------------------------------------------------------------------

fn entry(payload: &str) -> Value {
    client::matching_entry(payload.as_bytes(), b"c").expect("an entry with correlationData c")
}

fn human_of(command: &str, payload: &str) -> String {
    print::human(command, &entry(payload), payload.as_bytes())
}

#[test]
fn prints_get_cluster_as_a_table() {
    let payload = concat!(
        r#"{"responses":[{"command":"getCluster","data":{"clustername":"name","#,
        r#""syncmode":"full","state":"degraded","leader":1,"term":3,"commitIndex":120,"#,
        r#""nodes":[{"nodeid":1,"address":"192.168.1.1","port":7000,"role":"leader","#,
        r#""leader":true,"online":true,"log_index":120,"lag":0},"#,
        r#"{"nodeid":4,"address":"fd00::4","port":7001,"role":"learner","#,
        r#""leader":false,"online":false,"log_index":20,"lag":100}]},"#,
        r#""correlationData":"c"}]}"#
    );
    assert_eq!(
        human_of("getCluster", payload),
        "Cluster      name (syncmode full), degraded\n\
         Leader       node 1, term 3, commit index 120\n\
         \n\
         NODE   ADDRESS                  ROLE       LEADER  ONLINE   LOG INDEX      LAG\n\
         1      192.168.1.1:7000         leader     yes     yes            120        0\n\
         4      [fd00::4]:7001           learner    no      no              20      100\n"
    );
}

#[test]
fn prints_get_node_member_and_standalone() {
    let member = concat!(
        r#"{"responses":[{"command":"getNode","data":{"nodeid":2,"address":"192.168.1.2","#,
        r#""port":7000,"clustername":"name","syncmode":"dynsec","role":"follower","leader":1,"#,
        r#""term":5,"lastLogIndex":42,"appliedIndex":41,"clientListenersOpen":true},"#,
        r#""correlationData":"c"}]}"#
    );
    assert_eq!(
        human_of("getNode", member),
        "Node               2 (192.168.1.2:7000)\n\
         Cluster            name (syncmode dynsec)\n\
         Role               follower\n\
         Leader             node 1\n\
         Term               5\n\
         Last log index     42\n\
         Applied index      41\n\
         Client listeners   open\n"
    );
    let standalone = concat!(
        r#"{"responses":[{"command":"getRaftStatus","data":{"role":"standalone","term":0,"#,
        r#""lastLogIndex":0,"appliedIndex":0,"clientListenersOpen":false},"#,
        r#""correlationData":"c"}]}"#
    );
    assert_eq!(
        human_of("getRaftStatus", standalone),
        "Cluster            none (standalone)\n\
         Role               standalone\n\
         Leader             none known\n\
         Term               0\n\
         Last log index     0\n\
         Applied index      0\n\
         Client listeners   closed\n"
    );
}

#[test]
fn prints_is_leader_done_and_unknown_shapes() {
    let leader =
        r#"{"responses":[{"command":"isLeader","data":{"leader":true},"correlationData":"c"}]}"#;
    assert_eq!(human_of("isLeader", leader), "This node is the leader.\n");
    let follower = leader.replace("true", "false");
    assert_eq!(
        human_of("isLeader", &follower),
        "This node is not the leader.\n"
    );
    let done = r#"{"responses":[{"command":"createCluster","correlationData":"c"}]}"#;
    assert_eq!(human_of("createCluster", done), "createCluster: done\n");
    // A data object of another shape is shown as received.
    let odd = r#"{"responses":[{"command":"getNode","data":{"role":7},"correlationData":"c"}]}"#;
    assert_eq!(human_of("getNode", odd), format!("{odd}\n"));
}

#[test]
fn matching_entry_needs_the_same_correlation_data() {
    let payload = concat!(
        r#"{"responses":[{"command":"getNode","error":"x","correlationData":"other"},"#,
        r#"{"command":"getNode","error":"y","correlationData":"c"}]}"#
    );
    let found = entry(payload);
    assert_eq!(
        found.get("error").and_then(Value::as_bytes),
        Some(&b"y"[..])
    );
    assert!(client::matching_entry(payload.as_bytes(), b"none").is_none());
    assert!(client::matching_entry(b"not json", b"c").is_none());
    assert!(client::matching_entry(br#"{"responses":{}}"#, b"c").is_none());
}
