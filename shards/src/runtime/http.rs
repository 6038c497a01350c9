//! Serves one HTTP request on a `protocol http_api` listener (see [`crate::http`]): reads
//! the request head (bounded in size and time), answers, closes.

use super::io::{recv_into, send, would_block};
use super::shard_main::ShardCtx;
use crate::http::{respond, View, REQUEST_MAX};
use bytes::{Buf, BytesMut};
use monoio::net::TcpStream;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(crate::limits::HTTP_REQUEST_TIMEOUT_S);

/// Answers one request on `stream`.
pub async fn serve_http(ctx: Rc<ShardCtx>, stream: TcpStream) {
    let _ = monoio::time::timeout(REQUEST_TIMEOUT, exchange(&ctx, &stream)).await;
}

async fn exchange(ctx: &ShardCtx, stream: &TcpStream) {
    let fd = stream.as_raw_fd();
    let mut request = BytesMut::with_capacity(1024);
    let mut response = loop {
        if stream.readable(false).await.is_err() {
            return;
        }
        request.reserve(1024);
        match recv_into(fd, &mut request) {
            Ok(0) | Err(_) if request.is_empty() => return,
            Ok(_) | Err(_) => {}
        }
        if let Some(response) = answer(ctx, &request) {
            break BytesMut::from(&response[..]);
        }
        if request.len() >= REQUEST_MAX {
            return;
        }
    };
    while !response.is_empty() {
        match send(fd, &response) {
            Ok(sent) => response.advance(sent),
            Err(error) if would_block(&error) => {
                if stream.writable(false).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn answer(ctx: &ShardCtx, request: &[u8]) -> Option<Vec<u8>> {
    let shard = ctx.shard.borrow();
    let cluster = shard.cluster.as_ref().map(|status| status.read());
    // A cluster node is ready when it serves clients: the leader in Full Sync, every
    // member in Dynamic-Security Sync, a node outside a cluster always.
    let serving = cluster.as_ref().is_none_or(|cluster| cluster.serving);
    let view = View {
        stats: &shard.stats,
        listeners: &shard.settings.listeners,
        uptime_s: super::now().mono_ms / 1000,
        ready: !ctx.stopping.get() && serving,
        version: &shard.settings.version_text,
        cluster,
    };
    respond(request, &view)
}
