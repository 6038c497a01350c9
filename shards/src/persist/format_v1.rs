//! The state file of Culex 0.1 (format version 1): typed session records, read so that a
//! file written before the record family (`state::record`) still loads after an upgrade.
//! Nothing writes this layout any more; [`into_records`] turns it into the current one.

use crate::state::frame::{self, FrameError};
use crate::state::record::{self, ChangeRecord, Record};
use rkyv::{Archive, Deserialize, Serialize};

/// Version of the record layout below.
pub const FORMAT_VERSION: u32 = 1;

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

/// Deserialises (with validation) a version-1 body.
pub fn decode_body(body: &[u8]) -> Result<Snapshot, FrameError> {
    rkyv::from_bytes::<Snapshot, rkyv::rancor::Error>(&frame::aligned(body))
        .map_err(|_| FrameError::InvalidArchive)
}

/// The records of the current layout that rebuild what a version-1 snapshot holds.
/// A property string holding U+0000 (which no version-1 writer produced) refuses the file.
pub fn into_records(old: Snapshot) -> Result<Vec<Record>, FrameError> {
    let nul = |text: &Option<String>| text.as_ref().is_some_and(|t| t.contains('\0'));
    let messages = old
        .retained
        .iter()
        .chain(old.sessions.iter().flat_map(|s| {
            let window = s.inflight.iter().filter_map(|e| e.delivery.as_ref());
            let will = s.will.iter().map(|w| &w.message);
            let queue = s.queue.iter().map(|d| &d.message);
            will.chain(queue.chain(window.map(|d| &d.message)))
        }))
        .collect::<Vec<_>>();
    if messages
        .iter()
        .any(|m| nul(&m.content_type) || nul(&m.response_topic))
    {
        return Err(FrameError::InvalidArchive);
    }
    let mut out = Vec::new();
    // Version 1 also saved the broker's own `$SYS` values, published afresh at start.
    for message in old
        .retained
        .into_iter()
        .filter(|m| !m.topic.starts_with("$SYS/"))
    {
        out.push(Record::Retained {
            topic: message.topic.clone(),
            message: Some(message_record(message)),
        });
    }
    for session in old.sessions {
        session_records(session, old.saved_at, &mut out);
    }
    Ok(out)
}

fn session_records(old: SessionRecord, saved_at: u64, out: &mut Vec<Record>) {
    let client_id = old.client_id.clone();
    let mut push = |change: ChangeRecord| {
        out.push(Record::Session {
            client_id: client_id.clone(),
            change,
        })
    };
    push(ChangeRecord::Created {
        protocol: old.protocol,
        expiry_interval: old.expiry_interval,
        username: old.username,
    });
    for sub in old.subscriptions {
        push(ChangeRecord::Subscribed {
            filter: sub.filter,
            subscription: record::SubscriptionRecord {
                qos: sub.qos,
                no_local: sub.no_local,
                retain_as_published: sub.retain_as_published,
                retain_handling: sub.retain_handling,
                identifier: sub.identifier,
            },
        });
    }
    if let Some(will) = old.will {
        push(ChangeRecord::WillChanged {
            will: Some(record::WillRecord {
                message: message_record(will.message),
                delay_interval: will.delay_interval,
                message_expiry_interval: will.message_expiry_interval,
            }),
        });
    }
    push(ChangeRecord::Disconnected {
        at: old.disconnected_at.unwrap_or(saved_at),
    });
    for entry in old.inflight {
        let packet_id = entry.packet_id;
        match (entry.state, entry.delivery) {
            (0 | 1, Some(delivery)) => push(ChangeRecord::Sent {
                packet_id,
                delivery: delivery_record(delivery),
            }),
            _ => push(ChangeRecord::AwaitingPubComp { packet_id }),
        }
    }
    // Version 1 gave queued messages their packet id only when they were sent.
    let mut last = old.last_packet_id;
    for delivery in old.queue {
        let packet_id = if delivery.qos == 0 {
            0
        } else {
            last = if last == u16::MAX { 1 } else { last + 1 };
            last
        };
        push(ChangeRecord::Queued {
            packet_id,
            delivery: delivery_record(delivery),
        });
    }
    for packet_id in old.inbound_qos2 {
        push(ChangeRecord::InboundQos2Received { packet_id });
    }
    if last != 0 {
        push(ChangeRecord::PacketIdTaken { packet_id: last });
    }
}

fn delivery_record(old: DeliveryRecord) -> record::DeliveryRecord {
    record::DeliveryRecord {
        message: message_record(old.message),
        qos: old.qos,
        retain: old.retain,
        subscription_ids: old.subscription_ids,
    }
}

/// A version-1 message in the current layout. Its typed properties are written in the
/// encoder's order (version 1 did not keep the publisher's); values no valid message can
/// have are left for `Record::decode` to refuse.
fn message_record(old: MessageRecord) -> record::MessageRecord {
    let properties = crate::mqtt::PublishProperties {
        payload_format_indicator: old.payload_format_indicator,
        content_type: old.content_type.map(crate::mqtt::ByteStr::from),
        response_topic: old.response_topic.map(crate::mqtt::ByteStr::from),
        correlation_data: old.correlation_data.map(bytes::Bytes::from),
        ..Default::default()
    };
    // User properties were kept in wire form: appended as they are (and checked when the
    // record is decoded).
    let mut wire = properties.forwarded_wire();
    wire.extend_from_slice(&old.user_properties);
    record::MessageRecord {
        topic: old.topic,
        payload: old.payload,
        qos: old.qos,
        retain: old.retain,
        expires_at: old.expires_at,
        properties: wire,
    }
}
