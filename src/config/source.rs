//! Where configuration text comes from: the real file system, or memory in tests.
//!
//! The parser never touches `std::fs` directly; it asks a [`Source`]. `load` passes
//! [`FileSystem`]; unit tests pass [`MemorySource`] so every parsing rule can be tested without
//! creating files. Only this module does file I/O for the config.

#[cfg(test)]
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

/// Why a config file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Occurs when the path names a directory, which Mosquitto reports separately.
    IsDirectory,
    /// Occurs when the file cannot be opened or read (missing, permissions, I/O error).
    Io(io::Error),
}

/// Read access to configuration files and `include_dir` directories.
pub trait Source {
    /// The whole content of the file at `path`.
    fn read(&self, path: &Path) -> Result<Vec<u8>, ReadError>;

    /// The names (not paths) of the entries of directory `path`, in any order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileSystem;

impl Source for FileSystem {
    fn read(&self, path: &Path) -> Result<Vec<u8>, ReadError> {
        if path.is_dir() {
            return Err(ReadError::IsDirectory);
        }
        fs::read(path).map_err(ReadError::Io)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(path)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect()
    }
}

/// Files held in memory, keyed by path. A directory exists when some file lies under it.
#[cfg(test)]
#[derive(Debug, Default, Clone)]
pub struct MemorySource {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

#[cfg(test)]
impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the file `path` with `text`; returns `self` for chaining.
    pub fn with(mut self, path: impl Into<PathBuf>, text: impl Into<Vec<u8>>) -> Self {
        self.files.insert(path.into(), text.into());
        self
    }
}

#[cfg(test)]
impl Source for MemorySource {
    fn read(&self, path: &Path) -> Result<Vec<u8>, ReadError> {
        if let Some(text) = self.files.get(path) {
            return Ok(text.clone());
        }
        if self.files.keys().any(|p| p.starts_with(path)) {
            return Err(ReadError::IsDirectory);
        }
        Err(ReadError::Io(io::Error::from(io::ErrorKind::NotFound)))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let names: Vec<OsString> = self
            .files
            .keys()
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
            .collect();
        if names.is_empty() && !self.files.keys().any(|p| p.starts_with(path)) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(names)
    }
}
