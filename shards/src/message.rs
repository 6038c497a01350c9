//! `Message`: an application message as the broker routes, queues and stores it.
//!
//! Owns the broker-side form of a PUBLISH, decoupled from any one connection: topic and
//! payload are shared `Bytes` (cloning a message bumps reference counts, it never copies),
//! the topic alias is resolved, and the message expiry is an absolute deadline. Built by
//! `shard::publish` from a decoded PUBLISH (or a will, or a `$SYS` value) and consumed by
//! `shard::deliver`, which encodes it per subscriber.

use crate::mqtt::{ByteStr, Bytes, MessageProperties, PublishProperties, QoS};
use smallvec::SmallVec;

/// An application message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Topic name, after any listener `mount_point`.
    pub topic: ByteStr,
    /// Payload.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// Retain flag it was published with.
    pub retain: bool,
    /// Properties passed through to 5.0 subscribers. `topic_alias`,
    /// `message_expiry_interval` and `subscription_identifiers` are always empty here: the
    /// alias is per connection, expiry is [`Message::expires_at`], identifiers are per
    /// subscriber.
    pub properties: MessageProperties,
    /// Unix time (seconds) after which the message must not be delivered.
    pub expires_at: Option<u64>,
}

impl Message {
    /// A message without properties or expiry (wills of 3.1.1 clients, `$SYS` values).
    pub fn new(topic: ByteStr, payload: Bytes, qos: QoS, retain: bool) -> Message {
        Message {
            topic,
            payload,
            qos,
            retain,
            properties: MessageProperties::none(),
            expires_at: None,
        }
    }

    /// True when the message expired at `now` (unix seconds). Times are whole seconds, so
    /// a message expires strictly after its deadline second, never early.
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| now > at)
    }

    /// The Message Expiry Interval to send at `now`: the remaining lifetime ([MQTT-3.3.2-6]).
    pub fn remaining_expiry(&self, now: u64) -> Option<u32> {
        self.expires_at
            .map(|at| u32::try_from(at.saturating_sub(now)).unwrap_or(u32::MAX))
    }

    /// Copies topic, payload and properties into buffers of their own, so a message kept
    /// for long (retained, queued for an offline session, persisted) does not pin the much
    /// larger read buffer it was decoded from.
    pub fn compact(&self) -> Message {
        let p = &self.properties;
        let properties = if p.is_empty() {
            MessageProperties::none()
        } else {
            MessageProperties::from(PublishProperties {
                payload_format_indicator: p.payload_format_indicator,
                message_expiry_interval: None,
                topic_alias: None,
                response_topic: p.response_topic.as_ref().map(ByteStr::compact),
                correlation_data: p
                    .correlation_data
                    .as_ref()
                    .map(|d| Bytes::copy_from_slice(d)),
                user_properties: p.user_properties.compact(),
                subscription_identifiers: Vec::new(),
                content_type: p.content_type.as_ref().map(ByteStr::compact),
                order: p.order,
            })
        };
        Message {
            topic: self.topic.compact(),
            payload: Bytes::copy_from_slice(&self.payload),
            qos: self.qos,
            retain: self.retain,
            properties,
            expires_at: self.expires_at,
        }
    }
}

/// Subscription identifiers of the subscriptions a delivery matched. Two fit inline, so
/// the common cases (none, one) never allocate.
pub type SubscriptionIds = SmallVec<[u32; 2]>;

/// One message on its way to one session: the message plus what the matching
/// subscriptions decided for this subscriber.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The message.
    pub message: Message,
    /// QoS of this delivery: the publish QoS capped by the subscription's maximum.
    pub qos: QoS,
    /// Retain flag to send: set for retained messages sent on subscribe, and for
    /// Retain As Published subscriptions.
    pub retain: bool,
    /// Identifiers of the matching subscriptions (5.0).
    pub subscription_ids: SubscriptionIds,
}
#[cfg(test)]
mod tests {
    /// Every publish moves a decoded packet and a message several times; large rare
    /// variants and absent properties are boxed so those moves stay small. A field added
    /// inline that makes them grow again should be a decision, not an accident.
    #[test]
    fn the_publish_path_types_stay_small() {
        assert!(std::mem::size_of::<super::Message>() <= 96);
        assert!(std::mem::size_of::<crate::mqtt::Publish>() <= 80);
        assert!(std::mem::size_of::<crate::mqtt::Packet>() <= 112);
    }
}
