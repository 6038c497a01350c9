//! A hand-written SVG chart of case summaries: per case, bars of the primary metric per
//! broker (medians), and where latency was measured, percentile lines per broker on a
//! logarithmic axis.
//!
//! Owns the layout (small multiples, three panels per row) and the drawing. Pure: returns
//! the document as a string; `main` and `compare` write it to `--svg FILE`.

use crate::summary::CaseSummary;
use std::fmt::Write as _;

const PANEL_W: f64 = 320.0;
const PANEL_H: f64 = 230.0;
const COLUMNS: usize = 3;
const PALETTE: [&str; 6] = [
    "#d9480f", "#1c7ed6", "#2b8a3e", "#7048e8", "#e67700", "#495057",
];
const PERCENTILES: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];

/// The chart for `cases`.
pub fn render(cases: &[CaseSummary]) -> String {
    let mut panels: Vec<String> = Vec::new();
    for case in cases {
        panels.push(bars(case));
        if case.brokers.iter().any(|b| b.latency.is_some()) {
            panels.push(latency_lines(case));
        }
    }
    let rows = panels.len().div_ceil(COLUMNS).max(1);
    let width = PANEL_W * COLUMNS.min(panels.len().max(1)) as f64;
    let legend_h = 30.0;
    let height = PANEL_H * rows as f64 + legend_h;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let names: Vec<&str> = cases
        .first()
        .map(|c| c.brokers.iter().map(|b| b.name.as_str()).collect())
        .unwrap_or_default();
    for (i, name) in names.iter().enumerate() {
        let x = 10.0 + 120.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="10" width="12" height="12" fill="{}"/><text x="{}" y="20">{}</text>"#,
            PALETTE[i % PALETTE.len()],
            x + 16.0,
            escape(name)
        );
    }
    for (i, panel) in panels.iter().enumerate() {
        let x = PANEL_W * (i % COLUMNS) as f64;
        let y = legend_h + PANEL_H * (i / COLUMNS) as f64;
        let _ = writeln!(out, r#"<g transform="translate({x},{y})">{panel}</g>"#);
    }
    out.push_str("</svg>\n");
    out
}

/// Bars of the primary metric, one per broker, with value labels.
fn bars(case: &CaseSummary) -> String {
    let mut out = String::new();
    let title = format!("{} — {}", case.label, metric_title(&case.metric));
    let _ = write!(
        out,
        r#"<text x="10" y="16" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    let max = case
        .brokers
        .iter()
        .filter_map(|b| b.median.or(b.median_all))
        .fold(0.0f64, f64::max);
    let (left, top, plot_h) = (40.0, 30.0, PANEL_H - 75.0);
    let slot = (PANEL_W - left - 20.0) / case.brokers.len().max(1) as f64;
    let _ = write!(
        out,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        top + plot_h,
        PANEL_W - 20.0,
        top + plot_h
    );
    for (i, broker) in case.brokers.iter().enumerate() {
        let x = left + slot * i as f64 + slot * 0.2;
        let w = slot * 0.6;
        let color = PALETTE[i % PALETTE.len()];
        match broker.median {
            Some(value) if max > 0.0 => {
                let h = plot_h * value / max;
                let y = top + plot_h - h;
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                    x + w / 2.0,
                    y - 3.0,
                    human(value)
                );
            }
            None if max > 0.0 && broker.median_all.is_some_and(|v| v > 0.0) => {
                // Only invalid runs: drawn hollow, labelled as such.
                let value = broker.median_all.unwrap_or(0.0);
                let h = plot_h * value / max;
                let y = top + plot_h - h;
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="{color}" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" text-anchor="middle">invalid: {}</text>"#,
                    x + w / 2.0,
                    y - 3.0,
                    human(value)
                );
            }
            _ => {
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no valid run</text>"#,
                    x + w / 2.0,
                    top + plot_h - 5.0
                );
            }
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x + w / 2.0,
            top + plot_h + 14.0,
            escape(&broker.name)
        );
    }
    for (k, (name, ratio)) in case.ratios.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{left}" y="{:.1}">{} = {ratio:.2}</text>"#,
            top + plot_h + 32.0 + 13.0 * k as f64,
            escape(name)
        );
    }
    out
}

/// Latency percentile lines per broker, log-scaled µs.
fn latency_lines(case: &CaseSummary) -> String {
    let mut out = String::new();
    let title = format!("{} — latency µs (log)", case.label);
    let _ = write!(
        out,
        r#"<text x="10" y="16" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    let values: Vec<f64> = case
        .brokers
        .iter()
        .filter_map(|b| b.latency)
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1.0)
        .log10()
        .floor();
    let hi = values
        .iter()
        .copied()
        .fold(1.0f64, f64::max)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let (left, top, plot_w, plot_h) = (50.0, 30.0, PANEL_W - 70.0, PANEL_H - 75.0);
    let y_of = |v: f64| top + plot_h - plot_h * (v.max(1.0).log10() - lo) / (hi - lo);
    let x_of = |i: usize| left + plot_w * i as f64 / (PERCENTILES.len() - 1) as f64;
    let mut decade = lo;
    while decade <= hi {
        let y = y_of(10f64.powf(decade));
        let _ = write!(
            out,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + plot_w,
            left - 4.0,
            y + 4.0,
            human(10f64.powf(decade))
        );
        decade += 1.0;
    }
    for (i, label) in PERCENTILES.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            x_of(i),
            top + plot_h + 14.0
        );
    }
    for (b, broker) in case.brokers.iter().enumerate() {
        let Some(latency) = broker.latency else {
            continue;
        };
        let color = PALETTE[b % PALETTE.len()];
        let points: Vec<String> = latency
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x_of(i), y_of(*v)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for (i, v) in latency.iter().enumerate() {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"><title>{} {}: {v:.0} µs</title></circle>"#,
                x_of(i),
                y_of(*v),
                escape(&broker.name),
                PERCENTILES[i]
            );
        }
    }
    out
}

fn metric_title(metric: &str) -> &str {
    match metric {
        "received_per_s" => "delivered msg/s",
        "connects_per_s" => "connects/s",
        "handshakes_per_s" => "handshakes/s",
        "p99_us" => "p99 µs",
        other => other,
    }
}

/// 1234567 → "1.23M".
fn human(value: f64) -> String {
    let abs = value.abs();
    if abs >= 1e9 {
        format!("{:.2}G", value / 1e9)
    } else if abs >= 1e6 {
        format!("{:.2}M", value / 1e6)
    } else if abs >= 1e4 {
        format!("{:.1}k", value / 1e3)
    } else if abs >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::BrokerSummary;

    #[test]
    fn chart_has_bars_lines_and_labels() {
        let case = CaseSummary {
            label: "latency".into(),
            metric: "p99_us".into(),
            higher_is_better: false,
            brokers: vec![
                BrokerSummary {
                    name: "culex".into(),
                    median: Some(250.0),
                    latency: Some([80.0, 120.0, 250.0, 900.0, 4000.0]),
                    ..BrokerSummary::default()
                },
                BrokerSummary {
                    name: "mosquitto<&>".into(),
                    median: None,
                    ..BrokerSummary::default()
                },
            ],
            ratios: vec![],
            cpu_ratios: vec![],
        };
        let svg = render(&[case]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 3, "2 legend boxes + 1 bar");
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("mosquitto&lt;&amp;&gt;"));
        assert!(svg.contains("no valid run"));
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(1_234_567.0), "1.23M");
        assert_eq!(human(45_600.0), "45.6k");
        assert_eq!(human(512.0), "512");
        assert_eq!(human(0.5), "0.50");
    }
}
