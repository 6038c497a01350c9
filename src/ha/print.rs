//! The human-readable form of a successful response of the cluster control API: a table
//! for getCluster, a list of fields for getNode / getRaftStatus, one sentence for
//! isLeader, `<command>: done` for the commands without data. A `data` object of another
//! shape (a newer node) is printed as the raw response rather than half understood.
//!
//! Called by `culex ha` (`super::report`); pure.

use std::fmt::Write;

use shards::dynsec::json::Value;

/// The text to print for the successful response `entry` of `command` (`payload` is the
/// whole response, printed as is when `data` is not understood). Ends with a newline.
pub fn human(command: &str, entry: &Value, payload: &[u8]) -> String {
    let raw = || format!("{}\n", String::from_utf8_lossy(payload));
    let Some(data) = entry.get("data") else {
        return format!("{command}: done\n");
    };
    let text = match command {
        "getCluster" => cluster(data),
        "getNode" | "getRaftStatus" => node(data),
        "isLeader" => data.get("leader").and_then(Value::as_bool).map(|leader| {
            if leader {
                "This node is the leader.\n".to_owned()
            } else {
                "This node is not the leader.\n".to_owned()
            }
        }),
        _ => None,
    };
    text.unwrap_or_else(raw)
}

/// getCluster: a header and one row per node. `None` when a required key is missing.
fn cluster(data: &Value) -> Option<String> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Cluster      {} (syncmode {}), {}",
        string(data, "clustername")?,
        string(data, "syncmode")?,
        string(data, "state")?
    );
    let leader = match number(data, "leader") {
        Some(id) => format!("node {id}"),
        None => "none".to_owned(),
    };
    let _ = writeln!(
        out,
        "Leader       {leader}, term {}, commit index {}",
        number(data, "term")?,
        number(data, "commitIndex")?
    );
    let _ = writeln!(
        out,
        "\n{:<6} {:<24} {:<10} {:<7} {:<7} {:>10} {:>8}",
        "NODE", "ADDRESS", "ROLE", "LEADER", "ONLINE", "LOG INDEX", "LAG"
    );
    for node in data.get("nodes")?.as_array()? {
        let _ = writeln!(
            out,
            "{:<6} {:<24} {:<10} {:<7} {:<7} {:>10} {:>8}",
            number(node, "nodeid")?,
            endpoint(&string(node, "address")?, number(node, "port")?),
            string(node, "role")?,
            yes_no(node.get("leader")?.as_bool()?),
            yes_no(node.get("online")?.as_bool()?),
            number(node, "log_index")?,
            number(node, "lag")?
        );
    }
    Some(out)
}

/// getNode / getRaftStatus: one field a line.
fn node(data: &Value) -> Option<String> {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<18} {value}");
    };
    let member = number(data, "nodeid");
    match (member, string(data, "address"), number(data, "port")) {
        (Some(id), Some(address), Some(port)) => {
            line("Node", format!("{id} ({})", endpoint(&address, port)));
        }
        (Some(id), _, _) => line("Node", id.to_string()),
        _ => {}
    }
    match string(data, "clustername") {
        Some(name) => {
            let sync = string(data, "syncmode").unwrap_or_else(|| "?".to_owned());
            line("Cluster", format!("{name} (syncmode {sync})"));
        }
        None => line("Cluster", "none (standalone)".to_owned()),
    }
    line("Role", string(data, "role")?);
    let leader =
        number(data, "leader").map_or_else(|| "none known".to_owned(), |id| format!("node {id}"));
    line("Leader", leader);
    line("Term", number(data, "term")?.to_string());
    line("Last log index", number(data, "lastLogIndex")?.to_string());
    line("Applied index", number(data, "appliedIndex")?.to_string());
    let open = data.get("clientListenersOpen")?.as_bool()?;
    line(
        "Client listeners",
        if open { "open" } else { "closed" }.to_owned(),
    );
    Some(out)
}

fn string(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)?
        .as_bytes()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
}

/// A whole, non-negative number.
fn number(value: &Value, key: &str) -> Option<u64> {
    match value.get(key)? {
        Value::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n <= u64::MAX as f64 => {
            Some(*n as u64)
        }
        _ => None,
    }
}

fn endpoint(address: &str, port: u64) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}
