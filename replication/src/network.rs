//! The cluster link: TCP between the `address:port` pairs of the cluster's nodes, carrying
//! the frames of `wire.rs`.
//!
//! Client side ([`Network`], [`Peer`]): openraft asks for one [`Peer`] per target node; a
//! peer keeps one connection (opened lazily, with a Hello naming the cluster and this node)
//! for AppendEntries, votes and leadership transfer, one request at a time, each bounded
//! by openraft's RPC timeout. A snapshot travels on a connection of its own, so heartbeats
//! never wait behind it. A failed connection is dropped and reopened by the next call.
//!
//! Server side ([`serve`]): accepts on this node's cluster address; the first frame must be
//! a Hello from a node the cluster knows (`Gate`), else the connection is refused and
//! closed. Each frame is answered in order; a frame that fails validation closes the link
//! and is never acted on. Requests forwarded by followers go to the core through a channel.
//!
//! Securing the link (off by default, the seed's plain TCP): mutual TLS and a shared
//! cluster secret, set up in `handshake.rs` before the first request (`linksec.rs`).

use crate::handshake::{self, LinkStream, RefusalLog};
use crate::linksec::LinkSecurity;
use crate::types::{CulexConfig, NodeId, Raft, Snapshot, TypeConfig, Vote};
use crate::wire::{self, Forwarded, Msg, WireError};
use futures_channel::{mpsc, oneshot};
use monoio::io::{AsyncReadRent, AsyncReadRentExt, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::raft::{TransferLeaderRequest, TransferLeaderResponse};
use openraft::storage::RaftStateMachine;
use openraft::{BasicNode, OptionalSend};
use shards::cluster_status::ClusterStatus;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long opening a connection to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a snapshot may take to arrive and be installed.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// Who may talk to this node: the cluster's name and its nodes. Placement: one per node,
/// shared by the core (which updates it) and the server (which reads it).
#[derive(Debug, Default)]
pub struct Gate {
    /// This node's id.
    pub me: NodeId,
    /// The cluster's name (`None`: standalone, every caller is refused).
    pub cluster: Option<String>,
    /// The nodes that may connect.
    pub members: BTreeSet<NodeId>,
    /// This node's cluster address: connections to the other nodes leave from it, so
    /// cluster traffic flows only between the nodes' own addresses.
    pub source: Option<std::net::IpAddr>,
    /// TLS and the cluster secret, when configured.
    pub security: Arc<LinkSecurity>,
    /// The refusals logged lately (a refused node retries often).
    pub refusals: RefusalLog,
}

/// A request a peer forwarded, with where the answer goes.
pub type ForwardedRequest = (Forwarded, oneshot::Sender<Option<Vec<u8>>>);

/// openraft's factory of [`Peer`]s.
#[derive(Clone)]
pub struct Network {
    me: NodeId,
    gate: Rc<RefCell<Gate>>,
    status: Arc<ClusterStatus>,
}

impl Network {
    /// The network of node `me`; `status` counts the snapshots sent.
    pub fn new(me: NodeId, gate: Rc<RefCell<Gate>>, status: Arc<ClusterStatus>) -> Network {
        Network { me, gate, status }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            me: self.me,
            target,
            addr: node.addr.clone(),
            gate: self.gate.clone(),
            conn: None,
            status: Some(self.status.clone()),
        }
    }
}

/// The link to one other node.
pub struct Peer {
    me: NodeId,
    target: NodeId,
    addr: String,
    gate: Rc<RefCell<Gate>>,
    conn: Option<LinkStream>,
    status: Option<Arc<ClusterStatus>>,
}

/// A link failure, as openraft wants it.
#[derive(Debug)]
struct LinkError(String);

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LinkError {}

fn unreachable_error(why: String) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::new(&LinkError(why)))
}

fn network_error(why: String) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&LinkError(why)))
}

impl Peer {
    /// Opens a connection to the peer and introduces this node.
    async fn open(&self) -> Result<LinkStream, String> {
        let source = self.gate.borrow().source;
        let connect = connect_from(source, self.addr.as_str());
        let stream = match monoio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                return Err(format!("node {} at {}: {error}", self.target, self.addr))
            }
            Err(_) => {
                return Err(format!(
                    "node {} at {}: connect timed out",
                    self.target, self.addr
                ))
            }
        };
        let _ = stream.set_nodelay(true);
        handshake::connect(stream, &self.addr, self.me, self.target, &self.gate).await
    }

    /// Sends `msg` and reads the answer on the peer's connection, within `ttl`.
    ///
    /// The connection is taken out of the peer for the exchange and put back only once the
    /// answer is read: when openraft drops this future at its own deadline (it wraps
    /// heartbeats in one as long as `ttl`), the half-used connection goes with it, so a late
    /// answer is never read as the next request's and a TLS stream is never read again
    /// after a cancelled read (which would panic in the TLS adapter).
    async fn call(&mut self, msg: &Msg, ttl: Duration) -> Result<Msg, RPCError<TypeConfig>> {
        let mut stream = match self.conn.take() {
            Some(stream) => stream,
            None => self.open().await.map_err(unreachable_error)?,
        };
        let exchange = async {
            send(&mut stream, msg).await?;
            receive(&mut stream).await
        };
        let outcome = monoio::time::timeout(ttl, exchange).await;
        match outcome {
            Ok(Ok(Msg::Refused { reason })) => Err(unreachable_error(format!(
                "node {} refused: {reason}",
                self.target
            ))),
            Ok(Ok(reply)) => {
                self.conn = Some(stream);
                Ok(reply)
            }
            Ok(Err(error)) => Err(network_error(format!("node {}: {error}", self.target))),
            Err(_) => Err(network_error(format!("node {}: timed out", self.target))),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for Peer {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(&Msg::Append((&rpc).into()), option.hard_ttl())
            .await?
        {
            Msg::AppendReply(reply) => Ok((&reply).into()),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .call(&Msg::Vote((&rpc).into()), option.hard_ttl())
            .await?
        {
            Msg::VoteReply(reply) => Ok(reply.to_response()),
            other => Err(self.unexpected(&other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let msg_meta_index = snapshot.meta.last_log_id.map(|id| id.index);
        let bytes = snapshot.snapshot.len();
        let started = std::time::Instant::now();
        let msg = Msg::Snapshot {
            vote: (&vote).into(),
            meta: (&snapshot.meta).into(),
            data: snapshot.snapshot,
        };
        let target = self.target;
        let mut stream = self
            .open()
            .await
            .map_err(|why| StreamingError::Unreachable(Unreachable::new(&LinkError(why))))?;
        let exchange = async {
            send(&mut stream, &msg).await?;
            receive(&mut stream).await
        };
        let timed = monoio::time::timeout(SNAPSHOT_TIMEOUT, exchange);
        let outcome = futures_util::future::select(Box::pin(timed), Box::pin(cancel)).await;
        let reply = match outcome {
            futures_util::future::Either::Left((Ok(Ok(reply)), _)) => reply,
            futures_util::future::Either::Left((Ok(Err(error)), _)) => {
                let why = format!("snapshot to node {target}: {error}");
                return Err(StreamingError::Network(NetworkError::new(&LinkError(why))));
            }
            futures_util::future::Either::Left((Err(_), _)) => {
                let why = format!("snapshot to node {target} timed out");
                return Err(StreamingError::Network(NetworkError::new(&LinkError(why))));
            }
            futures_util::future::Either::Right((closed, _)) => {
                return Err(StreamingError::Closed(closed))
            }
        };
        match reply {
            Msg::SnapshotReply { vote } => {
                if let Some(status) = &self.status {
                    status.snapshots_sent.fetch_add(1, Ordering::Relaxed);
                }
                // Connection, transfer, and the receiver's install (its reply follows it).
                let seconds = started.elapsed().as_secs_f64();
                log::info!(
                    "HA: node {} sent a snapshot up to {} to node {target}: {bytes} bytes in \
                     {seconds:.3} s ({:.1} MB/s, installed).",
                    self.me,
                    snapshot_index(&msg_meta_index),
                    bytes as f64 / seconds.max(1e-9) / 1e6
                );
                Ok(SnapshotResponse { vote: vote.into() })
            }
            other => {
                let why = format!("snapshot to node {target}: unexpected {other:?}");
                Err(StreamingError::Network(NetworkError::new(&LinkError(why))))
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let msg = Msg::TransferLeader {
            from_leader: req.from_leader().into(),
            to: *req.to_node_id(),
            last_log_id: wire::log_id_opt(req.last_log_id()),
        };
        match self.call(&msg, option.hard_ttl()).await? {
            Msg::TransferLeaderReply { refused: None } => Ok(Ok(())),
            Msg::TransferLeaderReply { refused: Some(why) } => Err(network_error(format!(
                "node {} refused leadership: {why}",
                self.target
            ))),
            other => Err(self.unexpected(&other)),
        }
    }
}

impl Peer {
    fn unexpected(&mut self, msg: &Msg) -> RPCError<TypeConfig> {
        self.conn = None;
        network_error(format!("node {}: unexpected answer {msg:?}", self.target))
    }
}

fn snapshot_index(index: &Option<u64>) -> String {
    index.map_or_else(|| "the start".to_string(), |index| format!("index {index}"))
}

/// Connects to `addr` from `source` (any local address when `None`).
async fn connect_from(source: Option<std::net::IpAddr>, addr: &str) -> std::io::Result<TcpStream> {
    use std::net::{SocketAddr, ToSocketAddrs};
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    // Cluster addresses are IP literals or names the system resolves at once.
    let target = addr
        .to_socket_addrs()?
        .find(|target| target.is_ipv4() == source.is_ipv4())
        .ok_or_else(|| std::io::Error::other(format!("{addr} has no address like {source}")))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    let socket: std::net::TcpStream = socket.into();
    // A second handle on the socket reads the connect's outcome (SO_ERROR).
    let probe = socket.try_clone()?;
    let stream = TcpStream::from_std(socket)?;
    stream.writable(false).await?;
    match probe.take_error()? {
        Some(error) => Err(error),
        None => Ok(stream),
    }
}

/// Writes one framed message.
pub async fn send(stream: &mut impl AsyncWriteRent, msg: &Msg) -> Result<(), WireError> {
    let framed = wire::encode(msg);
    let (result, _) = stream.write_all(framed).await;
    result.map(|_| ()).map_err(WireError::Io)
}

/// Reads one framed message, with every check of `wire::decode`. The body is read into a
/// buffer of its own, where it is decoded in place (no copy of the frame).
pub async fn receive(stream: &mut impl AsyncReadRent) -> Result<Msg, WireError> {
    let header = vec![0u8; shards::state::frame::HEADER_LEN];
    let (result, header) = stream.read_exact(header).await;
    result.map_err(WireError::Io)?;
    let len = wire::body_len(&header)?;
    let (result, body) = stream.read_exact(vec![0u8; len]).await;
    result.map_err(WireError::Io)?;
    wire::decode_parts(&header, &body)
}

/// Accepts cluster connections on `listener` and answers their frames until `stop`
/// fires (or its sender is dropped); the listener is closed then. Forwarded control
/// requests go to `forwarded`.
pub async fn serve(
    listener: TcpListener,
    raft: Raft,
    gate: Rc<RefCell<Gate>>,
    forwarded: mpsc::UnboundedSender<ForwardedRequest>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let accepted = {
            let accept = std::pin::pin!(listener.accept());
            match futures_util::future::select(accept, &mut stop).await {
                futures_util::future::Either::Left((accepted, _)) => accepted,
                futures_util::future::Either::Right(_) => return,
            }
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                log::warn!("Warning: HA: accept on the cluster port failed: {error}.");
                monoio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let raft = raft.clone();
        let gate = gate.clone();
        let forwarded = forwarded.clone();
        monoio::spawn(async move {
            match answer(stream, peer, raft, gate, forwarded).await {
                // The peer closed between frames (it stopped, or reconnects).
                Err(WireError::Io(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                    log::debug!("HA: link from {peer} closed.")
                }
                Err(error) => log::info!("HA: link from {peer} closed: {error}."),
                Ok(()) => {}
            }
        });
    }
}

/// One incoming connection: the handshake, then one answer per frame.
async fn answer(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    raft: Raft,
    gate: Rc<RefCell<Gate>>,
    forwarded: mpsc::UnboundedSender<ForwardedRequest>,
) -> Result<(), WireError> {
    let Some((mut stream, from)) = handshake::accept(stream, peer, &gate).await? else {
        return Ok(());
    };
    loop {
        let msg = receive(&mut stream).await?;
        // A node that left the cluster (or whose peer was removed) answers nothing more.
        let refusal = {
            let gate = gate.borrow();
            if gate.cluster.is_none() {
                Some("this node left the cluster".to_string())
            } else if !gate.members.contains(&from) {
                Some(format!("node {from} is not a member of this cluster"))
            } else {
                None
            }
        };
        if let Some(reason) = refusal {
            send(&mut stream, &Msg::Refused { reason }).await?;
            return Ok(());
        }
        let reply = dispatch(msg, &raft, from, &forwarded).await?;
        send(&mut stream, &reply).await?;
    }
}

/// The answer to one request (also the seeded simulator's, on its own runtime).
pub(crate) async fn dispatch<C, SM>(
    msg: Msg,
    raft: &openraft::Raft<C, SM>,
    from: NodeId,
    forwarded: &mpsc::UnboundedSender<ForwardedRequest>,
) -> Result<Msg, WireError>
where
    C: CulexConfig,
    SM: RaftStateMachine<C, SnapshotData = Vec<u8>>,
{
    let fatal = |error: &dyn std::fmt::Display| Msg::Refused {
        reason: error.to_string(),
    };
    Ok(match msg {
        Msg::Append(request) => match raft.append_entries(request.to_request()?).await {
            Ok(reply) => Msg::AppendReply((&reply).into()),
            Err(error) => fatal(&error),
        },
        Msg::Vote(request) => match raft.vote(request.to_request()).await {
            Ok(reply) => Msg::VoteReply((&reply).into()),
            Err(error) => fatal(&error),
        },
        Msg::Snapshot { vote, meta, data } => {
            let snapshot = Snapshot {
                meta: meta.to_meta()?,
                snapshot: data,
            };
            match raft.install_full_snapshot(vote.into(), snapshot).await {
                Ok(reply) => Msg::SnapshotReply {
                    vote: (&reply.vote).into(),
                },
                Err(error) => fatal(&error),
            }
        }
        Msg::TransferLeader {
            from_leader,
            to,
            last_log_id,
        } => {
            let request = TransferLeaderRequest::new(
                from_leader.into(),
                to,
                last_log_id.map(crate::types::LogId::from),
            );
            match raft.handle_transfer_leader(request).await {
                Ok(Ok(())) => Msg::TransferLeaderReply { refused: None },
                Ok(Err(refused)) => Msg::TransferLeaderReply {
                    refused: Some(refused.to_string()),
                },
                Err(error) => fatal(&error),
            }
        }
        Msg::Forward(request) => {
            if request.origin != from {
                return Err(WireError::Invalid("a node forwarded for another"));
            }
            let (reply, answer) = oneshot::channel();
            if forwarded.unbounded_send((request, reply)).is_err() {
                return Ok(Msg::Refused {
                    reason: "the replication core stopped".to_string(),
                });
            }
            Msg::ForwardReply {
                response: answer.await.unwrap_or(None),
            }
        }
        Msg::Hello { .. }
        | Msg::AppendReply(_)
        | Msg::VoteReply(_)
        | Msg::SnapshotReply { .. }
        | Msg::TransferLeaderReply { .. }
        | Msg::ForwardReply { .. }
        | Msg::Refused { .. }
        | Msg::Challenge { .. }
        | Msg::Proof { .. }
        | Msg::Welcome => return Err(WireError::Invalid("a reply sent as a request")),
    })
}

/// Sends a forwarded request to `addr` (the leader's cluster address) and returns its
/// answer.
pub async fn forward(
    me: NodeId,
    gate: &Rc<RefCell<Gate>>,
    leader: NodeId,
    addr: &str,
    request: Forwarded,
    ttl: Duration,
) -> Result<Option<Vec<u8>>, String> {
    let mut peer = Peer {
        me,
        target: leader,
        addr: addr.to_string(),
        gate: gate.clone(),
        conn: None,
        status: None,
    };
    match peer.call(&Msg::Forward(request), ttl).await {
        Ok(Msg::ForwardReply { response }) => Ok(response),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Rc<RefCell<Gate>> {
        Rc::new(RefCell::new(Gate {
            me: 1,
            cluster: Some("plant".to_string()),
            members: BTreeSet::from([1, 2]),
            ..Gate::default()
        }))
    }

    fn forwarded(payload: &[u8]) -> Msg {
        Msg::Forward(Forwarded {
            topic: "t".to_string(),
            payload: payload.to_vec(),
            client_id: "c".to_string(),
            username: None,
            origin: 2,
            shard: 0,
        })
    }

    /// openraft drops a heartbeat's call at its own deadline, mid-read: the connection
    /// must go with it, or the late answer would be read as the next request's (and a TLS
    /// stream read again after a cancelled read panics).
    #[test]
    fn a_call_dropped_mid_read_leaves_no_half_used_connection() {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("address").to_string();
                let server_gate = gate();
                monoio::spawn(async move {
                    loop {
                        let (tcp, peer) = listener.accept().await.expect("accept");
                        let accepted = handshake::accept(tcp, peer, &server_gate).await;
                        let (mut stream, _) = accepted.expect("handshake").expect("accepted");
                        // Answers each request with its own payload, the first one late.
                        let mut late = true;
                        while let Ok(Msg::Forward(request)) = receive(&mut stream).await {
                            if std::mem::take(&mut late) {
                                monoio::time::sleep(Duration::from_millis(200)).await;
                            }
                            let response = Some(request.payload);
                            let _ = send(&mut stream, &Msg::ForwardReply { response }).await;
                        }
                    }
                });
                let mut peer = Peer {
                    me: 2,
                    target: 1,
                    addr,
                    gate: gate(),
                    conn: None,
                    status: None,
                };
                let ttl = Duration::from_secs(5);
                let first = forwarded(b"first");
                let cut = Duration::from_millis(50);
                let dropped = monoio::time::timeout(cut, peer.call(&first, ttl)).await;
                assert!(dropped.is_err(), "the first call was not cut short");
                assert!(peer.conn.is_none(), "the half-used connection was kept");
                let reply = peer.call(&forwarded(b"second"), ttl).await.expect("call");
                assert!(
                    matches!(&reply, Msg::ForwardReply { response: Some(r) } if r == b"second"),
                    "{reply:?}"
                );
                assert!(peer.conn.is_some(), "a good connection is kept");
            });
    }
}
