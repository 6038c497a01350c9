//! The cluster's Raft log on disk (the write-ahead log of the HA data directory), as a node
//! reads it when it starts: recovery of a segment file (record headers, checksums, index
//! sequence, torn tails), then every entry read back and decoded into an openraft entry.
//! No panic on any input: damage is refused with an error or cut away as a torn tail.
//!
//! Input: byte 0's low bit set means "fix the checksums" (of the segment header and of
//! each record, walking the records the way recovery does), so that the fuzzer reaches what
//! lies behind them; the rest is the segment file, named after the first index its header
//! gives. The directory is on /dev/shm when it exists (tmpfs: no fdatasync cost).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use replication::log::{Wal, WalOptions};
use replication::store::decode_entry;

const HEADER: usize = 32;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("culex-fuzz-raft-log-{}", std::process::id()))
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Rewrites the checksums of the segment header and of each record that fits.
fn fix_checksums(segment: &mut [u8]) {
    if segment.len() < HEADER {
        return;
    }
    let crc = crc32fast::hash(&segment[..28]);
    segment[28..32].copy_from_slice(&crc.to_le_bytes());
    let mut at = HEADER;
    while at + HEADER <= segment.len() && &segment[at..at + 4] == b"CXLR" {
        let end = at + HEADER + u32_at(segment, at + 4) as usize;
        if end > segment.len() {
            return;
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&segment[at..at + 28]);
        hasher.update(&segment[at + HEADER..end]);
        segment[at + 28..at + 32].copy_from_slice(&hasher.finalize().to_le_bytes());
        at = end;
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else {
        return;
    };
    let mut segment = rest.to_vec();
    if flags & 1 == 1 {
        fix_checksums(&mut segment);
    }
    let first_index = match segment.get(16..24) {
        Some(word) => u64::from_le_bytes(word.try_into().unwrap_or_default()),
        None => 0,
    };
    let dir = dir();
    let _ = std::fs::remove_dir_all(dir);
    if let Err(error) = std::fs::create_dir_all(dir) {
        panic!("cannot create {}: {error}", dir.display());
    }
    let path = dir.join(format!("{first_index:020}.wal"));
    if let Err(error) = std::fs::write(&path, &segment) {
        panic!("cannot write {}: {error}", path.display());
    }
    if let Ok(wal) = Wal::open(dir, WalOptions::default()) {
        if let Ok(entries) = wal.entries(wal.first_index()..wal.next_index()) {
            for entry in &entries {
                let _ = decode_entry(entry);
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
});
