//! The simulator's invariants, checked as the run goes, and the state machine wrapper that
//! feeds them ([`Recorder`]).
//!
//! Owns the whole run's record of what the cluster did:
//! - **one leader per term**: every committed vote any node saves, and every node that
//!   reports itself leader, names the same node for a term, over the whole run;
//! - **one applied history**: every node applies indexes in order with no gap (from the
//!   start, the snapshot it restarted from, or one it installed), the entry it applies at an
//!   index is the one every other node applied there (term and content), and after each
//!   batch and each snapshot its machine holds the state that history gives at that
//!   index: the dynamic-security document, and the committed sessions and retained
//!   messages (Full Sync's records, replayed here into a model of their own);
//! - **no acknowledged change lost**: an acknowledged proposal is in that history at its
//!   index (checked again at the end on every node, see `super`), and every node that
//!   applied past an acknowledged session proposal holds that session, its subscription,
//!   its queued message, its unreleased QoS 2 receipt (lost, a retransmission would be
//!   delivered twice) and its retained message, whatever leaders came and went.
//!
//! Called by the disk (saved votes), the recorder (applies, snapshots), the metrics
//! observers and the driver (`super`: acknowledgements, the trace, the verdict).

use super::disk::Disk;
use super::runtime;
use super::SimConfig;
use crate::committed::Committed;
use crate::machine::{Image, Machine};
use crate::proposal::Proposal;
use crate::types::{Entry, EntryPayload, LogId, NodeId, Snapshot, SnapshotMeta, Vote};
use futures_util::TryStreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{OptionalSend, RaftSnapshotBuilder};
use shards::state::record::ChangeRecord;
use shards::state::Record;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::rc::Rc;

/// What the history holds at one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Applied {
    term: u64,
    digest: u64,
    /// The dynamic-security document in force once this entry is applied.
    document: Option<u64>,
    /// The committed sessions and retained messages once this entry is applied.
    sessions: u64,
}

/// What an acknowledged session proposal must leave on every node that applied it.
#[derive(Debug, Clone)]
pub struct SessionAck {
    /// The entry's index.
    pub index: u64,
    /// The session's client id.
    pub client_id: String,
    /// Its subscription's filter.
    pub filter: String,
    /// The packet id of the message queued for it.
    pub packet_id: u16,
    /// The packet id of a QoS 2 PUBLISH received from it and not yet released: lost, a
    /// new leader would deliver the client's retransmission a second time.
    pub inbound_qos2: u16,
    /// The topic of the retained message the proposal set.
    pub retained: String,
}

/// The run's record and verdict.
#[derive(Default)]
pub struct Checker {
    violations: RefCell<Vec<String>>,
    trace: Rc<RefCell<Vec<String>>>,
    history: RefCell<BTreeMap<u64, Applied>>,
    next: RefCell<BTreeMap<NodeId, u64>>,
    leaders: RefCell<BTreeMap<u64, NodeId>>,
    acked: RefCell<BTreeMap<u64, u64>>,
    acked_sessions: RefCell<Vec<SessionAck>>,
    /// The committed shard state at the history's last index.
    model: RefCell<Committed>,
}

/// A stable digest of `value` within a run.
pub fn digest<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// A digest of committed shard state as records.
pub fn records_digest(records: &[Record]) -> u64 {
    digest(&format!("{records:?}"))
}

/// The session and retained records an entry carries.
fn entry_records(entry: &Entry) -> Vec<Record> {
    let EntryPayload::Normal(payload) = &entry.payload else {
        return Vec::new();
    };
    Proposal::decode(payload)
        .map(|p| p.records)
        .unwrap_or_default()
        .into_iter()
        .filter(|record| !matches!(record, Record::Dynsec { .. }))
        .collect()
}

fn entry_digest(entry: &Entry) -> u64 {
    match &entry.payload {
        EntryPayload::Blank => digest(&(entry.log_id.index, "blank")),
        EntryPayload::Normal(payload) => digest(&(entry.log_id.index, &payload.0[..])),
        EntryPayload::Membership(m) => digest(&(entry.log_id.index, format!("{m:?}"))),
    }
}

/// The dynamic-security document an entry sets, if it sets one.
fn entry_document(entry: &Entry) -> Option<u64> {
    let EntryPayload::Normal(payload) = &entry.payload else {
        return None;
    };
    let proposal = Proposal::decode(payload)?;
    proposal
        .records
        .iter()
        .rev()
        .find_map(|record| match record {
            Record::Dynsec { document } => Some(digest(&document[..])),
            _ => None,
        })
}

impl Checker {
    /// A checker that writes its trace into `trace` (which outlives a run that panics).
    pub fn new(trace: Rc<RefCell<Vec<String>>>) -> Checker {
        Checker {
            trace,
            ..Checker::default()
        }
    }

    /// Adds a line to the run's trace, stamped with virtual time.
    pub fn trace(&self, line: String) {
        let at = runtime::elapsed();
        self.trace.borrow_mut().push(format!(
            "{:>4}.{:03}s {line}",
            at.as_secs(),
            at.subsec_millis()
        ));
    }

    /// The trace so far.
    pub fn lines(&self) -> Vec<String> {
        self.trace.borrow().clone()
    }

    /// Records a broken invariant.
    pub fn violation(&self, what: String) {
        self.trace(format!("VIOLATION: {what}"));
        self.violations.borrow_mut().push(what);
    }

    /// The first broken invariant, if any.
    pub fn verdict(&self) -> Result<(), String> {
        match self.violations.borrow().first() {
            Some(first) => Err(first.clone()),
            None => Ok(()),
        }
    }

    fn leader(&self, term: u64, node: NodeId, how: &str) {
        let mut leaders = self.leaders.borrow_mut();
        match leaders.get(&term) {
            Some(&known) if known != node => {
                drop(leaders);
                self.violation(format!(
                    "two leaders in term {term}: node {known} and node {node} ({how})"
                ));
            }
            Some(_) => {}
            None => {
                leaders.insert(term, node);
            }
        }
    }

    /// A node saved `vote` (a committed vote names the leader of its term).
    pub fn vote_saved(&self, _node: NodeId, vote: &Vote) {
        if vote.committed {
            self.leader(
                vote.leader_id.term,
                vote.leader_id.voted_for,
                "committed vote",
            );
        }
    }

    /// `node` reported itself leader of `term`.
    pub fn leader_seen(&self, node: NodeId, term: u64) {
        self.leader(term, node, "metrics");
    }

    /// `node` starts applying after `last` (its restart point).
    pub fn restored(&self, node: NodeId, last: Option<LogId>) {
        self.next
            .borrow_mut()
            .insert(node, last.map_or(0, |id| id.index + 1));
    }

    /// `node` is about to apply `entry`.
    fn applying(&self, node: NodeId, entry: &Entry) {
        let index = entry.log_id.index;
        let expected = self.next.borrow().get(&node).copied().unwrap_or(0);
        if index != expected {
            self.violation(format!(
                "node {node} applied index {index} where index {expected} was next"
            ));
        }
        self.next.borrow_mut().insert(node, index + 1);
        let term = entry.log_id.leader_id.term;
        let digest = entry_digest(entry);
        let known = self.history.borrow().get(&index).copied();
        match known {
            Some(applied) if (applied.term, applied.digest) != (term, digest) => {
                self.violation(format!(
                    "node {node} applied a different entry at index {index} (term {term}, \
                     elsewhere term {})",
                    applied.term
                ));
            }
            Some(_) => {}
            None => {
                let last = self.history.borrow().keys().next_back().copied();
                if last.is_some_and(|last| last + 1 != index) {
                    self.violation(format!(
                        "node {node} applied index {index} first, after history's {last:?}"
                    ));
                }
                let before = index
                    .checked_sub(1)
                    .and_then(|i| self.history.borrow().get(&i).copied());
                let document = entry_document(entry).or(before.and_then(|b| b.document));
                let sessions = {
                    let mut model = self.model.borrow_mut();
                    for record in entry_records(entry) {
                        // As the machine: a record that does not fit changes nothing.
                        let _ = model.apply(record);
                    }
                    records_digest(&model.records())
                };
                self.history.borrow_mut().insert(
                    index,
                    Applied {
                        term,
                        digest,
                        document,
                        sessions,
                    },
                );
            }
        }
    }

    /// After `node` applied a batch or installed a snapshot: its machine holds the history's
    /// state at its last applied index.
    fn state(&self, node: NodeId, machine: &Machine, how: &str) {
        let Some(last) = machine.last_applied() else {
            return;
        };
        let known = self.history.borrow().get(&last.index).copied();
        let Some(applied) = known else {
            self.violation(format!(
                "node {node} {how} index {} that no node applied",
                last.index
            ));
            return;
        };
        if applied.term != last.leader_id.term {
            self.violation(format!(
                "node {node} {how} index {} of term {}, the history has term {}",
                last.index, last.leader_id.term, applied.term
            ));
        }
        let document = machine.dynsec().map(|d| digest(&d[..]));
        if document != applied.document {
            self.violation(format!(
                "node {node} {how} index {}: its dynamic-security document differs from \
                 the history's",
                last.index
            ));
        }
        let records = machine.committed_records();
        if let Err(error) = self.sessions_kept(node, last.index, &records) {
            self.violation(error);
        }
        if records_digest(&records) != applied.sessions {
            self.violation(format!(
                "node {node} {how} index {}: its committed sessions and retained messages \
                 differ from the history's",
                last.index
            ));
        }
    }

    /// An acknowledged session proposal (see [`SessionAck`]).
    pub fn session_acked(&self, ack: SessionAck) {
        self.acked_sessions.borrow_mut().push(ack);
    }

    /// Acknowledged session proposals.
    pub fn sessions_acked(&self) -> usize {
        self.acked_sessions.borrow().len()
    }

    /// `node`, having applied up to `applied` and holding `records`, holds every session
    /// acknowledged at or below `applied` with its subscription, queued message and
    /// retained message.
    pub fn sessions_kept(
        &self,
        node: NodeId,
        applied: u64,
        records: &[Record],
    ) -> Result<(), String> {
        for ack in self.acked_sessions.borrow().iter() {
            if ack.index > applied {
                continue;
            }
            let mut created = false;
            let mut subscribed = false;
            let mut queued = false;
            let mut qos2 = false;
            let mut retained = false;
            for record in records {
                match record {
                    Record::Session { client_id, change } if *client_id == ack.client_id => {
                        match change {
                            ChangeRecord::Created { .. } => created = true,
                            ChangeRecord::Subscribed { filter, .. } => {
                                subscribed |= *filter == ack.filter
                            }
                            ChangeRecord::Queued { packet_id, .. } => {
                                queued |= *packet_id == ack.packet_id
                            }
                            ChangeRecord::InboundQos2Received { packet_id } => {
                                qos2 |= *packet_id == ack.inbound_qos2
                            }
                            _ => {}
                        }
                    }
                    Record::Retained { topic, message } if *topic == ack.retained => {
                        retained = message.is_some();
                    }
                    _ => {}
                }
            }
            let lost: Vec<&str> = [
                (created, "session"),
                (subscribed, "subscription"),
                (queued, "queued publish"),
                (qos2, "QoS 2 receipt"),
                (retained, "retained message"),
            ]
            .into_iter()
            .filter(|(held, _)| !held)
            .map(|(_, what)| what)
            .collect();
            if !lost.is_empty() {
                return Err(format!(
                    "node {node} (applied up to {applied}) lost the acknowledged {} of \
                     client {} (index {})",
                    lost.join(", "),
                    ack.client_id,
                    ack.index
                ));
            }
        }
        Ok(())
    }

    /// A client's proposal was acknowledged (committed and applied on the leader) at
    /// `log_id`.
    pub fn acked(&self, log_id: LogId, proposal_digest: u64) {
        let index = log_id.index;
        self.acked.borrow_mut().insert(index, proposal_digest);
        let known = self.history.borrow().get(&index).copied();
        match known {
            Some(applied) if applied.digest == proposal_digest => {}
            _ => self.violation(format!(
                "an acknowledged proposal at index {index} is not what was applied there"
            )),
        }
    }

    /// The highest acknowledged index, if any.
    pub fn last_acked(&self) -> Option<u64> {
        self.acked.borrow().keys().next_back().copied()
    }

    /// The document the history gives at `index`.
    pub fn document_at(&self, index: u64) -> Option<u64> {
        self.history.borrow().get(&index).and_then(|a| a.document)
    }

    /// Every acknowledged proposal is still in the history at its index.
    pub fn acked_kept(&self) -> Result<(), String> {
        let history = self.history.borrow();
        for (index, proposal) in self.acked.borrow().iter() {
            if history.get(index).map(|a| a.digest) != Some(*proposal) {
                return Err(format!(
                    "the acknowledged proposal at index {index} was lost"
                ));
            }
        }
        Ok(())
    }

    /// A digest of the whole history (for the determinism check).
    pub fn history_digest(&self) -> u64 {
        let history = self.history.borrow();
        digest(
            &history
                .iter()
                .map(|(i, a)| (*i, a.term, a.digest))
                .collect::<Vec<_>>(),
        )
    }

    /// Entries in the history.
    pub fn history_len(&self) -> usize {
        self.history.borrow().len()
    }
}

/// The digest of a proposal's payload at `index` (what [`Checker::acked`] compares).
pub fn proposal_digest(index: u64, payload: &crate::types::Payload) -> u64 {
    digest(&(index, &payload.0[..]))
}

/// A planted state-machine bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineBug {
    /// Snapshots are built without the sessions (as if the image's records were not
    /// refreshed from the committed state): a node that installs or restarts from one has
    /// lost them.
    SnapshotWithoutSessions,
}

/// openraft's state machine in the simulator: Culex's [`Machine`], untouched, with every
/// entry it applies and every snapshot it builds or installs reported to the checker; the
/// snapshots are kept on the node's simulated disk (the real machine keeps them in a file).
#[derive(Clone)]
pub struct Recorder {
    node: NodeId,
    machine: Machine,
    checker: Rc<Checker>,
    disk: Rc<RefCell<Disk>>,
    bug: Option<MachineBug>,
}

impl Recorder {
    /// The machine of a starting incarnation of `node`: from the snapshot on its disk, if
    /// there is one.
    pub async fn open(
        node: NodeId,
        disk: Rc<RefCell<Disk>>,
        checker: Rc<Checker>,
        bug: Option<MachineBug>,
    ) -> Recorder {
        let (doorbell, _) = futures_channel::mpsc::unbounded();
        let status = std::sync::Arc::new(shards::cluster_status::ClusterStatus::default());
        let mut machine = Machine::open(node, None, doorbell, status);
        let saved = disk.borrow().snapshot();
        if let Some((meta, data)) = saved {
            if let Err(error) =
                RaftStateMachine::<SimConfig>::install_snapshot(&mut machine, &meta, data).await
            {
                checker.violation(format!(
                    "node {node}: its own snapshot did not load: {error}"
                ));
            }
            machine.take_effects();
        }
        checker.restored(node, machine.last_applied());
        Recorder {
            node,
            machine,
            checker,
            disk,
            bug,
        }
    }

    /// The machine.
    pub fn machine(&self) -> &Machine {
        &self.machine
    }
}

impl RaftSnapshotBuilder<SimConfig> for Recorder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let mut snapshot =
            RaftSnapshotBuilder::<SimConfig>::build_snapshot(&mut self.machine).await?;
        if self.bug == Some(MachineBug::SnapshotWithoutSessions) {
            let aligned = shards::state::frame::aligned(&snapshot.snapshot);
            let mut image = rkyv::from_bytes::<Image, rkyv::rancor::Error>(&aligned)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            image
                .records
                .retain(|record| !matches!(record, Record::Session { .. }));
            snapshot.snapshot = rkyv::to_bytes::<rkyv::rancor::Error>(&image)
                .map_err(|e| io::Error::other(e.to_string()))?
                .into_vec();
        }
        self.disk
            .borrow_mut()
            .save_snapshot(&snapshot.meta, &snapshot.snapshot);
        let upto = snapshot.meta.last_log_id.map(|id| id.index);
        self.checker.trace(format!(
            "node {} builds a snapshot up to {upto:?}",
            self.node
        ));
        Ok(snapshot)
    }
}

impl RaftStateMachine<SimConfig> for Recorder {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, crate::types::StoredMembership), io::Error> {
        RaftStateMachine::<SimConfig>::applied_state(&mut self.machine).await
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures_util::Stream<Item = Result<EntryResponder<SimConfig>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        let checker = self.checker.clone();
        let node = self.node;
        let observed = entries.inspect_ok(move |(entry, _)| checker.applying(node, entry));
        RaftStateMachine::<SimConfig>::apply(&mut self.machine, observed).await?;
        self.checker.state(node, &self.machine, "applied up to");
        self.machine.take_effects();
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
        RaftStateMachine::<SimConfig>::install_snapshot(&mut self.machine, meta, snapshot.clone())
            .await?;
        self.disk.borrow_mut().save_snapshot(meta, &snapshot);
        let upto = meta.last_log_id.map(|id| id.index);
        self.checker.trace(format!(
            "node {} installs a snapshot up to {upto:?}",
            self.node
        ));
        self.checker.restored(self.node, meta.last_log_id);
        self.checker
            .state(self.node, &self.machine, "installed a snapshot up to");
        self.machine.take_effects();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        RaftStateMachine::<SimConfig>::get_current_snapshot(&mut self.machine).await
    }
}
