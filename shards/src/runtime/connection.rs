//! An open connection's one task: it reads what arrives, through the TLS/WebSocket layers
//! when the listener has them, decodes MQTT packets and hands them to the shard, until the
//! connection ends. When the broker was the one closing, it waits (bounded) for the flusher
//! to write what the shard queued and shut the write side down, ends the connection in the
//! shard, then reads and discards what the client still sends (`linger.rs`, bounded) before
//! the socket is closed, so that a client still writing can read why it was closed.
//!
//! Memory per idle connection is the budget that shapes this file (≤ 2 KiB): the reader
//! is one small future parked on readiness holding no buffer; plain TCP reads go into the
//! shard's shared buffer and stay zero-copy; writes are the flusher's (`flush.rs`).

use super::flush::flush_early;
use super::io::{recv_into, shutdown, would_block};
use super::linger::linger;
use super::shard_main::{ConnIo, ShardCtx};
use crate::connection::{CloseReason, ConnId};
use crate::limits::{PACKET_SIZE_MAX, READ_BUFFER_SIZE, READ_CHUNK_MIN, READ_TURN_BYTES_MAX};
use crate::mesh::{InterestWord, Mesh};
use crate::mqtt::reason;
use crate::mqtt::{self, Protocol};
use crate::shard::{Accepted, ConnectRequest, Flow};
use crate::stats::bump;
use crate::transport::websocket::WsError;
use crate::transport::{Layers, TransportError};
use bytes::BytesMut;
use monoio::net::TcpStream;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

/// How long a connection the broker is closing may take to accept its last bytes.
pub const CLOSE_FLUSH_TIMEOUT: Duration =
    Duration::from_millis(crate::limits::CLOSE_FLUSH_TIMEOUT_MS);

/// Opens the connection in the shard and spawns its task.
pub fn serve(
    ctx: Rc<ShardCtx>,
    stream: TcpStream,
    layers: Option<Box<Layers>>,
    accepted: Accepted,
    request: ConnectRequest,
    leftover: BytesMut,
) {
    // A connection handed over from a shard that admitted it just before its listener
    // closed is dropped here.
    if ctx.stopping.get() || ctx.shard.borrow().listener_closed(accepted.listener) {
        return;
    }
    let protocol = request.connect.protocol;
    let id = {
        let mut shard = ctx.shard.borrow_mut();
        shard.now = super::now();
        let id = shard.open(accepted, request);
        shard.end_turn();
        id
    };
    let io = Rc::new(ConnIo::new(stream, layers));
    ctx.register_stream(id, io.clone());
    ctx.live.set(ctx.live.get() + 1);
    // An empty leftover still holds the allocation CONNECT was read into: drop it.
    let leftover = if leftover.is_empty() {
        BytesMut::new()
    } else {
        leftover
    };
    monoio::spawn(connection_task(ctx, io, id, protocol, leftover));
}

/// The one task of an open connection. Its future is what an idle connection costs, so it
/// keeps little state; the rare waits are boxed.
async fn connection_task(
    ctx: Rc<ShardCtx>,
    io: Rc<ConnIo>,
    id: ConnId,
    protocol: Protocol,
    leftover: BytesMut,
) {
    let ended_by_broker = read_loop(&ctx, &io, id, protocol, leftover).await;
    // The reader no longer waits for the socket (and its waker must not outlive the task).
    drop(io.reader.take());
    if ended_by_broker {
        Box::pin(wait_flushed(&ctx, id, &io)).await;
    }
    ctx.unregister_stream(id);
    // Shut (by the flusher, after the last bytes): the socket lingers below. Otherwise the
    // peer ended it, or it would not take the last bytes in time.
    let lingers = io.shut.get();
    if !lingers {
        shutdown(io.stream.as_raw_fd());
    }
    {
        let mut shard = ctx.shard.borrow_mut();
        shard.now = super::now();
        if let Some(conn) = shard.conn_mut(id) {
            conn.close(CloseReason::SocketClosed);
        }
        shard.closed(id);
        shard.end_turn();
    }
    // It may have been the connection that held the readers back.
    ctx.wake_if_unblocked();
    if lingers {
        Box::pin(linger(&ctx, &io.stream)).await;
    }
    ctx.live.set(ctx.live.get() - 1);
    ctx.connection_ended.notify_all();
}

/// Waits (bounded) until the flusher wrote a closing connection's last bytes.
async fn wait_flushed(ctx: &ShardCtx, id: ConnId, io: &ConnIo) {
    let flushed = ctx
        .connection_flushed
        .wait_until(|| ctx.flushed_or_gone(id, io));
    let _ = monoio::time::timeout(CLOSE_FLUSH_TIMEOUT, flushed).await;
}

/// Waits until the socket is readable (`Ok(false)`), or until the flusher wrote the last
/// bytes of a connection the broker closes and shut its write side down (`Ok(true)`): the
/// shutdown no longer wakes the reader by itself, as its read side stays open.
async fn wait_readable(io: &ConnIo) -> std::io::Result<bool> {
    let mut readable = std::pin::pin!(io.stream.readable(false));
    std::future::poll_fn(|cx| {
        if io.shut.get() {
            return Poll::Ready(Ok(true));
        }
        match readable.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(result.map(|()| false)),
            Poll::Pending => {
                let waker = match io.reader.take() {
                    Some(waker) if waker.will_wake(cx.waker()) => waker,
                    _ => cx.waker().clone(),
                };
                io.reader.set(Some(waker));
                Poll::Pending
            }
        }
    })
    .await
}

/// Reads and handles packets until the socket ends (false) or the shard closes the
/// connection (true).
async fn read_loop(
    ctx: &Rc<ShardCtx>,
    io: &ConnIo,
    id: ConnId,
    protocol: Protocol,
    mut partial: BytesMut,
) -> bool {
    let fd = io.stream.as_raw_fd();
    let max = ctx
        .shard
        .borrow()
        .settings
        .max_packet_size
        .map_or(PACKET_SIZE_MAX, |max| max as usize);
    let layered = io.layers.borrow().is_some();
    // Complete packets may wait in `partial`: bytes that came with the CONNECT, or the
    // rest of a read the shard stopped handling when it began holding readers back.
    let mut resume = !partial.is_empty();
    loop {
        if ctx.holds_back(id) {
            Box::pin(ctx.wait_uncongested(|| !ctx.holds_back(id) || io.shut.get())).await;
        }
        if io.shut.get() {
            return true;
        }
        if std::mem::take(&mut resume) {
            let (flow, held) = handle_bytes(ctx, id, protocol, max, &mut partial);
            flush_early(ctx);
            if flow == Flow::Close {
                return true;
            }
            if held || ctx.holds_back(id) {
                resume = true;
                continue;
            }
        }
        match wait_readable(io).await {
            Ok(false) => {}
            Ok(true) => return true,
            Err(_) => return false,
        }
        let mut turn = 0;
        while turn < READ_TURN_BYTES_MAX {
            let mut buf = if layered {
                take_shared(ctx)
            } else {
                take_buffer(ctx, &mut partial)
            };
            let room = buf.capacity() - buf.len();
            let read = match recv_into(fd, &mut buf) {
                Ok(0) => return closing(ctx, id),
                Ok(read) => read,
                Err(error) if would_block(&error) => {
                    give_back(ctx, buf, &mut partial);
                    break;
                }
                Err(_) => return closing(ctx, id),
            };
            turn += read;
            bump(&ctx.shard.borrow().my_stats().bytes_received, read as u64);
            let (flow, held) = if layered {
                let unwrapped = unwrap(ctx, io, id, &buf, &mut partial);
                buf.clear();
                give_back(ctx, buf, &mut BytesMut::new());
                // The MQTT bytes that came before a close frame or a bad frame are still
                // handled: a DISCONNECT and a close frame in one read is a clean disconnect.
                let handled = handle_bytes(ctx, id, protocol, max, &mut partial);
                if let Err(error) = unwrapped {
                    transport_ended(ctx, id, &error);
                    return closing(ctx, id);
                }
                handled
            } else {
                let handled = handle_bytes(ctx, id, protocol, max, &mut buf);
                give_back(ctx, buf, &mut partial);
                handled
            };
            // What this read made for other connections leaves while still in cache.
            flush_early(ctx);
            if flow == Flow::Close {
                return true;
            }
            // Packets left unhandled wait in `partial` even when the hold ended within the
            // turn (its end drains the output and mesh queues): the socket may have
            // nothing more to say until they are acknowledged.
            if held || ctx.holds_back(id) {
                resume = true;
                break;
            }
            if read < room {
                // The socket had less than we asked for: it is drained, and the next
                // recv would only say so. Readiness is re-checked by the next wait (a
                // poll, on either driver), so nothing that arrives meanwhile is missed.
                break;
            }
        }
    }
}

/// Passes wire bytes through the connection's TLS/WebSocket layers into `mqtt`; bytes the
/// layers answer (records, pongs, close frames) are queued for the flusher. An error means
/// the transport failed or the peer closed it: see [`transport_ended`].
fn unwrap(
    ctx: &ShardCtx,
    io: &ConnIo,
    id: ConnId,
    wire: &[u8],
    mqtt: &mut BytesMut,
) -> Result<(), TransportError> {
    let mut reply = BytesMut::new();
    let result = match io.layers.borrow_mut().as_mut() {
        Some(layers) => layers.ingest(wire, mqtt, &mut reply),
        None => Ok(()),
    };
    if !reply.is_empty() {
        io.wire.borrow_mut().extend_from_slice(&reply);
        if let Some(conn) = ctx.shard.borrow_mut().conn_mut(id) {
            conn.wake_writer();
        }
    }
    result
}

/// The transport of `id` failed or its peer closed it: the connection closes, so the
/// flusher still writes what the layers answered (the close frame echoing the peer's, the
/// TLS alert) before the socket is shut down, and the end is logged once. Nothing to do
/// when the broker was already closing it (a DISCONNECT came in the same read).
fn transport_ended(ctx: &ShardCtx, id: ConnId, error: &TransportError) {
    let mut shard = ctx.shard.borrow_mut();
    let log_it = shard.settings.connection_messages;
    let Some(conn) = shard.conn_mut(id).filter(|conn| conn.closing.is_none()) else {
        return;
    };
    match error {
        // The peer closed the WebSocket: logged like any connection the client closed.
        TransportError::WebSocket(WsError::Closed) => conn.close(CloseReason::SocketClosed),
        _ => {
            if log_it {
                log::info!("Client {} disconnected: {error}.", conn.client_id);
            }
            // Logged here with its cause; this reason adds no second line when it ends.
            conn.close(CloseReason::ProtocolViolation(reason::MALFORMED_PACKET));
        }
    }
}

/// At end of stream: true if the broker had already decided to close (its last packet,
/// e.g. a DISCONNECT, may still be on its way out).
fn closing(ctx: &ShardCtx, id: ConnId) -> bool {
    ctx.shard
        .borrow()
        .conn(id)
        .is_some_and(|conn| conn.closing.is_some())
}

/// The shard's shared read buffer, with room for a read.
fn take_shared(ctx: &ShardCtx) -> BytesMut {
    let mut shared = ctx.read_buf.borrow_mut();
    if shared.capacity() - shared.len() < READ_CHUNK_MIN {
        *shared = BytesMut::with_capacity(READ_BUFFER_SIZE);
    }
    std::mem::take(&mut *shared)
}

/// The buffer to read into: the connection's partial packet (grown to fit the rest of it),
/// or the shard's shared buffer.
fn take_buffer(ctx: &ShardCtx, partial: &mut BytesMut) -> BytesMut {
    if partial.is_empty() {
        return take_shared(ctx);
    }
    let mut buf = std::mem::take(partial);
    let wanted = match mqtt::peek_fixed_header(&buf) {
        Ok(Some((_, header, remaining))) => (header + remaining).saturating_sub(buf.len()),
        _ => READ_CHUNK_MIN,
    };
    buf.reserve(wanted.clamp(1, READ_BUFFER_SIZE * 4));
    buf
}

/// Returns the shared buffer, keeping any incomplete packet with the connection.
fn give_back(ctx: &ShardCtx, mut buf: BytesMut, partial: &mut BytesMut) {
    if !buf.is_empty() {
        *partial = buf.split();
    }
    let mut shared = ctx.read_buf.borrow_mut();
    if buf.capacity() >= shared.capacity() {
        *shared = buf;
    }
}

/// Decodes and handles the complete packets at the front of `buf`, stopping early when
/// the shard starts holding this connection back ([`ShardCtx::holds_back`]). Also says
/// whether it stopped early: then `buf` may still hold complete packets, to handle before
/// waiting for the socket again, even if the hold has ended by the time this returns.
fn handle_bytes(
    ctx: &ShardCtx,
    id: ConnId,
    protocol: Protocol,
    max: usize,
    buf: &mut BytesMut,
) -> (Flow, bool) {
    let started = std::time::Instant::now();
    let interest = interest_settled(&ctx.mesh);
    let mut shard = ctx.shard.borrow_mut();
    shard.now = super::now();
    shard.touch(id);
    // Subscriptions another core read before these bytes were read apply to them.
    shard.catch_up_interest(interest);
    let mut held = false;
    let flow = loop {
        if shard.holds_back(id) {
            // The rest stays in `buf` until the shard reads again (`read_loop`).
            held = true;
            break Flow::Continue;
        }
        let decoded = mqtt::decode(buf, Some(protocol), max);
        if crate::packet_log::enabled() {
            // Logged from the decoder's result in place: a reference to the moved-out
            // packet would cost the publish path a copy of it even with the lines off.
            if let Ok(Some(packet)) = &decoded {
                log_received(&shard, id, packet);
            }
        }
        match decoded {
            Ok(Some(packet)) => {
                if shard.handle(id, packet) == Flow::Close {
                    break Flow::Close;
                }
            }
            Ok(None) => break Flow::Continue,
            Err(error) => break shard.decode_failed(id, &error),
        }
    };
    shard.end_turn();
    shard
        .my_stats()
        .batch_latency
        .observe(started.elapsed().as_micros() as u64);
    drop(shard);
    // Acknowledgements may have drained the queue that held the readers back.
    ctx.wake_if_unblocked();
    (flow, held)
}

/// The interest word ([`crate::mesh::Mesh::interest`]) once no other shard is in the middle
/// of a SUBSCRIBE: one load when none is.
#[inline]
fn interest_settled(mesh: &Mesh) -> InterestWord {
    let word = mesh.interest();
    if word.subscribing() {
        wait_for_subscribers(mesh)
    } else {
        word
    }
}

/// Waits until no other shard is handling a SUBSCRIBE (its interest pushed, the epoch
/// moved), at most [`SUBSCRIBE_WAIT`]: a few microseconds in practice, the time one
/// SUBSCRIBE takes. A shard holds the mark only inside one packet's handling, never while
/// it waits itself, so two shards cannot wait for each other.
#[cold]
fn wait_for_subscribers(mesh: &Mesh) -> InterestWord {
    let started = std::time::Instant::now();
    let mut spins = 0u32;
    loop {
        let word = mesh.interest();
        if !word.subscribing() || started.elapsed() >= SUBSCRIBE_WAIT {
            return word;
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            // The other shard may share this CPU (more shards than CPUs, or a busy host).
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Longest wait of a reader for a SUBSCRIBE another shard is handling.
const SUBSCRIBE_WAIT: Duration = Duration::from_micros(crate::limits::SUBSCRIBE_WAIT_MAX_US);

/// Mosquitto's `Received <TYPE> from <client>` debug line for a decoded packet (PUBLISH is
/// logged by the shard once admitted, with its resolved and mounted topic).
#[cold]
fn log_received(shard: &crate::shard::Shard, id: ConnId, packet: &mqtt::Packet) {
    if let Some(conn) = shard.conn(id) {
        crate::packet_log::emit(crate::packet_log::received(conn.client_id.as_str(), packet));
    }
}
