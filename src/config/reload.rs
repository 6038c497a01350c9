//! Reload (SIGHUP): which settings of a re-read config take effect without a restart.
//!
//! Mosquitto re-reads the file on SIGHUP but keeps listeners, plugins and process settings as
//! they were (`mosquitto.conf(5)`, "Reloaded on reload signal"). Culex follows it:
//! - applied now: logging, limits, `$SYS` interval, QoS/retain behaviour, autosave settings,
//!   client expiration, global limits, `per_listener_settings` and every listener's security
//!   options (`allow_anonymous`, `password_file`, `acl_file`, ...) and TLS settings — the
//!   broker re-reads password, ACL and certificate files on reload;
//! - kept until restart: the set of listeners and their socket/protocol settings, plugins,
//!   `threads`, `cpu_affinity`, `user`, `pid_file`, `enable_control_api`, the cluster
//!   link's `cluster_secret_file` and `cluster_tls_*`, and where persistence lives
//!   (`persistence`, `persistence_location`, `persistence_file`).
//!
//! Listeners are matched by port and bind address, as Mosquitto does.

use super::types::{Config, Listener};

/// The outcome of a reload: the config to run with and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Reload {
    /// The config to run with from now on: reloadable settings from the new file, the rest
    /// as before.
    pub config: Config,
    /// Settings that changed and take effect now (option names, listener ones prefixed with
    /// `listener <port>: `).
    pub applied: Vec<String>,
    /// Settings that changed in the file but keep their old value until a restart.
    pub needs_restart: Vec<String>,
}

impl Config {
    /// Merges a freshly loaded `new` config into this running one; see the module docs for
    /// what is reloadable. `new` should already have the command-line overrides applied.
    pub fn reloadable_from(&self, new: &Config) -> Reload {
        let mut next = new.clone();
        let mut applied = Vec::new();
        let mut needs_restart = Vec::new();
        let mut note = |name: &str, changed: bool, reloadable: bool| {
            if changed {
                let list = if reloadable {
                    &mut applied
                } else {
                    &mut needs_restart
                };
                list.push(name.to_string());
            }
        };
        note("logging", self.logging != new.logging, true);
        note("limits", self.limits != new.limits, true);
        note("sys_interval", self.sys_interval != new.sys_interval, true);
        note(
            "upgrade_outgoing_qos",
            self.upgrade_outgoing_qos != new.upgrade_outgoing_qos,
            true,
        );
        note(
            "queue_qos0_messages",
            self.queue_qos0_messages != new.queue_qos0_messages,
            true,
        );
        note(
            "retain_available",
            self.retain_available != new.retain_available,
            true,
        );
        note(
            "check_retain_source",
            self.check_retain_source != new.check_retain_source,
            true,
        );
        note(
            "retain_expiry_interval",
            self.retain_expiry_interval != new.retain_expiry_interval,
            true,
        );
        note(
            "set_tcp_nodelay",
            self.set_tcp_nodelay != new.set_tcp_nodelay,
            true,
        );
        note(
            "clientid_prefixes",
            self.clientid_prefixes != new.clientid_prefixes,
            true,
        );
        note(
            "global_max_clients",
            self.global_max_clients != new.global_max_clients,
            true,
        );
        note(
            "global_max_connections",
            self.global_max_connections != new.global_max_connections,
            true,
        );
        note(
            "per_listener_settings",
            self.per_listener_settings != new.per_listener_settings,
            true,
        );
        note("security", self.security != new.security, true);
        let (old_p, new_p) = (&self.persistence, &new.persistence);
        note(
            "autosave_interval",
            old_p.autosave_interval != new_p.autosave_interval,
            true,
        );
        note(
            "autosave_on_changes",
            old_p.autosave_on_changes != new_p.autosave_on_changes,
            true,
        );
        note(
            "persistent_client_expiration",
            old_p.client_expiration != new_p.client_expiration,
            true,
        );
        note("persistence", old_p.enabled != new_p.enabled, false);
        note(
            "persistence_location",
            old_p.location != new_p.location,
            false,
        );
        note("persistence_file", old_p.file != new_p.file, false);
        note("plugins", self.plugins != new.plugins, false);
        note("threads", self.threads != new.threads, false);
        note("cpu_affinity", self.cpu_affinity != new.cpu_affinity, false);
        note("user", self.user != new.user, false);
        note("pid_file", self.pid_file != new.pid_file, false);
        note(
            "enable_control_api",
            self.enable_control_api != new.enable_control_api,
            false,
        );
        note("daemon", self.daemon != new.daemon, false);
        note("cluster link", self.cluster_link != new.cluster_link, false);

        next.persistence.enabled = self.persistence.enabled;
        next.persistence
            .location
            .clone_from(&self.persistence.location);
        next.persistence.file.clone_from(&self.persistence.file);
        next.plugins.clone_from(&self.plugins);
        next.threads = self.threads;
        next.cpu_affinity = self.cpu_affinity;
        next.user.clone_from(&self.user);
        next.pid_file.clone_from(&self.pid_file);
        next.enable_control_api = self.enable_control_api;
        next.daemon = self.daemon;
        next.cluster_link.clone_from(&self.cluster_link);
        next.local_only = self.local_only;
        next.listeners = reload_listeners(
            &self.listeners,
            &new.listeners,
            &mut applied,
            &mut needs_restart,
        );
        Reload {
            config: next,
            applied,
            needs_restart,
        }
    }
}

/// The running listeners with security and TLS taken from their match in `new`.
fn reload_listeners(
    old: &[Listener],
    new: &[Listener],
    applied: &mut Vec<String>,
    needs_restart: &mut Vec<String>,
) -> Vec<Listener> {
    let same_set =
        old.len() == new.len() && old.iter().all(|l| new.iter().any(|n| n.same_socket(l)));
    if !same_set {
        needs_restart.push("listeners".to_string());
    }
    old.iter()
        .map(|running| {
            let mut kept = running.clone();
            let Some(fresh) = new.iter().find(|n| n.same_socket(running)) else {
                return kept;
            };
            let label = format!("listener {}", running.port);
            if fresh.security != running.security {
                applied.push(format!("{label}: security"));
            }
            if fresh.tls != running.tls {
                applied.push(format!("{label}: tls"));
            }
            kept.security = fresh.security.clone();
            kept.tls = fresh.tls.clone();
            kept.file.clone_from(&fresh.file);
            kept.line = fresh.line;
            let mut compare = fresh.clone();
            compare.security = kept.security.clone();
            compare.tls = kept.tls.clone();
            if compare != kept {
                needs_restart.push(format!("{label}: settings"));
            }
            kept
        })
        .collect()
}
