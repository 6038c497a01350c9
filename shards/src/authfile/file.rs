//! Reading a password or ACL file from disk, with the permission warnings Mosquitto logs
//! for files that may hold secrets (`mosquitto_fopen(…, restrict_read = true)`, 2.0.16+
//! and 2.1; Debian's 2.0.11 does not warn yet).
//!
//! The only I/O of the module: `PasswordFile::load` and `AclFile::load` call
//! [`read_restricted`] and hand the bytes to their pure parsers.

use std::ffi::CStr;
use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use super::FileError;

/// Which file is read, for Mosquitto's wording of the open error.
#[derive(Debug, Clone, Copy)]
pub(super) enum FileKind {
    /// `password_file`.
    Password,
    /// `acl_file`.
    Acl,
}

/// Reads `path` whole. Returns the bytes and the warnings about its permissions.
pub(super) fn read_restricted(
    path: &Path,
    kind: FileKind,
) -> Result<(Vec<u8>, Vec<String>), FileError> {
    let shown = path.display();
    let open_error = |error: std::io::Error| {
        let message = match kind {
            FileKind::Password => format!("Unable to open pwfile \"{shown}\": {error}"),
            FileKind::Acl => format!("Unable to open acl_file \"{shown}\": {error}"),
        };
        FileError::whole_file(path, message)
    };
    let mut file = File::open(path).map_err(open_error)?;
    let metadata = file.metadata().map_err(open_error)?;
    if !metadata.is_file() {
        return Err(FileError::whole_file(
            path,
            format!("{shown} is not a file"),
        ));
    }
    let warnings = permission_warnings(path, metadata.mode(), metadata.uid(), metadata.gid());
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(open_error)?;
    Ok((bytes, warnings))
}

/// Mosquitto's three warnings: any permission bit for "other", an owner that is not the
/// broker's user, a group that is not the broker's group (names looked up as Mosquitto
/// does; no warning when the lookup fails).
pub(super) fn permission_warnings(path: &Path, mode: u32, uid: u32, gid: u32) -> Vec<String> {
    let shown = path.display();
    let mut warnings = Vec::new();
    if mode & 0o007 != 0 {
        warnings.push(format!(
            "Warning: File {shown} has world readable permissions. Future versions will refuse \
             to load this file.\nTo fix this, use `chmod 0700 {shown}`."
        ));
    }
    let (own_uid, own_gid) = process_ids();
    if uid != own_uid {
        if let Some(name) = user_name(own_uid) {
            warnings.push(format!(
                "Warning: File {shown} owner is not {name}. Future versions will refuse to load \
                 this file. To fix this, use `chown {name} {shown}`."
            ));
        }
    }
    if gid != own_gid {
        if let Some(name) = group_name(own_gid) {
            warnings.push(format!(
                "Warning: File {shown} group is not {name}. Future versions will refuse to load \
                 this file."
            ));
        }
    }
    warnings
}

/// The process's real user and group ids (what Mosquitto compares with).
fn process_ids() -> (u32, u32) {
    // SAFETY: getuid and getgid take no arguments, cannot fail and touch no memory.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Size of the buffer for `getpwuid_r`/`getgrgid_r` (Mosquitto's choice).
const NAME_LOOKUP_BUFFER_BYTES: usize = 4096;

fn user_name(uid: u32) -> Option<String> {
    let mut entry = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let mut buffer = vec![0 as libc::c_char; NAME_LOOKUP_BUFFER_BYTES];
    // SAFETY: every pointer is valid for the call: `entry` is writable storage for one
    // `passwd`, `buffer` is writable for its length, `found` receives a pointer into them.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            entry.as_mut_ptr(),
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success `found` points to `entry`, whose `pw_name` is a NUL-terminated
    // string inside `buffer`, both alive until the end of this function.
    let name = unsafe { CStr::from_ptr((*found).pw_name) };
    Some(name.to_string_lossy().into_owned())
}

fn group_name(gid: u32) -> Option<String> {
    let mut entry = std::mem::MaybeUninit::<libc::group>::uninit();
    let mut found: *mut libc::group = std::ptr::null_mut();
    let mut buffer = vec![0 as libc::c_char; NAME_LOOKUP_BUFFER_BYTES];
    // SAFETY: as in `user_name`, for one `group`.
    let rc = unsafe {
        libc::getgrgid_r(
            gid,
            entry.as_mut_ptr(),
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success `found` points to `entry`, whose `gr_name` lives in `buffer`.
    let name = unsafe { CStr::from_ptr((*found).gr_name) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_file_of_our_own_has_no_warning() {
        let (uid, gid) = process_ids();
        assert!(permission_warnings(Path::new("/p"), 0o100600, uid, gid).is_empty());
        assert!(permission_warnings(Path::new("/p"), 0o100640, uid, gid).is_empty());
    }

    #[test]
    fn world_bits_warn_in_mosquitto_words() {
        let (uid, gid) = process_ids();
        let warnings = permission_warnings(Path::new("/etc/pw"), 0o100644, uid, gid);
        assert_eq!(
            warnings,
            vec![
                "Warning: File /etc/pw has world readable permissions. Future versions will \
                  refuse to load this file.\nTo fix this, use `chmod 0700 /etc/pw`."
                    .to_string()
            ]
        );
        assert_eq!(
            permission_warnings(Path::new("/p"), 0o100601, uid, gid).len(),
            1,
            "any bit for other counts (S_IRWXO)"
        );
    }

    #[test]
    fn foreign_owner_and_group_warn_with_our_names() {
        let (uid, gid) = process_ids();
        let me = user_name(uid).expect("the test user has a passwd entry");
        let my_group = group_name(gid).expect("the test group has a group entry");
        let warnings = permission_warnings(Path::new("/p"), 0o100600, uid + 1, gid + 1);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains(&format!("owner is not {me}.")));
        assert!(warnings[0].contains(&format!("`chown {me} /p`")));
        assert!(warnings[1].contains(&format!("group is not {my_group}.")));
    }
}
