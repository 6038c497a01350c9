//! Raft's metrics turned into what the outside sees: the control API's getNode and
//! getCluster data, and the shared figures (`shards::cluster_status`) behind `/metrics`,
//! `/readyz` and `$SYS/broker/cluster`. Pure over a metrics value; called by the core.

use super::cluster_file::ClusterFile;
use super::lease::ELECTION_TIMEOUT_MAX;
use super::raft_node::since_heard;
use crate::control::{split_endpoint, ClusterInfo, ClusterNode, ClusterState, NodeInfo, NodeRole};
use crate::types::{Metrics, NodeId};
use openraft::ServerState;
use shards::cluster_status::{PeerStatus, Reading, Role};

/// This node's role as the API names it.
pub fn role(metrics: &Metrics) -> NodeRole {
    match metrics.state {
        ServerState::Leader => NodeRole::Leader,
        ServerState::Candidate => NodeRole::Candidate,
        ServerState::Learner => NodeRole::Learner,
        ServerState::Follower | ServerState::Shutdown => NodeRole::Follower,
    }
}

fn figure_role(metrics: &Metrics) -> Role {
    match metrics.state {
        ServerState::Leader => Role::Leader,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Follower => Role::Follower,
        ServerState::Shutdown => Role::Stopped,
    }
}

fn index(id: Option<u64>) -> u64 {
    id.unwrap_or(0)
}

/// The last log index the leader knows `node` has (`None`: not the leader).
fn matched(metrics: &Metrics, node: NodeId) -> Option<u64> {
    if node == metrics.id {
        return metrics.last_log_index;
    }
    let replication = metrics.replication.as_ref()?;
    Some(replication.get(&node)?.as_ref().map_or(0, |id| id.index))
}

/// Whether the leader heard from `node` within the election timeout.
pub fn online(metrics: &Metrics, node: NodeId) -> bool {
    node == metrics.id || since_heard(metrics, node).is_some_and(|d| d < ELECTION_TIMEOUT_MAX)
}

/// The shared figures.
pub fn reading(metrics: &Metrics, serving: bool, elections: u64) -> Reading {
    let last = index(metrics.last_log_index);
    let peers = metrics
        .membership_config
        .membership()
        .nodes()
        .filter(|(id, _)| **id != metrics.id)
        .filter_map(|(id, _)| {
            let matched = matched(metrics, *id)?;
            Some(PeerStatus {
                node: *id,
                matched,
                lag: last.saturating_sub(matched),
                last_contact_ms: since_heard(metrics, *id).map(|d| d.as_millis() as u64),
                online: online(metrics, *id),
            })
        })
        .collect();
    Reading {
        role: figure_role(metrics),
        serving,
        node: metrics.id,
        leader: metrics.current_leader.unwrap_or(0),
        term: metrics.current_term,
        last_log_index: last,
        commit_index: index(metrics.local_committed.map(|id| id.index)),
        applied_index: index(metrics.last_applied.map(|id| id.index)),
        elections,
        peers,
        ..Reading::default()
    }
}

/// getNode's data for a node in a cluster.
pub fn node_info(file: &ClusterFile, metrics: &Metrics, serving: bool) -> NodeInfo {
    let me = file.me();
    NodeInfo {
        node_id: me.map(|me| me.node_id),
        address: me.map(|me| me.address.clone()),
        port: me.map(|me| me.port),
        cluster_name: Some(file.name.clone()),
        sync: Some(file.sync),
        role: role(metrics),
        leader: metrics.current_leader.and_then(|id| u16::try_from(id).ok()),
        term: metrics.current_term,
        last_log_index: index(metrics.last_log_index),
        applied_index: index(metrics.last_applied.map(|id| id.index)),
        client_listeners_open: serving,
    }
}

/// getCluster's data (on the leader, which knows every member's progress).
pub fn cluster_info(file: &ClusterFile, metrics: &Metrics) -> ClusterInfo {
    let membership = metrics.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let last = index(metrics.last_log_index);
    let mut nodes = Vec::new();
    for (id, node) in membership.nodes() {
        let (address, port) = split_endpoint(&node.addr).unwrap_or((node.addr.clone(), 0));
        let role = if *id == metrics.id {
            role(metrics)
        } else if voters.contains(id) {
            NodeRole::Follower
        } else {
            NodeRole::Learner
        };
        let log_index = matched(metrics, *id).unwrap_or(0);
        nodes.push(ClusterNode {
            node_id: u16::try_from(*id).unwrap_or(0),
            address,
            port,
            role,
            leader: metrics.current_leader == Some(*id),
            online: online(metrics, *id),
            log_index,
            lag: last.saturating_sub(log_index),
        });
    }
    let reachable_voters = voters.iter().filter(|id| online(metrics, **id)).count();
    let reachable_nodes = nodes.iter().filter(|node| node.online).count();
    ClusterInfo {
        name: file.name.clone(),
        sync: file.sync,
        state: ClusterState::from_counts(
            reachable_voters,
            voters.len(),
            reachable_nodes,
            nodes.len(),
        ),
        leader: metrics.current_leader.and_then(|id| u16::try_from(id).ok()),
        term: metrics.current_term,
        commit_index: index(metrics.local_committed.map(|id| id.index)),
        nodes,
    }
}
