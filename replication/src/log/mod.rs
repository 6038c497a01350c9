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
//!   preallocated space changes no file size, so fdatasync flushes data only.
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
//! 4 KiB entries, 64 MiB segments; ext4 on virtio `/dev/vda` under /work, and tmpfs):
//!
//! ```text
//!   MEASUREMENTS
//! ```

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
