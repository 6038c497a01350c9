//! The only code that touches monoio: one runtime per shard thread, its listeners, and the
//! tasks that move bytes between sockets and the shard state.
//!
//! ```text
//!   main thread: bind SO_REUSEPORT sockets (one per shard per listener address)
//!        │ start()
//!        ▼
//!   shard thread i: monoio runtime (io_uring, or epoll where io_uring is blocked)
//!        ├─ accept task per listener socket ──► connection task per client
//!        │        (reads CONNECT, admits, hands the socket to its home shard if needed)
//!        ├─ mesh task: drains the rings, runs handoffs and control commands
//!        └─ tick task: keep alive, expiry, wills, $SYS (shard 0)
//! ```
//!
//! Called by the `culex` binary (`start`, then `BrokerHandle` methods from the main thread).

mod connection;
mod files;
mod flush;
mod handshake;
mod http;
pub mod inbox;
mod io;
mod linger;
mod shard_main;
mod sync;

pub use crate::persist::Restore;

use crate::access::AccessPolicy;
use crate::control::ServiceMsg;
use crate::mesh::Mesh;
use crate::persist::ShardSnapshot;
use crate::settings::Settings;
use crate::shard::Now;
use crate::stats::ShardStats;
pub use inbox::{Control, Handoff, Inboxes, RuntimeMsg};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A bound listen socket handed to a shard.
#[derive(Debug)]
pub enum ListenSocket {
    /// TCP (one SO_REUSEPORT socket per shard).
    Tcp(TcpListener),
    /// A Unix socket (`listener 0 /path`): one socket, accepted by one shard; connections
    /// move to their client id's home shard like any other.
    Unix(UnixListener),
}

/// Which io driver the shard runtimes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// io_uring when the kernel allows it, else epoll (monoio's FusionDriver).
    Auto,
    /// epoll only.
    Epoll,
}

/// Everything needed to start the shards.
pub struct Launch {
    /// Settings.
    pub settings: Arc<Settings>,
    /// Access rules.
    pub access: Arc<AccessPolicy>,
    /// Where shards send `$CONTROL/...` requests (`None`: no handler).
    pub control: Option<mpsc::Sender<ServiceMsg>>,
    /// Listener sockets per shard: `sockets[shard]` = (listener index, socket).
    pub sockets: Vec<Vec<(usize, ListenSocket)>>,
    /// State restored from the persistence file, per shard.
    pub restore: Vec<Restore>,
    /// io driver.
    pub driver: Driver,
    /// The CPU of each shard thread, by shard ([`crate::cpu_affinity::plan`]); shorter
    /// (or empty) leaves the rest unpinned.
    pub cpus: Vec<Option<usize>>,
    /// The output ring of each shard, by shard, when a consumer of the durable changes is
    /// attached from the start (`state::port`); empty: none.
    pub output: Vec<Arc<crate::state::port::OutputRing>>,
    /// The cluster's figures when the HA module is loaded (`/readyz`, `/metrics`, `$SYS`).
    pub cluster: Option<Arc<crate::cluster_status::ClusterStatus>>,
}

/// The running broker, as the main thread sees it.
pub struct BrokerHandle {
    mesh: Arc<Mesh>,
    inboxes: Arc<Inboxes>,
    threads: Vec<JoinHandle<()>>,
    /// Counters of every shard.
    pub stats: Arc<[ShardStats]>,
}

/// Starts one thread per shard. Returns once every runtime is built.
pub fn start(launch: Launch) -> std::io::Result<BrokerHandle> {
    let shards = launch.sockets.len();
    assert_eq!(launch.restore.len(), shards);
    let mesh = Mesh::new(shards);
    let inboxes = Inboxes::new(shards);
    let stats: Arc<[ShardStats]> = (0..shards).map(|_| ShardStats::default()).collect();
    let (ready_tx, ready_rx) = mpsc::channel::<std::io::Result<()>>();
    let mut threads = Vec::with_capacity(shards);
    for (id, (sockets, restore)) in launch.sockets.into_iter().zip(launch.restore).enumerate() {
        let context = shard_main::ThreadContext {
            id: id as u8,
            mesh: mesh.clone(),
            inboxes: inboxes.clone(),
            settings: launch.settings.clone(),
            access: launch.access.clone(),
            control: launch.control.clone(),
            stats: stats.clone(),
            sockets,
            restore,
            driver: launch.driver,
            cpu: launch.cpus.get(id).copied().flatten(),
            output: launch.output.get(id).cloned(),
            cluster: launch.cluster.clone(),
        };
        let ready = ready_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("culex-shard-{id}"))
            .spawn(move || shard_main::run(context, ready))?;
        threads.push(thread);
    }
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(std::io::Error::other("a shard thread died while starting")),
        }
    }
    Ok(BrokerHandle {
        mesh,
        inboxes,
        threads,
        stats,
    })
}

impl BrokerHandle {
    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.mesh.shards()
    }

    /// The shards' runtime inboxes, for services that send them commands (the
    /// dynamic-security service, the log publisher).
    pub fn inboxes(&self) -> Arc<Inboxes> {
        self.inboxes.clone()
    }

    /// Asks every shard for its durable state and waits for all of them (bounded).
    pub fn snapshot(&self) -> std::io::Result<Vec<ShardSnapshot>> {
        let (tx, rx) = mpsc::channel();
        for shard in 0..self.mesh.shards() {
            self.inboxes.send(
                shard as u8,
                RuntimeMsg::Control(Control::Snapshot(tx.clone())),
            );
        }
        let mut parts = Vec::with_capacity(self.mesh.shards());
        for _ in 0..self.mesh.shards() {
            let wait = Duration::from_secs(crate::limits::SNAPSHOT_REPLY_TIMEOUT_S);
            let part = rx.recv_timeout(wait).map_err(|_| {
                std::io::Error::other("a shard did not answer the snapshot request")
            })?;
            parts.push(part);
        }
        parts.sort_by_key(|part| part.shard);
        Ok(parts)
    }

    /// Hands new settings to every shard.
    /// `access` is `None` when a service (dynamic security) sends the shards their rules.
    pub fn reload(&self, settings: Arc<Settings>, access: Option<Arc<AccessPolicy>>) {
        for shard in 0..self.mesh.shards() {
            let control = Control::Reload(settings.clone(), access.clone());
            self.inboxes.send(shard as u8, RuntimeMsg::Control(control));
        }
    }

    /// Closes every connection, stops the shards and waits for their threads.
    pub fn shutdown(self) {
        for shard in 0..self.mesh.shards() {
            self.inboxes
                .send(shard as u8, RuntimeMsg::Control(Control::Shutdown));
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// The clock a shard reads once per turn.
pub fn now() -> Now {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    let unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Now {
        unix_s,
        mono_ms: start.elapsed().as_millis() as u64,
    }
}
