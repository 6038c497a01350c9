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
