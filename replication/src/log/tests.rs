//! Tests of the log and the stable records against real files in a scratch directory under
//! the system's temporary directory: round trips, reopening, crashes simulated by damaging
//! the files as a torn write or the medium would, and a property test of random sequences of
//! operations against an in-memory model.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use proptest::prelude::*;

use super::format::RECORD_HEADER_BYTES;
use super::recovery::{self, Truncation};
use super::{CorruptLog, EntryId, Stable, Vote, Wal, WalEntry, WalOptions};

/// A directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch::in_dir(&std::env::temp_dir(), name)
    }

    /// A scratch directory under `base` (for a file system of its own, such as tmpfs).
    fn in_dir(base: &Path, name: &str) -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("culex-log-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// A copy of `source`'s files in a new scratch directory.
    fn copy_of(source: &Path, name: &str) -> Scratch {
        Scratch::copy_of_in(&std::env::temp_dir(), source, name)
    }

    /// A copy of `source`'s files in a new scratch directory under `base`.
    fn copy_of_in(base: &Path, source: &Path, name: &str) -> Scratch {
        let scratch = Scratch::in_dir(base, name);
        for file in fs::read_dir(source).unwrap() {
            let file = file.unwrap();
            fs::copy(file.path(), scratch.path().join(file.file_name())).unwrap();
        }
        scratch
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn options(segment_bytes: u64) -> WalOptions {
    WalOptions {
        segment_bytes,
        ..WalOptions::default()
    }
}

/// An entry whose payload (`len` bytes) is derived from its id, so that any mix-up shows.
fn entry(term: u64, index: u64, len: usize) -> WalEntry {
    let seed = index.wrapping_mul(31).wrapping_add(term);
    let payload: Vec<u8> = (0..len).map(|i| (seed as usize + i * 7) as u8).collect();
    WalEntry {
        term,
        index,
        payload: Bytes::from(payload),
    }
}

fn entries(term: u64, indexes: std::ops::Range<u64>, len: usize) -> Vec<WalEntry> {
    indexes.map(|index| entry(term, index, len)).collect()
}

fn all(wal: &Wal) -> Vec<WalEntry> {
    wal.entries(..).unwrap()
}

/// The `CorruptLog` inside an open's error.
fn corruption(result: io::Result<Wal>) -> CorruptLog {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    err.get_ref()
        .and_then(|e| e.downcast_ref::<CorruptLog>())
        .cloned()
        .unwrap()
}

/// Every file of `dir` with its content.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| !p.ends_with("wal.lock"))
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt as _;
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

fn segment_count(dir: &Path) -> usize {
    let names = fs::read_dir(dir).unwrap().map(|f| f.unwrap().file_name());
    names
        .filter(|n| n.to_string_lossy().ends_with(".wal"))
        .count()
}

#[test]
fn round_trip_of_single_and_batched_appends() {
    let scratch = Scratch::new("round-trip");
    let mut wal = Wal::open(scratch.path(), WalOptions::default()).unwrap();
    assert_eq!(
        (wal.first_index(), wal.next_index(), wal.last_entry_id()),
        (0, 0, None)
    );
    assert_eq!(all(&wal), vec![]);
    let mut written = vec![entry(1, 0, 0), entry(1, 1, 5000)];
    wal.append(&written[..1]).unwrap();
    wal.append(&written[1..]).unwrap();
    let batch = entries(2, 2..66, 4096);
    wal.append(&batch).unwrap();
    written.extend(batch);
    wal.append(&[]).unwrap();
    assert_eq!(all(&wal), written);
    assert_eq!(wal.entries(3..5).unwrap(), written[3..5]);
    assert_eq!(wal.entries(60..=100).unwrap(), written[60..]);
    assert_eq!(wal.entries(66..).unwrap(), vec![]);
    assert_eq!(wal.last_entry_id(), Some(EntryId { term: 2, index: 65 }));
    assert_eq!(wal.last_purged_id(), None);
}

#[test]
fn reads_from_files_equal_reads_from_the_cache() {
    let scratch = Scratch::new("cache");
    let no_cache = WalOptions {
        segment_bytes: 4096,
        cache_bytes_max: 0,
    };
    let small_cache = WalOptions {
        segment_bytes: 4096,
        cache_bytes_max: 1000,
    };
    let written = entries(1, 0..50, 300);
    let mut wal = Wal::open(scratch.path(), small_cache).unwrap();
    for chunk in written.chunks(7) {
        wal.append(chunk).unwrap();
    }
    let cached = wal.entries(10..50).unwrap();
    drop(wal);
    let wal = Wal::open(scratch.path(), no_cache).unwrap();
    assert_eq!(wal.entries(10..50).unwrap(), cached);
    assert_eq!(cached, written[10..]);
}

#[test]
fn every_range_reads_the_same_whether_cached_or_not() {
    // A lagging follower asks for entries older than the cache holds: ranges wholly
    // below the cache, across its front, and within it.
    let scratch = Scratch::new("ranges");
    let small_cache = WalOptions {
        segment_bytes: 4096,
        cache_bytes_max: 1000,
    };
    let written = entries(1, 0..40, 300);
    let mut wal = Wal::open(scratch.path(), small_cache).unwrap();
    for chunk in written.chunks(3) {
        wal.append(chunk).unwrap();
    }
    for start in 0..=40u64 {
        for end in start..=41u64 {
            let got = wal.entries(start..end).unwrap();
            let want = &written[start as usize..(end.min(40)) as usize];
            assert_eq!(got, want, "{start}..{end}");
        }
    }
}

#[test]
fn reopen_after_a_clean_close_continues_the_log() {
    let scratch = Scratch::new("reopen");
    let written = entries(3, 0..20, 100);
    {
        let mut wal = Wal::open(scratch.path(), options(1024)).unwrap();
        wal.append(&written[..10]).unwrap();
        wal.append(&written[10..]).unwrap();
    }
    let mut wal = Wal::open(scratch.path(), options(1024)).unwrap();
    assert_eq!(all(&wal), written);
    assert_eq!(wal.last_entry_id(), Some(EntryId { term: 3, index: 19 }));
    wal.append(&[entry(4, 20, 10)]).unwrap();
    drop(wal);
    let wal = Wal::open(scratch.path(), options(1024)).unwrap();
    assert_eq!(wal.next_index(), 21);
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let scratch = Scratch::new("lock");
    let _wal = Wal::open(scratch.path(), WalOptions::default()).unwrap();
    let err = Wal::open(scratch.path(), WalOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    should_panic(expected = "append does not continue the log")
)]
fn append_must_continue_the_log() {
    let scratch = Scratch::new("continue");
    let mut wal = Wal::open(scratch.path(), WalOptions::default()).unwrap();
    wal.append(&entries(2, 0..3, 10)).unwrap();
    for wrong in [entry(2, 4, 1), entry(2, 2, 1), entry(1, 3, 1)] {
        let err = wal.append(&[wrong]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
    assert_eq!(wal.next_index(), 3);
    wal.append(&[entry(2, 3, 1)]).unwrap();
}

/// Builds a log of single-entry appends (each its own call), closes it, and returns the
/// layout of its one segment: path and record offsets, end.
fn single_appends(dir: &Path, count: u64, len: usize) -> (PathBuf, Vec<u64>, u64) {
    let mut wal = Wal::open(dir, options(4096)).unwrap();
    for index in 0..count {
        wal.append(&[entry(1, index, len)]).unwrap();
    }
    let mut layout = wal.layout();
    assert_eq!(layout.len(), 1);
    let (_, path, offsets, end) = layout.remove(0);
    (path, offsets, end)
}

#[test]
fn a_torn_last_record_is_truncated_at_every_byte_offset() {
    let base = Scratch::new("torn-base");
    let (path, offsets, end) = single_appends(base.path(), 4, 60);
    let name = path.file_name().unwrap();
    let last_start = offsets[3];
    for cut in last_start..end {
        for garbage in [0x00u8, 0xa5] {
            let scratch = Scratch::copy_of(base.path(), "torn");
            let tail = vec![garbage; (end - cut) as usize];
            write_at(&scratch.path().join(name), cut, &tail);
            let mut wal = Wal::open(scratch.path(), options(4096)).unwrap();
            assert_eq!(
                all(&wal),
                entries(1, 0..3, 60),
                "cut at {cut}, garbage {garbage:#x}"
            );
            // The torn bytes are gone: a new append and a reopen see a clean log.
            wal.append(&[entry(2, 3, 10)]).unwrap();
            drop(wal);
            let wal = Wal::open(scratch.path(), options(4096)).unwrap();
            assert_eq!(wal.last_entry_id(), Some(EntryId { term: 2, index: 3 }));
            let file = fs::read(scratch.path().join(name)).unwrap();
            assert!(file[wal.layout()[0].3 as usize..].iter().all(|b| *b == 0));
        }
    }
}

/// On tmpfs a segment is not preallocated: it ends where its last record ends, and a write
/// torn anywhere in the last record (the file cut short there) loses only that record.
#[test]
fn on_tmpfs_segments_grow_as_written_and_a_cut_last_record_is_torn() {
    let shm = Path::new("/dev/shm");
    assert!(shm.is_dir(), "this test needs tmpfs at /dev/shm");
    let base = Scratch::in_dir(shm, "tmpfs-base");
    let (path, offsets, end) = single_appends(base.path(), 4, 60);
    assert_eq!(fs::metadata(&path).unwrap().len(), end);
    let name = path.file_name().unwrap();
    for cut in offsets[3]..end {
        let scratch = Scratch::copy_of_in(shm, base.path(), "tmpfs-cut");
        let file = fs::OpenOptions::new()
            .write(true)
            .open(scratch.path().join(name))
            .unwrap();
        file.set_len(cut).unwrap();
        drop(file);
        let mut wal = Wal::open(scratch.path(), options(4096)).unwrap();
        assert_eq!(all(&wal), entries(1, 0..3, 60), "cut at {cut}");
        wal.append(&[entry(2, 3, 10)]).unwrap();
        drop(wal);
        let wal = Wal::open(scratch.path(), options(4096)).unwrap();
        let mut expected = entries(1, 0..3, 60);
        expected.push(entry(2, 3, 10));
        assert_eq!(all(&wal), expected, "cut at {cut}, after a new append");
    }
}

#[test]
fn a_flipped_byte_in_a_middle_record_refuses_to_open_naming_the_offset() {
    let base = Scratch::new("flip-base");
    let (path, offsets, _) = single_appends(base.path(), 5, 40);
    let name = path.file_name().unwrap();
    for at in offsets[2]..offsets[3] {
        let scratch = Scratch::copy_of(base.path(), "flip");
        let segment = scratch.path().join(name);
        let mut bytes = fs::read(&segment).unwrap();
        bytes[at as usize] ^= 0x40;
        fs::write(&segment, &bytes).unwrap();
        let before = snapshot(scratch.path());
        let corrupt = corruption(Wal::open(scratch.path(), options(4096)));
        assert_eq!(corrupt.file, segment, "byte {at}");
        assert_eq!(corrupt.offset, offsets[2], "byte {at}");
        assert!(corrupt.detail.contains("index 3"), "{}", corrupt.detail);
        let message = corrupt.to_string();
        assert!(
            message.contains(&format!("at offset {}", offsets[2])),
            "{message}"
        );
        // Refusing changes nothing: the caller decides what to do with the files.
        assert_eq!(snapshot(scratch.path()), before, "byte {at}");
    }
}

#[test]
fn damage_inside_the_last_append_call_is_a_torn_write() {
    let scratch = Scratch::new("flip-last-batch");
    let mut wal = Wal::open(scratch.path(), options(4096)).unwrap();
    wal.append(&entries(1, 0..2, 40)).unwrap();
    wal.append(&entries(1, 2..6, 40)).unwrap();
    let (_, path, offsets, _) = wal.layout().remove(0);
    drop(wal);
    // A crash before the last call's fdatasync can persist its pages in any order: a lost
    // record followed by records of the same call is not damage to acknowledged data.
    write_at(&path, offsets[3] + 40, &[0xff]);
    let wal = Wal::open(scratch.path(), options(4096)).unwrap();
    assert_eq!(all(&wal), entries(1, 0..3, 40));
}

#[test]
fn zeroed_acknowledged_records_before_later_ones_refuse_to_open() {
    let scratch = Scratch::new("zeroed");
    let (path, offsets, _) = single_appends(scratch.path(), 5, 40);
    write_at(
        &path,
        offsets[1],
        &vec![0; (offsets[2] - offsets[1]) as usize],
    );
    let corrupt = corruption(Wal::open(scratch.path(), options(4096)));
    assert_eq!((corrupt.file, corrupt.offset), (path, offsets[1]));
}

#[test]
fn truncate_after_then_append() {
    let scratch = Scratch::new("truncate");
    let mut wal = Wal::open(scratch.path(), options(512)).unwrap();
    let mut written = entries(1, 0..30, 50);
    for chunk in written.chunks(4) {
        wal.append(chunk).unwrap();
    }
    assert!(segment_count(scratch.path()) > 3);
    wal.truncate_after(Some(40)).unwrap();
    wal.truncate_after(Some(29)).unwrap();
    assert_eq!(all(&wal), written);
    wal.truncate_after(Some(12)).unwrap();
    written.truncate(13);
    assert_eq!(all(&wal), written);
    assert_eq!(wal.last_entry_id(), Some(EntryId { term: 1, index: 12 }));
    let newer = entries(2, 13..20, 70);
    wal.append(&newer).unwrap();
    written.extend(newer);
    assert_eq!(all(&wal), written);
    drop(wal);
    let mut wal = Wal::open(scratch.path(), options(512)).unwrap();
    assert_eq!(all(&wal), written);
    wal.truncate_after(None).unwrap();
    assert_eq!(
        (all(&wal), wal.next_index(), segment_count(scratch.path())),
        (vec![], 0, 0)
    );
    wal.append(&entries(3, 0..2, 5)).unwrap();
    drop(wal);
    let wal = Wal::open(scratch.path(), options(512)).unwrap();
    assert_eq!(all(&wal), entries(3, 0..2, 5));
}

#[test]
fn a_truncation_interrupted_by_a_crash_is_finished_at_open() {
    let scratch = Scratch::new("truncate-crash");
    let (path, offsets, end) = single_appends(scratch.path(), 6, 30);
    // The crash came after the intent was saved and the first stale record zeroed: what is
    // left would look like lost acknowledged entries without the intent.
    let zero = recovery::ZeroRange {
        segment_first: 0,
        from: offsets[3],
        to: end,
    };
    let truncation = Truncation {
        keep_through: Some(2),
        zero: Some(zero),
    };
    let intent =
        super::format::encode_stable(super::format::StableKind::Truncating, &truncation.encode());
    fs::write(scratch.path().join("wal-truncating"), intent).unwrap();
    write_at(&path, offsets[3], &[0; RECORD_HEADER_BYTES]);
    let wal = Wal::open(scratch.path(), options(4096)).unwrap();
    assert_eq!(all(&wal), entries(1, 0..3, 30));
    assert!(!scratch.path().join("wal-truncating").exists());
    let file = fs::read(&path).unwrap();
    assert!(file[offsets[3] as usize..].iter().all(|b| *b == 0));
}

#[test]
fn purge_then_reopen() {
    let scratch = Scratch::new("purge");
    let mut wal = Wal::open(scratch.path(), options(512)).unwrap();
    let written = entries(1, 0..40, 50);
    for chunk in written.chunks(3) {
        wal.append(chunk).unwrap();
    }
    let segments_before = segment_count(scratch.path());
    wal.purge_upto(EntryId { term: 1, index: 20 }).unwrap();
    assert!(segment_count(scratch.path()) < segments_before);
    assert_eq!(wal.first_index(), 21);
    assert_eq!(all(&wal), written[21..]);
    wal.purge_upto(EntryId { term: 1, index: 10 }).unwrap();
    assert_eq!(wal.first_index(), 21);
    drop(wal);
    let mut wal = Wal::open(scratch.path(), options(512)).unwrap();
    assert_eq!(wal.last_purged_id(), Some(EntryId { term: 1, index: 20 }));
    assert_eq!(all(&wal), written[21..]);
    assert_eq!(wal.entries(0..25).unwrap(), written[21..25]);
    // Beyond the last entry, as after installing a snapshot: the log is empty and continues
    // after the purged index.
    wal.purge_upto(EntryId {
        term: 3,
        index: 100,
    })
    .unwrap();
    assert_eq!(
        (
            all(&wal),
            wal.last_entry_id(),
            segment_count(scratch.path())
        ),
        (vec![], None, 0)
    );
    wal.append(&[entry(3, 101, 8)]).unwrap();
    drop(wal);
    let wal = Wal::open(scratch.path(), options(512)).unwrap();
    assert_eq!(
        (wal.first_index(), all(&wal)),
        (101, vec![entry(3, 101, 8)])
    );
}

#[test]
fn a_purge_interrupted_by_a_crash_is_finished_at_open() {
    let scratch = Scratch::new("purge-crash");
    let mut wal = Wal::open(scratch.path(), options(512)).unwrap();
    wal.append(&entries(1, 0..30, 60)).unwrap();
    drop(wal);
    let segments_before = segment_count(scratch.path());
    // The id was saved, then the crash came before any segment was deleted.
    let purged = EntryId { term: 1, index: 20 };
    super::stable::save_entry_id(
        &scratch.path().join("wal-purged"),
        super::stable::PURGED,
        purged,
    )
    .unwrap();
    let wal = Wal::open(scratch.path(), options(512)).unwrap();
    assert!(segment_count(scratch.path()) < segments_before);
    assert_eq!(all(&wal), entries(1, 21..30, 60));
}

#[test]
fn a_log_missing_its_first_segments_refuses_to_open() {
    let scratch = Scratch::new("missing");
    let mut wal = Wal::open(scratch.path(), options(256)).unwrap();
    wal.append(&entries(1, 0..10, 100)).unwrap();
    let first = wal.layout()[0].1.clone();
    drop(wal);
    fs::remove_file(&first).unwrap();
    let corrupt = corruption(Wal::open(scratch.path(), options(256)));
    assert!(
        corrupt.detail.contains("never purged"),
        "{}",
        corrupt.detail
    );
}

#[test]
fn segments_roll_over_and_a_large_entry_gets_its_own() {
    let scratch = Scratch::new("roll");
    let mut wal = Wal::open(scratch.path(), options(1024)).unwrap();
    let mut written = Vec::new();
    for index in 0..40 {
        written.push(entry(1, index, 100));
        wal.append(&written[index as usize..]).unwrap();
    }
    let big = entry(1, 40, 5000);
    wal.append(std::slice::from_ref(&big)).unwrap();
    written.push(big);
    let batch = entries(2, 41..60, 200);
    wal.append(&batch).unwrap();
    written.extend(batch);
    let layout = wal.layout();
    assert!(layout.len() > 10);
    for (first_index, path, offsets, end) in &layout {
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(name, format!("{first_index:020}.wal"));
        assert!(
            *end <= 1024 || offsets.len() == 1,
            "only a lone large entry overflows"
        );
    }
    assert_eq!(all(&wal), written);
    drop(wal);
    let wal = Wal::open(scratch.path(), options(1024)).unwrap();
    assert_eq!(all(&wal), written);
    assert_eq!(wal.layout().len(), layout.len());
}

#[test]
fn damage_found_by_a_later_read_is_an_error_naming_the_offset() {
    let scratch = Scratch::new("read-damage");
    let mut wal = Wal::open(
        scratch.path(),
        WalOptions {
            cache_bytes_max: 0,
            ..options(4096)
        },
    )
    .unwrap();
    wal.append(&entries(1, 0..5, 30)).unwrap();
    let (_, path, offsets, _) = wal.layout().remove(0);
    write_at(&path, offsets[2] + 40, &[0xee]);
    assert_eq!(wal.entries(0..2).unwrap(), entries(1, 0..2, 30));
    let err = wal.entries(1..4).unwrap_err();
    let corrupt = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<CorruptLog>())
        .unwrap();
    assert_eq!((&corrupt.file, corrupt.offset), (&path, offsets[2]));
}

#[test]
fn stable_records_round_trip_and_damage_is_detected() {
    let scratch = Scratch::new("stable");
    let mut stable = Stable::open(scratch.path()).unwrap();
    assert_eq!(
        (stable.vote(), stable.committed(), stable.membership()),
        (None, None, None)
    );
    let vote = Vote {
        term: 5,
        voted_for: Some(2),
        committed: true,
    };
    stable.save_vote(&vote).unwrap();
    stable
        .save_committed(Some(EntryId { term: 5, index: 99 }))
        .unwrap();
    stable.save_membership(b"{\"nodes\":[1,2,3]}").unwrap();
    drop(stable);
    let mut stable = Stable::open(scratch.path()).unwrap();
    assert_eq!(stable.vote(), Some(vote));
    assert_eq!(stable.committed(), Some(EntryId { term: 5, index: 99 }));
    assert_eq!(
        stable.membership().unwrap().as_ref(),
        b"{\"nodes\":[1,2,3]}"
    );
    let vote = Vote {
        term: 6,
        voted_for: None,
        committed: false,
    };
    stable.save_vote(&vote).unwrap();
    stable.save_committed(None).unwrap();
    drop(stable);
    let stable = Stable::open(scratch.path()).unwrap();
    assert_eq!((stable.vote(), stable.committed()), (Some(vote), None));
    for name in ["vote", "committed", "membership"] {
        let copy = Scratch::copy_of(scratch.path(), "stable-damage");
        let path = copy.path().join(name);
        let mut bytes = fs::read(&path).unwrap();
        for at in 0..bytes.len() {
            bytes[at] ^= 0x08;
            fs::write(&path, &bytes).unwrap();
            let err = Stable::open(copy.path()).unwrap_err();
            let corrupt = err
                .get_ref()
                .and_then(|e| e.downcast_ref::<CorruptLog>())
                .unwrap();
            assert_eq!(corrupt.file, path, "{name} byte {at}");
            bytes[at] ^= 0x08;
        }
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(Stable::open(copy.path()).is_err(), "{name} cut short");
    }
    // A record copied over another kind's file is refused, not misread.
    let copy = Scratch::copy_of(scratch.path(), "stable-kind");
    fs::copy(copy.path().join("vote"), copy.path().join("membership")).unwrap();
    let err = Stable::open(copy.path()).unwrap_err();
    assert!(err.to_string().contains("another kind"), "{err}");
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    /// Append `sizes.len()` entries in one call, in a new term when `new_term`.
    Append { sizes: Vec<usize>, new_term: bool },
    /// Truncate after the entry chosen by the fraction (of the present entries, or none).
    Truncate(u8),
    /// Purge up to the entry chosen by the fraction, or `beyond` entries past the last.
    Purge(u8, u8),
    /// Close and open again.
    Reopen,
    /// A crash during the last append: its bytes from the chosen one on are lost (zeros) or
    /// garbage; a no-op unless the previous step was an append.
    Tear(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (prop::collection::vec(0usize..300, 1..6), any::<bool>())
            .prop_map(|(sizes, new_term)| Op::Append { sizes, new_term }),
        1 => any::<u8>().prop_map(Op::Truncate),
        1 => (any::<u8>(), prop_oneof![2 => Just(0u8), 1 => Just(5u8)])
            .prop_map(|(at, beyond)| Op::Purge(at, beyond)),
        1 => Just(Op::Reopen),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(at, zero)| Op::Tear(at, zero)),
    ]
}

/// The model: the present entries and the last purged id.
#[derive(Debug, Default)]
struct Model {
    entries: Vec<WalEntry>,
    purged: Option<EntryId>,
}

impl Model {
    fn next_index(&self) -> u64 {
        match (self.entries.last(), self.purged) {
            (Some(last), _) => last.index + 1,
            (None, Some(purged)) => purged.index + 1,
            (None, None) => 0,
        }
    }

    fn term(&self) -> u64 {
        self.entries
            .last()
            .map(|e| e.term)
            .or(self.purged.map(|p| p.term))
            .unwrap_or(1)
    }
}

/// Chooses an element position of `0..len` by a fraction byte.
fn pick(fraction: u8, len: usize) -> usize {
    fraction as usize * len / 256
}

fn check(wal: &Wal, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(all(wal), model.entries.clone());
    prop_assert_eq!(wal.last_entry_id(), model.entries.last().map(WalEntry::id));
    prop_assert_eq!(wal.last_purged_id(), model.purged);
    prop_assert_eq!(wal.next_index(), model.next_index());
    Ok(())
}

/// Simulates a crash during the last append: from the chosen byte of its records in the last
/// segment, the bytes are lost (zeros) or garbage; the model keeps the records before it.
fn tear(wal: Wal, dir: &Path, model: &mut Model, batch: usize, at: u8, zero: bool) -> Wal {
    let (first_index, path, offsets, end) = wal.layout().pop().unwrap();
    drop(wal);
    let batch_start = model.entries.len() - batch;
    let first_in_segment =
        (model.entries[batch_start].index.max(first_index) - first_index) as usize;
    let start = offsets[first_in_segment];
    let cut = start + (at as u64 * (end - start)) / 256;
    let lost = if zero {
        vec![0; (end - cut) as usize]
    } else {
        vec![0x5a; (end - cut) as usize]
    };
    write_at(&path, cut, &lost);
    let kept = offsets.iter().enumerate().filter(|(k, offset)| {
        let record_end = offsets.get(k + 1).copied().unwrap_or(end);
        **offset < cut && record_end <= cut
    });
    let kept_in_segment = kept.count();
    model
        .entries
        .retain(|e| e.index < first_index + kept_in_segment as u64);
    Wal::open(dir, options(700)).unwrap()
}

fn run(ops: Vec<Op>, cache_bytes_max: usize) -> Result<(), TestCaseError> {
    let scratch = Scratch::new("model");
    let open = || {
        Wal::open(
            scratch.path(),
            WalOptions {
                segment_bytes: 700,
                cache_bytes_max,
            },
        )
    };
    let mut wal = open().unwrap();
    let mut model = Model::default();
    let mut last_batch = None;
    for op in ops {
        let batch = last_batch.take();
        match op {
            Op::Append { sizes, new_term } => {
                let term = model.term() + u64::from(new_term);
                let next = model.next_index();
                let new: Vec<_> = (next..)
                    .zip(sizes)
                    .map(|(i, len)| entry(term, i, len))
                    .collect();
                wal.append(&new).unwrap();
                last_batch = Some(new.len());
                model.entries.extend(new);
            }
            Op::Truncate(at) => {
                let position = pick(at, model.entries.len() + 1);
                let index = match position.checked_sub(1) {
                    Some(k) => Some(model.entries[k].index),
                    None => model.purged.map(|p| p.index),
                };
                wal.truncate_after(index).unwrap();
                model.entries.truncate(position);
            }
            Op::Purge(at, beyond) => {
                let upto = if beyond > 0 || model.entries.is_empty() {
                    EntryId {
                        term: model.term(),
                        index: model.next_index() + u64::from(beyond),
                    }
                } else {
                    model.entries[pick(at, model.entries.len())].id()
                };
                wal.purge_upto(upto).unwrap();
                model.entries.retain(|e| e.index > upto.index);
                model.purged = Some(upto);
            }
            Op::Reopen => {
                drop(wal);
                wal = open().unwrap();
            }
            Op::Tear(at, zero) => {
                if let Some(batch) = batch {
                    wal = tear(wal, scratch.path(), &mut model, batch, at, zero);
                }
            }
        }
        check(&wal, &model)?;
    }
    drop(wal);
    check(&open().unwrap(), &model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_the_model(
        ops in prop::collection::vec(op(), 1..25),
        cache in prop_oneof![Just(0usize), Just(500), Just(1 << 20)],
    ) {
        run(ops, cache)?;
    }
}

/// A log of 40 entries in 512-byte segments, written in calls of one to three entries.
fn damage_base() -> (Scratch, Vec<WalEntry>) {
    let scratch = Scratch::new("damage-base");
    let mut wal = Wal::open(scratch.path(), options(512)).unwrap();
    let written = entries(1, 0..40, 45);
    let mut at = 0;
    for size in [1usize, 3, 2].iter().cycle() {
        if at >= written.len() {
            break;
        }
        let end = (at + size).min(written.len());
        wal.append(&written[at..end]).unwrap();
        at = end;
    }
    (scratch, written)
}

/// Whatever bytes are damaged, opening never panics, and never returns an entry that was not
/// written: it opens a prefix of the log, or refuses with a `CorruptLog`.
#[test]
fn damaged_files_open_as_a_prefix_or_are_refused() {
    let (base, written) = damage_base();
    let damage = prop::collection::vec((any::<u8>(), any::<u16>(), 1u8..=255), 1..4);
    let config = ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&damage, |damage| {
        open_damaged(base.path(), &written, damage)
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

fn open_damaged(
    base: &Path,
    written: &[WalEntry],
    damage: Vec<(u8, u16, u8)>,
) -> Result<(), TestCaseError> {
    let scratch = Scratch::copy_of(base, "damage");
    let mut segments: Vec<PathBuf> = fs::read_dir(scratch.path())
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    for (file, offset, flip) in damage {
        let path = &segments[file as usize % segments.len()];
        let mut bytes = fs::read(path).unwrap();
        let offset = offset as usize % bytes.len();
        bytes[offset] ^= flip;
        fs::write(path, &bytes).unwrap();
    }
    match Wal::open(scratch.path(), options(512)) {
        Ok(mut wal) => {
            let recovered = all(&wal);
            prop_assert_eq!(&recovered[..], &written[..recovered.len()]);
            let next = wal.next_index();
            wal.append(&[entry(2, next, 10)]).unwrap();
            drop(wal);
            let wal = Wal::open(scratch.path(), options(512)).unwrap();
            prop_assert_eq!(wal.next_index(), next + 1);
        }
        Err(err) => {
            prop_assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            prop_assert!(
                err.get_ref().is_some_and(|e| e.is::<CorruptLog>()),
                "{}",
                err
            );
        }
    }
    Ok(())
}
