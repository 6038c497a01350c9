//! One shard thread: builds its monoio runtime, restores its state, and runs the accept,
//! mesh and tick tasks until shutdown.

use super::inbox::{Control, Inboxes, RuntimeMsg};
use super::sync::{yield_now, Notify};
use super::{flush, handshake};
use super::{Driver, ListenSocket};
use crate::access::AccessPolicy;
use crate::connection::ConnId;
use crate::control::ServiceMsg;
use crate::limits::{MESH_DRAIN_BUDGET, READ_BUFFER_SIZE, TICK_MS};
use crate::mesh::{Mesh, MeshPort};
use crate::persist;
use crate::settings::Settings;
use crate::shard::Shard;
use crate::stats::ShardStats;
use crate::sys::SysPublisher;
use crate::transport::Layers;
use bytes::BytesMut;
use monoio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// What a shard thread starts with.
pub struct ThreadContext {
    pub id: u8,
    pub mesh: Arc<Mesh>,
    pub inboxes: Arc<Inboxes>,
    pub settings: Arc<Settings>,
    pub access: Arc<AccessPolicy>,
    pub control: Option<mpsc::Sender<ServiceMsg>>,
    pub stats: Arc<[ShardStats]>,
    pub sockets: Vec<(usize, ListenSocket)>,
    pub restore: persist::Restore,
    pub driver: Driver,
    /// The CPU to pin this thread to ([`crate::cpu_affinity::plan`]); `None`: not pinned.
    pub cpu: Option<usize>,
    /// This shard's output ring, when a consumer is attached from the start.
    pub output: Option<Arc<crate::state::port::OutputRing>>,
    /// The cluster's figures, when the HA module is loaded.
    pub cluster: Option<Arc<crate::cluster_status::ClusterStatus>>,
}

/// One slot of [`ShardCtx::streams`]: the connection that holds it and its socket.
pub type StreamSlot = Option<(ConnId, Rc<ConnIo>)>;

/// Per-shard runtime state shared by its tasks (single thread, so `Rc` and `RefCell`).
pub struct ShardCtx {
    /// The shard state.
    pub shard: RefCell<Shard>,
    /// Receive side of the mesh.
    pub mesh: Arc<Mesh>,
    /// Every shard's runtime inbox (this shard drains its own; hand-offs go to others').
    pub inboxes: Arc<Inboxes>,
    /// This shard's id.
    pub id: u8,
    /// The shared read buffer connections read into when they have no partial packet.
    pub read_buf: RefCell<BytesMut>,
    /// Woken when the mesh overflow drains (readers pause while it is congested).
    pub uncongested: Notify,
    /// Woken when a connection ends (shutdown waits for all of them).
    pub connection_ended: Notify,
    /// Woken after each flusher pass (a closing connection waits for its last bytes).
    pub connection_flushed: Notify,
    /// The socket (and transport) of each open connection, by connection slot.
    pub streams: RefCell<Vec<StreamSlot>>,
    /// Connections alive on this shard (including ones still reading CONNECT).
    pub live: Cell<usize>,
    /// Set when shutdown starts.
    pub stopping: Cell<bool>,
    /// Counts the changes of replication mode: a gate task whose number is not the
    /// current one ends (`gate_loop`).
    pub gate_epoch: Cell<u64>,
}

/// The runtime side of one open connection: its socket, and for TLS/WebSocket the
/// transport state and the bytes already wrapped for the socket but not yet sent.
pub struct ConnIo {
    /// The socket.
    pub stream: TcpStream,
    /// TLS/WebSocket state; `None` for plain TCP.
    pub layers: RefCell<Option<Box<Layers>>>,
    /// Wrapped bytes waiting for the socket (transports only; plain TCP sends `out`).
    pub wire: RefCell<BytesMut>,
    /// The closing bytes of the transport (close frame, close_notify) were queued.
    pub closed: Cell<bool>,
    /// The broker closed the connection and the flusher wrote its last bytes and shut the
    /// write side down: the reader stops handling packets and lingers (`linger.rs`).
    pub shut: Cell<bool>,
    /// The reader's waker while it waits for the socket, so that the flusher can wake it
    /// once `shut` is set.
    pub reader: Cell<Option<std::task::Waker>>,
    /// A closing connection's last bytes wait for the gate: its socket is shut down when
    /// they left or after [`super::connection::CLOSE_FLUSH_TIMEOUT`] (`flush::close_held`).
    pub close_timer: Cell<bool>,
}

impl ConnIo {
    /// The socket of a connection, with no transport state yet.
    pub fn new(stream: TcpStream, layers: Option<Box<Layers>>) -> ConnIo {
        ConnIo {
            stream,
            layers: RefCell::new(layers),
            wire: RefCell::new(BytesMut::new()),
            closed: Cell::new(false),
            shut: Cell::new(false),
            reader: Cell::new(None),
            close_timer: Cell::new(false),
        }
    }

    /// Called by the flusher once the last bytes of a closing connection are written: shuts
    /// the write side down and wakes the reader, which then lingers.
    pub fn shut_write(&self) {
        if !self.shut.replace(true) {
            super::io::shutdown_write(std::os::fd::AsRawFd::as_raw_fd(&self.stream));
        }
        if let Some(reader) = self.reader.take() {
            reader.wake();
        }
    }
}

impl ShardCtx {
    /// Records the socket of a newly opened connection.
    pub fn register_stream(&self, id: ConnId, stream: Rc<ConnIo>) {
        let mut streams = self.streams.borrow_mut();
        let slot = id.slot as usize;
        if streams.len() <= slot {
            streams.resize(slot + 1, None);
        }
        streams[slot] = Some((id, stream));
    }

    /// Forgets the socket of a connection that ended.
    pub fn unregister_stream(&self, id: ConnId) {
        let mut streams = self.streams.borrow_mut();
        if let Some(entry) = streams.get_mut(id.slot as usize) {
            if entry.as_ref().is_some_and(|(owner, _)| *owner == id) {
                *entry = None;
            }
        }
    }

    /// The socket of connection `id`, if it is still open.
    pub fn stream(&self, id: ConnId) -> Option<Rc<ConnIo>> {
        let streams = self.streams.borrow();
        match streams.get(id.slot as usize) {
            Some(Some((owner, stream))) if *owner == id => Some(stream.clone()),
            _ => None,
        }
    }

    /// True while connection `id` should not read: a mesh ring to another shard is full,
    /// or a consumer of this shard has more bytes or queued messages waiting than it took
    /// (backpressure instead of reading messages only to drop them), and the client has
    /// nothing in flight to acknowledge (acknowledgements are what drain a held-back
    /// queue, so a client awaiting them is always read). See [`Shard::holds_back`].
    pub fn holds_back(&self, id: ConnId) -> bool {
        self.shard.borrow().holds_back(id)
    }

    /// Waits until `ready()` holds. Every [`CONGESTION_RECHECK`] it looks again (a
    /// client may have started to await acknowledgements) and releases queues that stopped
    /// moving ([`Shard::release_stalled_queues`]), so no client holds the shard for long.
    pub async fn wait_uncongested(&self, ready: impl Fn() -> bool) {
        while !ready() {
            let woken = self.uncongested.wait_until(&ready);
            if monoio::time::timeout(CONGESTION_RECHECK, woken)
                .await
                .is_ok()
            {
                return;
            }
            {
                let mut shard = self.shard.borrow_mut();
                shard.now = super::now();
                shard.release_stalled_queues();
                // Changes waiting for room in the output ring: the consumer may have
                // drained it since the end of the last turn.
                if shard.output.congested() && shard.output.flush() {
                    drop(shard);
                    self.uncongested.notify_all();
                }
            }
            self.wake_if_unblocked();
        }
    }

    /// Wakes the tasks waiting for the shard to be uncongested when its last hold was
    /// released since the previous call ([`crate::connection::FlushQueue::take_unblocked`]).
    /// Call with no borrow of the shard held.
    pub fn wake_if_unblocked(&self) {
        let unblocked = self.shard.borrow().flush.take_unblocked();
        if unblocked {
            self.uncongested.notify_all();
        }
    }

    /// True when connection `id`, which the broker closes, has nothing left to write: its
    /// last bytes are written and its write side is shut down, or writing failed, or it
    /// is gone.
    pub fn flushed_or_gone(&self, id: ConnId, io: &ConnIo) -> bool {
        if io.shut.get() {
            return true;
        }
        let shard = self.shard.borrow();
        shard.conn(id).is_none_or(|conn| {
            conn.out.is_empty()
                && !conn.queued
                && !conn.write_blocked
                && io.wire.borrow().is_empty()
        })
    }
}

/// Thread entry point.
pub fn run(context: ThreadContext, ready: mpsc::Sender<std::io::Result<()>>) {
    if let Some(cpu) = context.cpu {
        if let Err(error) = crate::cpu_affinity::pin_current_thread(cpu) {
            log::warn!(
                "Warning: Unable to pin shard {} to CPU {cpu}: {error}.",
                context.id
            );
        }
    }
    let driver = context.driver;
    let result = match driver {
        Driver::Auto => match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .with_entries(4096)
            .build()
        {
            Ok(mut runtime) => {
                runtime.block_on(shard_main(context, ready.clone()));
                Ok(())
            }
            // A ring the kernel cannot allocate now (memory pressure): epoll, as where
            // io_uring is refused altogether.
            Err(error) => {
                log::warn!(
                    "Warning: shard {}: io_uring unavailable ({error}); using epoll.",
                    context.id
                );
                monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                    .enable_timer()
                    .build()
                    .map(|mut runtime| runtime.block_on(shard_main(context, ready.clone())))
            }
        },
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut runtime| runtime.block_on(shard_main(context, ready.clone()))),
    };
    if let Err(error) = result {
        let _ = ready.send(Err(error));
    }
}

async fn shard_main(context: ThreadContext, ready: mpsc::Sender<std::io::Result<()>>) {
    let port = MeshPort::new(context.mesh.clone(), context.id);
    let mut shard = Shard::new(port, context.settings, context.access, context.stats);
    shard.control = context.control;
    shard.cluster = context.cluster;
    if let Some(ring) = context.output {
        shard.output.attach(ring);
    }
    shard.now = super::now();
    if let Err(error) = shard.apply_records(context.restore.records) {
        // `persist::verify` applied the same records before the shards started.
        log::error!("Error: restoring shard {}: {error}.", context.id);
    }
    let ctx = Rc::new(ShardCtx {
        shard: RefCell::new(shard),
        mesh: context.mesh,
        inboxes: context.inboxes,
        id: context.id,
        read_buf: RefCell::new(BytesMut::with_capacity(READ_BUFFER_SIZE)),
        uncongested: Notify::default(),
        connection_ended: Notify::default(),
        connection_flushed: Notify::default(),
        streams: RefCell::new(Vec::new()),
        live: Cell::new(0),
        stopping: Cell::new(false),
        gate_epoch: Cell::new(0),
    });
    if let Err(error) = listen(&ctx, context.sockets) {
        let _ = ready.send(Err(error));
        return;
    }
    monoio::spawn(tick_loop(ctx.clone()));
    monoio::spawn(flush::flush_loop(ctx.clone()));
    let mesh_task = monoio::spawn(mesh_loop(ctx.clone()));
    let _ = ready.send(Ok(()));
    mesh_task.await;
}

/// Starts an accept loop on each socket. A loop ends when its socket is shut down (at
/// exit, or when a cluster node stops serving clients).
fn listen(ctx: &Rc<ShardCtx>, sockets: Vec<(usize, ListenSocket)>) -> std::io::Result<()> {
    for (listener, socket) in sockets {
        let socket = match socket {
            ListenSocket::Tcp(socket) => {
                monoio::net::TcpListener::from_std(socket).map(handshake::Listening::Tcp)
            }
            ListenSocket::Unix(socket) => {
                monoio::net::UnixListener::from_std(socket).map(handshake::Listening::Unix)
            }
        }?;
        monoio::spawn(handshake::accept_loop(ctx.clone(), listener, socket));
    }
    Ok(())
}

/// Drains the mesh and the runtime inbox (hand-offs, commands); returns after shutdown
/// completed.
async fn mesh_loop(ctx: Rc<ShardCtx>) {
    let receiver = MeshPort::new(ctx.mesh.clone(), ctx.id);
    loop {
        // While a consumer of this shard is backlogged, deliveries from other shards wait
        // too, so their readers feel the backpressure through the full ring (bounded:
        // `SLOW_CONSUMER_AFTER_MS`).
        ctx.wait_uncongested(|| !ctx.shard.borrow().flush.backlogged())
            .await;
        let handled = {
            let mut shard = ctx.shard.borrow_mut();
            shard.now = super::now();
            let interest = receiver.interest();
            let handled = receiver.drain(MESH_DRAIN_BUDGET, |msg| {
                shard.on_mesh(msg);
                !shard.flush.backlogged()
            });
            if handled < MESH_DRAIN_BUDGET && !shard.flush.backlogged() {
                // Every ring was emptied: the readers need not drain for this epoch.
                shard.interest_caught_up(interest);
            }
            // A gated shard seals what the deliveries' QoS 2 PUBLISHes wait for.
            if handled > 0 && shard.gated() {
                shard.end_turn();
            }
            handled
        };
        super::flush::flush_early(&ctx);
        let mut commands = 0;
        while let Some(msg) = ctx.inboxes.pop(ctx.id) {
            commands += 1;
            if run_control(&ctx, msg) {
                finish_shutdown(&ctx).await;
                return;
            }
            if commands == MESH_DRAIN_BUDGET {
                break;
            }
        }
        let handled = handled + commands;
        let flushed = ctx.shard.borrow_mut().mesh.flush_overflow();
        if flushed {
            ctx.uncongested.notify_all();
        }
        if handled == MESH_DRAIN_BUDGET {
            yield_now().await;
        } else if handled == 0 {
            // Parks until a message arrives or, while messages wait in the overflow, until a
            // target drained its ring (it wakes us: `MeshPort::drain`). While overflowing,
            // the park is also bounded: the readers of this shard wait for that flush, so
            // a lost wake-up must cost a millisecond, never a stall.
            let parked = std::future::poll_fn(|cx| {
                let mesh = receiver.poll_parked(cx).is_ready();
                let inbox = ctx.inboxes.poll_parked(ctx.id, cx).is_ready();
                if mesh || inbox || ctx.shard.borrow().mesh.can_flush() {
                    std::task::Poll::Ready(())
                } else {
                    std::task::Poll::Pending
                }
            });
            if ctx.shard.borrow().mesh.congested() {
                let _ = monoio::time::timeout(OVERFLOW_RECHECK, parked).await;
            } else {
                parked.await;
            }
        }
    }
}

/// How often a task waiting for the shard to be uncongested looks again.
const CONGESTION_RECHECK: Duration = Duration::from_millis(crate::limits::CONGESTION_RECHECK_MS);

/// Longest park of the mesh task while this shard has overflowed messages to flush.
const OVERFLOW_RECHECK: Duration = Duration::from_millis(crate::limits::OVERFLOW_RECHECK_MS);

/// Runs one runtime message; true when it was Shutdown.
fn run_control(ctx: &Rc<ShardCtx>, msg: RuntimeMsg) -> bool {
    match msg {
        RuntimeMsg::Handoff(handoff) => handshake::adopt(ctx.clone(), *handoff),
        RuntimeMsg::Control(Control::Shutdown) => {
            ctx.stopping.set(true);
            ctx.shard.borrow_mut().shutdown();
            return true;
        }
        RuntimeMsg::Control(Control::Snapshot(reply)) => {
            let shard = ctx.shard.borrow();
            let snapshot = persist::ShardSnapshot {
                shard: shard.id,
                records: shard.snapshot_records(Some(super::now().unix_s)),
            };
            let _ = reply.send(snapshot);
        }
        RuntimeMsg::Control(Control::Access(access)) => ctx.shard.borrow_mut().set_access(access),
        RuntimeMsg::Control(Control::Relay(relay)) => relay.pass(),
        RuntimeMsg::Control(Control::Publish(message)) => {
            let mut shard = ctx.shard.borrow_mut();
            shard.now = super::now();
            shard.publish_message(*message, None);
            // Before anything sent after it (a kick must not overtake its response).
            shard.end_turn();
        }
        RuntimeMsg::Control(Control::Kick(kicks)) => {
            let mut shard = ctx.shard.borrow_mut();
            shard.kick(&kicks);
            shard
                .mesh
                .broadcast(|| crate::mesh::ShardMsg::Kick(kicks.clone()));
        }
        RuntimeMsg::Control(Control::Listen(sockets)) => {
            let listeners: Vec<usize> = sockets.iter().map(|(listener, _)| *listener).collect();
            ctx.shard.borrow_mut().open_listeners(&listeners);
            if let Err(error) = listen(ctx, sockets) {
                log::error!("Error: shard {}: cannot listen: {error}.", ctx.id);
            }
        }
        RuntimeMsg::Control(Control::CloseListeners(listeners)) => {
            let mut shard = ctx.shard.borrow_mut();
            shard.close_listeners(&listeners);
            shard.end_turn();
        }
        RuntimeMsg::Control(Control::ApplyRecords(records)) => {
            let mut shard = ctx.shard.borrow_mut();
            shard.now = super::now();
            if let Err(error) = shard.apply_records(records) {
                log::error!(
                    "Error: shard {}: a committed record does not fit: {error}.",
                    ctx.id
                );
            }
            shard.end_turn();
        }
        RuntimeMsg::Control(Control::ResetDurable) => {
            let mut shard = ctx.shard.borrow_mut();
            shard.now = super::now();
            shard.reset_durable();
            shard.end_turn();
        }
        RuntimeMsg::Control(Control::Replicate {
            replication,
            passive,
        }) => {
            let gated = matches!(replication, crate::shard::Replication::Gated(_));
            let epoch = ctx.gate_epoch.get() + 1;
            ctx.gate_epoch.set(epoch);
            {
                let mut shard = ctx.shard.borrow_mut();
                shard.now = super::now();
                shard.replicate(replication);
                shard.set_passive(passive);
                shard.end_turn();
            }
            if gated {
                monoio::spawn(gate_loop(ctx.clone(), epoch));
            }
        }
        RuntimeMsg::Control(Control::Reload(settings, access)) => {
            let mut shard = ctx.shard.borrow_mut();
            shard.reload(settings);
            if let Some(access) = access {
                shard.set_access(access);
            }
        }
    }
    false
}

/// How long the gate task waits for the consumer before it looks again (a change of mode,
/// shutdown; a lost wake-up costs this much, never a stall).
const GATE_RECHECK: Duration = Duration::from_millis(TICK_MS);

/// While this shard gates acknowledgements (`shard::gate`): waits for the consumer to
/// make more of the shard's changes durable, then releases what waited for them. Ends when
/// the mode changes again (`epoch`) or the shard stops.
async fn gate_loop(ctx: Rc<ShardCtx>, epoch: u64) {
    loop {
        if ctx.gate_epoch.get() != epoch || ctx.stopping.get() {
            return;
        }
        let Some((ring, seen)) = ctx.shard.borrow().gate_ring() else {
            return;
        };
        let advanced = std::future::poll_fn(|cx| ring.poll_durable(seen, cx));
        if monoio::time::timeout(GATE_RECHECK, advanced).await.is_err()
            || ctx.gate_epoch.get() != epoch
        {
            continue;
        }
        let mut shard = ctx.shard.borrow_mut();
        shard.now = super::now();
        shard.gate_advance();
        shard.end_turn();
    }
}

/// Waits (bounded) for every connection to flush and close.
async fn finish_shutdown(ctx: &Rc<ShardCtx>) {
    let wait = ctx.connection_ended.wait_until(|| ctx.live.get() == 0);
    let drain = Duration::from_secs(crate::limits::SHUTDOWN_DRAIN_S);
    let _ = monoio::time::timeout(drain, wait).await;
}

/// Housekeeping every `TICK_MS`, and `$SYS` on shard 0. The first `$SYS` values (and the
/// once-only `$SYS/broker/version`) go out when the shard starts, before any client can
/// have subscribed, as Mosquitto's do; a client subscribing to `$SYS/#` right after start
/// then gets them as retained messages, not live ones ahead of its SUBACK.
async fn tick_loop(ctx: Rc<ShardCtx>) {
    let mut sys = (ctx.id == 0).then(SysPublisher::default);
    if let Some(sys) = sys.as_mut() {
        let mut shard = ctx.shard.borrow_mut();
        shard.now = super::now();
        sys.maybe_publish(&mut shard);
        shard.end_turn();
    }
    loop {
        monoio::time::sleep(Duration::from_millis(TICK_MS)).await;
        if ctx.stopping.get() {
            return;
        }
        let mut shard = ctx.shard.borrow_mut();
        shard.now = super::now();
        shard.tick();
        if let Some(sys) = sys.as_mut() {
            sys.maybe_publish(&mut shard);
        }
        shard.end_turn();
    }
}
