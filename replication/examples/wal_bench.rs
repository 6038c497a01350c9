//! Measures the Raft write-ahead log (`replication::log::Wal`) on a directory's file system:
//! append latency of single 4 KiB entries (one fdatasync each), throughput of batches of 64
//! and 512 entries (one fdatasync per batch), reads from the cache and from the files, and
//! the time to open (recover) the log written.
//!
//! ```text
//! cargo run --release -p replication --example wal_bench -- DIR [RUNS]
//! ```
//!
//! DIR is created if needed; the bench writes in `DIR/wal-bench-<pid>` and removes it after.
//! Run it once on a directory of the disk (under /work) and once on tmpfs (/dev/shm).

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use replication::log::{Wal, WalEntry, WalOptions};

/// Payload bytes of every entry.
const ENTRY_BYTES: usize = 4096;
/// Single-entry appends measured per run.
const SINGLE_APPENDS: u64 = 2000;
/// Overwrites measured for the disk's floor.
const FLOOR_WRITES: u64 = 500;
/// Entries written per batched run.
const BATCHED_ENTRIES: u64 = 32768;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(base) = args.next() else {
        eprintln!("usage: wal_bench DIR [RUNS]");
        std::process::exit(2);
    };
    let runs: u32 = args.next().and_then(|runs| runs.parse().ok()).unwrap_or(3);
    let dir = PathBuf::from(base).join(format!("wal-bench-{}", std::process::id()));
    println!(
        "wal_bench: {} ({runs} runs, {ENTRY_BYTES}-byte entries)",
        dir.display()
    );
    for run in 1..=runs {
        println!("run {run}");
        floor(&dir)?;
        single(&dir)?;
        for batch in [64, 512] {
            batched(&dir, batch)?;
        }
        reads_and_open(&dir)?;
    }
    Ok(())
}

fn payload() -> Bytes {
    // Incompressible enough for a disk that compresses: a simple xorshift stream.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..ENTRY_BYTES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    Bytes::from(bytes)
}

fn fresh(dir: &Path, options: WalOptions) -> io::Result<Wal> {
    remove(dir)?;
    Wal::open(dir, options)
}

fn remove(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank].as_secs_f64() * 1e6
}

/// The disk's floor in the same minute: 4 KiB overwrites of an already written file, each
/// followed by fdatasync (no allocation, no file size change, nothing but the data to flush).
fn floor(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    remove(dir)?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join("floor");
    let file = std::fs::File::create(&path)?;
    let payload = payload();
    for block in 0..FLOOR_WRITES {
        file.write_all_at(&payload, block * ENTRY_BYTES as u64)?;
    }
    file.sync_all()?;
    let mut latencies = Vec::with_capacity(FLOOR_WRITES as usize);
    for block in 0..FLOOR_WRITES {
        let start = Instant::now();
        file.write_all_at(&payload, block * ENTRY_BYTES as u64)?;
        file.sync_data()?;
        latencies.push(start.elapsed());
    }
    latencies.sort_unstable();
    println!(
        "  floor, 4 KiB overwrite + fdatasync: p50 {:.0} µs, p99 {:.0} µs ({FLOOR_WRITES} writes)",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    );
    drop(file);
    remove(dir)
}

fn single(dir: &Path) -> io::Result<()> {
    let mut wal = fresh(dir, WalOptions::default())?;
    let payload = payload();
    let mut latencies = Vec::with_capacity(SINGLE_APPENDS as usize);
    for index in 0..SINGLE_APPENDS {
        let entry = WalEntry {
            term: 1,
            index,
            payload: payload.clone(),
        };
        let start = Instant::now();
        wal.append(std::slice::from_ref(&entry))?;
        latencies.push(start.elapsed());
    }
    // The first append creates (preallocates) the first segment, as every roll-over does.
    let first_us = latencies[0].as_secs_f64() * 1e6;
    latencies.sort_unstable();
    println!(
        "  single 4 KiB + fdatasync: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs ({} appends); \
         first (creates a 64 MiB segment) {first_us:.0} µs",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        SINGLE_APPENDS
    );
    drop(wal);
    remove(dir)
}

fn batched(dir: &Path, batch: u64) -> io::Result<()> {
    let mut wal = fresh(dir, WalOptions::default())?;
    let payload = payload();
    let mut latencies = Vec::new();
    let start = Instant::now();
    let mut entries = Vec::with_capacity(batch as usize);
    for first in (0..BATCHED_ENTRIES).step_by(batch as usize) {
        entries.clear();
        let payload = &payload;
        entries.extend((first..first + batch).map(|index| WalEntry {
            term: 1,
            index,
            payload: payload.clone(),
        }));
        let call = Instant::now();
        wal.append(&entries)?;
        latencies.push(call.elapsed());
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let records = BATCHED_ENTRIES as f64 / elapsed;
    println!(
        "  batch {batch:>3} × 4 KiB: {:.0} k records/s, {:.0} MB/s; per call p50 {:.0} µs, \
         p99 {:.0} µs, max {:.0} µs",
        records / 1e3,
        records * ENTRY_BYTES as f64 / 1e6,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    drop(wal);
    remove(dir)
}

/// Writes a log, reads it back in slices of 64 from the cache and from the files, and times
/// reopening it.
fn reads_and_open(dir: &Path) -> io::Result<()> {
    let mut wal = fresh(
        dir,
        WalOptions {
            cache_bytes_max: 64 << 20,
            ..WalOptions::default()
        },
    )?;
    let payload = payload();
    let entries: Vec<WalEntry> = (0..BATCHED_ENTRIES)
        .map(|index| WalEntry {
            term: 1,
            index,
            payload: payload.clone(),
        })
        .collect();
    for chunk in entries.chunks(512) {
        wal.append(chunk)?;
    }
    let cached = read_all(&wal, BATCHED_ENTRIES - 8192)?;
    drop(wal);
    let start = Instant::now();
    let wal = Wal::open(
        dir,
        WalOptions {
            cache_bytes_max: 0,
            ..WalOptions::default()
        },
    )?;
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    let files = read_all(&wal, 0)?;
    println!(
        "  reads of 64 entries: cache {:.0} k entries/s, files (page cache) {:.0} k entries/s; \
         open of {} MiB: {open_ms:.0} ms",
        cached / 1e3,
        files / 1e3,
        (BATCHED_ENTRIES * ENTRY_BYTES as u64) >> 20
    );
    drop(wal);
    remove(dir)
}

/// Reads from `from` to the end in slices of 64 entries: entries per second.
fn read_all(wal: &Wal, from: u64) -> io::Result<f64> {
    let start = Instant::now();
    let mut read = 0u64;
    for first in (from..wal.next_index()).step_by(64) {
        read += wal.entries(first..first + 64)?.len() as u64;
    }
    Ok(read as f64 / start.elapsed().as_secs_f64())
}
