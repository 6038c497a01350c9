//! The binary's side of the cluster: where the HA data lives, which listeners follow
//! leadership, and the sockets the replication core opens and closes through
//! [`ClientSockets`].
//!
//! Called by `main` when the HA module is loaded (or `enable_control_api true`): it binds
//! only the listeners that stay open whatever the node's role (the admin listener, HTTP
//! and Unix-socket listeners) at start, and hands the replication core a [`ClientSockets`]
//! for the rest.

use crate::sockets::{self, ListenGuard, OrphanWait};
use replication::core::ClientListeners;
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
