//! Where results go: JSON lines to stdout or appended to `--json FILE`.

use crate::report::RunResult;
use std::io::Write;
use std::path::Path;

/// The JSON-lines destination.
pub struct Sink {
    file: Option<std::fs::File>,
}

impl Sink {
    /// Stdout, or `path` opened for appending.
    pub fn open(path: Option<&Path>) -> Result<Sink, String> {
        let file = match path {
            Some(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
            ),
            None => None,
        };
        Ok(Sink { file })
    }

    /// Writes one line.
    pub fn line(&mut self, line: &str) -> Result<(), String> {
        let written = match &mut self.file {
            Some(file) => writeln!(file, "{line}"),
            None => writeln!(std::io::stdout(), "{line}"),
        };
        written.map_err(|e| format!("cannot write results: {e}"))
    }

    /// Writes one run's JSON line.
    pub fn result(&mut self, result: &RunResult) -> Result<(), String> {
        self.line(&result.to_json())
    }
}
