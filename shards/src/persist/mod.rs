//! Persistence (`persistence true`): the state file, written crash-safely and read at start.
//!
//! Owns the file: a snapshot of every shard's durable state as the records of
//! `state::record` (`state::snapshot` frames them), saved through `crate::atomic_file`, and
//! read back (including the version-1 layout of Culex 0.1, `format_v1`). Restoring is the
//! shards applying the records, each on the shard its client id belongs to
//! ([`split`]); [`verify`] applies them to scratch stores first, so a file whose records do
//! not fit together is refused as a whole before any shard starts. Called by the binary
//! (`save`, `load`, `split`, `verify`); the shards build their part of a snapshot
//! themselves (`Shard::snapshot_records`).

mod format_v1;

use crate::placement::home_shard;
use crate::state::frame::{self, FrameError};
use crate::state::snapshot::{self, Snapshot, FILE_MAGIC};
use crate::state::{ApplyError, Decoded, Record, RecordError, SessionStore};
use std::path::Path;

/// One shard's contribution to a snapshot.
#[derive(Debug, Default)]
pub struct ShardSnapshot {
    /// Shard id.
    pub shard: u8,
    /// The records of its persistent sessions, and (shard 0 only, every shard holds the
    /// same copy) of the retained messages.
    pub records: Vec<Record>,
}

/// The records one shard restores at start.
#[derive(Debug, Default)]
pub struct Restore {
    /// In the order they are applied.
    pub records: Vec<Record>,
}

/// Why a state file could not be used.
#[derive(Debug)]
pub enum LoadError {
    /// Occurs when the file cannot be read.
    Io(std::io::Error),
    /// Occurs when the file's framing or archive is refused (not a state file, a newer
    /// version, truncated, damaged).
    Frame(FrameError),
    /// Occurs when a record holds a value no valid state can have.
    Record(RecordError),
    /// Occurs when a record does not fit the state the records before it built.
    Apply(ApplyError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io(error) => write!(f, "{error}"),
            LoadError::Frame(error) => write!(f, "{error}"),
            LoadError::Record(error) => write!(f, "{error}"),
            LoadError::Apply(error) => write!(f, "records do not fit together: {error}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Joins the shards' parts into one snapshot.
pub fn combine(parts: Vec<ShardSnapshot>, saved_at: u64) -> Snapshot {
    Snapshot {
        saved_at,
        records: parts.into_iter().flat_map(|part| part.records).collect(),
    }
}

/// Writes `snapshot` to `path` crash-safely.
pub fn save(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    crate::atomic_file::save_atomic(path, &snapshot::encode(snapshot))
}

/// Reads the state file; `Ok(None)` when there is none yet. Reads the current layout and
/// version 1.
pub fn load(path: &Path) -> Result<Option<Snapshot>, LoadError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(LoadError::Io(error)),
    };
    decode(&bytes).map(Some)
}

/// Reads a state file's bytes (current layout or version 1).
pub fn decode(bytes: &[u8]) -> Result<Snapshot, LoadError> {
    match snapshot::decode(bytes) {
        Err(FrameError::UnsupportedVersion(format_v1::FORMAT_VERSION)) => {
            let (_, body) = frame::open(&FILE_MAGIC, bytes).map_err(LoadError::Frame)?;
            let old = format_v1::decode_body(body).map_err(LoadError::Frame)?;
            let saved_at = old.saved_at;
            let records = format_v1::into_records(old).map_err(LoadError::Frame)?;
            Ok(Snapshot { saved_at, records })
        }
        other => other.map_err(LoadError::Frame),
    }
}

/// Distributes the records: each session's to the shard its client id hashes to, every
/// retained message to every shard.
pub fn split(snapshot: Snapshot, shards: usize) -> Vec<Restore> {
    let mut restores: Vec<Restore> = (0..shards).map(|_| Restore::default()).collect();
    for record in snapshot.records {
        match &record {
            Record::Session { client_id, .. } => {
                let home = usize::from(home_shard(client_id.as_bytes(), shards));
                restores[home].records.push(record);
            }
            Record::Retained { .. } => {
                for restore in &mut restores {
                    restore.records.push(record.clone());
                }
            }
            // The dynamic-security document has a file of its own.
            Record::Dynsec { .. } => {}
        }
    }
    restores
}

/// Applies every session record of `restores` to scratch stores, one per shard, as the
/// shards will: the first record that is invalid or does not fit refuses the file.
pub fn verify(restores: &[Restore]) -> Result<(), LoadError> {
    for restore in restores {
        let mut store = SessionStore::default();
        for record in &restore.records {
            match record.clone().decode().map_err(LoadError::Record)? {
                Decoded::Session { client_id, change } => {
                    store
                        .apply_named(client_id, change)
                        .map_err(LoadError::Apply)?;
                }
                Decoded::Retained { .. } | Decoded::Dynsec { .. } => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
