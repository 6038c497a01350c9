//! The command line, as Mosquitto's: `culex [-c file] [-d] [-p port]... [-v] [-q]
//! [--test-config] [-h]`, plus `culex ha ...` (the cluster control client, `crate::ha`),
//! whose arguments are handed over untouched.
//!
//! Pure: [`parse`] turns arguments into a [`Command`] or a [`CliError`] whose text matches
//! Mosquitto 2.0.11's (checked by hand against Debian's `/usr/sbin/mosquitto`: `-h` prints
//! usage and exits 3; an unknown flag prints `Error: Unknown option '--bogus'.` then usage,
//! exit 3; `-p 0` prints `Error: Invalid port specified (0).`, exit 3; a missing value prints
//! `Error: -c argument given, but no config file specified.`, exit 3). `main` prints and exits.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::config::Overrides;

/// Exit code for `-h` and every command-line error (Mosquitto's `MOSQ_ERR_INVAL`).
pub const EXIT_USAGE: u8 = 3;
/// Where the documentation is (README.md and docs/), named at the end of the usage text as
/// Mosquitto names its web site.
pub const DOCS_URL: &str = "https://github.com/culex-mqtt/culex";
/// Most `-p` options Mosquitto accepts (`CMD_PORT_LIMIT`).
pub const PORTS_MAX: usize = 10;

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the broker (or only check the config, with `--test-config`).
    Run(Cli),
    /// `-h`/`--help`: print [`usage`] and exit 3, as Mosquitto does.
    Help,
    /// `--version`: print the version and exit 0.
    Version,
    /// `culex ha ...`: the cluster control client, with the arguments after `ha`.
    Ha(Vec<OsString>),
}

/// The options of a broker run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cli {
    /// `-c/--config-file FILE`: the config file; none means the embedded default.
    pub config_file: Option<PathBuf>,
    /// `-d/--daemon`: run in the background.
    pub daemon: bool,
    /// `-p/--port N` (up to 10): local-only listeners on these ports, used only when the
    /// config defines no listener (Mosquitto 2.0).
    pub ports: Vec<u16>,
    /// `-v/--verbose`: `log_type all`, overriding the file.
    pub verbose: bool,
    /// `-q/--quiet`: no logging at all; wins over `-v` (2.1).
    pub quiet: bool,
    /// `--test-config`: check the config and exit (0 when valid, 3 otherwise) (2.1).
    pub test_config: bool,
    /// `--tls-keylog FILE`: write TLS session keys for debugging (2.1).
    pub tls_keylog: Option<PathBuf>,
}

impl Cli {
    /// The config overrides from this command line; `persistence_location` comes from the
    /// `MOSQUITTO_PERSISTENCE_LOCATION` environment variable (the caller reads it).
    pub fn overrides(&self, persistence_location: Option<PathBuf>) -> Overrides {
        Overrides {
            ports: self.ports.clone(),
            verbose: self.verbose,
            quiet: self.quiet,
            daemon: self.daemon,
            persistence_location,
        }
    }
}

/// A command-line error. Every variant means exit code 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// Occurs when a flag that takes a value (`-c`, `-p`, `--tls-keylog`) is last.
    MissingValue {
        /// The flag as typed.
        flag: String,
    },
    /// Occurs when a `-p` value is not a port number in 1..=65535.
    InvalidPort {
        /// The value as typed.
        value: String,
    },
    /// Occurs when `-p` is given more than [`PORTS_MAX`] times.
    TooManyPorts,
    /// Occurs when `-c` is given twice (Mosquitto would merge both files; Culex refuses).
    DuplicateConfigFile,
    /// Occurs for an argument that is not a known flag (positional arguments included).
    UnknownOption {
        /// The argument as typed (lossy if not UTF-8).
        option: String,
    },
}

impl CliError {
    /// True when the usage text should follow the error (Mosquitto prints it only for an
    /// unknown option).
    pub fn shows_usage(&self) -> bool {
        matches!(self, CliError::UnknownOption { .. })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::MissingValue { flag } => match flag.as_str() {
                "-c" | "--config-file" => {
                    write!(f, "Error: -c argument given, but no config file specified.")
                }
                "-p" | "--port" => write!(f, "Error: -p argument given, but no port specified."),
                other => write!(f, "Error: {other} argument given, but no file specified."),
            },
            CliError::InvalidPort { value } => {
                write!(f, "Error: Invalid port specified ({value}).")
            }
            CliError::TooManyPorts => {
                write!(
                    f,
                    "Error: Only {PORTS_MAX} ports can be specified on the command line."
                )
            }
            CliError::DuplicateConfigFile => write!(f, "Error: -c given more than once."),
            CliError::UnknownOption { option } => write!(f, "Error: Unknown option '{option}'."),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses the arguments after the program name.
pub fn parse<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut cli = Cli::default();
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|first| first == "ha") {
        return Ok(Command::Ha(args.skip(1).collect()));
    }
    while let Some(arg) = args.next() {
        let flag = arg.to_string_lossy().into_owned();
        let mut value = || {
            args.next()
                .ok_or_else(|| CliError::MissingValue { flag: flag.clone() })
        };
        match flag.as_str() {
            "-c" | "--config-file" => {
                let path = PathBuf::from(value()?);
                if cli.config_file.replace(path).is_some() {
                    return Err(CliError::DuplicateConfigFile);
                }
            }
            "-p" | "--port" => {
                let raw = value()?.to_string_lossy().into_owned();
                let port = raw
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(CliError::InvalidPort { value: raw })?;
                if cli.ports.len() == PORTS_MAX {
                    return Err(CliError::TooManyPorts);
                }
                cli.ports.push(port);
            }
            "--tls-keylog" => cli.tls_keylog = Some(PathBuf::from(value()?)),
            "-d" | "--daemon" => cli.daemon = true,
            "-v" | "--verbose" => cli.verbose = true,
            "-q" | "--quiet" => cli.quiet = true,
            "--test-config" => cli.test_config = true,
            "-h" | "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            _ => return Err(CliError::UnknownOption { option: flag }),
        }
    }
    Ok(Command::Run(cli))
}

/// The usage text (`-h`), in Mosquitto's layout.
pub fn usage() -> String {
    format!(
        "culex version {version}\n\n\
         culex is an MQTT v5.0/v3.1.1/v3.1 broker that reads mosquitto.conf.\n\n\
         Usage: culex [-c config_file] [-d] [-h] [-p port] [-q] [-v] [--test-config]\n\
         \x20            [--tls-keylog file]\n\
         \x20      culex ha COMMAND [options]   (cluster control, see culex ha --help)\n\n\
         \x20-c : specify the broker config file.\n\
         \x20-d : put the broker into the background after starting.\n\
         \x20-h : display this help.\n\
         \x20-p : start the broker listening on the specified port (loopback only).\n\
         \x20     Ignored when the config file defines listeners. May be given up to 10 times.\n\
         \x20-q : quiet mode - disable all logging types. This overrides\n\
         \x20     any logging options given in the config file, and -v.\n\
         \x20-v : verbose mode - enable all logging types. This overrides\n\
         \x20     any logging options given in the config file.\n\
         \x20--test-config : test the config file and exit (0 if valid, 3 if not).\n\
         \x20--tls-keylog : log TLS connection keys to a file, for debugging with e.g.\n\
         \x20     wireshark. Do not use on a production server.\n\
         \x20--version : print the version and exit.\n\n\
         See {DOCS_URL} for more information.\n",
        version = env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(OsString::from))
    }

    fn cli(args: &[&str]) -> Cli {
        match run(args) {
            Ok(Command::Run(cli)) => cli,
            other => panic!("expected a run command, got {other:?}"),
        }
    }

    #[test]
    fn no_arguments_runs_the_embedded_default() {
        assert_eq!(cli(&[]), Cli::default());
    }

    #[test]
    fn every_flag_short_and_long() {
        let short = cli(&[
            "-c",
            "/etc/m.conf",
            "-d",
            "-p",
            "1884",
            "-v",
            "-q",
            "--test-config",
        ]);
        let long = cli(&[
            "--config-file",
            "/etc/m.conf",
            "--daemon",
            "--port",
            "1884",
            "--verbose",
            "--quiet",
            "--test-config",
        ]);
        assert_eq!(short, long);
        assert_eq!(short.config_file, Some(PathBuf::from("/etc/m.conf")));
        assert!(short.daemon && short.verbose && short.quiet && short.test_config);
        assert_eq!(short.ports, vec![1884]);
    }

    #[test]
    fn ports_repeat_up_to_ten() {
        let ten: Vec<String> = (0..10)
            .flat_map(|i| ["-p".to_string(), (1900 + i).to_string()])
            .collect();
        let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
        assert_eq!(cli(&ten).ports.len(), 10);
        let mut eleven = ten.clone();
        eleven.extend(["-p", "2000"]);
        assert_eq!(run(&eleven), Err(CliError::TooManyPorts));
        assert_eq!(
            CliError::TooManyPorts.to_string(),
            "Error: Only 10 ports can be specified on the command line."
        );
    }

    #[test]
    fn bad_ports() {
        for bad in ["0", "65536", "abc", "-1", ""] {
            assert_eq!(
                run(&["-p", bad]),
                Err(CliError::InvalidPort {
                    value: bad.to_string()
                })
            );
        }
        assert_eq!(
            run(&["-p", "0"]).unwrap_err().to_string(),
            "Error: Invalid port specified (0)."
        );
    }

    #[test]
    fn missing_values_use_mosquittos_words() {
        assert_eq!(
            run(&["-c"]).unwrap_err().to_string(),
            "Error: -c argument given, but no config file specified."
        );
        assert_eq!(
            run(&["--port"]).unwrap_err().to_string(),
            "Error: -p argument given, but no port specified."
        );
        assert!(!run(&["-c"]).unwrap_err().shows_usage());
    }

    #[test]
    fn help_and_unknown_options() {
        assert_eq!(run(&["-h"]), Ok(Command::Help));
        assert_eq!(run(&["-v", "--help", "--bogus"]), Ok(Command::Help));
        assert_eq!(run(&["--version"]), Ok(Command::Version));
        let err = run(&["--bogus"]).unwrap_err();
        assert_eq!(err.to_string(), "Error: Unknown option '--bogus'.");
        assert!(err.shows_usage());
        assert_eq!(
            run(&["mosquitto.conf"]),
            Err(CliError::UnknownOption {
                option: "mosquitto.conf".into()
            })
        );
        assert!(usage().contains("Usage: culex [-c config_file]"));
        assert!(usage().contains("culex ha COMMAND [options]"));
        assert!(usage().ends_with(&format!("\n\nSee {DOCS_URL} for more information.\n")));
    }

    #[test]
    fn ha_takes_the_rest_of_the_line() {
        assert_eq!(
            run(&["ha", "status", "-h", "10.0.0.1", "--bogus"]),
            Ok(Command::Ha(
                ["status", "-h", "10.0.0.1", "--bogus"]
                    .iter()
                    .map(OsString::from)
                    .collect()
            ))
        );
        assert_eq!(run(&["ha"]), Ok(Command::Ha(Vec::new())));
        // Only as the first argument.
        assert_eq!(
            run(&["-v", "ha"]),
            Err(CliError::UnknownOption {
                option: "ha".into()
            })
        );
    }

    #[test]
    fn config_file_twice_is_refused() {
        assert_eq!(
            run(&["-c", "a.conf", "-c", "b.conf"]),
            Err(CliError::DuplicateConfigFile)
        );
    }

    #[test]
    fn tls_keylog_takes_a_file() {
        assert_eq!(
            cli(&["--tls-keylog", "/tmp/keys"]).tls_keylog,
            Some(PathBuf::from("/tmp/keys"))
        );
        assert_eq!(
            run(&["--tls-keylog"]).unwrap_err().to_string(),
            "Error: --tls-keylog argument given, but no file specified."
        );
    }

    #[test]
    fn overrides_carry_the_flags() {
        let overrides = cli(&["-p", "1884", "-q", "-d"]).overrides(Some(PathBuf::from("/data")));
        assert_eq!(overrides.ports, vec![1884]);
        assert!(overrides.quiet && overrides.daemon && !overrides.verbose);
        assert_eq!(overrides.persistence_location, Some(PathBuf::from("/data")));
    }
}
