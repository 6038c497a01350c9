//! Runtime messages: what reaches a shard's runtime rather than its state. Hand-offs of
//! sockets between shards, and commands from other threads (the main thread's shutdown,
//! reload and snapshot requests; a service's access rules, publications and kicks).
//!
//! Placement: one [`Inboxes`] per process, shared by `Arc`; a queue per shard, drained by
//! that shard's mesh task next to its mesh rings. Kept apart from the mesh so that
//! `ShardMsg` is the vocabulary between shard states only, and the mesh knows nothing of
//! sockets, settings or files. Ordering: per sender, per shard, FIFO (a published response
//! reaches a client before the kick that follows it).

use crate::access::AccessPolicy;
use crate::dynsec::Kicks;
use crate::limits::RUNTIME_INBOX_BEST_EFFORT_MAX;
use crate::mesh::ShardId;
use crate::message::Message;
use crate::persist::ShardSnapshot;
use crate::settings::Settings;
use crossbeam_queue::SegQueue;
use std::os::fd::OwnedFd;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// A message for a shard's runtime.
pub enum RuntimeMsg {
    /// A connection whose client id lives on the target shard, with its CONNECT.
    Handoff(Box<Handoff>),
    /// A command from another thread.
    Control(Control),
}

/// A connection moving to the shard that owns its client id.
pub struct Handoff {
    /// The socket.
    pub fd: OwnedFd,
    /// Everything the runtime knows about the connection so far.
    pub accepted: crate::shard::Accepted,
    /// The decoded CONNECT and its authentication result.
    pub connect: crate::shard::ConnectRequest,
    /// Bytes read after CONNECT.
    pub leftover: bytes::BytesMut,
    /// TLS/WebSocket state (`None`: plain TCP).
    pub layers: Option<Box<crate::transport::Layers>>,
}

/// Commands from other threads.
pub enum Control {
    /// Close every connection and stop (SIGTERM/SIGINT).
    Shutdown,
    /// Take a snapshot of this shard's durable state and send it back.
    Snapshot(std::sync::mpsc::Sender<ShardSnapshot>),
    /// New settings (and access rules, unless a service owns them) after a reload.
    Reload(Arc<Settings>, Option<Arc<AccessPolicy>>),
    /// New access rules (dynamic security changed).
    Access(Arc<AccessPolicy>),
    /// Publish this message as the broker (a control response, a log line).
    Publish(Box<Message>),
    /// Disconnect these clients here and on every other shard, after what this shard
    /// published before (so a response reaches a client before its kick).
    Kick(Arc<Kicks>),
    /// Serve clients on these newly bound sockets (listener index, socket): a cluster
    /// node became the leader.
    Listen(Vec<(usize, super::ListenSocket)>),
    /// Stop serving clients on these listeners and disconnect theirs: a cluster node
    /// stopped leading. The sockets are shut down by their owner, which ends their accept
    /// loops.
    CloseListeners(Arc<[usize]>),
    /// Apply these committed records (a cluster follower; placement done by the sender).
    ApplyRecords(Vec<crate::state::Record>),
    /// Discard the durable state (a cluster leader that lost office); the committed state
    /// follows as `ApplyRecords`.
    ResetDurable,
    /// How this shard's durable changes leave it from now on, and whether it decides
    /// wills and expiry on its own (`passive`: a Full Sync follower does not). Sent by the
    /// replication core on a change of role, before the listeners open or after they
    /// closed (`shard::Shard::replicate`, `shard::Shard::set_passive`).
    Replicate {
        /// Off, emitted, or emitted and gated (a Full Sync leader).
        replication: crate::shard::Replication,
        /// Decide nothing on its own.
        passive: bool,
    },
    /// One pass of a [`Relay`]: the last shard to handle it sends the relayed message.
    Relay(Arc<Relay>),
}

/// A message sent once every shard has handled what was sent to it before
/// ([`Inboxes::send_after_all`]). Each shard's inbox gets one pass; the shard that handles
/// the last pass sends the message.
pub struct Relay {
    remaining: AtomicUsize,
    target: ShardId,
    msg: Mutex<Option<RuntimeMsg>>,
    inboxes: Arc<Inboxes>,
}

impl Relay {
    /// Called by each shard's runtime when it handles its pass.
    pub fn pass(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let msg = match self.msg.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(msg) = msg {
            self.inboxes.send(self.target, msg);
        }
    }
}

struct Inbox {
    queue: SegQueue<RuntimeMsg>,
    waker: atomic_waker::AtomicWaker,
    parked: AtomicBool,
}

/// Every shard's runtime inbox.
pub struct Inboxes {
    inboxes: Vec<Inbox>,
}

impl Inboxes {
    /// Inboxes for `shards` shards.
    pub fn new(shards: usize) -> Arc<Inboxes> {
        let inboxes = (0..shards)
            .map(|_| Inbox {
                queue: SegQueue::new(),
                waker: atomic_waker::AtomicWaker::new(),
                parked: AtomicBool::new(false),
            })
            .collect();
        Arc::new(Inboxes { inboxes })
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// Sends `msg` to shard `target` once every shard has handled what was sent to it
    /// before. A control response goes this way: when its client sees it, the access rules
    /// it confirms are in force on every shard, whichever one its next connection lands on.
    pub fn send_after_all(self: &Arc<Self>, target: ShardId, msg: RuntimeMsg) {
        let relay = Arc::new(Relay {
            remaining: AtomicUsize::new(self.shards()),
            target,
            msg: Mutex::new(Some(msg)),
            inboxes: self.clone(),
        });
        for shard in 0..self.shards() {
            self.send(
                shard as ShardId,
                RuntimeMsg::Control(Control::Relay(relay.clone())),
            );
        }
    }

    /// Sends `msg` to shard `target`'s runtime and wakes it if it parked. Never blocks:
    /// hand-offs and commands are bounded by what causes them.
    pub fn send(&self, target: ShardId, msg: RuntimeMsg) {
        let inbox = &self.inboxes[usize::from(target)];
        inbox.queue.push(msg);
        // Pairs with the fence in `poll_parked`: either the shard sees the message when
        // it re-checks, or we see its parked flag.
        fence(Ordering::SeqCst);
        if inbox.parked.swap(false, Ordering::AcqRel) {
            inbox.waker.wake();
        }
    }

    /// Sends best-effort traffic (log lines published on `$SYS/broker/log/#`): dropped,
    /// returning false, while the target has [`RUNTIME_INBOX_BEST_EFFORT_MAX`] messages
    /// waiting.
    pub fn try_send(&self, target: ShardId, msg: RuntimeMsg) -> bool {
        let full = self.inboxes[usize::from(target)].queue.len() >= RUNTIME_INBOX_BEST_EFFORT_MAX;
        if !full {
            self.send(target, msg);
        }
        !full
    }

    /// The next message for shard `me`.
    pub(super) fn pop(&self, me: ShardId) -> Option<RuntimeMsg> {
        self.inboxes[usize::from(me)].queue.pop()
    }

    /// Parks shard `me`'s mesh task on its inbox too: registers the waker, raises the
    /// parked flag, and re-checks the queue so a message pushed in between is not missed.
    pub(super) fn poll_parked(&self, me: ShardId, cx: &mut Context<'_>) -> Poll<()> {
        let inbox = &self.inboxes[usize::from(me)];
        inbox.waker.register(cx.waker());
        inbox.parked.store(true, Ordering::Release);
        fence(Ordering::SeqCst);
        if inbox.queue.is_empty() {
            Poll::Pending
        } else {
            inbox.parked.store(false, Ordering::Release);
            Poll::Ready(())
        }
    }
}
