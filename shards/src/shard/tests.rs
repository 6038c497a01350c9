//! Shard protocol tests without sockets: CONNECT and packets in, the bytes the shard
//! encoded for each connection decoded back out. Each test states the rule it checks.

use super::{Accepted, Flow, Now, Shard};
use crate::access::{AccessPolicy, ListenerAccess};
use crate::connection::ConnId;
use crate::mesh::{Mesh, MeshPort};
use crate::mqtt::{
    self, reason, Ack, ByteStr, Bytes, Connect, ConnectProperties, Packet, PacketId, Protocol,
    Publish, PublishEncode, QoS, Subscribe, SubscribeProperties, SubscriptionOptions, Unsubscribe,
    UnsubscribeProperties, Will,
};
use crate::settings::{ListenerSettings, Settings};
use crate::stats::ShardStats;
use bytes::BytesMut;
use std::sync::Arc;

/// A shard (or several sharing one mesh) driven by hand.
struct World {
    shards: Vec<Shard>,
    now: Now,
}

fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.listeners.push(ListenerSettings::plain(
        "127.0.0.1:1883".parse().expect("address"),
    ));
    settings
}

impl World {
    fn new(count: usize) -> World {
        World::with(count, settings())
    }

    fn with(count: usize, settings: Settings) -> World {
        let mesh = Mesh::new(count);
        let stats: Arc<[ShardStats]> = (0..count).map(|_| ShardStats::default()).collect();
        let settings = Arc::new(settings);
        let listeners = settings.listeners.len().max(1);
        let shards = (0..count)
            .map(|id| {
                let open = (0..listeners).map(|_| ListenerAccess {
                    allow_anonymous: true,
                    ..Default::default()
                });
                Shard::new(
                    MeshPort::new(mesh.clone(), id as u8),
                    settings.clone(),
                    Arc::new(AccessPolicy::open(open.collect())),
                    stats.clone(),
                )
            })
            .collect();
        let mut world = World {
            shards,
            now: Now {
                unix_s: 1_000_000,
                mono_ms: 1_000,
            },
        };
        world.set_now();
        world
    }

    fn set_now(&mut self) {
        for shard in &mut self.shards {
            shard.now = self.now;
        }
    }

    fn advance(&mut self, seconds: u64) {
        self.now.unix_s += seconds;
        self.now.mono_ms += seconds * 1000;
        self.set_now();
        for shard in &mut self.shards {
            shard.tick();
        }
        self.pump();
    }

    /// Connects through admission on shard 0 and opening on the home shard.
    fn connect(&mut self, connect: Connect) -> (usize, ConnId, Vec<Packet>) {
        self.connect_on(0, connect)
    }

    /// [`World::connect`] through listener `listener`.
    fn connect_on(&mut self, listener: usize, connect: Connect) -> (usize, ConnId, Vec<Packet>) {
        let accepted = Accepted {
            listener,
            peer: "127.0.0.1:40000".parse().expect("peer"),
            certificate_username: None,
        };
        let (request, home) = match self.shards[0].admit(&accepted, Box::new(connect)) {
            Ok(admitted) => admitted,
            Err(refusal) => panic!("refused: {}", refusal.log),
        };
        let home = usize::from(home);
        let id = self.shards[home].open(accepted, request);
        self.pump();
        let out = self.take(home, id);
        (home, id, out)
    }

    fn send(&mut self, shard: usize, id: ConnId, packet: Packet) {
        let _ = self.send_flow(shard, id, packet);
    }

    fn send_flow(&mut self, shard: usize, id: ConnId, packet: Packet) -> Flow {
        let flow = self.shards[shard].handle(id, packet);
        self.pump();
        flow
    }

    /// Delivers mesh messages until every ring is empty.
    fn pump(&mut self) {
        loop {
            let mut moved = 0;
            for index in 0..self.shards.len() {
                self.shards[index].end_turn();
                self.shards[index].mesh.flush_overflow();
                let receiver = MeshPort::new(mesh_of(&self.shards[index]), index as u8);
                let shard = &mut self.shards[index];
                moved += receiver.drain(usize::MAX, |msg| {
                    shard.on_mesh(msg);
                    true
                });
            }
            if moved == 0 {
                return;
            }
        }
    }

    /// Decodes and clears what the shard encoded for `id`.
    fn take(&mut self, shard: usize, id: ConnId) -> Vec<Packet> {
        let Some(conn) = self.shards[shard].conn_mut(id) else {
            return Vec::new();
        };
        let protocol = conn.protocol;
        let mut out = conn.out.split();
        let mut packets = Vec::new();
        while let Some(packet) =
            mqtt::decode(&mut out, Some(protocol), usize::MAX).expect("shard wrote a valid packet")
        {
            packets.push(packet);
        }
        assert!(out.is_empty());
        packets
    }

    fn close(&mut self, shard: usize, id: ConnId) {
        self.shards[shard].closed(id);
        self.pump();
    }
}

fn mesh_of(shard: &Shard) -> Arc<Mesh> {
    shard.mesh.mesh_handle()
}

fn connect(protocol: Protocol, client_id: &'static str, clean_start: bool) -> Connect {
    Connect {
        protocol,
        clean_start,
        keep_alive: 60,
        properties: ConnectProperties::default(),
        client_id: ByteStr::from_static(client_id),
        will: None,
        username: None,
        password: None,
    }
}

fn persistent_v5(client_id: &'static str, clean_start: bool) -> Connect {
    let mut c = connect(Protocol::V5, client_id, clean_start);
    c.properties.session_expiry_interval = Some(3600);
    c
}

fn pid(n: u16) -> PacketId {
    PacketId::new(n).expect("non-zero")
}

fn subscribe(id: u16, filter: &'static str, qos: QoS) -> Packet {
    subscribe_with(
        id,
        filter,
        SubscriptionOptions {
            qos,
            ..Default::default()
        },
        None,
    )
}

fn subscribe_with(
    id: u16,
    filter: &'static str,
    options: SubscriptionOptions,
    identifier: Option<u32>,
) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(id),
        properties: SubscribeProperties {
            subscription_identifier: identifier,
            ..Default::default()
        },
        filters: vec![(ByteStr::from_static(filter), options)],
    })
}

fn publish(
    topic: &'static str,
    payload: &'static str,
    qos: QoS,
    packet_id: Option<u16>,
    retain: bool,
) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: ByteStr::from_static(topic),
        packet_id: packet_id.map(pid),
        properties: Default::default(),
        payload: Bytes::from_static(payload.as_bytes()),
    })
}

fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(publish) => Some(publish),
            _ => None,
        })
        .collect()
}

fn payloads(packets: &[Packet]) -> Vec<String> {
    publishes(packets)
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect()
}

#[test]
fn v5_connack_announces_mosquitto_limits_and_assigned_ids() {
    let mut world = World::new(1);
    let (_, _, out) = world.connect(connect(Protocol::V5, "", true));
    let Packet::ConnAck(connack) = &out[0] else {
        panic!("expected CONNACK, got {out:?}")
    };
    assert_eq!(connack.reason_code, reason::SUCCESS);
    assert!(!connack.session_present);
    assert_eq!(connack.properties.receive_maximum, Some(20));
    assert_eq!(connack.properties.topic_alias_maximum, Some(10));
    let assigned = connack
        .properties
        .assigned_client_identifier
        .as_ref()
        .expect("assigned id");
    assert!(assigned.starts_with("auto-"), "{assigned}");
}

#[test]
fn qos1_flow_delivers_with_packet_id_and_completes_on_puback() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(connect(Protocol::V311, "sub", true));
    let (p, publisher, _) = world.connect(connect(Protocol::V311, "pub", true));
    world.send(s, sub, subscribe(1, "a/+", QoS::AtLeastOnce));
    assert!(matches!(world.take(s, sub)[..], [Packet::SubAck(ref ack)] if ack.reason_codes == [1]));
    world.send(
        p,
        publisher,
        publish("a/b", "x", QoS::AtLeastOnce, Some(7), false),
    );
    assert!(
        matches!(world.take(p, publisher)[..], [Packet::PubAck(ref ack)] if ack.packet_id == pid(7))
    );
    let got = world.take(s, sub);
    let delivered = publishes(&got);
    assert_eq!(delivered.len(), 1);
    let packet_id = delivered[0].packet_id.expect("QoS 1 carries a packet id");
    assert_eq!(delivered[0].qos, QoS::AtLeastOnce);
    let key = world.shards[s].store.key_of("sub").expect("session");
    assert_eq!(
        world.shards[s]
            .store
            .get(key)
            .map(|x| x.outbound.inflight.len()),
        Some(1)
    );
    world.send(s, sub, Packet::PubAck(Ack::new(packet_id)));
    assert_eq!(
        world.shards[s]
            .store
            .get(key)
            .map(|x| x.outbound.inflight.len()),
        Some(0)
    );
}

#[test]
fn v5_qos1_publish_without_subscribers_is_acknowledged_with_no_matching_subscribers() {
    let mut world = World::new(1);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    world.send(
        p,
        publisher,
        publish("nobody/listens", "x", QoS::AtLeastOnce, Some(1), false),
    );
    let out = world.take(p, publisher);
    assert!(
        matches!(out[..], [Packet::PubAck(ref ack)] if ack.reason_code == reason::NO_MATCHING_SUBSCRIBERS)
    );
    // QoS 2 gets Success either way, as from Mosquitto.
    world.send(
        p,
        publisher,
        publish("nobody/listens", "x", QoS::ExactlyOnce, Some(2), false),
    );
    let out = world.take(p, publisher);
    assert!(matches!(out[..], [Packet::PubRec(ref rec)] if rec.reason_code == reason::SUCCESS));
}

#[test]
fn receive_maximum_of_the_client_bounds_the_window_and_the_queue_drains_in_order() {
    let mut world = World::new(1);
    let mut c = connect(Protocol::V5, "slow", true);
    c.properties.receive_maximum = Some(2);
    let (s, sub, _) = world.connect(c);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    world.send(s, sub, subscribe(1, "t", QoS::AtLeastOnce));
    world.take(s, sub);
    for (n, payload) in ["1", "2", "3", "4"].into_iter().enumerate() {
        world.send(
            p,
            publisher,
            publish("t", payload, QoS::AtLeastOnce, Some(n as u16 + 1), false),
        );
    }
    let first = world.take(s, sub);
    assert_eq!(
        payloads(&first),
        ["1", "2"],
        "only Receive Maximum messages in flight"
    );
    let ids: Vec<PacketId> = publishes(&first)
        .iter()
        .filter_map(|p| p.packet_id)
        .collect();
    world.send(s, sub, Packet::PubAck(Ack::new(ids[0])));
    assert_eq!(payloads(&world.take(s, sub)), ["3"]);
    world.send(s, sub, Packet::PubAck(Ack::new(ids[1])));
    assert_eq!(payloads(&world.take(s, sub)), ["4"]);
}

#[test]
fn offline_persistent_session_queues_and_resumes_with_session_present() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(persistent_v5("keeper", true));
    world.send(s, sub, subscribe(1, "q/#", QoS::ExactlyOnce));
    world.take(s, sub);
    world.close(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    world.send(
        p,
        publisher,
        publish("q/1", "one", QoS::AtLeastOnce, Some(1), false),
    );
    world.send(
        p,
        publisher,
        publish("q/2", "two", QoS::ExactlyOnce, Some(2), false),
    );
    world.send(
        p,
        publisher,
        publish("q/3", "zero", QoS::AtMostOnce, None, false),
    );
    let (s, sub, out) = world.connect(persistent_v5("keeper", false));
    let Packet::ConnAck(connack) = &out[0] else {
        panic!("{out:?}")
    };
    assert!(connack.session_present, "resumed session is present");
    assert_eq!(
        payloads(&out),
        ["one", "two"],
        "QoS 1/2 queued in order, QoS 0 dropped while offline"
    );
    assert_eq!(publishes(&out)[1].qos, QoS::ExactlyOnce);
    let _ = (s, sub);
}

#[test]
fn unacknowledged_messages_are_resent_with_dup_after_reconnect() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(persistent_v5("dup", true));
    world.send(s, sub, subscribe(1, "d", QoS::AtLeastOnce));
    world.take(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    world.send(
        p,
        publisher,
        publish("d", "m", QoS::AtLeastOnce, Some(1), false),
    );
    let first = world.take(s, sub);
    let original = publishes(&first)[0].packet_id;
    assert!(!publishes(&first)[0].dup);
    world.close(s, sub);
    let (_, _, out) = world.connect(persistent_v5("dup", false));
    let again = publishes(&out);
    assert_eq!(again.len(), 1);
    assert!(again[0].dup, "[MQTT-4.4.0-1] resent with DUP");
    assert_eq!(again[0].packet_id, original, "same packet id");
}

#[test]
fn inbound_qos2_is_delivered_once_even_when_resent() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(connect(Protocol::V311, "sub", true));
    let (p, publisher, _) = world.connect(connect(Protocol::V311, "pub", true));
    world.send(s, sub, subscribe(1, "x", QoS::AtMostOnce));
    world.take(s, sub);
    world.send(
        p,
        publisher,
        publish("x", "once", QoS::ExactlyOnce, Some(9), false),
    );
    let mut resend = publish("x", "once", QoS::ExactlyOnce, Some(9), false);
    if let Packet::Publish(p) = &mut resend {
        p.dup = true;
    }
    world.send(p, publisher, resend);
    let acks = world.take(p, publisher);
    assert_eq!(
        acks.iter()
            .filter(|a| matches!(a, Packet::PubRec(_)))
            .count(),
        2
    );
    assert_eq!(payloads(&world.take(s, sub)), ["once"]);
    world.send(p, publisher, Packet::PubRel(Ack::new(pid(9))));
    assert!(matches!(world.take(p, publisher)[..], [Packet::PubComp(ref c)] if c.reason_code == 0));
}

#[test]
fn retained_messages_are_set_replaced_cleared_and_follow_retain_handling() {
    let mut world = World::new(1);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    world.send(
        p,
        publisher,
        publish("r/a", "first", QoS::AtMostOnce, None, true),
    );
    world.send(
        p,
        publisher,
        publish("r/a", "second", QoS::AtMostOnce, None, true),
    );
    world.send(
        p,
        publisher,
        publish("r/b", "b", QoS::AtMostOnce, None, true),
    );
    world.send(
        p,
        publisher,
        publish("r/b", "", QoS::AtMostOnce, None, true),
    );
    let (s, sub, _) = world.connect(connect(Protocol::V5, "sub", true));
    world.send(s, sub, subscribe(1, "r/#", QoS::AtMostOnce));
    let out = world.take(s, sub);
    assert!(
        matches!(out[0], Packet::SubAck(_)),
        "SUBACK precedes retained messages"
    );
    assert_eq!(payloads(&out), ["second"]);
    assert!(
        publishes(&out)[0].retain,
        "[MQTT-3.3.1-9] retained on subscribe"
    );
    let handling = |h: u8| SubscriptionOptions {
        retain_handling: h,
        ..Default::default()
    };
    world.send(s, sub, subscribe_with(2, "r/#", handling(1), None));
    assert!(
        payloads(&world.take(s, sub)).is_empty(),
        "handling 1: not for an existing subscription"
    );
    world.send(s, sub, subscribe_with(3, "r/+", handling(2), None));
    assert!(
        payloads(&world.take(s, sub)).is_empty(),
        "handling 2: never"
    );
    world.send(s, sub, subscribe_with(4, "+/a", handling(1), None));
    assert_eq!(
        payloads(&world.take(s, sub)),
        ["second"],
        "handling 1: new subscription"
    );
}

#[test]
fn live_messages_keep_retain_only_for_retain_as_published() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(connect(Protocol::V5, "sub", true));
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    let rap = SubscriptionOptions {
        retain_as_published: true,
        ..Default::default()
    };
    world.send(s, sub, subscribe_with(1, "keep", rap, None));
    world.send(s, sub, subscribe(2, "plain", QoS::AtMostOnce));
    world.take(s, sub);
    world.send(
        p,
        publisher,
        publish("keep", "k", QoS::AtMostOnce, None, true),
    );
    world.send(
        p,
        publisher,
        publish("plain", "p", QoS::AtMostOnce, None, true),
    );
    let out = world.take(s, sub);
    let flags: Vec<bool> = publishes(&out).iter().map(|p| p.retain).collect();
    assert_eq!(flags, [true, false]);
}

#[test]
fn no_local_suppresses_own_messages_only() {
    let mut world = World::new(1);
    let (s, me, _) = world.connect(connect(Protocol::V5, "me", true));
    let no_local = SubscriptionOptions {
        no_local: true,
        ..Default::default()
    };
    world.send(s, me, subscribe_with(1, "chat", no_local, None));
    world.take(s, me);
    world.send(s, me, publish("chat", "mine", QoS::AtMostOnce, None, false));
    assert!(payloads(&world.take(s, me)).is_empty());
    let (p, other, _) = world.connect(connect(Protocol::V5, "other", true));
    world.send(
        p,
        other,
        publish("chat", "theirs", QoS::AtMostOnce, None, false),
    );
    assert_eq!(payloads(&world.take(s, me)), ["theirs"]);
}

#[test]
fn overlapping_subscriptions_give_v311_one_copy_at_the_highest_qos() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(connect(Protocol::V311, "sub", true));
    world.send(s, sub, subscribe(1, "o/#", QoS::AtMostOnce));
    world.send(s, sub, subscribe(2, "o/+", QoS::AtLeastOnce));
    world.take(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V311, "pub", true));
    world.send(
        p,
        publisher,
        publish("o/x", "m", QoS::ExactlyOnce, Some(1), false),
    );
    let out = world.take(s, sub);
    let delivered = publishes(&out);
    assert_eq!(delivered.len(), 1, "one copy");
    assert_eq!(
        delivered[0].qos,
        QoS::AtLeastOnce,
        "[MQTT-3.3.5-1] the highest matching QoS"
    );
}

#[test]
fn overlapping_subscriptions_give_v5_one_copy_per_subscription_with_its_identifier() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(connect(Protocol::V5, "sub", true));
    let at = |qos| SubscriptionOptions {
        qos,
        ..Default::default()
    };
    world.send(
        s,
        sub,
        subscribe_with(1, "o/#", at(QoS::AtMostOnce), Some(11)),
    );
    world.send(
        s,
        sub,
        subscribe_with(2, "o/+", at(QoS::AtLeastOnce), Some(22)),
    );
    world.take(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    world.send(
        p,
        publisher,
        publish("o/x", "m", QoS::ExactlyOnce, Some(1), false),
    );
    let out = world.take(s, sub);
    let mut copies: Vec<(Vec<u32>, QoS)> = publishes(&out)
        .iter()
        .map(|p| (p.properties.subscription_identifiers.clone(), p.qos))
        .collect();
    copies.sort();
    assert_eq!(
        copies,
        [(vec![11], QoS::AtMostOnce), (vec![22], QoS::AtLeastOnce)]
    );
}

#[test]
fn wildcards_do_not_match_dollar_topics() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(connect(Protocol::V311, "sub", true));
    world.send(s, sub, subscribe(1, "#", QoS::AtMostOnce));
    world.send(s, sub, subscribe(2, "+/broker/x", QoS::AtMostOnce));
    world.take(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V311, "pub", true));
    world.send(
        p,
        publisher,
        publish("$SYS/broker/x", "sys", QoS::AtMostOnce, None, false),
    );
    world.send(
        p,
        publisher,
        publish("normal", "n", QoS::AtMostOnce, None, false),
    );
    assert_eq!(payloads(&world.take(s, sub)), ["n"], "[MQTT-4.7.2-1]");
}

#[test]
fn shared_subscription_delivers_each_message_to_one_member_round_robin() {
    let mut world = World::new(1);
    let (a_shard, a, _) = world.connect(connect(Protocol::V5, "a", true));
    let (b_shard, b, _) = world.connect(connect(Protocol::V5, "b", true));
    world.send(a_shard, a, subscribe(1, "$share/g/jobs", QoS::AtMostOnce));
    world.send(b_shard, b, subscribe(1, "$share/g/jobs", QoS::AtMostOnce));
    world.take(a_shard, a);
    world.take(b_shard, b);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    for n in ["1", "2", "3", "4"] {
        world.send(
            p,
            publisher,
            publish("jobs", n, QoS::AtMostOnce, None, false),
        );
    }
    let got_a = payloads(&world.take(a_shard, a));
    let got_b = payloads(&world.take(b_shard, b));
    assert_eq!(got_a.len() + got_b.len(), 4, "each message once");
    assert_eq!(got_a.len(), 2, "round robin: {got_a:?} {got_b:?}");
}

#[test]
fn topic_alias_from_client_resolves_and_unknown_alias_is_a_protocol_error() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(connect(Protocol::V5, "sub", true));
    world.send(s, sub, subscribe(1, "long/topic/name", QoS::AtMostOnce));
    world.take(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    let with_alias = |topic: &'static str, alias: u16, payload: &'static str| {
        let mut packet = publish(topic, payload, QoS::AtMostOnce, None, false);
        if let Packet::Publish(p) = &mut packet {
            p.properties.make_mut().topic_alias = Some(alias);
        }
        packet
    };
    world.send(p, publisher, with_alias("long/topic/name", 3, "set"));
    world.send(p, publisher, with_alias("", 3, "used"));
    assert_eq!(payloads(&world.take(s, sub)), ["set", "used"]);
    assert!(publishes(&world.take(s, sub)).is_empty());
    assert_eq!(
        world.send_flow(p, publisher, with_alias("", 4, "unknown")),
        Flow::Close
    );
    let out = world.take(p, publisher);
    assert!(
        matches!(out[..], [Packet::Disconnect(ref d)] if d.reason_code == reason::PROTOCOL_ERROR)
    );
    let (p2, other, _) = world.connect(connect(Protocol::V5, "pub2", true));
    assert_eq!(
        world.send_flow(p2, other, with_alias("a", 11, "too high")),
        Flow::Close
    );
    assert!(
        matches!(world.take(p2, other)[..], [Packet::Disconnect(ref d)] if d.reason_code == reason::TOPIC_ALIAS_INVALID)
    );
}

fn with_will(
    mut c: Connect,
    topic: &'static str,
    payload: &'static str,
    delay: Option<u32>,
) -> Connect {
    c.will = Some(Will {
        topic: ByteStr::from_static(topic),
        payload: Bytes::from_static(payload.as_bytes()),
        qos: QoS::AtMostOnce,
        retain: false,
        delay_interval: delay,
        properties: Default::default(),
    });
    c
}

#[test]
fn will_is_published_on_socket_loss_but_not_after_disconnect() {
    let mut world = World::new(1);
    let (s, watcher, _) = world.connect(connect(Protocol::V5, "watcher", true));
    world.send(s, watcher, subscribe(1, "wills/#", QoS::AtMostOnce));
    world.take(s, watcher);
    let (d, dying, _) = world.connect(with_will(
        connect(Protocol::V5, "dying", true),
        "wills/dying",
        "gone",
        None,
    ));
    world.close(d, dying);
    assert_eq!(payloads(&world.take(s, watcher)), ["gone"]);
    let (d, polite, _) = world.connect(with_will(
        connect(Protocol::V5, "polite", true),
        "wills/polite",
        "bye",
        None,
    ));
    world.send(d, polite, Packet::Disconnect(Box::default()));
    world.close(d, polite);
    assert!(
        payloads(&world.take(s, watcher)).is_empty(),
        "normal DISCONNECT discards the will"
    );
}

#[test]
fn delayed_will_waits_and_is_cancelled_by_a_reconnect() {
    let mut world = World::new(1);
    let (s, watcher, _) = world.connect(connect(Protocol::V5, "watcher", true));
    world.send(s, watcher, subscribe(1, "wills/#", QoS::AtMostOnce));
    world.take(s, watcher);
    let (d, late, _) = world.connect(with_will(
        persistent_v5("late", true),
        "wills/late",
        "late will",
        Some(5),
    ));
    world.close(d, late);
    world.advance(3);
    assert!(
        payloads(&world.take(s, watcher)).is_empty(),
        "not before the delay"
    );
    world.advance(3);
    assert_eq!(payloads(&world.take(s, watcher)), ["late will"]);
    let (d, back, _) = world.connect(with_will(
        persistent_v5("back", true),
        "wills/back",
        "never",
        Some(5),
    ));
    world.close(d, back);
    world.advance(2);
    world.connect(persistent_v5("back", false));
    world.advance(10);
    assert!(
        payloads(&world.take(s, watcher)).is_empty(),
        "[MQTT-3.1.3-9] reconnect cancels the will"
    );
}

#[test]
fn session_takeover_disconnects_the_old_connection_with_session_taken_over() {
    let mut world = World::new(1);
    let (s, old, _) = world.connect(connect(Protocol::V5, "twin", true));
    world.connect(connect(Protocol::V5, "twin", true));
    let out = world.take(s, old);
    assert!(
        matches!(out[..], [Packet::Disconnect(ref d)] if d.reason_code == reason::SESSION_TAKEN_OVER)
    );
    assert!(world.shards[s]
        .conn(old)
        .is_some_and(|c| c.closing.is_some()));
}

#[test]
fn keep_alive_expires_after_one_and_a_half_times_the_interval() {
    let mut world = World::new(1);
    let mut c = connect(Protocol::V5, "quiet", true);
    c.keep_alive = 10;
    let (s, quiet, _) = world.connect(c);
    world.advance(14);
    assert!(world.take(s, quiet).is_empty(), "still within 1.5 × 10 s");
    world.advance(2);
    let out = world.take(s, quiet);
    assert!(
        matches!(out[..], [Packet::Disconnect(ref d)] if d.reason_code == reason::KEEP_ALIVE_TIMEOUT)
    );
}

#[test]
fn expired_queued_messages_are_not_delivered() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(persistent_v5("later", true));
    world.send(s, sub, subscribe(1, "e", QoS::AtLeastOnce));
    world.take(s, sub);
    world.close(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    let mut short = publish("e", "short", QoS::AtLeastOnce, Some(1), false);
    if let Packet::Publish(p) = &mut short {
        p.properties.make_mut().message_expiry_interval = Some(2);
    }
    world.send(p, publisher, short);
    let mut long = publish("e", "long", QoS::AtLeastOnce, Some(2), false);
    if let Packet::Publish(p) = &mut long {
        p.properties.make_mut().message_expiry_interval = Some(100);
    }
    world.send(p, publisher, long);
    world.advance(5);
    let (_, _, out) = world.connect(persistent_v5("later", false));
    let delivered = publishes(&out);
    assert_eq!(payloads(&out), ["long"]);
    let remaining = delivered[0]
        .properties
        .message_expiry_interval
        .expect("expiry sent");
    assert!(
        (94..=95).contains(&remaining),
        "[MQTT-3.3.2-6] remaining lifetime, got {remaining}"
    );
}

#[test]
fn messages_above_the_clients_maximum_packet_size_are_dropped() {
    let mut world = World::new(1);
    let mut c = connect(Protocol::V5, "small", true);
    c.properties.maximum_packet_size = Some(32);
    let (s, sub, _) = world.connect(c);
    world.send(s, sub, subscribe(1, "m", QoS::AtMostOnce));
    world.take(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    world.send(
        p,
        publisher,
        publish("m", "tiny", QoS::AtMostOnce, None, false),
    );
    world.send(
        p,
        publisher,
        publish(
            "m",
            "this payload is far too large for thirty-two bytes",
            QoS::AtMostOnce,
            None,
            false,
        ),
    );
    assert_eq!(payloads(&world.take(s, sub)), ["tiny"], "[MQTT-3.1.2-25]");
}

#[test]
fn unsubscribe_reports_whether_a_subscription_existed() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(connect(Protocol::V5, "sub", true));
    world.send(s, sub, subscribe(1, "u", QoS::AtMostOnce));
    world.take(s, sub);
    let filters = vec![ByteStr::from_static("u"), ByteStr::from_static("never")];
    world.send(
        s,
        sub,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(2),
            properties: UnsubscribeProperties::default(),
            filters,
        }),
    );
    let out = world.take(s, sub);
    assert!(
        matches!(out[..], [Packet::UnsubAck(ref ack)] if ack.reason_codes == [reason::SUCCESS, reason::NO_SUBSCRIPTION_EXISTED])
    );
}

/// A client id that lives on `shard` of two.
fn on_shard(shard: u8) -> &'static str {
    nth_on_shard(shard, 0)
}

/// The `n`-th client id (in a fixed list) whose home is `shard` of two.
fn nth_on_shard(shard: u8, n: usize) -> &'static str {
    let ids = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];
    ids.into_iter()
        .filter(|id| crate::placement::home_shard(id.as_bytes(), 2) == shard)
        .nth(n)
        .expect("enough ids per shard")
}

#[test]
fn publishes_cross_to_the_shard_that_holds_the_subscriber_and_only_there() {
    let mut world = World::new(2);
    let on = on_shard;
    let (s, sub, _) = world.connect(connect(Protocol::V311, on(1), true));
    assert_eq!(s, 1);
    world.send(s, sub, subscribe(1, "x/#", QoS::AtMostOnce));
    world.take(s, sub);
    assert_eq!(
        world.shards[0].interest.shards_matching(b"x/y"),
        0b10,
        "shard 0 learned shard 1's interest"
    );
    let (p, publisher, _) = world.connect(connect(Protocol::V311, on(0), true));
    assert_eq!(p, 0);
    world.send(
        p,
        publisher,
        publish("x/y", "crossed", QoS::AtMostOnce, None, false),
    );
    assert_eq!(payloads(&world.take(s, sub)), ["crossed"]);
    world.send(
        p,
        publisher,
        publish("elsewhere", "not sent", QoS::AtMostOnce, None, false),
    );
    assert_eq!(world.shards[0].interest.shards_matching(b"elsewhere"), 0);
}

#[test]
fn retained_updates_from_different_shards_settle_on_the_owners_order() {
    let mut world = World::new(2);
    let (a, pa, _) = world.connect(connect(Protocol::V311, on_shard(0), true));
    let (b, pb, _) = world.connect(connect(Protocol::V311, on_shard(1), true));
    assert_ne!(a, b, "publishers on different shards");
    // Both publish before any mesh message moves.
    let _ = world.shards[a].handle(pa, publish("state", "from-a", QoS::AtMostOnce, None, true));
    let _ = world.shards[b].handle(pb, publish("state", "from-b", QoS::AtMostOnce, None, true));
    world.pump();
    let seen: Vec<Vec<u8>> = world
        .shards
        .iter()
        .map(|shard| {
            shard
                .retained
                .get(b"state")
                .map(|m| m.payload.to_vec())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        seen[0], seen[1],
        "every shard holds the same retained message"
    );
}

#[test]
fn second_connect_and_server_packets_from_a_client_are_protocol_errors() {
    // A second CONNECT is closed silently, as Mosquitto closes it; a PINGRESP gets 0x82.
    let mut world = World::new(1);
    let (s, c, _) = world.connect(connect(Protocol::V5, "c", true));
    let again = Packet::Connect(Box::new(connect(Protocol::V5, "c", true)));
    assert_eq!(world.send_flow(s, c, again), Flow::Close);
    assert!(world.take(s, c).is_empty());
    let (s, c, _) = world.connect(connect(Protocol::V5, "d", true));
    assert_eq!(world.send_flow(s, c, Packet::PingResp), Flow::Close);
    assert!(
        matches!(world.take(s, c)[..], [Packet::Disconnect(ref d)] if d.reason_code == reason::PROTOCOL_ERROR)
    );
    let _ = BytesMut::new();
}

#[test]
fn suback_waits_until_every_other_shard_knows_the_new_interest() {
    let mut world = World::new(2);
    let (s, sub, _) = world.connect(connect(Protocol::V311, on_shard(1), true));
    let _ = world.shards[s].handle(sub, subscribe(1, "barrier/t", QoS::AtMostOnce));
    assert!(
        world.take(s, sub).is_empty(),
        "no SUBACK before shard 0 applied the interest"
    );
    assert_eq!(world.shards[0].interest.shards_matching(b"barrier/t"), 0);
    world.pump();
    assert_eq!(world.shards[0].interest.shards_matching(b"barrier/t"), 0b10);
    assert!(matches!(world.take(s, sub)[..], [Packet::SubAck(_)]));
    // A second subscriber to the same filter that wants no retained messages changes no
    // interest and reads no retained copy: SUBACK at once.
    let (s2, other, _) = world.connect(connect(Protocol::V5, nth_on_shard(1, 1), true));
    assert_eq!(s2, s);
    let no_retained = SubscriptionOptions {
        retain_handling: 2,
        ..Default::default()
    };
    let _ = world.shards[s].handle(other, subscribe_with(1, "barrier/t", no_retained, None));
    assert!(matches!(world.take(s, other)[..], [Packet::SubAck(_)]));
}

/// A publish read on one shard after another shard took a subscription is routed with it,
/// though the mesh task has not run in between: the runtime calls `catch_up_interest`
/// before it hands the shard what it read, and the interest epoch says there is interest
/// to apply. Without that call (the mesh task's turn still to come) the publish is routed
/// with the old interest and lost.
#[test]
fn a_publish_read_after_a_subscription_on_another_shard_is_routed_with_it() {
    for catch_up in [true, false] {
        let mut world = World::new(2);
        let (s, sub, _) = world.connect(connect(Protocol::V5, on_shard(1), true));
        let (p, publisher, _) = world.connect(connect(Protocol::V5, on_shard(0), true));
        assert_ne!(s, p);
        // The subscriber's shard handles SUBSCRIBE and ends its turn; nothing drains the
        // mesh before the publisher's shard reads its PUBLISH.
        let _ = world.shards[s].handle(sub, subscribe(1, "race/t", QoS::AtLeastOnce));
        world.shards[s].end_turn();
        if catch_up {
            let interest = world.shards[p].mesh.interest();
            assert!(!interest.subscribing(), "the SUBSCRIBE was handled");
            world.shards[p].catch_up_interest(interest);
        }
        let _ = world.shards[p].handle(
            publisher,
            publish("race/t", "right after", QoS::AtLeastOnce, Some(7), false),
        );
        world.pump();
        let puback = match world.take(p, publisher)[..] {
            [Packet::PubAck(ref ack)] => ack.reason_code,
            ref other => panic!("expected one PUBACK, got {other:?}"),
        };
        let delivered = payloads(&world.take(s, sub));
        if catch_up {
            assert_eq!(puback, reason::SUCCESS);
            assert_eq!(delivered, ["right after"]);
        } else {
            assert_eq!(puback, reason::NO_MATCHING_SUBSCRIBERS);
            assert!(delivered.is_empty());
        }
        // Caught up (by the reader or the mesh drain): the next batch costs one load.
        let interest = world.shards[p].mesh.interest();
        world.shards[p].catch_up_interest(interest);
        assert_eq!(world.shards[p].interest_seen, interest.epoch());
    }
}

#[test]
fn a_retained_publish_is_acknowledged_once_every_shard_can_read_it() {
    let mut world = World::new(2);
    // The topic's owner is neither the publisher's shard nor, for the reader, a given.
    let topic = ["r0", "r1", "r2", "r3", "r4", "r5"]
        .into_iter()
        .find(|t| crate::placement::home_shard(t.as_bytes(), 2) == 1)
        .expect("a topic owned by shard 1");
    let (p, publisher, _) = world.connect(connect(Protocol::V311, on_shard(0), true));
    let _ = world.shards[p].handle(
        publisher,
        publish(topic, "kept", QoS::AtLeastOnce, Some(1), true),
    );
    assert!(
        world.take(p, publisher).is_empty(),
        "PUBACK waits for the owner"
    );
    world.pump();
    assert!(matches!(world.take(p, publisher)[..], [Packet::PubAck(_)]));
    assert!(world
        .shards
        .iter()
        .all(|shard| shard.retained.get(topic.as_bytes()).is_some()));
}

#[test]
fn cached_routes_follow_new_and_removed_subscriptions() {
    let mut world = World::new(2);
    let (p, publisher, _) = world.connect(connect(Protocol::V311, on_shard(0), true));
    let (s, first, _) = world.connect(connect(Protocol::V311, on_shard(1), true));
    world.send(s, first, subscribe(1, "cache/+", QoS::AtMostOnce));
    world.take(s, first);
    world.send(
        p,
        publisher,
        publish("cache/t", "one", QoS::AtMostOnce, None, false),
    );
    assert_eq!(payloads(&world.take(s, first)), ["one"]);
    // A new local subscriber on the publisher's shard must be seen at once.
    let (s0, second, _) = world.connect(connect(Protocol::V311, "c8", true));
    world.send(s0, second, subscribe(1, "cache/t", QoS::AtMostOnce));
    world.take(s0, second);
    world.send(
        p,
        publisher,
        publish("cache/t", "two", QoS::AtMostOnce, None, false),
    );
    assert_eq!(payloads(&world.take(s, first)), ["two"]);
    assert_eq!(payloads(&world.take(s0, second)), ["two"]);
    // And a removed remote subscription stops the crossing.
    let filters = vec![ByteStr::from_static("cache/+")];
    world.send(
        s,
        first,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(2),
            properties: UnsubscribeProperties::default(),
            filters,
        }),
    );
    world.take(s, first);
    world.send(
        p,
        publisher,
        publish("cache/t", "three", QoS::AtMostOnce, None, false),
    );
    assert!(payloads(&world.take(s, first)).is_empty());
    assert_eq!(
        world.shards[p].interest.shards_matching(b"cache/t") & 0b10,
        0
    );
}

#[test]
fn large_payloads_arrive_intact_between_small_ones_within_and_across_shards() {
    let mut world = World::new(2);
    let big: &'static str = Box::leak("0123456789abcdef".repeat(512).into_boxed_str());
    let (p, publisher, _) = world.connect(connect(Protocol::V311, on_shard(0), true));
    let (s0, near, _) = world.connect(connect(Protocol::V5, nth_on_shard(0, 1), true));
    let (s1, far, _) = world.connect(connect(Protocol::V311, on_shard(1), true));
    assert_eq!((s0, s1), (0, 1));
    for (s, id) in [(s0, near), (s1, far)] {
        world.send(s, id, subscribe(1, "big/+", QoS::AtLeastOnce));
        world.take(s, id);
    }
    for payload in ["small", big, "tiny", big] {
        world.send(
            p,
            publisher,
            publish("big/t", payload, QoS::AtMostOnce, None, false),
        );
    }
    for (s, id) in [(s0, near), (s1, far)] {
        assert_eq!(payloads(&world.take(s, id)), ["small", big, "tiny", big]);
    }
}

/// A subscriber with `receive_maximum 2` and `max_queued_messages 8` (queue marks 4/1),
/// and a publisher, on one shard.
fn queue_world() -> (World, ConnId, ConnId) {
    let mut settings = settings();
    settings.max_queued_messages = 8;
    let mut world = World::with(1, settings);
    let mut c = connect(Protocol::V5, "sub", true);
    c.properties.receive_maximum = Some(2);
    let (_, sub, _) = world.connect(c);
    let (_, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    world.send(0, sub, subscribe(1, "t", QoS::AtLeastOnce));
    world.take(0, sub);
    (world, sub, publisher)
}

fn publish_n(world: &mut World, publisher: ConnId, from: u16, count: u16) {
    for n in from..from + count {
        let payload: &'static str = Box::leak(n.to_string().into_boxed_str());
        world.send(
            0,
            publisher,
            publish("t", payload, QoS::AtLeastOnce, Some(n), false),
        );
    }
}

fn ack_all(world: &mut World, sub: ConnId) -> Vec<String> {
    let out = world.take(0, sub);
    for id in publishes(&out).iter().filter_map(|p| p.packet_id) {
        world.send(0, sub, Packet::PubAck(Ack::new(id)));
    }
    payloads(&out)
}

#[test]
fn a_connected_clients_queue_holds_publishers_back_until_it_drains_to_the_low_mark() {
    let (mut world, sub, publisher) = queue_world();
    publish_n(&mut world, publisher, 1, 5);
    assert!(!world.shards[0].flush.backlogged(), "2 in flight, 3 queued");
    publish_n(&mut world, publisher, 6, 1);
    assert!(world.shards[0].flush.backlogged(), "4 queued: high mark");
    assert!(
        world.shards[0].awaits_acks(sub),
        "the subscriber is still read"
    );
    assert!(
        !world.shards[0].awaits_acks(publisher),
        "the publisher waits"
    );
    world.shards[0].flush.take_unblocked();
    let mut delivered = ack_all(&mut world, sub);
    assert!(
        world.shards[0].flush.backlogged(),
        "2 queued: above the low mark"
    );
    delivered.extend(ack_all(&mut world, sub));
    assert!(!world.shards[0].flush.backlogged(), "queue empty: released");
    assert!(world.shards[0].flush.take_unblocked(), "readers are woken");
    delivered.extend(ack_all(&mut world, sub));
    delivered.extend(ack_all(&mut world, sub));
    assert_eq!(delivered, ["1", "2", "3", "4", "5", "6"], "nothing dropped");
}

#[test]
fn a_queue_that_stops_moving_stops_holding_publishers_back_and_then_overflows() {
    let (mut world, sub, publisher) = queue_world();
    publish_n(&mut world, publisher, 1, 6);
    assert!(world.shards[0].flush.backlogged());
    world.now.mono_ms += 99;
    world.set_now();
    assert!(!world.shards[0].release_stalled_queues(), "not yet stalled");
    world.now.mono_ms += 1;
    world.set_now();
    assert!(
        world.shards[0].release_stalled_queues(),
        "stalled: released"
    );
    assert!(!world.shards[0].flush.backlogged());
    publish_n(&mut world, publisher, 7, 6);
    assert!(
        !world.shards[0].flush.backlogged(),
        "a stalled queue holds no one back"
    );
    let mut delivered = Vec::new();
    for _ in 0..6 {
        delivered.extend(ack_all(&mut world, sub));
    }
    let expected: Vec<String> = (1..=10).map(|n| n.to_string()).collect();
    assert_eq!(
        delivered, expected,
        "2 in flight + 8 queued; 11 and 12 dropped"
    );
}

#[test]
fn sequential_client_ids_spread_over_shards_without_pattern() {
    for shards in [2usize, 4, 8] {
        let mut counts = vec![0usize; shards];
        for i in 0..4000 {
            counts[usize::from(crate::placement::home_shard(
                format!("client-{i}").as_bytes(),
                shards,
            ))] += 1;
        }
        let expected = 4000 / shards;
        assert!(
            counts
                .iter()
                .all(|&c| c > expected * 8 / 10 && c < expected * 12 / 10),
            "{shards} shards: {counts:?}"
        );
    }
    // `x-{i}` and `x-{100 + i}` differ by the digits "1" and "0": a hash whose low bit is
    // the parity of the odd bytes puts every such pair on different shards of two.
    let same = (0..100)
        .filter(|i| {
            crate::placement::home_shard(format!("x-{i}").as_bytes(), 2)
                == crate::placement::home_shard(format!("x-{}", 100 + i).as_bytes(), 2)
        })
        .count();
    assert!(
        (25..=75).contains(&same),
        "{same} of 100 pairs share a shard"
    );
}

#[test]
fn a_queue_that_drains_too_slowly_holds_publishers_back_for_a_bounded_time() {
    let (mut world, sub, publisher) = queue_world();
    publish_n(&mut world, publisher, 1, 6);
    assert!(world.shards[0].flush.backlogged());
    for step in 0..4 {
        // One acknowledgement every 90 ms: the queue moves, and new messages refill it.
        world.now.mono_ms += 90;
        world.set_now();
        let out = world.take(0, sub);
        if let Some(id) = publishes(&out).first().and_then(|p| p.packet_id) {
            world.send(0, sub, Packet::PubAck(Ack::new(id)));
        }
        publish_n(&mut world, publisher, 7 + step, 1);
        let released = world.shards[0].release_stalled_queues();
        assert_eq!(
            released,
            step == 2,
            "step {step}: held for {} ms",
            90 * (step + 1)
        );
        assert_eq!(
            world.shards[0].flush.backlogged(),
            step < 2,
            "released for good: the refills of step 3 do not hold again"
        );
    }
}

#[test]
fn a_subscriber_whose_outbound_bytes_reach_16_kib_is_listed_once_for_an_early_write() {
    let mut world = World::with(1, settings());
    let (_, sub, _) = world.connect(connect(Protocol::V311, "early-sub", true));
    let (_, publisher, _) = world.connect(connect(Protocol::V311, "early-pub", true));
    world.send(0, sub, subscribe(1, "big", QoS::AtMostOnce));
    world.take(0, sub);
    let early = |world: &World| -> Vec<ConnId> {
        std::iter::from_fn(|| world.shards[0].flush.pop_early()).collect()
    };
    early(&world);
    let payload: &'static str = Box::leak("x".repeat(4000).into_boxed_str());
    for n in 1..=3 {
        world.send(
            0,
            publisher,
            publish("big", payload, QoS::AtMostOnce, None, false),
        );
        assert!(early(&world).is_empty(), "{n} × 4 KB is below 16 KiB");
    }
    for _ in 0..3 {
        world.send(
            0,
            publisher,
            publish("big", payload, QoS::AtMostOnce, None, false),
        );
    }
    assert_eq!(
        early(&world),
        [sub],
        "listed when it crossed, not again while above"
    );
    assert_eq!(
        publishes(&world.take(0, sub)).len(),
        6,
        "the buffer holds all six"
    );
    world.send(
        0,
        publisher,
        publish("big", payload, QoS::AtMostOnce, None, false),
    );
    assert!(early(&world).is_empty(), "written: below again");
}

#[test]
fn reason_strings_are_off_by_default_and_dropped_before_exceeding_the_clients_maximum() {
    // Default: the bare DISCONNECT Mosquitto sends, even to a client asking for them.
    let mut world = World::new(1);
    let (s, c, _) = world.connect(connect(Protocol::V5, "bare", true));
    assert_eq!(
        world.send_flow(s, c, subscribe(1, "a/#/b", QoS::AtMostOnce)),
        Flow::Close
    );
    let out = world.take(s, c);
    assert!(
        matches!(&out[..], [Packet::Disconnect(d)] if d.reason_code == reason::MALFORMED_PACKET
            && d.properties.reason_string.is_none())
    );
    // With `reason_strings`, a client with room gets one...
    let mut settings = settings();
    settings.reason_strings = true;
    let mut world = World::with(1, settings);
    let (s, c, _) = world.connect(connect(Protocol::V5, "roomy", true));
    assert_eq!(
        world.send_flow(s, c, subscribe(1, "a/#/b", QoS::AtMostOnce)),
        Flow::Close
    );
    let out = world.take(s, c);
    assert!(matches!(&out[..], [Packet::Disconnect(d)] if d.properties.reason_string.is_some()));
    // ...and a client whose Maximum Packet Size it would exceed gets the bare DISCONNECT
    // [MQTT-3.14.2-3].
    let mut tight = connect(Protocol::V5, "tight", true);
    tight.properties.maximum_packet_size = Some(16);
    let (s, c, _) = world.connect(tight);
    assert_eq!(
        world.send_flow(s, c, subscribe(1, "a/#/b", QoS::AtMostOnce)),
        Flow::Close
    );
    let out = world.take(s, c);
    assert!(
        matches!(&out[..], [Packet::Disconnect(d)] if d.reason_code == reason::MALFORMED_PACKET
            && d.properties.reason_string.is_none())
    );
}

#[test]
fn a_connack_over_the_clients_maximum_packet_size_refuses_the_connection() {
    let mut world = World::new(1);
    let mut small = connect(Protocol::V5, "small", true);
    // The default CONNACK carries Receive Maximum and Topic Alias Maximum: 11 bytes.
    small.properties.maximum_packet_size = Some(10);
    let accepted = Accepted {
        listener: 0,
        peer: "127.0.0.1:40000".parse().expect("peer"),
        certificate_username: None,
    };
    let refusal = world.shards[0]
        .admit(&accepted, Box::new(small))
        .expect_err("refused");
    assert!(refusal.connack.is_none(), "closed without a CONNACK");
    let mut fits = connect(Protocol::V5, "fits", true);
    fits.properties.maximum_packet_size = Some(11);
    let (_, _, out) = world.connect(fits);
    assert!(matches!(&out[..], [Packet::ConnAck(_)]));
    assert_eq!(
        world.shards[0].store.len(),
        1,
        "only the second client has a session"
    );
}

#[test]
fn a_kick_spares_connections_opened_after_the_change_that_caused_it() {
    // The dynamic-security service decides kicks after a rights change; a client that saw
    // the response and reconnected before the kick reached its shard keeps its new
    // connection (Mosquitto kicks synchronously, so a reconnect never meets an old kick).
    let mut world = World::new(1);
    let mut before = connect(Protocol::V5, "before", true);
    before.username = Some(ByteStr::from_static("u"));
    let (s, old, _) = world.connect(before);
    let kicks = crate::dynsec::Kicks {
        who: vec![crate::dynsec::Kick::Username(b"u".to_vec())],
        opened_before: crate::connection::opened_so_far(),
    };
    let mut after = connect(Protocol::V5, "after", true);
    after.username = Some(ByteStr::from_static("u"));
    let (_, new, _) = world.connect(after);
    world.shards[s].kick(&kicks);
    assert!(matches!(
        world.take(s, old)[..],
        [Packet::Disconnect(ref d)] if d.reason_code == reason::ADMINISTRATIVE_ACTION
    ));
    assert!(
        world.take(s, new).is_empty(),
        "the later connection is not kicked"
    );
    assert!(world.shards[s]
        .conn(new)
        .is_some_and(|c| c.closing.is_none()));
}

#[test]
fn closing_a_listener_disconnects_its_clients_without_wills_and_refuses_new_ones() {
    // A cluster node that stops leading closes its client listeners; the admin listener
    // (here listener 1) keeps its clients.
    let mut settings = settings();
    settings.listeners.push(ListenerSettings::plain(
        "127.0.0.1:1885".parse().expect("address"),
    ));
    let mut world = World::with(2, settings);
    let (s, admin, _) = world.connect_on(1, connect(Protocol::V5, "admin", true));
    world.send(s, admin, subscribe(1, "wills/#", QoS::AtMostOnce));
    world.take(s, admin);
    let (c, client, _) = world.connect(with_will(
        connect(Protocol::V5, "client", true),
        "wills/client",
        "gone",
        None,
    ));
    for shard in &mut world.shards {
        shard.close_listeners(&[0]);
    }
    world.pump();
    assert!(matches!(
        world.take(c, client)[..],
        [Packet::Disconnect(ref d)] if d.reason_code == reason::SERVER_SHUTTING_DOWN
    ));
    world.close(c, client);
    assert!(
        world.take(s, admin).is_empty(),
        "no will: the session is the cluster's"
    );
    assert!(world.shards[s]
        .conn(admin)
        .is_some_and(|c| c.closing.is_none()));
    let accepted = Accepted {
        listener: 0,
        peer: "127.0.0.1:40000".parse().expect("peer"),
        certificate_username: None,
    };
    let refusal = world.shards[0]
        .admit(&accepted, Box::new(connect(Protocol::V5, "late", true)))
        .expect_err("refused while closed");
    assert!(refusal
        .connack
        .is_some_and(|c| c.reason_code == reason::SERVER_UNAVAILABLE));
    for shard in &mut world.shards {
        shard.open_listeners(&[0]);
    }
    let (_, _, out) = world.connect(connect(Protocol::V5, "again", true));
    assert!(matches!(&out[..], [Packet::ConnAck(c)] if c.reason_code == 0));
}

// ---------------------------------------------------------------------------------------
// Topic aliases from the broker to a 5.0 client (§3.3.2.3.4)
// ---------------------------------------------------------------------------------------

/// A 5.0 connect announcing Topic Alias Maximum `max`.
fn allowing_aliases(client_id: &'static str, max: u16) -> Connect {
    let mut c = connect(Protocol::V5, client_id, true);
    c.properties.topic_alias_maximum = Some(max);
    c
}

/// (topic, alias) of each PUBLISH as it came off the wire.
fn topics_and_aliases(packets: &[Packet]) -> Vec<(String, Option<u16>)> {
    publishes(packets)
        .iter()
        .map(|p| (p.topic.to_string(), p.properties.topic_alias))
        .collect()
}

/// Publishes one QoS 0 message on each topic, in order, from a fresh 5.0 client.
fn publish_each(world: &mut World, publisher: &'static str, topics: &[&'static str]) {
    let (p, id, _) = world.connect(connect(Protocol::V5, publisher, true));
    for topic in topics {
        world.send(p, id, publish(topic, "m", QoS::AtMostOnce, None, false));
    }
}

const LONG_A: &str = "plant/line-1/cell-4/temperature";
const LONG_B: &str = "plant/line-1/cell-4/pressure";
const LONG_C: &str = "plant/line-1/cell-4/humidity";

#[test]
fn a_client_that_allows_aliases_gets_the_topic_once_then_the_alias() {
    let mut world = World::new(1);
    let (s, sub, _) = world.connect(allowing_aliases("sub", 2));
    world.send(s, sub, subscribe(1, "plant/#", QoS::AtMostOnce));
    world.take(s, sub);
    publish_each(
        &mut world,
        "pub",
        &[LONG_A, LONG_A, LONG_B, LONG_C, LONG_A, LONG_B],
    );
    let a = || LONG_A.to_string();
    let b = || LONG_B.to_string();
    assert_eq!(
        topics_and_aliases(&world.take(s, sub)),
        [
            (a(), Some(1)),
            (String::new(), Some(1)),
            (b(), Some(2)),
            // Both aliases taken by topics as busy: the third goes without one.
            (LONG_C.to_string(), None),
            (String::new(), Some(1)),
            (String::new(), Some(2)),
        ]
    );
}

#[test]
fn no_aliases_without_a_maximum_from_the_client_or_from_the_listener() {
    let mut settings = settings();
    settings.listeners[0].max_topic_alias_broker = 0;
    let mut off = World::with(1, settings);
    let mut world = World::new(1);
    let cases: [(&mut World, Connect); 3] = [
        (&mut world, connect(Protocol::V5, "none", true)),
        (&mut off, allowing_aliases("listener-off", 10)),
        (&mut World::new(1), connect(Protocol::V311, "v311", true)),
    ];
    for (world, c) in cases {
        let (s, sub, _) = world.connect(c);
        world.send(s, sub, subscribe(1, "plant/#", QoS::AtMostOnce));
        world.take(s, sub);
        publish_each(world, "pub", &[LONG_A, LONG_A]);
        assert_eq!(
            topics_and_aliases(&world.take(s, sub)),
            [(LONG_A.to_string(), None), (LONG_A.to_string(), None)]
        );
    }
}

#[test]
fn the_listener_caps_the_aliases_a_client_allows() {
    let mut settings = settings();
    settings.listeners[0].max_topic_alias_broker = 1;
    let mut world = World::with(1, settings);
    let (s, sub, _) = world.connect(allowing_aliases("sub", 10));
    world.send(s, sub, subscribe(1, "plant/#", QoS::AtMostOnce));
    world.take(s, sub);
    publish_each(&mut world, "pub", &[LONG_A, LONG_B, LONG_A]);
    assert_eq!(
        topics_and_aliases(&world.take(s, sub)),
        [
            (LONG_A.to_string(), Some(1)),
            (LONG_B.to_string(), None),
            (String::new(), Some(1)),
        ]
    );
}

/// The session keeps QoS 1 messages without alias (it is saved and replicated; aliases
/// belong to one connection), a resend after reconnect carries the full topic, and the
/// new connection starts a new table.
#[test]
fn aliases_stay_out_of_the_session_and_end_with_the_connection() {
    let mut world = World::new(1);
    let mut c = persistent_v5("keeper", true);
    c.properties.topic_alias_maximum = Some(5);
    let (s, sub, _) = world.connect(c);
    world.send(s, sub, subscribe(1, "plant/#", QoS::AtLeastOnce));
    world.take(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    for n in 1..=2 {
        world.send(
            p,
            publisher,
            publish(LONG_A, "q", QoS::AtLeastOnce, Some(n), false),
        );
    }
    assert_eq!(
        topics_and_aliases(&world.take(s, sub)),
        [(LONG_A.to_string(), Some(1)), (String::new(), Some(1))]
    );
    let key = world.shards[s]
        .conn(sub)
        .and_then(|c| c.session)
        .expect("session");
    let session = world.shards[s].store.get(key).expect("stored");
    assert_eq!(session.outbound.inflight.len(), 2);
    for entry in &session.outbound.inflight {
        let message = &entry.delivery.as_ref().expect("delivery").message;
        assert_eq!(message.topic.as_str(), LONG_A);
        assert_eq!(message.properties.topic_alias, None);
    }
    world.close(s, sub);
    let mut again = persistent_v5("keeper", false);
    again.properties.topic_alias_maximum = Some(5);
    let (s, sub, out) = world.connect(again);
    let resent = publishes(&out);
    assert_eq!(resent.len(), 2);
    for publish in &resent {
        assert!(publish.dup);
        assert_eq!(publish.topic.as_str(), LONG_A, "a resend names its topic");
        assert_eq!(publish.properties.topic_alias, None, "and carries no alias");
    }
    world.send(
        p,
        publisher,
        publish(LONG_A, "new", QoS::AtLeastOnce, Some(3), false),
    );
    assert_eq!(
        topics_and_aliases(&world.take(s, sub)),
        [(LONG_A.to_string(), Some(1))],
        "the new connection is told the alias again"
    );
}

/// Whether a message fits the client's Maximum Packet Size is decided without alias; a
/// new alias that would take it over the limit is not given.
#[test]
fn an_alias_never_takes_a_packet_over_the_clients_maximum_packet_size() {
    let mut world = World::new(1);
    let plain = mqtt::publish_encoded_len(
        Protocol::V5,
        &PublishEncode {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: LONG_A.as_bytes(),
            packet_id: None,
            topic_alias: None,
            message_expiry_interval: None,
            subscription_identifiers: &[],
            properties: &Default::default(),
            payload: b"exact",
        },
    )
    .expect("valid");
    let mut c = allowing_aliases("small", 5);
    c.properties.maximum_packet_size = Some(plain as u32);
    let (s, sub, _) = world.connect(c);
    world.send(s, sub, subscribe(1, "plant/#", QoS::AtMostOnce));
    world.take(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, "pub", true));
    for payload in [
        "exact",
        "equal",
        "ab",
        "again",
        "far too large for the limit",
    ] {
        world.send(
            p,
            publisher,
            publish(LONG_A, payload, QoS::AtMostOnce, None, false),
        );
    }
    let out = world.take(s, sub);
    assert_eq!(payloads(&out), ["exact", "equal", "ab", "again"]);
    assert_eq!(
        topics_and_aliases(&out),
        [
            (LONG_A.to_string(), None),
            (LONG_A.to_string(), None),
            // Topic + alias is 3 bytes longer: given once a packet has room for it.
            (LONG_A.to_string(), Some(1)),
            (String::new(), Some(1)),
        ]
    );
}

#[test]
fn aliases_name_the_topic_without_the_listeners_mount_point() {
    let mut settings = settings();
    settings.listeners[0].mount_point = Some("tenant/".to_string());
    let mut world = World::with(1, settings);
    let (s, sub, _) = world.connect(allowing_aliases("sub", 5));
    world.send(s, sub, subscribe(1, "plant/#", QoS::AtMostOnce));
    world.take(s, sub);
    publish_each(&mut world, "pub", &[LONG_A, LONG_A]);
    assert_eq!(
        topics_and_aliases(&world.take(s, sub)),
        [(LONG_A.to_string(), Some(1)), (String::new(), Some(1))]
    );
}

#[test]
fn a_reset_discards_the_durable_state_and_committed_records_rebuild_it() {
    // A cluster leader that loses office: every shard discards what it applied, then the
    // committed records (here: the state before the reset) are applied again.
    let mut world = World::new(2);
    let (s, sub, _) = world.connect(persistent_v5(on_shard(1), false));
    world.send(s, sub, subscribe(1, "r/#", QoS::AtLeastOnce));
    world.take(s, sub);
    world.close(s, sub);
    let (p, publisher, _) = world.connect(connect(Protocol::V5, on_shard(0), true));
    world.send(
        p,
        publisher,
        publish("r/a", "kept", QoS::AtMostOnce, None, true),
    );
    let (w, watcher, _) = world.connect(with_will(
        persistent_v5(nth_on_shard(1, 1), false),
        "wills/w",
        "never",
        None,
    ));
    let before: Vec<Vec<crate::state::Record>> = world
        .shards
        .iter()
        .map(|shard| shard.snapshot_records(None))
        .collect();
    assert!(!before[1].is_empty());
    for shard in &mut world.shards {
        shard.reset_durable();
    }
    world.pump();
    assert!(matches!(
        world.take(w, watcher)[..],
        [Packet::Disconnect(ref d)] if d.reason_code == reason::SERVER_SHUTTING_DOWN
    ));
    world.close(w, watcher);
    // The clean session (on shard 0) was never replicated: it stays, connected.
    assert_eq!(world.shards[0].store.len(), 1);
    assert_eq!(world.shards[1].store.len(), 0);
    for shard in &world.shards {
        assert!(shard.snapshot_records(None).is_empty());
    }
    for (shard, records) in world.shards.iter_mut().zip(before.clone()) {
        shard
            .apply_records(records)
            .expect("the committed records fit");
    }
    world.pump();
    let after: Vec<Vec<crate::state::Record>> = world
        .shards
        .iter()
        .map(|shard| shard.snapshot_records(None))
        .collect();
    assert_eq!(after[0], before[0]);
    assert_eq!(after[1].len(), before[1].len());
    // Connections with a persistent session were closed, the clean one kept; the rebuilt
    // subscription routes again from the other shard.
    assert!(world.shards[p]
        .conn(publisher)
        .is_some_and(|c| c.closing.is_none()));
    world.send(
        p,
        publisher,
        publish("r/b", "after", QoS::AtLeastOnce, Some(1), false),
    );
    let (s, sub, out) = world.connect(persistent_v5(on_shard(1), false));
    assert!(matches!(&out[0], Packet::ConnAck(c) if c.session_present));
    let _ = (s, sub);
    assert_eq!(payloads(&out[1..]), ["after"]);
}
