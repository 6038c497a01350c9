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
