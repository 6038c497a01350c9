//! CONNECT (§3.1): the first packet of every connection, with the will message.

use crate::mqtt::{ByteStr, Bytes, Protocol, PublishProperties, QoS, UserProperties};

/// CONNECT. `client_id` may be empty (the server then assigns one, or refuses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    /// Protocol name and level.
    pub protocol: Protocol,
    /// Clean Session (3.1.1) or Clean Start (5.0).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// 5.0 properties (default and empty for 3.1/3.1.1).
    pub properties: ConnectProperties,
    /// Client identifier, possibly empty.
    pub client_id: ByteStr,
    /// The will message, when the will flag is set.
    pub will: Option<Will>,
    /// User name, when the user name flag is set.
    pub username: Option<ByteStr>,
    /// Password, when the password flag is set (binary data).
    pub password: Option<Bytes>,
}

/// CONNECT properties (§3.1.2.11).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    /// 0x11 Session Expiry Interval, seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x21 Receive Maximum (non-zero).
    pub receive_maximum: Option<u16>,
    /// 0x27 Maximum Packet Size (non-zero).
    pub maximum_packet_size: Option<u32>,
    /// 0x22 Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// 0x19 Request Response Information (0 or 1).
    pub request_response_information: Option<u8>,
    /// 0x17 Request Problem Information (0 or 1).
    pub request_problem_information: Option<u8>,
    /// 0x26 User Property, in order.
    pub user_properties: UserProperties,
    /// 0x15 Authentication Method.
    pub authentication_method: Option<ByteStr>,
    /// 0x16 Authentication Data.
    pub authentication_data: Option<Bytes>,
}

/// The will message of CONNECT (§3.1.2.5, §3.1.3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    /// Will topic (a topic name: no wildcards).
    pub topic: ByteStr,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain.
    pub retain: bool,
    /// 0x18 Will Delay Interval, seconds (5.0).
    pub delay_interval: Option<u32>,
    /// The will properties that a PUBLISH also has: payload format indicator, message
    /// expiry interval, content type, response topic, correlation data, user properties.
    /// `topic_alias` and `subscription_identifiers` are always empty here.
    pub properties: PublishProperties,
}
