//! The `$SYS` tree: Mosquitto's broker statistics topics, with its names, payload formats
//! and timing, so exporters and dashboards written for Mosquitto read Culex unchanged.
//!
//! Placement: shard 0 only. Every `sys_interval` seconds (aligned to the wall clock, as
//! Mosquitto 2.1 does) it sums the counters of all shards and publishes each value that
//! changed as a retained QoS 2 message through the normal publish path, so `$SYS`
//! subscribers on any shard receive it. `$SYS/broker/version` is published once at start.

use crate::figures::{Snapshot, FIGURES};
use crate::message::Message;
use crate::mqtt::{ByteStr, Bytes, QoS};
use crate::shard::Shard;
use crate::stats::Totals;
use std::collections::HashMap;

/// Exponentially weighted per-minute rates, as Mosquitto computes them.
#[derive(Default)]
struct Load {
    values: [f64; 3],
}

/// State of the `$SYS` publisher.
#[derive(Default)]
pub struct SysPublisher {
    started_s: u64,
    next_s: u64,
    last_s: u64,
    previous: Totals,
    clients_maximum: u64,
    heap_maximum: u64,
    loads_published: bool,
    published: HashMap<&'static str, String>,
    cluster_published: HashMap<String, String>,
    loads: HashMap<&'static str, Load>,
    load_topics: HashMap<(&'static str, &'static str), ByteStr>,
}

const WINDOWS: [(&str, f64); 3] = [("1min", 60.0), ("5min", 300.0), ("15min", 900.0)];

impl SysPublisher {
    /// Publishes when the interval elapsed. Called from shard 0's tick.
    pub fn maybe_publish(&mut self, shard: &mut Shard) {
        let interval = shard.settings.sys_interval;
        let now = shard.now.unix_s;
        if interval == 0 {
            return;
        }
        if self.started_s == 0 {
            self.started_s = now;
            self.last_s = now;
            self.next_s = now;
            let version = shard.settings.version_text.clone();
            publish(shard, ByteStr::from_static("$SYS/broker/version"), version);
        }
        if now < self.next_s {
            return;
        }
        self.next_s = (now / interval + 1) * interval;
        let snapshot = Snapshot::take(&shard.stats);
        self.publish_values(shard, &snapshot, now);
        self.publish_cluster(shard);
        self.publish_loads(shard, &snapshot.totals, now);
        self.previous = snapshot.totals;
        self.last_s = now;
    }

    fn publish_values(&mut self, shard: &mut Shard, snapshot: &Snapshot, now: u64) {
        let total = snapshot.totals.sessions;
        self.clients_maximum = self.clients_maximum.max(total);
        let heap = resident_bytes();
        self.heap_maximum = self.heap_maximum.max(heap);
        let own: [(&'static str, String); 4] = [
            (
                "$SYS/broker/uptime",
                format!("{} seconds", now.saturating_sub(self.started_s)),
            ),
            (
                "$SYS/broker/clients/maximum",
                self.clients_maximum.to_string(),
            ),
            ("$SYS/broker/heap/current", heap.to_string()),
            ("$SYS/broker/heap/maximum", self.heap_maximum.to_string()),
        ];
        // The figures `/metrics` shows too come from the shared table.
        let shared = FIGURES.iter().flat_map(|figure| {
            let value = (figure.value)(snapshot).to_string();
            figure
                .topics
                .iter()
                .map(move |topic| (*topic, value.clone()))
        });
        for (topic, value) in own.into_iter().chain(shared) {
            if self.published.get(topic) != Some(&value) {
                self.published.insert(topic, value.clone());
                publish(shard, ByteStr::from_static(topic), value);
            }
        }
    }

    /// `$SYS/broker/cluster/...`, when the HA module is loaded: the values that changed.
    fn publish_cluster(&mut self, shard: &mut Shard) {
        let Some(status) = shard.cluster.as_ref() else {
            return;
        };
        for (topic, value) in crate::cluster_status::sys_values(&status.read()) {
            if self.cluster_published.get(&topic) != Some(&value) {
                self.cluster_published.insert(topic.clone(), value.clone());
                publish(shard, ByteStr::from(topic), value);
            }
        }
    }

    fn publish_loads(&mut self, shard: &mut Shard, t: &Totals, now: u64) {
        // The first run publishes every series (Mosquitto's "initial"), later runs only
        // the values that changed.
        let initial = !self.loads_published;
        self.loads_published = true;
        let elapsed = now.saturating_sub(self.last_s).max(1);
        let p = &self.previous;
        let series: [(&'static str, u64, u64); 9] = [
            (
                "messages/received",
                t.messages_received,
                p.messages_received,
            ),
            ("messages/sent", t.messages_sent, p.messages_sent),
            ("publish/received", t.publish_received, p.publish_received),
            ("publish/sent", t.publish_sent, p.publish_sent),
            ("publish/dropped", t.publish_dropped, p.publish_dropped),
            ("bytes/received", t.bytes_received, p.bytes_received),
            ("bytes/sent", t.bytes_sent, p.bytes_sent),
            ("sockets", t.sockets_opened, p.sockets_opened),
            ("connections", t.connections_opened, p.connections_opened),
        ];
        for (name, current, previous) in series {
            let per_minute = current.saturating_sub(previous) as f64 * 60.0 / elapsed as f64;
            let load = self.loads.entry(name).or_default();
            for (index, (suffix, window)) in WINDOWS.iter().enumerate() {
                let exponent = (-(elapsed as f64) / window).exp();
                let old = load.values[index];
                let new = per_minute + exponent * (old - per_minute);
                load.values[index] = new;
                let text = format!("{new:.2}");
                if initial || format!("{old:.2}") != text {
                    let topic = self
                        .load_topics
                        .entry((name, suffix))
                        .or_insert_with(|| {
                            ByteStr::from(format!("$SYS/broker/load/{name}/{suffix}"))
                        })
                        .clone();
                    publish(shard, topic, text);
                }
            }
        }
    }
}

/// The broker's resident memory, for `$SYS/broker/heap/*`. Mosquitto reports its own
/// allocator's count there; resident memory is the closest figure a Rust process has and
/// what those dashboards are used to watch. Read from /proc once per `sys_interval`.
fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn publish(shard: &mut Shard, topic: ByteStr, value: String) {
    let message = Message::new(topic, Bytes::from(value), QoS::ExactlyOnce, true);
    shard.publish_message(message, None);
}
