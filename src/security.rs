//! Authentication and authorisation set-up: builds the shards' [`AccessPolicy`] from the
//! configuration and, when the dynamic-security module is configured, loads (or
//! bootstraps) `dynamic-security.json` and prepares the service thread that owns it.
//!
//! Called by `main` at start and on SIGHUP (`base_policy` again; the dynamic-security
//! state itself is read once, as Mosquitto reads it once).

use crate::config::{Config, PluginKind};
use crate::settings::StartError;
use shards::access::{AccessPolicy, ListenerAccess};
use shards::dynsec::bootstrap::{bootstrap_if_missing, Bootstrap, BootstrapOptions};
use shards::dynsec::password::PasswordPolicy;
use shards::dynsec::service::DynsecService;
use shards::dynsec::{store, AclSnapshot};
use std::path::PathBuf;
use std::sync::Arc;

/// The policy without the dynamic-security rules (those come from the service).
pub fn base_policy(config: &Config) -> AccessPolicy {
    let listeners = config
        .listeners
        .iter()
        .map(|listener| ListenerAccess {
            allow_anonymous: listener.security.allow_anonymous,
        })
        .collect();
    AccessPolicy::open(listeners)
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
        base: base_policy(config),
    }))
}

/// The policy the shards start with.
pub fn initial_policy(config: &Config, service: Option<&DynsecService>) -> Arc<AccessPolicy> {
    let base = base_policy(config);
    Arc::new(match service {
        Some(service) => base.with_dynsec(Arc::new(AclSnapshot::build(&service.state))),
        None => base,
    })
}
