//! First start without a `dynamic-security.json` (spec §13.2, Mosquitto 2.1
//! auto-initialisation): generate an admin (and, with random passwords, a demo client),
//! Mosquitto 2.1's default roles and an `unauthenticated` anonymous group, and write the
//! file.
//!
//! The admin password comes from, in this order (the order of 2.1's `config_init.c`):
//! 1. `plugin_opt_password_init_file`: its first line without trailing whitespace;
//! 2. the `MOSQUITTO_DYNSEC_PASSWORD` environment variable (at least 12 bytes, else start-up
//!    is refused);
//! 3. random 20-character passwords for `admin` and `democlient`, written in plain text to
//!    `<config file>.pw` (mode 0600).
//!
//! Called once at broker start, before `store::load_file`. The caller reads the
//! environment and passes the value in; [`default_state`] is pure apart from salts.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::limits::{ENV_PASSWORD_BYTES_MIN, GENERATED_PASSWORD_CHARS, INIT_PASSWORD_BYTES_MAX};
use super::model::{
    insert_role_link, Acl, AclType, Client, DefaultAccess, DynsecState, Group, Role,
};
use super::password::{fill_random, PasswordHash, PasswordPolicy, RandomError};
use super::store::serialise;
use crate::atomic_file::save_atomic;

/// Name of the environment variable holding the initial admin password.
pub const ENV_PASSWORD_VARIABLE: &str = "MOSQUITTO_DYNSEC_PASSWORD";

/// Characters of generated passwords (Mosquitto 2.1's `pw_chars`).
const PASSWORD_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-=_+[]{}@#~,./<>?";

/// Inputs of [`bootstrap_if_missing`].
#[derive(Debug, Clone)]
pub struct BootstrapOptions<'a> {
    /// `plugin_opt_config_file`.
    pub config_file: &'a Path,
    /// `plugin_opt_password_init_file`, when configured.
    pub password_init_file: Option<&'a Path>,
    /// The value of `MOSQUITTO_DYNSEC_PASSWORD` when the variable is set (even if empty).
    pub env_password: Option<&'a [u8]>,
    /// How the generated passwords are hashed.
    pub policy: PasswordPolicy,
}

/// Where the admin password came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// `plugin_opt_password_init_file`.
    InitFile,
    /// `MOSQUITTO_DYNSEC_PASSWORD`.
    Environment,
    /// Generated; written to `<config file>.pw`.
    Random,
}

/// What [`bootstrap_if_missing`] did.
#[derive(Debug)]
pub enum Bootstrap {
    /// The config file exists (readable or not); nothing was done. Load it.
    Existing,
    /// A new config file was written.
    Generated {
        /// The state that was written (identical to loading the file).
        state: DynsecState,
        /// Where the admin password came from.
        source: PasswordSource,
        /// Info lines for the broker log (Mosquitto's wording).
        log: Vec<String>,
    },
}

/// Why no config could be generated; the broker must not start.
#[derive(Debug)]
pub enum BootstrapError {
    /// Occurs when `plugin_opt_password_init_file` cannot be read.
    InitFileUnreadable(PathBuf, io::Error),
    /// Occurs when its first line is empty (after removing trailing whitespace).
    InitFileEmpty(PathBuf),
    /// Occurs when `MOSQUITTO_DYNSEC_PASSWORD` is shorter than 12 bytes.
    EnvPasswordTooShort,
    /// Occurs when the operating system's random source fails.
    Random(RandomError),
    /// Occurs when the config file or the `.pw` file cannot be written.
    Write(PathBuf, io::Error),
}

impl fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootstrapError::InitFileUnreadable(path, e) => write!(
                f,
                "Unable to get initial password from '{}', file not accessible: {e}",
                path.display()
            ),
            BootstrapError::InitFileEmpty(path) => write!(
                f,
                "Unable to get initial password from '{}', password is empty.",
                path.display()
            ),
            BootstrapError::EnvPasswordTooShort => write!(
                f,
                "Not generating dynsec config, {ENV_PASSWORD_VARIABLE} must be at least \
                 {ENV_PASSWORD_BYTES_MIN} characters."
            ),
            BootstrapError::Random(e) => write!(f, "Not generating dynsec config: {e}"),
            BootstrapError::Write(path, e) => {
                write!(f, "Unable to write '{}': {e}", path.display())
            }
        }
    }
}

impl std::error::Error for BootstrapError {}

/// The first line of an init file's content, without trailing whitespace, limited like
/// Mosquitto's 1024-byte `fgets` buffer. `None` when that leaves nothing.
pub fn init_file_password(content: &[u8]) -> Option<Vec<u8>> {
    let limit = content.len().min(INIT_PASSWORD_BYTES_MAX);
    let line_end = content[..limit]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(limit, |newline| newline + 1);
    let mut line = &content[..line_end];
    // C `isspace`: space, \t, \n, \v, \f, \r.
    while let [rest @ .., b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'] = line {
        line = rest;
    }
    (!line.is_empty()).then(|| line.to_vec())
}

/// A random password of [`GENERATED_PASSWORD_CHARS`] characters from Mosquitto's
/// alphabet, without modulo bias.
pub fn random_password() -> Result<Vec<u8>, RandomError> {
    let alphabet_len = PASSWORD_ALPHABET.len();
    let accept_below = 256 - 256 % alphabet_len;
    let mut password = Vec::with_capacity(GENERATED_PASSWORD_CHARS);
    while password.len() < GENERATED_PASSWORD_CHARS {
        let mut byte = [0u8; 1];
        fill_random(&mut byte)?;
        if usize::from(byte[0]) < accept_below {
            password.push(PASSWORD_ALPHABET[usize::from(byte[0]) % alphabet_len]);
        }
    }
    Ok(password)
}

fn full_role(description: &str, topic: &str) -> Role {
    let kinds = [
        AclType::PublishClientSend,
        AclType::PublishClientReceive,
        AclType::SubscribePattern,
        AclType::UnsubscribePattern,
    ];
    role(description, &kinds.map(|kind| (kind, topic)))
}

fn role(description: &str, acls: &[(AclType, &str)]) -> Role {
    let mut role = Role {
        textdescription: Some(description.as_bytes().to_vec()),
        ..Role::default()
    };
    role.replace_acls(
        acls.iter()
            .map(|(kind, topic)| {
                let acl = Acl {
                    topic: topic.as_bytes().to_vec(),
                    priority: 0,
                    allow: true,
                };
                (*kind, acl)
            })
            .collect(),
    );
    role
}

fn default_roles() -> Vec<(&'static str, Role)> {
    use AclType::{PublishClientReceive, PublishClientSend, SubscribePattern, UnsubscribePattern};
    vec![
        (
            "client",
            full_role(
                "Read/write access to the full application topic hierarchy.",
                "#",
            ),
        ),
        (
            "broker-admin",
            full_role(
                "Grants access to administer general broker configuration.",
                "$CONTROL/broker/#",
            ),
        ),
        (
            "dynsec-admin",
            full_role(
                "Grants access to administer clients/groups/roles.",
                "$CONTROL/dynamic-security/#",
            ),
        ),
        (
            "super-admin",
            full_role(
                "Grants access to administer all kind of broker controls",
                "$CONTROL/#",
            ),
        ),
        (
            "sys-notify",
            role(
                "Allow bridges to publish connection state messages.",
                &[(PublishClientSend, "$SYS/broker/connection/%c/state")],
            ),
        ),
        (
            "sys-observe",
            role(
                "Observe the $SYS topic hierarchy.",
                &[
                    (PublishClientReceive, "$SYS/#"),
                    (SubscribePattern, "$SYS/#"),
                ],
            ),
        ),
        (
            "topic-observe",
            role(
                "Read only access to the full application topic hierarchy.",
                &[
                    (PublishClientReceive, "#"),
                    (SubscribePattern, "#"),
                    (UnsubscribePattern, "#"),
                ],
            ),
        ),
    ]
}

/// Mosquitto 2.1's generated configuration: default access send/subscribe denied and
/// receive/unsubscribe allowed, the seven default roles, client `admin` (roles
/// `super-admin`, `sys-observe`, `topic-observe`), client `democlient` (role `client`)
/// when `demo_password` is given, and the `unauthenticated` anonymous group.
pub fn default_state(
    admin_password: &[u8],
    demo_password: Option<&[u8]>,
    policy: PasswordPolicy,
) -> Result<DynsecState, RandomError> {
    let mut state = DynsecState::new();
    state.set_password_policy(policy);
    state.default_access = DefaultAccess::INIT;
    for (name, role) in default_roles() {
        state.roles.insert(name.as_bytes().to_vec(), role);
    }
    let mut admin = Client {
        textname: Some(b"Admin user".to_vec()),
        password: Some(PasswordHash::new(admin_password, &policy)?),
        ..Client::default()
    };
    for rolename in ["super-admin", "sys-observe", "topic-observe"] {
        insert_role_link(&mut admin.roles, rolename.as_bytes(), -1);
    }
    state.clients.insert(b"admin".to_vec(), admin);
    if let Some(demo_password) = demo_password {
        let mut demo = Client {
            textname: Some(
                b"Demonstration client with full read/write access to the '#' topic hierarchy."
                    .to_vec(),
            ),
            password: Some(PasswordHash::new(demo_password, &policy)?),
            ..Client::default()
        };
        insert_role_link(&mut demo.roles, b"client", -1);
        state.clients.insert(b"democlient".to_vec(), demo);
    }
    let unauthenticated = Group {
        textname: Some(b"Unauthenticated group".to_vec()),
        textdescription: Some(
            b"If unauthenticated access is allowed, this group can be used to define roles \
              for clients that connect without a password."
                .to_vec(),
        ),
        ..Group::default()
    };
    state
        .groups
        .insert(b"unauthenticated".to_vec(), unauthenticated);
    state.anonymous_group = Some(b"unauthenticated".to_vec());
    debug_assert_eq!(state.check_invariants(), Ok(()));
    Ok(state)
}

/// `<config file>.pw`.
pub fn password_file_path(config_file: &Path) -> PathBuf {
    let mut name = config_file.as_os_str().to_owned();
    name.push(".pw");
    PathBuf::from(name)
}

/// Generates and writes the configuration when `options.config_file` does not exist (see
/// the module doc); does nothing when it exists, even if it is unreadable (loading then
/// reports that, and an operator's file is never overwritten).
pub fn bootstrap_if_missing(options: &BootstrapOptions<'_>) -> Result<Bootstrap, BootstrapError> {
    match std::fs::symlink_metadata(options.config_file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        _ => return Ok(Bootstrap::Existing),
    }
    let mut log =
        vec!["Dynamic security plugin config not found, generating a default config.".to_owned()];
    let (source, admin_password, demo_password) = if let Some(path) = options.password_init_file {
        let content = std::fs::read(path)
            .map_err(|e| BootstrapError::InitFileUnreadable(path.to_path_buf(), e))?;
        let password = init_file_password(&content)
            .ok_or_else(|| BootstrapError::InitFileEmpty(path.to_path_buf()))?;
        log.push(format!(
            "  Using admin password from file '{}'",
            path.display()
        ));
        (PasswordSource::InitFile, password, None)
    } else if let Some(value) = options.env_password {
        if value.len() < ENV_PASSWORD_BYTES_MIN {
            return Err(BootstrapError::EnvPasswordTooShort);
        }
        log.push(format!(
            "  Using admin password from {ENV_PASSWORD_VARIABLE} environment variable"
        ));
        (PasswordSource::Environment, value.to_vec(), None)
    } else {
        let admin = random_password().map_err(BootstrapError::Random)?;
        let demo = random_password().map_err(BootstrapError::Random)?;
        let pw_path = password_file_path(options.config_file);
        let mut content = b"admin ".to_vec();
        content.extend_from_slice(&admin);
        content.extend_from_slice(b"\ndemoclient ");
        content.extend_from_slice(&demo);
        content.push(b'\n');
        save_atomic(&pw_path, &content).map_err(|e| BootstrapError::Write(pw_path.clone(), e))?;
        log.push(format!(
            "  Generated passwords are at {}",
            pw_path.display()
        ));
        (PasswordSource::Random, admin, Some(demo))
    };
    let state = default_state(&admin_password, demo_password.as_deref(), options.policy)
        .map_err(BootstrapError::Random)?;
    save_atomic(options.config_file, &serialise(&state))
        .map_err(|e| BootstrapError::Write(options.config_file.to_path_buf(), e))?;
    Ok(Bootstrap::Generated { state, source, log })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynsec::acl::{AclSnapshot, AuthResult};
    use crate::dynsec::password::StoredForm;
    use crate::dynsec::store::load_file;
    use std::os::unix::fs::PermissionsExt as _;

    const POLICY: PasswordPolicy = PasswordPolicy {
        iterations: 3,
        salt_bytes: 64,
        form: StoredForm::Encoded,
    };

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("culex-bootstrap-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn options<'a>(
        config: &'a Path,
        init: Option<&'a Path>,
        env: Option<&'a [u8]>,
    ) -> BootstrapOptions<'a> {
        BootstrapOptions {
            config_file: config,
            password_init_file: init,
            env_password: env,
            policy: POLICY,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn logs_in(state: &DynsecState, user: &str, password: &[u8]) -> bool {
        AclSnapshot::build(state).authenticate(Some(user.as_bytes()), Some(password), b"id")
            == AuthResult::Allow
    }

    #[test]
    fn short_environment_password_is_refused_and_writes_nothing() {
        let dir = scratch("short");
        let config = dir.join("dynamic-security.json");
        let err = bootstrap_if_missing(&options(&config, None, Some(b"elevenchars"))).unwrap_err();
        assert!(matches!(err, BootstrapError::EnvPasswordTooShort));
        assert_eq!(
            err.to_string(),
            "Not generating dynsec config, MOSQUITTO_DYNSEC_PASSWORD must be at least 12 characters."
        );
        let err = bootstrap_if_missing(&options(&config, None, Some(b""))).unwrap_err();
        assert!(matches!(err, BootstrapError::EnvPasswordTooShort));
        assert!(!config.exists());
        assert!(!password_file_path(&config).exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn environment_password_creates_admin_and_default_roles() {
        let dir = scratch("env");
        let config = dir.join("dynamic-security.json");
        let outcome = bootstrap_if_missing(&options(&config, None, Some(b"twelve-chars"))).unwrap();
        let Bootstrap::Generated { state, source, log } = outcome else {
            panic!("expected a generated config");
        };
        assert_eq!(source, PasswordSource::Environment);
        assert_eq!(
            log[0],
            "Dynamic security plugin config not found, generating a default config."
        );
        assert_eq!(mode(&config), 0o600);
        let (loaded, warnings) = load_file(&config).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(loaded.clients(), state.clients());
        assert_eq!(loaded.roles(), state.roles());
        assert_eq!(loaded.groups(), state.groups());
        assert_eq!(loaded.anonymous_group(), Some(&b"unauthenticated"[..]));
        assert_eq!(loaded.default_access(), DefaultAccess::INIT);
        assert!(logs_in(&loaded, "admin", b"twelve-chars"));
        assert!(!loaded.clients().contains_key(&b"democlient".to_vec()));
        let names: Vec<_> = loaded
            .roles()
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "broker-admin",
                "client",
                "dynsec-admin",
                "super-admin",
                "sys-notify",
                "sys-observe",
                "topic-observe"
            ]
        );
        let admin_roles: Vec<_> = loaded.clients()[&b"admin".to_vec()]
            .roles()
            .iter()
            .map(|l| String::from_utf8_lossy(&l.rolename).into_owned())
            .collect();
        assert_eq!(admin_roles, ["super-admin", "sys-observe", "topic-observe"]);
        assert!(!password_file_path(&config).exists());
        // A second start finds the file and leaves it alone.
        let before = std::fs::read(&config).unwrap();
        let again =
            bootstrap_if_missing(&options(&config, None, Some(b"another-password"))).unwrap();
        assert!(matches!(again, Bootstrap::Existing));
        assert_eq!(std::fs::read(&config).unwrap(), before);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn init_file_wins_over_the_environment() {
        let dir = scratch("init");
        let config = dir.join("dynamic-security.json");
        let init = dir.join("init-password");
        std::fs::write(&init, b"from-the-file \t\r\nsecond line\n").unwrap();
        let outcome = bootstrap_if_missing(&options(
            &config,
            Some(&init),
            Some(b"from-the-environment"),
        ))
        .unwrap();
        let Bootstrap::Generated { state, source, .. } = outcome else {
            panic!("expected a generated config");
        };
        assert_eq!(source, PasswordSource::InitFile);
        assert!(logs_in(&state, "admin", b"from-the-file"));
        assert!(!logs_in(&state, "admin", b"from-the-environment"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unusable_init_files_are_errors() {
        let dir = scratch("init-bad");
        let config = dir.join("dynamic-security.json");
        let init = dir.join("init-password");
        std::fs::write(&init, b"  \n").unwrap();
        let err = bootstrap_if_missing(&options(&config, Some(&init), None)).unwrap_err();
        assert!(matches!(err, BootstrapError::InitFileEmpty(_)));
        let missing = dir.join("missing");
        let err = bootstrap_if_missing(&options(&config, Some(&missing), None)).unwrap_err();
        assert!(matches!(err, BootstrapError::InitFileUnreadable(..)));
        assert!(!config.exists());
        assert_eq!(init_file_password(b"pw"), Some(b"pw".to_vec()));
        assert_eq!(
            init_file_password(&[b'x'; 2000]).map(|p| p.len()),
            Some(INIT_PASSWORD_BYTES_MAX)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn random_passwords_are_written_to_the_pw_file() {
        let dir = scratch("random");
        let config = dir.join("dynamic-security.json");
        let outcome = bootstrap_if_missing(&options(&config, None, None)).unwrap();
        let Bootstrap::Generated { state, source, log } = outcome else {
            panic!("expected a generated config");
        };
        assert_eq!(source, PasswordSource::Random);
        let pw_path = password_file_path(&config);
        assert!(log[1].contains(&*pw_path.to_string_lossy()));
        assert_eq!(mode(&pw_path), 0o600);
        let content = String::from_utf8(std::fs::read(&pw_path).unwrap()).unwrap();
        let lines: Vec<(&str, &str)> = content
            .lines()
            .map(|l| l.split_once(' ').unwrap())
            .collect();
        assert_eq!(
            lines.iter().map(|(u, _)| *u).collect::<Vec<_>>(),
            ["admin", "democlient"]
        );
        for (user, password) in lines {
            assert_eq!(password.len(), GENERATED_PASSWORD_CHARS);
            assert!(password.bytes().all(|b| PASSWORD_ALPHABET.contains(&b)));
            assert!(logs_in(&state, user, password.as_bytes()), "{user}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
