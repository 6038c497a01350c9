//! Group commands (spec §6.3), with Mosquitto 2.0.11's check order and error texts.
//! Called by `control::run_commands` through the command table.

use super::fields::{
    bool_or, int_or, lenient_link_list, lenient_str, optional_str, required_str, role_list,
    RoleListError,
};
use super::render::{self, page};
use super::{Effects, Reply};
use crate::dynsec::json::Value;
use crate::dynsec::json_out::Out;
use crate::dynsec::model::{insert_role_link, DynsecState, Group, Holders};
use crate::dynsec::validate::is_valid_name;

const MISSING_GROUPNAME: &str = "Invalid/missing groupname";
const BAD_GROUPNAME: &str = "Group name not valid UTF-8";
const NOT_FOUND: &str = "Group not found";

macro_rules! try_reply {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(reply) => return reply,
        }
    };
}

fn groupname(command: &Value) -> Result<&[u8], Reply> {
    let groupname = required_str(command, "groupname").ok_or(Reply::Error(MISSING_GROUPNAME))?;
    if !is_valid_name(groupname) {
        return Err(Reply::Error(BAD_GROUPNAME));
    }
    Ok(groupname)
}

/// `username` then `groupname` field checks of addGroupClient/removeGroupClient.
fn username_and_groupname(command: &Value) -> Result<(&[u8], &[u8]), Reply> {
    let username =
        required_str(command, "username").ok_or(Reply::Error("Invalid/missing username"))?;
    if !is_valid_name(username) {
        return Err(Reply::Error("Username not valid UTF-8"));
    }
    Ok((username, groupname(command)?))
}

/// `groupname` then `rolename`, then both must exist (group first).
fn groupname_and_role<'a>(
    state: &DynsecState,
    command: &'a Value,
) -> Result<(&'a [u8], &'a [u8]), Reply> {
    let groupname = groupname(command)?;
    let rolename =
        required_str(command, "rolename").ok_or(Reply::Error("Invalid/missing rolename"))?;
    if !is_valid_name(rolename) {
        return Err(Reply::Error("Role name not valid UTF-8"));
    }
    if !state.groups.contains_key(groupname) {
        return Err(Reply::Error(NOT_FOUND));
    }
    if !state.roles.contains_key(rolename) {
        return Err(Reply::Error("Role not found"));
    }
    Ok((groupname, rolename))
}

/// createGroup: a malformed `roles` list is "Internal error" here (2.0.11).
pub(super) fn create(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let groupname = try_reply!(groupname(command));
    let Ok(textname) = optional_str(command, "textname") else {
        return Reply::Error("Invalid/missing textname");
    };
    let Ok(textdescription) = optional_str(command, "textdescription") else {
        return Reply::Error("Invalid/missing textdescription");
    };
    if state.groups.contains_key(groupname) {
        return Reply::Error("Group already exists");
    }
    let roles = match role_list(state, command) {
        Ok(roles) => roles.unwrap_or_default(),
        Err(RoleListError::Invalid) => return Reply::Error("Internal error"),
        Err(RoleListError::NotFound) => return Reply::Error("Role not found"),
    };
    let mut group = Group {
        textname: textname.map(<[u8]>::to_vec),
        textdescription: textdescription.map(<[u8]>::to_vec),
        ..Group::default()
    };
    for (rolename, priority) in roles {
        insert_role_link(&mut group.roles, &rolename, priority);
    }
    state.groups.insert(groupname.to_vec(), group);
    fx.changed();
    fx.audit("createGroup", &[("groupname", groupname)]);
    Reply::Done
}

/// deleteGroup: refuses the anonymous group (2.0.15+; 2.0.11 crashed), kicks members.
pub(super) fn delete(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let groupname = try_reply!(groupname(command));
    if !state.groups.contains_key(groupname) {
        return Reply::Error(NOT_FOUND);
    }
    if state.anonymous_group.as_deref() == Some(groupname) {
        return Reply::Error("Deleting the anonymous group is forbidden");
    }
    let holders = state.group_holders(groupname);
    state.remove_group(groupname);
    fx.changed();
    fx.kick_holders(holders);
    fx.audit("deleteGroup", &[("groupname", groupname)]);
    Reply::Done
}

/// getGroup.
pub(super) fn get(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let groupname = try_reply!(groupname(command));
    let Some(group) = state.groups.get(groupname) else {
        return Reply::Error(NOT_FOUND);
    };
    let data = Out::Object(vec![("group", render::group(groupname, group))]);
    fx.audit("getGroup", &[("groupname", groupname)]);
    Reply::Data(data)
}

/// listGroups.
pub(super) fn list(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let verbose = bool_or(command, "verbose", false);
    let count = int_or(command, "count", -1);
    let offset = int_or(command, "offset", 0);
    let groups = page(state.groups.iter(), offset, count)
        .into_iter()
        .map(|(name, group)| {
            if verbose {
                render::group(name, group)
            } else {
                Out::str(name)
            }
        })
        .collect();
    let total = i64::try_from(state.groups.len()).unwrap_or(i64::MAX);
    fx.audit("listGroups", &[]);
    Reply::Data(Out::Object(vec![
        ("totalCount", Out::Int(total)),
        ("groups", Out::Array(groups)),
    ]))
}

/// modifyGroup. Validates `roles` before applying anything (deviation
/// `modify-validates-first`); `clients` entries naming unknown clients are skipped as in
/// 2.0.11. Kicks the members before and after the change (deviation
/// `modify-group-kicks-old-members`).
pub(super) fn modify(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let groupname = try_reply!(groupname(command));
    if !state.groups.contains_key(groupname) {
        return Reply::Error(NOT_FOUND);
    }
    let roles = match role_list(state, command) {
        Ok(roles) => roles,
        Err(RoleListError::Invalid) => {
            return Reply::Error("'roles' not an array or missing/invalid rolename")
        }
        Err(RoleListError::NotFound) => return Reply::Error("Role not found"),
    };
    let members = lenient_link_list(command, "clients", "username", |u| {
        state.clients.contains_key(u)
    });
    let before = state.group_holders(groupname);
    let Some(group) = state.groups.get_mut(groupname) else {
        return Reply::Error(NOT_FOUND);
    };
    if let Some(text) = lenient_str(command, "textname") {
        group.textname = Some(text.to_vec());
    }
    if let Some(text) = lenient_str(command, "textdescription") {
        group.textdescription = Some(text.to_vec());
    }
    if let Some(roles) = roles {
        group.roles.clear();
        for (rolename, priority) in roles {
            insert_role_link(&mut group.roles, &rolename, priority);
        }
    }
    if let Some(members) = members {
        for username in &before.usernames {
            state.remove_member(username, groupname);
        }
        for (username, priority) in members {
            state.add_member(&username, groupname, priority);
        }
    }
    let after = state.group_holders(groupname);
    fx.changed();
    fx.kick_holders(before);
    fx.kick_holders(after);
    fx.audit("modifyGroup", &[("groupname", groupname)]);
    Reply::Done
}

/// addGroupClient: after the field checks, the username is kicked whatever the outcome
/// (2.0.11 [behaviour: addGroupClient-duplicate-error]).
pub(super) fn add_client(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let (username, groupname) = try_reply!(username_and_groupname(command));
    fx.kick_username(username);
    if !state.clients.contains_key(username) {
        return Reply::Error("Client not found");
    }
    if !state.groups.contains_key(groupname) {
        return Reply::Error(NOT_FOUND);
    }
    let priority = int_or(command, "priority", -1);
    if !state.add_member(username, groupname, priority) {
        return Reply::Error("Client is already in this group");
    }
    fx.changed();
    let priority = priority.to_string();
    fx.audit(
        "addGroupClient",
        &[
            ("groupname", groupname),
            ("username", username),
            ("priority", priority.as_bytes()),
        ],
    );
    Reply::Done
}

/// removeGroupClient: not being a member is still a success; kicks like addGroupClient.
pub(super) fn remove_client(
    state: &mut DynsecState,
    command: &Value,
    fx: &mut Effects<'_>,
) -> Reply {
    let (username, groupname) = try_reply!(username_and_groupname(command));
    fx.kick_username(username);
    if !state.clients.contains_key(username) {
        return Reply::Error("Client not found");
    }
    if !state.groups.contains_key(groupname) {
        return Reply::Error(NOT_FOUND);
    }
    state.remove_member(username, groupname);
    fx.changed();
    fx.audit(
        "removeGroupClient",
        &[("groupname", groupname), ("username", username)],
    );
    Reply::Done
}

/// addGroupRole: kicks the members (and anonymous connections for the anonymous group).
pub(super) fn add_role(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let (groupname, rolename) = try_reply!(groupname_and_role(state, command));
    let priority = int_or(command, "priority", -1);
    let Some(group) = state.groups.get_mut(groupname) else {
        return Reply::Error(NOT_FOUND);
    };
    if !insert_role_link(&mut group.roles, rolename, priority) {
        return Reply::Error("Group is already in this role");
    }
    fx.changed();
    fx.kick_holders(state.group_holders(groupname));
    let priority = priority.to_string();
    fx.audit(
        "addGroupRole",
        &[
            ("groupname", groupname),
            ("rolename", rolename),
            ("priority", priority.as_bytes()),
        ],
    );
    Reply::Done
}

/// removeGroupRole: a role not attached is still a success.
pub(super) fn remove_role(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let (groupname, rolename) = try_reply!(groupname_and_role(state, command));
    if let Some(group) = state.groups.get_mut(groupname) {
        group.roles.retain(|l| l.rolename != rolename);
    }
    fx.changed();
    let holders: Holders = state.group_holders(groupname);
    fx.kick_holders(holders);
    fx.audit(
        "removeGroupRole",
        &[("groupname", groupname), ("rolename", rolename)],
    );
    Reply::Done
}
