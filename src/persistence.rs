//! The binary's side of persistence: restoring the state file at start (setting a damaged
//! file aside rather than refusing to start) and saving snapshots on autosave, SIGUSR1 and
//! shutdown. The format and the crash-safe write are `shards::persist`'s.

use crate::config::Config;
use shards::persist::{self, ShardSnapshot};
use shards::runtime::{BrokerHandle, Restore};
use shards::settings::PersistenceSettings;

/// Reads the state file and splits it over `shards`. A missing file means a fresh start; a
/// damaged one (or one whose records do not fit together) is renamed
/// `<file>.corrupt-<unix time>` and logged, and the broker starts empty (Mosquitto users
/// asked for exactly this, eclipse-mosquitto#3160). A file of a newer format version is
/// set aside the same way, and the log line names the version.
pub fn restore(settings: Option<&PersistenceSettings>, shards: usize) -> Vec<Restore> {
    let empty = || (0..shards).map(|_| Restore::default()).collect();
    let Some(settings) = settings else {
        return empty();
    };
    log::info!(
        "Restoring persistent database from {}.",
        settings.path.display()
    );
    let loaded = persist::load(&settings.path).and_then(|snapshot| {
        // The records are applied to scratch stores first: a file whose records do not fit
        // together is set aside as a whole, never half restored.
        let restores = snapshot.map(|snapshot| persist::split(snapshot, shards));
        if let Some(restores) = &restores {
            persist::verify(restores)?;
        }
        Ok(restores)
    });
    match loaded {
        Ok(Some(restores)) => restores,
        Ok(None) => empty(),
        Err(error) => {
            let aside = settings
                .path
                .with_extension(format!("corrupt-{}", shards::runtime::now().unix_s));
            log::error!(
                "Error: cannot read {}: {error}; moved it to {} and starting empty.",
                settings.path.display(),
                aside.display()
            );
            let _ = std::fs::rename(&settings.path, &aside);
            empty()
        }
    }
}

/// Snapshots the running broker and writes the state file.
pub fn save(broker: &BrokerHandle, config: &Config) {
    if !config.persistence.enabled {
        return;
    }
    match broker.snapshot() {
        Ok(parts) => write(parts, config),
        Err(error) => log::error!("Error: saving the database failed: {error}."),
    }
}

/// Writes shard snapshots to the state file.
pub fn write(parts: Vec<ShardSnapshot>, config: &Config) {
    let path = config.persistence.database_path();
    log::info!("Saving in-memory database to {}.", path.display());
    let snapshot = persist::combine(parts, shards::runtime::now().unix_s);
    if let Err(error) = persist::save(&path, &snapshot) {
        log::error!(
            "Error saving in-memory database, unable to open {} for writing: {error}.",
            path.display()
        );
    }
}
