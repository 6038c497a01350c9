//! The binary's side of the cluster: where the HA data lives, which listeners follow
//! leadership, and the sockets the replication core opens and closes through
//! [`ClientSockets`].
//!
//! Called by `main` when the HA module is loaded (or `enable_control_api true`): it binds
//! only the listeners that stay open whatever the node's role (the admin listener, HTTP
//! and Unix-socket listeners) at start, and hands the replication core a [`ClientSockets`]
//! for the rest, and the cluster link's TLS and secret ([`link_security`]).

use crate::config::{ClusterLink, Config, OptionFile};
use crate::settings::StartError;
use crate::sockets::{self, ListenGuard, OrphanWait};
use replication::core::ClientListeners;
use replication::linksec::{LinkSecurity, LinkTls, Secret, TlsFile};
use shards::runtime::{Control, Inboxes, RuntimeMsg};
use shards::settings::{ListenerSettings, Settings};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The environment variable that names the HA data directory.
pub const DATA_DIR_VARIABLE: &str = "CEDALO_HA_DATA_DIR";

/// The environment variable of the commercial broker's licence file (not needed).
pub const LICENSE_VARIABLE: &str = "CEDALO_LICENSE_FILE";

/// The HA data directory: `CEDALO_HA_DATA_DIR`, else `ha` in the persistence location
/// (the working directory without one).
pub fn data_dir(persistence_location: Option<&Path>) -> PathBuf {
    match std::env::var_os(DATA_DIR_VARIABLE) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            persistence_location.map_or_else(|| PathBuf::from("ha"), |location| location.join("ha"))
        }
    }
}

/// Logs, once, that a licence file is not needed.
pub fn note_license() {
    if let Some(file) = std::env::var_os(LICENSE_VARIABLE) {
        log::info!(
            "{LICENSE_VARIABLE}={} is ignored: Culex needs no licence.",
            Path::new(&file).display()
        );
    }
}

/// The cluster link's options that apply: those of a cluster node (the HA module or
/// `enable_control_api`); a broker that is no cluster node warns that they do nothing.
pub fn link_plan(config: &Config) -> Option<&ClusterLink> {
    config.control_api().then_some(&config.cluster_link)
}

/// How the cluster link is secured, read from the files the options name (at start-up,
/// before privileges are dropped, as the listeners' TLS files). A file that cannot be
/// read, a secret too short, a key that does not match its certificate or a certificate
/// the CA did not sign stops start-up naming the option's file and line.
pub fn link_security(config: &Config) -> Result<LinkSecurity, StartError> {
    let Some(link) = link_plan(config) else {
        return Ok(LinkSecurity::default());
    };
    let fail = |key: &str, option: &OptionFile, why: String| StartError {
        message: format!(
            "Error: {}:{}: {key} {}: {why}.",
            option.file.display(),
            option.line,
            option.path.display()
        ),
        code: crate::config::EXIT_CONFIG_ERROR,
    };
    let secret = match &link.secret_file {
        None => None,
        Some(option) => {
            let secret = Secret::read(&option.path)
                .map_err(|why| fail("cluster_secret_file", option, why))?;
            warn_if_readable_by_others(&option.path);
            Some(secret)
        }
    };
    let tls = match &link.tls {
        None => None,
        Some(tls) => Some(
            LinkTls::load(&tls.certfile.path, &tls.keyfile.path, &tls.cafile.path).map_err(
                |(which, why)| match which {
                    TlsFile::Cert => fail("cluster_tls_certfile", &tls.certfile, why),
                    TlsFile::Key => fail("cluster_tls_keyfile", &tls.keyfile, why),
                    TlsFile::Ca => fail("cluster_tls_cafile", &tls.cafile, why),
                },
            )?,
        ),
    };
    if secret.is_some() || tls.is_some() {
        log::info!(
            "HA: the cluster link uses {}.",
            match (&secret, &tls) {
                (Some(_), Some(_)) => "mutual TLS and the cluster secret",
                (Some(_), None) => "the cluster secret",
                _ => "mutual TLS",
            }
        );
    }
    Ok(LinkSecurity { secret, tls })
}

/// A secret others can read is no secret: says so (start-up goes on).
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            log::warn!(
                "Warning: cluster_secret_file {} can be read by other users (mode {:o}); \
                 make it readable by the broker only (chmod 600).",
                path.display(),
                mode & 0o777
            );
        }
    }
}

/// True for a listener that follows leadership in Full Sync: a TCP listener (MQTT or
/// WebSockets) that is not the admin listener.
pub fn follows_leadership(listener: &ListenerSettings) -> bool {
    !listener.admin && !listener.http && listener.unix_path.is_none()
}

/// The client listeners' sockets while they are open, shared with `main`, which shuts
/// them down at exit.
pub type SharedGuard = Arc<Mutex<Option<ListenGuard>>>;

/// Opens and closes the client listeners for the replication core.
pub struct ClientSockets {
    settings: Arc<Settings>,
    shards: usize,
    inboxes: Arc<Inboxes>,
    listeners: Arc<[usize]>,
    guard: SharedGuard,
}

impl ClientSockets {
    /// The client listeners of `settings` on `shards` shards.
    pub fn new(
        settings: Arc<Settings>,
        shards: usize,
        inboxes: Arc<Inboxes>,
        guard: SharedGuard,
    ) -> ClientSockets {
        let listeners: Arc<[usize]> = settings
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, listener)| follows_leadership(listener))
            .map(|(index, _)| index)
            .collect();
        ClientSockets {
            settings,
            shards,
            inboxes,
            listeners,
            guard,
        }
    }
}

impl ClientListeners for ClientSockets {
    fn set_open(&mut self, open: bool) -> io::Result<()> {
        if open {
            let listeners = self.listeners.clone();
            let bound = sockets::bind_selected(
                &self.settings,
                self.shards,
                |index| listeners.contains(&index),
                OrphanWait::Fail,
            )?;
            if let Ok(mut guard) = self.guard.lock() {
                *guard = Some(bound.guard);
            }
            for (shard, sockets) in bound.shards.into_iter().enumerate() {
                self.inboxes
                    .send(shard as u8, RuntimeMsg::Control(Control::Listen(sockets)));
            }
        } else {
            // No new connection from here on; then every shard closes the clients of
            // these listeners.
            if let Some(guard) = self.guard.lock().ok().and_then(|mut guard| guard.take()) {
                guard.close();
            }
            for shard in 0..self.shards {
                let close = Control::CloseListeners(self.listeners.clone());
                self.inboxes.send(shard as u8, RuntimeMsg::Control(close));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_http_and_unix_listeners_stay_open() {
        let plain = ListenerSettings::plain("127.0.0.1:1883".parse().expect("address"));
        assert!(follows_leadership(&plain));
        let admin = ListenerSettings {
            admin: true,
            ..plain.clone()
        };
        let http = ListenerSettings {
            http: true,
            ..plain.clone()
        };
        let unix = ListenerSettings {
            unix_path: Some(PathBuf::from("/run/culex.sock")),
            ..plain
        };
        for listener in [admin, http, unix] {
            assert!(!follows_leadership(&listener));
        }
    }

    #[test]
    fn the_data_directory_is_ha_in_the_persistence_location() {
        if std::env::var_os(DATA_DIR_VARIABLE).is_some() {
            return;
        }
        assert_eq!(
            data_dir(Some(Path::new("/mosquitto/data"))),
            PathBuf::from("/mosquitto/data/ha")
        );
        assert_eq!(data_dir(None), PathBuf::from("ha"));
    }
}
