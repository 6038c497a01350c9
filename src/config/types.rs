//! The resolved configuration: typed, validated, defaults applied.
//!
//! This is the "hiargs" half (after ripgrep's `flags/hiargs.rs`): everything the broker needs
//! to start, with no further parsing. Every field says what it means and Mosquitto's default.
//! `resolve` builds these types from the raw lines; `Config::embedded_default` builds them
//! when no file is given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigWarning;

/// Everything the broker reads from `mosquitto.conf` (plus the command-line overrides).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main config file; `None` for the embedded default (no `-c`).
    pub config_file: Option<PathBuf>,
    /// Every file read, main file first, then `include_dir` files in load order.
    pub files: Vec<PathBuf>,
    /// Listeners in declaration order (the local-only pair when the file defines none).
    pub listeners: Vec<Listener>,
    /// True when no listener was configured: Mosquitto 2.0's local-only mode (loopback 1883,
    /// anonymous allowed). The broker logs [`LOCAL_ONLY_MESSAGE`] at start-up.
    pub local_only: bool,
    /// `per_listener_settings`: security options belong to the listener they follow. Default false.
    pub per_listener_settings: bool,
    /// Global security options (`per_listener_settings false`); each listener also carries its
    /// effective copy in [`Listener::security`], which is what the broker should use.
    pub security: Security,
    /// Plugins in declaration order (`plugin`, `global_plugin`, `auth_plugin`, `plugin_load`).
    pub plugins: Vec<Plugin>,
    /// `threads` (Culex extension): worker cores to use; 0 = every core. Default 0.
    pub threads: usize,
    /// `cpu_affinity auto|true|false` (Culex extension): pin shard threads to CPUs
    /// ([`shards::cpu_affinity::plan`]). Default `auto`.
    pub cpu_affinity: shards::cpu_affinity::Mode,
    /// `reason_strings` (Culex extension): add a Reason String to the DISCONNECT a 5.0 client
    /// gets for a protocol error. Default false (the bare DISCONNECT Mosquitto sends).
    pub reason_strings: bool,
    /// `user`: account to drop privileges to when started as root. Default `mosquitto`.
    pub user: String,
    /// `pid_file`: where to write the process id. Default none.
    pub pid_file: Option<PathBuf>,
    /// `sys_interval`: seconds between `$SYS` updates; 0 disables `$SYS`. Default 10.
    pub sys_interval: u16,
    /// `enable_control_api` (2.1): serve `$CONTROL/broker/v1`. Default false.
    /// Checked, not applied: the config warns that it has no effect.
    pub enable_control_api: bool,
    /// `global_max_clients` (2.1): limit on sessions, connected or not. Default unlimited.
    /// Checked, not applied: the config warns that it has no effect.
    pub global_max_clients: Option<u32>,
    /// `global_max_connections` (2.1): limit on network connections. Default unlimited.
    /// Checked, not applied: the config warns that it has no effect.
    pub global_max_connections: Option<u32>,
    /// Persistence options.
    pub persistence: Persistence,
    /// Logging options.
    pub logging: Logging,
    /// Message, queue and packet limits.
    pub limits: Limits,
    /// `upgrade_outgoing_qos`: deliver at the subscription's QoS even when the message's is
    /// lower. Default false.
    pub upgrade_outgoing_qos: bool,
    /// `queue_qos0_messages`: queue QoS 0 messages for offline persistent clients. Default false.
    pub queue_qos0_messages: bool,
    /// `retain_available`: retained messages allowed (v5 CONNACK property). Default true.
    pub retain_available: bool,
    /// `check_retain_source`: re-check the publisher's ACL when delivering a retained message.
    /// Default true.
    /// Checked, not applied: the config warns that it has no effect.
    pub check_retain_source: bool,
    /// `retain_expiry_interval` (minutes in the file): period of the sweep that removes expired
    /// retained messages. Default none.
    /// Checked, not applied: the config warns that it has no effect.
    pub retain_expiry_interval: Option<Duration>,
    /// `set_tcp_nodelay`: set `TCP_NODELAY` on client sockets. Default false.
    /// Checked, not applied: the config warns that it has no effect.
    pub set_tcp_nodelay: bool,
    /// `clientid_prefixes` (deprecated in Mosquitto): only client ids starting with this prefix
    /// may connect. Default none.
    pub clientid_prefixes: Option<String>,
    /// `-d/--daemon` from the command line: run in the background. Default false.
    pub daemon: bool,
    /// `cluster_secret_file`, `cluster_tls_*` (Culex extensions): how a cluster node secures
    /// its link to the other nodes. Default: neither (the seed's plain link).
    pub cluster_link: ClusterLink,
    /// Warnings collected while reading (ignored options, odd placements); log them at start-up.
    pub warnings: Vec<ConfigWarning>,
}

/// A file named by an option, with where the option was written (start-up errors about the
/// file name that line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionFile {
    /// The path as written.
    pub path: PathBuf,
    /// The config file holding the option.
    pub file: PathBuf,
    /// Its line there.
    pub line: usize,
}

/// How a cluster node secures its link (Culex extensions); read by `cluster::link_security`
/// at start-up when the node runs the replication core.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterLink {
    /// `cluster_secret_file`: the file holding the shared cluster secret; only nodes that
    /// know it may open a link or have theirs accepted.
    pub secret_file: Option<OptionFile>,
    /// `cluster_tls_certfile`, `cluster_tls_keyfile`, `cluster_tls_cafile`: mutual TLS on
    /// the link (all three or none).
    pub tls: Option<ClusterTls>,
}

impl ClusterLink {
    /// The options set, by name.
    pub fn options_set(&self) -> Vec<(&'static str, &OptionFile)> {
        let mut set: Vec<_> = self
            .secret_file
            .iter()
            .map(|file| ("cluster_secret_file", file))
            .collect();
        if let Some(tls) = &self.tls {
            set.push(("cluster_tls_certfile", &tls.certfile));
            set.push(("cluster_tls_keyfile", &tls.keyfile));
            set.push(("cluster_tls_cafile", &tls.cafile));
        }
        set
    }
}

/// The cluster link's TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    /// `cluster_tls_certfile`: this node's certificate chain (PEM); it must name the node's
    /// cluster address and be signed by the CA.
    pub certfile: OptionFile,
    /// `cluster_tls_keyfile`: its private key (PEM).
    pub keyfile: OptionFile,
    /// `cluster_tls_cafile`: the CA that signs every node's certificate (PEM).
    pub cafile: OptionFile,
}

/// The line Mosquitto 2.0 logs when it starts without any configured listener.
pub const LOCAL_ONLY_MESSAGE: &str = "Starting in local only mode. Connections will only be \
possible from clients running on this machine.";

impl Config {
    /// The listener marked `admin_listener true`, if any (the seed's port 1885).
    pub fn admin_listener(&self) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.admin)
    }

    /// The first plugin of `kind`, if one is configured.
    pub fn plugin(&self, kind: PluginKind) -> Option<&Plugin> {
        self.plugins.iter().find(|p| p.kind == kind)
    }

    /// The plugins that apply to listener `index`: global ones and those attached to it.
    pub fn plugins_for_listener(&self, index: usize) -> impl Iterator<Item = &Plugin> {
        self.plugins.iter().filter(move |p| match &p.scope {
            PluginScope::Global => true,
            PluginScope::Listeners(list) => list.contains(&index),
        })
    }

    /// The number of worker threads for a machine with `cores` cores (`threads 0` = all).
    pub fn worker_threads(&self, cores: usize) -> usize {
        if self.threads == 0 {
            cores.max(1)
        } else {
            self.threads
        }
    }
}

/// One network listener (`listener <port> [address]`, or the legacy `port`/`bind_address`
/// default listener, or one half of the local-only pair).
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// TCP port; 0 for a Unix socket listener.
    pub port: u16,
    /// What to bind: all interfaces, one host/address, or a Unix socket path.
    pub bind: Bind,
    /// `protocol`: wire protocol. Default `mqtt`.
    pub protocol: Protocol,
    /// `max_connections`: limit on clients on this listener. Default unlimited (-1).
    pub max_connections: Option<u32>,
    /// `mount_point`: topic prefix added to every topic of this listener's clients. Default none.
    pub mount_point: Option<String>,
    /// `socket_domain`: restrict to IPv4 or IPv6. Default both.
    pub socket_domain: Option<SocketDomain>,
    /// `bind_interface`: bind to this network interface (`SO_BINDTODEVICE`). Default none.
    pub bind_interface: Option<String>,
    /// `max_qos`: highest QoS clients may use (v5 CONNACK maximum-qos). Default 2.
    pub max_qos: u8,
    /// `max_topic_alias`: topic aliases a v5 client may use towards the broker. Default 10.
    pub max_topic_alias: u16,
    /// `max_topic_alias_broker` (2.1): most topic aliases the broker assigns to a 5.0 client
    /// that allows them (0 = none). Default 10, as in Mosquitto 2.1.
    pub max_topic_alias_broker: u16,
    /// `use_username_as_clientid`: replace the client id with the username. Default false.
    pub use_username_as_clientid: bool,
    /// `accept_protocol_versions` (2.1): which MQTT versions may connect. Default all.
    pub accept_protocol_versions: ProtocolVersions,
    /// `http_dir`: directory of static files served on websockets/http listeners. Default none.
    pub http_dir: Option<PathBuf>,
    /// `websockets_origin` (2.1, repeatable): allowed `Origin` headers. Default any.
    pub websockets_origins: Vec<String>,
    /// TLS settings; `Some` exactly when `certfile` and `keyfile` are both set.
    pub tls: Option<Tls>,
    /// `admin_listener` (Culex/Cedalo extension): the per-node administrative listener that
    /// stays open whatever the node's cluster role. Default false.
    /// Checked, not applied yet: the config warns that it has no effect.
    pub admin: bool,
    /// Effective security options for this listener, after `per_listener_settings`,
    /// `listener_allow_anonymous` and `listener_auto_id_prefix` are applied.
    pub security: Security,
    /// File that declared this listener.
    pub file: PathBuf,
    /// Line of the `listener` line (or of the option that created the default listener);
    /// 0 for the local-only listeners.
    pub line: usize,
}

impl Listener {
    /// A listener on `port` with Mosquitto's defaults, declared at `file:line`.
    pub fn new(port: u16, bind: Bind, file: &Path, line: usize) -> Self {
        Listener {
            port,
            bind,
            protocol: Protocol::Mqtt,
            max_connections: None,
            mount_point: None,
            socket_domain: None,
            bind_interface: None,
            max_qos: 2,
            max_topic_alias: 10,
            max_topic_alias_broker: shards::limits::TOPIC_ALIAS_BROKER_DEFAULT_MAX,
            use_username_as_clientid: false,
            accept_protocol_versions: ProtocolVersions::ALL,
            http_dir: None,
            websockets_origins: Vec::new(),
            tls: None,
            admin: false,
            security: Security::default(),
            file: file.to_path_buf(),
            line,
        }
    }

    /// True when `other` is the same socket: same port, bind target and socket domain. Reload
    /// matches listeners this way (Mosquitto matches port and address).
    pub fn same_socket(&self, other: &Listener) -> bool {
        self.port == other.port
            && self.bind == other.bind
            && self.socket_domain == other.socket_domain
    }

    /// True when both listeners would bind the same address and port: same port and bind
    /// target, and socket domains that overlap (no domain means both IPv4 and IPv6).
    pub fn conflicts_with(&self, other: &Listener) -> bool {
        let domains_overlap = match (self.socket_domain, other.socket_domain) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.port == other.port && self.bind == other.bind && domains_overlap
    }
}

/// What a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// All interfaces (no address given).
    Any,
    /// One host name or IP address, as written.
    Host(String),
    /// A Unix socket path (`listener 0 /path`).
    Unix(PathBuf),
}

/// A listener's wire protocol (`protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT over TCP (`mqtt`, the default).
    Mqtt,
    /// MQTT over WebSockets (`websockets`).
    WebSockets,
    /// Mosquitto 2.1's read-only HTTP API (`http_api`).
    HttpApi,
}

/// `socket_domain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketDomain {
    /// `ipv4`.
    Ipv4,
    /// `ipv6`.
    Ipv6,
}

/// The MQTT protocol versions a listener accepts (`accept_protocol_versions 3,4,5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolVersions {
    /// MQTT 3.1 (protocol level 3).
    pub v3: bool,
    /// MQTT 3.1.1 (protocol level 4).
    pub v4: bool,
    /// MQTT 5.0 (protocol level 5).
    pub v5: bool,
}

impl ProtocolVersions {
    /// Every version (the default).
    pub const ALL: ProtocolVersions = ProtocolVersions {
        v3: true,
        v4: true,
        v5: true,
    };

    /// True when a client with protocol `level` (3, 4 or 5) may connect.
    pub fn accepts(&self, level: u8) -> bool {
        match level {
            3 => self.v3,
            4 => self.v4,
            5 => self.v5,
            _ => false,
        }
    }
}

/// TLS settings of a listener. Present only when `certfile` and `keyfile` are both set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    /// `certfile`: PEM server certificate chain; re-read on reload.
    pub certfile: PathBuf,
    /// `keyfile`: PEM private key; re-read on reload.
    pub keyfile: PathBuf,
    /// `cafile`: PEM CA bundle for verifying client certificates. Default none.
    pub cafile: Option<PathBuf>,
    /// `capath`: directory of CA certificates. Default none.
    pub capath: Option<PathBuf>,
    /// `crlfile`: certificate revocation list for client certificates. Default none.
    pub crlfile: Option<PathBuf>,
    /// `require_certificate`: clients must present a valid certificate (mTLS). Default false.
    pub require_certificate: bool,
    /// `use_identity_as_username`: the client certificate's CN becomes the username. Default false.
    pub use_identity_as_username: bool,
    /// `use_subject_as_username`: the certificate's full subject becomes the username.
    /// Default false.
    pub use_subject_as_username: bool,
    /// `tls_version`: minimum TLS version. Default: the library's (TLS 1.2).
    pub min_version: Option<TlsVersion>,
    /// `ciphers`: OpenSSL cipher list for TLS 1.2. Default: the library's.
    pub ciphers: Option<String>,
    /// `ciphers_tls1.3`: TLS 1.3 cipher suites. Default: the library's.
    pub ciphers_tls13: Option<String>,
    /// `disable_client_cert_date_checks` (2.1): accept expired client certificates. Default false.
    /// Checked, not applied: the config warns that it has no effect.
    pub disable_client_cert_date_checks: bool,
}

/// A minimum TLS version (`tls_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `tlsv1.2` (also used for `tlsv1.1`, which rustls cannot speak; a warning says so).
    Tls12,
    /// `tlsv1.3`.
    Tls13,
}

/// Authentication and authorisation options (Mosquitto's `security_options`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Security {
    /// `allow_anonymous` / `listener_allow_anonymous`: clients without a username may connect.
    /// Default: true in local-only mode, false as soon as a listener is configured.
    pub allow_anonymous: bool,
    /// `password_file`: `mosquitto_passwd` file; re-read on reload. Default none.
    pub password_file: Option<PathBuf>,
    /// `acl_file`: ACL file; re-read on reload. Default none.
    pub acl_file: Option<PathBuf>,
    /// `allow_zero_length_clientid`: v3.1.1/v5 clients may send an empty client id and get one
    /// assigned. Default true.
    pub allow_zero_length_clientid: bool,
    /// `auto_id_prefix` / `listener_auto_id_prefix`: prefix of assigned client ids.
    /// Default `auto-`.
    pub auto_id_prefix: String,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            allow_anonymous: false,
            password_file: None,
            acl_file: None,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".to_string(),
        }
    }
}

/// One `plugin`/`global_plugin`/`auth_plugin`/`plugin_load` line and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// The built-in implementation Culex uses for this plugin path.
    pub kind: PluginKind,
    /// The path as written (only its basename selects the kind).
    pub path: PathBuf,
    /// The name given by `plugin_load <name> <path>` (2.1); `None` otherwise.
    pub name: Option<String>,
    /// `plugin_opt_<key> <value>` / `auth_opt_<key> <value>` lines, in order, key without prefix.
    pub options: Vec<(String, String)>,
    /// `auth_plugin_deny_special_chars`: refuse usernames/client ids with `+` or `#`.
    /// Default true.
    /// Checked, not applied: the config warns that it has no effect.
    pub deny_special_chars: bool,
    /// Which listeners the plugin applies to.
    pub scope: PluginScope,
    /// File of the plugin line.
    pub file: PathBuf,
    /// Line of the plugin line.
    pub line: usize,
}

impl Plugin {
    /// The value of option `key` (the last one when repeated).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The built-in plugins Culex provides, recognised by the `.so` basename Mosquitto users write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// `mosquitto_dynamic_security.so`: dynamic security (`plugin_opt_config_file`).
    DynamicSecurity,
    /// `cedalo_mosquitto_ha.so`: the high-availability cluster.
    HighAvailability,
    /// `mosquitto_password_file.so` (2.1): password file (`plugin_opt_password_file`).
    PasswordFile,
    /// `mosquitto_acl_file.so` (2.1): ACL file (`plugin_opt_acl_file`).
    AclFile,
}

impl PluginKind {
    /// The kind for a plugin path, by its file name; `None` for any other plugin.
    pub fn from_path(path: &Path) -> Option<PluginKind> {
        match path.file_name()?.to_str()? {
            "mosquitto_dynamic_security.so" => Some(PluginKind::DynamicSecurity),
            "cedalo_mosquitto_ha.so" => Some(PluginKind::HighAvailability),
            "mosquitto_password_file.so" => Some(PluginKind::PasswordFile),
            "mosquitto_acl_file.so" => Some(PluginKind::AclFile),
            _ => None,
        }
    }
}

/// The listeners a plugin applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginScope {
    /// Every listener (`global_plugin`, or `plugin` with `per_listener_settings false`).
    Global,
    /// These listener indices into [`Config::listeners`] (`plugin` with
    /// `per_listener_settings true`, or `plugin_use` of a `plugin_load`ed plugin).
    Listeners(Vec<usize>),
}

/// Persistence options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// `persistence` (alias `retained_persistence`): save state to disk. Default false.
    pub enabled: bool,
    /// `persistence_location`: directory of the database (env `MOSQUITTO_PERSISTENCE_LOCATION`
    /// overrides it, as in 2.1). Default: the working directory.
    pub location: Option<PathBuf>,
    /// `persistence_file`: database file name. Default `mosquitto.db`.
    pub file: String,
    /// `autosave_interval`: seconds between saves (or changes, see below); 0 = only on exit.
    /// Default 1800.
    pub autosave_interval: u32,
    /// `autosave_on_changes`: count `autosave_interval` in changes rather than seconds.
    /// Default false.
    pub autosave_on_changes: bool,
    /// `persistent_client_expiration`: remove persistent sessions offline for longer than
    /// this. Default never.
    pub client_expiration: Option<Duration>,
}

impl Persistence {
    /// `location/file`, or `file` alone without a location (Mosquitto's `persistence_filepath`).
    pub fn database_path(&self) -> PathBuf {
        match &self.location {
            Some(dir) => dir.join(&self.file),
            None => PathBuf::from(&self.file),
        }
    }
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            enabled: false,
            location: None,
            file: "mosquitto.db".to_string(),
            autosave_interval: 1800,
            autosave_on_changes: false,
            client_expiration: None,
        }
    }
}

/// Logging options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    /// `log_dest` (repeatable; `none` clears): where log lines go. Default `[Stderr]`.
    pub destinations: Vec<LogDest>,
    /// `log_type` (repeatable; `none`/`all`), overridden by `-v` (all) and `-q` (none).
    /// Default error, warning, notice, information.
    pub types: LogTypes,
    /// `connection_messages`: log client connect/disconnect lines. Default true.
    pub connection_messages: bool,
    /// `log_timestamp`: prefix each line with a timestamp. Default true.
    pub timestamp: bool,
    /// `log_timestamp_format`: strftime format of the timestamp. Default: Unix epoch seconds.
    pub timestamp_format: Option<String>,
    /// `log_facility`: syslog facility local0..local7 as 0..7. Default: `LOG_DAEMON` (`None`).
    pub facility: Option<u8>,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            destinations: vec![LogDest::Stderr],
            types: LogTypes::DEFAULT,
            connection_messages: true,
            timestamp: true,
            timestamp_format: None,
            facility: None,
        }
    }
}

/// A `log_dest` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDest {
    /// `stderr`.
    Stderr,
    /// `stdout` (`stdout unbuffered` in 2.1 flushes every line).
    Stdout {
        /// Flush after every line.
        unbuffered: bool,
    },
    /// `syslog`.
    Syslog,
    /// `file <path>`; reopened on reload.
    File(PathBuf),
    /// `topic`: publish to `$SYS/broker/log/<level>`.
    Topic,
}

/// A set of `log_type`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogTypes(u16);

impl LogTypes {
    /// No type (`log_type none`, `-q`).
    pub const NONE: LogTypes = LogTypes(0);
    /// `information`.
    pub const INFORMATION: LogTypes = LogTypes(1 << 0);
    /// `notice`.
    pub const NOTICE: LogTypes = LogTypes(1 << 1);
    /// `warning`.
    pub const WARNING: LogTypes = LogTypes(1 << 2);
    /// `error`.
    pub const ERROR: LogTypes = LogTypes(1 << 3);
    /// `debug`.
    pub const DEBUG: LogTypes = LogTypes(1 << 4);
    /// `subscribe`.
    pub const SUBSCRIBE: LogTypes = LogTypes(1 << 5);
    /// `unsubscribe`.
    pub const UNSUBSCRIBE: LogTypes = LogTypes(1 << 6);
    /// `websockets`.
    pub const WEBSOCKETS: LogTypes = LogTypes(1 << 7);
    /// `internal`.
    pub const INTERNAL: LogTypes = LogTypes(1 << 8);
    /// Every type (`log_type all`, `-v`).
    pub const ALL: LogTypes = LogTypes(0x1ff);
    /// Mosquitto's default: error, warning, notice and information.
    pub const DEFAULT: LogTypes = LogTypes(0b1111);

    /// True when every type in `other` is in `self`.
    /// The set as bits (for an atomic copy).
    pub fn bits(self) -> u16 {
        self.0
    }

    /// The set from [`LogTypes::bits`].
    pub fn from_bits(bits: u16) -> LogTypes {
        LogTypes(bits)
    }

    pub fn contains(self, other: LogTypes) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both sets.
    pub fn union(self, other: LogTypes) -> LogTypes {
        LogTypes(self.0 | other.0)
    }
}

/// Message, queue and packet limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `max_inflight_messages`: outgoing QoS 1/2 messages in flight per client (v5
    /// receive-maximum); 0 = unlimited. Default 20.
    pub max_inflight_messages: u16,
    /// `max_inflight_bytes`: in-flight payload bytes per client; 0 = unlimited. Default 0.
    pub max_inflight_bytes: u64,
    /// `max_queued_messages`: messages queued per client beyond the in-flight window;
    /// 0 = unlimited. Default 1000.
    pub max_queued_messages: u32,
    /// `max_queued_bytes`: queued payload bytes per client; 0 = unlimited. Default 0.
    pub max_queued_bytes: u64,
    /// `max_packet_size`: largest packet accepted, at least 20. Default: unlimited in 2.0
    /// (`None`); Mosquitto 2.1 defaults to 2,000,000.
    pub max_packet_size: Option<u32>,
    /// `message_size_limit`: largest PUBLISH payload; 0 = unlimited. Default 0.
    pub message_size_limit: u32,
    /// `max_keepalive`: largest keepalive a client may ask for (v5 server-keep-alive), 10..=65535.
    /// Default 65535.
    pub max_keepalive: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inflight_messages: 20,
            max_inflight_bytes: 0,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            max_packet_size: None,
            message_size_limit: 0,
            max_keepalive: 65535,
        }
    }
}
