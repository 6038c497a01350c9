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
    pub properties: MessageProperties,
    /// Application payload.
    pub payload: Bytes,
}

/// PUBLISH properties (§3.3.2.3); also the body of will properties.
///
/// Equality ignores [`PublishProperties::order`]: two messages with the same properties
/// are the same message, whatever order their publisher wrote them in.
#[derive(Clone, Debug, Default)]
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
    /// The order the publisher wrote the properties in that go on to subscribers; empty
    /// for messages the broker makes.
    pub order: PropertyOrder,
}

impl PartialEq for PublishProperties {
    fn eq(&self, other: &PublishProperties) -> bool {
        self.payload_format_indicator == other.payload_format_indicator
            && self.message_expiry_interval == other.message_expiry_interval
            && self.topic_alias == other.topic_alias
            && self.response_topic == other.response_topic
            && self.correlation_data == other.correlation_data
            && self.user_properties == other.user_properties
            && self.subscription_identifiers == other.subscription_identifiers
            && self.content_type == other.content_type
    }
}

impl Eq for PublishProperties {}

/// Where a publisher put the single-valued properties that are forwarded to subscribers
/// (Payload Format Indicator, Content Type, Response Topic, Correlation Data) among its
/// user properties. Mosquitto forwards them in the order it received them, and a user's
/// scripts and tests compare those bytes; recording the order here (twelve bytes, no
/// allocation) lets the encoder do the same while the values stay typed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PropertyOrder {
    /// Identifiers in the order received; 0 ends the list.
    ids: [u8; 4],
    /// For each, the number of user properties received before it.
    users_before: [u16; 4],
}

impl PropertyOrder {
    /// True when no order was recorded (the encoder's own order applies).
    pub fn is_empty(&self) -> bool {
        self.ids[0] == 0
    }

    /// Records that property `id` came after `users_before` user properties. Properties
    /// that are not forwarded, and repeats, are ignored.
    pub(crate) fn note(&mut self, id: u8, users_before: usize) {
        if !is_forwarded_single(id) || self.ids.contains(&id) {
            return;
        }
        if let Some(slot) = self.ids.iter().position(|&known| known == 0) {
            self.ids[slot] = id;
            self.users_before[slot] = u16::try_from(users_before).unwrap_or(u16::MAX);
        }
    }

    /// The recorded (identifier, user properties before it) pairs, in order.
    fn entries(&self) -> impl Iterator<Item = (u8, usize)> + '_ {
        self.ids
            .iter()
            .zip(self.users_before.iter())
            .take_while(|(id, _)| **id != 0)
            .map(|(id, before)| (*id, usize::from(*before)))
    }
}

/// True for the single-valued properties a subscriber receives as the publisher sent them.
fn is_forwarded_single(id: u8) -> bool {
    matches!(
        id,
        id::PAYLOAD_FORMAT_INDICATOR | id::CONTENT_TYPE | id::RESPONSE_TOPIC | id::CORRELATION_DATA
    )
}

/// The properties of a PUBLISH or a message, boxed and absent when empty: a 3.1.1 message
/// (or a 5.0 one without properties) carries one null pointer instead of the 168 bytes of
/// [`PublishProperties`], which every move of a packet or message on the publish path
/// would otherwise copy. Reading goes through `Deref` (an absent box reads as the empty
/// properties); writing is explicit, so no allocation hides behind an assignment.
#[derive(Clone, Debug, Default)]
pub struct MessageProperties(Option<Box<PublishProperties>>);

/// What an absent [`MessageProperties`] reads as.
static NO_PROPERTIES: PublishProperties = PublishProperties {
    payload_format_indicator: None,
    message_expiry_interval: None,
    topic_alias: None,
    response_topic: None,
    correlation_data: None,
    user_properties: UserProperties::new(),
    subscription_identifiers: Vec::new(),
    content_type: None,
    order: PropertyOrder {
        ids: [0; 4],
        users_before: [0; 4],
    },
};

impl MessageProperties {
    /// No properties.
    pub const fn none() -> MessageProperties {
        MessageProperties(None)
    }

    /// The properties to change, boxed now if they were absent.
    pub fn make_mut(&mut self) -> &mut PublishProperties {
        self.0.get_or_insert_with(Box::default)
    }

    /// The properties to change, if there are any (never allocates).
    pub fn existing_mut(&mut self) -> Option<&mut PublishProperties> {
        self.0.as_deref_mut()
    }

    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        self.0.as_deref().is_none_or(|p| *p == NO_PROPERTIES)
    }
}

impl std::ops::Deref for MessageProperties {
    type Target = PublishProperties;

    fn deref(&self) -> &PublishProperties {
        self.0.as_deref().unwrap_or(&NO_PROPERTIES)
    }
}

impl From<PublishProperties> for MessageProperties {
    fn from(properties: PublishProperties) -> MessageProperties {
        if properties == NO_PROPERTIES {
            MessageProperties(None)
        } else {
            MessageProperties(Some(Box::new(properties)))
        }
    }
}

impl PartialEq for MessageProperties {
    fn eq(&self, other: &MessageProperties) -> bool {
        **self == **other
    }
}

impl Eq for MessageProperties {}

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

use bytes::{BufMut, BytesMut};

use super::{has_wildcard, Layout};
use crate::mqtt::properties::{self, block_len, id, prop_len, put_prop, IdSet, Property};
use crate::mqtt::properties::{PropertyReader, UNEXPECTED};
use crate::mqtt::wire::{self, put_varint, Reader};
use crate::mqtt::{DecodeError, EncodeError, Protocol};

/// Properties PUBLISH may carry (§3.3.2.3).
const PUBLISH_PROPERTIES: IdSet = IdSet::of(&[
    id::PAYLOAD_FORMAT_INDICATOR,
    id::MESSAGE_EXPIRY_INTERVAL,
    id::TOPIC_ALIAS,
    id::RESPONSE_TOPIC,
    id::CORRELATION_DATA,
    id::USER_PROPERTY,
    id::SUBSCRIPTION_IDENTIFIER,
    id::CONTENT_TYPE,
]);

/// The properties a message carries to its subscribers as its publisher wrote them.
const FORWARDED_PROPERTIES: IdSet = IdSet::of(&[
    id::PAYLOAD_FORMAT_INDICATOR,
    id::RESPONSE_TOPIC,
    id::CORRELATION_DATA,
    id::USER_PROPERTY,
    id::CONTENT_TYPE,
]);

/// The one PUBLISH property that may repeat besides user properties (§3.3.2.3.8).
const PUBLISH_REPEATABLE: IdSet = IdSet::of(&[id::SUBSCRIPTION_IDENTIFIER]);

impl Publish {
    /// The view [`encode_publish`] writes: this message as it was received.
    pub fn as_encode(&self) -> PublishEncode<'_> {
        PublishEncode {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            topic: self.topic.as_bytes(),
            packet_id: self.packet_id,
            topic_alias: self.properties.topic_alias,
            message_expiry_interval: self.properties.message_expiry_interval,
            subscription_identifiers: &self.properties.subscription_identifiers,
            properties: &self.properties,
            payload: &self.payload,
        }
    }

    /// Decodes PUBLISH from `frame`; `first` is the fixed header's first byte, whose low
    /// nibble holds DUP, QoS and RETAIN.
    pub(crate) fn decode(
        frame: Bytes,
        header_len: usize,
        first: u8,
        protocol: Protocol,
    ) -> Result<Publish, DecodeError> {
        let Some(qos) = QoS::from_u8((first >> 1) & 0b11) else {
            return Err(DecodeError::Malformed("[MQTT-3.3.1-4] PUBLISH with QoS 3"));
        };
        // [MQTT-3.3.1-2] DUP must be 0 with QoS 0; a receiver may refuse or ignore it.
        // Mosquitto ignores it, and so do we: DUP means nothing for QoS 0.
        let dup = first & 0b1000 != 0 && qos != QoS::AtMostOnce;
        let mut reader = Reader::new(&frame, header_len);
        let topic = reader.string()?;
        if has_wildcard(topic.as_bytes()) {
            return Err(DecodeError::TopicNameInvalid(
                "[MQTT-3.3.2-2] wildcard in topic name",
            ));
        }
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce | QoS::ExactlyOnce => Some(reader.packet_id()?),
        };
        let properties = if protocol.is_v5() {
            MessageProperties::from(PublishProperties::decode(&mut reader)?)
        } else {
            MessageProperties::none()
        };
        if topic.is_empty() {
            check_empty_topic(protocol, &properties)?;
        }
        // The payload is the frame itself, advanced past the header: no second reference
        // to count up and down for every message.
        let header_end = reader.position();
        let mut payload = frame;
        bytes::Buf::advance(&mut payload, header_end);
        Ok(Publish {
            dup,
            qos,
            retain: first & 1 != 0,
            topic,
            packet_id,
            properties,
            payload,
        })
    }

    /// Sizes this PUBLISH (see [`publish_encoded_len`]).
    pub(crate) fn layout(&self, protocol: Protocol) -> Result<Layout, EncodeError> {
        layout(protocol, &self.as_encode())
    }
}

/// An empty topic name is allowed only in 5.0 and only with a topic alias.
fn check_empty_topic(
    protocol: Protocol,
    properties: &PublishProperties,
) -> Result<(), DecodeError> {
    if !protocol.is_v5() {
        return Err(DecodeError::TopicNameInvalid(
            "[MQTT-4.7.3-1] empty topic name",
        ));
    }
    if properties.topic_alias.is_none() {
        return Err(DecodeError::Protocol(
            "§3.3.2.3.4 empty topic name without a topic alias",
        ));
    }
    Ok(())
}

impl PublishProperties {
    fn decode(reader: &mut Reader<'_>) -> Result<PublishProperties, DecodeError> {
        let mut props = PropertyReader::new(reader, PUBLISH_PROPERTIES, PUBLISH_REPEATABLE)?;
        let mut out = PublishProperties::default();
        while let Some(property) = props.next()? {
            out.set(property, props.users_read())?;
        }
        out.user_properties = props.user_properties();
        Ok(out)
    }

    /// Stores one decoded property that came after `users_before` user properties; shared
    /// with the will properties of CONNECT, whose allowed set leaves out topic alias and
    /// subscription identifier.
    pub(crate) fn set(
        &mut self,
        property: Property,
        users_before: usize,
    ) -> Result<(), DecodeError> {
        self.order.note(property.id(), users_before);
        match property {
            Property::Byte(id::PAYLOAD_FORMAT_INDICATOR, v) => {
                self.payload_format_indicator = Some(v);
            }
            Property::FourByte(id::MESSAGE_EXPIRY_INTERVAL, v) => {
                self.message_expiry_interval = Some(v);
            }
            Property::TwoByte(id::TOPIC_ALIAS, v) => self.topic_alias = Some(v),
            Property::String(id::RESPONSE_TOPIC, v) => self.response_topic = Some(v),
            Property::Binary(id::CORRELATION_DATA, v) => self.correlation_data = Some(v),
            Property::VarInt(id::SUBSCRIPTION_IDENTIFIER, v) => {
                self.subscription_identifiers.push(v);
            }
            Property::String(id::CONTENT_TYPE, v) => self.content_type = Some(v),
            _ => return Err(UNEXPECTED),
        }
        Ok(())
    }

    /// The forwarded properties (payload format, content type, response topic,
    /// correlation data, user properties) in wire form, in the order a subscriber gets
    /// them: the form a stored message keeps them in (`state::record`).
    pub fn forwarded_wire(&self) -> Vec<u8> {
        let mut out = BytesMut::new();
        self.write_shared(&mut out);
        out.to_vec()
    }

    /// Reads what [`PublishProperties::forwarded_wire`] wrote, with every check the
    /// decoder makes (only forwarded properties, each once, values in range, UTF-8), and
    /// the order recorded.
    pub fn from_forwarded_wire(block: &[u8]) -> Result<PublishProperties, DecodeError> {
        let mut framed = BytesMut::with_capacity(block.len() + 4);
        put_varint(&mut framed, block.len());
        framed.extend_from_slice(block);
        let frame = framed.freeze();
        let mut reader = Reader::new(&frame, 0);
        let mut props = PropertyReader::new(&mut reader, FORWARDED_PROPERTIES, IdSet::EMPTY)?;
        let mut out = PublishProperties::default();
        while let Some(property) = props.next()? {
            out.set(property, props.users_read())?;
        }
        out.user_properties = props.user_properties();
        Ok(out)
    }

    /// Size of the properties a will and a PUBLISH share (everything but topic alias,
    /// message expiry and subscription identifiers, which are given per delivery).
    pub(crate) fn shared_len(&self) -> Result<usize, EncodeError> {
        Ok(prop_len(self.payload_format_indicator.as_ref())?
            + prop_len(self.response_topic.as_ref())?
            + prop_len(self.correlation_data.as_ref())?
            + self.user_properties.wire_len()
            + prop_len(self.content_type.as_ref())?)
    }

    /// Writes the properties counted by [`PublishProperties::shared_len`]: in the order the
    /// publisher sent them when it was recorded ([`PropertyOrder`]), else in a fixed order.
    pub(crate) fn write_shared(&self, out: &mut BytesMut) {
        if !self.order.is_empty() {
            self.write_shared_in_order(out);
            return;
        }
        put_prop(
            out,
            id::PAYLOAD_FORMAT_INDICATOR,
            self.payload_format_indicator.as_ref(),
        );
        put_prop(out, id::RESPONSE_TOPIC, self.response_topic.as_ref());
        put_prop(out, id::CORRELATION_DATA, self.correlation_data.as_ref());
        out.put_slice(self.user_properties.wire());
        put_prop(out, id::CONTENT_TYPE, self.content_type.as_ref());
    }

    /// [`PublishProperties::write_shared`] in the recorded order. A property set without
    /// being recorded (none is, today) still goes out, after the recorded ones.
    fn write_shared_in_order(&self, out: &mut BytesMut) {
        let mut users = self.user_properties.wire();
        let mut users_written = 0;
        let mut written = IdSet::EMPTY;
        for (property, users_before) in self.order.entries() {
            let count = users_before.saturating_sub(users_written);
            let split = crate::mqtt::user_properties::wire_prefix_len(users, count);
            out.put_slice(&users[..split]);
            users = &users[split..];
            users_written = users_before.max(users_written);
            self.put_single(out, property);
            written.insert(property);
        }
        for property in FORWARDED_SINGLES {
            if !written.contains(property) {
                self.put_single(out, property);
            }
        }
        out.put_slice(users);
    }

    /// Writes the single-valued forwarded property `property`, if set.
    fn put_single(&self, out: &mut BytesMut, property: u8) {
        match property {
            id::PAYLOAD_FORMAT_INDICATOR => {
                put_prop(out, property, self.payload_format_indicator.as_ref());
            }
            id::CONTENT_TYPE => put_prop(out, property, self.content_type.as_ref()),
            id::RESPONSE_TOPIC => put_prop(out, property, self.response_topic.as_ref()),
            id::CORRELATION_DATA => put_prop(out, property, self.correlation_data.as_ref()),
            _ => {}
        }
    }
}

/// The single-valued properties forwarded to subscribers, in the encoder's own order.
const FORWARDED_SINGLES: [u8; 4] = [
    id::PAYLOAD_FORMAT_INDICATOR,
    id::RESPONSE_TOPIC,
    id::CORRELATION_DATA,
    id::CONTENT_TYPE,
];

/// Computes the layout of the PUBLISH built from `p`, with every check that can fail.
fn layout(protocol: Protocol, p: &PublishEncode<'_>) -> Result<Layout, EncodeError> {
    if (p.qos == QoS::AtMostOnce) != p.packet_id.is_none() {
        return Err(EncodeError::Invalid(
            "a packet identifier goes with QoS 1 and 2 only",
        ));
    }
    if p.dup && p.qos == QoS::AtMostOnce {
        return Err(EncodeError::Invalid("DUP set on a QoS 0 PUBLISH"));
    }
    if p.topic.is_empty() && (!protocol.is_v5() || p.topic_alias.is_none()) {
        return Err(EncodeError::Invalid(
            "empty topic name without a topic alias",
        ));
    }
    let packet_id_len = if p.packet_id.is_some() { 2 } else { 0 };
    let mut remaining = wire::string_len(p.topic.len())? + packet_id_len + p.payload.len();
    let mut properties = 0;
    if protocol.is_v5() {
        if p.topic_alias == Some(0) {
            return Err(EncodeError::Invalid("topic alias 0"));
        }
        properties = p.properties.shared_len()?
            + prop_len(p.message_expiry_interval.as_ref())?
            + prop_len(p.topic_alias.as_ref())?
            + properties::subscription_ids_len(p.subscription_identifiers)?;
        remaining += block_len(properties)?;
    }
    Ok(Layout {
        properties,
        ..Layout::plain(remaining)?
    })
}

/// Exact size [`encode_publish`] would write for `p`, fixed header included. The broker
/// compares it with a client's Maximum Packet Size before writing.
pub fn publish_encoded_len(
    protocol: Protocol,
    p: &PublishEncode<'_>,
) -> Result<usize, EncodeError> {
    Ok(layout(protocol, p)?.total())
}

/// Appends one PUBLISH built from `p` and returns the number of bytes written. The hot
/// path of the broker: it computes every length first, reserves once, and copies the
/// topic, the user properties (already in wire form) and the payload once each. On error
/// nothing was written.
pub fn encode_publish(
    protocol: Protocol,
    p: &PublishEncode<'_>,
    out: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let layout = layout(protocol, p)?;
    let total = layout.total();
    out.reserve(total);
    let start = out.len();
    let flags = (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain);
    out.put_u8(0x30 | flags);
    put_varint(out, layout.remaining);
    wire::put_string(out, p.topic);
    if let Some(packet_id) = p.packet_id {
        out.put_u16(packet_id.get());
    }
    if protocol.is_v5() {
        // Mosquitto's order: subscription identifiers, the publisher's properties as it
        // sent them, the remaining message expiry. (Mosquitto sends no topic alias.)
        put_varint(out, layout.properties);
        put_prop(out, id::TOPIC_ALIAS, p.topic_alias.as_ref());
        properties::put_subscription_ids(out, p.subscription_identifiers);
        p.properties.write_shared(out);
        put_prop(
            out,
            id::MESSAGE_EXPIRY_INTERVAL,
            p.message_expiry_interval.as_ref(),
        );
    }
    out.put_slice(p.payload);
    assert_eq!(
        out.len() - start,
        total,
        "PUBLISH layout and writer disagree"
    );
    Ok(total)
}
