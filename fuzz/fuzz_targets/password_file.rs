//! The password file (`password_file`, mosquitto_passwd's format), as the broker reads it
//! at start-up and on SIGHUP: no panic on any input; a file that loads answers lookups for
//! every user it names.
//!
//! Input: the file's bytes.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shards::authfile::password_file::{PasswordCheck, PasswordFile};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = PasswordFile::parse_bytes(Path::new("/etc/mosquitto/passwd"), data) else {
        return;
    };
    // Every user line names a user the file knows (the hash itself is not run: its
    // iteration count comes from the file).
    for line in data.split(|&b| b == b'\n') {
        if let Some(name) = line.split(|&b| b == b':').next().filter(|n| !n.is_empty()) {
            if file.contains(name) {
                assert_eq!(file.check(name, None), PasswordCheck::Deny);
            }
        }
    }
    assert_eq!(
        file.check(b"\0no such user\0", None),
        PasswordCheck::UnknownUser
    );
});
