//! The HTTP endpoint of `protocol http_api` listeners: `/metrics` in Prometheus text
//! format, `/healthz` (the process is alive) and `/readyz` (client listeners are open).
//!
//! Pure: [`respond`] turns one request's bytes and a [`View`] of the broker into the
//! response bytes; the runtime (`runtime::http`) owns the socket. Metric names are the ones
//! the common Mosquitto exporter (sapcc/mosquitto-exporter) derives from `$SYS` topics —
//! `$SYS/broker/clients/connected` becomes `broker_clients_connected`, spaces and slashes
//! become `_` — so dashboards built on it keep working; Culex's own figures (connections
//! per listener, batch handling latency) are prefixed `culex_`.

use crate::settings::ListenerSettings;
use crate::stats::{ShardStats, Totals, LATENCY_BUCKETS_US, LISTENERS_MAX};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

/// What the endpoint reports.
pub struct View<'a> {
    /// Counters of every shard.
    pub stats: &'a [ShardStats],
    /// Listeners, in configuration order.
    pub listeners: &'a [ListenerSettings],
    /// Seconds since start.
    pub uptime_s: u64,
    /// Client listeners are open (false while shutting down).
    pub ready: bool,
    /// The version line (`culex version X`).
    pub version: &'a str,
}

/// Largest request accepted.
pub const REQUEST_MAX: usize = 8 * 1024;

/// The answer to `request` (a complete HTTP/1.x request head), or `None` while it is
/// incomplete.
pub fn respond(request: &[u8], view: &View<'_>) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(request) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if request.len() < REQUEST_MAX => return None,
        _ => return Some(reply(400, "text/plain", "bad request\n")),
    }
    if parsed.method != Some("GET") && parsed.method != Some("HEAD") {
        return Some(reply(405, "text/plain", "method not allowed\n"));
    }
    let path = parsed.path.unwrap_or("/").split('?').next().unwrap_or("/");
    Some(match path {
        "/metrics" => reply(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            &metrics(view),
        ),
        "/healthz" => reply(200, "text/plain", "ok\n"),
        "/readyz" if view.ready => reply(200, "text/plain", "ready\n"),
        "/readyz" => reply(503, "text/plain", "not ready\n"),
        _ => reply(404, "text/plain", "not found\n"),
    })
}

fn reply(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Metric kind, for `# TYPE`.
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// The Prometheus text exposition.
pub fn metrics(view: &View<'_>) -> String {
    let t = crate::stats::totals(view.stats);
    let mut out = String::with_capacity(4096);
    // Every shard holds the same retained messages: report one shard's count.
    let retained = view
        .stats
        .first()
        .map_or(0, |s| s.retained.load(Ordering::Relaxed));
    for (name, kind, value, help) in sys_figures(&t, view.uptime_s, retained) {
        metric(&mut out, name, kind, help, value);
    }
    let _ = writeln!(
        out,
        "# HELP broker_version The broker's version.\n# TYPE broker_version gauge"
    );
    let _ = writeln!(out, "broker_version{{version=\"{}\"}} 1", view.version);
    listener_connections(&mut out, view);
    batch_latency(&mut out, view.stats);
    out
}

fn metric(out: &mut String, name: &str, kind: Kind, help: &str, value: u64) {
    let kind = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// The `$SYS` figures under the exporter's names.
fn sys_figures(
    t: &Totals,
    uptime_s: u64,
    retained: u64,
) -> Vec<(&'static str, Kind, u64, &'static str)> {
    use Kind::{Counter, Gauge};
    let disconnected = t.sessions.saturating_sub(t.clients_connected);
    vec![
        (
            "broker_uptime",
            Gauge,
            uptime_s,
            "Seconds since the broker started ($SYS/broker/uptime).",
        ),
        (
            "broker_clients_connected",
            Gauge,
            t.clients_connected,
            "Connected clients.",
        ),
        (
            "broker_clients_disconnected",
            Gauge,
            disconnected,
            "Persistent sessions without a connection.",
        ),
        (
            "broker_clients_total",
            Gauge,
            t.sessions,
            "Sessions, connected or not.",
        ),
        (
            "broker_clients_expired",
            Counter,
            t.clients_expired,
            "Sessions removed by expiry.",
        ),
        (
            "broker_messages_received",
            Counter,
            t.messages_received,
            "MQTT packets received.",
        ),
        (
            "broker_messages_sent",
            Counter,
            t.messages_sent,
            "MQTT packets sent.",
        ),
        (
            "broker_messages_stored",
            Gauge,
            t.stored_messages,
            "Messages held in queues and windows.",
        ),
        (
            "broker_store_messages_bytes",
            Gauge,
            t.stored_bytes,
            "Payload bytes held in queues and windows.",
        ),
        (
            "broker_publish_messages_received",
            Counter,
            t.publish_received,
            "PUBLISH packets received.",
        ),
        (
            "broker_publish_messages_sent",
            Counter,
            t.publish_sent,
            "PUBLISH packets sent.",
        ),
        (
            "broker_publish_messages_dropped",
            Counter,
            t.publish_dropped,
            "Messages dropped by limits.",
        ),
        (
            "broker_publish_bytes_received",
            Counter,
            t.publish_bytes_received,
            "PUBLISH payload bytes received.",
        ),
        (
            "broker_publish_bytes_sent",
            Counter,
            t.publish_bytes_sent,
            "PUBLISH payload bytes sent.",
        ),
        (
            "broker_bytes_received",
            Counter,
            t.bytes_received,
            "Bytes read from sockets.",
        ),
        (
            "broker_bytes_sent",
            Counter,
            t.bytes_sent,
            "Bytes written to sockets.",
        ),
        (
            "broker_subscriptions_count",
            Gauge,
            t.subscriptions,
            "Subscriptions.",
        ),
        (
            "broker_shared_subscriptions_count",
            Gauge,
            t.shared_subscriptions,
            "Shared subscriptions.",
        ),
        (
            "broker_retained_messages_count",
            Gauge,
            retained,
            "Retained messages.",
        ),
        (
            "broker_connections_socket_count",
            Counter,
            t.sockets_opened,
            "Sockets accepted.",
        ),
    ]
}

fn listener_connections(out: &mut String, view: &View<'_>) {
    let name = "culex_listener_connections";
    let _ = writeln!(
        out,
        "# HELP {name} Open connections per listener.\n# TYPE {name} gauge"
    );
    for (index, listener) in view.listeners.iter().enumerate().take(LISTENERS_MAX) {
        let count: u64 = view
            .stats
            .iter()
            .map(|s| s.listener(index).load(Ordering::Relaxed))
            .sum();
        let kind = if listener.http {
            "http"
        } else if listener.websockets.is_some() {
            "websockets"
        } else {
            "mqtt"
        };
        let tls = listener.tls.is_some();
        let _ = writeln!(
            out,
            "{name}{{listener=\"{index}\",port=\"{}\",protocol=\"{kind}\",tls=\"{tls}\"}} {count}",
            listener.port
        );
    }
}

fn batch_latency(out: &mut String, stats: &[ShardStats]) {
    let name = "culex_publish_batch_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time to handle one batch of packets read from a client socket (decode, route, queue deliveries).\n# TYPE {name} histogram"
    );
    let mut cumulative = 0u64;
    for (index, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
        cumulative += stats
            .iter()
            .map(|s| s.batch_latency.buckets[index].load(Ordering::Relaxed))
            .sum::<u64>();
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            *bound as f64 / 1e6
        );
    }
    cumulative += stats
        .iter()
        .map(|s| s.batch_latency.buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed))
        .sum::<u64>();
    let sum_us: u64 = stats
        .iter()
        .map(|s| s.batch_latency.sum_us.load(Ordering::Relaxed))
        .sum();
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {}", sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::bump;

    fn view<'a>(
        stats: &'a [ShardStats],
        listeners: &'a [ListenerSettings],
        ready: bool,
    ) -> View<'a> {
        View {
            stats,
            listeners,
            uptime_s: 42,
            ready,
            version: "culex version 0.1.0",
        }
    }

    #[test]
    fn metrics_use_the_exporter_names_and_sum_the_shards() {
        let stats: Vec<ShardStats> = (0..2).map(|_| ShardStats::default()).collect();
        bump(&stats[0].clients_connected, 2);
        bump(&stats[1].clients_connected, 3);
        bump(stats[1].listener(0), 3);
        stats[0].batch_latency.observe(30);
        let listeners = [ListenerSettings::plain(
            "127.0.0.1:1883".parse().expect("address"),
        )];
        let text = metrics(&view(&stats, &listeners, true));
        assert!(
            text.contains("# TYPE broker_clients_connected gauge\nbroker_clients_connected 5\n"),
            "{text}"
        );
        assert!(text.contains("broker_uptime 42\n"));
        assert!(text.contains("culex_listener_connections{listener=\"0\",port=\"1883\",protocol=\"mqtt\",tls=\"false\"} 3\n"));
        assert!(
            text.contains("culex_publish_batch_seconds_bucket{le=\"0.00005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("culex_publish_batch_seconds_count 1\n"));
    }

    #[test]
    fn routes_health_readiness_and_errors() {
        let stats = [ShardStats::default()];
        let get = |path: &str, ready| {
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            String::from_utf8(
                respond(request.as_bytes(), &view(&stats, &[], ready)).expect("complete"),
            )
            .expect("utf-8")
        };
        assert!(get("/healthz", false).starts_with("HTTP/1.1 200"));
        assert!(get("/readyz", true).starts_with("HTTP/1.1 200"));
        assert!(get("/readyz", false).starts_with("HTTP/1.1 503"));
        assert!(get("/nope", true).starts_with("HTTP/1.1 404"));
        assert!(respond(b"GET /metrics HTTP/1.1\r\nHo", &view(&stats, &[], true)).is_none());
        let post =
            respond(b"POST /metrics HTTP/1.1\r\n\r\n", &view(&stats, &[], true)).expect("complete");
        assert!(post.starts_with(b"HTTP/1.1 405"));
    }
}
