//! Runs one workload: starts the harness threads (one monoio runtime each), walks the
//! run through its phases, and turns what the clients report into a [`RunResult`].
//!
//! Owns the phase clock and the cross-thread counters. Each harness thread runs its share
//! of the plan's clients as tasks (`roles.rs`); the main thread only watches atomics,
//! reads CPU and memory figures, and moves the phase forward:
//!
//! ```text
//!   Connect ─(all ready)─► Warmup ─(warmup)─► Measure ─(duration)─► Stop
//!      ─(publishers drained, deliveries quiet)─► Close ─► threads joined ─► verdict
//!   conns:    Connect ─(all connected, RSS read)─► Close
//!   handshakes: Connect ─(every connection opened and closed; CPU over it)─► Close
//!   retained: Connect (retained stored) ─► Measure (subscribe) ─(all received)─► Close
//! ```

use crate::procstat;
use crate::report::{Latency, RunResult};
use crate::roles::{self, Outcome};
use crate::scenario::{ClientSpec, Plan, Scenario, Workload};
use crate::tls;
use crate::tracker::{count_missing, BitSet};
use hdrhistogram::Histogram;
use shards::mqtt::QoS;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the run is; tasks read it, only the main thread writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Clients connect and subscribe.
    Connect = 0,
    /// Publishers publish; nothing is recorded.
    Warmup = 1,
    /// Publishers publish; latencies are recorded, counters are read at both ends.
    Measure = 2,
    /// Publishers stop and wait for their outstanding acknowledgements.
    Stop = 3,
    /// Every task disconnects and returns what it saw.
    Close = 4,
}

/// Counters of one harness thread, written by its tasks, read by the main thread.
#[derive(Default)]
#[repr(align(128))]
pub struct Counters {
    /// Clients connected (and subscribed, or retained messages stored).
    pub ready: AtomicU64,
    /// PUBLISH packets written by publishers.
    pub sent: AtomicU64,
    /// PUBLISH packets received by subscribers.
    pub received: AtomicU64,
    /// MQTT bytes subscribers received (every packet, after TLS).
    pub received_bytes: AtomicU64,
    /// Publishers done after Stop; retained subscribers that have every message.
    pub finished: AtomicU64,
    /// Clients that failed.
    pub failed: AtomicU64,
}

/// State every thread shares.
pub struct Shared {
    phase: AtomicU8,
    /// Time zero of the run; payload timestamps count from here.
    pub epoch: Instant,
    /// One block of counters per thread.
    pub counters: Vec<Counters>,
}

impl Shared {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Connect,
            1 => Phase::Warmup,
            2 => Phase::Measure,
            3 => Phase::Stop,
            _ => Phase::Close,
        }
    }

    fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    fn sum(&self, field: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.counters
            .iter()
            .map(|c| field(c).load(Ordering::Relaxed))
            .sum()
    }
}

/// What one harness thread hands back.
pub struct ThreadOutcome {
    /// Publish-to-receive latencies in nanoseconds, recorded during Measure.
    pub latency: Histogram<u64>,
    /// Per client: what it saw, or why it failed.
    pub clients: Vec<Result<Outcome, String>>,
}

/// A latency histogram: 1 ns to 100 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// Runs `workload` against its broker and returns the measured result.
pub fn run(workload: &Workload) -> RunResult {
    let prefix = format!(
        "perf/{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() % 1_000_000_000)
    );
    let threads = workload.threads.max(1);
    let plan = Plan::build(
        workload.scenario,
        workload.clients,
        workload.topics,
        threads,
        &padded(&prefix, workload.topic_len),
    );
    let shared = Arc::new(Shared {
        phase: AtomicU8::new(Phase::Connect as u8),
        epoch: Instant::now(),
        counters: (0..threads).map(|_| Counters::default()).collect(),
    });
    let mut result = RunResult::new(workload, &plan);
    let tls = match &workload.tls {
        Some(options) => match tls::client_config(options, workload.broker.ip()) {
            Ok(tls) => Some(tls),
            Err(error) => {
                result.invalid.push(error);
                return result;
            }
        },
        None => None,
    };
    let rss_before = workload.broker_pid.and_then(procstat::process_rss_kib);
    let connect_clock = Clock::read(&shared, workload.broker_pid);
    let workload_arc = Arc::new(workload.clone());
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let specs: Vec<ClientSpec> = plan
                .clients
                .iter()
                .filter(|c| c.thread == thread)
                .cloned()
                .collect();
            let shared = shared.clone();
            let workload = workload_arc.clone();
            let publishers = plan.publishers;
            let id_prefix = format!("{}-{thread}", prefix.replace('/', "-"));
            let tls = tls.clone();
            std::thread::Builder::new()
                .name(format!("perf-{thread}"))
                .spawn(move || {
                    roles::thread_main(shared, thread, specs, workload, publishers, id_prefix, tls)
                })
        })
        .collect();
    let connect_started = Instant::now();
    let connected = wait_until(&shared, connect_deadline(workload, &plan), |s| {
        s.sum(|c| &c.ready) as usize == plan.clients.len()
    });
    let connect_s = connect_started.elapsed().as_secs_f64();
    if !connected {
        result.invalid.push(format!(
            "only {} of {} clients connected within {:.0} s",
            shared.sum(|c| &c.ready),
            plan.clients.len(),
            connect_deadline(workload, &plan).as_secs_f64()
        ));
    }
    if connected {
        match workload.scenario {
            Scenario::Conns => measure_conns(workload, &shared, &mut result, rss_before, connect_s),
            Scenario::Handshakes => {
                let end = Clock::read(&shared, workload.broker_pid);
                measure_handshakes(workload, &connect_clock, &end, &mut result);
            }
            Scenario::Retained => measure_retained(workload, &shared, &plan, &mut result),
            _ => measure_flow(workload, &shared, &plan, &mut result),
        }
    }
    shared.set_phase(Phase::Close);
    let mut outcomes = Vec::new();
    for handle in handles {
        match handle.map(|h| h.join()) {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(_)) => result.invalid.push("a harness thread panicked".to_string()),
            Err(error) => result
                .invalid
                .push(format!("cannot start a thread: {error}")),
        }
    }
    judge(workload, &plan, outcomes, &mut result);
    result
}

/// `prefix` with a level of `x` after it, so that the topics the plans build on it
/// (`<prefix>/in/<n>` and the like, up to 8 more bytes) are about `topic_len` bytes.
fn padded(prefix: &str, topic_len: usize) -> String {
    let pad = topic_len.saturating_sub(prefix.len() + 1 + 8);
    if pad == 0 {
        return prefix.to_string();
    }
    format!("{prefix}/{}", "x".repeat(pad))
}

/// How long the clients of `plan` may take to connect.
fn connect_deadline(workload: &Workload, plan: &Plan) -> Duration {
    let by_rate = workload
        .connect_rate
        .map_or(0.0, |rate| plan.clients.len() as f64 / rate.max(1.0));
    workload.settle_timeout + Duration::from_secs_f64(by_rate + plan.clients.len() as f64 / 500.0)
}

/// Polls `done` every 2 ms until it holds (true) or `limit` passes (false), or a client
/// fails (false).
fn wait_until(shared: &Shared, limit: Duration, done: impl Fn(&Shared) -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done(shared) {
            return true;
        }
        if shared.sum(|c| &c.failed) > 0 || Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// CPU of the harness and of the broker at one instant.
struct Clock {
    at: Instant,
    harness: Duration,
    broker: Option<Duration>,
    sent: u64,
    received: u64,
    received_bytes: u64,
}

impl Clock {
    fn read(shared: &Shared, pid: Option<u32>) -> Clock {
        Clock {
            at: Instant::now(),
            harness: procstat::self_cpu(),
            broker: pid.and_then(procstat::process_cpu),
            sent: shared.sum(|c| &c.sent),
            received: shared.sum(|c| &c.received),
            received_bytes: shared.sum(|c| &c.received_bytes),
        }
    }
}

/// Throughput scenarios: warm up, measure, stop, wait for the last deliveries.
fn measure_flow(workload: &Workload, shared: &Shared, plan: &Plan, result: &mut RunResult) {
    shared.set_phase(Phase::Warmup);
    std::thread::sleep(workload.warmup);
    let start = Clock::read(shared, workload.broker_pid);
    shared.set_phase(Phase::Measure);
    std::thread::sleep(workload.duration);
    let end = Clock::read(shared, workload.broker_pid);
    shared.set_phase(Phase::Stop);
    let window = end.at.duration_since(start.at).as_secs_f64();
    result.measured_s = window;
    result.sent = end.sent - start.sent;
    result.received = end.received - start.received;
    result.received_bytes = end.received_bytes - start.received_bytes;
    result.sent_per_s = result.sent as f64 / window;
    result.received_per_s = result.received as f64 / window;
    result.harness_cpu_s = Some((end.harness - start.harness).as_secs_f64());
    if let (Some(a), Some(b)) = (start.broker, end.broker) {
        result.broker_cpu_s = Some((b - a).as_secs_f64());
    }
    let drained = wait_until(shared, workload.settle_timeout, |s| {
        s.sum(|c| &c.finished) as usize >= plan.publishers
    });
    if !drained && shared.sum(|c| &c.failed) == 0 {
        result.invalid.push(format!(
            "{} of {} publishers were still blocked {:.0} s after stop (the broker stopped \
             reading them, or never acknowledged)",
            plan.publishers as u64 - shared.sum(|c| &c.finished).min(plan.publishers as u64),
            plan.publishers,
            workload.settle_timeout.as_secs_f64()
        ));
    }
    wait_quiet(shared, workload.settle_timeout);
}

/// Waits until subscribers have received nothing new for 500 ms (bounded by `limit`).
fn wait_quiet(shared: &Shared, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = shared.sum(|c| &c.received);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = shared.sum(|c| &c.received);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_millis(500) {
            return;
        }
    }
}

/// conns: everything is connected; read the broker's memory after a short hold.
fn measure_conns(
    workload: &Workload,
    shared: &Shared,
    result: &mut RunResult,
    rss_before: Option<u64>,
    connect_s: f64,
) {
    let connections = workload.clients as f64;
    result.connect_s = Some(connect_s);
    result.connects_per_s = Some(connections / connect_s.max(1e-9));
    let start = Clock::read(shared, workload.broker_pid);
    std::thread::sleep(workload.duration.min(Duration::from_secs(5)));
    let end = Clock::read(shared, workload.broker_pid);
    result.measured_s = end.at.duration_since(start.at).as_secs_f64();
    result.harness_cpu_s = Some((end.harness - start.harness).as_secs_f64());
    if let (Some(a), Some(b)) = (start.broker, end.broker) {
        result.broker_cpu_s = Some((b - a).as_secs_f64());
    }
    let rss_after = workload.broker_pid.and_then(procstat::process_rss_kib);
    result.rss_before_kib = rss_before;
    result.rss_after_kib = rss_after;
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        result.bytes_per_connection = Some((after as f64 - before as f64) * 1024.0 / connections);
    }
}

/// handshakes: every connection was opened and closed again; the rate and the CPU are
/// over that whole phase.
fn measure_handshakes(workload: &Workload, start: &Clock, end: &Clock, result: &mut RunResult) {
    let window = end.at.duration_since(start.at).as_secs_f64();
    result.measured_s = window;
    result.connect_s = Some(window);
    result.connects_per_s = Some(workload.clients as f64 / window.max(1e-9));
    result.harness_cpu_s = Some((end.harness - start.harness).as_secs_f64());
    if let (Some(a), Some(b)) = (start.broker, end.broker) {
        result.broker_cpu_s = Some((b - a).as_secs_f64());
    }
}

/// retained: the retained messages are stored; subscribers subscribe now and report when
/// each has all of them.
fn measure_retained(workload: &Workload, shared: &Shared, plan: &Plan, result: &mut RunResult) {
    let start = Clock::read(shared, workload.broker_pid);
    shared.set_phase(Phase::Measure);
    let subscribers = plan.subscribers();
    // The retained publisher counted itself finished before this phase began.
    let all = wait_until(shared, workload.settle_timeout, |s| {
        s.sum(|c| &c.finished) as usize >= subscribers + plan.publishers
    });
    let end = Clock::read(shared, workload.broker_pid);
    let window = end.at.duration_since(start.at).as_secs_f64();
    result.measured_s = window;
    result.received = end.received - start.received;
    result.received_per_s = result.received as f64 / window;
    result.harness_cpu_s = Some((end.harness - start.harness).as_secs_f64());
    if let (Some(a), Some(b)) = (start.broker, end.broker) {
        result.broker_cpu_s = Some((b - a).as_secs_f64());
    }
    if !all {
        result.invalid.push(format!(
            "only {} of {subscribers} subscribers received every retained message within {:.0} s",
            (shared.sum(|c| &c.finished) as usize).saturating_sub(plan.publishers),
            workload.settle_timeout.as_secs_f64()
        ));
    }
    shared.set_phase(Phase::Stop);
}

/// Merges the threads' outcomes: latency, loss, duplicates, errors, and the verdict.
fn judge(workload: &Workload, plan: &Plan, outcomes: Vec<ThreadOutcome>, result: &mut RunResult) {
    let mut latency = new_histogram();
    let mut confirmed = vec![BitSet::default(); plan.publishers.max(1)];
    let mut receivers = Vec::new();
    let mut retained_times = Vec::new();
    let mut errors = Vec::new();
    for thread in outcomes {
        let _ = latency.add(&thread.latency);
        for client in thread.clients {
            match client {
                Ok(Outcome::Publisher(p)) => {
                    if let Some(error) = &p.error {
                        errors.push(format!("publisher {}: {error}", p.id));
                    }
                    result.sent_total += p.sent;
                    result.unacked += p.unacked;
                    result.rejected += p.rejected;
                    result.confirmed_total += p.confirmed.len();
                    if let Some(slot) = confirmed.get_mut(p.id as usize) {
                        *slot = p.confirmed;
                    }
                }
                Ok(Outcome::Subscriber { received, elapsed }) => {
                    if let Some(elapsed) = elapsed {
                        retained_times.push(elapsed);
                    }
                    receivers.push(received);
                }
                Ok(Outcome::Idle) => {}
                Err(error) => errors.push(error),
            }
        }
    }
    for received in &receivers {
        result.received_total += received.total;
        result.duplicates += received.duplicates;
        result.foreign += received.foreign;
        result.missing += count_missing(received, &confirmed);
    }
    if !latency.is_empty() {
        result.latency = Some(Latency::from_histogram(&latency));
    }
    if workload.scenario == Scenario::Retained {
        retained_times.sort();
        if let Some(max) = retained_times.last() {
            result.retained_s = Some(max.as_secs_f64());
            let total = (workload.topics * plan.subscribers()) as f64;
            result.received_per_s = total / max.as_secs_f64().max(1e-9);
        }
        // Missing retained messages were counted by the subscribers themselves.
        result.missing = receivers
            .iter()
            .map(|r| (workload.topics as u64).saturating_sub(r.distinct()))
            .sum();
    }
    result.error_count = errors.len();
    errors.truncate(5);
    if !errors.is_empty() {
        result
            .invalid
            .push(format!("{} clients failed", result.error_count));
    }
    result.errors = errors;
    verdict(workload, plan, result);
}

fn verdict(workload: &Workload, plan: &Plan, result: &mut RunResult) {
    let qos = workload.qos;
    if result.missing > 0 && (qos != QoS::AtMostOnce || workload.scenario == Scenario::Retained) {
        result.invalid.push(format!(
            "{} acknowledged messages were never delivered at QoS {}",
            result.missing, qos as u8
        ));
    }
    if result.duplicates > 0 && qos == QoS::ExactlyOnce {
        result
            .invalid
            .push(format!("{} duplicates at QoS 2", result.duplicates));
    }
    if result.foreign > 0 {
        result.invalid.push(format!(
            "{} messages reached a subscriber that did not subscribe to them",
            result.foreign
        ));
    }
    if result.unacked > 0 {
        result.invalid.push(format!(
            "{} publishes were never acknowledged",
            result.unacked
        ));
    }
    let flows = !matches!(
        workload.scenario,
        Scenario::Conns | Scenario::Retained | Scenario::Handshakes
    );
    if flows && plan.subscribers() > 0 && result.received == 0 && result.invalid.is_empty() {
        result
            .invalid
            .push("no message was delivered in the measured window".to_string());
    }
}
