//! The import rules between the layers of `shards`, checked on the source text, so that a
//! new dependency between layers is a decision (this file changes) and never an accident.
//!
//! ```text
//!   mqtt (codec) ◄── topics ◄── message ◄── state (replicated state machine)
//!        ▲                                     ▲
//!        └──── shard (protocol, decides) ──────┘──── persist (the state file)
//!                   ▲
//!   mesh (rings) ◄──┘◄── runtime (the only monoio code: sockets, tasks, time)
//! ```
//!
//! Each rule names a layer (a file or folder of `src/`) and the crate modules it must not
//! reach, through a `use` or a path anywhere in its code (comments excluded).

use std::path::{Path, PathBuf};

/// (layer, modules it must not import).
const RULES: &[(&str, &[&str])] = &[
    // The replicated state machine: codec, topic index, message type, limits only.
    (
        "state",
        &[
            "shard",
            "mesh",
            "runtime",
            "persist",
            "settings",
            "access",
            "dynsec",
            "connection",
            "transport",
            "stats",
            "control",
            "sys",
            "http",
        ],
    ),
    // The codec knows nothing of the broker.
    (
        "mqtt",
        &[
            "shard",
            "mesh",
            "runtime",
            "persist",
            "settings",
            "state",
            "topics",
            "message",
            "access",
            "dynsec",
            "connection",
            "transport",
        ],
    ),
    // The topic index: pure matching.
    (
        "topics",
        &[
            "shard", "mesh", "runtime", "persist", "settings", "state", "access", "dynsec",
        ],
    ),
    (
        "message.rs",
        &["shard", "mesh", "runtime", "persist", "state", "settings"],
    ),
    // The rings carry shard-level messages only: no sockets, files or settings.
    (
        "mesh.rs",
        &[
            "runtime",
            "shard",
            "persist",
            "settings",
            "transport",
            "access",
        ],
    ),
    // Protocol logic: no I/O, no runtime, no files.
    ("shard", &["runtime", "persist", "transport"]),
    // The state file: records in, records out; no shard, no runtime.
    ("persist", &["shard", "runtime", "mesh", "connection"]),
    ("placement.rs", &["shard", "runtime", "state", "persist"]),
];

/// The only folder of `shards` that may use monoio.
const MONOIO_HOME: &str = "runtime";

/// Source lines without `//` comments.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let code = line.split("//").next().unwrap_or("");
        (!code.trim().is_empty()).then_some((index + 1, code))
    })
}

/// The crate modules `text` reaches (`crate::x`, `use crate::{x, ..}`, `super::super::x`
/// is not followed), with their line numbers.
fn crate_modules(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (line, code) in code_lines(text) {
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(list) = rest.strip_prefix('{') {
                for item in list.split([',', '}']) {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push((line, name));
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push((line, name));
            }
        }
    }
    found
}

/// Breaches of `forbidden` (and of the monoio rule unless `monoio_allowed`) in one file.
fn breaches(text: &str, forbidden: &[&str], monoio_allowed: bool) -> Vec<String> {
    let mut out: Vec<String> = crate_modules(text)
        .into_iter()
        .filter(|(_, module)| forbidden.contains(&module.as_str()))
        .map(|(line, module)| format!("line {line}: crate::{module}"))
        .collect();
    if !monoio_allowed {
        for (line, code) in code_lines(text) {
            if code.contains("monoio::") {
                out.push(format!("line {line}: monoio"));
            }
        }
    }
    out
}

fn sources(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).expect("a source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn every_layer_keeps_its_import_rules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for (layer, forbidden) in RULES {
        for file in sources(&src.join(layer)) {
            let text = std::fs::read_to_string(&file).expect("a readable source file");
            for breach in breaches(&text, forbidden, false) {
                problems.push(format!("{}: {breach}", file.display()));
            }
        }
    }
    for file in sources(&src) {
        let relative = file.strip_prefix(&src).expect("under src");
        if relative.starts_with(MONOIO_HOME) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        for breach in breaches(&text, &[], false) {
            problems.push(format!("{}: {breach} outside runtime/", file.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "layer rules broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_a_violating_import() {
    let bad = "use crate::{mqtt::Packet, shard::Shard};\nfn f() { crate::runtime::now(); }\n";
    let found = breaches(bad, &["shard", "runtime"], false);
    assert_eq!(
        found,
        vec!["line 1: crate::shard", "line 2: crate::runtime"]
    );
    let monoio = "async fn f() { monoio::time::sleep(d).await }";
    assert_eq!(breaches(monoio, &[], false), vec!["line 1: monoio"]);
    assert!(breaches("// use crate::shard::Shard;", &["shard"], false).is_empty());
    assert!(breaches("use crate::mqtt::Packet;", &["shard"], false).is_empty());
}
