//! Commands on the whole state (spec §6.1, §6.3): default ACL access and the anonymous
//! group. Called by `control::run_commands` through the command table.

use super::fields::required_str;
use super::{Effects, Reply};
use crate::dynsec::json::Value;
use crate::dynsec::json_out::Out;
use crate::dynsec::model::{DefaultAccess, DynsecState};
use crate::dynsec::validate::is_valid_name;

/// setDefaultACLAccess: entries with a string `acltype` naming one of the four flags and a
/// boolean `allow` are applied; anything else is skipped silently. Succeeds (and saves)
/// even when nothing applied, e.g. Debian 2.0.11 `mosquitto_ctrl`'s `"access"` shape.
pub(super) fn set_default_acl_access(
    state: &mut DynsecState,
    command: &Value,
    fx: &mut Effects<'_>,
) -> Reply {
    let Some(acls) = command.get("acls").and_then(Value::as_array) else {
        return Reply::Error("Missing/invalid actions array");
    };
    let mut applied = Vec::new();
    for acl in acls {
        let acl_type = acl.get("acltype").and_then(Value::as_bytes);
        let allow = acl.get("allow").and_then(Value::as_bool);
        if let (Some(acl_type), Some(allow)) = (acl_type, allow) {
            if state.default_access.set_by_name(acl_type, allow) {
                applied.push((acl_type, allow));
            }
        }
    }
    fx.changed();
    for (acl_type, allow) in applied {
        let allow: &[u8] = if allow { b"allow" } else { b"deny" };
        fx.audit(
            "setDefaultACLAccess",
            &[("acltype", acl_type), ("access", allow)],
        );
    }
    Reply::Done
}

/// getDefaultACLAccess: the four flags, always in the same order.
pub(super) fn get_default_acl_access(
    state: &mut DynsecState,
    _command: &Value,
    fx: &mut Effects<'_>,
) -> Reply {
    let values = state.default_access.values();
    let acls = DefaultAccess::NAMES
        .iter()
        .zip(values)
        .map(|(name, allow)| {
            Out::Object(vec![
                ("acltype", Out::str(name.as_bytes())),
                ("allow", Out::Bool(allow)),
            ])
        })
        .collect();
    fx.audit("getDefaultACLAccess", &[]);
    Reply::Data(Out::Object(vec![("acls", Out::Array(acls))]))
}

/// setAnonymousGroup: kicks every connection without a username.
pub(super) fn set_anonymous_group(
    state: &mut DynsecState,
    command: &Value,
    fx: &mut Effects<'_>,
) -> Reply {
    let Some(groupname) = required_str(command, "groupname") else {
        return Reply::Error("Invalid/missing groupname");
    };
    if !is_valid_name(groupname) {
        return Reply::Error("Group name not valid UTF-8");
    }
    if !state.groups.contains_key(groupname) {
        return Reply::Error("Group not found");
    }
    state.anonymous_group = Some(groupname.to_vec());
    fx.changed();
    fx.kick_anonymous();
    fx.audit("setAnonymousGroup", &[("groupname", groupname)]);
    Reply::Done
}

/// getAnonymousGroup: `""` when none is set.
pub(super) fn get_anonymous_group(
    state: &mut DynsecState,
    _command: &Value,
    fx: &mut Effects<'_>,
) -> Reply {
    let name = state.anonymous_group.clone().unwrap_or_default();
    fx.audit("getAnonymousGroup", &[]);
    Reply::Data(Out::Object(vec![(
        "group",
        Out::Object(vec![("groupname", Out::Str(name))]),
    )]))
}
