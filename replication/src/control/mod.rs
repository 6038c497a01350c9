//! The `$CONTROL/cedalo/ha/v1` control API: commands parsed and validated from a request's
//! JSON, and responses rendered, without touching the cluster (pure).
//!
//! Called by the replication core when a client that dynamic security allows publishes on
//! [`REQUEST_TOPIC`]:
//!
//! ```text
//!   payload ─► parse_request ─► [Parsed::Command(Request) | Parsed::Error(Response)]
//!   for each Request: leader_only() on a follower? ─► Response::error(not_leader(…))
//!                     otherwise check against the node's state, execute ─► Response
//!   render(&responses) ─► publish on RESPONSE_TOPIC (QoS 0, like dynamic security)
//! ```
//!
//! The envelope is the dynamic-security API's (Mosquitto 2.0.11, as `shards::dynsec`
//! answers it): the same JSON reader (keys matched ASCII case-insensitively, trailing data
//! ignored), one response per command in order, `correlationData` echoed verbatim, a
//! payload that is not JSON answered with one `Payload not valid JSON` entry, a missing
//! or non-array `commands` with one `Invalid/missing commands` entry, an element that is
//! not an object with `Command not an object`, an element without a string `command`
//! with `Missing command`, a command name nobody knows with `Unknown command` (the name
//! echoed as sent), and a non-string `correlationData` with
//! `Invalid correlationData data type.`, after which the rest of the request is not
//! processed. Command names match case-insensitively and are answered in their canonical
//! spelling. One difference: a `Missing command` entry carries that element's own
//! `correlationData` (when it is a string), never the previous command's as 2.0.11 does.
//!
//! Unlike dynamic security, which ignores unknown keys and defaults mistyped optional
//! fields, every field here is strict: an unknown or repeated key, a missing field, a
//! wrong type or a value out of range is an error naming the field, and the command
//! changes nothing.

mod command;
mod fields;
mod response;
#[cfg(test)]
mod tests;

pub use command::{
    endpoint_text, split_endpoint, Command, NodeSpec, SyncMode, CLUSTER_NODES_MIN, COMMAND_NAMES,
};
pub use response::{
    not_leader, render, ClusterInfo, ClusterNode, ClusterState, Data, NodeInfo, NodeRole, Outcome,
    Response, ADDRESS_IN_USE, ALREADY_IN_CLUSTER, LEAVE_NOT_THIS_NODE, NODE_ID_IN_USE,
    NODE_MISMATCH, NODE_NOT_FOUND, NOT_A_CAUGHT_UP_VOTER, NOT_COMMITTED, NOT_IN_CLUSTER,
    NOT_THIS_NODE, NO_LEADER, STILL_A_MEMBER, TOO_FEW_WOULD_REMAIN, WRONG_CLUSTER_NAME,
};

use shards::dynsec::json::{self, Value};

/// The topic requests are published on.
pub const REQUEST_TOPIC: &str = "$CONTROL/cedalo/ha/v1";
/// The topic responses are published on.
pub const RESPONSE_TOPIC: &str = "$CONTROL/cedalo/ha/v1/response";

/// The `command` of an entry whose command name is not known.
const UNKNOWN: &[u8] = b"Unknown command";

/// A valid command and the `correlationData` to echo in its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The command.
    pub command: Command,
    /// `correlationData`, when the request had a string one (possibly empty).
    pub correlation: Option<Vec<u8>>,
}

/// One element of a request, after parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A valid command, to be checked against the node's state and executed.
    Command(Request),
    /// An element that was refused already; its response is final.
    Error(Response),
}

/// Parses a request payload into one entry per command element, in order (see the module
/// doc for the envelope rules). Never panics, whatever the bytes.
pub fn parse_request(payload: &[u8]) -> Vec<Parsed> {
    let tree = match json::parse(payload) {
        Ok(tree) => tree,
        Err(_) => return vec![refused(UNKNOWN, None, "Payload not valid JSON")],
    };
    let commands = match tree.get("commands").and_then(Value::as_array) {
        Some(commands) if tree.is_object() => commands,
        _ => return vec![refused(UNKNOWN, None, "Invalid/missing commands")],
    };
    let mut parsed = Vec::with_capacity(commands.len());
    for element in commands {
        if !element.is_object() {
            parsed.push(refused(UNKNOWN, None, "Command not an object"));
            continue;
        }
        let correlation = element.get("correlationData");
        let Some(name) = element.get("command").and_then(Value::as_bytes) else {
            let own = correlation.and_then(Value::as_bytes).map(<[u8]>::to_vec);
            parsed.push(refused(UNKNOWN, own, "Missing command"));
            continue;
        };
        let correlation = match correlation {
            None => None,
            Some(Value::String(data)) => Some(data.clone()),
            Some(_) => {
                parsed.push(refused(name, None, "Invalid correlationData data type."));
                break;
            }
        };
        let Some(canonical) = Command::canonical(name) else {
            parsed.push(refused(name, correlation, "Unknown command"));
            continue;
        };
        parsed.push(match Command::parse(canonical, element) {
            Ok(command) => Parsed::Command(Request {
                command,
                correlation,
            }),
            Err(text) => refused(canonical.as_bytes(), correlation, &text),
        });
    }
    parsed
}

fn refused(command: &[u8], correlation: Option<Vec<u8>>, text: &str) -> Parsed {
    Parsed::Error(Response {
        command: command.to_vec(),
        correlation,
        outcome: Outcome::Error(text.to_owned()),
    })
}
