//! Whether this node serves clients now: the rule of the listeners that follow
//! leadership, and the timings it rests on. Pure: the core feeds it what Raft's metrics
//! say and the time since the leader last heard from a majority.
//!
//! Full Sync serves clients on one node only: the leader, once it has applied every
//! committed entry (including the blank entry of its own term, so it knows the whole
//! committed state) and while a majority acknowledged it within [`LEASE`]. openraft keeps
//! a leader that is cut off from the majority in the Leader state (it only stops
//! committing), so the lease is checked here. A follower's election timer is at least
//! [`ELECTION_TIMEOUT_MIN`] after the last heartbeat it received, and openraft's
//! followers refuse to vote for [`ELECTION_TIMEOUT_MAX`] after theirs (its leader lease),
//! so a new leader is elected no earlier than that; a cut-off leader's last
//! acknowledgement is at or after that heartbeat, so it closes its listeners (`LEASE` +
//! one [`TICK`]) before any other node can be elected: never two nodes serving. The same
//! refusal makes an election after a leader fails take between about 2 ×
//! `ELECTION_TIMEOUT_MIN` and 2 × `ELECTION_TIMEOUT_MAX` (the first attempt is refused).
//! Dynamic-Security Sync and a node outside a cluster serve always.

use std::time::Duration;

/// How often the leader sends heartbeats.
pub const HEARTBEAT: Duration = Duration::from_millis(100);

/// The shortest time a follower waits without hearing from a leader before it stands.
pub const ELECTION_TIMEOUT_MIN: Duration = Duration::from_millis(500);

/// The longest such wait (each wait is drawn between the two).
pub const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(800);

/// How long a leader keeps serving without an acknowledgement from a majority.
pub const LEASE: Duration = Duration::from_millis(450);

/// How often the core looks at Raft's state (the listeners' reaction time).
pub const TICK: Duration = Duration::from_millis(20);

/// What the decision needs from Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RaftView {
    /// This node is the leader.
    pub leader: bool,
    /// The current term.
    pub term: u64,
    /// The term of the last committed entry (`None`: nothing committed).
    pub committed_term: Option<u64>,
    /// The index of the last committed entry.
    pub committed_index: Option<u64>,
    /// The index of the last entry applied here.
    pub applied_index: Option<u64>,
    /// Time since a majority last acknowledged this leader (`None`: never in this term).
    pub since_quorum_ack: Option<Duration>,
}

/// How the node takes part in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not in a cluster.
    Standalone,
    /// Full Sync: only the leader serves.
    Full,
    /// Dynamic-Security Sync: every node serves.
    Dynsec,
}

/// True when this node's client listeners must be open.
pub fn serves(mode: Mode, view: &RaftView) -> bool {
    match mode {
        Mode::Standalone | Mode::Dynsec => true,
        Mode::Full => {
            view.leader
                && view.committed_term == Some(view.term)
                && view.applied_index >= view.committed_index
                && view.since_quorum_ack.is_some_and(|since| since < LEASE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_leader() -> RaftView {
        RaftView {
            leader: true,
            term: 4,
            committed_term: Some(4),
            committed_index: Some(10),
            applied_index: Some(10),
            since_quorum_ack: Some(Duration::from_millis(30)),
        }
    }

    #[test]
    fn the_lease_closes_before_any_follower_may_stand() {
        assert!(LEASE + TICK < ELECTION_TIMEOUT_MIN);
        assert!(
            HEARTBEAT * 3 < LEASE,
            "a lost heartbeat or two does not close"
        );
    }

    #[test]
    fn full_sync_serves_on_a_caught_up_leader_with_a_fresh_lease_only() {
        assert!(serves(Mode::Full, &fresh_leader()));
        let cases = [
            RaftView {
                leader: false,
                ..fresh_leader()
            },
            RaftView {
                committed_term: Some(3),
                ..fresh_leader()
            },
            RaftView {
                applied_index: Some(9),
                ..fresh_leader()
            },
            RaftView {
                since_quorum_ack: None,
                ..fresh_leader()
            },
            RaftView {
                since_quorum_ack: Some(LEASE),
                ..fresh_leader()
            },
        ];
        for view in cases {
            assert!(!serves(Mode::Full, &view), "{view:?}");
        }
    }

    #[test]
    fn dynsec_sync_and_standalone_always_serve() {
        for mode in [Mode::Standalone, Mode::Dynsec] {
            assert!(serves(mode, &RaftView::default()));
        }
    }
}
