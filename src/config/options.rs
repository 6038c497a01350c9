//! Every option name Mosquitto 2.0 and 2.1 accept, and what Culex does with each.
//!
//! The list comes from the `strcmp(token, "...")` chain of Mosquitto's `src/conf.c` (2.0.x and
//! 2.1.x), checked against the strings of Debian's 2.0.11 binary. A name missing here is an
//! unknown option and stops start-up, exactly as in Mosquitto; so this table is what makes
//! Culex a drop-in for existing configs. `resolve` consults it before dispatching an option,
//! and the tests load every [`OptionSpec::example`].

/// What Culex does with an option. Every option has exactly one status, and none is accepted
/// in silence without its effect: `docs/configuration.md` lists each with the test that shows
/// its effect, and the config tests check that every `Implemented` option changes what the
/// broker is told ([`crate::effects`]) while every warned one changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Parsed into typed fields of [`super::Config`] and applied.
    Implemented,
    /// Accepted and not read; a warning names it and gives the reason.
    Ignored(&'static str),
    /// Its value is checked as Mosquitto checks it, then not applied; a warning names it and
    /// gives the reason.
    Unapplied(&'static str),
    /// Refused at start-up with the reason (accepting it would break or endanger traffic).
    Refused(&'static str),
    /// A bridge option: refused at start-up (a silently dropped bridge would lose traffic).
    Bridge,
    /// A TLS-PSK option: refused at start-up (rustls has no PSK; the listener would otherwise
    /// open in plain text).
    Psk,
}

impl Class {
    /// The warning for an accepted option Culex does not apply, if it is one.
    pub fn warning(self, key: &str) -> Option<String> {
        match self {
            Class::Ignored(why) | Class::Unapplied(why) => {
                Some(format!("option \"{key}\" has no effect in Culex: {why}."))
            }
            _ => None,
        }
    }
}

/// Where an option comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Accepted by Mosquitto 2.0.x.
    Mosquitto20,
    /// New in Mosquitto 2.1.
    Mosquitto21,
    /// A Culex (or Cedalo) extension that Eclipse Mosquitto does not have.
    Culex,
}

/// One option name.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    /// The name, or the prefix for `plugin_opt_`/`auth_opt_` (see [`OptionSpec::prefix`]).
    pub name: &'static str,
    /// True when `name` is a prefix (`plugin_opt_<key>`).
    pub prefix: bool,
    /// What Culex does with it.
    pub class: Class,
    /// Which broker accepts it.
    pub since: Since,
    /// A config snippet that uses the option with a valid value, on the last line whose key
    /// it is, where it has an effect for an implemented option (tests load it with and
    /// without that line).
    pub example: &'static str,
}

/// The spec for option `key`, or `None` for an unknown option.
pub fn lookup(key: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|spec| {
        if spec.prefix {
            key.starts_with(spec.name)
        } else {
            key == spec.name
        }
    })
}

/// Why the proxy protocol options are refused.
const NO_PROXY_PROTOCOL: &str = "the PROXY protocol is not supported, and a PROXY header \
read as MQTT would fail every connection";
/// The example of `plugin_load` and `plugin_use`: an ACL file plugin used by a listener.
const ACL_PLUGIN_EXAMPLE: &str = "plugin_load acl /usr/lib/mosquitto_acl_file.so\n\
plugin_opt_acl_file /etc/mosquitto/acl\nlistener 1883\nplugin_use acl";
/// Why the OpenSSL engine options have no effect.
const NO_ENGINES: &str = "Culex uses rustls, which has no OpenSSL engines";

const fn spec(name: &'static str, class: Class, since: Since, example: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        prefix: false,
        class,
        since,
        example,
    }
}

use Class::{Bridge, Ignored, Implemented, Psk, Refused, Unapplied};
use Since::{Culex, Mosquitto20 as V20, Mosquitto21 as V21};

/// A listener line for examples of listener options.
macro_rules! listener {
    ($line:literal) => {
        concat!("listener 1883\n", $line)
    };
}

/// A TLS listener for examples of TLS options.
macro_rules! tls_listener {
    ($line:literal) => {
        concat!(
            "listener 8883\ncertfile /etc/tls/server.crt\nkeyfile /etc/tls/server.key\n",
            $line
        )
    };
}

/// The full table, sorted by name within each class.
pub const OPTIONS: &[OptionSpec] = &[
    // Implemented: general and process.
    spec(
        "clientid_prefixes",
        Implemented,
        V20,
        "clientid_prefixes sensor-",
    ),
    spec(
        "enable_control_api",
        Implemented,
        V21,
        "enable_control_api true",
    ),
    spec(
        "include_dir",
        Implemented,
        V20,
        "include_dir /etc/mosquitto/conf.d",
    ),
    spec(
        "per_listener_settings",
        Implemented,
        V20,
        "per_listener_settings true\nlistener 1883\nallow_anonymous true\nlistener 1884",
    ),
    spec(
        "pid_file",
        Implemented,
        V20,
        "pid_file /run/mosquitto/mosquitto.pid",
    ),
    spec(
        "queue_qos0_messages",
        Implemented,
        V20,
        "queue_qos0_messages true",
    ),
    spec(
        "retain_available",
        Implemented,
        V20,
        "retain_available false",
    ),
    spec("sys_interval", Implemented, V20, "sys_interval 60"),
    spec(
        "cluster_secret_file",
        Implemented,
        Culex,
        "enable_control_api true\ncluster_secret_file /etc/culex/cluster.secret",
    ),
    spec(
        "cluster_tls_cafile",
        Implemented,
        Culex,
        "enable_control_api true\ncluster_tls_certfile /etc/culex/node.crt\n\
         cluster_tls_keyfile /etc/culex/node.key\ncluster_tls_cafile /etc/culex/ca.crt",
    ),
    spec(
        "cluster_tls_certfile",
        Implemented,
        Culex,
        "enable_control_api true\ncluster_tls_keyfile /etc/culex/node.key\n\
         cluster_tls_cafile /etc/culex/ca.crt\ncluster_tls_certfile /etc/culex/node.crt",
    ),
    spec(
        "cluster_tls_keyfile",
        Implemented,
        Culex,
        "enable_control_api true\ncluster_tls_certfile /etc/culex/node.crt\n\
         cluster_tls_cafile /etc/culex/ca.crt\ncluster_tls_keyfile /etc/culex/node.key",
    ),
    spec("threads", Implemented, Culex, "threads 4"),
    spec("cpu_affinity", Implemented, Culex, "cpu_affinity true"),
    spec("reason_strings", Implemented, Culex, "reason_strings true"),
    spec(
        "upgrade_outgoing_qos",
        Implemented,
        V20,
        "upgrade_outgoing_qos true",
    ),
    spec("user", Implemented, V20, "user culex"),
    // Implemented: listeners.
    spec(
        "accept_protocol_versions",
        Implemented,
        V21,
        listener!("accept_protocol_versions 4,5"),
    ),
    spec(
        "admin_listener",
        Implemented,
        Culex,
        listener!("admin_listener true"),
    ),
    spec("bind_address", Implemented, V20, "bind_address 127.0.0.1"),
    spec(
        "bind_interface",
        Implemented,
        V20,
        listener!("bind_interface lo"),
    ),
    spec(
        "http_dir",
        Implemented,
        V20,
        listener!("protocol websockets\nhttp_dir /usr/share/mosquitto/dashboard"),
    ),
    spec("listener", Implemented, V20, "listener 1883 127.0.0.1"),
    spec(
        "listener_allow_anonymous",
        Implemented,
        V21,
        listener!("listener_allow_anonymous true"),
    ),
    spec(
        "listener_auto_id_prefix",
        Implemented,
        V21,
        listener!("listener_auto_id_prefix edge-"),
    ),
    spec(
        "max_connections",
        Implemented,
        V20,
        listener!("max_connections 100"),
    ),
    spec("max_qos", Implemented, V20, listener!("max_qos 1")),
    spec(
        "max_topic_alias",
        Implemented,
        V20,
        listener!("max_topic_alias 20"),
    ),
    spec(
        "max_topic_alias_broker",
        Implemented,
        V21,
        listener!("max_topic_alias_broker 20"),
    ),
    spec("maximum_qos", Implemented, V20, listener!("maximum_qos 1")),
    spec(
        "mount_point",
        Implemented,
        V20,
        listener!("mount_point tenant1/"),
    ),
    spec("port", Implemented, V20, "port 1883"),
    spec(
        "protocol",
        Implemented,
        V20,
        listener!("protocol websockets"),
    ),
    spec(
        "socket_domain",
        Implemented,
        V20,
        listener!("socket_domain ipv4"),
    ),
    spec(
        "use_username_as_clientid",
        Implemented,
        V20,
        listener!("use_username_as_clientid true"),
    ),
    spec(
        "websockets_origin",
        Implemented,
        V21,
        listener!("protocol websockets\nwebsockets_origin https://example.com"),
    ),
    // Implemented: TLS.
    spec(
        "cafile",
        Implemented,
        V20,
        tls_listener!("cafile /etc/tls/ca.crt"),
    ),
    spec(
        "capath",
        Implemented,
        V20,
        tls_listener!("capath /etc/ssl/certs"),
    ),
    spec(
        "certfile",
        Implemented,
        V20,
        tls_listener!("certfile /etc/tls/other.crt"),
    ),
    spec(
        "ciphers",
        Implemented,
        V20,
        tls_listener!("ciphers ECDHE-RSA-AES128-GCM-SHA256"),
    ),
    spec(
        "ciphers_tls1.3",
        Implemented,
        V20,
        tls_listener!("ciphers_tls1.3 TLS_AES_128_GCM_SHA256"),
    ),
    spec(
        "crlfile",
        Implemented,
        V20,
        tls_listener!("crlfile /etc/tls/crl.pem"),
    ),
    spec(
        "keyfile",
        Implemented,
        V20,
        tls_listener!("keyfile /etc/tls/other.key"),
    ),
    spec(
        "require_certificate",
        Implemented,
        V20,
        tls_listener!("require_certificate true"),
    ),
    spec(
        "tls_version",
        Implemented,
        V20,
        tls_listener!("tls_version tlsv1.3"),
    ),
    spec(
        "use_identity_as_username",
        Implemented,
        V20,
        tls_listener!("use_identity_as_username true"),
    ),
    spec(
        "use_subject_as_username",
        Implemented,
        V20,
        tls_listener!("use_subject_as_username true"),
    ),
    // Implemented: security and plugins.
    spec("acl_file", Implemented, V20, "acl_file /etc/mosquitto/acl"),
    spec(
        "allow_anonymous",
        Implemented,
        V20,
        "listener 1883\nallow_anonymous true",
    ),
    spec(
        "allow_zero_length_clientid",
        Implemented,
        V20,
        "allow_zero_length_clientid false",
    ),
    OptionSpec {
        name: "auth_opt_",
        prefix: true,
        class: Implemented,
        since: V20,
        example: "auth_plugin /usr/lib/mosquitto_dynamic_security.so\nauth_opt_config_file /x.json",
    },
    spec(
        "auth_plugin",
        Implemented,
        V20,
        "auth_plugin /usr/lib/mosquitto_dynamic_security.so\nauth_opt_config_file /x.json",
    ),
    spec("auto_id_prefix", Implemented, V20, "auto_id_prefix node1-"),
    spec(
        "global_plugin",
        Implemented,
        V21,
        "global_plugin /usr/lib/mosquitto_dynamic_security.so\nplugin_opt_config_file /x.json",
    ),
    spec(
        "password_file",
        Implemented,
        V20,
        "password_file /etc/mosquitto/passwd",
    ),
    spec(
        "plugin",
        Implemented,
        V20,
        "plugin /usr/lib/mosquitto_dynamic_security.so\nplugin_opt_config_file /x.json",
    ),
    spec("plugin_load", Implemented, V21, ACL_PLUGIN_EXAMPLE),
    OptionSpec {
        name: "plugin_opt_",
        prefix: true,
        class: Implemented,
        since: V20,
        example: "plugin /usr/lib/mosquitto_dynamic_security.so\nplugin_opt_config_file /x.json",
    },
    spec("plugin_use", Implemented, V21, ACL_PLUGIN_EXAMPLE),
    // Implemented: persistence.
    spec(
        "autosave_interval",
        Implemented,
        V20,
        "persistence true\nautosave_interval 900",
    ),
    spec(
        "autosave_on_changes",
        Implemented,
        V20,
        "persistence true\nautosave_on_changes true",
    ),
    spec("persistence", Implemented, V20, "persistence true"),
    spec(
        "persistence_file",
        Implemented,
        V20,
        "persistence true\npersistence_file broker.db",
    ),
    spec(
        "persistence_location",
        Implemented,
        V20,
        "persistence true\npersistence_location /var/lib/mosquitto/",
    ),
    spec(
        "persistent_client_expiration",
        Implemented,
        V20,
        "persistent_client_expiration 14d",
    ),
    spec(
        "retained_persistence",
        Implemented,
        V20,
        "retained_persistence true",
    ),
    // Implemented: logging.
    spec(
        "connection_messages",
        Implemented,
        V20,
        "connection_messages false",
    ),
    spec(
        "log_dest",
        Implemented,
        V20,
        "log_dest file /var/log/mosquitto/mosquitto.log",
    ),
    spec(
        "log_facility",
        Implemented,
        V20,
        "log_dest syslog\nlog_facility 3",
    ),
    spec("log_timestamp", Implemented, V20, "log_timestamp false"),
    spec(
        "log_timestamp_format",
        Implemented,
        V20,
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ),
    spec("log_type", Implemented, V20, "log_type all"),
    // Implemented: limits.
    spec(
        "max_inflight_bytes",
        Implemented,
        V20,
        "max_inflight_bytes 1000000",
    ),
    spec(
        "max_inflight_messages",
        Implemented,
        V20,
        "max_inflight_messages 10",
    ),
    spec("max_keepalive", Implemented, V20, "max_keepalive 1800"),
    spec(
        "max_packet_size",
        Implemented,
        V20,
        "max_packet_size 100000000",
    ),
    spec(
        "max_queued_bytes",
        Implemented,
        V20,
        "max_queued_bytes 1000000",
    ),
    spec(
        "max_queued_messages",
        Implemented,
        V20,
        "max_queued_messages 100",
    ),
    spec(
        "message_size_limit",
        Implemented,
        V20,
        "message_size_limit 1000",
    ),
    // Checked as Mosquitto checks them, not applied, with a warning.
    spec(
        "auth_plugin_deny_special_chars",
        Unapplied(
            "it applies to Mosquitto's external authentication plugins, which Culex does not \
             load",
        ),
        V20,
        "plugin /usr/lib/mosquitto_acl_file.so\nauth_plugin_deny_special_chars true",
    ),
    spec(
        "check_retain_source",
        Unapplied(
            "retained messages are delivered without checking again that their publisher \
             may still publish them, as with `check_retain_source false`",
        ),
        V20,
        "check_retain_source false",
    ),
    spec(
        "disable_client_cert_date_checks",
        Unapplied("expired or not yet valid client certificates are always refused"),
        V21,
        tls_listener!("disable_client_cert_date_checks true"),
    ),
    spec(
        "global_max_clients",
        Unapplied("no broker-wide limit on clients is enforced"),
        V21,
        "global_max_clients 1000",
    ),
    spec(
        "global_max_connections",
        Unapplied(
            "no broker-wide limit on connections is enforced (max_connections limits a \
             listener)",
        ),
        V21,
        "global_max_connections 1000",
    ),
    spec(
        "retain_expiry_interval",
        Unapplied("retained messages expire only by their own message expiry interval"),
        V20,
        "retain_expiry_interval 60",
    ),
    spec(
        "set_tcp_nodelay",
        Unapplied("TCP_NODELAY is always set (Culex batches its writes itself)"),
        V20,
        "set_tcp_nodelay true",
    ),
    // Accepted, not read, with a warning.
    spec(
        "allow_duplicate_messages",
        Ignored("deprecated since Mosquitto 2.0, which, like Culex, always sends duplicates"),
        V20,
        "allow_duplicate_messages true",
    ),
    spec(
        "dhparamfile",
        Ignored("rustls uses ECDHE key exchange only, which needs no DH parameters"),
        V20,
        tls_listener!("dhparamfile /etc/tls/dh.pem"),
    ),
    spec(
        "memory_limit",
        Ignored("no memory limit is enforced yet"),
        V20,
        "memory_limit 1000000",
    ),
    spec(
        "packet_buffer_size",
        Ignored("Culex sizes its packet buffers itself"),
        V21,
        "packet_buffer_size 4096",
    ),
    spec(
        "retry_interval",
        Ignored(
            "obsolete since Mosquitto 1.5: QoS 1/2 messages are retried on reconnection, as \
             in Culex",
        ),
        V20,
        "retry_interval 20",
    ),
    spec(
        "tls_engine",
        Ignored(NO_ENGINES),
        V20,
        tls_listener!("tls_engine pkcs11"),
    ),
    spec(
        "tls_engine_kpass_sha1",
        Ignored(NO_ENGINES),
        V20,
        tls_listener!("tls_engine_kpass_sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ),
    spec(
        "tls_keyform",
        Ignored(NO_ENGINES),
        V20,
        tls_listener!("tls_keyform engine"),
    ),
    spec(
        "websockets_headers_size",
        Ignored("Culex reads upgrade requests of up to 16 KiB"),
        V20,
        "websockets_headers_size 1024",
    ),
    spec(
        "websockets_log_level",
        Ignored("it sets libwebsockets' logging; Culex logs WebSocket failures itself"),
        V20,
        "websockets_log_level 255",
    ),
    // Refused: the PROXY protocol.
    spec(
        "enable_proxy_protocol",
        Refused(NO_PROXY_PROTOCOL),
        V21,
        listener!("enable_proxy_protocol 2"),
    ),
    spec(
        "proxy_protocol_v2_require_tls",
        Refused(NO_PROXY_PROTOCOL),
        V21,
        listener!("proxy_protocol_v2_require_tls true"),
    ),
    // Refused: bridges.
    spec("address", Bridge, V20, "address 192.0.2.1:1883"),
    spec(
        "addresses",
        Bridge,
        V20,
        "addresses 192.0.2.1:1883 192.0.2.2:1883",
    ),
    spec("bridge_alpn", Bridge, V20, "bridge_alpn x-amzn-mqtt-ca"),
    spec(
        "bridge_attempt_unsubscribe",
        Bridge,
        V20,
        "bridge_attempt_unsubscribe false",
    ),
    spec(
        "bridge_bind_address",
        Bridge,
        V20,
        "bridge_bind_address 192.0.2.9",
    ),
    spec(
        "bridge_cafile",
        Bridge,
        V20,
        "bridge_cafile /etc/tls/ca.crt",
    ),
    spec("bridge_capath", Bridge, V20, "bridge_capath /etc/ssl/certs"),
    spec(
        "bridge_certfile",
        Bridge,
        V20,
        "bridge_certfile /etc/tls/c.crt",
    ),
    spec(
        "bridge_ciphers",
        Bridge,
        V21,
        "bridge_ciphers ECDHE-RSA-AES128-GCM-SHA256",
    ),
    spec(
        "bridge_ciphers_tls1.3",
        Bridge,
        V21,
        "bridge_ciphers_tls1.3 TLS_AES_128_GCM_SHA256",
    ),
    spec("bridge_identity", Bridge, V20, "bridge_identity id"),
    spec("bridge_insecure", Bridge, V20, "bridge_insecure false"),
    spec(
        "bridge_keyfile",
        Bridge,
        V20,
        "bridge_keyfile /etc/tls/c.key",
    ),
    spec(
        "bridge_max_packet_size",
        Bridge,
        V20,
        "bridge_max_packet_size 100000",
    ),
    spec(
        "bridge_max_topic_alias",
        Bridge,
        V21,
        "bridge_max_topic_alias 10",
    ),
    spec(
        "bridge_outgoing_retain",
        Bridge,
        V20,
        "bridge_outgoing_retain false",
    ),
    spec(
        "bridge_protocol_version",
        Bridge,
        V20,
        "bridge_protocol_version mqttv50",
    ),
    spec("bridge_psk", Bridge, V20, "bridge_psk deadbeef"),
    spec(
        "bridge_receive_maximum",
        Bridge,
        V21,
        "bridge_receive_maximum 10",
    ),
    spec("bridge_reload_type", Bridge, V21, "bridge_reload_type lazy"),
    spec(
        "bridge_require_ocsp",
        Bridge,
        V20,
        "bridge_require_ocsp true",
    ),
    spec(
        "bridge_session_expiry_interval",
        Bridge,
        V21,
        "bridge_session_expiry_interval 60",
    ),
    spec(
        "bridge_tcp_keepalive",
        Bridge,
        V21,
        "bridge_tcp_keepalive 60 10 3",
    ),
    spec(
        "bridge_tcp_user_timeout",
        Bridge,
        V21,
        "bridge_tcp_user_timeout 1000",
    ),
    spec(
        "bridge_tls_use_os_certs",
        Bridge,
        V21,
        "bridge_tls_use_os_certs true",
    ),
    spec(
        "bridge_tls_version",
        Bridge,
        V20,
        "bridge_tls_version tlsv1.2",
    ),
    spec("cleansession", Bridge, V20, "cleansession false"),
    spec("clientid", Bridge, V20, "clientid edge1"),
    spec("connection", Bridge, V20, "connection cloud"),
    spec("idle_timeout", Bridge, V20, "idle_timeout 60"),
    spec("keepalive_interval", Bridge, V20, "keepalive_interval 60"),
    spec(
        "local_cleansession",
        Bridge,
        V20,
        "local_cleansession false",
    ),
    spec("local_clientid", Bridge, V20, "local_clientid local.edge1"),
    spec("local_password", Bridge, V20, "local_password secret"),
    spec("local_username", Bridge, V20, "local_username bridge"),
    spec(
        "notification_topic",
        Bridge,
        V20,
        "notification_topic bridges/state",
    ),
    spec("notifications", Bridge, V20, "notifications true"),
    spec(
        "notifications_local_only",
        Bridge,
        V20,
        "notifications_local_only true",
    ),
    spec("password", Bridge, V20, "password secret"),
    spec("remote_clientid", Bridge, V20, "remote_clientid edge1"),
    spec("remote_password", Bridge, V20, "remote_password secret"),
    spec("remote_username", Bridge, V20, "remote_username edge"),
    spec("restart_timeout", Bridge, V20, "restart_timeout 5 30"),
    spec("round_robin", Bridge, V20, "round_robin true"),
    spec("start_type", Bridge, V20, "start_type automatic"),
    spec("threshold", Bridge, V20, "threshold 10"),
    spec("topic", Bridge, V20, "topic sensors/# out 1"),
    spec("try_private", Bridge, V20, "try_private true"),
    spec("username", Bridge, V20, "username edge"),
    // Refused: TLS-PSK.
    spec("psk_file", Psk, V20, "psk_file /etc/mosquitto/psk"),
    spec("psk_hint", Psk, V20, listener!("psk_hint broker")),
];
