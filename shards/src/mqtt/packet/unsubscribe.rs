//! UNSUBSCRIBE and UNSUBACK (§3.10, §3.11).

use crate::mqtt::{ByteStr, PacketId, SubAckProperties, UserProperties};

/// UNSUBSCRIBE: one or more topic filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 5.0 properties.
    pub properties: UnsubscribeProperties,
    /// Topic filters, in order; never empty.
    pub filters: Vec<ByteStr>,
}

/// UNSUBSCRIBE properties (§3.10.2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnsubscribeProperties {
    /// 0x26 User Property.
    pub user_properties: UserProperties,
}

/// UNSUBACK. 3.1/3.1.1 carry no reason codes (`reason_codes` is empty then).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 5.0 properties (same shape as SUBACK's).
    pub properties: SubAckProperties,
    /// 5.0 reason code per filter.
    pub reason_codes: Vec<u8>,
}

use bytes::{BufMut, Bytes, BytesMut};

use super::subscribe::{filter_len, read_filter, read_reason_codes};
use super::{check_reason_code_out, Layout};
use crate::mqtt::properties::{block_len, id, IdSet, PropertyReader, UNEXPECTED};
use crate::mqtt::wire::{self, put_varint, Reader};
use crate::mqtt::{reason, DecodeError, EncodeError, Protocol};

/// Properties UNSUBSCRIBE may carry (§3.10.2.1).
const UNSUBSCRIBE_PROPERTIES: IdSet = IdSet::of(&[id::USER_PROPERTY]);

/// Reason codes of a 5.0 UNSUBACK (§3.11.3).
const UNSUBACK_REASON_CODES: &[u8] = &[
    reason::SUCCESS,
    reason::NO_SUBSCRIPTION_EXISTED,
    reason::UNSPECIFIED_ERROR,
    reason::IMPLEMENTATION_SPECIFIC_ERROR,
    reason::NOT_AUTHORIZED,
    reason::TOPIC_FILTER_INVALID,
    reason::PACKET_IDENTIFIER_IN_USE,
];

/// The property block of UNSUBSCRIBE: user properties only.
fn read_properties(reader: &mut Reader<'_>) -> Result<UserProperties, DecodeError> {
    let mut props = PropertyReader::new(reader, UNSUBSCRIBE_PROPERTIES, IdSet::EMPTY)?;
    if props.next()?.is_some() {
        return Err(UNEXPECTED);
    }
    Ok(props.user_properties())
}

impl Unsubscribe {
    /// Decodes UNSUBSCRIBE from `frame` after its fixed header.
    pub(crate) fn decode(
        frame: &Bytes,
        header_len: usize,
        protocol: Protocol,
    ) -> Result<Unsubscribe, DecodeError> {
        let mut reader = Reader::new(frame, header_len);
        let packet_id = reader.packet_id().map_err(wire::malformed)?;
        let mut properties = UnsubscribeProperties::default();
        if protocol.is_v5() {
            properties.user_properties = read_properties(&mut reader)?;
        }
        let mut filters = Vec::new();
        while !reader.is_empty() {
            filters.push(read_filter(&mut reader)?);
        }
        if filters.is_empty() {
            return Err(DecodeError::Protocol(
                "[MQTT-3.10.3-2] UNSUBSCRIBE without a topic filter",
            ));
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters,
        })
    }

    /// Sizes UNSUBSCRIBE; it needs at least one non-empty filter.
    pub(crate) fn layout(&self, protocol: Protocol) -> Result<Layout, EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::Invalid("UNSUBSCRIBE without a topic filter"));
        }
        let mut remaining = 2;
        for filter in &self.filters {
            remaining += filter_len(filter)?;
        }
        let mut properties = 0;
        if protocol.is_v5() {
            properties = self.properties.user_properties.wire_len();
            remaining += block_len(properties)?;
        }
        Ok(Layout {
            properties,
            ..Layout::plain(remaining)?
        })
    }

    /// Writes the body sized by `layout`.
    pub(crate) fn write(&self, protocol: Protocol, layout: &Layout, out: &mut BytesMut) {
        out.put_u16(self.packet_id.get());
        if protocol.is_v5() {
            put_varint(out, layout.properties);
            out.put_slice(self.properties.user_properties.wire());
        }
        for filter in &self.filters {
            wire::put_string(out, filter.as_bytes());
        }
    }
}

impl UnsubAck {
    /// Decodes UNSUBACK from `frame` after its fixed header. 3.1/3.1.1 UNSUBACK holds only
    /// the packet identifier.
    pub(crate) fn decode(
        frame: &Bytes,
        header_len: usize,
        protocol: Protocol,
    ) -> Result<UnsubAck, DecodeError> {
        let mut reader = Reader::new(frame, header_len);
        let packet_id = reader.packet_id()?;
        if !protocol.is_v5() {
            reader.finish("§3.11 UNSUBACK longer than its packet identifier")?;
            return Ok(UnsubAck {
                packet_id,
                properties: SubAckProperties::default(),
                reason_codes: Vec::new(),
            });
        }
        let properties = SubAckProperties::decode(&mut reader)?;
        let codes = read_reason_codes(
            &mut reader,
            UNSUBACK_REASON_CODES,
            "[MQTT-3.11.3-1] UNSUBACK without a reason code",
        )?;
        Ok(UnsubAck {
            packet_id,
            properties,
            reason_codes: codes.to_vec(),
        })
    }

    /// Sizes UNSUBACK; 5.0 needs one reason code per filter, 3.1/3.1.1 write none.
    pub(crate) fn layout(&self, protocol: Protocol) -> Result<Layout, EncodeError> {
        if !protocol.is_v5() {
            return Layout::plain(2);
        }
        if self.reason_codes.is_empty() {
            return Err(EncodeError::Invalid("UNSUBACK without a reason code"));
        }
        for &code in &self.reason_codes {
            check_reason_code_out(UNSUBACK_REASON_CODES, code)?;
        }
        let properties = self.properties.content_len()?;
        let remaining = 2 + block_len(properties)? + self.reason_codes.len();
        Ok(Layout {
            properties,
            ..Layout::plain(remaining)?
        })
    }

    /// Writes the body sized by `layout`.
    pub(crate) fn write(&self, protocol: Protocol, layout: &Layout, out: &mut BytesMut) {
        out.put_u16(self.packet_id.get());
        if protocol.is_v5() {
            put_varint(out, layout.properties);
            self.properties.write(out);
            out.put_slice(&self.reason_codes);
        }
    }
}
