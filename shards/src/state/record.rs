//! Records: the wire form of every change to the replicated state, and of a snapshot.
//!
//! Owns the one record family the persistence file, a cluster's Raft log and its snapshots
//! share: a [`Record`] is a session change keyed by client id, a retained message set or
//! cleared for a topic, or a dynamic-security document. A snapshot is the list of records
//! that rebuilds a state from nothing ([`super::snapshot`]). The types are plain owned data
//! (strings, byte vectors, integers) archived with rkyv, independent of the in-memory
//! types, so the format changes only on purpose: fields and variants are only ever
//! appended, together with a version bump of the framing (`frame.rs`).
//!
//! Two directions, each in one place: [`Record::session`] / [`Record::retained`] build a
//! record from an in-memory change (on the consumer's thread, not the shard's), and
//! [`Record::decode`] validates a record from outside and turns it back into the in-memory
//! change, refusing values no valid change can have. Applying it may still be refused by
//! the store ([`super::ApplyError`]) when it does not fit the state.

use super::{SessionDelta, StoredWill, Subscription};
use crate::message::{Delivery, Message};
use crate::mqtt::{ByteStr, Bytes, PacketId, Protocol, PublishProperties, QoS};
use crate::mqtt::{MessageProperties, SubscriptionOptions};
use crate::topics::valid_topic_name;
use rkyv::{Archive, Deserialize, Serialize};

/// One change to the replicated state.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Record {
    /// A change to the session of `client_id`.
    Session {
        /// Client identifier.
        client_id: String,
        /// The change.
        change: ChangeRecord,
    },
    /// The retained message of `topic` was set (`Some`) or cleared (`None`).
    Retained {
        /// Topic name.
        topic: String,
        /// The message.
        message: Option<MessageRecord>,
    },
    /// The dynamic-security document (`dynamic-security.json`) replaced as a whole.
    Dynsec {
        /// The JSON document.
        document: Vec<u8>,
    },
}

/// [`SessionDelta`] in wire form: the same variants in the same order.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum ChangeRecord {
    Resumed {
        protocol: u8,
        username: Option<String>,
        expiry_interval: u32,
    },
    ExpiryChanged {
        expiry_interval: u32,
    },
    Subscribed {
        filter: String,
        subscription: SubscriptionRecord,
    },
    Unsubscribed {
        filter: String,
    },
    WillChanged {
        will: Option<WillRecord>,
    },
    Disconnected {
        at: u64,
    },
    /// `packet_id` 0: a queued QoS 0 message.
    Queued {
        packet_id: u16,
        delivery: DeliveryRecord,
    },
    Sent {
        packet_id: u16,
        delivery: DeliveryRecord,
    },
    Dequeued {
        packet_id: u16,
    },
    QueueFrontDropped,
    PubRecReceived {
        packet_id: u16,
    },
    Completed {
        packet_id: u16,
    },
    InboundQos2Received {
        packet_id: u16,
    },
    InboundQos2Released {
        packet_id: u16,
    },
    Ended,
    Created {
        protocol: u8,
        expiry_interval: u32,
        username: Option<String>,
    },
    PacketIdTaken {
        packet_id: u16,
    },
    AwaitingPubComp {
        packet_id: u16,
    },
}

/// A subscription's options.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SubscriptionRecord {
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
    /// The properties forwarded to subscribers, in wire form and in the publisher's order
    /// (`PublishProperties::forwarded_wire`).
    pub properties: Vec<u8>,
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

/// A record turned back into the in-memory change it describes.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A change to the session of `client_id`.
    Session {
        /// Client identifier.
        client_id: ByteStr,
        /// The change.
        change: SessionDelta,
    },
    /// The retained message of `topic`.
    Retained {
        /// Topic name.
        topic: ByteStr,
        /// The message, or `None` to clear it.
        message: Option<Message>,
    },
    /// A dynamic-security document.
    Dynsec {
        /// The JSON document.
        document: Bytes,
    },
}

/// Why a record was refused: it holds a value no valid change can have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError(pub &'static str);

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid record: {}", self.0)
    }
}

impl std::error::Error for RecordError {}

/// Largest Subscription Identifier ([MQTT-3.8.2.1.2]: a variable byte integer).
const SUBSCRIPTION_ID_MAX: u32 = 268_435_455;

impl Record {
    /// The record of `change` to the session of `client_id`.
    pub fn session(client_id: &ByteStr, change: &SessionDelta) -> Record {
        Record::Session {
            client_id: client_id.to_string(),
            change: change_record(change),
        }
    }

    /// The record of the retained message of `topic` set (or cleared, `None`).
    pub fn retained(topic: &ByteStr, message: Option<&Message>) -> Record {
        Record::Retained {
            topic: topic.to_string(),
            message: message.map(message_record),
        }
    }

    /// Validates the record and returns the change it describes.
    pub fn decode(self) -> Result<Decoded, RecordError> {
        match self {
            Record::Session { client_id, change } => Ok(Decoded::Session {
                client_id: text(client_id, "client id")?,
                change: decode_change(change)?,
            }),
            Record::Retained { topic, message } => {
                let topic = topic_name(topic)?;
                let message = message.map(decode_message).transpose()?;
                if message.as_ref().is_some_and(|m| m.topic != topic) {
                    return Err(RecordError("retained message under another topic"));
                }
                Ok(Decoded::Retained { topic, message })
            }
            Record::Dynsec { document } => Ok(Decoded::Dynsec {
                document: Bytes::from(document),
            }),
        }
    }
}

fn change_record(change: &SessionDelta) -> ChangeRecord {
    let id = |packet_id: &PacketId| packet_id.get();
    match change {
        SessionDelta::Resumed {
            protocol,
            username,
            expiry_interval,
        } => ChangeRecord::Resumed {
            protocol: protocol.level(),
            username: username.as_ref().map(ToString::to_string),
            expiry_interval: *expiry_interval,
        },
        SessionDelta::ExpiryChanged { expiry_interval } => ChangeRecord::ExpiryChanged {
            expiry_interval: *expiry_interval,
        },
        SessionDelta::Subscribed {
            filter,
            subscription,
        } => ChangeRecord::Subscribed {
            filter: filter.to_string(),
            subscription: subscription_record(subscription),
        },
        SessionDelta::Unsubscribed { filter } => ChangeRecord::Unsubscribed {
            filter: filter.to_string(),
        },
        SessionDelta::WillChanged { will } => ChangeRecord::WillChanged {
            will: will.as_deref().map(will_record),
        },
        SessionDelta::Disconnected { at } => ChangeRecord::Disconnected { at: *at },
        SessionDelta::Queued {
            packet_id,
            delivery,
        } => ChangeRecord::Queued {
            packet_id: packet_id.map_or(0, |packet_id| packet_id.get()),
            delivery: delivery_record(delivery),
        },
        SessionDelta::Sent {
            packet_id,
            delivery,
        } => ChangeRecord::Sent {
            packet_id: id(packet_id),
            delivery: delivery_record(delivery),
        },
        SessionDelta::Dequeued { packet_id } => ChangeRecord::Dequeued {
            packet_id: id(packet_id),
        },
        SessionDelta::QueueFrontDropped => ChangeRecord::QueueFrontDropped,
        SessionDelta::PubRecReceived { packet_id } => ChangeRecord::PubRecReceived {
            packet_id: id(packet_id),
        },
        SessionDelta::Completed { packet_id } => ChangeRecord::Completed {
            packet_id: id(packet_id),
        },
        SessionDelta::InboundQos2Received { packet_id } => ChangeRecord::InboundQos2Received {
            packet_id: id(packet_id),
        },
        SessionDelta::InboundQos2Released { packet_id } => ChangeRecord::InboundQos2Released {
            packet_id: id(packet_id),
        },
        SessionDelta::Ended => ChangeRecord::Ended,
        SessionDelta::Created {
            protocol,
            expiry_interval,
            username,
        } => ChangeRecord::Created {
            protocol: protocol.level(),
            expiry_interval: *expiry_interval,
            username: username.as_ref().map(ToString::to_string),
        },
        SessionDelta::PacketIdTaken { packet_id } => ChangeRecord::PacketIdTaken {
            packet_id: id(packet_id),
        },
        SessionDelta::AwaitingPubComp { packet_id } => ChangeRecord::AwaitingPubComp {
            packet_id: id(packet_id),
        },
    }
}

fn decode_change(change: ChangeRecord) -> Result<SessionDelta, RecordError> {
    let id = packet_id;
    Ok(match change {
        ChangeRecord::Resumed {
            protocol: level,
            username,
            expiry_interval,
        } => SessionDelta::Resumed {
            protocol: protocol(level)?,
            username: username.map(|name| text(name, "user name")).transpose()?,
            expiry_interval,
        },
        ChangeRecord::ExpiryChanged { expiry_interval } => {
            SessionDelta::ExpiryChanged { expiry_interval }
        }
        ChangeRecord::Subscribed {
            filter,
            subscription,
        } => SessionDelta::Subscribed {
            filter: text(filter, "topic filter")?,
            subscription: decode_subscription(subscription)?,
        },
        ChangeRecord::Unsubscribed { filter } => SessionDelta::Unsubscribed {
            filter: text(filter, "topic filter")?,
        },
        ChangeRecord::WillChanged { will } => SessionDelta::WillChanged {
            will: will.map(decode_will).transpose()?.map(Box::new),
        },
        ChangeRecord::Disconnected { at } => SessionDelta::Disconnected { at },
        ChangeRecord::Queued {
            packet_id,
            delivery,
        } => SessionDelta::Queued {
            packet_id: PacketId::new(packet_id),
            delivery: decode_delivery(delivery)?,
        },
        ChangeRecord::Sent {
            packet_id,
            delivery,
        } => SessionDelta::Sent {
            packet_id: id(packet_id)?,
            delivery: decode_delivery(delivery)?,
        },
        ChangeRecord::Dequeued { packet_id } => SessionDelta::Dequeued {
            packet_id: id(packet_id)?,
        },
        ChangeRecord::QueueFrontDropped => SessionDelta::QueueFrontDropped,
        ChangeRecord::PubRecReceived { packet_id } => SessionDelta::PubRecReceived {
            packet_id: id(packet_id)?,
        },
        ChangeRecord::Completed { packet_id } => SessionDelta::Completed {
            packet_id: id(packet_id)?,
        },
        ChangeRecord::InboundQos2Received { packet_id } => SessionDelta::InboundQos2Received {
            packet_id: id(packet_id)?,
        },
        ChangeRecord::InboundQos2Released { packet_id } => SessionDelta::InboundQos2Released {
            packet_id: id(packet_id)?,
        },
        ChangeRecord::Ended => SessionDelta::Ended,
        ChangeRecord::Created {
            protocol: level,
            expiry_interval,
            username,
        } => SessionDelta::Created {
            protocol: protocol(level)?,
            expiry_interval,
            username: username.map(|name| text(name, "user name")).transpose()?,
        },
        ChangeRecord::PacketIdTaken { packet_id } => SessionDelta::PacketIdTaken {
            packet_id: id(packet_id)?,
        },
        ChangeRecord::AwaitingPubComp { packet_id } => SessionDelta::AwaitingPubComp {
            packet_id: id(packet_id)?,
        },
    })
}

fn subscription_record(subscription: &Subscription) -> SubscriptionRecord {
    let options = &subscription.options;
    SubscriptionRecord {
        qos: options.qos as u8,
        no_local: options.no_local,
        retain_as_published: options.retain_as_published,
        retain_handling: options.retain_handling,
        identifier: subscription.identifier,
    }
}

fn decode_subscription(record: SubscriptionRecord) -> Result<Subscription, RecordError> {
    if record.retain_handling > 2 {
        return Err(RecordError("retain handling above 2"));
    }
    if record
        .identifier
        .is_some_and(|id| id == 0 || id > SUBSCRIPTION_ID_MAX)
    {
        return Err(RecordError("subscription identifier out of range"));
    }
    Ok(Subscription {
        options: SubscriptionOptions {
            qos: qos(record.qos)?,
            no_local: record.no_local,
            retain_as_published: record.retain_as_published,
            retain_handling: record.retain_handling,
        },
        identifier: record.identifier,
    })
}

fn will_record(will: &StoredWill) -> WillRecord {
    WillRecord {
        message: message_record(&will.message),
        delay_interval: will.delay_interval,
        message_expiry_interval: will.message_expiry_interval,
    }
}

fn decode_will(record: WillRecord) -> Result<StoredWill, RecordError> {
    Ok(StoredWill {
        message: decode_message(record.message)?,
        delay_interval: record.delay_interval,
        message_expiry_interval: record.message_expiry_interval,
    })
}

fn delivery_record(delivery: &Delivery) -> DeliveryRecord {
    DeliveryRecord {
        message: message_record(&delivery.message),
        qos: delivery.qos as u8,
        retain: delivery.retain,
        subscription_ids: delivery.subscription_ids.to_vec(),
    }
}

fn decode_delivery(record: DeliveryRecord) -> Result<Delivery, RecordError> {
    let ids_valid = record
        .subscription_ids
        .iter()
        .all(|id| (1..=SUBSCRIPTION_ID_MAX).contains(id));
    if !ids_valid {
        return Err(RecordError("subscription identifier out of range"));
    }
    Ok(Delivery {
        message: decode_message(record.message)?,
        qos: qos(record.qos)?,
        retain: record.retain,
        subscription_ids: record.subscription_ids.into_iter().collect(),
    })
}

/// The record of `message`.
pub fn message_record(message: &Message) -> MessageRecord {
    MessageRecord {
        topic: message.topic.to_string(),
        payload: message.payload.to_vec(),
        qos: message.qos as u8,
        retain: message.retain,
        expires_at: message.expires_at,
        properties: message.properties.forwarded_wire(),
    }
}

/// The message a record holds, validated (topic name, QoS, properties).
pub fn decode_message(record: MessageRecord) -> Result<Message, RecordError> {
    let properties = if record.properties.is_empty() {
        MessageProperties::none()
    } else {
        let properties = PublishProperties::from_forwarded_wire(&record.properties)
            .map_err(|_| RecordError("message properties"))?;
        MessageProperties::from(properties)
    };
    Ok(Message {
        topic: topic_name(record.topic)?,
        payload: Bytes::from(record.payload),
        qos: qos(record.qos)?,
        retain: record.retain,
        properties,
        expires_at: record.expires_at,
    })
}

/// A string that is valid MQTT text: no U+0000, at most 65,535 bytes.
fn text(value: String, what: &'static str) -> Result<ByteStr, RecordError> {
    if value.contains('\0') || value.len() > usize::from(u16::MAX) {
        return Err(RecordError(what));
    }
    Ok(ByteStr::from(value))
}

fn topic_name(value: String) -> Result<ByteStr, RecordError> {
    if !valid_topic_name(value.as_bytes()) {
        return Err(RecordError("topic name"));
    }
    text(value, "topic name")
}

fn qos(value: u8) -> Result<QoS, RecordError> {
    QoS::from_u8(value).ok_or(RecordError("QoS above 2"))
}

fn packet_id(value: u16) -> Result<PacketId, RecordError> {
    PacketId::new(value).ok_or(RecordError("packet identifier 0"))
}

fn protocol(level: u8) -> Result<Protocol, RecordError> {
    match level {
        3 => Ok(Protocol::V31),
        4 => Ok(Protocol::V311),
        5 => Ok(Protocol::V5),
        _ => Err(RecordError("protocol level")),
    }
}
