//! Listening sockets: one SO_REUSEPORT socket per shard per listener address, bound by the
//! main thread before any shard starts so that a busy port stops start-up with Mosquitto's
//! error and exit code.
//!
//! Because every socket of a reuse-port group must set SO_REUSEPORT, a second Culex on the
//! same port would silently join the group and steal connections. A probe bind without
//! SO_REUSEPORT first detects any other holder of the port.
//!
//! Restarting at once must work (supervisors, `systemctl restart`, test harnesses do it).
//! Two things stand in the way, both handled here:
//! - a socket an io_uring request still holds outlives its process: the ring is torn down
//!   by the kernel a little after the exit (20–30 ms measured). [`ListenGuard`] therefore
//!   shuts every TCP listen socket down from the main thread at exit, which takes it out of
//!   the listen state at once whoever still holds the file;
//! - after a crash or SIGKILL nobody can do that, so a port in use on which no live process
//!   listens is waited for (at most [`ORPHAN_WAIT`]); a port a live process listens on
//!   fails at once, naming address and port.

mod holder;

use shards::runtime::ListenSocket;
use shards::settings::{ListenerSettings, Settings};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

/// Sockets per shard: `result[shard]` = (listener index, socket).
pub type ShardSockets = Vec<Vec<(usize, ListenSocket)>>;

/// Longest wait for a port held by sockets a process that has exited left behind.
const ORPHAN_WAIT: Duration = Duration::from_secs(2);

/// Pause between two binds while waiting for such sockets to go.
const ORPHAN_RECHECK: Duration = Duration::from_millis(10);

/// The bound sockets: per shard, and the main thread's handle on every TCP one.
pub struct Bound {
    /// Sockets handed to the shards.
    pub shards: ShardSockets,
    /// Closes the TCP listen sockets when dropped (or on [`ListenGuard::close`]).
    pub guard: ListenGuard,
}

/// A duplicate of every TCP listen socket, kept by the main thread so that the listen
/// state ends when the broker stops, not when the kernel gets round to tearing down the
/// shards' io_uring instances.
pub struct ListenGuard {
    sockets: Vec<std::net::TcpListener>,
}

impl ListenGuard {
    /// Stops listening on every TCP port now: new connections are refused and the ports
    /// can be bound again at once. The shards' accept loops end.
    pub fn close(mut self) {
        self.shutdown_all();
    }

    fn shutdown_all(&mut self) {
        for socket in self.sockets.drain(..) {
            // SAFETY: shutdown(2) on a descriptor we own; on a listen socket it moves the
            // shared socket out of the listen state (Linux), whoever else holds it.
            unsafe { libc::shutdown(socket.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}

impl Drop for ListenGuard {
    fn drop(&mut self) {
        self.shutdown_all();
    }
}

/// Binds every listener address once per shard. Addresses that cannot be bound because the
/// address family is unavailable (IPv6 disabled) are skipped with a warning, as Mosquitto
/// does; a port in use is an error naming the address and port.
pub fn bind_all(settings: &Settings, shards: usize) -> io::Result<Bound> {
    let bound = bind_selected(settings, shards, |_| true, OrphanWait::Wait)?;
    if bound.shards.first().is_none_or(Vec::is_empty) {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no listen socket could be opened",
        ));
    }
    Ok(bound)
}

/// Whether a bind waits for sockets an exited process left behind ([`ORPHAN_WAIT`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OrphanWait {
    /// Wait (start-up).
    Wait,
    /// Fail at once (a thread that must not block, which tries again later).
    Fail,
}

/// [`bind_all`] for the listeners `select` picks (by index).
pub fn bind_selected(
    settings: &Settings,
    shards: usize,
    select: impl Fn(usize) -> bool,
    wait: OrphanWait,
) -> io::Result<Bound> {
    let mut result: ShardSockets = (0..shards).map(|_| Vec::new()).collect();
    let mut guard = ListenGuard {
        sockets: Vec::new(),
    };
    for (index, listener) in settings.listeners.iter().enumerate() {
        if !select(index) {
            continue;
        }
        if let Some(path) = &listener.unix_path {
            log::info!("Opening unix listen socket on path {}.", path.display());
            let socket = unix_socket(path)?;
            if let Some(first) = result.first_mut() {
                first.push((index, ListenSocket::Unix(socket)));
            }
            continue;
        }
        let mut bound_any = false;
        for address in &listener.addresses {
            let probed = match wait {
                OrphanWait::Wait => probe_until_free(*address, listener),
                OrphanWait::Fail => probe(*address, listener),
            };
            match probed {
                Ok(()) => {}
                Err(error) if family_unavailable(&error) => {
                    log::warn!("Warning: cannot open listen socket on {address}: {error}.");
                    continue;
                }
                Err(error) => return Err(naming(*address, error)),
            }
            let family = if address.is_ipv4() { "ipv4" } else { "ipv6" };
            log::info!("Opening {family} listen socket on port {}.", address.port());
            for sockets in result.iter_mut() {
                let socket =
                    reuse_port_socket(*address, listener).map_err(|e| naming(*address, e))?;
                guard.sockets.push(socket.try_clone()?);
                sockets.push((index, ListenSocket::Tcp(socket)));
            }
            bound_any = true;
        }
        if !bound_any {
            log::warn!(
                "Warning: listener on port {} has no address to listen on.",
                listener.port
            );
        }
    }
    Ok(Bound {
        shards: result,
        guard,
    })
}

/// `error` with the address it happened on, in Mosquitto's `Error: <reason>` form:
/// `Address already in use: cannot listen on 127.0.0.1 port 1883`.
fn naming(address: SocketAddr, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!(
            "{}: cannot listen on {} port {}",
            crate::process::os_text(&error),
            address.ip(),
            address.port()
        ),
    )
}

/// A Unix listen socket at `path`. A socket file left by an earlier run is replaced, as
/// Mosquitto does; any other kind of file there is an error.
fn unix_socket(path: &Path) -> io::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let socket = UnixListener::bind(path)
        .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn new_socket(address: SocketAddr, listener: &ListenerSettings) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    if let Some(device) = &listener.bind_device {
        // `bind_interface`: only connections arriving on this interface.
        socket
            .bind_device(Some(device.as_bytes()))
            .map_err(|error| {
                io::Error::new(error.kind(), format!("bind_interface {device}: {error}"))
            })?;
    }
    Ok(socket)
}

/// [`probe`], waiting (at most [`ORPHAN_WAIT`]) while the port is in use but no live
/// process listens on it: a process that just exited leaves its sockets to the kernel's
/// io_uring teardown for a moment, listening or already closing. A port a live process
/// listens on fails at once. Who holds the port is looked up once (it means reading every
/// process's descriptors); the binds are then retried.
fn probe_until_free(address: SocketAddr, listener: &ListenerSettings) -> io::Result<()> {
    let deadline = Instant::now() + ORPHAN_WAIT;
    let mut live = None;
    loop {
        match probe(address, listener) {
            Err(error)
                if error.raw_os_error() == Some(libc::EADDRINUSE) && Instant::now() < deadline =>
            {
                let live = *live.get_or_insert_with(|| {
                    let live = holder::live_listener(address);
                    if !live {
                        log::info!(
                            "Address {} port {} is in use but nothing listens there; \
                             trying again for up to {} s.",
                            address.ip(),
                            address.port(),
                            ORPHAN_WAIT.as_secs()
                        );
                    }
                    live
                });
                if live {
                    return Err(error);
                }
                std::thread::sleep(ORPHAN_RECHECK);
            }
            other => return other,
        }
    }
}

/// Binds without SO_REUSEPORT and closes again: fails if anyone else holds the port.
fn probe(address: SocketAddr, listener: &ListenerSettings) -> io::Result<()> {
    let socket = new_socket(address, listener)?;
    socket.bind(&address.into())?;
    Ok(())
}

fn reuse_port_socket(
    address: SocketAddr,
    listener: &ListenerSettings,
) -> io::Result<std::net::TcpListener> {
    let socket = new_socket(address, listener)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn family_unavailable(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
    )
}
