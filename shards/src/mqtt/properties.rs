//! Property blocks of MQTT 5.0 (§2.2.2): identifiers, their data types, which packet may
//! carry which property, duplicates, value ranges, and the helpers that write them.
//!
//! Owns: every rule about properties that is decidable from the bytes alone. Each packet
//! decoder opens a [`PropertyReader`] with the set of identifiers its packet allows and
//! matches the typed [`Property`] values it yields; user properties never reach the packet
//! decoder, the reader collects them in wire form ([`UserProperties`]). Encoders compute the
//! block's length with [`prop_len`] and write it with [`put_prop`].
//!
//! Classification follows the specification: an identifier that is unknown or not valid for
//! the packet, or a value that runs past the block, is a Malformed Packet (§2.2.2.2); a
//! property included twice, or a value out of its range, is a Protocol Error.

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::user_properties::USER_PROPERTY_ID;
use crate::mqtt::wire::{self, Reader};
use crate::mqtt::{ByteStr, DecodeError, EncodeError, UserProperties};

/// Property identifiers (§2.2.2.2).
pub(crate) mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = super::USER_PROPERTY_ID;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// A set of property identifiers, one bit per identifier (all are below 64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdSet(u64);

impl IdSet {
    /// The empty set.
    pub(crate) const EMPTY: IdSet = IdSet(0);

    /// The set of `ids`. Every identifier is below 64 (checked at compile time by the
    /// constants that call this).
    pub(crate) const fn of(ids: &[u8]) -> IdSet {
        let mut bits = 0u64;
        let mut index = 0;
        while index < ids.len() {
            assert!(ids[index] < 64);
            bits |= 1 << ids[index];
            index += 1;
        }
        IdSet(bits)
    }

    pub(crate) fn contains(self, property: u8) -> bool {
        property < 64 && self.0 & (1 << property) != 0
    }

    pub(crate) fn insert(&mut self, property: u8) {
        debug_assert!(property < 64);
        self.0 |= 1 << property;
    }
}

/// The data type of a property's value (§2.2.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Byte,
    TwoByte,
    FourByte,
    VarInt,
    String,
    Binary,
    Pair,
}

/// The data type of property `property`, or None for an unknown identifier.
fn kind(property: u8) -> Option<Kind> {
    use id::*;
    Some(match property {
        PAYLOAD_FORMAT_INDICATOR
        | REQUEST_PROBLEM_INFORMATION
        | REQUEST_RESPONSE_INFORMATION
        | MAXIMUM_QOS
        | RETAIN_AVAILABLE
        | WILDCARD_SUBSCRIPTION_AVAILABLE
        | SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | SHARED_SUBSCRIPTION_AVAILABLE => Kind::Byte,
        SERVER_KEEP_ALIVE | RECEIVE_MAXIMUM | TOPIC_ALIAS_MAXIMUM | TOPIC_ALIAS => Kind::TwoByte,
        MESSAGE_EXPIRY_INTERVAL
        | SESSION_EXPIRY_INTERVAL
        | WILL_DELAY_INTERVAL
        | MAXIMUM_PACKET_SIZE => Kind::FourByte,
        SUBSCRIPTION_IDENTIFIER => Kind::VarInt,
        CONTENT_TYPE
        | RESPONSE_TOPIC
        | ASSIGNED_CLIENT_IDENTIFIER
        | AUTHENTICATION_METHOD
        | RESPONSE_INFORMATION
        | SERVER_REFERENCE
        | REASON_STRING => Kind::String,
        CORRELATION_DATA | AUTHENTICATION_DATA => Kind::Binary,
        USER_PROPERTY => Kind::Pair,
        _ => return None,
    })
}

/// One decoded property other than a user property: its identifier and typed value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Property {
    Byte(u8, u8),
    TwoByte(u8, u16),
    FourByte(u8, u32),
    VarInt(u8, u32),
    String(u8, ByteStr),
    Binary(u8, Bytes),
}

impl Property {
    /// The property's identifier.
    pub(crate) fn id(&self) -> u8 {
        match *self {
            Property::Byte(id, _)
            | Property::TwoByte(id, _)
            | Property::FourByte(id, _)
            | Property::VarInt(id, _)
            | Property::String(id, _)
            | Property::Binary(id, _) => id,
        }
    }
}

/// Returned by a packet decoder's match when the reader yields a property its allowed set
/// should have refused; never happens unless an allowed set and a match disagree.
pub(crate) const UNEXPECTED: DecodeError =
    DecodeError::Malformed("§2.2.2.2 property not valid for this packet");

/// Where the user properties of a block are while the block is read: a range of the frame
/// as long as they are contiguous (the usual case, zero-copy), else an owned copy.
enum UserAccumulator {
    Empty,
    Range(usize, usize),
    Owned(BytesMut),
}

/// Reads one property block: the length, then properties until the block ends.
pub(crate) struct PropertyReader<'a> {
    block: Reader<'a>,
    allowed: IdSet,
    repeatable: IdSet,
    seen: IdSet,
    user: UserAccumulator,
    users: usize,
}

impl<'a> PropertyReader<'a> {
    /// Reads the property length from `reader` and carves the block out of it. `allowed`
    /// lists the identifiers this packet may carry; `repeatable` those that may appear more
    /// than once (the user property always may).
    pub(crate) fn new(
        reader: &mut Reader<'a>,
        allowed: IdSet,
        repeatable: IdSet,
    ) -> Result<PropertyReader<'a>, DecodeError> {
        let len = reader.varint()?;
        if len > reader.remaining() {
            return Err(DecodeError::Malformed(
                "§2.2.2.1 property length runs past the end of the packet",
            ));
        }
        Ok(PropertyReader {
            block: reader.split(len)?,
            allowed,
            repeatable,
            seen: IdSet::EMPTY,
            user: UserAccumulator::Empty,
            users: 0,
        })
    }

    /// The next property that is not a user property, or None at the end of the block.
    pub(crate) fn next(&mut self) -> Result<Option<Property>, DecodeError> {
        loop {
            if self.block.is_empty() {
                return Ok(None);
            }
            let start = self.block.position();
            let property = self.block.u8()?;
            let Some(kind) = kind(property).filter(|_| self.allowed.contains(property)) else {
                return Err(DecodeError::Malformed(
                    "§2.2.2.2 unknown property or property not valid for this packet",
                ));
            };
            if kind == Kind::Pair {
                self.read_user_property(start)?;
                continue;
            }
            if self.seen.contains(property) && !self.repeatable.contains(property) {
                return Err(DecodeError::Protocol("§2.2.2.2 property included twice"));
            }
            self.seen.insert(property);
            let value = self.read_value(property, kind)?;
            check_range(&value)?;
            return Ok(Some(value));
        }
    }

    fn read_value(&mut self, property: u8, kind: Kind) -> Result<Property, DecodeError> {
        let block = &mut self.block;
        Ok(match kind {
            Kind::Byte => Property::Byte(property, block.u8()?),
            Kind::TwoByte => Property::TwoByte(property, block.u16()?),
            Kind::FourByte => Property::FourByte(property, block.u32()?),
            // At most 268,435,455: a four-byte variable byte integer fits a u32.
            Kind::VarInt => Property::VarInt(property, block.varint()? as u32),
            Kind::String => Property::String(property, block.string()?),
            Kind::Binary => Property::Binary(property, block.binary()?),
            Kind::Pair => return Err(UNEXPECTED),
        })
    }

    /// Number of user properties read so far: where in the list of user properties the
    /// property `next` returned last stood (see `PublishProperties::order`).
    pub(crate) fn users_read(&self) -> usize {
        self.users
    }

    /// Validates one user property whose identifier starts at `start` and records it.
    fn read_user_property(&mut self, start: usize) -> Result<(), DecodeError> {
        self.block.string()?;
        self.block.string()?;
        self.users += 1;
        let end = self.block.position();
        self.user = match std::mem::replace(&mut self.user, UserAccumulator::Empty) {
            UserAccumulator::Empty => UserAccumulator::Range(start, end),
            UserAccumulator::Range(first, last) if last == start => {
                UserAccumulator::Range(first, end)
            }
            UserAccumulator::Range(first, last) => {
                let frame = self.block.frame();
                let mut owned = BytesMut::with_capacity(last - first + end - start);
                owned.extend_from_slice(&frame[first..last]);
                owned.extend_from_slice(&frame[start..end]);
                UserAccumulator::Owned(owned)
            }
            UserAccumulator::Owned(mut owned) => {
                owned.extend_from_slice(&self.block.frame()[start..end]);
                UserAccumulator::Owned(owned)
            }
        };
        Ok(())
    }

    /// The user properties of the block, in order. Call after `next` returned None.
    pub(crate) fn user_properties(self) -> UserProperties {
        debug_assert!(self.block.is_empty());
        match self.user {
            UserAccumulator::Empty => UserProperties::new(),
            UserAccumulator::Range(first, last) => {
                UserProperties::from_wire_unchecked(self.block.frame().slice(first..last))
            }
            UserAccumulator::Owned(owned) => UserProperties::from_wire_unchecked(owned.freeze()),
        }
    }
}

/// Refuses values outside the range the specification gives their property; each of
/// these is a Protocol Error.
fn check_range(value: &Property) -> Result<(), DecodeError> {
    use id::*;
    let why = match *value {
        Property::Byte(PAYLOAD_FORMAT_INDICATOR, v) if v > 1 => {
            "§3.3.2.3.2 payload format indicator other than 0 or 1"
        }
        Property::Byte(REQUEST_PROBLEM_INFORMATION, v) if v > 1 => {
            "§3.1.2.11.7 request problem information other than 0 or 1"
        }
        Property::Byte(REQUEST_RESPONSE_INFORMATION, v) if v > 1 => {
            "§3.1.2.11.6 request response information other than 0 or 1"
        }
        Property::Byte(MAXIMUM_QOS, v) if v > 1 => "§3.2.2.3.4 maximum QoS other than 0 or 1",
        Property::Byte(RETAIN_AVAILABLE, v) if v > 1 => {
            "§3.2.2.3.5 retain available other than 0 or 1"
        }
        Property::Byte(WILDCARD_SUBSCRIPTION_AVAILABLE, v) if v > 1 => {
            "§3.2.2.3.11 wildcard subscription available other than 0 or 1"
        }
        Property::Byte(SUBSCRIPTION_IDENTIFIER_AVAILABLE, v) if v > 1 => {
            "§3.2.2.3.12 subscription identifiers available other than 0 or 1"
        }
        Property::Byte(SHARED_SUBSCRIPTION_AVAILABLE, v) if v > 1 => {
            "§3.2.2.3.13 shared subscription available other than 0 or 1"
        }
        Property::TwoByte(RECEIVE_MAXIMUM, 0) => "§3.1.2.11.3 receive maximum 0",
        // The specification names no code; Malformed (0x81) is what Mosquitto answers.
        Property::TwoByte(TOPIC_ALIAS, 0) => {
            return Err(DecodeError::Malformed("[MQTT-3.3.2-8] topic alias 0"))
        }
        Property::FourByte(MAXIMUM_PACKET_SIZE, 0) => "§3.1.2.11.4 maximum packet size 0",
        Property::VarInt(SUBSCRIPTION_IDENTIFIER, 0) => "§3.3.2.3.8 subscription identifier 0",
        _ => return Ok(()),
    };
    Err(DecodeError::Protocol(why))
}

/// A property value that can be written: its size after the identifier, and its bytes.
pub(crate) trait PropValue {
    /// Wire size of the value (without the identifier byte).
    fn value_len(&self) -> Result<usize, EncodeError>;
    /// Appends the value.
    fn put_value(&self, out: &mut BytesMut);
}

impl PropValue for u8 {
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(1)
    }
    fn put_value(&self, out: &mut BytesMut) {
        out.put_u8(*self);
    }
}

impl PropValue for u16 {
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(2)
    }
    fn put_value(&self, out: &mut BytesMut) {
        out.put_u16(*self);
    }
}

impl PropValue for u32 {
    fn value_len(&self) -> Result<usize, EncodeError> {
        Ok(4)
    }
    fn put_value(&self, out: &mut BytesMut) {
        out.put_u32(*self);
    }
}

impl PropValue for ByteStr {
    fn value_len(&self) -> Result<usize, EncodeError> {
        wire::string_len(self.len())
    }
    fn put_value(&self, out: &mut BytesMut) {
        wire::put_string(out, self.as_bytes());
    }
}

impl PropValue for Bytes {
    fn value_len(&self) -> Result<usize, EncodeError> {
        wire::string_len(self.len())
    }
    fn put_value(&self, out: &mut BytesMut) {
        wire::put_string(out, self);
    }
}

/// Size of an optional property: identifier plus value, or 0 when absent.
pub(crate) fn prop_len<T: PropValue>(value: Option<&T>) -> Result<usize, EncodeError> {
    match value {
        Some(value) => Ok(1 + value.value_len()?),
        None => Ok(0),
    }
}

/// Appends an optional property.
pub(crate) fn put_prop<T: PropValue>(out: &mut BytesMut, property: u8, value: Option<&T>) {
    if let Some(value) = value {
        out.put_u8(property);
        value.put_value(out);
    }
}

/// Size of subscription identifier properties, with the range check (§3.3.2.3.8:
/// 1 to 268,435,455).
pub(crate) fn subscription_ids_len(ids: &[u32]) -> Result<usize, EncodeError> {
    let mut len = 0;
    for &value in ids {
        let value = value as usize;
        if value == 0 || value > wire::VARINT_MAX {
            return Err(EncodeError::Invalid(
                "subscription identifier out of 1..=268435455",
            ));
        }
        len += 1 + wire::varint_len(value);
    }
    Ok(len)
}

/// Appends subscription identifier properties checked by [`subscription_ids_len`].
pub(crate) fn put_subscription_ids(out: &mut BytesMut, ids: &[u32]) {
    for &value in ids {
        out.put_u8(id::SUBSCRIPTION_IDENTIFIER);
        wire::put_varint(out, value as usize);
    }
}

/// Size of a whole property block (length prefix included) whose content is `content`.
pub(crate) fn block_len(content: usize) -> Result<usize, EncodeError> {
    let content = wire::checked_remaining(content)?;
    Ok(wire::varint_len(content) + content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(block: &'static [u8], allowed: IdSet) -> Result<Vec<Property>, DecodeError> {
        let frame = Bytes::from_static(block);
        let mut reader = Reader::new(&frame, 0);
        let mut props = PropertyReader::new(&mut reader, allowed, IdSet::EMPTY)?;
        let mut out = Vec::new();
        while let Some(property) = props.next()? {
            out.push(property);
        }
        Ok(out)
    }

    const ALL: IdSet = IdSet::of(&[0x01, 0x02, 0x0B, 0x21, 0x26]);

    #[test]
    fn typed_values_and_classified_errors() {
        assert_eq!(
            read_all(&[7, 0x01, 1, 0x02, 0, 0, 1, 0], ALL),
            Ok(vec![Property::Byte(0x01, 1), Property::FourByte(0x02, 256)])
        );
        assert!(matches!(
            read_all(&[2, 0x01, 2], ALL),
            Err(DecodeError::Protocol(_))
        ));
        assert!(matches!(
            read_all(&[4, 0x01, 0, 0x01, 1], ALL),
            Err(DecodeError::Protocol(_))
        ));
        assert!(matches!(
            read_all(&[2, 0x24, 0], ALL),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            read_all(&[2, 0x7F, 0], ALL),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            read_all(&[3, 0x21, 0], ALL),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            read_all(&[5, 0x01, 0], ALL),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            read_all(&[2, 0x0B, 0], ALL),
            Err(DecodeError::Protocol(_))
        ));
    }

    #[test]
    fn interleaved_user_properties_are_joined_in_order() {
        let frame =
            Bytes::from_static(&[14, 0x26, 0, 1, b'a', 0, 0, 0x01, 1, 0x26, 0, 0, 0, 1, b'z']);
        let mut reader = Reader::new(&frame, 0);
        let mut props = PropertyReader::new(&mut reader, ALL, IdSet::EMPTY).unwrap();
        assert_eq!(props.next(), Ok(Some(Property::Byte(0x01, 1))));
        assert_eq!(props.next(), Ok(None));
        let user = props.user_properties();
        assert_eq!(user.iter().collect::<Vec<_>>(), vec![("a", ""), ("", "z")]);
    }
}
