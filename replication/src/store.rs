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
use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
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
    /// The most recent entries as openraft's values, contiguous and ending at the log's
    /// last entry: replication and the state machine read these without decoding (their
    /// payloads share the appended buffers).
    recent: VecDeque<Entry>,
    /// Payload bytes in `recent`.
    recent_bytes: usize,
}

/// Payload bytes of recent entries kept decoded ([`Inner::recent`]).
const RECENT_BYTES_MAX: usize = 16 << 20;

/// What an entry counts for against [`RECENT_BYTES_MAX`].
fn entry_bytes(entry: &Entry) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(payload) => payload.0.len().max(64),
        _ => 64,
    }
}

impl Inner {
    fn remember(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if self
                .recent
                .back()
                .is_some_and(|back| back.log_id.index + 1 != entry.log_id.index)
            {
                self.recent.clear();
                self.recent_bytes = 0;
            }
            self.recent_bytes += entry_bytes(&entry);
            self.recent.push_back(entry);
        }
        while self.recent_bytes > RECENT_BYTES_MAX {
            let Some(front) = self.recent.pop_front() else {
                break;
            };
            self.recent_bytes -= entry_bytes(&front);
        }
    }

    /// The entries `[start, end)`: the older part from the log's files (decoded and
    /// checked), the rest from `recent`.
    fn entries(&self, start: u64, end: u64) -> io::Result<Vec<Entry>> {
        // Where `recent` starts serving the range: `end` when it holds none of it (empty,
        // or the whole range is older than its first entry).
        let front = self.recent.front().map(|front| front.log_id.index);
        let cached_from = match front {
            Some(front) if front < end => front.max(start),
            _ => end,
        };
        let mut out: Vec<Entry> = Vec::with_capacity(end.saturating_sub(start) as usize);
        if start < cached_from {
            let stored = self.wal.entries(start..cached_from)?;
            for entry in &stored {
                out.push(decode_entry(entry)?);
            }
        }
        if let Some(front) = front.filter(|_| cached_from < end) {
            let skip = (cached_from - front) as usize;
            let take = (end - cached_from) as usize;
            out.extend(self.recent.iter().skip(skip).take(take).cloned());
        }
        Ok(out)
    }
}

/// The log's subdirectory of the HA data directory.
pub const LOG_DIR: &str = "raft";

impl LogStore {
    /// Opens (creating) the log and records in `dir`.
    pub fn open(dir: &Path, options: WalOptions) -> io::Result<LogStore> {
        let wal = Wal::open(dir, options)?;
        let stable = Stable::open(dir)?;
        Ok(LogStore {
            inner: Rc::new(RefCell::new(Inner {
                wal,
                stable,
                recent: VecDeque::new(),
                recent_bytes: 0,
            })),
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
    let capacity = match &entry.payload {
        openraft::EntryPayload::Normal(payload) => payload.0.len() + 64,
        _ => 512,
    };
    WalEntry {
        term: entry.log_id.leader_id.term,
        index: entry.log_id.index,
        payload: bytes::Bytes::from(crate::wire::archive(&wire, capacity)),
    }
}

/// The entry a stored record holds, checked against the record's own id.
pub fn decode_entry(stored: &WalEntry) -> io::Result<Entry> {
    let wire = crate::wire::with_aligned(&stored.payload, |bytes| {
        rkyv::from_bytes::<WEntry, rkyv::rancor::Error>(bytes)
    })
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
        let inner = self.inner.borrow();
        let start = match range.start_bound() {
            Bound::Included(start) => *start,
            Bound::Excluded(start) => start.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(end) => end.saturating_add(1),
            Bound::Excluded(end) => *end,
            Bound::Unbounded => u64::MAX,
        };
        let start = start.max(inner.wal.first_index());
        let end = end.min(inner.wal.next_index());
        if start >= end {
            return Ok(Vec::new());
        }
        inner.entries(start, end)
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
        let entries: Vec<Entry> = entries.into_iter().collect();
        let batch: Vec<WalEntry> = entries.iter().map(encode_entry).collect();
        let mut inner = self.inner.borrow_mut();
        let result = inner.wal.append(&batch);
        match result {
            Ok(()) => {
                inner.remember(entries);
                drop(inner);
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
        let mut inner = self.inner.borrow_mut();
        let keep = last_log_id.map(|id| id.index);
        while inner
            .recent
            .back()
            .is_some_and(|back| Some(back.log_id.index) > keep)
        {
            if let Some(back) = inner.recent.pop_back() {
                inner.recent_bytes -= entry_bytes(&back);
            }
        }
        inner.wal.truncate_after(keep)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut inner = self.inner.borrow_mut();
        while inner
            .recent
            .front()
            .is_some_and(|front| front.log_id.index <= log_id.index)
        {
            if let Some(front) = inner.recent.pop_front() {
                inner.recent_bytes -= entry_bytes(&front);
            }
        }
        inner.wal.purge_upto(entry_id(&log_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Payload;

    fn entry(index: u64, len: usize) -> Entry {
        Entry {
            log_id: log_id(EntryId { term: 1, index }),
            payload: openraft::EntryPayload::Normal(Payload(bytes::Bytes::from(vec![7u8; len]))),
        }
    }

    #[test]
    fn every_range_reads_the_same_whether_in_recent_or_on_disk() {
        let dir = std::env::temp_dir().join(format!("culex-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let store = LogStore::open(&dir, Default::default()).expect("open");
        let mut inner = store.inner.borrow_mut();
        // 64 KiB entries: the first ones fall out of `recent` (16 MiB).
        let last = 400u64;
        for index in 0..=last {
            let e = entry(index, 64 << 10);
            inner.wal.append(&[encode_entry(&e)]).expect("append");
            inner.remember(vec![e]);
        }
        let front = inner
            .recent
            .front()
            .map(|e| e.log_id.index)
            .expect("recent");
        assert!(front > 2 && front < last, "front {front}");
        for (start, end) in [
            (1, 2),
            (1, front),
            (1, front + 3),
            (front - 1, front + 1),
            (front, last + 1),
            (5, 9),
            (last, last + 1),
            (3, 3),
        ] {
            let got: Vec<u64> = inner
                .entries(start, end)
                .expect("entries")
                .iter()
                .map(|e| e.log_id.index)
                .collect();
            assert_eq!(
                got,
                (start..end).collect::<Vec<u64>>(),
                "range {start}..{end}"
            );
        }
    }
}
