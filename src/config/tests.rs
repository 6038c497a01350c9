//! Tests of the whole config pipeline (raw → resolve → finish), on in-memory files unless a
//! test is about the file system itself.
//!
//! Mosquitto behaviour these tests pin was checked by hand against Debian's Mosquitto 2.0.11
//! (`/usr/sbin/mosquitto -c FILE`, exit code 3 for each):
//! - `foo bar` → `Error: Unknown configuration variable "foo".` / `Error found at F:2.`
//! - `max_keepalive 5` (also 0, 70000) → `Error: Invalid max_keepalive value (5).`
//! - `max_packet_size 10` → `Error: Invalid max_packet_size value (10).`
//! - `allow_anonymous yes` → `Error: Invalid allow_anonymous value (yes).`; `1` is accepted
//! - `listener` → `Error: Empty listener value in configuration.`
//! - a tab-indented `listener` → `Error: Unknown configuration variable "\tlistener".`
//! - `persistence_location` twice → `Error: Duplicate persistence_location value in configuration.`
//! - `socket_domain ipv5` → `Error: Invalid socket_domain value "ipv5" in configuration.`
//! - `max_qos 3` → `Error: max_qos must be between 0 and 2 inclusive.`
//! - `mount_point foo/#` → `Error: Invalid mount_point 'foo/#'. Does it contain a wildcard character?`
//! - `persistent_client_expiration 5x` → `Error: Invalid persistent_client_expiration duration in configuration.`
//! - missing file → `Error: Unable to open config file F.` (no "found at" line); a directory
//!   → `Error: Config file F is a directory.`
//! - `include_dir` loads `00, A, a, B, b` in that order; an error in an included file prints
//!   `Error found at INC:N.` then `Error found at MAIN:M.`
//! - `allow_anonymous true` then `per_listener_settings true` →
//!   `Error: per_listener_settings must be set before any other security settings.`
//! - `max_connections 5` before any listener opens a default listener on 1883 (all interfaces).
//!
//! Where Culex deliberately differs (stricter numbers, 2.1's "requires a listener" errors,
//! refusal of bridges/PSK/foreign plugins) the tests say so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::options::{self, Class, OPTIONS};
use super::source::MemorySource;
use super::*;

const MAIN: &str = "/etc/mosquitto/mosquitto.conf";

fn parse(text: &str) -> Result<Config, ConfigError> {
    load_from(&MemorySource::new().with(MAIN, text), Path::new(MAIN))
}

fn parse_ok(text: &str) -> Config {
    match parse(text) {
        Ok(config) => config,
        Err(err) => panic!("config should load:\n{text}\n---\n{err}"),
    }
}

fn parse_err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(config) => panic!("config should fail:\n{text}\n---\n{config:#?}"),
        Err(err) => err,
    }
}

fn listener(config: &Config, port: u16) -> &Listener {
    match config.listeners.iter().find(|l| l.port == port) {
        Some(listener) => listener,
        None => panic!("no listener on port {port}: {:#?}", config.listeners),
    }
}

fn warnings(config: &Config) -> Vec<String> {
    config.warnings.iter().map(ToString::to_string).collect()
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh empty directory under the system temp dir, removed by the returned guard.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("culex-config-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------
// The seed configuration and the shipped files.

/// The product page's "Broker Configuration" must start a node unchanged.
#[test]
fn seed_cluster_node_config_loads_unchanged() {
    let path = manifest_dir().join("config/cluster-node.conf");
    let config = load(&path).expect("the seed config loads");
    // Culex always sets TCP_NODELAY.
    let warned: Vec<String> = warnings(&config)
        .iter()
        .filter_map(|w| w.split('"').nth(1).map(str::to_string))
        .collect();
    assert_eq!(warned, ["set_tcp_nodelay"], "{:?}", warnings(&config));
    assert!(!config.local_only);
    assert_eq!(config.listeners.len(), 2);
    let (public, admin) = (listener(&config, 1883), listener(&config, 1885));
    assert_eq!(public.bind, Bind::Any);
    assert!(!public.admin);
    assert!(admin.admin);
    assert_eq!(config.admin_listener().map(|l| l.port), Some(1885));
    for l in [public, admin] {
        assert!(!l.security.allow_anonymous);
        assert_eq!(l.protocol, Protocol::Mqtt);
    }
    let ha = config
        .plugin(PluginKind::HighAvailability)
        .expect("HA plugin");
    assert_eq!(ha.path, PathBuf::from("/usr/lib/cedalo_mosquitto_ha.so"));
    assert_eq!(ha.scope, PluginScope::Global);
    assert_eq!(config.plugins.len(), 1);
    assert!(config.enable_control_api);
    assert_eq!(config.limits.max_keepalive, 1800);
    assert_eq!(config.limits.max_packet_size, Some(100_000_000));
    assert!(config.set_tcp_nodelay);
    // The HA module brings dynamic security, its file in the persistence location, and
    // the control API; the admin listener is marked for the shards.
    let mut config = config;
    config.apply_overrides(&Overrides {
        persistence_location: Some(PathBuf::from("/mosquitto/data")),
        ..Overrides::default()
    });
    let dynsec = config
        .plugin(PluginKind::DynamicSecurity)
        .expect("dynamic security comes with the HA module");
    assert_eq!(
        dynsec.option("config_file"),
        Some("/mosquitto/data/dynamic-security.json")
    );
    assert!(config.control_api());
    let settings = crate::settings::settings_plan(&config).expect("settings");
    assert!(settings.control_api);
    let admin: Vec<bool> = settings.listeners.iter().map(|l| l.admin).collect();
    assert_eq!(admin, [false, true]);
}

/// An explicit dynamic-security plugin line wins over the one the HA module brings.
#[test]
fn explicit_dynsec_plugin_wins_over_the_ha_default() {
    let mut config = parse(
        "global_plugin /usr/lib/cedalo_mosquitto_ha.so\n\
         plugin /usr/lib/mosquitto_dynamic_security.so\n\
         plugin_opt_config_file /etc/ds.json\nlistener 1883\n",
    )
    .expect("parses");
    config.apply_overrides(&Overrides::default());
    let files: Vec<_> = config
        .plugins
        .iter()
        .filter(|p| p.kind == PluginKind::DynamicSecurity)
        .map(|p| p.option("config_file"))
        .collect();
    assert_eq!(files, [Some("/etc/ds.json")]);
}

/// Every file shipped in `config/` (and its subdirectories, such as the local cluster's
/// node configurations) loads without error.
#[test]
fn every_shipped_config_file_loads() {
    let mut count = 0;
    let mut dirs = vec![manifest_dir().join("config")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("config/ exists") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().and_then(|e| e.to_str()) == Some("conf") {
                if let Err(err) = load(&path) {
                    panic!("{} does not load:\n{err}", path.display());
                }
                count += 1;
            }
        }
    }
    assert!(
        count >= 6,
        "expected at least 6 shipped configs, found {count}"
    );
}

/// The shipped `mosquitto.conf` describes exactly the embedded default.
#[test]
fn shipped_mosquitto_conf_equals_the_embedded_default() {
    let mut shipped = load(&manifest_dir().join("config/mosquitto.conf")).expect("loads");
    let mut default = Config::embedded_default();
    for config in [&mut shipped, &mut default] {
        config.config_file = None;
        config.files.clear();
        for l in &mut config.listeners {
            l.file = PathBuf::new();
        }
    }
    assert!(shipped.warnings.is_empty(), "{:?}", warnings(&shipped));
    assert_eq!(shipped, default);
}

/// Every commented example in the shipped `mosquitto.conf` is a valid line: uncommenting all
/// of them at once still loads (so the documentation cannot drift from the parser).
#[test]
fn shipped_mosquitto_conf_examples_are_valid_when_uncommented() {
    let path = manifest_dir().join("config/mosquitto.conf");
    let text = std::fs::read_to_string(&path).expect("read");
    let uncommented: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .filter(|line| line.starts_with(|c: char| c.is_ascii_lowercase()))
        .collect();
    assert!(
        uncommented.len() > 60,
        "only {} examples",
        uncommented.len()
    );
    let source = MemorySource::new()
        .with(MAIN, uncommented.join("\n"))
        .with("/etc/mosquitto/conf.d/local.conf", "sys_interval 10\n");
    let config = load_from(&source, Path::new(MAIN)).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.warnings.is_empty(), "{:?}", warnings(&config));
    assert_eq!(config.listeners.len(), 6);
}

#[test]
fn shipped_no_auth_config_allows_anonymous_on_1883() {
    let config = load(&manifest_dir().join("config/mosquitto-no-auth.conf")).expect("loads");
    assert_eq!(config.listeners.len(), 1);
    let l = listener(&config, 1883);
    assert_eq!(l.bind, Bind::Any);
    assert!(l.security.allow_anonymous);
}

// ---------------------------------------------------------------------------------------
// Every option name is recognised.

/// The option names of Mosquitto 2.0.x and 2.1.x, from the `strcmp(token, ...)` chain in
/// `src/conf.c` (plus the `plugin_opt_`/`auth_opt_` prefixes). Kept apart from the option
/// table so an accidental deletion from the table fails this test.
const MOSQUITTO_OPTION_NAMES: &[&str] = &[
    "accept_protocol_versions",
    "acl_file",
    "address",
    "addresses",
    "allow_anonymous",
    "allow_duplicate_messages",
    "allow_zero_length_clientid",
    "auth_opt_x",
    "auth_plugin",
    "auth_plugin_deny_special_chars",
    "auto_id_prefix",
    "autosave_interval",
    "autosave_on_changes",
    "bind_address",
    "bind_interface",
    "bridge_alpn",
    "bridge_attempt_unsubscribe",
    "bridge_bind_address",
    "bridge_cafile",
    "bridge_capath",
    "bridge_certfile",
    "bridge_ciphers",
    "bridge_ciphers_tls1.3",
    "bridge_identity",
    "bridge_insecure",
    "bridge_keyfile",
    "bridge_max_packet_size",
    "bridge_max_topic_alias",
    "bridge_outgoing_retain",
    "bridge_protocol_version",
    "bridge_psk",
    "bridge_receive_maximum",
    "bridge_reload_type",
    "bridge_require_ocsp",
    "bridge_session_expiry_interval",
    "bridge_tcp_keepalive",
    "bridge_tcp_user_timeout",
    "bridge_tls_use_os_certs",
    "bridge_tls_version",
    "cafile",
    "capath",
    "certfile",
    "check_retain_source",
    "ciphers",
    "ciphers_tls1.3",
    "cleansession",
    "clientid",
    "clientid_prefixes",
    "connection",
    "connection_messages",
    "crlfile",
    "dhparamfile",
    "disable_client_cert_date_checks",
    "enable_control_api",
    "enable_proxy_protocol",
    "global_max_clients",
    "global_max_connections",
    "global_plugin",
    "http_dir",
    "idle_timeout",
    "include_dir",
    "keepalive_interval",
    "keyfile",
    "listener",
    "listener_allow_anonymous",
    "listener_auto_id_prefix",
    "local_cleansession",
    "local_clientid",
    "local_password",
    "local_username",
    "log_dest",
    "log_facility",
    "log_timestamp",
    "log_timestamp_format",
    "log_type",
    "max_connections",
    "max_inflight_bytes",
    "max_inflight_messages",
    "max_keepalive",
    "max_packet_size",
    "max_qos",
    "max_queued_bytes",
    "max_queued_messages",
    "max_topic_alias",
    "max_topic_alias_broker",
    "maximum_qos",
    "memory_limit",
    "message_size_limit",
    "mount_point",
    "notification_topic",
    "notifications",
    "notifications_local_only",
    "packet_buffer_size",
    "password",
    "password_file",
    "per_listener_settings",
    "persistence",
    "persistence_file",
    "persistence_location",
    "persistent_client_expiration",
    "pid_file",
    "plugin",
    "plugin_load",
    "plugin_opt_x",
    "plugin_use",
    "port",
    "protocol",
    "proxy_protocol_v2_require_tls",
    "psk_file",
    "psk_hint",
    "queue_qos0_messages",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "require_certificate",
    "restart_timeout",
    "retain_available",
    "retain_expiry_interval",
    "retained_persistence",
    "retry_interval",
    "round_robin",
    "set_tcp_nodelay",
    "socket_domain",
    "start_type",
    "sys_interval",
    "threshold",
    "tls_engine",
    "tls_engine_kpass_sha1",
    "tls_keyform",
    "tls_version",
    "topic",
    "try_private",
    "upgrade_outgoing_qos",
    "use_identity_as_username",
    "use_subject_as_username",
    "use_username_as_clientid",
    "user",
    "username",
    "websockets_headers_size",
    "websockets_log_level",
    "websockets_origin",
];

#[test]
fn every_mosquitto_option_name_is_in_the_table() {
    for name in MOSQUITTO_OPTION_NAMES {
        assert!(options::lookup(name).is_some(), "{name} is not recognised");
    }
    assert_eq!(
        options::lookup("threads").map(|s| s.since),
        Some(options::Since::Culex)
    );
    assert_eq!(
        options::lookup("admin_listener").map(|s| s.since),
        Some(options::Since::Culex)
    );
    assert_eq!(
        options::lookup("cpu_affinity").map(|s| s.since),
        Some(options::Since::Culex)
    );
    assert!(options::lookup("no_such_option").is_none());
    assert!(options::lookup("plugin_op").is_none());
}

#[test]
fn option_table_has_no_duplicates() {
    let mut names: Vec<&str> = OPTIONS.iter().map(|s| s.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len());
    assert_eq!(
        before,
        MOSQUITTO_OPTION_NAMES.len() + 4,
        "table = Mosquitto's names + threads + cpu_affinity + reason_strings + admin_listener"
    );
}

/// The (last) line of `spec`'s example that uses the option (1-based), and the example
/// without it.
fn option_line(spec: &options::OptionSpec) -> (usize, String) {
    let lines: Vec<&str> = spec.example.lines().collect();
    let index = lines
        .iter()
        .rposition(|line| {
            let key = line.split(' ').next().unwrap_or("");
            key == spec.name || (spec.prefix && key.starts_with(spec.name))
        })
        .unwrap_or_else(|| panic!("{}: the example does not use it", spec.name));
    let without: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, line)| *line)
        .collect();
    (index + 1, without.join("\n"))
}

fn example_source(text: &str) -> MemorySource {
    MemorySource::new()
        .with(MAIN, text)
        .with("/etc/mosquitto/conf.d/extra.conf", "sys_interval 5\n")
}

/// Every option name the parser dispatches on (`match key` arms in resolve.rs) is in the
/// option table: the table is the one list of what Culex does with each option, so a name
/// handled in the parser but missing there (never reached: unknown option) or the reverse
/// (the example tests fail: unknown to the parser) cannot go unnoticed.
#[test]
fn every_option_name_the_parser_knows_is_in_the_table() {
    let source = include_str!("resolve.rs");
    let mut names = vec!["include_dir".to_string()];
    for block in source.split("match key {").skip(1) {
        // The arms' patterns: lines that start directly inside this match.
        let mut depth = 1;
        for line in block.lines() {
            let at_arm = depth == 1;
            for c in line.chars() {
                depth += match c {
                    '{' | '(' => 1,
                    '}' | ')' => -1,
                    _ => 0,
                };
            }
            if depth <= 0 {
                break;
            }
            if !at_arm {
                continue;
            }
            let arm = line.trim();
            let arm = arm.strip_prefix("| ").unwrap_or(arm);
            let Some(name) = arm.strip_prefix('"').and_then(|a| a.split('"').next()) else {
                continue;
            };
            let option_like = name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.".contains(c));
            if option_like && !name.is_empty() {
                names.push(name.to_string());
            }
        }
    }
    assert!(names.len() > 80, "the scan found only {names:?}");
    for name in &names {
        assert!(
            options::lookup(name).is_some_and(|spec| spec.name == name),
            "the parser handles \"{name}\" but the option table does not list it"
        );
    }
}

/// docs/configuration.md, the audit table users read, lists every option of the table once
/// with its status, and names for each implemented option a test that exists.
#[test]
fn docs_configuration_lists_every_option_with_an_existing_test() {
    let root = manifest_dir();
    let docs = std::fs::read_to_string(root.join("docs/configuration.md")).expect("docs");
    let mut listed: Vec<(String, String)> = Vec::new();
    for row in docs.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        assert_eq!(cells.len(), 4, "{row}");
        let (status, tests) = (cells[1], cells[3].trim_end_matches(" |"));
        assert!(!tests.is_empty() && tests != "|", "no test named: {row}");
        for test in tests.split(", ") {
            let (file, name) = test
                .trim_matches('`')
                .split_once("::")
                .unwrap_or_else(|| panic!("`file::test` expected: {test}"));
            let path = if file.contains('/') {
                root.join(file)
            } else {
                root.join("tests/interop").join(file)
            };
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{row}: {}: {e}", path.display()));
            let defined = [
                format!("def {name}("),
                format!("fn {name}("),
                format!("\"{name}\""),
            ];
            assert!(
                defined.iter().any(|d| text.contains(d.as_str())),
                "{row}: no test {name} in {}",
                path.display()
            );
        }
        for name in cells[0].trim_start_matches("| ").split(", ") {
            listed.push((name.trim_matches('`').to_string(), status.to_string()));
        }
    }
    for spec in OPTIONS {
        let rows: Vec<&(String, String)> = listed.iter().filter(|(n, _)| n == spec.name).collect();
        assert_eq!(rows.len(), 1, "{} listed {} times", spec.name, rows.len());
        let status = match spec.class {
            Class::Implemented => "implemented",
            Class::Ignored(_) | Class::Unapplied(_) => "warned",
            Class::Refused(_) | Class::Bridge | Class::Psk => "refused",
        };
        assert_eq!(rows[0].1, status, "{}", spec.name);
    }
    assert_eq!(
        listed.len(),
        OPTIONS.len(),
        "names that are not options are listed"
    );
}

/// Every option's example loads: implemented ones cleanly, warned ones with their warning,
/// refused ones are refused naming the option and its line.
#[test]
fn every_option_example_has_its_documented_effect() {
    for spec in OPTIONS {
        let (line, _) = option_line(spec);
        let result = load_from(&example_source(spec.example), Path::new(MAIN));
        let name = spec.name;
        match spec.class {
            Class::Implemented => {
                let config = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let unapplied = format!("option \"{name}\" has no effect");
                assert!(
                    !warnings(&config).iter().any(|w| w.contains(&unapplied)),
                    "{name}: {:?}",
                    warnings(&config)
                );
            }
            Class::Ignored(why) | Class::Unapplied(why) => {
                let config = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                let expected = ConfigWarning::at(
                    Path::new(MAIN),
                    line,
                    format!("option \"{name}\" has no effect in Culex: {why}."),
                );
                assert!(
                    config.warnings.contains(&expected),
                    "{name}: {:?}",
                    warnings(&config)
                );
            }
            Class::Bridge | Class::Psk | Class::Refused(_) => {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{name} should be refused"));
                assert_eq!(err.line, line, "{name}");
                assert!(
                    err.message.contains(&format!("\"{name}\"")),
                    "{name}: {err}"
                );
                let reason = match spec.class {
                    Class::Bridge => "Bridge option",
                    Class::Psk => "TLS-PSK",
                    _ => "is not supported by Culex",
                };
                assert!(err.message.contains(reason), "{name}: {err}");
            }
        }
    }
}

/// No option is accepted in silence without its effect: an implemented option's example
/// changes what the broker is told ([`crate::effects`]) compared with the same example
/// without that line, and an option Culex only warns about changes nothing.
#[test]
fn every_option_has_the_effect_its_class_says() {
    let effects = |text: &str| match load_from(&example_source(text), Path::new(MAIN)) {
        Ok(config) => crate::effects::of(&config),
        Err(error) => format!("refused: {error}"),
    };
    for spec in OPTIONS {
        let (_, without) = option_line(spec);
        let (with, without) = (effects(spec.example), effects(&without));
        match spec.class {
            Class::Implemented => assert_ne!(
                with, without,
                "{}: implemented, but its example changes nothing the broker is told: \
                 parsed and never applied?",
                spec.name
            ),
            Class::Ignored(_) | Class::Unapplied(_) => assert_eq!(
                with, without,
                "{}: warned about as having no effect, but it has one",
                spec.name
            ),
            Class::Bridge | Class::Psk | Class::Refused(_) => {
                assert!(with.starts_with("refused"), "{}", spec.name)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Errors: exact text, file and line.

#[test]
fn unknown_option_prints_mosquittos_two_lines() {
    let err = parse_err("listener 1883\n\nfoo bar\n");
    assert_eq!(
        err.to_string(),
        "Error: Unknown configuration variable \"foo\".\nError found at /etc/mosquitto/mosquitto.conf:3."
    );
    assert_eq!((err.line, err.exit_code()), (3, 3));
}

/// Bad values name the option and value, at the right line.
#[test]
fn bad_values_are_errors_with_file_and_line() {
    let long_prefix = "x".repeat(51);
    let long_prefix_line = format!("auto_id_prefix {long_prefix}");
    let cases: &[(&str, &str, usize)] = &[
        ("listener abc", "Error: Invalid port value (abc).", 1),
        ("listener 70000", "Error: Invalid port value (70000).", 1),
        (
            "listener 1883\nlistener",
            "Error: Empty listener value in configuration.",
            2,
        ),
        (
            "listener 0",
            "Error: A listener with port 0 must provide a Unix socket path.",
            1,
        ),
        ("port 0", "Error: Invalid port value (0).", 1),
        (
            "max_keepalive 5",
            "Error: Invalid max_keepalive value (5).",
            1,
        ),
        (
            "max_keepalive 65536",
            "Error: Invalid max_keepalive value (65536).",
            1,
        ),
        (
            "max_keepalive abc",
            "Error: Invalid max_keepalive value (abc).",
            1,
        ),
        (
            "max_packet_size 10",
            "Error: Invalid max_packet_size value (10).",
            1,
        ),
        (
            "allow_anonymous yes",
            "Error: Invalid allow_anonymous value (yes).",
            1,
        ),
        (
            "allow_anonymous",
            "Error: Empty allow_anonymous value in configuration.",
            1,
        ),
        (
            "\tlistener 1883",
            "Error: Unknown configuration variable \"\tlistener\".",
            1,
        ),
        (
            "  # indented comment",
            "Error: Unknown configuration variable \"#\".",
            1,
        ),
        (
            "sys_interval -1",
            "Error: Invalid sys_interval value (-1).",
            1,
        ),
        ("threads many", "Error: Invalid threads value (many).", 1),
        (
            "cpu_affinity yes",
            "Error: Invalid cpu_affinity value (yes).",
            1,
        ),
        (
            "cpu_affinity",
            "Error: Empty cpu_affinity value in configuration.",
            1,
        ),
        (
            "persistent_client_expiration 5x",
            "Error: Invalid persistent_client_expiration duration in configuration.",
            1,
        ),
        ("log_dest foo", "Error: Invalid log_dest value (foo).", 1),
        (
            "log_dest file",
            "Error: Empty \"log_dest file\" value in configuration.",
            1,
        ),
        (
            "log_dest file /a\nlog_dest file /b",
            "Error: Duplicate \"log_dest file\" value.",
            2,
        ),
        ("log_type foo", "Error: Invalid log_type value (foo).", 1),
        (
            "log_facility 8",
            "Error: Invalid log_facility value (8).",
            1,
        ),
        (
            "listener 1883\nprotocol mqttsn",
            "Error: Invalid protocol value (mqttsn).",
            2,
        ),
        (
            "listener 1883\nsocket_domain ipv5",
            "Error: Invalid socket_domain value \"ipv5\" in configuration.",
            2,
        ),
        (
            "listener 1883\nmax_qos 3",
            "Error: max_qos must be between 0 and 2 inclusive.",
            2,
        ),
        (
            "listener 1883\nmount_point a/#",
            "Error: Invalid mount_point 'a/#'. Does it contain a wildcard character?",
            2,
        ),
        (
            "listener 1883\nmount_point",
            "Error: Empty mount_point value in configuration.",
            2,
        ),
        (
            "max_inflight_messages 70000",
            "Error: max_inflight_messages must be <= 65535.",
            1,
        ),
        (
            "message_size_limit 268435456",
            "Error: Invalid message_size_limit value (268435456).",
            1,
        ),
        (
            "persistence_location /a\npersistence_location /b",
            "Error: Duplicate persistence_location value in configuration.",
            2,
        ),
        (
            "pid_file /a\npid_file /b",
            "Error: Duplicate pid_file value in configuration.",
            2,
        ),
        (
            long_prefix_line.as_str(),
            "Error: auto_id_prefix length must be <= 50.",
            1,
        ),
        (
            "retain_expiry_interval 0",
            "Error: retain_expiry_interval must be >= 1.",
            1,
        ),
        (
            "listener 8883\ntls_version tlsv1.0",
            "Error: Unsupported tls_version \"tlsv1.0\".",
            2,
        ),
        (
            "listener 1883\naccept_protocol_versions 4,6",
            "Error: Invalid accept_protocol_versions value (6).",
            2,
        ),
        (
            "listener 1883\nmax_topic_alias 70000",
            "Error: Invalid max_topic_alias value (70000).",
            2,
        ),
        ("user", "Error: Empty user value in configuration.", 1),
    ];
    for (text, message, line) in cases {
        let err = parse_err(text);
        assert_eq!(
            (err.message.as_str(), err.line),
            (*message, *line),
            "config: {text:?}"
        );
        assert_eq!(err.file, PathBuf::from(MAIN));
    }
}

/// Options that need a listener, written before one (2.1's wording; 2.0 silently applied
/// some of them to a default listener that might never open).
#[test]
fn options_needing_a_listener_before_any_listener() {
    let cases = [
        (
            "per_listener_settings true\nallow_anonymous true\nlistener 1883",
            "allow_anonymous",
            2,
        ),
        (
            "per_listener_settings true\npassword_file /p",
            "password_file",
            2,
        ),
        (
            "per_listener_settings true\nplugin /usr/lib/mosquitto_acl_file.so",
            "plugin",
            2,
        ),
        ("mount_point tenant/", "mount_point", 1),
        ("cafile /ca.pem", "cafile", 1),
        ("admin_listener true", "admin_listener", 1),
        (
            "listener_allow_anonymous true",
            "listener_allow_anonymous",
            1,
        ),
        (
            "port 1883\naccept_protocol_versions 5",
            "accept_protocol_versions",
            2,
        ),
        (
            "plugin_load p /usr/lib/mosquitto_acl_file.so\nplugin_use p",
            "plugin_use",
            2,
        ),
    ];
    for (text, option, line) in cases {
        let err = parse_err(text);
        let message =
            format!("Error: The '{option}' option requires a listener to be defined first.");
        assert_eq!(
            (err.message.as_str(), err.line),
            (message.as_str(), line),
            "{text:?}"
        );
    }
}

#[test]
fn missing_config_file_is_error_without_a_line() {
    let err = load_from(&MemorySource::new(), Path::new("/nope.conf")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Error: Unable to open config file /nope.conf."
    );
    assert_eq!((err.line, err.exit_code()), (0, 3));
    let real = load(Path::new("/nonexistent/culex/test.conf")).unwrap_err();
    assert_eq!(
        real.to_string(),
        "Error: Unable to open config file /nonexistent/culex/test.conf."
    );
    let dir = TempDir::new("is-dir");
    let err = load(&dir.0).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Error: Config file {} is a directory.", dir.0.display())
    );
}

#[test]
fn per_listener_settings_must_come_first() {
    let err = parse_err("allow_anonymous true\nper_listener_settings true\nlistener 1883");
    assert_eq!(
        (err.message.as_str(), err.line),
        (
            "Error: per_listener_settings must be set before any other security settings.",
            2
        )
    );
    // Setting it to false late is harmless, and once true it cannot be turned off.
    assert!(!parse_ok("allow_anonymous true\nper_listener_settings false").per_listener_settings);
    let sticky = parse_ok("per_listener_settings true\nper_listener_settings false\nlistener 1883");
    assert!(sticky.per_listener_settings);
}

// ---------------------------------------------------------------------------------------
// Refusals: bridges, PSK, third-party plugins.

#[test]
fn bridges_are_refused_at_their_first_line() {
    let err =
        parse_err("listener 1883\nconnection cloud\naddress mqtt.example.com:8883\ntopic # out 1");
    assert_eq!(err.line, 2);
    assert_eq!(
        err.message,
        "Error: Bridge option \"connection\" is not supported by Culex: bridges are refused at \
         start-up rather than silently dropped."
    );
}

#[test]
fn tls_psk_is_refused() {
    for text in [
        "listener 8883\npsk_hint broker",
        "psk_file /etc/mosquitto/psk",
    ] {
        let err = parse_err(text);
        assert!(
            err.message.starts_with(
                "Error: TLS-PSK is not supported: rustls has no PSK; refusing to open this \
                 listener in plain text"
            ),
            "{err}"
        );
    }
}

#[test]
fn third_party_plugins_are_refused_by_name() {
    let err = parse_err(
        "listener 1883\nauth_plugin /usr/lib/mosquitto-go-auth/go-auth.so\nauth_opt_backends files",
    );
    assert_eq!(err.line, 2);
    assert_eq!(
        err.message,
        "Error: Unsupported plugin \"/usr/lib/mosquitto-go-auth/go-auth.so\": third-party plugins \
         need Mosquitto's C plugin ABI; Culex cannot load go-auth.so."
    );
}

// ---------------------------------------------------------------------------------------
// Plugins.

#[test]
fn plugins_are_recognised_by_basename_and_collect_their_options() {
    let config = parse_ok(
        "plugin /opt/lib/mosquitto_dynamic_security.so\n\
         plugin_opt_config_file /mosquitto/data/dynamic-security.json\n\
         auth_plugin /usr/lib/mosquitto_password_file.so\n\
         auth_opt_password_file /etc/mosquitto/passwd\n\
         auth_plugin_deny_special_chars false\n\
         global_plugin /x/y/mosquitto_acl_file.so\n\
         plugin_opt_acl_file  /etc/mosquitto/acl with spaces \n\
         listener 1883",
    );
    let kinds: Vec<PluginKind> = config.plugins.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![
            PluginKind::DynamicSecurity,
            PluginKind::PasswordFile,
            PluginKind::AclFile
        ]
    );
    let dynsec = config.plugin(PluginKind::DynamicSecurity).expect("dynsec");
    assert_eq!(
        dynsec.option("config_file"),
        Some("/mosquitto/data/dynamic-security.json")
    );
    assert_eq!((dynsec.line, dynsec.deny_special_chars), (1, true));
    let password = config
        .plugin(PluginKind::PasswordFile)
        .expect("password plugin");
    assert_eq!(
        password.option("password_file"),
        Some("/etc/mosquitto/passwd")
    );
    assert!(!password.deny_special_chars);
    let acl = config.plugin(PluginKind::AclFile).expect("acl plugin");
    assert_eq!(
        acl.option("acl_file"),
        Some("/etc/mosquitto/acl with spaces ")
    );
    assert!(config
        .plugins
        .iter()
        .all(|p| p.scope == PluginScope::Global));
    assert_eq!(config.plugins_for_listener(0).count(), 3);
}

#[test]
fn plugin_paths_take_the_rest_of_the_line() {
    let config = parse_ok("plugin  /opt/my plugins/mosquitto_dynamic_security.so  ");
    assert_eq!(
        config.plugins[0].path,
        PathBuf::from("/opt/my plugins/mosquitto_dynamic_security.so")
    );
}

#[test]
fn per_listener_plugins_belong_to_their_listener() {
    let config = parse_ok(
        "per_listener_settings true\n\
         listener 1883\n\
         listener 1884\n\
         plugin /usr/lib/mosquitto_dynamic_security.so\n\
         plugin_load acl /usr/lib/mosquitto_acl_file.so\n\
         plugin_opt_acl_file /etc/acl\n\
         listener 1885\n\
         plugin_use acl\n\
         global_plugin /usr/lib/cedalo_mosquitto_ha.so",
    );
    assert_eq!(config.plugins[0].scope, PluginScope::Listeners(vec![1]));
    assert_eq!(config.plugins[1].scope, PluginScope::Listeners(vec![2]));
    assert_eq!(config.plugins[1].name.as_deref(), Some("acl"));
    assert_eq!(config.plugins[1].option("acl_file"), Some("/etc/acl"));
    assert_eq!(config.plugins[2].scope, PluginScope::Global);
    let kinds = |i| {
        config
            .plugins_for_listener(i)
            .map(|p| p.kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(kinds(0), vec![PluginKind::HighAvailability]);
    assert_eq!(
        kinds(1),
        vec![PluginKind::DynamicSecurity, PluginKind::HighAvailability]
    );
    assert_eq!(
        kinds(2),
        vec![PluginKind::AclFile, PluginKind::HighAvailability]
    );
}

#[test]
fn plugin_option_errors() {
    let err = parse_err("plugin_opt_config_file /x.json");
    assert_eq!(
        err.message,
        "Error: The 'plugin_opt_config_file' option requires plugin/global_plugin/plugin_load to be defined first."
    );
    let err = parse_err("plugin /usr/lib/mosquitto_dynamic_security.so\nplugin_opt_config_file");
    assert_eq!(
        (err.message.as_str(), err.line),
        (
            "Error: Empty plugin_opt_config_file value in configuration.",
            2
        )
    );
    let err = parse_err("plugin /usr/lib/mosquitto_dynamic_security.so\nplugin_opt_ x");
    assert_eq!(err.message, "Error: Invalid 'plugin_opt_' config option.");
    let err =
        parse_err("plugin /usr/lib/mosquitto_dynamic_security.so\nplugin_opt_password_format 2.2");
    assert_eq!(
        (err.message.as_str(), err.line),
        (
            "Error: Invalid plugin_opt_password_format value \"2.2\" (use 2.0 or 2.1).",
            2
        )
    );
    for value in ["2.0", "2.1"] {
        let config = parse_ok(&format!(
            "plugin /usr/lib/mosquitto_dynamic_security.so\nplugin_opt_password_format {value}"
        ));
        let dynsec = config.plugin(PluginKind::DynamicSecurity).expect("plugin");
        assert_eq!(dynsec.option("password_format"), Some(value));
    }
    let err = parse_err("auth_plugin_deny_special_chars false");
    assert!(err.message.contains("without a plugin"), "{err}");
    let err = parse_err("listener 1883\nplugin_use nothing");
    assert_eq!(
        err.message,
        "Error: Plugin 'nothing' not previously loaded."
    );
    let err = parse_err("plugin_load a /usr/lib/mosquitto_acl_file.so\nplugin_load a /usr/lib/mosquitto_acl_file.so");
    assert_eq!(err.message, "Error: Duplicate plugin name 'a'.");
}

#[test]
fn plugin_load_without_plugin_use_warns() {
    let config = parse_ok("plugin_load acl /usr/lib/mosquitto_acl_file.so\nlistener 1883");
    assert_eq!(
        warnings(&config),
        vec![format!(
            "Warning: plugin 'acl' is loaded but no listener uses it (plugin_use). ({MAIN}:1)"
        )]
    );
}

// ---------------------------------------------------------------------------------------
// Listeners, scopes and defaults.

#[test]
fn no_listener_means_local_only_mode() {
    let config = parse_ok("# nothing but a comment\nsys_interval 5\n");
    assert!(config.local_only);
    let binds: Vec<(u16, &Bind)> = config.listeners.iter().map(|l| (l.port, &l.bind)).collect();
    assert_eq!(
        binds,
        vec![
            (1883, &Bind::Host("127.0.0.1".into())),
            (1883, &Bind::Host("::1".into()))
        ]
    );
    assert!(config.listeners.iter().all(|l| l.security.allow_anonymous));
    assert!(config.security.allow_anonymous);
    assert_eq!(LOCAL_ONLY_MESSAGE, "Starting in local only mode. Connections will only be possible from clients running on this machine.");
}

#[test]
fn local_only_respects_an_explicit_allow_anonymous_false() {
    let config = parse_ok("allow_anonymous false\npassword_file /etc/mosquitto/passwd");
    assert!(config.local_only);
    assert!(config.listeners.iter().all(|l| !l.security.allow_anonymous));
    assert!(config
        .listeners
        .iter()
        .all(|l| l.security.password_file.is_some()));
}

#[test]
fn embedded_default_is_local_only_on_1883() {
    let config = Config::embedded_default();
    assert!(config.local_only);
    assert_eq!(config.config_file, None);
    assert_eq!(config.listeners.len(), 2);
    assert!(config
        .listeners
        .iter()
        .all(|l| l.port == 1883 && l.security.allow_anonymous));
    let mut from_empty = parse_ok("");
    from_empty.config_file = None;
    from_empty.files.clear();
    from_empty
        .listeners
        .iter_mut()
        .for_each(|l| l.file = PathBuf::new());
    assert_eq!(from_empty, config);
}

#[test]
fn a_listener_turns_anonymous_off_by_default() {
    let config = parse_ok("listener 1883");
    assert!(!config.local_only);
    assert!(!listener(&config, 1883).security.allow_anonymous);
    let config = parse_ok("listener 1883\nallow_anonymous true");
    assert!(listener(&config, 1883).security.allow_anonymous);
}

#[test]
fn listener_addresses_and_unix_sockets() {
    let config = parse_ok(
        "listener 1883 127.0.0.2 # trailing comment\n\
         listener 1884 # comment\n\
         listener 0 /run/mosquitto.sock\n\
         listener 8080 ::1",
    );
    assert_eq!(listener(&config, 1883).bind, Bind::Host("127.0.0.2".into()));
    assert_eq!(listener(&config, 1884).bind, Bind::Any);
    assert_eq!(
        listener(&config, 0).bind,
        Bind::Unix("/run/mosquitto.sock".into())
    );
    assert_eq!(listener(&config, 8080).bind, Bind::Host("::1".into()));
    assert_eq!(listener(&config, 8080).line, 4);
}

#[test]
fn options_apply_to_the_listener_they_follow() {
    let config = parse_ok(
        "listener 1883\n\
         max_connections 10\n\
         listener 9001\n\
         protocol websockets\n\
         mount_point web/\n\
         max_qos 1\n\
         max_topic_alias 3\n\
         use_username_as_clientid true\n\
         socket_domain ipv6\n\
         bind_interface lo\n\
         http_dir /srv/www\n\
         websockets_origin https://a.example\n\
         websockets_origin https://b.example\n\
         accept_protocol_versions 4, 5\n\
         listener_auto_id_prefix web-\n\
         max_topic_alias_broker 7",
    );
    let mqtt = listener(&config, 1883);
    assert_eq!(mqtt.max_connections, Some(10));
    assert_eq!(mqtt.protocol, Protocol::Mqtt);
    let ws = listener(&config, 9001);
    assert_eq!(ws.max_connections, None);
    assert_eq!(ws.protocol, Protocol::WebSockets);
    assert_eq!(ws.mount_point.as_deref(), Some("web/"));
    assert_eq!(
        (ws.max_qos, ws.max_topic_alias, ws.max_topic_alias_broker),
        (1, 3, 7)
    );
    assert!(ws.use_username_as_clientid);
    assert_eq!(ws.socket_domain, Some(SocketDomain::Ipv6));
    assert_eq!(ws.bind_interface.as_deref(), Some("lo"));
    assert_eq!(ws.http_dir, Some(PathBuf::from("/srv/www")));
    assert_eq!(
        ws.websockets_origins,
        vec!["https://a.example", "https://b.example"]
    );
    assert_eq!(
        ws.accept_protocol_versions,
        ProtocolVersions {
            v3: false,
            v4: true,
            v5: true
        }
    );
    assert!(!ws.accept_protocol_versions.accepts(3) && ws.accept_protocol_versions.accepts(5));
    assert_eq!(ws.security.auto_id_prefix, "web-");
    assert_eq!(mqtt.security.auto_id_prefix, "auto-");
}

#[test]
fn legacy_port_and_bind_address_make_the_default_listener() {
    let config = parse_ok("port 1884\nbind_address 127.0.0.1\nmax_connections 5\nlistener 8883");
    assert_eq!(config.listeners.len(), 2);
    let default = listener(&config, 1884);
    assert_eq!(default.bind, Bind::Host("127.0.0.1".into()));
    assert_eq!(default.max_connections, Some(5));
    assert_eq!(
        warnings(&config),
        vec![
            format!("Warning: option \"port\" is deprecated; use \"listener\" instead. ({MAIN}:1)"),
            format!("Warning: option \"bind_address\" is deprecated; use \"listener\" instead. ({MAIN}:2)"),
        ]
    );
    let twice = parse_ok("port 1884\nport 1885");
    assert_eq!(twice.listeners.len(), 1);
    assert_eq!(twice.listeners[0].port, 1885);
    assert!(warnings(&twice)
        .iter()
        .any(|w| w.contains("Default listener port specified multiple times")));
}

/// Mosquitto 2.0.11 opens a default listener on 1883 (all interfaces) for a listener option
/// written before any listener; Culex does the same and says so.
#[test]
fn listener_option_before_any_listener_creates_the_default_listener() {
    let config = parse_ok("max_connections 5\nlistener 1884 127.0.0.1");
    assert_eq!(config.listeners.len(), 2);
    let default = listener(&config, 1883);
    assert_eq!(
        (default.bind.clone(), default.max_connections, default.line),
        (Bind::Any, Some(5), 1)
    );
    assert!(!default.security.allow_anonymous);
    assert_eq!(
        warnings(&config),
        vec![format!(
            "Warning: option \"max_connections\" comes before any listener, so it creates the \
             default listener on port 1883 (all interfaces), as Mosquitto does. Put a \
             \"listener\" line before it. ({MAIN}:1)"
        )]
    );
}

#[test]
fn the_same_socket_twice_is_an_error() {
    let err = parse_err("listener 1883\nlistener 1884\nlistener 1883");
    assert_eq!(
        (err.message.as_str(), err.line),
        (format!("Error: Duplicate listener on port 1883 (all interfaces); it is already defined at {MAIN}:1.").as_str(), 3)
    );
    let err = parse_err("max_connections 4\nlistener 1883");
    assert!(
        err.message
            .starts_with("Error: Duplicate listener on port 1883"),
        "{err}"
    );
    // Different addresses, or IPv4 and IPv6 halves of the same port, are fine.
    parse_ok("listener 1883 127.0.0.1\nlistener 1883 ::1");
    parse_ok("listener 1883\nsocket_domain ipv4\nlistener 1883\nsocket_domain ipv6");
    parse_ok("listener 0 /run/a.sock\nlistener 0 /run/b.sock");
}

#[test]
fn admin_listener_marks_only_its_listener() {
    let config = parse_ok(
        "listener 1883\nlistener 1885\nadmin_listener true\nlistener 1886\nadmin_listener false",
    );
    assert!(!listener(&config, 1883).admin);
    assert!(listener(&config, 1885).admin);
    assert!(!listener(&config, 1886).admin);
}

// ---------------------------------------------------------------------------------------
// Security placement: per_listener_settings.

#[test]
fn without_per_listener_settings_security_is_global_wherever_written() {
    let config = parse_ok(
        "listener 1883\n\
         allow_anonymous true\n\
         listener 1884\n\
         password_file /etc/mosquitto/passwd\n\
         acl_file /etc/mosquitto/acl\n\
         allow_zero_length_clientid false\n\
         auto_id_prefix node-",
    );
    for port in [1883, 1884] {
        let security = &listener(&config, port).security;
        assert!(security.allow_anonymous, "{port}");
        assert_eq!(
            security.password_file,
            Some(PathBuf::from("/etc/mosquitto/passwd"))
        );
        assert_eq!(security.acl_file, Some(PathBuf::from("/etc/mosquitto/acl")));
        assert!(!security.allow_zero_length_clientid);
        assert_eq!(security.auto_id_prefix, "node-");
    }
    assert_eq!(config.security, listener(&config, 1883).security);
}

#[test]
fn with_per_listener_settings_security_belongs_to_the_listener() {
    let config = parse_ok(
        "per_listener_settings true\n\
         listener 1883\n\
         allow_anonymous true\n\
         listener 1884\n\
         password_file /etc/mosquitto/passwd\n\
         auto_id_prefix b-",
    );
    let (a, b) = (
        &listener(&config, 1883).security,
        &listener(&config, 1884).security,
    );
    assert!(a.allow_anonymous);
    assert_eq!(
        (a.password_file.as_ref(), a.auto_id_prefix.as_str()),
        (None, "auto-")
    );
    assert!(!b.allow_anonymous);
    assert_eq!(
        b.password_file,
        Some(PathBuf::from("/etc/mosquitto/passwd"))
    );
    assert_eq!(b.auto_id_prefix, "b-");
}

#[test]
fn listener_allow_anonymous_overrides_the_global_value() {
    let config = parse_ok("allow_anonymous false\nlistener 1883\nlistener 1884 127.0.0.1\nlistener_allow_anonymous true");
    assert!(!listener(&config, 1883).security.allow_anonymous);
    assert!(listener(&config, 1884).security.allow_anonymous);
}

// ---------------------------------------------------------------------------------------
// include_dir.

fn include_source() -> MemorySource {
    MemorySource::new()
        .with("/inc/b.conf", "listener 1005")
        .with("/inc/B.conf", "listener 1004")
        .with("/inc/a.conf", "listener 1003")
        .with("/inc/A.conf", "listener 1002")
        .with("/inc/00.conf", "listener 1001")
        .with("/inc/notes.txt", "not a config")
        .with("/inc/.conf", "listener 9999")
}

#[test]
fn include_dir_loads_conf_files_in_mosquittos_order() {
    let source = include_source().with(MAIN, "listener 1000\ninclude_dir /inc\nlistener 1006");
    let config = load_from(&source, Path::new(MAIN)).expect("loads");
    let ports: Vec<u16> = config.listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports, vec![1000, 1001, 1002, 1003, 1004, 1005, 1006]);
    let files: Vec<&str> = config.files.iter().filter_map(|p| p.to_str()).collect();
    assert_eq!(
        files,
        vec![
            MAIN,
            "/inc/00.conf",
            "/inc/A.conf",
            "/inc/a.conf",
            "/inc/B.conf",
            "/inc/b.conf"
        ]
    );
    assert_eq!(listener(&config, 1003).file, PathBuf::from("/inc/a.conf"));
}

#[test]
fn several_include_dirs_load_in_the_order_written() {
    let source = MemorySource::new()
        .with("/one/z.conf", "listener 2001")
        .with("/two/a.conf", "listener 2002")
        .with(MAIN, "include_dir /one\ninclude_dir /two\n");
    let config = load_from(&source, Path::new(MAIN)).expect("loads");
    let ports: Vec<u16> = config.listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports, vec![2001, 2002]);
}

/// Each file starts without a current listener; the main file keeps its own afterwards.
#[test]
fn include_files_have_their_own_listener_scope() {
    let source = MemorySource::new()
        .with("/inc/x.conf", "max_connections 7\n")
        .with(MAIN, "listener 1884\ninclude_dir /inc\nmax_connections 5\n");
    let config = load_from(&source, Path::new(MAIN)).expect("loads");
    assert_eq!(listener(&config, 1884).max_connections, Some(5));
    let default = config
        .listeners
        .iter()
        .find(|l| l.file == Path::new("/inc/x.conf"))
        .expect("default");
    assert_eq!((default.port, default.max_connections), (1883, Some(7)));
    let source = MemorySource::new()
        .with("/inc/x.conf", "plugin_opt_config_file /x.json\n")
        .with(
            MAIN,
            "plugin /usr/lib/mosquitto_dynamic_security.so\ninclude_dir /inc\n",
        );
    let err = load_from(&source, Path::new(MAIN)).unwrap_err();
    assert_eq!(
        (err.file.as_path(), err.line),
        (Path::new("/inc/x.conf"), 1)
    );
}

#[test]
fn error_in_an_included_file_names_both_files() {
    let source = MemorySource::new()
        .with("/inc/a.conf", "sys_interval 5\nbogus 1\n")
        .with(MAIN, "listener 1883\ninclude_dir /inc\n");
    let err = load_from(&source, Path::new(MAIN)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Error: Unknown configuration variable \"bogus\".\nError found at /inc/a.conf:2.\n\
             Error found at {MAIN}:2."
        )
    );
}

#[test]
fn include_dir_errors() {
    let source = MemorySource::new().with(MAIN, "include_dir /missing");
    let err = load_from(&source, Path::new(MAIN)).unwrap_err();
    assert_eq!(
        (err.message.as_str(), err.line),
        ("Error: Unable to open include_dir '/missing'.", 1)
    );
    let source = MemorySource::new()
        .with("/inc/a.conf", "include_dir /other\n")
        .with("/other/b.conf", "listener 1\n")
        .with(MAIN, "include_dir /inc");
    let err = load_from(&source, Path::new(MAIN)).unwrap_err();
    assert_eq!(
        err.message,
        "Error: The include_dir option is only valid in the main configuration file."
    );
    assert_eq!(err.included_from, Some((PathBuf::from(MAIN), 1)));
    let err = parse_err("include_dir");
    assert_eq!(
        err.message,
        "Error: Empty include_dir value in configuration."
    );
}

/// The same rules on the real file system (directory listing order is arbitrary there).
#[test]
fn include_dir_on_the_file_system() {
    let dir = TempDir::new("include");
    for (name, port) in [
        ("b.conf", 5),
        ("B.conf", 4),
        ("a.conf", 3),
        ("A.conf", 2),
        ("00.conf", 1),
    ] {
        dir.write(
            &format!("conf.d/{name}"),
            &format!("listener {}\n", 3000 + port),
        );
    }
    dir.write("conf.d/readme.txt", "junk\n");
    let main = dir.write(
        "mosquitto.conf",
        &format!("include_dir {}\n", dir.0.join("conf.d").display()),
    );
    let config = load(&main).expect("loads");
    let ports: Vec<u16> = config.listeners.iter().map(|l| l.port).collect();
    assert_eq!(ports, vec![3001, 3002, 3003, 3004, 3005]);
}

// ---------------------------------------------------------------------------------------
// TLS.

#[test]
fn tls_listener_settings() {
    let config = parse_ok(
        "listener 8883\n\
         certfile /etc/tls/server.crt\n\
         keyfile /etc/tls/server.key\n\
         cafile /etc/tls/ca.crt\n\
         capath /etc/ssl/certs\n\
         crlfile /etc/tls/crl.pem\n\
         require_certificate true\n\
         use_identity_as_username true\n\
         use_subject_as_username false\n\
         tls_version tlsv1.3\n\
         ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256\n\
         ciphers_tls1.3 TLS_AES_128_GCM_SHA256\n\
         disable_client_cert_date_checks true\n\
         listener 1883",
    );
    let tls = listener(&config, 8883).tls.clone().expect("TLS listener");
    assert_eq!(tls.certfile, PathBuf::from("/etc/tls/server.crt"));
    assert_eq!(tls.keyfile, PathBuf::from("/etc/tls/server.key"));
    assert_eq!(tls.cafile, Some(PathBuf::from("/etc/tls/ca.crt")));
    assert_eq!(tls.capath, Some(PathBuf::from("/etc/ssl/certs")));
    assert_eq!(tls.crlfile, Some(PathBuf::from("/etc/tls/crl.pem")));
    assert!(
        tls.require_certificate && tls.use_identity_as_username && !tls.use_subject_as_username
    );
    assert_eq!(tls.min_version, Some(TlsVersion::Tls13));
    assert_eq!(
        tls.ciphers.as_deref(),
        Some("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256")
    );
    assert_eq!(tls.ciphers_tls13.as_deref(), Some("TLS_AES_128_GCM_SHA256"));
    assert!(tls.disable_client_cert_date_checks);
    assert_eq!(listener(&config, 1883).tls, None);
    assert_eq!(
        warnings(&config),
        vec![format!(
            "Warning: option \"disable_client_cert_date_checks\" has no effect in Culex: \
             expired or not yet valid client certificates are always refused. ({MAIN}:13)"
        )]
    );
}

#[test]
fn tls_needs_both_certfile_and_keyfile() {
    let err = parse_err("listener 1883\nlistener 8883\ncertfile /c.pem");
    assert_eq!(
        (err.message.as_str(), err.line),
        (
            "Error: Both certfile and keyfile must be provided to enable a TLS listener.",
            2
        )
    );
    let err = parse_err("listener 8883\ncafile /ca.pem");
    assert_eq!(
        err.message,
        "Error: cafile specified without certfile and keyfile."
    );
    let config = parse_ok("listener 8883\nrequire_certificate true");
    assert_eq!(
        warnings(&config),
        vec![format!(
            "Warning: option \"require_certificate\" has no effect: listener 8883 has no \
             certfile and keyfile, so it does not use TLS. ({MAIN}:1)"
        )]
    );
}

#[test]
fn tls_1_1_is_raised_to_1_2_with_a_warning() {
    let config = parse_ok("listener 8883\ncertfile /c\nkeyfile /k\ntls_version tlsv1.1");
    assert_eq!(
        listener(&config, 8883)
            .tls
            .as_ref()
            .and_then(|t| t.min_version),
        Some(TlsVersion::Tls12)
    );
    assert_eq!(
        warnings(&config),
        vec![format!("Warning: tls_version tlsv1.1 is not supported by rustls; TLS 1.2 is the minimum. ({MAIN}:4)")]
    );
}

// ---------------------------------------------------------------------------------------
// Global options: persistence, logging, limits.

#[test]
fn global_defaults_match_mosquitto() {
    let config = parse_ok("listener 1883");
    assert_eq!(config.user, "mosquitto");
    assert_eq!((config.sys_interval, config.threads), (10, 0));
    assert_eq!(config.persistence, Persistence::default());
    assert_eq!(
        config.persistence.database_path(),
        PathBuf::from("mosquitto.db")
    );
    assert_eq!(config.persistence.autosave_interval, 1800);
    assert_eq!(config.logging.destinations, vec![LogDest::Stderr]);
    assert_eq!(config.logging.types, LogTypes::DEFAULT);
    assert!(config.logging.connection_messages && config.logging.timestamp);
    let limits = &config.limits;
    assert_eq!(
        (limits.max_inflight_messages, limits.max_queued_messages),
        (20, 1000)
    );
    assert_eq!(
        (
            limits.max_keepalive,
            limits.max_packet_size,
            limits.message_size_limit
        ),
        (65535, None, 0)
    );
    assert!(config.retain_available && config.check_retain_source);
    assert!(!config.upgrade_outgoing_qos && !config.queue_qos0_messages && !config.set_tcp_nodelay);
}

#[test]
fn persistence_options() {
    let config = parse_ok(
        "persistence true\n\
         persistence_location /var/lib/mosquitto/\n\
         persistence_file broker.db\n\
         autosave_interval 60\n\
         autosave_on_changes true\n\
         persistent_client_expiration 2w",
    );
    let p = &config.persistence;
    assert!(p.enabled && p.autosave_on_changes);
    assert_eq!(
        p.database_path(),
        PathBuf::from("/var/lib/mosquitto/broker.db")
    );
    assert_eq!(p.autosave_interval, 60);
    assert_eq!(p.client_expiration, Some(Duration::from_secs(14 * 86_400)));
    assert!(parse_ok("retained_persistence true").persistence.enabled);
    assert_eq!(
        parse_ok("autosave_interval -5")
            .persistence
            .autosave_interval,
        0
    );
}

#[test]
fn logging_options() {
    let config = parse_ok(
        "log_dest stdout\n\
         log_dest file /var/log/mosquitto/mosquitto.log\n\
         log_dest topic\n\
         log_dest syslog\n\
         log_type error\n\
         log_type subscribe\n\
         connection_messages false\n\
         log_timestamp false\n\
         log_timestamp_format %Y-%m-%dT%H:%M:%S\n\
         log_facility 5",
    );
    let logging = &config.logging;
    assert_eq!(
        logging.destinations,
        vec![
            LogDest::Stdout { unbuffered: false },
            LogDest::File(PathBuf::from("/var/log/mosquitto/mosquitto.log")),
            LogDest::Topic,
            LogDest::Syslog,
        ]
    );
    assert_eq!(logging.types, LogTypes::ERROR.union(LogTypes::SUBSCRIBE));
    assert!(!logging.types.contains(LogTypes::INFORMATION));
    assert!(!logging.connection_messages && !logging.timestamp);
    assert_eq!(
        logging.timestamp_format.as_deref(),
        Some("%Y-%m-%dT%H:%M:%S")
    );
    assert_eq!(logging.facility, Some(5));
    let none = parse_ok("log_dest stderr\nlog_dest none\nlog_type all\nlog_type none");
    assert!(none.logging.destinations.is_empty());
    assert_eq!(none.logging.types, LogTypes::NONE);
    let all = parse_ok("log_type all");
    assert!(
        all.logging.types.contains(LogTypes::DEBUG)
            && all.logging.types.contains(LogTypes::WEBSOCKETS)
    );
    let dlt = parse_ok("log_dest dlt");
    assert!(
        warnings(&dlt)[0].contains("log_dest \"dlt\" is not supported by Culex and is ignored.")
    );
}

#[test]
fn limit_options() {
    let config = parse_ok(
        "max_inflight_messages 40\n\
         max_inflight_bytes 1000\n\
         max_queued_messages 5000\n\
         max_queued_bytes -1\n\
         max_packet_size 20\n\
         message_size_limit 268435455\n\
         max_keepalive 10\n\
         global_max_clients 10\n\
         global_max_connections -1\n\
         threads 3\n\
         sys_interval 0\n\
         retain_expiry_interval 2",
    );
    let l = &config.limits;
    assert_eq!((l.max_inflight_messages, l.max_inflight_bytes), (40, 1000));
    assert_eq!((l.max_queued_messages, l.max_queued_bytes), (5000, 0));
    assert_eq!(
        (l.max_packet_size, l.message_size_limit, l.max_keepalive),
        (Some(20), 268_435_455, 10)
    );
    assert_eq!(
        (config.global_max_clients, config.global_max_connections),
        (Some(10), None)
    );
    assert_eq!((config.threads, config.worker_threads(8)), (3, 3));
    assert_eq!(Config::embedded_default().worker_threads(8), 8);
    assert_eq!(config.sys_interval, 0);
    use shards::cpu_affinity::Mode;
    assert_eq!(config.cpu_affinity, Mode::Auto, "default");
    for (line, mode) in [
        ("cpu_affinity auto", Mode::Auto),
        ("cpu_affinity true", Mode::Pin),
        ("cpu_affinity false", Mode::Off),
    ] {
        assert_eq!(parse_ok(line).cpu_affinity, mode, "{line}");
    }
    assert_eq!(
        config.retain_expiry_interval,
        Some(Duration::from_secs(120))
    );
    // Mosquitto stores "no maximum" as 0 for negative values and 65535.
    assert_eq!(
        parse_ok("max_inflight_messages 65535")
            .limits
            .max_inflight_messages,
        0
    );
    assert_eq!(
        parse_ok("max_inflight_messages -1")
            .limits
            .max_inflight_messages,
        0
    );
}

#[test]
fn booleans_accept_digits_and_ignore_trailing_words() {
    let config =
        parse_ok("set_tcp_nodelay 1\nretain_available 0\nupgrade_outgoing_qos true # comment");
    assert!(config.set_tcp_nodelay && !config.retain_available && config.upgrade_outgoing_qos);
}

#[test]
fn string_options_take_the_rest_of_the_line() {
    let config = parse_ok("password_file   /etc/my passwords/file  \nuser   mqtt broker");
    assert_eq!(
        config.security.password_file,
        Some(PathBuf::from("/etc/my passwords/file"))
    );
    assert_eq!(config.user, "mqtt broker");
}

#[test]
fn ignored_options_warn_with_their_line() {
    let config = parse_ok("listener 1883\nmemory_limit 1000000\nretry_interval 20");
    assert_eq!(
        warnings(&config),
        vec![
            format!(
                "Warning: option \"memory_limit\" has no effect in Culex: no memory limit is \
                 enforced yet. ({MAIN}:2)"
            ),
            format!(
                "Warning: option \"retry_interval\" has no effect in Culex: obsolete since \
                 Mosquitto 1.5: QoS 1/2 messages are retried on reconnection, as in Culex. \
                 ({MAIN}:3)"
            ),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Command-line overrides and reload.

#[test]
fn ports_from_the_command_line_only_replace_local_only_listeners() {
    let overrides = Overrides {
        ports: vec![1884, 1885],
        ..Overrides::default()
    };
    let mut local = parse_ok("");
    local.apply_overrides(&overrides);
    let binds: Vec<(u16, String)> = local
        .listeners
        .iter()
        .map(|l| (l.port, format!("{:?}", l.bind)))
        .collect();
    assert_eq!(binds.len(), 4);
    assert!(local.listeners.iter().all(|l| l.security.allow_anonymous));
    assert_eq!(binds[0], (1884, "Host(\"127.0.0.1\")".to_string()));
    assert_eq!(binds[3], (1885, "Host(\"::1\")".to_string()));
    let mut configured = parse_ok("listener 1883");
    configured.apply_overrides(&overrides);
    assert_eq!(configured.listeners.len(), 1);
    assert_eq!(
        warnings(&configured),
        vec!["Warning: -p is ignored because the configuration file defines listeners."]
    );
}

#[test]
fn verbose_quiet_daemon_and_persistence_location_overrides() {
    let mut config = parse_ok("log_type error\npersistence_location /var/lib/mosquitto");
    config.apply_overrides(&Overrides {
        verbose: true,
        daemon: true,
        ..Overrides::default()
    });
    assert_eq!(config.logging.types, LogTypes::ALL);
    assert!(config.daemon);
    config.apply_overrides(&Overrides {
        verbose: true,
        quiet: true,
        persistence_location: Some(PathBuf::from("/data")),
        ..Overrides::default()
    });
    assert_eq!(config.logging.types, LogTypes::NONE);
    assert_eq!(config.persistence.location, Some(PathBuf::from("/data")));
}

#[test]
fn reload_applies_security_limits_and_logging_but_not_listeners_or_plugins() {
    let old = parse_ok(
        "listener 1883\nlistener 8883\ncertfile /c1\nkeyfile /k1\n\
         plugin /usr/lib/mosquitto_dynamic_security.so\n\
         persistence_location /a\nmax_keepalive 60",
    );
    let new = parse_ok(
        "listener 1883\nmax_connections 9\nlistener 8883\ncertfile /c2\nkeyfile /k2\nlistener 1884\n\
         allow_anonymous true\npassword_file /p\n\
         persistence_location /b\nmax_keepalive 120\nlog_type all\ncpu_affinity false",
    );
    let reload = old.reloadable_from(&new);
    let config = &reload.config;
    assert_eq!(config.listeners.len(), 2, "no listener is added on reload");
    assert_eq!(
        listener(config, 1883).max_connections,
        None,
        "listener settings need a restart"
    );
    assert!(listener(config, 1883).security.allow_anonymous);
    assert_eq!(
        listener(config, 1883).security.password_file,
        Some(PathBuf::from("/p"))
    );
    assert_eq!(
        listener(config, 8883)
            .tls
            .as_ref()
            .map(|t| t.certfile.clone()),
        Some(PathBuf::from("/c2"))
    );
    assert_eq!(config.limits.max_keepalive, 120);
    assert_eq!(config.logging.types, LogTypes::ALL);
    assert_eq!(config.persistence.location, Some(PathBuf::from("/a")));
    assert_eq!(config.plugins, old.plugins);
    assert_eq!(
        config.cpu_affinity, old.cpu_affinity,
        "threads are not re-pinned"
    );
    for applied in [
        "limits",
        "logging",
        "security",
        "listener 1883: security",
        "listener 8883: tls",
    ] {
        assert!(
            reload.applied.iter().any(|a| a == applied),
            "{applied}: {:?}",
            reload.applied
        );
    }
    for restart in [
        "listeners",
        "plugins",
        "persistence_location",
        "cpu_affinity",
        "listener 1883: settings",
    ] {
        assert!(
            reload.needs_restart.iter().any(|a| a == restart),
            "{restart}: {:?}",
            reload.needs_restart
        );
    }
    let same = old.reloadable_from(&old);
    assert!(same.applied.is_empty() && same.needs_restart.is_empty());
    assert_eq!(same.config, old);
}
