//! Mosquitto's classic authentication and authorisation files, `password_file` (the
//! `mosquitto_passwd` format) and `acl_file`, as pure parsers plus compiled checkers that
//! the broker's access control uses as backends.
//!
//! Brief overview. Files are read once (start-up, SIGHUP) into immutable values that every
//! shard shares behind an `Arc`; checks are plain method calls:
//!
//! ```text
//!  start-up / SIGHUP:  PasswordFile::load(path) ─┐   AclFile::load(path) ─┐
//!                      log .warnings()           │   log .warnings()      │
//!                      Err(FileError) → refuse to start / keep old files (2.1 stops)
//!                                                ▼                        ▼
//!  shard:  CONNECT   file.check_cached(&mut cache, username, password) → PasswordCheck
//!          PUBLISH   acl.check(AclAccess::Write, client_id, username, topic)
//!          delivery  acl.check(AclAccess::Read, …)       (also retained messages)
//!          SUBSCRIBE acl.check(AclAccess::Subscribe, …)  (always true: see acl_file)
//! ```
//!
//! With `check_retain_source` (default true) Mosquitto also re-checks, before delivering a
//! retained message, that its original publisher may still `Write` it: the broker calls
//! `check(AclAccess::Write, …)` with the identity stored with the message.
//!
//! | item | what it is |
//! | --- | --- |
//! | [`FileError`] | a file that cannot be opened (`line` 0) or a line Mosquitto would refuse |
//! | [`PasswordFile`] | `parse` / `load` / `check` / `check_cached` / `len` / `warnings` |
//! | [`PasswordCheck`] | `Allow`, `Deny` (known user, wrong or missing password), `UnknownUser` |
//! | [`CredentialCache`] | one per shard, `&mut`; skips PBKDF2 for repeated logins |
//! | [`AclFile`] | `parse` / `load` / `check` / `refuses_identity` / `warnings` |
//! | [`AclAccess`] | `Read` (delivery), `Write` (publish), `Subscribe`, `Unsubscribe` |
//!
//! Semantics are Mosquitto 2.0.11's (Debian's broker, probed by
//! `testdata/real_broker_runs.sh`, transcript `testdata/real_broker_runs.txt`) and its
//! `src/security_default.c`, with 2.1's strictness for password files. Where Culex
//! deliberately differs:
//!
//! * password file: a defective line stops loading (2.1) instead of dropping that user
//!   (2.0); a non-blank line without `:` is still skipped but gets a warning;
//! * ACL patterns: a `%c`/`%u` value that is empty or contains `/` matches nothing (2.0
//!   substitutes it; see `filter.rs`);
//! * messages show the whole offending ACL line (2.0 prints its first word).

pub mod acl_file;
mod file;
mod filter;
pub mod password_file;
mod text;

use std::path::{Path, PathBuf};

pub use crate::credential_cache::{CredentialCache, CREDENTIAL_CACHE_ENTRIES_MAX};
pub use acl_file::{AclAccess, AclFile};
pub use password_file::{PasswordCheck, PasswordFile, FIELD_BYTES_MAX};

/// Why a password or ACL file was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number; 0 when the error concerns the whole file (cannot be opened,
    /// not a regular file).
    pub line: usize,
    /// Mosquitto's sentence for the defect where it has one, without the leading
    /// `Error: ` and the final period (e.g. `Invalid ACL topic "a/#/b" in acl_file
    /// "/etc/mosquitto/acl"`).
    pub message: String,
}

impl FileError {
    fn at(path: &Path, line: usize, message: String) -> FileError {
        FileError {
            path: path.to_path_buf(),
            line,
            message,
        }
    }

    fn whole_file(path: &Path, message: String) -> FileError {
        FileError::at(path, 0, message)
    }
}

impl std::fmt::Display for FileError {
    /// `Error: <message>.`, followed for a line by ` Error found at <path>:<line>.` as
    /// Mosquitto reports configuration errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Error: {}.", self.message)?;
        if self.line > 0 {
            write!(f, " Error found at {}:{}.", self.path.display(), self.line)?;
        }
        Ok(())
    }
}

impl std::error::Error for FileError {}
