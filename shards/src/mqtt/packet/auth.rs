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
