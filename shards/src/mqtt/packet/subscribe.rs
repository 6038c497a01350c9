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
