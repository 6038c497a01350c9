//! Byte layouts of the files under the log directory, pure (no I/O): the segment header, the
//! record header of each log entry, and the envelope of the small stable records. All
//! integers are little-endian; every layout carries a magic, and a CRC-32 (crc32fast) over
//! everything before the checksum. Called by `segment`, `wal`, `recovery` and `stable`.

use super::EntryId;

/// Bytes of a segment header, at offset 0 of every segment file.
pub(crate) const SEGMENT_HEADER_BYTES: usize = 32;
/// Magic of a segment header.
const SEGMENT_MAGIC: [u8; 8] = *b"CULEXWAL";
/// Version of the segment and record layout; bumped on any change to either.
const SEGMENT_VERSION: u32 = 1;

/// Bytes of a record header, before the record's payload.
pub(crate) const RECORD_HEADER_BYTES: usize = 32;
/// Magic of a record header ("CXLR" on disk).
const RECORD_MAGIC: [u8; 4] = *b"CXLR";
/// The first byte of [`RECORD_MAGIC`], what a scan for candidate records looks for.
pub(crate) const RECORD_MAGIC_FIRST: u8 = RECORD_MAGIC[0];

/// Largest payload of one entry. A header claiming more is damaged.
pub(crate) const PAYLOAD_BYTES_MAX: usize = 64 << 20;

/// Bytes of the stable-record envelope around its body (magic, version, kind, length, crc).
pub(crate) const STABLE_ENVELOPE_BYTES: usize = 16;
/// Magic of a stable record file.
const STABLE_MAGIC: [u8; 4] = *b"CXST";
/// Version of the stable-record envelope.
const STABLE_VERSION: u16 = 1;
/// Largest body of a stable record (the membership is the only one that grows).
pub(crate) const STABLE_BODY_BYTES_MAX: usize = 16 << 20;

const _: () = assert!(SEGMENT_HEADER_BYTES == RECORD_HEADER_BYTES);
const _: () = assert!(PAYLOAD_BYTES_MAX <= u32::MAX as usize - RECORD_HEADER_BYTES);
const _: () = assert!(STABLE_BODY_BYTES_MAX <= u32::MAX as usize);

/// Why bytes are not a valid header or record (the detail of a `CorruptLog` or a
/// refused stable record).
pub(crate) type Invalid = &'static str;

/// Encodes the header of a segment whose first record has index `first_index`.
pub(crate) fn encode_segment_header(first_index: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32fast::hash(&header[..28]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    header
}

/// Decodes a segment header: the index of the segment's first record.
pub(crate) fn decode_segment_header(header: &[u8; SEGMENT_HEADER_BYTES]) -> Result<u64, Invalid> {
    if header[0..8] != SEGMENT_MAGIC {
        return Err("not a segment header (bad magic)");
    }
    if crc32fast::hash(&header[..28]) != u32_at(header, 28) {
        return Err("segment header checksum mismatch");
    }
    if u32_at(header, 8) != SEGMENT_VERSION {
        return Err("unsupported segment version");
    }
    Ok(u64_at(header, 16))
}

/// The header of one record, as decoded (its checksum not yet checked against the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    /// Bytes of payload that follow the header.
    pub(crate) payload_len: u32,
    /// The entry's term and index.
    pub(crate) id: EntryId,
    /// `index` minus the index of the first entry of the append call that wrote it: tells a
    /// torn last append (all its records share one batch) from damage followed by later,
    /// acknowledged appends.
    pub(crate) batch_offset: u32,
    /// CRC-32 of the header's first 28 bytes followed by the payload.
    pub(crate) crc: u32,
}

impl RecordHeader {
    /// Index of the first entry of the append call that wrote this record.
    pub(crate) fn batch_first(&self) -> u64 {
        self.id.index - u64::from(self.batch_offset)
    }

    /// Bytes of the whole record: header and payload.
    pub(crate) fn record_bytes(&self) -> u64 {
        RECORD_HEADER_BYTES as u64 + u64::from(self.payload_len)
    }
}

/// Appends the record of entry `id` with `payload` to `out`.
pub(crate) fn encode_record(out: &mut Vec<u8>, id: EntryId, batch_offset: u32, payload: &[u8]) {
    assert!(
        payload.len() <= PAYLOAD_BYTES_MAX,
        "payload over the limit reached the encoder"
    );
    assert!(
        u64::from(batch_offset) <= id.index,
        "a batch cannot start before index 0"
    );
    let start = out.len();
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&id.term.to_le_bytes());
    out.extend_from_slice(&id.index.to_le_bytes());
    out.extend_from_slice(&batch_offset.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[start..]);
    hasher.update(payload);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    debug_assert_eq!(out.len() - start, RECORD_HEADER_BYTES + payload.len());
}

/// Whether `header` is all zero bytes: the unwritten space after a segment's last record.
pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    words
        .map(|word| {
            u64::from_ne_bytes([
                word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
            ])
        })
        .all(|word| word == 0)
        && rest.iter().all(|byte| *byte == 0)
}

/// Decodes a record header; the payload's checksum is checked by [`check_record`].
pub(crate) fn decode_record_header(
    header: &[u8; RECORD_HEADER_BYTES],
) -> Result<RecordHeader, Invalid> {
    if header[0..4] != RECORD_MAGIC {
        return Err("not a record header (bad magic)");
    }
    let record = RecordHeader {
        payload_len: u32_at(header, 4),
        id: EntryId {
            term: u64_at(header, 8),
            index: u64_at(header, 16),
        },
        batch_offset: u32_at(header, 24),
        crc: u32_at(header, 28),
    };
    if record.payload_len as usize > PAYLOAD_BYTES_MAX {
        return Err("record length over the limit");
    }
    if u64::from(record.batch_offset) > record.id.index {
        return Err("record batch offset before index 0");
    }
    Ok(record)
}

/// Checks a decoded record's checksum against its header bytes and payload.
pub(crate) fn check_record(
    header_bytes: &[u8; RECORD_HEADER_BYTES],
    header: &RecordHeader,
    payload: &[u8],
) -> Result<(), Invalid> {
    assert_eq!(payload.len(), header.payload_len as usize);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header_bytes[..28]);
    hasher.update(payload);
    if hasher.finalize() != header.crc {
        return Err("record checksum mismatch");
    }
    Ok(())
}

/// The kinds of stable record, each in its own file; the kind is stored so that a file
/// renamed by hand over another is refused, not misread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub(crate) enum StableKind {
    /// The vote (term, voted-for node, committed).
    Vote = 1,
    /// The last committed entry id.
    Committed = 2,
    /// The last membership the node knows (opaque bytes).
    Membership = 3,
    /// The last entry id purged from the log.
    Purged = 4,
    /// A truncation of the log's tail in progress.
    Truncating = 5,
}

/// Encodes a stable record of `kind` around `body`.
pub(crate) fn encode_stable(kind: StableKind, body: &[u8]) -> Vec<u8> {
    assert!(
        body.len() <= STABLE_BODY_BYTES_MAX,
        "stable record body over the limit"
    );
    let mut out = Vec::with_capacity(STABLE_ENVELOPE_BYTES + body.len());
    out.extend_from_slice(&STABLE_MAGIC);
    out.extend_from_slice(&STABLE_VERSION.to_le_bytes());
    out.extend_from_slice(&(kind as u16).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(out.len(), STABLE_ENVELOPE_BYTES + body.len());
    out
}

/// Decodes a stable record of `kind`: its body.
pub(crate) fn decode_stable(kind: StableKind, bytes: &[u8]) -> Result<&[u8], Invalid> {
    if bytes.len() < STABLE_ENVELOPE_BYTES {
        return Err("shorter than a stable record");
    }
    if bytes[0..4] != STABLE_MAGIC {
        return Err("not a stable record (bad magic)");
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(content) != u32_at(crc, 0) {
        return Err("stable record checksum mismatch");
    }
    if u16::from_le_bytes([bytes[4], bytes[5]]) != STABLE_VERSION {
        return Err("unsupported stable record version");
    }
    if u16::from_le_bytes([bytes[6], bytes[7]]) != kind as u16 {
        return Err("stable record of another kind");
    }
    let body_len = u32_at(bytes, 8) as usize;
    if body_len != bytes.len() - STABLE_ENVELOPE_BYTES {
        return Err("stable record length mismatch");
    }
    Ok(&content[12..])
}

/// Encodes an entry id as a stable-record body (16 bytes).
pub(crate) fn encode_entry_id(id: EntryId) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0..8].copy_from_slice(&id.term.to_le_bytes());
    out[8..16].copy_from_slice(&id.index.to_le_bytes());
    out
}

/// Decodes an entry id written by [`encode_entry_id`].
pub(crate) fn decode_entry_id(body: &[u8]) -> Result<EntryId, Invalid> {
    if body.len() != 16 {
        return Err("entry id of the wrong length");
    }
    Ok(EntryId {
        term: u64_at(body, 0),
        index: u64_at(body, 8),
    })
}

/// The little-endian `u32` at `offset` of `bytes` (the caller checked the length).
pub(crate) fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

/// The little-endian `u64` at `offset` of `bytes` (the caller checked the length).
pub(crate) fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(record: &[u8]) -> [u8; RECORD_HEADER_BYTES] {
        record[..RECORD_HEADER_BYTES].try_into().unwrap()
    }

    #[test]
    fn record_round_trip_and_every_flipped_bit_is_detected() {
        let id = EntryId { term: 7, index: 42 };
        let mut record = Vec::new();
        encode_record(&mut record, id, 2, b"payload");
        let header = decode_record_header(&header_of(&record)).unwrap();
        assert_eq!(header.id, id);
        assert_eq!(header.batch_first(), 40);
        assert_eq!(header.record_bytes(), record.len() as u64);
        check_record(&header_of(&record), &header, &record[RECORD_HEADER_BYTES..]).unwrap();
        for bit in 0..record.len() * 8 {
            let mut damaged = record.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let bytes = header_of(&damaged);
            let detected = match decode_record_header(&bytes) {
                Err(_) => true,
                Ok(h) if h.payload_len as usize != damaged.len() - RECORD_HEADER_BYTES => true,
                Ok(h) => check_record(&bytes, &h, &damaged[RECORD_HEADER_BYTES..]).is_err(),
            };
            assert!(detected, "bit {bit} flipped went unnoticed");
        }
    }

    #[test]
    fn segment_header_round_trip_and_damage() {
        let header = encode_segment_header(1234);
        assert_eq!(decode_segment_header(&header), Ok(1234));
        let mut damaged = header;
        damaged[17] ^= 0x10;
        assert_eq!(
            decode_segment_header(&damaged),
            Err("segment header checksum mismatch")
        );
        assert!(decode_segment_header(&[0; SEGMENT_HEADER_BYTES]).is_err());
    }

    #[test]
    fn stable_round_trip_and_damage() {
        let bytes = encode_stable(StableKind::Membership, b"members");
        assert_eq!(
            decode_stable(StableKind::Membership, &bytes),
            Ok(&b"members"[..])
        );
        assert_eq!(
            decode_stable(StableKind::Vote, &bytes),
            Err("stable record of another kind")
        );
        for cut in 0..bytes.len() {
            assert!(
                decode_stable(StableKind::Membership, &bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        for byte in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[byte] ^= 0x01;
            assert!(
                decode_stable(StableKind::Membership, &damaged).is_err(),
                "byte {byte}"
            );
        }
    }
}
