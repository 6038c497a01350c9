//! Password-file tests. The fixtures in `testdata/` were written by Debian's
//! `mosquitto_passwd` 2.0.11 (passwords listed in `testdata/README.md`), so verifying them
//! checks Culex against the real tool's `$7$` and `$6$` output.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use super::*;
use crate::dynsec::password::{PasswordPolicy, StoredForm};

const PBKDF2: &str = include_str!("testdata/passwd_pbkdf2.txt");
const SHA512: &str = include_str!("testdata/passwd_sha512.txt");
const COMMENTED: &str = include_str!("testdata/passwd_commented.txt");

fn pw() -> &'static Path {
    Path::new("/pw")
}

fn parse(text: &str) -> PasswordFile {
    PasswordFile::parse(pw(), text).unwrap()
}

fn parse_error(text: &str) -> FileError {
    PasswordFile::parse(pw(), text).unwrap_err()
}

/// The hash `mosquitto_passwd` wrote for `user` in the `$7$` fixture.
fn fixture_hash(user: &str) -> &'static str {
    PBKDF2
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{user}:")))
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("culex-authfile-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn pbkdf2_file_from_mosquitto_passwd_verifies() {
    let file = parse(PBKDF2);
    assert_eq!(file.len(), 4);
    assert!(file.warnings().is_empty());
    for (user, password) in [
        ("alice", "alice-secret"),
        ("bob", "b0b pass:with colon"),
        ("john doe", "jd-pw"),
        ("zoë", "zoë-pw"),
    ] {
        let user = user.as_bytes();
        assert_eq!(
            file.check(user, Some(password.as_bytes())),
            PasswordCheck::Allow
        );
        assert_eq!(file.check(user, Some(b"wrong")), PasswordCheck::Deny);
        assert_eq!(
            file.check(user, None),
            PasswordCheck::Deny,
            "missing password"
        );
        assert_eq!(file.check(user, Some(b"")), PasswordCheck::Deny);
    }
    assert_eq!(
        file.check(b"Alice", Some(b"alice-secret")),
        PasswordCheck::UnknownUser,
        "usernames are case-sensitive"
    );
    assert_eq!(
        file.check(b"mallory", Some(b"alice-secret")),
        PasswordCheck::UnknownUser
    );
    assert_eq!(file.check(b"mallory", None), PasswordCheck::UnknownUser);
    assert!(file.contains(b"john doe") && !file.contains(b"john"));
}

#[test]
fn sha512_file_from_mosquitto_passwd_verifies() {
    let file = parse(SHA512);
    assert_eq!(file.len(), 2);
    assert_eq!(
        file.check(b"carol", Some(b"carol-pw")),
        PasswordCheck::Allow
    );
    assert_eq!(file.check(b"carol", Some(b"carol-PW")), PasswordCheck::Deny);
    assert_eq!(file.check(b"dave", Some(b"")), PasswordCheck::Allow);
    assert_eq!(file.check(b"dave", Some(b" ")), PasswordCheck::Deny);
    assert_eq!(
        file.check(b"dave", None),
        PasswordCheck::Deny,
        "an empty password is still a password"
    );
}

/// The broker (not `mosquitto_passwd`) reads comments, blank lines and blanks around the
/// fields; 2.0.11 accepted `  spaced  :  <hash>  ` in `real_broker_runs.txt`.
#[test]
fn comments_blank_lines_and_blanks_around_fields() {
    let file = parse(COMMENTED);
    assert_eq!(file.len(), 2);
    assert!(file.warnings().is_empty(), "{:?}", file.warnings());
    assert_eq!(
        file.check(b"alice", Some(b"alice-secret")),
        PasswordCheck::Allow
    );
    assert_eq!(
        file.check(b"john doe", Some(b"jd-pw")),
        PasswordCheck::Allow
    );
    assert_eq!(
        file.check(b"bob", Some(b"b0b pass:with colon")),
        PasswordCheck::UnknownUser,
        "commented out"
    );
}

#[test]
fn crlf_line_endings_and_no_final_newline() {
    let text = format!(
        "alice:{}\r\n\r\nbob:{}",
        fixture_hash("alice"),
        fixture_hash("bob")
    );
    let file = parse(&text);
    assert_eq!(
        file.check(b"alice", Some(b"alice-secret")),
        PasswordCheck::Allow
    );
    assert_eq!(
        file.check(b"bob", Some(b"b0b pass:with colon")),
        PasswordCheck::Allow
    );
}

/// Mosquitto reads the hash with `strtok(…, ":")`: empty fields are skipped and fields
/// after the hash ignored.
#[test]
fn fields_are_read_like_strtok() {
    let hash = fixture_hash("alice");
    for text in [format!("alice:{hash}:comment"), format!("alice::{hash}")] {
        let file = parse(&text);
        assert_eq!(
            file.check(b"alice", Some(b"alice-secret")),
            PasswordCheck::Allow,
            "{text}"
        );
    }
}

#[test]
fn lines_without_colon_are_skipped_with_a_warning() {
    let text = format!("\n   \n\talice secret\nalice:{}\n", fixture_hash("alice"));
    let file = parse(&text);
    assert_eq!(file.len(), 1);
    assert_eq!(
        file.warnings(),
        ["Warning: Invalid line 3 in password file '/pw' (no ':'), ignoring it."],
        "the line is named, its content (maybe a password) is not echoed"
    );
}

#[test]
fn a_line_it_cannot_read_is_an_error_naming_it() {
    let alice = format!("alice:{}", fixture_hash("alice"));
    let long_name = "u".repeat(FIELD_BYTES_MAX + 1);
    let long_hash = format!("$7${}", "A".repeat(FIELD_BYTES_MAX));
    let cases: Vec<(String, usize, String)> = vec![
        (
            format!("{alice}\nbob:\n"),
            2,
            "Invalid line in password file '/pw': bob".into(),
        ),
        (
            format!("{alice}\nbob:   \n"),
            2,
            "Unable to decode line in password file '/pw' (user 'bob': not a $6$ or $7$ hash; \
             hash plain-text files with mosquitto_passwd -U)"
                .into(),
        ),
        (
            "# users\nplain:text\n".into(),
            2,
            "Unable to decode line in password file '/pw' (user 'plain': not a $6$ or $7$ \
             hash; hash plain-text files with mosquitto_passwd -U)"
                .into(),
        ),
        (
            format!(":{}\n", fixture_hash("alice")),
            1,
            "Empty username in password file '/pw'".into(),
        ),
        (
            "  \t :x\n".into(),
            1,
            "Empty username in password file '/pw'".into(),
        ),
        (
            format!("{alice}\n{alice}\n"),
            2,
            "Duplicate user 'alice' in password file '/pw'".into(),
        ),
        (
            "short:$7$101$AAAA$BBBB\n".into(),
            1,
            "Unable to decode line in password file '/pw' (user 'short': malformed hash)".into(),
        ),
        (
            format!("zero:$7$0${}\n", &fixture_hash("alice")["$7$101$".len()..]),
            1,
            "Unable to decode line in password file '/pw' (user 'zero': malformed hash)".into(),
        ),
        (
            "six:$6$c2FsdA==$c2hvcnQ=\n".into(),
            1,
            "Unable to decode line in password file '/pw' (user 'six': malformed hash)".into(),
        ),
        (
            "argon:$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA\n".into(),
            1,
            "Unable to decode line in password file '/pw' (user 'argon': argon2id hashes \
             (mosquitto_passwd 2.1 -H argon2id) are not supported; use $7$)"
                .into(),
        ),
        (
            format!("{long_name}:x\n"),
            1,
            "Invalid line in password file '/pw', username too long".into(),
        ),
        (
            format!("long:{long_hash}\n"),
            1,
            "Invalid line in password file '/pw', password too long".into(),
        ),
    ];
    for (text, line, message) in cases {
        let error = parse_error(&text);
        assert_eq!(error.path, pw());
        assert_eq!(error.line, line, "{message}");
        assert_eq!(error.message, message);
    }
}

#[test]
fn errors_display_like_mosquitto_config_errors() {
    let error = parse_error("alice:\n");
    assert_eq!(
        error.to_string(),
        "Error: Invalid line in password file '/pw': alice. Error found at /pw:1."
    );
    let missing = PasswordFile::load(Path::new("/nonexistent/culex/pw")).unwrap_err();
    assert_eq!(missing.line, 0);
    assert!(
        missing
            .to_string()
            .starts_with("Error: Unable to open pwfile \"/nonexistent/culex/pw\": "),
        "{missing}"
    );
}

#[test]
fn load_reads_bytes_and_reports_permissions() {
    let dir = scratch("pwload");
    let path = dir.join("passwd");
    let mut bytes = b"# Kennw\xf6rter (Latin-1 comment)\n".to_vec();
    bytes.extend_from_slice(PBKDF2.as_bytes());
    fs::write(&path, &bytes).unwrap();

    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.len(), 4);
    assert!(file.warnings().is_empty(), "{:?}", file.warnings());

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let file = PasswordFile::load(&path).unwrap();
    let shown = path.display();
    assert_eq!(
        file.warnings(),
        [format!(
            "Warning: File {shown} has world readable permissions. Future versions will \
             refuse to load this file.\nTo fix this, use `chmod 0700 {shown}`."
        )]
    );

    let not_a_file = PasswordFile::load(&dir).unwrap_err();
    assert_eq!(not_a_file.line, 0);
    assert_eq!(
        not_a_file.message,
        format!("{} is not a file", dir.display())
    );

    fs::write(&path, "alice:\n").unwrap();
    let error = PasswordFile::load(&path).unwrap_err();
    assert_eq!((error.path.as_path(), error.line), (path.as_path(), 1));
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cache_answers_repeated_logins_and_notices_new_hashes() {
    let file = parse(PBKDF2);
    let mut cache = CredentialCache::new().unwrap();
    let alice = b"alice".as_slice();
    assert_eq!(
        file.check_cached(&mut cache, alice, Some(b"alice-secret")),
        PasswordCheck::Allow
    );
    assert_eq!((cache.len(), cache.hits()), (1, 0));
    assert_eq!(
        file.check_cached(&mut cache, alice, Some(b"alice-secret")),
        PasswordCheck::Allow
    );
    assert_eq!(cache.hits(), 1, "second login answered from the cache");

    assert_eq!(
        file.check_cached(&mut cache, alice, Some(b"wrong")),
        PasswordCheck::Deny
    );
    assert_eq!(
        file.check_cached(&mut cache, alice, None),
        PasswordCheck::Deny
    );
    assert_eq!(
        file.check_cached(&mut cache, b"bob", Some(b"wrong")),
        PasswordCheck::Deny
    );
    assert_eq!(
        (cache.len(), cache.hits()),
        (1, 1),
        "failures are not cached"
    );
    assert_eq!(
        file.check_cached(&mut cache, b"mallory", Some(b"alice-secret")),
        PasswordCheck::UnknownUser
    );

    // A reload where alice's password changed: the cached pair no longer opens the door.
    let policy = PasswordPolicy {
        iterations: 2,
        salt_bytes: 12,
        form: StoredForm::Encoded,
    };
    let new_hash = crate::dynsec::password::PasswordHash::new(b"new-secret", &policy).unwrap();
    let encoded = String::from_utf8(new_hash.encoded().unwrap()).unwrap();
    let reloaded = parse(&format!("alice:{encoded}\n"));
    assert_eq!(
        reloaded.check_cached(&mut cache, alice, Some(b"alice-secret")),
        PasswordCheck::Deny
    );
    assert_eq!(
        reloaded.check_cached(&mut cache, alice, Some(b"new-secret")),
        PasswordCheck::Allow
    );
    assert_eq!(cache.hits(), 1);
}
