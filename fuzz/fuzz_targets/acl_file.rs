//! The ACL file (`acl_file`), as the broker reads it at start-up and on SIGHUP, then asked
//! about a client: no panic on any input.
//!
//! Input: the file up to the first NUL byte; then, NUL-separated, a client id, a username
//! (absent: no username) and a topic, which are checked for read and write.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use shards::authfile::acl_file::{AclAccess, AclFile};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let text = parts.next().unwrap_or_default();
    let Ok(file) = AclFile::parse_bytes(Path::new("/etc/mosquitto/acl"), text) else {
        return;
    };
    let client_id = parts.next().unwrap_or(b"client");
    let username = parts.next();
    let topic = parts.next().unwrap_or(b"a/b");
    for access in [AclAccess::Read, AclAccess::Write, AclAccess::Subscribe] {
        let _ = file.check(access, client_id, username, topic);
    }
    let _ = file.refuses_identity(client_id, username);
});
