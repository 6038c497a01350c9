//! The resolve layer: walks the raw lines with Mosquitto's scoping rules and fills a [`Draft`].
//!
//! Called by [`super::load`]. For each line it looks the key up in [`super::options`]
//! (unknown → error), refuses bridge, PSK and PROXY protocol options, warns about the ones
//! Culex does not apply (checking their value first where Mosquitto would), and applies
//! implemented ones to the right place:
//! - options after `listener <port> [address]` apply to that listener; each file starts with
//!   no current listener (Mosquitto's `cur_listener` is local to each file), and an
//!   `include_dir` returns to the main file's current listener;
//! - listener options written before any listener create Mosquitto's "default listener"
//!   (port 1883, all interfaces) like `port` and `bind_address` do, with a warning;
//! - security options go to the current listener with `per_listener_settings true` (which then
//!   requires a listener) and to the global options otherwise, wherever they are written;
//! - `plugin_opt_*`/`auth_opt_*` attach to the last plugin line of the same file.
//!
//! [`super::finish`] then turns the draft into a validated [`super::Config`].

use shards::dynsec::password::StoredForm;
use shards::transport::cipher_list;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigWarning};
use super::options::{self, Class};
use super::raw::{self, Args, RawLine};
use super::source::Source;
use super::types::{
    Bind, Config, Listener, LogDest, LogTypes, OptionFile, Plugin, PluginKind, PluginScope,
    Protocol, ProtocolVersions, SocketDomain, TlsVersion,
};
use super::values::{self, invalid, ValueResult};

/// The largest MQTT payload (`MQTT_MAX_PAYLOAD`), the upper bound of `message_size_limit`.
const MQTT_MAX_PAYLOAD: i64 = 268_435_455;
/// Upper bound of the Culex `threads` option.
const THREADS_MAX: i64 = 1024;
/// Longest `auto_id_prefix` Mosquitto accepts.
const AUTO_ID_PREFIX_MAX: usize = 50;

/// Reads `path` (and its `include_dir` files) from `source` into a draft.
pub fn read(source: &dyn Source, path: &Path) -> Result<Draft, ConfigError> {
    let mut walker = Walker {
        source,
        draft: Draft::new(path),
    };
    walker.read_file(path, true)?;
    Ok(walker.draft)
}

/// Security options as written, before defaults (Mosquitto's `security_options`).
#[derive(Debug, Clone, Default)]
pub struct SecurityDraft {
    pub allow_anonymous: Option<bool>,
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
    pub allow_zero_length_clientid: Option<bool>,
    pub auto_id_prefix: Option<String>,
}

/// TLS options of a listener as written; `finish` checks they make a TLS listener.
#[derive(Debug, Clone, Default)]
pub struct TlsDraft {
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub cafile: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub crlfile: Option<PathBuf>,
    pub require_certificate: Option<bool>,
    pub use_identity_as_username: Option<bool>,
    pub use_subject_as_username: Option<bool>,
    pub min_version: Option<TlsVersion>,
    pub ciphers: Option<String>,
    pub ciphers_tls13: Option<String>,
    pub disable_client_cert_date_checks: Option<bool>,
}

/// The cluster link's TLS options as written; `finish` checks that all three are set.
#[derive(Debug, Clone, Default)]
pub struct ClusterTlsDraft {
    pub certfile: Option<OptionFile>,
    pub keyfile: Option<OptionFile>,
    pub cafile: Option<OptionFile>,
}

/// A listener being built: the typed listener plus what still needs defaults.
#[derive(Debug, Clone)]
pub struct ListenerDraft {
    pub listener: Listener,
    pub tls: TlsDraft,
    pub security: SecurityDraft,
    pub allow_anonymous_override: Option<bool>,
    pub auto_id_prefix_override: Option<String>,
    pub is_default: bool,
}

/// Everything read so far. `config` holds the global fields (with defaults); listeners,
/// security and plugins are kept apart until `finish` resolves them.
#[derive(Debug)]
pub struct Draft {
    pub main: PathBuf,
    pub config: Config,
    pub listeners: Vec<ListenerDraft>,
    pub default_listener: Option<usize>,
    pub default_port_set: bool,
    pub security: SecurityDraft,
    pub security_touched: bool,
    pub plugins: Vec<Plugin>,
    pub log_dest_set: bool,
    pub log_types_set: bool,
    pub persistence_file_set: bool,
    pub cluster_tls: ClusterTlsDraft,
}

impl Draft {
    fn new(main: &Path) -> Self {
        Draft {
            main: main.to_path_buf(),
            config: Config::base(Some(main)),
            listeners: Vec::new(),
            default_listener: None,
            default_port_set: false,
            security: SecurityDraft::default(),
            security_touched: false,
            plugins: Vec::new(),
            log_dest_set: false,
            log_types_set: false,
            persistence_file_set: false,
            cluster_tls: ClusterTlsDraft::default(),
        }
    }

    /// Records a warning about `at`.
    pub fn warn(&mut self, at: At<'_>, message: impl std::fmt::Display) {
        self.config
            .warnings
            .push(ConfigWarning::at(at.file, at.line, message));
    }
}

/// The position of the line being applied.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub file: &'a Path,
    pub line: usize,
}

/// Per-file state: Mosquitto resets the current listener and plugin for every file.
#[derive(Debug, Default)]
struct Scope {
    listener: Option<usize>,
    plugin: Option<usize>,
    main: bool,
}

/// How a listener option finds its listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Uses the current listener, or creates/uses the default listener (Mosquitto's
    /// `REQUIRE_LISTENER_OR_DEFAULT_LISTENER`).
    ListenerOrDefault,
    /// Needs a current listener (`REQUIRE_LISTENER`).
    Listener,
    /// Needs a current listener other than the default one (`REQUIRE_NON_DEFAULT_LISTENER`).
    NonDefaultListener,
}

/// The listener requirement of `key`, or `None` when it is not a listener option.
fn listener_needs(key: &str) -> Option<Needs> {
    Some(match key {
        "bind_interface"
        | "capath"
        | "certfile"
        | "ciphers"
        | "ciphers_tls1.3"
        | "crlfile"
        | "keyfile"
        | "max_connections"
        | "max_qos"
        | "maximum_qos"
        | "protocol"
        | "require_certificate"
        | "socket_domain"
        | "use_identity_as_username"
        | "use_subject_as_username"
        | "use_username_as_clientid" => Needs::ListenerOrDefault,
        "admin_listener"
        | "cafile"
        | "disable_client_cert_date_checks"
        | "http_dir"
        | "listener_allow_anonymous"
        | "listener_auto_id_prefix"
        | "max_topic_alias"
        | "max_topic_alias_broker"
        | "mount_point"
        | "tls_version"
        | "websockets_origin" => Needs::Listener,
        "accept_protocol_versions" => Needs::NonDefaultListener,
        _ => return None,
    })
}

fn requires_listener(key: &str) -> String {
    format!("The '{key}' option requires a listener to be defined first.")
}

fn duplicate(name: &str) -> String {
    format!("Duplicate {name} value in configuration.")
}

struct Walker<'s> {
    source: &'s dyn Source,
    draft: Draft,
}

impl Walker<'_> {
    fn read_file(&mut self, path: &Path, main: bool) -> Result<(), ConfigError> {
        let lines = raw::read_file(self.source, path)?;
        self.draft.config.files.push(path.to_path_buf());
        let mut scope = Scope {
            main,
            ..Scope::default()
        };
        for line in &lines {
            if line.key == "include_dir" {
                self.include_dir(&scope, path, line)?;
            } else {
                let at = At {
                    file: path,
                    line: line.line,
                };
                apply(&mut self.draft, &mut scope, at, line)
                    .map_err(|message| ConfigError::at(path, line.line, message))?;
            }
        }
        Ok(())
    }

    /// `include_dir <dir>`: loads `dir/*.conf` in Mosquitto's order; main file only.
    fn include_dir(
        &mut self,
        scope: &Scope,
        path: &Path,
        line: &RawLine,
    ) -> Result<(), ConfigError> {
        let error = |message: String| ConfigError::at(path, line.line, message);
        if !scope.main {
            return Err(error(
                "The include_dir option is only valid in the main configuration file.".into(),
            ));
        }
        let dir = values::string("include_dir", &mut line.args()).map_err(error)?;
        let files = raw::include_files(self.source, dir).map_err(error)?;
        for file in files {
            self.read_file(&file, false)
                .map_err(|e| e.included_from(path, line.line))?;
        }
        Ok(())
    }
}

/// Applies one line (anything but `include_dir`).
fn apply(draft: &mut Draft, scope: &mut Scope, at: At<'_>, line: &RawLine) -> ValueResult<()> {
    let key = line.key.as_str();
    let Some(spec) = options::lookup(key) else {
        return Err(format!("Unknown configuration variable \"{key}\"."));
    };
    let args = &mut line.args();
    match spec.class {
        Class::Bridge => Err(format!(
            "Bridge option \"{key}\" is not supported by Culex: bridges are refused at start-up \
             rather than silently dropped."
        )),
        Class::Psk => Err(format!(
            "TLS-PSK is not supported: rustls has no PSK; refusing to open this listener in \
             plain text (option \"{key}\")."
        )),
        Class::Refused(why) => Err(format!(
            "Option \"{key}\" is not supported by Culex: {why}."
        )),
        Class::Ignored(_) => {
            draft.warn(at, spec.class.warning(key).unwrap_or_default());
            Ok(())
        }
        Class::Unapplied(_) => {
            implemented(draft, scope, at, key, args)?;
            draft.warn(at, spec.class.warning(key).unwrap_or_default());
            Ok(())
        }
        Class::Implemented => implemented(draft, scope, at, key, args),
    }
}

fn implemented(
    draft: &mut Draft,
    scope: &mut Scope,
    at: At<'_>,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    if key.starts_with("plugin_opt_") || key.starts_with("auth_opt_") {
        return plugin_option(draft, scope, key, args);
    }
    if let Some(needs) = listener_needs(key) {
        let index = listener_for(draft, scope, at, key, needs)?;
        return listener_option(draft, index, at, key, args);
    }
    match key {
        "listener" => listener(draft, scope, at, args),
        "port" | "bind_address" => default_listener_option(draft, scope, at, key, args),
        "acl_file"
        | "allow_anonymous"
        | "allow_zero_length_clientid"
        | "auto_id_prefix"
        | "password_file" => security_option(draft, scope, key, args),
        "per_listener_settings" => per_listener_settings(draft, args),
        "plugin"
        | "auth_plugin"
        | "global_plugin"
        | "plugin_load"
        | "plugin_use"
        | "auth_plugin_deny_special_chars" => plugin_line(draft, scope, at, key, args),
        "log_dest"
        | "log_facility"
        | "log_timestamp"
        | "log_timestamp_format"
        | "log_type"
        | "connection_messages" => logging_option(draft, at, key, args),
        "cluster_secret_file"
        | "cluster_tls_certfile"
        | "cluster_tls_keyfile"
        | "cluster_tls_cafile" => cluster_link_option(draft, at, key, args),
        _ => global_option(draft, at, key, args),
    }
}

/// `listener <port> [bind address | unix socket path]`.
fn listener(
    draft: &mut Draft,
    scope: &mut Scope,
    at: At<'_>,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    let token = args.next_token().ok_or_else(|| values::empty("listener"))?;
    let port = token
        .parse::<i64>()
        .ok()
        .filter(|p| (0..=i64::from(u16::MAX)).contains(p))
        .ok_or_else(|| invalid("port", token))?;
    let address = args.next_token().filter(|t| !t.starts_with('#'));
    let bind = match (port, address) {
        (0, None) => return Err("A listener with port 0 must provide a Unix socket path.".into()),
        (0, Some(path)) => Bind::Unix(PathBuf::from(path)),
        (_, Some(host)) => Bind::Host(host.to_string()),
        (_, None) => Bind::Any,
    };
    let port = u16::try_from(port).map_err(|_| invalid("port", token))?;
    draft.listeners.push(ListenerDraft::new(
        Listener::new(port, bind, at.file, at.line),
        false,
    ));
    scope.listener = Some(draft.listeners.len() - 1);
    Ok(())
}

impl ListenerDraft {
    fn new(listener: Listener, is_default: bool) -> Self {
        ListenerDraft {
            listener,
            tls: TlsDraft::default(),
            security: SecurityDraft::default(),
            allow_anonymous_override: None,
            auto_id_prefix_override: None,
            is_default,
        }
    }
}

/// The default listener (port 1883, all interfaces), created on first use.
fn default_listener(draft: &mut Draft, at: At<'_>) -> usize {
    if let Some(index) = draft.default_listener {
        return index;
    }
    let listener = Listener::new(1883, Bind::Any, at.file, at.line);
    draft.listeners.push(ListenerDraft::new(listener, true));
    let index = draft.listeners.len() - 1;
    draft.default_listener = Some(index);
    index
}

/// The listener a listener option applies to, following [`Needs`].
fn listener_for(
    draft: &mut Draft,
    scope: &mut Scope,
    at: At<'_>,
    key: &str,
    needs: Needs,
) -> ValueResult<usize> {
    match (scope.listener, needs) {
        (Some(index), Needs::NonDefaultListener) if Some(index) == draft.default_listener => {
            Err(requires_listener(key))
        }
        (Some(index), _) => Ok(index),
        (None, Needs::ListenerOrDefault) => {
            if draft.default_listener.is_none() {
                draft.warn(
                    at,
                    format!(
                        "option \"{key}\" comes before any listener, so it creates the default \
                         listener on port 1883 (all interfaces), as Mosquitto does. Put a \
                         \"listener\" line before it."
                    ),
                );
            }
            let index = default_listener(draft, at);
            scope.listener = Some(index);
            Ok(index)
        }
        (None, _) => Err(requires_listener(key)),
    }
}

/// `port` and `bind_address`: the deprecated default listener.
fn default_listener_option(
    draft: &mut Draft,
    scope: &mut Scope,
    at: At<'_>,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    draft.warn(
        at,
        format!("option \"{key}\" is deprecated; use \"listener\" instead."),
    );
    let index = default_listener(draft, at);
    scope.listener = Some(index);
    if key == "port" {
        let port = values::ranged("port", args, 1, i64::from(u16::MAX))?;
        if draft.default_port_set {
            draft.warn(
                at,
                "Default listener port specified multiple times. Only the latest will be used.",
            );
        }
        draft.default_port_set = true;
        draft.listeners[index].listener.port =
            u16::try_from(port).map_err(|_| invalid("port", port))?;
    } else {
        let host = values::string("default listener bind_address", args)?;
        let listener = &mut draft.listeners[index].listener;
        if listener.bind != Bind::Any {
            return Err(duplicate("default listener bind_address"));
        }
        listener.bind = Bind::Host(host.to_string());
    }
    Ok(())
}

/// Options that belong to one listener.
fn listener_option(
    draft: &mut Draft,
    index: usize,
    at: At<'_>,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    if is_tls_option(key) {
        return tls_option(draft, index, at, key, args);
    }
    let entry = &mut draft.listeners[index];
    let listener = &mut entry.listener;
    match key {
        "bind_interface" => {
            if listener.bind_interface.is_some() {
                return Err(duplicate(key));
            }
            listener.bind_interface = Some(values::string(key, args)?.to_string());
        }
        "max_connections" => {
            listener.max_connections = values::limit(key, args, i64::from(i32::MAX))?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        }
        "max_qos" | "maximum_qos" => {
            let (_, qos) = values::integer(key, args)?;
            listener.max_qos = u8::try_from(qos)
                .ok()
                .filter(|q| *q <= 2)
                .ok_or_else(|| format!("{key} must be between 0 and 2 inclusive."))?;
        }
        "protocol" => {
            listener.protocol = match values::word(key, args)? {
                "mqtt" => Protocol::Mqtt,
                "websockets" => Protocol::WebSockets,
                "http_api" => Protocol::HttpApi,
                other => return Err(invalid(key, other)),
            };
        }
        "socket_domain" => {
            listener.socket_domain = Some(match values::word(key, args)? {
                "ipv4" => SocketDomain::Ipv4,
                "ipv6" => SocketDomain::Ipv6,
                other => {
                    return Err(format!(
                        "Invalid socket_domain value \"{other}\" in configuration."
                    ))
                }
            });
        }
        "use_username_as_clientid" => {
            listener.use_username_as_clientid = values::boolean(key, args)?
        }
        "admin_listener" => listener.admin = values::boolean(key, args)?,
        "http_dir" => {
            if listener.http_dir.is_some() {
                return Err(duplicate(key));
            }
            listener.http_dir = Some(PathBuf::from(values::string(key, args)?));
        }
        "websockets_origin" => listener
            .websockets_origins
            .push(values::string(key, args)?.to_string()),
        "mount_point" => {
            let point = values::string(key, args)?;
            if point.contains(['+', '#']) {
                return Err(format!(
                    "Invalid mount_point '{point}'. Does it contain a wildcard character?"
                ));
            }
            listener.mount_point = Some(point.to_string());
        }
        "max_topic_alias" => {
            listener.max_topic_alias = u16::try_from(values::ranged(key, args, 0, 65535)?)
                .map_err(|_| invalid(key, "out of range"))?;
        }
        "max_topic_alias_broker" => {
            listener.max_topic_alias_broker = u16::try_from(values::ranged(key, args, 0, 65535)?)
                .map_err(|_| invalid(key, "out of range"))?;
        }
        "listener_allow_anonymous" => {
            entry.allow_anonymous_override = Some(values::boolean(key, args)?)
        }
        "listener_auto_id_prefix" => {
            if entry.auto_id_prefix_override.is_some() {
                return Err(duplicate(key));
            }
            entry.auto_id_prefix_override = Some(auto_id_prefix(key, args)?);
        }
        "accept_protocol_versions" => {
            listener.accept_protocol_versions = protocol_versions(key, args)?
        }
        _ => return Err(format!("Unknown configuration variable \"{key}\".")),
    }
    Ok(())
}

fn is_tls_option(key: &str) -> bool {
    matches!(
        key,
        "cafile"
            | "capath"
            | "certfile"
            | "keyfile"
            | "crlfile"
            | "ciphers"
            | "ciphers_tls1.3"
            | "require_certificate"
            | "use_identity_as_username"
            | "use_subject_as_username"
            | "disable_client_cert_date_checks"
            | "tls_version"
    )
}

/// TLS options of a listener (later values replace earlier ones, except `tls_version`);
/// `finish` checks that they make a TLS listener.
fn tls_option(
    draft: &mut Draft,
    index: usize,
    at: At<'_>,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    let tls = &mut draft.listeners[index].tls;
    let path = |args: &mut Args<'_>| values::string(key, args).map(PathBuf::from);
    let text = |args: &mut Args<'_>| values::string(key, args).map(str::to_string);
    let flag = |args: &mut Args<'_>| values::boolean(key, args);
    match key {
        "cafile" => tls.cafile = Some(path(args)?),
        "capath" => tls.capath = Some(path(args)?),
        "certfile" => tls.certfile = Some(path(args)?),
        "keyfile" => tls.keyfile = Some(path(args)?),
        "crlfile" => tls.crlfile = Some(path(args)?),
        // Checked here so a list rustls cannot honour stops start-up naming this line.
        "ciphers" => {
            let list = text(args)?;
            cipher_list::tls12(&list)?;
            tls.ciphers = Some(list);
        }
        "ciphers_tls1.3" => {
            let list = text(args)?;
            cipher_list::tls13(&list)?;
            tls.ciphers_tls13 = Some(list);
        }
        "require_certificate" => tls.require_certificate = Some(flag(args)?),
        "use_identity_as_username" => tls.use_identity_as_username = Some(flag(args)?),
        "use_subject_as_username" => tls.use_subject_as_username = Some(flag(args)?),
        "disable_client_cert_date_checks" => {
            tls.disable_client_cert_date_checks = Some(flag(args)?);
        }
        "tls_version" => {
            if tls.min_version.is_some() {
                return Err(duplicate(key));
            }
            let version = values::string(key, args)?;
            tls.min_version = Some(match version {
                "tlsv1.3" => TlsVersion::Tls13,
                "tlsv1.2" | "tlsv1.1" => TlsVersion::Tls12,
                other => return Err(format!("Unsupported tls_version \"{other}\".")),
            });
            if version == "tlsv1.1" {
                draft.warn(
                    at,
                    "tls_version tlsv1.1 is not supported by rustls; TLS 1.2 is the minimum.",
                );
            }
        }
        _ => return Err(format!("Unknown configuration variable \"{key}\".")),
    }
    Ok(())
}

/// `accept_protocol_versions 3,4,5` (comma, space or tab separated).
fn protocol_versions(key: &str, args: &mut Args<'_>) -> ValueResult<ProtocolVersions> {
    let list = values::string(key, args)?;
    let mut versions = ProtocolVersions {
        v3: false,
        v4: false,
        v5: false,
    };
    for token in list.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
        match token {
            "3" => versions.v3 = true,
            "4" => versions.v4 = true,
            "5" => versions.v5 = true,
            other => return Err(invalid(key, other)),
        }
    }
    Ok(versions)
}

/// `auto_id_prefix`/`listener_auto_id_prefix`: at most 50 characters.
fn auto_id_prefix(key: &str, args: &mut Args<'_>) -> ValueResult<String> {
    let prefix = values::string(key, args)?;
    if prefix.len() > AUTO_ID_PREFIX_MAX {
        return Err(format!("{key} length must be <= {AUTO_ID_PREFIX_MAX}."));
    }
    Ok(prefix.to_string())
}

/// Where a security option goes: the current listener with `per_listener_settings true`
/// (which then needs a listener), the global options otherwise.
fn security_target<'d>(
    draft: &'d mut Draft,
    scope: &Scope,
    key: &str,
) -> ValueResult<&'d mut SecurityDraft> {
    draft.security_touched = true;
    if draft.config.per_listener_settings {
        let index = scope.listener.ok_or_else(|| requires_listener(key))?;
        Ok(&mut draft.listeners[index].security)
    } else {
        Ok(&mut draft.security)
    }
}

fn security_option(
    draft: &mut Draft,
    scope: &Scope,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    let target = security_target(draft, scope, key)?;
    match key {
        "acl_file" => target.acl_file = Some(PathBuf::from(values::string(key, args)?)),
        "password_file" => target.password_file = Some(PathBuf::from(values::string(key, args)?)),
        "allow_anonymous" => target.allow_anonymous = Some(values::boolean(key, args)?),
        "allow_zero_length_clientid" => {
            target.allow_zero_length_clientid = Some(values::boolean(key, args)?);
        }
        _ => {
            if target.auto_id_prefix.is_some() {
                return Err(duplicate(key));
            }
            target.auto_id_prefix = Some(auto_id_prefix(key, args)?);
        }
    }
    Ok(())
}

/// `per_listener_settings`: once true it stays true; it must come before security options.
fn per_listener_settings(draft: &mut Draft, args: &mut Args<'_>) -> ValueResult<()> {
    if draft.config.per_listener_settings {
        return Ok(());
    }
    let value = values::boolean("per_listener_settings", args)?;
    if value && draft.security_touched {
        return Err("per_listener_settings must be set before any other security settings.".into());
    }
    draft.config.per_listener_settings = value;
    Ok(())
}

/// The built-in plugin for `path`, or the refusal of a third-party plugin.
fn plugin_kind(path: &str) -> ValueResult<PluginKind> {
    PluginKind::from_path(Path::new(path)).ok_or_else(|| {
        let name = Path::new(path)
            .file_name()
            .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned());
        format!(
            "Unsupported plugin \"{path}\": third-party plugins need Mosquitto's C plugin ABI; \
             Culex cannot load {name}."
        )
    })
}

/// `plugin`, `auth_plugin`, `global_plugin`, `plugin_load`, `plugin_use` and
/// `auth_plugin_deny_special_chars`.
fn plugin_line(
    draft: &mut Draft,
    scope: &mut Scope,
    at: At<'_>,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    let (scope_of_plugin, name) = match key {
        "auth_plugin_deny_special_chars" => {
            let index = scope.plugin.ok_or_else(|| {
                "An auth_plugin_deny_special_chars option exists in the config file without a \
                 plugin."
                    .to_string()
            })?;
            draft.plugins[index].deny_special_chars = values::boolean(key, args)?;
            return Ok(());
        }
        "plugin_use" => return plugin_use(draft, scope, key, args),
        "global_plugin" => {
            draft.security_touched = true;
            (PluginScope::Global, None)
        }
        "plugin_load" => {
            let name = values::word(key, args)?;
            if draft
                .plugins
                .iter()
                .any(|p| p.name.as_deref() == Some(name))
            {
                return Err(format!("Duplicate plugin name '{name}'."));
            }
            (PluginScope::Listeners(Vec::new()), Some(name.to_string()))
        }
        _ => {
            draft.security_touched = true;
            if draft.config.per_listener_settings {
                let index = scope.listener.ok_or_else(|| requires_listener(key))?;
                (PluginScope::Listeners(vec![index]), None)
            } else {
                (PluginScope::Global, None)
            }
        }
    };
    let path = values::string(key, args)?;
    draft.plugins.push(Plugin {
        kind: plugin_kind(path)?,
        path: PathBuf::from(path),
        name,
        options: Vec::new(),
        deny_special_chars: true,
        scope: scope_of_plugin,
        file: at.file.to_path_buf(),
        line: at.line,
    });
    scope.plugin = Some(draft.plugins.len() - 1);
    Ok(())
}

/// `plugin_use <name>`: attaches a `plugin_load`ed plugin to the current listener.
fn plugin_use(
    draft: &mut Draft,
    scope: &mut Scope,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    let listener = scope
        .listener
        .filter(|index| Some(*index) != draft.default_listener)
        .ok_or_else(|| requires_listener(key))?;
    let name = values::string(key, args)?;
    let index = draft
        .plugins
        .iter()
        .position(|p| p.name.as_deref() == Some(name))
        .ok_or_else(|| format!("Plugin '{name}' not previously loaded."))?;
    if let PluginScope::Listeners(list) = &mut draft.plugins[index].scope {
        if !list.contains(&listener) {
            list.push(listener);
        }
    }
    scope.plugin = Some(index);
    Ok(())
}

/// `plugin_opt_<key> <value>` / `auth_opt_<key> <value>`: an option of the last plugin.
fn plugin_option(
    draft: &mut Draft,
    scope: &Scope,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    let index = scope.plugin.ok_or_else(|| {
        format!("The '{key}' option requires plugin/global_plugin/plugin_load to be defined first.")
    })?;
    let name = key
        .strip_prefix("plugin_opt_")
        .or_else(|| key.strip_prefix("auth_opt_"))
        .filter(|name| !name.is_empty())
        .ok_or_else(|| format!("Invalid '{key}' config option."))?;
    let value = args
        .rest_untrimmed_end()
        .ok_or_else(|| values::empty(key))?;
    let plugin = &mut draft.plugins[index];
    if plugin.kind == PluginKind::DynamicSecurity
        && name == "password_format"
        && StoredForm::from_version(value).is_none()
    {
        return Err(format!("Invalid {key} value \"{value}\" (use 2.0 or 2.1)."));
    }
    plugin.options.push((name.to_string(), value.to_string()));
    Ok(())
}

/// `log_*` options and `connection_messages`.
fn logging_option(
    draft: &mut Draft,
    at: At<'_>,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    let logging = &mut draft.config.logging;
    match key {
        "connection_messages" => logging.connection_messages = values::boolean(key, args)?,
        "log_timestamp" => logging.timestamp = values::boolean(key, args)?,
        "log_timestamp_format" => {
            if logging.timestamp_format.is_some() {
                return Err(duplicate(key));
            }
            logging.timestamp_format = Some(values::string(key, args)?.to_string());
        }
        "log_facility" => {
            let (token, facility) = values::integer(key, args)?;
            logging.facility = Some(
                u8::try_from(facility)
                    .ok()
                    .filter(|f| *f <= 7)
                    .ok_or_else(|| invalid(key, token))?,
            );
        }
        "log_type" => {
            let kind = values::word(key, args)?;
            let types = log_type(kind).ok_or_else(|| invalid(key, kind))?;
            if !draft.log_types_set || kind == "none" || kind == "all" {
                logging.types = types;
            } else {
                logging.types = logging.types.union(types);
            }
            draft.log_types_set = true;
        }
        _ => return log_dest(draft, at, args),
    }
    Ok(())
}

fn log_type(name: &str) -> Option<LogTypes> {
    Some(match name {
        "none" => LogTypes::NONE,
        "information" => LogTypes::INFORMATION,
        "notice" => LogTypes::NOTICE,
        "warning" => LogTypes::WARNING,
        "error" => LogTypes::ERROR,
        "debug" => LogTypes::DEBUG,
        "subscribe" => LogTypes::SUBSCRIBE,
        "unsubscribe" => LogTypes::UNSUBSCRIBE,
        "websockets" => LogTypes::WEBSOCKETS,
        "internal" => LogTypes::INTERNAL,
        "all" => LogTypes::ALL,
        _ => return None,
    })
}

/// `log_dest stderr|stdout [unbuffered]|syslog|topic|file <path>|none` (repeatable; the first
/// one replaces the default `stderr`).
fn log_dest(draft: &mut Draft, at: At<'_>, args: &mut Args<'_>) -> ValueResult<()> {
    let kind = values::word("log_dest", args)?;
    if !draft.log_dest_set {
        draft.config.logging.destinations.clear();
        draft.log_dest_set = true;
    }
    let destination = match kind {
        "none" => {
            draft.config.logging.destinations.clear();
            return Ok(());
        }
        "stderr" => LogDest::Stderr,
        "syslog" => LogDest::Syslog,
        "topic" => LogDest::Topic,
        "stdout" => LogDest::Stdout {
            unbuffered: args.next_token() == Some("unbuffered"),
        },
        "file" => {
            let destinations = &draft.config.logging.destinations;
            if destinations.iter().any(|d| matches!(d, LogDest::File(_))) {
                return Err("Duplicate \"log_dest file\" value.".into());
            }
            let path = args
                .rest_trimmed()
                .ok_or_else(|| "Empty \"log_dest file\" value in configuration.".to_string())?;
            LogDest::File(PathBuf::from(path))
        }
        "dlt" | "android" => {
            draft.warn(
                at,
                format!("log_dest \"{kind}\" is not supported by Culex and is ignored."),
            );
            return Ok(());
        }
        other => return Err(invalid("log_dest", other)),
    };
    let destinations = &mut draft.config.logging.destinations;
    if !destinations.contains(&destination) {
        destinations.push(destination);
    }
    Ok(())
}

/// `cluster_secret_file <path>`, `cluster_tls_certfile|keyfile|cafile <path>` (Culex): the
/// files that secure the cluster link, read at start-up.
fn cluster_link_option(
    draft: &mut Draft,
    at: At<'_>,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    let value = OptionFile {
        path: PathBuf::from(values::string(key, args)?),
        file: at.file.to_path_buf(),
        line: at.line,
    };
    let slot = match key {
        "cluster_secret_file" => &mut draft.config.cluster_link.secret_file,
        "cluster_tls_certfile" => &mut draft.cluster_tls.certfile,
        "cluster_tls_keyfile" => &mut draft.cluster_tls.keyfile,
        _ => &mut draft.cluster_tls.cafile,
    };
    if slot.is_some() {
        return Err(duplicate(key));
    }
    *slot = Some(value);
    Ok(())
}

/// Options that are neither listener, security, plugin nor logging options.
fn global_option(draft: &mut Draft, at: At<'_>, key: &str, args: &mut Args<'_>) -> ValueResult<()> {
    let config = &mut draft.config;
    let flag = |args: &mut Args<'_>| values::boolean(key, args);
    match key {
        "check_retain_source" => config.check_retain_source = flag(args)?,
        "enable_control_api" => config.enable_control_api = flag(args)?,
        "queue_qos0_messages" => config.queue_qos0_messages = flag(args)?,
        "retain_available" => config.retain_available = flag(args)?,
        "set_tcp_nodelay" => config.set_tcp_nodelay = flag(args)?,
        "upgrade_outgoing_qos" => config.upgrade_outgoing_qos = flag(args)?,
        "clientid_prefixes" => {
            config.clientid_prefixes = Some(values::string(key, args)?.to_string());
            draft.warn(
                at,
                "The 'clientid_prefixes' option is now deprecated and will be removed in a \
                 future version.",
            );
        }
        "user" => config.user = values::string(key, args)?.to_string(),
        "pid_file" => {
            if config.pid_file.is_some() {
                return Err(duplicate(key));
            }
            config.pid_file = Some(PathBuf::from(values::string(key, args)?));
        }
        "global_max_clients" => config.global_max_clients = count_limit(key, args)?,
        "global_max_connections" => config.global_max_connections = count_limit(key, args)?,
        "sys_interval" => config.sys_interval = narrow(key, values::ranged(key, args, 0, 65535)?)?,
        "threads" => config.threads = narrow(key, values::ranged(key, args, 0, THREADS_MAX)?)?,
        "reason_strings" => config.reason_strings = values::boolean(key, args)?,
        "cpu_affinity" => {
            let value = values::word(key, args)?;
            config.cpu_affinity = shards::cpu_affinity::Mode::parse(value)
                .ok_or_else(|| values::invalid(key, value))?;
        }
        "retain_expiry_interval" => retain_expiry_interval(draft, at, args)?,
        _ => return persistence_or_limit_option(draft, key, args),
    }
    Ok(())
}

/// Converts a range-checked integer to the field's type.
fn narrow<T: TryFrom<i64>>(key: &str, value: i64) -> ValueResult<T> {
    T::try_from(value).map_err(|_| invalid(key, value))
}

/// A count where negative means unlimited.
fn count_limit(key: &str, args: &mut Args<'_>) -> ValueResult<Option<u32>> {
    values::limit(key, args, i64::from(i32::MAX))?
        .map(|n| narrow(key, n))
        .transpose()
}

/// `retain_expiry_interval <minutes>`: at least 1, capped at 10,000,000 minutes like Mosquitto.
fn retain_expiry_interval(draft: &mut Draft, at: At<'_>, args: &mut Args<'_>) -> ValueResult<()> {
    let key = "retain_expiry_interval";
    let (_, mut minutes) = values::integer(key, args)?;
    if minutes < 1 {
        return Err("retain_expiry_interval must be >= 1.".into());
    }
    if minutes > 10_000_000 {
        draft.warn(at, "retain_expiry_interval being capped at 19 years.");
        minutes = 10_000_000;
    }
    let seconds = narrow::<u64>(key, minutes)? * 60;
    draft.config.retain_expiry_interval = Some(std::time::Duration::from_secs(seconds));
    Ok(())
}

fn persistence_or_limit_option(
    draft: &mut Draft,
    key: &str,
    args: &mut Args<'_>,
) -> ValueResult<()> {
    let persistence = &mut draft.config.persistence;
    let limits = &mut draft.config.limits;
    match key {
        "persistence" | "retained_persistence" => persistence.enabled = values::boolean(key, args)?,
        "persistence_file" => {
            if draft.persistence_file_set {
                return Err(duplicate(key));
            }
            persistence.file = values::string(key, args)?.to_string();
            draft.persistence_file_set = true;
        }
        "persistence_location" => {
            if persistence.location.is_some() {
                return Err(duplicate(key));
            }
            persistence.location = Some(PathBuf::from(values::string(key, args)?));
        }
        "autosave_interval" => {
            let (_, seconds) = values::integer(key, args)?;
            persistence.autosave_interval = narrow(key, seconds.clamp(0, i64::from(i32::MAX)))?;
        }
        "autosave_on_changes" => persistence.autosave_on_changes = values::boolean(key, args)?,
        "persistent_client_expiration" => {
            persistence.client_expiration = Some(values::duration(key, args)?);
        }
        "max_inflight_bytes" => limits.max_inflight_bytes = non_negative(key, args)?,
        "max_queued_bytes" => limits.max_queued_bytes = non_negative(key, args)?,
        "max_queued_messages" => {
            let (_, count) = values::integer(key, args)?;
            limits.max_queued_messages = narrow(key, count.clamp(0, i64::from(i32::MAX)))?;
        }
        "max_inflight_messages" => {
            let (_, count) = values::integer(key, args)?;
            if count > 65535 {
                return Err("max_inflight_messages must be <= 65535.".into());
            }
            // Mosquitto: negative or 65535 means "no maximum", stored as 0.
            limits.max_inflight_messages = if count < 0 {
                0
            } else {
                narrow::<u16>(key, count)? % 65535
            };
        }
        "max_keepalive" => {
            limits.max_keepalive = narrow(key, values::ranged(key, args, 10, 65535)?)?
        }
        "max_packet_size" => {
            let value = values::ranged(key, args, 20, i64::from(u32::MAX))?;
            limits.max_packet_size = Some(narrow(key, value)?);
        }
        "message_size_limit" => {
            limits.message_size_limit =
                narrow(key, values::ranged(key, args, 0, MQTT_MAX_PAYLOAD)?)?;
        }
        _ => return Err(format!("Unknown configuration variable \"{key}\".")),
    }
    Ok(())
}

/// An integer where negative values count as 0 (Mosquitto's byte limits).
fn non_negative(key: &str, args: &mut Args<'_>) -> ValueResult<u64> {
    let (_, value) = values::integer(key, args)?;
    narrow(key, value.max(0))
}
