//! CONNACK (§3.2): the server's answer to CONNECT.

use crate::mqtt::{ByteStr, Bytes, UserProperties};

/// CONNACK. For 3.1/3.1.1 only `session_present` and `reason_code` (the return code) are
/// on the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// 5.0 reason code, or the 3.1.1 return code (see `reason::v3`).
    pub reason_code: u8,
    /// 5.0 properties.
    pub properties: ConnAckProperties,
}

/// CONNACK properties (§3.2.2.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnAckProperties {
    /// 0x11 Session Expiry Interval.
    pub session_expiry_interval: Option<u32>,
    /// 0x21 Receive Maximum.
    pub receive_maximum: Option<u16>,
    /// 0x24 Maximum QoS (0 or 1).
    pub maximum_qos: Option<u8>,
    /// 0x25 Retain Available (0 or 1).
    pub retain_available: Option<u8>,
    /// 0x27 Maximum Packet Size.
    pub maximum_packet_size: Option<u32>,
    /// 0x12 Assigned Client Identifier.
    pub assigned_client_identifier: Option<ByteStr>,
    /// 0x22 Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteStr>,
    /// 0x26 User Property.
    pub user_properties: UserProperties,
    /// 0x28 Wildcard Subscription Available.
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29 Subscription Identifiers Available.
    pub subscription_identifiers_available: Option<u8>,
    /// 0x2A Shared Subscription Available.
    pub shared_subscription_available: Option<u8>,
    /// 0x13 Server Keep Alive.
    pub server_keep_alive: Option<u16>,
    /// 0x1A Response Information.
    pub response_information: Option<ByteStr>,
    /// 0x1C Server Reference.
    pub server_reference: Option<ByteStr>,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteStr>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
}

use bytes::{BufMut, BytesMut};

use super::{check_reason_code, check_reason_code_out, Layout};
use crate::mqtt::properties::{block_len, id, prop_len, put_prop, IdSet, Property};
use crate::mqtt::properties::{PropertyReader, UNEXPECTED};
use crate::mqtt::wire::{put_varint, Reader};
use crate::mqtt::{reason, DecodeError, EncodeError, Protocol};

/// Properties CONNACK may carry (§3.2.2.3).
const CONNACK_PROPERTIES: IdSet = IdSet::of(&[
    id::SESSION_EXPIRY_INTERVAL,
    id::RECEIVE_MAXIMUM,
    id::MAXIMUM_QOS,
    id::RETAIN_AVAILABLE,
    id::MAXIMUM_PACKET_SIZE,
    id::ASSIGNED_CLIENT_IDENTIFIER,
    id::TOPIC_ALIAS_MAXIMUM,
    id::REASON_STRING,
    id::USER_PROPERTY,
    id::WILDCARD_SUBSCRIPTION_AVAILABLE,
    id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    id::SHARED_SUBSCRIPTION_AVAILABLE,
    id::SERVER_KEEP_ALIVE,
    id::RESPONSE_INFORMATION,
    id::SERVER_REFERENCE,
    id::AUTHENTICATION_METHOD,
    id::AUTHENTICATION_DATA,
]);

/// Reason codes of a 5.0 CONNACK (§3.2.2.2).
const CONNACK_REASON_CODES: &[u8] = &[
    reason::SUCCESS,
    reason::UNSPECIFIED_ERROR,
    reason::MALFORMED_PACKET,
    reason::PROTOCOL_ERROR,
    reason::IMPLEMENTATION_SPECIFIC_ERROR,
    reason::UNSUPPORTED_PROTOCOL_VERSION,
    reason::CLIENT_IDENTIFIER_NOT_VALID,
    reason::BAD_USER_NAME_OR_PASSWORD,
    reason::NOT_AUTHORIZED,
    reason::SERVER_UNAVAILABLE,
    reason::SERVER_BUSY,
    reason::BANNED,
    reason::BAD_AUTHENTICATION_METHOD,
    reason::TOPIC_NAME_INVALID,
    reason::PACKET_TOO_LARGE,
    reason::QUOTA_EXCEEDED,
    reason::PAYLOAD_FORMAT_INVALID,
    reason::RETAIN_NOT_SUPPORTED,
    reason::QOS_NOT_SUPPORTED,
    reason::USE_ANOTHER_SERVER,
    reason::SERVER_MOVED,
    reason::CONNECTION_RATE_EXCEEDED,
];

/// Return codes of a 3.1/3.1.1 CONNACK (§3.2.2.3 of 3.1.1); 6 to 255 are reserved.
const V3_RETURN_CODES: &[u8] = &[0, 1, 2, 3, 4, 5];

impl ConnAck {
    /// Decodes CONNACK from `frame` after its fixed header.
    pub(crate) fn decode(
        frame: &bytes::Bytes,
        header_len: usize,
        protocol: Protocol,
    ) -> Result<ConnAck, DecodeError> {
        let mut reader = Reader::new(frame, header_len);
        let flags = reader.u8()?;
        if flags & 0xFE != 0 {
            return Err(DecodeError::Malformed(
                "[MQTT-3.2.2-1] reserved CONNACK flags set",
            ));
        }
        let mut connack = ConnAck {
            session_present: flags & 1 != 0,
            reason_code: reader.u8()?,
            properties: ConnAckProperties::default(),
        };
        if protocol.is_v5() {
            check_reason_code(
                CONNACK_REASON_CODES,
                connack.reason_code,
                "§3.2.2.2 reason code not valid for CONNACK",
            )?;
            connack.properties = ConnAckProperties::decode(&mut reader)?;
        } else {
            check_reason_code(
                V3_RETURN_CODES,
                connack.reason_code,
                "§3.2.2.3 reserved CONNACK return code",
            )?;
        }
        reader.finish("§3.2 CONNACK longer than its fields")?;
        Ok(connack)
    }

    /// Sizes CONNACK; `reason_code` must be a code of `protocol`'s CONNACK.
    pub(crate) fn layout(&self, protocol: Protocol) -> Result<Layout, EncodeError> {
        if !protocol.is_v5() {
            check_reason_code_out(V3_RETURN_CODES, self.reason_code)?;
            return Layout::plain(2);
        }
        check_reason_code_out(CONNACK_REASON_CODES, self.reason_code)?;
        let properties = self.properties.content_len()?;
        Ok(Layout {
            properties,
            ..Layout::plain(2 + block_len(properties)?)?
        })
    }

    /// Writes the body sized by `layout`.
    pub(crate) fn write(&self, protocol: Protocol, layout: &Layout, out: &mut BytesMut) {
        out.put_u8(u8::from(self.session_present));
        out.put_u8(self.reason_code);
        if protocol.is_v5() {
            put_varint(out, layout.properties);
            self.properties.write(out);
        }
    }
}

impl ConnAckProperties {
    fn decode(reader: &mut Reader<'_>) -> Result<ConnAckProperties, DecodeError> {
        let mut props = PropertyReader::new(reader, CONNACK_PROPERTIES, IdSet::EMPTY)?;
        let mut out = ConnAckProperties::default();
        while let Some(property) = props.next()? {
            out.set(property)?;
        }
        out.user_properties = props.user_properties();
        Ok(out)
    }

    fn set(&mut self, property: Property) -> Result<(), DecodeError> {
        match property {
            Property::FourByte(id::SESSION_EXPIRY_INTERVAL, v) => {
                self.session_expiry_interval = Some(v);
            }
            Property::TwoByte(id::RECEIVE_MAXIMUM, v) => self.receive_maximum = Some(v),
            Property::Byte(id::MAXIMUM_QOS, v) => self.maximum_qos = Some(v),
            Property::Byte(id::RETAIN_AVAILABLE, v) => self.retain_available = Some(v),
            Property::FourByte(id::MAXIMUM_PACKET_SIZE, v) => self.maximum_packet_size = Some(v),
            Property::String(id::ASSIGNED_CLIENT_IDENTIFIER, v) => {
                self.assigned_client_identifier = Some(v);
            }
            Property::TwoByte(id::TOPIC_ALIAS_MAXIMUM, v) => self.topic_alias_maximum = Some(v),
            Property::String(id::REASON_STRING, v) => self.reason_string = Some(v),
            Property::Byte(id::WILDCARD_SUBSCRIPTION_AVAILABLE, v) => {
                self.wildcard_subscription_available = Some(v);
            }
            Property::Byte(id::SUBSCRIPTION_IDENTIFIER_AVAILABLE, v) => {
                self.subscription_identifiers_available = Some(v);
            }
            Property::Byte(id::SHARED_SUBSCRIPTION_AVAILABLE, v) => {
                self.shared_subscription_available = Some(v);
            }
            Property::TwoByte(id::SERVER_KEEP_ALIVE, v) => self.server_keep_alive = Some(v),
            Property::String(id::RESPONSE_INFORMATION, v) => self.response_information = Some(v),
            Property::String(id::SERVER_REFERENCE, v) => self.server_reference = Some(v),
            Property::String(id::AUTHENTICATION_METHOD, v) => {
                self.authentication_method = Some(v);
            }
            Property::Binary(id::AUTHENTICATION_DATA, v) => self.authentication_data = Some(v),
            _ => return Err(UNEXPECTED),
        }
        Ok(())
    }

    fn content_len(&self) -> Result<usize, EncodeError> {
        Ok(prop_len(self.session_expiry_interval.as_ref())?
            + prop_len(self.receive_maximum.as_ref())?
            + prop_len(self.maximum_qos.as_ref())?
            + prop_len(self.retain_available.as_ref())?
            + prop_len(self.maximum_packet_size.as_ref())?
            + prop_len(self.assigned_client_identifier.as_ref())?
            + prop_len(self.topic_alias_maximum.as_ref())?
            + prop_len(self.reason_string.as_ref())?
            + self.user_properties.wire_len()
            + prop_len(self.wildcard_subscription_available.as_ref())?
            + prop_len(self.subscription_identifiers_available.as_ref())?
            + prop_len(self.shared_subscription_available.as_ref())?
            + prop_len(self.server_keep_alive.as_ref())?
            + prop_len(self.response_information.as_ref())?
            + prop_len(self.server_reference.as_ref())?
            + prop_len(self.authentication_method.as_ref())?
            + prop_len(self.authentication_data.as_ref())?)
    }

    /// Writes the properties in the order Mosquitto 2.0 writes them (the ones it sets from
    /// the CONNECT first, then its limits), so the bytes a client sees are Mosquitto's; the
    /// ones Mosquitto never sends follow.
    fn write(&self, out: &mut BytesMut) {
        put_prop(
            out,
            id::TOPIC_ALIAS_MAXIMUM,
            self.topic_alias_maximum.as_ref(),
        );
        put_prop(out, id::SERVER_KEEP_ALIVE, self.server_keep_alive.as_ref());
        put_prop(
            out,
            id::ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.as_ref(),
        );
        put_prop(
            out,
            id::AUTHENTICATION_METHOD,
            self.authentication_method.as_ref(),
        );
        put_prop(
            out,
            id::AUTHENTICATION_DATA,
            self.authentication_data.as_ref(),
        );
        put_prop(out, id::RETAIN_AVAILABLE, self.retain_available.as_ref());
        put_prop(
            out,
            id::MAXIMUM_PACKET_SIZE,
            self.maximum_packet_size.as_ref(),
        );
        put_prop(out, id::RECEIVE_MAXIMUM, self.receive_maximum.as_ref());
        put_prop(out, id::MAXIMUM_QOS, self.maximum_qos.as_ref());
        put_prop(
            out,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval.as_ref(),
        );
        put_prop(out, id::REASON_STRING, self.reason_string.as_ref());
        out.put_slice(self.user_properties.wire());
        put_prop(
            out,
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available.as_ref(),
        );
        put_prop(
            out,
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available.as_ref(),
        );
        put_prop(
            out,
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available.as_ref(),
        );
        put_prop(
            out,
            id::RESPONSE_INFORMATION,
            self.response_information.as_ref(),
        );
        put_prop(out, id::SERVER_REFERENCE, self.server_reference.as_ref());
    }
}
