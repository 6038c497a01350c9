//! The cluster as this node sees it, for the readers that are not the replication core:
//! `/readyz` (does this node serve clients), `/metrics` and `$SYS/broker/cluster/...`.
//!
//! Placement: one [`ClusterStatus`] per process when the HA module is loaded, written by
//! the replication core (a few times a second and on every role change) and read by the
//! HTTP endpoint and shard 0's `$SYS` publisher. Neither is on the publish path, so the
//! per-peer list sits behind a mutex; the scalar figures are atomics. The rendering
//! ([`metrics`], [`sys_values`]) is pure, over a [`Reading`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

/// A node's role, as the control API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Role {
    /// Not in a cluster.
    #[default]
    Standalone,
    /// A voter following a leader.
    Follower,
    /// A voter asking for votes.
    Candidate,
    /// The leader.
    Leader,
    /// A member that does not vote yet (being caught up).
    Learner,
    /// In a cluster, but Raft stopped (a fatal storage error).
    Stopped,
}

impl Role {
    /// The name the control API and the metrics use.
    pub fn name(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
            Role::Learner => "learner",
            Role::Stopped => "stopped",
        }
    }

    const ALL: [Role; 6] = [
        Role::Standalone,
        Role::Follower,
        Role::Candidate,
        Role::Leader,
        Role::Learner,
        Role::Stopped,
    ];

    fn code(self) -> u8 {
        Role::ALL.iter().position(|r| *r == self).unwrap_or(0) as u8
    }

    fn from_code(code: u8) -> Role {
        Role::ALL
            .get(usize::from(code))
            .copied()
            .unwrap_or_default()
    }
}

/// What the leader knows of one other member.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PeerStatus {
    /// Its node id.
    pub node: u64,
    /// The last log index it acknowledged.
    pub matched: u64,
    /// Entries it is behind the leader's last log index.
    pub lag: u64,
    /// Milliseconds since it last acknowledged anything (`None`: never).
    pub last_contact_ms: Option<u64>,
    /// It answered within the election timeout.
    pub online: bool,
}

/// Every figure, read at once.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Reading {
    /// This node's role.
    pub role: Role,
    /// Client listeners are open: this node serves clients.
    pub serving: bool,
    /// This node's id (0: standalone).
    pub node: u64,
    /// The leader this node knows of (0: none).
    pub leader: u64,
    /// Current term.
    pub term: u64,
    /// Last index in this node's log.
    pub last_log_index: u64,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Highest index applied here.
    pub applied_index: u64,
    /// Leaders this node has seen elected (each new term with a leader).
    pub elections: u64,
    /// Snapshots this node built.
    pub snapshots_built: u64,
    /// Snapshots this node sent to a member behind.
    pub snapshots_sent: u64,
    /// Snapshots this node installed from the leader.
    pub snapshots_installed: u64,
    /// The other members (leader only; empty elsewhere).
    pub peers: Vec<PeerStatus>,
}

/// The shared figures (see the module doc).
#[derive(Debug, Default)]
pub struct ClusterStatus {
    role: AtomicU8,
    serving: AtomicBool,
    node: AtomicU64,
    leader: AtomicU64,
    term: AtomicU64,
    last_log_index: AtomicU64,
    commit_index: AtomicU64,
    applied_index: AtomicU64,
    elections: AtomicU64,
    /// Counted where it happens (the state machine builds, the link sends).
    pub snapshots_built: AtomicU64,
    /// Counted by the link when a snapshot reached a member.
    pub snapshots_sent: AtomicU64,
    /// Counted by the state machine.
    pub snapshots_installed: AtomicU64,
    peers: Mutex<Vec<PeerStatus>>,
}

impl ClusterStatus {
    /// Whether this node serves clients now (`/readyz`).
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Records whether the client listeners are open.
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    /// Records the core's view of Raft (the snapshot counters are left as they are).
    pub fn update(&self, reading: &Reading) {
        self.role.store(reading.role.code(), Ordering::Relaxed);
        self.node.store(reading.node, Ordering::Relaxed);
        self.leader.store(reading.leader, Ordering::Relaxed);
        self.term.store(reading.term, Ordering::Relaxed);
        self.last_log_index
            .store(reading.last_log_index, Ordering::Relaxed);
        self.commit_index
            .store(reading.commit_index, Ordering::Relaxed);
        self.applied_index
            .store(reading.applied_index, Ordering::Relaxed);
        self.elections.store(reading.elections, Ordering::Relaxed);
        if let Ok(mut peers) = self.peers.lock() {
            peers.clone_from(&reading.peers);
        }
    }

    /// Every figure now.
    pub fn read(&self) -> Reading {
        Reading {
            role: Role::from_code(self.role.load(Ordering::Relaxed)),
            serving: self.serving(),
            node: self.node.load(Ordering::Relaxed),
            leader: self.leader.load(Ordering::Relaxed),
            term: self.term.load(Ordering::Relaxed),
            last_log_index: self.last_log_index.load(Ordering::Relaxed),
            commit_index: self.commit_index.load(Ordering::Relaxed),
            applied_index: self.applied_index.load(Ordering::Relaxed),
            elections: self.elections.load(Ordering::Relaxed),
            snapshots_built: self.snapshots_built.load(Ordering::Relaxed),
            snapshots_sent: self.snapshots_sent.load(Ordering::Relaxed),
            snapshots_installed: self.snapshots_installed.load(Ordering::Relaxed),
            peers: self.peers.lock().map(|p| p.clone()).unwrap_or_default(),
        }
    }
}

/// The Prometheus lines of the cluster figures (`culex_cluster_*`).
pub fn metrics(out: &mut String, reading: &Reading) {
    let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    let counter = |out: &mut String, name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    let name = "culex_cluster_role";
    let _ = writeln!(
        out,
        "# HELP {name} This node's role in the cluster (1 for the current one).\n\
         # TYPE {name} gauge"
    );
    for role in Role::ALL {
        let _ = writeln!(
            out,
            "{name}{{role=\"{}\"}} {}",
            role.name(),
            u8::from(role == reading.role)
        );
    }
    let rows: [(&str, &str, u64); 7] = [
        (
            "culex_cluster_serving",
            "1 when this node's client listeners are open.",
            u64::from(reading.serving),
        ),
        ("culex_cluster_node_id", "This node's id.", reading.node),
        (
            "culex_cluster_leader_id",
            "The leader this node knows of (0: none).",
            reading.leader,
        ),
        ("culex_cluster_term", "The current Raft term.", reading.term),
        (
            "culex_cluster_last_log_index",
            "Last index in this node's log.",
            reading.last_log_index,
        ),
        (
            "culex_cluster_commit_index",
            "Highest log index known committed.",
            reading.commit_index,
        ),
        (
            "culex_cluster_applied_index",
            "Highest log index applied on this node.",
            reading.applied_index,
        ),
    ];
    for (name, help, value) in rows {
        gauge(out, name, help, value);
    }
    let counters: [(&str, &str, u64); 4] = [
        (
            "culex_cluster_elections_total",
            "Leaders this node has seen elected.",
            reading.elections,
        ),
        (
            "culex_cluster_snapshots_built_total",
            "Snapshots this node built.",
            reading.snapshots_built,
        ),
        (
            "culex_cluster_snapshots_sent_total",
            "Snapshots this node sent to members behind.",
            reading.snapshots_sent,
        ),
        (
            "culex_cluster_snapshots_installed_total",
            "Snapshots this node installed from the leader.",
            reading.snapshots_installed,
        ),
    ];
    for (name, help, value) in counters {
        counter(out, name, help, value);
    }
    let peer_rows: [(&str, &str); 3] = [
        (
            "culex_cluster_peer_lag",
            "Entries a member is behind the leader (leader only).",
        ),
        (
            "culex_cluster_peer_last_contact_seconds",
            "Seconds since a member last answered the leader (leader only).",
        ),
        (
            "culex_cluster_peer_online",
            "1 when a member answered within the election timeout (leader only).",
        ),
    ];
    for (column, (name, help)) in peer_rows.into_iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for peer in &reading.peers {
            let value = match column {
                0 => peer.lag.to_string(),
                1 => match peer.last_contact_ms {
                    Some(ms) => format!("{:.3}", ms as f64 / 1000.0),
                    None => "NaN".to_string(),
                },
                _ => u8::from(peer.online).to_string(),
            };
            let _ = writeln!(out, "{name}{{node=\"{}\"}} {value}", peer.node);
        }
    }
}

/// The `$SYS/broker/cluster/...` topics and their values.
pub fn sys_values(reading: &Reading) -> Vec<(String, String)> {
    let mut values = vec![
        ("role".to_string(), reading.role.name().to_string()),
        ("serving".to_string(), u8::from(reading.serving).to_string()),
        ("node_id".to_string(), reading.node.to_string()),
        ("leader_id".to_string(), reading.leader.to_string()),
        ("term".to_string(), reading.term.to_string()),
        (
            "last_log_index".to_string(),
            reading.last_log_index.to_string(),
        ),
        ("commit_index".to_string(), reading.commit_index.to_string()),
        (
            "applied_index".to_string(),
            reading.applied_index.to_string(),
        ),
        ("elections".to_string(), reading.elections.to_string()),
        (
            "snapshots/built".to_string(),
            reading.snapshots_built.to_string(),
        ),
        (
            "snapshots/sent".to_string(),
            reading.snapshots_sent.to_string(),
        ),
        (
            "snapshots/installed".to_string(),
            reading.snapshots_installed.to_string(),
        ),
    ];
    for peer in &reading.peers {
        let node = peer.node;
        values.push((format!("peers/{node}/lag"), peer.lag.to_string()));
        values.push((
            format!("peers/{node}/online"),
            u8::from(peer.online).to_string(),
        ));
    }
    values
        .into_iter()
        .map(|(topic, value)| (format!("$SYS/broker/cluster/{topic}"), value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> Reading {
        Reading {
            role: Role::Leader,
            serving: true,
            node: 1,
            leader: 1,
            term: 3,
            last_log_index: 40,
            commit_index: 40,
            applied_index: 39,
            elections: 2,
            snapshots_sent: 1,
            peers: vec![PeerStatus {
                node: 2,
                matched: 38,
                lag: 2,
                last_contact_ms: Some(1500),
                online: true,
            }],
            ..Reading::default()
        }
    }

    #[test]
    fn a_reading_survives_the_shared_figures() {
        let status = ClusterStatus::default();
        let mut reading = leader();
        status.update(&reading);
        status.set_serving(true);
        status.snapshots_sent.fetch_add(1, Ordering::Relaxed);
        reading.snapshots_sent = 1;
        assert_eq!(status.read(), reading);
        for role in Role::ALL {
            assert_eq!(Role::from_code(role.code()), role);
        }
    }

    #[test]
    fn metrics_name_the_role_and_every_peer() {
        let mut out = String::new();
        metrics(&mut out, &leader());
        assert!(out.contains("culex_cluster_role{role=\"leader\"} 1\n"));
        assert!(out.contains("culex_cluster_role{role=\"follower\"} 0\n"));
        assert!(out.contains("culex_cluster_term 3\n"));
        assert!(out.contains("culex_cluster_peer_lag{node=\"2\"} 2\n"));
        assert!(out.contains("culex_cluster_peer_last_contact_seconds{node=\"2\"} 1.500\n"));
        assert!(out.contains("culex_cluster_snapshots_sent_total 1\n"));
    }

    #[test]
    fn sys_topics_carry_the_same_figures() {
        let values = sys_values(&leader());
        let get = |topic: &str| {
            values
                .iter()
                .find(|(t, _)| t == topic)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("$SYS/broker/cluster/role"), Some("leader"));
        assert_eq!(get("$SYS/broker/cluster/commit_index"), Some("40"));
        assert_eq!(get("$SYS/broker/cluster/peers/2/lag"), Some("2"));
    }
}
