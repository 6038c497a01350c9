//! Crash-safe file replacement: write a temporary file in the same directory, fsync it,
//! rename it over the target, fsync the directory.
//!
//! A kill or power loss at any point leaves either the complete old file or the complete
//! new one under the target name, never a torn mix ([`write_atomic`]). Used by `persist`
//! (the broker's state file) and by dynamic security (`dynamic-security.json`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Replaces `path` with `contents` atomically and durably. `mode` is the new file's
/// permission bits (e.g. 0o600 for files holding credentials).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temporary = temporary_path(path);
    let result = write_temporary(&temporary, contents, mode).and_then(|()| {
        fs::rename(&temporary, path)?;
        sync_directory(path)
    });
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// `<path>.new`, next to the target so the rename never crosses file systems.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".new");
    path.with_file_name(name)
}

fn write_temporary(temporary: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(temporary)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes a rename in the directory of `path` durable.
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

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("culex-atomic-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn replaces_contents_and_leaves_no_temporary() {
        let dir = scratch("replace");
        let path = dir.join("state.db");
        write_atomic(&path, b"old", 0o600).expect("first write");
        write_atomic(&path, b"new", 0o600).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"new");
        assert!(!temporary_path(&path).exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_leftover_temporary_from_a_crash_does_not_replace_the_file() {
        let dir = scratch("crash");
        let path = dir.join("state.db");
        write_atomic(&path, b"committed", 0o600).expect("write");
        // A crash after writing the temporary file and before the rename leaves this behind.
        fs::write(temporary_path(&path), b"torn").expect("leftover");
        assert_eq!(fs::read(&path).expect("read"), b"committed");
        write_atomic(&path, b"next", 0o600).expect("write over leftover");
        assert_eq!(fs::read(&path).expect("read"), b"next");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn sets_the_requested_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("mode");
        let path = dir.join("secret.json");
        write_atomic(&path, b"{}", 0o600).expect("write");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = fs::remove_dir_all(&dir);
    }
}
