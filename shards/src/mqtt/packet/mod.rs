//! One module per MQTT packet, plus the [`Packet`] sum type and the top-level [`decode`].
//!
//! Each packet module holds the packet's struct, its `decode` from a fixed header and body,
//! and its `encode` into a `BytesMut`. Acknowledgements that share one layout (PUBACK,
//! PUBREC, PUBREL, PUBCOMP) share [`Ack`].

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
pub use publish::{Publish, PublishEncode, PublishProperties};
pub use subscribe::{SubAck, SubAckProperties, Subscribe, SubscribeProperties, SubscriptionOptions};
pub use unsubscribe::{UnsubAck, Unsubscribe, UnsubscribeProperties};

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
    /// CONNACK.
    ConnAck(ConnAck),
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
    /// DISCONNECT.
    Disconnect(Disconnect),
    /// AUTH (5.0 only).
    Auth(Auth),
}
