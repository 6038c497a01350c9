//! Framing of archived records: a 32-byte header (magic, format version, body length,
//! CRC-32 of the body) in front of an rkyv archive.
//!
//! Owns the checks that come before any record is looked at: that the bytes are what
//! they claim to be (magic), written by a layout this build reads (version), whole
//! (length) and undamaged (checksum; CRC-32 detects every change of up to 32 consecutive
//! bits, so any single damaged byte). Used for the persistence file (`persist`) and, with
//! its own magic, for the frames a cluster sends and logs.

/// Header size; a multiple of 16 so the body stays aligned for rkyv.
pub const HEADER_LEN: usize = 32;

/// Why framed bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Occurs when the bytes do not start with the expected magic (or are shorter than a
    /// header).
    WrongMagic,
    /// Occurs when a reserved header field is not zero.
    Header,
    /// Occurs when the bytes were written by a layout version this build does not read.
    UnsupportedVersion(u32),
    /// Occurs when the body is not the length the header gives (a truncated file).
    Truncated,
    /// Occurs when the body's checksum does not match the header's.
    Checksum,
    /// Occurs when the body is not a valid archive of the expected type.
    InvalidArchive,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::WrongMagic => f.write_str("not a Culex file (wrong magic)"),
            FrameError::Header => f.write_str("damaged: reserved header field set"),
            FrameError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            FrameError::Truncated => f.write_str("damaged: length does not match"),
            FrameError::Checksum => f.write_str("damaged: checksum does not match"),
            FrameError::InvalidArchive => f.write_str("damaged: invalid archive"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Puts the header (`magic`, `version`) in front of `body`.
pub fn seal(magic: &[u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header(magic, version, body));
    out.extend_from_slice(body);
    out
}

/// The header that goes in front of `body` (for a frame built in place: body written
/// after `HEADER_LEN` bytes of room, header filled in last).
pub fn header(magic: &[u8; 8], version: u32, body: &[u8]) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(magic);
    out[8..12].copy_from_slice(&version.to_le_bytes());
    out[16..24].copy_from_slice(&(body.len() as u64).to_le_bytes());
    out[24..28].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    out
}

/// Checks the header of `framed` against `magic` and returns the version and the body.
pub fn open<'a>(magic: &[u8; 8], framed: &'a [u8]) -> Result<(u32, &'a [u8]), FrameError> {
    if framed.len() < HEADER_LEN || framed[..8] != magic[..] {
        return Err(FrameError::WrongMagic);
    }
    let word = |at: usize| {
        u32::from_le_bytes([framed[at], framed[at + 1], framed[at + 2], framed[at + 3]])
    };
    let version = word(8);
    if word(12) != 0 || word(28) != 0 {
        return Err(FrameError::Header);
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&framed[16..24]);
    let body = &framed[HEADER_LEN..];
    if u64::from_le_bytes(length) != body.len() as u64 {
        return Err(FrameError::Truncated);
    }
    if crc32fast::hash(body) != word(24) {
        return Err(FrameError::Checksum);
    }
    Ok((version, body))
}

/// Copies `body` into a buffer aligned for rkyv's validated access.
pub fn aligned(body: &[u8]) -> rkyv::util::AlignedVec<16> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    aligned
}
