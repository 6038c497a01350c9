//! Responses of the control API: the typed answer to each command, the `data` objects of
//! getCluster, getNode / getRaftStatus and isLeader with exactly the spec's fields, the
//! error texts the cluster's own checks use, and [`render`], which prints the
//! `{"responses":[…]}` payload with the dynamic-security API's key order and bytes.
//!
//! Called by the replication core once it has executed (or refused) each parsed command;
//! it publishes [`render`]'s bytes on `$CONTROL/cedalo/ha/v1/response`.

use shards::dynsec::json_out::{to_compact, Out};

use super::command::{endpoint_text, SyncMode};
use super::Request;

/// The answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The command's canonical name, or the name as sent when it is unknown, or
    /// `Unknown command` when there was none.
    pub command: Vec<u8>,
    /// The request's `correlationData`, echoed verbatim when it was a string.
    pub correlation: Option<Vec<u8>>,
    /// Success, success with data, or the error text.
    pub outcome: Outcome,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success without data: `{"command":…}`.
    Done,
    /// Success with a `data` object: `{"command":…,"data":{…}}`.
    Data(Data),
    /// Failure: `{"command":…,"error":"…"}`; nothing was changed.
    Error(String),
}

/// The `data` object of a successful query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// getCluster.
    Cluster(ClusterInfo),
    /// getNode and getRaftStatus.
    Node(NodeInfo),
    /// isLeader: `{"leader": bool}`.
    IsLeader(bool),
}

impl Response {
    /// Success without data.
    pub fn done(request: &Request) -> Response {
        Response::new(request, Outcome::Done)
    }

    /// Success with `data`.
    pub fn data(request: &Request, data: Data) -> Response {
        Response::new(request, Outcome::Data(data))
    }

    /// Failure with `text` (see the constants of this module and [`not_leader`]).
    pub fn error(request: &Request, text: impl Into<String>) -> Response {
        Response::new(request, Outcome::Error(text.into()))
    }

    fn new(request: &Request, outcome: Outcome) -> Response {
        Response {
            command: request.command.name().as_bytes().to_vec(),
            correlation: request.correlation.clone(),
            outcome,
        }
    }

    /// `{"command":…[,"error":…|,"data":…][,"correlationData":…]}`.
    fn to_out(&self) -> Out {
        let mut members = vec![("command", Out::str(&self.command))];
        match &self.outcome {
            Outcome::Done => {}
            Outcome::Data(data) => members.push(("data", data.to_out())),
            Outcome::Error(text) => members.push(("error", Out::str(text.as_bytes()))),
        }
        if let Some(correlation) = &self.correlation {
            members.push(("correlationData", Out::str(correlation)));
        }
        Out::Object(members)
    }
}

/// The response payload for `responses`, in order: `{"responses":[…]}`, compact JSON.
pub fn render(responses: &[Response]) -> Vec<u8> {
    to_compact(&Out::Object(vec![(
        "responses",
        Out::Array(responses.iter().map(Response::to_out).collect()),
    )]))
}

/// A node's role as getCluster and getNode report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// In no cluster (getNode only).
    Standalone,
    /// A voter following the leader.
    Follower,
    /// A voter asking for votes.
    Candidate,
    /// The leader.
    Leader,
    /// Receiving the log but not voting yet (a node just added).
    Learner,
}

impl NodeRole {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Standalone => "standalone",
            NodeRole::Follower => "follower",
            NodeRole::Candidate => "candidate",
            NodeRole::Leader => "leader",
            NodeRole::Learner => "learner",
        }
    }
}

/// getCluster's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClusterState {
    /// Every node is reachable.
    Active,
    /// A majority of the voters is reachable, not every node.
    Degraded,
    /// No majority is reachable.
    Inactive,
}

impl ClusterState {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterState::Active => "active",
            ClusterState::Degraded => "degraded",
            ClusterState::Inactive => "inactive",
        }
    }

    /// The state of a cluster in which `reachable_voters` of `voters` voters (the leader
    /// counted) and `reachable_nodes` of `nodes` nodes (learners too) are reachable.
    pub fn from_counts(
        reachable_voters: usize,
        voters: usize,
        reachable_nodes: usize,
        nodes: usize,
    ) -> ClusterState {
        if voters == 0 || reachable_voters * 2 <= voters {
            ClusterState::Inactive
        } else if reachable_nodes >= nodes {
            ClusterState::Active
        } else {
            ClusterState::Degraded
        }
    }
}

/// getCluster's `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// `clustername`.
    pub name: String,
    /// `syncmode`.
    pub sync: SyncMode,
    /// `state`.
    pub state: ClusterState,
    /// `leader`: the leader's node id; the key is left out while there is none.
    pub leader: Option<u16>,
    /// `term`: the current Raft term.
    pub term: u64,
    /// `commitIndex`: the last committed log index.
    pub commit_index: u64,
    /// `nodes`, in membership order.
    pub nodes: Vec<ClusterNode>,
}

/// One element of getCluster's `nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// `nodeid`.
    pub node_id: u16,
    /// `address`.
    pub address: String,
    /// `port`.
    pub port: u16,
    /// `role`.
    pub role: NodeRole,
    /// `leader`: whether it is the leader.
    pub leader: bool,
    /// `online`: whether the leader hears from it.
    pub online: bool,
    /// `log_index`: the last index it has acknowledged.
    pub log_index: u64,
    /// `lag`: entries behind the leader.
    pub lag: u64,
}

/// getNode's and getRaftStatus's `data`. Keys whose value is `None` are left out (a
/// standalone node has no cluster, node id or leader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `nodeid`.
    pub node_id: Option<u16>,
    /// `address`: this node's cluster address.
    pub address: Option<String>,
    /// `port`: this node's cluster port.
    pub port: Option<u16>,
    /// `clustername`.
    pub cluster_name: Option<String>,
    /// `syncmode`.
    pub sync: Option<SyncMode>,
    /// `role`.
    pub role: NodeRole,
    /// `leader`: the leader's node id as this node knows it.
    pub leader: Option<u16>,
    /// `term`.
    pub term: u64,
    /// `lastLogIndex`: the last index in this node's log.
    pub last_log_index: u64,
    /// `appliedIndex`: the last index applied to this node's state.
    pub applied_index: u64,
    /// `clientListenersOpen`: whether this node serves MQTT clients now.
    pub client_listeners_open: bool,
}

impl NodeInfo {
    /// A node in no cluster: role `standalone`, indexes and term 0.
    pub fn standalone(client_listeners_open: bool) -> NodeInfo {
        NodeInfo {
            node_id: None,
            address: None,
            port: None,
            cluster_name: None,
            sync: None,
            role: NodeRole::Standalone,
            leader: None,
            term: 0,
            last_log_index: 0,
            applied_index: 0,
            client_listeners_open,
        }
    }
}

impl Data {
    fn to_out(&self) -> Out {
        match self {
            Data::Cluster(cluster) => cluster.to_out(),
            Data::Node(node) => node.to_out(),
            Data::IsLeader(leader) => Out::Object(vec![("leader", Out::Bool(*leader))]),
        }
    }
}

impl ClusterInfo {
    fn to_out(&self) -> Out {
        let mut members = vec![
            ("clustername", Out::str(self.name.as_bytes())),
            ("syncmode", text(self.sync.as_str())),
            ("state", text(self.state.as_str())),
        ];
        if let Some(leader) = self.leader {
            members.push(("leader", Out::Int(i64::from(leader))));
        }
        members.push(("term", index(self.term)));
        members.push(("commitIndex", index(self.commit_index)));
        let nodes = self.nodes.iter().map(ClusterNode::to_out).collect();
        members.push(("nodes", Out::Array(nodes)));
        Out::Object(members)
    }
}

impl ClusterNode {
    fn to_out(&self) -> Out {
        Out::Object(vec![
            ("nodeid", Out::Int(i64::from(self.node_id))),
            ("address", Out::str(self.address.as_bytes())),
            ("port", Out::Int(i64::from(self.port))),
            ("role", text(self.role.as_str())),
            ("leader", Out::Bool(self.leader)),
            ("online", Out::Bool(self.online)),
            ("log_index", index(self.log_index)),
            ("lag", index(self.lag)),
        ])
    }
}

impl NodeInfo {
    fn to_out(&self) -> Out {
        let mut members = Vec::new();
        if let Some(id) = self.node_id {
            members.push(("nodeid", Out::Int(i64::from(id))));
        }
        if let Some(address) = &self.address {
            members.push(("address", Out::str(address.as_bytes())));
        }
        if let Some(port) = self.port {
            members.push(("port", Out::Int(i64::from(port))));
        }
        if let Some(name) = &self.cluster_name {
            members.push(("clustername", Out::str(name.as_bytes())));
        }
        if let Some(sync) = self.sync {
            members.push(("syncmode", text(sync.as_str())));
        }
        members.push(("role", text(self.role.as_str())));
        if let Some(leader) = self.leader {
            members.push(("leader", Out::Int(i64::from(leader))));
        }
        members.push(("term", index(self.term)));
        members.push(("lastLogIndex", index(self.last_log_index)));
        members.push(("appliedIndex", index(self.applied_index)));
        members.push(("clientListenersOpen", Out::Bool(self.client_listeners_open)));
        Out::Object(members)
    }
}

fn text(value: &'static str) -> Out {
    Out::str(value.as_bytes())
}

/// A term or log index (never near `i64::MAX` in practice; saturated if it were).
fn index(value: u64) -> Out {
    Out::Int(i64::try_from(value).unwrap_or(i64::MAX))
}

/// The error for a leader-only command on a follower, naming where to send it instead:
/// `Not the leader: send this command to the leader, node 2 (192.168.1.2:7000)`.
/// `address` and `port` are the leader's entry in `nodes` (its cluster address).
pub fn not_leader(leader_id: u16, address: &str, port: u16) -> String {
    format!(
        "Not the leader: send this command to the leader, node {leader_id} ({})",
        endpoint_text(address, port)
    )
}

/// The error for a leader-only command while no leader is known (an election is under way
/// or no majority is reachable).
pub const NO_LEADER: &str = "Not the leader: no leader is known at the moment, try again";

/// createCluster or joinCluster on a node that is already in a cluster.
pub const ALREADY_IN_CLUSTER: &str =
    "This node is already in a cluster: send leaveCluster or deleteCluster first";

/// A command that needs a cluster, on a standalone node.
pub const NOT_IN_CLUSTER: &str = "This node is not in a cluster";

/// The `clustername` does not match the cluster this node is in.
pub const WRONG_CLUSTER_NAME: &str = "Invalid clustername: does not match this node's cluster";

/// The `mynode: true` entry (or leaveCluster's node) does not describe the receiving node.
pub const NOT_THIS_NODE: &str =
    "Invalid nodes: the entry with \"mynode\": true does not describe this node";

/// leaveCluster's fields do not describe the receiving node.
pub const LEAVE_NOT_THIS_NODE: &str =
    "Invalid nodeid: address, port and nodeid do not describe this node";

/// leaveCluster on a node that is still a member (removeNode comes first).
pub const STILL_A_MEMBER: &str = "This node is still a member: send removeNode to the leader first";

/// addNode with a node id the cluster already has.
pub const NODE_ID_IN_USE: &str = "Invalid nodeid: a node with this id is already in the cluster";

/// addNode with an address:port the cluster already has.
pub const ADDRESS_IN_USE: &str =
    "Invalid address: a node with this address and port is already in the cluster";

/// removeNode or setLeader naming a node id that is not in the cluster.
pub const NODE_NOT_FOUND: &str = "Invalid nodeid: no node with this id in the cluster";

/// removeNode whose address or port differ from the node's.
pub const NODE_MISMATCH: &str =
    "Invalid nodeid: address and port do not match the node with this id";

/// removeNode that would leave fewer than three nodes.
pub const TOO_FEW_WOULD_REMAIN: &str =
    "Refused: a cluster needs at least 3 nodes, removing this node would leave fewer";

/// setLeader naming a node that is not a caught-up voter.
pub const NOT_A_CAUGHT_UP_VOTER: &str =
    "Invalid nodeid: the node is not a voter that is caught up with the leader";

/// A change the cluster could not commit (no majority answered in time).
pub const NOT_COMMITTED: &str =
    "The change was not committed: no majority of the cluster answered in time";
