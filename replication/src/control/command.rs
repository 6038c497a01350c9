//! The commands of the control API as types, and the parser of one command object into
//! them with every field check of the spec's table (node entries, uniqueness of node ids
//! and of address:port pairs, at least three nodes, exactly one `mynode`, `syncmode`).
//!
//! Called by `control::parse_request` once the envelope has yielded a command object and
//! its canonical name. What needs the node's state (is this node in a cluster, does the
//! name match, is `mynode` really this node) is the caller's to check afterwards.

use shards::dynsec::json::Value;

use super::fields::{invalid, Fields};

/// The fewest nodes a cluster may have (a majority must survive one failure).
pub const CLUSTER_NODES_MIN: usize = 3;

/// Which data a cluster replicates, chosen at `createCluster`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SyncMode {
    /// `"full"`: sessions, retained messages and dynamic security; only the leader serves
    /// clients (active-passive). The default.
    #[default]
    Full,
    /// `"dynsec"`: dynamic security only; every node serves clients (active-active).
    Dynsec,
}

impl SyncMode {
    /// The name on the wire: `"full"` or `"dynsec"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Dynsec => "dynsec",
        }
    }

    /// The mode named `text` (ASCII case-insensitive), if any.
    pub fn from_name(text: &[u8]) -> Option<SyncMode> {
        [SyncMode::Full, SyncMode::Dynsec]
            .into_iter()
            .find(|mode| mode.as_str().as_bytes().eq_ignore_ascii_case(text))
    }
}

/// One entry of a `nodes` list: a node's cluster address and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeSpec {
    /// `address`: the node's private address (host name or IP literal) for cluster traffic.
    pub address: String,
    /// `port`: the node's cluster port (1..=65535).
    pub port: u16,
    /// `nodeid`: unique within the cluster (1..=1023).
    pub node_id: u16,
    /// `mynode`: true for the node the command is sent to (absent means false).
    pub mine: bool,
}

/// A parsed, validated command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `createCluster`: start a cluster with `nodes` as its voters.
    CreateCluster {
        /// `clustername`.
        name: String,
        /// `nodes`: at least three, unique ids and address:port pairs, exactly one
        /// `mynode: true`, in the order given.
        nodes: Vec<NodeSpec>,
        /// `syncmode`, `Full` when absent.
        sync: SyncMode,
    },
    /// `joinCluster`: take part in the cluster that lists this node (`mynode: true`).
    JoinCluster {
        /// `clustername`.
        name: String,
        /// `nodes`: same rules as for `CreateCluster`.
        nodes: Vec<NodeSpec>,
    },
    /// `addNode`: add a node (learner first, voter once caught up). Leader only.
    AddNode {
        /// `clustername`.
        name: String,
        /// `nodeid`.
        node_id: u16,
        /// `address`.
        address: String,
        /// `port`.
        port: u16,
    },
    /// `removeNode`: remove a node from the membership; all fields must match it. Leader
    /// only.
    RemoveNode {
        /// `clustername`.
        name: String,
        /// `nodeid`.
        node_id: u16,
        /// `address`.
        address: String,
        /// `port`.
        port: u16,
    },
    /// `leaveCluster`: this node (which the fields must describe) forgets the cluster.
    LeaveCluster {
        /// `clustername`.
        name: String,
        /// `nodeid`.
        node_id: u16,
        /// `address`.
        address: String,
        /// `port`.
        port: u16,
    },
    /// `deleteCluster`: every node leaves and runs standalone. Leader only.
    DeleteCluster {
        /// `clustername`.
        name: String,
    },
    /// `getCluster`: the cluster's state. Leader only.
    GetCluster,
    /// `getNode`: this node's state.
    GetNode,
    /// `setLeader`: transfer leadership to a node. Leader only.
    SetLeader {
        /// `nodeid`.
        node_id: u16,
    },
    /// `getRaftStatus`: the same answer as `getNode`.
    GetRaftStatus,
    /// `isLeader`: whether this node is the leader.
    IsLeader,
}

/// Every command's canonical name, in the spec's order.
pub const COMMAND_NAMES: &[&str] = &[
    "createCluster",
    "joinCluster",
    "addNode",
    "removeNode",
    "leaveCluster",
    "deleteCluster",
    "getCluster",
    "getNode",
    "setLeader",
    "getRaftStatus",
    "isLeader",
];

impl Command {
    /// The canonical name, as responses spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateCluster { .. } => "createCluster",
            Command::JoinCluster { .. } => "joinCluster",
            Command::AddNode { .. } => "addNode",
            Command::RemoveNode { .. } => "removeNode",
            Command::LeaveCluster { .. } => "leaveCluster",
            Command::DeleteCluster { .. } => "deleteCluster",
            Command::GetCluster => "getCluster",
            Command::GetNode => "getNode",
            Command::SetLeader { .. } => "setLeader",
            Command::GetRaftStatus => "getRaftStatus",
            Command::IsLeader => "isLeader",
        }
    }

    /// True for the commands only the leader accepts (addNode, removeNode, deleteCluster,
    /// getCluster, setLeader); elsewhere they are answered with [`super::not_leader`].
    /// createCluster is not among them: it goes to a node that is in no cluster yet.
    pub fn leader_only(&self) -> bool {
        matches!(
            self,
            Command::AddNode { .. }
                | Command::RemoveNode { .. }
                | Command::DeleteCluster { .. }
                | Command::GetCluster
                | Command::SetLeader { .. }
        )
    }

    /// True for the commands that would change the cluster (everything but getCluster,
    /// getNode, getRaftStatus and isLeader).
    pub fn changes_cluster(&self) -> bool {
        !matches!(
            self,
            Command::GetCluster | Command::GetNode | Command::GetRaftStatus | Command::IsLeader
        )
    }

    /// The entry with `mynode: true` of a createCluster or joinCluster (there is exactly
    /// one); `None` for the other commands.
    pub fn my_node(&self) -> Option<&NodeSpec> {
        match self {
            Command::CreateCluster { nodes, .. } | Command::JoinCluster { nodes, .. } => {
                nodes.iter().find(|node| node.mine)
            }
            _ => None,
        }
    }

    /// The canonical name matching `name` ASCII case-insensitively, as cJSON-based
    /// control APIs match command names.
    pub(super) fn canonical(name: &[u8]) -> Option<&'static str> {
        COMMAND_NAMES
            .iter()
            .copied()
            .find(|known| known.as_bytes().eq_ignore_ascii_case(name))
    }

    /// Parses the command object `object` whose command is `canonical` (one of
    /// [`COMMAND_NAMES`]). The error text names the first field at fault.
    pub(super) fn parse(canonical: &str, object: &Value) -> Result<Command, String> {
        let fields = |allowed: &[&str]| Fields::new(object, String::new(), allowed, true);
        Ok(match canonical {
            "createCluster" => {
                let f = fields(&["clustername", "nodes", "syncmode"])?;
                let name = f.cluster_name("clustername")?;
                let nodes = node_list(&f)?;
                let sync = match f.optional_bytes("syncmode", SYNC_RULE)? {
                    None => SyncMode::Full,
                    Some(text) => SyncMode::from_name(text)
                        .ok_or_else(|| invalid(&f.path("syncmode"), SYNC_RULE))?,
                };
                Command::CreateCluster { name, nodes, sync }
            }
            "joinCluster" => {
                let f = fields(&["clustername", "nodes"])?;
                let name = f.cluster_name("clustername")?;
                let nodes = node_list(&f)?;
                Command::JoinCluster { name, nodes }
            }
            "addNode" | "removeNode" | "leaveCluster" => {
                let f = fields(&["clustername", "address", "port", "nodeid"])?;
                let name = f.cluster_name("clustername")?;
                let address = f.address("address")?;
                let port = f.port("port")?;
                let node_id = f.node_id("nodeid")?;
                match canonical {
                    "addNode" => Command::AddNode {
                        name,
                        node_id,
                        address,
                        port,
                    },
                    "removeNode" => Command::RemoveNode {
                        name,
                        node_id,
                        address,
                        port,
                    },
                    _ => Command::LeaveCluster {
                        name,
                        node_id,
                        address,
                        port,
                    },
                }
            }
            "deleteCluster" => {
                let f = fields(&["clustername"])?;
                Command::DeleteCluster {
                    name: f.cluster_name("clustername")?,
                }
            }
            "setLeader" => {
                let f = fields(&["nodeid"])?;
                Command::SetLeader {
                    node_id: f.node_id("nodeid")?,
                }
            }
            "getCluster" => fields(&[]).map(|_| Command::GetCluster)?,
            "getNode" => fields(&[]).map(|_| Command::GetNode)?,
            "getRaftStatus" => fields(&[]).map(|_| Command::GetRaftStatus)?,
            _ => fields(&[]).map(|_| Command::IsLeader)?,
        })
    }
}

/// What `syncmode` must be.
const SYNC_RULE: &str = "must be \"full\" or \"dynsec\"";

/// The `nodes` list of createCluster / joinCluster: each entry checked in order, then the
/// list as a whole (size, unique ids, unique address:port, exactly one `mynode`).
fn node_list(f: &Fields<'_>) -> Result<Vec<NodeSpec>, String> {
    let path = f.path("nodes");
    let items = f
        .required("nodes")?
        .as_array()
        .ok_or_else(|| invalid(&path, "must be an array of node objects"))?;
    let mut nodes: Vec<NodeSpec> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let entry = Fields::new(
            item,
            format!("{path}[{index}]."),
            &["address", "port", "nodeid", "mynode"],
            false,
        )?;
        let node = NodeSpec {
            address: entry.address("address")?,
            port: entry.port("port")?,
            node_id: entry.node_id("nodeid")?,
            mine: entry.optional_bool("mynode")?.unwrap_or(false),
        };
        if nodes.iter().any(|n| n.node_id == node.node_id) {
            return Err(invalid(
                &path,
                &format!("node id {} is listed twice", node.node_id),
            ));
        }
        if nodes
            .iter()
            .any(|n| n.port == node.port && n.address.eq_ignore_ascii_case(&node.address))
        {
            return Err(invalid(
                &path,
                &format!(
                    "{} is listed twice",
                    endpoint_text(&node.address, node.port)
                ),
            ));
        }
        nodes.push(node);
    }
    if nodes.len() < CLUSTER_NODES_MIN {
        return Err(invalid(
            &path,
            &format!(
                "a cluster needs at least {CLUSTER_NODES_MIN} nodes, {} given",
                nodes.len()
            ),
        ));
    }
    let mine = nodes.iter().filter(|n| n.mine).count();
    if mine != 1 {
        return Err(invalid(
            &path,
            &format!(
                "exactly one node must have \"mynode\": true (the node receiving this \
                 command), {mine} have"
            ),
        ));
    }
    Ok(nodes)
}

/// `host:port`, with an IPv6 literal in brackets (`[fd00::1]:7000`).
pub fn endpoint_text(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// The address and port of an [`endpoint_text`], brackets removed.
pub fn split_endpoint(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host.to_string(), port.parse().ok()?))
}
