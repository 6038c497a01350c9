//! `culex ha ...`: the cluster's control API from the command line, so that an operator
//! need not write JSON. Each subcommand builds one command of `$CONTROL/cedalo/ha/v1`
//! (the same JSON as the product documentation's examples), sends it to a node's admin
//! listener, waits for the response and prints it (or the raw JSON with `--json`).
//!
//! Called by `main` when the first argument is `ha`. Pure parts: [`parse`] (arguments to
//! an [`Invocation`]) and [`request_payload`]; `client` does the MQTT exchange and `print`
//! the human-readable output.
//!
//! Exit codes: 0 success, 1 the broker answered with an error, 2 no answer (connection
//! refused, not authorised, timeout), 3 a usage error.

mod client;
mod print;

use std::ffi::OsString;
use std::fmt;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shards::dynsec::json::Value;
use shards::dynsec::json_out::{to_compact, Out};
use shards::mqtt::Protocol;

use client::{CallError, Endpoint, Topics};

/// The API's request and response topics.
const TOPICS: Topics<'static> = Topics {
    request: "$CONTROL/cedalo/ha/v1",
    response: "$CONTROL/cedalo/ha/v1/response",
};
/// Default admin listener: the seed's `listener 1885` + `admin_listener true`.
const DEFAULT_PORT: u16 = 1885;
/// Default host.
const DEFAULT_HOST: &str = "127.0.0.1";
/// Default `-W`, seconds (mosquitto_ctrl waits as long).
const DEFAULT_TIMEOUT_S: u64 = 10;
/// Highest node id (the product's range 1-1023).
const NODE_ID_MAX: u16 = 1023;

/// Exit code when the broker answered with an error.
const EXIT_ERROR_RESPONSE: u8 = 1;
/// Exit code when no answer came.
const EXIT_NO_RESPONSE: u8 = 2;
/// Exit code of a usage error (as `culex` itself).
const EXIT_USAGE: u8 = crate::cli::EXIT_USAGE;

/// A node as given to `--node ID@ADDRESS:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeArg {
    /// Node id, 1..=1023.
    pub id: u16,
    /// Cluster address (host name, IPv4, or IPv6 in brackets on the command line).
    pub address: String,
    /// Cluster port.
    pub port: u16,
}

/// What to ask the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `create`: createCluster.
    Create {
        /// `--name`.
        name: String,
        /// `--node`, in order.
        nodes: Vec<NodeArg>,
        /// `--mine`: the id of the node receiving the command.
        mine: u16,
        /// `--sync`, sent only when given (`full` or `dynsec`).
        sync: Option<String>,
    },
    /// `join`: joinCluster.
    Join {
        /// `--name`.
        name: String,
        /// `--node`, in order.
        nodes: Vec<NodeArg>,
        /// `--mine`.
        mine: u16,
    },
    /// `add`: addNode.
    Add {
        /// `--name`.
        name: String,
        /// `--node`.
        node: NodeArg,
    },
    /// `remove`: removeNode.
    Remove {
        /// `--name`.
        name: String,
        /// `--node`.
        node: NodeArg,
    },
    /// `leave`: leaveCluster.
    Leave {
        /// `--name`.
        name: String,
        /// `--node`.
        node: NodeArg,
    },
    /// `delete`: deleteCluster.
    Delete {
        /// `--name`.
        name: String,
    },
    /// `status`: getCluster.
    Status,
    /// `node`: getNode.
    Node,
    /// `raft-status`: getRaftStatus.
    RaftStatus,
    /// `is-leader`: isLeader.
    IsLeader,
    /// `leader ID`: setLeader.
    Leader {
        /// The node to make leader.
        node_id: u16,
    },
}

impl Action {
    /// The API's command name.
    pub fn command(&self) -> &'static str {
        match self {
            Action::Create { .. } => "createCluster",
            Action::Join { .. } => "joinCluster",
            Action::Add { .. } => "addNode",
            Action::Remove { .. } => "removeNode",
            Action::Leave { .. } => "leaveCluster",
            Action::Delete { .. } => "deleteCluster",
            Action::Status => "getCluster",
            Action::Node => "getNode",
            Action::RaftStatus => "getRaftStatus",
            Action::IsLeader => "isLeader",
            Action::Leader { .. } => "setLeader",
        }
    }
}

/// A complete `culex ha` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// What to ask.
    pub action: Action,
    /// Where to ask it.
    pub endpoint: Endpoint,
    /// `--json`: print the response payload as received.
    pub json: bool,
}

/// The outcome of [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run this (boxed: it is large, and made once).
    Run(Box<Invocation>),
    /// `--help` (or no subcommand at all): print [`usage`].
    Help,
}

/// A usage error: the message, printed before a pointer to `culex ha --help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error: {}", self.0)
    }
}

fn usage_error<T>(text: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(text.into()))
}

/// The options seen on the command line, before they are checked against the subcommand.
#[derive(Default)]
struct Options {
    name: Option<String>,
    nodes: Vec<NodeArg>,
    mine: Option<u16>,
    sync: Option<String>,
    positional: Vec<String>,
}

/// Parses the arguments after `culex ha`. `client_id` is used when `-i` is not given.
pub fn parse<I>(args: I, client_id: String) -> Result<Parsed, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    let Some(sub) = args.next() else {
        return Ok(Parsed::Help);
    };
    if matches!(sub.as_str(), "--help" | "help") {
        return Ok(Parsed::Help);
    }
    let mut endpoint = Endpoint {
        host: DEFAULT_HOST.to_owned(),
        port: DEFAULT_PORT,
        username: None,
        password: None,
        client_id,
        protocol: Protocol::V5,
        timeout: Duration::from_secs(DEFAULT_TIMEOUT_S),
    };
    let mut json = false;
    let mut o = Options::default();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| UsageError(format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--help" => return Ok(Parsed::Help),
            "-h" | "--host" => endpoint.host = value()?,
            "-p" | "--port" => endpoint.port = parse_port(&value()?, "-p")?,
            "-u" | "--username" => endpoint.username = Some(value()?),
            "-P" | "--pw" => endpoint.password = Some(value()?),
            "-i" | "--id" => endpoint.client_id = value()?,
            "-V" | "--protocol-version" => endpoint.protocol = parse_protocol(&value()?)?,
            "-W" => endpoint.timeout = parse_timeout(&value()?)?,
            "--json" => json = true,
            "--name" => o.name = Some(value()?),
            "--node" => o.nodes.push(parse_node(&value()?)?),
            "--mine" => o.mine = Some(parse_node_id(&value()?, "--mine")?),
            "--sync" => {
                let mode = value()?;
                if mode != "full" && mode != "dynsec" {
                    return usage_error(format!("--sync must be full or dynsec, not '{mode}'"));
                }
                o.sync = Some(mode);
            }
            _ if arg.starts_with('-') && arg.len() > 1 => {
                return usage_error(format!("unknown option '{arg}'"))
            }
            _ => o.positional.push(arg),
        }
    }
    let action = action(&sub, o)?;
    Ok(Parsed::Run(Box::new(Invocation {
        action,
        endpoint,
        json,
    })))
}

/// Checks the options against the subcommand and builds its action.
fn action(sub: &str, mut o: Options) -> Result<Action, UsageError> {
    let allowed: &[&str] = match sub {
        "create" => &["--name", "--node", "--mine", "--sync"],
        "join" => &["--name", "--node", "--mine"],
        "add" | "remove" | "leave" => &["--name", "--node"],
        "delete" => &["--name"],
        "status" | "node" | "raft-status" | "is-leader" | "leader" => &[],
        other => return usage_error(format!("unknown command '{other}'")),
    };
    let given = [
        ("--name", o.name.is_some()),
        ("--node", !o.nodes.is_empty()),
        ("--mine", o.mine.is_some()),
        ("--sync", o.sync.is_some()),
    ];
    if let Some((flag, _)) = given
        .iter()
        .find(|(flag, present)| *present && !allowed.contains(flag))
    {
        return usage_error(format!("{flag} does not apply to 'culex ha {sub}'"));
    }
    let wanted_positional = usize::from(sub == "leader");
    if o.positional.len() > wanted_positional {
        let extra = &o.positional[wanted_positional];
        return usage_error(format!("unexpected argument '{extra}'"));
    }
    let name = |o: &mut Options| {
        o.name
            .take()
            .ok_or_else(|| UsageError(format!("'culex ha {sub}' needs --name CLUSTER")))
    };
    let one_node = |o: &mut Options| match o.nodes.len() {
        1 => Ok(o.nodes.remove(0)),
        0 => usage_error(format!("'culex ha {sub}' needs --node ID@ADDRESS:PORT")),
        _ => usage_error(format!("'culex ha {sub}' takes one --node")),
    };
    let list = |o: &mut Options| {
        if o.nodes.is_empty() {
            return usage_error(format!(
                "'culex ha {sub}' needs every node of the cluster: --node ID@ADDRESS:PORT \
                 for each"
            ));
        }
        let Some(mine) = o.mine else {
            return usage_error(format!(
                "'culex ha {sub}' needs --mine ID: the node this command is sent to"
            ));
        };
        if !o.nodes.iter().any(|n| n.id == mine) {
            return usage_error(format!("--mine {mine} is not one of the --node ids"));
        }
        Ok((std::mem::take(&mut o.nodes), mine))
    };
    Ok(match sub {
        "create" => {
            let name = name(&mut o)?;
            let (nodes, mine) = list(&mut o)?;
            Action::Create {
                name,
                nodes,
                mine,
                sync: o.sync,
            }
        }
        "join" => {
            let name = name(&mut o)?;
            let (nodes, mine) = list(&mut o)?;
            Action::Join { name, nodes, mine }
        }
        "add" => Action::Add {
            name: name(&mut o)?,
            node: one_node(&mut o)?,
        },
        "remove" => Action::Remove {
            name: name(&mut o)?,
            node: one_node(&mut o)?,
        },
        "leave" => Action::Leave {
            name: name(&mut o)?,
            node: one_node(&mut o)?,
        },
        "delete" => Action::Delete {
            name: name(&mut o)?,
        },
        "status" => Action::Status,
        "node" => Action::Node,
        "raft-status" => Action::RaftStatus,
        "is-leader" => Action::IsLeader,
        _ => match o.positional.first() {
            Some(id) => Action::Leader {
                node_id: parse_node_id(id, "culex ha leader")?,
            },
            None => return usage_error("'culex ha leader' needs the new leader's node id"),
        },
    })
}

fn parse_port(text: &str, what: &str) -> Result<u16, UsageError> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => usage_error(format!("{what}: '{text}' is not a port (1 to 65535)")),
    }
}

fn parse_node_id(text: &str, what: &str) -> Result<u16, UsageError> {
    match text.parse::<u16>() {
        Ok(id) if (1..=NODE_ID_MAX).contains(&id) => Ok(id),
        _ => usage_error(format!(
            "{what}: '{text}' is not a node id (1 to {NODE_ID_MAX})"
        )),
    }
}

/// `ID@ADDRESS:PORT`, with an IPv6 address in brackets: `4@[fd00::4]:7000`.
fn parse_node(text: &str) -> Result<NodeArg, UsageError> {
    let wrong = || {
        UsageError(format!(
            "--node '{text}' is not ID@ADDRESS:PORT (e.g. 1@192.168.1.1:7000)"
        ))
    };
    let (id, endpoint) = text.split_once('@').ok_or_else(wrong)?;
    let (address, port) = endpoint.rsplit_once(':').ok_or_else(wrong)?;
    let address = match address.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(wrong)?,
        None if address.contains(':') => return Err(wrong()),
        None => address,
    };
    if address.is_empty() {
        return Err(wrong());
    }
    Ok(NodeArg {
        id: parse_node_id(id, &format!("--node '{text}'"))?,
        address: address.to_owned(),
        port: parse_port(port, &format!("--node '{text}'"))?,
    })
}

fn parse_protocol(text: &str) -> Result<Protocol, UsageError> {
    match text {
        "mqttv5" | "5" => Ok(Protocol::V5),
        "mqttv311" | "311" => Ok(Protocol::V311),
        _ => usage_error(format!("-V must be mqttv5 or mqttv311, not '{text}'")),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, UsageError> {
    match text.parse::<u64>() {
        Ok(seconds) if (1..=3600).contains(&seconds) => Ok(Duration::from_secs(seconds)),
        _ => usage_error(format!(
            "-W: '{text}' is not a number of seconds (1 to 3600)"
        )),
    }
}

/// The command object, keys in the order of the product documentation's examples
/// (without `correlationData`).
pub fn command_object(action: &Action) -> Out {
    let mut members = vec![("command", text(action.command()))];
    let node_members = |node: &NodeArg| {
        vec![
            ("address", text(&node.address)),
            ("port", Out::Int(i64::from(node.port))),
            ("nodeid", Out::Int(i64::from(node.id))),
        ]
    };
    let list = |nodes: &[NodeArg], mine: u16| {
        let entries = nodes
            .iter()
            .map(|node| {
                let mut entry = node_members(node);
                if node.id == mine {
                    entry.push(("mynode", Out::Bool(true)));
                }
                Out::Object(entry)
            })
            .collect();
        Out::Array(entries)
    };
    match action {
        Action::Create {
            name,
            nodes,
            mine,
            sync,
        } => {
            members.push(("clustername", text(name)));
            members.push(("nodes", list(nodes, *mine)));
            if let Some(sync) = sync {
                members.push(("syncmode", text(sync)));
            }
        }
        Action::Join { name, nodes, mine } => {
            members.push(("clustername", text(name)));
            members.push(("nodes", list(nodes, *mine)));
        }
        Action::Add { name, node }
        | Action::Remove { name, node }
        | Action::Leave { name, node } => {
            members.push(("clustername", text(name)));
            members.extend(node_members(node));
        }
        Action::Delete { name } => members.push(("clustername", text(name))),
        Action::Leader { node_id } => members.push(("nodeid", Out::Int(i64::from(*node_id)))),
        Action::Status | Action::Node | Action::RaftStatus | Action::IsLeader => {}
    }
    Out::Object(members)
}

/// The request payload: `{"commands":[{…,"correlationData":"<correlation>"}]}`.
pub fn request_payload(action: &Action, correlation: &str) -> Vec<u8> {
    let mut command = command_object(action);
    if let Out::Object(members) = &mut command {
        members.push(("correlationData", text(correlation)));
    }
    to_compact(&Out::Object(vec![("commands", Out::Array(vec![command]))]))
}

fn text(value: &str) -> Out {
    Out::str(value.as_bytes())
}

/// The usage text of `culex ha --help`.
pub fn usage() -> String {
    format!(
        "Usage: culex ha COMMAND [options] [connection options]\n\n\
         Sends one command of the cluster control API ($CONTROL/cedalo/ha/v1) to a node's\n\
         admin listener and prints the response.\n\n\
         Commands:\n\
         \x20 create --name CLUSTER --node ID@ADDRESS:PORT ... --mine ID [--sync full|dynsec]\n\
         \x20                     createCluster, sent to the first node (--mine: its id)\n\
         \x20 join   --name CLUSTER --node ID@ADDRESS:PORT ... --mine ID\n\
         \x20                     joinCluster, sent to each other node (--mine: its id)\n\
         \x20 add    --name CLUSTER --node ID@ADDRESS:PORT   addNode, sent to the leader\n\
         \x20 remove --name CLUSTER --node ID@ADDRESS:PORT   removeNode, sent to the leader\n\
         \x20 leave  --name CLUSTER --node ID@ADDRESS:PORT   leaveCluster, sent to that node\n\
         \x20 delete --name CLUSTER                          deleteCluster, sent to the leader\n\
         \x20 status                                         getCluster, sent to the leader\n\
         \x20 node                                           getNode\n\
         \x20 raft-status                                    getRaftStatus\n\
         \x20 is-leader                                      isLeader\n\
         \x20 leader ID                                      setLeader: make node ID leader\n\n\
         ADDRESS:PORT is the node's cluster address and port (IPv6 in brackets:\n\
         [fd00::1]:7000); node ids are 1 to {NODE_ID_MAX}.\n\n\
         Connection options (as mosquitto_rr):\n\
         \x20 -h HOST       node to send to (default {DEFAULT_HOST})\n\
         \x20 -p PORT       its admin listener (default {DEFAULT_PORT})\n\
         \x20 -u USER       username (a client with $CONTROL/# rights, e.g. role super-admin)\n\
         \x20 -P PASSWORD   password\n\
         \x20 -i ID         client id (default culex-ha-<process id>)\n\
         \x20 -V VERSION    mqttv5 (default) or mqttv311\n\
         \x20 -W SECONDS    give up after this long without a response (default \
         {DEFAULT_TIMEOUT_S})\n\
         \x20 --json        print the response as received (JSON)\n\
         \x20 --help        this text\n\n\
         Exit status: 0 success, 1 the node answered with an error, 2 no answer\n\
         (unreachable, refused, timeout), 3 wrong arguments.\n"
    )
}

/// Runs `culex ha` with the arguments after `ha`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let client_id = format!("culex-ha-{}", std::process::id());
    let invocation = match parse(args, client_id) {
        Ok(Parsed::Run(invocation)) => invocation,
        Ok(Parsed::Help) => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("{error}\nRun 'culex ha --help' for the commands and options.");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let correlation = correlation_data();
    let payload = request_payload(&invocation.action, &correlation);
    match client::call(
        &invocation.endpoint,
        TOPICS,
        &payload,
        correlation.as_bytes(),
    ) {
        Ok(reply) => report(&invocation, &reply.payload, &reply.entry),
        Err(error) => {
            eprintln!("{}", no_answer_text(&invocation.endpoint, &error));
            ExitCode::from(EXIT_NO_RESPONSE)
        }
    }
}

/// Prints the response and chooses the exit code.
fn report(invocation: &Invocation, payload: &[u8], entry: &Value) -> ExitCode {
    let error = entry.get("error").and_then(Value::as_bytes);
    if invocation.json {
        println!("{}", String::from_utf8_lossy(payload));
    } else if let Some(error) = error {
        eprintln!("Error: {}", String::from_utf8_lossy(error));
    } else {
        print!(
            "{}",
            print::human(invocation.action.command(), entry, payload)
        );
    }
    if error.is_some() {
        ExitCode::from(EXIT_ERROR_RESPONSE)
    } else {
        ExitCode::SUCCESS
    }
}

fn no_answer_text(endpoint: &Endpoint, error: &CallError) -> String {
    format!(
        "Error: no answer from {}:{}: {error}",
        endpoint.host, endpoint.port
    )
}

/// A `correlationData` unique to this run: process id and the time in nanoseconds.
fn correlation_data() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("culex-ha-{}-{nanos}", std::process::id())
}

#[cfg(test)]
mod tests;
