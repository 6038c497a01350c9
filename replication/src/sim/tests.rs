//! The simulator's tests: the seeded run (`SIM_SEED`, `SIM_SEEDS`), its determinism, and
//! the planted bugs it must catch. Each planted-bug test runs seeds until one fails, and
//! fails itself if none of its seeds does; what caught the bug is printed.

use super::*;

/// The seeds to run: `SIM_SEED` alone, or `SIM_SEEDS` (default [`SEEDS`]) from 1.
fn seeds() -> Vec<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match var("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=var("SIM_SEEDS").unwrap_or(SEEDS)).collect(),
    }
}

/// One line on what a run went through.
fn summary(trace: &[String]) -> String {
    let count = |what: &str| trace.iter().filter(|line| line.contains(what)).count();
    let lost: usize = trace
        .iter()
        .filter_map(|line| line.split("crashes (").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum();
    let settled = trace
        .iter()
        .find_map(|line| line.split("committed ").nth(1)?.split(" ms after").next())
        .unwrap_or("?");
    format!(
        "{} acknowledged ({} sessions), {} leaders, {} crashes ({} mid-write, {lost} writes lost), \
         {} partitions, {} snapshots built, {} installed; last commit {settled} ms after healing",
        count("acknowledged at"),
        trace
            .iter()
            .filter(|line| line.contains("session") && line.contains("acknowledged at"))
            .count(),
        count(" leads term "),
        count("crashes ("),
        count("crashes mid-"),
        count("partition ["),
        count("builds a snapshot"),
        count("installs a snapshot"),
    )
}

fn tail(trace: &[String], lines: usize) -> String {
    trace[trace.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn seeded_simulation_keeps_raft_safe_and_live_under_faults() {
    let one = std::env::var("SIM_SEED").is_ok();
    for seed in seeds() {
        let outcome = simulate(seed, Setup::default());
        if one {
            println!("{}", outcome.trace.join("\n"));
        }
        println!("seed {seed}: {}", summary(&outcome.trace));
        if let Err(error) = outcome.result {
            panic!(
                "simulation seed {seed} failed: {error}\n{}\n\
                 replay: SIM_SEED={seed} cargo test -p replication sim:: -- --nocapture",
                tail(&outcome.trace, 40)
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let first = simulate(3, Setup::default());
    let second = simulate(3, Setup::default());
    assert!(first.result.is_ok(), "{:?}", first.result);
    assert!(first.trace.len() > STEPS / 2, "the run did things");
    assert_eq!(first.trace, second.trace);
}

/// Seeds a planted-bug test may try.
const PLANTED_SEEDS: u64 = 30;

/// Runs seeds with a planted bug until one fails with a verdict containing `caught_by`;
/// panics if none does (other verdicts on the way are printed: they catch the bug too).
fn assert_caught(setup: Setup, caught_by: &str) {
    for seed in 1..=PLANTED_SEEDS {
        if let Err(error) = simulate(seed, setup).result {
            println!("{setup:?}: seed {seed}: {error}");
            if error.contains(caught_by) {
                return;
            }
        }
    }
    panic!("{setup:?}: no seed of {PLANTED_SEEDS} was caught by \"{caught_by}\"");
}

/// The check that every node applies the same entry at each index.
const SAME_ENTRIES: &str = "applied a different entry at index";

/// The check that no term has two leaders.
const ONE_LEADER: &str = "two leaders in term";

#[test]
fn a_disk_that_acknowledges_appends_before_syncing_is_caught() {
    assert_caught(
        Setup {
            disk_bug: Some(DiskBug::AckBeforeSync),
            ..Setup::default()
        },
        SAME_ENTRIES,
    );
}

#[test]
fn a_disk_that_returns_from_appends_before_syncing_is_caught() {
    assert_caught(
        Setup {
            disk_bug: Some(DiskBug::ReturnBeforeSync),
            ..Setup::default()
        },
        SAME_ENTRIES,
    );
}

/// Caught by openraft's own check when the node restarts: its log holds entries of a
/// term later than the vote it read back.
#[test]
fn a_vote_that_is_not_persisted_is_caught() {
    assert_caught(
        Setup {
            disk_bug: Some(DiskBug::VoteLost),
            ..Setup::default()
        },
        "a panic: vote",
    );
}

#[test]
fn a_network_that_delivers_across_a_partition_is_caught() {
    assert_caught(
        Setup {
            nodes: Some(5),
            net_bug: Some(NetBug::WrongSide),
            ..Setup::default()
        },
        ONE_LEADER,
    );
}

#[test]
fn a_link_that_acts_on_a_damaged_frame_is_caught() {
    assert_caught(
        Setup {
            net_bug: Some(NetBug::ApplyDamaged),
            ..Setup::default()
        },
        SAME_ENTRIES,
    );
}

#[test]
fn a_link_that_never_reconnects_is_caught() {
    assert_caught(
        Setup {
            net_bug: Some(NetBug::NeverReconnects),
            ..Setup::default()
        },
        "of healing",
    );
}

#[test]
fn a_snapshot_without_the_sessions_is_caught() {
    assert_caught(
        Setup {
            machine_bug: Some(MachineBug::SnapshotWithoutSessions),
            ..Setup::default()
        },
        "lost the acknowledged session",
    );
}

/// What each planted bug's seeds do (`cargo test -p replication sim::tests::survey --
/// --ignored --nocapture`; `SURVEY_SEEDS`, `SURVEY_ONLY=<name>`, `SURVEY_TRACE`).
#[test]
#[ignore]
fn survey_planted_bugs() {
    let bugs = [
        ("none", None, None, None, None),
        ("ack", Some(DiskBug::AckBeforeSync), None, None, None),
        ("async", Some(DiskBug::ReturnBeforeSync), None, None, None),
        ("lost", Some(DiskBug::VoteLost), None, None, None),
        ("side", None, Some(NetBug::WrongSide), Some(5), None),
        ("damaged", None, Some(NetBug::ApplyDamaged), None, None),
        ("reconnect", None, Some(NetBug::NeverReconnects), None, None),
        (
            "snapshot",
            None,
            None,
            None,
            Some(MachineBug::SnapshotWithoutSessions),
        ),
    ];
    let count = std::env::var("SURVEY_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    for (name, disk_bug, net_bug, nodes, machine_bug) in bugs {
        if std::env::var("SURVEY_ONLY").is_ok_and(|only| only != name) {
            continue;
        }
        for seed in 1..=count {
            let setup = Setup {
                nodes,
                disk_bug,
                net_bug,
                machine_bug,
            };
            let outcome = simulate(seed, setup);
            if std::env::var("SURVEY_TRACE").is_ok() {
                println!("{}", outcome.trace.join("\n"));
            }
            let what = outcome.result.err().unwrap_or_else(|| "-".into());
            println!(
                "{name} seed {seed}: {}",
                what.chars().take(160).collect::<String>()
            );
        }
    }
}
