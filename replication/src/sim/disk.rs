//! The simulated disk of one node, and openraft's log storage on it ([`SimStore`]).
//!
//! The disk ([`Disk`]) outlives the node's incarnations: a crash keeps what was synced and
//! a random prefix of what was written since (the last record it keeps may be torn: a
//! prefix of a batch), then the node restarts from it. The model is the real log's
//! contract (`crate::store`, `crate::log`): a write is visible to reads at once (the page
//! cache) and durable only once a sync covering it completed; appends, votes, the
//! committed id, truncations and purges return (and appends are acknowledged to openraft
//! through its `IOFlushed` callback) only once synced, as the real log's do. A flusher
//! task per incarnation syncs after a random virtual latency. The node's current snapshot
//! is kept here too, durable when saved (the real one is replaced atomically with fsync).
//!
//! Planted bugs ([`DiskBug`]) break that contract on purpose; `super::tests` shows the
//! simulator catches them.
//!
//! Called by the driver (`super`: opens a store per incarnation, crashes the disk) and by
//! openraft (the storage traits); reports every saved vote to the checker.

use super::check::Checker;
use super::rng::Rng;
use super::runtime;
use super::SimConfig;
use crate::types::{Entry, LogId, NodeId, SnapshotMeta, Vote};
use futures_channel::oneshot;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::poll_fn;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

/// A planted storage bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskBug {
    /// Appends are acknowledged as flushed (and return) before the sync: a crash loses
    /// entries the node said it had.
    AckBeforeSync,
    /// Appends return before the sync and are acknowledged after it. openraft's API
    /// allows this, but with its leader restore (on by default) a leader that crashes
    /// before the sync restarts as leader of the same term without the entries it had
    /// already sent, and gives their indexes to other entries. The real log syncs before
    /// `append` returns.
    ReturnBeforeSync,
    /// Votes are never persisted: a restarted node has forgotten every vote.
    VoteLost,
}

/// What kind of write the driver waits for to crash a node in the middle of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// Entries appended.
    Append,
    /// Any vote saved.
    Vote,
    /// A vote granted to another node.
    Grant,
}

/// One write.
#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Entry>),
    Truncate(Option<LogId>),
    Purge(LogId),
    Vote(Vote),
    Committed(Option<LogId>),
}

/// The log and stable records as one state.
#[derive(Debug, Clone, Default)]
struct Image {
    log: BTreeMap<u64, Entry>,
    purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

impl Image {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(entries) => {
                for entry in entries {
                    self.log.insert(entry.log_id.index, entry.clone());
                }
            }
            Op::Truncate(after) => {
                let from = after.map_or(0, |id| id.index + 1);
                self.log.split_off(&from);
            }
            Op::Purge(upto) => {
                self.log = self.log.split_off(&(upto.index + 1));
                self.purged = Some(*upto);
            }
            Op::Vote(vote) => self.vote = Some(*vote),
            Op::Committed(committed) => self.committed = *committed,
        }
    }
}

/// What waits for a sync.
enum Waiter {
    Flushed(IOFlushed<SimConfig>),
    Returned(oneshot::Sender<()>),
}

/// A node's disk.
pub struct Disk {
    node: NodeId,
    rng: Rng,
    bug: Option<DiskBug>,
    /// What survives any crash.
    durable: Image,
    /// What reads see: `durable` plus `pending`.
    cache: Image,
    /// Written since the last sync, in order.
    pending: Vec<Op>,
    /// Writes issued and synced in this incarnation (sequence numbers).
    written: u64,
    synced: u64,
    waiters: Vec<(u64, Waiter)>,
    flusher: Option<Waker>,
    /// Appends, votes and granted votes ever issued (the driver crashes nodes mid-write).
    appends: u64,
    votes: u64,
    grants: u64,
    watcher: Option<Waker>,
    /// The current snapshot.
    snapshot: Option<(SnapshotMeta, Vec<u8>)>,
}

impl Disk {
    /// An empty disk whose sync latencies and crash losses follow `rng`.
    pub fn new(node: NodeId, rng: Rng, bug: Option<DiskBug>) -> Rc<RefCell<Disk>> {
        Rc::new(RefCell::new(Disk {
            node,
            rng,
            bug,
            durable: Image::default(),
            cache: Image::default(),
            pending: Vec::new(),
            written: 0,
            synced: 0,
            waiters: Vec::new(),
            flusher: None,
            appends: 0,
            votes: 0,
            grants: 0,
            watcher: None,
            snapshot: None,
        }))
    }

    fn write(&mut self, op: Op) -> u64 {
        match &op {
            Op::Append(_) => self.appends += 1,
            Op::Vote(vote) => {
                self.votes += 1;
                if !vote.committed && vote.leader_id.voted_for != self.node {
                    self.grants += 1;
                }
            }
            _ => {}
        }
        if let Some(watcher) = self.watcher.take() {
            watcher.wake();
        }
        self.cache.apply(&op);
        self.pending.push(op);
        self.written += 1;
        if let Some(flusher) = self.flusher.take() {
            flusher.wake();
        }
        self.written
    }

    /// The node crashed: what was synced survives, and of what was written since, a random
    /// prefix (its last record possibly torn). Returns what was lost, for the trace.
    pub fn crash(&mut self) -> String {
        let pending = std::mem::take(&mut self.pending);
        let total = pending.len() as u64;
        let kept = self.rng.below(total + 1) as usize;
        let lost = total as usize - kept;
        for op in &pending[..kept] {
            self.durable.apply(op);
        }
        if let Some(Op::Append(entries)) = pending.get(kept) {
            let torn = self.rng.below(entries.len() as u64) as usize;
            if torn > 0 {
                self.durable.apply(&Op::Append(entries[..torn].to_vec()));
            }
        }
        self.cache = self.durable.clone();
        self.written = 0;
        self.synced = 0;
        self.waiters.clear();
        self.flusher = None;
        format!("{lost} of {total} unsynced writes lost")
    }

    /// Syncs every write issued up to `upto` and completes what waited for them.
    fn sync(&mut self, upto: u64) {
        let count = (upto - self.synced) as usize;
        for op in self.pending.drain(..count) {
            self.durable.apply(&op);
        }
        self.synced = upto;
        let (done, waiting): (Vec<_>, Vec<_>) =
            self.waiters.drain(..).partition(|(seq, _)| *seq <= upto);
        self.waiters = waiting;
        for (_, waiter) in done {
            match waiter {
                Waiter::Flushed(callback) => callback.io_completed(Ok(())),
                Waiter::Returned(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// The snapshot on disk.
    pub fn snapshot(&self) -> Option<(SnapshotMeta, Vec<u8>)> {
        self.snapshot.clone()
    }

    /// Saves the node's current snapshot (durable at once).
    pub fn save_snapshot(&mut self, meta: &SnapshotMeta, data: &[u8]) {
        self.snapshot = Some((meta.clone(), data.to_vec()));
    }

    /// Writes of `kind` issued so far.
    pub fn writes(&self, kind: WriteKind) -> u64 {
        match kind {
            WriteKind::Append => self.appends,
            WriteKind::Vote => self.votes,
            WriteKind::Grant => self.grants,
        }
    }

    /// Wakes `waker` at the next write.
    pub fn watch(&mut self, waker: Waker) {
        self.watcher = Some(waker);
    }

    /// The last entry id on disk (for the trace).
    pub fn last_index(&self) -> Option<u64> {
        self.cache.log.keys().next_back().copied()
    }
}

/// The flusher of one incarnation: syncs what was written, after the disk's latency.
pub async fn flusher(disk: Rc<RefCell<Disk>>) {
    loop {
        poll_fn(|cx| {
            let mut d = disk.borrow_mut();
            if d.written > d.synced {
                Poll::Ready(())
            } else {
                d.flusher = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        let (upto, latency) = {
            let mut d = disk.borrow_mut();
            let latency = Duration::from_micros(d.rng.between(300, 6_000));
            (d.written, latency)
        };
        runtime::sleep(latency).await;
        disk.borrow_mut().sync(upto);
    }
}

/// openraft's log storage of one incarnation of a node.
#[derive(Clone)]
pub struct SimStore {
    node: NodeId,
    disk: Rc<RefCell<Disk>>,
    checker: Rc<Checker>,
}

impl SimStore {
    /// The store of `node` on `disk`.
    pub fn new(node: NodeId, disk: Rc<RefCell<Disk>>, checker: Rc<Checker>) -> SimStore {
        SimStore {
            node,
            disk,
            checker,
        }
    }

    /// Writes `op` and waits until it is synced.
    async fn write_synced(&self, op: Op) {
        let (done, synced) = oneshot::channel();
        {
            let mut disk = self.disk.borrow_mut();
            let seq = disk.write(op);
            disk.waiters.push((seq, Waiter::Returned(done)));
        }
        // A crash drops the waiter and this task with it.
        let _ = synced.await;
    }
}

impl RaftLogReader<SimConfig> for SimStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let disk = self.disk.borrow();
        let start = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(i),
            Bound::Excluded(&i) => Bound::Excluded(i),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(i),
            Bound::Excluded(&i) => Bound::Excluded(i),
            Bound::Unbounded => Bound::Unbounded,
        };
        Ok(disk
            .cache
            .log
            .range((start, end))
            .map(|(_, entry)| entry.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.disk.borrow().cache.vote)
    }
}

impl RaftLogStorage<SimConfig> for SimStore {
    type LogReader = SimStore;

    async fn get_log_state(&mut self) -> Result<LogState<SimConfig>, io::Error> {
        let disk = self.disk.borrow();
        let last_purged_log_id = disk.cache.purged;
        let last_log_id = disk
            .cache
            .log
            .values()
            .next_back()
            .map(|entry| entry.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.checker.vote_saved(self.node, vote);
        let bug = self.disk.borrow().bug;
        if bug == Some(DiskBug::VoteLost) {
            let mut disk = self.disk.borrow_mut();
            disk.votes += 1;
            if !vote.committed && vote.leader_id.voted_for != disk.node {
                disk.grants += 1;
            }
            if let Some(watcher) = disk.watcher.take() {
                watcher.wake();
            }
            disk.cache.vote = Some(*vote);
            return Ok(());
        }
        self.write_synced(Op::Vote(*vote)).await;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.write_synced(Op::Committed(committed)).await;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.disk.borrow().cache.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<SimConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let bug = self.disk.borrow().bug;
        match bug {
            Some(DiskBug::AckBeforeSync) => {
                self.disk.borrow_mut().write(Op::Append(entries));
                callback.io_completed(Ok(()));
            }
            Some(DiskBug::ReturnBeforeSync) => {
                let mut disk = self.disk.borrow_mut();
                let seq = disk.write(Op::Append(entries));
                disk.waiters.push((seq, Waiter::Flushed(callback)));
            }
            _ => {
                self.write_synced(Op::Append(entries)).await;
                callback.io_completed(Ok(()));
            }
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.write_synced(Op::Truncate(last_log_id)).await;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.write_synced(Op::Purge(log_id)).await;
        Ok(())
    }
}
