//! One module per MQTT packet, plus the [`Packet`] sum type, the fixed header and the
//! top-level [`decode`].
//!
//! Each packet module holds the packet's struct, its `decode` from a whole frame and its
//! encoder, which first computes a `Layout` (every length, with every check that can fail)
//! and then writes each byte once. Acknowledgements that share one layout (PUBACK, PUBREC,
//! PUBREL, PUBCOMP) share [`Ack`].
//!
//! ```text
//!   decode: first byte ─► type and flags checked ─► remaining length ─► size <= max?
//!           ─► whole packet buffered? ─► split_to(size).freeze() ─► <packet>::decode(frame)
//!   encode: <packet>::layout(protocol)? ─► fixed header ─► <packet>::write(layout)
//! ```
//!
//! The decoder enforces what is decidable from one packet's bytes; what needs session
//! state (topic alias ranges, receive maximum, a second CONNECT, wildcard placement in
//! filters, a client sending a subscription identifier) is the connection's to judge.
//! Where the specification leaves room, the choices are:
//! - accepted, as Mosquitto accepts them: non-minimal variable byte integers; the bridge
//!   bit 0x80 on CONNECT levels 3 and 4; DUP on PUBREL/SUBSCRIBE/UNSUBSCRIBE from 3.1
//!   clients; AUTH with a lone reason code; control characters in strings (one switch:
//!   `validate_string` in `bytestr.rs`);
//! - Malformed: DUP on a QoS 0 PUBLISH (a reserved flag value, §2.1.3), an empty topic
//!   filter ([MQTT-4.7.3-1], as Mosquitto);
//! - Protocol Error: an empty or wildcard will topic, a reason code outside the packet's
//!   list, an empty SUBACK/UNSUBACK, authentication data without a method;
//! - the encoder writes the shortest form 5.0 allows (PUBACK `40 02 id`, DISCONNECT
//!   `e0 00`, AUTH `f0 00`) and refuses (`EncodeError::Invalid`) what its decoder would
//!   refuse, so that `decode(encode(p)) == p` for every packet it accepts.

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod subscribe;
mod unsubscribe;

pub use ack::{Ack, AckProperties};
pub use auth::{Auth, AuthProperties};
pub use connack::{ConnAck, ConnAckProperties};
pub use connect::{Connect, ConnectProperties, Will};
pub use disconnect::{Disconnect, DisconnectProperties};
pub use publish::{
    encode_publish, publish_encoded_len, MessageProperties, Publish, PublishEncode,
    PublishProperties,
};
pub use subscribe::{
    SubAck, SubAckProperties, Subscribe, SubscribeProperties, SubscriptionOptions,
};
pub use unsubscribe::{UnsubAck, Unsubscribe, UnsubscribeProperties};

use bytes::{BufMut, Bytes, BytesMut};

use crate::mqtt::wire::{self, put_varint, read_varint, varint_len};
use crate::mqtt::{ByteStr, DecodeError, EncodeError, Protocol, UserProperties};

/// The packet type, the high nibble of the first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 1, client to server.
    Connect = 1,
    /// 2, server to client.
    ConnAck = 2,
    /// 3, both directions.
    Publish = 3,
    /// 4, both directions.
    PubAck = 4,
    /// 5, both directions.
    PubRec = 5,
    /// 6, both directions.
    PubRel = 6,
    /// 7, both directions.
    PubComp = 7,
    /// 8, client to server.
    Subscribe = 8,
    /// 9, server to client.
    SubAck = 9,
    /// 10, client to server.
    Unsubscribe = 10,
    /// 11, server to client.
    UnsubAck = 11,
    /// 12, client to server.
    PingReq = 12,
    /// 13, server to client.
    PingResp = 13,
    /// 14, both directions (server to client only in 5.0).
    Disconnect = 14,
    /// 15, both directions, 5.0 only.
    Auth = 15,
}

/// Any MQTT control packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (boxed: it is large and rare).
    Connect(Box<Connect>),
    /// CONNACK (boxed, like the other rare packets with many properties, so the common
    /// packets are not moved around at their size).
    ConnAck(Box<ConnAck>),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(Ack),
    /// PUBREC.
    PubRec(Ack),
    /// PUBREL.
    PubRel(Ack),
    /// PUBCOMP.
    PubComp(Ack),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT (boxed).
    Disconnect(Box<Disconnect>),
    /// AUTH (5.0 only; boxed).
    Auth(Box<Auth>),
}

impl PacketType {
    /// The packet type named by the high nibble of a first byte; None for 0, and for 15
    /// outside MQTT 5.0 (both reserved).
    fn from_first_byte(first: u8, protocol: Option<Protocol>) -> Option<PacketType> {
        Some(match first >> 4 {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => PacketType::Publish,
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            15 if protocol == Some(Protocol::V5) => PacketType::Auth,
            _ => return None,
        })
    }

    /// The fixed-header flags every packet but PUBLISH must carry ([MQTT-2.2.2-1]).
    fn required_flags(self) -> u8 {
        match self {
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => 0b0010,
            _ => 0,
        }
    }
}

/// The sizes an encoder computes before it writes anything, so that every check that can
/// fail happens first and every byte is then written once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Remaining length: everything after the fixed header.
    pub remaining: usize,
    /// Content length of the packet's property block (5.0), without its length prefix.
    pub properties: usize,
    /// Content length of a second property block: the will properties of CONNECT.
    pub will_properties: usize,
}

impl Layout {
    /// A layout with only a remaining length (no property blocks).
    pub(crate) fn plain(remaining: usize) -> Result<Layout, EncodeError> {
        Ok(Layout {
            remaining: wire::checked_remaining(remaining)?,
            ..Layout::default()
        })
    }

    /// Size of the whole packet: first byte, remaining length, then the rest.
    pub(crate) fn total(&self) -> usize {
        1 + varint_len(self.remaining) + self.remaining
    }
}

/// Refuses a 5.0 reason code that `table` (the codes the specification lists for the
/// packet) does not hold. A reason code outside the packet's list is a Protocol Error.
pub(crate) fn check_reason_code(
    table: &[u8],
    code: u8,
    why: &'static str,
) -> Result<(), DecodeError> {
    if table.contains(&code) {
        Ok(())
    } else {
        Err(DecodeError::Protocol(why))
    }
}

/// Refuses, on the encoding side, a reason code the packet cannot carry.
pub(crate) fn check_reason_code_out(table: &[u8], code: u8) -> Result<(), EncodeError> {
    if table.contains(&code) {
        Ok(())
    } else {
        Err(EncodeError::Invalid(
            "reason code not valid for this packet",
        ))
    }
}

/// True when `text` holds a wildcard character, which a topic name must not ([MQTT-3.3.2-2]).
pub(crate) fn has_wildcard(text: &[u8]) -> bool {
    text.iter().any(|&byte| byte == b'+' || byte == b'#')
}

/// Parses only the fixed header at the front of `buf`: the first byte (type and flags),
/// the header's length (2 to 5 bytes) and the remaining length. `Ok(None)` when the header
/// is incomplete; Malformed when the remaining length would take more than 4 bytes.
/// Non-minimal remaining-length encodings are accepted, as Mosquitto accepts them.
pub fn peek_fixed_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    match read_varint(rest) {
        Ok(Some((remaining, len))) => Ok(Some((first, 1 + len, remaining))),
        Ok(None) => Ok(None),
        Err(_) => Err(DecodeError::Malformed(
            "§2.1.4 remaining length longer than 4 bytes",
        )),
    }
}

/// Decodes one packet from the front of `buf`.
///
/// - `Ok(None)`: more bytes are needed; `buf` is untouched and nothing was reserved.
/// - `Ok(Some(packet))`: the packet's bytes were split off `buf` (`split_to(n).freeze()`);
///   topic, payload and property values are slices of that one buffer.
/// - `Err(_)`: the connection must close (with the error's reason code where the protocol
///   allows one). The offending packet's bytes may have been consumed.
///
/// `protocol` is None before CONNECT: then only CONNECT is accepted, anything else is
/// [`DecodeError::NotConnect`]. With `Some(p)` packets are decoded per version `p`, except
/// CONNECT, which carries its own level. The whole packet (fixed header included) must be
/// at most `max_packet_size` bytes; this is checked from the fixed header alone, before any
/// byte of the body is awaited.
pub fn decode(
    buf: &mut BytesMut,
    protocol: Option<Protocol>,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet_type = check_first_byte(first, protocol)?;
    let Some((_, header_len, remaining)) = peek_fixed_header(buf)? else {
        return Ok(None);
    };
    let size = header_len + remaining;
    if size > max_packet_size {
        return Err(DecodeError::TooLarge {
            size,
            limit: max_packet_size,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }
    let frame = buf.split_to(size).freeze();
    debug_assert_eq!(frame.len(), size);
    decode_frame(packet_type, frame, header_len, protocol).map(Some)
}

/// Checks the first byte alone: a packet type this version has, with the flags it must
/// carry. Rejecting here refuses garbage before waiting for a remaining length.
fn check_first_byte(first: u8, protocol: Option<Protocol>) -> Result<PacketType, DecodeError> {
    if protocol.is_none() && first >> 4 != PacketType::Connect as u8 {
        return Err(DecodeError::NotConnect);
    }
    let Some(packet_type) = PacketType::from_first_byte(first, protocol) else {
        // A Protocol Error (0x82), as Mosquitto answers; 0x81 would be as correct.
        return Err(DecodeError::Protocol("§2.1.2 reserved packet type"));
    };
    if packet_type == PacketType::Publish {
        return Ok(packet_type);
    }
    let mut flags = first & 0x0F;
    // MQTT 3.1 sets DUP on a re-sent PUBREL, SUBSCRIBE or UNSUBSCRIBE (3.1 §2.1); Mosquitto
    // accepts that, and so do we.
    if protocol == Some(Protocol::V31) && packet_type.required_flags() != 0 {
        flags &= !0b1000;
    }
    if flags != packet_type.required_flags() {
        return Err(DecodeError::Malformed(
            "[MQTT-2.2.2-1] reserved fixed-header flags have the wrong value",
        ));
    }
    Ok(packet_type)
}

/// Decodes the packet in `frame`, whose fixed header (already checked) is `header_len`
/// bytes long.
fn decode_frame(
    packet_type: PacketType,
    frame: Bytes,
    header_len: usize,
    protocol: Option<Protocol>,
) -> Result<Packet, DecodeError> {
    if packet_type == PacketType::Connect {
        return Ok(Packet::Connect(Box::new(Connect::decode(
            &frame, header_len,
        )?)));
    }
    // check_first_byte refused everything but CONNECT before the protocol is known.
    let Some(protocol) = protocol else {
        return Err(DecodeError::NotConnect);
    };
    let first = frame[0];
    Ok(match packet_type {
        PacketType::Connect => return Err(DecodeError::NotConnect),
        PacketType::ConnAck => {
            Packet::ConnAck(Box::new(ConnAck::decode(&frame, header_len, protocol)?))
        }
        PacketType::Publish => {
            Packet::Publish(Publish::decode(frame, header_len, first, protocol)?)
        }
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            let ack = Ack::decode(&frame, header_len, protocol, packet_type)?;
            Ack::into_packet(packet_type, ack)
        }
        PacketType::Subscribe => {
            Packet::Subscribe(Subscribe::decode(&frame, header_len, protocol)?)
        }
        PacketType::SubAck => Packet::SubAck(SubAck::decode(&frame, header_len, protocol)?),
        PacketType::Unsubscribe => {
            Packet::Unsubscribe(Unsubscribe::decode(&frame, header_len, protocol)?)
        }
        PacketType::UnsubAck => Packet::UnsubAck(UnsubAck::decode(&frame, header_len, protocol)?),
        PacketType::PingReq | PacketType::PingResp => {
            if frame.len() != header_len {
                return Err(DecodeError::Malformed(
                    "§3.12 PINGREQ or PINGRESP with a body",
                ));
            }
            if packet_type == PacketType::PingReq {
                Packet::PingReq
            } else {
                Packet::PingResp
            }
        }
        PacketType::Disconnect => {
            Packet::Disconnect(Box::new(Disconnect::decode(&frame, header_len, protocol)?))
        }
        PacketType::Auth => Packet::Auth(Box::new(Auth::decode(&frame, header_len)?)),
    })
}

impl Packet {
    /// Removes the Reason String and User Properties, which a sender must leave out
    /// rather than exceed the receiver's Maximum Packet Size ([MQTT-3.2.2-19],
    /// [MQTT-3.4.2-2], [MQTT-3.9.2-1], [MQTT-3.11.2-1], [MQTT-3.14.2-3], [MQTT-3.15.2-2]).
    /// Returns false when the packet has none to remove.
    pub fn drop_optional_properties(&mut self) -> bool {
        fn take(reason: &mut Option<ByteStr>, user: &mut UserProperties) -> bool {
            let had = reason.is_some() || !user.is_empty();
            *reason = None;
            *user = UserProperties::new();
            had
        }
        match self {
            Packet::ConnAck(p) => take(
                &mut p.properties.reason_string,
                &mut p.properties.user_properties,
            ),
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => take(
                &mut p.properties.reason_string,
                &mut p.properties.user_properties,
            ),
            Packet::SubAck(p) => take(
                &mut p.properties.reason_string,
                &mut p.properties.user_properties,
            ),
            Packet::UnsubAck(p) => take(
                &mut p.properties.reason_string,
                &mut p.properties.user_properties,
            ),
            Packet::Disconnect(p) => take(
                &mut p.properties.reason_string,
                &mut p.properties.user_properties,
            ),
            Packet::Auth(p) => take(
                &mut p.properties.reason_string,
                &mut p.properties.user_properties,
            ),
            _ => false,
        }
    }

    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    /// Appends the packet as version `protocol` writes it. CONNECT is written at its own
    /// `Connect::protocol` level. For 3.1/3.1.1, 5.0-only fields (properties, reason codes
    /// other than the CONNACK return code) are left out; AUTH is `EncodeError::Invalid`.
    /// On error nothing was written.
    pub fn encode(&self, protocol: Protocol, out: &mut BytesMut) -> Result<(), EncodeError> {
        if let Packet::Publish(publish) = self {
            encode_publish(protocol, &publish.as_encode(), out)?;
            return Ok(());
        }
        let layout = self.layout(protocol)?;
        let total = layout.total();
        out.reserve(total);
        let start = out.len();
        let packet_type = self.packet_type();
        out.put_u8(((packet_type as u8) << 4) | packet_type.required_flags());
        put_varint(out, layout.remaining);
        self.write_body(protocol, &layout, out);
        assert_eq!(
            out.len() - start,
            total,
            "{packet_type:?} layout and writer disagree"
        );
        Ok(())
    }

    /// Size of the whole packet `encode` would write, fixed header included.
    pub fn encoded_len(&self, protocol: Protocol) -> Result<usize, EncodeError> {
        if let Packet::Publish(publish) = self {
            return publish_encoded_len(protocol, &publish.as_encode());
        }
        Ok(self.layout(protocol)?.total())
    }

    fn layout(&self, protocol: Protocol) -> Result<Layout, EncodeError> {
        match self {
            Packet::Connect(connect) => connect.layout(),
            Packet::ConnAck(connack) => connack.layout(protocol),
            Packet::Publish(publish) => publish.layout(protocol),
            Packet::PubAck(ack)
            | Packet::PubRec(ack)
            | Packet::PubRel(ack)
            | Packet::PubComp(ack) => ack.layout(protocol, self.packet_type()),
            Packet::Subscribe(subscribe) => subscribe.layout(protocol),
            Packet::SubAck(suback) => suback.layout(protocol),
            Packet::Unsubscribe(unsubscribe) => unsubscribe.layout(protocol),
            Packet::UnsubAck(unsuback) => unsuback.layout(protocol),
            Packet::PingReq | Packet::PingResp => Layout::plain(0),
            Packet::Disconnect(disconnect) => disconnect.layout(protocol),
            Packet::Auth(auth) => auth.layout(protocol),
        }
    }

    fn write_body(&self, protocol: Protocol, layout: &Layout, out: &mut BytesMut) {
        match self {
            Packet::Connect(connect) => connect.write(layout, out),
            Packet::ConnAck(connack) => connack.write(protocol, layout, out),
            // Publish is written by encode_publish, which has its own fixed header.
            Packet::Publish(_) | Packet::PingReq | Packet::PingResp => {}
            Packet::PubAck(ack)
            | Packet::PubRec(ack)
            | Packet::PubRel(ack)
            | Packet::PubComp(ack) => ack.write(protocol, layout, out),
            Packet::Subscribe(subscribe) => subscribe.write(protocol, layout, out),
            Packet::SubAck(suback) => suback.write(protocol, layout, out),
            Packet::Unsubscribe(unsubscribe) => unsubscribe.write(protocol, layout, out),
            Packet::UnsubAck(unsuback) => unsuback.write(protocol, layout, out),
            Packet::Disconnect(disconnect) => disconnect.write(protocol, layout, out),
            Packet::Auth(auth) => auth.write(layout, out),
        }
    }
}

#[cfg(test)]
mod differential_test;
#[cfg(test)]
mod fuzz_test;
#[cfg(test)]
mod golden_test;
#[cfg(test)]
mod malformed_test;
#[cfg(test)]
mod roundtrip_test;
#[cfg(test)]
mod strategy_test;
