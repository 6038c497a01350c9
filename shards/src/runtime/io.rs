//! Non-blocking socket reads and writes on raw descriptors, and the readiness waits around
//! them.
//!
//! Why raw `recv`/`send` instead of monoio's owned-buffer read: an idle connection must not
//! hold a read buffer (15,000 idle clients at ≤ 2 KiB each), so the reader waits for
//! readiness (an io_uring PollAdd, or epoll on the fallback driver) and then reads straight
//! into the shard's shared buffer. One `recv` per readiness event moves every packet that
//! arrived, and one `send` per flush writes every packet encoded since the last one, so the
//! syscall count is per batch, never per message.

use bytes::BytesMut;
use std::io;
use std::os::fd::RawFd;

/// Reads what is available into the spare capacity of `buf`. `Ok(0)` is end of stream;
/// `WouldBlock` means nothing is available yet.
pub fn recv_into(fd: RawFd, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    if spare.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            "read buffer has no room",
        ));
    }
    // SAFETY: `spare` is writable memory owned by `buf` of the given length; recv writes at
    // most that many bytes and reports how many.
    let read = unsafe {
        libc::recv(
            fd,
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    let read = read as usize;
    // SAFETY: the kernel initialised exactly `read` bytes at the start of the spare capacity.
    unsafe { buf.set_len(buf.len() + read) };
    Ok(read)
}

/// Writes as much of `data` as the socket takes now.
pub fn send(fd: RawFd, data: &[u8]) -> io::Result<usize> {
    // SAFETY: `data` is a valid readable slice for its length.
    let sent = unsafe {
        libc::send(
            fd,
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Shuts both directions down, which wakes a reader parked on readiness: the abrupt end,
/// for a connection whose peer stopped taking bytes.
pub fn shutdown(fd: RawFd) {
    // SAFETY: shutdown on a descriptor we own; errors (already closed by peer) are harmless.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Shuts the write side down: the peer reads the end of stream after every byte sent,
/// and the socket can still read what the peer sends meanwhile ([`super::linger`]).
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: shutdown on a descriptor we own; errors (already closed by peer) are harmless.
    unsafe {
        libc::shutdown(fd, libc::SHUT_WR);
    }
}

/// True for errors that only mean "try again after readiness".
pub fn would_block(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
