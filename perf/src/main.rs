//! culex-perf: the load-test harness of Culex. Measures an MQTT broker (Culex, Mosquitto,
//! any other) with thread-per-core monoio clients using the broker's own codec, and
//! compares brokers run fresh, interleaved, in the same session.
//!
//! Brief overview:
//!
//! ```text
//!   cli ─► run ──────► engine ─► roles (per thread: client tasks) ─► client ─► socket
//!      │                                                      (tls: rustls by hand)
//!      ├─► compare ─► certs + dynsec (once), broker (start/stop) + engine, repeated
//!      │              ─► summary ─► svg
//!      ├─► smoke ───► broker + engine per scenario ─► pass/fail
//!      ├─► dynsec-file ─► dynsec (a generated dynamic-security.json)
//!      └─► cluster ─► three Culex nodes: dynsec commit latency, failover
//!   engine ─► tracker (loss, duplicates) + procstat (CPU, RSS) ─► report (JSON, table)
//! ```
//!
//! Performance is what this tool measures; tests never assert it (CONTRIBUTING.md).

mod broker;
mod certs;
mod cli;
mod client;
mod cluster;
mod compare;
mod dynsec;
mod engine;
mod json;
mod output;
mod payload;
mod procstat;
mod report;
mod roles;
mod scenario;
mod smoke;
mod summary;
mod svg;
mod sync;
mod tls;
mod tracker;

use cli::{Command, Output, RunArgs};
use output::Sink;
use std::process::ExitCode;
use summary::CaseSummary;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("culex-perf: {error}\n\n{}", cli::usage());
            return ExitCode::from(2);
        }
    };
    procstat::raise_fd_limit();
    let outcome = match command {
        Command::Help => {
            print!("{}", cli::usage());
            Ok(true)
        }
        Command::Run(args) => run(&args),
        Command::Compare(args) => Sink::open(args.output.json.as_deref()).and_then(|mut sink| {
            let (summaries, valid) = compare::compare(&args, &mut sink)?;
            write_svg(&args.output, &summaries)?;
            Ok(valid)
        }),
        Command::Smoke(args) => smoke::smoke(&args),
        Command::Cluster(args) => cluster::run(&args),
        Command::Plot(args) => plot(&args),
        Command::DynsecFile(args) => dynsec::file_text(&args.shape).and_then(|text| {
            std::fs::write(&args.out, text)
                .map(|()| true)
                .map_err(|e| format!("cannot write {}: {e}", args.out.display()))
        }),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("culex-perf: {error}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &RunArgs) -> Result<bool, String> {
    let mut sink = Sink::open(args.output.json.as_deref())?;
    let mut summaries = Vec::new();
    let mut valid = true;
    for &scenario in &args.scenarios {
        for case in compare::cases(&args.workload, scenario, args.broker) {
            let workload = scenario::Workload {
                broker_pid: args.broker_pid,
                broker_name: args.broker_name.clone(),
                ..case
            };
            let result = engine::run(&workload);
            eprint!("{}", result.to_table());
            sink.result(&result)?;
            valid &= result.valid();
            let names = [args.broker_name.clone()];
            summaries.push(summary::summarise(&names, &[vec![result]], usize::MAX));
        }
    }
    write_svg(&args.output, &summaries)?;
    Ok(valid)
}

/// Reads the summary lines of earlier `compare` runs and draws them in one chart.
fn plot(args: &cli::PlotArgs) -> Result<bool, String> {
    let mut summaries = Vec::new();
    for path in &args.inputs {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let value =
                json::parse(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            summaries.extend(CaseSummary::from_json(&value));
        }
    }
    if summaries.is_empty() {
        return Err("no compare summary lines in the given files".to_string());
    }
    let output = Output {
        json: None,
        svg: Some(args.svg.clone()),
    };
    write_svg(&output, &summaries)?;
    Ok(true)
}

fn write_svg(output: &Output, summaries: &[CaseSummary]) -> Result<(), String> {
    let Some(path) = &output.svg else {
        return Ok(());
    };
    std::fs::write(path, svg::render(summaries))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
