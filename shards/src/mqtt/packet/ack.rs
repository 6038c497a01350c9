//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4–§3.7): one layout, four packet types.

use crate::mqtt::{ByteStr, PacketId, UserProperties};

/// A QoS acknowledgement. In 5.0 the reason code and properties may be omitted on the wire
/// when they are Success and empty (§3.4.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Packet identifier.
    pub packet_id: PacketId,
    /// 5.0 reason code (0 = Success).
    pub reason_code: u8,
    /// 5.0 properties.
    pub properties: AckProperties,
}

/// Properties shared by the acknowledgements (§3.4.2.2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// 0x1F Reason String.
    pub reason_string: Option<ByteStr>,
    /// 0x26 User Property.
    pub user_properties: UserProperties,
}
