//! openraft's log storage on the node's write-ahead log (`log::Wal`) and stable records
//! (`log::Stable`): the adapter between openraft's types and the log's own.
//!
//! Placement: one per running Raft instance, on the replication core's thread, shared
//! (`Rc`) between openraft's log writer and its readers. Each entry is stored as its wire
//! form (`wire::WEntry`, rkyv), so the log and the link read the same bytes; a stored
//! entry that does not decode is an `InvalidData` error, never a guess. Appends are
//! durable (fdatasync) before openraft is told they are flushed.

use crate::log::{EntryId, Stable, Vote as StableVote, Wal, WalEntry, WalOptions};
use crate::types::{Entry, LogId, TypeConfig, Vote};
use crate::wire::WEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use std::cell::RefCell;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::rc::Rc;

/// The log and the stable records of one node.
#[derive(Clone)]
pub struct LogStore {
    inner: Rc<RefCell<Inner>>,
}

struct Inner {
    wal: Wal,
    stable: Stable,
}

/// The log's subdirectory of the HA data directory.
pub const LOG_DIR: &str = "raft";

impl LogStore {
    /// Opens (creating) the log and records in `dir`.
    pub fn open(dir: &Path, options: WalOptions) -> io::Result<LogStore> {
        let wal = Wal::open(dir, options)?;
        let stable = Stable::open(dir)?;
        Ok(LogStore {
            inner: Rc::new(RefCell::new(Inner { wal, stable })),
        })
    }
}

fn log_id(id: EntryId) -> LogId {
    LogId::new(
        openraft::vote::leader_id_std::CommittedLeaderId::new(id.term),
        id.index,
    )
}

fn entry_id(id: &LogId) -> EntryId {
    EntryId {
        term: id.leader_id.term,
        index: id.index,
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// An entry's stored form.
pub fn encode_entry(entry: &Entry) -> WalEntry {
    let wire = WEntry::from(entry);
    let bytes = match rkyv::to_bytes::<rkyv::rancor::Error>(&wire) {
        Ok(bytes) => bytes.into_vec(),
        Err(error) => unreachable!("archiving plain owned data cannot fail: {error}"),
    };
    WalEntry {
        term: entry.log_id.leader_id.term,
        index: entry.log_id.index,
        payload: bytes::Bytes::from(bytes),
    }
}

/// The entry a stored record holds, checked against the record's own id.
pub fn decode_entry(stored: &WalEntry) -> io::Result<Entry> {
    let aligned = shards::state::frame::aligned(&stored.payload);
    let wire = rkyv::from_bytes::<WEntry, rkyv::rancor::Error>(&aligned)
        .map_err(|_| invalid(format!("log entry {} does not decode", stored.index)))?;
    let entry = wire
        .to_entry()
        .map_err(|error| invalid(format!("log entry {}: {error}", stored.index)))?;
    if entry_id(&entry.log_id) != stored.id() {
        return Err(invalid(format!(
            "log entry {} holds the entry of {}",
            stored.index, entry.log_id
        )));
    }
    Ok(entry)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let stored = self.inner.borrow().wal.entries(range)?;
        stored.iter().map(decode_entry).collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.inner.borrow().stable.vote().map(|vote| {
            let node = vote.voted_for.unwrap_or_default();
            if vote.committed {
                Vote::new_committed(vote.term, node)
            } else {
                Vote::new(vote.term, node)
            }
        }))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let inner = self.inner.borrow();
        let last_purged_log_id = inner.wal.last_purged_id().map(log_id);
        let last_log_id = inner.wal.last_entry_id().map(log_id).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.inner.borrow_mut().stable.save_vote(&StableVote {
            term: vote.leader_id.term,
            voted_for: Some(vote.leader_id.voted_for),
            committed: vote.committed,
        })
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.inner
            .borrow_mut()
            .stable
            .save_committed(committed.as_ref().map(entry_id))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner.borrow().stable.committed().map(log_id))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let batch: Vec<WalEntry> = entries.into_iter().map(|e| encode_entry(&e)).collect();
        let result = self.inner.borrow_mut().wal.append(&batch);
        match result {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                callback.io_completed(Err(io::Error::new(error.kind(), error.to_string())));
                Err(error)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        self.inner
            .borrow_mut()
            .wal
            .truncate_after(last_log_id.map(|id| id.index))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.inner.borrow_mut().wal.purge_upto(entry_id(&log_id))
    }
}
