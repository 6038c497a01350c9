//! Connection tasks: accept, read CONNECT, admit (or refuse), move the socket to its home
//! shard, then the reader loop and the writer task of an open connection.

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
            log::info!(
                "New connection from {} on port {}.",
                peer.ip(),
                settings.port
            );
        }
        bump(&shard.my_stats().sockets_opened, 1);
        drop(shard);
        monoio::spawn(handshake(ctx.clone(), stream, Accepted { listener, peer }));
    }
}

/// Reads CONNECT (bounded in time), admits it, and opens the connection here or hands it to
/// its home shard.
async fn handshake(ctx: Rc<ShardCtx>, stream: TcpStream, accepted: Accepted) {
    let live = LiveGuard::new(&ctx);
    let mut buf = BytesMut::new();
    let deadline = Duration::from_secs(CONNECT_TIMEOUT_S);
    let connect = match monoio::time::timeout(deadline, read_connect(&ctx, &stream, &mut buf)).await
    {
        Ok(Ok(connect)) => connect,
        Ok(Err(Some(error))) => return refuse_decode(&ctx, &stream, &accepted, &error),
        Ok(Err(None)) => return,
        Err(_) => {
            log::info!(
                "Client <unknown> [{}] disconnected: no CONNECT within {CONNECT_TIMEOUT_S} s.",
                accepted.peer
            );
            return;
        }
    };
    let admitted = ctx.shard.borrow().admit(&accepted, connect);
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
        drop(live);
        serve(ctx, stream, accepted, request, buf).await;
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
pub async fn adopt(ctx: Rc<ShardCtx>, handoff: Handoff) {
    let std_stream = std::net::TcpStream::from(handoff.fd);
    match TcpStream::from_std(std_stream) {
        Ok(stream) => {
            serve(
                ctx,
                stream,
                handoff.accepted,
                handoff.connect,
                handoff.leftover,
            )
            .await
        }
        Err(error) => log::warn!(
            "Warning: could not adopt connection from {}: {error}",
            handoff.accepted.peer
        ),
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
fn refuse_decode(ctx: &ShardCtx, stream: &TcpStream, accepted: &Accepted, error: &DecodeError) {
    let _ = ctx;
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
    ctx.shard
        .borrow()
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

/// Opens the connection in the shard, then reads until it ends; the writer runs as its own
/// task. Cleans up once both are done.
async fn serve(
    ctx: Rc<ShardCtx>,
    stream: TcpStream,
    accepted: Accepted,
    request: ConnectRequest,
    leftover: BytesMut,
) {
    let _live = LiveGuard::new(&ctx);
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
    let writer = monoio::spawn(write_loop(ctx.clone(), stream.clone(), id));
    read_loop(&ctx, &stream, id, protocol, leftover).await;
    {
        let mut shard = ctx.shard.borrow_mut();
        if let Some(conn) = shard.conn_mut(id) {
            conn.close(CloseReason::SocketClosed);
        }
    }
    writer.await;
    let mut shard = ctx.shard.borrow_mut();
    shard.now = super::now();
    shard.closed(id);
}

/// Reads and handles packets until the socket ends or the shard closes the connection.
async fn read_loop(
    ctx: &ShardCtx,
    stream: &TcpStream,
    id: ConnId,
    protocol: Protocol,
    mut partial: BytesMut,
) {
    let fd = stream.as_raw_fd();
    let max = max_packet_size(ctx);
    if !partial.is_empty() && handle_bytes(ctx, id, protocol, max, &mut partial) == Flow::Close {
        return;
    }
    loop {
        if ctx.shard.borrow().mesh.congested() {
            ctx.uncongested
                .wait_until(|| !ctx.shard.borrow().mesh.congested())
                .await;
        }
        if stream.readable(false).await.is_err() {
            return;
        }
        let mut turn = 0;
        while turn < READ_TURN_BYTES_MAX {
            let mut buf = take_buffer(ctx, &mut partial);
            let result = recv_into(fd, &mut buf);
            let read = match result {
                Ok(0) => return,
                Ok(read) => read,
                Err(error) if would_block(&error) => {
                    give_back(ctx, buf, &mut partial);
                    break;
                }
                Err(_) => return,
            };
            turn += read;
            bump(&ctx.shard.borrow().my_stats().bytes_received, read as u64);
            let flow = handle_bytes(ctx, id, protocol, max, &mut buf);
            give_back(ctx, buf, &mut partial);
            if flow == Flow::Close {
                return;
            }
        }
    }
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

/// Writes whatever the shard encoded for `id`, batch by batch, until the connection closes.
async fn write_loop(ctx: Rc<ShardCtx>, stream: Rc<TcpStream>, id: ConnId) {
    let fd = stream.as_raw_fd();
    loop {
        let next = std::future::poll_fn(|cx| {
            let mut shard = ctx.shard.borrow_mut();
            let Some(conn) = shard.conn_mut(id) else {
                return std::task::Poll::Ready(None);
            };
            if !conn.out.is_empty() {
                return std::task::Poll::Ready(Some(conn.out.split()));
            }
            if conn.closing.is_some() {
                return std::task::Poll::Ready(None);
            }
            conn.writer = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await;
        let Some(mut out) = next else { break };
        let total = out.len();
        while out.has_remaining() {
            match send(fd, &out) {
                Ok(sent) => out.advance(sent),
                Err(error) if would_block(&error) => {
                    if !wait_writable(&ctx, &stream, id).await {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let flushed = !out.has_remaining();
        drop(out);
        let mut shard = ctx.shard.borrow_mut();
        bump(&shard.my_stats().bytes_sent, total as u64);
        let Some(conn) = shard.conn_mut(id) else {
            break;
        };
        if conn.out.is_empty() && conn.out.capacity() > OUTBOUND_BUFFER_KEEP {
            conn.out = BytesMut::new();
        }
        if !flushed {
            conn.close(CloseReason::SocketClosed);
            break;
        }
    }
    shutdown(fd);
}

/// Waits until the socket takes more bytes. Gives up (false) when the socket fails, or when
/// the shard has decided to close the connection and the peer still does not read: a client
/// that stopped reading must not hold its connection open forever.
async fn wait_writable(ctx: &ShardCtx, stream: &TcpStream, id: ConnId) -> bool {
    let mut waited_closing = 0;
    loop {
        match monoio::time::timeout(Duration::from_secs(1), stream.writable(false)).await {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => return false,
            Err(_) => {}
        }
        let closing = ctx
            .shard
            .borrow()
            .conn(id)
            .is_none_or(|conn| conn.closing.is_some());
        if closing {
            waited_closing += 1;
            if waited_closing >= 2 {
                return false;
            }
        }
    }
}
