//! What one log entry proposes: the records that change the replicated state, and what the
//! node that proposed it must do once it is committed.
//!
//! Archived with rkyv into the entry's [`Payload`]; decoded (with validation) by every node
//! when it applies the entry. Fields are only ever appended.

// rkyv derives resolver and archived types of their own, which carry no docs.
#![allow(missing_docs)]

use crate::types::Payload;
use rkyv::{Archive, Deserialize, Serialize};
use shards::state::Record;

/// The content of a normal log entry.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Proposal {
    /// Changes to the replicated state, applied in order by every node.
    pub records: Vec<Record>,
    /// A change to the cluster itself.
    pub cluster: Option<ClusterOp>,
    /// Clients whose rights changed with these records, disconnected on every node.
    pub kicks: Option<KickList>,
    /// The response the asker waits for, published once the entry is committed.
    pub reply: Option<Reply>,
}

/// A change to the cluster decided through the log.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ClusterOp {
    /// `deleteCluster`: every node leaves the cluster and runs standalone with its data.
    Delete,
    /// The cluster's settings, proposed by its first leader: the nodes that joined learn
    /// the sync mode from it.
    Settings(ClusterSettings),
}

/// What every member must know about the cluster.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// `clustername`.
    pub name: String,
    /// `syncmode` (`"full"` or `"dynsec"`).
    pub sync: String,
}

/// Clients to disconnect because a dynamic-security change took their rights.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct KickList {
    /// User names whose connections are disconnected.
    pub usernames: Vec<Vec<u8>>,
    /// Connections without a user name too.
    pub anonymous: bool,
}

/// A control response to publish once the entry is committed.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Reply {
    /// The node whose client asked.
    pub node: u64,
    /// The shard of that node the request came in on (it publishes the response).
    pub shard: u8,
    /// The response topic.
    pub topic: String,
    /// The response (JSON).
    pub payload: Vec<u8>,
}

impl Proposal {
    /// The entry payload of this proposal.
    pub fn encode(&self) -> Payload {
        let capacity = 256
            + self.reply.as_ref().map_or(0, |reply| reply.payload.len())
            + self.records.len() * 64;
        Payload(bytes::Bytes::from(crate::wire::archive(self, capacity)))
    }

    /// The proposal an entry payload holds, validated; `None` if it is not one.
    pub fn decode(payload: &Payload) -> Option<Proposal> {
        crate::wire::with_aligned(&payload.0, |bytes| {
            rkyv::from_bytes::<Proposal, rkyv::rancor::Error>(bytes).ok()
        })
    }
}
