//! Persistence (`persistence true`): snapshots of every shard's durable state written to
//! `persistence_location/persistence_file` crash-safely, and restored at start.
//!
//! Owns the conversion between in-memory state and the records of [`format`], the file I/O
//! (through `crate::atomic_file`), and the restore, which replays the records as session deltas
//! through the same `SessionStore::apply` every other change uses. Called by the runtime
//! (a shard answers a snapshot request with [`snapshot`]; restore runs before the shard
//! accepts connections) and by the binary (`save`, `load`, `split`).

mod format;

pub use format::{
    decode, encode, DeliveryRecord, InflightRecord, LoadError, MessageRecord, SessionRecord,
    Snapshot, SubscriptionRecord, WillRecord,
};

use crate::message::{Delivery, Message};
use crate::mqtt::{
    ByteStr, Bytes, PacketId, Protocol, PublishProperties, QoS, SubscriptionOptions, UserProperties,
};
use crate::runtime::Restore;
use crate::session::{Delta, InflightState, Session, SessionDelta, StoredWill, Subscription};
use crate::shard::{home_shard, Shard};
use std::path::Path;

/// One shard's contribution to a snapshot.
#[derive(Debug, Default)]
pub struct ShardSnapshot {
    /// Shard id.
    pub shard: u8,
    /// Its persistent sessions.
    pub sessions: Vec<SessionRecord>,
    /// Retained messages (from shard 0 only; every shard holds the same copy).
    pub retained: Vec<MessageRecord>,
}

/// Captures the durable state of `shard`.
pub fn snapshot(shard: &Shard) -> ShardSnapshot {
    let sessions = shard
        .store
        .iter()
        .filter(|(_, session)| session.is_persistent())
        .map(|(_, session)| session_record(session))
        .collect();
    let retained = if shard.id == 0 {
        shard
            .retained
            .iter()
            .map(|(_, message)| message_record(message))
            .collect()
    } else {
        Vec::new()
    };
    ShardSnapshot {
        shard: shard.id,
        sessions,
        retained,
    }
}

/// Joins the shards' parts into one snapshot.
pub fn combine(parts: Vec<ShardSnapshot>, saved_at: u64) -> Snapshot {
    let mut snapshot = Snapshot {
        saved_at,
        ..Snapshot::default()
    };
    for part in parts {
        snapshot.sessions.extend(part.sessions);
        snapshot.retained.extend(part.retained);
    }
    snapshot
}

/// Writes `snapshot` to `path` crash-safely.
pub fn save(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    crate::atomic_file::save_atomic(path, &encode(snapshot))
}

/// Reads the state file; `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<Snapshot>, LoadError> {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes).map(Some),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(LoadError::Io(error)),
    }
}

/// Distributes a snapshot: each session to the shard its client id hashes to, every
/// retained message to every shard.
pub fn split(snapshot: Snapshot, shards: usize) -> Vec<Restore> {
    let mut restores: Vec<Restore> = (0..shards)
        .map(|_| Restore {
            retained: snapshot.retained.clone(),
            saved_at: snapshot.saved_at,
            ..Restore::default()
        })
        .collect();
    for session in snapshot.sessions {
        let home = usize::from(home_shard(session.client_id.as_bytes(), shards));
        restores[home].sessions.push(session);
    }
    restores
}

/// Rebuilds sessions and retained messages in `shard` by replaying them as deltas.
pub fn restore(shard: &mut Shard, restore: Restore) {
    for record in restore.retained {
        if let Some(message) = message_from_record(record) {
            let topic = message.topic.clone();
            shard.set_retained_restored(&topic, message);
        }
    }
    for record in restore.sessions {
        replay_session(shard, record, restore.saved_at);
    }
}

fn replay_session(shard: &mut Shard, record: SessionRecord, saved_at: u64) {
    let Some(client_id) = text(record.client_id) else {
        return;
    };
    let protocol = match record.protocol {
        3 => Protocol::V31,
        4 => Protocol::V311,
        _ => Protocol::V5,
    };
    let create = Delta::Create {
        client_id,
        protocol,
        expiry_interval: record.expiry_interval,
        username: record.username.and_then(text),
    };
    let Some(key) = shard.apply_restored(create) else {
        return;
    };
    let mut changes = Vec::new();
    for sub in record.subscriptions {
        let Some(filter) = text(sub.filter) else {
            continue;
        };
        let options = SubscriptionOptions {
            qos: QoS::from_u8(sub.qos).unwrap_or_default(),
            no_local: sub.no_local,
            retain_as_published: sub.retain_as_published,
            retain_handling: sub.retain_handling,
        };
        let subscription = Subscription {
            options,
            identifier: sub.identifier,
        };
        changes.push(SessionDelta::Subscribed {
            filter,
            subscription,
        });
    }
    let will = record.will.and_then(|will| {
        Some(Box::new(StoredWill {
            message: message_from_record(will.message)?,
            delay_interval: will.delay_interval,
            message_expiry_interval: will.message_expiry_interval,
        }))
    });
    let has_will = will.is_some();
    changes.push(SessionDelta::WillChanged { will });
    let disconnected_at = record.disconnected_at.unwrap_or(saved_at);
    changes.push(SessionDelta::Disconnected {
        at: disconnected_at,
    });
    for entry in record.inflight {
        let Some(packet_id) = PacketId::new(entry.packet_id) else {
            continue;
        };
        let delivery = entry
            .delivery
            .and_then(delivery_from_record)
            .unwrap_or_else(placeholder_delivery);
        changes.push(SessionDelta::Sent {
            packet_id,
            delivery,
        });
        if entry.state == 2 {
            changes.push(SessionDelta::PubRecReceived { packet_id });
        }
    }
    for delivery in record.queue.into_iter().filter_map(delivery_from_record) {
        changes.push(SessionDelta::Queued { delivery });
    }
    for id in record.inbound_qos2.into_iter().filter_map(PacketId::new) {
        changes.push(SessionDelta::InboundQos2Received { packet_id: id });
    }
    for change in changes {
        shard.apply_restored(Delta::Update { key, change });
    }
    if has_will {
        shard.restore_will_timer(key, disconnected_at);
    }
}

/// A QoS 2 entry that already received PUBREC keeps only its packet id.
fn placeholder_delivery() -> Delivery {
    Delivery {
        message: Message::new(ByteStr::new(), Bytes::new(), QoS::ExactlyOnce, false),
        qos: QoS::ExactlyOnce,
        retain: false,
        subscription_ids: Default::default(),
    }
}

fn text(value: String) -> Option<ByteStr> {
    (!value.contains('\0')).then(|| ByteStr::from(value))
}

fn session_record(session: &Session) -> SessionRecord {
    let outbound = &session.outbound;
    SessionRecord {
        client_id: session.client_id.to_string(),
        username: session.username.as_ref().map(ToString::to_string),
        protocol: session.protocol.level(),
        expiry_interval: session.expiry_interval,
        disconnected_at: session.disconnected_at,
        subscriptions: session
            .subscriptions
            .iter()
            .map(|(filter, sub)| SubscriptionRecord {
                filter: filter.to_string(),
                qos: sub.options.qos as u8,
                no_local: sub.options.no_local,
                retain_as_published: sub.options.retain_as_published,
                retain_handling: sub.options.retain_handling,
                identifier: sub.identifier,
            })
            .collect(),
        will: session.will.as_ref().map(|will| WillRecord {
            message: message_record(&will.message),
            delay_interval: will.delay_interval,
            message_expiry_interval: will.message_expiry_interval,
        }),
        inflight: outbound
            .inflight
            .iter()
            .map(|entry| InflightRecord {
                packet_id: entry.packet_id.get(),
                state: match entry.state {
                    InflightState::AwaitPubAck => 0,
                    InflightState::AwaitPubRec => 1,
                    InflightState::AwaitPubComp => 2,
                },
                delivery: entry.delivery.as_ref().map(delivery_record),
            })
            .collect(),
        queue: outbound.queue.iter().map(delivery_record).collect(),
        inbound_qos2: session.inbound_qos2.iter().copied().collect(),
        last_packet_id: outbound.last_packet_id,
    }
}

fn delivery_record(delivery: &Delivery) -> DeliveryRecord {
    DeliveryRecord {
        message: message_record(&delivery.message),
        qos: delivery.qos as u8,
        retain: delivery.retain,
        subscription_ids: delivery.subscription_ids.to_vec(),
    }
}

fn delivery_from_record(record: DeliveryRecord) -> Option<Delivery> {
    Some(Delivery {
        qos: QoS::from_u8(record.qos)?,
        retain: record.retain,
        subscription_ids: record.subscription_ids.into_iter().collect(),
        message: message_from_record(record.message)?,
    })
}

/// Converts a message to its record.
pub fn message_record(message: &Message) -> MessageRecord {
    let p = &message.properties;
    MessageRecord {
        topic: message.topic.to_string(),
        payload: message.payload.to_vec(),
        qos: message.qos as u8,
        retain: message.retain,
        expires_at: message.expires_at,
        payload_format_indicator: p.payload_format_indicator,
        content_type: p.content_type.as_ref().map(ToString::to_string),
        response_topic: p.response_topic.as_ref().map(ToString::to_string),
        correlation_data: p.correlation_data.as_ref().map(|d| d.to_vec()),
        user_properties: p.user_properties.wire().to_vec(),
    }
}

/// Converts a record back; `None` if it holds values no valid message can have.
pub fn message_from_record(record: MessageRecord) -> Option<Message> {
    if !UserProperties::validate(&record.user_properties) {
        return None;
    }
    let properties = PublishProperties {
        payload_format_indicator: record.payload_format_indicator,
        content_type: match record.content_type {
            Some(value) => Some(text(value)?),
            None => None,
        },
        response_topic: match record.response_topic {
            Some(value) => Some(text(value)?),
            None => None,
        },
        correlation_data: record.correlation_data.map(Bytes::from),
        user_properties: UserProperties::from_wire_unchecked(Bytes::from(record.user_properties)),
        ..PublishProperties::default()
    };
    Some(Message {
        topic: text(record.topic)?,
        payload: Bytes::from(record.payload),
        qos: QoS::from_u8(record.qos)?,
        retain: record.retain,
        properties: properties.into(),
        expires_at: record.expires_at,
    })
}
