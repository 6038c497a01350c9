//! SUBSCRIBE and SUBACK (§3.8, §3.9).

use crate::mqtt::{ByteStr, PacketId, QoS, UserProperties};

/// SUBSCRIBE: one or more topic filters with their options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 5.0 properties.
    pub properties: SubscribeProperties,
    /// Topic filters (possibly `$share/group/filter`), in order; never empty.
    pub filters: Vec<(ByteStr, SubscriptionOptions)>,
}

/// SUBSCRIBE properties (§3.8.2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscribeProperties {
    /// 0x0B Subscription Identifier, 1..=268,435,455.
    pub subscription_identifier: Option<u32>,
    /// 0x26 User Property.
    pub user_properties: UserProperties,
}

/// The subscription options byte (§3.8.3.1). For 3.1/3.1.1 only `qos` is on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local.
    pub no_local: bool,
    /// Retain As Published.
    pub retain_as_published: bool,
    /// Retain Handling: 0 send retained, 1 only for new subscriptions, 2 never.
    pub retain_handling: u8,
}

/// SUBACK: one reason code (or 3.1.1 return code) per filter, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 5.0 properties.
    pub properties: SubAckProperties,
    /// Granted QoS or failure code per filter.
    pub reason_codes: Vec<u8>,
}

/// SUBACK and UNSUBACK properties (§3.9.2.1, §3.11.2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubAckProperties {
    /// 0x1F Reason String.
    pub reason_string: Option<ByteStr>,
    /// 0x26 User Property.
    pub user_properties: UserProperties,
}

use bytes::{BufMut, Bytes, BytesMut};

use super::{check_reason_code, check_reason_code_out, Layout};
use crate::mqtt::properties::{self, block_len, id, prop_len, put_prop, IdSet, Property};
use crate::mqtt::properties::{PropertyReader, UNEXPECTED};
use crate::mqtt::wire::{self, put_varint, Reader};
use crate::mqtt::{reason, DecodeError, EncodeError, Protocol};

/// Properties SUBSCRIBE may carry (§3.8.2.1).
const SUBSCRIBE_PROPERTIES: IdSet = IdSet::of(&[id::SUBSCRIPTION_IDENTIFIER, id::USER_PROPERTY]);

/// Properties SUBACK and UNSUBACK may carry (§3.9.2.1, §3.11.2.1).
const SUBACK_PROPERTIES: IdSet = IdSet::of(&[id::REASON_STRING, id::USER_PROPERTY]);

/// Reason codes of a 5.0 SUBACK (§3.9.3).
const SUBACK_REASON_CODES: &[u8] = &[
    reason::GRANTED_QOS_0,
    reason::GRANTED_QOS_1,
    reason::GRANTED_QOS_2,
    reason::UNSPECIFIED_ERROR,
    reason::IMPLEMENTATION_SPECIFIC_ERROR,
    reason::NOT_AUTHORIZED,
    reason::TOPIC_FILTER_INVALID,
    reason::PACKET_IDENTIFIER_IN_USE,
    reason::QUOTA_EXCEEDED,
    reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
    reason::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
    reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
];

/// Return codes of a 3.1/3.1.1 SUBACK (§3.9.3 of 3.1.1).
const V3_SUBACK_RETURN_CODES: &[u8] = &[0, 1, 2, reason::v3::SUBACK_FAILURE];

impl Subscribe {
    /// Decodes SUBSCRIBE from `frame` after its fixed header.
    pub(crate) fn decode(
        frame: &Bytes,
        header_len: usize,
        protocol: Protocol,
    ) -> Result<Subscribe, DecodeError> {
        let mut reader = Reader::new(frame, header_len);
        let packet_id = reader.packet_id().map_err(wire::malformed)?;
        let properties = if protocol.is_v5() {
            SubscribeProperties::decode(&mut reader)?
        } else {
            SubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while !reader.is_empty() {
            let filter = read_filter(&mut reader)?;
            let options = SubscriptionOptions::decode(reader.u8()?, protocol)?;
            filters.push((filter, options));
        }
        if filters.is_empty() {
            return Err(DecodeError::Protocol(
                "[MQTT-3.8.3-2] SUBSCRIBE without a topic filter",
            ));
        }
        Ok(Subscribe {
            packet_id,
            properties,
            filters,
        })
    }

    /// Sizes SUBSCRIBE; it needs at least one non-empty filter.
    pub(crate) fn layout(&self, protocol: Protocol) -> Result<Layout, EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::Invalid("SUBSCRIBE without a topic filter"));
        }
        let mut remaining = 2;
        for (filter, options) in &self.filters {
            remaining += filter_len(filter)? + 1;
            if protocol.is_v5() && options.retain_handling > 2 {
                return Err(EncodeError::Invalid("retain handling above 2"));
            }
        }
        let mut properties = 0;
        if protocol.is_v5() {
            properties = self.properties.content_len()?;
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
            self.properties.write(out);
        }
        for (filter, options) in &self.filters {
            wire::put_string(out, filter.as_bytes());
            out.put_u8(options.encode(protocol));
        }
    }
}

/// Reads one topic filter of SUBSCRIBE or UNSUBSCRIBE. Only the string rules and the
/// length are checked here; wildcard placement is the connection's to judge (a 5.0 server
/// answers 0x8F per filter rather than closing).
pub(crate) fn read_filter(reader: &mut Reader<'_>) -> Result<ByteStr, DecodeError> {
    let filter = reader.string()?;
    if filter.is_empty() {
        return Err(DecodeError::Malformed("[MQTT-4.7.3-1] empty topic filter"));
    }
    Ok(filter)
}

/// Wire size of a topic filter that the decoder would accept.
pub(crate) fn filter_len(filter: &ByteStr) -> Result<usize, EncodeError> {
    if filter.is_empty() {
        return Err(EncodeError::Invalid("empty topic filter"));
    }
    wire::string_len(filter.len())
}

impl SubscribeProperties {
    fn decode(reader: &mut Reader<'_>) -> Result<SubscribeProperties, DecodeError> {
        let mut props = PropertyReader::new(reader, SUBSCRIBE_PROPERTIES, IdSet::EMPTY)?;
        let mut out = SubscribeProperties::default();
        while let Some(property) = props.next()? {
            match property {
                Property::VarInt(id::SUBSCRIPTION_IDENTIFIER, v) => {
                    out.subscription_identifier = Some(v);
                }
                _ => return Err(UNEXPECTED),
            }
        }
        out.user_properties = props.user_properties();
        Ok(out)
    }

    fn content_len(&self) -> Result<usize, EncodeError> {
        let ids = self.subscription_identifier.as_slice();
        Ok(properties::subscription_ids_len(ids)? + self.user_properties.wire_len())
    }

    fn write(&self, out: &mut BytesMut) {
        properties::put_subscription_ids(out, self.subscription_identifier.as_slice());
        out.put_slice(self.user_properties.wire());
    }
}

impl SubscriptionOptions {
    /// Options with only a maximum QoS (the whole 3.1.1 options byte).
    pub fn with_qos(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            ..SubscriptionOptions::default()
        }
    }

    /// Parses the options byte of one filter (§3.8.3.1).
    fn decode(byte: u8, protocol: Protocol) -> Result<SubscriptionOptions, DecodeError> {
        let reserved = if protocol.is_v5() {
            0b1100_0000
        } else {
            0b1111_1100
        };
        if byte & reserved != 0 {
            return Err(DecodeError::Malformed(if protocol.is_v5() {
                "[MQTT-3.8.3-5] reserved bits set in subscription options"
            } else {
                "[MQTT-3.8.3-4] reserved bits set in requested QoS"
            }));
        }
        let Some(qos) = QoS::from_u8(byte & 0b11) else {
            return Err(DecodeError::Malformed("§3.8.3.1 subscription with QoS 3"));
        };
        let retain_handling = (byte >> 4) & 0b11;
        if retain_handling == 3 {
            // Malformed (0x81), as Mosquitto answers; 0x82 would be as correct.
            return Err(DecodeError::Malformed("§3.8.3.1 retain handling 3"));
        }
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & 0b0100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling,
        })
    }

    /// The options byte; 3.1/3.1.1 carry only the QoS.
    fn encode(&self, protocol: Protocol) -> u8 {
        let qos = self.qos as u8;
        if !protocol.is_v5() {
            return qos;
        }
        qos | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling & 0b11) << 4)
    }
}

impl SubAck {
    /// Decodes SUBACK from `frame` after its fixed header.
    pub(crate) fn decode(
        frame: &Bytes,
        header_len: usize,
        protocol: Protocol,
    ) -> Result<SubAck, DecodeError> {
        let mut reader = Reader::new(frame, header_len);
        let packet_id = reader.packet_id()?;
        let (properties, table) = if protocol.is_v5() {
            (SubAckProperties::decode(&mut reader)?, SUBACK_REASON_CODES)
        } else {
            (SubAckProperties::default(), V3_SUBACK_RETURN_CODES)
        };
        let reason_codes = read_reason_codes(
            &mut reader,
            table,
            "[MQTT-3.9.3-1] SUBACK without a reason code",
        )?;
        Ok(SubAck {
            packet_id,
            properties,
            reason_codes: reason_codes.to_vec(),
        })
    }

    /// Sizes SUBACK. For 3.1/3.1.1 every failure code (0x80 and above) is written as the
    /// one failure return code 0x80; granted QoS 0 to 2 are written as they are.
    pub(crate) fn layout(&self, protocol: Protocol) -> Result<Layout, EncodeError> {
        if self.reason_codes.is_empty() {
            return Err(EncodeError::Invalid("SUBACK without a reason code"));
        }
        let mut remaining = 2 + self.reason_codes.len();
        let mut properties = 0;
        if protocol.is_v5() {
            for &code in &self.reason_codes {
                check_reason_code_out(SUBACK_REASON_CODES, code)?;
            }
            properties = self.properties.content_len()?;
            remaining += block_len(properties)?;
        } else if self
            .reason_codes
            .iter()
            .any(|&code| (3..0x80).contains(&code))
        {
            return Err(EncodeError::Invalid(
                "SUBACK return code not valid in 3.1.1",
            ));
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
            self.properties.write(out);
            out.put_slice(&self.reason_codes);
        } else {
            for &code in &self.reason_codes {
                out.put_u8(code.min(reason::v3::SUBACK_FAILURE));
            }
        }
    }
}

/// Reads the reason codes that fill the rest of a SUBACK or UNSUBACK: at least one (else
/// Protocol Error `empty_why`), each from `table`.
pub(crate) fn read_reason_codes(
    reader: &mut Reader<'_>,
    table: &[u8],
    empty_why: &'static str,
) -> Result<Bytes, DecodeError> {
    let codes = reader.rest();
    if codes.is_empty() {
        return Err(DecodeError::Protocol(empty_why));
    }
    for &code in codes.iter() {
        check_reason_code(table, code, "§3.9.3 reason code not valid for this packet")?;
    }
    Ok(codes)
}

impl SubAckProperties {
    /// Decodes the property block of SUBACK or UNSUBACK.
    pub(crate) fn decode(reader: &mut Reader<'_>) -> Result<SubAckProperties, DecodeError> {
        let mut props = PropertyReader::new(reader, SUBACK_PROPERTIES, IdSet::EMPTY)?;
        let mut out = SubAckProperties::default();
        while let Some(property) = props.next()? {
            match property {
                Property::String(id::REASON_STRING, v) => out.reason_string = Some(v),
                _ => return Err(UNEXPECTED),
            }
        }
        out.user_properties = props.user_properties();
        Ok(out)
    }

    /// Content length of the block.
    pub(crate) fn content_len(&self) -> Result<usize, EncodeError> {
        Ok(prop_len(self.reason_string.as_ref())? + self.user_properties.wire_len())
    }

    /// Writes the block's content.
    pub(crate) fn write(&self, out: &mut BytesMut) {
        put_prop(out, id::REASON_STRING, self.reason_string.as_ref());
        out.put_slice(self.user_properties.wire());
    }
}
