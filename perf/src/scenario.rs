//! Scenarios and the plan of clients each one runs: which connections publish or
//! subscribe, on which topic, on which harness thread, and which publishers each
//! subscriber must hear from.
//!
//! Owns the mapping from [`Workload`] (what the user asked for) to a [`Plan`] (a list of
//! [`ClientSpec`]). The engine (`engine.rs`) starts one task per spec. Pure: no I/O.
//!
//! ```text
//!   pairs/qos1/qos2/latency/payload   P_i ──► <prefix>/p/i ──► S_i
//!   fanin                             P_0..P_n ──► <prefix>/in/i ──► S (<prefix>/in/+)
//!   fanout                            P ──► <prefix>/out ──► S_0..S_n
//!   retained                          P: K retained on <prefix>/r/k; then S_0..S_n on <prefix>/r/#
//!   conns                             M idle connections
//!   handshakes                        M connections opened and closed (bounded concurrency)
//! ```

use crate::tls::TlsOptions;
use shards::mqtt::{Protocol, QoS};
use std::net::SocketAddr;
use std::time::Duration;

/// A publisher's write stops once it holds this many bytes, whatever `--batch` allows.
/// Real clients write a packet or a socket buffer at a time; 64 packets of 4 KiB made
/// 256 KiB writes, an artefact of a count chosen for 64-byte payloads. Measured on both
/// brokers with 4 KiB pairs (3 alternating runs each): Culex ~8 % more msg/s and less CPU
/// per message with 64 KiB writes, Mosquitto within its noise (see docs/benchmarks.md).
pub const WRITE_BYTES_MAX: usize = 64 * 1024;

/// A named load pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// N publisher/subscriber pairs, each pair on its own topic.
    Pairs,
    /// N publishers into one wildcard subscriber.
    Fanin,
    /// One publisher to N subscribers of one topic.
    Fanout,
    /// Pairs at QoS 1 with a window of unacknowledged publishes.
    Qos1,
    /// Pairs at QoS 2 with a window of unacknowledged publishes.
    Qos2,
    /// Pairs at a fixed total rate; the result is the latency distribution.
    Latency,
    /// M idle connections: connects per second and broker memory per connection.
    Conns,
    /// K retained topics, then N wildcard subscribers; time until each has all K.
    Retained,
    /// Pairs, once per payload size in `Workload::sizes`.
    Payload,
    /// M connections, each opened (TLS handshake with `--tls`, CONNECT/CONNACK) and
    /// closed again: handshakes per second.
    Handshakes,
}

impl Scenario {
    /// Every scenario, in the order the smoke run and the docs use.
    pub const ALL: [Scenario; 10] = [
        Scenario::Pairs,
        Scenario::Fanin,
        Scenario::Fanout,
        Scenario::Qos1,
        Scenario::Qos2,
        Scenario::Latency,
        Scenario::Conns,
        Scenario::Retained,
        Scenario::Payload,
        Scenario::Handshakes,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Pairs => "pairs",
            Scenario::Fanin => "fanin",
            Scenario::Fanout => "fanout",
            Scenario::Qos1 => "qos1",
            Scenario::Qos2 => "qos2",
            Scenario::Latency => "latency",
            Scenario::Conns => "conns",
            Scenario::Retained => "retained",
            Scenario::Payload => "payload",
            Scenario::Handshakes => "handshakes",
        }
    }

    /// Parses a scenario name.
    pub fn parse(text: &str) -> Option<Scenario> {
        if text == "tls-handshakes" {
            return Some(Scenario::Handshakes);
        }
        Scenario::ALL.into_iter().find(|s| s.name() == text)
    }

    /// The QoS the scenario uses when `--qos` is not given.
    pub fn default_qos(self) -> QoS {
        match self {
            Scenario::Qos1 | Scenario::Retained => QoS::AtLeastOnce,
            Scenario::Qos2 => QoS::ExactlyOnce,
            _ => QoS::AtMostOnce,
        }
    }

    /// The client count (`--clients`) when not given; see [`Workload::clients`].
    pub fn default_clients(self) -> usize {
        match self {
            Scenario::Fanin | Scenario::Fanout => 100,
            Scenario::Conns => 1000,
            Scenario::Handshakes => 2000,
            Scenario::Retained | Scenario::Latency | Scenario::Payload => 10,
            Scenario::Pairs | Scenario::Qos1 | Scenario::Qos2 => 50,
        }
    }

    /// True when the scenario's publishers send at a fixed rate by default.
    pub fn is_rated(self) -> bool {
        self == Scenario::Latency
    }
}

/// Everything one run needs to know; built from the command line.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Scenario.
    pub scenario: Scenario,
    /// Broker address.
    pub broker: SocketAddr,
    /// MQTT version of every client.
    pub protocol: Protocol,
    /// QoS of publishes and subscriptions.
    pub qos: QoS,
    /// Pairs (pairs, qos1, qos2, latency, payload), publishers (fanin), subscribers
    /// (fanout, retained) or connections (conns).
    pub clients: usize,
    /// Payload bytes per message (at least the 16-byte header).
    pub payload: usize,
    /// Payload sizes the `payload` scenario sweeps.
    pub sizes: Vec<usize>,
    /// Length of the measured window.
    pub duration: Duration,
    /// Load before the measured window starts.
    pub warmup: Duration,
    /// Unacknowledged QoS 1/2 publishes per publisher.
    pub window: usize,
    /// Total publish rate in messages per second; `None` = as fast as possible.
    pub rate: Option<f64>,
    /// Harness threads (one monoio runtime each).
    pub threads: usize,
    /// Most PUBLISH packets encoded into one write (which also stops at
    /// [`WRITE_BYTES_MAX`]).
    pub batch: usize,
    /// Retained topics (retained scenario).
    pub topics: usize,
    /// Topics are padded to about this many bytes (a level of `x` after the run's prefix);
    /// 0 = no padding.
    pub topic_len: usize,
    /// Topic Alias Maximum the subscribers announce (5.0; 0 = none); they resolve the
    /// broker's aliases and fail on one never announced.
    pub topic_alias_max: u16,
    /// Connection attempts per second, total (`None` = limited by concurrency only).
    pub connect_rate: Option<f64>,
    /// Connection handshakes in flight per thread.
    pub connect_concurrency: usize,
    /// Source addresses 127.0.0.1.. the clients bind (more ephemeral ports).
    pub source_addrs: u8,
    /// Broker process to read CPU time and memory from.
    pub broker_pid: Option<u32>,
    /// Name of the broker in reports.
    pub broker_name: String,
    /// Longest wait for connections, acknowledgements and the final deliveries.
    pub settle_timeout: Duration,
    /// TLS (`--tls` and its options); `None` = plain TCP.
    pub tls: Option<TlsOptions>,
    /// Clients keep their sessions (`--persistent`).
    pub persistent: bool,
    /// How the clients log in.
    pub credentials: Credentials,
}

/// How the clients of a run log in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No username or password.
    #[default]
    Anonymous,
    /// `--username`/`--password`: the same for every client.
    Fixed {
        /// Username.
        username: String,
        /// Password.
        password: String,
    },
    /// `--dynsec-clients N`: client i logs in as the `i mod N`-th client of the file
    /// `dynsec.rs` generates (names and passwords from [`crate::dynsec::credentials`]).
    Dynsec {
        /// Clients in the file.
        clients: usize,
    },
}

impl Credentials {
    /// Username and password of client `index`, or None when anonymous.
    pub fn of(&self, index: usize) -> Option<(String, String)> {
        match self {
            Credentials::Anonymous => None,
            Credentials::Fixed { username, password } => Some((username.clone(), password.clone())),
            Credentials::Dynsec { clients } => {
                Some(crate::dynsec::credentials(index % (*clients).max(1)))
            }
        }
    }

    /// `anonymous`, `user`, or `dynsec` for reports.
    pub fn label(&self) -> &'static str {
        match self {
            Credentials::Anonymous => "anonymous",
            Credentials::Fixed { .. } => "password",
            Credentials::Dynsec { .. } => "dynsec",
        }
    }
}

impl Workload {
    /// Defaults for `scenario` against `broker`.
    pub fn new(scenario: Scenario, broker: SocketAddr) -> Workload {
        Workload {
            scenario,
            broker,
            protocol: Protocol::V311,
            qos: scenario.default_qos(),
            clients: scenario.default_clients(),
            payload: 64,
            sizes: vec![16, 256, 4096, 65536, 262_144],
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            window: 32,
            rate: scenario.is_rated().then_some(10_000.0),
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            batch: 64,
            topics: 10_000,
            topic_len: 0,
            topic_alias_max: 0,
            connect_rate: None,
            connect_concurrency: 64,
            source_addrs: 8,
            broker_pid: None,
            broker_name: "broker".to_string(),
            settle_timeout: Duration::from_secs(30),
            tls: None,
            persistent: false,
            credentials: Credentials::Anonymous,
        }
    }
}

/// What one client connection does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Publishes on `topic` as publisher number `id`.
    Publisher {
        /// Dense publisher index.
        id: u32,
        /// Topic name.
        topic: String,
    },
    /// Subscribes to `filter` and expects messages from `publishers`.
    Subscriber {
        /// Topic filter.
        filter: String,
        /// Publisher indexes whose every message this subscriber must receive.
        publishers: Vec<u32>,
    },
    /// Publishes `count` retained messages on `<prefix>k` (k = 0..count), then idles.
    RetainedPublisher {
        /// Topic prefix.
        prefix: String,
        /// Number of topics.
        count: u32,
    },
    /// Subscribes to `filter` once the retained messages are stored and waits for all.
    RetainedSubscriber {
        /// Topic filter.
        filter: String,
        /// Number of retained messages to receive.
        count: u32,
    },
    /// Connects and stays idle.
    Idle,
    /// Connects, waits for CONNACK, disconnects and closes (handshakes).
    Churn,
}

/// One client of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    /// Index over the whole run (unique).
    pub index: usize,
    /// Harness thread that runs it.
    pub thread: usize,
    /// What it does.
    pub role: Role,
}

/// The clients of one run.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Every client, publishers first.
    pub clients: Vec<ClientSpec>,
    /// Number of publishers (their ids are 0..publishers).
    pub publishers: usize,
}

impl Plan {
    /// The plan for `scenario` with `clients` (see [`Workload::clients`]) over `threads`
    /// threads; every topic starts with `prefix` (unique per run).
    pub fn build(
        scenario: Scenario,
        clients: usize,
        topics: usize,
        threads: usize,
        prefix: &str,
    ) -> Plan {
        assert!(threads > 0, "at least one thread");
        let n = clients.max(1);
        let mut roles = Vec::new();
        let mut publishers = 0;
        match scenario {
            Scenario::Pairs
            | Scenario::Qos1
            | Scenario::Qos2
            | Scenario::Latency
            | Scenario::Payload => {
                publishers = n;
                for i in 0..n {
                    roles.push(publisher(i, format!("{prefix}/p/{i}")));
                }
                for i in 0..n {
                    roles.push(Role::Subscriber {
                        filter: format!("{prefix}/p/{i}"),
                        publishers: vec![i as u32],
                    });
                }
            }
            Scenario::Fanin => {
                publishers = n;
                for i in 0..n {
                    roles.push(publisher(i, format!("{prefix}/in/{i}")));
                }
                roles.push(Role::Subscriber {
                    filter: format!("{prefix}/in/+"),
                    publishers: (0..n as u32).collect(),
                });
            }
            Scenario::Fanout => {
                publishers = 1;
                roles.push(publisher(0, format!("{prefix}/out")));
                for _ in 0..n {
                    roles.push(Role::Subscriber {
                        filter: format!("{prefix}/out"),
                        publishers: vec![0],
                    });
                }
            }
            Scenario::Retained => {
                let count = topics.clamp(1, u32::MAX as usize) as u32;
                publishers = 1;
                roles.push(Role::RetainedPublisher {
                    prefix: format!("{prefix}/r/"),
                    count,
                });
                for _ in 0..n {
                    roles.push(Role::RetainedSubscriber {
                        filter: format!("{prefix}/r/#"),
                        count,
                    });
                }
            }
            Scenario::Conns => roles.extend((0..n).map(|_| Role::Idle)),
            Scenario::Handshakes => roles.extend((0..n).map(|_| Role::Churn)),
        }
        // fanin's one subscriber reads what every publisher writes: sharing a thread with
        // them, it would get one read per round of 100 publisher writes, and the harness
        // would measure its own scheduling. It gets a thread of its own.
        let dedicated = scenario == Scenario::Fanin && threads > 1;
        let clients = roles
            .into_iter()
            .enumerate()
            .map(|(index, role)| {
                let thread = match (&role, dedicated) {
                    (Role::Subscriber { .. }, true) => 0,
                    (_, true) => 1 + index % (threads - 1),
                    (_, false) => index % threads,
                };
                ClientSpec {
                    index,
                    thread,
                    role,
                }
            })
            .collect();
        Plan {
            clients,
            publishers,
        }
    }

    /// Number of subscribers (of either kind).
    pub fn subscribers(&self) -> usize {
        self.clients
            .iter()
            .filter(|c| {
                matches!(
                    c.role,
                    Role::Subscriber { .. } | Role::RetainedSubscriber { .. }
                )
            })
            .count()
    }
}

fn publisher(id: usize, topic: String) -> Role {
    Role::Publisher {
        id: id as u32,
        topic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for scenario in Scenario::ALL {
            assert_eq!(Scenario::parse(scenario.name()), Some(scenario));
        }
        assert_eq!(Scenario::parse("nope"), None);
    }

    #[test]
    fn pairs_give_each_subscriber_its_own_publisher() {
        let plan = Plan::build(Scenario::Pairs, 3, 0, 2, "x");
        assert_eq!(plan.clients.len(), 6);
        assert_eq!(plan.publishers, 3);
        assert_eq!(plan.subscribers(), 3);
        assert_eq!(
            plan.clients[4].role,
            Role::Subscriber {
                filter: "x/p/1".into(),
                publishers: vec![1]
            }
        );
        assert_eq!(plan.clients[1].thread, 1);
        assert_eq!(plan.clients[2].thread, 0);
    }

    #[test]
    fn fanin_has_one_wildcard_subscriber_expecting_everyone() {
        let plan = Plan::build(Scenario::Fanin, 4, 0, 2, "x");
        assert_eq!(plan.subscribers(), 1);
        let last = &plan.clients[4].role;
        assert_eq!(
            *last,
            Role::Subscriber {
                filter: "x/in/+".into(),
                publishers: vec![0, 1, 2, 3]
            }
        );
        assert_eq!(plan.clients[4].thread, 0, "the subscriber has thread 0");
        assert!(plan.clients[..4].iter().all(|c| c.thread == 1));
        let three = Plan::build(Scenario::Fanin, 4, 0, 3, "x");
        let threads: Vec<usize> = three.clients.iter().map(|c| c.thread).collect();
        assert_eq!(threads, [1, 2, 1, 2, 0]);
    }

    #[test]
    fn fanout_and_retained_and_conns_shapes() {
        let fanout = Plan::build(Scenario::Fanout, 5, 0, 2, "x");
        assert_eq!((fanout.publishers, fanout.subscribers()), (1, 5));
        let retained = Plan::build(Scenario::Retained, 3, 100, 2, "x");
        // The retained publisher counts: the run waits for its subscribers beyond it.
        assert_eq!((retained.publishers, retained.subscribers()), (1, 3));
        let conns = Plan::build(Scenario::Conns, 7, 0, 3, "x");
        assert_eq!(conns.clients.len(), 7);
        assert!(conns
            .clients
            .iter()
            .all(|c| c.role == Role::Idle && c.thread < 3));
    }
}
