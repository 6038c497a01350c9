//! `mosquitto.conf`: reading it the way Mosquitto 2.0/2.1 does, into a typed [`Config`].
//!
//! # Brief overview
//!
//! Culex must start from an unchanged Mosquitto config, so this module reproduces
//! Mosquitto's parser rather than inventing a format. It is split like ripgrep's flags:
//!
//! ```text
//!  file bytes ──raw──▶ RawLine{line, key, rest} ──resolve──▶ Draft ──finish──▶ Config
//!  (source.rs)  (raw.rs: comments, spaces-only      (resolve.rs: scopes,     (finish.rs:
//!               tokens, include_dir order)           options.rs table)        defaults, TLS)
//! ```
//!
//! - [`raw`] knows the lexical rules (comment only at column 1, split on spaces only);
//! - [`options`] lists every option name Mosquitto accepts and what Culex does with it
//!   (implemented; accepted with a warning saying why it has no effect; or refused: bridges,
//!   TLS-PSK, the PROXY protocol);
//! - [`resolve`] applies each option in its scope (listener, default listener, global or
//!   per-listener security, plugin);
//! - [`finish`] applies defaults (local-only mode, `allow_anonymous`), checks TLS, and
//!   produces [`Config`], documented field by field in [`types`];
//! - [`reload`] decides what a SIGHUP may change.
//!
//! Errors are [`ConfigError`]s naming file and line in Mosquitto 2.0.11's words; every one
//! means exit code 3. Pure functions take a [`Source`], so tests run on in-memory files.
//!
//! ```text
//! let mut config = config::load(Path::new("/etc/mosquitto/mosquitto.conf"))?;
//! config.apply_overrides(&cli.overrides(env::var_os("MOSQUITTO_PERSISTENCE_LOCATION").map(PathBuf::from)));
//! for warning in &config.warnings { log(warning) }
//! ```

pub mod error;
pub mod finish;
pub mod options;
pub mod raw;
pub mod reload;
pub mod resolve;
pub mod source;
pub mod types;
pub mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

#[allow(unused_imports)] // part of the module's interface for the broker
pub use error::{ConfigError, ConfigWarning, EXIT_CONFIG_ERROR};
pub use finish::Overrides;
#[allow(unused_imports)] // part of the module's interface for the broker
pub use reload::Reload;
pub use source::{FileSystem, Source};
pub use types::*;

/// Reads the config file at `path` (and its `include_dir` files) from the file system.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_from(&FileSystem, path)
}

/// Reads the config file at `path` from `source`.
pub fn load_from(source: &dyn Source, path: &Path) -> Result<Config, ConfigError> {
    resolve::read(source, path)?.finish()
}
