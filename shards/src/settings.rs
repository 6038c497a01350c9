//! Broker settings a shard needs, already validated and resolved from `mosquitto.conf` by
//! the `culex` binary. Placement: one immutable copy shared by every shard (`Arc`); a reload
//! swaps in a new copy.

use crate::transport::tls::CertificateUsername;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Settings of the whole broker.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Outbound QoS 1/2 window per client (`max_inflight_messages`, 0 = unlimited → 65535).
    pub max_inflight_messages: u16,
    /// Outbound in-flight payload bytes per client (`max_inflight_bytes`, 0 = unlimited).
    pub max_inflight_bytes: usize,
    /// Messages queued per client beyond the window (`max_queued_messages`, 0 = unlimited).
    pub max_queued_messages: usize,
    /// Payload bytes queued per client (`max_queued_bytes`, 0 = unlimited).
    pub max_queued_bytes: usize,
    /// Queue QoS 0 messages for offline persistent sessions (`queue_qos0_messages`).
    pub queue_qos0_messages: bool,
    /// Largest packet accepted from a client, and sent to 5.0 clients in CONNACK
    /// (`max_packet_size`, `None` = unlimited).
    pub max_packet_size: Option<u32>,
    /// Largest payload accepted (`message_size_limit`, 0 = unlimited).
    pub message_size_limit: usize,
    /// Upper bound on a client's keep alive (`max_keepalive`); 5.0 clients are told it as
    /// Server Keep Alive, 3.1.1 clients asking for more (or 0) are refused as Mosquitto does.
    pub max_keepalive: u16,
    /// Retained messages are accepted (`retain_available`).
    pub retain_available: bool,
    /// Deliver at the publish QoS even if the subscription asked for less
    /// (`upgrade_outgoing_qos`).
    pub upgrade_outgoing_qos: bool,
    /// Seconds after which a disconnected persistent session that never set an expiry is
    /// removed (`persistent_client_expiration`, `None` = never).
    pub persistent_client_expiration: Option<u64>,
    /// Publish `$SYS` every this many seconds (`sys_interval`, 0 = off).
    pub sys_interval: u64,
    /// Log connects and disconnects (`connection_messages`).
    pub connection_messages: bool,
    /// Add a Reason String saying what went wrong to the DISCONNECT a 5.0 client gets for
    /// a protocol error (`reason_strings`, a Culex option; off: the bare DISCONNECT
    /// Mosquitto sends).
    pub reason_strings: bool,
    /// The cluster control API (`$CONTROL/cedalo/ha/v1`) is served: `enable_control_api
    /// true` or the HA module.
    pub control_api: bool,
    /// Only client ids starting with this prefix may connect (`clientid_prefixes`); others
    /// get CONNACK "not authorised" (5 / 0x87), as in Mosquitto. `None`: any id.
    pub clientid_prefixes: Option<String>,
    /// The version text published on `$SYS/broker/version`.
    pub version_text: String,
    /// Persistence settings, when `persistence true`.
    pub persistence: Option<PersistenceSettings>,
    /// Listeners, in configuration order.
    pub listeners: Vec<ListenerSettings>,
}

/// Where and how often the broker saves its state (`persistence true`).
#[derive(Clone, Debug)]
pub struct PersistenceSettings {
    /// `persistence_location` + `persistence_file`.
    pub path: PathBuf,
    /// `autosave_interval` seconds (0 = only on shutdown and SIGUSR1).
    pub autosave_interval: u64,
    /// `autosave_on_changes`: the interval counts changes instead of seconds.
    pub autosave_on_changes: bool,
}

/// Settings of one listener.
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    /// Socket address to bind (one per address family for `localhost`).
    pub addresses: Vec<SocketAddr>,
    /// `listener 0 /path`: the Unix socket to bind instead of addresses.
    pub unix_path: Option<std::path::PathBuf>,
    /// `bind_interface`: the network interface the sockets are bound to (SO_BINDTODEVICE).
    pub bind_device: Option<String>,
    /// `admin_listener true`: a cluster node keeps this listener open whatever its role
    /// (the control API is reached here); the other client listeners follow leadership.
    pub admin: bool,
    /// Port as written (for log lines).
    pub port: u16,
    /// Most simultaneous connections on this listener (`max_connections`, `None` = no limit).
    pub max_connections: Option<usize>,
    /// Prefix added to every topic of clients on this listener (`mount_point`).
    pub mount_point: Option<String>,
    /// Highest QoS clients may use (`max_qos`).
    pub max_qos: u8,
    /// Topic aliases accepted from 5.0 clients (`max_topic_alias`).
    pub max_topic_alias: u16,
    /// Most topic aliases the broker assigns to a 5.0 client that allows them
    /// (`max_topic_alias_broker`; 0 = none).
    pub max_topic_alias_broker: u16,
    /// Anonymous clients may connect (`allow_anonymous`, per listener or global).
    pub allow_anonymous: bool,
    /// Clients may connect with an empty client id (`allow_zero_length_clientid`).
    pub allow_zero_length_clientid: bool,
    /// Prefix of assigned client ids (`auto_id_prefix`).
    pub auto_id_prefix: String,
    /// Replace the client id with the user name (`use_username_as_clientid`).
    pub use_username_as_clientid: bool,
    /// Protocol levels accepted (`accept_protocol_versions`), as a bit set of 3, 4, 5.
    pub accept_protocol_versions: u8,
    /// TLS, when `certfile` and `keyfile` are set (built from the files at start and on
    /// reload).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// A client certificate names the user (`use_identity_as_username`,
    /// `use_subject_as_username`).
    pub certificate_username: Option<CertificateUsername>,
    /// `protocol websockets`: the allowed `Origin` values (`websockets_origin`; empty: any).
    pub websockets: Option<Vec<String>>,
    /// `protocol http_api`: serves `/metrics`, `/healthz` and `/readyz` instead of MQTT.
    pub http: bool,
    /// `http_dir` of a websockets listener, canonical: plain HTTP GETs are served from it
    /// ([`crate::static_files`]).
    pub http_dir: Option<PathBuf>,
}

impl ListenerSettings {
    /// A listener on `address` with Mosquitto's defaults and anonymous access.
    pub fn plain(address: SocketAddr) -> ListenerSettings {
        ListenerSettings {
            addresses: vec![address],
            unix_path: None,
            bind_device: None,
            port: address.port(),
            max_connections: None,
            mount_point: None,
            max_qos: 2,
            max_topic_alias: crate::limits::TOPIC_ALIAS_DEFAULT_MAX,
            max_topic_alias_broker: crate::limits::TOPIC_ALIAS_BROKER_DEFAULT_MAX,
            allow_anonymous: true,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".to_string(),
            use_username_as_clientid: false,
            accept_protocol_versions: 0b111000,
            tls: None,
            certificate_username: None,
            websockets: None,
            http: false,
            http_dir: None,
            admin: false,
        }
    }

    /// True when clients of protocol `level` (3, 4 or 5) may connect here.
    pub fn accepts_level(&self, level: u8) -> bool {
        level < 8 && self.accept_protocol_versions & (1 << level) != 0
    }
}

impl Default for Settings {
    /// Mosquitto 2.0's defaults with no listener.
    fn default() -> Settings {
        Settings {
            max_inflight_messages: 20,
            max_inflight_bytes: 0,
            max_queued_messages: 1000,
            max_queued_bytes: 0,
            queue_qos0_messages: false,
            max_packet_size: None,
            message_size_limit: 0,
            max_keepalive: 65535,
            retain_available: true,
            upgrade_outgoing_qos: false,
            persistent_client_expiration: None,
            sys_interval: 10,
            connection_messages: true,
            reason_strings: false,
            control_api: false,
            clientid_prefixes: None,
            version_text: format!("culex version {}", env!("CARGO_PKG_VERSION")),
            persistence: None,
            listeners: Vec::new(),
        }
    }
}
