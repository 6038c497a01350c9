//! Role commands (spec §6.4), with Mosquitto 2.0.11's check order and error texts.
//! Called by `control::run_commands` through the command table.

use super::fields::{bool_or, int_or, lenient_str, optional_str, required_str};
use super::render::{self, page};
use super::{Effects, Reply};
use crate::dynsec::json::Value;
use crate::dynsec::json_out::Out;
use crate::dynsec::model::{Acl, AclType, DynsecState, Role};
use crate::dynsec::validate::{is_valid_acl_topic, is_valid_name};

const MISSING_ROLENAME: &str = "Invalid/missing rolename";
const BAD_ROLENAME: &str = "Role name not valid UTF-8";
const NOT_FOUND: &str = "Role not found";

macro_rules! try_reply {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(reply) => return reply,
        }
    };
}

fn rolename(command: &Value) -> Result<&[u8], Reply> {
    let rolename = required_str(command, "rolename").ok_or(Reply::Error(MISSING_ROLENAME))?;
    if !is_valid_name(rolename) {
        return Err(Reply::Error(BAD_ROLENAME));
    }
    Ok(rolename)
}

/// The lenient `acls` list of createRole/modifyRole/the file: `None` unless an array;
/// elements with an unknown `acltype` or without a string `topic` are dropped; topics are
/// not validated; priority defaults to 0 and allow to false.
pub(crate) fn lenient_acls(acls: &Value) -> Option<Vec<(AclType, Acl)>> {
    let items = acls.as_array()?;
    let parsed = items.iter().filter_map(|item| {
        let acl_type = AclType::parse(item.get("acltype")?.as_bytes()?)?;
        let topic = item.get("topic")?.as_bytes()?;
        Some((
            acl_type,
            Acl {
                topic: topic.to_vec(),
                priority: int_or(item, "priority", 0),
                allow: bool_or(item, "allow", false),
            },
        ))
    });
    Some(parsed.collect())
}

/// createRole.
pub(super) fn create(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let rolename = try_reply!(rolename(command));
    let Ok(textname) = optional_str(command, "textname") else {
        return Reply::Error("Invalid/missing textname");
    };
    let Ok(textdescription) = optional_str(command, "textdescription") else {
        return Reply::Error("Invalid/missing textdescription");
    };
    if state.roles.contains_key(rolename) {
        return Reply::Error("Role already exists");
    }
    let mut role = Role {
        textname: textname.map(<[u8]>::to_vec),
        textdescription: textdescription.map(<[u8]>::to_vec),
        ..Role::default()
    };
    if let Some(acls) = command.get("acls").and_then(lenient_acls) {
        role.replace_acls(acls);
    }
    state.roles.insert(rolename.to_vec(), role);
    fx.changed();
    fx.audit("createRole", &[("rolename", rolename)]);
    Reply::Done
}

/// deleteRole: unlinks the role everywhere and kicks everyone who held it.
pub(super) fn delete(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let rolename = try_reply!(rolename(command));
    if !state.roles.contains_key(rolename) {
        return Reply::Error(NOT_FOUND);
    }
    let holders = state.role_holders(rolename);
    state.remove_role(rolename);
    fx.changed();
    fx.kick_holders(holders);
    fx.audit("deleteRole", &[("rolename", rolename)]);
    Reply::Done
}

/// getRole.
pub(super) fn get(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let rolename = try_reply!(rolename(command));
    let Some(role) = state.roles.get(rolename) else {
        return Reply::Error(NOT_FOUND);
    };
    let data = Out::Object(vec![("role", render::role(rolename, role))]);
    fx.audit("getRole", &[("rolename", rolename)]);
    Reply::Data(data)
}

/// listRoles.
pub(super) fn list(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let verbose = bool_or(command, "verbose", false);
    let count = int_or(command, "count", -1);
    let offset = int_or(command, "offset", 0);
    let roles = page(state.roles.iter(), offset, count)
        .into_iter()
        .map(|(name, role)| {
            if verbose {
                render::role(name, role)
            } else {
                Out::str(name)
            }
        })
        .collect();
    let total = i64::try_from(state.roles.len()).unwrap_or(i64::MAX);
    fx.audit("listRoles", &[]);
    Reply::Data(Out::Object(vec![
        ("totalCount", Out::Int(total)),
        ("roles", Out::Array(roles)),
    ]))
}

/// modifyRole: "Role does not exist" (sic). Replacing the ACLs kicks the role's holders
/// (deviation `modify-role-kicks`, as 2.1).
pub(super) fn modify(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let rolename = try_reply!(rolename(command));
    let acls = command.get("acls").and_then(lenient_acls);
    let acls_given = acls.is_some();
    let Some(role) = state.roles.get_mut(rolename) else {
        return Reply::Error("Role does not exist");
    };
    if let Some(text) = lenient_str(command, "textname") {
        role.textname = Some(text.to_vec());
    }
    if let Some(text) = lenient_str(command, "textdescription") {
        role.textdescription = Some(text.to_vec());
    }
    if let Some(acls) = acls {
        role.replace_acls(acls);
    }
    fx.changed();
    if acls_given {
        fx.kick_holders(state.role_holders(rolename));
    }
    fx.audit("modifyRole", &[("rolename", rolename)]);
    Reply::Done
}

/// The checks shared by addRoleACL and removeRoleACL, in 2.0.11's order (the role's
/// existence is checked before the ACL fields [g:059]).
fn acl_fields<'a>(
    state: &DynsecState,
    command: &'a Value,
) -> Result<(&'a [u8], AclType, &'a [u8]), Reply> {
    let rolename = rolename(command)?;
    if !state.roles.contains_key(rolename) {
        return Err(Reply::Error(NOT_FOUND));
    }
    let acl_type =
        required_str(command, "acltype").ok_or(Reply::Error("Invalid/missing acltype"))?;
    let acl_type = AclType::parse(acl_type).ok_or(Reply::Error("Unknown acltype"))?;
    let topic = required_str(command, "topic").ok_or(Reply::Error("Invalid/missing topic"))?;
    if !is_valid_name(topic) {
        return Err(Reply::Error("Topic not valid UTF-8"));
    }
    if !is_valid_acl_topic(topic) {
        return Err(Reply::Error("Invalid ACL topic"));
    }
    Ok((rolename, acl_type, topic))
}

/// addRoleACL.
pub(super) fn add_acl(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let (rolename, acl_type, topic) = try_reply!(acl_fields(state, command));
    let acl = Acl {
        topic: topic.to_vec(),
        priority: int_or(command, "priority", 0),
        allow: bool_or(command, "allow", false),
    };
    let (priority, allow) = (acl.priority, acl.allow);
    let Some(role) = state.roles.get_mut(rolename) else {
        return Reply::Error(NOT_FOUND);
    };
    if !role.insert_acl(acl_type, acl) {
        return Reply::Error("ACL with this topic already exists");
    }
    fx.changed();
    fx.kick_holders(state.role_holders(rolename));
    let priority = priority.to_string();
    let allow: &[u8] = if allow { b"allow" } else { b"deny" };
    fx.audit(
        "addRoleACL",
        &[
            ("rolename", rolename),
            ("acltype", acl_type.name().as_bytes()),
            ("topic", topic),
            ("priority", priority.as_bytes()),
            ("allow", allow),
        ],
    );
    Reply::Done
}

/// removeRoleACL.
pub(super) fn remove_acl(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let (rolename, acl_type, topic) = try_reply!(acl_fields(state, command));
    let Some(role) = state.roles.get_mut(rolename) else {
        return Reply::Error(NOT_FOUND);
    };
    if !role.remove_acl(acl_type, topic) {
        return Reply::Error("ACL not found");
    }
    fx.changed();
    fx.kick_holders(state.role_holders(rolename));
    fx.audit(
        "removeRoleACL",
        &[
            ("rolename", rolename),
            ("acltype", acl_type.name().as_bytes()),
            ("topic", topic),
        ],
    );
    Reply::Done
}
