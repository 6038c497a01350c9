//! Measures what securing the cluster link costs on loopback: the time to open a link
//! (TCP connect plus the handshake of `handshake.rs`) and the rate of AppendEntries round
//! trips carrying 64 entries of 4 KiB (256 KiB a request, as the leader batches them), each
//! with the link plain, with the cluster secret, with mutual TLS, and with both.
//!
//! ```text
//! cargo run --release -p replication --example link_bench -- DIR [ROUNDS]
//! ```
//!
//! DIR holds `ca.crt`, `node.crt` and `node.key`: a CA and a certificate it signed for
//! `IP:127.0.0.1` with `serverAuth,clientAuth` (docs/cluster.md, "Securing the cluster
//! link", makes them with openssl; use `subjectAltName=IP:127.0.0.1`). Without DIR only
//! the plain and secret links are measured. The callee runs on a thread of its own, as the
//! other node would; the figures are the median of ROUNDS (default 5) rounds.
//!
//! On this 2-core machine, shared with other builds (load average 6–12), five runs gave:
//! opening a link 0.1–0.4 ms plain or with the secret, 0.5–0.9 ms with TLS (P-256); a
//! 256 KiB round trip, median, 0.12 ms plain, 0.57 ms with the secret, 1.0 ms with TLS or
//! both (entries over total time: 0.9–2 GB/s plain, 0.3 GB/s secret, 0.18 GB/s TLS). The
//! secret adds no work after the handshake, yet its link's round trips are slower: the
//! kernel counts retransmissions and lost delayed ACKs only then (`nstat`); not explained.

use replication::handshake;
use replication::linksec::{LinkSecurity, LinkTls, Secret};
use replication::network::{receive, send, Gate};
use replication::wire::{Msg, WAppendRequest, WAppendResponse, WEntry, WLogId, WPayload, WVote};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Builds one side's link security.
type MakeSecurity = Box<dyn Fn() -> LinkSecurity>;

/// Links opened per round.
const LINKS: u32 = 200;
/// Round trips per round.
const TRIPS: u32 = 400;
/// Entries per request and bytes per entry.
const ENTRIES: usize = 64;
const ENTRY_BYTES: usize = 4096;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next();
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let secret = || Some(Secret::new(b"a cluster secret for the link bench").expect("secret"));
    let tls = |dir: &str| {
        let dir = Path::new(dir);
        let load = LinkTls::load(
            &dir.join("node.crt"),
            &dir.join("node.key"),
            &dir.join("ca.crt"),
        );
        Some(load.unwrap_or_else(|(file, why)| panic!("{file:?}: {why}")))
    };
    let mut modes: Vec<(&str, MakeSecurity)> = vec![
        ("plain", Box::new(LinkSecurity::default)),
        (
            "secret",
            Box::new(move || LinkSecurity {
                secret: secret(),
                tls: None,
            }),
        ),
    ];
    if let Some(dir) = dir {
        let d = dir.clone();
        modes.push((
            "TLS",
            Box::new(move || LinkSecurity {
                secret: None,
                tls: tls(&d),
            }),
        ));
        modes.push((
            "TLS+secret",
            Box::new(move || LinkSecurity {
                secret: secret(),
                tls: tls(&dir),
            }),
        ));
    }
    println!(
        "link_bench: {rounds} rounds; {LINKS} links opened, {TRIPS} round trips of \
         {ENTRIES} x {ENTRY_BYTES} B entries per round (open: median of rounds; trips: all rounds; MB/s: entries over the
         total trip time)"
    );
    println!(
        "{:<11} {:>10} {:>14} {:>14} {:>14} {:>8}",
        "link", "open (us)", "trip p50 (us)", "trip p99 (us)", "trip max (us)", "MB/s"
    );
    for (name, make) in &modes {
        let mut opens = Vec::new();
        let mut trips = Vec::new();
        for _ in 0..rounds {
            let (open, trip) = round(make);
            opens.push(open);
            trips.extend(trip);
        }
        let open = median(&mut opens);
        let total: Duration = trips.iter().sum();
        let mb_s = (ENTRIES * ENTRY_BYTES * trips.len()) as f64 / total.as_secs_f64() / 1e6;
        trips.sort();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let at = |q: f64| us(trips[((trips.len() - 1) as f64 * q) as usize]);
        println!(
            "{name:<11} {:>10.0} {:>14.0} {:>14.0} {:>14.0} {mb_s:>8.0}",
            us(open),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn gate(me: u64, security: LinkSecurity) -> Rc<RefCell<Gate>> {
    Rc::new(RefCell::new(Gate {
        me,
        cluster: Some("bench".to_string()),
        members: BTreeSet::from([1, 2]),
        security: Arc::new(security),
        ..Gate::default()
    }))
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// One round: the time per link opened and per round trip.
fn round(make: &dyn Fn() -> LinkSecurity) -> (Duration, Vec<Duration>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    let callee_security = make();
    let callee = std::thread::spawn(move || {
        block_on(async move {
            let listener = monoio::net::TcpListener::from_std(listener).expect("listener");
            let gate = gate(1, callee_security);
            // LINKS handshakes, then one link answering TRIPS requests.
            for i in 0..=LINKS {
                let (tcp, peer) = listener.accept().await.expect("accept");
                let _ = tcp.set_nodelay(true);
                let accepted = handshake::accept(tcp, peer, &gate)
                    .await
                    .expect("handshake");
                let (mut stream, _) = accepted.expect("accepted");
                if i < LINKS {
                    continue;
                }
                while let Ok(Msg::Append(_)) = receive(&mut stream).await {
                    let reply = Msg::AppendReply(WAppendResponse::Success);
                    send(&mut stream, &reply).await.expect("reply");
                }
            }
        })
    });
    let caller = gate(2, make());
    let request = Msg::Append(WAppendRequest {
        vote: WVote {
            term: 1,
            node: 1,
            committed: true,
        },
        prev_log_id: Some(WLogId { term: 1, index: 1 }),
        entries: (0..ENTRIES as u64)
            .map(|i| WEntry {
                log_id: WLogId {
                    term: 1,
                    index: 2 + i,
                },
                payload: WPayload::Normal(bytes::Bytes::from(vec![0x5a; ENTRY_BYTES])),
            })
            .collect(),
        leader_commit: Some(WLogId { term: 1, index: 1 }),
    });
    let times = block_on(async move {
        let open = || async {
            let tcp = monoio::net::TcpStream::connect(addr.as_str())
                .await
                .expect("connect");
            let _ = tcp.set_nodelay(true);
            handshake::connect(tcp, &addr, 2, 1, &caller)
                .await
                .expect("link")
        };
        let start = Instant::now();
        for _ in 0..LINKS {
            drop(open().await);
        }
        let opening = start.elapsed() / LINKS;
        let mut stream = open().await;
        let mut trips = Vec::with_capacity(TRIPS as usize);
        for _ in 0..TRIPS {
            let start = Instant::now();
            send(&mut stream, &request).await.expect("send");
            match receive(&mut stream).await.expect("receive") {
                Msg::AppendReply(WAppendResponse::Success) => {}
                other => panic!("unexpected {other:?}"),
            }
            trips.push(start.elapsed());
        }
        (opening, trips)
    });
    callee.join().expect("callee");
    times
}
