//! From accept to an admitted CONNECT: the accept loop of each listener socket, then one
//! short-lived task per new connection that runs the TLS and WebSocket handshakes when the
//! listener has them, reads CONNECT (within [`CONNECT_TIMEOUT_S`]), admits or refuses it,
//! and starts the connection here or hands the socket (and its transport state) to the
//! client id's home shard.

use super::connection::serve;
use super::inbox::{Handoff, RuntimeMsg};
use super::io::{recv_into, send, shutdown_write, would_block};
use super::linger::linger;
use super::shard_main::ShardCtx;
use crate::limits::{CONNECT_TIMEOUT_S, PACKET_SIZE_MAX};
use crate::mqtt::{self, ByteStr, Connect, DecodeError, Packet, Protocol};
use crate::shard::Accepted;
use crate::static_files::FileRequest;
use crate::stats::bump;
use crate::transport::websocket::{WebSocket, WsError};
use crate::transport::{Layers, TransportError};
use bytes::{Buf, BytesMut};
use monoio::net::{TcpListener, TcpStream, UnixListener};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A listen socket on this shard's runtime.
pub enum Listening {
    /// TCP.
    Tcp(TcpListener),
    /// A Unix socket.
    Unix(UnixListener),
}

impl Listening {
    /// The next connection. A Unix connection is carried in monoio's `TcpStream` type: the
    /// runtime only waits for readiness, calls `recv`/`send`/`shutdown` on the descriptor
    /// and closes it, which is the same for both socket families (setting TCP_NODELAY
    /// fails on it and is ignored). Its peer address reads as `0.0.0.0:0`.
    async fn accept(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        match self {
            Listening::Tcp(socket) => socket.accept().await,
            Listening::Unix(socket) => {
                let (stream, _) = socket.accept().await?;
                let fd = stream.into_raw_fd();
                // SAFETY: `fd` was just released by the UnixStream, so it is open and owned
                // by nothing else.
                let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
                let stream = TcpStream::from_std(std_stream)?;
                Ok((stream, SocketAddr::from(([0, 0, 0, 0], 0))))
            }
        }
    }
}

/// Accepts connections on one listener socket until the shard stops.
pub async fn accept_loop(ctx: Rc<ShardCtx>, listener: usize, socket: Listening) {
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            // The main thread shut the listen socket down: the broker is stopping.
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => return,
            Err(error) => {
                log::warn!("Warning: accept failed: {error}");
                monoio::time::sleep(Duration::from_millis(crate::limits::ACCEPT_RETRY_MS)).await;
                continue;
            }
        };
        if ctx.stopping.get() {
            return;
        }
        let shard = ctx.shard.borrow();
        let settings = &shard.settings.listeners[listener];
        if settings.http {
            drop(shard);
            monoio::spawn(super::http::serve_http(ctx.clone(), stream));
            continue;
        }
        if let Some(max) = settings.max_connections {
            // The listener's clients on every shard (each shard counts its own).
            let connected: u64 = shard
                .stats
                .iter()
                .map(|stats| stats.listener(listener).load(Ordering::Relaxed))
                .sum();
            if connected >= max as u64 {
                continue;
            }
        }
        // Always: Culex already writes one batch per connection per turn, so Nagle's
        // algorithm could only add delay (40 ms per TLS handshake flight, deps.md §6, and a
        // doubled p99 in the latency benchmark). `set_tcp_nodelay` is therefore redundant.
        let _ = stream.set_nodelay(true);
        if shard.settings.connection_messages {
            log::info!("New connection from {peer} on port {}.", settings.port);
        }
        bump(&shard.my_stats().sockets_opened, 1);
        drop(shard);
        monoio::spawn(handshake(ctx.clone(), stream, listener, peer));
    }
}

/// The transport layers a new connection on `listener` needs (`None` for plain TCP).
fn layers_for(ctx: &ShardCtx, listener: usize) -> Result<Option<Box<Layers>>, String> {
    let shard = ctx.shard.borrow();
    let settings = &shard.settings.listeners[listener];
    if settings.tls.is_none() && settings.websockets.is_none() {
        return Ok(None);
    }
    let frame_max = shard
        .settings
        .max_packet_size
        .map_or(PACKET_SIZE_MAX, |max| max as usize);
    let ws = settings.websockets.clone().map(|origins| {
        let ws = WebSocket::new(origins, frame_max);
        if settings.http_dir.is_some() {
            ws.serving_files()
        } else {
            ws
        }
    });
    Layers::new(settings.tls.clone(), ws)
        .map(|layers| Some(Box::new(layers)))
        .map_err(|e| e.to_string())
}

/// Reads CONNECT (bounded in time), admits it, and starts the connection here or hands it
/// to its home shard. Ends either way, so its state never stays with an open connection.
async fn handshake(ctx: Rc<ShardCtx>, stream: TcpStream, listener: usize, peer: SocketAddr) {
    let mut layers = match layers_for(&ctx, listener) {
        Ok(layers) => layers,
        Err(error) => {
            log::warn!("Warning: cannot start TLS for {peer}: {error}");
            return;
        }
    };
    let mut buf = BytesMut::new();
    let deadline = Duration::from_secs(CONNECT_TIMEOUT_S);
    let connect = {
        let _live = LiveGuard::new(&ctx);
        match monoio::time::timeout(deadline, read_connect(&ctx, &stream, &mut layers, &mut buf))
            .await
        {
            Ok(Ok(connect)) => connect,
            Ok(Err(NoConnect::Decode(error))) => {
                if refuse_decode(&stream, &mut layers, peer, &error).await {
                    close_lingering(&ctx, &stream).await;
                }
                return;
            }
            Ok(Err(NoConnect::File(request))) => {
                return super::files::serve(&ctx, &stream, &mut layers, listener, &request).await
            }
            Ok(Err(NoConnect::Closed)) => return,
            Err(_) => {
                log::info!("Client <unknown> [{peer}] disconnected: no CONNECT within {CONNECT_TIMEOUT_S} s.");
                return;
            }
        }
    };
    let certificate_username = certificate_username(&ctx, listener, layers.as_deref());
    let accepted = Accepted {
        listener,
        peer,
        certificate_username,
    };
    let admitted = ctx.shard.borrow_mut().admit(&accepted, connect);
    let (request, home) = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let connack = refusal.connack.map(crate::mqtt::Packet::ConnAck);
            if let (true, Some(packet)) = (crate::packet_log::enabled(), &connack) {
                log_refusal(peer, packet);
            }
            log::info!("{}", refusal.log);
            if let Some(packet) = connack {
                if write_now(&stream, &mut layers, &packet, refusal.protocol).await {
                    let _live = LiveGuard::new(&ctx);
                    close_lingering(&ctx, &stream).await;
                }
            }
            return;
        }
    };
    if home == ctx.id {
        serve(ctx, stream, layers, accepted, request, buf);
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
        layers,
    };
    ctx.inboxes
        .send(home, RuntimeMsg::Handoff(Box::new(handoff)));
}

/// The user name a verified client certificate gives, when the listener uses one.
fn certificate_username(
    ctx: &ShardCtx,
    listener: usize,
    layers: Option<&Layers>,
) -> Option<ByteStr> {
    let which = ctx.shard.borrow().settings.listeners[listener].certificate_username?;
    let name = layers?.certificate_username(which)?;
    (!name.contains('\0')).then(|| ByteStr::from(name))
}

/// Runs a connection handed over by another shard.
pub fn adopt(ctx: Rc<ShardCtx>, handoff: Handoff) {
    let std_stream = std::net::TcpStream::from(handoff.fd);
    match TcpStream::from_std(std_stream) {
        Ok(stream) => serve(
            ctx,
            stream,
            handoff.layers,
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

/// Why a new connection brought no CONNECT.
enum NoConnect {
    /// The socket closed, or a transport handshake failed (logged).
    Closed,
    /// The first packet could not be decoded or was not CONNECT.
    Decode(DecodeError),
    /// A plain HTTP request for the listener's `http_dir`.
    File(FileRequest),
}

/// Reads until one CONNECT is decoded, running the transport handshakes on the way.
async fn read_connect(
    ctx: &ShardCtx,
    stream: &TcpStream,
    layers: &mut Option<Box<Layers>>,
    buf: &mut BytesMut,
) -> Result<Box<Connect>, NoConnect> {
    let max = ctx
        .shard
        .borrow()
        .settings
        .max_packet_size
        .map_or(PACKET_SIZE_MAX, |max| max as usize);
    let mut wire = BytesMut::new();
    loop {
        match mqtt::decode(buf, None, max) {
            Ok(Some(Packet::Connect(connect))) => return Ok(connect),
            Ok(Some(_)) => return Err(NoConnect::Decode(DecodeError::NotConnect)),
            Ok(None) => {}
            Err(error) => return Err(NoConnect::Decode(error)),
        }
        stream
            .readable(false)
            .await
            .map_err(|_| NoConnect::Closed)?;
        let target = if layers.is_some() {
            &mut wire
        } else {
            &mut *buf
        };
        target.reserve(4096);
        match recv_into(stream.as_raw_fd(), target) {
            Ok(0) => return Err(NoConnect::Closed),
            Ok(read) => bump(&ctx.shard.borrow().my_stats().bytes_received, read as u64),
            Err(error) if would_block(&error) => continue,
            Err(_) => return Err(NoConnect::Closed),
        }
        if let Some(layers) = layers.as_mut() {
            let mut reply = BytesMut::new();
            let result = layers.ingest(&wire, buf, &mut reply);
            wire.clear();
            send_all(stream, &mut reply).await;
            match result {
                Ok(()) => {}
                Err(TransportError::WebSocket(WsError::PlainHttp(request))) => {
                    return Err(NoConnect::File(request))
                }
                Err(error) => {
                    log::info!(
                        "Client <unknown> [{}] disconnected: {error}.",
                        peer_of(stream)
                    );
                    return Err(NoConnect::Closed);
                }
            }
        }
    }
}

fn peer_of(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map_or_else(|_| "unknown".to_string(), |peer| peer.to_string())
}

/// How long a refused client may take to accept its CONNACK.
const HANDSHAKE_WRITE_TIMEOUT: Duration =
    Duration::from_millis(crate::limits::HANDSHAKE_WRITE_TIMEOUT_MS);

/// Writes all of `bytes`, waiting for the socket as needed (handshake-sized writes only;
/// the caller's overall deadline bounds the wait). False if they could not all be written.
async fn send_all(stream: &TcpStream, bytes: &mut BytesMut) -> bool {
    while !bytes.is_empty() {
        match send(stream.as_raw_fd(), bytes) {
            Ok(sent) => bytes.advance(sent),
            Err(error) if would_block(&error) => {
                let writable =
                    monoio::time::timeout(HANDSHAKE_WRITE_TIMEOUT, stream.writable(false)).await;
                if !matches!(writable, Ok(Ok(()))) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// After a refusal was written: shuts the write side down and reads what the client still
/// sends (bounded, `linger.rs`), so that a client that sent more after its CONNECT reads
/// the refusal instead of a reset. The socket is closed when the caller drops it.
async fn close_lingering(ctx: &ShardCtx, stream: &TcpStream) {
    shutdown_write(stream.as_raw_fd());
    linger(ctx, stream).await;
}

/// A CONNECT that could not be decoded: CONNACK where the protocol asks for one. True when
/// a CONNACK was written.
async fn refuse_decode(
    stream: &TcpStream,
    layers: &mut Option<Box<Layers>>,
    peer: SocketAddr,
    error: &DecodeError,
) -> bool {
    log::info!("Client <unknown> [{peer}] disconnected: {error}.");
    if let DecodeError::UnsupportedProtocolVersion(_) = error {
        // [MQTT-3.1.2-2]: answer in the 3.1.1 form, the only one every level understands.
        let connack = Packet::ConnAck(Box::new(crate::mqtt::ConnAck {
            session_present: false,
            reason_code: crate::mqtt::reason::v3::UNACCEPTABLE_PROTOCOL_VERSION,
            properties: Default::default(),
        }));
        if crate::packet_log::enabled() {
            log_refusal(peer, &connack);
        }
        return write_now(stream, layers, &connack, Protocol::V311).await;
    }
    false
}

/// `Sending CONNACK to <address> (0, <code>)`: a refused client has no id yet.
fn log_refusal(peer: SocketAddr, packet: &Packet) {
    if let Packet::ConnAck(connack) = packet {
        log::debug!(
            "{}",
            crate::packet_log::connack_refused(peer.ip(), connack.reason_code)
        );
    }
}

/// Writes one packet (a refusal) before the connection is dropped. True when it was
/// written (with the transport's closing bytes).
async fn write_now(
    stream: &TcpStream,
    layers: &mut Option<Box<Layers>>,
    packet: &Packet,
    protocol: Protocol,
) -> bool {
    let mut out = BytesMut::new();
    if packet.encode(protocol, &mut out).is_err() {
        return false;
    }
    if let Some(layers) = layers.as_mut() {
        let mut wire = BytesMut::new();
        layers.wrap(&out, &mut wire);
        layers.close(&mut wire);
        out = wire;
    }
    send_all(stream, &mut out).await
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
