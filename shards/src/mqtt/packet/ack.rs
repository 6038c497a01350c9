//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4–§3.7): one layout, four packet types.

use crate::mqtt::{ByteStr, PacketId, UserProperties};

/// A QoS acknowledgement. In 5.0 the reason code and properties may be omitted on the wire
/// when they are Success and empty (§3.4.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 5.0 reason code (0 = Success).
    pub reason_code: u8,
    /// 5.0 properties.
    pub properties: AckProperties,
}

/// Properties shared by the acknowledgements (§3.4.2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// 0x1F Reason String.
    pub reason_string: Option<ByteStr>,
    /// 0x26 User Property.
    pub user_properties: UserProperties,
}

use bytes::{BufMut, Bytes, BytesMut};

use super::{check_reason_code, check_reason_code_out, Layout, Packet, PacketType};
use crate::mqtt::properties::{self, block_len, id, prop_len, put_prop, IdSet, PropertyReader};
use crate::mqtt::wire::{put_varint, Reader};
use crate::mqtt::{reason, DecodeError, EncodeError, Protocol};

/// Properties an acknowledgement may carry (§3.4.2.2).
const ACK_PROPERTIES: IdSet = IdSet::of(&[id::REASON_STRING, id::USER_PROPERTY]);

/// Reason codes of PUBACK and PUBREC (§3.4.2.1, §3.5.2.1).
const PUBACK_REASON_CODES: &[u8] = &[
    reason::SUCCESS,
    reason::NO_MATCHING_SUBSCRIBERS,
    reason::UNSPECIFIED_ERROR,
    reason::IMPLEMENTATION_SPECIFIC_ERROR,
    reason::NOT_AUTHORIZED,
    reason::TOPIC_NAME_INVALID,
    reason::PACKET_IDENTIFIER_IN_USE,
    reason::QUOTA_EXCEEDED,
    reason::PAYLOAD_FORMAT_INVALID,
];

/// Reason codes of PUBREL and PUBCOMP (§3.6.2.1, §3.7.2.1).
const PUBREL_REASON_CODES: &[u8] = &[reason::SUCCESS, reason::PACKET_IDENTIFIER_NOT_FOUND];

fn reason_codes(packet_type: PacketType) -> &'static [u8] {
    match packet_type {
        PacketType::PubRel | PacketType::PubComp => PUBREL_REASON_CODES,
        _ => PUBACK_REASON_CODES,
    }
}

impl Ack {
    /// A Success acknowledgement without properties.
    pub fn new(packet_id: crate::mqtt::PacketId) -> Ack {
        Ack {
            packet_id,
            reason_code: reason::SUCCESS,
            properties: AckProperties::default(),
        }
    }

    /// Wraps the acknowledgement in the `Packet` variant of `packet_type`.
    pub(crate) fn into_packet(packet_type: PacketType, ack: Ack) -> Packet {
        match packet_type {
            PacketType::PubRec => Packet::PubRec(ack),
            PacketType::PubRel => Packet::PubRel(ack),
            PacketType::PubComp => Packet::PubComp(ack),
            _ => Packet::PubAck(ack),
        }
    }

    /// Decodes PUBACK, PUBREC, PUBREL or PUBCOMP from `frame` after its fixed header.
    /// 5.0 allows a remaining length of 2 (Success, no properties) or 3 (no properties).
    pub(crate) fn decode(
        frame: &Bytes,
        header_len: usize,
        protocol: Protocol,
        packet_type: PacketType,
    ) -> Result<Ack, DecodeError> {
        let mut reader = Reader::new(frame, header_len);
        let mut ack = Ack::new(reader.packet_id()?);
        if protocol.is_v5() && !reader.is_empty() {
            ack.reason_code = reader.u8()?;
            check_reason_code(
                reason_codes(packet_type),
                ack.reason_code,
                "§3.4.2.1 reason code not valid for this acknowledgement",
            )?;
            if !reader.is_empty() {
                ack.properties = AckProperties::decode(&mut reader)?;
            }
        }
        reader.finish("§3.4 acknowledgement longer than its fields")?;
        Ok(ack)
    }

    /// Sizes the acknowledgement, in the shortest form 5.0 allows (§3.4.2.1).
    pub(crate) fn layout(
        &self,
        protocol: Protocol,
        packet_type: PacketType,
    ) -> Result<Layout, EncodeError> {
        if !protocol.is_v5() {
            return Layout::plain(2);
        }
        check_reason_code_out(reason_codes(packet_type), self.reason_code)?;
        let properties = self.properties.content_len()?;
        let remaining = match (self.reason_code, properties) {
            (reason::SUCCESS, 0) => 2,
            (_, 0) => 3,
            _ => 3 + block_len(properties)?,
        };
        Ok(Layout {
            properties,
            ..Layout::plain(remaining)?
        })
    }

    /// Writes the body sized by `layout`.
    pub(crate) fn write(&self, protocol: Protocol, layout: &Layout, out: &mut BytesMut) {
        out.put_u16(self.packet_id.get());
        if protocol.is_v5() && layout.remaining > 2 {
            out.put_u8(self.reason_code);
            if layout.remaining > 3 {
                put_varint(out, layout.properties);
                self.properties.write(out);
            }
        }
    }
}

impl AckProperties {
    fn decode(reader: &mut Reader<'_>) -> Result<AckProperties, DecodeError> {
        let mut props = PropertyReader::new(reader, ACK_PROPERTIES, IdSet::EMPTY)?;
        let mut out = AckProperties::default();
        while let Some(property) = props.next()? {
            match property {
                properties::Property::String(id::REASON_STRING, value) => {
                    out.reason_string = Some(value);
                }
                _ => return Err(properties::UNEXPECTED),
            }
        }
        out.user_properties = props.user_properties();
        Ok(out)
    }

    fn content_len(&self) -> Result<usize, EncodeError> {
        Ok(prop_len(self.reason_string.as_ref())? + self.user_properties.wire_len())
    }

    fn write(&self, out: &mut BytesMut) {
        put_prop(out, id::REASON_STRING, self.reason_string.as_ref());
        out.put_slice(self.user_properties.wire());
    }
}
