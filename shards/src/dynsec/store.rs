//! The `dynamic-security.json` file (spec §11): loading files written by Mosquitto 2.0
//! (`password`/`salt`/`iterations`) and 2.1 (`encoded_password`) with 2.0's tolerant
//! rules, and writing the 2.0.11 layout byte for byte (cJSON formatted print, keys in
//! Mosquitto's order, no trailing newline).
//!
//! New passwords keep the format the file already uses ([`file_form`]): a 2.0 file stays
//! readable by Mosquitto 2.0, a 2.1 file stays 2.1. A file without passwords gets
//! [`PasswordPolicy::default`] (2.0's format) unless the operator chose otherwise.
//!
//! Called at broker start (`load_file`, or `bootstrap` when the file is missing) and by
//! the control hook after every changed request (`serialise` + `atomic_file::save_atomic`).
//! Pure apart from `load_file`.

use std::io;
use std::path::Path;

use super::control::render::{link, push_texts, role_links};
use super::json::{self, Value};
use super::json_out::{to_formatted, Out};
use super::model::{insert_role_link, Client, DefaultAccess, DynsecState, Group, Role};
use super::password::{PasswordHash, PasswordPolicy, StoredForm};

/// Something noteworthy found while loading, for the broker log. Loading goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadWarning(pub String);

/// Why a file could not be loaded at all.
#[derive(Debug)]
pub enum LoadError {
    /// Occurs when the file cannot be read (Mosquitto: "File is not readable - check
    /// permissions."). A missing file is reported as this with `NotFound`; callers that
    /// want 2.1's auto-initialisation call `bootstrap` first.
    Unreadable(io::Error),
    /// Occurs when the content is not JSON (Mosquitto: "File is not valid JSON.").
    NotJson(json::ParseError),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Unreadable(e) => write!(f, "file is not readable: {e}"),
            LoadError::NotJson(e) => write!(f, "file is not valid JSON: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Loads one element of a top-level list into the state.
type Loader = fn(&mut DynsecState, &Value, &mut Vec<LoadWarning>);

/// Reads and parses `path` (see [`load`]).
pub fn load_file(path: &Path) -> Result<(DynsecState, Vec<LoadWarning>), LoadError> {
    let bytes = std::fs::read(path).map_err(LoadError::Unreadable)?;
    load(&bytes)
}

/// Builds a state from file content with 2.0.11's loading rules (spec §11.4): keys are
/// case-insensitive; a zero-length file is an empty state; roles load first, then clients,
/// groups and the anonymous group; a top-level list that is present but not an array stops
/// loading there; entries without a name and links to unknown objects are dropped; later
/// duplicates are ignored (first wins, 2.0.16+). Password triples and `encoded_password`
/// are both read; an unusable password leaves the client without one (2.1). New passwords
/// will be hashed in the form the file uses ([`file_form`], 2.0's when it has none).
pub fn load(bytes: &[u8]) -> Result<(DynsecState, Vec<LoadWarning>), LoadError> {
    let (mut state, warnings) = load_entries(bytes)?;
    let form = file_form(&state).unwrap_or(PasswordPolicy::default().form);
    state.set_password_policy(PasswordPolicy::for_form(form));
    Ok((state, warnings))
}

/// The password format of a loaded file: 2.0's triple as soon as one client has one (the
/// file came from Mosquitto 2.0, possibly with passwords another broker added since),
/// else 2.1's `encoded_password` when a client has one, else `None` (no passwords).
pub fn file_form(state: &DynsecState) -> Option<StoredForm> {
    let mut form = None;
    for hash in state.clients.values().filter_map(|c| c.password.as_ref()) {
        if hash.triple().is_some() {
            return Some(StoredForm::Triple);
        }
        form = Some(StoredForm::Encoded);
    }
    form
}

/// Usernames whose password Mosquitto 2.0 could not check if the file went back to it
/// (see [`PasswordHash::readable_by_2_0`]), in file order.
pub fn unreadable_by_2_0(state: &DynsecState) -> Vec<&[u8]> {
    state
        .clients
        .iter()
        .filter(|(_, c)| c.password.as_ref().is_some_and(|h| !h.readable_by_2_0()))
        .map(|(name, _)| name.as_slice())
        .collect()
}

fn load_entries(bytes: &[u8]) -> Result<(DynsecState, Vec<LoadWarning>), LoadError> {
    let mut state = DynsecState::new();
    let mut warnings = Vec::new();
    if bytes.is_empty() {
        return Ok((state, warnings));
    }
    let tree = json::parse(bytes).map_err(LoadError::NotJson)?;
    if let Some(access) = tree.get("defaultACLAccess") {
        for name in DefaultAccess::NAMES {
            let allow = access.get(name).and_then(Value::as_bool).unwrap_or(false);
            state.default_access.set_by_name(name.as_bytes(), allow);
        }
    }
    let loaders: [(&str, Loader); 3] = [
        ("roles", load_role),
        ("clients", load_client),
        ("groups", load_group),
    ];
    for (key, loader) in loaders {
        match tree.get(key) {
            None => {}
            Some(Value::Array(items)) => {
                for item in items {
                    loader(&mut state, item, &mut warnings);
                }
            }
            Some(_) => {
                warnings.push(LoadWarning(format!(
                    "'{key}' is not an array; loading stopped"
                )));
                return Ok((state, warnings));
            }
        }
    }
    if let Some(name) = tree.get("anonymousGroup").and_then(Value::as_bytes) {
        if state.groups.contains_key(name) {
            state.anonymous_group = Some(name.to_vec());
        } else {
            warnings.push(LoadWarning(format!(
                "anonymousGroup {:?} does not exist",
                String::from_utf8_lossy(name)
            )));
        }
    }
    Ok((state, warnings))
}

fn text(item: &Value, key: &str) -> Option<Vec<u8>> {
    item.get(key).and_then(Value::as_bytes).map(<[u8]>::to_vec)
}

fn named<'a>(
    item: &'a Value,
    key: &str,
    kind: &str,
    warnings: &mut Vec<LoadWarning>,
) -> Option<&'a [u8]> {
    let name = item.get(key).and_then(Value::as_bytes);
    if name.is_none() {
        warnings.push(LoadWarning(format!(
            "a {kind} without a string '{key}' was ignored"
        )));
    }
    name
}

fn duplicate(kind: &str, name: &[u8], warnings: &mut Vec<LoadWarning>) {
    warnings.push(LoadWarning(format!(
        "duplicate {kind} {:?} ignored (the first one is kept)",
        String::from_utf8_lossy(name)
    )));
}

fn load_role(state: &mut DynsecState, item: &Value, warnings: &mut Vec<LoadWarning>) {
    let Some(rolename) = named(item, "rolename", "role", warnings) else {
        return;
    };
    if state.roles.contains_key(rolename) {
        return duplicate("role", rolename, warnings);
    }
    let mut role = Role {
        textname: text(item, "textname"),
        textdescription: text(item, "textdescription"),
        ..Role::default()
    };
    if let Some(acls) = item.get("acls").and_then(super::control::lenient_acls) {
        role.replace_acls(acls);
    }
    state.roles.insert(rolename.to_vec(), role);
}

fn load_password(
    item: &Value,
    username: &[u8],
    warnings: &mut Vec<LoadWarning>,
) -> Option<PasswordHash> {
    if let Some(encoded) = item.get("encoded_password").and_then(Value::as_bytes) {
        let hash = PasswordHash::from_encoded(encoded);
        if matches!(hash, PasswordHash::Opaque(_)) {
            warnings.push(LoadWarning(format!(
                "client {:?}: encoded_password not usable here; kept but no login possible",
                String::from_utf8_lossy(username)
            )));
        }
        return Some(hash);
    }
    let password = item.get("password").and_then(Value::as_bytes)?;
    let salt = item.get("salt").and_then(Value::as_bytes)?;
    let iterations = item.get("iterations").and_then(Value::as_i64)?;
    let hash = PasswordHash::from_triple(password, salt, iterations);
    if hash.is_none() {
        warnings.push(LoadWarning(format!(
            "client {:?}: unusable password/salt/iterations; loaded without a password",
            String::from_utf8_lossy(username)
        )));
    }
    hash
}

fn load_client(state: &mut DynsecState, item: &Value, warnings: &mut Vec<LoadWarning>) {
    let Some(username) = named(item, "username", "client", warnings) else {
        return;
    };
    if state.clients.contains_key(username) {
        return duplicate("client", username, warnings);
    }
    let mut client = Client {
        clientid: text(item, "clientid"),
        textname: text(item, "textname"),
        textdescription: text(item, "textdescription"),
        disabled: item
            .get("disabled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        password: load_password(item, username, warnings),
        ..Client::default()
    };
    for link in item
        .get("roles")
        .and_then(Value::as_array)
        .unwrap_or_default()
    {
        let Some(rolename) = link.get("rolename").and_then(Value::as_bytes) else {
            continue;
        };
        if state.roles.contains_key(rolename) {
            let priority = link.get("priority").and_then(Value::as_i32).unwrap_or(-1);
            insert_role_link(&mut client.roles, rolename, priority);
        }
    }
    state.clients.insert(username.to_vec(), client);
}

fn load_group(state: &mut DynsecState, item: &Value, warnings: &mut Vec<LoadWarning>) {
    let Some(groupname) = named(item, "groupname", "group", warnings) else {
        return;
    };
    if state.groups.contains_key(groupname) {
        return duplicate("group", groupname, warnings);
    }
    let mut group = Group {
        textname: text(item, "textname"),
        textdescription: text(item, "textdescription"),
        ..Group::default()
    };
    for link in item
        .get("roles")
        .and_then(Value::as_array)
        .unwrap_or_default()
    {
        let Some(rolename) = link.get("rolename").and_then(Value::as_bytes) else {
            continue;
        };
        if state.roles.contains_key(rolename) {
            let priority = link.get("priority").and_then(Value::as_i32).unwrap_or(-1);
            insert_role_link(&mut group.roles, rolename, priority);
        }
    }
    state.groups.insert(groupname.to_vec(), group);
    for link in item
        .get("clients")
        .and_then(Value::as_array)
        .unwrap_or_default()
    {
        let Some(username) = link.get("username").and_then(Value::as_bytes) else {
            continue;
        };
        if state.clients.contains_key(username) {
            let priority = link.get("priority").and_then(Value::as_i32).unwrap_or(-1);
            state.add_member(username, groupname, priority);
        }
    }
}

/// The file content for `state`, exactly as Mosquitto 2.0.11 formats it (spec §11.3).
/// Passwords keep their form: triples stay triples (after `roles`), 2.1 hashes are written
/// as `encoded_password` (after `roles`, as 2.1 does).
pub fn serialise(state: &DynsecState) -> Vec<u8> {
    let access = DefaultAccess::NAMES
        .iter()
        .zip(state.default_access.values())
        .map(|(name, allow)| (*name, Out::Bool(allow)))
        .collect();
    let mut top = vec![("defaultACLAccess", Out::Object(access))];
    let clients = state
        .clients
        .iter()
        .map(|(name, c)| client_entry(name, c))
        .collect();
    top.push(("clients", Out::Array(clients)));
    let groups = state
        .groups
        .iter()
        .map(|(name, g)| group_entry(name, g))
        .collect();
    top.push(("groups", Out::Array(groups)));
    if let Some(anonymous) = &state.anonymous_group {
        top.push(("anonymousGroup", Out::str(anonymous)));
    }
    let roles = state
        .roles
        .iter()
        .map(|(name, r)| role_entry(name, r))
        .collect();
    top.push(("roles", Out::Array(roles)));
    to_formatted(&Out::Object(top))
}

fn client_entry(username: &[u8], client: &Client) -> Out {
    let mut members = vec![("username", Out::str(username))];
    if let Some(clientid) = &client.clientid {
        members.push(("clientid", Out::str(clientid)));
    }
    push_texts(&mut members, &client.textname, &client.textdescription);
    if client.disabled {
        members.push(("disabled", Out::Bool(true)));
    }
    members.push(("roles", role_links(client.roles())));
    if let Some(hash) = &client.password {
        if let Some((password, salt, iterations)) = hash.triple() {
            members.push(("password", Out::Str(password)));
            members.push(("salt", Out::Str(salt)));
            members.push(("iterations", Out::Int(i64::from(iterations))));
        } else if let Some(encoded) = hash.encoded() {
            members.push(("encoded_password", Out::Str(encoded)));
        }
    }
    Out::Object(members)
}

fn group_entry(groupname: &[u8], group: &Group) -> Out {
    let mut members = vec![("groupname", Out::str(groupname))];
    push_texts(&mut members, &group.textname, &group.textdescription);
    members.push(("roles", role_links(group.roles())));
    let clients = group
        .clients()
        .iter()
        .map(|m| link("username", &m.username, m.priority))
        .collect();
    members.push(("clients", Out::Array(clients)));
    Out::Object(members)
}

fn role_entry(rolename: &[u8], role: &Role) -> Out {
    let mut members = vec![("rolename", Out::str(rolename))];
    push_texts(&mut members, &role.textname, &role.textdescription);
    members.push(("acls", super::control::render::acls(role)));
    Out::Object(members)
}
