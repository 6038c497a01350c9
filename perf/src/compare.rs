//! `compare`: for every case, every repeat and every broker, start the broker fresh, run
//! the case, stop the broker; alternate the order per repeat (A B, B A, ...); then report
//! medians per broker and the median of per-repeat ratios against the baseline.
//!
//! Owns the repeat loop and the broker lifecycle around each run. Results go out as they
//! come (table on stderr, JSON lines), then one summary per case, then the SVG.

use crate::broker::{Broker, BrokerConfig};
use crate::cli::{CompareArgs, WorkloadArgs};
use crate::engine;
use crate::output::Sink;
use crate::report::RunResult;
use crate::scenario::{Scenario, Workload};
use crate::summary::{self, CaseSummary};
use std::net::SocketAddr;

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

/// Runs the comparison; returns the summaries and whether every run was valid.
pub fn compare(args: &CompareArgs, sink: &mut Sink) -> Result<(Vec<CaseSummary>, bool), String> {
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
                    let result = run_once(args, b, &case)?;
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

/// Starts broker `b`, runs `case` against it, stops it, and notes in the result whether
/// the broker died or had to be killed.
fn run_once(args: &CompareArgs, b: usize, case: &Workload) -> Result<RunResult, String> {
    let spec = &args.brokers[b];
    let config = BrokerConfig {
        threads: args.culex_threads,
        max_queued: Some(args.max_queued),
        max_queued_bytes: Some(args.max_queued_bytes),
        max_inflight: Some(args.max_inflight.unwrap_or(case.window as u64)),
        extra: args.conf_lines.clone(),
    };
    let mut broker = Broker::start(&spec.path, &spec.name, &config)?;
    let workload = Workload {
        broker: broker.address,
        broker_pid: Some(broker.pid()),
        broker_name: spec.name.clone(),
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
