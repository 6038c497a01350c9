//! `compare`: for every case, every repeat and every broker, start the broker fresh, run
//! the case, stop the broker; alternate the order per repeat (A B, B A, ...); then report
//! medians per broker and the median of per-repeat ratios against the baseline.
//!
//! Owns the repeat loop and the broker lifecycle around each run, and the per-broker set
//! up: a TLS listener (`--tls`, `--broker-opts NAME=tls`) with certificates made once per
//! comparison in a temporary directory, the dynamic-security plugin with a generated
//! file (`--dynsec`, `--broker-opts NAME=dynsec`), extra lines (`--broker-conf`). The
//! same binary under two names with different options compares two configurations.
//! Results go out as they come (table on stderr, JSON lines), then one summary per case,
//! then the SVG.

use crate::broker::{Broker, BrokerConfig, DynsecSetup, Probe, ServerTls};
use crate::certs::Certs;
use crate::cli::{BrokerSpec, CompareArgs, WorkloadArgs};
use crate::dynsec;
use crate::engine;
use crate::output::Sink;
use crate::report::RunResult;
use crate::scenario::{Credentials, Scenario, Workload};
use crate::summary::{self, CaseSummary};
use crate::tls::{self, TlsOptions};
use std::net::SocketAddr;
use std::sync::Arc;

/// The workloads of `scenario`: one, or one per payload size for `payload`.
pub fn cases(args: &WorkloadArgs, scenario: Scenario, broker: SocketAddr) -> Vec<Workload> {
    let base = args.workload(scenario, broker);
    if scenario != Scenario::Payload {
        return vec![base];
    }
    base.sizes
        .iter()
        .map(|&size| Workload {
            payload: size,
            ..base.clone()
        })
        .collect()
}

/// The order brokers run in for `repeat`: as given on even repeats, reversed on odd ones.
pub fn order(brokers: usize, repeat: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..brokers).collect();
    if repeat % 2 == 1 {
        order.reverse();
    }
    order
}

/// What every broker of a comparison shares: the certificates and the dynsec file.
struct Shared {
    certs: Option<Certs>,
    dynsec_text: Option<Arc<String>>,
}

/// Runs the comparison; returns the summaries and whether every run was valid. The
/// throwaway certificates are removed at the end, whatever happened.
pub fn compare(args: &CompareArgs, sink: &mut Sink) -> Result<(Vec<CaseSummary>, bool), String> {
    let certs = if args.any_tls() {
        let dir = std::env::temp_dir().join(format!("culex-perf-{}-certs", std::process::id()));
        let certs = Certs::generate(&dir, args.tls_key_type);
        if certs.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        eprintln!(
            "TLS: throwaway CA and {} server certificate in {}",
            args.tls_key_type.name(),
            dir.display()
        );
        Some(certs?)
    } else {
        None
    };
    let dynsec_text = if args.any_dynsec() {
        eprintln!("dynamic security: {}", args.dynsec_shape.describe());
        match dynsec::file_text(&args.dynsec_shape) {
            Ok(text) => Some(Arc::new(text)),
            Err(error) => {
                if let Some(certs) = &certs {
                    certs.remove();
                }
                return Err(error);
            }
        }
    } else {
        None
    };
    let shared = Shared { certs, dynsec_text };
    let outcome = compare_all(args, &shared, sink);
    if let Some(certs) = &shared.certs {
        certs.remove();
    }
    outcome
}

fn compare_all(
    args: &CompareArgs,
    shared: &Shared,
    sink: &mut Sink,
) -> Result<(Vec<CaseSummary>, bool), String> {
    let names: Vec<String> = args.brokers.iter().map(|b| b.name.clone()).collect();
    let baseline = match &args.baseline {
        Some(name) => names.iter().position(|n| n == name).unwrap_or(0),
        None => names
            .iter()
            .position(|n| n.contains("mosquitto"))
            .unwrap_or(names.len() - 1),
    };
    let placeholder: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut summaries = Vec::new();
    let mut all_valid = true;
    for &scenario in &args.scenarios {
        for case in cases(&args.workload, scenario, placeholder) {
            let mut runs: Vec<Vec<RunResult>> = Vec::new();
            for repeat in 0..args.repeats {
                let mut row: Vec<Option<RunResult>> = vec![None; names.len()];
                for b in order(names.len(), repeat) {
                    let result = run_once(args, shared, b, &case)?;
                    eprintln!(
                        "repeat {}/{}: {}",
                        repeat + 1,
                        args.repeats,
                        result.to_table()
                    );
                    sink.result(&result)?;
                    all_valid &= result.valid();
                    row[b] = Some(result);
                }
                runs.push(row.into_iter().flatten().collect());
            }
            let summary = summary::summarise(&names, &runs, baseline);
            eprintln!("{}", summary.to_table());
            sink.line(&summary.to_json())?;
            summaries.push(summary);
        }
    }
    Ok((summaries, all_valid))
}

/// The config of broker `spec` for `case`, and how its clients connect (pure but for
/// reading the CA file when TLS is on).
fn setup(
    args: &CompareArgs,
    shared: &Shared,
    spec: &BrokerSpec,
    case: &Workload,
) -> Result<(BrokerConfig, Option<TlsOptions>, Credentials), String> {
    let mut config = BrokerConfig {
        threads: args.culex_threads,
        max_queued: Some(args.max_queued),
        max_queued_bytes: Some(args.max_queued_bytes),
        max_inflight: Some(args.max_inflight.unwrap_or(case.window as u64)),
        extra: args.conf_lines.clone(),
        tls: None,
        dynsec: None,
    };
    config.extra.extend(spec.conf_lines.iter().cloned());
    let mut tls = None;
    if spec.uses_tls(args.workload.tls) {
        let certs = shared
            .certs
            .as_ref()
            .ok_or("internal: TLS broker without certificates")?;
        config.tls = Some(ServerTls {
            cert: certs.cert.clone(),
            key: certs.key.clone(),
        });
        tls = Some(TlsOptions {
            cafile: Some(certs.ca.clone()),
            ..args.workload.tls_options.clone()
        });
    }
    let mut credentials = Credentials::Anonymous;
    if spec.uses_dynsec(args.dynsec) {
        let text = shared
            .dynsec_text
            .clone()
            .ok_or("internal: dynsec broker without a dynsec file")?;
        config.dynsec = Some(DynsecSetup {
            plugin: args.dynsec_plugin.clone(),
            file_text: text,
        });
        credentials = Credentials::Dynsec {
            clients: args.dynsec_shape.clients,
        };
    }
    Ok((config, tls, credentials))
}

/// Starts broker `b`, runs `case` against it, stops it, and notes in the result whether
/// the broker died or had to be killed.
fn run_once(
    args: &CompareArgs,
    shared: &Shared,
    b: usize,
    case: &Workload,
) -> Result<RunResult, String> {
    let spec = &args.brokers[b];
    let (config, tls_options, credentials) = setup(args, shared, spec, case)?;
    let probe = Probe {
        tls: match &tls_options {
            Some(options) => Some(tls::client_config(options, [127, 0, 0, 1].into())?),
            None => None,
        },
        credentials: credentials.of(0),
    };
    let mut broker = Broker::start(&spec.path, &spec.name, &config, &probe)?;
    let workload = Workload {
        broker: broker.address,
        broker_pid: Some(broker.pid()),
        broker_name: spec.name.clone(),
        tls: tls_options,
        credentials,
        ..case.clone()
    };
    let mut result = engine::run(&workload);
    let ended = broker.stop();
    if ended.died_early {
        result.invalid.push(format!(
            "{} exited during the run ({}); log tail:\n{}",
            spec.name, ended.status, ended.log_tail
        ));
        eprintln!("broker files kept in {}", broker.dir.display());
    } else {
        if ended.killed {
            result
                .errors
                .push(format!("{} ignored SIGTERM and was killed", spec.name));
        }
        broker.remove_dir();
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_alternates() {
        assert_eq!(order(2, 0), vec![0, 1]);
        assert_eq!(order(2, 1), vec![1, 0]);
        assert_eq!(order(3, 2), vec![0, 1, 2]);
    }

    #[test]
    fn payload_expands_to_one_case_per_size() {
        let args = WorkloadArgs {
            sizes: Some(vec![16, 262_144]),
            ..WorkloadArgs::default()
        };
        let addr: SocketAddr = ([127, 0, 0, 1], 1).into();
        let sizes: Vec<usize> = cases(&args, Scenario::Payload, addr)
            .iter()
            .map(|w| w.payload)
            .collect();
        assert_eq!(sizes, vec![16, 262_144]);
        assert_eq!(cases(&args, Scenario::Pairs, addr).len(), 1);
    }
}
