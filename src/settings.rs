//! Turns the parsed [`Config`] into the shards' [`Settings`].
//!
//! Called by `main` at start and on SIGHUP.

use crate::config::{Bind, Config, Listener, Protocol, SocketDomain, TlsVersion};
use shards::settings::{ListenerSettings, PersistenceSettings, Settings};
use shards::transport::tls::{server_config, CertificateUsername, TlsOptions};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

/// Why the broker cannot start with a configuration that parsed.
#[derive(Debug)]
pub struct StartError {
    /// Message (already in Mosquitto's `Error: ...` form).
    pub message: String,
    /// Exit code.
    pub code: u8,
}

/// The shards' settings for `config`, with TLS configurations built and `http_dir`s resolved
/// from the files as they are now (start and reload).
pub fn shard_settings(config: &Config) -> Result<Settings, StartError> {
    let mut settings = settings_plan(config)?;
    for (listener, settings) in config.listeners.iter().zip(settings.listeners.iter_mut()) {
        settings.tls = tls_config(listener)?;
        settings.http_dir = http_dir(listener)?;
    }
    Ok(settings)
}

/// What [`shard_settings`] makes of `config` before any file is read: no TLS configuration
/// yet (see [`tls_options`]) and `http_dir` as written.
pub fn settings_plan(config: &Config) -> Result<Settings, StartError> {
    let limits = &config.limits;
    let mut listeners = Vec::with_capacity(config.listeners.len());
    for listener in &config.listeners {
        let addresses = listener_addresses(&listener.bind, listener.port, listener.socket_domain)?;
        let security = &listener.security;
        let versions = listener.accept_protocol_versions;
        let accept = (u8::from(versions.v3) << 3)
            | (u8::from(versions.v4) << 4)
            | (u8::from(versions.v5) << 5);
        listeners.push(ListenerSettings {
            addresses,
            unix_path: match &listener.bind {
                Bind::Unix(path) => Some(path.clone()),
                _ => None,
            },
            bind_device: listener.bind_interface.clone(),
            admin: listener.admin,
            port: listener.port,
            max_connections: listener.max_connections.map(|max| max as usize),
            mount_point: listener.mount_point.clone(),
            max_qos: listener.max_qos,
            max_topic_alias: listener.max_topic_alias,
            max_topic_alias_broker: listener.max_topic_alias_broker,
            allow_anonymous: security.allow_anonymous,
            allow_zero_length_clientid: security.allow_zero_length_clientid,
            auto_id_prefix: security.auto_id_prefix.clone(),
            use_username_as_clientid: listener.use_username_as_clientid,
            accept_protocol_versions: accept,
            tls: None,
            certificate_username: certificate_username(listener),
            websockets: (listener.protocol == Protocol::WebSockets)
                .then(|| listener.websockets_origins.clone()),
            http: listener.protocol == Protocol::HttpApi,
            http_dir: listener
                .http_dir
                .clone()
                .filter(|_| listener.protocol == Protocol::WebSockets),
        });
    }
    let persistence = config.persistence.enabled.then(|| PersistenceSettings {
        path: config.persistence.database_path(),
        autosave_interval: u64::from(config.persistence.autosave_interval),
        autosave_on_changes: config.persistence.autosave_on_changes,
    });
    Ok(Settings {
        max_inflight_messages: limits.max_inflight_messages,
        max_inflight_bytes: limits.max_inflight_bytes as usize,
        max_queued_messages: limits.max_queued_messages as usize,
        max_queued_bytes: limits.max_queued_bytes as usize,
        queue_qos0_messages: config.queue_qos0_messages,
        max_packet_size: limits.max_packet_size,
        message_size_limit: limits.message_size_limit as usize,
        max_keepalive: limits.max_keepalive,
        retain_available: config.retain_available,
        upgrade_outgoing_qos: config.upgrade_outgoing_qos,
        persistent_client_expiration: config.persistence.client_expiration.map(|d| d.as_secs()),
        sys_interval: u64::from(config.sys_interval),
        connection_messages: config.logging.connection_messages,
        reason_strings: config.reason_strings,
        control_api: config.control_api(),
        clientid_prefixes: config.clientid_prefixes.clone(),
        version_text: format!("culex version {}", env!("CARGO_PKG_VERSION")),
        persistence,
        listeners,
    })
}

/// The rustls configuration of a TLS listener, read from its files now (start and reload).
fn tls_config(listener: &Listener) -> Result<Option<Arc<rustls::ServerConfig>>, StartError> {
    let Some(options) = tls_options(listener) else {
        return Ok(None);
    };
    server_config(&options).map(Some).map_err(|why| StartError {
        message: format!(
            "Error: {}:{}: listener {}: {why}.",
            listener.file.display(),
            listener.line,
            listener.port
        ),
        code: 3,
    })
}

/// What a TLS listener's configuration is built from.
pub fn tls_options(listener: &Listener) -> Option<TlsOptions> {
    let tls = listener.tls.as_ref()?;
    Some(TlsOptions {
        certfile: tls.certfile.clone(),
        keyfile: tls.keyfile.clone(),
        cafile: tls.cafile.clone(),
        capath: tls.capath.clone(),
        crlfile: tls.crlfile.clone(),
        require_certificate: tls.require_certificate,
        min_tls13: tls.min_version == Some(TlsVersion::Tls13),
        ciphers: tls.ciphers.clone(),
        ciphers_tls13: tls.ciphers_tls13.clone(),
    })
}

/// The canonical `http_dir` of a websockets listener (read at start and on reload, while
/// the process may still read it as root, as Mosquitto resolves it once at start). A
/// directory that cannot be resolved stops start-up with Mosquitto's message.
fn http_dir(listener: &Listener) -> Result<Option<std::path::PathBuf>, StartError> {
    let Some(dir) = &listener.http_dir else {
        return Ok(None);
    };
    if listener.protocol != Protocol::WebSockets {
        return Ok(None);
    }
    match std::fs::canonicalize(dir) {
        Ok(real) if real.is_dir() => Ok(Some(real)),
        _ => Err(StartError {
            message: format!(
                "Error: Unable to open http dir \"{}\" ({}:{}, listener {}).",
                dir.display(),
                listener.file.display(),
                listener.line,
                listener.port
            ),
            code: 1,
        }),
    }
}

/// Which part of a client certificate names the user, if the listener says so.
fn certificate_username(listener: &Listener) -> Option<CertificateUsername> {
    let tls = listener.tls.as_ref()?;
    if tls.use_identity_as_username {
        Some(CertificateUsername::CommonName)
    } else if tls.use_subject_as_username {
        Some(CertificateUsername::Subject)
    } else {
        None
    }
}

/// The socket addresses a listener binds: every address of its host (or the IPv4 and IPv6
/// wildcards), filtered by `socket_domain`.
fn listener_addresses(
    bind: &Bind,
    port: u16,
    domain: Option<SocketDomain>,
) -> Result<Vec<SocketAddr>, StartError> {
    let candidates: Vec<SocketAddr> = match bind {
        Bind::Any => vec![
            SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::from(([0u16; 8], port)),
        ],
        Bind::Host(host) => (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|error| StartError {
                message: format!("Error: cannot resolve {host}: {error}."),
                code: 1,
            })?
            .collect(),
        Bind::Unix(_) => Vec::new(),
    };
    Ok(candidates
        .into_iter()
        .filter(|address| match domain {
            Some(SocketDomain::Ipv4) => address.is_ipv4(),
            Some(SocketDomain::Ipv6) => address.is_ipv6(),
            None => true,
        })
        .collect())
}
