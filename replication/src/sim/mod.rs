//! The seeded simulation of the cluster's Raft: three or five nodes running Culex's real
//! Raft stack (openraft with the broker's configuration, the state machine
//! `crate::machine::Machine`, the link's wire form and request dispatch) on a deterministic
//! runtime with virtual time (`runtime`), a simulated network (`net`) and simulated disks
//! (`disk`), under faults drawn from one seed.
//!
//! A run: the nodes form a cluster; then, step by step, clients propose changes as the
//! broker does (a `Proposal` carrying a dynamic-security document, or a Full Sync
//! session's records: the session, a subscription, a queued QoS 1 message, a retained
//! message), and the world misbehaves: messages are delayed, reordered, duplicated, lost
//! and damaged at varying rates, partitions come and go (often isolating the leader),
//! nodes (often the leader) crash, losing writes that were not synced, and restart from
//! what their disk kept, and leadership is handed over. Throughout, `check` verifies that
//! no term has two leaders, that every node applies the same entries in the same order
//! (and holds the same document, sessions and retained messages at each index), and that
//! every acknowledged proposal, session, subscription and queued message stays where it
//! was acknowledged. At the end the network heals, every node restarts, and within
//! [`LIVENESS`] of virtual time a leader must commit a last proposal that every node then
//! applies, with no acknowledged change lost.
//!
//! A failure names its seed and shows the end of its trace; `SIM_SEED=<seed>` replays one
//! seed and prints its whole trace (`cargo test -p replication sim:: -- --nocapture`),
//! `SIM_SEEDS=<n>` runs more seeds. The planted-bug tests below show what the checks catch.
//!
//! Test-only (`#[cfg(test)]`): it needs nothing from the broker's build, and its planted
//! bugs must never reach one.

mod check;
mod disk;
mod net;
mod rng;
mod runtime;
mod tests;

use crate::machine::Machine;
use crate::proposal::Proposal;
use crate::types::{NodeId, Payload};
use check::{digest, proposal_digest, Checker, MachineBug, Recorder, SessionAck};
use disk::{Disk, DiskBug, SimStore, WriteKind};
use net::{Faults, Net, NetBug, NetFactory};
use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use rng::Rng;
use runtime::WORLD;
use shards::message::{Delivery, Message};
use shards::mqtt::{ByteStr, Bytes, PacketId, Protocol, QoS, SubscriptionOptions};
use shards::state::{Record, SessionDelta, Subscription};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

openraft::declare_raft_types!(
    /// Culex's Raft types on the simulator's runtime: the same data types as
    /// `crate::types::TypeConfig` (so the same machine and wire form serve both).
    pub SimConfig:
        D = Payload,
        R = (),
        NodeId = NodeId,
        Node = BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, NodeId>,
        AsyncRuntime = runtime::SimRuntime,
);

/// A simulated node's Raft.
pub type SimRaft = openraft::Raft<SimConfig, Recorder>;

/// Steps per seed.
const STEPS: usize = 150;

/// Seeds run by default.
const SEEDS: u64 = 24;

/// After the network heals and every node is back, a leader must commit within this much
/// virtual time (elections take 1 to 1.6 s with the broker's timings).
const LIVENESS: Duration = Duration::from_secs(20);

/// Entries between snapshots in the simulator (the broker's 5000 would never be reached):
/// building, purging behind, sending and installing snapshots all happen in every run.
const SNAPSHOT_EVERY: u64 = 25;

/// Entries kept behind a snapshot in the simulator.
const KEPT_BEHIND: u64 = 5;

/// What the driver can do in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Propose,
    Crash,
    CrashMidAppend,
    CrashMidVote,
    Restart,
    Partition,
    Heal,
    Weather,
    Transfer,
    Contest,
    Cascade,
    Wait,
}

/// The actions and their weights.
const ACTIONS: [(Action, u64); 12] = [
    (Action::Propose, 48),
    (Action::Crash, 3),
    (Action::CrashMidAppend, 3),
    (Action::CrashMidVote, 2),
    (Action::Restart, 12),
    (Action::Partition, 6),
    (Action::Heal, 6),
    (Action::Weather, 6),
    (Action::Transfer, 3),
    (Action::Contest, 3),
    (Action::Cascade, 3),
    (Action::Wait, 5),
];

/// What a run looks like.
#[derive(Debug, Clone, Copy, Default)]
struct Setup {
    /// Nodes in the cluster (`None`: 3 or 5, from the seed).
    nodes: Option<u64>,
    disk_bug: Option<DiskBug>,
    net_bug: Option<NetBug>,
    machine_bug: Option<MachineBug>,
}

/// One simulated node across its incarnations.
struct Node {
    disk: Rc<RefCell<Disk>>,
    /// The running incarnation: its Raft and machine (`None`: down).
    up: Option<(SimRaft, Machine)>,
}

/// One seed's run.
struct Sim {
    rng: Rng,
    checker: Rc<Checker>,
    net: Net,
    nodes: BTreeMap<NodeId, Node>,
    config: Arc<Config>,
    next_document: u64,
    machine_bug: Option<MachineBug>,
}

/// How a run ended: its verdict and trace.
struct Outcome {
    result: Result<(), String>,
    trace: Vec<String>,
}

fn sim_config() -> Result<Arc<Config>, String> {
    let mut config = crate::core::raft_node::config("sim").map_err(|e| e.to_string())?;
    config.snapshot_policy = SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY);
    config.max_in_snapshot_log_to_keep = KEPT_BEHIND;
    config.validate().map(Arc::new).map_err(|e| e.to_string())
}

impl Sim {
    fn new(seed: u64, setup: Setup, trace: Rc<RefCell<Vec<String>>>) -> Result<Sim, String> {
        let mut rng = Rng::new(seed);
        let count = setup.nodes.unwrap_or(if rng.chance(60) { 3 } else { 5 });
        let checker = Rc::new(Checker::new(trace));
        let net = Net::new(rng.fork(), setup.net_bug, checker.clone());
        let nodes = (1..=count)
            .map(|id| {
                let node = Node {
                    disk: Disk::new(id, rng.fork(), setup.disk_bug),
                    up: None,
                };
                (id, node)
            })
            .collect();
        Ok(Sim {
            rng,
            checker,
            net,
            nodes,
            config: sim_config()?,
            next_document: 1,
            machine_bug: setup.machine_bug,
        })
    }

    fn trace(&self, line: String) {
        self.checker.trace(line);
    }

    /// The whole run.
    async fn drive(&mut self) -> Result<(), String> {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        self.trace(format!("{} nodes", ids.len()));
        for &id in &ids {
            self.start(id).await?;
        }
        let members: BTreeMap<NodeId, BasicNode> = ids
            .iter()
            .map(|&id| (id, BasicNode::new(format!("sim-{id}"))))
            .collect();
        if let Some((raft, _)) = &self.nodes[&1].up {
            raft.initialize(members)
                .await
                .map_err(|e| format!("the cluster did not initialize: {e}"))?;
        }
        for step in 0..STEPS {
            let pause = Duration::from_millis(self.rng.between(1, 120));
            runtime::sleep(pause).await;
            self.step().await;
            self.checker
                .verdict()
                .map_err(|error| format!("step {step}: {error}"))?;
        }
        self.settle().await
    }

    /// Starts an incarnation of `id` from its disk.
    async fn start(&mut self, id: NodeId) -> Result<(), String> {
        let disk = self.nodes[&id].disk.clone();
        let checker = self.checker.clone();
        let net = self.net.clone();
        let config = self.config.clone();
        let bug = self.machine_bug;
        let started = runtime::spawn_as(id, async move {
            runtime::spawn_as(id, disk::flusher(disk.clone()));
            let store = SimStore::new(id, disk.clone(), checker.clone());
            let recorder = Recorder::open(id, disk, checker.clone(), bug).await;
            let machine = recorder.machine().clone();
            let factory = NetFactory::new(id, net);
            let raft = SimRaft::new(id, config, factory, store, recorder)
                .await
                .map_err(|e| format!("node {id} did not start: {e}"))?;
            runtime::spawn_as(id, observe(id, raft.clone(), checker));
            Ok::<_, String>((raft, machine))
        });
        let (raft, machine) = started.await.map_err(|e| e.to_string())??;
        self.net.up(id, raft.clone());
        let last = self.nodes[&id].disk.borrow().last_index();
        if let Some(node) = self.nodes.get_mut(&id) {
            node.up = Some((raft, machine));
        }
        self.trace(format!("node {id} starts (log up to {last:?})"));
        Ok(())
    }

    /// Crashes `id`: its tasks stop where they are; its disk keeps what it keeps.
    fn crash(&mut self, id: NodeId) {
        self.net.down(id);
        runtime::kill(id);
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        node.up = None;
        let lost = node.disk.borrow_mut().crash();
        self.trace(format!("node {id} crashes ({lost})"));
    }

    /// The leader dies; once its lease ran out, two nodes stand for election at the same
    /// moment (a split vote in the making), and the first node to grant a vote crashes
    /// right after, then reboots.
    async fn contest(&mut self) {
        if let Some(leader) = self.leader() {
            if self.up().len() > 3 || self.nodes.len() == 3 && self.up().len() == 3 {
                self.crash(leader);
            }
        }
        let lease = Duration::from_millis(self.config.election_timeout_max + 50);
        runtime::sleep(lease).await;
        let mut up = self.up();
        let Some(a) = self.pick(&up) else { return };
        up.retain(|&n| n != a);
        let Some(b) = self.pick(&up) else { return };
        self.trace(format!("nodes {a} and {b} stand for election at once"));
        for id in [a, b] {
            if let Some(raft) = self.raft(id) {
                runtime::spawn_as(WORLD, async move {
                    let _ = raft.trigger().elect(false).await;
                });
            }
        }
        self.crash_mid_write(WriteKind::Grant, true).await;
    }

    /// Crashes the next node that writes `kind`, within that write's sync latency; with
    /// `reboot`, it restarts a moment later. Nothing happens if no node writes for a while.
    async fn crash_mid_write(&mut self, kind: WriteKind, reboot: bool) {
        let watched: Vec<(NodeId, Rc<RefCell<Disk>>, u64)> = self
            .up()
            .into_iter()
            .map(|id| {
                let disk = self.nodes[&id].disk.clone();
                let before = disk.borrow().writes(kind);
                (id, disk, before)
            })
            .collect();
        let write = std::future::poll_fn(|cx| {
            for (id, disk, before) in &watched {
                let mut disk = disk.borrow_mut();
                if disk.writes(kind) > *before {
                    return std::task::Poll::Ready(*id);
                }
                disk.watch(cx.waker().clone());
            }
            std::task::Poll::Pending
        });
        let Ok(id) = runtime::timeout(Duration::from_secs(2), write).await else {
            return;
        };
        // Within the write's sync latency (0.3 to 6 ms): the node may have acted on it.
        runtime::sleep(Duration::from_micros(self.rng.between(0, 3_000))).await;
        if self.nodes[&id].up.is_none() || self.up().len() < 2 {
            return;
        }
        self.trace(format!("node {id} crashes mid-{kind:?}"));
        self.crash(id);
        if reboot {
            runtime::sleep(Duration::from_millis(self.rng.between(1, 30))).await;
            if let Err(error) = self.start(id).await {
                self.checker.violation(error);
            }
        }
    }

    fn up(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.up.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    fn down(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.up.is_none())
            .map(|(id, _)| *id)
            .collect()
    }

    fn raft(&self, id: NodeId) -> Option<SimRaft> {
        self.nodes[&id].up.as_ref().map(|(raft, _)| raft.clone())
    }

    /// The node that believes it leads the highest term, if any.
    fn leader(&self) -> Option<NodeId> {
        self.up()
            .into_iter()
            .filter_map(|id| {
                let raft = self.raft(id)?;
                let metrics = raft.metrics().borrow_watched().clone();
                (metrics.state == ServerState::Leader).then_some((metrics.current_term, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    fn pick(&mut self, ids: &[NodeId]) -> Option<NodeId> {
        if ids.is_empty() {
            return None;
        }
        Some(ids[self.rng.below(ids.len() as u64) as usize])
    }

    /// The leader most of the time, else any node that is up.
    fn target(&mut self, leader_percent: u64) -> Option<NodeId> {
        match self.leader() {
            Some(leader) if self.rng.chance(leader_percent) => Some(leader),
            _ => {
                let up = self.up();
                self.pick(&up)
            }
        }
    }

    /// One thing happens: one of [`ACTIONS`], by weight.
    async fn step(&mut self) {
        let total: u64 = ACTIONS.iter().map(|(_, weight)| weight).sum();
        let mut draw = self.rng.below(total);
        let mut action = Action::Wait;
        for (candidate, weight) in ACTIONS {
            if draw < weight {
                action = candidate;
                break;
            }
            draw -= weight;
        }
        match action {
            Action::Propose => {
                if let Some(id) = self.target(80) {
                    for _ in 0..self.rng.between(1, 3) {
                        self.propose(id);
                    }
                }
            }
            Action::Crash => {
                if self.up().len() > 1 {
                    if let Some(id) = self.target(50) {
                        self.crash(id);
                    }
                }
            }
            Action::CrashMidAppend => {
                let reboot = self.rng.chance(50);
                self.crash_mid_write(WriteKind::Append, reboot).await;
            }
            Action::CrashMidVote => {
                let reboot = self.rng.chance(50);
                self.crash_mid_write(WriteKind::Vote, reboot).await;
            }
            Action::Restart => {
                let down = self.down();
                if let Some(id) = self.pick(&down) {
                    if let Err(error) = self.start(id).await {
                        self.checker.violation(error);
                    }
                }
            }
            Action::Partition => self.partition(),
            Action::Heal => {
                self.net.heal();
                self.trace("the network heals".into());
            }
            Action::Weather => self.weather(),
            Action::Transfer => self.transfer().await,
            Action::Contest => self.contest().await,
            Action::Cascade => self.cascade().await,
            Action::Wait => {
                let pause = Duration::from_millis(self.rng.between(100, 1_500));
                runtime::sleep(pause).await;
            }
        }
    }

    /// A follower is cut off, a node crashes in the middle of an append (and reboots),
    /// then the leader dies; a while later the network heals and the leader restarts.
    async fn cascade(&mut self) {
        let Some(leader) = self.leader() else { return };
        let followers: Vec<NodeId> = self.up().into_iter().filter(|&n| n != leader).collect();
        let Some(cut) = self.pick(&followers) else {
            return;
        };
        self.trace(format!(
            "cascade: node {cut} is cut off, then the leader {leader} dies"
        ));
        self.net.partition(BTreeMap::from([(cut, 1)]));
        if let Some(id) = self.target(80) {
            self.propose(id);
        }
        self.crash_mid_write(WriteKind::Append, true).await;
        runtime::sleep(Duration::from_millis(self.rng.between(0, 50))).await;
        if self.nodes[&leader].up.is_some() && self.up().len() > 1 {
            self.crash(leader);
        }
        runtime::sleep(Duration::from_millis(self.rng.between(100, 1_000))).await;
        self.net.heal();
        self.trace("the network heals".into());
        if self.nodes[&leader].up.is_none() {
            if let Err(error) = self.start(leader).await {
                self.checker.violation(error);
            }
        }
    }

    /// A client proposes through `id` the next change: a dynamic-security document, or
    /// (as often) a Full Sync session (see [`session_records`]); acknowledged when
    /// `client_write` returns Ok.
    fn propose(&mut self, id: NodeId) -> Option<(u64, runtime::JoinHandle<Option<u64>>)> {
        let raft = self.raft(id)?;
        let seq = self.next_document;
        self.next_document += 1;
        let (records, session) = if self.rng.chance(50) {
            let document = format!("{{\"sim\":{seq},\"via\":{id}}}").into_bytes();
            (vec![Record::Dynsec { document }], None)
        } else {
            let (records, ack) = session_records(seq);
            (records, Some(ack))
        };
        let payload = Proposal {
            records,
            ..Proposal::default()
        }
        .encode();
        let checker = self.checker.clone();
        let what = if session.is_some() {
            "session"
        } else {
            "document"
        };
        self.trace(format!("{what} {seq} proposed through node {id}"));
        let client = runtime::spawn_as(WORLD, async move {
            match raft.client_write(payload.clone()).await {
                Ok(response) => {
                    let index = response.log_id.index;
                    checker.acked(response.log_id, proposal_digest(index, &payload));
                    if let Some(mut ack) = session {
                        ack.index = index;
                        checker.session_acked(ack);
                    }
                    checker.trace(format!("{what} {seq} acknowledged at index {index}"));
                    Some(index)
                }
                Err(error) => {
                    let why = error.to_string();
                    let why = why.split(';').next().unwrap_or_default().to_string();
                    checker.trace(format!("{what} {seq} refused: {why}"));
                    None
                }
            }
        });
        Some((seq, client))
    }

    /// A partition: the leader (or a node) alone, or a random split.
    fn partition(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let mut side = BTreeMap::new();
        if self.rng.chance(50) {
            let alone = match self.leader() {
                Some(leader) => leader,
                None => ids[self.rng.below(ids.len() as u64) as usize],
            };
            side.insert(alone, 1);
        } else {
            for &id in &ids {
                side.insert(id, self.rng.below(2) as u8);
            }
        }
        let show = |s: u8| -> Vec<NodeId> {
            ids.iter()
                .copied()
                .filter(|id| side.get(id).copied().unwrap_or(0) == s)
                .collect()
        };
        self.trace(format!("partition {:?} | {:?}", show(0), show(1)));
        self.net.partition(side);
    }

    /// The network's weather changes.
    fn weather(&mut self) {
        let faults = match self.rng.below(3) {
            0 => Faults::CALM,
            1 => Faults {
                drop: 5,
                duplicate: 5,
                spike: 5,
                latency_max_us: 3_000,
                damage: 2,
            },
            _ => Faults {
                drop: 25,
                duplicate: 15,
                spike: 20,
                latency_max_us: 10_000,
                damage: 10,
            },
        };
        self.trace(format!("network faults now {faults:?}"));
        self.net.set_faults(faults);
    }

    /// The leader hands leadership to another node (setLeader).
    async fn transfer(&mut self) {
        let Some(leader) = self.leader() else { return };
        let others: Vec<NodeId> = self.up().into_iter().filter(|&n| n != leader).collect();
        let Some(to) = self.pick(&others) else { return };
        let Some(raft) = self.raft(leader) else {
            return;
        };
        self.trace(format!("node {leader} hands leadership to node {to}"));
        if let Err(error) = raft.trigger().transfer_leader(to).await {
            self.trace(format!("transfer refused: {error}"));
        }
    }

    /// The end: the network heals, every node comes back, and within [`LIVENESS`] a leader
    /// commits a last document that every node then applies.
    async fn settle(&mut self) -> Result<(), String> {
        self.net.heal();
        self.net.set_faults(Faults::CALM);
        self.trace("the end: the network heals, every node restarts".into());
        for id in self.down() {
            self.start(id).await?;
        }
        let healed = runtime::elapsed();
        let deadline = healed + LIVENESS;
        let last = loop {
            if runtime::elapsed() > deadline {
                return Err(format!(
                    "no leader committed within {LIVENESS:?} of healing"
                ));
            }
            let Some(id) = self.leader() else {
                runtime::sleep(Duration::from_millis(50)).await;
                continue;
            };
            if let Some((seq, client)) = self.propose(id) {
                let acked = runtime::timeout(Duration::from_secs(2), client).await;
                if let Ok(Ok(Some(index))) = acked {
                    break (seq, index);
                }
            }
            runtime::sleep(Duration::from_millis(50)).await;
        };
        let (seq, index) = last;
        let after = (runtime::elapsed() - healed).as_millis();
        self.trace(format!(
            "document {seq} is the last, at index {index}, committed {after} ms after healing"
        ));
        loop {
            let behind: Vec<NodeId> = self
                .nodes
                .iter()
                .filter(|(_, node)| {
                    node.up
                        .as_ref()
                        .and_then(|(_, m)| m.last_applied())
                        .map(|id| id.index)
                        < Some(index)
                })
                .map(|(id, _)| *id)
                .collect();
            if behind.is_empty() {
                break;
            }
            if runtime::elapsed() > deadline {
                return Err(format!(
                    "nodes {behind:?} did not apply index {index} within {LIVENESS:?} of healing"
                ));
            }
            runtime::sleep(Duration::from_millis(20)).await;
        }
        self.checker.verdict()?;
        self.checker.acked_kept()?;
        let document = self.checker.document_at(index);
        for (id, node) in &self.nodes {
            let Some((_, machine)) = &node.up else {
                continue;
            };
            let held = machine.dynsec().map(|d| digest(&d[..]));
            let applied = machine.last_applied().map(|id| id.index);
            if applied < self.checker.last_acked()
                || held != self.checker.document_at(applied.unwrap_or_default())
            {
                return Err(format!("node {id} lost an acknowledged document"));
            }
            if applied == Some(index) && held != document {
                return Err(format!("node {id} does not hold the last document"));
            }
            let records = machine.committed_records();
            self.checker
                .sessions_kept(*id, applied.unwrap_or_default(), &records)?;
        }
        let (messages, net_digest) = self.net.delivered();
        self.trace(format!(
            "done: {} entries committed, {} sessions acknowledged, {messages} messages \
             delivered, history {:016x}, network {net_digest:016x}",
            self.checker.history_len(),
            self.checker.sessions_acked(),
            self.checker.history_digest()
        ));
        Ok(())
    }
}

/// The Full Sync records of a new persistent session `sim-<seq>` as a shard proposes them
/// (CONNECT, SUBSCRIBE, a QoS 1 message queued for it while it is away, a QoS 2 PUBLISH
/// received from it whose PUBREL has not come yet, a retained message), and what must
/// stay of them once acknowledged (its index is set then).
fn session_records(seq: u64) -> (Vec<Record>, SessionAck) {
    let client_id = ByteStr::from(format!("sim-{seq}"));
    let filter = format!("sim/{seq}/#");
    let topic = format!("sim/{seq}/m");
    let retained = format!("sim/{seq}/retained");
    let packet_id = PacketId::MIN;
    let inbound_qos2 = PacketId::MAX;
    let message = |topic: &str, retain: bool| {
        Message::new(
            ByteStr::from(topic.to_string()),
            Bytes::from(format!("m{seq}").into_bytes()),
            QoS::AtLeastOnce,
            retain,
        )
    };
    let changes = [
        SessionDelta::Created {
            protocol: Protocol::V5,
            expiry_interval: 3600,
            username: None,
        },
        SessionDelta::Subscribed {
            filter: ByteStr::from(filter.clone()),
            subscription: Subscription {
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..SubscriptionOptions::default()
                },
                identifier: None,
            },
        },
        SessionDelta::Disconnected { at: seq },
        SessionDelta::Queued {
            packet_id: Some(packet_id),
            delivery: Delivery {
                message: message(&topic, false),
                qos: QoS::AtLeastOnce,
                retain: false,
                subscription_ids: Default::default(),
            },
        },
        SessionDelta::InboundQos2Received {
            packet_id: inbound_qos2,
        },
    ];
    let mut records: Vec<Record> = changes
        .iter()
        .map(|change| Record::session(&client_id, change))
        .collect();
    let retained_topic = ByteStr::from(retained.clone());
    records.push(Record::retained(
        &retained_topic,
        Some(&message(&retained, true)),
    ));
    let ack = SessionAck {
        index: 0,
        client_id: client_id.to_string(),
        filter,
        packet_id: packet_id.get(),
        inbound_qos2: inbound_qos2.get(),
        retained,
    };
    (records, ack)
}

/// Reports what `raft`'s metrics say about leadership (and a node that stopped by itself).
async fn observe(id: NodeId, raft: SimRaft, checker: Rc<Checker>) {
    let mut metrics = raft.metrics();
    drop(raft);
    let mut led = None;
    loop {
        let (term, leads, stopped) = {
            let m = metrics.borrow_watched();
            let leads = m.state == ServerState::Leader && m.current_leader == Some(id);
            (m.current_term, leads, m.running_state.clone().err())
        };
        if let Some(fatal) = stopped {
            checker.violation(format!("node {id} stopped: {fatal}"));
            return;
        }
        if leads && led != Some(term) {
            checker.leader_seen(id, term);
            checker.trace(format!("node {id} leads term {term}"));
            led = Some(term);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Runs one seed. A panic in the run (an assertion of openraft's that the run broke) is
/// its verdict too.
fn simulate(seed: u64, setup: Setup) -> Outcome {
    let trace = Rc::new(RefCell::new(Vec::new()));
    let seen = trace.clone();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed, setup, seen)));
    run.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let trace = trace.borrow().clone();
        Outcome {
            result: Err(format!("a panic: {what}")),
            trace,
        }
    })
}

fn run(seed: u64, setup: Setup, trace: Rc<RefCell<Vec<String>>>) -> Outcome {
    runtime::run(seed, async move {
        let mut sim = match Sim::new(seed, setup, trace.clone()) {
            Ok(sim) => sim,
            Err(error) => {
                return Outcome {
                    result: Err(error),
                    trace: Vec::new(),
                }
            }
        };
        let result = sim.drive().await;
        Outcome {
            result,
            trace: sim.checker.lines(),
        }
    })
}
