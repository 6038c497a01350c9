//! culex: a thread-per-core MQTT broker that reads `mosquitto.conf`.
//!
//! This entry point parses the command line and the configuration and reports the result
//! with Mosquitto's exit codes (0 valid, 3 for any usage or config error). The broker's
//! start-up is wired in here later; until then a run prints the resolved listeners, which
//! makes it a `--test-config` with a summary.

mod cli;
// The broker reads most of `Config`'s fields once it is wired in.
#[allow(dead_code)]
mod config;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use cli::Command;
use config::Config;

/// Prints each line of `text` to stderr with Mosquitto's `<epoch>: ` prefix.
fn log_lines(text: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for line in text.lines() {
        eprintln!("{now}: {line}");
    }
}

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(cli)) => cli,
        Ok(Command::Help) => {
            print!("{}", cli::usage());
            return ExitCode::from(cli::EXIT_USAGE);
        }
        Ok(Command::Version) => {
            println!("culex {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{err}");
            if err.shows_usage() {
                print!("{}", cli::usage());
            }
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    let loaded = match &cli.config_file {
        Some(path) => config::load(path),
        None => Ok(Config::embedded_default()),
    };
    let mut config = match loaded {
        Ok(config) => config,
        Err(err) => {
            log_lines(&err.to_string());
            return ExitCode::from(err.exit_code());
        }
    };
    let env_location = std::env::var_os("MOSQUITTO_PERSISTENCE_LOCATION").map(PathBuf::from);
    config.apply_overrides(&cli.overrides(env_location));
    for warning in &config.warnings {
        log_lines(&warning.to_string());
    }
    match &config.config_file {
        Some(path) => log_lines(&format!("Config loaded from {}.", path.display())),
        None => log_lines("Using default config."),
    }
    if config.local_only {
        log_lines(config::LOCAL_ONLY_MESSAGE);
    }
    if !cli.test_config {
        for listener in &config.listeners {
            log_lines(&format!(
                "listener {} {:?} {:?}{}",
                listener.port,
                listener.bind,
                listener.protocol,
                if listener.admin { " (admin)" } else { "" }
            ));
        }
    }
    ExitCode::SUCCESS
}
