//! Who holds a TCP port: whether a live process has a listen socket on it open, read from
//! `/proc/net/tcp`, `/proc/net/tcp6` and `/proc/<pid>/fd`.
//!
//! Called by `sockets` when a bind finds the port in use, to tell a server that is running
//! there (fail at once) from a socket that a process which has exited left behind (wait a
//! moment for it: the kernel tears down an exited process's io_uring instances, and the
//! sockets their requests hold, a little after the exit). The table parsing is pure and tested
//! here; only [`live_listener`] reads `/proc`.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// `st` of a socket in the listen state in `/proc/net/tcp*`.
const TCP_LISTEN: &str = "0A";

/// True when a live process has a listen socket open that keeps `address` from being
/// bound, or when that cannot be told (a table or another user's process is unreadable
/// and the socket is not ours). False when nothing listens there (a socket that is going
/// away holds the port, or a bound socket that does not listen) or only sockets that no
/// process has open any more (left to the kernel's io_uring teardown) listen there.
pub fn live_listener(address: SocketAddr) -> bool {
    let mut listeners = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(table) {
            Ok(text) => listeners.extend(listening_sockets(&text, address)),
            // No IPv6 in this kernel: no IPv6 listener either.
            Err(error) if error.kind() == io::ErrorKind::NotFound && table.ends_with('6') => {}
            Err(_) => return true,
        }
    }
    if listeners.is_empty() {
        return false;
    }
    match open_by_a_process(&listeners) {
        Holders::Found => true,
        Holders::None => false,
        Holders::Unknown => {
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            listeners.values().any(|uid| *uid != me)
        }
    }
}

/// What the scan of every process's descriptors found.
enum Holders {
    Found,
    None,
    /// Nothing found, but some processes' descriptors were unreadable.
    Unknown,
}

fn open_by_a_process(listeners: &HashMap<u64, u32>) -> Holders {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Holders::Unknown;
    };
    let mut unreadable = false;
    for process in processes.flatten() {
        let name = process.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let descriptors = match std::fs::read_dir(process.path().join("fd")) {
            Ok(descriptors) => descriptors,
            // Exited meanwhile.
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {
                unreadable = true;
                continue;
            }
        };
        for descriptor in descriptors.flatten() {
            let Ok(target) = std::fs::read_link(descriptor.path()) else {
                continue;
            };
            if socket_inode(&target).is_some_and(|inode| listeners.contains_key(&inode)) {
                return Holders::Found;
            }
        }
    }
    if unreadable {
        Holders::Unknown
    } else {
        Holders::None
    }
}

/// The inode of a `socket:[N]` descriptor link.
fn socket_inode(target: &Path) -> Option<u64> {
    let text = target.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The listen sockets in a `/proc/net/tcp` or `/proc/net/tcp6` table whose address
/// conflicts with binding `address`: inode → owner uid. Lines that do not parse are
/// skipped.
pub fn listening_sockets(table: &str, address: SocketAddr) -> HashMap<u64, u32> {
    let mut found = HashMap::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(uid), Some(inode)) =
            (fields.get(1), fields.get(3), fields.get(7), fields.get(9))
        else {
            continue;
        };
        if *state != TCP_LISTEN {
            continue;
        }
        let Some((ip, port)) = parse_local(local) else {
            continue;
        };
        if port != address.port() || !conflicts(ip, address.ip()) {
            continue;
        }
        if let (Ok(inode), Ok(uid)) = (inode.parse::<u64>(), uid.parse::<u32>()) {
            if inode != 0 {
                found.insert(inode, uid);
            }
        }
    }
    found
}

/// `0100007F:075B` (IPv4) or 32 hex digits and a port (IPv6): the kernel prints each
/// 32-bit word of the address as a native-endian integer, the port in host order.
fn parse_local(text: &str) -> Option<(IpAddr, u16)> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(address)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(address.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Whether a listener on `held` keeps `wanted` (same port) from being bound: the same
/// address, or a wildcard on either side. An IPv6 wildcard may be dual-stack (whether it
/// is, the table does not say), so it counts for IPv4 too; IPv4-mapped addresses compare
/// as IPv4.
fn conflicts(held: IpAddr, wanted: IpAddr) -> bool {
    let held = canonical(held);
    let wanted = canonical(wanted);
    match (held, wanted) {
        (IpAddr::V4(h), IpAddr::V4(w)) => h == w || h.is_unspecified() || w.is_unspecified(),
        (IpAddr::V6(h), IpAddr::V6(w)) => h == w || h.is_unspecified() || w.is_unspecified(),
        (IpAddr::V6(h), IpAddr::V4(_)) => h.is_unspecified(),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The local-address column as the kernel prints it on this machine.
    fn v4_column(ip: Ipv4Addr, port: u16) -> String {
        format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip.octets()))
    }

    fn v6_column(ip: Ipv6Addr, port: u16) -> String {
        let words: String = ip
            .octets()
            .chunks(4)
            .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect();
        format!("{words}:{port:04X}")
    }

    fn table(rows: &[(String, &str, u32, u64)]) -> String {
        let mut text = String::from(concat!(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt",
            "   uid  timeout inode\n"
        ));
        for (i, (local, state, uid, inode)) in rows.iter().enumerate() {
            text.push_str(&format!(
                "   {i}: {local} 00000000:0000 {state} 00000000:00000000 00:00000000 \
                 00000000 {uid:>5}        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
            ));
        }
        text
    }

    fn at(text: &str) -> SocketAddr {
        text.parse().expect("address")
    }

    #[test]
    fn parses_both_families() {
        let local = Ipv4Addr::new(127, 0, 0, 1);
        assert_eq!(
            parse_local(&v4_column(local, 1883)),
            Some((IpAddr::V4(local), 1883))
        );
        let six = Ipv6Addr::LOCALHOST;
        assert_eq!(
            parse_local(&v6_column(six, 8883)),
            Some((IpAddr::V6(six), 8883))
        );
        assert_eq!(parse_local("nonsense"), None);
        assert_eq!(parse_local("0100007F:zz"), None);
    }

    #[test]
    fn only_listening_sockets_on_a_conflicting_address_count() {
        let local = Ipv4Addr::new(127, 0, 0, 1);
        let text = table(&[
            (v4_column(local, 1883), "0A", 0, 11),
            (v4_column(local, 1884), "0A", 0, 12),
            (v4_column(local, 1883), "01", 0, 13),
            (v4_column(Ipv4Addr::new(127, 0, 0, 2), 1883), "0A", 0, 14),
            (v4_column(Ipv4Addr::UNSPECIFIED, 1883), "0A", 104, 15),
            (v4_column(local, 1883), "0A", 0, 0),
        ]);
        let found = listening_sockets(&text, at("127.0.0.1:1883"));
        assert_eq!(found, HashMap::from([(11, 0), (15, 104)]));
        let wildcard = listening_sockets(&text, at("0.0.0.0:1883"));
        assert_eq!(wildcard.len(), 3);
        assert!(listening_sockets(&text, at("127.0.0.3:1885")).is_empty());
    }

    #[test]
    fn ipv6_wildcards_and_mapped_addresses() {
        let text = table(&[
            (v6_column(Ipv6Addr::UNSPECIFIED, 1883), "0A", 0, 21),
            (
                v6_column(Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped(), 1884),
                "0A",
                0,
                22,
            ),
            (v6_column(Ipv6Addr::LOCALHOST, 1885), "0A", 0, 23),
        ]);
        assert_eq!(listening_sockets(&text, at("127.0.0.1:1883")).len(), 1);
        assert_eq!(listening_sockets(&text, at("127.0.0.1:1884")).len(), 1);
        assert_eq!(listening_sockets(&text, at("[::1]:1885")).len(), 1);
        assert!(listening_sockets(&text, at("127.0.0.1:1885")).is_empty());
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode(Path::new("socket:[12345]")), Some(12345));
        assert_eq!(socket_inode(Path::new("pipe:[12345]")), None);
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }

    #[test]
    fn a_listener_of_this_process_is_live_and_a_bound_socket_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        assert!(live_listener(address));
        drop(listener);
        let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        bound.bind(&address.into()).expect("bind again");
        assert!(!live_listener(address));
        // The IPv6 table too, where this machine has IPv6.
        if let Ok(listener) = std::net::TcpListener::bind("[::1]:0") {
            assert!(live_listener(listener.local_addr().expect("address")));
        }
    }
}
