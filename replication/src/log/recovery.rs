//! Opening the log after a clean stop or a crash: finishing an interrupted truncation,
//! scanning the segments (every checksum, the index sequence), and judging what follows the
//! last valid record. Also the durable truncation itself, whose intent record recovery
//! finishes. Called by `wal`.
//!
//! Why a torn tail can be told from damage: one append call writes one batch of records and
//! ends with fdatasync, so a crash can only leave the *last* call's records incomplete, and
//! every record carries the index of the first entry of its call. Past the last valid record
//! (index `g`), a valid record whose call began after `g + 1` was written by a later call,
//! which happened after the damaged one had been made durable and acknowledged: that is lost
//! data, refused. Anything else there (zeros, a cut record, records of the same call) is the
//! torn write of the last call, and is zeroed away.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::format::{
    self, check_record, decode_record_header, decode_segment_header, is_zero, RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
};
use super::segment::{
    list_segments, open_segment_file, remove_if_present, segment_name, sync_directory, zero_range,
    Segment,
};
use super::{stable, CorruptLog, EntryId};

/// File of the last purged entry id.
pub(crate) const PURGED_FILE: &str = "wal-purged";
/// File of a truncation in progress.
const TRUNCATING_FILE: &str = "wal-truncating";
/// Read buffer of the scans.
const SCAN_BUFFER_BYTES: usize = 1 << 20;
/// Bytes of an encoded [`Truncation`].
const TRUNCATION_BODY_BYTES: usize = 34;

/// A truncation of the log's tail: delete every segment whose first index is greater than
/// `keep_through` (all of them for `None`), and zero the rest of the segment that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncation {
    /// The last index kept.
    pub(crate) keep_through: Option<u64>,
    /// The bytes after the last kept record in its segment, when there are any.
    pub(crate) zero: Option<ZeroRange>,
}

/// A byte range of one segment to zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ZeroRange {
    /// The segment's first index (its name).
    pub(crate) segment_first: u64,
    /// First byte to zero.
    pub(crate) from: u64,
    /// Byte after the last to zero.
    pub(crate) to: u64,
}

impl Truncation {
    pub(crate) fn encode(&self) -> [u8; TRUNCATION_BODY_BYTES] {
        let mut body = [0u8; TRUNCATION_BODY_BYTES];
        body[0] = u8::from(self.keep_through.is_some());
        body[1..9].copy_from_slice(&self.keep_through.unwrap_or(0).to_le_bytes());
        if let Some(zero) = self.zero {
            body[9] = 1;
            body[10..18].copy_from_slice(&zero.segment_first.to_le_bytes());
            body[18..26].copy_from_slice(&zero.from.to_le_bytes());
            body[26..34].copy_from_slice(&zero.to.to_le_bytes());
        }
        body
    }

    fn decode(body: &[u8]) -> Result<Truncation, &'static str> {
        if body.len() != TRUNCATION_BODY_BYTES || body[0] > 1 || body[9] > 1 {
            return Err("truncation record malformed");
        }
        let keep_through = (body[0] == 1).then(|| format::u64_at(body, 1));
        let zero = (body[9] == 1).then(|| ZeroRange {
            segment_first: format::u64_at(body, 10),
            from: format::u64_at(body, 18),
            to: format::u64_at(body, 26),
        });
        if zero.is_some_and(|zero| zero.from > zero.to) {
            return Err("truncation record with a reversed range");
        }
        Ok(Truncation { keep_through, zero })
    }
}

/// Performs `truncation` durably: saves it as an intent, applies it, removes the intent.
pub(crate) fn truncate(dir: &Path, truncation: &Truncation) -> io::Result<()> {
    let intent = dir.join(TRUNCATING_FILE);
    stable::save(
        &intent,
        format::StableKind::Truncating,
        &truncation.encode(),
    )?;
    apply_truncation(dir, truncation)?;
    remove_if_present(&intent)?;
    sync_directory(dir)
}

/// Finishes a truncation that a crash interrupted, if there is one.
pub(crate) fn finish_truncation(dir: &Path) -> io::Result<()> {
    let intent = dir.join(TRUNCATING_FILE);
    let Some(body) = stable::load(&intent, format::StableKind::Truncating)? else {
        return Ok(());
    };
    let truncation = Truncation::decode(&body).map_err(|e| stable::refused(&intent, e))?;
    log::warn!(
        "Raft log {}: finishing a truncation after index {:?} interrupted by a crash",
        dir.display(),
        truncation.keep_through
    );
    apply_truncation(dir, &truncation)?;
    remove_if_present(&intent)?;
    sync_directory(dir)
}

/// Deletes the segments after `keep_through` (newest first), then zeroes the range; both
/// durable on return. Repeatable: recovery runs it again after a crash.
fn apply_truncation(dir: &Path, truncation: &Truncation) -> io::Result<()> {
    let segments = list_segments(dir)?;
    let mut removed = false;
    for (first_index, path) in segments.iter().rev() {
        if Some(*first_index) > truncation.keep_through {
            remove_if_present(path)?;
            removed = true;
        }
    }
    if removed {
        sync_directory(dir)?;
    }
    if let Some(zero) = truncation.zero {
        let path = dir.join(segment_name(zero.segment_first));
        let file = open_segment_file(&path)?;
        zero_range(&file, zero.from, zero.to)?;
        file.sync_data()?;
    }
    Ok(())
}

/// What recovery leaves: the segments with their records, and the last entry.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The segments, by first index, each with at least one record.
    pub(crate) segments: Vec<Segment>,
    /// The last entry present (not purged).
    pub(crate) last: Option<EntryId>,
}

/// Where the chain of valid records stopped on something invalid.
#[derive(Debug)]
struct Stop {
    file: PathBuf,
    offset: u64,
    reason: String,
}

/// Recovers the segments of `dir` (see the module doc), given the last purged id.
pub(crate) fn recover(dir: &Path, purged: Option<EntryId>) -> io::Result<Recovered> {
    let mut listed = list_segments(dir)?;
    let mut removed = 0usize;
    // Segments whose successor starts at or before the first unpurged index hold only purged
    // entries: a purge deleted them when a crash interrupted it.
    if let Some(purged) = purged {
        while listed.len() >= 2 && listed[1].0 <= purged.index + 1 {
            remove_if_present(&listed.remove(0).1)?;
            removed += 1;
        }
    }
    let mut segments = Vec::new();
    let mut last = None;
    if let Some((start, path)) = listed.first() {
        if !purged.map_or(*start == 0, |purged| *start <= purged.index + 1) {
            let detail = format!(
                "the log starts at index {start} but the entries before it were never purged \
                 (last purged: {purged:?})"
            );
            return Err(CorruptLog {
                file: path.clone(),
                offset: 0,
                detail,
            }
            .into_io());
        }
        let (chain, stop) = scan_chain(&listed, *start)?;
        let next_expected = chain.last().map_or(*start, Segment::next_index);
        let tail_files = &listed[chain.len()..];
        judge_tail(&chain, tail_files, stop, next_expected)?;
        removed += tail_files.len();
        last = last_id(&chain)?;
        segments = chain;
    }
    if let Some(purged) = purged {
        while segments
            .first()
            .is_some_and(|s| s.next_index() <= purged.index + 1)
        {
            remove_if_present(&segments.remove(0).path)?;
            removed += 1;
        }
        if last.is_some_and(|last: EntryId| last.index <= purged.index) {
            last = None;
        }
    }
    if removed > 0 {
        sync_directory(dir)?;
    }
    Ok(Recovered { segments, last })
}

/// Scans the listed segments in order while they continue the log from index `start`: the
/// segments with records, and what stopped the chain if it was not a clean end.
fn scan_chain(listed: &[(u64, PathBuf)], start: u64) -> io::Result<(Vec<Segment>, Option<Stop>)> {
    let mut chain: Vec<Segment> = Vec::new();
    let mut expected = start;
    let mut term = 0;
    for (first_index, path) in listed {
        if *first_index != expected {
            let reason = format!("segment starts at index {first_index}, {expected} expected");
            return Ok((
                chain,
                Some(Stop {
                    file: path.clone(),
                    offset: 0,
                    reason,
                }),
            ));
        }
        let scan = scan_segment(path, *first_index, term)?;
        let stop = scan.stop.map(|(offset, reason)| Stop {
            file: path.clone(),
            offset,
            reason,
        });
        if scan.segment.offsets.is_empty() {
            let offset = SEGMENT_HEADER_BYTES as u64;
            let reason = "segment without records".to_string();
            let stop = stop.unwrap_or(Stop {
                file: path.clone(),
                offset,
                reason,
            });
            return Ok((chain, Some(stop)));
        }
        expected = scan.segment.next_index();
        term = scan.last_term;
        chain.push(scan.segment);
        if stop.is_some() {
            return Ok((chain, stop));
        }
    }
    Ok((chain, None))
}

/// What the scan of one segment found.
struct SegmentScan {
    /// The segment with the offsets of its valid records.
    segment: Segment,
    /// The term of its last valid record (the `term` given when it has none).
    last_term: u64,
    /// Where and why the scan stopped, `None` for a clean end (zeros or end of file).
    stop: Option<(u64, String)>,
}

/// Reads the records of one segment from its start while they are valid and continue the
/// log (indexes from `first_index`, terms from `term` up).
fn scan_segment(path: &Path, first_index: u64, term: u64) -> io::Result<SegmentScan> {
    let file = open_segment_file(path)?;
    let mut reader = BufReader::with_capacity(SCAN_BUFFER_BYTES, &file);
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    let read = read_full(&mut reader, &mut header)?;
    let mut records = Records {
        index: first_index,
        term,
        offsets: Vec::new(),
    };
    let mut at = SEGMENT_HEADER_BYTES as u64;
    let stop = if read < SEGMENT_HEADER_BYTES {
        Some((0, "segment header cut short".to_string()))
    } else {
        match decode_segment_header(&header) {
            Ok(index) if index == first_index => scan_records(&mut reader, &mut records, &mut at)?,
            Ok(index) => Some((0, format!("segment header names index {index}"))),
            Err(e) => Some((0, e.to_string())),
        }
    };
    drop(reader);
    let segment = Segment {
        first_index,
        path: path.to_path_buf(),
        file,
        offsets: records.offsets,
        end: at,
    };
    Ok(SegmentScan {
        segment,
        last_term: records.term,
        stop,
    })
}

/// The state of a scan of records: the index and lowest term the next record must have, and
/// the offsets of the valid records so far.
struct Records {
    index: u64,
    term: u64,
    offsets: Vec<u64>,
}

/// Reads records from `reader` (at offset `*at`) while they are valid and continue the log,
/// recording each in `records`; `*at` ends after the last valid record. Returns where and
/// why it stopped, `None` for a clean end (zeros or the end of the file).
fn scan_records(
    reader: &mut BufReader<&File>,
    records: &mut Records,
    at: &mut u64,
) -> io::Result<Option<(u64, String)>> {
    let mut header_bytes = [0u8; RECORD_HEADER_BYTES];
    let mut payload = Vec::new();
    loop {
        let read = read_full(reader, &mut header_bytes)?;
        if is_zero(&header_bytes[..read]) {
            return Ok(None);
        }
        if read < RECORD_HEADER_BYTES {
            return Ok(Some((*at, "record header cut short".to_string())));
        }
        let header = match decode_record_header(&header_bytes) {
            Ok(header) => header,
            Err(e) => return Ok(Some((*at, e.to_string()))),
        };
        let index = records.index;
        if header.id.index != index {
            let reason = format!(
                "record of index {} where {index} was expected",
                header.id.index
            );
            return Ok(Some((*at, reason)));
        }
        if header.id.term < records.term {
            let reason = format!(
                "record of term {} after term {}",
                header.id.term, records.term
            );
            return Ok(Some((*at, reason)));
        }
        payload.resize(header.payload_len as usize, 0);
        if read_full(reader, &mut payload)? < payload.len() {
            return Ok(Some((*at, "record cut short".to_string())));
        }
        if let Err(e) = check_record(&header_bytes, &header, &payload) {
            return Ok(Some((*at, e.to_string())));
        }
        records.offsets.push(*at);
        records.index += 1;
        records.term = header.id.term;
        *at += header.record_bytes();
    }
}

/// Decides what follows the chain's end: refuses when a record of a later append follows
/// (see the module doc), zeroes and deletes a torn tail, accepts zeros.
fn judge_tail(
    chain: &[Segment],
    tail_files: &[(u64, PathBuf)],
    stop: Option<Stop>,
    next_expected: u64,
) -> io::Result<()> {
    let mut garbage_end = None;
    if let Some(segment) = chain.last() {
        let len = segment.file.metadata()?.len();
        let region = scan_region(&segment.file, segment.end, len, next_expected)?;
        if let Some((offset, id)) = region.later {
            return Err(refusal(chain, stop, &segment.path, offset, id));
        }
        garbage_end = region.nonzero_end;
    }
    for (_, path) in tail_files {
        let file = open_segment_file(path)?;
        let region = scan_region(&file, 0, file.metadata()?.len(), next_expected)?;
        if let Some((offset, id)) = region.later {
            return Err(refusal(chain, stop, path, offset, id));
        }
    }
    if garbage_end.is_none() && tail_files.is_empty() {
        return Ok(());
    }
    let (file, offset, reason) = match (&stop, chain.last()) {
        (Some(stop), _) => (stop.file.display(), stop.offset, stop.reason.as_str()),
        (None, Some(segment)) => (segment.path.display(), segment.end, "zeros"),
        (None, None) => unreachable!("a tail without a chain stops somewhere"),
    };
    log::warn!(
        "Raft log: torn write at {file} offset {offset} ({reason}): the entries from index \
         {next_expected} on were never made durable; discarding them ({} segment files)",
        tail_files.len()
    );
    if let (Some(segment), Some(end)) = (chain.last(), garbage_end) {
        zero_range(&segment.file, segment.end, end)?;
        segment.file.sync_data()?;
    }
    for (_, path) in tail_files {
        remove_if_present(path)?;
    }
    Ok(())
}

/// The refusal for damage followed by the record `id` of a later append at `file`/`offset`.
fn refusal(
    chain: &[Segment],
    stop: Option<Stop>,
    file: &Path,
    offset: u64,
    id: EntryId,
) -> io::Error {
    let stop = stop.unwrap_or_else(|| match chain.last() {
        Some(segment) => Stop {
            file: segment.path.clone(),
            offset: segment.end,
            reason: "zeroed bytes".to_string(),
        },
        None => unreachable!("a refusal without a chain stops somewhere"),
    });
    let detail = format!(
        "{}, yet a record of a later write (index {}, term {}) follows in {} at offset {}: \
         entries already made durable are damaged",
        stop.reason,
        id.index,
        id.term,
        file.display(),
        offset
    );
    CorruptLog {
        file: stop.file,
        offset: stop.offset,
        detail,
    }
    .into_io()
}

/// What a region after the end of the log holds.
#[derive(Debug, Default)]
struct Region {
    /// Offset after its last non-zero byte, if it has one.
    nonzero_end: Option<u64>,
    /// The first valid record of a later append in it (offset, id), if any.
    later: Option<(u64, EntryId)>,
}

/// Reads `[from, to)` of `file`: where its non-zero bytes end, and whether a valid record of
/// an append call that began after `next_expected` lies in it (at any byte offset: the
/// length of the damaged record before it cannot be trusted).
fn scan_region(file: &File, from: u64, to: u64, next_expected: u64) -> io::Result<Region> {
    let mut region = Region::default();
    let overlap = RECORD_HEADER_BYTES - 1;
    let mut buffer = vec![0u8; SCAN_BUFFER_BYTES + overlap];
    let mut at = from;
    while at < to {
        let read = (to - at).min(buffer.len() as u64) as usize;
        file.read_exact_at(&mut buffer[..read], at)?;
        let chunk = &buffer[..read];
        // The usual case, a preallocated segment's unused end: zeros, checked a word at a
        // time.
        if format::is_zero(chunk) {
            at += read.min(SCAN_BUFFER_BYTES) as u64;
            continue;
        }
        if let Some(last) = chunk.iter().rposition(|byte| *byte != 0) {
            region.nonzero_end = Some(at + last as u64 + 1);
        }
        let starts = read.min(SCAN_BUFFER_BYTES);
        for (offset, _) in chunk[..starts]
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == format::RECORD_MAGIC_FIRST)
        {
            let offset = at + offset as u64;
            if let Some(id) = later_record(file, offset, to, next_expected)? {
                region.later = Some((offset, id));
                return Ok(region);
            }
        }
        at += starts as u64;
    }
    Ok(region)
}

/// The id of the record at `offset` when it is valid, ends by `to`, and was written by an
/// append call that began after `next_expected`.
fn later_record(
    file: &File,
    offset: u64,
    to: u64,
    next_expected: u64,
) -> io::Result<Option<EntryId>> {
    if offset + RECORD_HEADER_BYTES as u64 > to {
        return Ok(None);
    }
    let mut header_bytes = [0u8; RECORD_HEADER_BYTES];
    file.read_exact_at(&mut header_bytes, offset)?;
    let Ok(header) = decode_record_header(&header_bytes) else {
        return Ok(None);
    };
    if header.batch_first() <= next_expected || offset + header.record_bytes() > to {
        return Ok(None);
    }
    let mut payload = vec![0u8; header.payload_len as usize];
    file.read_exact_at(&mut payload, offset + RECORD_HEADER_BYTES as u64)?;
    Ok(check_record(&header_bytes, &header, &payload)
        .ok()
        .map(|()| header.id))
}

/// The id of the chain's last record.
fn last_id(chain: &[Segment]) -> io::Result<Option<EntryId>> {
    let Some(segment) = chain.last() else {
        return Ok(None);
    };
    let index = segment.next_index() - 1;
    Ok(Some(EntryId {
        term: read_term(segment, index)?,
        index,
    }))
}

/// The term of the record of entry `index` in `segment` (already checked by the scan).
fn read_term(segment: &Segment, index: u64) -> io::Result<u64> {
    let mut header_bytes = [0u8; RECORD_HEADER_BYTES];
    segment
        .file
        .read_exact_at(&mut header_bytes, segment.offset_of(index))?;
    let header = decode_record_header(&header_bytes).map_err(|e| {
        let offset = segment.offset_of(index);
        CorruptLog {
            file: segment.path.clone(),
            offset,
            detail: e.to_string(),
        }
        .into_io()
    })?;
    assert_eq!(
        header.id.index, index,
        "a scanned record changed under the scan"
    );
    Ok(header.id.term)
}

/// Reads into `buffer` until it is full or the input ends; the bytes read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_round_trip() {
        for truncation in [
            Truncation {
                keep_through: None,
                zero: None,
            },
            Truncation {
                keep_through: Some(7),
                zero: Some(ZeroRange {
                    segment_first: 3,
                    from: 100,
                    to: 4096,
                }),
            },
        ] {
            assert_eq!(Truncation::decode(&truncation.encode()), Ok(truncation));
        }
        assert!(Truncation::decode(&[2; TRUNCATION_BODY_BYTES]).is_err());
    }
}
