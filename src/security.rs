//! Authentication and authorisation set-up: builds the shards' [`AccessPolicy`] from the
//! configuration and, when the dynamic-security module is configured, loads (or
//! bootstraps) `dynamic-security.json` and prepares the service thread that owns it.
//!
//! Called by `main` at start and on SIGHUP (`base_policy` again; the dynamic-security
//! state itself is read once, as Mosquitto reads it once).

use crate::config::{Config, PluginKind};
use crate::settings::StartError;
use shards::access::{AccessPolicy, ListenerAccess};
use shards::authfile::{AclFile, FileError, PasswordFile};
use shards::dynsec::bootstrap::{
    bootstrap_if_missing, init_file_password, password_file_path, Bootstrap, BootstrapError,
    BootstrapOptions, ENV_PASSWORD_VARIABLE,
};
use shards::dynsec::limits::ENV_PASSWORD_BYTES_MIN;
use shards::dynsec::password::PasswordPolicy;
use shards::dynsec::service::DynsecService;
use shards::dynsec::{store, AclSnapshot};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The policy without the dynamic-security rules (those come from the service): per
/// listener, `allow_anonymous` and the password and ACL files (from the options or from
/// Mosquitto's password-file and ACL-file plugins), read now. A file that cannot be read
/// is an error naming it and the line, as for the configuration itself.
pub fn base_policy(config: &Config) -> Result<AccessPolicy, StartError> {
    let mut passwords: HashMap<PathBuf, Arc<PasswordFile>> = HashMap::new();
    let mut acls: HashMap<PathBuf, Arc<AclFile>> = HashMap::new();
    let mut listeners = Vec::with_capacity(config.listeners.len());
    for (index, listener) in config.listeners.iter().enumerate() {
        let security = &listener.security;
        let password_path = security
            .password_file
            .clone()
            .or_else(|| plugin_file(config, index, PluginKind::PasswordFile, "password_file"));
        let acl_path = security
            .acl_file
            .clone()
            .or_else(|| plugin_file(config, index, PluginKind::AclFile, "acl_file"));
        let password_file = match password_path {
            Some(path) => Some(cached(&mut passwords, path, PasswordFile::load)?),
            None => None,
        };
        let acl_file = match acl_path {
            Some(path) => Some(cached(&mut acls, path, AclFile::load)?),
            None => None,
        };
        listeners.push(ListenerAccess {
            allow_anonymous: security.allow_anonymous,
            password_file,
            acl_file,
        });
    }
    Ok(AccessPolicy::open(listeners))
}

/// The file a password-file or ACL-file plugin names for listener `index`.
fn plugin_file(config: &Config, index: usize, kind: PluginKind, option: &str) -> Option<PathBuf> {
    config
        .plugins_for_listener(index)
        .find(|p| p.kind == kind)
        .and_then(|p| p.option(option))
        .map(PathBuf::from)
}

/// Loads `path` once, however many listeners name it.
fn cached<T>(
    files: &mut HashMap<PathBuf, Arc<T>>,
    path: PathBuf,
    load: impl Fn(&std::path::Path) -> Result<T, FileError>,
) -> Result<Arc<T>, StartError>
where
    T: Warned,
{
    if let Some(file) = files.get(&path) {
        return Ok(file.clone());
    }
    let file = load(&path).map_err(|error| StartError {
        message: error.to_string(),
        code: 3,
    })?;
    for warning in file.warnings() {
        log::warn!("{warning}");
    }
    let file = Arc::new(file);
    files.insert(path, file.clone());
    Ok(file)
}

/// Files that carry load-time warnings.
trait Warned {
    fn warnings(&self) -> &[String];
}

impl Warned for PasswordFile {
    fn warnings(&self) -> &[String] {
        PasswordFile::warnings(self)
    }
}

impl Warned for AclFile {
    fn warnings(&self) -> &[String] {
        AclFile::warnings(self)
    }
}

/// Dynamic security as configured: the service to start, or `None` when the module is
/// not configured (or configured without `plugin_opt_config_file`, which Mosquitto also
/// runs as "no dynamic security", with a warning).
pub fn dynsec_service(config: &Config) -> Result<Option<DynsecService>, StartError> {
    let Some(plugin) = config.plugin(PluginKind::DynamicSecurity) else {
        return Ok(None);
    };
    let Some(file) = plugin.option("config_file") else {
        log::warn!("Warning: Dynamic security plugin has no plugin_opt_config_file defined. The plugin will not be activated.");
        return Ok(None);
    };
    let path = PathBuf::from(file);
    let env_password =
        std::env::var_os("MOSQUITTO_DYNSEC_PASSWORD").map(|v| v.into_encoded_bytes());
    let init_file = plugin.option("password_init_file").map(PathBuf::from);
    let options = BootstrapOptions {
        config_file: &path,
        password_init_file: init_file.as_deref(),
        env_password: env_password.as_deref(),
        policy: PasswordPolicy::default(),
    };
    let fail = |message: String| StartError { message, code: 1 };
    let state = match bootstrap_if_missing(&options)
        .map_err(|e| fail(format!("Error: dynamic security: {e}")))?
    {
        Bootstrap::Generated { state, log, .. } => {
            for line in log {
                log::info!("{line}");
            }
            state
        }
        Bootstrap::Existing => {
            let (state, warnings) = store::load_file(&path).map_err(|e| {
                fail(format!(
                    "Error: dynamic security: cannot load {}: {e}.",
                    path.display()
                ))
            })?;
            for warning in warnings {
                log::warn!("Warning: dynamic security: {}", warning.0);
            }
            state
        }
    };
    Ok(Some(DynsecService {
        state,
        path,
        base: base_policy(config)?,
    }))
}

/// `--test-config`'s view of [`dynsec_service`]: fails where the start would, with the
/// same message, without writing anything. An existing file must load; a missing one must
/// be creatable (its directory writable, the initial password available).
pub fn check_dynsec(config: &Config) -> Result<(), StartError> {
    let Some(plugin) = config.plugin(PluginKind::DynamicSecurity) else {
        return Ok(());
    };
    let Some(file) = plugin.option("config_file") else {
        return Ok(());
    };
    let path = PathBuf::from(file);
    let fail = |message: String| StartError { message, code: 3 };
    match std::fs::symlink_metadata(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        // The start loads whatever is there (or fails to).
        _ => {
            return store::load_file(&path).map(|_| ()).map_err(|e| {
                fail(format!(
                    "Error: dynamic security: cannot load {}: {e}.",
                    path.display()
                ))
            })
        }
    }
    let init_file = plugin.option("password_init_file").map(PathBuf::from);
    let env_password = std::env::var_os(ENV_PASSWORD_VARIABLE);
    // What the start would write first: the generated passwords, or the file itself.
    let first_written = match (&init_file, &env_password) {
        (Some(init), _) => {
            let content = std::fs::read(init)
                .map_err(|e| BootstrapError::InitFileUnreadable(init.clone(), e));
            match content {
                Ok(content) if init_file_password(&content).is_none() => {
                    Err(BootstrapError::InitFileEmpty(init.clone()))
                }
                Ok(_) => Ok(path.clone()),
                Err(error) => Err(error),
            }
        }
        (None, Some(value)) if value.len() < ENV_PASSWORD_BYTES_MIN => {
            Err(BootstrapError::EnvPasswordTooShort)
        }
        (None, Some(_)) => Ok(path.clone()),
        (None, None) => Ok(password_file_path(&path)),
    };
    let writable = first_written.and_then(|file| {
        let directory = match file.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        directory_writable(&directory).map_err(|e| BootstrapError::Write(file, e))
    });
    writable.map_err(|e| fail(format!("Error: dynamic security: {e}")))
}

/// Whether this process may create files in `directory` (access(2) with W_OK and X_OK).
fn directory_writable(directory: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let name = std::ffi::CString::new(directory.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: access(2) on a valid C string.
    if unsafe { libc::access(name.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The policy the shards start with.
pub fn initial_policy(
    config: &Config,
    service: Option<&DynsecService>,
) -> Result<Arc<AccessPolicy>, StartError> {
    Ok(Arc::new(match service {
        Some(service) => service
            .base
            .with_dynsec(Arc::new(AclSnapshot::build(&service.state))),
        None => base_policy(config)?,
    }))
}
