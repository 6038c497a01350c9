//! Reading command fields with Mosquitto's typing rules (spec §5): required strings,
//! optional strings that must be strings when present (create commands), lenient strings
//! that are ignored when mistyped (modify commands), integers and booleans that fall back
//! to a default, and the shared `roles` / `groups` / `clients` list parsers.
//!
//! Called only by the command handlers in `control`.

use crate::dynsec::json::Value;
use crate::dynsec::model::{DynsecState, Name};

/// A string field that must be present (`Invalid/missing …` otherwise).
pub(super) fn required_str<'a>(command: &'a Value, key: &str) -> Option<&'a [u8]> {
    command.get(key).and_then(Value::as_bytes)
}

/// An optional string: `Ok(None)` when absent, `Err(())` when present with another type.
pub(super) fn optional_str<'a>(command: &'a Value, key: &str) -> Result<Option<&'a [u8]>, ()> {
    match command.get(key) {
        None => Ok(None),
        Some(Value::String(bytes)) => Ok(Some(bytes)),
        Some(_) => Err(()),
    }
}

/// A string that is used when it is one and silently ignored otherwise.
pub(super) fn lenient_str<'a>(command: &'a Value, key: &str) -> Option<&'a [u8]> {
    required_str(command, key)
}

/// An integer, or `default` when absent or not a number.
pub(super) fn int_or(command: &Value, key: &str, default: i32) -> i32 {
    command.get(key).and_then(Value::as_i32).unwrap_or(default)
}

/// A boolean, or `default` when absent or not a boolean.
pub(super) fn bool_or(command: &Value, key: &str, default: bool) -> bool {
    command.get(key).and_then(Value::as_bool).unwrap_or(default)
}

/// Why a `roles` list was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RoleListError {
    /// Not an array, or an element without a string `rolename`.
    Invalid,
    /// An element names a role that does not exist.
    NotFound,
}

/// The `roles` list of createClient/modifyClient/createGroup/modifyGroup: `None` when
/// absent; otherwise every element must name an existing role. Elements are examined in
/// order and the first problem decides; a role listed twice keeps its first entry.
pub(super) fn role_list(
    state: &DynsecState,
    command: &Value,
) -> Result<Option<Vec<(Name, i32)>>, RoleListError> {
    let Some(roles) = command.get("roles") else {
        return Ok(None);
    };
    let items = roles.as_array().ok_or(RoleListError::Invalid)?;
    let mut list: Vec<(Name, i32)> = Vec::with_capacity(items.len());
    for item in items {
        let rolename = required_str(item, "rolename").ok_or(RoleListError::Invalid)?;
        if !state.roles.contains_key(rolename) {
            return Err(RoleListError::NotFound);
        }
        if !list.iter().any(|(name, _)| name == rolename) {
            list.push((rolename.to_vec(), int_or(item, "priority", -1)));
        }
    }
    Ok(Some(list))
}

/// Why createClient's `groups` list was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GroupListError {
    /// An element names a group that does not exist ("Group not found").
    NotFound,
    /// The same group twice ("Internal error", 2.0.11).
    Duplicate,
}

/// createClient's `groups`: a non-array is ignored, elements that are not objects with a
/// string `groupname` are skipped, unknown groups and duplicates are errors (in order).
pub(super) fn create_group_list(
    state: &DynsecState,
    command: &Value,
) -> Result<Vec<(Name, i32)>, GroupListError> {
    let mut list: Vec<(Name, i32)> = Vec::new();
    let items = command
        .get("groups")
        .and_then(Value::as_array)
        .unwrap_or_default();
    for item in items {
        let Some(groupname) = required_str(item, "groupname") else {
            continue;
        };
        if !state.groups.contains_key(groupname) {
            return Err(GroupListError::NotFound);
        }
        if list.iter().any(|(name, _)| name == groupname) {
            return Err(GroupListError::Duplicate);
        }
        list.push((groupname.to_vec(), int_or(item, "priority", -1)));
    }
    Ok(list)
}

/// A replacement membership list (modifyClient `groups`, modifyGroup `clients`): `None`
/// when the field is not an array; entries without a string `key` or naming something
/// that does not exist are skipped (2.0.11); duplicates keep their first entry.
pub(super) fn lenient_link_list(
    command: &Value,
    field: &str,
    key: &str,
    exists: impl Fn(&[u8]) -> bool,
) -> Option<Vec<(Name, i32)>> {
    let items = command.get(field)?.as_array()?;
    let mut list: Vec<(Name, i32)> = Vec::new();
    for item in items {
        let Some(name) = required_str(item, key) else {
            continue;
        };
        if exists(name) && !list.iter().any(|(n, _)| n == name) {
            list.push((name.to_vec(), int_or(item, "priority", -1)));
        }
    }
    Some(list)
}
