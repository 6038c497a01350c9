//! `mosquitto.conf` parsing, the whole pipeline the broker runs at start-up and on SIGHUP
//! (raw lines → options in their scopes → defaults and checks), with `include_dir`: no
//! panic on any input, and every error names a file and line.
//!
//! Input: the main file `/etc/mosquitto/mosquitto.conf` up to the first NUL byte; each
//! further NUL-separated part is a file `/etc/mosquitto/conf.d/N.conf` (N = 0, 1, ...),
//! which the main file loads with `include_dir /etc/mosquitto/conf.d`. The files are
//! held in memory (no disk I/O).
#![no_main]

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

// The parser lives in the broker binary's crate; it depends on `std` and `shards` only, so
// the target compiles the module itself rather than making the binary a library.
#[path = "../../src/config/mod.rs"]
#[allow(dead_code, unused_imports)]
mod config;

use config::source::{ReadError, Source};

const MAIN: &str = "/etc/mosquitto/mosquitto.conf";
const INCLUDES: &str = "/etc/mosquitto/conf.d";

/// Files held in memory, keyed by path.
struct Files(Vec<(PathBuf, Vec<u8>)>);

impl Source for Files {
    fn read(&self, path: &Path) -> Result<Vec<u8>, ReadError> {
        if let Some((_, text)) = self.0.iter().find(|(p, _)| p == path) {
            return Ok(text.clone());
        }
        if self.0.iter().any(|(p, _)| p.starts_with(path)) {
            return Err(ReadError::IsDirectory);
        }
        Err(ReadError::Io(io::Error::from(io::ErrorKind::NotFound)))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let names: Vec<OsString> = self
            .0
            .iter()
            .filter(|(p, _)| p.parent() == Some(path))
            .filter_map(|(p, _)| p.file_name().map(|n| n.to_os_string()))
            .collect();
        if names.is_empty() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(names)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let main = parts.next().unwrap_or_default();
    let mut files = vec![(PathBuf::from(MAIN), main.to_vec())];
    for (i, part) in parts.take(8).enumerate() {
        files.push((Path::new(INCLUDES).join(format!("{i}.conf")), part.to_vec()));
    }
    let source = Files(files);
    match config::load_from(&source, Path::new(MAIN)) {
        Ok(config) => {
            // What a SIGHUP does: merge it into a running config, and the other way round.
            let empty = Files(vec![(PathBuf::from(MAIN), Vec::new())]);
            if let Ok(running) = config::load_from(&empty, Path::new(MAIN)) {
                let _ = running.reloadable_from(&config);
                let _ = config.reloadable_from(&running);
            }
        }
        Err(error) => {
            let shown = error.to_string();
            assert!(!shown.is_empty(), "an error with no text");
        }
    }
});
