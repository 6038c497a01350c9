//! The cluster scenarios (`culex-perf cluster`): three Culex processes on 127.0.0.1, .2
//! and .3 (the same port numbers on each address, as on three machines), made a Full Sync
//! cluster with the control API's createCluster and joinCluster, then measured:
//!
//! ```text
//!   dynsec    N dynamic-security changes (createClient), one at a time, each sent to the
//!             leader's admin listener and, as many again, to a follower's (forwarded):
//!             time from the request's publish to its response (the change committed and
//!             applied), p50 / p99 / max
//!   failover  K times: SIGKILL of the leader, then time until another node's client
//!             listener accepts a TCP connection (only the leader's are open in Full Sync),
//!             p50 / p99 / max; the killed node is restarted and back in the cluster before
//!             the next kill
//! ```
//!
//! Owns the nodes' directories, configs and processes (killed and removed at the end,
//! whatever happens) and a small blocking MQTT 3.1.1 client for the admin listeners.
//! Called by `main` for the `cluster` subcommand. Every wait has a deadline.

use crate::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Password of the `admin` user the nodes create on first start.
const ADMIN_PASSWORD: &str = "adminpass123";
const HA_TOPIC: &str = "$CONTROL/cedalo/ha/v1";
const DYNSEC_TOPIC: &str = "$CONTROL/dynamic-security/v1";
const START_TIMEOUT: Duration = Duration::from_secs(20);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for a new leader after a kill (well past the election bound).
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(20);
const NODES: usize = 3;

/// Numbers the admin sessions' client ids and the requests' correlation data.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn next() -> u64 {
    SEQUENCE.fetch_add(1, Ordering::Relaxed)
}

/// What `culex-perf cluster` was asked for.
#[derive(Clone, Debug)]
pub struct ClusterArgs {
    /// The Culex binary.
    pub culex: PathBuf,
    /// Run the dynsec commit latency scenario.
    pub dynsec: bool,
    /// Changes per admin listener (leader, follower) in `dynsec`.
    pub changes: usize,
    /// Run the failover scenario.
    pub failover: bool,
    /// Leader kills in `failover`.
    pub kills: usize,
    /// Run the pairs scenarios (QoS 0 clean, QoS 1 persistent) through the leader.
    pub pairs: bool,
}

impl Default for ClusterArgs {
    fn default() -> Self {
        ClusterArgs {
            culex: PathBuf::from("target/release/culex"),
            dynsec: true,
            changes: 200,
            failover: true,
            kills: 20,
            pairs: false,
        }
    }
}

struct Ports {
    client: u16,
    admin: u16,
    http: u16,
    cluster: u16,
}

struct Node {
    i: usize,
    dir: PathBuf,
    child: Option<Child>,
}

struct Cluster {
    culex: PathBuf,
    ports: Ports,
    nodes: Vec<Node>,
    root: PathBuf,
}

/// Runs the scenarios asked for; prints one line per figure.
pub fn run(args: &ClusterArgs) -> Result<bool, String> {
    let mut cluster = Cluster::new(&args.culex)?;
    let result = scenarios(&mut cluster, args);
    cluster.cleanup();
    result
}

fn scenarios(cluster: &mut Cluster, args: &ClusterArgs) -> Result<bool, String> {
    for i in 0..NODES {
        cluster.start(i)?;
    }
    let leader = cluster.create()?;
    println!(
        "cluster: 3 nodes on 127.0.0.1-3, Full Sync, leader node {}",
        leader + 1
    );
    if args.dynsec {
        let follower = (leader + 1) % NODES;
        for (label, node) in [("leader", leader), ("follower", follower)] {
            let mut admin = cluster.admin(node)?;
            admin.subscribe(&format!("{DYNSEC_TOPIC}/response"))?;
            let mut samples = Vec::with_capacity(args.changes);
            for k in 0..args.changes {
                let command = format!(
                    "{{\"command\":\"createClient\",\"username\":\"perf-{label}-{k}\",\
                     \"password\":\"perf-password-{k}\"}}"
                );
                let started = Instant::now();
                admin.request(DYNSEC_TOPIC, &command)?;
                samples.push(started.elapsed());
            }
            println!(
                "dynsec commit latency via {label}'s admin listener ({} createClient): {}",
                args.changes,
                percentiles(&mut samples)
            );
        }
    }
    if args.pairs {
        pairs_through_leader(cluster)?;
    }
    if args.failover {
        let mut samples = Vec::with_capacity(args.kills);
        for kill in 0..args.kills {
            let leader = cluster.leader()?;
            cluster.kill(leader);
            let killed = Instant::now();
            let next = cluster.wait_serving(Some(leader), FAILOVER_TIMEOUT)?;
            let took = killed.elapsed();
            samples.push(took);
            eprintln!(
                "kill {}: node {} killed, node {} serving after {} ms",
                kill + 1,
                leader + 1,
                next + 1,
                took.as_millis()
            );
            cluster.start(leader)?;
            cluster.wait_rejoined(leader)?;
        }
        println!(
            "failover, leader SIGKILL to the new leader's client listener accepting ({} kills): \
             {}",
            args.kills,
            percentiles(&mut samples)
        );
    }
    Ok(true)
}

/// Username and password of the pairs scenarios' clients (a dynamic-security client with
/// a role that may publish and subscribe under `perf/#`, created through the leader).
const BENCH_USER: &str = "perf-bench";
const BENCH_PASSWORD: &str = "perf-bench-password";

/// QoS 0 pairs of clean sessions and QoS 1 pairs of persistent sessions (the scenarios'
/// defaults: 100 pairs, 64 B, 10 s after 2 s) through the leader's client listener.
fn pairs_through_leader(cluster: &mut Cluster) -> Result<(), String> {
    let leader = cluster.leader()?;
    let mut admin = cluster.admin(leader)?;
    admin.subscribe(&format!("{DYNSEC_TOPIC}/response"))?;
    let mut commands = vec![
        format!(
            "{{\"command\":\"createClient\",\"username\":\"{BENCH_USER}\",\
             \"password\":\"{BENCH_PASSWORD}\"}}"
        ),
        "{\"command\":\"createRole\",\"rolename\":\"perf-bench\"}".to_string(),
    ];
    for acl in [
        "publishClientSend",
        "publishClientReceive",
        "subscribePattern",
    ] {
        commands.push(format!(
            "{{\"command\":\"addRoleACL\",\"rolename\":\"perf-bench\",\"acltype\":\"{acl}\",\
             \"topic\":\"perf/#\",\"allow\":true}}"
        ));
    }
    commands.push(format!(
        "{{\"command\":\"addClientRole\",\"username\":\"{BENCH_USER}\",\
         \"rolename\":\"perf-bench\"}}"
    ));
    for command in &commands {
        admin.request(DYNSEC_TOPIC, command)?;
    }
    let pid = cluster.nodes[leader].child.as_ref().map(Child::id);
    for (scenario, persistent) in [
        (crate::scenario::Scenario::Pairs, false),
        (crate::scenario::Scenario::Qos1, true),
    ] {
        let mut workload =
            crate::scenario::Workload::new(scenario, address(leader, cluster.ports.client));
        workload.persistent = persistent;
        workload.broker_pid = pid;
        workload.broker_name = "culex-cluster-leader".to_string();
        workload.credentials = crate::scenario::Credentials::Fixed {
            username: BENCH_USER.to_string(),
            password: BENCH_PASSWORD.to_string(),
        };
        let result = crate::engine::run(&workload);
        eprint!("{}", result.to_table());
        println!(
            "{} pairs through the leader ({} pairs, {} B{}): {:.0} msg/s received{}",
            scenario.name(),
            workload.clients,
            workload.payload,
            if persistent {
                ", persistent sessions"
            } else {
                ""
            },
            result.received_per_s,
            if result.valid() { "" } else { " (INVALID run)" }
        );
    }
    Ok(())
}

/// "p50 X ms, p99 Y ms, max Z ms" (nearest rank).
fn percentiles(samples: &mut [Duration]) -> String {
    samples.sort();
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1000.0
    };
    if samples.is_empty() {
        return "no samples".to_string();
    }
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn address(i: usize, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, (i + 1) as u8], port))
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Four port numbers free on every node's address.
fn shared_ports() -> Result<Ports, String> {
    for _ in 0..200 {
        let base = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        if base > 65000 {
            continue;
        }
        let free =
            (0..NODES).all(|i| (0..4).all(|k| TcpListener::bind(address(i, base + k)).is_ok()));
        if free {
            return Ok(Ports {
                client: base,
                admin: base + 1,
                http: base + 2,
                cluster: base + 3,
            });
        }
    }
    Err("no four ports free on 127.0.0.1-3".to_string())
}

impl Cluster {
    fn new(culex: &std::path::Path) -> Result<Cluster, String> {
        if !culex.is_file() {
            return Err(format!("no Culex binary at {}", culex.display()));
        }
        // The nodes run in directories of their own: a relative path would not resolve there.
        let culex = culex
            .canonicalize()
            .map_err(|e| format!("cannot resolve {}: {e}", culex.display()))?;
        let ports = shared_ports()?;
        let root = std::env::temp_dir().join(format!("culex-perf-cluster-{}", std::process::id()));
        let mut nodes = Vec::new();
        for i in 0..NODES {
            let dir = root.join(format!("node{}", i + 1));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let host = format!("127.0.0.{}", i + 1);
            let text = [
                "global_plugin /usr/lib/cedalo_mosquitto_ha.so".to_string(),
                "enable_control_api true".to_string(),
                "allow_anonymous false".to_string(),
                // Started as root, a node would drop to the `mosquitto` user, whose io_uring
                // rings count against one locked-memory limit (8 MiB) shared with every
                // broker that user runs: three nodes of four rings each, with any other
                // broker on the machine, exceed it. `user root` keeps the harness's user.
                "user root".to_string(),
                format!("listener {} {host}", ports.client),
                format!("listener {} {host}", ports.admin),
                "admin_listener true".to_string(),
                format!("listener {} {host}", ports.http),
                "protocol http_api".to_string(),
                format!("persistence_location {}", dir.display()),
            ]
            .join("\n");
            let conf = dir.join("node.conf");
            std::fs::write(&conf, text + "\n")
                .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
            nodes.push(Node {
                i,
                dir,
                child: None,
            });
        }
        Ok(Cluster {
            culex,
            ports,
            nodes,
            root,
        })
    }

    fn start(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("node.log"))
            .map_err(|e| format!("node {}: cannot open its log: {e}", i + 1))?;
        let err = log
            .try_clone()
            .map_err(|e| format!("node {}: cannot open its log: {e}", i + 1))?;
        let child = Command::new(&self.culex)
            .arg("-c")
            .arg(node.dir.join("node.conf"))
            .current_dir(&node.dir)
            .env("MOSQUITTO_DYNSEC_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.culex.display()))?;
        node.child = Some(child);
        let admin = address(node.i, self.ports.admin);
        let deadline = Instant::now() + START_TIMEOUT;
        while !accepts(admin) {
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                return Err(format!("node {} exited at start: {status}", i + 1));
            }
            if Instant::now() > deadline {
                return Err(format!("node {} did not open its admin listener", i + 1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn cleanup(&mut self) {
        for i in 0..NODES {
            self.kill(i);
        }
        if std::env::var_os("CULEX_PERF_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    fn admin(&self, i: usize) -> Result<Admin, String> {
        Admin::connect(address(i, self.ports.admin), i)
    }

    fn entries(&self, mine: usize) -> String {
        let list: Vec<String> = (0..NODES)
            .map(|i| {
                format!(
                    "{{\"address\":\"127.0.0.{}\",\"port\":{},\"nodeid\":{}{}}}",
                    i + 1,
                    self.ports.cluster,
                    i + 1,
                    if i == mine { ",\"mynode\":true" } else { "" }
                )
            })
            .collect();
        format!("[{}]", list.join(","))
    }

    fn ha(&self, i: usize, command: &str, fields: &str) -> Result<json::Value, String> {
        let mut admin = self.admin(i)?;
        admin.subscribe(&format!("{HA_TOPIC}/response"))?;
        let comma = if fields.is_empty() { "" } else { "," };
        admin.request(
            HA_TOPIC,
            &format!("{{\"command\":\"{command}\"{comma}{fields}}}"),
        )
    }

    /// createCluster on node 1, joinCluster on the others; the leader once one serves.
    fn create(&mut self) -> Result<usize, String> {
        self.ha(
            0,
            "createCluster",
            &format!(
                "\"clustername\":\"perf\",\"syncmode\":\"full\",\"nodes\":{}",
                self.entries(0)
            ),
        )?;
        for i in 1..NODES {
            self.ha(
                i,
                "joinCluster",
                &format!("\"clustername\":\"perf\",\"nodes\":{}", self.entries(i)),
            )?;
        }
        for i in 0..NODES {
            self.wait_rejoined(i)?;
        }
        self.leader()
    }

    /// The leader, as the first live node's getNode names it, once its client listener
    /// accepts (a node leaving standalone closes its own, so they are no guide before).
    fn leader(&mut self) -> Result<usize, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let asked = (0..NODES).find(|&i| self.nodes[i].child.is_some());
            let named = asked
                .and_then(|i| self.ha(i, "getNode", "").ok())
                .and_then(|entry| {
                    let id = entry.get("data")?.get("leader")?.number()?;
                    Some(id as usize)
                });
            if let Some(id) = named.filter(|id| (1..=NODES).contains(id)) {
                if accepts(address(id - 1, self.ports.client)) {
                    return Ok(id - 1);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no leader serving clients within {START_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first live node (other than `not`) whose client listener accepts.
    fn wait_serving(&mut self, not: Option<usize>, timeout: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        loop {
            for i in 0..NODES {
                if Some(i) != not
                    && self.nodes[i].child.is_some()
                    && accepts(address(i, self.ports.client))
                {
                    return Ok(i);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no node served clients within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until node `i` knows a leader and has applied entries (back in the cluster).
    fn wait_rejoined(&mut self, i: usize) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(data) = self.ha(i, "getNode", "") {
                let applied = data
                    .get("data")
                    .and_then(|d| d.get("appliedIndex"))
                    .and_then(json::Value::number);
                let leader = data.get("data").and_then(|d| d.get("leader"));
                if leader.is_some() && applied.is_some_and(|a| a >= 1.0) {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("node {} did not rejoin the cluster", i + 1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A blocking MQTT 3.1.1 session logged in as `admin` on one node's admin listener.
struct Admin {
    stream: TcpStream,
    buffer: Vec<u8>,
}

fn remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return;
        }
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    remaining_length(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

impl Admin {
    fn connect(addr: SocketAddr, node: usize) -> Result<Admin, String> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("admin listener of node {}: {e}", node + 1))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let mut admin = Admin {
            stream,
            buffer: Vec::new(),
        };
        let mut body = Vec::new();
        string(&mut body, b"MQTT");
        body.extend_from_slice(&[4, 0xC2, 0, 60]);
        string(
            &mut body,
            format!("culex-perf-{}-{node}-{}", std::process::id(), next()).as_bytes(),
        );
        string(&mut body, b"admin");
        string(&mut body, ADMIN_PASSWORD.as_bytes());
        admin.send(&packet(0x10, &body))?;
        let (kind, body) = admin.read_packet(Instant::now() + REQUEST_TIMEOUT)?;
        if kind >> 4 != 2 || body.get(1) != Some(&0) {
            return Err(format!("admin login on node {} refused", node + 1));
        }
        Ok(admin)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("admin session: {e}"))
    }

    fn subscribe(&mut self, topic: &str) -> Result<(), String> {
        let mut body = vec![0, 1];
        string(&mut body, topic.as_bytes());
        body.push(0);
        self.send(&packet(0x82, &body))?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let (kind, body) = self.read_packet(deadline)?;
            if kind >> 4 == 9 {
                return match body.get(2) {
                    Some(0) => Ok(()),
                    _ => Err(format!("subscription to {topic} refused")),
                };
            }
        }
    }

    /// Publishes `{"commands":[command + correlationData]}` to `topic` and returns the
    /// response entry with that correlation, or its error.
    fn request(&mut self, topic: &str, command: &str) -> Result<json::Value, String> {
        let tag = format!("perf-{}-{}", std::process::id(), next());
        let command = match command.strip_suffix('}') {
            Some(open) => format!("{open},\"correlationData\":\"{tag}\"}}"),
            None => return Err(format!("not a JSON object: {command}")),
        };
        let payload = format!("{{\"commands\":[{command}]}}");
        let mut body = Vec::new();
        string(&mut body, topic.as_bytes());
        body.extend_from_slice(payload.as_bytes());
        self.send(&packet(0x30, &body))?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let (kind, body) = self.read_packet(deadline)?;
            if kind >> 4 != 3 || body.len() < 2 {
                continue;
            }
            let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let skip = 2 + topic_len + if kind & 0x06 != 0 { 2 } else { 0 };
            let Some(payload) = body.get(skip..) else {
                continue;
            };
            let text = String::from_utf8_lossy(payload);
            if !text.contains(&tag) {
                continue;
            }
            let value = json::parse(&text)?;
            let Some(json::Value::Array(entries)) = value.get("responses") else {
                return Err(format!("response without responses: {text}"));
            };
            let Some(entry) = entries.first() else {
                return Err(format!("empty response: {text}"));
            };
            if let Some(error) = entry.get("error") {
                return Err(format!("{command} failed: {error:?}"));
            }
            return Ok(entry.clone());
        }
    }

    /// The next whole packet: (first byte, body).
    fn read_packet(&mut self, deadline: Instant) -> Result<(u8, Vec<u8>), String> {
        loop {
            if let Some((kind, start, len)) = parse_header(&self.buffer) {
                if self.buffer.len() >= start + len {
                    let body = self.buffer[start..start + len].to_vec();
                    self.buffer.drain(..start + len);
                    return Ok((kind, body));
                }
            }
            if Instant::now() > deadline {
                return Err("no answer from the admin listener in time".to_string());
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the admin listener closed the connection".to_string()),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(format!("admin session: {e}")),
            }
        }
    }
}

/// (first byte, body offset, body length) once the fixed header is complete.
fn parse_header(buffer: &[u8]) -> Option<(u8, usize, usize)> {
    let kind = *buffer.first()?;
    let mut len = 0usize;
    for k in 0..4 {
        let byte = *buffer.get(1 + k)?;
        len |= usize::from(byte & 0x7F) << (7 * k);
        if byte & 0x80 == 0 {
            return Some((kind, 2 + k, len));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_lengths_round_trip() {
        for len in [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
            let mut out = vec![0x30];
            remaining_length(&mut out, len);
            assert_eq!(parse_header(&out), Some((0x30, out.len(), len)));
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(
            percentiles(&mut samples),
            "p50 50.0 ms, p99 99.0 ms, max 100.0 ms"
        );
    }
}
