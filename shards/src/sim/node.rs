//! One simulated broker: its shards on one mesh, driven by hand, with the output port of
//! every shard attached to a drain the simulation reads.
//!
//! Does what the runtime does, without sockets or threads: admission on the accepting
//! shard and opening on the home shard, packets in, mesh messages pumped until every ring
//! is empty, connections the shard decided to close closed, the clock advanced and ticked.

use crate::access::{AccessPolicy, ListenerAccess};
use crate::connection::ConnId;
use crate::mesh::{Mesh, MeshPort};
use crate::message::Message;
use crate::mqtt::{self, Connect, Packet};
use crate::placement::home_shard;
use crate::settings::{ListenerSettings, Settings};
use crate::shard::{Accepted, Flow, Now, Refusal, Shard};
use crate::state::port::{Emitted, OutputDrain, OutputRing};
use crate::state::snapshot::{retained_records, session_changes};
use crate::state::{Decoded, Record, SessionDelta};
use crate::stats::ShardStats;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The durable state of a node in a form two nodes can be compared in: persistent
/// sessions by client id, retained messages by topic, each both as the in-memory changes
/// that rebuild it and as their records (the first catches what a record loses, the
/// second what in-memory equality ignores, such as the order of message properties).
#[derive(Debug, PartialEq)]
pub struct Canonical {
    /// Client id → the changes that rebuild its session.
    pub sessions: BTreeMap<String, Vec<SessionDelta>>,
    /// Client id → the same as records.
    pub session_records: BTreeMap<String, Vec<Record>>,
    /// Topic → its retained message.
    pub retained: BTreeMap<String, Message>,
    /// Topic → the same as a record.
    pub retained_records: BTreeMap<String, Record>,
}

/// A broker of `shards.len()` shards.
pub struct Node {
    /// The shards.
    pub shards: Vec<Shard>,
    mesh: Arc<Mesh>,
    drain: OutputDrain,
    /// The clock every shard reads.
    pub now: Now,
}

/// The settings every simulated node runs with: Mosquitto's defaults, one listener.
pub fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.listeners.push(ListenerSettings::plain(
        "127.0.0.1:1883".parse().expect("a valid address"),
    ));
    settings
}

impl Node {
    /// A node of `count` shards at `now`, every output port attached.
    pub fn new(count: usize, settings: Settings, now: Now) -> Node {
        let mesh = Mesh::new(count);
        let stats: Arc<[ShardStats]> = (0..count).map(|_| ShardStats::default()).collect();
        let settings = Arc::new(settings);
        let access = Arc::new(AccessPolicy::open(vec![ListenerAccess {
            allow_anonymous: true,
            ..Default::default()
        }]));
        let mut rings = Vec::with_capacity(count);
        let shards = (0..count)
            .map(|id| {
                let port = MeshPort::new(mesh.clone(), id as u8);
                let mut shard = Shard::new(port, settings.clone(), access.clone(), stats.clone());
                shard.now = now;
                let ring = OutputRing::new();
                shard.output.attach(ring.clone());
                rings.push(ring);
                shard
            })
            .collect();
        Node {
            shards,
            mesh,
            drain: OutputDrain::new(rings),
            now,
        }
    }

    /// Admission on shard `accepting`, then opening on the client id's home shard.
    pub fn connect(
        &mut self,
        accepting: usize,
        connect: Connect,
    ) -> Result<(usize, ConnId), Refusal> {
        let accepted = Accepted {
            listener: 0,
            peer: "127.0.0.1:40000".parse().expect("a valid address"),
            certificate_username: None,
        };
        let (request, home) = self.shards[accepting].admit(&accepted, Box::new(connect))?;
        let home = usize::from(home);
        let id = self.shards[home].open(accepted, request);
        self.pump();
        Ok((home, id))
    }

    /// Hands one packet to connection `id` on `shard`.
    pub fn handle(&mut self, shard: usize, id: ConnId, packet: Packet) -> Flow {
        let flow = self.shards[shard].handle(id, packet);
        self.pump();
        flow
    }

    /// Delivers mesh messages (and flushes the output overflow) until nothing moves.
    pub fn pump(&mut self) {
        loop {
            let mut moved = 0;
            for index in 0..self.shards.len() {
                let shard = &mut self.shards[index];
                shard.end_turn();
                shard.mesh.flush_overflow();
                let receiver = MeshPort::new(self.mesh.clone(), index as u8);
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

    /// Decodes and clears what the shard encoded for connection `id`.
    pub fn take(&mut self, shard: usize, id: ConnId) -> Vec<Packet> {
        let Some(conn) = self.shards[shard].conn_mut(id) else {
            return Vec::new();
        };
        let protocol = conn.protocol;
        let mut out = conn.out.split();
        let mut packets = Vec::new();
        while let Ok(Some(packet)) = mqtt::decode(&mut out, Some(protocol), usize::MAX) {
            packets.push(packet);
        }
        assert!(out.is_empty(), "the shard wrote only whole, valid packets");
        packets
    }

    /// True while connection `id` on `shard` is open and not closing.
    pub fn is_open(&self, shard: usize, id: ConnId) -> bool {
        self.shards[shard]
            .conn(id)
            .is_some_and(|conn| conn.closing.is_none())
    }

    /// The socket of `id` ended (the runtime's `closed`).
    pub fn close(&mut self, shard: usize, id: ConnId) {
        self.shards[shard].closed(id);
        self.pump();
    }

    /// Closes every connection the shards decided to close (takeover, protocol error).
    pub fn close_closing(&mut self) {
        for shard in 0..self.shards.len() {
            let closing: Vec<ConnId> = self.shards[shard]
                .conns
                .iter()
                .filter(|(_, conn)| conn.closing.is_some())
                .map(|(_, conn)| conn.id)
                .collect();
            for id in closing {
                self.close(shard, id);
            }
        }
    }

    /// Advances the clock by `seconds` and runs every shard's tick.
    pub fn advance(&mut self, seconds: u64) {
        self.now.unix_s += seconds;
        self.now.mono_ms += seconds * 1000;
        for shard in &mut self.shards {
            shard.now = self.now;
            shard.tick();
        }
        self.pump();
    }

    /// Everything the shards emitted since the last call, each shard's in its order.
    pub fn drain(&mut self) -> Vec<Emitted> {
        let mut out = Vec::new();
        for shard in 0..self.shards.len() {
            self.drain.take(shard, usize::MAX, &mut out);
        }
        out
    }

    /// Applies records from outside: each session record on its client id's home shard of
    /// this node, each retained record on every shard.
    pub fn apply(&mut self, records: &[Record]) -> Result<(), String> {
        let count = self.shards.len();
        for record in records {
            let decoded = record.clone().decode().map_err(|e| e.to_string())?;
            let targets: Vec<usize> = match &decoded {
                Decoded::Session { client_id, .. } => {
                    vec![usize::from(home_shard(client_id.as_bytes(), count))]
                }
                _ => (0..count).collect(),
            };
            for shard in targets {
                self.shards[shard]
                    .apply_decoded(decoded.clone())
                    .map_err(|e| format!("{record:?}: {e}"))?;
            }
        }
        self.pump();
        Ok(())
    }

    /// The records that rebuild this node's durable state (connected sessions as they
    /// are: the log model of a cluster snapshot).
    pub fn snapshot(&self) -> Vec<Record> {
        let mut records = Vec::new();
        for shard in &self.shards {
            records.extend(shard.snapshot_records(None));
        }
        records
    }

    /// The node's durable state, comparable with another node's.
    pub fn canonical(&self) -> Canonical {
        let mut sessions = BTreeMap::new();
        let mut session_records = BTreeMap::new();
        for shard in &self.shards {
            for (client_id, change) in session_changes(&shard.store, None) {
                let key = client_id.to_string();
                session_records
                    .entry(key.clone())
                    .or_insert_with(Vec::new)
                    .push(Record::session(&client_id, &change));
                sessions.entry(key).or_insert_with(Vec::new).push(change);
            }
        }
        let retained = self.shards[0]
            .retained
            .iter()
            .filter(|(topic, _)| !topic.starts_with(b"$SYS/"))
            .map(|(_, message)| (message.topic.to_string(), message.clone()))
            .collect();
        Canonical {
            sessions,
            session_records,
            retained,
            retained_records: retained_map(&self.shards[0]),
        }
    }

    /// Every invariant: each store's, and every shard holding the same retained copy.
    pub fn check_invariants(&self) -> Result<(), String> {
        let first = retained_map(&self.shards[0]);
        for (index, shard) in self.shards.iter().enumerate() {
            shard
                .store
                .check_invariants()
                .map_err(|e| format!("shard {index}: {e}"))?;
            if retained_map(shard) != first {
                return Err(format!("shard {index} holds another retained copy"));
            }
        }
        Ok(())
    }
}

/// A shard's retained messages as records, by topic.
fn retained_map(shard: &Shard) -> BTreeMap<String, Record> {
    retained_records(&shard.retained)
        .into_iter()
        .filter_map(|record| match &record {
            Record::Retained { topic, .. } => Some((topic.clone(), record)),
            _ => None,
        })
        .collect()
}
