//! Crash-safe replacement of a whole file: write a temporary file in the same directory,
//! fsync it, rename it over the target, fsync the directory. After a crash at any point the
//! target holds either the complete old content or the complete new content.
//!
//! Generic on purpose: the dynsec control hook saves `dynamic-security.json` with it, and
//! the same function is meant for any other whole-file state the broker persists (config
//! snapshots, Raft vote/snapshot files). Not for the hot path: it costs two fsyncs.
//!
//! The temporary file is `<target>.new` (Mosquitto's name). A stale one from an earlier
//! crash is removed first, and the new one is created exclusively with the requested mode
//! (0600 by default: the dynsec file holds password hashes, spec §17), so an old file's
//! permissions or a planted file can never be inherited.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// Mode of files written by [`save_atomic`]: owner read/write only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Replaces `path` with `bytes` crash-safely, mode [`PRIVATE_FILE_MODE`].
pub fn save_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    save_atomic_with_mode(path, bytes, PRIVATE_FILE_MODE)
}

/// Replaces `path` with `bytes` crash-safely; the new file gets `mode` (before umask).
pub fn save_atomic_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    save_with_hook(path, bytes, mode, &mut |_| Ok(()))
}

/// The temporary file used for `path`.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".new");
    PathBuf::from(name)
}

/// Points at which tests inject failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The temporary file is written and fsynced; the target is untouched.
    BeforeRename,
}

/// The implementation, with `hook` called at each [`Step`]; an error from the hook aborts
/// like an I/O error at that point would.
pub(crate) fn save_with_hook(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    hook: &mut dyn FnMut(Step) -> io::Result<()>,
) -> io::Result<()> {
    let temporary = temporary_path(path);
    match fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let result = write_and_rename(path, &temporary, bytes, mode, hook);
    if result.is_err() {
        // Best effort: a leftover is harmless (removed by the next save) but untidy.
        let _ = fs::remove_file(&temporary);
    }
    result
}

fn write_and_rename(
    path: &Path,
    temporary: &Path,
    bytes: &[u8],
    mode: u32,
    hook: &mut dyn FnMut(Step) -> io::Result<()>,
) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    hook(Step::BeforeRename)?;
    fs::rename(temporary, path)?;
    sync_directory(path)
}

/// fsyncs the directory holding `path`, so that the rename itself is durable.
fn sync_directory(path: &Path) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "culex-atomic-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_new_file_with_private_mode() {
        let dir = scratch("new");
        let target = dir.join("dynamic-security.json");
        save_atomic(&target, b"{}").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"{}");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!temporary_path(&target).exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn replaces_content_and_tightens_permissions() {
        let dir = scratch("replace");
        let target = dir.join("f.json");
        fs::write(&target, b"old").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        // A stale temporary file from an earlier crash, world-readable.
        fs::write(temporary_path(&target), b"stale").unwrap();
        fs::set_permissions(temporary_path(&target), fs::Permissions::from_mode(0o666)).unwrap();
        save_atomic(&target, b"new content").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new content");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn failure_before_rename_keeps_the_old_file_intact() {
        let dir = scratch("crash");
        let target = dir.join("f.json");
        fs::write(&target, b"old complete content").unwrap();
        let err = save_with_hook(&target, b"new", 0o600, &mut |step| {
            assert_eq!(step, Step::BeforeRename);
            // The new bytes are durable in the temporary file at this point.
            assert_eq!(fs::read(temporary_path(&target)).unwrap(), b"new");
            Err(io::Error::other("simulated crash"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "simulated crash");
        assert_eq!(fs::read(&target).unwrap(), b"old complete content");
        assert!(!temporary_path(&target).exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unwritable_directory_is_an_error_and_changes_nothing() {
        let dir = scratch("missing");
        let target = dir.join("no-such-dir").join("f.json");
        assert!(save_atomic(&target, b"x").is_err());
        assert!(!target.exists());
        fs::remove_dir_all(dir).unwrap();
    }
}
