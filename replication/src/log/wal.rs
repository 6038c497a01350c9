//! The write-ahead log of Raft entries: append with one fdatasync per call, range reads (from
//! a cache of recent entries or the segments), tail truncation and prefix purge, each durable
//! on return. Called by the replication core's Raft log storage.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::{Bound, RangeBounds};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::format::{
    check_record, decode_record_header, encode_record, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};
use super::recovery::{self, Truncation, ZeroRange};
use super::segment::{self, Segment};
use super::{stable, CorruptLog, EntryId, WalEntry, PAYLOAD_BYTES_MAX};

/// Name of the lock file that keeps a second process out of the log directory.
const LOCK_FILE: &str = "wal.lock";
/// Smallest segment size [`WalOptions`] accepts (tests use small segments to roll often).
pub(crate) const SEGMENT_BYTES_MIN: u64 = 128;
/// Largest segment size [`WalOptions`] accepts.
pub(crate) const SEGMENT_BYTES_MAX: u64 = 4 << 30;
/// Capacity the append buffer keeps between calls; a larger batch's buffer is released.
const BUFFER_KEEP_BYTES: usize = 4 << 20;

const _: () = assert!(SEGMENT_BYTES_MIN >= (SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES) as u64);
const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_MAX);

/// How a [`Wal`] lays out its files and how much it keeps in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// Bytes preallocated per segment file (default 64 MiB). A record larger than a segment
    /// gets a segment of its own, which grows to hold it.
    pub segment_bytes: u64,
    /// Payload bytes of the most recent entries kept in memory for reads (default 16 MiB;
    /// 0 reads every entry from the files). The cache holds the appended `Bytes`, so a
    /// payload sliced from a larger buffer keeps that buffer alive while cached.
    pub cache_bytes_max: usize,
}

impl Default for WalOptions {
    fn default() -> WalOptions {
        WalOptions {
            segment_bytes: 64 << 20,
            cache_bytes_max: 16 << 20,
        }
    }
}

/// The write-ahead log of one node, in one directory.
///
/// Placement: replication core only. Every mutating call is durable when it returns Ok.
/// After an I/O error in a mutating call the log refuses every further call: what is on disk
/// is then unknown (a failed fdatasync may have dropped pages), and only [`Wal::open`] can
/// tell again.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    /// Holds the directory's lock (`flock`) for as long as the log is open.
    _lock: File,
    /// The segments, by first index; each holds at least one record.
    segments: Vec<Segment>,
    /// The last entry removed by [`Wal::purge_upto`], if any.
    purged: Option<EntryId>,
    /// The last entry present, if any.
    last: Option<EntryId>,
    /// The most recent entries, contiguous and ending at `last`.
    cache: VecDeque<WalEntry>,
    /// Payload bytes in `cache`.
    cache_bytes: usize,
    /// Records of the current append call, reused between calls.
    buffer: Vec<u8>,
    /// Set by an I/O error in a mutating call; the log refuses further calls.
    failed: bool,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`: recovers the segments (see the module
    /// doc), finishing an interrupted truncation or purge and removing a torn tail. Fails
    /// with a [`CorruptLog`] error when damage is followed by acknowledged entries, and when
    /// another process holds the directory.
    pub fn open(dir: &Path, options: WalOptions) -> io::Result<Wal> {
        check_options(&options)?;
        create_directory(dir)?;
        let lock = lock_directory(dir)?;
        let purged = stable::load_entry_id(&dir.join(recovery::PURGED_FILE), stable::PURGED)?;
        recovery::finish_truncation(dir)?;
        let recovered = recovery::recover(dir, purged)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            _lock: lock,
            segments: recovered.segments,
            purged,
            last: recovered.last,
            cache: VecDeque::new(),
            cache_bytes: 0,
            buffer: Vec::new(),
            failed: false,
        };
        wal.check_invariants();
        Ok(wal)
    }

    /// Index of the first entry the log can hold: after the last purged one, or 0.
    pub fn first_index(&self) -> u64 {
        self.purged.map_or(0, |purged| purged.index + 1)
    }

    /// Index the next appended entry must have.
    pub fn next_index(&self) -> u64 {
        self.last.map_or(self.first_index(), |last| last.index + 1)
    }

    /// The last entry present, `None` when the log holds no entry (Raft's last log id is
    /// this, or else [`Wal::last_purged_id`]).
    pub fn last_entry_id(&self) -> Option<EntryId> {
        self.last
    }

    /// The last entry removed by [`Wal::purge_upto`], remembered across restarts.
    pub fn last_purged_id(&self) -> Option<EntryId> {
        self.purged
    }

    /// Appends `entries` and makes them durable (one fdatasync per call; two when the call
    /// fills a segment and starts the next, plus the new segment's creation). The entries
    /// must continue the log: indexes consecutive from [`Wal::next_index`], terms not
    /// decreasing, payloads at most [`PAYLOAD_BYTES_MAX`] (a programmer error: it asserts in
    /// debug builds, and is an `InvalidInput` error that changes nothing in release).
    pub fn append(&mut self, entries: &[WalEntry]) -> io::Result<()> {
        self.check_usable()?;
        let Some(last) = entries.last() else {
            return Ok(());
        };
        if let Err(detail) = self.check_continues(entries) {
            debug_assert!(false, "append does not continue the log: {detail}");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, detail));
        }
        let result = self.write_batch(entries);
        self.fail_on_error(result)?;
        self.last = Some(last.id());
        for entry in entries {
            self.cache_push(entry);
        }
        self.check_invariants();
        Ok(())
    }

    /// The entries of `range` that the log holds, in order: the range is clipped to
    /// [`Wal::first_index`]..[`Wal::next_index`]. Recent entries come from the cache, older
    /// ones from the segments with their checksums checked (damage there is a
    /// [`CorruptLog`] error).
    pub fn entries<R>(&self, range: R) -> io::Result<Vec<WalEntry>>
    where
        R: RangeBounds<u64>,
    {
        self.check_usable()?;
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
        let start = start.max(self.first_index());
        let end = end.min(self.next_index());
        if start >= end {
            return Ok(Vec::new());
        }
        // The cache holds the most recent entries, from `front` on: the part of the range
        // from there (if any) comes from it, the rest from the segments.
        let front = self.cache.front().map(|entry| entry.index);
        let cached_from = match front {
            Some(front) if front < end => front.max(start),
            _ => end,
        };
        let mut out = Vec::with_capacity((end - start) as usize);
        self.read_segments(start, cached_from, &mut out)?;
        if let Some(front) = front.filter(|_| cached_from < end) {
            let skip = (cached_from - front) as usize;
            let count = (end - cached_from) as usize;
            out.extend(self.cache.range(skip..skip + count).cloned());
        }
        assert_eq!(
            out.len() as u64,
            end - start,
            "a read returned a partial range"
        );
        Ok(out)
    }

    /// Removes every entry after `index` (all of them for `None`), durably before it returns:
    /// Raft's conflict resolution. Entries already purged cannot be truncated (a programmer
    /// error: asserts in debug, `InvalidInput` in release).
    pub fn truncate_after(&mut self, index: Option<u64>) -> io::Result<()> {
        self.check_usable()?;
        if index < self.purged.map(|purged| purged.index) {
            debug_assert!(false, "truncation below the purged entries");
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot truncate after {index:?}: entries up to {:?} are purged",
                    self.purged
                ),
            ));
        }
        let Some(last) = self.last else {
            return Ok(());
        };
        if index >= Some(last.index) {
            return Ok(());
        }
        let result = self.truncate_durably(index);
        self.fail_on_error(result)?;
        self.check_invariants();
        Ok(())
    }

    /// Drops every entry up to and including `upto` (compaction behind a snapshot), which may
    /// lie beyond the last entry (a snapshot installed from the leader): the log is then
    /// empty and continues at `upto.index + 1`. `upto` is saved durably first, then the
    /// segments holding only purged entries are deleted. Purging less than already purged
    /// does nothing. `upto` must agree with the entry the log holds at its index (a
    /// programmer error otherwise: asserts in debug, `InvalidInput` in release).
    pub fn purge_upto(&mut self, upto: EntryId) -> io::Result<()> {
        self.check_usable()?;
        if Some(upto.index) <= self.purged.map(|purged| purged.index) {
            return Ok(());
        }
        if let Err(detail) = self.check_purge(upto) {
            debug_assert!(false, "{detail}");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, detail));
        }
        let result = self.purge_durably(upto);
        self.fail_on_error(result)?;
        self.check_invariants();
        Ok(())
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(format!(
                "the Raft log in {} failed an earlier write; reopen it",
                self.dir.display()
            )));
        }
        Ok(())
    }

    fn fail_on_error<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            log::error!(
                "Raft log in {}: {e}; the log is unusable until reopened",
                self.dir.display()
            );
            self.failed = true;
        }
        result
    }

    /// Why `entries` do not continue the log, if they do not.
    fn check_continues(&self, entries: &[WalEntry]) -> Result<(), String> {
        if entries.len() as u64 > u64::from(u32::MAX) + 1 {
            return Err(format!("{} entries in one append", entries.len()));
        }
        let mut term = self.last.or(self.purged).map_or(0, |id| id.term);
        for (index, entry) in (self.next_index()..).zip(entries) {
            if entry.index != index {
                return Err(format!(
                    "entry index {} where {index} was expected",
                    entry.index
                ));
            }
            if entry.term < term {
                return Err(format!(
                    "entry {index} has term {} after term {term}",
                    entry.term
                ));
            }
            if entry.payload.len() > PAYLOAD_BYTES_MAX {
                return Err(format!(
                    "entry {index} has {} payload bytes",
                    entry.payload.len()
                ));
            }
            term = entry.term;
        }
        Ok(())
    }

    /// Writes the records of `entries` to the segments (starting new ones as they fill) and
    /// fdatasyncs every segment written.
    fn write_batch(&mut self, entries: &[WalEntry]) -> io::Result<()> {
        self.buffer.clear();
        let mut first_written = self.segments.len().saturating_sub(1);
        for (batch_offset, entry) in entries.iter().enumerate() {
            let record_bytes = (RECORD_HEADER_BYTES + entry.payload.len()) as u64;
            let full = self.segments.last().is_none_or(|segment| {
                let used = segment.end + self.buffer.len() as u64;
                !segment.offsets.is_empty() && used + record_bytes > self.options.segment_bytes
            });
            if full {
                self.flush_buffer()?;
                let capacity = self.options.segment_bytes;
                let segment = segment::create_segment(&self.dir, entry.index, capacity)?;
                self.segments.push(segment);
                first_written = first_written.min(self.segments.len() - 1);
            }
            let Some(segment) = self.segments.last_mut() else {
                unreachable!("a segment was created above when there was none");
            };
            segment.offsets.push(segment.end + self.buffer.len() as u64);
            encode_record(
                &mut self.buffer,
                entry.id(),
                batch_offset as u32,
                &entry.payload,
            );
        }
        self.flush_buffer()?;
        for segment in &self.segments[first_written..] {
            segment.file.sync_data()?;
        }
        if self.buffer.capacity() > BUFFER_KEEP_BYTES {
            self.buffer = Vec::new();
        }
        Ok(())
    }

    /// Writes the buffered records at the end of the last segment.
    fn flush_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let Some(segment) = self.segments.last_mut() else {
            unreachable!("records are buffered only for an existing segment");
        };
        segment.file.write_all_at(&self.buffer, segment.end)?;
        segment.end += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    fn cache_push(&mut self, entry: &WalEntry) {
        if self.options.cache_bytes_max == 0 {
            return;
        }
        if let Some(back) = self.cache.back() {
            assert_eq!(
                back.index + 1,
                entry.index,
                "the cache must stay contiguous"
            );
        }
        self.cache.push_back(entry.clone());
        self.cache_bytes += entry.payload.len();
        while self.cache_bytes > self.options.cache_bytes_max {
            let Some(front) = self.cache.pop_front() else {
                break;
            };
            self.cache_bytes -= front.payload.len();
        }
    }

    /// Reads the entries `[start, end)` from the segments into `out`.
    fn read_segments(&self, start: u64, end: u64, out: &mut Vec<WalEntry>) -> io::Result<()> {
        for segment in &self.segments {
            let from = start.max(segment.first_index);
            let to = end.min(segment.next_index());
            if from < to {
                read_records(segment, from, to, out)?;
            }
        }
        Ok(())
    }

    /// The id of the entry at `index`, which the log holds.
    fn entry_id_at(&self, index: u64) -> io::Result<EntryId> {
        if let Some(front) = self.cache.front() {
            if front.index <= index {
                return Ok(self.cache[(index - front.index) as usize].id());
            }
        }
        let mut out = Vec::with_capacity(1);
        self.read_segments(index, index + 1, &mut out)?;
        match out.first() {
            Some(entry) => Ok(entry.id()),
            None => unreachable!("entry {index} is in the log but in no segment"),
        }
    }

    fn truncate_durably(&mut self, index: Option<u64>) -> io::Result<()> {
        let new_last = match index {
            Some(index) if index >= self.first_index() => Some(self.entry_id_at(index)?),
            _ => None,
        };
        let zero = index.and_then(|index| {
            let segment = self
                .segments
                .iter()
                .find(|segment| segment.contains(index))?;
            let from = segment.end_of(index);
            (from < segment.end).then_some(ZeroRange {
                segment_first: segment.first_index,
                from,
                to: segment.end,
            })
        });
        let truncation = Truncation {
            keep_through: index,
            zero,
        };
        recovery::truncate(&self.dir, &truncation)?;
        self.segments
            .retain(|segment| Some(segment.first_index) <= index);
        if let (Some(index), Some(segment)) = (index, self.segments.last_mut()) {
            segment.end = segment.end_of(index);
            segment
                .offsets
                .truncate((index + 1 - segment.first_index) as usize);
        }
        while self
            .cache
            .back()
            .is_some_and(|entry| Some(entry.index) > index)
        {
            if let Some(entry) = self.cache.pop_back() {
                self.cache_bytes -= entry.payload.len();
            }
        }
        self.last = new_last;
        Ok(())
    }

    /// Why purging up to `upto` would contradict the log, if it would.
    fn check_purge(&self, upto: EntryId) -> Result<(), String> {
        if let Some(purged) = self.purged {
            if upto.term < purged.term {
                return Err(format!(
                    "purge up to {upto:?} after purging up to {purged:?}"
                ));
            }
        }
        let Some(last) = self.last else {
            return Ok(());
        };
        if upto.index > last.index {
            return if upto.term >= last.term {
                Ok(())
            } else {
                Err(format!(
                    "purge up to {upto:?} beyond the last entry {last:?}"
                ))
            };
        }
        match self.entry_id_at(upto.index) {
            Ok(id) if id == upto => Ok(()),
            Ok(id) => Err(format!("purge up to {upto:?} but the log holds {id:?}")),
            Err(e) => Err(format!("purge up to {upto:?}: {e}")),
        }
    }

    fn purge_durably(&mut self, upto: EntryId) -> io::Result<()> {
        stable::save_entry_id(&self.dir.join(recovery::PURGED_FILE), stable::PURGED, upto)?;
        let keep_from = self
            .segments
            .iter()
            .position(|segment| segment.next_index() > upto.index + 1)
            .unwrap_or(self.segments.len());
        for segment in self.segments.drain(..keep_from) {
            segment::remove_if_present(&segment.path)?;
        }
        if keep_from > 0 {
            segment::sync_directory(&self.dir)?;
        }
        self.purged = Some(upto);
        if self.last.is_some_and(|last| last.index <= upto.index) {
            self.last = None;
        }
        while self
            .cache
            .front()
            .is_some_and(|entry| entry.index <= upto.index)
        {
            if let Some(entry) = self.cache.pop_front() {
                self.cache_bytes -= entry.payload.len();
            }
        }
        Ok(())
    }

    /// The segments' layout (first index, path, record offsets, end), for tests that damage
    /// the files as a crash or the medium would.
    #[cfg(test)]
    pub(crate) fn layout(&self) -> Vec<(u64, PathBuf, Vec<u64>, u64)> {
        let layout = self.segments.iter();
        layout
            .map(|s| (s.first_index, s.path.clone(), s.offsets.clone(), s.end))
            .collect()
    }

    /// The relations between the fields, checked after every change (O(segments)).
    fn check_invariants(&self) {
        if let Some(last) = self.last {
            assert!(
                last.index >= self.first_index(),
                "last entry {last:?} is purged"
            );
            let Some(segment) = self.segments.last() else {
                panic!("last entry {last:?} but no segment");
            };
            assert_eq!(
                segment.next_index(),
                last.index + 1,
                "last segment ends elsewhere"
            );
        } else {
            assert!(self
                .segments
                .iter()
                .all(|s| s.next_index() <= self.first_index()));
        }
        for pair in self.segments.windows(2) {
            assert_eq!(
                pair[0].next_index(),
                pair[1].first_index,
                "segments not contiguous"
            );
        }
        debug_assert!(self
            .segments
            .iter()
            .all(|segment| !segment.offsets.is_empty()));
        if let (Some(front), Some(back)) = (self.cache.front(), self.cache.back()) {
            assert!(
                front.index >= self.first_index(),
                "cache holds a purged entry"
            );
            assert_eq!(
                Some(back.id()),
                self.last,
                "cache does not end at the last entry"
            );
            assert_eq!(back.index - front.index + 1, self.cache.len() as u64);
        }
    }
}

/// Reads the records of entries `[from, to)` of `segment` with one read, checking each.
fn read_records(segment: &Segment, from: u64, to: u64, out: &mut Vec<WalEntry>) -> io::Result<()> {
    let start = segment.offset_of(from);
    let end = segment.end_of(to - 1);
    let mut buffer = vec![0u8; (end - start) as usize];
    segment.file.read_exact_at(&mut buffer, start)?;
    let bytes = Bytes::from(buffer);
    let mut at = 0usize;
    for index in from..to {
        let corrupt = |detail: String| CorruptLog {
            file: segment.path.clone(),
            offset: start + at as u64,
            detail,
        };
        let Some(header_bytes) = bytes.get(at..at + RECORD_HEADER_BYTES) else {
            return Err(corrupt("record cut short".to_string()).into_io());
        };
        let mut header_array = [0u8; RECORD_HEADER_BYTES];
        header_array.copy_from_slice(header_bytes);
        let header =
            decode_record_header(&header_array).map_err(|e| corrupt(e.to_string()).into_io())?;
        if header.id.index != index {
            return Err(corrupt(format!(
                "record of index {} where {index} was",
                header.id.index
            ))
            .into_io());
        }
        let payload_start = at + RECORD_HEADER_BYTES;
        let payload_end = payload_start + header.payload_len as usize;
        let Some(payload) = bytes.get(payload_start..payload_end) else {
            return Err(corrupt("record cut short".to_string()).into_io());
        };
        check_record(&header_array, &header, payload)
            .map_err(|e| corrupt(e.to_string()).into_io())?;
        out.push(WalEntry {
            term: header.id.term,
            index,
            payload: bytes.slice(payload_start..payload_end),
        });
        at = payload_end;
    }
    assert_eq!(at, bytes.len(), "records do not fill the range read");
    Ok(())
}

fn check_options(options: &WalOptions) -> io::Result<()> {
    if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&options.segment_bytes) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "segment size {} out of range {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}",
                options.segment_bytes
            ),
        ));
    }
    Ok(())
}

/// Creates `dir` if it does not exist, durably (its parent synced).
pub(crate) fn create_directory(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => segment::sync_directory(parent),
        _ => Ok(()),
    }
}

/// Takes the exclusive lock of `dir`, refusing when another process holds it.
fn lock_directory(dir: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(LOCK_FILE))?;
    // SAFETY: the descriptor is open and owned by `file`, which outlives the call; flock
    // reads no memory of ours.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if result != 0 {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(
            error.kind(),
            format!(
                "Raft log directory {} is in use by another process: {error}",
                dir.display()
            ),
        ));
    }
    Ok(file)
}
