//! Snapshots: the records that rebuild a state from nothing.
//!
//! Owns the list of records a shard's durable state is written as ([`session_records`],
//! [`retained_records`]) and the versioned file form of a snapshot ([`encode`],
//! [`decode`]). Restoring is applying the records, in order, through the same store apply
//! a follower uses; nothing here touches a shard. Called by the shard (building), the
//! persistence file code (framing) and the cluster's snapshot transfer.

use super::frame::{self, FrameError};
use super::record::Record;
use super::{InflightState, Session, SessionDelta, SessionStore};
use crate::message::Message;
use crate::mqtt::{ByteStr, PacketId};
use crate::topics::RetainedTree;
use rkyv::{Archive, Deserialize, Serialize};

/// Magic bytes at the start of a state file.
pub const FILE_MAGIC: [u8; 8] = *b"CULEXDB\0";

/// The record layout [`encode`] writes. Version 1 (Culex 0.1's typed session records) is
/// still read, by `persist`.
pub const FORMAT_VERSION: u32 = 2;

/// A saved state: when, and the records that rebuild it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Unix time of the save.
    pub saved_at: u64,
    /// The records, in the order they are applied.
    pub records: Vec<Record>,
}

/// Writes `snapshot` in the file form (header + archive).
pub fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let body = match rkyv::to_bytes::<rkyv::rancor::Error>(snapshot) {
        Ok(body) => body,
        Err(error) => unreachable!("serialising plain owned records cannot fail: {error}"),
    };
    frame::seal(&FILE_MAGIC, FORMAT_VERSION, &body)
}

/// Reads a snapshot written by [`encode`]; the body of any other version is refused with
/// [`FrameError::UnsupportedVersion`] (the caller may read older layouts itself).
pub fn decode(file: &[u8]) -> Result<Snapshot, FrameError> {
    let (version, body) = frame::open(&FILE_MAGIC, file)?;
    if version != FORMAT_VERSION {
        return Err(FrameError::UnsupportedVersion(version));
    }
    rkyv::from_bytes::<Snapshot, rkyv::rancor::Error>(&frame::aligned(body))
        .map_err(|_| FrameError::InvalidArchive)
}

/// The records that rebuild every persistent session of `store`. Sessions still
/// connected are written as disconnected at `connected_until` when it is given (a file
/// restored after a restart), and as connected otherwise (a cluster snapshot, whose
/// follower never serves them).
pub fn session_records(store: &SessionStore, connected_until: Option<u64>) -> Vec<Record> {
    session_changes(store, connected_until)
        .iter()
        .map(|(client_id, change)| Record::session(client_id, change))
        .collect()
}

/// [`session_records`] before they become records: the in-memory changes.
pub fn session_changes(
    store: &SessionStore,
    connected_until: Option<u64>,
) -> Vec<(ByteStr, SessionDelta)> {
    let mut out = Vec::new();
    for (_, session) in store.iter() {
        if session.is_persistent() {
            session_to_changes(session, connected_until, &mut out);
        }
    }
    out
}

/// The records of every retained message in `retained` but the broker's own `$SYS`
/// values, which are published afresh at start (as Mosquitto leaves them out of its file).
pub fn retained_records(retained: &RetainedTree<Message>) -> Vec<Record> {
    retained
        .iter()
        .filter(|(topic, _)| !topic.starts_with(b"$SYS/"))
        .map(|(_, message)| Record::retained(&message.topic, Some(message)))
        .collect()
}

fn session_to_changes(
    session: &Session,
    connected_until: Option<u64>,
    out: &mut Vec<(ByteStr, SessionDelta)>,
) {
    let id = &session.client_id;
    let mut push = |change: SessionDelta| out.push((id.clone(), change));
    push(SessionDelta::Created {
        protocol: session.protocol,
        expiry_interval: session.expiry_interval,
        username: session.username.clone(),
    });
    let mut filters: Vec<(&ByteStr, _)> = session.subscriptions.iter().collect();
    filters.sort_by(|a, b| a.0.cmp(b.0));
    for (filter, subscription) in filters {
        push(SessionDelta::Subscribed {
            filter: filter.clone(),
            subscription: *subscription,
        });
    }
    if let Some(will) = &session.will {
        push(SessionDelta::WillChanged {
            will: Some(will.clone()),
        });
    }
    if let Some(at) = session.disconnected_at.or(connected_until) {
        push(SessionDelta::Disconnected { at });
    }
    let outbound = &session.outbound;
    for entry in &outbound.inflight {
        let packet_id = entry.packet_id;
        match (&entry.state, &entry.delivery) {
            (InflightState::AwaitPubComp, _) | (_, None) => {
                push(SessionDelta::AwaitingPubComp { packet_id })
            }
            (_, Some(delivery)) => push(SessionDelta::Sent {
                packet_id,
                delivery: delivery.clone(),
            }),
        }
    }
    for queued in &outbound.queue {
        push(SessionDelta::Queued {
            packet_id: queued.packet_id,
            delivery: queued.delivery.clone(),
        });
    }
    let mut inbound: Vec<u16> = session.inbound_qos2.iter().copied().collect();
    inbound.sort_unstable();
    for packet_id in inbound.into_iter().filter_map(PacketId::new) {
        push(SessionDelta::InboundQos2Received { packet_id });
    }
    if let Some(packet_id) = PacketId::new(outbound.last_packet_id) {
        push(SessionDelta::PacketIdTaken { packet_id });
    }
}
