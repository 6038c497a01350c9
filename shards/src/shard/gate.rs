//! Acknowledge after commit: on a shard whose durable changes are replicated and gated (a
//! Full Sync leader), a packet that confirms changes leaves only once they are durable
//! (committed by a majority), so that no failover loses what a client was told is done.
//!
//! Gated packets (written with a mark, `Connection::send_held`): CONNACK of a session
//! created or resumed with a non-zero expiry, SUBACK, UNSUBACK, PUBACK/PUBREC of an accepted
//! publish, PUBCOMP, PUBREL, and outgoing QoS 2 PUBLISH (a failover could otherwise deliver
//! it twice). Refusals confirm nothing and take no mark; like everything else written to a
//! connection they still leave only after the marked packets before them.
//!
//! Turns. A mark carries the turn that wrote it: the packets, mesh messages, tick or
//! command a shard handles between two [`Shard::end_turn`]s. Sealing a turn that made
//! marks records what they need, for all of them at once:
//! - this shard's stream up to its last sequence number (everything emitted so far, which
//!   includes what the packets confirm: a little more than needed, within one commit);
//! - each other shard the turn's accepted QoS 1/2 publishes were routed to (their
//!   deliveries change sessions there) or whose retained store ordered them: one
//!   `DurableBarrier` per turn and target, sent behind the deliveries. Mesh rings are FIFO
//!   per pair, so the target has applied them when it reads the barrier; it answers
//!   `DurableBarrierPassed` once its own stream is durable up to that point.
//!
//! Turns are released in order (the last of the prefix of sealed turns whose needs are
//! met), so a mark never waits for a table lookup: the flusher compares two numbers.
//!
//! ```text
//!   handle ─► send_held (mark: turn t) ─► end_turn: seal t (own seq, barriers) ─┐
//!   consumer: OutputRing::set_durable ─► runtime gate task ─► gate_advance ◄────┘
//!        ─► answers owed barriers; released ≥ t ─► held connections flushed
//! ```
//!
//! Cost with no gate (standalone, follower, Dynamic-Security Sync, a consumer that only
//! measures emission): one `Option` check per gated packet and per turn; nothing per QoS 0
//! message. Called by the packet handlers (`hold`), `end_turn` (`seal_turn`), `mesh_in`
//! (barriers), and the runtime (`replicate`, `gate_advance`, `sendable`).

use super::Shard;
use crate::connection::{CloseReason, ConnId};
use crate::mesh::{ShardId, ShardMsg};
use crate::mqtt::{reason, Disconnect, Packet};
use crate::state::port::OutputRing;
use std::collections::VecDeque;
use std::sync::Arc;

/// How a shard's durable changes leave it.
#[derive(Clone)]
pub enum Replication {
    /// Nothing is emitted and nothing waits (a standalone broker, a Full Sync follower,
    /// Dynamic-Security Sync).
    Off,
    /// Changes are emitted on this ring; acknowledgements do not wait (a consumer that only
    /// measures emission).
    Emit(Arc<OutputRing>),
    /// Changes are emitted on this ring and every gated packet waits until what it confirms
    /// is durable there (a Full Sync leader).
    Gated(Arc<OutputRing>),
}

/// The gate of one shard: sealed turns, barriers owed to other shards, connections holding
/// bytes. Placement: `Shard::gate`, present only while gating.
pub struct Gate {
    ring: Arc<OutputRing>,
    /// The stream's last sequence number when the gate was attached: what came before was
    /// never emitted on this ring and counts as durable.
    floor: u64,
    /// How far the stream is durable, as last read.
    durable: u64,
    /// The current turn wrote a gated packet.
    marked: bool,
    /// Other shards the current turn's gated packets depend on (bit per shard).
    targets: u64,
    /// Sealed turns not yet released, oldest first.
    sealed: VecDeque<Sealed>,
    /// Every turn up to this one is released.
    released: u64,
    /// Barrier answers this shard owes others once its stream is durable far enough, in
    /// sequence order.
    owed: VecDeque<Owed>,
    /// Connections whose bytes wait for a turn (each once: `Connection::held`).
    held: Vec<ConnId>,
}

/// What a sealed turn needs.
#[derive(Clone, Copy, Debug)]
struct Sealed {
    turn: u64,
    /// This shard's stream must be durable up to here.
    seq: u64,
    /// Barrier answers still missing.
    waiting: u32,
}

/// A barrier answer owed to `source` once this shard's stream is durable up to `seq`.
#[derive(Clone, Copy, Debug)]
struct Owed {
    seq: u64,
    source: ShardId,
    turn: u64,
}

impl Gate {
    /// How far the stream is durable now (what came before the gate counts as durable).
    fn durable_now(&self) -> u64 {
        self.ring.durable().max(self.floor)
    }
}

/// The turn a gated packet written now waits for, when `gate` gates; `remote` adds the
/// shards (bits) it depends on. A free function so callers can hold a connection borrowed
/// from the same shard.
#[inline]
pub(super) fn hold_in(gate: &mut Option<Box<Gate>>, turn: u64, remote: u64) -> Option<u64> {
    let gate = gate.as_deref_mut()?;
    gate.marked = true;
    gate.targets |= remote;
    Some(turn)
}

impl Shard {
    /// [`hold_in`] for this shard.
    #[inline]
    pub(super) fn hold(&mut self, remote: u64) -> Option<u64> {
        hold_in(&mut self.gate, self.turn, remote)
    }

    /// True while this shard gates acknowledgements.
    pub fn gated(&self) -> bool {
        self.gate.is_some()
    }

    /// Sets how durable changes leave this shard (the cluster's replication core, on a
    /// change of role; the runtime at start). Turning a gate off (the node stopped
    /// leading) drops every byte still held: those acknowledgements were never committed
    /// and must not be sent. Their connections are closed (5.0: DISCONNECT 0x8B) so that
    /// the clients resend on their next connection, and the barrier answers owed to other
    /// shards are forgotten (theirs are dropped the same way).
    pub fn replicate(&mut self, replication: Replication) {
        let ring = match replication {
            Replication::Off => {
                self.output.detach();
                None
            }
            Replication::Emit(ring) => {
                self.output.attach(ring);
                None
            }
            Replication::Gated(ring) => {
                self.output.attach(ring.clone());
                Some(ring)
            }
        };
        match (ring, self.gate.is_some()) {
            (None, true) => self.drop_held(),
            (Some(ring), had_gate) => {
                if had_gate {
                    self.drop_held();
                }
                let floor = self.output.last_seq();
                self.gate = Some(Box::new(Gate {
                    ring,
                    floor,
                    durable: floor,
                    marked: false,
                    targets: 0,
                    sealed: VecDeque::new(),
                    released: self.turn - 1,
                    owed: VecDeque::new(),
                    held: Vec::new(),
                }));
            }
            (None, false) => {}
        }
    }

    /// Removes the gate, dropping what it held (see [`Shard::replicate`]).
    fn drop_held(&mut self) {
        let Some(gate) = self.gate.take() else { return };
        let released = gate.released;
        for (_, conn) in self.conns.iter_mut() {
            conn.held = false;
            if conn.marks.is_empty() {
                continue;
            }
            let keep = conn.releasable(released);
            conn.marks.clear();
            if keep == conn.out.len() {
                continue;
            }
            conn.out.truncate(keep);
            log::info!(
                "Client {} disconnected, acknowledgements not committed.",
                conn.client_id
            );
            if conn.closing.is_none() {
                if conn.protocol.is_v5() {
                    let disconnect = Disconnect {
                        reason_code: reason::SERVER_SHUTTING_DOWN,
                        ..Default::default()
                    };
                    conn.send(&Packet::Disconnect(Box::new(disconnect)));
                }
                conn.will_on_close = false;
                conn.close(CloseReason::Administrative);
            }
        }
    }

    /// The ring the gate waits on and how far it saw it durable, for the runtime's task
    /// that waits for the consumer ([`OutputRing::poll_durable`]); `None` without a gate.
    pub fn gate_ring(&self) -> Option<(Arc<OutputRing>, u64)> {
        let gate = self.gate.as_deref()?;
        Some((gate.ring.clone(), gate.durable))
    }

    /// The turn ends: if it wrote gated packets, records what they need and sends the
    /// barriers (behind this turn's deliveries, which `end_turn` sent first).
    pub(super) fn seal_turn(&mut self) {
        let Some(gate) = self.gate.as_deref_mut() else {
            return;
        };
        if !gate.marked {
            return;
        }
        let turn = self.turn;
        self.turn += 1;
        gate.marked = false;
        let targets = std::mem::take(&mut gate.targets) & !(1u64 << self.id);
        gate.sealed.push_back(Sealed {
            turn,
            seq: self.output.last_seq(),
            waiting: targets.count_ones(),
        });
        let source = self.id;
        for target in super::publish::shard_bits(targets) {
            self.mesh
                .send(target, ShardMsg::DurableBarrier { source, turn });
        }
        self.gate_advance();
    }

    /// Another shard's barrier: answered once this shard's stream is durable as far as it
    /// is now (at once without a gate: nothing here is waited for).
    pub(super) fn durable_barrier(&mut self, source: ShardId, turn: u64) {
        let seq = self.output.last_seq();
        if let Some(gate) = self.gate.as_deref_mut() {
            if seq > gate.durable_now() {
                gate.owed.push_back(Owed { seq, source, turn });
                return;
            }
        }
        self.mesh
            .send(source, ShardMsg::DurableBarrierPassed { turn });
    }

    /// Another shard answered the barrier of `turn`.
    pub(super) fn durable_barrier_passed(&mut self, turn: u64) {
        let Some(gate) = self.gate.as_deref_mut() else {
            return;
        };
        if let Some(sealed) = gate.sealed.iter_mut().find(|sealed| sealed.turn == turn) {
            sealed.waiting = sealed.waiting.saturating_sub(1);
            self.gate_advance();
        }
    }

    /// Reads how far the stream is durable and acts on it: answers the barriers owed to
    /// other shards, releases the turns whose needs are met, and puts the connections
    /// they held back on the flush queue. The runtime calls it when the consumer advanced
    /// the ring; the shard after sealing a turn and after a barrier answer.
    pub fn gate_advance(&mut self) {
        let Some(gate) = self.gate.as_deref_mut() else {
            return;
        };
        let durable = gate.durable_now();
        gate.durable = durable;
        while let Some(owed) = gate.owed.front().copied() {
            if owed.seq > durable {
                break;
            }
            gate.owed.pop_front();
            let turn = owed.turn;
            self.mesh
                .send(owed.source, ShardMsg::DurableBarrierPassed { turn });
        }
        let before = gate.released;
        while let Some(sealed) = gate.sealed.front() {
            if sealed.seq > durable || sealed.waiting > 0 {
                break;
            }
            gate.released = sealed.turn;
            gate.sealed.pop_front();
        }
        if gate.released == before {
            return;
        }
        let released = gate.released;
        let conns = &mut self.conns;
        gate.held.retain(|id| {
            let Some(conn) = conns.get_mut(id.slot as usize).filter(|c| c.id == *id) else {
                return false;
            };
            match conn.marks.front() {
                Some(mark) if mark.turn > released => true,
                _ => {
                    conn.held = false;
                    conn.wake_writer();
                    false
                }
            }
        });
    }

    /// How many bytes at the front of connection `id`'s outbound buffer may be written
    /// now; when some must wait, the connection is listed to be woken on their release.
    /// The runtime's flusher writes only these.
    pub fn sendable(&mut self, id: ConnId) -> usize {
        let Some(conn) = self.conns.get_mut(id.slot as usize).filter(|c| c.id == id) else {
            return 0;
        };
        if conn.marks.is_empty() {
            return conn.out.len();
        }
        let released = self.gate.as_deref().map_or(u64::MAX, |gate| gate.released);
        let sendable = conn.releasable(released);
        if !conn.marks.is_empty() && !conn.held {
            if let Some(gate) = self.gate.as_deref_mut() {
                conn.held = true;
                gate.held.push(id);
            }
        }
        sendable
    }

    /// Takes the bytes of connection `id` that may be written now ([`Shard::sendable`]),
    /// as a socket would: for drivers without sockets (tests, the simulation).
    pub fn take_sendable(&mut self, id: ConnId) -> bytes::BytesMut {
        let sendable = self.sendable(id);
        let Some(conn) = self.conn_mut(id) else {
            return bytes::BytesMut::new();
        };
        conn.taken(sendable);
        conn.out.split_to(sendable)
    }

    /// A passive shard decides nothing on its own: no session expires, no delayed will is
    /// published (a Full Sync follower: the leader decides, and its changes arrive as
    /// records). Turning passivity off (the node became the leader) re-arms the will
    /// timers from the state and ends the sessions the state holds as connected while no
    /// connection of this node is attached to them (their clients were connected to the
    /// old leader); expiry resumes with the next tick.
    pub fn set_passive(&mut self, passive: bool) {
        if std::mem::replace(&mut self.passive, passive) == passive {
            return;
        }
        // Timers armed while passive (by restores) may name sessions resumed since.
        self.delayed_wills.clear();
        if !passive {
            self.rearm_wills();
            self.close_orphans();
        }
    }

    /// True while this shard decides nothing on its own ([`Shard::set_passive`]).
    pub fn passive(&self) -> bool {
        self.passive
    }
}
