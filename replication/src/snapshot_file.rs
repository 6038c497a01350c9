//! The node's current snapshot on disk (`<HA data dir>/snapshot`): its meta and image in
//! one framed, checksummed file, replaced crash-safely.
//!
//! Called by the state machine when it builds or installs a snapshot, and when it opens.

// rkyv derives resolver and archived types of their own, which carry no docs.
#![allow(missing_docs)]

use crate::types::SnapshotMeta;
use crate::wire::WSnapshotMeta;
use rkyv::{Archive, Deserialize, Serialize};
use shards::state::frame;
use std::io;
use std::path::Path;

/// Magic of a snapshot file.
const SNAPSHOT_MAGIC: [u8; 8] = *b"CULEXSN\0";
/// Layout version.
const SNAPSHOT_VERSION: u32 = 1;

#[derive(Archive, Serialize, Deserialize)]
struct Stored {
    meta: WSnapshotMeta,
    data: Vec<u8>,
}

/// Writes the snapshot crash-safely.
pub fn save(path: &Path, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
    let stored = Stored {
        meta: meta.into(),
        data: data.to_vec(),
    };
    let body = rkyv::to_bytes::<rkyv::rancor::Error>(&stored)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let framed = frame::seal(&SNAPSHOT_MAGIC, SNAPSHOT_VERSION, &body);
    shards::atomic_file::save_atomic(path, &framed)
}

/// Reads the snapshot; `Ok(None)` when there is none; an error for a damaged file.
pub fn load(path: &Path) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let (version, body) =
        frame::open(&SNAPSHOT_MAGIC, &bytes).map_err(|e| invalid(e.to_string()))?;
    if version != SNAPSHOT_VERSION {
        return Err(invalid(format!("unsupported snapshot version {version}")));
    }
    let stored = rkyv::from_bytes::<Stored, rkyv::rancor::Error>(&frame::aligned(body))
        .map_err(|_| invalid("invalid snapshot archive".to_string()))?;
    let meta = stored.meta.to_meta().map_err(|e| invalid(e.to_string()))?;
    Ok(Some((meta, stored.data)))
}
