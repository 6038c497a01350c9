//! Measures the replication core's throughput: three Raft nodes in this process, each on a
//! thread and monoio runtime of its own as the broker runs its core, with the real parts:
//! the log store on the write-ahead log (`store::LogStore`, fdatasync per append), the
//! cluster link over TCP between 127.0.0.1, .2 and .3 (`network`), the state machine
//! (`machine::Machine`) and the broker's openraft configuration (`core::config`). Node 1
//! leads; many proposals of 4 KiB (`--inflight`) are kept in flight on its thread with
//! `client_write`, and the entries committed (acknowledged after a majority has them and the
//! leader applied them) are counted over a measured window after a warm-up.
//!
//! ```text
//! cargo run --release -p replication --example raft_bench -- [OPTIONS] DIR...
//!   --seconds S      measured window per run (default 10)
//!   --warmup S       before the window (default 2)
//!   --inflight N     proposals in flight (default 1024)
//!   --repeats R      runs per DIR (default 3); DIRs are interleaved, the order rotated
//!   --entry-bytes B  entry payload (default 4096)
//!   --dd-mib M       before each run, `dd if=/dev/zero bs=1M count=M conv=fdatasync` in the
//!                    run's DIR: the file system's bandwidth in the same session (default
//!                    1024; 0 skips)
//! ```
//!
//! Each DIR holds the three nodes' logs (`DIR/raft-bench-<pid>/node-N`, removed after each
//! run): give `/dev/shm` for the CPU and link path, and a directory on the disk for the
//! disk's. Every run is bounded (window, warm-up, a start-up deadline, a stop deadline);
//! the threads and directories are cleaned up whatever happens. The output gives each
//! run's committed MB/s (entry payload bytes, MB = 10^6), the CPU each node's thread used
//! (share of one core), and the medians per DIR.

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use openraft::async_runtime::WatchReceiver;
use openraft::BasicNode;
use replication::machine::Machine;
use replication::network::{self, Gate, Network};
use replication::proposal::{Proposal, Reply};
use replication::store::LogStore;
use replication::types::{NodeId, Payload, Raft};
use shards::cluster_status::ClusterStatus;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

/// Nodes of the bench cluster.
const NODES: u64 = 3;
/// Longest wait for node 1 to lead and commit its first proposal.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest wait for one proposal once the window is over.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
struct Options {
    seconds: f64,
    warmup: f64,
    inflight: usize,
    repeats: usize,
    entry_bytes: usize,
    dd_mib: u64,
    dirs: Vec<PathBuf>,
}

fn main() {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("raft_bench: {error}");
            eprintln!(
                "usage: raft_bench [--seconds S] [--warmup S] [--inflight N] [--repeats R] \
                 [--entry-bytes B] [--dd-mib M] DIR..."
            );
            std::process::exit(2);
        }
    };
    if let Err(error) = bench(&options) {
        eprintln!("raft_bench: {error}");
        std::process::exit(1);
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        seconds: 10.0,
        warmup: 2.0,
        inflight: 1024,
        repeats: 3,
        entry_bytes: 4096,
        dd_mib: 1024,
        dirs: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        fn number<T: std::str::FromStr>(name: &str, text: String) -> Result<T, String> {
            text.parse()
                .map_err(|_| format!("{name}: not a number: {text}"))
        }
        match arg.as_str() {
            "--seconds" => options.seconds = number(&arg, value(&arg)?)?,
            "--warmup" => options.warmup = number(&arg, value(&arg)?)?,
            "--inflight" => options.inflight = number(&arg, value(&arg)?)?,
            "--repeats" => options.repeats = number(&arg, value(&arg)?)?,
            "--entry-bytes" => options.entry_bytes = number(&arg, value(&arg)?)?,
            "--dd-mib" => options.dd_mib = number(&arg, value(&arg)?)?,
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            dir => options.dirs.push(PathBuf::from(dir)),
        }
    }
    if options.dirs.is_empty() {
        return Err("no DIR given".to_string());
    }
    if !(0.5..=600.0).contains(&options.seconds) || !(0.0..=60.0).contains(&options.warmup) {
        return Err("--seconds must be 0.5..=600 and --warmup 0..=60".to_string());
    }
    if !(1..=65536).contains(&options.inflight) || !(1..=100).contains(&options.repeats) {
        return Err("--inflight must be 1..=65536 and --repeats 1..=100".to_string());
    }
    if !(64..=1 << 20).contains(&options.entry_bytes) || options.dd_mib > 16384 {
        return Err("--entry-bytes must be 64..=1048576 and --dd-mib at most 16384".to_string());
    }
    Ok(options)
}

/// One run's figures.
#[derive(Clone, Debug, Default)]
struct RunResult {
    /// Entries committed in the window.
    entries: u64,
    /// The window's length.
    seconds: f64,
    /// Proposals that failed (any error).
    errors: u64,
    /// CPU of each node's thread over the window, as a share of one core.
    cpu: [f64; NODES as usize],
    /// Leader's commit index and the followers' applied indexes at the window's end.
    committed: u64,
    followers_applied: [u64; 2],
    /// `dd` bandwidth of the DIR measured just before, MB/s.
    dd_mb_s: Option<f64>,
    /// /proc/loadavg (1 min) at the start of the run.
    load: f64,
}

impl RunResult {
    fn mb_s(&self, entry_bytes: usize) -> f64 {
        self.entries as f64 * entry_bytes as f64 / self.seconds / 1e6
    }
}

fn bench(options: &Options) -> Result<(), String> {
    println!(
        "raft_bench: 3 nodes, {} B entries, {} in flight, {} s window after {} s warm-up, \
         {} repeats; dirs: {}",
        options.entry_bytes,
        options.inflight,
        options.seconds,
        options.warmup,
        options.repeats,
        options
            .dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut results: Vec<Vec<RunResult>> = vec![Vec::new(); options.dirs.len()];
    for repeat in 0..options.repeats {
        for k in 0..options.dirs.len() {
            // Rotate the order so that no DIR always runs first (or right after another).
            let which = (k + repeat) % options.dirs.len();
            let dir = &options.dirs[which];
            let dd_mb_s = match options.dd_mib {
                0 => None,
                mib => Some(dd(dir, mib)?),
            };
            let mut result = run(dir, options)?;
            result.dd_mb_s = dd_mb_s;
            println!(
                "run {} {}: {:.1} MB/s committed ({} entries in {:.2} s, {} errors); \
                 CPU node1 {:.0}% node2 {:.0}% node3 {:.0}%; commit {} applied {}/{}; \
                 dd {}; load {:.2}",
                repeat + 1,
                dir.display(),
                result.mb_s(options.entry_bytes),
                result.entries,
                result.seconds,
                result.errors,
                result.cpu[0] * 100.0,
                result.cpu[1] * 100.0,
                result.cpu[2] * 100.0,
                result.committed,
                result.followers_applied[0],
                result.followers_applied[1],
                dd_mb_s.map_or("-".to_string(), |v| format!("{v:.0} MB/s")),
                result.load
            );
            results[which].push(result);
        }
    }
    println!("medians over {} runs:", options.repeats);
    for (dir, runs) in options.dirs.iter().zip(&results) {
        let mb_s = median(runs.iter().map(|r| r.mb_s(options.entry_bytes)));
        let dd = median(runs.iter().filter_map(|r| r.dd_mb_s));
        let cpu: Vec<String> = (0..NODES as usize)
            .map(|n| format!("{:.0}%", median(runs.iter().map(|r| r.cpu[n])) * 100.0))
            .collect();
        let dd_text = if dd > 0.0 {
            format!(
                "; dd {dd:.0} MB/s, dd/3 {:.0} MB/s, committed = {:.0}% of dd/3",
                dd / 3.0,
                mb_s / (dd / 3.0) * 100.0
            )
        } else {
            String::new()
        };
        println!(
            "  {}: {mb_s:.1} MB/s committed ({:.0} entries/s); CPU {}{dd_text}",
            dir.display(),
            mb_s * 1e6 / options.entry_bytes as f64,
            cpu.join(" ")
        );
    }
    Ok(())
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// `dd if=/dev/zero of=DIR/... bs=1M count=MIB conv=fdatasync`: MB/s (10^6 bytes).
fn dd(dir: &Path, mib: u64) -> Result<f64, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join(format!("raft-bench-dd-{}", std::process::id()));
    let start = Instant::now();
    let output = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .arg("bs=1M")
        .arg(format!("count={mib}"))
        .arg("conv=fdatasync")
        .env("LC_ALL", "C")
        .output();
    let elapsed = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    let output = output.map_err(|e| format!("cannot run dd: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "dd failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // dd's own figure ("... copied, 4.1 s, 262 MB/s") leaves out its start-up; take its
    // seconds when they parse, else the wall time around it.
    let text = String::from_utf8_lossy(&output.stderr);
    let seconds = text
        .split("copied, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(elapsed);
    Ok((mib << 20) as f64 / seconds / 1e6)
}

/// A TCP port free on 127.0.0.1, .2 and .3 a moment ago.
fn shared_port() -> Result<u16, String> {
    for _ in 0..100 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot bind 127.0.0.1: {e}"))?;
        let port = probe
            .local_addr()
            .map_err(|e| format!("no local address: {e}"))?
            .port();
        drop(probe);
        if (1..=NODES).all(|n| std::net::TcpListener::bind(address(n, port)).is_ok()) {
            return Ok(port);
        }
    }
    Err("no port free on 127.0.0.1-3".to_string())
}

fn address(node: NodeId, port: u16) -> String {
    format!("127.0.0.{node}:{port}")
}

/// What node 1's thread reports at the window's edges.
enum Event {
    /// The window starts (warm-up over).
    WindowStart,
    /// The window ended: entries committed in it, errors.
    WindowEnd { entries: u64, errors: u64 },
    /// The leader's commit index after the window.
    Committed(u64),
    /// Something failed.
    Failed(String),
}

/// Removes the run's directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(dir: &Path, options: &Options) -> Result<RunResult, String> {
    let base = TempDir(dir.join(format!("raft-bench-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&base.0);
    let port = shared_port()?;
    let members: BTreeMap<NodeId, BasicNode> = (1..=NODES)
        .map(|n| {
            (
                n,
                BasicNode {
                    addr: address(n, port),
                },
            )
        })
        .collect();
    let load = loadavg();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(NODES as usize + 1));
    let (events, events_rx) = std_mpsc::channel();
    let (tids, tids_rx) = std_mpsc::channel();
    let (applied, applied_rx) = std_mpsc::channel();
    let mut threads = Vec::new();
    for node in 1..=NODES {
        let node_dir = base.0.join(format!("node-{node}"));
        let spec = NodeSpec {
            me: node,
            dir: node_dir,
            members: members.clone(),
            stop: stop.clone(),
            ready: ready.clone(),
            events: events.clone(),
            tids: tids.clone(),
            applied: applied.clone(),
            options: options.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("raft-bench-{node}"))
            .spawn(move || node_thread(spec))
            .map_err(|e| format!("cannot start a node thread: {e}"))?;
        threads.push(thread);
    }
    drop((events, tids, applied));
    let outcome = measure(&ready, &events_rx, &tids_rx, options);
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        let _ = thread.join();
    }
    let mut result = outcome?;
    let mut followers: Vec<(NodeId, u64)> =
        applied_rx.try_iter().filter(|(n, _)| *n != 1).collect();
    followers.sort_unstable();
    for (slot, (_, index)) in result.followers_applied.iter_mut().zip(followers) {
        *slot = index;
    }
    result.load = load;
    Ok(result)
}

/// Waits for the nodes and node 1's window, reading the threads' CPU at its edges.
fn measure(
    ready: &Barrier,
    events: &std_mpsc::Receiver<Event>,
    tids: &std_mpsc::Receiver<(NodeId, i32)>,
    options: &Options,
) -> Result<RunResult, String> {
    ready.wait();
    let mut tid = [0i32; NODES as usize];
    for _ in 0..NODES {
        let (node, id) = tids
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| "a node did not start".to_string())?;
        tid[(node - 1) as usize] = id;
    }
    let limit = START_TIMEOUT + Duration::from_secs_f64(options.warmup);
    let cpu_now = || tid.map(thread_cpu);
    let mut result = RunResult::default();
    match events.recv_timeout(limit) {
        Ok(Event::WindowStart) => {}
        Ok(Event::Failed(why)) => return Err(why),
        Ok(_) | Err(_) => return Err("node 1 did not start the window".to_string()),
    }
    let (started, cpu_start) = (Instant::now(), cpu_now());
    let window = Duration::from_secs_f64(options.seconds) + Duration::from_secs(5);
    match events.recv_timeout(window) {
        Ok(Event::WindowEnd { entries, errors }) => {
            result.entries = entries;
            result.errors = errors;
        }
        Ok(Event::Failed(why)) => return Err(why),
        Ok(_) | Err(_) => return Err("node 1 did not end the window".to_string()),
    }
    result.seconds = started.elapsed().as_secs_f64();
    let cpu_end = cpu_now();
    for n in 0..NODES as usize {
        result.cpu[n] = (cpu_end[n] - cpu_start[n]) / result.seconds;
    }
    if let Ok(Event::Committed(index)) = events.recv_timeout(WRITE_TIMEOUT * 2) {
        result.committed = index;
    }
    Ok(result)
}

/// CPU seconds thread `tid` of this process used so far (0 when unreadable).
fn thread_cpu(tid: i32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return 0.0;
    };
    let Some(after) = stat.rfind(')').map(|at| &stat[at + 1..]) else {
        return 0.0;
    };
    let mut fields = after.split_whitespace();
    let utime: f64 = fields.nth(11).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    let stime: f64 = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (utime + stime) / if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

struct NodeSpec {
    me: NodeId,
    dir: PathBuf,
    members: BTreeMap<NodeId, BasicNode>,
    stop: Arc<AtomicBool>,
    ready: Arc<Barrier>,
    events: std_mpsc::Sender<Event>,
    tids: std_mpsc::Sender<(NodeId, i32)>,
    applied: std_mpsc::Sender<(NodeId, u64)>,
    options: Options,
}

fn node_thread(spec: NodeSpec) {
    let _ = spec.tids.send((spec.me, thread_id()));
    let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build();
    let mut runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            spec.ready.wait();
            let _ = spec
                .events
                .send(Event::Failed(format!("no runtime: {error}")));
            return;
        }
    };
    let events = spec.events.clone();
    if let Err(error) = runtime.block_on(node_main(spec)) {
        let _ = events.send(Event::Failed(error));
    }
}

fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// One node: its store, machine, link server and Raft; node 1 also initialises the
/// cluster and drives the load. Runs until `stop`.
async fn node_main(spec: NodeSpec) -> Result<(), String> {
    let addr = spec.members[&spec.me].addr.clone();
    let started = start_node(&spec, &addr).await;
    // Every node is up (or failed) before node 1 starts the election.
    spec.ready.wait();
    let node = started?;
    let machine = node.machine.clone();
    let mut doorbell = node.doorbell;
    // The bench's proposals ask for no effect; drain whatever applying queues anyway.
    monoio::spawn(async move {
        while doorbell.next().await.is_some() {
            let _ = machine.take_effects();
        }
    });
    let outcome = if spec.me == 1 {
        drive(&node.raft, &spec).await
    } else {
        Ok(())
    };
    while !spec.stop.load(Ordering::SeqCst) {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    let applied = node
        .raft
        .metrics()
        .borrow_watched()
        .last_applied
        .map_or(0, |id| id.index);
    let _ = spec.applied.send((spec.me, applied));
    let _ = node.stop_server.send(());
    let _ = node.raft.shutdown().await;
    drop(node.forwarded);
    outcome
}

/// A started node's parts.
struct Started {
    raft: Raft,
    machine: Machine,
    doorbell: mpsc::UnboundedReceiver<()>,
    stop_server: oneshot::Sender<()>,
    forwarded: mpsc::UnboundedReceiver<network::ForwardedRequest>,
}

async fn start_node(spec: &NodeSpec, addr: &str) -> Result<Started, String> {
    let listener = monoio::net::TcpListener::bind(addr)
        .map_err(|e| format!("node {}: cannot listen on {addr}: {e}", spec.me))?;
    let store = LogStore::open(&spec.dir.join("raft"), Default::default())
        .map_err(|e| format!("node {}: log: {e}", spec.me))?;
    let status = Arc::new(ClusterStatus::default());
    let (doorbell_tx, doorbell) = mpsc::unbounded();
    let machine = Machine::open(
        spec.me,
        Some(spec.dir.join("snapshot")),
        doorbell_tx,
        status.clone(),
    );
    let gate = Rc::new(RefCell::new(Gate {
        cluster: Some("bench".to_string()),
        members: spec.members.keys().copied().collect::<BTreeSet<_>>(),
        source: Some(std::net::IpAddr::from([127, 0, 0, spec.me as u8])),
        me: spec.me,
        ..Gate::default()
    }));
    let network = Network::new(spec.me, gate.clone(), status);
    let config = replication::core::config("bench").map_err(|e| e.to_string())?;
    let raft = Raft::new(spec.me, Arc::new(config), network, store, machine.clone())
        .await
        .map_err(|e| format!("node {}: Raft did not start: {e}", spec.me))?;
    let (stop_server, stopped) = oneshot::channel();
    let (forwarded_tx, forwarded) = mpsc::unbounded();
    monoio::spawn(network::serve(
        listener,
        raft.clone(),
        gate,
        forwarded_tx,
        stopped,
    ));
    Ok(Started {
        raft,
        machine,
        doorbell,
        stop_server,
        forwarded,
    })
}

/// A proposal whose archived form is `bytes` long (as near as rkyv's layout allows, never
/// longer), with incompressible content. It asks for no effect: its reply is for node 0.
fn proposal(bytes: usize) -> Payload {
    let make = |len: usize| {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let payload = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        Proposal {
            reply: Some(Reply {
                node: 0,
                shard: 0,
                topic: String::new(),
                payload,
            }),
            ..Proposal::default()
        }
        .encode()
    };
    let overhead = make(0).0.len();
    let mut len = bytes.saturating_sub(overhead);
    loop {
        let payload = make(len);
        if payload.0.len() <= bytes || len == 0 {
            return payload;
        }
        len -= 1;
    }
}

/// Node 1: initialise the cluster, wait for the first commit, then keep `inflight`
/// proposals going through the warm-up and the window, and report.
async fn drive(raft: &Raft, spec: &NodeSpec) -> Result<(), String> {
    raft.initialize(spec.members.clone())
        .await
        .map_err(|e| format!("initialize: {e}"))?;
    let payload = proposal(spec.options.entry_bytes);
    if payload.0.len() != spec.options.entry_bytes {
        return Err(format!(
            "cannot make a {}-byte proposal (nearest {})",
            spec.options.entry_bytes,
            payload.0.len()
        ));
    }
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match raft.client_write(payload.clone()).await {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => return Err(format!("node 1 never committed: {error}")),
        }
    }
    let committed = Rc::new(Cell::new(0u64));
    let errors = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let window_start = start + Duration::from_secs_f64(spec.options.warmup);
    let end = window_start + Duration::from_secs_f64(spec.options.seconds);
    let mut writers = Vec::with_capacity(spec.options.inflight);
    for _ in 0..spec.options.inflight {
        let (raft, payload) = (raft.clone(), payload.clone());
        let (committed, errors) = (committed.clone(), errors.clone());
        writers.push(monoio::spawn(async move {
            while Instant::now() < end {
                let write = raft.client_write(payload.clone());
                match monoio::time::timeout(WRITE_TIMEOUT, write).await {
                    Ok(Ok(_)) => committed.set(committed.get() + 1),
                    Ok(Err(_)) | Err(_) => {
                        errors.set(errors.get() + 1);
                        monoio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    monoio::time::sleep_until(window_start.into()).await;
    let (at_start, errors_at_start) = (committed.get(), errors.get());
    let _ = spec.events.send(Event::WindowStart);
    monoio::time::sleep_until(end.into()).await;
    let _ = spec.events.send(Event::WindowEnd {
        entries: committed.get() - at_start,
        errors: errors.get() - errors_at_start,
    });
    for writer in writers {
        writer.await;
    }
    let index = raft
        .metrics()
        .borrow_watched()
        .last_applied
        .map_or(0, |id| id.index);
    let _ = spec.events.send(Event::Committed(index));
    Ok(())
}
