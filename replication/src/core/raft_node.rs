//! One running Raft instance of this node: its log store, state machine, the link server
//! on its cluster address, and the openraft configuration (timings from `lease`). Also
//! what the core reads from Raft: the view the listeners' rule needs, the leader's
//! address, the members.
//!
//! Placement: owned by the core while the node is in a cluster; started by createCluster,
//! joinCluster or a restart, stopped by leaveCluster, deleteCluster or shutdown.

use super::lease::{RaftView, ELECTION_TIMEOUT_MAX, ELECTION_TIMEOUT_MIN, HEARTBEAT};
use crate::machine::Machine;
use crate::network::{self, ForwardedRequest, Gate, Network};
use crate::store::{LogStore, LOG_DIR};
use crate::types::{Metrics, NodeId, Raft};
use futures_channel::{mpsc, oneshot};
use openraft::async_runtime::WatchReceiver;
use openraft::{Config, ServerState, SnapshotPolicy};
use shards::cluster_status::ClusterStatus;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// Entries between two snapshots.
pub const SNAPSHOT_EVERY: u64 = 5000;

/// Entries kept in the log behind a snapshot (a follower that far behind gets entries,
/// one further behind gets the snapshot).
pub const KEPT_BEHIND_SNAPSHOT: u64 = 1000;

/// The snapshot file's name in the HA data directory.
pub const SNAPSHOT_FILE: &str = "snapshot";

/// openraft's configuration for Culex's cluster.
pub fn config(cluster: &str) -> io::Result<Config> {
    let config = Config {
        cluster_name: cluster.to_string(),
        heartbeat_interval: HEARTBEAT.as_millis() as u64,
        election_timeout_min: ELECTION_TIMEOUT_MIN.as_millis() as u64,
        election_timeout_max: ELECTION_TIMEOUT_MAX.as_millis() as u64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
        max_in_snapshot_log_to_keep: KEPT_BEHIND_SNAPSHOT,
        install_snapshot_timeout: 10_000,
        enable_pre_vote: Some(true),
        ..Config::default()
    };
    config
        .validate()
        .map_err(|error| io::Error::other(format!("Raft configuration: {error}")))
}

/// A running Raft instance.
pub struct RaftNode {
    /// This node's id.
    pub me: NodeId,
    /// The Raft handle.
    pub raft: Raft,
    /// The state machine (its effects are drained by the core).
    pub machine: Machine,
    /// Who may talk to this node.
    pub gate: Rc<RefCell<Gate>>,
    stop_server: Option<oneshot::Sender<()>>,
}

/// What a Raft instance needs from the core.
pub struct Start<'a> {
    /// This node's id.
    pub me: NodeId,
    /// The cluster's name.
    pub cluster: &'a str,
    /// Where to listen for the other nodes (`address:port`).
    pub listen: &'a str,
    /// The node ids that may connect before Raft knows its membership.
    pub members: BTreeSet<NodeId>,
    /// The HA data directory.
    pub dir: &'a Path,
    /// Where forwarded requests go.
    pub forwarded: mpsc::UnboundedSender<ForwardedRequest>,
    /// Rung when applying produced effects.
    pub doorbell: mpsc::UnboundedSender<()>,
    /// The shared figures (snapshot counters).
    pub status: Arc<ClusterStatus>,
}

impl RaftNode {
    /// Binds the cluster address, opens the log and the snapshot, and starts Raft.
    pub async fn start(start: Start<'_>) -> io::Result<RaftNode> {
        let listener = bind(start.listen)?;
        let store = LogStore::open(&start.dir.join(LOG_DIR), Default::default())?;
        let machine = Machine::open(
            start.me,
            Some(start.dir.join(SNAPSHOT_FILE)),
            start.doorbell,
            start.status.clone(),
        );
        let source = listener.local_addr().ok().map(|addr| addr.ip());
        let gate = Rc::new(RefCell::new(Gate {
            cluster: Some(start.cluster.to_string()),
            members: start.members,
            source: source.filter(|ip| !ip.is_unspecified()),
        }));
        let network = Network::new(start.me, gate.clone(), start.status);
        let config = Arc::new(config(start.cluster)?);
        let raft = Raft::new(start.me, config, network, store, machine.clone())
            .await
            .map_err(|error| io::Error::other(format!("Raft did not start: {error}")))?;
        let (stop_server, stopped) = oneshot::channel();
        monoio::spawn(network::serve(
            listener,
            raft.clone(),
            gate.clone(),
            start.forwarded,
            stopped,
        ));
        Ok(RaftNode {
            me: start.me,
            raft,
            machine,
            gate,
            stop_server: Some(stop_server),
        })
    }

    /// Stops Raft and the link server.
    pub async fn stop(mut self) {
        self.gate.borrow_mut().cluster = None;
        if let Some(stop) = self.stop_server.take() {
            let _ = stop.send(());
        }
        if let Err(error) = self.raft.shutdown().await {
            log::warn!("Warning: HA: Raft did not stop cleanly: {error}.");
        }
    }

    /// Raft's metrics now.
    pub fn metrics(&self) -> Metrics {
        self.raft.metrics().borrow_watched().clone()
    }

    /// The leader this node knows of, with its cluster address.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.metrics();
        let leader = metrics.current_leader?;
        let address = metrics
            .membership_config
            .membership()
            .get_node(&leader)?
            .addr
            .clone();
        Some((leader, address))
    }
}

/// What the listeners' rule needs, from `metrics`.
pub fn view(metrics: &Metrics) -> RaftView {
    let since_quorum_ack = metrics.last_quorum_acked.as_ref().map(|acked| {
        let now =
            <openraft::alias::InstantOf<crate::types::TypeConfig> as openraft::Instant>::now();
        now - **acked
    });
    RaftView {
        leader: metrics.state == ServerState::Leader && metrics.current_leader == Some(metrics.id),
        term: metrics.current_term,
        committed_term: metrics.local_committed.map(|id| id.leader_id.term),
        committed_index: metrics.local_committed.map(|id| id.index),
        applied_index: metrics.last_applied.map(|id| id.index),
        since_quorum_ack,
    }
}

/// Time since the leader last heard from `node` (`None`: never, or not the leader).
pub fn since_heard(metrics: &Metrics, node: NodeId) -> Option<Duration> {
    let heard = metrics.heartbeat.as_ref()?.get(&node)?.as_ref()?;
    let now = <openraft::alias::InstantOf<crate::types::TypeConfig> as openraft::Instant>::now();
    Some(now - **heard)
}

/// Binds the cluster address.
fn bind(listen: &str) -> io::Result<monoio::net::TcpListener> {
    monoio::net::TcpListener::bind(listen).map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot listen on {listen} for the cluster: {error}"),
        )
    })
}

/// Removes the log and the snapshot from `dir` (leaving a cluster, or joining a new one).
pub fn wipe(dir: &Path) -> io::Result<()> {
    let log = dir.join(LOG_DIR);
    match std::fs::remove_dir_all(&log) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let snapshot: PathBuf = dir.join(SNAPSHOT_FILE);
    match std::fs::remove_file(&snapshot) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}
