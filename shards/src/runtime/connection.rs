//! Connection tasks: accept, read CONNECT, admit (or refuse), move the socket to its home
//! shard, then one reader task per open connection, plus the shard's single flusher task
//! that writes every connection's outbound bytes.
//!
//! Memory per idle connection is the budget that shapes this file (≤ 2 KiB): the
//! handshake is its own short-lived task, the reader is one small future parked on
//! readiness holding no buffer, and there is no writer task — the flusher writes for all
//! connections, and a write waiter exists only while a socket refuses bytes.

use super::io::{recv_into, send, shutdown, would_block};
use super::shard_main::ShardCtx;
use crate::connection::{CloseReason, ConnId};
use crate::limits::{
    CONNECT_TIMEOUT_S, OUTBOUND_BUFFER_KEEP, PACKET_SIZE_MAX, READ_BUFFER_SIZE, READ_CHUNK_MIN,
    READ_TURN_BYTES_MAX,
};
use crate::mesh::{Handoff, ShardMsg};
use crate::mqtt::{self, Connect, DecodeError, Packet, Protocol};
use crate::shard::{Accepted, ConnectRequest, Flow};
use crate::stats::bump;
use bytes::{Buf, BytesMut};
use monoio::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

/// How long a connection the broker is closing may take to accept its last bytes.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Accepts connections on one listener socket until the shard stops.
pub async fn accept_loop(ctx: Rc<ShardCtx>, listener: usize, socket: TcpListener) {
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                log::warn!("Warning: accept failed: {error}");
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if ctx.stopping.get() {
            return;
        }
        let shard = ctx.shard.borrow();
        let settings = &shard.settings.listeners[listener];
        if let Some(max) = settings.max_connections {
            // Counted per shard: each shard's socket gets its share of the limit.
            let share = max.div_ceil(shard.mesh.shards());
            if ctx.live.get() >= share {
                continue;
            }
        }
        if shard.settings.tcp_nodelay {
            let _ = stream.set_nodelay(true);
        }
        if shard.settings.connection_messages {
            log::info!("New connection from {peer} on port {}.", settings.port);
        }
        bump(&shard.my_stats().sockets_opened, 1);
        drop(shard);
        monoio::spawn(handshake(ctx.clone(), stream, Accepted { listener, peer }));
    }
}

/// Reads CONNECT (bounded in time), admits it, and starts the connection here or hands it
/// to its home shard. Ends either way, so its state never stays with an open connection.
async fn handshake(ctx: Rc<ShardCtx>, stream: TcpStream, accepted: Accepted) {
    let mut buf = BytesMut::new();
    let deadline = Duration::from_secs(CONNECT_TIMEOUT_S);
    let connect = {
        let _live = LiveGuard::new(&ctx);
        match monoio::time::timeout(deadline, read_connect(&ctx, &stream, &mut buf)).await {
            Ok(Ok(connect)) => connect,
            Ok(Err(Some(error))) => return refuse_decode(&stream, &accepted, &error),
            Ok(Err(None)) => return,
            Err(_) => {
                let peer = accepted.peer;
                log::info!("Client <unknown> [{peer}] disconnected: no CONNECT within {CONNECT_TIMEOUT_S} s.");
                return;
            }
        }
    };
    let admitted = ctx.shard.borrow_mut().admit(&accepted, connect);
    let (request, home) = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => {
            log::info!("{}", refusal.log);
            if let Some(packet) = refusal.connack {
                write_now(&stream, &packet, refusal.protocol);
            }
            return;
        }
    };
    if home == ctx.id {
        serve(ctx, stream, accepted, request, buf);
        return;
    }
    let fd = stream.into_raw_fd();
    // SAFETY: into_raw_fd released monoio's ownership of this open descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let handoff = Handoff {
        fd,
        accepted,
        connect: request,
        leftover: buf,
    };
    ctx.shard
        .borrow_mut()
        .mesh
        .send(home, ShardMsg::Handoff(Box::new(handoff)));
}

/// Runs a connection handed over by another shard.
pub fn adopt(ctx: Rc<ShardCtx>, handoff: Handoff) {
    let std_stream = std::net::TcpStream::from(handoff.fd);
    match TcpStream::from_std(std_stream) {
        Ok(stream) => serve(
            ctx,
            stream,
            handoff.accepted,
            handoff.connect,
            handoff.leftover,
        ),
        Err(error) => {
            let peer = handoff.accepted.peer;
            log::warn!("Warning: could not adopt connection from {peer}: {error}");
        }
    }
}

/// Reads until one CONNECT is decoded. `Err(None)` is a closed socket.
async fn read_connect(
    ctx: &ShardCtx,
    stream: &TcpStream,
    buf: &mut BytesMut,
) -> Result<Box<Connect>, Option<DecodeError>> {
    let max = max_packet_size(ctx);
    loop {
        match mqtt::decode(buf, None, max) {
            Ok(Some(Packet::Connect(connect))) => return Ok(connect),
            Ok(Some(_)) => return Err(Some(DecodeError::NotConnect)),
            Ok(None) => {}
            Err(error) => return Err(Some(error)),
        }
        stream.readable(false).await.map_err(|_| None)?;
        buf.reserve(256);
        match recv_into(stream.as_raw_fd(), buf) {
            Ok(0) => return Err(None),
            Ok(read) => bump(&ctx.shard.borrow().my_stats().bytes_received, read as u64),
            Err(error) if would_block(&error) => {}
            Err(_) => return Err(None),
        }
    }
}

/// A CONNECT that could not be decoded: CONNACK where the protocol asks for one.
fn refuse_decode(stream: &TcpStream, accepted: &Accepted, error: &DecodeError) {
    log::info!(
        "Client <unknown> [{}] disconnected: {error}.",
        accepted.peer
    );
    if let DecodeError::UnsupportedProtocolVersion(_) = error {
        // [MQTT-3.1.2-2]: answer in the 3.1.1 form, the only one every level understands.
        let connack = Packet::ConnAck(crate::mqtt::ConnAck {
            session_present: false,
            reason_code: crate::mqtt::reason::v3::UNACCEPTABLE_PROTOCOL_VERSION,
            properties: Default::default(),
        });
        write_now(stream, &connack, Protocol::V311);
    }
}

/// Best-effort immediate write of one small packet before closing.
fn write_now(stream: &TcpStream, packet: &Packet, protocol: Protocol) {
    let mut out = BytesMut::new();
    if packet.encode(protocol, &mut out).is_ok() {
        let _ = send(stream.as_raw_fd(), &out);
    }
}

fn max_packet_size(ctx: &ShardCtx) -> usize {
    let shard = ctx.shard.borrow();
    shard
        .settings
        .max_packet_size
        .map_or(PACKET_SIZE_MAX, |max| max as usize)
}

/// Counts a live connection for shutdown; decrements when dropped.
struct LiveGuard<'a> {
    ctx: &'a ShardCtx,
}

impl<'a> LiveGuard<'a> {
    fn new(ctx: &'a ShardCtx) -> LiveGuard<'a> {
        ctx.live.set(ctx.live.get() + 1);
        LiveGuard { ctx }
    }
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.ctx.live.set(self.ctx.live.get() - 1);
        self.ctx.connection_ended.notify_all();
    }
}

/// Opens the connection in the shard and spawns its reader.
fn serve(
    ctx: Rc<ShardCtx>,
    stream: TcpStream,
    accepted: Accepted,
    request: ConnectRequest,
    leftover: BytesMut,
) {
    if ctx.stopping.get() {
        return;
    }
    let protocol = request.connect.protocol;
    let id = {
        let mut shard = ctx.shard.borrow_mut();
        shard.now = super::now();
        shard.open(accepted, request)
    };
    let stream = Rc::new(stream);
    ctx.register_stream(id, stream.clone());
    ctx.live.set(ctx.live.get() + 1);
    // An empty leftover still holds the allocation CONNECT was read into: drop it.
    let leftover = if leftover.is_empty() {
        BytesMut::new()
    } else {
        leftover
    };
    monoio::spawn(connection_task(ctx, stream, id, protocol, leftover));
}

/// The one task of an open connection: reads until the connection ends, then makes sure
/// what the shard queued for it is written (when the broker is the one closing) and
/// cleans up. Its future is what an idle connection costs, so it keeps little state; the
/// rare waits are boxed.
async fn connection_task(
    ctx: Rc<ShardCtx>,
    stream: Rc<TcpStream>,
    id: ConnId,
    protocol: Protocol,
    leftover: BytesMut,
) {
    let ended_by_broker = read_loop(&ctx, &stream, id, protocol, leftover).await;
    if ended_by_broker {
        Box::pin(wait_flushed(&ctx, id)).await;
    }
    ctx.unregister_stream(id);
    shutdown(stream.as_raw_fd());
    {
        let mut shard = ctx.shard.borrow_mut();
        shard.now = super::now();
        if let Some(conn) = shard.conn_mut(id) {
            conn.close(CloseReason::SocketClosed);
        }
        shard.closed(id);
    }
    ctx.live.set(ctx.live.get() - 1);
    ctx.connection_ended.notify_all();
}

/// Waits (bounded) until the flusher wrote a closing connection's last bytes.
async fn wait_flushed(ctx: &ShardCtx, id: ConnId) {
    let flushed = ctx
        .connection_flushed
        .wait_until(|| ctx.flushed_or_gone(id));
    let _ = monoio::time::timeout(CLOSE_FLUSH_TIMEOUT, flushed).await;
}

/// Reads and handles packets until the socket ends (false) or the shard closes the
/// connection (true).
async fn read_loop(
    ctx: &ShardCtx,
    stream: &TcpStream,
    id: ConnId,
    protocol: Protocol,
    mut partial: BytesMut,
) -> bool {
    let fd = stream.as_raw_fd();
    let max = max_packet_size(ctx);
    if !partial.is_empty() && handle_bytes(ctx, id, protocol, max, &mut partial) == Flow::Close {
        return true;
    }
    loop {
        if ctx.shard.borrow().mesh.congested() {
            Box::pin(
                ctx.uncongested
                    .wait_until(|| !ctx.shard.borrow().mesh.congested()),
            )
            .await;
        }
        if stream.readable(false).await.is_err() {
            return false;
        }
        let mut turn = 0;
        while turn < READ_TURN_BYTES_MAX {
            let mut buf = take_buffer(ctx, &mut partial);
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
            let flow = handle_bytes(ctx, id, protocol, max, &mut buf);
            give_back(ctx, buf, &mut partial);
            if flow == Flow::Close {
                return true;
            }
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

/// The buffer to read into: the connection's partial packet (grown to fit the rest of it),
/// or the shard's shared buffer.
fn take_buffer(ctx: &ShardCtx, partial: &mut BytesMut) -> BytesMut {
    if !partial.is_empty() {
        let mut buf = std::mem::take(partial);
        let wanted = match mqtt::peek_fixed_header(&buf) {
            Ok(Some((_, header, remaining))) => (header + remaining).saturating_sub(buf.len()),
            _ => READ_CHUNK_MIN,
        };
        buf.reserve(wanted.clamp(1, READ_BUFFER_SIZE * 4));
        return buf;
    }
    let mut shared = ctx.read_buf.borrow_mut();
    if shared.capacity() - shared.len() < READ_CHUNK_MIN {
        *shared = BytesMut::with_capacity(READ_BUFFER_SIZE);
    }
    std::mem::take(&mut *shared)
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

/// Decodes and handles every complete packet at the front of `buf`.
fn handle_bytes(
    ctx: &ShardCtx,
    id: ConnId,
    protocol: Protocol,
    max: usize,
    buf: &mut BytesMut,
) -> Flow {
    let mut shard = ctx.shard.borrow_mut();
    shard.now = super::now();
    shard.touch(id);
    loop {
        match mqtt::decode(buf, Some(protocol), max) {
            Ok(Some(packet)) => {
                if shard.handle(id, packet) == Flow::Close {
                    return Flow::Close;
                }
            }
            Ok(None) => return Flow::Continue,
            Err(error) => return shard.decode_failed(id, &error),
        }
    }
}

/// The shard's flusher: writes the outbound bytes of every queued connection, one `send`
/// each per turn, and shuts down the sockets of connections the broker closed.
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

/// Writes what connection `id` has queued, as far as the socket takes it.
fn flush_one(ctx: &Rc<ShardCtx>, id: ConnId) {
    let Some(stream) = ctx.stream(id) else { return };
    let fd = stream.as_raw_fd();
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
    while !conn.out.is_empty() {
        match send(fd, &conn.out) {
            Ok(sent) => {
                conn.out.advance(sent);
                written += sent as u64;
            }
            Err(error) if would_block(&error) => {
                conn.write_blocked = true;
                monoio::spawn(wait_writable(ctx.clone(), stream, id));
                break;
            }
            Err(_) => {
                conn.out.clear();
                conn.close(CloseReason::SocketClosed);
                break;
            }
        }
    }
    if conn.out.is_empty() {
        if conn.out.capacity() > OUTBOUND_BUFFER_KEEP {
            conn.out = BytesMut::new();
        }
        if conn.closing.is_some() {
            shutdown(fd);
        }
    }
    bump(&shard.stats[stats_index].bytes_sent, written);
}

/// Waits until a socket that refused bytes is writable again, then queues it for the
/// flusher. A connection the broker is closing gets [`CLOSE_FLUSH_TIMEOUT`], then its
/// socket is shut down: a client that stopped reading cannot hold it open.
async fn wait_writable(ctx: Rc<ShardCtx>, stream: Rc<TcpStream>, id: ConnId) {
    loop {
        match monoio::time::timeout(CLOSE_FLUSH_TIMEOUT, stream.writable(false)).await {
            Ok(Ok(())) => break,
            Ok(Err(_)) => {
                shutdown(stream.as_raw_fd());
                break;
            }
            Err(_) => {
                let closing = ctx
                    .shard
                    .borrow()
                    .conn(id)
                    .is_none_or(|c| c.closing.is_some());
                if closing {
                    shutdown(stream.as_raw_fd());
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
