//! The JSON shapes of get*/list* responses (spec §6): key order, omitted defaults
//! (`priority` -1, `disabled` false, unset text fields) and list paging.
//!
//! Called by the command handlers in `control`. The file format, which differs in places
//! (group `roles` before `clients`, member priorities, passwords), lives in `store`.

use crate::dynsec::json_out::Out;
use crate::dynsec::model::{Client, Group, MemberLink, Role, RoleLink};

/// `{"rolename":…[,"priority":…]}` list; priority -1 is omitted.
pub(crate) fn role_links(links: &[RoleLink]) -> Out {
    Out::Array(
        links
            .iter()
            .map(|l| link("rolename", &l.rolename, l.priority))
            .collect(),
    )
}

/// One `{"<key>":name[,"priority":p]}` object.
pub(crate) fn link(key: &'static str, name: &[u8], priority: i32) -> Out {
    let mut members = vec![(key, Out::str(name))];
    if priority != -1 {
        members.push(("priority", Out::Int(i64::from(priority))));
    }
    Out::Object(members)
}

/// Pushes the optional text fields in Mosquitto's order.
pub(crate) fn push_texts(
    members: &mut Vec<(&'static str, Out)>,
    textname: &Option<Vec<u8>>,
    textdescription: &Option<Vec<u8>>,
) {
    if let Some(text) = textname {
        members.push(("textname", Out::str(text)));
    }
    if let Some(text) = textdescription {
        members.push(("textdescription", Out::str(text)));
    }
}

/// A client as getClient / verbose listClients show it.
pub(super) fn client(username: &[u8], client: &Client) -> Out {
    let mut members = vec![("username", Out::str(username))];
    if let Some(clientid) = &client.clientid {
        members.push(("clientid", Out::str(clientid)));
    }
    push_texts(&mut members, &client.textname, &client.textdescription);
    if client.disabled {
        members.push(("disabled", Out::Bool(true)));
    }
    members.push(("roles", role_links(client.roles())));
    let groups = client
        .groups()
        .iter()
        .map(|g| link("groupname", &g.groupname, g.priority))
        .collect();
    members.push(("groups", Out::Array(groups)));
    Out::Object(members)
}

/// A group as getGroup / verbose listGroups show it: `clients` before `roles`, members
/// without priority.
pub(super) fn group(groupname: &[u8], group: &Group) -> Out {
    let mut members = vec![("groupname", Out::str(groupname))];
    push_texts(&mut members, &group.textname, &group.textdescription);
    let clients = group
        .clients()
        .iter()
        .map(|MemberLink { username, .. }| Out::Object(vec![("username", Out::str(username))]))
        .collect();
    members.push(("clients", Out::Array(clients)));
    members.push(("roles", role_links(group.roles())));
    Out::Object(members)
}

/// A role's `acls` array in output order, `priority` always present.
pub(crate) fn acls(role: &Role) -> Out {
    Out::Array(
        role.all_acls()
            .map(|(acl_type, acl)| {
                Out::Object(vec![
                    ("acltype", Out::Str(acl_type.name().as_bytes().to_vec())),
                    ("topic", Out::str(&acl.topic)),
                    ("priority", Out::Int(i64::from(acl.priority))),
                    ("allow", Out::Bool(acl.allow)),
                ])
            })
            .collect(),
    )
}

/// A role as getRole / verbose listRoles show it.
pub(super) fn role(rolename: &[u8], role: &Role) -> Out {
    let mut members = vec![("rolename", Out::str(rolename))];
    push_texts(&mut members, &role.textname, &role.textdescription);
    members.push(("acls", acls(role)));
    Out::Object(members)
}

/// Mosquitto's list paging: skip `offset` entries (negative = 0), then take entries while
/// `count` allows, where a non-negative count is decremented after each entry and the walk
/// stops once it is ≤ 0 — so `count: 0` still returns one entry (2.0.11 quirk [g:146]).
pub(super) fn page<T>(items: impl Iterator<Item = T>, offset: i32, mut count: i32) -> Vec<T> {
    let mut out = Vec::new();
    for (index, item) in items.enumerate() {
        if i64::try_from(index).unwrap_or(i64::MAX) < i64::from(offset) {
            continue;
        }
        out.push(item);
        if count >= 0 {
            count -= 1;
            if count <= 0 {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::page;

    #[test]
    fn paging_quirks() {
        let all = || 0..6;
        assert_eq!(page(all(), 0, -1), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(page(all(), 0, 2), vec![0, 1]);
        assert_eq!(page(all(), 1, 2), vec![1, 2]);
        assert_eq!(page(all(), 0, 0), vec![0]);
        assert_eq!(page(all(), 100, -1), Vec::<i32>::new());
        assert_eq!(page(all(), -5, 1), vec![0]);
    }
}
