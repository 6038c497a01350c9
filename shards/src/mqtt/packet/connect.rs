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

use bytes::{BufMut, BytesMut};

use super::{has_wildcard, Layout};
use crate::mqtt::properties::{block_len, id, prop_len, put_prop, IdSet, Property};
use crate::mqtt::properties::{PropertyReader, UNEXPECTED};
use crate::mqtt::wire::{self, put_varint, Reader};
use crate::mqtt::{DecodeError, EncodeError};

/// Properties CONNECT may carry (§3.1.2.11).
const CONNECT_PROPERTIES: IdSet = IdSet::of(&[
    id::SESSION_EXPIRY_INTERVAL,
    id::RECEIVE_MAXIMUM,
    id::MAXIMUM_PACKET_SIZE,
    id::TOPIC_ALIAS_MAXIMUM,
    id::REQUEST_RESPONSE_INFORMATION,
    id::REQUEST_PROBLEM_INFORMATION,
    id::USER_PROPERTY,
    id::AUTHENTICATION_METHOD,
    id::AUTHENTICATION_DATA,
]);

/// Properties of the will message (§3.1.3.2).
const WILL_PROPERTIES: IdSet = IdSet::of(&[
    id::WILL_DELAY_INTERVAL,
    id::PAYLOAD_FORMAT_INDICATOR,
    id::MESSAGE_EXPIRY_INTERVAL,
    id::CONTENT_TYPE,
    id::RESPONSE_TOPIC,
    id::CORRELATION_DATA,
    id::USER_PROPERTY,
]);

/// The Connect Flags byte (§3.1.2.3).
mod flag {
    pub const RESERVED: u8 = 0x01;
    pub const CLEAN_START: u8 = 0x02;
    pub const WILL: u8 = 0x04;
    pub const WILL_QOS_SHIFT: u8 = 3;
    pub const WILL_QOS: u8 = 0x18;
    pub const WILL_RETAIN: u8 = 0x20;
    pub const PASSWORD: u8 = 0x40;
    pub const USERNAME: u8 = 0x80;
}

/// The bit Mosquitto bridges set in the protocol level of 3.1 and 3.1.1 ("try_private").
const BRIDGE_LEVEL_BIT: u8 = 0x80;

/// The protocol name each level writes.
fn protocol_name(protocol: Protocol) -> &'static [u8] {
    match protocol {
        Protocol::V31 => b"MQIsdp",
        Protocol::V311 | Protocol::V5 => b"MQTT",
    }
}

impl Connect {
    /// Decodes CONNECT from `frame` after its fixed header, at the level it names.
    pub(crate) fn decode(frame: &Bytes, header_len: usize) -> Result<Connect, DecodeError> {
        let mut reader = Reader::new(frame, header_len);
        let protocol = read_protocol(&mut reader)?;
        let flags = reader.u8()?;
        check_flags(flags, protocol)?;
        let keep_alive = reader.u16()?;
        let properties = if protocol.is_v5() {
            ConnectProperties::decode(&mut reader)?
        } else {
            ConnectProperties::default()
        };
        let client_id = reader.string()?;
        let will = match flags & flag::WILL {
            0 => None,
            _ => Some(Will::decode(&mut reader, flags, protocol)?),
        };
        let username = match flags & flag::USERNAME {
            0 => None,
            _ => Some(reader.string()?),
        };
        let password = match flags & flag::PASSWORD {
            0 => None,
            _ => Some(reader.binary()?),
        };
        reader.finish("§3.1.3 CONNECT longer than its fields")?;
        Ok(Connect {
            protocol,
            clean_start: flags & flag::CLEAN_START != 0,
            keep_alive,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    /// Sizes CONNECT at its own level, with the checks its decoder makes.
    pub(crate) fn layout(&self) -> Result<Layout, EncodeError> {
        let v5 = self.protocol.is_v5();
        let mut remaining = 2 + protocol_name(self.protocol).len() + 1 + 1 + 2;
        let mut layout = Layout::default();
        if v5 {
            layout.properties = self.properties.content_len()?;
            remaining += block_len(layout.properties)?;
        }
        remaining += wire::string_len(self.client_id.len())?;
        if let Some(will) = &self.will {
            if v5 {
                layout.will_properties = will.properties_len()?;
                remaining += block_len(layout.will_properties)?;
            }
            remaining += will.len()?;
        }
        if let Some(username) = &self.username {
            remaining += wire::string_len(username.len())?;
        }
        if let Some(password) = &self.password {
            if !v5 && self.username.is_none() {
                return Err(EncodeError::Invalid(
                    "password without user name before 5.0",
                ));
            }
            remaining += wire::string_len(password.len())?;
        }
        layout.remaining = wire::checked_remaining(remaining)?;
        Ok(layout)
    }

    /// The Connect Flags byte.
    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= flag::CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= flag::WILL | ((will.qos as u8) << flag::WILL_QOS_SHIFT);
            if will.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USERNAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        flags
    }

    /// Writes the body sized by `layout`.
    pub(crate) fn write(&self, layout: &Layout, out: &mut BytesMut) {
        wire::put_string(out, protocol_name(self.protocol));
        out.put_u8(self.protocol.level());
        out.put_u8(self.flags());
        out.put_u16(self.keep_alive);
        if self.protocol.is_v5() {
            put_varint(out, layout.properties);
            self.properties.write(out);
        }
        wire::put_string(out, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            if self.protocol.is_v5() {
                put_varint(out, layout.will_properties);
                will.write_properties(out);
            }
            wire::put_string(out, will.topic.as_bytes());
            wire::put_string(out, &will.payload);
        }
        if let Some(username) = &self.username {
            wire::put_string(out, username.as_bytes());
        }
        if let Some(password) = &self.password {
            wire::put_string(out, password);
        }
    }
}

/// Reads the protocol name and level. A name other than `MQTT` or `MQIsdp` closes the
/// connection without CONNACK ([MQTT-3.1.2-1]); a level the name does not have gets
/// CONNACK 0x01/0x84 ([MQTT-3.1.2-2]). The bridge bit 0x80 is accepted on levels 3 and 4.
fn read_protocol(reader: &mut Reader<'_>) -> Result<Protocol, DecodeError> {
    let name = reader.binary()?;
    let is_mqtt = match &name[..] {
        b"MQTT" => true,
        b"MQIsdp" => false,
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    let level = reader.u8()?;
    match (
        is_mqtt,
        level & !BRIDGE_LEVEL_BIT,
        level & BRIDGE_LEVEL_BIT != 0,
    ) {
        (false, 3, _) => Ok(Protocol::V31),
        (true, 4, _) => Ok(Protocol::V311),
        (true, 5, false) => Ok(Protocol::V5),
        _ => Err(DecodeError::UnsupportedProtocolVersion(level)),
    }
}

/// Checks the Connect Flags byte on its own (§3.1.2.3 to §3.1.2.9).
fn check_flags(flags: u8, protocol: Protocol) -> Result<(), DecodeError> {
    // MQTT 3.1 calls bit 0 unused and does not ask the server to check it (Mosquitto
    // ignores it there); 3.1.1 and 5.0 require it to be 0.
    if flags & flag::RESERVED != 0 && protocol != Protocol::V31 {
        return Err(DecodeError::Malformed(
            "[MQTT-3.1.2-3] reserved connect flag set",
        ));
    }
    let will_qos = (flags & flag::WILL_QOS) >> flag::WILL_QOS_SHIFT;
    if flags & flag::WILL != 0 {
        if will_qos == 3 {
            return Err(DecodeError::Malformed("[MQTT-3.1.2-12] will QoS 3"));
        }
    } else {
        if will_qos != 0 {
            return Err(DecodeError::Malformed(
                "[MQTT-3.1.2-11] will QoS without will flag",
            ));
        }
        if flags & flag::WILL_RETAIN != 0 {
            return Err(DecodeError::Malformed(
                "[MQTT-3.1.2-13] will retain without will flag",
            ));
        }
    }
    if !protocol.is_v5() && flags & flag::PASSWORD != 0 && flags & flag::USERNAME == 0 {
        return Err(DecodeError::Malformed(
            "[MQTT-3.1.2-22] password without user name",
        ));
    }
    Ok(())
}

impl Will {
    /// Decodes the will properties (5.0), topic and payload; `flags` carry QoS and retain.
    fn decode(reader: &mut Reader<'_>, flags: u8, protocol: Protocol) -> Result<Will, DecodeError> {
        let mut delay_interval = None;
        let mut properties = PublishProperties::default();
        if protocol.is_v5() {
            let mut props = PropertyReader::new(reader, WILL_PROPERTIES, IdSet::EMPTY)?;
            while let Some(property) = props.next()? {
                match property {
                    Property::FourByte(id::WILL_DELAY_INTERVAL, v) => delay_interval = Some(v),
                    other => properties.set(other, props.users_read())?,
                }
            }
            properties.user_properties = props.user_properties();
        }
        let topic = reader.string()?;
        if topic.is_empty() {
            return Err(DecodeError::Protocol("[MQTT-4.7.3-1] empty will topic"));
        }
        if has_wildcard(topic.as_bytes()) {
            return Err(DecodeError::Protocol("§4.7.1 wildcard in will topic"));
        }
        let payload = reader.binary()?;
        let qos = QoS::from_u8((flags & flag::WILL_QOS) >> flag::WILL_QOS_SHIFT);
        Ok(Will {
            topic,
            payload,
            // check_flags refused QoS 3 already.
            qos: qos.ok_or(DecodeError::Malformed("[MQTT-3.1.2-12] will QoS 3"))?,
            retain: flags & flag::WILL_RETAIN != 0,
            delay_interval,
            properties,
        })
    }

    /// Size of topic and payload, with the checks the decoder makes on the topic.
    fn len(&self) -> Result<usize, EncodeError> {
        if self.topic.is_empty() || has_wildcard(self.topic.as_bytes()) {
            return Err(EncodeError::Invalid("will topic empty or with a wildcard"));
        }
        Ok(wire::string_len(self.topic.len())? + wire::string_len(self.payload.len())?)
    }

    /// Content length of the will property block.
    fn properties_len(&self) -> Result<usize, EncodeError> {
        let p = &self.properties;
        if p.topic_alias.is_some() || !p.subscription_identifiers.is_empty() {
            return Err(EncodeError::Invalid(
                "topic alias or subscription id in a will",
            ));
        }
        Ok(prop_len(self.delay_interval.as_ref())?
            + prop_len(p.message_expiry_interval.as_ref())?
            + p.shared_len()?)
    }

    fn write_properties(&self, out: &mut BytesMut) {
        put_prop(out, id::WILL_DELAY_INTERVAL, self.delay_interval.as_ref());
        put_prop(
            out,
            id::MESSAGE_EXPIRY_INTERVAL,
            self.properties.message_expiry_interval.as_ref(),
        );
        self.properties.write_shared(out);
    }
}

impl ConnectProperties {
    fn decode(reader: &mut Reader<'_>) -> Result<ConnectProperties, DecodeError> {
        let mut props = PropertyReader::new(reader, CONNECT_PROPERTIES, IdSet::EMPTY)?;
        let mut out = ConnectProperties::default();
        while let Some(property) = props.next()? {
            out.set(property)?;
        }
        out.user_properties = props.user_properties();
        if out.authentication_data.is_some() && out.authentication_method.is_none() {
            return Err(DecodeError::Protocol(
                "§3.1.2.11.10 authentication data without authentication method",
            ));
        }
        Ok(out)
    }

    fn set(&mut self, property: Property) -> Result<(), DecodeError> {
        match property {
            Property::FourByte(id::SESSION_EXPIRY_INTERVAL, v) => {
                self.session_expiry_interval = Some(v);
            }
            Property::TwoByte(id::RECEIVE_MAXIMUM, v) => self.receive_maximum = Some(v),
            Property::FourByte(id::MAXIMUM_PACKET_SIZE, v) => self.maximum_packet_size = Some(v),
            Property::TwoByte(id::TOPIC_ALIAS_MAXIMUM, v) => self.topic_alias_maximum = Some(v),
            Property::Byte(id::REQUEST_RESPONSE_INFORMATION, v) => {
                self.request_response_information = Some(v);
            }
            Property::Byte(id::REQUEST_PROBLEM_INFORMATION, v) => {
                self.request_problem_information = Some(v);
            }
            Property::String(id::AUTHENTICATION_METHOD, v) => {
                self.authentication_method = Some(v);
            }
            Property::Binary(id::AUTHENTICATION_DATA, v) => self.authentication_data = Some(v),
            _ => return Err(UNEXPECTED),
        }
        Ok(())
    }

    fn content_len(&self) -> Result<usize, EncodeError> {
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(EncodeError::Invalid("authentication data without method"));
        }
        Ok(prop_len(self.session_expiry_interval.as_ref())?
            + prop_len(self.receive_maximum.as_ref())?
            + prop_len(self.maximum_packet_size.as_ref())?
            + prop_len(self.topic_alias_maximum.as_ref())?
            + prop_len(self.request_response_information.as_ref())?
            + prop_len(self.request_problem_information.as_ref())?
            + self.user_properties.wire_len()
            + prop_len(self.authentication_method.as_ref())?
            + prop_len(self.authentication_data.as_ref())?)
    }

    fn write(&self, out: &mut BytesMut) {
        put_prop(
            out,
            id::SESSION_EXPIRY_INTERVAL,
            self.session_expiry_interval.as_ref(),
        );
        put_prop(out, id::RECEIVE_MAXIMUM, self.receive_maximum.as_ref());
        put_prop(
            out,
            id::MAXIMUM_PACKET_SIZE,
            self.maximum_packet_size.as_ref(),
        );
        put_prop(
            out,
            id::TOPIC_ALIAS_MAXIMUM,
            self.topic_alias_maximum.as_ref(),
        );
        put_prop(
            out,
            id::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information.as_ref(),
        );
        put_prop(
            out,
            id::REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information.as_ref(),
        );
        out.put_slice(self.user_properties.wire());
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
    }
}
