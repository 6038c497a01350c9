//! Every limit of the dynamic-security core in one place (spec §14), with the Mosquitto
//! source of each number. Used by `json`, `validate`, `control` and `acl`.

/// Longest name (username, group, role, client id) accepted by Mosquitto's UTF-8
/// checker; one byte more answers "… not valid UTF-8" [g:230, g:232].
pub const NAME_BYTES_MAX: usize = 65_536;

/// Longest ACL topic accepted by addRoleACL/removeRoleACL ("Invalid ACL topic" beyond)
/// (golden capture 233).
pub const ACL_TOPIC_BYTES_MAX: usize = 65_535;

/// Most `/` separators in an ACL topic (Mosquitto's `TOPIC_HIERARCHY_LIMIT`) [g:235, g:236].
pub const ACL_TOPIC_SEPARATORS_MAX: usize = 200;

/// cJSON's `CJSON_NESTING_LIMIT`: deeper documents are "not valid JSON".
pub const JSON_DEPTH_MAX: usize = 1000;

/// A response longer than the MQTT maximum packet payload is dropped, as Mosquitto does.
pub const RESPONSE_BYTES_MAX: usize = 268_435_455;

/// `plugin_opt_password_init_file`: only the first line, read through a 1024-byte
/// `fgets` buffer, is used (spec §13.2).
pub const INIT_PASSWORD_BYTES_MAX: usize = 1_023;

/// `MOSQUITTO_DYNSEC_PASSWORD` must have at least this many bytes (spec §13.2).
pub const ENV_PASSWORD_BYTES_MIN: usize = 12;

/// Length of generated bootstrap passwords (spec §13.2).
pub const GENERATED_PASSWORD_CHARS: usize = 20;

const _: () = assert!(ACL_TOPIC_BYTES_MAX < NAME_BYTES_MAX);
