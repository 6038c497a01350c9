//! The cluster link's wire form: every message between two nodes as an rkyv archive in a
//! frame with magic, version, length and CRC-32 (`shards::state::frame`), and the mirrors of
//! openraft's RPC types those messages carry (openraft has no rkyv support; its fields are
//! public, so each type has a mirror here and one conversion each way).
//!
//! A frame that fails any check (magic, version, length, checksum, archive validation, a
//! value no valid message holds) is an error: the link that carried it is closed and the
//! frame is never acted on. Variants and fields are only ever appended; the version is
//! bumped with them.

// rkyv derives resolver and archived types of their own, which carry no docs.
#![allow(missing_docs)]

use crate::types::{
    CulexConfig, Entry, EntryPayload, LogId, Membership, NodeId, Payload, SnapshotMeta,
    StoredMembership, Vote,
};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft::BasicNode;
use rkyv::{Archive, Deserialize, Serialize};
use shards::state::frame::{self, FrameError};
use std::collections::{BTreeMap, BTreeSet};

/// Magic of a cluster link frame.
pub const LINK_MAGIC: [u8; 8] = *b"CULEXRL\0";

/// The layout version of [`Msg`].
pub const LINK_VERSION: u32 = 2;

/// Largest frame body accepted, in bytes (a snapshot travels in one frame).
pub const FRAME_BODY_MAX: usize = 1 << 30;

/// One message on a cluster link.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Msg {
    /// The first frame on a connection: who is calling, for which cluster. Answered by
    /// `Welcome`, `Challenge` (a cluster secret is configured) or `Refused`.
    Hello {
        /// Cluster name.
        cluster: String,
        /// The caller's node id.
        from: u64,
        /// The caller's nonce for the cluster secret's challenge–response
        /// (`linksec.rs`), or empty without a secret.
        nonce: Vec<u8>,
    },
    /// Raft AppendEntries.
    Append(WAppendRequest),
    /// Its answer.
    AppendReply(WAppendResponse),
    /// Raft RequestVote.
    Vote(WVoteRequest),
    /// Its answer.
    VoteReply(WVoteResponse),
    /// A whole snapshot.
    Snapshot {
        /// The sender's vote.
        vote: WVote,
        /// What it covers.
        meta: WSnapshotMeta,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// Its answer: the receiver's vote.
    SnapshotReply {
        /// The receiver's vote.
        vote: WVote,
    },
    /// Leadership transfer: the receiver should start an election now.
    TransferLeader {
        /// The leader's vote.
        from_leader: WVote,
        /// The node that is to lead.
        to: u64,
        /// The leader's last log id.
        last_log_id: Option<WLogId>,
    },
    /// Its answer: empty when accepted, else why not.
    TransferLeaderReply {
        /// Why it was refused, if it was.
        refused: Option<String>,
    },
    /// A control request forwarded by a follower to the leader (a dynamic-security change
    /// or a cluster command the leader must run).
    Forward(Forwarded),
    /// The answer to a forwarded request: the response to publish (the leader publishes
    /// nothing itself for forwarded requests).
    ForwardReply {
        /// The response (JSON), or `None` when it comes back through the log instead.
        response: Option<Vec<u8>>,
    },
    /// The receiver refuses the request: why.
    Refused {
        /// The reason, for the caller's log.
        reason: String,
    },
    /// The callee's answer to a Hello with a nonce: its own nonce, and its proof of the
    /// cluster secret.
    Challenge {
        /// The callee's nonce.
        nonce: Vec<u8>,
        /// The callee's proof.
        proof: Vec<u8>,
    },
    /// The caller's proof of the cluster secret, after checking the callee's.
    Proof {
        /// The caller's proof.
        proof: Vec<u8>,
    },
    /// The link is accepted: requests may follow.
    Welcome,
}

/// A control request on its way to the leader.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Forwarded {
    /// The API topic it was published to.
    pub topic: String,
    /// The request (JSON).
    pub payload: Vec<u8>,
    /// The asker's client id and user name (the dynamic-security API checks them).
    pub client_id: String,
    /// User name of the asker.
    pub username: Option<String>,
    /// The node whose client asked.
    pub origin: u64,
    /// The shard of that node the request came in on.
    pub shard: u8,
}

/// [`LogId`] on the wire.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WLogId {
    /// Term of the leader that wrote it.
    pub term: u64,
    /// Log index.
    pub index: u64,
}

/// [`Vote`] on the wire.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WVote {
    /// Term.
    pub term: u64,
    /// The node voted for (the leader when committed).
    pub node: u64,
    /// Granted by a quorum.
    pub committed: bool,
}

/// A log entry on the wire.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WEntry {
    /// Its log id.
    pub log_id: WLogId,
    /// Its payload.
    pub payload: WPayload,
}

/// An entry's payload on the wire.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum WPayload {
    /// A new leader's blank entry.
    Blank,
    /// A proposal (its archived bytes; archived exactly as a `Vec<u8>`, so the layout is
    /// the one version 1 always had, and encoding shares the entry's buffer).
    Normal(#[rkyv(with = BytesAsVec)] bytes::Bytes),
    /// A membership change.
    Membership(WMembership),
}

/// A membership on the wire.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WMembership {
    /// The voter sets (two during a joint change).
    pub configs: Vec<Vec<u64>>,
    /// Every node (voters and learners) with its cluster address.
    pub nodes: Vec<(u64, String)>,
}

/// AppendEntries on the wire.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WAppendRequest {
    /// The leader's vote.
    pub vote: WVote,
    /// The entry before the first one sent.
    pub prev_log_id: Option<WLogId>,
    /// The entries.
    pub entries: Vec<WEntry>,
    /// The leader's commit index.
    pub leader_commit: Option<WLogId>,
}

/// AppendEntries' answer on the wire.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum WAppendResponse {
    /// Accepted.
    Success,
    /// Accepted up to a log id.
    PartialSuccess(Option<WLogId>),
    /// The previous entry does not match.
    Conflict,
    /// The receiver has a higher vote.
    HigherVote(WVote),
}

/// RequestVote on the wire.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WVoteRequest {
    /// The candidate's vote.
    pub vote: WVote,
    /// The candidate's last log id.
    pub last_log_id: Option<WLogId>,
    /// The election follows a leadership transfer (voters need not wait for the old
    /// leader's lease to run out).
    pub leadership_transfer: bool,
}

/// RequestVote's answer on the wire.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WVoteResponse {
    /// The voter's vote.
    pub vote: WVote,
    /// Whether it granted the vote.
    pub granted: bool,
    /// The voter's last log id.
    pub last_log_id: Option<WLogId>,
}

/// A snapshot's meta on the wire.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WSnapshotMeta {
    /// The last entry it covers.
    pub last_log_id: Option<WLogId>,
    /// The log id of the membership it holds.
    pub membership_log_id: Option<WLogId>,
    /// That membership.
    pub membership: WMembership,
}

/// Why a frame was refused.
#[derive(Debug)]
pub enum WireError {
    /// Occurs when the framing fails a check (magic, version, length, checksum).
    Frame(FrameError),
    /// Occurs when a frame is larger than [`FRAME_BODY_MAX`].
    TooLarge(u64),
    /// Occurs when the body is not a valid archive of a message, or holds values no valid
    /// message has.
    Invalid(&'static str),
    /// Occurs when the connection fails or ends.
    Io(std::io::Error),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Frame(error) => write!(f, "frame refused: {error}"),
            WireError::TooLarge(len) => write!(f, "frame of {len} bytes refused"),
            WireError::Invalid(why) => write!(f, "invalid message: {why}"),
            WireError::Io(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Frames `msg`: the archive is written once, straight after room for the header, which is
/// filled in afterwards (no copy of the body).
pub fn encode(msg: &Msg) -> Vec<u8> {
    let mut framed = Vec::with_capacity(frame::HEADER_LEN + msg.size_hint());
    framed.resize(frame::HEADER_LEN, 0);
    // The archive's positions count from the start of `framed`; the header's length is a
    // multiple of 16, so the body has the layout (and alignment) of an archive of its own.
    let mut framed = match rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(msg, framed) {
        Ok(framed) => framed,
        Err(error) => unreachable!("archiving plain owned data cannot fail: {error}"),
    };
    let header = frame::header(&LINK_MAGIC, LINK_VERSION, &framed[frame::HEADER_LEN..]);
    framed[..frame::HEADER_LEN].copy_from_slice(&header);
    framed
}

/// Archives `value` into a plain `Vec` of about `capacity` bytes (no copy into a `Vec`
/// afterwards, as `rkyv::to_bytes(..).into_vec()` makes).
pub fn archive<T>(value: &T, capacity: usize) -> Vec<u8>
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            Vec<u8>,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rkyv::rancor::Error,
        >,
    >,
{
    match rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(
        value,
        Vec::with_capacity(capacity),
    ) {
        Ok(bytes) => bytes,
        Err(error) => unreachable!("archiving plain owned data cannot fail: {error}"),
    }
}

/// Runs `f` on `bytes` where rkyv's validated access can read them: in place when they
/// are already 16-byte aligned (buffers from the allocator are), else on an aligned copy.
pub fn with_aligned<R>(bytes: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    if (bytes.as_ptr() as usize) & 15 == 0 {
        f(bytes)
    } else {
        f(&frame::aligned(bytes))
    }
}

impl Msg {
    /// About how many bytes the archive of this message takes (a capacity, not a bound).
    fn size_hint(&self) -> usize {
        match self {
            Msg::Append(request) => {
                256 + request
                    .entries
                    .iter()
                    .map(|entry| match &entry.payload {
                        WPayload::Normal(bytes) => bytes.len() + 64,
                        WPayload::Blank => 64,
                        WPayload::Membership(_) => 512,
                    })
                    .sum::<usize>()
            }
            Msg::Snapshot { data, .. } => data.len() + 1024,
            Msg::Forward(forwarded) => forwarded.payload.len() + 512,
            Msg::ForwardReply { response } => response.as_ref().map_or(0, Vec::len) + 256,
            _ => 256,
        }
    }
}

/// The `with` wrapper that archives `Bytes` exactly as rkyv archives a `Vec<u8>`.
pub struct BytesAsVec;

impl rkyv::with::ArchiveWith<bytes::Bytes> for BytesAsVec {
    type Archived = rkyv::vec::ArchivedVec<u8>;
    type Resolver = rkyv::vec::VecResolver;

    fn resolve_with(
        field: &bytes::Bytes,
        resolver: Self::Resolver,
        out: rkyv::Place<Self::Archived>,
    ) {
        rkyv::vec::ArchivedVec::resolve_from_len(field.len(), resolver, out);
    }
}

impl<S> rkyv::with::SerializeWith<bytes::Bytes, S> for BytesAsVec
where
    S: rkyv::rancor::Fallible + rkyv::ser::Allocator + rkyv::ser::Writer + ?Sized,
{
    fn serialize_with(
        field: &bytes::Bytes,
        serializer: &mut S,
    ) -> Result<Self::Resolver, S::Error> {
        rkyv::vec::ArchivedVec::<u8>::serialize_from_slice(field.as_ref(), serializer)
    }
}

impl<D> rkyv::with::DeserializeWith<rkyv::vec::ArchivedVec<u8>, bytes::Bytes, D> for BytesAsVec
where
    D: rkyv::rancor::Fallible + ?Sized,
{
    fn deserialize_with(
        field: &rkyv::vec::ArchivedVec<u8>,
        _: &mut D,
    ) -> Result<bytes::Bytes, D::Error> {
        Ok(bytes::Bytes::copy_from_slice(field.as_slice()))
    }
}

/// The body length a frame header announces (the header is [`frame::HEADER_LEN`] bytes).
pub fn body_len(header: &[u8]) -> Result<usize, WireError> {
    if header.len() < frame::HEADER_LEN || header[..8] != LINK_MAGIC {
        return Err(WireError::Frame(FrameError::WrongMagic));
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&header[16..24]);
    let length = u64::from_le_bytes(length);
    if length > FRAME_BODY_MAX as u64 {
        return Err(WireError::TooLarge(length));
    }
    Ok(length as usize)
}

/// Reads one framed message (header and body), with every check.
pub fn decode(framed: &[u8]) -> Result<Msg, WireError> {
    let (version, body) = frame::open(&LINK_MAGIC, framed).map_err(WireError::Frame)?;
    if version != LINK_VERSION {
        return Err(WireError::Frame(FrameError::UnsupportedVersion(version)));
    }
    decode_body(body)
}

/// Reads a message whose header (`frame::HEADER_LEN` bytes) and body arrived apart, with
/// every check of [`decode`]; the body is read in place when it is aligned.
pub fn decode_parts(header: &[u8], body: &[u8]) -> Result<Msg, WireError> {
    if header.len() != frame::HEADER_LEN {
        return Err(WireError::Frame(FrameError::WrongMagic));
    }
    let expected = frame::header(&LINK_MAGIC, LINK_VERSION, body);
    if header[..8] != expected[..8] {
        return Err(WireError::Frame(FrameError::WrongMagic));
    }
    if header[8..12] != expected[8..12] {
        let mut version = [0u8; 4];
        version.copy_from_slice(&header[8..12]);
        return Err(WireError::Frame(FrameError::UnsupportedVersion(
            u32::from_le_bytes(version),
        )));
    }
    if header[12..16] != expected[12..16] || header[28..32] != expected[28..32] {
        return Err(WireError::Frame(FrameError::Header));
    }
    if header[16..24] != expected[16..24] {
        return Err(WireError::Frame(FrameError::Truncated));
    }
    if header[24..28] != expected[24..28] {
        return Err(WireError::Frame(FrameError::Checksum));
    }
    decode_body(body)
}

fn decode_body(body: &[u8]) -> Result<Msg, WireError> {
    with_aligned(body, |body| {
        rkyv::from_bytes::<Msg, rkyv::rancor::Error>(body)
            .map_err(|_| WireError::Invalid("not an archived message"))
    })
}

impl From<&LogId> for WLogId {
    fn from(log_id: &LogId) -> WLogId {
        WLogId {
            term: log_id.leader_id.term,
            index: log_id.index,
        }
    }
}

impl From<WLogId> for LogId {
    fn from(w: WLogId) -> LogId {
        LogId::new(
            openraft::vote::leader_id_std::CommittedLeaderId::new(w.term),
            w.index,
        )
    }
}

impl From<&Vote> for WVote {
    fn from(vote: &Vote) -> WVote {
        WVote {
            term: vote.leader_id.term,
            node: vote.leader_id.voted_for,
            committed: vote.committed,
        }
    }
}

impl From<WVote> for Vote {
    fn from(w: WVote) -> Vote {
        if w.committed {
            Vote::new_committed(w.term, w.node)
        } else {
            Vote::new(w.term, w.node)
        }
    }
}

/// The wire form of an optional log id.
pub fn log_id_opt(log_id: Option<&LogId>) -> Option<WLogId> {
    log_id.map(WLogId::from)
}

impl From<&Membership> for WMembership {
    fn from(membership: &Membership) -> WMembership {
        WMembership {
            configs: membership
                .get_joint_config()
                .iter()
                .map(|set| set.iter().copied().collect())
                .collect(),
            nodes: membership
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect(),
        }
    }
}

impl WMembership {
    /// The membership this describes; an error for one no valid membership has (a voter
    /// without an address, no voter set).
    pub fn to_membership(&self) -> Result<Membership, WireError> {
        let configs: Vec<BTreeSet<NodeId>> = self
            .configs
            .iter()
            .map(|set| set.iter().copied().collect())
            .collect();
        let nodes: BTreeMap<NodeId, BasicNode> = self
            .nodes
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        Membership::new(configs, nodes).map_err(|_| WireError::Invalid("membership"))
    }
}

impl From<&Entry> for WEntry {
    fn from(entry: &Entry) -> WEntry {
        let payload = match &entry.payload {
            EntryPayload::Blank => WPayload::Blank,
            EntryPayload::Normal(payload) => WPayload::Normal(payload.0.clone()),
            EntryPayload::Membership(membership) => WPayload::Membership(membership.into()),
        };
        WEntry {
            log_id: (&entry.log_id).into(),
            payload,
        }
    }
}

impl WEntry {
    /// The entry this describes.
    pub fn to_entry(&self) -> Result<Entry, WireError> {
        let payload = match &self.payload {
            WPayload::Blank => EntryPayload::Blank,
            WPayload::Normal(bytes) => EntryPayload::Normal(Payload(bytes.clone())),
            WPayload::Membership(membership) => {
                EntryPayload::Membership(membership.to_membership()?)
            }
        };
        Ok(Entry {
            log_id: self.log_id.into(),
            payload,
        })
    }
}

impl<C: CulexConfig> From<&AppendEntriesRequest<C>> for WAppendRequest {
    fn from(rpc: &AppendEntriesRequest<C>) -> WAppendRequest {
        WAppendRequest {
            vote: (&rpc.vote).into(),
            prev_log_id: log_id_opt(rpc.prev_log_id.as_ref()),
            entries: rpc.entries.iter().map(WEntry::from).collect(),
            leader_commit: log_id_opt(rpc.leader_commit.as_ref()),
        }
    }
}

impl WAppendRequest {
    /// The request this describes.
    pub fn to_request<C: CulexConfig>(&self) -> Result<AppendEntriesRequest<C>, WireError> {
        let entries = self
            .entries
            .iter()
            .map(WEntry::to_entry)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AppendEntriesRequest {
            vote: self.vote.into(),
            prev_log_id: self.prev_log_id.map(LogId::from),
            entries,
            leader_commit: self.leader_commit.map(LogId::from),
        })
    }
}

impl<C: CulexConfig> From<&AppendEntriesResponse<C>> for WAppendResponse {
    fn from(response: &AppendEntriesResponse<C>) -> WAppendResponse {
        match response {
            AppendEntriesResponse::Success => WAppendResponse::Success,
            AppendEntriesResponse::PartialSuccess(log_id) => {
                WAppendResponse::PartialSuccess(log_id_opt(log_id.as_ref()))
            }
            AppendEntriesResponse::Conflict => WAppendResponse::Conflict,
            AppendEntriesResponse::HigherVote(vote) => WAppendResponse::HigherVote(vote.into()),
        }
    }
}

impl<C: CulexConfig> From<&WAppendResponse> for AppendEntriesResponse<C> {
    fn from(w: &WAppendResponse) -> AppendEntriesResponse<C> {
        match w {
            WAppendResponse::Success => AppendEntriesResponse::Success,
            WAppendResponse::PartialSuccess(log_id) => {
                AppendEntriesResponse::PartialSuccess(log_id.map(LogId::from))
            }
            WAppendResponse::Conflict => AppendEntriesResponse::Conflict,
            WAppendResponse::HigherVote(vote) => AppendEntriesResponse::HigherVote((*vote).into()),
        }
    }
}

impl<C: CulexConfig> From<&VoteRequest<C>> for WVoteRequest {
    fn from(rpc: &VoteRequest<C>) -> WVoteRequest {
        WVoteRequest {
            vote: (&rpc.vote).into(),
            last_log_id: log_id_opt(rpc.last_log_id.as_ref()),
            leadership_transfer: rpc.leadership_transfer,
        }
    }
}

impl WVoteRequest {
    /// The request this describes.
    pub fn to_request<C: CulexConfig>(&self) -> VoteRequest<C> {
        let mut request = VoteRequest::new(self.vote.into(), self.last_log_id.map(LogId::from));
        request.leadership_transfer = self.leadership_transfer;
        request
    }
}

impl<C: CulexConfig> From<&VoteResponse<C>> for WVoteResponse {
    fn from(response: &VoteResponse<C>) -> WVoteResponse {
        WVoteResponse {
            vote: (&response.vote).into(),
            granted: response.vote_granted,
            last_log_id: log_id_opt(response.last_log_id.as_ref()),
        }
    }
}

impl WVoteResponse {
    /// The response this describes.
    pub fn to_response<C: CulexConfig>(&self) -> VoteResponse<C> {
        VoteResponse::new(
            Vote::from(self.vote),
            self.last_log_id.map(LogId::from),
            self.granted,
        )
    }
}

impl From<&SnapshotMeta> for WSnapshotMeta {
    fn from(meta: &SnapshotMeta) -> WSnapshotMeta {
        WSnapshotMeta {
            last_log_id: log_id_opt(meta.last_log_id.as_ref()),
            membership_log_id: log_id_opt(meta.last_membership.log_id().as_ref()),
            membership: meta.last_membership.membership().into(),
        }
    }
}

impl WSnapshotMeta {
    /// The meta this describes.
    pub fn to_meta(&self) -> Result<SnapshotMeta, WireError> {
        Ok(SnapshotMeta {
            last_log_id: self.last_log_id.map(LogId::from),
            last_membership: StoredMembership::new(
                self.membership_log_id.map(LogId::from),
                self.membership.to_membership()?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version-1 form of [`WPayload`], whose `Normal` held a `Vec<u8>`.
    #[derive(Archive, Serialize, Deserialize)]
    enum OldPayload {
        Blank,
        Normal(Vec<u8>),
        Membership(WMembership),
    }

    #[derive(Archive, Serialize, Deserialize)]
    struct OldEntry {
        log_id: WLogId,
        payload: OldPayload,
    }

    fn entry(bytes: &[u8]) -> WEntry {
        WEntry {
            log_id: WLogId { term: 3, index: 41 },
            payload: WPayload::Normal(bytes::Bytes::copy_from_slice(bytes)),
        }
    }

    #[test]
    fn a_normal_payload_archives_as_version_one_did() {
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
        let old = OldEntry {
            log_id: WLogId { term: 3, index: 41 },
            payload: OldPayload::Normal(bytes.clone()),
        };
        let old = rkyv::to_bytes::<rkyv::rancor::Error>(&old).expect("archive");
        let new = archive(&entry(&bytes), 16);
        assert_eq!(old.as_slice(), new.as_slice());
        let back = with_aligned(&old, rkyv::from_bytes::<WEntry, rkyv::rancor::Error>)
            .expect("version-1 bytes read");
        assert_eq!(back, entry(&bytes));
    }

    fn append() -> Msg {
        Msg::Append(WAppendRequest {
            vote: WVote {
                term: 3,
                node: 1,
                committed: true,
            },
            prev_log_id: Some(WLogId { term: 3, index: 40 }),
            entries: vec![entry(&[7u8; 4096]), entry(b"short")],
            leader_commit: Some(WLogId { term: 3, index: 40 }),
        })
    }

    #[test]
    fn a_frame_built_in_place_reads_back_whole_and_in_parts() {
        let msg = append();
        let framed = encode(&msg);
        assert_eq!(
            framed[..frame::HEADER_LEN],
            frame::seal(&LINK_MAGIC, LINK_VERSION, &framed[frame::HEADER_LEN..])
                [..frame::HEADER_LEN]
        );
        assert_eq!(decode(&framed).expect("decode"), msg);
        let (header, body) = framed.split_at(frame::HEADER_LEN);
        assert_eq!(decode_parts(header, body).expect("parts"), msg);
    }

    #[test]
    fn a_damaged_frame_in_parts_is_refused() {
        let framed = encode(&append());
        let (header, body) = framed.split_at(frame::HEADER_LEN);
        let mut damaged = body.to_vec();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 1;
        assert!(matches!(
            decode_parts(header, &damaged),
            Err(WireError::Frame(FrameError::Checksum))
        ));
        let mut version = header.to_vec();
        version[8] = 3;
        assert!(matches!(
            decode_parts(&version, body),
            Err(WireError::Frame(FrameError::UnsupportedVersion(3)))
        ));
        let mut magic = header.to_vec();
        magic[0] ^= 1;
        assert!(matches!(
            decode_parts(&magic, body),
            Err(WireError::Frame(FrameError::WrongMagic))
        ));
        assert!(matches!(
            decode_parts(header, &body[..body.len() - 1]),
            Err(WireError::Frame(FrameError::Truncated))
        ));
    }
}
