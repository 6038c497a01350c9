//! The state machine: what committed entries do on this node.
//!
//! Placement: one per node, on the replication core's thread, shared (`Rc`) between
//! openraft, which applies committed entries and builds and installs snapshots, and the core,
//! which carries out what applying asks for ([`Effect`]s: a new dynamic-security document, a
//! response to publish, clients to kick, the cluster deleted). Applying itself is pure
//! bookkeeping and never fails on data: an entry that does not decode is logged and skipped
//! (it was written by a newer version; the leader refuses to propose such entries).
//!
//! Snapshots are the image of the machine ([`Image`], rkyv) at an applied log id; the
//! current one is also kept in the HA data directory, so a restarted node starts from it.
//!
//! openraft's traits are implemented for every [`CulexConfig`]: the broker's runtime, and
//! the seeded simulator's (`crate::sim`, in tests), which runs this same machine.

// rkyv derives resolver and archived types of their own, which carry no docs.
#![allow(missing_docs)]

use crate::committed::Committed;
use crate::proposal::{ClusterOp, ClusterSettings, KickList, Proposal, Reply};
use crate::types::{
    CulexConfig, EntryPayload, LogId, NodeId, Snapshot, SnapshotMeta, StoredMembership,
};
use futures_channel::mpsc::UnboundedSender;
use futures_util::TryStreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{OptionalSend, RaftSnapshotBuilder};
use rkyv::{Archive, Deserialize, Serialize};
use shards::cluster_status::ClusterStatus;
use shards::state::Record;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What applying an entry asks the node to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The dynamic-security document changed: load it (and save it) on this node.
    Dynsec(Vec<u8>),
    /// Records for the shards (sessions, retained messages), in order, from an entry of
    /// `term` (the leader of that term applied them to its shards already).
    Records {
        /// The term of the entry.
        term: u64,
        /// The records.
        records: Vec<Record>,
    },
    /// Disconnect these clients on this node.
    Kick(KickList),
    /// Publish this response (this node's client asked).
    Reply(Reply),
    /// The cluster was deleted (by the entry at this log index): leave it, keep the
    /// data, run standalone.
    ClusterDeleted(u64),
    /// The cluster's settings (a joined node learns its sync mode).
    Settings(ClusterSettings),
    /// A snapshot replaced the whole state (the node's shards are rebuilt from it).
    Installed(Vec<Record>),
}

/// The replicated state a snapshot holds.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Image {
    /// The dynamic-security document, once one was committed.
    pub dynsec: Option<Vec<u8>>,
    /// The durable state of the shards (Full Sync), as records.
    pub records: Vec<Record>,
    /// The cluster's settings, once its first leader proposed them.
    pub settings: Option<ClusterSettings>,
}

/// The machine's state.
#[derive(Debug, Default)]
struct State {
    me: NodeId,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: Image,
    current: Option<(SnapshotMeta, Vec<u8>)>,
    effects: VecDeque<Effect>,
    /// The committed shard state (the image's `records` are built from it).
    committed: Committed,
    snapshot_file: Option<PathBuf>,
    doorbell: Option<UnboundedSender<()>>,
    status: Option<Arc<ClusterStatus>>,
}

/// The state machine handle (cheap to clone: every clone is the same machine).
#[derive(Clone, Debug, Default)]
pub struct Machine {
    state: Rc<RefCell<State>>,
}

impl Machine {
    /// The machine of node `me`, starting from the snapshot saved in `snapshot_file` when
    /// there is one (a damaged file is logged and ignored: the log and the leader rebuild
    /// the state). `doorbell` is rung whenever applying queued effects; `status` counts
    /// the snapshots built and installed.
    pub fn open(
        me: NodeId,
        snapshot_file: Option<PathBuf>,
        doorbell: UnboundedSender<()>,
        status: Arc<ClusterStatus>,
    ) -> Machine {
        let mut state = State {
            me,
            snapshot_file: snapshot_file.clone(),
            doorbell: Some(doorbell),
            status: Some(status),
            ..State::default()
        };
        if let Some(path) = &snapshot_file {
            match crate::snapshot_file::load(path) {
                Ok(Some((meta, data))) => match decode_image(&data) {
                    Some(image) => match Committed::from_records(image.records.clone()) {
                        Ok(committed) => {
                            state.last_applied = meta.last_log_id;
                            state.membership = meta.last_membership.clone();
                            state.committed = committed;
                            // The shards start empty: they get the snapshot's state as
                            // after an install, before the entries that follow it.
                            state
                                .effects
                                .push_back(Effect::Installed(image.records.clone()));
                            state.image = image;
                            state.current = Some((meta, data));
                        }
                        Err(error) => log::error!(
                            "Error: HA snapshot {}: {error}; it is not used.",
                            path.display()
                        ),
                    },
                    None => log::error!("Error: HA snapshot {} is damaged.", path.display()),
                },
                Ok(None) => {}
                Err(error) => log::error!("Error: HA snapshot {}: {error}.", path.display()),
            }
        }
        if !state.effects.is_empty() {
            Machine::ring(&state);
        }
        Machine {
            state: Rc::new(RefCell::new(state)),
        }
    }

    /// Takes what applying asked for since the last call.
    pub fn take_effects(&self) -> Vec<Effect> {
        self.state.borrow_mut().effects.drain(..).collect()
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId> {
        self.state.borrow().last_applied
    }

    /// The committed dynamic-security document, if one was committed.
    pub fn dynsec(&self) -> Option<Vec<u8>> {
        self.state.borrow().image.dynsec.clone()
    }

    /// The committed cluster settings, once proposed.
    pub fn settings(&self) -> Option<ClusterSettings> {
        self.state.borrow().image.settings.clone()
    }

    fn ring(state: &State) {
        if let Some(doorbell) = &state.doorbell {
            let _ = doorbell.unbounded_send(());
        }
    }

    /// The records of the committed shard state (sessions, retained messages).
    pub fn committed_records(&self) -> Vec<Record> {
        self.state.borrow().committed.records()
    }

    fn apply_one(&self, log_id: LogId, payload: &EntryPayload) {
        let mut state = self.state.borrow_mut();
        state.last_applied = Some(log_id);
        match payload {
            EntryPayload::Blank => {}
            EntryPayload::Membership(membership) => {
                state.membership = StoredMembership::new(Some(log_id), membership.clone());
            }
            EntryPayload::Normal(payload) => {
                let Some(proposal) = Proposal::decode(payload) else {
                    log::error!("Error: HA log entry {log_id} holds no proposal; skipped.");
                    return;
                };
                apply_proposal(&mut state, proposal, log_id);
            }
        }
    }
}

fn apply_proposal(state: &mut State, proposal: Proposal, log_id: LogId) {
    let index = log_id.index;
    let mut records = Vec::new();
    for record in proposal.records {
        match record {
            Record::Dynsec { document } => {
                state.image.dynsec = Some(document.clone());
                state.effects.push_back(Effect::Dynsec(document));
            }
            other => {
                // A record that does not fit the committed state was decided against
                // another state: a bug, logged; the rest of the entry still applies.
                if let Err(error) = state.committed.apply(other.clone()) {
                    log::error!("Error: HA: entry {index}: a record does not fit: {error}.");
                    continue;
                }
                records.push(other);
            }
        }
    }
    if !records.is_empty() {
        state.effects.push_back(Effect::Records {
            term: log_id.leader_id.term,
            records,
        });
    }
    // The response before the kicks, as the standalone service sends them.
    if let Some(reply) = proposal.reply {
        if reply.node == state.me {
            state.effects.push_back(Effect::Reply(reply));
        }
    }
    if let Some(kicks) = proposal.kicks {
        state.effects.push_back(Effect::Kick(kicks));
    }
    match proposal.cluster {
        Some(ClusterOp::Delete) => state.effects.push_back(Effect::ClusterDeleted(index)),
        Some(ClusterOp::Settings(settings)) => {
            state.image.settings = Some(settings.clone());
            state.effects.push_back(Effect::Settings(settings));
        }
        None => {}
    }
}

fn display_log_id(log_id: Option<&LogId>) -> String {
    log_id.map_or_else(
        || "the start".to_string(),
        |id| format!("index {}", id.index),
    )
}

fn encode_image(image: &Image) -> Vec<u8> {
    match rkyv::to_bytes::<rkyv::rancor::Error>(image) {
        Ok(bytes) => bytes.into_vec(),
        Err(error) => unreachable!("archiving plain owned data cannot fail: {error}"),
    }
}

fn decode_image(data: &[u8]) -> Option<Image> {
    let aligned = shards::state::frame::aligned(data);
    rkyv::from_bytes::<Image, rkyv::rancor::Error>(&aligned).ok()
}

impl<C: CulexConfig> RaftSnapshotBuilder<C> for Machine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut state = self.state.borrow_mut();
        state.image.records = state.committed.records();
        let data = encode_image(&state.image);
        let meta = SnapshotMeta {
            last_log_id: state.last_applied,
            last_membership: state.membership.clone(),
        };
        if let Some(path) = &state.snapshot_file {
            crate::snapshot_file::save(path, &meta, &data)?;
        }
        if let Some(status) = &state.status {
            status.snapshots_built.fetch_add(1, Ordering::Relaxed);
        }
        log::info!(
            "HA: node {} built a snapshot up to {} ({} bytes).",
            state.me,
            display_log_id(meta.last_log_id.as_ref()),
            data.len()
        );
        state.current = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: data,
        })
    }
}

impl<C: CulexConfig> RaftStateMachine<C> for Machine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.state.borrow();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures_util::Stream<Item = Result<EntryResponder<C>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            self.apply_one(entry.log_id, &entry.payload);
            if let Some(responder) = responder {
                responder.send(());
            }
        }
        Machine::ring(&self.state.borrow());
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let Some(image) = decode_image(&snapshot) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "damaged snapshot",
            ));
        };
        let committed = Committed::from_records(image.records.clone())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        let mut state = self.state.borrow_mut();
        if let Some(path) = &state.snapshot_file {
            crate::snapshot_file::save(path, meta, &snapshot)?;
        }
        state.last_applied = meta.last_log_id;
        state.membership = meta.last_membership.clone();
        if let Some(document) = &image.dynsec {
            state.effects.push_back(Effect::Dynsec(document.clone()));
        }
        if let Some(settings) = &image.settings {
            state.effects.push_back(Effect::Settings(settings.clone()));
        }
        if let Some(status) = &state.status {
            status.snapshots_installed.fetch_add(1, Ordering::Relaxed);
        }
        log::info!(
            "HA: node {} installed a snapshot up to {} ({} bytes).",
            state.me,
            display_log_id(meta.last_log_id.as_ref()),
            snapshot.len()
        );
        let records = image.records.clone();
        state.committed = committed;
        state.image = image;
        state.current = Some((meta.clone(), snapshot));
        state.effects.push_back(Effect::Installed(records));
        Machine::ring(&state);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self
            .state
            .borrow()
            .current
            .as_ref()
            .map(|(meta, data)| Snapshot {
                meta: meta.clone(),
                snapshot: data.clone(),
            }))
    }
}
