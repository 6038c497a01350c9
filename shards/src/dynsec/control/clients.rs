//! Client commands (spec §6.2). Each handler checks its fields in Mosquitto 2.0.11's
//! order, answers the first failing check with its exact text, and mutates only after every
//! check passed. Called by `control::run_commands` through the command table.

use super::fields::{
    bool_or, create_group_list, int_or, lenient_link_list, lenient_str, optional_str, required_str,
    role_list, GroupListError, RoleListError,
};
use super::render::{self, page};
use super::{Effects, Reply};
use crate::dynsec::json::Value;
use crate::dynsec::json_out::Out;
use crate::dynsec::model::{insert_role_link, Client, DynsecState};
use crate::dynsec::password::PasswordHash;
use crate::dynsec::validate::is_valid_name;

const MISSING_USERNAME: &str = "Invalid/missing username";
const BAD_USERNAME: &str = "Username not valid UTF-8";
const NOT_FOUND: &str = "Client not found";
const ROLES_INVALID: &str = "'roles' not an array or missing/invalid rolename";

/// The `username` field, required and valid UTF-8.
fn username(command: &Value) -> Result<&[u8], Reply> {
    let username = required_str(command, "username").ok_or(Reply::Error(MISSING_USERNAME))?;
    if !is_valid_name(username) {
        return Err(Reply::Error(BAD_USERNAME));
    }
    Ok(username)
}

/// `username` and `rolename` for addClientRole/removeClientRole, checked in order, then
/// the client and the role must exist (client first [g:170]).
fn username_and_role<'a>(
    state: &DynsecState,
    command: &'a Value,
) -> Result<(&'a [u8], &'a [u8]), Reply> {
    let username = username(command)?;
    let rolename =
        required_str(command, "rolename").ok_or(Reply::Error("Invalid/missing rolename"))?;
    if !is_valid_name(rolename) {
        return Err(Reply::Error("Role name not valid UTF-8"));
    }
    if !state.clients.contains_key(username) {
        return Err(Reply::Error(NOT_FOUND));
    }
    if !state.roles.contains_key(rolename) {
        return Err(Reply::Error("Role not found"));
    }
    Ok((username, rolename))
}

fn new_hash(state: &DynsecState, password: &[u8]) -> Result<PasswordHash, Reply> {
    PasswordHash::new(password, &state.policy).map_err(|_| Reply::Error("Internal error"))
}

macro_rules! try_reply {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(reply) => return reply,
        }
    };
}

/// createClient.
pub(super) fn create(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let username = try_reply!(username(command));
    let Ok(password) = optional_str(command, "password") else {
        return Reply::Error("Invalid/missing password");
    };
    let Ok(clientid) = optional_str(command, "clientid") else {
        return Reply::Error("Invalid/missing client id");
    };
    if clientid.is_some_and(|c| !is_valid_name(c)) {
        return Reply::Error("Client ID not valid UTF-8");
    }
    let Ok(textname) = optional_str(command, "textname") else {
        return Reply::Error("Invalid/missing textname");
    };
    let Ok(textdescription) = optional_str(command, "textdescription") else {
        return Reply::Error("Invalid/missing textdescription");
    };
    if state.clients.contains_key(username) {
        return Reply::Error("Client already exists");
    }
    let roles = match role_list(state, command) {
        Ok(roles) => roles.unwrap_or_default(),
        Err(RoleListError::Invalid) => return Reply::Error(ROLES_INVALID),
        Err(RoleListError::NotFound) => return Reply::Error("Role not found"),
    };
    let groups = match create_group_list(state, command) {
        Ok(groups) => groups,
        Err(GroupListError::NotFound) => return Reply::Error("Group not found"),
        Err(GroupListError::Duplicate) => return Reply::Error("Internal error"),
    };
    let hash = match password {
        Some(password) => Some(try_reply!(new_hash(state, password))),
        None => None,
    };
    let mut client = Client {
        clientid: clientid.filter(|c| !c.is_empty()).map(<[u8]>::to_vec),
        textname: textname.map(<[u8]>::to_vec),
        textdescription: textdescription.map(<[u8]>::to_vec),
        password: hash,
        ..Client::default()
    };
    for (rolename, priority) in roles {
        insert_role_link(&mut client.roles, &rolename, priority);
    }
    state.clients.insert(username.to_vec(), client);
    for (groupname, priority) in groups {
        state.add_member(username, &groupname, priority);
    }
    fx.changed();
    let shown: &[u8] = if password.is_some() {
        b"*****"
    } else {
        b"no password"
    };
    fx.audit(
        "createClient",
        &[("username", username), ("password", shown)],
    );
    Reply::Done
}

/// deleteClient: the only client command without a UTF-8 check.
pub(super) fn delete(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let Some(username) = required_str(command, "username") else {
        return Reply::Error(MISSING_USERNAME);
    };
    if state.remove_client(username).is_none() {
        return Reply::Error(NOT_FOUND);
    }
    fx.changed();
    fx.kick_username(username);
    fx.audit("deleteClient", &[("username", username)]);
    Reply::Done
}

/// getClient.
pub(super) fn get(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let username = try_reply!(username(command));
    let Some(client) = state.clients.get(username) else {
        return Reply::Error(NOT_FOUND);
    };
    let data = Out::Object(vec![("client", render::client(username, client))]);
    fx.audit("getClient", &[("username", username)]);
    Reply::Data(data)
}

/// listClients.
pub(super) fn list(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let verbose = bool_or(command, "verbose", false);
    let count = int_or(command, "count", -1);
    let offset = int_or(command, "offset", 0);
    let clients = page(state.clients.iter(), offset, count)
        .into_iter()
        .map(|(name, client)| {
            if verbose {
                render::client(name, client)
            } else {
                Out::str(name)
            }
        })
        .collect();
    let total = i64::try_from(state.clients.len()).unwrap_or(i64::MAX);
    fx.audit("listClients", &[]);
    Reply::Data(Out::Object(vec![
        ("totalCount", Out::Int(total)),
        ("clients", Out::Array(clients)),
    ]))
}

/// setClientId: a missing or empty `clientid` clears the binding.
pub(super) fn set_id(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let username = try_reply!(username(command));
    let Ok(clientid) = optional_str(command, "clientid") else {
        return Reply::Error("Invalid/missing client ID");
    };
    if clientid.is_some_and(|c| !is_valid_name(c)) {
        return Reply::Error("Client ID not valid UTF-8");
    }
    let Some(client) = state.clients.get_mut(username) else {
        return Reply::Error(NOT_FOUND);
    };
    client.clientid = clientid.filter(|c| !c.is_empty()).map(<[u8]>::to_vec);
    fx.changed();
    fx.kick_username(username);
    let shown = clientid.filter(|c| !c.is_empty()).unwrap_or(b"(null)");
    fx.audit(
        "setClientId",
        &[("username", username), ("clientid", shown)],
    );
    Reply::Done
}

/// setClientPassword: a new salt and hash every time.
pub(super) fn set_password(
    state: &mut DynsecState,
    command: &Value,
    fx: &mut Effects<'_>,
) -> Reply {
    let username = try_reply!(username(command));
    let Some(password) = required_str(command, "password") else {
        return Reply::Error("Invalid/missing password");
    };
    if password.is_empty() {
        return Reply::Error("Empty password is not allowed");
    }
    if !state.clients.contains_key(username) {
        return Reply::Error(NOT_FOUND);
    }
    let hash = try_reply!(new_hash(state, password));
    if let Some(client) = state.clients.get_mut(username) {
        client.password = Some(hash);
    }
    fx.changed();
    fx.kick_username(username);
    fx.audit(
        "setClientPassword",
        &[("username", username), ("password", b"******")],
    );
    Reply::Done
}

fn set_disabled(
    state: &mut DynsecState,
    command: &Value,
    fx: &mut Effects<'_>,
    disabled: bool,
) -> Reply {
    let username = try_reply!(username(command));
    let Some(client) = state.clients.get_mut(username) else {
        return Reply::Error(NOT_FOUND);
    };
    client.disabled = disabled;
    fx.changed();
    if disabled {
        fx.kick_username(username);
        fx.audit("disableClient", &[("username", username)]);
    } else {
        fx.audit("enableClient", &[("username", username)]);
    }
    Reply::Done
}

/// enableClient (no kick).
pub(super) fn enable(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    set_disabled(state, command, fx, false)
}

/// disableClient (kicks the username).
pub(super) fn disable(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    set_disabled(state, command, fx, true)
}

/// modifyClient. Unlike 2.0.11, nothing is applied (and nobody is kicked) when the `roles`
/// check fails (deviation `modify-validates-first`). Wrong-typed optional fields are
/// ignored; `groups` entries naming unknown groups are skipped, as in 2.0.11.
pub(super) fn modify(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let username = try_reply!(username(command));
    if !state.clients.contains_key(username) {
        return Reply::Error(NOT_FOUND);
    }
    let roles = match role_list(state, command) {
        Ok(roles) => roles,
        Err(RoleListError::Invalid) => return Reply::Error(ROLES_INVALID),
        Err(RoleListError::NotFound) => return Reply::Error("Role not found"),
    };
    let groups = lenient_link_list(command, "groups", "groupname", |g| {
        state.groups.contains_key(g)
    });
    let hash = match lenient_str(command, "password").filter(|p| !p.is_empty()) {
        Some(password) => Some(try_reply!(new_hash(state, password))),
        None => None,
    };
    let Some(client) = state.clients.get_mut(username) else {
        return Reply::Error(NOT_FOUND);
    };
    if let Some(clientid) = lenient_str(command, "clientid") {
        client.clientid = (!clientid.is_empty()).then(|| clientid.to_vec());
    }
    if hash.is_some() {
        client.password = hash;
    }
    if let Some(text) = lenient_str(command, "textname") {
        client.textname = Some(text.to_vec());
    }
    if let Some(text) = lenient_str(command, "textdescription") {
        client.textdescription = Some(text.to_vec());
    }
    if let Some(roles) = roles {
        client.roles.clear();
        for (rolename, priority) in roles {
            insert_role_link(&mut client.roles, &rolename, priority);
        }
    }
    let old_groups: Vec<_> = client.groups.iter().map(|g| g.groupname.clone()).collect();
    if let Some(groups) = groups {
        for groupname in old_groups {
            state.remove_member(username, &groupname);
        }
        for (groupname, priority) in groups {
            state.add_member(username, &groupname, priority);
        }
    }
    fx.changed();
    fx.kick_username(username);
    fx.audit("modifyClient", &[("username", username)]);
    Reply::Done
}

/// addClientRole: holding the role already is "Internal error" (2.0.11).
pub(super) fn add_role(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let (username, rolename) = try_reply!(username_and_role(state, command));
    let priority = int_or(command, "priority", -1);
    let Some(client) = state.clients.get_mut(username) else {
        return Reply::Error(NOT_FOUND);
    };
    if !insert_role_link(&mut client.roles, rolename, priority) {
        return Reply::Error("Internal error");
    }
    fx.changed();
    fx.kick_username(username);
    let priority = priority.to_string();
    fx.audit(
        "addClientRole",
        &[
            ("username", username),
            ("rolename", rolename),
            ("priority", priority.as_bytes()),
        ],
    );
    Reply::Done
}

/// removeClientRole: not holding the role is still a success.
pub(super) fn remove_role(state: &mut DynsecState, command: &Value, fx: &mut Effects<'_>) -> Reply {
    let (username, rolename) = try_reply!(username_and_role(state, command));
    if let Some(client) = state.clients.get_mut(username) {
        client.roles.retain(|l| l.rolename != rolename);
    }
    fx.changed();
    fx.kick_username(username);
    fx.audit(
        "removeClientRole",
        &[("username", username), ("rolename", rolename)],
    );
    Reply::Done
}
