//! Turns a [`Draft`] into a validated [`Config`]: defaults, local-only mode, effective
//! per-listener security, TLS checks. Also the embedded default and command-line overrides.

use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigWarning};
use super::resolve::{ClusterTlsDraft, Draft, ListenerDraft, SecurityDraft, TlsDraft};
use super::types::{
    Bind, ClusterLink, ClusterTls, Config, Limits, Listener, LogTypes, Logging, Persistence,
    Plugin, PluginKind, PluginScope, Protocol, Security, Tls,
};

/// The port of Mosquitto's default and local-only listeners.
pub const DEFAULT_PORT: u16 = 1883;
/// The addresses of the local-only listeners.
const LOOPBACK_HOSTS: [&str; 2] = ["127.0.0.1", "::1"];

impl Config {
    /// A config with every default and no listener; `load` and `embedded_default` start here.
    pub(super) fn base(config_file: Option<&Path>) -> Config {
        Config {
            config_file: config_file.map(Path::to_path_buf),
            files: Vec::new(),
            listeners: Vec::new(),
            local_only: false,
            per_listener_settings: false,
            security: Security::default(),
            plugins: Vec::new(),
            threads: 0,
            cpu_affinity: shards::cpu_affinity::Mode::Auto,
            reason_strings: false,
            user: "mosquitto".to_string(),
            pid_file: None,
            sys_interval: 10,
            enable_control_api: false,
            global_max_clients: None,
            global_max_connections: None,
            persistence: Persistence::default(),
            logging: Logging::default(),
            limits: Limits::default(),
            upgrade_outgoing_qos: false,
            queue_qos0_messages: false,
            retain_available: true,
            check_retain_source: true,
            retain_expiry_interval: None,
            set_tcp_nodelay: false,
            clientid_prefixes: None,
            daemon: false,
            cluster_link: ClusterLink::default(),
            warnings: Vec::new(),
        }
    }

    /// The configuration without a file (`culex` with no `-c`): Mosquitto 2.0's local-only
    /// mode, port 1883 on 127.0.0.1 and ::1, anonymous clients allowed.
    pub fn embedded_default() -> Config {
        let mut config = Config::base(None);
        config.local_only = true;
        config.security.allow_anonymous = true;
        config.listeners = local_only_listeners(&[DEFAULT_PORT], &config.security, Path::new(""));
        config
    }

    /// Applies the command line and environment (see [`Overrides`]). Call it after every
    /// load, including the reload, so both see the same overrides.
    pub fn apply_overrides(&mut self, overrides: &Overrides) {
        if !overrides.ports.is_empty() {
            if self.local_only {
                let file = self.config_file.clone().unwrap_or_default();
                self.listeners = local_only_listeners(&overrides.ports, &self.security, &file);
            } else {
                let file = self.config_file.clone().unwrap_or_default();
                self.warnings.push(ConfigWarning::at(
                    &file,
                    0,
                    "-p is ignored because the configuration file defines listeners.",
                ));
            }
        }
        if overrides.quiet {
            self.logging.types = LogTypes::NONE;
        } else if overrides.verbose {
            self.logging.types = LogTypes::ALL;
        }
        if overrides.daemon {
            self.daemon = true;
        }
        if let Some(location) = &overrides.persistence_location {
            self.persistence.location = Some(location.clone());
        }
        self.dynsec_with_ha();
    }

    /// The HA module brings dynamic security with it: without a dynamic-security plugin
    /// line, one is added (scope global) whose file is `dynamic-security.json` in the
    /// persistence location. An explicit plugin line wins.
    fn dynsec_with_ha(&mut self) {
        if self.plugin(PluginKind::DynamicSecurity).is_some() {
            return;
        }
        let Some(ha) = self.plugin(PluginKind::HighAvailability) else {
            return;
        };
        let directory = self.persistence.location.clone().unwrap_or_default();
        let file = directory.join(HA_DYNSEC_FILE);
        let plugin = Plugin {
            kind: PluginKind::DynamicSecurity,
            path: ha.path.clone(),
            name: None,
            options: vec![("config_file".to_string(), file.display().to_string())],
            deny_special_chars: ha.deny_special_chars,
            scope: PluginScope::Global,
            file: ha.file.clone(),
            line: ha.line,
        };
        self.plugins.push(plugin);
    }

    /// The cluster control API (`$CONTROL/cedalo/ha/v1`) and the replication core run:
    /// the HA module is loaded, or `enable_control_api true`.
    pub fn control_api(&self) -> bool {
        self.enable_control_api || self.plugin(PluginKind::HighAvailability).is_some()
    }
}

impl ClusterTlsDraft {
    /// The link's TLS files: all three, or none.
    fn finish(self) -> Result<Option<ClusterTls>, ConfigError> {
        match (self.certfile, self.keyfile, self.cafile) {
            (None, None, None) => Ok(None),
            (Some(certfile), Some(keyfile), Some(cafile)) => Ok(Some(ClusterTls {
                certfile,
                keyfile,
                cafile,
            })),
            (certfile, keyfile, cafile) => {
                let given = [certfile, keyfile, cafile].into_iter().flatten().next();
                let (file, line) = given.map_or_else(Default::default, |f| (f.file, f.line));
                Err(ConfigError::at(
                    &file,
                    line,
                    "cluster_tls_certfile, cluster_tls_keyfile and cluster_tls_cafile must \
                     all be set to use TLS on the cluster link.",
                ))
            }
        }
    }
}

impl Config {
    /// The cluster link's options do nothing on a broker that is no cluster node.
    fn warn_unused_cluster_link(&mut self) {
        if self.control_api() {
            return;
        }
        let unused: Vec<ConfigWarning> = self
            .cluster_link
            .options_set()
            .into_iter()
            .map(|(option, at)| {
                ConfigWarning::at(
                    &at.file,
                    at.line,
                    format!(
                        "option \"{option}\" has no effect: this broker is no cluster node \
                         (no HA module, no enable_control_api)."
                    ),
                )
            })
            .collect();
        self.warnings.extend(unused);
    }
}

/// The dynamic-security file the HA module uses in the persistence location.
pub const HA_DYNSEC_FILE: &str = "dynamic-security.json";

/// What the command line and environment change in a loaded config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `-p` ports: local-only listeners on these ports (ignored when the file has listeners).
    pub ports: Vec<u16>,
    /// `-v`: log every type.
    pub verbose: bool,
    /// `-q`: log nothing (wins over `-v`).
    pub quiet: bool,
    /// `-d`: run in the background.
    pub daemon: bool,
    /// `MOSQUITTO_PERSISTENCE_LOCATION` (2.1): replaces `persistence_location`.
    pub persistence_location: Option<PathBuf>,
}

/// Loopback listeners on `ports` (both 127.0.0.1 and ::1), sharing `security`.
fn local_only_listeners(ports: &[u16], security: &Security, file: &Path) -> Vec<Listener> {
    ports
        .iter()
        .flat_map(|port| {
            LOOPBACK_HOSTS.iter().map(move |host| {
                let mut listener = Listener::new(*port, Bind::Host((*host).to_string()), file, 0);
                listener.security = security.clone();
                listener
            })
        })
        .collect()
}

impl SecurityDraft {
    /// Applies defaults; `allow_anonymous` defaults to `anonymous_default`.
    fn resolve(&self, anonymous_default: bool, prefix_default: Option<&str>) -> Security {
        Security {
            allow_anonymous: self.allow_anonymous.unwrap_or(anonymous_default),
            password_file: self.password_file.clone(),
            acl_file: self.acl_file.clone(),
            allow_zero_length_clientid: self.allow_zero_length_clientid.unwrap_or(true),
            auto_id_prefix: self
                .auto_id_prefix
                .as_deref()
                .or(prefix_default)
                .unwrap_or("auto-")
                .to_string(),
        }
    }
}

impl Draft {
    /// Validates the draft and applies every default.
    pub fn finish(mut self) -> Result<Config, ConfigError> {
        let local_only = self.listeners.is_empty();
        let global = self.security.resolve(local_only, None);
        let drafts = std::mem::take(&mut self.listeners);
        let mut listeners = Vec::with_capacity(drafts.len());
        for draft in drafts {
            listeners.push(self.finish_listener(draft, &global)?);
        }
        check_distinct_sockets(&listeners)?;
        if local_only {
            listeners = local_only_listeners(&[DEFAULT_PORT], &global, &self.main);
        }
        self.warn_unused_plugins();
        let cluster_tls = std::mem::take(&mut self.cluster_tls).finish()?;
        let mut config = self.config;
        config.local_only = local_only;
        config.security = global;
        config.listeners = listeners;
        config.plugins = self.plugins;
        config.cluster_link.tls = cluster_tls;
        config.warn_unused_cluster_link();
        Ok(config)
    }

    /// The listener with its effective security and checked TLS settings.
    fn finish_listener(
        &mut self,
        draft: ListenerDraft,
        global: &Security,
    ) -> Result<Listener, ConfigError> {
        let ListenerDraft {
            mut listener,
            tls,
            security,
            allow_anonymous_override,
            auto_id_prefix_override,
            ..
        } = draft;
        let (file, line) = (listener.file.clone(), listener.line);
        let error = move |message: &str| ConfigError::at(&file, line, message);
        let base = if self.config.per_listener_settings {
            &security
        } else {
            &self.security
        };
        let mut effective = base.resolve(false, Some(global.auto_id_prefix.as_str()));
        if let Some(allow) = allow_anonymous_override {
            effective.allow_anonymous = allow;
        }
        if let Some(prefix) = auto_id_prefix_override {
            effective.auto_id_prefix = prefix;
        }
        let unused = tls_options_set(&tls);
        listener.tls = finish_tls(tls).map_err(error)?;
        if listener.tls.is_none() {
            for option in unused {
                self.config.warnings.push(ConfigWarning::at(
                    &listener.file,
                    listener.line,
                    format!(
                        "option \"{option}\" has no effect: listener {} has no certfile and \
                         keyfile, so it does not use TLS.",
                        listener.port
                    ),
                ));
            }
        }
        if listener.protocol != Protocol::WebSockets {
            let websocket_options = [
                ("http_dir", listener.http_dir.is_some()),
                ("websockets_origin", !listener.websockets_origins.is_empty()),
            ];
            for (option, _) in websocket_options.iter().filter(|(_, set)| *set) {
                self.config.warnings.push(ConfigWarning::at(
                    &listener.file,
                    listener.line,
                    format!(
                        "option \"{option}\" has no effect: listener {} is not a websockets \
                         listener.",
                        listener.port
                    ),
                ));
            }
        }
        listener.security = effective;
        Ok(listener)
    }

    /// A warning for each `plugin_load` that no `plugin_use` attaches to a listener.
    fn warn_unused_plugins(&mut self) {
        for plugin in &self.plugins {
            if let (Some(name), PluginScope::Listeners(list)) = (&plugin.name, &plugin.scope) {
                if list.is_empty() {
                    self.config.warnings.push(ConfigWarning::at(
                        &plugin.file,
                        plugin.line,
                        format!("plugin '{name}' is loaded but no listener uses it (plugin_use)."),
                    ));
                }
            }
        }
    }
}

/// Two listeners on the same address and port cannot both bind (with `SO_REUSEPORT` the
/// second could even steal the first one's connections), so this is a config error at the
/// second listener's line.
fn check_distinct_sockets(listeners: &[Listener]) -> Result<(), ConfigError> {
    for (index, later) in listeners.iter().enumerate() {
        if let Some(earlier) = listeners[..index].iter().find(|l| l.conflicts_with(later)) {
            let address = match &later.bind {
                Bind::Any => "all interfaces".to_string(),
                Bind::Host(host) => host.clone(),
                Bind::Unix(path) => path.display().to_string(),
            };
            return Err(ConfigError::at(
                &later.file,
                later.line,
                format!(
                    "Duplicate listener on port {} ({address}); it is already defined at {}:{}.",
                    later.port,
                    earlier.file.display(),
                    earlier.line
                ),
            ));
        }
    }
    Ok(())
}

/// The names of TLS options that are set; used to warn when the listener has no TLS.
fn tls_options_set(tls: &TlsDraft) -> Vec<&'static str> {
    let set = [
        ("require_certificate", tls.require_certificate.is_some()),
        (
            "use_identity_as_username",
            tls.use_identity_as_username.is_some(),
        ),
        (
            "use_subject_as_username",
            tls.use_subject_as_username.is_some(),
        ),
        ("tls_version", tls.min_version.is_some()),
        ("ciphers", tls.ciphers.is_some()),
        ("ciphers_tls1.3", tls.ciphers_tls13.is_some()),
        ("crlfile", tls.crlfile.is_some()),
        (
            "disable_client_cert_date_checks",
            tls.disable_client_cert_date_checks.is_some(),
        ),
    ];
    set.iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect()
}

/// TLS is on exactly when `certfile` and `keyfile` are both set (Mosquitto 2.0's rule).
fn finish_tls(tls: TlsDraft) -> Result<Option<Tls>, &'static str> {
    match (tls.certfile, tls.keyfile) {
        (Some(certfile), Some(keyfile)) => Ok(Some(Tls {
            certfile,
            keyfile,
            cafile: tls.cafile,
            capath: tls.capath,
            crlfile: tls.crlfile,
            require_certificate: tls.require_certificate.unwrap_or(false),
            use_identity_as_username: tls.use_identity_as_username.unwrap_or(false),
            use_subject_as_username: tls.use_subject_as_username.unwrap_or(false),
            min_version: tls.min_version,
            ciphers: tls.ciphers,
            ciphers_tls13: tls.ciphers_tls13,
            disable_client_cert_date_checks: tls.disable_client_cert_date_checks.unwrap_or(false),
        })),
        (Some(_), None) | (None, Some(_)) => {
            Err("Both certfile and keyfile must be provided to enable a TLS listener.")
        }
        (None, None) if tls.cafile.is_some() => {
            Err("cafile specified without certfile and keyfile.")
        }
        (None, None) if tls.capath.is_some() => {
            Err("capath specified without certfile and keyfile.")
        }
        (None, None) => Ok(None),
    }
}
