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
