//! DISCONNECT (§3.14).

use crate::mqtt::{ByteStr, UserProperties};

/// DISCONNECT. 3.1/3.1.1 have no variable header; 5.0 may omit the reason code (0) and
/// properties (§3.14.2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disconnect {
    /// 5.0 reason code.
    pub reason_code: u8,
    /// 5.0 properties.
    pub properties: DisconnectProperties,
}

/// DISCONNECT properties (§3.14.2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// 0x11 Session Expiry Interval (client to server only).
    pub session_expiry_interval: Option<u32>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteStr>,
    /// 0x26 User Property.
    pub user_properties: UserProperties,
    /// 0x1C Server Reference (server to client only).
    pub server_reference: Option<ByteStr>,
}

use bytes::{BufMut, Bytes, BytesMut};

use super::{check_reason_code, check_reason_code_out, Layout};
use crate::mqtt::properties::{block_len, id, prop_len, put_prop, IdSet, Property};
use crate::mqtt::properties::{PropertyReader, UNEXPECTED};
use crate::mqtt::wire::{put_varint, Reader};
use crate::mqtt::{reason, DecodeError, EncodeError, Protocol};

/// Properties DISCONNECT may carry (§3.14.2.2).
const DISCONNECT_PROPERTIES: IdSet = IdSet::of(&[
    id::SESSION_EXPIRY_INTERVAL,
    id::REASON_STRING,
    id::USER_PROPERTY,
    id::SERVER_REFERENCE,
]);

/// Reason codes of DISCONNECT (§3.14.2.1).
const DISCONNECT_REASON_CODES: &[u8] = &[
    reason::NORMAL_DISCONNECTION,
    reason::DISCONNECT_WITH_WILL_MESSAGE,
    reason::UNSPECIFIED_ERROR,
    reason::MALFORMED_PACKET,
    reason::PROTOCOL_ERROR,
    reason::IMPLEMENTATION_SPECIFIC_ERROR,
    reason::NOT_AUTHORIZED,
    reason::SERVER_BUSY,
    reason::SERVER_SHUTTING_DOWN,
    reason::KEEP_ALIVE_TIMEOUT,
    reason::SESSION_TAKEN_OVER,
    reason::TOPIC_FILTER_INVALID,
    reason::TOPIC_NAME_INVALID,
    reason::RECEIVE_MAXIMUM_EXCEEDED,
    reason::TOPIC_ALIAS_INVALID,
    reason::PACKET_TOO_LARGE,
    reason::MESSAGE_RATE_TOO_HIGH,
    reason::QUOTA_EXCEEDED,
    reason::ADMINISTRATIVE_ACTION,
    reason::PAYLOAD_FORMAT_INVALID,
    reason::RETAIN_NOT_SUPPORTED,
    reason::QOS_NOT_SUPPORTED,
    reason::USE_ANOTHER_SERVER,
    reason::SERVER_MOVED,
    reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
    reason::CONNECTION_RATE_EXCEEDED,
    reason::MAXIMUM_CONNECT_TIME,
    reason::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
    reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
];

impl Disconnect {
    /// Decodes DISCONNECT from `frame` after its fixed header. In 5.0 a remaining length
    /// of 0 means Normal disconnection and 1 means no properties (§3.14.2.1).
    pub(crate) fn decode(
        frame: &Bytes,
        header_len: usize,
        protocol: Protocol,
    ) -> Result<Disconnect, DecodeError> {
        let mut reader = Reader::new(frame, header_len);
        let mut disconnect = Disconnect::default();
        if protocol.is_v5() && !reader.is_empty() {
            disconnect.reason_code = reader.u8()?;
            check_reason_code(
                DISCONNECT_REASON_CODES,
                disconnect.reason_code,
                "§3.14.2.1 reason code not valid for DISCONNECT",
            )?;
            if !reader.is_empty() {
                disconnect.properties = DisconnectProperties::decode(&mut reader)?;
            }
        }
        reader.finish("§3.14 DISCONNECT longer than its fields")?;
        Ok(disconnect)
    }

    /// Sizes DISCONNECT in the shortest form: `e0 00` for a Normal disconnection without
    /// properties, and always for 3.1/3.1.1.
    pub(crate) fn layout(&self, protocol: Protocol) -> Result<Layout, EncodeError> {
        if !protocol.is_v5() {
            return Layout::plain(0);
        }
        check_reason_code_out(DISCONNECT_REASON_CODES, self.reason_code)?;
        let properties = self.properties.content_len()?;
        let remaining = match (self.reason_code, properties) {
            (reason::NORMAL_DISCONNECTION, 0) => 0,
            (_, 0) => 1,
            _ => 1 + block_len(properties)?,
        };
        Ok(Layout {
            properties,
            ..Layout::plain(remaining)?
        })
    }

    /// Writes the body sized by `layout`.
    pub(crate) fn write(&self, protocol: Protocol, layout: &Layout, out: &mut BytesMut) {
        if protocol.is_v5() && layout.remaining > 0 {
            out.put_u8(self.reason_code);
            if layout.remaining > 1 {
                put_varint(out, layout.properties);
                self.properties.write(out);
            }
        }
    }
}

impl DisconnectProperties {
    fn decode(reader: &mut Reader<'_>) -> Result<DisconnectProperties, DecodeError> {
        let mut props = PropertyReader::new(reader, DISCONNECT_PROPERTIES, IdSet::EMPTY)?;
        let mut out = DisconnectProperties::default();
        while let Some(property) = props.next()? {
            match property {
                Property::FourByte(id::SESSION_EXPIRY_INTERVAL, v) => {
                    out.session_expiry_interval = Some(v);
                }
                Property::String(id::REASON_STRING, v) => out.reason_string = Some(v),
                Property::String(id::SERVER_REFERENCE, v) => out.server_reference = Some(v),
                _ => return Err(UNEXPECTED),
            }
        }
        out.user_properties = props.user_properties();
        Ok(out)
    }

    fn content_len(&self) -> Result<usize, EncodeError> {
        Ok(prop_len(self.session_expiry_interval.as_ref())?
            + prop_len(self.reason_string.as_ref())?
            + self.user_properties.wire_len()
            + prop_len(self.server_reference.as_ref())?)
    }

    fn write(&self, out: &mut BytesMut) {
        put_prop(
            out,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval.as_ref(),
        );
        put_prop(out, id::REASON_STRING, self.reason_string.as_ref());
        out.put_slice(self.user_properties.wire());
        put_prop(out, id::SERVER_REFERENCE, self.server_reference.as_ref());
    }
}
