//! Opening and accepting one cluster link: TLS first when `cluster_tls_*` is configured,
//! then the Hello, answered by a Welcome, or with a cluster secret by the challenge–response
//! of `linksec.rs`; and [`LinkStream`], the connection the link's frames then travel on
//! (plain TCP, or TLS over it).
//!
//! Called by `network.rs`: [`connect`] when a peer opens a connection, [`accept`] for each
//! connection the link server accepts. Every refusal is logged on the side that refuses,
//! naming the peer's address and never the secret, and answered with `Refused`, which the
//! other side logs too; a repeated refusal is logged once per [`REPEAT`] (a refused node
//! retries every few hundred milliseconds).

use crate::linksec::{self, LinkSecurity, Transcript};
use crate::network::{receive, send, Gate};
use crate::types::NodeId;
use crate::wire::{Msg, WireError, LINK_MAGIC};
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the caller's side of a handshake (TLS, Hello, proofs) may take.
pub const CONNECT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long an accepted connection may take to complete its handshake.
pub const ACCEPT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A refusal already logged is logged again after this long at the earliest.
pub const REPEAT: Duration = Duration::from_secs(30);

/// A link's connection.
pub enum LinkStream {
    /// The seed's plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, this node calling.
    TlsClient(Box<monoio_rustls::ClientTlsStream<TcpStream>>),
    /// TLS over TCP, this node called.
    TlsServer(Box<monoio_rustls::ServerTlsStream<TcpStream>>),
}

impl AsyncReadRent for LinkStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            LinkStream::Plain(stream) => stream.read(buf).await,
            LinkStream::TlsClient(stream) => stream.read(buf).await,
            LinkStream::TlsServer(stream) => stream.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            LinkStream::Plain(stream) => stream.readv(buf).await,
            LinkStream::TlsClient(stream) => stream.readv(buf).await,
            LinkStream::TlsServer(stream) => stream.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for LinkStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            LinkStream::Plain(stream) => stream.write(buf).await,
            LinkStream::TlsClient(stream) => stream.write(buf).await,
            LinkStream::TlsServer(stream) => stream.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            LinkStream::Plain(stream) => stream.writev(buf).await,
            LinkStream::TlsClient(stream) => stream.writev(buf).await,
            LinkStream::TlsServer(stream) => stream.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LinkStream::Plain(stream) => stream.flush().await,
            LinkStream::TlsClient(stream) => stream.flush().await,
            LinkStream::TlsServer(stream) => stream.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match self {
            LinkStream::Plain(stream) => stream.shutdown().await,
            LinkStream::TlsClient(stream) => stream.shutdown().await,
            LinkStream::TlsServer(stream) => stream.shutdown().await,
        }
    }
}

/// Which refusals were logged when, so that a node retrying does not flood the log.
#[derive(Debug, Default)]
pub struct RefusalLog {
    logged: HashMap<String, Instant>,
}

impl RefusalLog {
    /// True when `what` was not logged within [`REPEAT`] of `now` (it counts as logged).
    pub fn first(&mut self, what: &str, now: Instant) -> bool {
        if self.logged.len() > 256 {
            self.logged.retain(|_, at| now.duration_since(*at) < REPEAT);
        }
        match self.logged.get(what) {
            Some(at) if now.duration_since(*at) < REPEAT => false,
            _ => {
                self.logged.insert(what.to_string(), now);
                true
            }
        }
    }
}

/// Logs `line` as a warning the first time within [`REPEAT`], else at debug level.
fn warn_once(gate: &Rc<RefCell<Gate>>, line: String) {
    if gate.borrow_mut().refusals.first(&line, Instant::now()) {
        log::warn!("Warning: HA: {line}.");
    } else {
        log::debug!("HA: {line}.");
    }
}

/// The text of a TLS failure.
fn tls_error(error: monoio_rustls::TlsError) -> String {
    match error {
        monoio_rustls::TlsError::Io(error) => error.to_string(),
        monoio_rustls::TlsError::Rustls(error) => error.to_string(),
    }
}

/// The caller's side: introduces node `me` to node `target` at `addr` over `tcp`. An error
/// says why (a refusal or a failed proof is logged here too).
pub async fn connect(
    tcp: TcpStream,
    addr: &str,
    me: NodeId,
    target: NodeId,
    gate: &Rc<RefCell<Gate>>,
) -> Result<LinkStream, String> {
    let (cluster, security) = {
        let gate = gate.borrow();
        (
            gate.cluster.clone().unwrap_or_default(),
            gate.security.clone(),
        )
    };
    let handshake = introduce(tcp, addr, me, &cluster, &security);
    let outcome = match monoio::time::timeout(CONNECT_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Failure::Quiet("the handshake timed out".to_string())),
    };
    outcome.map_err(|failure| match failure {
        Failure::Quiet(why) => format!("node {target} at {addr}: {why}"),
        Failure::Refused(why) => {
            warn_once(
                gate,
                format!("node {target} at {addr} refused this node's link: {why}"),
            );
            format!("node {target} at {addr} refused the link: {why}")
        }
        Failure::Insecure(why) => {
            warn_once(
                gate,
                format!("link to node {target} at {addr} closed: {why}"),
            );
            format!("node {target} at {addr}: {why}")
        }
    })
}

/// Why the caller's handshake failed.
enum Failure {
    /// The connection failed (the peer stopped, or is slow): not logged.
    Quiet(String),
    /// The callee refused (its reason).
    Refused(String),
    /// The callee could not be trusted (TLS or its proof of the secret failed).
    Insecure(String),
}

async fn introduce(
    tcp: TcpStream,
    addr: &str,
    me: NodeId,
    cluster: &str,
    security: &LinkSecurity,
) -> Result<LinkStream, Failure> {
    let mut stream = match &security.tls {
        None => LinkStream::Plain(tcp),
        Some(tls) => {
            let name = linksec::server_name(addr).map_err(Failure::Insecure)?;
            let connector = monoio_rustls::TlsConnector::from(tls.client.clone());
            let tls = connector.connect(name, tcp).await.map_err(|error| {
                let closed = matches!(&error, monoio_rustls::TlsError::Io(e)
                    if e.kind() != std::io::ErrorKind::InvalidData);
                let hint = if closed {
                    " (does that node use TLS on the link? cluster_tls_* is set here)"
                } else {
                    ""
                };
                Failure::Insecure(format!("TLS: {}{hint}", tls_error(error)))
            })?;
            LinkStream::TlsClient(Box::new(tls))
        }
    };
    let nonce = match &security.secret {
        Some(_) => linksec::nonce().map_err(Failure::Quiet)?,
        None => Vec::new(),
    };
    let hello = Msg::Hello {
        cluster: cluster.to_string(),
        from: me,
        nonce: nonce.clone(),
    };
    // A failed TLS record (the callee refused this node's certificate) or an answer that is
    // no frame is worth a warning; a closed connection is not (the callee stopped).
    let tls_hint = |error: WireError| match &error {
        WireError::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Failure::Insecure(format!("TLS: {error}"))
        }
        WireError::Io(_) => Failure::Quiet(error.to_string()),
        _ => Failure::Insecure(format!("its answer is not a valid frame: {error}")),
    };
    send(&mut stream, &hello).await.map_err(tls_hint)?;
    let answer = receive(&mut stream).await.map_err(tls_hint)?;
    let answer = match (answer, &security.secret) {
        (Msg::Welcome, None) => return Ok(stream),
        (Msg::Refused { reason }, _) => return Err(Failure::Refused(reason)),
        (
            Msg::Challenge {
                nonce: theirs,
                proof,
            },
            Some(secret),
        ) => {
            let transcript = Transcript {
                cluster,
                caller: me,
                caller_nonce: &nonce,
                callee_nonce: &theirs,
            };
            if !secret.check_server_proof(&transcript, &proof) {
                return Err(Failure::Insecure(
                    "it did not prove the cluster secret (its cluster_secret_file differs)"
                        .to_string(),
                ));
            }
            let proof = Msg::Proof {
                proof: secret.client_proof(&transcript),
            };
            send(&mut stream, &proof).await.map_err(tls_hint)?;
            receive(&mut stream).await.map_err(tls_hint)?
        }
        (other, _) => other,
    };
    match answer {
        Msg::Welcome => Ok(stream),
        Msg::Refused { reason } => Err(Failure::Refused(reason)),
        other => Err(Failure::Insecure(format!(
            "it answered the Hello with {}",
            name_of(&other)
        ))),
    }
}

/// A message's kind, for logs (never its content: a proof is not logged).
fn name_of(msg: &Msg) -> &'static str {
    match msg {
        Msg::Welcome => "Welcome",
        Msg::Challenge { .. } => "a Challenge (it has a cluster secret and this node none)",
        Msg::Proof { .. } => "a Proof",
        Msg::Refused { .. } => "Refused",
        Msg::Hello { .. } => "a Hello",
        _ => "a request or reply",
    }
}

/// The callee's side: the handshake of a connection accepted from `peer`. `Ok(None)` when
/// it was refused (logged and answered); an error when a frame failed validation or the
/// connection failed.
pub async fn accept(
    tcp: TcpStream,
    peer: SocketAddr,
    gate: &Rc<RefCell<Gate>>,
) -> Result<Option<(LinkStream, NodeId)>, WireError> {
    let security = gate.borrow().security.clone();
    let handshake = admit(tcp, peer, gate, &security);
    match monoio::time::timeout(ACCEPT_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(outcome) => outcome,
        Err(_) => {
            warn_once(
                gate,
                format!("refused a link from {}: the handshake timed out", peer.ip()),
            );
            Ok(None)
        }
    }
}

async fn admit(
    tcp: TcpStream,
    peer: SocketAddr,
    gate: &Rc<RefCell<Gate>>,
    security: &Arc<LinkSecurity>,
) -> Result<Option<(LinkStream, NodeId)>, WireError> {
    // The first bytes tell a TLS caller from a plain one, so that a mismatch is refused
    // with a reason rather than as a broken frame or a failed TLS handshake.
    let start = first_bytes(&tcp).await.map_err(WireError::Io)?;
    if start.is_empty() {
        return Ok(None);
    }
    let caller_tls = start.starts_with(&[0x16, 0x03]);
    let caller_plain = !start.is_empty() && LINK_MAGIC.starts_with(&start);
    let mut stream = match &security.tls {
        None if caller_tls => {
            let why = "it uses TLS on the link and this node does not (cluster_tls_* is not \
                       set here)";
            warn_once(gate, format!("refused a link from {}: {why}", peer.ip()));
            return Ok(None);
        }
        Some(_) if caller_plain => LinkStream::Plain(tcp),
        None => LinkStream::Plain(tcp),
        Some(tls) => {
            let acceptor = monoio_rustls::TlsAcceptor::from(tls.server.clone());
            match acceptor.accept(tcp).await {
                Ok(tls) => LinkStream::TlsServer(Box::new(tls)),
                Err(error) => {
                    let why = tls_error(error);
                    warn_once(
                        gate,
                        format!("refused a link from {}: TLS: {why}", peer.ip()),
                    );
                    return Ok(None);
                }
            }
        }
    };
    let (cluster, from, nonce) = match receive(&mut stream).await? {
        Msg::Hello {
            cluster,
            from,
            nonce,
        } => (cluster, from, nonce),
        _ => return Err(WireError::Invalid("the first frame is not a Hello")),
    };
    let refuse = |reason: String| (format!("{} (node {from})", peer.ip()), reason);
    let refusal = {
        let gate = gate.borrow();
        match &gate.cluster {
            None => Some("this node is not in a cluster".to_string()),
            Some(name) if *name != cluster => Some(format!(
                "this node is in cluster \"{name}\", not \"{cluster}\""
            )),
            Some(_) if !gate.members.contains(&from) => {
                Some(format!("node {from} is not a member of this cluster"))
            }
            Some(_) if security.tls.is_some() && matches!(stream, LinkStream::Plain(_)) => {
                Some(format!(
                    "node {from} does not use TLS on the link, which node {} requires (is \
                     cluster_tls_* set on node {from}?)",
                    gate.me
                ))
            }
            Some(_) => linksec::hello_refusal(security.secret.as_ref(), &nonce, from, gate.me),
        }
    };
    if let Some(reason) = refusal {
        refused(&mut stream, gate, refuse(reason)).await?;
        return Ok(None);
    }
    if let Some(secret) = &security.secret {
        let mine = linksec::nonce().map_err(|_| WireError::Invalid("no random nonce"))?;
        let transcript = Transcript {
            cluster: &cluster,
            caller: from,
            caller_nonce: &nonce,
            callee_nonce: &mine,
        };
        let challenge = Msg::Challenge {
            nonce: mine.clone(),
            proof: secret.server_proof(&transcript),
        };
        send(&mut stream, &challenge).await?;
        let proof = match receive(&mut stream).await {
            Ok(Msg::Proof { proof }) => proof,
            Ok(_) => return Err(WireError::Invalid("a Challenge answered by no Proof")),
            Err(WireError::Io(error)) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
                let (who, _) = refuse(String::new());
                let line = format!(
                    "link from {who} closed in the handshake: it did not accept this node's \
                     proof of the cluster secret (its cluster_secret_file differs)"
                );
                warn_once(gate, line);
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        if !secret.check_client_proof(&transcript, &proof) {
            let reason = format!(
                "node {from} did not prove the cluster secret (its cluster_secret_file differs)"
            );
            refused(&mut stream, gate, refuse(reason)).await?;
            return Ok(None);
        }
    }
    send(&mut stream, &Msg::Welcome).await?;
    Ok(Some((stream, from)))
}

/// Up to the first 3 bytes the caller sent, left unread (empty: it closed).
async fn first_bytes(tcp: &TcpStream) -> std::io::Result<Vec<u8>> {
    let mut start = [0u8; 3];
    loop {
        tcp.readable(false).await?;
        // SAFETY: the descriptor is the stream's, open while `tcp` is borrowed, and
        // `start` is valid for writes of its length; MSG_PEEK leaves the bytes queued.
        let read = unsafe {
            libc::recv(
                tcp.as_raw_fd(),
                start.as_mut_ptr().cast(),
                start.len(),
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match usize::try_from(read) {
            Err(_) => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::WouldBlock {
                    return Err(error);
                }
            }
            Ok(0) => return Ok(Vec::new()),
            Ok(read) if read >= start.len() => return Ok(start.to_vec()),
            // Part of the start arrived: wait for the rest (the handshake's deadline holds).
            Ok(_) => monoio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

/// Logs a refusal of `who` and tells the caller why.
async fn refused(
    stream: &mut LinkStream,
    gate: &Rc<RefCell<Gate>>,
    (who, reason): (String, String),
) -> Result<(), WireError> {
    warn_once(gate, format!("refused a link from {who}: {reason}"));
    send(stream, &Msg::Refused { reason }).await?;
    // The caller reads the refusal and closes; closing first could lose it.
    let _ = stream.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linksec::Secret;
    use std::collections::BTreeSet;

    #[test]
    fn a_refusal_is_logged_once_per_interval() {
        let mut log = RefusalLog::default();
        let start = Instant::now();
        assert!(log.first("refused a link from 127.0.0.3", start));
        assert!(!log.first("refused a link from 127.0.0.3", start + REPEAT / 2));
        assert!(log.first("refused a link from 127.0.0.4", start + REPEAT / 2));
        assert!(log.first("refused a link from 127.0.0.3", start + REPEAT));
    }

    const SECRET: &str = "the plant's cluster secret";

    fn gate(secret: Option<&str>) -> Rc<RefCell<Gate>> {
        let secret = secret.map(|s| Secret::new(s.as_bytes()).expect("secret"));
        Rc::new(RefCell::new(Gate {
            me: 1,
            cluster: Some("plant".to_string()),
            members: BTreeSet::from([1, 2, 3]),
            source: None,
            security: Arc::new(LinkSecurity { secret, tls: None }),
            refusals: RefusalLog::default(),
        }))
    }

    fn run<F: std::future::Future>(test: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(test)
    }

    /// Node `me` (with `caller`) links to a node with `callee`: what each side concludes.
    async fn link(
        me: NodeId,
        caller: Option<&str>,
        callee: Option<&str>,
    ) -> (Result<(), String>, Option<NodeId>) {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let server = gate(callee);
        let accepted = monoio::spawn(async move {
            let (tcp, peer) = listener.accept().await.expect("accept");
            let accepted = accept(tcp, peer, &server).await.expect("handshake");
            accepted.map(|(_, from)| from)
        });
        let tcp = TcpStream::connect(addr.as_str()).await.expect("connect");
        let opened = connect(tcp, &addr, me, 1, &gate(caller)).await.map(|_| ());
        (opened, accepted.await)
    }

    #[test]
    fn nodes_with_the_same_secret_or_none_link() {
        run(async {
            assert_eq!(link(2, Some(SECRET), Some(SECRET)).await, (Ok(()), Some(2)));
            assert_eq!(link(3, None, None).await, (Ok(()), Some(3)));
        });
    }

    #[test]
    fn a_wrong_secret_or_a_missing_one_is_refused_either_way() {
        run(async {
            let other = Some("another cluster's secret");
            let (opened, accepted) = link(2, other, Some(SECRET)).await;
            let why = opened.expect_err("wrong secret");
            assert!(why.contains("did not prove the cluster secret"), "{why}");
            assert_eq!(accepted, None);
            let (opened, accepted) = link(2, None, Some(SECRET)).await;
            let why = opened.expect_err("no secret");
            assert!(
                why.contains("refused the link: node 2 sent no proof"),
                "{why}"
            );
            assert_eq!(accepted, None);
            let (opened, accepted) = link(2, Some(SECRET), None).await;
            let why = opened.expect_err("secret against none");
            assert!(
                why.contains("uses a cluster secret and node 1 has none"),
                "{why}"
            );
            assert_eq!(accepted, None);
            let (opened, accepted) = link(4, Some(SECRET), Some(SECRET)).await;
            let why = opened.expect_err("not a member");
            assert!(why.contains("node 4 is not a member"), "{why}");
            assert_eq!(accepted, None);
        });
    }

    /// Someone who captured a node's Hello and Proof sends them again on a new connection.
    #[test]
    fn a_replayed_handshake_is_refused() {
        run(async {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("address").to_string();
            let server = gate(Some(SECRET));
            let accepted = monoio::spawn(async move {
                let mut outcomes = Vec::new();
                for _ in 0..2 {
                    let (tcp, peer) = listener.accept().await.expect("accept");
                    let accepted = accept(tcp, peer, &server).await.expect("handshake");
                    outcomes.push(accepted.map(|(_, from)| from));
                }
                outcomes
            });
            let secret = Secret::new(SECRET.as_bytes()).expect("secret");
            let nonce = linksec::nonce().expect("nonce");
            let hello = Msg::Hello {
                cluster: "plant".to_string(),
                from: 2,
                nonce: nonce.clone(),
            };
            // The genuine exchange, as captured.
            let mut tcp = TcpStream::connect(addr.as_str()).await.expect("connect");
            send(&mut tcp, &hello).await.expect("hello");
            let Msg::Challenge { nonce: theirs, .. } = receive(&mut tcp).await.expect("challenge")
            else {
                panic!("no challenge");
            };
            let proof = Msg::Proof {
                proof: secret.client_proof(&Transcript {
                    cluster: "plant",
                    caller: 2,
                    caller_nonce: &nonce,
                    callee_nonce: &theirs,
                }),
            };
            send(&mut tcp, &proof).await.expect("proof");
            assert_eq!(receive(&mut tcp).await.expect("welcome"), Msg::Welcome);
            // The replay.
            let mut tcp = TcpStream::connect(addr.as_str()).await.expect("connect");
            send(&mut tcp, &hello).await.expect("hello");
            let Msg::Challenge { nonce: fresh, .. } = receive(&mut tcp).await.expect("challenge")
            else {
                panic!("no challenge");
            };
            assert_ne!(fresh, theirs, "a new connection, a new nonce");
            send(&mut tcp, &proof).await.expect("proof");
            let refused = receive(&mut tcp).await.expect("answer");
            assert!(
                matches!(&refused, Msg::Refused { reason } if reason.contains("did not prove")),
                "{refused:?}"
            );
            assert_eq!(accepted.await, vec![Some(2), None]);
        });
    }
}
