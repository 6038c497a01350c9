//! The openraft type configuration of Culex's cluster, and the payload of a log entry.
//!
//! openraft's types stay in this file, `wire.rs` (their wire form), `network.rs`, `store.rs`
//! and `core.rs` (and the simulator, `sim`, in tests); the rest of Culex sees the
//! replication core's own interface. [`CulexConfig`] names what the state machine and the
//! wire form need of a type configuration, so that the simulator's (another runtime) can
//! share them.

use bytes::Bytes;
use std::fmt;

/// A node's identity in a cluster: the `nodeid` of the control API, 1 to 1023.
pub type NodeId = u64;

/// The payload of a normal log entry: a [`crate::proposal::Proposal`] archived with rkyv.
/// Kept as `Bytes` so that copies of log entries (the log keeps some, replication sends
/// them) share one buffer.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload(pub Bytes);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.0.len())
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proposal of {} bytes", self.0.len())
    }
}

openraft::declare_raft_types!(
    /// Culex's Raft types: node ids are `u64`, a node is its cluster address, entries carry
    /// [`Payload`]s, and the runtime is monoio. Leader ids are standard Raft's (one leader
    /// per term; a log id is term and index).
    pub TypeConfig:
        D = Payload,
        R = (),
        NodeId = NodeId,
        Node = openraft::BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
        AsyncRuntime = openraft_rt_monoio::MonoioRuntime,
);

/// The type configurations Culex's state machine and wire form serve: [`TypeConfig`], and
/// any other that differs from it only in its runtime (the seeded simulator's, which runs
/// the same machine on virtual time). Every data type (log ids, entries, votes,
/// memberships, snapshots) is the same type under all of them.
pub trait CulexConfig:
    openraft::RaftTypeConfig<
    D = Payload,
    R = (),
    NodeId = NodeId,
    Node = openraft::BasicNode,
    Term = u64,
    LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
    Vote = Vote,
    Entry = Entry,
>
{
}

impl<C> CulexConfig for C where
    C: openraft::RaftTypeConfig<
        D = Payload,
        R = (),
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Term = u64,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
        Vote = Vote,
        Entry = Entry,
    >
{
}

/// The Raft instance, with Culex's state machine.
pub type Raft = openraft::Raft<TypeConfig, crate::machine::Machine>;
/// A log entry.
pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
/// A log id (leader id and index).
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A vote.
pub type Vote = <TypeConfig as openraft::RaftTypeConfig>::Vote;
/// The payload of an entry: blank, normal or membership.
pub type EntryPayload = openraft::alias::EntryPayloadOf<TypeConfig>;
/// A membership configuration.
pub type Membership = openraft::Membership<NodeId, openraft::BasicNode>;
/// A membership with the log id it was written at.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// What a snapshot covers.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot: its meta and its bytes.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;
/// Raft's view of the node, for getNode, getCluster and the listeners' lease check.
pub type Metrics = openraft::RaftMetrics<TypeConfig>;
