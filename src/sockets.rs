//! Listening sockets: one SO_REUSEPORT socket per shard per listener address, bound by the
//! main thread before any shard starts so that a busy port stops start-up with Mosquitto's
//! error and exit code.
//!
//! Because every socket of a reuse-port group must set SO_REUSEPORT, a second Culex on the
//! same port would silently join the group and steal connections. A probe bind without
//! SO_REUSEPORT first detects any other holder of the port.

use shards::runtime::ListenSocket;
use shards::settings::{ListenerSettings, Settings};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::Path;

/// Sockets per shard: `result[shard]` = (listener index, socket).
pub type ShardSockets = Vec<Vec<(usize, ListenSocket)>>;

/// Binds every listener address once per shard. Addresses that cannot be bound because the
/// address family is unavailable (IPv6 disabled) are skipped with a warning, as Mosquitto
/// does; a port in use is an error.
pub fn bind_all(settings: &Settings, shards: usize) -> io::Result<ShardSockets> {
    let mut result: ShardSockets = (0..shards).map(|_| Vec::new()).collect();
    for (index, listener) in settings.listeners.iter().enumerate() {
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
            match probe(*address, listener) {
                Ok(()) => {}
                Err(error) if family_unavailable(&error) => {
                    log::warn!("Warning: cannot open listen socket on {address}: {error}.");
                    continue;
                }
                Err(error) => return Err(error),
            }
            let family = if address.is_ipv4() { "ipv4" } else { "ipv6" };
            log::info!("Opening {family} listen socket on port {}.", address.port());
            for sockets in result.iter_mut() {
                let socket = reuse_port_socket(*address, listener)?;
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
    if result.first().is_none_or(Vec::is_empty) {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no listen socket could be opened",
        ));
    }
    Ok(result)
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
