//! Tests of the control API's parsing and rendering: the seed's examples, every command,
//! every field check, the envelope cases, byte-exact responses, and a property test that
//! no input panics the parser.

use super::*;
use proptest::prelude::*;

/// The seed's createCluster example, as printed on the product page.
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

/// The seed's joinCluster example.
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

fn node(id: u16, mine: bool) -> NodeSpec {
    NodeSpec {
        address: format!("192.168.1.{id}"),
        port: 7000,
        node_id: id,
        mine,
    }
}

/// The single entry a payload parses to.
fn single(payload: &str) -> Parsed {
    let mut parsed = parse_request(payload.as_bytes());
    assert_eq!(parsed.len(), 1, "{payload}: {parsed:?}");
    parsed.remove(0)
}

/// The command of a one-command request (without correlationData).
fn command(payload: &str) -> Command {
    match single(payload) {
        Parsed::Command(Request {
            command,
            correlation: None,
        }) => command,
        other => panic!("{payload}: {other:?}"),
    }
}

/// The error text of a one-element request that is refused.
fn error(payload: &str) -> String {
    match single(payload) {
        Parsed::Error(Response {
            outcome: Outcome::Error(text),
            ..
        }) => text,
        other => panic!("{payload}: {other:?}"),
    }
}

/// The error for the one command object `command` (wrapped in the envelope).
fn command_error(command: &str) -> String {
    error(&format!(r#"{{"commands":[{command}]}}"#))
}

/// Renders the responses of a request whose elements all are refused by the parser.
fn rendered_errors(payload: &str) -> String {
    let responses: Vec<Response> = parse_request(payload.as_bytes())
        .into_iter()
        .map(|parsed| match parsed {
            Parsed::Error(response) => response,
            Parsed::Command(request) => Response::done(&request),
        })
        .collect();
    String::from_utf8(render(&responses)).unwrap()
}

const NODES3: &str = r#"[{"address":"192.168.1.1","port":7000,"nodeid":1,"mynode":true},
    {"address":"192.168.1.2","port":7000,"nodeid":2},
    {"address":"192.168.1.3","port":7000,"nodeid":3}]"#;

fn create_with_nodes(nodes: &str) -> String {
    command_error(&format!(
        r#"{{"command":"createCluster","clustername":"c","nodes":{nodes}}}"#
    ))
}

// ---------------------------------------------------------------------------------------
// The seed's examples and every command
// ---------------------------------------------------------------------------------------

#[test]
fn seed_create_cluster() {
    let parsed = command(SEED_CREATE);
    assert_eq!(
        parsed,
        Command::CreateCluster {
            name: "name".into(),
            nodes: vec![node(1, true), node(2, false), node(3, false)],
            sync: SyncMode::Full,
        }
    );
    assert_eq!(parsed.my_node(), Some(&node(1, true)));
    assert!(!parsed.leader_only() && parsed.changes_cluster());
}

#[test]
fn seed_join_cluster() {
    let parsed = command(SEED_JOIN);
    assert_eq!(
        parsed,
        Command::JoinCluster {
            name: "name".into(),
            nodes: vec![node(1, false), node(2, true), node(3, false)],
        }
    );
    assert_eq!(parsed.my_node(), Some(&node(2, true)));
    assert!(!parsed.leader_only());
}

#[test]
fn seed_single_node_commands() {
    let fields = r#""clustername":"name","address":"192.168.1.4","port":7000,"nodeid":4"#;
    for (name, expected) in [
        (
            "addNode",
            Command::AddNode {
                name: "name".into(),
                node_id: 4,
                address: "192.168.1.4".into(),
                port: 7000,
            },
        ),
        (
            "removeNode",
            Command::RemoveNode {
                name: "name".into(),
                node_id: 4,
                address: "192.168.1.4".into(),
                port: 7000,
            },
        ),
        (
            "leaveCluster",
            Command::LeaveCluster {
                name: "name".into(),
                node_id: 4,
                address: "192.168.1.4".into(),
                port: 7000,
            },
        ),
    ] {
        let parsed = command(&format!(
            r#"{{"commands":[{{"command":"{name}",{fields}}}]}}"#
        ));
        assert_eq!(parsed, expected);
        assert_eq!(parsed.name(), name);
        assert_eq!(parsed.leader_only(), name != "leaveCluster");
        assert!(parsed.changes_cluster());
        assert_eq!(parsed.my_node(), None);
    }
}

#[test]
fn seed_delete_get_and_set_leader() {
    let delete = command(r#"{"commands":[{"command":"deleteCluster","clustername":"name"}]}"#);
    assert_eq!(
        delete,
        Command::DeleteCluster {
            name: "name".into()
        }
    );
    assert!(delete.leader_only() && delete.changes_cluster());
    let set = command(r#"{"commands":[{"command":"setLeader","nodeid":4}]}"#);
    assert_eq!(set, Command::SetLeader { node_id: 4 });
    assert!(set.leader_only() && set.changes_cluster());
    for (name, expected, leader_only) in [
        ("getCluster", Command::GetCluster, true),
        ("getNode", Command::GetNode, false),
        ("getRaftStatus", Command::GetRaftStatus, false),
        ("isLeader", Command::IsLeader, false),
    ] {
        let parsed = command(&format!(r#"{{"commands":[{{"command":"{name}"}}]}}"#));
        assert_eq!(parsed, expected);
        assert_eq!(parsed.name(), name);
        assert_eq!(parsed.leader_only(), leader_only);
        assert!(!parsed.changes_cluster());
    }
}

#[test]
fn every_name_is_listed_and_canonical() {
    assert_eq!(COMMAND_NAMES.len(), 11);
    for name in COMMAND_NAMES {
        assert_eq!(
            Command::canonical(name.to_uppercase().as_bytes()),
            Some(*name)
        );
    }
}

#[test]
fn syncmode_full_default_or_dynsec() {
    let create = |sync: &str| {
        command(&format!(
            concat!(
                r#"{{"commands":[{{"command":"createCluster","clustername":"c","#,
                r#""nodes":{NODES3}{sync}}}]}}"#
            ),
            NODES3 = NODES3,
            sync = sync
        ))
    };
    let sync_of = |c: Command| match c {
        Command::CreateCluster { sync, .. } => sync,
        other => panic!("{other:?}"),
    };
    assert_eq!(sync_of(create("")), SyncMode::Full);
    assert_eq!(sync_of(create(r#","syncmode":"full""#)), SyncMode::Full);
    assert_eq!(sync_of(create(r#","syncmode":"dynsec""#)), SyncMode::Dynsec);
    assert_eq!(sync_of(create(r#","SyncMode":"DynSec""#)), SyncMode::Dynsec);
    for bad in [r#""partial""#, r#""""#, "1", "null", "true", r#"["full"]"#] {
        assert_eq!(
            command_error(&format!(
                concat!(
                    r#"{{"command":"createCluster","clustername":"c","nodes":{NODES3},"#,
                    r#""syncmode":{bad}}}"#
                ),
                NODES3 = NODES3,
                bad = bad
            )),
            r#"Invalid syncmode: must be "full" or "dynsec""#,
            "{bad}"
        );
    }
}

#[test]
fn keys_and_names_match_case_insensitively_like_cjson() {
    assert_eq!(
        command(r#"{"Commands":[{"COMMAND":"SETLEADER","NodeId":7}]}"#),
        Command::SetLeader { node_id: 7 }
    );
    // A node entry's keys too, and a whole number written with a fraction or exponent.
    assert_eq!(
        command(
            r#"{"commands":[{"command":"joinCluster","ClusterName":"c","Nodes":[
            {"Address":"a","Port":7000.0,"NodeID":1,"MyNode":true},
            {"address":"b","port":7e3,"nodeid":2},{"address":"c","port":7000,"nodeid":3}]}]}"#
        ),
        Command::JoinCluster {
            name: "c".into(),
            nodes: ["a", "b", "c"]
                .iter()
                .zip(1..)
                .map(|(address, id)| NodeSpec {
                    address: (*address).into(),
                    port: 7000,
                    node_id: id,
                    mine: id == 1,
                })
                .collect(),
        }
    );
}

#[test]
fn addresses_host_names_and_ipv6_literals() {
    for address in [
        "node-1.example.internal",
        "fd00::1",
        "fe80::1%eth0",
        "broker_2",
        "10.0.0.1",
    ] {
        let parsed = command(&format!(
            concat!(
                r#"{{"commands":[{{"command":"addNode","clustername":"c","address":"{address}","#,
                r#""port":7000,"nodeid":9}}]}}"#
            ),
            address = address
        ));
        assert!(matches!(parsed, Command::AddNode { address: a, .. } if a == address));
    }
}

// ---------------------------------------------------------------------------------------
// Field errors
// ---------------------------------------------------------------------------------------

const NAME_RULE: &str = "must be a non-empty string of printable UTF-8, at most 255 bytes";
const ADDRESS_RULE: &str = "must be a host name or IP address (letters, digits and . - _ : %, \
                            at most 253 characters)";
const PORT_RULE: &str = "must be an integer from 1 to 65535";
const ID_RULE: &str = "must be an integer from 1 to 1023";

#[test]
fn clustername_errors_in_every_command_that_has_one() {
    let rest = [
        ("createCluster", format!(r#","nodes":{NODES3}"#)),
        ("joinCluster", format!(r#","nodes":{NODES3}"#)),
        (
            "addNode",
            r#","address":"a","port":1,"nodeid":1"#.to_owned(),
        ),
        (
            "removeNode",
            r#","address":"a","port":1,"nodeid":1"#.to_owned(),
        ),
        (
            "leaveCluster",
            r#","address":"a","port":1,"nodeid":1"#.to_owned(),
        ),
        ("deleteCluster", String::new()),
    ];
    for (name, rest) in &rest {
        assert_eq!(
            command_error(&format!(r#"{{"command":"{name}"{rest}}}"#)),
            "Missing clustername",
            "{name}"
        );
        let long = "x".repeat(256);
        for bad in [
            r#""""#,
            "5",
            "null",
            "false",
            "{}",
            "[]",
            r#""tab\there""#,
            r#""\u0001""#,
            &format!(r#""{long}""#),
        ] {
            assert_eq!(
                command_error(&format!(
                    r#"{{"command":"{name}","clustername":{bad}{rest}}}"#
                )),
                format!("Invalid clustername: {NAME_RULE}"),
                "{name} {bad}"
            );
        }
        let ok =
            format!(r#"{{"commands":[{{"command":"{name}","clustername":"é ü 255"{rest}}}]}}"#);
        assert!(matches!(single(&ok), Parsed::Command(_)), "{name}");
    }
    // Invalid UTF-8 bytes in the raw payload.
    let mut raw = br#"{"commands":[{"command":"deleteCluster","clustername":""#.to_vec();
    raw.extend_from_slice(b"\xff\xfe\"}]}");
    assert!(matches!(
        &parse_request(&raw)[..],
        [Parsed::Error(Response { outcome: Outcome::Error(text), .. })]
            if *text == format!("Invalid clustername: {NAME_RULE}")
    ));
}

#[test]
fn single_node_field_errors() {
    for name in ["addNode", "removeNode", "leaveCluster"] {
        let with = |fields: &str| {
            command_error(&format!(
                r#"{{"command":"{name}","clustername":"c"{fields}}}"#
            ))
        };
        assert_eq!(with(r#","port":1,"nodeid":1"#), "Missing address");
        assert_eq!(with(r#","address":"a","nodeid":1"#), "Missing port");
        assert_eq!(with(r#","address":"a","port":1"#), "Missing nodeid");
        for bad in [
            r#""""#,
            "1",
            "null",
            r#""a b""#,
            r#""a/b""#,
            r#""[::1]""#,
            r#""é""#,
        ] {
            assert_eq!(
                with(&format!(r#","address":{bad},"port":1,"nodeid":1"#)),
                format!("Invalid address: {ADDRESS_RULE}"),
                "{bad}"
            );
        }
        let long = "a".repeat(254);
        assert_eq!(
            with(&format!(r#","address":"{long}","port":1,"nodeid":1"#)),
            format!("Invalid address: {ADDRESS_RULE}")
        );
        for bad in [
            "0",
            "65536",
            "-1",
            "1.5",
            r#""7000""#,
            "null",
            "true",
            "1e300",
        ] {
            assert_eq!(
                with(&format!(r#","address":"a","port":{bad},"nodeid":1"#)),
                format!("Invalid port: {PORT_RULE}"),
                "{bad}"
            );
        }
        for bad in ["0", "1024", "-3", "2.5", r#""4""#, "null", "[4]"] {
            assert_eq!(
                with(&format!(r#","address":"a","port":1,"nodeid":{bad}"#)),
                format!("Invalid nodeid: {ID_RULE}"),
                "{bad}"
            );
        }
        // Both ends of each range are accepted.
        let ok = format!(
            concat!(
                r#"{{"commands":[{{"command":"{name}","clustername":"c","address":"a","#,
                r#""port":65535,"nodeid":1023}}]}}"#
            ),
            name = name
        );
        assert!(matches!(single(&ok), Parsed::Command(_)));
        let ok = ok.replace("65535", "1").replace("1023", "1");
        assert!(matches!(single(&ok), Parsed::Command(_)));
        // mynode belongs to node lists only.
        assert_eq!(
            with(r#","address":"a","port":1,"nodeid":1,"mynode":true"#),
            "Unknown field 'mynode'"
        );
    }
}

#[test]
fn set_leader_field_errors() {
    assert_eq!(
        command_error(r#"{"command":"setLeader"}"#),
        "Missing nodeid"
    );
    for bad in ["0", "1024", "\"4\"", "4.5", "null"] {
        assert_eq!(
            command_error(&format!(r#"{{"command":"setLeader","nodeid":{bad}}}"#)),
            format!("Invalid nodeid: {ID_RULE}")
        );
    }
}

#[test]
fn node_list_errors() {
    assert_eq!(
        command_error(r#"{"command":"createCluster","clustername":"c"}"#),
        "Missing nodes"
    );
    assert_eq!(
        command_error(r#"{"command":"joinCluster","clustername":"c"}"#),
        "Missing nodes"
    );
    for bad in ["{}", "null", "3", r#""1,2,3""#] {
        assert_eq!(
            create_with_nodes(bad),
            "Invalid nodes: must be an array of node objects"
        );
    }
    assert_eq!(
        create_with_nodes(r#"[{"address":"a","port":1,"nodeid":1,"mynode":true}, 5]"#),
        "Invalid nodes[1]: must be an object"
    );
    let entry_error = |entry: &str| {
        create_with_nodes(&format!(
            r#"[{{"address":"a","port":1,"nodeid":1,"mynode":true}}, {entry}]"#
        ))
    };
    assert_eq!(
        entry_error(r#"{"port":1,"nodeid":2}"#),
        "Missing nodes[1].address"
    );
    assert_eq!(
        entry_error(r#"{"address":"b","nodeid":2}"#),
        "Missing nodes[1].port"
    );
    assert_eq!(
        entry_error(r#"{"address":"b","port":1}"#),
        "Missing nodes[1].nodeid"
    );
    assert_eq!(
        entry_error(r#"{"address":"","port":1,"nodeid":2}"#),
        format!("Invalid nodes[1].address: {ADDRESS_RULE}")
    );
    assert_eq!(
        entry_error(r#"{"address":"b","port":70000,"nodeid":2}"#),
        format!("Invalid nodes[1].port: {PORT_RULE}")
    );
    assert_eq!(
        entry_error(r#"{"address":"b","port":1,"nodeid":1024}"#),
        format!("Invalid nodes[1].nodeid: {ID_RULE}")
    );
    assert_eq!(
        entry_error(r#"{"address":"b","port":1,"nodeid":2,"mynode":"yes"}"#),
        "Invalid nodes[1].mynode: must be true or false"
    );
    assert_eq!(
        entry_error(r#"{"address":"b","port":1,"nodeid":2,"weight":3}"#),
        "Unknown field 'nodes[1].weight'"
    );
    assert_eq!(
        entry_error(r#"{"address":"b","port":1,"nodeid":2,"NodeId":3}"#),
        "Duplicate field 'nodes[1].nodeid'"
    );
    assert_eq!(
        entry_error(r#"{"address":"b","port":1,"nodeid":1}"#),
        "Invalid nodes: node id 1 is listed twice"
    );
    assert_eq!(
        entry_error(r#"{"address":"A","port":1,"nodeid":2}"#),
        "Invalid nodes: A:1 is listed twice"
    );
    // The same address on another port, and another address on the same port, are fine
    // for uniqueness (the size check then speaks).
    assert_eq!(
        entry_error(r#"{"address":"a","port":2,"nodeid":2}"#),
        "Invalid nodes: a cluster needs at least 3 nodes, 2 given"
    );
    assert_eq!(
        create_with_nodes(
            r#"[{"address":"fd00::1","port":1,"nodeid":1},
            {"address":"FD00::1","port":1,"nodeid":2}]"#
        ),
        "Invalid nodes: [FD00::1]:1 is listed twice"
    );
}

#[test]
fn node_list_size_and_mynode() {
    for name in ["createCluster", "joinCluster"] {
        let with = |nodes: &str| {
            command_error(&format!(
                r#"{{"command":"{name}","clustername":"c","nodes":{nodes}}}"#
            ))
        };
        assert_eq!(
            with("[]"),
            "Invalid nodes: a cluster needs at least 3 nodes, 0 given"
        );
        assert_eq!(
            with(
                r#"[{"address":"a","port":1,"nodeid":1,"mynode":true},
                {"address":"b","port":1,"nodeid":2}]"#
            ),
            "Invalid nodes: a cluster needs at least 3 nodes, 2 given"
        );
        let three = |m1: &str, m2: &str, m3: &str| {
            with(&format!(
                r#"[{{"address":"a","port":1,"nodeid":1{m1}}},
                {{"address":"b","port":1,"nodeid":2{m2}}},
                {{"address":"c","port":1,"nodeid":3{m3}}}]"#
            ))
        };
        let rule = |n: usize| {
            format!(
                "Invalid nodes: exactly one node must have \"mynode\": true (the node \
                 receiving this command), {n} have"
            )
        };
        assert_eq!(three("", "", ""), rule(0));
        assert_eq!(
            three(r#","mynode":false"#, "", r#","mynode":false"#),
            rule(0)
        );
        assert_eq!(three(r#","mynode":true"#, "", r#","mynode":true"#), rule(2));
        assert_eq!(
            three(
                r#","mynode":true"#,
                r#","mynode":true"#,
                r#","mynode":true"#
            ),
            rule(3)
        );
    }
    // A larger cluster (the seed's fourth node joining) is fine.
    let four = r#"{"commands":[{"command":"joinCluster","clustername":"name","nodes":[
        {"address":"192.168.1.1","port":7000,"nodeid":1},
        {"address":"192.168.1.2","port":7000,"nodeid":2},
        {"address":"192.168.1.3","port":7000,"nodeid":3},
        {"address":"192.168.1.4","port":7000,"nodeid":4,"mynode":true}]}]}"#;
    assert_eq!(command(four).my_node(), Some(&node(4, true)));
}

#[test]
fn unknown_and_duplicate_fields() {
    assert_eq!(
        command_error(r#"{"command":"getCluster","verbose":true}"#),
        "Unknown field 'verbose'"
    );
    assert_eq!(
        command_error(r#"{"command":"isLeader","nodeid":1}"#),
        "Unknown field 'nodeid'"
    );
    assert_eq!(
        command_error(r#"{"command":"getNode","x":1,"y":2}"#),
        "Unknown field 'x'"
    );
    assert_eq!(
        command_error(r#"{"command":"getRaftStatus","":1}"#),
        "Unknown field ''"
    );
    assert_eq!(
        command_error(r#"{"command":"deleteCluster","clustername":"c","nodes":[]}"#),
        "Unknown field 'nodes'"
    );
    assert_eq!(
        command_error(r#"{"command":"setLeader","nodeid":1,"address":"a"}"#),
        "Unknown field 'address'"
    );
    // joinCluster takes no syncmode: the cluster already has one.
    assert_eq!(
        command_error(&format!(
            r#"{{"command":"joinCluster","clustername":"c","nodes":{NODES3},"syncmode":"full"}}"#
        )),
        "Unknown field 'syncmode'"
    );
    // Unknown keys are reported before missing fields, first in document order.
    assert_eq!(
        command_error(r#"{"command":"deleteCluster","name":"c"}"#),
        "Unknown field 'name'"
    );
    // A repeated key, in any spelling, is refused rather than resolved silently.
    assert_eq!(
        command_error(r#"{"command":"setLeader","nodeid":1,"NODEID":2}"#),
        "Duplicate field 'nodeid'"
    );
    assert_eq!(
        command_error(r#"{"command":"getNode","command":"isLeader"}"#),
        "Duplicate field 'command'"
    );
    assert_eq!(
        command_error(r#"{"command":"getNode","correlationData":"a","correlationdata":"b"}"#),
        "Duplicate field 'correlationData'"
    );
    // A name that is not UTF-8 is shown lossily.
    let raw = b"{\"commands\":[{\"command\":\"getNode\",\"\xff\":1}]}";
    assert!(matches!(
        &parse_request(raw)[..],
        [Parsed::Error(Response { outcome: Outcome::Error(t), .. })]
            if t == "Unknown field '\u{fffd}'"
    ));
}

#[test]
fn field_errors_keep_the_canonical_name_and_correlation() {
    assert_eq!(
        single(r#"{"commands":[{"command":"SETLEADER","nodeid":0,"correlationData":"x"}]}"#),
        Parsed::Error(Response {
            command: b"setLeader".to_vec(),
            correlation: Some(b"x".to_vec()),
            outcome: Outcome::Error(format!("Invalid nodeid: {ID_RULE}")),
        })
    );
}

// ---------------------------------------------------------------------------------------
// Envelope
// ---------------------------------------------------------------------------------------

#[test]
fn envelope_errors_match_dynamic_security() {
    for payload in ["", "not json", "{", r#"{"commands":[}"#, "\0{}"] {
        assert_eq!(
            rendered_errors(payload),
            r#"{"responses":[{"command":"Unknown command","error":"Payload not valid JSON"}]}"#,
            "{payload:?}"
        );
    }
    for payload in [
        "{}",
        "[]",
        r#"[{"commands":[]}]"#,
        r#"{"commands":{}}"#,
        r#"{"commands":"getNode"}"#,
        r#"{"command":"getNode"}"#,
        "5",
        "null",
    ] {
        assert_eq!(
            rendered_errors(payload),
            r#"{"responses":[{"command":"Unknown command","error":"Invalid/missing commands"}]}"#,
            "{payload}"
        );
    }
    assert_eq!(rendered_errors(r#"{"commands":[]}"#), r#"{"responses":[]}"#);
    // Trailing data after the JSON value is ignored, leading whitespace is fine.
    assert_eq!(
        command(" \n{\"commands\":[{\"command\":\"isLeader\"}]} trailing garbage"),
        Command::IsLeader
    );
}

#[test]
fn elements_are_independent_in_order() {
    let payload = r#"{"commands":[
        5,
        {"command":"isLeader","correlationData":"a"},
        {"correlationData":"b"},
        {"command":7,"correlationData":"c"},
        {"command":"getnode"},
        {"command":"bogus","correlationData":"d"},
        {"command":"","correlationData":""},
        {"command":"setLeader","nodeid":3,"correlationData":"e"}
    ]}"#;
    let parsed = parse_request(payload.as_bytes());
    assert_eq!(parsed.len(), 8);
    assert_eq!(
        parsed[1],
        Parsed::Command(Request {
            command: Command::IsLeader,
            correlation: Some(b"a".to_vec())
        })
    );
    assert_eq!(
        parsed[4],
        Parsed::Command(Request {
            command: Command::GetNode,
            correlation: None
        })
    );
    assert_eq!(
        parsed[7],
        Parsed::Command(Request {
            command: Command::SetLeader { node_id: 3 },
            correlation: Some(b"e".to_vec())
        })
    );
    assert_eq!(
        rendered_errors(payload),
        concat!(
            r#"{"responses":["#,
            r#"{"command":"Unknown command","error":"Command not an object"},"#,
            r#"{"command":"isLeader","correlationData":"a"},"#,
            r#"{"command":"Unknown command","error":"Missing command","correlationData":"b"},"#,
            r#"{"command":"Unknown command","error":"Missing command","correlationData":"c"},"#,
            r#"{"command":"getNode"},"#,
            r#"{"command":"bogus","error":"Unknown command","correlationData":"d"},"#,
            r#"{"command":"","error":"Unknown command","correlationData":""},"#,
            r#"{"command":"setLeader","correlationData":"e"}]}"#
        )
    );
}

#[test]
fn non_string_correlation_data_stops_the_request() {
    for bad in ["1", "null", "{}", "[]", "true"] {
        let payload = format!(
            r#"{{"commands":[{{"command":"isLeader","correlationData":"a"}},
            {{"command":"IsLeader","correlationData":{bad}}},{{"command":"getNode"}}]}}"#
        );
        assert_eq!(
            rendered_errors(&payload),
            concat!(
                r#"{"responses":[{"command":"isLeader","correlationData":"a"},"#,
                r#"{"command":"IsLeader","error":"Invalid correlationData data type."}]}"#
            ),
            "{bad}"
        );
    }
}

#[test]
fn correlation_data_is_echoed_verbatim() {
    // Escapes are decoded by the reader and re-escaped the cJSON way by the writer.
    let payload =
        r#"{"commands":[{"command":"isLeader","correlationData":"q\"\\\/\u00e9\n\u0001"}]}"#;
    let Parsed::Command(request) = single(payload) else {
        panic!()
    };
    assert_eq!(
        request.correlation.as_deref(),
        Some("q\"\\/é\n\u{1}".as_bytes())
    );
    assert_eq!(
        String::from_utf8(render(&[Response::data(&request, Data::IsLeader(true))])).unwrap(),
        concat!(
            r#"{"responses":[{"command":"isLeader","data":{"leader":true},"#,
            r#""correlationData":"q\"\\/é\n\u0001"}]}"#
        )
    );
}

// ---------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------

fn request(command: Command, correlation: Option<&str>) -> Request {
    Request {
        command,
        correlation: correlation.map(|c| c.as_bytes().to_vec()),
    }
}

#[test]
fn render_done_and_errors() {
    let create = request(
        Command::CreateCluster {
            name: "c".into(),
            nodes: vec![node(1, true), node(2, false), node(3, false)],
            sync: SyncMode::Dynsec,
        },
        Some("id-1"),
    );
    let add = request(
        Command::AddNode {
            name: "c".into(),
            node_id: 4,
            address: "192.168.1.4".into(),
            port: 7000,
        },
        None,
    );
    let set = request(Command::SetLeader { node_id: 4 }, Some(""));
    let out = render(&[
        Response::done(&create),
        Response::error(&add, not_leader(2, "192.168.1.2", 7000)),
        Response::error(&set, NO_LEADER),
        Response::error(&add, ALREADY_IN_CLUSTER),
    ]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        concat!(
            r#"{"responses":[{"command":"createCluster","correlationData":"id-1"},"#,
            r#"{"command":"addNode","error":"Not the leader: send this command to the leader, "#,
            r#"node 2 (192.168.1.2:7000)"},"#,
            r#"{"command":"setLeader","error":"Not the leader: no leader is known at the "#,
            r#"moment, try again","correlationData":""},"#,
            r#"{"command":"addNode","error":"This node is already in a cluster: send "#,
            r#"leaveCluster or deleteCluster first"}]}"#
        )
    );
    assert_eq!(
        not_leader(3, "fd00::3", 7000),
        "Not the leader: send this command to the leader, node 3 ([fd00::3]:7000)"
    );
}

#[test]
fn render_get_cluster() {
    let info = ClusterInfo {
        name: "name".into(),
        sync: SyncMode::Full,
        state: ClusterState::Degraded,
        leader: Some(1),
        term: 3,
        commit_index: 120,
        nodes: vec![
            ClusterNode {
                node_id: 1,
                address: "192.168.1.1".into(),
                port: 7000,
                role: NodeRole::Leader,
                leader: true,
                online: true,
                log_index: 120,
                lag: 0,
            },
            ClusterNode {
                node_id: 4,
                address: "192.168.1.4".into(),
                port: 7001,
                role: NodeRole::Learner,
                leader: false,
                online: false,
                log_index: 20,
                lag: 100,
            },
        ],
    };
    let response = Response::data(
        &request(Command::GetCluster, Some("c1")),
        Data::Cluster(info.clone()),
    );
    assert_eq!(
        String::from_utf8(render(&[response])).unwrap(),
        concat!(
            r#"{"responses":[{"command":"getCluster","data":{"clustername":"name","#,
            r#""syncmode":"full","state":"degraded","leader":1,"term":3,"commitIndex":120,"#,
            r#""nodes":[{"nodeid":1,"address":"192.168.1.1","port":7000,"role":"leader","#,
            r#""leader":true,"online":true,"log_index":120,"lag":0},"#,
            r#"{"nodeid":4,"address":"192.168.1.4","port":7001,"role":"learner","#,
            r#""leader":false,"online":false,"log_index":20,"lag":100}]},"#,
            r#""correlationData":"c1"}]}"#
        )
    );
    // Without a leader the key is left out.
    let leaderless = ClusterInfo {
        leader: None,
        state: ClusterState::Inactive,
        sync: SyncMode::Dynsec,
        nodes: vec![],
        ..info
    };
    let response = Response::data(
        &request(Command::GetCluster, None),
        Data::Cluster(leaderless),
    );
    assert_eq!(
        String::from_utf8(render(&[response])).unwrap(),
        concat!(
            r#"{"responses":[{"command":"getCluster","data":{"clustername":"name","#,
            r#""syncmode":"dynsec","state":"inactive","term":3,"commitIndex":120,"nodes":[]}}]}"#
        )
    );
}

#[test]
fn render_get_node_member_and_standalone() {
    let member = NodeInfo {
        node_id: Some(2),
        address: Some("192.168.1.2".into()),
        port: Some(7000),
        cluster_name: Some("name".into()),
        sync: Some(SyncMode::Dynsec),
        role: NodeRole::Follower,
        leader: Some(1),
        term: 5,
        last_log_index: 42,
        applied_index: 41,
        client_listeners_open: true,
    };
    let out = render(&[
        Response::data(&request(Command::GetNode, None), Data::Node(member.clone())),
        Response::data(
            &request(Command::GetRaftStatus, Some("r")),
            Data::Node(NodeInfo {
                role: NodeRole::Candidate,
                leader: None,
                client_listeners_open: false,
                ..member
            }),
        ),
        Response::data(
            &request(Command::GetNode, None),
            Data::Node(NodeInfo::standalone(true)),
        ),
        Response::data(&request(Command::IsLeader, None), Data::IsLeader(false)),
    ]);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        concat!(
            r#"{"responses":["#,
            r#"{"command":"getNode","data":{"nodeid":2,"address":"192.168.1.2","port":7000,"#,
            r#""clustername":"name","syncmode":"dynsec","role":"follower","leader":1,"#,
            r#""term":5,"lastLogIndex":42,"appliedIndex":41,"clientListenersOpen":true}},"#,
            r#"{"command":"getRaftStatus","data":{"nodeid":2,"address":"192.168.1.2","#,
            r#""port":7000,"clustername":"name","syncmode":"dynsec","role":"candidate","#,
            r#""term":5,"lastLogIndex":42,"appliedIndex":41,"clientListenersOpen":false},"#,
            r#""correlationData":"r"},"#,
            r#"{"command":"getNode","data":{"role":"standalone","term":0,"lastLogIndex":0,"#,
            r#""appliedIndex":0,"clientListenersOpen":true}},"#,
            r#"{"command":"isLeader","data":{"leader":false}}]}"#
        )
    );
}

#[test]
fn roles_and_states_on_the_wire() {
    let roles = [
        (NodeRole::Standalone, "standalone"),
        (NodeRole::Follower, "follower"),
        (NodeRole::Candidate, "candidate"),
        (NodeRole::Leader, "leader"),
        (NodeRole::Learner, "learner"),
    ];
    for (role, name) in roles {
        assert_eq!(role.as_str(), name);
    }
    assert_eq!(SyncMode::Full.as_str(), "full");
    assert_eq!(SyncMode::Dynsec.as_str(), "dynsec");
    assert_eq!(SyncMode::default(), SyncMode::Full);
    assert_eq!(SyncMode::from_name(b"FULL"), Some(SyncMode::Full));
    assert_eq!(SyncMode::from_name(b"sync"), None);
    // 3 voters: all up, 2 of 3 up, 1 of 3 up; a learner down makes an active cluster
    // degraded; 2 of 4 voters is no majority.
    assert_eq!(ClusterState::from_counts(3, 3, 3, 3), ClusterState::Active);
    assert_eq!(
        ClusterState::from_counts(2, 3, 2, 3),
        ClusterState::Degraded
    );
    assert_eq!(
        ClusterState::from_counts(1, 3, 1, 3),
        ClusterState::Inactive
    );
    assert_eq!(
        ClusterState::from_counts(3, 3, 3, 4),
        ClusterState::Degraded
    );
    assert_eq!(
        ClusterState::from_counts(2, 4, 2, 4),
        ClusterState::Inactive
    );
    assert_eq!(
        ClusterState::from_counts(0, 0, 0, 0),
        ClusterState::Inactive
    );
    assert_eq!(ClusterState::Active.as_str(), "active");
    assert_eq!(ClusterState::Degraded.as_str(), "degraded");
    assert_eq!(ClusterState::Inactive.as_str(), "inactive");
}

#[test]
fn rendered_parse_results_are_json_the_reader_accepts() {
    let out = rendered_errors(SEED_CREATE);
    let tree = shards::dynsec::json::parse(out.as_bytes()).unwrap();
    let entries = tree.get("responses").and_then(|r| r.as_array()).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].get("command").and_then(|c| c.as_bytes()),
        Some(&b"createCluster"[..])
    );
}

// ---------------------------------------------------------------------------------------
// No input panics
// ---------------------------------------------------------------------------------------

/// Arbitrary JSON text: values of every kind nested a few levels, with keys drawn mostly
/// from the API's own names so that deep paths are reached.
fn json_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("command".to_owned()),
        Just("correlationData".to_owned()),
        Just("clustername".to_owned()),
        Just("nodes".to_owned()),
        Just("address".to_owned()),
        Just("port".to_owned()),
        Just("nodeid".to_owned()),
        Just("mynode".to_owned()),
        Just("syncmode".to_owned()),
        "[a-zA-Z]{0,4}",
    ];
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<f64>().prop_map(|n| if n.is_finite() {
            n.to_string()
        } else {
            "1e999".into()
        }),
        (-2000i64..70000).prop_map(|n| n.to_string()),
        prop::sample::select(COMMAND_NAMES).prop_map(|n| format!("\"{n}\"")),
        "[ -~]{0,8}".prop_map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))),
        Just(r#""full""#.to_owned()),
        Just(r#""dynsec""#.to_owned()),
    ];
    let value = leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|members| {
                let body: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    });
    prop_oneof![
        value.clone(),
        prop::collection::vec(value, 0..4)
            .prop_map(|commands| format!(r#"{{"commands":[{}]}}"#, commands.join(","))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_json_never_panics_and_renders(text in json_text()) {
        let parsed = parse_request(text.as_bytes());
        // Only an empty `commands` array gets no entry at all.
        prop_assert_eq!(parsed.is_empty(), text == r#"{"commands":[]}"#);
        let responses: Vec<Response> = parsed
            .into_iter()
            .map(|p| match p {
                Parsed::Error(response) => response,
                Parsed::Command(request) => Response::done(&request),
            })
            .collect();
        let out = render(&responses);
        let tree = shards::dynsec::json::parse(&out).expect("rendered JSON parses");
        let entries = tree.get("responses").and_then(|r| r.as_array()).map(<[_]>::len);
        prop_assert_eq!(entries, Some(responses.len()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_request(&bytes);
        let mut wrapped = br#"{"commands":[{"command":"createCluster","nodes":"#.to_vec();
        wrapped.extend_from_slice(&bytes);
        let _ = parse_request(&wrapped);
    }
}
