//! The command line: subcommands, options and their parsing into [`Command`].
//!
//! Owns the grammar and its error messages (pure; unit-tested here). `main` dispatches the
//! parsed command to `engine` (run), `compare` or `smoke`.

use crate::certs::KeyType;
use crate::dynsec::DynsecShape;
use crate::scenario::{Credentials, Scenario, Workload};
use crate::tls::{TlsOptions, TlsVersion};
use shards::mqtt::{Protocol, QoS};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What to do.
#[derive(Debug)]
pub enum Command {
    /// One scenario against a running broker.
    Run(RunArgs),
    /// Start each broker fresh per repeat and compare.
    Compare(CompareArgs),
    /// Every scenario briefly against a fresh broker; correctness only.
    Smoke(SmokeArgs),
    /// Draw the SVG of summary lines from earlier `compare` runs.
    Plot(PlotArgs),
    /// Write a generated `dynamic-security.json` (for `run` against a broker set up by hand).
    DynsecFile(DynsecFileArgs),
    /// The cluster scenarios (three Culex nodes on this machine).
    Cluster(crate::cluster::ClusterArgs),
    /// Print usage.
    Help,
}

/// Options that shape a workload; `None` keeps the scenario's default.
#[derive(Clone, Debug, Default)]
pub struct WorkloadArgs {
    /// --protocol
    pub protocol: Option<Protocol>,
    /// --qos
    pub qos: Option<QoS>,
    /// --clients
    pub clients: Option<usize>,
    /// --payload
    pub payload: Option<usize>,
    /// --sizes
    pub sizes: Option<Vec<usize>>,
    /// --duration
    pub duration: Option<Duration>,
    /// --warmup
    pub warmup: Option<Duration>,
    /// --window
    pub window: Option<usize>,
    /// --rate (0 = unlimited)
    pub rate: Option<f64>,
    /// --threads
    pub threads: Option<usize>,
    /// --batch
    pub batch: Option<usize>,
    /// --topics
    pub topics: Option<usize>,
    /// --topic-len
    pub topic_len: Option<usize>,
    /// --topic-alias-max
    pub topic_alias_max: Option<u16>,
    /// --connect-rate
    pub connect_rate: Option<f64>,
    /// --connect-concurrency
    pub connect_concurrency: Option<usize>,
    /// --source-addrs
    pub source_addrs: Option<u8>,
    /// --settle-timeout
    pub settle_timeout: Option<Duration>,
    /// --tls
    pub tls: bool,
    /// --persistent
    pub persistent: bool,
    /// --cafile, --cert, --key, --tls-server-name, --tls-version, --tls-resume
    pub tls_options: TlsOptions,
    /// --username/--password, or --dynsec-clients (run).
    pub credentials: Option<Credentials>,
    /// --username (checked with --password by [`WorkloadArgs::finish`]).
    pub username: Option<String>,
    /// --password.
    pub password: Option<String>,
}

impl WorkloadArgs {
    /// The workload for `scenario` against `broker` with these options applied.
    pub fn workload(&self, scenario: Scenario, broker: SocketAddr) -> Workload {
        let mut w = Workload::new(scenario, broker);
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field.clone() { w.$field = v; } )* };
        }
        set!(protocol, qos, clients, payload, sizes, duration, warmup, window, threads, batch);
        set!(topics, connect_concurrency, source_addrs, settle_timeout);
        set!(topic_len, topic_alias_max);
        if let Some(rate) = self.rate {
            w.rate = (rate > 0.0).then_some(rate);
        }
        if let Some(rate) = self.connect_rate {
            w.connect_rate = (rate > 0.0).then_some(rate);
        }
        if self.tls {
            w.tls = Some(self.tls_options.clone());
        }
        w.persistent = self.persistent;
        if let Some(credentials) = &self.credentials {
            w.credentials = credentials.clone();
        }
        w.threads = w.threads.max(1);
        w.batch = w.batch.max(1);
        w
    }

    /// Checks the options that go together once all are read; `tls_anywhere` says whether
    /// some connection will use TLS.
    fn finish(&mut self, tls_anywhere: bool) -> Result<(), String> {
        if self.topic_alias_max.is_some_and(|max| max > 0) && self.protocol != Some(Protocol::V5) {
            return Err("--topic-alias-max needs --protocol 5".to_string());
        }
        match (self.username.take(), self.password.take()) {
            (Some(username), Some(password)) => {
                if self.credentials.is_some() {
                    return Err(
                        "--username/--password and --dynsec-clients exclude each other".into(),
                    );
                }
                self.credentials = Some(Credentials::Fixed { username, password });
            }
            (None, None) => {}
            _ => return Err("--username and --password go together".to_string()),
        }
        let o = &self.tls_options;
        let tls_only = o.cafile.is_some()
            || o.cert.is_some()
            || o.key.is_some()
            || o.server_name.is_some()
            || o.version.is_some()
            || o.resume;
        if tls_only && !tls_anywhere {
            return Err(
                "--cafile, --cert, --key, --tls-server-name, --tls-version and \
                        --tls-resume need --tls"
                    .to_string(),
            );
        }
        if o.cert.is_some() != o.key.is_some() {
            return Err("--cert and --key go together".to_string());
        }
        Ok(())
    }
}

/// Where results go.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// --json FILE: JSON lines appended there (stdout otherwise).
    pub json: Option<PathBuf>,
    /// --svg FILE.
    pub svg: Option<PathBuf>,
}

/// `run`.
#[derive(Debug)]
pub struct RunArgs {
    /// Scenarios, run in order.
    pub scenarios: Vec<Scenario>,
    /// --host
    pub broker: SocketAddr,
    /// --broker-pid
    pub broker_pid: Option<u32>,
    /// --broker-name
    pub broker_name: String,
    /// Workload options.
    pub workload: WorkloadArgs,
    /// Outputs.
    pub output: Output,
}

/// One `--broker name=path`, with what `--broker-opts`/`--broker-conf` say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerSpec {
    /// Name in reports.
    pub name: String,
    /// Executable, started as `path -c <config>`.
    pub path: PathBuf,
    /// `--broker-opts NAME=tls|tcp`: overrides `--tls` for this broker.
    pub tls: Option<bool>,
    /// `--broker-opts NAME=dynsec|anonymous`: overrides `--dynsec` for this broker.
    pub dynsec: Option<bool>,
    /// `--broker-conf NAME=LINE`: config lines for this broker only (after --conf-line).
    pub conf_lines: Vec<String>,
}

impl BrokerSpec {
    /// Whether this broker gets a TLS listener, given the global `--tls`.
    pub fn uses_tls(&self, global: bool) -> bool {
        self.tls.unwrap_or(global)
    }

    /// Whether this broker enforces dynamic security, given the global `--dynsec`.
    pub fn uses_dynsec(&self, global: bool) -> bool {
        self.dynsec.unwrap_or(global)
    }
}

/// `compare`.
#[derive(Debug)]
pub struct CompareArgs {
    /// Scenarios, each compared in turn.
    pub scenarios: Vec<Scenario>,
    /// --repeats
    pub repeats: usize,
    /// --broker (two or more).
    pub brokers: Vec<BrokerSpec>,
    /// --baseline: the broker ratios are taken against.
    pub baseline: Option<String>,
    /// --culex-threads
    pub culex_threads: Option<usize>,
    /// --max-queued: `max_queued_messages` written into every broker's config.
    pub max_queued: u64,
    /// --max-queued-bytes: `max_queued_bytes` written into every broker's config.
    pub max_queued_bytes: u64,
    /// --max-inflight: `max_inflight_messages`; default: the window.
    pub max_inflight: Option<u64>,
    /// --conf-line: extra lines for every broker's config.
    pub conf_lines: Vec<String>,
    /// --dynsec: every broker (unless `--broker-opts NAME=anonymous`) loads the dynamic
    /// security plugin with a generated file.
    pub dynsec: bool,
    /// --dynsec-clients, --dynsec-roles, --dynsec-acls-per-role.
    pub dynsec_shape: DynsecShape,
    /// --dynsec-plugin: the `plugin` line's path.
    pub dynsec_plugin: PathBuf,
    /// --tls-key-type: key type of the generated certificates.
    pub tls_key_type: KeyType,
    /// Workload options.
    pub workload: WorkloadArgs,
    /// Outputs.
    pub output: Output,
}

impl CompareArgs {
    /// True when some broker uses dynamic security.
    pub fn any_dynsec(&self) -> bool {
        self.brokers.iter().any(|b| b.uses_dynsec(self.dynsec))
    }

    /// True when some broker uses TLS.
    pub fn any_tls(&self) -> bool {
        self.brokers.iter().any(|b| b.uses_tls(self.workload.tls))
    }
}

/// `dynsec-file`.
#[derive(Debug)]
pub struct DynsecFileArgs {
    /// The shape.
    pub shape: DynsecShape,
    /// --out FILE.
    pub out: PathBuf,
}

/// `smoke`.
#[derive(Debug)]
pub struct SmokeArgs {
    /// --broker-bin
    pub broker_bin: PathBuf,
    /// --threads
    pub threads: Option<usize>,
}

/// `plot`.
#[derive(Debug)]
pub struct PlotArgs {
    /// JSON-lines files written by `compare --json`.
    pub inputs: Vec<PathBuf>,
    /// --svg FILE.
    pub svg: PathBuf,
}

/// The usage text.
pub fn usage() -> &'static str {
    "culex-perf: load-test harness for MQTT brokers (Culex, Mosquitto, ...)

USAGE:
  culex-perf run --scenario S[,S...] [--host 127.0.0.1:1883] [--broker-pid PID]
                 [--broker-name NAME] [workload options] [--json FILE] [--svg FILE]
  culex-perf compare --scenario S[,S...] --broker NAME=PATH --broker NAME=PATH [...]
                 [--repeats 3] [--baseline NAME] [--culex-threads N] [--max-queued N]
                 [--max-queued-bytes BYTES] [--max-inflight N] [--conf-line 'option value' ...]
                 [workload options] [--json FILE] [--svg FILE]
                 [--tls] [--tls-key-type ec|rsa] [--dynsec] [--dynsec-clients N]
                 [--dynsec-roles R] [--dynsec-acls-per-role A] [--dynsec-plugin PATH]
                 [--broker-opts NAME=tls|tcp|dynsec|anonymous[,...]] [--broker-conf NAME='line']
  culex-perf smoke --broker-bin PATH [--threads N]
  culex-perf dynsec-file --out FILE [--dynsec-clients 1000] [--dynsec-roles 100]
                 [--dynsec-acls-per-role 10]   (then: run --dynsec-clients N)
  culex-perf plot --svg FILE RESULTS.jsonl [...]   (one chart from earlier compare runs)
  culex-perf cluster [--culex target/release/culex] [--scenario dynsec,failover[,pairs]]
                 [--changes 200] [--kills 20]   (three Culex nodes on 127.0.0.1-3, Full Sync:
                 dynsec change commit latency via leader and follower, leader SIGKILL to the
                 next leader's client listener accepting; pairs: QoS 0 and QoS 1 persistent
                 pairs through the leader)

SCENARIOS:
  pairs     N publisher/subscriber pairs, one topic each (--clients = pairs)
  fanin     N publishers -> 1 wildcard subscriber (--clients = publishers)
  fanout    1 publisher -> N subscribers of one topic (--clients = subscribers)
  qos1      pairs at QoS 1 with --window unacknowledged publishes per publisher
  qos2      pairs at QoS 2 with --window unacknowledged publishes per publisher
  latency   pairs at a fixed total --rate (default 10000 msg/s); latency percentiles
  conns     M idle connections (--clients = M): connects/s, broker bytes per connection
  retained  --topics K retained messages, then N wildcard subscribers: time to get all
  payload   pairs once per size of --sizes (default 16,256,4096,65536,262144)
  handshakes  M connections (--clients = M, default 2000) each opened (TLS handshake with
            --tls, CONNECT/CONNACK) and closed, --connect-concurrency per thread:
            handshakes/s (alias: tls-handshakes)

WORKLOAD OPTIONS:
  --protocol 3.1.1|5     MQTT version (default 3.1.1)
  --qos 0|1|2            QoS (default: 0; qos1/retained 1; qos2 2)
  --clients N            see SCENARIOS
  --payload BYTES        payload size, >= 16 (default 64; accepts 4KiB, 256k)
  --sizes A,B,...        payload sizes of the payload scenario
  --duration SECS        measured window (default 10; accepts 500ms, 2s)
  --warmup SECS          load before the window (default 2)
  --window N             unacknowledged QoS 1/2 publishes per publisher (default 32)
  --rate MSGS            total publish rate, messages/s (0 = as fast as possible),
                         shared evenly by the publishers, their sends interleaved
  --threads N            harness threads, one monoio runtime each (default: cores)
  --batch N              most PUBLISH packets per write (default 64; a write also
                         stops once it holds 64 KiB)
  --topics K             retained topics (default 10000)
  --topic-len BYTES      pad every topic to about BYTES bytes (default: no padding)
  --topic-alias-max N    subscribers announce Topic Alias Maximum N (needs --protocol 5)
                         and resolve the broker's topic aliases (default 0: none)
  --connect-rate N       connection attempts per second, total (default: unlimited)
  --connect-concurrency N  handshakes in flight per thread (default 64)
  --source-addrs N       bind clients to 127.0.0.1..N (default 8; 1 = let the kernel pick)
  --settle-timeout SECS  longest wait for connects, acks and final deliveries (default 30)
  --persistent           every client keeps a session (3.1.1 clean session false, 5.0
                         session expiry 3600): the broker keeps their state durable
  --tls                  connect with TLS (rustls, ring); run needs --cafile
  --cafile PATH          CA certificates (PEM) that signed the broker's certificate
  --cert PATH --key PATH client certificate and key (PEM)
  --tls-server-name NAME name checked in the broker's certificate (default: its IP)
  --tls-version 1.2|1.3  only that TLS version (default: 1.3, else 1.2)
  --tls-resume           resume TLS sessions on reconnect (default: full handshakes)
  --username U --password P  every client logs in with these
  --dynsec-clients N     (run) client i logs in as perf-user-(i mod N) / perf-pass-(i mod N),
                         the clients of a file from `dynsec-file`

COMPARE writes each broker a config: `listener PORT 127.0.0.1`, `allow_anonymous true`,
`max_queued_messages` (--max-queued, default 100000), `max_queued_bytes` (--max-queued-bytes,
default 32MiB), `max_inflight_messages` (--max-inflight, default = --window), `threads N` for
Culex (--culex-threads), then every --conf-line, then that broker's --broker-conf lines.
Brokers run fresh per repeat, in alternating order; the summary gives medians per broker and
the median of per-repeat ratios. The same binary may be given twice under two names, with
different --broker-opts/--broker-conf, to compare two configurations of one broker.
  --tls             every broker gets a TLS listener (certfile/keyfile of a throwaway CA and
                    server certificate made with the openssl CLI in a temporary directory,
                    --tls-key-type ec (default, P-256) or rsa (2048)); clients use TLS
  --dynsec          every broker loads --dynsec-plugin (default
                    /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so) with a generated
                    dynamic-security.json of --dynsec-clients (1000) clients, --dynsec-roles
                    (100) roles of --dynsec-acls-per-role (10) ACLs, allow_anonymous false;
                    clients log in as those clients
  --broker-opts NAME=LIST  per broker: tls or tcp, dynsec or anonymous (overrides the above)
  --broker-conf NAME=LINE  a config line for that broker only

OUTPUT: a table on stderr, one JSON line per run on stdout (or appended to --json FILE),
an SVG chart with --svg FILE. Exit code 1 when a run is invalid (loss at QoS >= 1,
duplicates at QoS 2, misrouted messages, failed clients, a broker that died).
"
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut args = args.into_iter();
    let Some(sub) = args.next() else {
        return Ok(Command::Help);
    };
    let rest: Vec<String> = args.collect();
    match sub.as_str() {
        "run" => parse_run(&rest).map(Command::Run),
        "compare" => parse_compare(&rest).map(Command::Compare),
        "smoke" => parse_smoke(&rest).map(Command::Smoke),
        "plot" => parse_plot(&rest).map(Command::Plot),
        "dynsec-file" => parse_dynsec_file(&rest).map(Command::DynsecFile),
        "cluster" => parse_cluster(&rest).map(Command::Cluster),
        "help" | "--help" | "-h" => Ok(Command::Help),
        other => Err(format!(
            "unknown subcommand {other:?} (run, compare, smoke, plot, dynsec-file, cluster, help)"
        )),
    }
}

/// `cluster [--culex PATH] [--scenario dynsec,failover] [--changes N] [--kills K]`.
fn parse_cluster(rest: &[String]) -> Result<crate::cluster::ClusterArgs, String> {
    let mut args = crate::cluster::ClusterArgs::default();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let count = |what: &str| -> Result<usize, String> {
            match value.parse::<usize>() {
                Ok(n) if (1..=10_000).contains(&n) => Ok(n),
                _ => Err(format!("{what} must be 1..=10000, not {value:?}")),
            }
        };
        match flag.as_str() {
            "--culex" => args.culex = value.into(),
            "--changes" => args.changes = count("--changes")?,
            "--kills" => args.kills = count("--kills")?,
            "--scenario" => {
                args.dynsec = false;
                args.failover = false;
                for name in value.split(',') {
                    match name {
                        "dynsec" => args.dynsec = true,
                        "failover" => args.failover = true,
                        "pairs" => args.pairs = true,
                        other => {
                            return Err(format!(
                                "unknown cluster scenario {other:?} (dynsec, failover, pairs)"
                            ))
                        }
                    }
                }
            }
            other => return Err(format!("unknown cluster option {other}")),
        }
    }
    Ok(args)
}

/// Flags that take no value (`on` sees them with the value "true").
const SWITCHES: [&str; 4] = ["--tls", "--tls-resume", "--dynsec", "--persistent"];

/// Walks `--flag value` pairs (and the value-less [`SWITCHES`]), handing each to `on`,
/// which returns false for flags it does not know.
fn each_flag(
    args: &[String],
    mut on: impl FnMut(&str, &str) -> Result<bool, String>,
) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let flag = &args[i];
        let (name, value) = match flag.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, value.to_string()),
            _ if SWITCHES.contains(&flag.as_str()) => (flag.as_str(), "true".to_string()),
            _ => {
                let Some(value) = args.get(i + 1) else {
                    return Err(format!("{flag} needs a value"));
                };
                i += 1;
                (flag.as_str(), value.clone())
            }
        };
        i += 1;
        if !on(name, &value)? {
            return Err(format!("unknown option {name}"));
        }
    }
    Ok(())
}

/// Handles a workload option; false when `name` is not one.
fn workload_flag(w: &mut WorkloadArgs, name: &str, value: &str) -> Result<bool, String> {
    match name {
        "--protocol" => w.protocol = Some(parse_protocol(value)?),
        "--qos" => {
            w.qos = Some(
                value
                    .parse::<u8>()
                    .ok()
                    .and_then(QoS::from_u8)
                    .ok_or_else(|| format!("--qos must be 0, 1 or 2, not {value:?}"))?,
            );
        }
        "--clients" => w.clients = Some(positive(name, value)?),
        "--payload" => w.payload = Some(parse_size(value)?),
        "--sizes" => {
            let sizes: Result<Vec<usize>, String> = value.split(',').map(parse_size).collect();
            w.sizes = Some(sizes?);
        }
        "--duration" => w.duration = Some(parse_duration(value)?),
        "--warmup" => w.warmup = Some(parse_duration(value)?),
        "--window" => w.window = Some(positive(name, value)?.min(65535)),
        "--rate" => w.rate = Some(number(name, value)?),
        "--threads" => w.threads = Some(positive(name, value)?),
        "--batch" => w.batch = Some(positive(name, value)?),
        "--topics" => w.topics = Some(positive(name, value)?),
        "--topic-len" => w.topic_len = Some(number_usize(name, value)?),
        "--topic-alias-max" => {
            let max = number_usize(name, value)?;
            w.topic_alias_max =
                Some(u16::try_from(max).map_err(|_| format!("{name} must be at most 65535"))?);
        }
        "--connect-rate" => w.connect_rate = Some(number(name, value)?),
        "--connect-concurrency" => w.connect_concurrency = Some(positive(name, value)?),
        "--source-addrs" => {
            w.source_addrs = Some(positive(name, value)?.clamp(1, 254) as u8);
        }
        "--settle-timeout" => w.settle_timeout = Some(parse_duration(value)?),
        "--tls" => w.tls = switch(name, value)?,
        "--persistent" => w.persistent = switch(name, value)?,
        "--cafile" => w.tls_options.cafile = Some(PathBuf::from(value)),
        "--cert" => w.tls_options.cert = Some(PathBuf::from(value)),
        "--key" => w.tls_options.key = Some(PathBuf::from(value)),
        "--tls-server-name" => w.tls_options.server_name = Some(value.to_string()),
        "--tls-version" => {
            w.tls_options.version = Some(
                TlsVersion::parse(value)
                    .ok_or_else(|| format!("--tls-version must be 1.2 or 1.3, not {value:?}"))?,
            );
        }
        "--tls-resume" => w.tls_options.resume = switch(name, value)?,
        "--username" => w.username = Some(value.to_string()),
        "--password" => w.password = Some(value.to_string()),
        "--dynsec-clients" => {
            w.credentials = Some(Credentials::Dynsec {
                clients: positive(name, value)?,
            });
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn output_flag(o: &mut Output, name: &str, value: &str) -> bool {
    match name {
        "--json" => o.json = Some(PathBuf::from(value)),
        "--svg" => o.svg = Some(PathBuf::from(value)),
        _ => return false,
    }
    true
}

fn parse_run(args: &[String]) -> Result<RunArgs, String> {
    let mut scenarios = Vec::new();
    let mut broker: SocketAddr = ([127, 0, 0, 1], 1883).into();
    let mut broker_pid = None;
    let mut broker_name = "broker".to_string();
    let mut workload = WorkloadArgs::default();
    let mut output = Output::default();
    each_flag(args, |name, value| {
        match name {
            "--scenario" => scenarios.extend(parse_scenarios(value)?),
            "--host" => {
                broker = value
                    .parse()
                    .map_err(|_| format!("--host wants ADDRESS:PORT, not {value:?}"))?;
            }
            "--broker-pid" => broker_pid = Some(positive(name, value)? as u32),
            "--broker-name" => broker_name = value.to_string(),
            _ => {
                return Ok(workload_flag(&mut workload, name, value)?
                    || output_flag(&mut output, name, value))
            }
        }
        Ok(true)
    })?;
    if scenarios.is_empty() {
        return Err("run needs --scenario".to_string());
    }
    let tls = workload.tls;
    workload.finish(tls)?;
    Ok(RunArgs {
        scenarios,
        broker,
        broker_pid,
        broker_name,
        workload,
        output,
    })
}

fn parse_compare(args: &[String]) -> Result<CompareArgs, String> {
    let mut c = CompareArgs {
        scenarios: Vec::new(),
        repeats: 3,
        brokers: Vec::new(),
        baseline: None,
        culex_threads: None,
        max_queued: 100_000,
        max_queued_bytes: 32 << 20,
        max_inflight: None,
        conf_lines: Vec::new(),
        dynsec: false,
        dynsec_shape: DynsecShape::default(),
        dynsec_plugin: PathBuf::from("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"),
        tls_key_type: KeyType::default(),
        workload: WorkloadArgs::default(),
        output: Output::default(),
    };
    let mut broker_opts: Vec<(String, String)> = Vec::new();
    let mut broker_conf: Vec<(String, String)> = Vec::new();
    let mut shape_given = false;
    each_flag(args, |name, value| {
        match name {
            "--dynsec" => c.dynsec = switch(name, value)?,
            "--dynsec-clients" => {
                c.dynsec_shape.clients = positive(name, value)?;
                shape_given = true;
            }
            "--dynsec-roles" => {
                c.dynsec_shape.roles = positive(name, value)?;
                shape_given = true;
            }
            "--dynsec-acls-per-role" => {
                c.dynsec_shape.acls_per_role = positive(name, value)?;
                shape_given = true;
            }
            "--dynsec-plugin" => c.dynsec_plugin = PathBuf::from(value),
            "--tls-key-type" => {
                c.tls_key_type = KeyType::parse(value)
                    .ok_or_else(|| format!("--tls-key-type must be ec or rsa, not {value:?}"))?;
            }
            "--broker-opts" => broker_opts.push(named(name, value)?),
            "--broker-conf" => broker_conf.push(named(name, value)?),
            "--scenario" => c.scenarios.extend(parse_scenarios(value)?),
            "--repeats" => c.repeats = positive(name, value)?.min(100),
            "--broker" => c.brokers.push(parse_broker(value)?),
            "--baseline" => c.baseline = Some(value.to_string()),
            "--culex-threads" => c.culex_threads = Some(positive(name, value)?),
            "--max-queued" => c.max_queued = number(name, value)? as u64,
            "--max-queued-bytes" => c.max_queued_bytes = parse_size(value)? as u64,
            "--max-inflight" => c.max_inflight = Some(number(name, value)? as u64),
            "--conf-line" => c.conf_lines.push(value.to_string()),
            _ => {
                return Ok(workload_flag(&mut c.workload, name, value)?
                    || output_flag(&mut c.output, name, value))
            }
        }
        Ok(true)
    })?;
    if c.scenarios.is_empty() {
        return Err("compare needs --scenario".to_string());
    }
    if c.brokers.is_empty() {
        return Err("compare needs at least one --broker NAME=PATH".to_string());
    }
    let mut names: Vec<&str> = c.brokers.iter().map(|b| b.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() != c.brokers.len() {
        return Err("--broker names must differ".to_string());
    }
    if let Some(baseline) = &c.baseline {
        if !c.brokers.iter().any(|b| &b.name == baseline) {
            return Err(format!(
                "--baseline {baseline} is not one of the --broker names"
            ));
        }
    }
    for (broker, list) in broker_opts {
        let spec = broker_named(&mut c.brokers, &broker, "--broker-opts")?;
        for opt in list.split(',').map(str::trim) {
            match opt {
                "tls" => spec.tls = Some(true),
                "tcp" => spec.tls = Some(false),
                "dynsec" => spec.dynsec = Some(true),
                "anonymous" => spec.dynsec = Some(false),
                other => {
                    return Err(format!(
                        "--broker-opts {broker}: unknown option {other:?} (tls, tcp, dynsec, anonymous)"
                    ))
                }
            }
        }
    }
    for (broker, line) in broker_conf {
        broker_named(&mut c.brokers, &broker, "--broker-conf")?
            .conf_lines
            .push(line);
    }
    let tls_anywhere = c.any_tls();
    c.workload.finish(tls_anywhere)?;
    if c.workload.credentials.is_some() {
        return Err("compare sets the clients' logins itself (--dynsec); \
                    --username/--password are for run"
            .to_string());
    }
    let o = &c.workload.tls_options;
    if o.cafile.is_some() || o.cert.is_some() || o.server_name.is_some() {
        return Err(
            "compare makes its own CA and server certificate; --cafile, --cert/--key \
                    and --tls-server-name are for run"
                .to_string(),
        );
    }
    c.dynsec_shape.validate()?;
    if shape_given && !c.any_dynsec() {
        return Err(
            "--dynsec-clients/--dynsec-roles/--dynsec-acls-per-role need --dynsec or \
                    --broker-opts NAME=dynsec"
                .to_string(),
        );
    }
    Ok(c)
}

fn parse_dynsec_file(args: &[String]) -> Result<DynsecFileArgs, String> {
    let mut shape = DynsecShape::default();
    let mut out = None;
    each_flag(args, |name, value| {
        match name {
            "--dynsec-clients" => shape.clients = positive(name, value)?,
            "--dynsec-roles" => shape.roles = positive(name, value)?,
            "--dynsec-acls-per-role" => shape.acls_per_role = positive(name, value)?,
            "--out" => out = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    shape.validate()?;
    let out = out.ok_or("dynsec-file needs --out FILE")?;
    Ok(DynsecFileArgs { shape, out })
}

/// `--flag NAME=VALUE` split at the first `=`.
fn named(flag: &str, value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, rest)) if !name.is_empty() && !rest.is_empty() => {
            Ok((name.to_string(), rest.to_string()))
        }
        _ => Err(format!("{flag} wants NAME=VALUE, not {value:?}")),
    }
}

/// The `--broker` called `name`, for a per-broker option.
fn broker_named<'a>(
    brokers: &'a mut [BrokerSpec],
    name: &str,
    flag: &str,
) -> Result<&'a mut BrokerSpec, String> {
    brokers
        .iter_mut()
        .find(|b| b.name == name)
        .ok_or_else(|| format!("{flag} {name}=…: no --broker is called {name}"))
}

/// A value-less switch (`each_flag` passes "true"); `--tls=false` also works.
fn switch(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "{name} takes no value (or =true/=false), not {value:?}"
        )),
    }
}

fn parse_smoke(args: &[String]) -> Result<SmokeArgs, String> {
    let mut broker_bin = None;
    let mut threads = None;
    each_flag(args, |name, value| {
        match name {
            "--broker-bin" => broker_bin = Some(PathBuf::from(value)),
            "--threads" => threads = Some(positive(name, value)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let broker_bin = broker_bin.ok_or("smoke needs --broker-bin PATH")?;
    Ok(SmokeArgs {
        broker_bin,
        threads,
    })
}

fn parse_plot(args: &[String]) -> Result<PlotArgs, String> {
    let mut inputs = Vec::new();
    let mut svg = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--svg" => {
                svg = Some(PathBuf::from(args.get(i + 1).ok_or("--svg needs a value")?));
                i += 1;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            file => inputs.push(PathBuf::from(file)),
        }
        i += 1;
    }
    if inputs.is_empty() {
        return Err("plot needs at least one JSON-lines file".to_string());
    }
    let svg = svg.ok_or("plot needs --svg FILE")?;
    Ok(PlotArgs { inputs, svg })
}

fn parse_scenarios(value: &str) -> Result<Vec<Scenario>, String> {
    value
        .split(',')
        .map(|name| {
            Scenario::parse(name.trim()).ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!("unknown scenario {name:?} (one of {})", names.join(", "))
            })
        })
        .collect()
}

fn parse_broker(value: &str) -> Result<BrokerSpec, String> {
    match value.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok(BrokerSpec {
            name: name.to_string(),
            path: PathBuf::from(path),
            tls: None,
            dynsec: None,
            conf_lines: Vec::new(),
        }),
        _ => Err(format!("--broker wants NAME=PATH, not {value:?}")),
    }
}

/// `3.1.1`, `311`, `4` or `5`, `5.0`.
pub fn parse_protocol(value: &str) -> Result<Protocol, String> {
    match value {
        "3.1.1" | "311" | "4" | "v311" => Ok(Protocol::V311),
        "5" | "5.0" | "v5" => Ok(Protocol::V5),
        _ => Err(format!("--protocol must be 3.1.1 or 5, not {value:?}")),
    }
}

/// Bytes with an optional k/KiB/m/MiB suffix (powers of 1024).
pub fn parse_size(value: &str) -> Result<usize, String> {
    let lower = value.trim().to_ascii_lowercase();
    let (digits, scale) = [
        ("kib", 1024),
        ("k", 1024),
        ("mib", 1 << 20),
        ("m", 1 << 20),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, scale)| lower.strip_suffix(suffix).map(|d| (d.to_string(), *scale)))
    .unwrap_or((lower.clone(), 1));
    let n: usize = digits
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {value:?}"))?;
    Ok(n * scale)
}

/// Seconds (`2`, `0.5`) or with a unit (`500ms`, `2s`, `1m`).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let (number, scale) = if let Some(ms) = v.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = v.strip_suffix('s') {
        (s, 1.0)
    } else if let Some(m) = v.strip_suffix('m') {
        (m, 60.0)
    } else {
        (v, 1.0)
    };
    let secs: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {value:?}"))?;
    if !(0.0..=86_400.0).contains(&(secs * scale)) {
        return Err(format!("duration out of range: {value:?}"));
    }
    Ok(Duration::from_secs_f64(secs * scale))
}

fn positive(name: &str, value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{name} wants a positive integer, not {value:?}")),
    }
}

fn number_usize(name: &str, value: &str) -> Result<usize, String> {
    value
        .parse::<usize>()
        .map_err(|_| format!("{name} wants an integer >= 0, not {value:?}"))
}

fn number(name: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(n) if n >= 0.0 && n.is_finite() => Ok(n),
        _ => Err(format!("{name} wants a number >= 0, not {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn compare_command_parses() {
        let Ok(Command::Compare(c)) = parse(args(
            "compare --scenario pairs,qos1 --repeats 5 --broker culex=target/release/culex \
             --broker mosquitto=/usr/sbin/mosquitto --clients 50 --payload 4KiB --qos=1 \
             --duration 500ms --culex-threads 2 --json out.jsonl",
        )) else {
            panic!("compare did not parse");
        };
        assert_eq!(c.scenarios, vec![Scenario::Pairs, Scenario::Qos1]);
        assert_eq!(c.repeats, 5);
        assert_eq!(c.brokers[1].name, "mosquitto");
        assert_eq!(c.culex_threads, Some(2));
        let w = c
            .workload
            .workload(Scenario::Pairs, ([127, 0, 0, 1], 1).into());
        assert_eq!((w.clients, w.payload, w.qos), (50, 4096, QoS::AtLeastOnce));
        assert_eq!(w.duration, Duration::from_millis(500));
        assert_eq!(c.output.json, Some(PathBuf::from("out.jsonl")));
    }

    #[test]
    fn run_defaults_and_errors() {
        let Ok(Command::Run(r)) = parse(args("run --scenario latency --protocol 5")) else {
            panic!("run did not parse");
        };
        assert_eq!(r.broker, SocketAddr::from(([127, 0, 0, 1], 1883)));
        let w = r.workload.workload(Scenario::Latency, r.broker);
        assert_eq!((w.protocol, w.rate), (Protocol::V5, Some(10_000.0)));
        assert!(parse(args("run")).is_err());
        assert!(parse(args("run --scenario nope")).is_err());
        assert!(parse(args("run --scenario pairs --qos 3")).is_err());
        assert!(parse(args("run --scenario pairs --bogus 1")).is_err());
        assert!(parse(args("compare --scenario pairs --broker x")).is_err());
        assert!(parse(args("compare --scenario pairs --broker a=1 --broker a=2")).is_err());
        assert!(matches!(parse(Vec::new()), Ok(Command::Help)));
        let plot = parse(args("plot --svg o.svg a.jsonl b.jsonl"));
        assert!(matches!(plot, Ok(Command::Plot(p)) if p.inputs.len() == 2));
        assert!(parse(args("plot a.jsonl")).is_err());
    }

    #[test]
    fn long_topics_and_topic_aliases() {
        let Ok(Command::Run(r)) = parse(args(
            "run --scenario fanin --protocol 5 --topic-len 100 --topic-alias-max 10",
        )) else {
            panic!("run did not parse");
        };
        let w = r.workload.workload(Scenario::Fanin, r.broker);
        assert_eq!((w.topic_len, w.topic_alias_max), (100, 10));
        assert!(parse(args("run --scenario fanin --topic-alias-max 10")).is_err());
        assert!(parse(args(
            "run --scenario fanin --protocol 5 --topic-alias-max 70000"
        ))
        .is_err());
        assert!(parse(args("run --scenario fanin --topic-alias-max 0")).is_ok());
    }

    #[test]
    fn compare_variants_of_one_binary() {
        let Ok(Command::Compare(c)) = parse(args(
            "compare --scenario pairs --broker culex=bin/culex --broker culex-tls=bin/culex \
             --broker culex-dynsec=bin/culex --broker-opts culex-tls=tls \
             --broker-opts culex-dynsec=dynsec,tcp --broker-conf culex-dynsec=set_tcp_nodelay=true \
             --dynsec-clients 1000 --dynsec-roles 100 --dynsec-acls-per-role 10 --tls-version 1.3",
        )) else {
            panic!("compare did not parse");
        };
        let [plain, tls, dynsec] = &c.brokers[..] else {
            panic!("three brokers");
        };
        assert!(!plain.uses_tls(c.workload.tls) && !plain.uses_dynsec(c.dynsec));
        assert!(tls.uses_tls(c.workload.tls) && !tls.uses_dynsec(c.dynsec));
        assert!(!dynsec.uses_tls(c.workload.tls) && dynsec.uses_dynsec(c.dynsec));
        assert_eq!(dynsec.conf_lines, vec!["set_tcp_nodelay=true".to_string()]);
        assert_eq!(
            c.dynsec_shape.describe(),
            "1000 clients, 100 roles × 10 ACLs"
        );
        assert_eq!(c.workload.tls_options.version, Some(TlsVersion::V13));
        // A plain broker's workload has no TLS even though another broker uses it.
        let w = c
            .workload
            .workload(Scenario::Pairs, ([127, 0, 0, 1], 1).into());
        assert!(w.tls.is_none());
    }

    #[test]
    fn global_switches_and_their_errors() {
        let Ok(Command::Compare(c)) = parse(args(
            "compare --scenario handshakes --tls --dynsec --broker a=x --broker b=y \
             --broker-opts b=anonymous,tcp --tls-key-type rsa",
        )) else {
            panic!("compare did not parse");
        };
        assert!(c.brokers[0].uses_tls(c.workload.tls) && c.brokers[0].uses_dynsec(c.dynsec));
        assert!(!c.brokers[1].uses_tls(c.workload.tls) && !c.brokers[1].uses_dynsec(c.dynsec));
        assert_eq!(c.tls_key_type, KeyType::Rsa2048);
        for bad in [
            "compare --scenario pairs --broker a=x --dynsec-clients 10",
            "compare --scenario pairs --broker a=x --broker-opts b=tls",
            "compare --scenario pairs --broker a=x --broker-opts a=fast",
            "compare --scenario pairs --broker a=x --tls --cafile ca.pem",
            "compare --scenario pairs --broker a=x --dynsec --dynsec-acls-per-role 2",
            "compare --scenario pairs --broker a=x --username u --password p",
            "compare --scenario pairs --broker a=x --tls-version 1.3",
            "run --scenario pairs --cafile ca.pem",
            "run --scenario pairs --tls --cafile ca.pem --cert c.pem",
            "run --scenario pairs --username u",
            "run --scenario pairs --tls --tls-version 1.1",
            "dynsec-file --dynsec-clients 3",
        ] {
            assert!(parse(args(bad)).is_err(), "{bad} should be refused");
        }
        let Ok(Command::Run(r)) = parse(args(
            "run --scenario pairs --tls --cafile ca.pem --cert c.pem --key k.pem \
             --tls-resume --dynsec-clients 50",
        )) else {
            panic!("run did not parse");
        };
        let w = r.workload.workload(Scenario::Pairs, r.broker);
        let tls = w.tls.expect("tls on");
        assert!(tls.resume && tls.cert.is_some());
        assert_eq!(w.credentials, Credentials::Dynsec { clients: 50 });
        assert_eq!(
            w.credentials.of(51),
            Some(("perf-user-1".to_string(), "perf-pass-1".to_string()))
        );
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("256KiB"), Ok(262_144));
        assert_eq!(parse_size("16"), Ok(16));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert!(parse_size("x").is_err());
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn rate_zero_means_unlimited() {
        let Ok(Command::Run(r)) = parse(args("run --scenario latency --rate 0")) else {
            panic!("run did not parse");
        };
        assert_eq!(r.workload.workload(Scenario::Latency, r.broker).rate, None);
    }
}
