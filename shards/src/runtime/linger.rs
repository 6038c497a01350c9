//! The last step of a connection the broker closes: after its final bytes (a DISCONNECT
//! with the reason, a refused CONNACK, the TLS close_notify or WebSocket close frame) are
//! written and the write side is shut down, the socket is still read for a short bounded
//! time and what arrives is discarded, then it is closed.
//!
//! Why: closing a TCP socket while the peer's bytes are unread, or while they still
//! arrive, makes the kernel answer with a reset (RFC 1122 §4.2.2.13). A client that is
//! still writing (publishes pipelined before it reads) then gets a broken pipe or a reset
//! on its next write and may never read the reason it was closed. Reading until the
//! client's end of stream, as careful servers do, lets its writes complete; it reads the
//! DISCONNECT and the end of stream, and closes.
//!
//! Bounds: [`CLOSE_LINGER_MS`] in all and [`CLOSE_LINGER_BYTES_MAX`] per connection; the
//! reads wait for readiness (no busy loop) and go into the shard's shared read buffer, so
//! a lingering connection owns no buffer. Nothing read here is decoded: it never reaches
//! the protocol state. Called by the connection task (`connection.rs`) and the handshake
//! (`handshake.rs`, after a refused CONNECT).

use super::io::{recv_into, would_block};
use super::shard_main::ShardCtx;
use crate::limits::{CLOSE_LINGER_BYTES_MAX, CLOSE_LINGER_MS, READ_BUFFER_SIZE, READ_CHUNK_MIN};
use bytes::BytesMut;
use monoio::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How long a closing connection is read before it is closed anyway.
const CLOSE_LINGER: Duration = Duration::from_millis(CLOSE_LINGER_MS);

/// Reads and discards what the peer of `stream` still sends, until its end of stream, an
/// error, [`CLOSE_LINGER`] or [`CLOSE_LINGER_BYTES_MAX`]. The caller has shut the write
/// side down (or the peer already ended) and closes the socket afterwards.
pub async fn linger(ctx: &ShardCtx, stream: &TcpStream) {
    let _ = monoio::time::timeout(CLOSE_LINGER, discard_until_end(ctx, stream)).await;
}

async fn discard_until_end(ctx: &ShardCtx, stream: &TcpStream) {
    let fd = stream.as_raw_fd();
    let mut discarded = 0usize;
    loop {
        match discard(ctx, fd) {
            Ok(0) => return,
            Ok(read) => {
                discarded += read;
                if discarded >= CLOSE_LINGER_BYTES_MAX {
                    return;
                }
            }
            Err(error) if would_block(&error) => {
                if stream.readable(false).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// One `recv` into the spare room of the shard's shared read buffer, forgotten at once.
fn discard(ctx: &ShardCtx, fd: i32) -> std::io::Result<usize> {
    let mut shared = ctx.read_buf.borrow_mut();
    if shared.capacity() - shared.len() < READ_CHUNK_MIN {
        *shared = BytesMut::with_capacity(READ_BUFFER_SIZE);
    }
    let kept = shared.len();
    let result = recv_into(fd, &mut shared);
    shared.truncate(kept);
    result
}
