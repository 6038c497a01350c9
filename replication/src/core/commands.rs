//! The `$CONTROL/cedalo/ha/v1` commands carried out on this node: each parsed command
//! (`control`) checked against the node's cluster state and executed through Raft, and
//! the learners promoted once they have caught up.
//!
//! Called by the core's requests task, one request at a time; every command answers
//! (an error changes nothing), and every wait is bounded.

use super::raft_node::{self, RaftNode};
use super::{leave, raft, start_member, status, ClusterFile, Shared, COMMIT_TIMEOUT};
use crate::control::{
    endpoint_text, not_leader, parse_request, render, split_endpoint, Command, Data, NodeInfo,
    NodeSpec, Parsed, Request, Response, SyncMode, ADDRESS_IN_USE, ALREADY_IN_CLUSTER,
    LEAVE_NOT_THIS_NODE, NODE_ID_IN_USE, NODE_MISMATCH, NODE_NOT_FOUND, NOT_A_CAUGHT_UP_VOTER,
    NOT_COMMITTED, NOT_IN_CLUSTER, NOT_THIS_NODE, NO_LEADER, STILL_A_MEMBER, TOO_FEW_WOULD_REMAIN,
    WRONG_CLUSTER_NAME,
};
use crate::proposal::{ClusterOp, Proposal};
use crate::types::{Metrics, NodeId};
use crate::wire::Forwarded;
use openraft::{BasicNode, ChangeMembers};
use shards::control::HA_TOPIC;
use shards::dynsec::json::{self, Value};
use shards::dynsec::json_out::{to_compact, Out};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A learner this many entries behind (or closer) counts as caught up.
const CAUGHT_UP_LAG: u64 = 10;

/// Longest wait for leadership to move (setLeader, removeNode of the leader).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest wait for another node's answer (a command handed to the new leader, the
/// leader's view of the membership for leaveCluster).
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Answers one request payload.
pub(super) async fn serve(core: &Shared, payload: &[u8]) -> Vec<u8> {
    let mut responses = Vec::new();
    for parsed in parse_request(payload) {
        responses.push(match parsed {
            Parsed::Error(response) => response,
            Parsed::Command(request) => execute(core, &request).await,
        });
    }
    render(&responses)
}

/// Who leads, as this node knows it.
enum Lead {
    NotInCluster,
    Unavailable,
    Me,
    Other(NodeId, String),
    Unknown,
}

fn leadership(core: &Shared) -> Lead {
    let core = core.borrow();
    let Some(member) = core.member.as_ref() else {
        return Lead::NotInCluster;
    };
    let Some(node) = member.node.as_ref() else {
        return Lead::Unavailable;
    };
    match node.leader() {
        Some((leader, _)) if leader == node.me => Lead::Me,
        Some((leader, address)) => Lead::Other(leader, address),
        None => Lead::Unknown,
    }
}

fn cluster_name(core: &Shared) -> Option<String> {
    Some(core.borrow().member.as_ref()?.file.name.clone())
}

fn metrics(core: &Shared) -> Option<Metrics> {
    Some(core.borrow().member.as_ref()?.node.as_ref()?.metrics())
}

async fn execute(core: &Shared, request: &Request) -> Response {
    let error = |text: &str| Response::error(request, text);
    if request.command.leader_only() {
        match leadership(core) {
            Lead::NotInCluster => return error(NOT_IN_CLUSTER),
            Lead::Unavailable | Lead::Unknown => return error(NO_LEADER),
            Lead::Other(leader, address) => {
                let (host, port) = split_endpoint(&address).unwrap_or((address, 0));
                let id = u16::try_from(leader).unwrap_or(0);
                return error(&not_leader(id, &host, port));
            }
            Lead::Me => {}
        }
    }
    match &request.command {
        Command::CreateCluster { name, nodes, sync } => {
            create(core, request, name, nodes, *sync).await
        }
        Command::JoinCluster { name, nodes } => join(core, request, name, nodes).await,
        Command::AddNode {
            name,
            node_id,
            address,
            port,
        } => {
            add_node(
                core,
                request,
                name,
                *node_id,
                &endpoint_text(address, *port),
            )
            .await
        }
        Command::RemoveNode {
            name,
            node_id,
            address,
            port,
        } => remove_node(core, request, name, *node_id, address, *port).await,
        Command::LeaveCluster {
            name,
            node_id,
            address,
            port,
        } => leave_cluster(core, request, name, *node_id, address, *port).await,
        Command::DeleteCluster { name } => delete_cluster(core, request, name).await,
        Command::GetCluster => {
            let info = {
                let core = core.borrow();
                let member = core.member.as_ref();
                match (member, member.and_then(|m| m.node.as_ref())) {
                    (Some(member), Some(node)) => {
                        Some(status::cluster_info(&member.file, &node.metrics()))
                    }
                    _ => None,
                }
            };
            match info {
                Some(info) => Response::data(request, Data::Cluster(info)),
                None => error(NO_LEADER),
            }
        }
        Command::GetNode | Command::GetRaftStatus => {
            Response::data(request, Data::Node(node_info(core)))
        }
        Command::SetLeader { node_id } => set_leader(core, request, *node_id).await,
        Command::IsLeader => Response::data(
            request,
            Data::IsLeader(matches!(leadership(core), Lead::Me)),
        ),
    }
}

fn node_info(core: &Shared) -> NodeInfo {
    let core = core.borrow();
    let open = core.listeners_open == Some(true);
    match core.member.as_ref() {
        None => NodeInfo::standalone(open),
        Some(member) => match member.node.as_ref() {
            Some(node) => status::node_info(&member.file, &node.metrics(), open),
            None => {
                let me = member.file.me();
                NodeInfo {
                    node_id: me.map(|me| me.node_id),
                    address: me.map(|me| me.address.clone()),
                    port: me.map(|me| me.port),
                    cluster_name: Some(member.file.name.clone()),
                    sync: Some(member.file.sync),
                    ..NodeInfo::standalone(open)
                }
            }
        },
    }
}

/// createCluster and joinCluster: records `file` and starts Raft on it; the error text
/// otherwise (nothing stays).
async fn enter(core: &Shared, file: ClusterFile, sync_known: bool) -> Result<(), String> {
    if core.borrow().member.is_some() {
        return Err(ALREADY_IN_CLUSTER.to_string());
    }
    let dir = core.borrow().dir.clone();
    // The log of a cluster this node left before is not this cluster's.
    if let Err(error) = raft_node::wipe(&dir).and_then(|()| file.save(&dir)) {
        return Err(format!(
            "Cannot write the HA data directory {}: {error}",
            dir.display()
        ));
    }
    if let Err(error) = start_member(core, file, sync_known).await {
        // Nothing stays: the node is standalone as before.
        core.borrow_mut().member = None;
        let _ = raft_node::wipe(&dir).and_then(|()| ClusterFile::remove(&dir));
        return Err(format!("{NOT_THIS_NODE} ({error})"));
    }
    Ok(())
}

async fn create(
    core: &Shared,
    request: &Request,
    name: &str,
    nodes: &[NodeSpec],
    sync: SyncMode,
) -> Response {
    let file = ClusterFile {
        name: name.to_string(),
        sync,
        nodes: nodes.to_vec(),
    };
    if let Err(error) = enter(core, file, true).await {
        return Response::error(request, error);
    }
    let Some(raft) = raft(core) else {
        return Response::error(request, NO_LEADER);
    };
    let members: BTreeMap<NodeId, BasicNode> = nodes
        .iter()
        .map(|node| {
            (
                NodeId::from(node.node_id),
                BasicNode {
                    addr: endpoint_text(&node.address, node.port),
                },
            )
        })
        .collect();
    if let Err(error) = raft.initialize(members).await {
        leave(core, "createCluster failed").await;
        return Response::error(request, format!("Cannot create the cluster: {error}"));
    }
    log::info!(
        "HA: cluster \"{name}\" created ({} sync) with nodes {}.",
        sync.as_str(),
        describe(nodes)
    );
    Response::done(request)
}

async fn join(core: &Shared, request: &Request, name: &str, nodes: &[NodeSpec]) -> Response {
    // Full Sync until the cluster's settings arrive: the client listeners stay closed
    // rather than serve clients a Full Sync cluster's leader should have.
    let file = ClusterFile {
        name: name.to_string(),
        sync: SyncMode::Full,
        nodes: nodes.to_vec(),
    };
    if let Err(error) = enter(core, file, false).await {
        return Response::error(request, error);
    }
    log::info!(
        "HA: joined cluster \"{name}\" (nodes {}); waiting for its leader.",
        describe(nodes)
    );
    Response::done(request)
}

fn describe(nodes: &[NodeSpec]) -> String {
    let list: Vec<String> = nodes
        .iter()
        .map(|n| format!("{} at {}", n.node_id, endpoint_text(&n.address, n.port)))
        .collect();
    list.join(", ")
}

/// The error for a command naming cluster `name` on this node, if it is not this node's.
fn name_error(core: &Shared, name: &str) -> Option<&'static str> {
    match cluster_name(core) {
        None => Some(NOT_IN_CLUSTER),
        Some(current) if current != name => Some(WRONG_CLUSTER_NAME),
        Some(_) => None,
    }
}

async fn add_node(
    core: &Shared,
    request: &Request,
    name: &str,
    node_id: u16,
    addr: &str,
) -> Response {
    if let Some(error) = name_error(core, name) {
        return Response::error(request, error);
    }
    let (Some(raft), Some(metrics)) = (raft(core), metrics(core)) else {
        return Response::error(request, NO_LEADER);
    };
    let membership = metrics.membership_config.membership();
    if membership.get_node(&NodeId::from(node_id)).is_some() {
        return Response::error(request, NODE_ID_IN_USE);
    }
    if membership.nodes().any(|(_, node)| node.addr == addr) {
        return Response::error(request, ADDRESS_IN_USE);
    }
    let node = BasicNode {
        addr: addr.to_string(),
    };
    let add = raft.add_learner(NodeId::from(node_id), node, false);
    match monoio::time::timeout(COMMIT_TIMEOUT, add).await {
        Ok(Ok(_)) => {
            log::info!(
                "HA: node {node_id} at {addr} added as a learner; it becomes a voter once \
                 caught up."
            );
            Response::done(request)
        }
        _ => Response::error(request, NOT_COMMITTED),
    }
}

async fn remove_node(
    core: &Shared,
    request: &Request,
    name: &str,
    node_id: u16,
    address: &str,
    port: u16,
) -> Response {
    if let Some(error) = name_error(core, name) {
        return Response::error(request, error);
    }
    let (Some(raft), Some(metrics)) = (raft(core), metrics(core)) else {
        return Response::error(request, NO_LEADER);
    };
    let id = NodeId::from(node_id);
    let membership = metrics.membership_config.membership();
    let Some(node) = membership.get_node(&id) else {
        return Response::error(request, NODE_NOT_FOUND);
    };
    if node.addr != endpoint_text(address, port) {
        return Response::error(request, NODE_MISMATCH);
    }
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    if voters.contains(&id) && voters.len() <= crate::control::CLUSTER_NODES_MIN {
        return Response::error(request, TOO_FEW_WOULD_REMAIN);
    }
    if id == metrics.id {
        return hand_over_and_remove(core, request, &metrics, &voters).await;
    }
    let change = if voters.contains(&id) {
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    };
    let changed = raft.change_membership(change, false);
    match monoio::time::timeout(COMMIT_TIMEOUT, changed).await {
        Ok(Ok(_)) => {
            log::info!("HA: node {node_id} removed from cluster \"{name}\".");
            Response::done(request)
        }
        _ => Response::error(request, NOT_COMMITTED),
    }
}

/// removeNode of the leader itself: leadership moves to the most caught-up voter, which
/// then carries out the removal; its answer is this one.
async fn hand_over_and_remove(
    core: &Shared,
    request: &Request,
    metrics: &Metrics,
    voters: &BTreeSet<NodeId>,
) -> Response {
    let successor = voters
        .iter()
        .filter(|id| **id != metrics.id)
        .filter_map(|id| {
            let matched = metrics
                .replication
                .as_ref()?
                .get(id)?
                .as_ref()
                .map_or(0, |log_id| log_id.index);
            Some((matched, *id))
        })
        .max();
    let Some((_, successor)) = successor else {
        return Response::error(request, NOT_A_CAUGHT_UP_VOTER);
    };
    let Some((leader, address)) = transfer(core, successor).await else {
        return Response::error(
            request,
            format!("Leadership did not move to node {successor} in time; nothing was changed"),
        );
    };
    match ask(core, leader, &address, command_payload(request)).await {
        Some(answer) => answer_of(request, &answer),
        None => Response::error(
            request,
            format!("The new leader (node {leader}) did not answer; try again there"),
        ),
    }
}

/// Asks the leader to hand over to `to` and waits for the new leader to be known.
async fn transfer(core: &Shared, to: NodeId) -> Option<(NodeId, String)> {
    let raft = raft(core)?;
    raft.trigger().transfer_leader(to).await.ok()?;
    let deadline = std::time::Instant::now() + TRANSFER_TIMEOUT;
    while std::time::Instant::now() < deadline {
        monoio::time::sleep(super::lease::TICK).await;
        let leader = {
            let core = core.borrow();
            core.member
                .as_ref()?
                .node
                .as_ref()
                .and_then(RaftNode::leader)
        };
        if let Some((leader, address)) = leader {
            if leader == to {
                return Some((leader, address));
            }
        }
    }
    None
}

/// Sends an HA request to another node (the leader) and returns its response payload.
async fn ask(core: &Shared, to: NodeId, address: &str, payload: Vec<u8>) -> Option<Vec<u8>> {
    let (me, gate) = {
        let core = core.borrow();
        let node = core.member.as_ref()?.node.as_ref()?;
        (node.me, node.gate.clone())
    };
    let request = Forwarded {
        topic: HA_TOPIC.to_string(),
        payload,
        client_id: String::new(),
        username: None,
        origin: me,
        shard: 0,
    };
    crate::network::forward(me, &gate, to, address, request, ASK_TIMEOUT)
        .await
        .ok()
        .flatten()
}

/// The one-command request that repeats `request` elsewhere.
fn command_payload(request: &Request) -> Vec<u8> {
    let mut members = vec![("command", Out::str(request.command.name().as_bytes()))];
    match &request.command {
        Command::RemoveNode {
            name,
            node_id,
            address,
            port,
        } => {
            members.push(("clustername", Out::str(name.as_bytes())));
            members.push(("nodeid", Out::Int(i64::from(*node_id))));
            members.push(("address", Out::str(address.as_bytes())));
            members.push(("port", Out::Int(i64::from(*port))));
        }
        Command::GetCluster => {}
        _ => {}
    }
    to_compact(&Out::Object(vec![(
        "commands",
        Out::Array(vec![Out::Object(members)]),
    )]))
}

/// The first entry of another node's response payload, as the answer to `request`.
fn answer_of(request: &Request, payload: &[u8]) -> Response {
    let tree = json::parse(payload).ok();
    let entry = tree
        .as_ref()
        .and_then(|tree| tree.get("responses"))
        .and_then(Value::as_array)
        .and_then(<[Value]>::first);
    match entry {
        Some(entry) => match entry.get("error").and_then(Value::as_bytes) {
            Some(text) => Response::error(request, String::from_utf8_lossy(text)),
            None => Response::done(request),
        },
        None => Response::error(request, "The new leader's answer could not be read"),
    }
}

async fn leave_cluster(
    core: &Shared,
    request: &Request,
    name: &str,
    node_id: u16,
    address: &str,
    port: u16,
) -> Response {
    if let Some(error) = name_error(core, name) {
        return Response::error(request, error);
    }
    let me = core
        .borrow()
        .member
        .as_ref()
        .and_then(|m| m.file.me().cloned());
    let Some(me) = me else {
        return Response::error(request, NOT_IN_CLUSTER);
    };
    if (me.node_id, me.address.as_str(), me.port) != (node_id, address, port) {
        return Response::error(request, LEAVE_NOT_THIS_NODE);
    }
    if still_a_member(core, me.node_id).await {
        return Response::error(request, STILL_A_MEMBER);
    }
    leave(core, "leaveCluster").await;
    Response::done(request)
}

/// Whether the cluster still counts this node: it leads, or the leader it knows answers
/// that this node is in the membership. A node the leader no longer knows (removed; the
/// leader refuses its link) or that reaches no leader may leave.
async fn still_a_member(core: &Shared, me: u16) -> bool {
    match leadership(core) {
        Lead::Me => true,
        Lead::Other(leader, address) => {
            let query = to_compact(&Out::Object(vec![(
                "commands",
                Out::Array(vec![Out::Object(vec![(
                    "command",
                    Out::str(b"getCluster"),
                )])]),
            )]));
            let Some(answer) = ask(core, leader, &address, query).await else {
                return false;
            };
            let listed = json::parse(&answer).ok().is_some_and(|tree| {
                tree.get("responses")
                    .and_then(Value::as_array)
                    .and_then(<[Value]>::first)
                    .and_then(|entry| entry.get("data"))
                    .and_then(|data| data.get("nodes"))
                    .and_then(Value::as_array)
                    .is_some_and(|nodes| {
                        nodes.iter().any(|node| {
                            node.get("nodeid").and_then(Value::as_i64) == Some(i64::from(me))
                        })
                    })
            });
            listed
        }
        Lead::NotInCluster | Lead::Unavailable | Lead::Unknown => false,
    }
}

async fn delete_cluster(core: &Shared, request: &Request, name: &str) -> Response {
    if let Some(error) = name_error(core, name) {
        return Response::error(request, error);
    }
    let Some(raft) = raft(core) else {
        return Response::error(request, NO_LEADER);
    };
    let proposal = Proposal {
        cluster: Some(ClusterOp::Delete),
        ..Proposal::default()
    };
    let write = raft.client_write(proposal.encode());
    match monoio::time::timeout(COMMIT_TIMEOUT, write).await {
        Ok(Ok(_)) => {
            log::info!("HA: cluster \"{name}\" deleted; every node runs standalone.");
            super::drain_effects(core);
            Response::done(request)
        }
        _ => Response::error(request, NOT_COMMITTED),
    }
}

async fn set_leader(core: &Shared, request: &Request, node_id: u16) -> Response {
    let Some(metrics) = metrics(core) else {
        return Response::error(request, NO_LEADER);
    };
    let id = NodeId::from(node_id);
    let membership = metrics.membership_config.membership();
    if membership.get_node(&id).is_none() {
        return Response::error(request, NODE_NOT_FOUND);
    }
    if id == metrics.id {
        return Response::done(request);
    }
    let voter = membership.voter_ids().any(|voter| voter == id);
    let last = metrics.last_log_index.unwrap_or(0);
    let caught_up = metrics
        .replication
        .as_ref()
        .and_then(|r| r.get(&id))
        .and_then(|matched| matched.as_ref())
        .is_some_and(|matched| last.saturating_sub(matched.index) <= CAUGHT_UP_LAG);
    if !voter || !caught_up || !status::online(&metrics, id) {
        return Response::error(request, NOT_A_CAUGHT_UP_VOTER);
    }
    match transfer(core, id).await {
        Some(_) => {
            log::info!("HA: leadership moved to node {node_id} (setLeader).");
            Response::done(request)
        }
        None => Response::error(
            request,
            format!("Leadership did not move to node {node_id} in time"),
        ),
    }
}

/// On the leader: learners that have caught up become voters (one change at a time).
pub(super) fn promote_learners(core: &Shared) {
    let candidate = {
        let guard = core.borrow();
        if !guard.promoting.is_empty() {
            return;
        }
        let Some(node) = guard.member.as_ref().and_then(|m| m.node.as_ref()) else {
            return;
        };
        let metrics = node.metrics();
        if !raft_node::view(&metrics).leader {
            return;
        }
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let last = metrics.last_log_index.unwrap_or(0);
        let replication = metrics.replication.clone().unwrap_or_default();
        let learner = membership
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| !voters.contains(id))
            .find(|id| {
                replication
                    .get(id)
                    .and_then(|matched| matched.as_ref())
                    .is_some_and(|matched| last.saturating_sub(matched.index) <= CAUGHT_UP_LAG)
            });
        learner.map(|id| (id, node.raft.clone()))
    };
    let Some((id, raft)) = candidate else {
        return;
    };
    core.borrow_mut().promoting.insert(id);
    let core = core.clone();
    monoio::spawn(async move {
        let change =
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false);
        match monoio::time::timeout(COMMIT_TIMEOUT, change).await {
            Ok(Ok(_)) => log::info!("HA: node {id} caught up; it is a voter now."),
            Ok(Err(error)) => log::warn!("Warning: HA: node {id} stays a learner: {error}."),
            Err(_) => log::warn!("Warning: HA: promoting node {id} timed out; trying again."),
        }
        core.borrow_mut().promoting.remove(&id);
    });
}
