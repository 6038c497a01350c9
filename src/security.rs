//! Authentication and authorisation set-up: builds the shards' [`AccessPolicy`] from the
//! configuration and, when the dynamic-security module is configured, loads (or
//! bootstraps) `dynamic-security.json`, decides how new passwords are stored (and logs it),
//! and prepares the service thread that owns it.
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
use shards::dynsec::password::{PasswordPolicy, StoredForm};
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
    for plan in access_plan(config) {
        let password_file = match plan.password_file {
            Some(path) => Some(cached(&mut passwords, path, PasswordFile::load)?),
            None => None,
        };
        let acl_file = match plan.acl_file {
            Some(path) => Some(cached(&mut acls, path, AclFile::load)?),
            None => None,
        };
        listeners.push(ListenerAccess {
            allow_anonymous: plan.allow_anonymous,
            password_file,
            acl_file,
        });
    }
    Ok(AccessPolicy::open(listeners))
}

/// A listener's access sources, before their files are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerAccessPlan {
    /// Clients without a user name may connect.
    pub allow_anonymous: bool,
    /// The password file (option or password-file plugin).
    pub password_file: Option<PathBuf>,
    /// The ACL file (option or ACL-file plugin).
    pub acl_file: Option<PathBuf>,
}

/// Per listener, what [`base_policy`] builds its access from.
pub fn access_plan(config: &Config) -> Vec<ListenerAccessPlan> {
    let plan = |(index, listener): (usize, &crate::config::Listener)| {
        let security = &listener.security;
        ListenerAccessPlan {
            allow_anonymous: security.allow_anonymous,
            password_file: security
                .password_file
                .clone()
                .or_else(|| plugin_file(config, index, PluginKind::PasswordFile, "password_file")),
            acl_file: security
                .acl_file
                .clone()
                .or_else(|| plugin_file(config, index, PluginKind::AclFile, "acl_file")),
        }
    };
    config.listeners.iter().enumerate().map(plan).collect()
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
    if config.plugin(PluginKind::DynamicSecurity).is_none() {
        return Ok(None);
    }
    let Some((path, init_file)) = dynsec_files(config) else {
        log::warn!("Warning: Dynamic security plugin has no plugin_opt_config_file defined. The plugin will not be activated.");
        return Ok(None);
    };
    let env_password =
        std::env::var_os("MOSQUITTO_DYNSEC_PASSWORD").map(|v| v.into_encoded_bytes());
    // Validated when the configuration was read.
    let chosen = config
        .plugin(PluginKind::DynamicSecurity)
        .and_then(|plugin| plugin.option("password_format"))
        .and_then(StoredForm::from_version);
    let options = BootstrapOptions {
        config_file: &path,
        password_init_file: init_file.as_deref(),
        env_password: env_password.as_deref(),
        policy: PasswordPolicy::for_form(chosen.unwrap_or(PasswordPolicy::default().form)),
    };
    let fail = |message: String| StartError { message, code: 1 };
    let (mut state, found) = match bootstrap_if_missing(&options)
        .map_err(|e| fail(format!("Error: dynamic security: {e}")))?
    {
        Bootstrap::Generated { state, log, .. } => {
            for line in log {
                log::info!("{line}");
            }
            (state, None)
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
            let found = store::file_form(&state);
            (state, found)
        }
    };
    let (form, reason) = match (chosen, found) {
        (Some(form), _) => (form, "plugin_opt_password_format".to_owned()),
        (None, Some(form)) => (form, format!("the format {} uses", path.display())),
        (None, None) => (
            PasswordPolicy::default().form,
            "the default: every Mosquitto version reads it".to_owned(),
        ),
    };
    state.set_password_policy(PasswordPolicy::for_form(form));
    log::info!(
        "Dynamic security: new passwords are stored in Mosquitto {} format ({}), {reason}.",
        form.version(),
        form.keys()
    );
    if form == StoredForm::Triple {
        let unreadable = store::unreadable_by_2_0(&state);
        if !unreadable.is_empty() {
            let names: Vec<_> = unreadable
                .iter()
                .map(|name| format!("{:?}", String::from_utf8_lossy(name)))
                .collect();
            log::warn!(
                "Warning: dynamic security: Mosquitto 2.0 cannot check the passwords of {} \
                 (not stored in 2.0 format); setClientPassword stores a new one in 2.0 format.",
                names.join(", ")
            );
        }
    }
    Ok(Some(DynsecService {
        state,
        path,
        base: base_policy(config)?,
    }))
}

/// Dynamic security's `plugin_opt_config_file` and `plugin_opt_password_init_file`, when the
/// module is configured with a config file.
pub fn dynsec_files(config: &Config) -> Option<(PathBuf, Option<PathBuf>)> {
    let plugin = config.plugin(PluginKind::DynamicSecurity)?;
    let file = PathBuf::from(plugin.option("config_file")?);
    Some((file, plugin.option("password_init_file").map(PathBuf::from)))
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
