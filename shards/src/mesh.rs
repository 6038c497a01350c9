//! The cross-core mesh: every message one shard sends another, and the bounded rings they
//! travel on.
//!
//! Owns [`ShardMsg`] (the complete vocabulary between shard states), one bounded lock-free
//! ring per (source, target) pair, and the wake-up protocol. Runtime cargo (socket
//! hand-offs, commands from other threads) travels in `runtime::inbox`, not here. Placement: one [`Mesh`] per process,
//! shared by `Arc`; each shard holds a [`MeshPort`], its own view for sending and receiving.
//!
//! Batching and syscalls: a send is a push onto a ring. The target is woken (a cross-thread
//! waker, which costs an `eventfd` write) only when it parked itself after finding all its
//! rings empty, so a burst of messages costs one wake-up, not one per message. The target
//! drains every ring it owns in one pass before it parks again.
//!
//! Backpressure: a full ring never blocks and never drops. The message goes onto the
//! sender's per-target overflow queue; while any overflow is non-empty the sender's
//! connections stop reading their sockets (see [`MeshPort::congested`]), so the overflow is
//! bounded by what was already read.
//!
//! Interest word: one process-wide atomic, on a cache line of its own, written only when
//! subscriptions change. Its high bits are the interest epoch: a shard that pushed
//! `Interest` messages (a subscription changed which shards want which topics) bumps it
//! after the pushes. Its low bits count the shards handling a SUBSCRIBE at this moment
//! (set when the packet is decoded, cleared once its interest is pushed). Before a shard
//! routes the packets it just read, it loads the word once: while another shard is
//! mid-SUBSCRIBE it waits for it (bounded, `runtime/connection.rs`), and when the epoch
//! moved since it last caught up it drains its rings first
//! ([`crate::shard::Shard::catch_up_interest`]). A publish read after another core read a
//! SUBSCRIBE is thus routed with that subscription, as a single thread would route it.

use crate::delivery_batch::{DeliveryBatch, OutBatch};
use crate::limits::MESH_RING_CAPACITY;
use crate::message::Message;
use crate::state::store::InterestChange;
use crate::state::store::SharedKey;
use crossbeam_queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Index of a shard (a core).
pub type ShardId = u8;

/// Every message that crosses cores.
pub enum ShardMsg {
    /// Deliver each message to the local subscribers whose plain filters match.
    Deliver(DeliveryBatch),
    /// Deliver to one local member of a shared subscription.
    DeliverShared(Box<(SharedKey, Message)>),
    /// A shard's subscriptions changed.
    Interest {
        /// The shard whose interest changed.
        source: ShardId,
        /// The change.
        change: InterestChange,
    },
    /// To the topic's owner shard: set or clear a topic's retained message.
    RetainRequest(Box<RetainRequest>),
    /// From the owner to the source of a `RetainRequest` with a token: broadcast done.
    RetainDone {
        /// The request's token.
        token: u64,
    },
    /// From the owner to every other shard: the retained message of a topic, in the owner's
    /// order.
    RetainApply(Box<(crate::mqtt::ByteStr, Option<Message>)>),
    /// Disconnect these clients (their rights changed).
    Kick(Arc<crate::dynsec::Kicks>),
    /// Answer with `BarrierPassed` once everything `source` sent before is applied.
    Barrier {
        /// The shard waiting.
        source: ShardId,
        /// Its barrier id.
        barrier: u64,
    },
    /// A shard passed barrier `barrier`.
    BarrierPassed {
        /// The barrier id.
        barrier: u64,
    },
}

/// A retained message on its way to the owner of its topic.
pub struct RetainRequest {
    /// Topic.
    pub topic: crate::mqtt::ByteStr,
    /// The new retained message, or `None` to clear it.
    pub message: Option<Message>,
    /// The shard that received the publish.
    pub source: ShardId,
    /// Set when the source waits for `RetainDone` to acknowledge the publish.
    pub token: Option<u64>,
}

struct Inbox {
    waker: atomic_waker::AtomicWaker,
    parked: AtomicBool,
}

/// A counter on a cache line of its own: the shards' reads of it stay hits in their own
/// caches until a write, and no neighbouring field's writes invalidate it.
#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// One value of the interest word: the epoch in the high 48 bits, the number of shards
/// handling a SUBSCRIBE in the low 16 (at most [`crate::limits::SHARDS_MAX`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterestWord(u64);

/// One step of the interest epoch in the interest word.
const EPOCH_UNIT: u64 = 1 << 16;

impl InterestWord {
    /// How many times shards announced pushed `Interest` messages.
    #[inline]
    pub fn epoch(self) -> u64 {
        self.0 >> 16
    }

    /// True while some shard handles a SUBSCRIBE whose interest is not pushed yet.
    #[inline]
    pub fn subscribing(self) -> bool {
        self.0 & (EPOCH_UNIT - 1) != 0
    }
}

const _: () = assert!(crate::limits::SHARDS_MAX < EPOCH_UNIT as usize);

/// Held while a shard handles a SUBSCRIBE: counted in the interest word, so other shards
/// about to route what they read wait until it is dropped ([`InterestWord::subscribing`]),
/// even if the handling panics.
pub struct Subscribing(Arc<Mesh>);

impl Subscribing {
    /// Marks the start of a SUBSCRIBE's handling.
    pub fn begin(mesh: Arc<Mesh>) -> Subscribing {
        mesh.interest.0.fetch_add(1, Ordering::Release);
        Subscribing(mesh)
    }
}

impl Drop for Subscribing {
    fn drop(&mut self) {
        self.0.interest.0.fetch_sub(1, Ordering::Release);
    }
}

/// The rings and wake-up state of all shards.
pub struct Mesh {
    shards: usize,
    /// Ring `source * shards + target`.
    rings: Vec<ArrayQueue<ShardMsg>>,
    /// Per ring: its source found it full and waits for room (the target wakes it).
    blocked: Vec<AtomicBool>,
    inboxes: Vec<Inbox>,
    /// The interest word (see the module comment and [`InterestWord`]).
    interest: Padded,
}

impl Mesh {
    /// A mesh for `shards` shards.
    pub fn new(shards: usize) -> Arc<Mesh> {
        assert!((1..=crate::limits::SHARDS_MAX).contains(&shards));
        let rings = (0..shards * shards)
            .map(|_| ArrayQueue::new(MESH_RING_CAPACITY))
            .collect();
        let inboxes = (0..shards)
            .map(|_| Inbox {
                waker: atomic_waker::AtomicWaker::new(),
                parked: AtomicBool::new(false),
            })
            .collect();
        let blocked = (0..shards * shards)
            .map(|_| AtomicBool::new(false))
            .collect();
        Arc::new(Mesh {
            shards,
            rings,
            blocked,
            inboxes,
            interest: Padded::default(),
        })
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards
    }

    fn ring(&self, source: ShardId, target: ShardId) -> &ArrayQueue<ShardMsg> {
        &self.rings[usize::from(source) * self.shards + usize::from(target)]
    }

    fn blocked(&self, source: ShardId, target: ShardId) -> &AtomicBool {
        &self.blocked[usize::from(source) * self.shards + usize::from(target)]
    }

    /// The interest word now. Acquire: every `Interest` push announced in the epoch read is
    /// visible on its ring.
    #[inline]
    pub fn interest(&self) -> InterestWord {
        InterestWord(self.interest.0.load(Ordering::Acquire))
    }

    /// Pops up to `budget` messages addressed to shard `me`, in per-source order, until
    /// `handle` returns false (the shard wants to stop, e.g. under backpressure). A source
    /// that found its ring full is woken once there is room again.
    pub fn drain(
        &self,
        me: ShardId,
        budget: usize,
        mut handle: impl FnMut(ShardMsg) -> bool,
    ) -> usize {
        let mut handled = 0;
        let mut go_on = true;
        for source in 0..self.shards as ShardId {
            let ring = self.ring(source, me);
            let before = handled;
            while go_on && handled < budget {
                let Some(msg) = ring.pop() else { break };
                go_on = handle(msg);
                handled += 1;
            }
            let blocked = self.blocked(source, me);
            // Pairs with the fence in `push_or_block`: either the source sees the room we
            // made, or we see its flag.
            fence(Ordering::SeqCst);
            if handled > before && source != me && blocked.swap(false, Ordering::SeqCst) {
                self.wake(source);
            }
        }
        handled
    }

    fn wake(&self, target: ShardId) {
        let inbox = &self.inboxes[usize::from(target)];
        // Pairs with the fence in `poll_parked`: either the target sees our message when it
        // re-checks, or we see its parked flag here.
        fence(Ordering::SeqCst);
        if inbox.parked.swap(false, Ordering::AcqRel) {
            inbox.waker.wake();
        }
    }
}

/// One shard's handle on the mesh.
pub struct MeshPort {
    mesh: Arc<Mesh>,
    me: ShardId,
    overflow: Vec<VecDeque<ShardMsg>>,
    overflowing: usize,
    /// Deliveries gathered this turn, per target (see `delivery_batch`).
    batches: Vec<OutBatch>,
}

impl MeshPort {
    /// The port of shard `me`.
    pub fn new(mesh: Arc<Mesh>, me: ShardId) -> MeshPort {
        assert!(usize::from(me) < mesh.shards);
        let overflow = (0..mesh.shards).map(|_| VecDeque::new()).collect();
        let batches = (0..mesh.shards).map(|_| OutBatch::default()).collect();
        MeshPort {
            mesh,
            me,
            overflow,
            overflowing: 0,
            batches,
        }
    }

    /// The mesh this port belongs to.
    pub fn mesh_handle(&self) -> Arc<Mesh> {
        self.mesh.clone()
    }

    /// This shard's id.
    pub fn me(&self) -> ShardId {
        self.me
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.mesh.shards
    }

    /// Sends `msg` to `target` (never this shard: local work is a function call).
    pub fn send(&mut self, target: ShardId, msg: ShardMsg) {
        assert_ne!(
            target, self.me,
            "local messages are function calls, not mesh sends"
        );
        let queue = &mut self.overflow[usize::from(target)];
        if !queue.is_empty() {
            queue.push_back(msg);
            return;
        }
        if let Err(back) = self.push_or_block(target, msg) {
            self.overflow[usize::from(target)].push_back(back);
            self.overflowing += 1;
        }
        self.mesh.wake(target);
    }

    /// Pushes onto the ring to `target`; when it is full, raises the blocked flag (the
    /// target wakes this shard after its next drain) and tries once more. The second try
    /// closes the race with a target that drained everything between the first try and
    /// the flag: it saw no flag and will not wake us, but then there is room now. Without
    /// it this shard's readers could wait for an overflow flush nobody triggers.
    fn push_or_block(&self, target: ShardId, msg: ShardMsg) -> Result<(), ShardMsg> {
        let ring = self.mesh.ring(self.me, target);
        let back = match ring.push(msg) {
            Ok(()) => return Ok(()),
            Err(back) => back,
        };
        self.mesh
            .blocked(self.me, target)
            .store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        ring.push(back)
    }

    /// Adds `message` to this turn's delivery batch for `target`.
    pub fn deliver(&mut self, target: ShardId, message: &Message) {
        assert_ne!(target, self.me, "local deliveries are function calls");
        self.batches[usize::from(target)].push(message);
    }

    /// [`MeshPort::deliver`], taking the message: for its last target (see
    /// [`OutBatch::push_owned`]).
    pub fn deliver_owned(&mut self, target: ShardId, message: Message) {
        assert_ne!(target, self.me, "local deliveries are function calls");
        self.batches[usize::from(target)].push_owned(message);
    }

    /// Sends the delivery batches gathered this turn (the runtime calls it at the end of
    /// every turn that may have published).
    pub fn flush_batches(&mut self) {
        for target in 0..self.mesh.shards {
            if !self.batches[target].is_empty() {
                let batch = self.batches[target].finish();
                self.send(target as ShardId, ShardMsg::Deliver(batch));
            }
        }
    }

    /// Sends a clone of `msg` to every other shard.
    pub fn broadcast(&mut self, make: impl Fn() -> ShardMsg) {
        for target in 0..self.mesh.shards as ShardId {
            if target != self.me {
                self.send(target, make());
            }
        }
    }

    /// True while some message waits in an overflow queue: connections should stop reading.
    pub fn congested(&self) -> bool {
        self.overflowing > 0
    }

    /// Moves overflowed messages onto their rings as room appears; true when none is left.
    pub fn flush_overflow(&mut self) -> bool {
        if self.overflowing == 0 {
            return true;
        }
        for target in 0..self.mesh.shards {
            if self.overflow[target].is_empty() {
                continue;
            }
            while let Some(msg) = self.overflow[target].pop_front() {
                if let Err(back) = self.push_or_block(target as ShardId, msg) {
                    self.overflow[target].push_front(back);
                    break;
                }
            }
            if self.overflow[target].is_empty() {
                self.overflowing -= 1;
            }
            self.mesh.wake(target as ShardId);
        }
        self.overflowing == 0
    }

    /// Pops up to `budget` messages addressed to this shard ([`Mesh::drain`]).
    pub fn drain(&self, budget: usize, handle: impl FnMut(ShardMsg) -> bool) -> usize {
        self.mesh.drain(self.me, budget, handle)
    }

    /// Announces the `Interest` messages this shard just pushed: bumps the interest epoch
    /// (Release, after the pushes). Returns the epoch before the bump.
    pub fn interest_pushed(&self) -> u64 {
        let before = self
            .mesh
            .interest
            .0
            .fetch_add(EPOCH_UNIT, Ordering::Release);
        InterestWord(before).epoch()
    }

    /// [`Mesh::interest`].
    #[inline]
    pub fn interest(&self) -> InterestWord {
        self.mesh.interest()
    }

    /// True when some overflowed message could move onto its ring now.
    pub fn can_flush(&self) -> bool {
        self.overflowing > 0
            && (0..self.mesh.shards).any(|target| {
                !self.overflow[target].is_empty()
                    && !self.mesh.ring(self.me, target as ShardId).is_full()
            })
    }

    fn inbox_empty(&self) -> bool {
        (0..self.mesh.shards as ShardId).all(|source| self.mesh.ring(source, self.me).is_empty())
    }

    /// Parks until a message arrives: registers the waker, raises the parked flag, and
    /// re-checks the rings so a message pushed in between is not missed.
    pub fn poll_parked(&self, cx: &mut Context<'_>) -> Poll<()> {
        let inbox = &self.mesh.inboxes[usize::from(self.me)];
        inbox.waker.register(cx.waker());
        inbox.parked.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.inbox_empty() {
            Poll::Pending
        } else {
            inbox.parked.store(false, Ordering::Release);
            Poll::Ready(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{ByteStr, Bytes, QoS};

    fn msg(n: u8) -> ShardMsg {
        let message = Message::new(
            ByteStr::from_static("t"),
            Bytes::from(vec![n]),
            QoS::AtMostOnce,
            false,
        );
        ShardMsg::Deliver(DeliveryBatch {
            messages: vec![message],
        })
    }

    #[test]
    fn full_ring_overflows_in_order_and_flushes_when_drained() {
        let mesh = Mesh::new(2);
        let mut zero = MeshPort::new(mesh.clone(), 0);
        let one = MeshPort::new(mesh, 1);
        for i in 0..MESH_RING_CAPACITY + 3 {
            zero.send(1, msg(i as u8));
        }
        assert!(zero.congested());
        let mut seen = Vec::new();
        let record = |m: ShardMsg| {
            if let ShardMsg::Deliver(batch) = m {
                seen.extend(batch.messages.iter().map(|message| message.payload[0]));
            }
            true
        };
        let mut record = record;
        assert_eq!(one.drain(usize::MAX, &mut record), MESH_RING_CAPACITY);
        assert!(zero.flush_overflow());
        assert!(!zero.congested());
        assert_eq!(one.drain(usize::MAX, &mut record), 3);
        let expected: Vec<u8> = (0..MESH_RING_CAPACITY + 3).map(|i| i as u8).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_full_ring_wakes_its_source_when_the_target_drains() {
        let mesh = Mesh::new(2);
        let mut zero = MeshPort::new(mesh.clone(), 0);
        let one = MeshPort::new(mesh.clone(), 1);
        for i in 0..MESH_RING_CAPACITY + 1 {
            zero.send(1, msg(i as u8));
        }
        assert!(!zero.can_flush(), "the ring is full");
        assert!(mesh.blocked(0, 1).load(Ordering::SeqCst));
        one.drain(1, |_| true);
        assert!(zero.can_flush(), "room after the target took one");
        assert!(
            !mesh.blocked(0, 1).load(Ordering::SeqCst),
            "the source was woken"
        );
    }
}
