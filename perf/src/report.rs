//! The result of one run, and its two renderings: one JSON object per line (for tools and
//! for `compare`) and a human-readable table.
//!
//! Owns [`RunResult`], its JSON writer (hand-written: flat numbers and strings only) and
//! the table. The engine fills a result; `main`, `compare` and `smoke` print it.

use crate::scenario::{Plan, Role, Scenario, Workload};
use hdrhistogram::Histogram;
use shards::mqtt::Protocol;
use std::fmt::Write as _;

/// Publish-to-receive latency percentiles, in microseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// Percentiles of a histogram of nanoseconds.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Latency {
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            count: histogram.len(),
            p50: us(histogram.value_at_quantile(0.50)),
            p90: us(histogram.value_at_quantile(0.90)),
            p99: us(histogram.value_at_quantile(0.99)),
            p999: us(histogram.value_at_quantile(0.999)),
            max: us(histogram.max()),
            mean: histogram.mean() / 1000.0,
        }
    }
}

/// Everything one run measured.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// Broker name.
    pub broker: String,
    /// "3.1.1" or "5.0".
    pub protocol: String,
    /// "tcp" or "tls".
    pub transport: String,
    /// How clients logged in: "anonymous", "password" or "dynsec".
    pub auth: String,
    /// QoS.
    pub qos: u8,
    /// Publisher connections.
    pub publishers: usize,
    /// Subscriber connections.
    pub subscribers: usize,
    /// All connections.
    pub connections: usize,
    /// Payload bytes.
    pub payload: usize,
    /// QoS 1/2 window per publisher.
    pub window: usize,
    /// Target total rate, messages per second.
    pub rate: Option<f64>,
    /// Harness threads.
    pub threads: usize,
    /// Retained topics (retained scenario).
    pub topics: usize,
    /// Length of the measured window, seconds.
    pub measured_s: f64,
    /// PUBLISH written by publishers in the window.
    pub sent: u64,
    /// PUBLISH received by subscribers in the window.
    pub received: u64,
    /// MQTT bytes subscribers received in the window (all packets).
    pub received_bytes: u64,
    /// Mean length of the publishers' topics, bytes.
    pub topic_bytes: f64,
    /// Topic Alias Maximum the subscribers announced (0 = none).
    pub topic_alias_max: u16,
    /// `sent` per second.
    pub sent_per_s: f64,
    /// `received` per second (retained: messages over the slowest subscriber's time).
    pub received_per_s: f64,
    /// PUBLISH written over the whole run.
    pub sent_total: u64,
    /// Acknowledged (QoS 1/2) or written (QoS 0) over the whole run.
    pub confirmed_total: u64,
    /// Received over the whole run, duplicates included.
    pub received_total: u64,
    /// Latency in the window.
    pub latency: Option<Latency>,
    /// Confirmed messages a subscriber never received (at QoS 0: dropped by the broker).
    pub missing: u64,
    /// Messages received twice.
    pub duplicates: u64,
    /// Messages received by a subscriber that did not subscribe to them.
    pub foreign: u64,
    /// Publishes never acknowledged.
    pub unacked: u64,
    /// Publishes the broker refused.
    pub rejected: u64,
    /// CPU seconds of the harness in the window.
    pub harness_cpu_s: Option<f64>,
    /// CPU seconds of the broker in the window.
    pub broker_cpu_s: Option<f64>,
    /// conns: seconds to connect everything.
    pub connect_s: Option<f64>,
    /// conns: connections per second.
    pub connects_per_s: Option<f64>,
    /// Broker RSS before connecting, KiB.
    pub rss_before_kib: Option<u64>,
    /// Broker RSS with every connection open, KiB.
    pub rss_after_kib: Option<u64>,
    /// conns: broker memory per connection, bytes.
    pub bytes_per_connection: Option<f64>,
    /// retained: slowest subscriber's time to receive everything, seconds.
    pub retained_s: Option<f64>,
    /// Client failures.
    pub error_count: usize,
    /// The first few failures.
    pub errors: Vec<String>,
    /// Why the run is not valid; empty when it is.
    pub invalid: Vec<String>,
}

impl RunResult {
    /// An empty result describing `workload`.
    pub fn new(workload: &Workload, plan: &Plan) -> RunResult {
        RunResult {
            scenario: workload.scenario.name().to_string(),
            broker: workload.broker_name.clone(),
            protocol: match workload.protocol {
                Protocol::V5 => "5.0",
                Protocol::V311 => "3.1.1",
                Protocol::V31 => "3.1",
            }
            .to_string(),
            transport: if workload.tls.is_some() { "tls" } else { "tcp" }.to_string(),
            auth: workload.credentials.label().to_string(),
            qos: workload.qos as u8,
            publishers: plan
                .clients
                .iter()
                .filter(|c| {
                    matches!(
                        c.role,
                        Role::Publisher { .. } | Role::RetainedPublisher { .. }
                    )
                })
                .count(),
            subscribers: plan.subscribers(),
            connections: plan.clients.len(),
            payload: workload.payload.max(crate::payload::HEADER_LEN),
            window: workload.window,
            rate: workload.rate,
            threads: workload.threads,
            topics: if workload.scenario == Scenario::Retained {
                workload.topics
            } else {
                0
            },
            topic_bytes: mean_topic_len(plan),
            topic_alias_max: workload.topic_alias_max,
            ..RunResult::default()
        }
    }

    /// MQTT bytes received per message received, in the window.
    pub fn bytes_per_message(&self) -> Option<f64> {
        (self.received > 0).then(|| self.received_bytes as f64 / self.received as f64)
    }

    /// True when nothing made the run invalid.
    pub fn valid(&self) -> bool {
        self.invalid.is_empty()
    }

    /// The figure `compare` ranks brokers by: its name, value, and whether higher is better.
    pub fn primary(&self) -> (&'static str, f64, bool) {
        match self.scenario.as_str() {
            "latency" => (
                "p99_us",
                self.latency.as_ref().map_or(f64::NAN, |l| l.p99),
                false,
            ),
            "conns" => (
                "connects_per_s",
                self.connects_per_s.unwrap_or(f64::NAN),
                true,
            ),
            "handshakes" => (
                "handshakes_per_s",
                self.connects_per_s.unwrap_or(f64::NAN),
                true,
            ),
            _ => ("received_per_s", self.received_per_s, true),
        }
    }

    /// Broker CPU as a share of one core over the window (1.0 = one full core).
    pub fn broker_cores(&self) -> Option<f64> {
        self.broker_cpu_s.map(|cpu| cpu / self.measured_s.max(1e-9))
    }

    /// Broker CPU per unit of work, in µs: per delivered message in the flow scenarios,
    /// per connection in `handshakes`. Less sensitive than throughput to other load on a
    /// shared machine (which takes cores away but adds little to the broker's own time).
    pub fn broker_us_per_unit(&self) -> Option<f64> {
        let cpu = self.broker_cpu_s?;
        let units = match self.scenario.as_str() {
            "handshakes" => self.connections as f64,
            "conns" | "retained" => return None,
            _ => self.received as f64,
        };
        (units > 0.0).then(|| cpu * 1e6 / units)
    }

    /// What [`RunResult::broker_us_per_unit`] counts.
    pub fn unit(&self) -> &'static str {
        if self.scenario == "handshakes" {
            "handshake"
        } else {
            "message"
        }
    }

    /// Harness CPU as a share of one core over the window.
    pub fn harness_cores(&self) -> Option<f64> {
        self.harness_cpu_s
            .map(|cpu| cpu / self.measured_s.max(1e-9))
    }

    /// One JSON object on one line.
    pub fn to_json(&self) -> String {
        let mut j = Json::default();
        j.str("scenario", &self.scenario);
        j.str("broker", &self.broker);
        j.str("protocol", &self.protocol);
        j.str("transport", &self.transport);
        j.str("auth", &self.auth);
        j.num("qos", f64::from(self.qos));
        j.num("publishers", self.publishers as f64);
        j.num("subscribers", self.subscribers as f64);
        j.num("connections", self.connections as f64);
        j.num("payload", self.payload as f64);
        j.num("window", self.window as f64);
        j.opt("rate", self.rate);
        j.num("threads", self.threads as f64);
        j.num("topics", self.topics as f64);
        j.num("measured_s", self.measured_s);
        j.num("sent", self.sent as f64);
        j.num("received", self.received as f64);
        j.num("received_bytes", self.received_bytes as f64);
        j.opt("bytes_per_message", self.bytes_per_message());
        j.num("topic_bytes", self.topic_bytes);
        j.num("topic_alias_max", f64::from(self.topic_alias_max));
        j.num("sent_per_s", self.sent_per_s);
        j.num("received_per_s", self.received_per_s);
        j.num("sent_total", self.sent_total as f64);
        j.num("confirmed_total", self.confirmed_total as f64);
        j.num("received_total", self.received_total as f64);
        if let Some(l) = &self.latency {
            j.num("latency_count", l.count as f64);
            for (key, value) in [
                ("p50_us", l.p50),
                ("p90_us", l.p90),
                ("p99_us", l.p99),
                ("p999_us", l.p999),
                ("max_us", l.max),
                ("mean_us", l.mean),
            ] {
                j.num(key, value);
            }
        }
        j.num("missing", self.missing as f64);
        j.num("duplicates", self.duplicates as f64);
        j.num("foreign", self.foreign as f64);
        j.num("unacked", self.unacked as f64);
        j.num("rejected", self.rejected as f64);
        j.opt("harness_cpu_s", self.harness_cpu_s);
        j.opt("harness_cores", self.harness_cores());
        j.opt("broker_cpu_s", self.broker_cpu_s);
        j.opt("broker_cores", self.broker_cores());
        j.opt("broker_us_per_unit", self.broker_us_per_unit());
        j.opt("connect_s", self.connect_s);
        j.opt("connects_per_s", self.connects_per_s);
        j.opt("rss_before_kib", self.rss_before_kib.map(|v| v as f64));
        j.opt("rss_after_kib", self.rss_after_kib.map(|v| v as f64));
        j.opt("bytes_per_connection", self.bytes_per_connection);
        j.opt("retained_s", self.retained_s);
        j.num("error_count", self.error_count as f64);
        j.list("errors", &self.errors);
        j.bool("valid", self.valid());
        j.list("invalid", &self.invalid);
        j.finish()
    }

    /// A few human-readable lines.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let verdict = if self.valid() { "valid" } else { "INVALID" };
        let _ = writeln!(
            out,
            "{} [{}] MQTT {} over {}, {}, QoS {}: {} pub, {} sub, {} conns, {} B payload, {} threads — {verdict}",
            self.scenario,
            self.broker,
            self.protocol,
            self.transport,
            self.auth,
            self.qos,
            self.publishers,
            self.subscribers,
            self.connections,
            self.payload,
            self.threads
        );
        if self.sent > 0 || self.received > 0 {
            let _ = writeln!(
                out,
                "  throughput  sent {:>12.0} msg/s   received {:>12.0} msg/s   ({:.2} s window)",
                self.sent_per_s, self.received_per_s, self.measured_s
            );
        }
        if let Some(per_message) = self.bytes_per_message() {
            let _ = writeln!(
                out,
                "  wire        {per_message:.1} B received per message ({:.0} B topics, \
                 topic alias maximum {})",
                self.topic_bytes, self.topic_alias_max
            );
        }
        if let Some(l) = &self.latency {
            let _ = writeln!(
                out,
                "  latency µs  p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  ({} samples)",
                l.p50, l.p90, l.p99, l.p999, l.max, l.count
            );
        }
        if let (Some(rate), Some(secs)) = (self.connects_per_s, self.connect_s) {
            let what = if self.scenario == "handshakes" {
                "handshakes"
            } else {
                "connects  "
            };
            let _ = writeln!(out, "  {what}  {rate:.0}/s ({secs:.2} s for all)");
        }
        if let Some(bytes) = self.bytes_per_connection {
            let _ = writeln!(
                out,
                "  memory      {:.0} B per connection (RSS {} → {} KiB)",
                bytes,
                self.rss_before_kib.unwrap_or(0),
                self.rss_after_kib.unwrap_or(0)
            );
        }
        if let Some(secs) = self.retained_s {
            let _ = writeln!(
                out,
                "  retained    {} topics × {} subscribers in {:.3} s ({:.0} msg/s)",
                self.topics, self.subscribers, secs, self.received_per_s
            );
        }
        let cores = |v: Option<f64>| v.map_or("n/a".to_string(), |c| format!("{:.0}%", c * 100.0));
        let _ = writeln!(
            out,
            "  cpu         broker {}   harness {}   (100% = one core)",
            cores(self.broker_cores()),
            cores(self.harness_cores())
        );
        if let Some(us) = self.broker_us_per_unit() {
            let _ = writeln!(out, "  broker cpu  {us:.3} µs per {}", self.unit());
        }
        let _ = writeln!(
            out,
            "  delivery    missing {}  duplicates {}  foreign {}  unacked {}  rejected {}",
            self.missing, self.duplicates, self.foreign, self.unacked, self.rejected
        );
        for reason in &self.invalid {
            let _ = writeln!(out, "  invalid:    {reason}");
        }
        for error in &self.errors {
            let _ = writeln!(out, "  error:      {error}");
        }
        out
    }
}

/// A minimal writer of one flat JSON object.
#[derive(Default)]
pub struct Json {
    out: String,
}

impl Json {
    fn key(&mut self, key: &str) {
        self.out.push(if self.out.is_empty() { '{' } else { ',' });
        self.out.push_str(&quote(key));
        self.out.push(':');
    }

    /// A number (non-finite numbers become null).
    pub fn num(&mut self, key: &str, value: f64) {
        self.key(key);
        if !value.is_finite() {
            self.out.push_str("null");
        } else if value.fract() == 0.0 && value.abs() < 1e15 {
            let _ = write!(self.out, "{}", value as i64);
        } else {
            let _ = write!(self.out, "{value:.3}");
        }
    }

    /// A number or null.
    pub fn opt(&mut self, key: &str, value: Option<f64>) {
        match value {
            Some(value) => self.num(key, value),
            None => {
                self.key(key);
                self.out.push_str("null");
            }
        }
    }

    /// A string.
    pub fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(&quote(value));
    }

    /// A boolean.
    pub fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    /// A list of strings.
    pub fn list(&mut self, key: &str, values: &[String]) {
        self.key(key);
        let items: Vec<String> = values.iter().map(|v| quote(v)).collect();
        let _ = write!(self.out, "[{}]", items.join(","));
    }

    /// Raw JSON (an object or list already rendered).
    pub fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.out.push_str(json);
    }

    /// The object.
    pub fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push('{');
        }
        self.out.push('}');
        self.out
    }
}

/// Mean length of the topics the publishers of `plan` write to (0 without publishers).
fn mean_topic_len(plan: &Plan) -> f64 {
    let lengths: Vec<usize> = plan
        .clients
        .iter()
        .filter_map(|c| match &c.role {
            Role::Publisher { topic, .. } => Some(topic.len()),
            _ => None,
        })
        .collect();
    if lengths.is_empty() {
        return 0.0;
    }
    lengths.iter().sum::<usize>() as f64 / lengths.len() as f64
}

/// A JSON string literal.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_one_flat_object() {
        let mut j = Json::default();
        j.str("name", "a \"b\"\n");
        j.num("int", 3.0);
        j.num("frac", 0.5);
        j.opt("none", None);
        j.num("nan", f64::NAN);
        j.bool("ok", true);
        j.list("l", &["x".to_string()]);
        assert_eq!(
            j.finish(),
            r#"{"name":"a \"b\"\n","int":3,"frac":0.500,"none":null,"nan":null,"ok":true,"l":["x"]}"#
        );
        assert_eq!(Json::default().finish(), "{}");
    }

    #[test]
    fn result_json_flags_invalid_runs() {
        let mut result = RunResult {
            scenario: "qos1".into(),
            ..RunResult::default()
        };
        assert!(result.to_json().contains(r#""valid":true"#));
        result.invalid.push("3 lost".into());
        let json = result.to_json();
        assert!(
            json.contains(r#""valid":false,"invalid":["3 lost"]"#),
            "{json}"
        );
        assert!(!json.contains('\n'));
        assert!(result.to_table().contains("INVALID"));
    }
}
