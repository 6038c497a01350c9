//! `Connection`: what a shard knows about one open network connection after its CONNECT
//! was accepted.
//!
//! Owns the per-connection protocol state that is *not* durable (keep alive, topic aliases
//! in both directions, the client's limits, the outbound byte buffer). The durable part
//! lives in the [`crate::state::Session`] the connection is attached to. Placement: in the
//! shard's connection slab; the runtime's reader task and the shard's flusher refer to it
//! by [`ConnId`].
//!
//! Writing: encoding a packet appends to [`Connection::out`] and, the first time after a
//! flush, puts the connection on the shard's [`FlushQueue`]. The runtime's one flusher task
//! per shard then writes every queued connection's bytes with one `send` each, so a burst
//! of messages to a subscriber costs one syscall, and an idle connection has no writer
//! task at all.
//!
//! Holding: on a shard that gates acknowledgements (`shard::gate`), a packet that confirms
//! durable changes is written with a [`Mark`] at its first byte. The flusher writes only
//! up to the first mark whose turn is not yet released ([`Connection::releasable`]), so
//! that packet, and everything queued after it on this connection, waits; other
//! connections are not affected. Without a gate no mark is ever made.

use crate::acl_memo::AclMemo;
use crate::limits::{FLUSH_EARLY_BYTES, OUTBOUND_BACKLOG_HIGH};
use crate::mqtt::{ByteStr, Packet, Protocol, PublishEncode};
use crate::server_aliases::ServerAliases;
use crate::state::SessionKey;
use bytes::BytesMut;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::Waker;

/// The order connections were opened in, across every shard: each connection takes the
/// next number when it opens. Read by whoever must tell connections that existed at some
/// moment from later ones (a dynamic-security kick applies only to the connections opened
/// before the change that caused it). One atomic add per connection, none per message.
static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Takes the next connection order number (see [`opened_so_far`]).
pub fn next_opened() -> u64 {
    OPENED.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// The order number the next connection to open will take: every connection opened
/// before this call has a smaller one.
pub fn opened_so_far() -> u64 {
    OPENED.load(std::sync::atomic::Ordering::SeqCst)
}

/// A connection's slot and generation: a stale id (slot reused) never matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    /// Slab slot.
    pub slot: u32,
    /// Generation of the slot's occupant.
    pub generation: u32,
}

/// Why a connection is being closed by the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT.
    ClientDisconnect,
    /// The client closed the socket (or it failed) without DISCONNECT.
    SocketClosed,
    /// Another connection took over the session.
    TakenOver,
    /// Keep alive expired.
    KeepAliveTimeout,
    /// The client broke the protocol; the 5.0 reason code was sent in DISCONNECT.
    ProtocolViolation(u8),
    /// The broker is shutting down.
    ServerShutdown,
    /// An administrator (or a rights change) disconnected the client.
    Administrative,
}

/// Where a gated packet starts in a connection's outbound stream, and the turn of the
/// shard it was written in (`shard::gate`): it may leave once that turn is released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Position of the packet's first byte, counted from the connection's first byte.
    pub at: u64,
    /// The shard's turn that wrote it.
    pub turn: u64,
}

/// One accepted connection.
pub struct Connection {
    /// Own id.
    pub id: ConnId,
    /// The session it is attached to; `None` once a takeover detached it.
    pub session: Option<SessionKey>,
    /// Protocol level.
    pub protocol: Protocol,
    /// Client identifier (for log lines and no-local).
    pub client_id: ByteStr,
    /// User name it authenticated with.
    pub username: Option<ByteStr>,
    /// Peer address.
    pub peer: SocketAddr,
    /// Index of the listener it arrived on.
    pub listener: usize,
    /// Keep alive in milliseconds (after `max_keepalive`), 0 = none.
    pub keep_alive_ms: u64,
    /// Monotonic time of the last packet received.
    pub last_activity_ms: u64,
    /// The client's Receive Maximum: QoS 1/2 messages it accepts in flight.
    pub client_receive_maximum: u16,
    /// The client's Maximum Packet Size.
    pub client_max_packet_size: u32,
    /// The client asked for reason strings and user properties on errors (5.0).
    pub problem_information: bool,
    /// Topics of the client → server topic aliases, index = alias - 1 (5.0).
    pub topic_aliases: Vec<Option<ByteStr>>,
    /// The server → client topic aliases, when the client announced a Topic Alias Maximum
    /// and the listener assigns aliases (`max_topic_alias_broker`); `None` otherwise.
    pub server_aliases: Option<Box<ServerAliases>>,
    /// Length of the listener's `mount_point`: topics it prefixed lose it again on the
    /// way out to this client (0 without one).
    pub mount_len: u16,
    /// Bytes encoded and not yet handed to the socket.
    pub out: BytesMut,
    /// Bytes of `out` handed on so far: the position of `out[0]` in the connection's
    /// outbound stream ([`Mark::at`] counts in it).
    pub out_taken: u64,
    /// Gated packets in `out`, in order (empty unless the shard gates).
    pub marks: VecDeque<Mark>,
    /// True while the connection is on its shard's list of connections whose bytes wait
    /// for the gate (`shard::gate`).
    pub held: bool,
    /// The shard's queue of connections with bytes to write.
    pub flush: Rc<FlushQueue>,
    /// True while this connection is on the flush queue.
    pub queued: bool,
    /// True while the socket refuses more bytes; a waiter re-queues it when writable.
    pub write_blocked: bool,
    /// More than [`OUTBOUND_BACKLOG_HIGH`] bytes are waiting and the consumer is not (yet)
    /// a slow one: counted in [`FlushQueue::backlogged`], which holds the shard's readers
    /// back until the flusher wrote everything.
    pub backlogged: bool,
    /// The socket refused bytes for longer than `SLOW_CONSUMER_AFTER_MS`: this
    /// connection no longer holds readers back (until its buffer empties once).
    pub slow_consumer: bool,
    /// The session's queue (QoS 1/2 messages beyond the in-flight window) grew past the
    /// shard's high mark while this client was connected: counted in
    /// [`FlushQueue::backlogged`] like `backlogged`, so the shard reads no more publishes
    /// until the client acknowledged its queue down to the low mark. Publishers are slowed
    /// instead of the queue overflowing and dropping what they sent.
    pub queue_backlogged: bool,
    /// Monotonic milliseconds at which the backlogged queue last moved.
    pub queue_moved_ms: u64,
    /// Monotonic milliseconds at which this hold began.
    pub queue_held_ms: u64,
    /// The backlogged queue stood still for `SLOW_CONSUMER_AFTER_MS`: this client no
    /// longer holds readers back (until its queue drains to the low mark).
    pub queue_stalled: bool,
    /// Set when the broker decided to close: the flusher writes `out`, then shuts the
    /// socket down.
    pub closing: Option<CloseReason>,
    /// Publish the will when the connection ends (cleared by a normal DISCONNECT).
    pub will_on_close: bool,
    /// When it opened, in the order of every connection ([`next_opened`]).
    pub opened: u64,
    /// Its last publish and receive ACL decisions.
    pub acl_memo: AclMemo,
}

impl Connection {
    /// Appends an encoded packet and wakes the writer. Encoding errors cannot happen for
    /// packets the broker builds within the protocol's limits; one that does is dropped
    /// with a log line rather than corrupting the stream.
    ///
    /// Every packet respects the client's Maximum Packet Size ([MQTT-3.1.2-24]): one that
    /// would exceed it goes without its Reason String and User Properties, and if it is
    /// still too large it is not sent at all and the connection is closed.
    pub fn send(&mut self, packet: &Packet) {
        if crate::packet_log::enabled() {
            crate::packet_log::emit(crate::packet_log::sending(self.client_id.as_str(), packet));
        }
        let start = self.out.len();
        if let Err(error) = packet.encode(self.protocol, &mut self.out) {
            log::error!(
                "Error: cannot encode {:?} for {}: {error}",
                packet.packet_type(),
                self.client_id
            );
            return;
        }
        if self.out.len() - start > self.client_max_packet_size as usize {
            self.out.truncate(start);
            self.send_oversize(packet);
            return;
        }
        self.flush
            .packets_sent
            .set(self.flush.packets_sent.get() + 1);
        self.wake_writer();
    }

    /// [`Connection::send`] for a packet that confirms durable changes: with `hold` (the
    /// shard gates; the turn writing it), it and what follows wait until that turn is
    /// released.
    pub fn send_held(&mut self, packet: &Packet, hold: Option<u64>) {
        let start = self.out.len();
        self.send(packet);
        if let Some(turn) = hold {
            self.mark(start, turn);
        }
    }

    /// Records a mark at `start` (a length of `out` before a packet was written) if the
    /// packet was written.
    fn mark(&mut self, start: usize, turn: u64) {
        if self.out.len() > start {
            self.marks.push_back(Mark {
                at: self.out_taken + start as u64,
                turn,
            });
        }
    }

    /// How many bytes at the front of `out` may leave now that every turn up to
    /// `released` is released; forgets the marks that no longer hold anything.
    pub fn releasable(&mut self, released: u64) -> usize {
        while self.marks.front().is_some_and(|mark| mark.turn <= released) {
            self.marks.pop_front();
        }
        match self.marks.front() {
            None => self.out.len(),
            Some(mark) => (mark.at.saturating_sub(self.out_taken) as usize).min(self.out.len()),
        }
    }

    /// Counts `n` bytes taken from the front of `out` (written, or wrapped by a transport).
    #[inline]
    pub fn taken(&mut self, n: usize) {
        self.out_taken += n as u64;
    }

    /// [`Connection::send`] for a packet over the client's Maximum Packet Size.
    #[cold]
    fn send_oversize(&mut self, packet: &Packet) {
        let mut smaller = packet.clone();
        if smaller.drop_optional_properties() {
            let fits = smaller
                .encoded_len(self.protocol)
                .is_ok_and(|len| len <= self.client_max_packet_size as usize);
            if fits {
                self.send(&smaller);
                return;
            }
        }
        log::info!(
            "Client {} disconnected, {:?} exceeds its maximum packet size.",
            self.client_id,
            packet.packet_type()
        );
        self.close(CloseReason::ProtocolViolation(
            crate::mqtt::reason::PACKET_TOO_LARGE,
        ));
    }

    /// Appends one PUBLISH (see [`crate::mqtt::encode_publish`]) and wakes the writer.
    /// Returns the bytes written, or `None` if it would exceed the client's Maximum Packet
    /// Size ([MQTT-3.1.2-25]) and was not sent.
    ///
    /// With [`Connection::server_aliases`], the topic (after the mount point is removed)
    /// goes as an alias where the table says so; a resend (DUP) always carries its topic
    /// and no alias. Whether a message fits the Maximum Packet Size is decided on its
    /// form without alias, so aliases never change which messages a client gets.
    ///
    /// `hold`: as for [`Connection::send_held`] (an outgoing QoS 2 PUBLISH on a gated
    /// shard).
    pub fn send_publish(
        &mut self,
        publish: &PublishEncode<'_>,
        hold: Option<u64>,
    ) -> Option<usize> {
        if crate::packet_log::enabled() {
            self.log_sending_publish(publish);
        }
        let mounted;
        let publish = if self.mount_len > 0 {
            // Every topic this client is sent matched one of its mounted filters, so it
            // starts with the mount point; one that does not is swallowed (as Mosquitto).
            let topic = publish
                .topic
                .get(usize::from(self.mount_len)..)
                .filter(|t| !t.is_empty())?;
            mounted = PublishEncode { topic, ..*publish };
            &mounted
        } else {
            publish
        };
        let len = crate::mqtt::publish_encoded_len(self.protocol, publish).ok()?;
        if len > self.client_max_packet_size as usize {
            return None;
        }
        let aliased;
        let publish = match self.server_aliases.as_deref_mut() {
            Some(aliases) if !publish.dup => {
                aliased = aliases.apply(publish, self.client_max_packet_size);
                &aliased
            }
            _ => publish,
        };
        let before = self.out.len();
        let written = crate::mqtt::encode_publish(self.protocol, publish, &mut self.out).ok()?;
        if let Some(turn) = hold {
            self.mark(before, turn);
        }
        self.wake_writer();
        if before < FLUSH_EARLY_BYTES && self.out.len() >= FLUSH_EARLY_BYTES {
            self.flush.early.borrow_mut().push(self.id);
        }
        if self.out.len() >= OUTBOUND_BACKLOG_HIGH && !self.backlogged && !self.slow_consumer {
            self.backlogged = true;
            self.flush.backlogged.set(self.flush.backlogged.get() + 1);
        }
        Some(written)
    }

    /// `Sending PUBLISH to ...` with the topic as the broker holds it (mount point
    /// included, as Mosquitto logs it).
    #[cold]
    fn log_sending_publish(&self, publish: &PublishEncode<'_>) {
        use crate::packet_log::{publish_line, PublishFacts, PublishVerb};
        let facts = PublishFacts::sending(publish);
        log::debug!(
            "{}",
            publish_line(PublishVerb::Sending, self.client_id.as_str(), &facts)
        );
    }

    /// Stops counting this connection as backlogged: its buffer was written, it turned out
    /// to be a slow consumer, or it is closing. When it was the shard's last hold, the
    /// flush queue records that the readers are to be woken ([`FlushQueue::take_unblocked`]).
    pub fn release_backlog(&mut self) {
        if self.backlogged {
            self.backlogged = false;
            self.flush.release_one();
        }
    }

    /// Starts holding the shard's readers back for this client's queue (see
    /// [`Connection::queue_backlogged`]); no-op while it already does or is stalled.
    pub fn hold_for_queue(&mut self, now_ms: u64) {
        if self.queue_backlogged || self.queue_stalled {
            return;
        }
        self.queue_backlogged = true;
        self.queue_moved_ms = now_ms;
        self.queue_held_ms = now_ms;
        self.flush.backlogged.set(self.flush.backlogged.get() + 1);
    }

    /// Stops holding readers back for this client's queue: it drained, stalled, or the
    /// connection is closing. Wakes the readers like [`Connection::release_backlog`].
    pub fn release_queue(&mut self) {
        if self.queue_backlogged {
            self.queue_backlogged = false;
            self.flush.release_one();
        }
    }

    /// Puts the connection on the flush queue (once until the next flush).
    pub fn wake_writer(&mut self) {
        if !self.queued {
            self.queued = true;
            self.flush.push(self.id);
        }
    }

    /// Asks the writer to flush and close; the first reason wins.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closing.is_none() {
            self.closing = Some(reason);
        }
        self.wake_writer();
    }
}

/// The connections of one shard that have bytes to write (or a close to carry out), in
/// the order they became ready. Placement: one per shard, shared by its connections and
/// its flusher task.
#[derive(Default)]
pub struct FlushQueue {
    pending: RefCell<Vec<ConnId>>,
    /// Connections whose outbound buffer passed [`FLUSH_EARLY_BYTES`] this turn.
    early: RefCell<Vec<ConnId>>,
    flusher: Cell<Option<Waker>>,
    /// Connections of the shard with `backlogged` or `queue_backlogged` set (each counted
    /// once per flag).
    backlogged: Cell<u32>,
    /// The last hold was released since the runtime last looked: readers are to be woken.
    unblocked: Cell<bool>,
    /// Packets other than PUBLISH encoded since the tick last counted them (into
    /// `$SYS/broker/messages/sent`, which counts packets of every type, as Mosquitto's).
    packets_sent: Cell<u64>,
}

impl FlushQueue {
    /// Takes the count of non-PUBLISH packets encoded since the last call.
    pub fn take_packets_sent(&self) -> u64 {
        self.packets_sent.replace(0)
    }

    /// True while some connection of the shard has more outbound bytes than its consumer
    /// took (see [`OUTBOUND_BACKLOG_HIGH`]): readers wait.
    pub fn backlogged(&self) -> bool {
        self.backlogged.get() > 0
    }

    /// True (once) when the last hold on the shard's readers was released since the
    /// previous call: the caller wakes them.
    pub fn take_unblocked(&self) -> bool {
        self.unblocked.replace(false)
    }

    /// Counts one hold less; the last one marks the readers to be woken.
    fn release_one(&self) {
        let left = self.backlogged.get().saturating_sub(1);
        self.backlogged.set(left);
        if left == 0 {
            self.unblocked.set(true);
        }
    }
    /// The next connection to write before the end of the turn, if any.
    pub fn pop_early(&self) -> Option<ConnId> {
        self.early.borrow_mut().pop()
    }

    /// Queues `id` and wakes the flusher.
    pub fn push(&self, id: ConnId) {
        self.pending.borrow_mut().push(id);
        if let Some(waker) = self.flusher.take() {
            waker.wake();
        }
    }

    /// Moves the queued ids into `batch` (which must be empty), or parks the flusher.
    pub fn take_into(&self, batch: &mut Vec<ConnId>, waker: &Waker) -> bool {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            self.flusher.set(Some(waker.clone()));
            return false;
        }
        std::mem::swap(&mut *pending, batch);
        true
    }
}
