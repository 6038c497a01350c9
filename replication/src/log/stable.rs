//! The node's small stable records (vote, committed entry id, membership), each a whole file
//! replaced crash-safely (`shards::atomic_file::save_atomic`: temporary file, fsync, rename,
//! directory fsync) and wrapped in a versioned, checksummed envelope, so that a damaged file is
//! refused, never misread. The log's own records (last purged id, truncation in progress) use
//! the same helpers. Called by the replication core's Raft storage and by `wal`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use shards::atomic_file::save_atomic;

use super::format::{
    decode_entry_id, decode_stable, encode_entry_id, encode_stable, StableKind,
    STABLE_BODY_BYTES_MAX, STABLE_ENVELOPE_BYTES,
};
use super::{CorruptLog, EntryId};

/// File of the vote.
const VOTE_FILE: &str = "vote";
/// File of the last committed entry id.
const COMMITTED_FILE: &str = "committed";
/// File of the membership.
const MEMBERSHIP_FILE: &str = "membership";
/// Bytes of an encoded vote: term, voted-for flag and node id, committed flag.
const VOTE_BODY_BYTES: usize = 18;

/// The kind of the log's last-purged record (used by `wal`).
pub(crate) const PURGED: StableKind = StableKind::Purged;

/// A Raft vote: the term, the node voted for in it, and whether that node's leadership is
/// committed (granted by a quorum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    /// The term voted in.
    pub term: u64,
    /// The node voted for, if any.
    pub voted_for: Option<u64>,
    /// Whether a quorum granted the vote (the node is that term's leader).
    pub committed: bool,
}

/// The node's stable records in one directory, read at open and kept in memory.
///
/// Placement: replication core only. Every save is durable when it returns Ok; after a
/// failed save the file holds the old or the new record, and the value in memory is the
/// old one.
#[derive(Debug)]
pub struct Stable {
    dir: PathBuf,
    vote: Option<Vote>,
    committed: Option<EntryId>,
    membership: Option<Bytes>,
}

impl Stable {
    /// Opens (creating `dir` if needed) and reads the records; a damaged record is a
    /// [`CorruptLog`] error naming its file.
    pub fn open(dir: &Path) -> io::Result<Stable> {
        super::wal::create_directory(dir)?;
        let vote_path = dir.join(VOTE_FILE);
        let vote = match load(&vote_path, StableKind::Vote)? {
            Some(body) => Some(decode_vote(&body).map_err(|e| refused(&vote_path, e))?),
            None => None,
        };
        let committed_path = dir.join(COMMITTED_FILE);
        let committed = match load(&committed_path, StableKind::Committed)? {
            Some(body) if body.is_empty() => None,
            Some(body) => Some(decode_entry_id(&body).map_err(|e| refused(&committed_path, e))?),
            None => None,
        };
        let membership = load(&dir.join(MEMBERSHIP_FILE), StableKind::Membership)?.map(Bytes::from);
        Ok(Stable {
            dir: dir.to_path_buf(),
            vote,
            committed,
            membership,
        })
    }

    /// The last saved vote.
    pub fn vote(&self) -> Option<Vote> {
        self.vote
    }

    /// Saves `vote`, durably.
    pub fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        save(
            &self.dir.join(VOTE_FILE),
            StableKind::Vote,
            &encode_vote(vote),
        )?;
        self.vote = Some(*vote);
        Ok(())
    }

    /// The last saved committed entry id.
    pub fn committed(&self) -> Option<EntryId> {
        self.committed
    }

    /// Saves the committed entry id (`None` too), durably.
    pub fn save_committed(&mut self, committed: Option<EntryId>) -> io::Result<()> {
        let body = committed.map(encode_entry_id);
        let body: &[u8] = body.as_ref().map_or(&[], |body| &body[..]);
        save(&self.dir.join(COMMITTED_FILE), StableKind::Committed, body)?;
        self.committed = committed;
        Ok(())
    }

    /// The last saved membership, as given.
    pub fn membership(&self) -> Option<&Bytes> {
        self.membership.as_ref()
    }

    /// Saves the membership (at most [`super::MEMBERSHIP_BYTES_MAX`] bytes: more is an
    /// `InvalidInput` error), durably.
    pub fn save_membership(&mut self, membership: &[u8]) -> io::Result<()> {
        if membership.len() > STABLE_BODY_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("membership of {} bytes over the limit", membership.len()),
            ));
        }
        save(
            &self.dir.join(MEMBERSHIP_FILE),
            StableKind::Membership,
            membership,
        )?;
        self.membership = Some(Bytes::copy_from_slice(membership));
        Ok(())
    }
}

fn encode_vote(vote: &Vote) -> [u8; VOTE_BODY_BYTES] {
    let mut body = [0u8; VOTE_BODY_BYTES];
    body[0..8].copy_from_slice(&vote.term.to_le_bytes());
    body[8] = u8::from(vote.voted_for.is_some());
    body[9..17].copy_from_slice(&vote.voted_for.unwrap_or(0).to_le_bytes());
    body[17] = u8::from(vote.committed);
    body
}

fn decode_vote(body: &[u8]) -> Result<Vote, &'static str> {
    if body.len() != VOTE_BODY_BYTES {
        return Err("vote of the wrong length");
    }
    let flag = |byte: u8| match byte {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err("vote flag neither 0 nor 1"),
    };
    let node = super::format::u64_at(body, 9);
    let voted_for = if flag(body[8])? { Some(node) } else { None };
    if voted_for.is_none() && node != 0 {
        return Err("vote for no node with a node id");
    }
    Ok(Vote {
        term: super::format::u64_at(body, 0),
        voted_for,
        committed: flag(body[17])?,
    })
}

/// Reads the record of `kind` in `path`: its body, `None` when the file does not exist, a
/// [`CorruptLog`] error when it is damaged.
pub(crate) fn load(path: &Path, kind: StableKind) -> io::Result<Option<Vec<u8>>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() > STABLE_ENVELOPE_BYTES + STABLE_BODY_BYTES_MAX {
        return Err(refused(path, "larger than any stable record"));
    }
    let body = decode_stable(kind, &bytes).map_err(|e| refused(path, e))?;
    Ok(Some(body.to_vec()))
}

/// Replaces the record of `kind` in `path` with `body`, crash-safely.
pub(crate) fn save(path: &Path, kind: StableKind, body: &[u8]) -> io::Result<()> {
    save_atomic(path, &encode_stable(kind, body))
}

/// Reads an entry-id record of `kind` in `path`.
pub(crate) fn load_entry_id(path: &Path, kind: StableKind) -> io::Result<Option<EntryId>> {
    match load(path, kind)? {
        Some(body) => Ok(Some(decode_entry_id(&body).map_err(|e| refused(path, e))?)),
        None => Ok(None),
    }
}

/// Saves an entry-id record of `kind` in `path`.
pub(crate) fn save_entry_id(path: &Path, kind: StableKind, id: EntryId) -> io::Result<()> {
    save(path, kind, &encode_entry_id(id))
}

/// The error for a damaged stable record.
pub(crate) fn refused(path: &Path, detail: &str) -> io::Error {
    CorruptLog {
        file: path.to_path_buf(),
        offset: 0,
        detail: detail.to_string(),
    }
    .into_io()
}
