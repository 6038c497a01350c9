//! PUBLISH (§3.3): the message itself, and the outbound encoder the broker uses to forward
//! one decoded message to many subscribers with per-subscriber changes.

use crate::mqtt::{ByteStr, Bytes, PacketId, QoS, UserProperties};

/// PUBLISH. Topic, payload and property values are slices of the buffer the packet was
/// decoded from. `topic` is empty when a 5.0 client sent only a topic alias.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Publish {
    /// DUP flag.
    pub dup: bool,
    /// QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name (no wildcards); may be empty only with a topic alias.
    pub topic: ByteStr,
    /// Packet identifier, present exactly when `qos > 0`.
    pub packet_id: Option<PacketId>,
    /// 5.0 properties.
    pub properties: PublishProperties,
    /// Application payload.
    pub payload: Bytes,
}

/// PUBLISH properties (§3.3.2.3); also the body of will properties.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// 0x01 Payload Format Indicator (0 or 1).
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval, seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x23 Topic Alias (non-zero).
    pub topic_alias: Option<u16>,
    /// 0x08 Response Topic (a topic name).
    pub response_topic: Option<ByteStr>,
    /// 0x09 Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// 0x26 User Property, in order.
    pub user_properties: UserProperties,
    /// 0x0B Subscription Identifier (server to client only; may repeat).
    pub subscription_identifiers: Vec<u32>,
    /// 0x03 Content Type.
    pub content_type: Option<ByteStr>,
}

/// What the broker writes when it forwards a message to one subscriber. Fields that differ
/// per subscriber are given explicitly; everything else comes from `properties`, whose
/// `topic_alias`, `message_expiry_interval` and `subscription_identifiers` are ignored.
#[derive(Clone, Copy, Debug)]
pub struct PublishEncode<'a> {
    /// DUP flag.
    pub dup: bool,
    /// QoS of this delivery.
    pub qos: QoS,
    /// RETAIN flag of this delivery.
    pub retain: bool,
    /// Topic name; empty when `topic_alias` names a topic the client already knows.
    pub topic: &'a [u8],
    /// Packet identifier, required when `qos > 0`.
    pub packet_id: Option<PacketId>,
    /// Topic alias to send (5.0).
    pub topic_alias: Option<u16>,
    /// Remaining message expiry to send (5.0).
    pub message_expiry_interval: Option<u32>,
    /// Subscription identifiers of the matching subscriptions (5.0).
    pub subscription_identifiers: &'a [u32],
    /// The message's other properties.
    pub properties: &'a PublishProperties,
    /// Payload.
    pub payload: &'a [u8],
}
