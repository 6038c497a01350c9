//! The node's durable Raft state on disk, in the HA data directory: the write-ahead log of
//! entries ([`Wal`]), and the small stable records: vote, committed entry id, membership
//! ([`Stable`]). Owned by the replication core's Raft storage, which calls it from its one
//! thread; everything here is blocking file I/O.
//!
//! Brief overview.
//!
//! ```text
//!   append(batch) ─► records ─► pwrite into the last segment ─► one fdatasync ─► Ok
//!   <dir>/00000000000000000000.wal  00000000000000004096.wal ...   (preallocated segments)
//!         └ header │ record │ record │ ... │ zeros to the segment's end
//!   <dir>/wal-purged  wal-truncating  vote  committed  membership   (stable records)
//! ```
//!
//! - A segment is a preallocated file (`posix_fallocate`, [`WalOptions::segment_bytes`])
//!   named by the index of its first record, with a checksummed header. Appending within
//!   preallocated space changes no file size, so fdatasync flushes data only. On tmpfs,
//!   where fdatasync flushes nothing, segments are not preallocated and grow as written.
//! - A record is a 32-byte header (magic, payload length, term, index, offset in its append
//!   call, CRC-32 of header and payload) followed by the payload.
//! - Recovery ([`Wal::open`]) reads every segment and checks each record's checksum and the
//!   index sequence. Where the log stops, the rest must be zeros. Damage there that belongs to
//!   the last append call (a crash mid-write) is a torn tail: it is zeroed away and logged.
//!   If a valid record of a *later* append call follows the damage, acknowledged entries were
//!   lost: the log refuses to open with [`CorruptLog`] naming file and offset.
//! - Truncating the tail (Raft conflict) first saves an intent record, then deletes and zeroes,
//!   then removes the intent, so that a crash in between is finished at the next open.
//!   Purging (compaction behind a snapshot) saves the last purged id first, then deletes the
//!   segments that hold only purged entries.
//! - A small cache of the most recent entries serves the leader's replication reads without
//!   touching the files.
//!
//! Measured on this machine (`cargo run --release -p replication --example wal_bench -- DIR`;
//! 4 KiB entries, 64 MiB segments; 2 vCPUs shared with other builds). The disk (ext4 on
//! virtio `/dev/vda`, under /work and /tmp alike) swings between two regimes, so the bench
//! measures the device's own floor (4 KiB overwrite + fdatasync) in the same run:
//!
//! ```text
//!                          disk, fast regime    disk, slow regime    tmpfs (/dev/shm)
//!   floor fdatasync p50    (not measured)       2.3-4.0 ms           -
//!   single append p50      164-201 µs           3.2-4.0 ms           2 µs
//!   single append p99      0.8-3.1 ms           5.2-10.9 ms          6 µs
//!   batch 64,  records/s   91-130 k             17-25 k              318-382 k
//!              MB/s        373-532              68-102               1300-1560
//!   batch 512, records/s   162-261 k            112-130 k            306-396 k
//!              MB/s        665-1068             460-533              1250-1620
//!   first append of a segment (creates, preallocates 64 MiB): 5-12 ms disk, 16-24 ms tmpfs
//!   reads of 64 entries: cache 56-87 M entries/s, files (page cache) 0.8-2 M entries/s
//!   open (recover, every checksum) of 128 MiB: 84-262 ms
//! ```
//!
//! In the slow regime an append costs what the device's flush costs. `posix_fallocate`
//! leaves ext4 extents unwritten, so the first fdatasync over each block also commits their
//! conversion: zero-filled segments measured 99-128 µs against 163 µs (fast regime), but
//! zero-filling inline costs 50-65 ms per segment, which only pays off ahead of time (off the
//! append path). The cache is what keeps the leader's replication reads off the files.

mod format;
mod recovery;
mod segment;
mod stable;
mod wal;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;

pub use stable::{Stable, Vote};
pub use wal::{Wal, WalOptions};

/// Largest payload of one entry, in bytes; [`Wal::append`] refuses a larger one.
pub const PAYLOAD_BYTES_MAX: usize = format::PAYLOAD_BYTES_MAX;
/// Largest membership record, in bytes; [`Stable::save_membership`] refuses a larger one.
pub const MEMBERSHIP_BYTES_MAX: usize = format::STABLE_BODY_BYTES_MAX;

/// The identity of a log entry: its term and index (Raft's log id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    /// The term of the leader that created the entry.
    pub term: u64,
    /// The entry's position in the log.
    pub index: u64,
}

/// One entry of the log, its payload opaque here (a serialized Raft entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalEntry {
    /// The term of the leader that created the entry.
    pub term: u64,
    /// The entry's position in the log.
    pub index: u64,
    /// The serialized entry, at most [`PAYLOAD_BYTES_MAX`] bytes.
    pub payload: Bytes,
}

impl WalEntry {
    /// The entry's term and index.
    pub fn id(&self) -> EntryId {
        EntryId {
            term: self.term,
            index: self.index,
        }
    }
}

/// The error inside the `io::Error` (kind `InvalidData`) of a log or stable record that is
/// damaged in a way a crash cannot explain: the caller needs the entries from elsewhere
/// (a snapshot from the leader). Reach it with `err.get_ref()` and `downcast_ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptLog {
    /// The damaged file.
    pub file: PathBuf,
    /// Byte offset of the damage in the file.
    pub offset: u64,
    /// What is wrong there.
    pub detail: String,
}

impl fmt::Display for CorruptLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "corrupt Raft log: {} at offset {}: {}",
            self.file.display(),
            self.offset,
            self.detail
        )
    }
}

impl std::error::Error for CorruptLog {}

impl CorruptLog {
    /// This error as an `io::Error` of kind `InvalidData`.
    pub(crate) fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, self)
    }
}
