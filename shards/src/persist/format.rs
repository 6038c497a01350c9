//! The state file's records and framing: a 32-byte header (magic, format version, body
//! length, CRC-32 of the body) followed by an rkyv archive of [`Snapshot`].
//!
//! The records are plain owned data (strings, byte vectors), independent of the in-memory
//! types, so the file format changes only on purpose. The same records are what the
//! replication core will send as a Raft snapshot, which is why sessions are stored with
//! everything a follower needs to continue them (window, queue, QoS 2 ids, will).
//! Records are only ever extended at the end of a struct together with a version bump.

use rkyv::{Archive, Deserialize, Serialize};

/// Magic bytes at the start of every state file.
pub const MAGIC: [u8; 8] = *b"CULEXDB\0";
/// Version of the record layout below.
pub const FORMAT_VERSION: u32 = 1;
/// Header size; a multiple of 16 so the body stays aligned for rkyv.
pub const HEADER_LEN: usize = 32;

/// Everything persisted.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Unix time of the save.
    pub saved_at: u64,
    /// Persistent sessions.
    pub sessions: Vec<SessionRecord>,
    /// Retained messages.
    pub retained: Vec<MessageRecord>,
}

/// One persistent session.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// Client identifier.
    pub client_id: String,
    /// User name of the last connection.
    pub username: Option<String>,
    /// Protocol level (3, 4, 5).
    pub protocol: u8,
    /// Session Expiry Interval.
    pub expiry_interval: u32,
    /// When its connection ended (None: it was connected at save time).
    pub disconnected_at: Option<u64>,
    /// Subscriptions.
    pub subscriptions: Vec<SubscriptionRecord>,
    /// Pending will.
    pub will: Option<WillRecord>,
    /// Server → client window, oldest first.
    pub inflight: Vec<InflightRecord>,
    /// Queue behind the window.
    pub queue: Vec<DeliveryRecord>,
    /// QoS 2 packet ids received from the client and not yet released.
    pub inbound_qos2: Vec<u16>,
    /// Last packet id handed out.
    pub last_packet_id: u16,
}

/// One subscription.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SubscriptionRecord {
    /// Filter as subscribed (after mount point, with any `$share/group/`).
    pub filter: String,
    /// Maximum QoS.
    pub qos: u8,
    /// No Local.
    pub no_local: bool,
    /// Retain As Published.
    pub retain_as_published: bool,
    /// Retain Handling.
    pub retain_handling: u8,
    /// Subscription Identifier.
    pub identifier: Option<u32>,
}

/// An application message.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct MessageRecord {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// Publish QoS.
    pub qos: u8,
    /// Publish retain flag.
    pub retain: bool,
    /// Absolute expiry, unix seconds.
    pub expires_at: Option<u64>,
    /// Payload Format Indicator.
    pub payload_format_indicator: Option<u8>,
    /// Content Type.
    pub content_type: Option<String>,
    /// Response Topic.
    pub response_topic: Option<String>,
    /// Correlation Data.
    pub correlation_data: Option<Vec<u8>>,
    /// User properties in wire form.
    pub user_properties: Vec<u8>,
}

/// A message on its way to one session.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    /// The message.
    pub message: MessageRecord,
    /// Delivery QoS.
    pub qos: u8,
    /// Retain flag to send.
    pub retain: bool,
    /// Matching subscription identifiers.
    pub subscription_ids: Vec<u32>,
}

/// One window entry.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct InflightRecord {
    /// Packet id.
    pub packet_id: u16,
    /// 0 awaiting PUBACK, 1 awaiting PUBREC, 2 awaiting PUBCOMP.
    pub state: u8,
    /// The delivery (absent once PUBREC arrived).
    pub delivery: Option<DeliveryRecord>,
}

/// A will waiting for its session.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct WillRecord {
    /// The message.
    pub message: MessageRecord,
    /// Will Delay Interval.
    pub delay_interval: u32,
    /// Message Expiry Interval, counted from publication.
    pub message_expiry_interval: Option<u32>,
}

/// Why a state file could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// Occurs when the file cannot be read.
    Io(std::io::Error),
    /// Occurs when the file is not a Culex state file (wrong magic or too short).
    NotAStateFile,
    /// Occurs when the file was written by a newer layout.
    UnsupportedVersion(u32),
    /// Occurs when the body length or checksum does not match: the file is damaged.
    Corrupt(&'static str),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Io(error) => write!(f, "{error}"),
            LoadError::NotAStateFile => f.write_str("not a Culex state file"),
            LoadError::UnsupportedVersion(v) => write!(f, "unsupported state file version {v}"),
            LoadError::Corrupt(why) => write!(f, "damaged state file: {why}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Serialises `snapshot` with its header.
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let body = match rkyv::to_bytes::<rkyv::rancor::Error>(snapshot) {
        Ok(body) => body,
        Err(error) => unreachable!("serialising plain owned records cannot fail: {error}"),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(out.len(), HEADER_LEN);
    out.extend_from_slice(&body);
    out
}

/// Checks the header and checksum and deserialises (with validation) the body.
pub fn decode(file: &[u8]) -> Result<Snapshot, LoadError> {
    if file.len() < HEADER_LEN || file[..8] != MAGIC {
        return Err(LoadError::NotAStateFile);
    }
    let word = |at: usize| u32::from_le_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]]);
    let version = word(8);
    if version != FORMAT_VERSION {
        return Err(LoadError::UnsupportedVersion(version));
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&file[16..24]);
    let length = u64::from_le_bytes(length) as usize;
    let body = &file[HEADER_LEN..];
    if body.len() != length {
        return Err(LoadError::Corrupt("length does not match"));
    }
    if crc32fast::hash(body) != word(24) {
        return Err(LoadError::Corrupt("checksum does not match"));
    }
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    rkyv::from_bytes::<Snapshot, rkyv::rancor::Error>(&aligned)
        .map_err(|_| LoadError::Corrupt("invalid archive"))
}
