//! Errors and warnings produced while reading `mosquitto.conf`.
//!
//! Owned by the config module; `main` prints them. A [`ConfigError`] stops start-up
//! (exit code 3, like Mosquitto's `MOSQ_ERR_INVAL`); a [`ConfigWarning`] is logged and start-up
//! continues. Both carry the file and line the message is about, so the operator can jump to it.

use std::fmt;
use std::path::{Path, PathBuf};

/// Exit code for every configuration or command-line error (Mosquitto's `MOSQ_ERR_INVAL`).
pub const EXIT_CONFIG_ERROR: u8 = 3;

/// A configuration error: what went wrong and where.
///
/// `Display` renders Mosquitto 2.0.11's lines, for example
///
/// ```text
/// Error: Unknown configuration variable "foo".
/// Error found at /etc/mosquitto/mosquitto.conf:12.
/// ```
///
/// An error inside a file loaded by `include_dir` adds a third line naming the `include_dir`
/// line of the main file, as Mosquitto does. An error that belongs to no line (the main file
/// cannot be opened) has `line == 0` and renders only the first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the error is in.
    pub file: PathBuf,
    /// 1-based line number in `file`; 0 when the error is not about a line.
    pub line: usize,
    /// The message, starting with `Error: ` like Mosquitto's.
    pub message: String,
    /// When `file` was loaded by `include_dir`: the main file and the `include_dir` line.
    pub included_from: Option<(PathBuf, usize)>,
}

impl ConfigError {
    /// An error at `file:line`; `message` is the text after `Error: `.
    pub fn at(file: &Path, line: usize, message: impl fmt::Display) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line,
            message: format!("Error: {message}"),
            included_from: None,
        }
    }

    /// Records that the file holding this error was loaded by `include_dir` at `main:line`.
    pub fn included_from(mut self, main: &Path, line: usize) -> Self {
        if self.included_from.is_none() {
            self.included_from = Some((main.to_path_buf(), line));
        }
        self
    }

    /// The process exit code for this error (always 3, like Mosquitto).
    pub fn exit_code(&self) -> u8 {
        EXIT_CONFIG_ERROR
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.line > 0 {
            write!(f, "\nError found at {}:{}.", self.file.display(), self.line)?;
        }
        if let Some((main, line)) = &self.included_from {
            write!(f, "\nError found at {}:{}.", main.display(), line)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Something the operator should know that does not stop start-up, for example an option
/// Culex accepts but ignores.
///
/// `Display` renders `<message> (<file>:<line>)`; the message starts with `Warning: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file the warning is about.
    pub file: PathBuf,
    /// 1-based line number in `file`; 0 when the warning is not about a line.
    pub line: usize,
    /// The message, starting with `Warning: `.
    pub message: String,
}

impl ConfigWarning {
    /// A warning at `file:line`; `message` is the text after `Warning: `.
    pub fn at(file: &Path, line: usize, message: impl fmt::Display) -> Self {
        ConfigWarning {
            file: file.to_path_buf(),
            line,
            message: format!("Warning: {message}"),
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.line > 0 {
            write!(f, " ({}:{})", self.file.display(), self.line)?;
        }
        Ok(())
    }
}
