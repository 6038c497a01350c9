//! AUTH (§3.15): extended authentication exchange, 5.0 only.

use crate::mqtt::{ByteStr, Bytes, UserProperties};

/// AUTH. A remaining length of 0 means reason Success with no properties (§3.15.2.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Auth {
    /// Reason code: 0x00 Success, 0x18 Continue authentication, 0x19 Re-authenticate.
    pub reason_code: u8,
    /// Properties.
    pub properties: AuthProperties,
}

/// AUTH properties (§3.15.2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteStr>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// 0x1F Reason String.
    pub reason_string: Option<ByteStr>,
    /// 0x26 User Property.
    pub user_properties: UserProperties,
}

use bytes::{BufMut, BytesMut};

use super::{check_reason_code, check_reason_code_out, Layout};
use crate::mqtt::properties::{block_len, id, prop_len, put_prop, IdSet, Property};
use crate::mqtt::properties::{PropertyReader, UNEXPECTED};
use crate::mqtt::wire::{put_varint, Reader};
use crate::mqtt::{reason, DecodeError, EncodeError, Protocol};

/// Properties AUTH may carry (§3.15.2.2).
const AUTH_PROPERTIES: IdSet = IdSet::of(&[
    id::AUTHENTICATION_METHOD,
    id::AUTHENTICATION_DATA,
    id::REASON_STRING,
    id::USER_PROPERTY,
]);

/// Reason codes of AUTH (§3.15.2.1).
const AUTH_REASON_CODES: &[u8] = &[
    reason::SUCCESS,
    reason::CONTINUE_AUTHENTICATION,
    reason::RE_AUTHENTICATE,
];

impl Auth {
    /// Decodes AUTH from `frame` after its fixed header. A remaining length of 0 is
    /// Success without properties; a lone reason code is accepted too, as Mosquitto does.
    pub(crate) fn decode(frame: &Bytes, header_len: usize) -> Result<Auth, DecodeError> {
        let mut reader = Reader::new(frame, header_len);
        let mut auth = Auth::default();
        if !reader.is_empty() {
            auth.reason_code = reader.u8()?;
            check_reason_code(
                AUTH_REASON_CODES,
                auth.reason_code,
                "§3.15.2.1 reason code not valid for AUTH",
            )?;
            if !reader.is_empty() {
                auth.properties = AuthProperties::decode(&mut reader)?;
            }
        }
        reader.finish("§3.15 AUTH longer than its fields")?;
        Ok(auth)
    }

    /// Sizes AUTH: `f0 00` for Success without properties, otherwise reason code and
    /// property block. AUTH exists only in 5.0.
    pub(crate) fn layout(&self, protocol: Protocol) -> Result<Layout, EncodeError> {
        if !protocol.is_v5() {
            return Err(EncodeError::Invalid("AUTH exists only in MQTT 5.0"));
        }
        check_reason_code_out(AUTH_REASON_CODES, self.reason_code)?;
        let properties = self.properties.content_len()?;
        let remaining = match (self.reason_code, properties) {
            (reason::SUCCESS, 0) => 0,
            _ => 1 + block_len(properties)?,
        };
        Ok(Layout {
            properties,
            ..Layout::plain(remaining)?
        })
    }

    /// Writes the body sized by `layout`.
    pub(crate) fn write(&self, layout: &Layout, out: &mut BytesMut) {
        if layout.remaining > 0 {
            out.put_u8(self.reason_code);
            put_varint(out, layout.properties);
            self.properties.write(out);
        }
    }
}

impl AuthProperties {
    fn decode(reader: &mut Reader<'_>) -> Result<AuthProperties, DecodeError> {
        let mut props = PropertyReader::new(reader, AUTH_PROPERTIES, IdSet::EMPTY)?;
        let mut out = AuthProperties::default();
        while let Some(property) = props.next()? {
            match property {
                Property::String(id::AUTHENTICATION_METHOD, v) => {
                    out.authentication_method = Some(v);
                }
                Property::Binary(id::AUTHENTICATION_DATA, v) => {
                    out.authentication_data = Some(v);
                }
                Property::String(id::REASON_STRING, v) => out.reason_string = Some(v),
                _ => return Err(UNEXPECTED),
            }
        }
        out.user_properties = props.user_properties();
        Ok(out)
    }

    fn content_len(&self) -> Result<usize, EncodeError> {
        Ok(prop_len(self.authentication_method.as_ref())?
            + prop_len(self.authentication_data.as_ref())?
            + prop_len(self.reason_string.as_ref())?
            + self.user_properties.wire_len())
    }

    fn write(&self, out: &mut BytesMut) {
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
        put_prop(out, id::REASON_STRING, self.reason_string.as_ref());
        out.put_slice(self.user_properties.wire());
    }
}
