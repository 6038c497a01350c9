//! What a configuration makes the broker do, as one comparable value: the outputs of the
//! functions that hand a parsed [`Config`] to the rest of the broker, before any file named
//! in it is read.
//!
//! Used by the config tests to keep the option table honest: every option the table calls
//! implemented must change this value, and every option Culex warns about must not
//! (`config::tests::every_option_has_the_effect_its_class_says`). [`of`] destructures
//! [`Config`] without `..`, so a new field does not compile until it is routed to the code
//! that applies it (or marked as warned); a field parsed and then forgotten shows up as an
//! option without effect.

use crate::config::{Config, Logging, Persistence};
use crate::{security, settings};

/// Everything `main` and the shards are told by `config`, rendered for comparison.
pub fn of(config: &Config) -> String {
    let Config {
        // Where it came from, not what it does.
        config_file: _,
        files: _,
        warnings: _,
        // Read by `settings::settings_plan` (listeners, limits, QoS and retain behaviour,
        // `$SYS`, client ids, persistence location) and `security` (access sources).
        listeners: _,
        local_only: _,
        per_listener_settings: _,
        security: _,
        plugins: _,
        sys_interval: _,
        limits: _,
        upgrade_outgoing_qos: _,
        queue_qos0_messages: _,
        retain_available: _,
        clientid_prefixes: _,
        reason_strings: _,
        enable_control_api: _,
        // Read by `cluster::link_security` on a cluster node.
        cluster_link: _,
        // Read by `main` itself.
        threads,
        cpu_affinity,
        user,
        pid_file,
        daemon,
        persistence,
        // Read by `logging::install`.
        logging,
        // Warned about (options.rs: Class::Unapplied), applied nowhere.
        global_max_clients: _,
        global_max_connections: _,
        check_retain_source: _,
        retain_expiry_interval: _,
        set_tcp_nodelay: _,
    } = config;
    let Persistence {
        enabled,
        // Part of `Settings::persistence` (the database path) when enabled.
        location: _,
        file: _,
        autosave_interval,
        autosave_on_changes,
        client_expiration: _,
    } = persistence;
    // `main`'s autosave timer runs only with persistence on.
    let autosave = enabled.then_some((autosave_interval, autosave_on_changes));
    let Logging {
        destinations,
        types,
        // Part of the shards' settings.
        connection_messages: _,
        timestamp,
        timestamp_format,
        facility,
    } = logging;
    let logs = (destinations, types, timestamp, timestamp_format, facility);
    let shards = settings::settings_plan(config).map_err(|e| e.message);
    let tls: Vec<_> = config.listeners.iter().map(settings::tls_options).collect();
    let access = security::access_plan(config);
    let dynsec = security::dynsec_files(config);
    let process = (threads, cpu_affinity, user, pid_file, daemon);
    let link = crate::cluster::link_plan(config);
    format!(
        "shards {shards:?}\ntls {tls:?}\naccess {access:?}\n\
         dynsec {dynsec:?}\nprocess {process:?}\nautosave {autosave:?}\nlogging {logs:?}\n\
         link {link:?}\n"
    )
}
