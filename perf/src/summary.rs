//! Medians over repeats and per-repeat ratios between brokers: the numbers `compare`
//! reports and the SVG chart draws.
//!
//! Owns [`CaseSummary`] and the arithmetic (pure, tested). Following the project's rule,
//! a comparison is the median of per-repeat ratios of runs made in the same session,
//! interleaved; invalid runs are left out of medians and ratios, and counted.

use crate::json::Value;
use crate::report::{quote, Json, RunResult};
use std::fmt::Write as _;

/// One broker's figures over the repeats of one case.
#[derive(Clone, Debug, Default)]
pub struct BrokerSummary {
    /// Broker name.
    pub name: String,
    /// Runs made.
    pub runs: usize,
    /// Runs that were valid.
    pub valid_runs: usize,
    /// Median of the primary metric over valid runs.
    pub median: Option<f64>,
    /// Median of the primary metric over all runs, invalid ones included (what the broker
    /// did while it misbehaved; never used for ratios).
    pub median_all: Option<f64>,
    /// Median messages/s sent by publishers.
    pub sent_per_s: Option<f64>,
    /// Median broker CPU (cores).
    pub broker_cores: Option<f64>,
    /// Median harness CPU (cores).
    pub harness_cores: Option<f64>,
    /// Median latency percentiles in µs: p50, p90, p99, p99.9, max.
    pub latency: Option<[f64; 5]>,
    /// Median bytes per connection (conns).
    pub bytes_per_connection: Option<f64>,
    /// Median broker CPU µs per delivered message (or per handshake).
    pub broker_us_per_unit: Option<f64>,
}

/// One case (a scenario, or one payload size) across brokers.
#[derive(Clone, Debug, Default)]
pub struct CaseSummary {
    /// Label, e.g. `pairs` or `payload 4096 B`.
    pub label: String,
    /// Name of the primary metric.
    pub metric: String,
    /// Whether a higher metric is better.
    pub higher_is_better: bool,
    /// Per broker, in the order given.
    pub brokers: Vec<BrokerSummary>,
    /// `(a/b, median of per-repeat ratios a/b)` for every broker a against the baseline b.
    pub ratios: Vec<(String, f64)>,
    /// The same for the broker's CPU per message (or handshake); lower is cheaper.
    pub cpu_ratios: Vec<(String, f64)>,
}

/// Median of the finite values; None when there are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The label of the case a result belongs to.
pub fn case_label(result: &RunResult) -> String {
    if result.scenario == "payload" {
        format!("payload {} B", result.payload)
    } else {
        result.scenario.clone()
    }
}

/// Summarises `runs[repeat][broker]` (every repeat has one result per broker, in the
/// order of `names`), with ratios against `baseline`.
pub fn summarise(names: &[String], runs: &[Vec<RunResult>], baseline: usize) -> CaseSummary {
    let Some(first) = runs.first().and_then(|r| r.first()) else {
        return CaseSummary::default();
    };
    let (metric, _, higher_is_better) = first.primary();
    let brokers = names
        .iter()
        .enumerate()
        .map(|(b, name)| {
            let all: Vec<&RunResult> = runs.iter().filter_map(|r| r.get(b)).collect();
            let valid: Vec<&RunResult> = all.iter().copied().filter(|r| r.valid()).collect();
            let med =
                |f: &dyn Fn(&RunResult) -> Option<f64>| median(valid.iter().filter_map(|r| f(r)));
            let latency = (|| {
                Some([
                    med(&|r| r.latency.as_ref().map(|l| l.p50))?,
                    med(&|r| r.latency.as_ref().map(|l| l.p90))?,
                    med(&|r| r.latency.as_ref().map(|l| l.p99))?,
                    med(&|r| r.latency.as_ref().map(|l| l.p999))?,
                    med(&|r| r.latency.as_ref().map(|l| l.max))?,
                ])
            })();
            BrokerSummary {
                name: name.clone(),
                runs: all.len(),
                valid_runs: valid.len(),
                median: med(&|r| Some(r.primary().1)),
                median_all: median(all.iter().map(|r| r.primary().1)),
                sent_per_s: med(&|r| Some(r.sent_per_s)),
                broker_cores: med(&|r| r.broker_cores()),
                harness_cores: med(&|r| r.harness_cores()),
                latency,
                bytes_per_connection: med(&|r| r.bytes_per_connection),
                broker_us_per_unit: med(&|r| r.broker_us_per_unit()),
            }
        })
        .collect();
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    for (b, name) in names.iter().enumerate() {
        if b == baseline {
            continue;
        }
        let per_repeat = runs.iter().filter_map(|r| {
            let (a, base) = (r.get(b)?, r.get(baseline)?);
            (a.valid() && base.valid()).then(|| a.primary().1 / base.primary().1)
        });
        if let Some(ratio) = median(per_repeat) {
            ratios.push((format!("{name}/{}", names[baseline]), ratio));
        }
        let per_repeat_cpu = runs.iter().filter_map(|r| {
            let (a, base) = (r.get(b)?, r.get(baseline)?);
            if !(a.valid() && base.valid()) {
                return None;
            }
            Some(a.broker_us_per_unit()? / base.broker_us_per_unit()?)
        });
        if let Some(ratio) = median(per_repeat_cpu) {
            cpu_ratios.push((format!("{name}/{}", names[baseline]), ratio));
        }
    }
    CaseSummary {
        label: case_label(first),
        metric: metric.to_string(),
        higher_is_better,
        brokers,
        ratios,
        cpu_ratios,
    }
}

impl CaseSummary {
    /// One JSON line: `{"compare":label, "metric":..., "brokers":{...}, "ratios":{...}}`.
    pub fn to_json(&self) -> String {
        let mut j = Json::default();
        j.str("compare", &self.label);
        j.str("metric", &self.metric);
        j.bool("higher_is_better", self.higher_is_better);
        let brokers: Vec<String> = self
            .brokers
            .iter()
            .map(|b| {
                let mut o = Json::default();
                o.num("runs", b.runs as f64);
                o.num("valid_runs", b.valid_runs as f64);
                o.opt("median", b.median);
                o.opt("median_all", b.median_all);
                o.opt("sent_per_s", b.sent_per_s);
                o.opt("broker_cores", b.broker_cores);
                o.opt("harness_cores", b.harness_cores);
                o.opt("bytes_per_connection", b.bytes_per_connection);
                o.opt("broker_us_per_unit", b.broker_us_per_unit);
                if let Some(l) = b.latency {
                    for (key, v) in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"]
                        .iter()
                        .zip(l)
                    {
                        o.num(key, v);
                    }
                }
                format!("{}:{}", quote(&b.name), o.finish())
            })
            .collect();
        j.raw("brokers", &format!("{{{}}}", brokers.join(",")));
        let ratios: Vec<String> = self
            .ratios
            .iter()
            .map(|(k, v)| format!("{}:{v:.3}", quote(k)))
            .collect();
        j.raw("ratios", &format!("{{{}}}", ratios.join(",")));
        let cpu_ratios: Vec<String> = self
            .cpu_ratios
            .iter()
            .map(|(k, v)| format!("{}:{v:.3}", quote(k)))
            .collect();
        j.raw("cpu_ratios", &format!("{{{}}}", cpu_ratios.join(",")));
        j.finish()
    }

    /// Reads back a line written by [`CaseSummary::to_json`]; None for other lines.
    pub fn from_json(value: &Value) -> Option<CaseSummary> {
        let label = value.get("compare")?.string()?.to_string();
        let metric = value.get("metric")?.string()?.to_string();
        let higher_is_better = value.get("higher_is_better") == Some(&Value::Bool(true));
        let brokers = value
            .get("brokers")?
            .members()
            .iter()
            .map(|(name, b)| {
                let n = |key: &str| b.get(key).and_then(Value::number);
                let latency = (|| {
                    Some([
                        n("p50_us")?,
                        n("p90_us")?,
                        n("p99_us")?,
                        n("p999_us")?,
                        n("max_us")?,
                    ])
                })();
                BrokerSummary {
                    name: name.clone(),
                    runs: n("runs").unwrap_or(0.0) as usize,
                    valid_runs: n("valid_runs").unwrap_or(0.0) as usize,
                    median: n("median"),
                    median_all: n("median_all"),
                    sent_per_s: n("sent_per_s"),
                    broker_cores: n("broker_cores"),
                    harness_cores: n("harness_cores"),
                    latency,
                    bytes_per_connection: n("bytes_per_connection"),
                    broker_us_per_unit: n("broker_us_per_unit"),
                }
            })
            .collect();
        let pairs = |key: &str| {
            value
                .get(key)
                .map(|r| {
                    r.members()
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.number()?)))
                        .collect()
                })
                .unwrap_or_default()
        };
        let ratios = pairs("ratios");
        let cpu_ratios = pairs("cpu_ratios");
        Some(CaseSummary {
            label,
            metric,
            higher_is_better,
            brokers,
            ratios,
            cpu_ratios,
        })
    }

    /// A human-readable table.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "== {} — median {} ({} is better)",
            self.label,
            self.metric,
            if self.higher_is_better {
                "higher"
            } else {
                "lower"
            }
        );
        let fmt = |v: Option<f64>, scale: f64, digits: usize| {
            v.map_or("-".to_string(), |v| format!("{:.*}", digits, v * scale))
        };
        let _ = writeln!(
            out,
            "  {:<12} {:>14} {:>12} {:>8} {:>8} {:>9} {:>9} {:>6}",
            "broker", self.metric, "sent/s", "brk cpu%", "hrn cpu%", "p50 µs", "p99 µs", "valid"
        );
        for b in &self.brokers {
            let _ = writeln!(
                out,
                "  {:<12} {:>14} {:>12} {:>8} {:>8} {:>9} {:>9} {:>3}/{:<2}",
                b.name,
                fmt(b.median, 1.0, 0),
                fmt(b.sent_per_s, 1.0, 0),
                fmt(b.broker_cores, 100.0, 0),
                fmt(b.harness_cores, 100.0, 0),
                fmt(b.latency.map(|l| l[0]), 1.0, 0),
                fmt(b.latency.map(|l| l[2]), 1.0, 0),
                b.valid_runs,
                b.runs
            );
            if b.valid_runs < b.runs {
                let _ = writeln!(
                    out,
                    "  {:<12} {:>14} median over all runs, invalid ones included",
                    "",
                    fmt(b.median_all, 1.0, 0)
                );
            }
            if let Some(bytes) = b.bytes_per_connection {
                let _ = writeln!(out, "  {:<12} {:>14.0} bytes per connection", "", bytes);
            }
            if let Some(us) = b.broker_us_per_unit {
                let _ = writeln!(out, "  {:<12} {:>14.3} broker cpu µs per unit", "", us);
            }
        }
        for (name, ratio) in &self.ratios {
            let _ = writeln!(
                out,
                "  ratio {name}: {ratio:.2} (median of per-repeat ratios)"
            );
        }
        for (name, ratio) in &self.cpu_ratios {
            let _ = writeln!(
                out,
                "  broker cpu per unit {name}: {ratio:.2} (median of per-repeat ratios; lower is cheaper)"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(broker: &str, rate: f64, valid: bool) -> RunResult {
        RunResult {
            scenario: "pairs".into(),
            broker: broker.into(),
            received_per_s: rate,
            invalid: if valid { vec![] } else { vec!["lost".into()] },
            ..RunResult::default()
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([f64::NAN]), None);
    }

    #[test]
    fn cpu_per_message_ratios_come_from_broker_cpu_and_deliveries() {
        let costly = |broker: &str, cpu: f64, received: u64| RunResult {
            broker_cpu_s: Some(cpu),
            received,
            ..result(broker, received as f64, true)
        };
        let names = vec!["dynsec".to_string(), "anonymous".to_string()];
        let runs = vec![
            vec![
                costly("dynsec", 3.0, 1_000_000),
                costly("anonymous", 2.0, 1_000_000),
            ],
            vec![
                costly("dynsec", 1.0, 1_000_000),
                costly("anonymous", 1.0, 500_000),
            ],
            vec![
                costly("dynsec", 2.0, 1_000_000),
                costly("anonymous", 1.0, 1_000_000),
            ],
        ];
        let summary = summarise(&names, &runs, 1);
        assert_eq!(summary.brokers[0].broker_us_per_unit, Some(2.0));
        assert_eq!(
            summary.cpu_ratios,
            vec![("dynsec/anonymous".to_string(), 1.5)]
        );
        let parsed = crate::json::parse(&summary.to_json()).expect("valid JSON");
        let back = CaseSummary::from_json(&parsed).expect("a summary line");
        assert_eq!(back.cpu_ratios, summary.cpu_ratios);
        assert_eq!(back.brokers[0].broker_us_per_unit, Some(2.0));
    }

    #[test]
    fn ratios_are_medians_of_per_repeat_ratios_over_valid_runs() {
        let names = vec!["culex".to_string(), "mosquitto".to_string()];
        let runs = vec![
            vec![
                result("culex", 200.0, true),
                result("mosquitto", 100.0, true),
            ],
            vec![
                result("culex", 300.0, true),
                result("mosquitto", 100.0, true),
            ],
            vec![
                result("culex", 900.0, false),
                result("mosquitto", 100.0, true),
            ],
            vec![
                result("culex", 100.0, true),
                result("mosquitto", 100.0, true),
            ],
        ];
        let summary = summarise(&names, &runs, 1);
        assert_eq!(summary.brokers[0].median, Some(200.0));
        assert_eq!(
            (summary.brokers[0].valid_runs, summary.brokers[0].runs),
            (3, 4)
        );
        assert_eq!(summary.ratios, vec![("culex/mosquitto".to_string(), 2.0)]);
        let json = summary.to_json();
        assert!(
            json.contains(r#""ratios":{"culex/mosquitto":2.000}"#),
            "{json}"
        );
        let parsed = crate::json::parse(&json).expect("valid JSON");
        let back = CaseSummary::from_json(&parsed).expect("a summary line");
        assert_eq!(back.label, "pairs");
        assert_eq!(back.brokers[0].median, Some(200.0));
        assert_eq!((back.brokers[0].valid_runs, back.brokers[1].runs), (3, 4));
        assert_eq!(back.ratios, summary.ratios);
        let other = crate::json::parse(r#"{"scenario":"x"}"#).expect("valid JSON");
        assert!(CaseSummary::from_json(&other).is_none());
        assert!(summary.to_table().contains("ratio culex/mosquitto: 2.00"));
    }
}
