//! Process-level duties Mosquitto users rely on: the pid file, `-d` daemonising, and
//! dropping root privileges to `user` after the listen sockets are bound.
//!
//! Called by `main` at start-up. As in Mosquitto 2.0, the pid file (and the log file,
//! `logging::open_files`) are written after privileges were dropped, so they belong to
//! `user` and can be rewritten (log reopened on SIGHUP, pid file removed at exit) by it.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

/// Detaches from the terminal (`-d`). Must run before any thread is started.
pub fn daemonize() -> io::Result<()> {
    // SAFETY: daemon(3) forks; called before any other thread exists.
    if unsafe { libc::daemon(1, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The pid file: written at start (Mosquitto writes it whether or not `-d` is given) and
/// removed when dropped, at exit, as Mosquitto removes it.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes the process id to `path`.
    pub fn write(path: &Path) -> io::Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The operating system's text for `error` (strerror, as Mosquitto prints it), without
/// std's ` (os error N)` suffix; other errors as they display.
pub fn os_text(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => {
            let text = io::Error::from_raw_os_error(code).to_string();
            match text.rfind(" (os error ") {
                Some(end) => text[..end].to_string(),
                None => text,
            }
        }
        None => error.to_string(),
    }
}

/// When running as root, switches to `user` (falling back to `nobody` if it does not exist,
/// as Mosquitto does). `root` keeps root.
pub fn drop_privileges(user: &str) -> io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || user == "root" {
        return Ok(());
    }
    let target = match lookup(user) {
        Some(ids) => ids,
        None => {
            log::warn!("Warning: Unable to drop privileges to '{user}' because this user does not exist. Trying 'nobody' instead.");
            lookup("nobody").ok_or_else(|| {
                io::Error::other(format!(
                    "cannot drop privileges to '{user}' or 'nobody': no such user"
                ))
            })?
        }
    };
    let failed = |step: &str| {
        let error = io::Error::last_os_error();
        io::Error::new(
            error.kind(),
            format!(
                "cannot drop privileges to '{user}': setting the {step} failed: {}",
                os_text(&error)
            ),
        )
    };
    // SAFETY: plain syscalls with values from getpwnam; order: groups, gid, then uid.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
        {
            return Err(failed("groups"));
        }
        if libc::setgid(target.1) != 0 {
            return Err(failed("gid"));
        }
        if libc::setuid(target.0) != 0 {
            return Err(failed("uid"));
        }
    }
    Ok(())
}

fn lookup(user: &str) -> Option<(libc::uid_t, libc::gid_t)> {
    let name = CString::new(user).ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy the ids out at
    // once, before any other call could overwrite it (start-up is single-threaded here).
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return None;
    }
    // SAFETY: non-null pointer from getpwnam.
    let entry = unsafe { &*entry };
    Some((entry.pw_uid, entry.pw_gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_text_is_strerror_without_the_code() {
        let error = io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(os_text(&error), "Address already in use");
        assert_eq!(os_text(&io::Error::other("no listener")), "no listener");
    }

    #[test]
    fn the_pid_file_holds_the_pid_and_goes_with_the_guard() {
        let dir = std::env::temp_dir().join(format!("culex-pid-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("culex.pid");
        let guard = PidFile::write(&path).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.trim(), std::process::id().to_string());
        drop(guard);
        assert!(!path.exists());
        let missing = dir.join("no-such-dir").join("culex.pid");
        let error = PidFile::write(&missing).err().expect("no directory");
        assert_eq!(os_text(&error), "No such file or directory");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
