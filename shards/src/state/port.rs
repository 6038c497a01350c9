//! The output port: every durable change a shard applies, in order, for a consumer that is
//! not a shard (a cluster leader's replication core; the simulator's follower).
//!
//! Placement: one [`OutputRing`] per shard, shared by `Arc` between the shard (its
//! [`OutputPort`]) and the consumer (an [`OutputDrain`]). What is emitted: every applied
//! change of a persistent session (keyed by client id, as it will travel), and every
//! retained message change in the order the topic's owner shard decided it; each with the
//! shard's next sequence number. Nothing is emitted, and nothing is cloned, while no
//! consumer is attached: the shard checks one `Option`.
//!
//! Durable: the consumer tells the shard how far its stream is durable (committed by a
//! majority, in a cluster) with [`OutputRing::set_durable`], which wakes the shard when it
//! waits for that ([`OutputRing::poll_durable`]); a gated shard holds the acknowledgements
//! of changes until then (`shard::gate`).
//!
//! Bounded: a full ring never drops and never blocks. Changes wait in the shard's overflow
//! queue (in order, behind the ring) and the shard stops reading its clients until the
//! consumer caught up ([`OutputPort::congested`]), as a full mesh ring does.
//!
//! ```text
//!   Shard::apply ─► OutputPort::emit ─► ring (SPSC, bounded) ─► OutputDrain ─► consumer
//!                          └─► overflow (while the ring is full; readers held back)
//! ```

use super::record::Record;
use super::SessionDelta;
use crate::limits::OUTPUT_RING_CAPACITY;
use crate::message::Message;
use crate::mqtt::ByteStr;
use crossbeam_queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;

/// One durable change as it leaves a shard: in-memory types (reference counts, no copy of
/// payloads); the consumer turns it into a [`Record`] on its own thread.
#[derive(Clone, Debug, PartialEq)]
pub enum Emission {
    /// A change to the persistent session of `client_id`.
    Session {
        /// Client identifier.
        client_id: ByteStr,
        /// The change.
        change: SessionDelta,
    },
    /// The retained message of `topic`, as its owner shard ordered it.
    Retained {
        /// Topic name.
        topic: ByteStr,
        /// The message, or `None` when cleared.
        message: Option<Message>,
    },
}

impl Emission {
    /// The record of this change.
    pub fn to_record(&self) -> Record {
        match self {
            Emission::Session { client_id, change } => Record::session(client_id, change),
            Emission::Retained { topic, message } => Record::retained(topic, message.as_ref()),
        }
    }
}

/// A change with its position in the shard's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Emitted {
    /// Sequence number: 1 for the shard's first change, one more for each next.
    pub seq: u64,
    /// The change.
    pub emission: Emission,
}

/// The ring between one shard and the consumer.
pub struct OutputRing {
    queue: ArrayQueue<Emitted>,
    waker: atomic_waker::AtomicWaker,
    /// Set by the consumer before it parks; the shard wakes it on its next push.
    parked: AtomicBool,
    /// The highest sequence number the consumer has made durable (commit, in a cluster):
    /// written by the consumer ([`OutputRing::set_durable`]), read by the shard.
    pub durable: AtomicU64,
    /// The shard's task that waits for `durable` to advance.
    durable_waker: atomic_waker::AtomicWaker,
    /// Set by that task before it parks; the consumer wakes it on its next advance.
    durable_parked: AtomicBool,
}

impl OutputRing {
    /// An empty ring of [`OUTPUT_RING_CAPACITY`] changes.
    pub fn new() -> Arc<OutputRing> {
        Arc::new(OutputRing {
            queue: ArrayQueue::new(OUTPUT_RING_CAPACITY),
            waker: atomic_waker::AtomicWaker::new(),
            parked: AtomicBool::new(false),
            durable: AtomicU64::new(0),
            durable_waker: atomic_waker::AtomicWaker::new(),
            durable_parked: AtomicBool::new(false),
        })
    }

    /// For the consumer: every change up to `seq` is durable. Never moves back. Wakes the
    /// shard when it waits for this (one wake-up however many advances came meanwhile).
    pub fn set_durable(&self, seq: u64) {
        self.durable.fetch_max(seq, Ordering::AcqRel);
        // Pairs with the fence in `poll_durable`: either the shard sees the new value when
        // it re-checks, or we see its parked flag.
        fence(Ordering::SeqCst);
        if self.durable_parked.swap(false, Ordering::AcqRel) {
            self.durable_waker.wake();
        }
    }

    /// For the shard: how far the stream is durable.
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// For the shard: ready with the durable sequence number once it is above `seen`;
    /// otherwise registers the task to be woken by the next [`OutputRing::set_durable`].
    pub fn poll_durable(&self, seen: u64, cx: &mut std::task::Context<'_>) -> Poll<u64> {
        let durable = self.durable();
        if durable > seen {
            return Poll::Ready(durable);
        }
        self.durable_waker.register(cx.waker());
        self.durable_parked.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        let durable = self.durable();
        if durable > seen {
            self.durable_parked.store(false, Ordering::Release);
            Poll::Ready(durable)
        } else {
            Poll::Pending
        }
    }
}

/// The shard's end of its ring. Placement: one per shard (in `Shard`).
#[derive(Default)]
pub struct OutputPort {
    ring: Option<Arc<OutputRing>>,
    next_seq: u64,
    overflow: VecDeque<Emitted>,
}

impl OutputPort {
    /// Attaches a consumer's ring; changes applied from now on are emitted.
    pub fn attach(&mut self, ring: Arc<OutputRing>) {
        self.ring = Some(ring);
    }

    /// Detaches the consumer: nothing more is emitted, and what waited is dropped.
    pub fn detach(&mut self) {
        self.ring = None;
        self.overflow.clear();
    }

    /// True while a consumer is attached (the shard emits only then).
    #[inline]
    pub fn attached(&self) -> bool {
        self.ring.is_some()
    }

    /// The sequence number the last emitted change got (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq
    }

    /// Emits one change, behind every change emitted before it.
    pub fn emit(&mut self, emission: Emission) {
        let Some(ring) = &self.ring else {
            return;
        };
        self.next_seq += 1;
        let emitted = Emitted {
            seq: self.next_seq,
            emission,
        };
        if !self.overflow.is_empty() {
            self.overflow.push_back(emitted);
            return;
        }
        if let Err(emitted) = ring.queue.push(emitted) {
            self.overflow.push_back(emitted);
        }
        if ring.parked.swap(false, Ordering::AcqRel) {
            ring.waker.wake();
        }
    }

    /// Moves what waited in the overflow into the ring, as far as it has room; true when
    /// the overflow is empty afterwards.
    pub fn flush(&mut self) -> bool {
        let Some(ring) = &self.ring else {
            return true;
        };
        let moved = !self.overflow.is_empty();
        while let Some(emitted) = self.overflow.pop_front() {
            if let Err(emitted) = ring.queue.push(emitted) {
                self.overflow.push_front(emitted);
                break;
            }
        }
        if moved && ring.parked.swap(false, Ordering::AcqRel) {
            ring.waker.wake();
        }
        self.overflow.is_empty()
    }

    /// True while changes wait for room in the ring: the shard holds its readers back.
    #[inline]
    pub fn congested(&self) -> bool {
        !self.overflow.is_empty()
    }
}

/// The consumer's end of every shard's ring.
pub struct OutputDrain {
    rings: Vec<Arc<OutputRing>>,
}

impl OutputDrain {
    /// A drain over `rings`, one per shard, in shard order.
    pub fn new(rings: Vec<Arc<OutputRing>>) -> OutputDrain {
        OutputDrain { rings }
    }

    /// The rings, in shard order.
    pub fn rings(&self) -> &[Arc<OutputRing>] {
        &self.rings
    }

    /// Takes at most `budget` changes of shard `shard`, in order, into `out`; returns how
    /// many it took.
    pub fn take(&self, shard: usize, budget: usize, out: &mut Vec<Emitted>) -> usize {
        let Some(ring) = self.rings.get(shard) else {
            return 0;
        };
        let mut taken = 0;
        while taken < budget {
            let Some(emitted) = ring.queue.pop() else {
                break;
            };
            out.push(emitted);
            taken += 1;
        }
        taken
    }

    /// Registers `waker` to be woken by the next change any shard emits. Returns true if a
    /// ring already holds changes (the caller should drain instead of parking).
    pub fn park(&self, waker: &std::task::Waker) -> bool {
        for ring in &self.rings {
            ring.waker.register(waker);
            ring.parked.store(true, Ordering::Release);
        }
        self.rings.iter().any(|ring| !ring.queue.is_empty())
    }
}
