//! What the repository promises a newcomer, checked against the files themselves: the
//! licence files match `Cargo.toml`'s licence expression, and the README's first screen
//! gives exactly two commands and names the prerequisites, with the Rust version
//! `Cargo.toml` requires.
//!
//! Run by `cargo test` (an integration test of the `culex` package); reads files only.

use std::path::Path;

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value of `key = "..."` in the workspace's Cargo.toml.
fn cargo_value(key: &str) -> String {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|line| line.starts_with(&format!("{key} = \"")))
        .unwrap_or_else(|| panic!("{key} not in Cargo.toml"));
    line.split('"').nth(1).expect("quoted value").to_string()
}

#[test]
fn licence_files_match_cargo_toml() {
    assert_eq!(cargo_value("license"), "EPL-2.0 OR Apache-2.0");
    let summary = read("LICENSE");
    assert!(summary.contains("EPL-2.0 OR Apache-2.0"), "{summary}");
    assert!(summary.contains("LICENSE-EPL-2.0") && summary.contains("LICENSE-APACHE"));
    let epl = read("LICENSE-EPL-2.0");
    assert!(
        epl.starts_with("Eclipse Public License - v 2.0"),
        "not the EPL 2.0 text"
    );
    assert!(epl.contains("Exhibit A - Form of Secondary Licenses Notice"));
    let apache = read("LICENSE-APACHE");
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0, January 2004"));
    assert!(apache.contains("END OF TERMS AND CONDITIONS"));
    assert!(apache.contains("APPENDIX: How to apply the Apache License to your work."));
}

#[test]
fn readme_first_screen_has_two_commands_and_the_prerequisites() {
    let readme = read("README.md");
    // The first screen: everything before the first section heading.
    let first = readme.split("\n## ").next().expect("README text");
    let mut in_block = false;
    let mut commands = Vec::new();
    for line in first.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
        } else if in_block && !line.trim().is_empty() {
            commands.push(line.split('#').next().unwrap_or("").trim().to_string());
        }
    }
    assert_eq!(
        commands,
        ["cargo run --release", "tests/run-all"],
        "{first}"
    );
    let rust = cargo_value("rust-version");
    for needed in [
        "Linux".to_string(),
        "git".to_string(),
        "C compiler".to_string(),
        format!("Rust {rust} or newer"),
        "rustup".to_string(),
    ] {
        assert!(
            first.contains(&needed),
            "first screen does not name {needed:?}:\n{first}"
        );
    }
}
