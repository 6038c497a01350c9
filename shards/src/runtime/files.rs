//! Answers a plain HTTP request on a websockets listener with `http_dir`: resolves it with
//! [`crate::static_files`], then writes the head and streams the file, one
//! [`CHUNK`]-sized read at a time, through TLS when the listener has it, and closes.
//!
//! Called by the handshake task (`handshake.rs`) once the request turned out not to be a
//! WebSocket upgrade. Every wait for the socket is bounded by [`WRITE_STALL`]: a client
//! that stops reading loses the response instead of holding the task.

use super::io::{send, shutdown, would_block};
use super::shard_main::ShardCtx;
use crate::static_files::{self, Answer, FileRequest, CHUNK};
use crate::transport::Layers;
use bytes::{Buf, BytesMut};
use monoio::net::TcpStream;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// How long the socket may refuse bytes before the response is abandoned.
const WRITE_STALL: Duration = Duration::from_secs(crate::limits::STATIC_FILE_WRITE_STALL_S);

/// Serves `request` from listener `listener`'s directory and closes the connection.
pub async fn serve(
    ctx: &ShardCtx,
    stream: &TcpStream,
    layers: &mut Option<Box<Layers>>,
    listener: usize,
    request: &FileRequest,
) {
    let root = ctx.shard.borrow().settings.listeners[listener]
        .http_dir
        .clone();
    let answer = match &root {
        Some(root) => static_files::open(root, request),
        None => Answer::Status(404),
    };
    let sent = match answer {
        Answer::File {
            mut file,
            size,
            content_type,
            path,
        } => {
            log::debug!("http serving file \"{}\".", path.display());
            let head = static_files::ok_head(size, content_type);
            let body = if request.head_only { 0 } else { size };
            stream_file(stream, layers, &head, &mut file, body).await
        }
        other => {
            let response = static_files::other_response(&other, request.head_only);
            write(stream, layers, &response).await
        }
    };
    if sent {
        if let Some(layers) = layers.as_mut() {
            let mut wire = BytesMut::new();
            layers.close(&mut wire);
            write_wire(stream, &mut wire).await;
        }
    }
    shutdown(stream.as_raw_fd());
}

/// Writes `head`, then `size` bytes of `file`. False when the socket or the file failed
/// (a file that shrank while being sent cuts the response short, which the client sees
/// against `Content-Length`).
async fn stream_file(
    stream: &TcpStream,
    layers: &mut Option<Box<Layers>>,
    head: &[u8],
    file: &mut std::fs::File,
    size: u64,
) -> bool {
    if !write(stream, layers, head).await {
        return false;
    }
    let mut left = size;
    let mut chunk = vec![0u8; CHUNK.min(usize::try_from(size).unwrap_or(CHUNK))];
    while left > 0 {
        let want = chunk
            .len()
            .min(usize::try_from(left).unwrap_or(chunk.len()));
        let read = match file.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => return false,
            Ok(read) => read,
        };
        if !write(stream, layers, &chunk[..read]).await {
            return false;
        }
        left -= read as u64;
    }
    true
}

/// Writes `bytes` (through TLS when the listener has it).
async fn write(stream: &TcpStream, layers: &mut Option<Box<Layers>>, bytes: &[u8]) -> bool {
    let mut wire = BytesMut::new();
    match layers.as_mut() {
        Some(layers) => layers.wrap_plain(bytes, &mut wire),
        None => wire.extend_from_slice(bytes),
    }
    write_wire(stream, &mut wire).await
}

/// Sends all of `wire`, waiting (bounded) while the socket is full.
async fn write_wire(stream: &TcpStream, wire: &mut BytesMut) -> bool {
    while !wire.is_empty() {
        match send(stream.as_raw_fd(), wire) {
            Ok(sent) => wire.advance(sent),
            Err(error) if would_block(&error) => {
                let writable = monoio::time::timeout(WRITE_STALL, stream.writable(false)).await;
                if !matches!(writable, Ok(Ok(()))) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}
