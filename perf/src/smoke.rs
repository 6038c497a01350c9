//! `smoke`: every scenario for about a second against one freshly started broker,
//! checking only correctness (messages delivered, no loss at QoS >= 1, no duplicates at
//! QoS 2, the broker still alive). Then a second broker with a TLS listener (throwaway
//! certificates from `certs.rs`) and dynamic security (a small generated file): pairs,
//! QoS 1 and handshakes over TLS with dynsec logins. For CI: the whole run stays under a
//! minute and the exit code says whether it passed.

use crate::broker::{Broker, BrokerConfig, DynsecSetup, Probe, ServerTls};
use crate::certs::{Certs, KeyType};
use crate::cli::SmokeArgs;
use crate::dynsec::{self, DynsecShape};
use crate::engine;
use crate::report::RunResult;
use crate::scenario::{Credentials, Scenario, Workload};
use crate::tls::{self, TlsOptions};
use shards::mqtt::{Protocol, QoS};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The dynsec file of the secured smoke broker.
const SMOKE_DYNSEC: DynsecShape = DynsecShape {
    clients: 20,
    roles: 4,
    acls_per_role: 5,
};

/// The smoke workloads for a broker at `address` (pure, so the list is testable).
pub fn workloads(address: std::net::SocketAddr, threads: usize) -> Vec<Workload> {
    let base = |scenario: Scenario| Workload {
        clients: 4,
        duration: Duration::from_millis(1000),
        warmup: Duration::from_millis(200),
        window: 16,
        threads,
        topics: 500,
        settle_timeout: Duration::from_secs(10),
        broker_name: "smoke".to_string(),
        ..Workload::new(scenario, address)
    };
    let mut list = vec![
        base(Scenario::Pairs),
        Workload {
            protocol: Protocol::V5,
            ..base(Scenario::Pairs)
        },
        base(Scenario::Fanin),
        Workload {
            clients: 8,
            ..base(Scenario::Fanout)
        },
        base(Scenario::Qos1),
        base(Scenario::Qos2),
        Workload {
            protocol: Protocol::V5,
            ..base(Scenario::Qos2)
        },
        Workload {
            qos: QoS::AtLeastOnce,
            ..base(Scenario::Fanout)
        },
        Workload {
            rate: Some(2000.0),
            ..base(Scenario::Latency)
        },
        Workload {
            clients: 300,
            duration: Duration::from_millis(300),
            ..base(Scenario::Conns)
        },
        Workload {
            clients: 3,
            ..base(Scenario::Retained)
        },
    ];
    for size in [16, 262_144] {
        list.push(Workload {
            payload: size,
            clients: 2,
            qos: QoS::AtLeastOnce,
            duration: Duration::from_millis(500),
            ..base(Scenario::Payload)
        });
    }
    list.push(Workload {
        clients: 200,
        ..base(Scenario::Handshakes)
    });
    list
}

/// The workloads against the TLS + dynsec broker (pure, testable).
pub fn secured_workloads(
    address: std::net::SocketAddr,
    threads: usize,
    tls: &TlsOptions,
) -> Vec<Workload> {
    let base = |scenario: Scenario| Workload {
        clients: 4,
        duration: Duration::from_millis(800),
        warmup: Duration::from_millis(200),
        window: 16,
        threads,
        settle_timeout: Duration::from_secs(10),
        broker_name: "smoke-tls-dynsec".to_string(),
        tls: Some(tls.clone()),
        credentials: Credentials::Dynsec {
            clients: SMOKE_DYNSEC.clients,
        },
        ..Workload::new(scenario, address)
    };
    vec![
        base(Scenario::Pairs),
        Workload {
            protocol: Protocol::V5,
            ..base(Scenario::Qos1)
        },
        Workload {
            payload: 100_000,
            ..base(Scenario::Qos2)
        },
        base(Scenario::Fanin),
        Workload {
            clients: 100,
            ..base(Scenario::Handshakes)
        },
    ]
}

/// Why a smoke result fails, if it does.
pub fn failure(result: &RunResult) -> Option<String> {
    if !result.valid() {
        return Some(result.invalid.join("; "));
    }
    let flows = !matches!(
        result.scenario.as_str(),
        "conns" | "retained" | "handshakes"
    );
    if flows && result.received_total == 0 {
        return Some("no message delivered".to_string());
    }
    if matches!(result.scenario.as_str(), "conns" | "handshakes") && result.connects_per_s.is_none()
    {
        return Some("connections were not measured".to_string());
    }
    None
}

/// Runs the smoke test; true when everything passed.
pub fn smoke(args: &SmokeArgs) -> Result<bool, String> {
    let started = Instant::now();
    let config = BrokerConfig {
        threads: Some(2),
        max_queued: Some(100_000),
        max_queued_bytes: Some(32 << 20),
        max_inflight: Some(16),
        ..BrokerConfig::default()
    };
    let threads = args.threads.unwrap_or(2);
    let mut tally = (0, 0);
    let broker = Broker::start(&args.broker_bin, "culex", &config, &Probe::default())?;
    let list = workloads(broker.address, threads);
    run_against(broker, list, &mut tally);

    let dir = std::env::temp_dir().join(format!("culex-perf-{}-smoke-certs", std::process::id()));
    let certs = Certs::generate(&dir, KeyType::Ec256);
    let secured = certs.and_then(|certs| {
        let outcome = secured_broker(args, &config, &certs, threads, &mut tally);
        certs.remove();
        outcome
    });
    if let Err(error) = secured {
        tally.1 += 1;
        eprintln!("FAIL TLS + dynsec broker: {error}");
    }
    let (passed, failed) = tally;
    eprintln!("smoke took {:.1} s", started.elapsed().as_secs_f64());
    println!("smoke: {passed} passed, {failed} failed");
    Ok(failed == 0)
}

/// Starts Culex with a TLS listener and dynamic security, and runs the secured workloads.
fn secured_broker(
    args: &SmokeArgs,
    base: &BrokerConfig,
    certs: &Certs,
    threads: usize,
    tally: &mut (usize, usize),
) -> Result<(), String> {
    let config = BrokerConfig {
        tls: Some(ServerTls {
            cert: certs.cert.clone(),
            key: certs.key.clone(),
        }),
        dynsec: Some(DynsecSetup {
            plugin: "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so".into(),
            file_text: Arc::new(dynsec::file_text(&SMOKE_DYNSEC)?),
        }),
        ..base.clone()
    };
    let options = TlsOptions {
        cafile: Some(certs.ca.clone()),
        ..TlsOptions::default()
    };
    let probe = Probe {
        tls: Some(tls::client_config(&options, [127, 0, 0, 1].into())?),
        credentials: Some(dynsec::credentials(0)),
    };
    let broker = Broker::start(&args.broker_bin, "culex", &config, &probe)?;
    let list = secured_workloads(broker.address, threads, &options);
    run_against(broker, list, tally);
    Ok(())
}

/// Runs `list` against `broker`, counts passes and failures into `tally`, stops it.
fn run_against(mut broker: Broker, list: Vec<Workload>, tally: &mut (usize, usize)) {
    let (passed, failed) = tally;
    for workload in list {
        let workload = Workload {
            broker_pid: Some(broker.pid()),
            ..workload
        };
        let mut result = engine::run(&workload);
        if !broker.alive() {
            result.invalid.push("the broker died".to_string());
        }
        let label = format!(
            "{} (MQTT {} over {}, {}, QoS {}, {} B)",
            result.scenario,
            result.protocol,
            result.transport,
            result.auth,
            result.qos,
            result.payload
        );
        match failure(&result) {
            None => {
                *passed += 1;
                eprintln!("PASS {label}: {} received", result.received_total);
            }
            Some(why) => {
                *failed += 1;
                eprintln!("FAIL {label}: {why}");
                eprint!("{}", result.to_table());
            }
        }
        if !broker.alive() {
            break;
        }
    }
    let ended = broker.stop();
    if ended.died_early || ended.killed {
        *failed += 1;
        eprintln!(
            "FAIL broker shutdown: {} ({}); log tail:\n{}",
            if ended.killed {
                "needed SIGKILL"
            } else {
                "exited early"
            },
            ended.status,
            ended.log_tail
        );
    } else {
        broker.remove_dir();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_covers_every_scenario_and_both_protocols() {
        let list = workloads(([127, 0, 0, 1], 1).into(), 2);
        for scenario in Scenario::ALL {
            assert!(list.iter().any(|w| w.scenario == scenario), "{scenario:?}");
        }
        assert!(list.iter().any(|w| w.protocol == Protocol::V5));
        let tls = TlsOptions::default();
        let secured = secured_workloads(([127, 0, 0, 1], 1).into(), 2, &tls);
        assert!(secured.iter().all(|w| w.tls.is_some()));
        let seconds: f64 = list
            .iter()
            .chain(&secured)
            .map(|w| (w.duration + w.warmup).as_secs_f64() + 1.0)
            .sum();
        assert!(seconds < 45.0, "smoke budget {seconds} s");
    }

    #[test]
    fn failure_explains_itself() {
        let mut result = RunResult {
            scenario: "pairs".into(),
            ..RunResult::default()
        };
        assert_eq!(failure(&result).as_deref(), Some("no message delivered"));
        result.received_total = 10;
        assert_eq!(failure(&result), None);
        result.invalid.push("3 lost".into());
        assert_eq!(failure(&result).as_deref(), Some("3 lost"));
    }
}
