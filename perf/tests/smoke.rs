//! Runs `culex-perf smoke` against the debug `culex` binary of this workspace: every
//! scenario for about a second, correctness only (deliveries, no loss at QoS >= 1, no
//! duplicates at QoS 2, the broker survives). Performance is never asserted here.
//!
//! The broker binary belongs to another package, so Cargo does not build it for this test:
//! build it first (`cargo build -p culex`). It is looked up next to this test's own
//! executable (`<target>/<profile>/culex`), then under `CARGO_TARGET_DIR` or the
//! workspace's `target/`. When it is missing the test fails with `CI=true` and is skipped
//! (with a message) otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn culex_binary() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // <target>/<profile>/deps/smoke-<hash> → <target>/<profile>/culex
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join("culex"));
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    candidates.push(target.join("debug").join("culex"));
    candidates.push(target.join("release").join("culex"));
    candidates.into_iter().find(|path| path.is_file())
}

#[test]
fn smoke_every_scenario_against_culex() {
    let Some(culex) = culex_binary() else {
        let message = "the culex broker binary was not found next to this test or under \
                       CARGO_TARGET_DIR/target; build it first with `cargo build -p culex`";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
        return;
    };
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_culex-perf"))
        .args(["smoke", "--broker-bin"])
        .arg(&culex)
        .output()
        .expect("culex-perf runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "smoke against {} failed ({}):\n{stdout}\n{stderr}",
        culex.display(),
        output.status
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}\n{stderr}");
    for scenario in [
        "pairs",
        "fanin",
        "fanout",
        "qos1",
        "qos2",
        "latency",
        "conns",
        "retained",
        "handshakes",
    ] {
        assert!(
            stderr.contains(&format!("PASS {scenario} ")),
            "{scenario} missing:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("PASS payload (MQTT 3.1.1 over tcp, anonymous, QoS 1, 262144 B)"),
        "{stderr}"
    );
    // The second broker: a TLS listener and dynamic security, clients logging in.
    for case in [
        "PASS pairs (MQTT 3.1.1 over tls, dynsec, QoS 0",
        "PASS qos1 (MQTT 5.0 over tls, dynsec, QoS 1",
        "PASS qos2 (MQTT 3.1.1 over tls, dynsec, QoS 2, 100000 B)",
        "PASS handshakes (MQTT 3.1.1 over tls, dynsec",
    ] {
        assert!(stderr.contains(case), "{case} missing:\n{stderr}");
    }
    eprintln!("smoke finished in {:?}", started.elapsed());
}

#[test]
fn usage_errors_exit_with_code_two() {
    let output = Command::new(env!("CARGO_BIN_EXE_culex-perf"))
        .args(["run", "--scenario", "nope"])
        .output()
        .expect("culex-perf runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown scenario"));
}

#[test]
fn dynsec_file_writes_a_file_culex_can_read() {
    let out = std::env::temp_dir().join(format!("culex-perf-dynsec-{}.json", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_culex-perf"))
        .args([
            "dynsec-file",
            "--dynsec-clients",
            "3",
            "--dynsec-roles",
            "2",
            "--dynsec-acls-per-role",
            "4",
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("culex-perf runs");
    assert!(status.success());
    let text = std::fs::read_to_string(&out).expect("the file was written");
    let _ = std::fs::remove_file(&out);
    assert!(text.contains("\"username\": \"perf-user-2\""), "{text}");
    assert!(text.contains("\"iterations\": 101"), "{text}");
    assert_eq!(text.matches("\"acltype\"").count(), 8, "{text}");
}
