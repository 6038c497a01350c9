//! Codec errors: why bytes were refused, mapped to the reason code a 5.0 server sends.

use crate::mqtt::reason;

/// Why a packet could not be decoded. Incomplete input is not an error: [`crate::mqtt::decode`]
/// returns `Ok(None)` for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Occurs when bytes break the packet grammar (bad remaining length, truncated field,
    /// invalid UTF-8, reserved flags set, a property that does not belong to the packet,
    /// a duplicated property). The text names the rule, e.g. `"[MQTT-1.5.4-1] ..."`.
    Malformed(&'static str),
    /// Occurs when a well-formed packet breaks a protocol rule that is decidable from the
    /// packet alone (packet identifier 0, QoS 3, wildcard in a PUBLISH topic, empty
    /// SUBSCRIBE, will flags without will, ...).
    Protocol(&'static str),
    /// Occurs when a PUBLISH topic name contains a wildcard (`+`, `#`) or is empty where
    /// no topic alias can stand in for it ([MQTT-3.3.2-2], [MQTT-4.7.3-1]). Reported as a
    /// Protocol Error (0x82), as Mosquitto answers; 0x90 Topic Name Invalid would be as
    /// correct.
    TopicNameInvalid(&'static str),
    /// Occurs when the remaining length announces a packet larger than the limit given to
    /// `decode`; nothing beyond the fixed header is read.
    TooLarge {
        /// Size of the whole packet as announced, in bytes.
        size: usize,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// Occurs when CONNECT names protocol `MQTT` or `MQIsdp` with a level this codec does not
    /// speak. The server answers CONNACK 0x01 (3.1.1 form) and closes [MQTT-3.1.2-2].
    UnsupportedProtocolVersion(u8),
    /// Occurs when CONNECT names a protocol other than `MQTT` or `MQIsdp`. The server closes
    /// without CONNACK [MQTT-3.1.2-1].
    InvalidProtocolName,
    /// Occurs when the first packet is not CONNECT. The server closes without CONNACK.
    NotConnect,
}

impl DecodeError {
    /// The 5.0 reason code for a DISCONNECT (or CONNACK) reporting this error.
    pub fn reason_code(&self) -> u8 {
        match self {
            DecodeError::Malformed(_) => reason::MALFORMED_PACKET,
            DecodeError::Protocol(_)
            | DecodeError::NotConnect
            | DecodeError::TopicNameInvalid(_) => reason::PROTOCOL_ERROR,
            DecodeError::TooLarge { .. } => reason::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocolVersion(_) | DecodeError::InvalidProtocolName => {
                reason::UNSUPPORTED_PROTOCOL_VERSION
            }
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(why) => write!(f, "malformed packet: {why}"),
            DecodeError::Protocol(why) => write!(f, "protocol error: {why}"),
            DecodeError::TopicNameInvalid(why) => write!(f, "topic name invalid: {why}"),
            DecodeError::TooLarge { size, limit } => {
                write!(f, "packet of {size} bytes exceeds the maximum of {limit}")
            }
            DecodeError::UnsupportedProtocolVersion(level) => {
                write!(f, "unsupported protocol version {level}")
            }
            DecodeError::InvalidProtocolName => f.write_str("invalid protocol name"),
            DecodeError::NotConnect => f.write_str("first packet is not CONNECT"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a packet could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// Occurs when a packet would exceed the largest remaining length MQTT can express
    /// (268,435,455 bytes) or a string would exceed 65,535 bytes.
    TooLarge,
    /// Occurs when a field is out of range for the packet (a QoS > 0 PUBLISH without a
    /// packet identifier, an empty SUBSCRIBE, a 5.0-only packet for 3.1.1).
    Invalid(&'static str),
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::TooLarge => f.write_str("packet too large to encode"),
            EncodeError::Invalid(why) => write!(f, "cannot encode: {why}"),
        }
    }
}

impl std::error::Error for EncodeError {}
