//! The HTTP endpoint of `protocol http_api` listeners: `/metrics` in Prometheus text
//! format, `/healthz` (the process is alive) and `/readyz` (client listeners are open).
//!
//! Pure: [`respond`] turns one request's bytes and a [`View`] of the broker into the
//! response bytes; the runtime (`runtime::http`) owns the socket. The broker figures come
//! from `figures::FIGURES`, the table `$SYS` publishes from too: names derived from the
//! `$SYS` topic (`$SYS/broker/clients/connected` becomes `broker_clients_connected`) and
//! adjusted to Prometheus' rules (counters end in `_total`, gauges never in `_total` or
//! `_count`); each HELP text names the topic and the former name. Culex's own figures
//! (connections per listener, batch handling latency) are prefixed `culex_`.

use crate::figures::{Figure, Snapshot, FIGURES};
use crate::settings::ListenerSettings;
use crate::stats::{ShardStats, LATENCY_BUCKETS_US, LISTENERS_MAX};
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
    /// The cluster's figures, when the HA module is loaded.
    pub cluster: Option<crate::cluster_status::Reading>,
}

pub use crate::limits::HTTP_REQUEST_MAX as REQUEST_MAX;

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

/// The Prometheus text exposition.
pub fn metrics(view: &View<'_>) -> String {
    let snapshot = Snapshot::take(view.stats);
    let mut out = String::with_capacity(8192);
    let _ = writeln!(
        out,
        "# HELP broker_uptime_seconds Seconds since the broker started \
         ($SYS/broker/uptime; formerly broker_uptime).\n\
         # TYPE broker_uptime_seconds gauge\nbroker_uptime_seconds {}",
        view.uptime_s
    );
    for figure in FIGURES {
        figure_metric(&mut out, figure, (figure.value)(&snapshot));
    }
    let _ = writeln!(
        out,
        "# HELP broker_version The broker's version.\n# TYPE broker_version gauge"
    );
    let _ = writeln!(out, "broker_version{{version=\"{}\"}} 1", view.version);
    let name = "broker_connections_socket_total";
    let _ = writeln!(
        out,
        "# HELP {name} Sockets accepted (formerly broker_connections_socket_count).\n\
         # TYPE {name} counter\n{name} {}",
        snapshot.totals.sockets_opened
    );
    listener_connections(&mut out, view);
    batch_latency(&mut out, view.stats);
    if let Some(cluster) = &view.cluster {
        crate::cluster_status::metrics(&mut out, cluster);
    }
    out
}

/// One figure of the shared table: HELP names its `$SYS` topics and its former name.
fn figure_metric(out: &mut String, figure: &Figure, value: u64) {
    let name = figure.metric;
    let _ = write!(
        out,
        "# HELP {name} {} ({}",
        figure.help,
        figure.topics.join(", ")
    );
    if let Some(former) = figure.former {
        let _ = write!(out, "; formerly {former}");
    }
    let _ = writeln!(
        out,
        ").\n# TYPE {name} {}\n{name} {value}",
        figure.kind.name()
    );
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
            cluster: None,
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
        assert!(text.contains("broker_uptime_seconds 42\n"));
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
