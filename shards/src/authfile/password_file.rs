//! `password_file`: the `user:hash` file written by `mosquitto_passwd`, and the CONNECT
//! check against it.
//!
//! Called by the broker's access control at start-up and on SIGHUP (`load`) and at every
//! CONNECT that carries a username (`check` / `check_cached`). Hashes are decoded and
//! verified by dynsec's [`PasswordHash`] (`$7$` PBKDF2-SHA512, `$6$` salted SHA-512).
//!
//! Reading rules (Mosquitto `pwfile__parse` 2.0 / `password_file__parse` 2.1):
//!
//! * a line whose first byte is `#` is a comment; a line without `:` is skipped (a blank
//!   line, or anything else: Mosquitto skips those silently, Culex adds a warning naming
//!   the line but does not echo it, since it may be a plain-text password);
//! * otherwise the username is the text before the first `:`, the hash the next
//!   non-empty `:`-field (`strtok`), both trimmed of blanks (`  alice : $7$…  ` works,
//!   checked against 2.0.11); later fields are ignored;
//! * as 2.1, which "stops on an invalid file", every other defect is an error naming the
//!   line: empty username, username or hash over 65535 bytes, a duplicate user, a missing
//!   hash, a hash that is not a well-formed `$6$`/`$7$` (2.0.11 logs "…removing entry" and
//!   starts without that user; plain-text passwords are accepted only by a Mosquitto built
//!   without TLS, never by Debian's or Culex).
//!
//! Check (`mosquitto_unpwd_check_default`): unknown user → [`PasswordCheck::UnknownUser`]
//! (Mosquitto defers to other plugins, then refuses); known user without password or with
//! a wrong one → [`PasswordCheck::Deny`]. `mosquitto_passwd` itself refuses files with
//! comments or blank lines ("Corrupt password file at line 1", and 2.0.11 then empties the
//! file): Culex reads them as the broker does.

use std::path::Path;

use rustc_hash::FxHashMap;

use super::file::{read_restricted, FileKind};
use super::text::{display, is_c_space, numbered_lines, trim_blanks};
use super::FileError;
use crate::credential_cache::CredentialCache;
use crate::dynsec::password::PasswordHash;

/// Longest username or hash Mosquitto accepts on a line.
pub const FIELD_BYTES_MAX: usize = 65_535;

/// The outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The user is in the file and the password matches.
    Allow,
    /// The user is in the file; the password is missing or wrong (CONNACK "bad username or
    /// password").
    Deny,
    /// The user is not in the file: another backend may know it; if none does, refuse.
    UnknownUser,
}

/// A parsed password file: username → stored hash. Immutable; share it between shards
/// behind an `Arc` and swap it on reload.
#[derive(Debug)]
pub struct PasswordFile {
    users: FxHashMap<Box<[u8]>, PasswordHash>,
    warnings: Vec<String>,
}

impl PasswordFile {
    /// Parses the text of the file at `path` (used in messages only). A line that cannot
    /// be read is an error naming it; skipped lines are reported by [`Self::warnings`].
    pub fn parse(path: &Path, text: &str) -> Result<PasswordFile, FileError> {
        PasswordFile::parse_bytes(path, text.as_bytes())
    }

    /// Reads and parses `path`. Besides the parser's warnings, [`Self::warnings`] holds
    /// Mosquitto's permission warnings ("Warning: File … has world readable permissions.
    /// …", foreign owner or group), for the caller to log.
    pub fn load(path: &Path) -> Result<PasswordFile, FileError> {
        let (bytes, mut warnings) = read_restricted(path, FileKind::Password)?;
        let mut file = PasswordFile::parse_bytes(path, &bytes)?;
        warnings.append(&mut file.warnings);
        file.warnings = warnings;
        Ok(file)
    }

    /// [`Self::parse`] over raw bytes (Mosquitto does not require UTF-8).
    pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<PasswordFile, FileError> {
        let shown = path.display();
        let mut users = FxHashMap::default();
        let mut warnings = Vec::new();
        for (number, line) in numbered_lines(bytes) {
            let error = |message: String| FileError::at(path, number, message);
            if line.first() == Some(&b'#') {
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                if !line.iter().all(|&b| is_c_space(b)) {
                    warnings.push(format!(
                        "Warning: Invalid line {number} in password file '{shown}' (no ':'), \
                         ignoring it."
                    ));
                }
                continue;
            };
            let username = trim_blanks(&line[..colon]);
            if username.is_empty() {
                return Err(error(format!("Empty username in password file '{shown}'")));
            }
            if username.len() > FIELD_BYTES_MAX {
                return Err(error(format!(
                    "Invalid line in password file '{shown}', username too long"
                )));
            }
            if users.contains_key(username) {
                return Err(error(format!(
                    "Duplicate user '{}' in password file '{shown}'",
                    display(username)
                )));
            }
            let Some(field) = line[colon + 1..]
                .split(|&b| b == b':')
                .find(|field| !field.is_empty())
            else {
                return Err(error(format!(
                    "Invalid line in password file '{shown}': {}",
                    display(username)
                )));
            };
            let encoded = trim_blanks(field);
            if encoded.len() > FIELD_BYTES_MAX {
                return Err(error(format!(
                    "Invalid line in password file '{shown}', password too long"
                )));
            }
            let hash = PasswordHash::from_encoded(encoded);
            if let PasswordHash::Opaque(_) = hash {
                return Err(error(format!(
                    "Unable to decode line in password file '{shown}' (user '{}': {})",
                    display(username),
                    undecodable_reason(encoded)
                )));
            }
            users.insert(username.into(), hash);
        }
        Ok(PasswordFile { users, warnings })
    }

    /// Checks a CONNECT's credentials. `username` is the CONNECT's username (a client
    /// without one never reaches the password file: Mosquitto defers it to the
    /// `allow_anonymous` policy). Runs the full hash: prefer [`Self::check_cached`].
    pub fn check(&self, username: &[u8], password: Option<&[u8]>) -> PasswordCheck {
        self.check_with(username, password, |hash, password| hash.verify(password))
    }

    /// [`Self::check`], answering repeated logins from the shard's `cache`.
    pub fn check_cached(
        &self,
        cache: &mut CredentialCache,
        username: &[u8],
        password: Option<&[u8]>,
    ) -> PasswordCheck {
        self.check_with(username, password, |hash, password| {
            cache.verify(username, password, hash)
        })
    }

    fn check_with(
        &self,
        username: &[u8],
        password: Option<&[u8]>,
        verify: impl FnOnce(&PasswordHash, &[u8]) -> bool,
    ) -> PasswordCheck {
        let Some(hash) = self.users.get(username) else {
            return PasswordCheck::UnknownUser;
        };
        match password {
            Some(password) if verify(hash, password) => PasswordCheck::Allow,
            _ => PasswordCheck::Deny,
        }
    }

    /// Whether `username` has a line in the file.
    pub fn contains(&self, username: &[u8]) -> bool {
        self.users.contains_key(username)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Warnings for the log, in Mosquitto's words where it has them: permissions (from
    /// [`Self::load`]) and skipped lines.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn undecodable_reason(encoded: &[u8]) -> &'static str {
    if encoded.starts_with(b"$argon2id$") {
        "argon2id hashes (mosquitto_passwd 2.1 -H argon2id) are not supported; use $7$"
    } else if encoded.starts_with(b"$6$") || encoded.starts_with(b"$7$") {
        "malformed hash"
    } else {
        "not a $6$ or $7$ hash; hash plain-text files with mosquitto_passwd -U"
    }
}

#[cfg(test)]
#[path = "password_file_tests.rs"]
mod tests;
