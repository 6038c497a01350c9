//! The shard's flusher: one task per shard writes the outbound bytes of every connection
//! that has some, one `send` per connection per turn, however many packets were encoded
//! since the last one. A connection that gathered 16 KiB or more is written earlier, by
//! [`flush_early`], as soon as the reader or mesh drain that filled it is done. Plain TCP
//! sends the connection's buffer as the shard encoded it; TLS/WebSocket connections first
//! wrap it through their layers. A socket that refuses bytes gets a waiter task until it
//! is writable again. A connection the broker closes gets its write side shut down after
//! its last bytes (and the transport's close frame or close_notify); its reader then
//! lingers before the socket is closed (`linger.rs`).
//!
//! Backpressure: a connection with more than `OUTBOUND_BACKLOG_HIGH` bytes waiting holds
//! the shard's readers (and its mesh drain) back until this flusher wrote all of it, so a
//! shard that produces faster than a reading consumer can take does not read messages only
//! to drop them. A socket that stays full for `SLOW_CONSUMER_AFTER_MS` marks its client a
//! slow consumer, which releases the hold (its QoS 0 messages are then dropped past the
//! soft maximum instead).

use super::connection::CLOSE_FLUSH_TIMEOUT;
use super::io::{send, shutdown, would_block};
use super::shard_main::{ConnIo, ShardCtx};
use crate::connection::{CloseReason, ConnId};
use crate::limits::SLOW_CONSUMER_AFTER_MS;
use crate::stats::bump;
use bytes::{Buf, BytesMut};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

/// Runs forever: waits for queued connections, writes each.
pub async fn flush_loop(ctx: Rc<ShardCtx>) {
    let queue = ctx.shard.borrow().flush.clone();
    let mut batch: Vec<ConnId> = Vec::new();
    loop {
        std::future::poll_fn(|cx| {
            if queue.take_into(&mut batch, cx.waker()) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        for id in batch.drain(..) {
            flush_one(&ctx, id);
        }
        ctx.connection_flushed.notify_all();
    }
}

/// Writes, now, the connections whose outbound buffers reached
/// [`FLUSH_EARLY_BYTES`](crate::limits::FLUSH_EARLY_BYTES) since
/// the last call, instead of at the end of the turn. The readers and the mesh drain call it
/// after each batch of packets they handled: the bytes leave while they are still in the
/// cache, and the shard's outbound buffers stay few and small (measured with 100 pairs:
/// broker CPU per message −5 % at 4 KiB payloads, −4 % at 64 B). Still at least 16 KiB per
/// `send`. A closing connection is left to the flusher, which shuts it down after its last
/// bytes.
pub fn flush_early(ctx: &Rc<ShardCtx>) {
    loop {
        let next = {
            let shard = ctx.shard.borrow();
            shard
                .flush
                .pop_early()
                .map(|id| (id, shard.conn(id).is_none_or(|c| c.closing.is_some())))
        };
        match next {
            None => return,
            Some((_, true)) => {}
            Some((id, false)) => flush_one(ctx, id),
        }
    }
}

/// The outcome of writing a buffer.
enum Sent {
    /// Everything was written.
    All,
    /// The socket is full; the rest stays in the buffer.
    Blocked,
    /// The socket failed.
    Failed,
}

/// Writes as much of `buf` as the socket takes; `written` counts the bytes.
fn send_buffer(fd: i32, buf: &mut BytesMut, written: &mut u64) -> Sent {
    while !buf.is_empty() {
        match send(fd, buf) {
            Ok(sent) => {
                buf.advance(sent);
                *written += sent as u64;
            }
            Err(error) if would_block(&error) => return Sent::Blocked,
            Err(_) => return Sent::Failed,
        }
    }
    Sent::All
}

/// Writes what connection `id` has queued, as far as the socket takes it.
fn flush_one(ctx: &Rc<ShardCtx>, id: ConnId) {
    let Some(io) = ctx.stream(id) else { return };
    let fd = io.stream.as_raw_fd();
    let mut shard = ctx.shard.borrow_mut();
    let stats_index = usize::from(shard.id);
    let Some(conn) = shard.conn_mut(id) else {
        return;
    };
    conn.queued = false;
    if conn.write_blocked {
        return;
    }
    let mut written = 0u64;
    let mut layers = io.layers.borrow_mut();
    let outcome = match layers.as_mut() {
        None => send_buffer(fd, &mut conn.out, &mut written),
        Some(layers) => {
            let mut wire = io.wire.borrow_mut();
            if !conn.out.is_empty() {
                layers.wrap(&conn.out, &mut wire);
                conn.out.clear();
            }
            if conn.closing.is_some() && !io.closed.get() {
                layers.close(&mut wire);
                io.closed.set(true);
            }
            send_buffer(fd, &mut wire, &mut written)
        }
    };
    drop(layers);
    match outcome {
        Sent::All => {
            // The buffer is kept for the next burst (re-growing it per flush would copy
            // every large message once more); the tick releases it once the connection
            // is idle.
            conn.slow_consumer = false;
            conn.release_backlog();
            if conn.closing.is_some() {
                // The peer reads everything, then the end of stream; its reader lingers.
                io.shut_write();
            }
        }
        Sent::Blocked => {
            conn.write_blocked = true;
            monoio::spawn(wait_writable(ctx.clone(), io.clone(), id));
        }
        Sent::Failed => {
            conn.out.clear();
            io.wire.borrow_mut().clear();
            conn.close(CloseReason::SocketClosed);
            conn.release_backlog();
        }
    }
    bump(&shard.stats[stats_index].bytes_sent, written);
    drop(shard);
    ctx.wake_if_unblocked();
}

/// Waits until a socket that refused bytes is writable again, then queues it for the
/// flusher. A connection the broker is closing gets [`CLOSE_FLUSH_TIMEOUT`], then its
/// socket is shut down: a client that stopped reading cannot hold it open.
async fn wait_writable(ctx: Rc<ShardCtx>, io: Rc<ConnIo>, id: ConnId) {
    let slow_after = Duration::from_millis(SLOW_CONSUMER_AFTER_MS);
    if monoio::time::timeout(slow_after, io.stream.writable(false))
        .await
        .is_err()
    {
        // Still full: a consumer that does not keep up stops holding the readers back.
        if let Some(conn) = ctx.shard.borrow_mut().conn_mut(id) {
            conn.slow_consumer = true;
            conn.release_backlog();
        }
        ctx.wake_if_unblocked();
    }
    loop {
        match monoio::time::timeout(CLOSE_FLUSH_TIMEOUT, io.stream.writable(false)).await {
            Ok(Ok(())) => break,
            Ok(Err(_)) => {
                shutdown(io.stream.as_raw_fd());
                break;
            }
            Err(_) => {
                let closing = ctx
                    .shard
                    .borrow()
                    .conn(id)
                    .is_none_or(|c| c.closing.is_some());
                if closing {
                    shutdown(io.stream.as_raw_fd());
                    break;
                }
            }
        }
    }
    let mut shard = ctx.shard.borrow_mut();
    if let Some(conn) = shard.conn_mut(id) {
        conn.write_blocked = false;
        conn.wake_writer();
    }
}
