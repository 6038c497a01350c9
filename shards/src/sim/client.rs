//! The simulated clients: what they send (chosen by the seed's random source), what they
//! have received and not answered yet, and their connections.
//!
//! Each client behaves as a correct MQTT client would, with randomness only in its
//! choices: it answers only packets it really received on its current connection, uses
//! its own packet ids, and forgets unanswered packets when its connection is lost (the
//! broker resends what the session still holds).

use super::node::Node;
use super::rng::Rng;
use crate::connection::ConnId;
use crate::mqtt::{
    Ack, ByteStr, Bytes, Connect, ConnectProperties, Disconnect, Packet, PacketId, Protocol,
    Publish, PublishProperties, QoS, Subscribe, SubscribeProperties, SubscriptionOptions,
    Unsubscribe, UserProperties, Will,
};
use crate::state::EXPIRY_NEVER;

/// Topics clients publish to (wills included).
const TOPICS: &[&str] = &["a/b", "a/c", "b/c", "x/y/z", "a/b/c", "r/1", "r/2"];

/// Filters clients subscribe to.
const FILTERS: &[&str] = &[
    "a/b",
    "a/+",
    "a/#",
    "#",
    "b/c",
    "x/y/z",
    "r/+",
    "+/b/#",
    "$share/g/a/b",
    "$share/h/r/+",
];

/// One of `list`, for the life of the program.
fn pick_str(rng: &mut Rng, list: &[&'static str]) -> &'static str {
    list[rng.below(list.len())]
}

/// One simulated client.
struct Client {
    id: &'static str,
    /// (shard, connection) while connected.
    conn: Option<(usize, ConnId)>,
    protocol: Protocol,
    /// Packets received on this connection and not answered yet, oldest first.
    unanswered: Vec<Packet>,
    next_packet_id: u16,
}

/// Every simulated client.
pub struct Clients {
    list: Vec<Client>,
}

const IDS: &[&str] = &["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];

impl Clients {
    /// Between four and ten clients.
    pub fn new(rng: &mut Rng) -> Clients {
        let count = 4 + rng.below(IDS.len() - 3);
        let list = IDS[..count]
            .iter()
            .map(|id| Client {
                id,
                conn: None,
                protocol: Protocol::V311,
                unanswered: Vec::new(),
                next_packet_id: 0,
            })
            .collect();
        Clients { list }
    }

    /// One client does one thing.
    pub fn act(&mut self, rng: &mut Rng, node: &mut Node) -> Result<(), String> {
        let index = rng.below(self.list.len());
        let client = &mut self.list[index];
        match client.conn {
            None => client.connect(rng, node),
            Some((shard, id)) => match rng.below(100) {
                0..=19 => client.subscribe(rng, node, shard, id),
                20..=27 => client.unsubscribe(rng, node, shard, id),
                28..=59 => client.publish(rng, node, shard, id),
                60..=84 => client.answer(rng, node, shard, id),
                85..=89 => client.disconnect(rng, node, shard, id),
                90..=94 => {
                    node.close(shard, id);
                    client.lost();
                    Ok(())
                }
                _ => client.connect(rng, node),
            },
        }
    }

    /// Every connected client reads what the broker wrote it; a connection the broker
    /// closed is lost.
    pub fn receive(&mut self, node: &mut Node) {
        for client in &mut self.list {
            let Some((shard, id)) = client.conn else {
                continue;
            };
            if !node.is_open(shard, id) {
                client.lost();
                continue;
            }
            for packet in node.take(shard, id) {
                if let Packet::Publish(p) = &packet {
                    if p.qos == QoS::AtMostOnce {
                        continue;
                    }
                }
                if matches!(
                    packet,
                    Packet::Publish(_) | Packet::PubRel(_) | Packet::PubRec(_)
                ) {
                    client.unanswered.push(packet);
                }
            }
        }
    }

    /// The broker crashed: every connection is gone.
    pub fn lost_connections(&mut self) {
        for client in &mut self.list {
            client.lost();
        }
    }
}

impl Client {
    fn lost(&mut self) {
        self.conn = None;
        self.unanswered.clear();
    }

    fn packet_id(&mut self) -> PacketId {
        self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
        PacketId::new(self.next_packet_id).unwrap_or(PacketId::MIN)
    }

    /// Connects (a takeover when already connected): 3.1.1 or 5.0, clean or not, a
    /// session expiry, maybe a will.
    fn connect(&mut self, rng: &mut Rng, node: &mut Node) -> Result<(), String> {
        let protocol = *rng.pick(&[Protocol::V311, Protocol::V5]);
        let clean_start = rng.chance(40);
        let mut properties = ConnectProperties::default();
        if protocol.is_v5() {
            let expiry = *rng.pick(&[0, 0, 30, 300, EXPIRY_NEVER]);
            properties.session_expiry_interval = Some(expiry).filter(|e| *e != 0);
        }
        let will = rng.chance(25).then(|| Will {
            topic: ByteStr::from_static(pick_str(rng, TOPICS)),
            payload: Bytes::from_static(b"will"),
            qos: *rng.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]),
            retain: rng.chance(20),
            delay_interval: protocol.is_v5().then(|| *rng.pick(&[0, 5, 30])),
            properties: PublishProperties::default(),
        });
        let connect = Connect {
            protocol,
            clean_start,
            keep_alive: 0,
            properties,
            client_id: ByteStr::from_static(self.id),
            will,
            username: None,
            password: None,
        };
        let accepting = rng.below(node.shards.len());
        let (shard, id) = node
            .connect(accepting, connect)
            .map_err(|refusal| format!("{} refused: {}", self.id, refusal.log))?;
        self.conn = Some((shard, id));
        self.protocol = protocol;
        self.unanswered.clear();
        Ok(())
    }

    fn subscribe(
        &mut self,
        rng: &mut Rng,
        node: &mut Node,
        shard: usize,
        id: ConnId,
    ) -> Result<(), String> {
        let v5 = self.protocol.is_v5();
        let filter = pick_str(rng, FILTERS);
        let shared = filter.starts_with("$share/");
        let options = SubscriptionOptions {
            qos: *rng.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]),
            no_local: v5 && !shared && rng.chance(10),
            retain_as_published: v5 && rng.chance(20),
            retain_handling: if v5 { rng.below(3) as u8 } else { 0 },
        };
        let properties = SubscribeProperties {
            subscription_identifier: (v5 && rng.chance(30)).then(|| 1 + rng.below(100) as u32),
            ..Default::default()
        };
        let subscribe = Subscribe {
            packet_id: self.packet_id(),
            properties,
            filters: vec![(ByteStr::from_static(filter), options)],
        };
        let _ = node.handle(shard, id, Packet::Subscribe(subscribe));
        Ok(())
    }

    fn unsubscribe(
        &mut self,
        rng: &mut Rng,
        node: &mut Node,
        shard: usize,
        id: ConnId,
    ) -> Result<(), String> {
        let unsubscribe = Unsubscribe {
            packet_id: self.packet_id(),
            properties: Default::default(),
            filters: vec![ByteStr::from_static(pick_str(rng, FILTERS))],
        };
        let _ = node.handle(shard, id, Packet::Unsubscribe(unsubscribe));
        Ok(())
    }

    fn publish(
        &mut self,
        rng: &mut Rng,
        node: &mut Node,
        shard: usize,
        id: ConnId,
    ) -> Result<(), String> {
        let qos = *rng.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]);
        let retain = rng.chance(15);
        let payload: &'static [u8] = if retain && rng.chance(25) {
            b""
        } else {
            const PAYLOADS: [&[u8]; 3] = [b"p", b"payload", b"a longer payload of bytes"];
            PAYLOADS[rng.below(PAYLOADS.len())]
        };
        let mut properties = PublishProperties::default();
        if self.protocol.is_v5() {
            if rng.chance(15) {
                properties.message_expiry_interval = Some(1 + rng.below(20) as u32);
            }
            if rng.chance(15) {
                properties.user_properties = UserProperties::from_pairs([("k", "v")]);
                properties.content_type = Some(ByteStr::from_static("text/plain"));
            }
        }
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: ByteStr::from_static(pick_str(rng, TOPICS)),
            packet_id: (qos != QoS::AtMostOnce).then(|| self.packet_id()),
            properties: properties.into(),
            payload: Bytes::from_static(payload),
        };
        let _ = node.handle(shard, id, Packet::Publish(publish));
        Ok(())
    }

    /// Answers some of what it received, oldest first, as a correct client does.
    fn answer(
        &mut self,
        rng: &mut Rng,
        node: &mut Node,
        shard: usize,
        id: ConnId,
    ) -> Result<(), String> {
        let count = rng.below(self.unanswered.len() + 1);
        let answering: Vec<Packet> = self.unanswered.drain(..count).collect();
        for packet in answering {
            let reply = |packet_id| Ack {
                packet_id,
                reason_code: 0,
                properties: Default::default(),
            };
            let answer = match packet {
                Packet::Publish(p) => match (p.qos, p.packet_id) {
                    (QoS::AtLeastOnce, Some(pid)) => Packet::PubAck(reply(pid)),
                    (QoS::ExactlyOnce, Some(pid)) => Packet::PubRec(reply(pid)),
                    _ => continue,
                },
                Packet::PubRel(ack) => Packet::PubComp(reply(ack.packet_id)),
                Packet::PubRec(ack) => Packet::PubRel(reply(ack.packet_id)),
                _ => continue,
            };
            if !node.is_open(shard, id) {
                break;
            }
            let _ = node.handle(shard, id, answer);
        }
        Ok(())
    }

    /// DISCONNECT (5.0: sometimes changing the session expiry, or asking for the will).
    fn disconnect(
        &mut self,
        rng: &mut Rng,
        node: &mut Node,
        shard: usize,
        id: ConnId,
    ) -> Result<(), String> {
        let mut disconnect = Disconnect::default();
        if self.protocol.is_v5() {
            if rng.chance(10) {
                disconnect.reason_code = crate::mqtt::reason::DISCONNECT_WITH_WILL_MESSAGE;
            }
            let persistent = node.shards[shard]
                .conn(id)
                .and_then(|conn| conn.session)
                .and_then(|key| node.shards[shard].store.get(key))
                .is_some_and(|session| session.is_persistent());
            if persistent && rng.chance(30) {
                disconnect.properties.session_expiry_interval = Some(*rng.pick(&[0, 60]));
            }
        }
        let _ = node.handle(shard, id, Packet::Disconnect(Box::new(disconnect)));
        node.close(shard, id);
        self.lost();
        Ok(())
    }
}
