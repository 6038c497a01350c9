//! The broker figures that both `$SYS` and `/metrics` report, in one table: each figure's
//! `$SYS` topics, its Prometheus name and type, and the one function that computes it from
//! a [`Snapshot`] of the shards' counters. Neither reporter computes a shared figure on its
//! own, so the two cannot disagree.
//!
//! Called by `sys` (shard 0, every `sys_interval`) and `http` (every scrape). Figures only
//! `$SYS` has (uptime's text form, the maxima, heap, the load averages) stay in `sys`.
//!
//! What "stored" means follows Mosquitto 2.0's message store (`db.msg_store_count` and
//! `db.msg_store_bytes`): every message the broker holds, retained ones included (the
//! `$SYS` values are retained too), with its payload bytes. One difference: Mosquitto keeps
//! one shared copy of a message queued for several sessions and counts it once; Culex gives
//! each session's queue its own copy and counts each.
//!
//! Metric names follow Prometheus' rules (`promtool check metrics`): counters end in
//! `_total`, gauges do not end in `_total` or `_count`. The `former` name is the one the
//! `$SYS`-derived exporter naming gave before, kept in the HELP text for dashboard owners.

use crate::stats::{totals, ShardStats, Totals};
use std::sync::atomic::Ordering;

/// The counters of every shard, read once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Counters and gauges summed over the shards.
    pub totals: Totals,
    /// Retained messages (every shard holds the same set: one shard's count).
    pub retained: u64,
    /// Their payload bytes.
    pub retained_bytes: u64,
}

impl Snapshot {
    /// Reads the shards' counters now.
    pub fn take(stats: &[ShardStats]) -> Snapshot {
        let first = stats.first();
        let gauge = |read: fn(&ShardStats) -> u64| first.map_or(0, read);
        Snapshot {
            totals: totals(stats),
            retained: gauge(|s| s.retained.load(Ordering::Relaxed)),
            retained_bytes: gauge(|s| s.retained_bytes.load(Ordering::Relaxed)),
        }
    }

    /// Messages held: retained, queued for sessions and in their in-flight windows.
    pub fn stored_messages(&self) -> u64 {
        self.totals.stored_messages + self.retained
    }

    /// Payload bytes of [`Snapshot::stored_messages`].
    pub fn stored_bytes(&self) -> u64 {
        self.totals.stored_bytes + self.retained_bytes
    }

    /// Sessions without a connection.
    pub fn disconnected(&self) -> u64 {
        self.totals
            .sessions
            .saturating_sub(self.totals.clients_connected)
    }
}

/// Prometheus metric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (until a restart).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    /// The `# TYPE` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One figure.
pub struct Figure {
    /// The `$SYS` topics that carry it (Mosquitto publishes some figures twice).
    pub topics: &'static [&'static str],
    /// The Prometheus metric name.
    pub metric: &'static str,
    /// The metric's name before it followed Prometheus' rules, when it changed.
    pub former: Option<&'static str>,
    /// Counter or gauge.
    pub kind: Kind,
    /// What it counts (the start of the HELP text, without a final period).
    pub help: &'static str,
    /// Its value.
    pub value: fn(&Snapshot) -> u64,
}

use Kind::{Counter, Gauge};

/// Every figure both reporters show, in `$SYS` publishing order.
pub const FIGURES: &[Figure] = &[
    Figure {
        topics: &["$SYS/broker/clients/total"],
        metric: "broker_clients",
        former: Some("broker_clients_total"),
        kind: Gauge,
        help: "Clients known to the broker (sessions), connected or not",
        value: |s| s.totals.sessions,
    },
    Figure {
        topics: &[
            "$SYS/broker/clients/inactive",
            "$SYS/broker/clients/disconnected",
        ],
        metric: "broker_clients_disconnected",
        former: None,
        kind: Gauge,
        help: "Persistent sessions without a connection",
        value: Snapshot::disconnected,
    },
    Figure {
        topics: &[
            "$SYS/broker/clients/active",
            "$SYS/broker/clients/connected",
        ],
        metric: "broker_clients_connected",
        former: None,
        kind: Gauge,
        help: "Connected clients",
        value: |s| s.totals.clients_connected,
    },
    Figure {
        topics: &["$SYS/broker/clients/expired"],
        metric: "broker_clients_expired_total",
        former: Some("broker_clients_expired"),
        kind: Counter,
        help: "Sessions removed by expiry",
        value: |s| s.totals.clients_expired,
    },
    Figure {
        topics: &[
            "$SYS/broker/messages/stored",
            "$SYS/broker/store/messages/count",
        ],
        metric: "broker_messages_stored",
        former: None,
        kind: Gauge,
        help: "Messages held: retained ones and those queued or in flight for sessions",
        value: Snapshot::stored_messages,
    },
    Figure {
        topics: &["$SYS/broker/store/messages/bytes"],
        metric: "broker_store_messages_bytes",
        former: None,
        kind: Gauge,
        help: "Payload bytes of the messages held",
        value: Snapshot::stored_bytes,
    },
    Figure {
        topics: &["$SYS/broker/subscriptions/count"],
        metric: "broker_subscriptions",
        former: Some("broker_subscriptions_count"),
        kind: Gauge,
        help: "Subscriptions, shared ones included",
        value: |s| s.totals.subscriptions,
    },
    Figure {
        topics: &["$SYS/broker/shared_subscriptions/count"],
        metric: "broker_shared_subscriptions",
        former: Some("broker_shared_subscriptions_count"),
        kind: Gauge,
        help: "Shared subscriptions",
        value: |s| s.totals.shared_subscriptions,
    },
    Figure {
        topics: &["$SYS/broker/retained messages/count"],
        metric: "broker_retained_messages",
        former: Some("broker_retained_messages_count"),
        kind: Gauge,
        help: "Retained messages",
        value: |s| s.retained,
    },
    Figure {
        topics: &["$SYS/broker/messages/received"],
        metric: "broker_messages_received_total",
        former: Some("broker_messages_received"),
        kind: Counter,
        help: "MQTT packets received",
        value: |s| s.totals.messages_received,
    },
    Figure {
        topics: &["$SYS/broker/messages/sent"],
        metric: "broker_messages_sent_total",
        former: Some("broker_messages_sent"),
        kind: Counter,
        help: "MQTT packets sent",
        value: |s| s.totals.messages_sent,
    },
    Figure {
        topics: &["$SYS/broker/publish/messages/received"],
        metric: "broker_publish_messages_received_total",
        former: Some("broker_publish_messages_received"),
        kind: Counter,
        help: "PUBLISH packets received",
        value: |s| s.totals.publish_received,
    },
    Figure {
        topics: &["$SYS/broker/publish/messages/sent"],
        metric: "broker_publish_messages_sent_total",
        former: Some("broker_publish_messages_sent"),
        kind: Counter,
        help: "PUBLISH packets sent",
        value: |s| s.totals.publish_sent,
    },
    Figure {
        topics: &["$SYS/broker/publish/messages/dropped"],
        metric: "broker_publish_messages_dropped_total",
        former: Some("broker_publish_messages_dropped"),
        kind: Counter,
        help: "Messages dropped by queue limits",
        value: |s| s.totals.publish_dropped,
    },
    Figure {
        topics: &["$SYS/broker/publish/bytes/received"],
        metric: "broker_publish_bytes_received_total",
        former: Some("broker_publish_bytes_received"),
        kind: Counter,
        help: "PUBLISH payload bytes received",
        value: |s| s.totals.publish_bytes_received,
    },
    Figure {
        topics: &["$SYS/broker/publish/bytes/sent"],
        metric: "broker_publish_bytes_sent_total",
        former: Some("broker_publish_bytes_sent"),
        kind: Counter,
        help: "PUBLISH payload bytes sent",
        value: |s| s.totals.publish_bytes_sent,
    },
    Figure {
        topics: &["$SYS/broker/bytes/received"],
        metric: "broker_bytes_received_total",
        former: Some("broker_bytes_received"),
        kind: Counter,
        help: "Bytes read from sockets",
        value: |s| s.totals.bytes_received,
    },
    Figure {
        topics: &["$SYS/broker/bytes/sent"],
        metric: "broker_bytes_sent_total",
        former: Some("broker_bytes_sent"),
        kind: Counter,
        help: "Bytes written to sockets",
        value: |s| s.totals.bytes_sent,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{bump, set};

    #[test]
    fn names_follow_prometheus_rules() {
        let mut names: Vec<_> = FIGURES.iter().map(|f| f.metric).collect();
        for figure in FIGURES {
            let name = figure.metric;
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            match figure.kind {
                Counter => assert!(name.ends_with("_total"), "{name}"),
                Gauge => assert!(
                    !["_total", "_count", "_sum", "_bucket"]
                        .iter()
                        .any(|suffix| name.ends_with(suffix)),
                    "{name}"
                ),
            }
            assert!(!figure.topics.is_empty(), "{name}");
            assert_ne!(figure.former, Some(name), "{name}: former equals the name");
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIGURES.len(), "metric names are unique");
    }

    #[test]
    fn readme_maps_every_metric_to_its_topics() {
        let readme = include_str!("../../README.md");
        for figure in FIGURES {
            let topics: Vec<String> = figure
                .topics
                .iter()
                .map(|t| format!("`{}`", t.trim_start_matches("$SYS/broker/")))
                .collect();
            let row = format!(
                "| {} | `{}` | {} | {} |",
                topics.join(", "),
                figure.metric,
                figure.kind.name(),
                figure.former.map(|f| format!("`{f}`")).unwrap_or_default()
            );
            let row = row.replace("|  |", "| |");
            assert!(readme.contains(&row), "README lacks the row\n{row}");
        }
    }

    #[test]
    fn stored_figures_count_retained_messages_once() {
        let stats: Vec<ShardStats> = (0..2).map(|_| ShardStats::default()).collect();
        for shard in &stats {
            // Every shard holds the same 3 retained messages of 10 bytes in all.
            set(&shard.retained, 3);
            set(&shard.retained_bytes, 10);
        }
        set(&stats[0].stored_messages, 2);
        set(&stats[0].stored_bytes, 100);
        set(&stats[1].stored_messages, 1);
        set(&stats[1].stored_bytes, 7);
        bump(&stats[1].sessions, 4);
        bump(&stats[1].clients_connected, 1);
        let snapshot = Snapshot::take(&stats);
        assert_eq!(snapshot.stored_messages(), 6);
        assert_eq!(snapshot.stored_bytes(), 117);
        assert_eq!(snapshot.disconnected(), 3);
        let value = |metric: &str| {
            let figure = FIGURES.iter().find(|f| f.metric == metric).expect(metric);
            (figure.value)(&snapshot)
        };
        assert_eq!(value("broker_retained_messages"), 3);
        assert_eq!(value("broker_messages_stored"), 6);
        assert_eq!(value("broker_store_messages_bytes"), 117);
        assert_eq!(value("broker_clients"), 4);
    }
}
