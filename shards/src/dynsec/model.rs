//! The dynamic-security data model (spec §1): clients, groups, roles, their ACLs, the
//! default ACL access and the anonymous group, with every link kept consistent in both
//! directions and in the orders Mosquitto prints (spec §7).
//!
//! Placement: one [`DynsecState`] per broker, owned by whoever processes control requests
//! (see `control::handle_request`); shards never see it, they get an immutable
//! `acl::AclSnapshot` compiled from it. Mutations happen only through `control`, `store`
//! and `bootstrap`; the helpers here keep the invariants checked by
//! [`DynsecState::check_invariants`].

use std::collections::BTreeMap;

use super::password::{PasswordHash, PasswordPolicy};

/// A name (username, group name, role name, client id, text field): raw bytes, compared
/// byte-wise (no case folding), sorted like C `strcmp`.
pub type Name = Vec<u8>;

/// The six ACL types a role can hold (spec §1, §6.4), in the order Mosquitto prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclType {
    /// Checked when a client publishes.
    PublishClientSend,
    /// Checked when a message is about to be delivered to a client.
    PublishClientReceive,
    /// SUBSCRIBE filter equal to the ACL topic.
    SubscribeLiteral,
    /// SUBSCRIBE filter covered by the ACL topic.
    SubscribePattern,
    /// UNSUBSCRIBE filter equal to the ACL topic.
    UnsubscribeLiteral,
    /// UNSUBSCRIBE filter covered by the ACL topic.
    UnsubscribePattern,
}

impl AclType {
    /// All types in output order (getRole, file).
    pub const ALL: [AclType; 6] = [
        AclType::PublishClientSend,
        AclType::PublishClientReceive,
        AclType::SubscribeLiteral,
        AclType::SubscribePattern,
        AclType::UnsubscribeLiteral,
        AclType::UnsubscribePattern,
    ];

    /// The canonical JSON spelling.
    pub fn name(self) -> &'static str {
        match self {
            AclType::PublishClientSend => "publishClientSend",
            AclType::PublishClientReceive => "publishClientReceive",
            AclType::SubscribeLiteral => "subscribeLiteral",
            AclType::SubscribePattern => "subscribePattern",
            AclType::UnsubscribeLiteral => "unsubscribeLiteral",
            AclType::UnsubscribePattern => "unsubscribePattern",
        }
    }

    /// Parses a type name ignoring ASCII case, as Mosquitto's `strcasecmp`.
    pub fn parse(bytes: &[u8]) -> Option<AclType> {
        AclType::ALL
            .into_iter()
            .find(|t| t.name().as_bytes().eq_ignore_ascii_case(bytes))
    }

    /// Position in [`AclType::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What happens when no ACL matches (spec §1, §8.2). Keys are the four `acltype` names of
/// setDefaultACLAccess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DefaultAccess {
    /// `publishClientSend`.
    pub publish_client_send: bool,
    /// `publishClientReceive`.
    pub publish_client_receive: bool,
    /// `subscribe`.
    pub subscribe: bool,
    /// `unsubscribe`.
    pub unsubscribe: bool,
}

impl DefaultAccess {
    /// What `dynsec init` and 2.1 auto-initialisation write.
    pub const INIT: DefaultAccess = DefaultAccess {
        publish_client_send: false,
        publish_client_receive: true,
        subscribe: false,
        unsubscribe: true,
    };

    /// Names in getDefaultACLAccess order.
    pub const NAMES: [&'static str; 4] = [
        "publishClientSend",
        "publishClientReceive",
        "subscribe",
        "unsubscribe",
    ];

    /// Values in [`DefaultAccess::NAMES`] order.
    pub fn values(&self) -> [bool; 4] {
        [
            self.publish_client_send,
            self.publish_client_receive,
            self.subscribe,
            self.unsubscribe,
        ]
    }

    /// Sets the flag named `name` (ASCII case-insensitive); false when unknown.
    pub fn set_by_name(&mut self, name: &[u8], allow: bool) -> bool {
        let slot = match DefaultAccess::NAMES
            .iter()
            .position(|n| n.as_bytes().eq_ignore_ascii_case(name))
        {
            Some(0) => &mut self.publish_client_send,
            Some(1) => &mut self.publish_client_receive,
            Some(2) => &mut self.subscribe,
            Some(3) => &mut self.unsubscribe,
            _ => return false,
        };
        *slot = allow;
        true
    }
}

/// One ACL of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// Topic or filter, not validated when it came from createRole/modifyRole/the file.
    pub topic: Name,
    /// Higher first; ties keep insertion order.
    pub priority: i32,
    /// Allow or deny when it matches.
    pub allow: bool,
}

/// A role: text fields and six ordered ACL lists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Role {
    /// Optional display name.
    pub textname: Option<Name>,
    /// Optional description.
    pub textdescription: Option<Name>,
    pub(crate) acls: [Vec<Acl>; 6],
}

impl Role {
    /// The ACLs of one type, priority descending, ties in insertion order.
    pub fn acls(&self, acl_type: AclType) -> &[Acl] {
        &self.acls[acl_type.index()]
    }

    /// Every ACL in output order (type order, then priority, then insertion).
    pub fn all_acls(&self) -> impl Iterator<Item = (AclType, &Acl)> {
        AclType::ALL
            .into_iter()
            .flat_map(move |t| self.acls(t).iter().map(move |acl| (t, acl)))
    }

    /// Whether the role has an ACL of this type with exactly this topic.
    pub fn has_acl(&self, acl_type: AclType, topic: &[u8]) -> bool {
        self.acls(acl_type).iter().any(|a| a.topic == topic)
    }

    /// Inserts after every ACL of the same type with a priority ≥ its own. Refuses a
    /// duplicate (type, topic): the first one wins (spec §17, 2.0.16+).
    pub(crate) fn insert_acl(&mut self, acl_type: AclType, acl: Acl) -> bool {
        if self.has_acl(acl_type, &acl.topic) {
            return false;
        }
        let list = &mut self.acls[acl_type.index()];
        let position = list.partition_point(|existing| existing.priority >= acl.priority);
        list.insert(position, acl);
        true
    }

    /// Removes the ACL with this type and topic; false when there is none.
    pub(crate) fn remove_acl(&mut self, acl_type: AclType, topic: &[u8]) -> bool {
        let list = &mut self.acls[acl_type.index()];
        let before = list.len();
        list.retain(|a| a.topic != topic);
        before != list.len()
    }

    /// Replaces every ACL with `acls`, in order, dropping later duplicates.
    pub(crate) fn replace_acls(&mut self, acls: Vec<(AclType, Acl)>) {
        self.acls = Default::default();
        for (acl_type, acl) in acls {
            self.insert_acl(acl_type, acl);
        }
    }
}

/// A client's or group's link to a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleLink {
    /// The role.
    pub rolename: Name,
    /// Link priority, -1 when not given (then omitted from JSON).
    pub priority: i32,
}

/// A client's membership of a group, seen from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLink {
    /// The group.
    pub groupname: Name,
    /// Membership priority, -1 when not given.
    pub priority: i32,
}

/// A client's membership of a group, seen from the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLink {
    /// The member.
    pub username: Name,
    /// Membership priority (same value as the client's [`GroupLink`]).
    pub priority: i32,
}

/// A client (a username that may log in).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Client {
    /// Client id the connection must use, when bound.
    pub clientid: Option<Name>,
    /// Optional display name.
    pub textname: Option<Name>,
    /// Optional description.
    pub textdescription: Option<Name>,
    /// Disabled clients cannot log in.
    pub disabled: bool,
    /// Without a password the client cannot log in through dynsec.
    pub password: Option<PasswordHash>,
    /// Priority descending, ties by name.
    pub(crate) roles: Vec<RoleLink>,
    /// Priority descending, ties by name; mirrored by the groups' member lists.
    pub(crate) groups: Vec<GroupLink>,
}

impl Client {
    /// Role links in evaluation order.
    pub fn roles(&self) -> &[RoleLink] {
        &self.roles
    }

    /// Group memberships in evaluation order.
    pub fn groups(&self) -> &[GroupLink] {
        &self.groups
    }
}

/// A group of clients sharing roles.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    /// Optional display name.
    pub textname: Option<Name>,
    /// Optional description.
    pub textdescription: Option<Name>,
    /// Priority descending, ties by name.
    pub(crate) roles: Vec<RoleLink>,
    /// Sorted by username.
    pub(crate) clients: Vec<MemberLink>,
}

impl Group {
    /// Role links in evaluation order.
    pub fn roles(&self) -> &[RoleLink] {
        &self.roles
    }

    /// Members sorted by username.
    pub fn clients(&self) -> &[MemberLink] {
        &self.clients
    }
}

/// Inserts a role link keeping priority-descending, name-ascending order. Returns false
/// (and changes nothing) when the role is already linked.
pub(crate) fn insert_role_link(list: &mut Vec<RoleLink>, rolename: &[u8], priority: i32) -> bool {
    if list.iter().any(|l| l.rolename == rolename) {
        return false;
    }
    let position = list.partition_point(|l| {
        l.priority > priority || (l.priority == priority && l.rolename.as_slice() < rolename)
    });
    list.insert(
        position,
        RoleLink {
            rolename: rolename.to_vec(),
            priority,
        },
    );
    true
}

/// The whole dynamic-security state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DynsecState {
    pub(crate) default_access: DefaultAccess,
    pub(crate) clients: BTreeMap<Name, Client>,
    pub(crate) groups: BTreeMap<Name, Group>,
    pub(crate) roles: BTreeMap<Name, Role>,
    pub(crate) anonymous_group: Option<Name>,
    pub(crate) policy: PasswordPolicy,
    pub(crate) generation: u64,
}

/// Who must be disconnected after a change that affects a role or group (spec §10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    /// Usernames, sorted, without duplicates.
    pub usernames: Vec<Name>,
    /// Whether connections without a username are affected.
    pub anonymous: bool,
}

impl DynsecState {
    /// An empty state (what Mosquitto runs with when the file is empty): all default
    /// access false, nothing defined.
    pub fn new() -> DynsecState {
        DynsecState::default()
    }

    /// Default ACL access.
    pub fn default_access(&self) -> DefaultAccess {
        self.default_access
    }

    /// Clients sorted by username.
    pub fn clients(&self) -> &BTreeMap<Name, Client> {
        &self.clients
    }

    /// Groups sorted by name.
    pub fn groups(&self) -> &BTreeMap<Name, Group> {
        &self.groups
    }

    /// Roles sorted by name.
    pub fn roles(&self) -> &BTreeMap<Name, Role> {
        &self.roles
    }

    /// The anonymous group, when set.
    pub fn anonymous_group(&self) -> Option<&[u8]> {
        self.anonymous_group.as_deref()
    }

    /// How new passwords are hashed.
    pub fn password_policy(&self) -> PasswordPolicy {
        self.policy
    }

    /// Changes how new passwords are hashed (existing hashes are untouched).
    pub fn set_password_policy(&mut self, policy: PasswordPolicy) {
        assert!(
            policy.iterations >= 1,
            "PBKDF2 needs at least one iteration"
        );
        self.policy = policy;
    }

    /// Counts successful modifying requests since load; copied into every `AclSnapshot`
    /// so that holders of a snapshot can tell whether it is current.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Adds a membership on both sides. False when it already exists.
    pub(crate) fn add_member(&mut self, username: &[u8], groupname: &[u8], priority: i32) -> bool {
        let (Some(client), Some(group)) = (
            self.clients.get_mut(username),
            self.groups.get_mut(groupname),
        ) else {
            debug_assert!(
                false,
                "add_member: callers check that client and group exist"
            );
            return false;
        };
        if client.groups.iter().any(|g| g.groupname == groupname) {
            return false;
        }
        let position = client.groups.partition_point(|g| {
            g.priority > priority || (g.priority == priority && g.groupname.as_slice() < groupname)
        });
        client.groups.insert(
            position,
            GroupLink {
                groupname: groupname.to_vec(),
                priority,
            },
        );
        let search = group
            .clients
            .binary_search_by(|m| m.username.as_slice().cmp(username));
        // The client side said "not a member" and the lists are mirrored.
        assert!(search.is_err(), "membership lists out of sync");
        let member = search.unwrap_or_else(|position| position);
        group.clients.insert(
            member,
            MemberLink {
                username: username.to_vec(),
                priority,
            },
        );
        true
    }

    /// Removes a membership on both sides. False when there was none.
    pub(crate) fn remove_member(&mut self, username: &[u8], groupname: &[u8]) -> bool {
        let mut removed = false;
        if let Some(client) = self.clients.get_mut(username) {
            let before = client.groups.len();
            client.groups.retain(|g| g.groupname != groupname);
            removed = before != client.groups.len();
        }
        if let Some(group) = self.groups.get_mut(groupname) {
            let before = group.clients.len();
            group.clients.retain(|m| m.username != username);
            assert_eq!(
                removed,
                before != group.clients.len(),
                "memberships are mirrored"
            );
        }
        removed
    }

    /// Removes a client and its memberships.
    pub(crate) fn remove_client(&mut self, username: &[u8]) -> Option<Client> {
        let groups: Vec<Name> = self
            .clients
            .get(username)?
            .groups
            .iter()
            .map(|g| g.groupname.clone())
            .collect();
        for groupname in groups {
            self.remove_member(username, &groupname);
        }
        self.clients.remove(username)
    }

    /// Removes a group, its memberships, and the anonymous-group setting if it pointed at
    /// it (callers refuse to delete the anonymous group; this keeps the state consistent
    /// regardless).
    pub(crate) fn remove_group(&mut self, groupname: &[u8]) -> Option<Group> {
        let members: Vec<Name> = self
            .groups
            .get(groupname)?
            .clients
            .iter()
            .map(|m| m.username.clone())
            .collect();
        for username in members {
            self.remove_member(&username, groupname);
        }
        if self.anonymous_group.as_deref() == Some(groupname) {
            self.anonymous_group = None;
        }
        self.groups.remove(groupname)
    }

    /// Removes a role and every link to it.
    pub(crate) fn remove_role(&mut self, rolename: &[u8]) -> Option<Role> {
        for client in self.clients.values_mut() {
            client.roles.retain(|l| l.rolename != rolename);
        }
        for group in self.groups.values_mut() {
            group.roles.retain(|l| l.rolename != rolename);
        }
        self.roles.remove(rolename)
    }

    /// Members of a group (empty for unknown groups), plus anonymous connections when it
    /// is the anonymous group.
    pub fn group_holders(&self, groupname: &[u8]) -> Holders {
        let usernames = self
            .groups
            .get(groupname)
            .map(|g| g.clients.iter().map(|m| m.username.clone()).collect())
            .unwrap_or_default();
        Holders {
            usernames,
            anonymous: self.anonymous_group.as_deref() == Some(groupname),
        }
    }

    /// Everyone whose permissions depend on a role: clients holding it directly, members
    /// of groups holding it, and anonymous connections when the anonymous group holds it.
    pub fn role_holders(&self, rolename: &[u8]) -> Holders {
        let mut holders = Holders::default();
        for (username, client) in &self.clients {
            if client.roles.iter().any(|l| l.rolename == rolename) {
                holders.usernames.push(username.clone());
            }
        }
        for (groupname, group) in &self.groups {
            if group.roles.iter().any(|l| l.rolename == rolename) {
                let group_holders = self.group_holders(groupname);
                holders.usernames.extend(group_holders.usernames);
                holders.anonymous |= group_holders.anonymous;
            }
        }
        holders.usernames.sort();
        holders.usernames.dedup();
        holders
    }

    /// Checks every structural invariant; used after each command in tests and debug
    /// builds. Returns a description of the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let role_order = |links: &[RoleLink], owner: &[u8]| -> Result<(), String> {
            for pair in links.windows(2) {
                let ordered = pair[0].priority > pair[1].priority
                    || (pair[0].priority == pair[1].priority
                        && pair[0].rolename < pair[1].rolename);
                if !ordered {
                    return Err(format!("role links of {owner:?} out of order"));
                }
            }
            match links.iter().find(|l| !self.roles.contains_key(&l.rolename)) {
                Some(l) => Err(format!("{owner:?} links unknown role {:?}", l.rolename)),
                None => Ok(()),
            }
        };
        for (username, client) in &self.clients {
            role_order(&client.roles, username)?;
            for pair in client.groups.windows(2) {
                let ordered = pair[0].priority > pair[1].priority
                    || (pair[0].priority == pair[1].priority
                        && pair[0].groupname < pair[1].groupname);
                if !ordered {
                    return Err(format!("groups of {username:?} out of order"));
                }
            }
            for link in &client.groups {
                let mirrored = self.groups.get(&link.groupname).is_some_and(|g| {
                    g.clients
                        .iter()
                        .any(|m| m.username == *username && m.priority == link.priority)
                });
                if !mirrored {
                    return Err(format!(
                        "membership {username:?} in {:?} not mirrored",
                        link.groupname
                    ));
                }
            }
        }
        for (groupname, group) in &self.groups {
            role_order(&group.roles, groupname)?;
            if !group
                .clients
                .windows(2)
                .all(|p| p[0].username < p[1].username)
            {
                return Err(format!("members of {groupname:?} not sorted"));
            }
            for member in &group.clients {
                let mirrored = self.clients.get(&member.username).is_some_and(|c| {
                    c.groups
                        .iter()
                        .any(|g| g.groupname == *groupname && g.priority == member.priority)
                });
                if !mirrored {
                    return Err(format!(
                        "member {:?} of {groupname:?} not mirrored",
                        member.username
                    ));
                }
            }
        }
        for (rolename, role) in &self.roles {
            for acl_type in AclType::ALL {
                let list = role.acls(acl_type);
                if !list.windows(2).all(|p| p[0].priority >= p[1].priority) {
                    return Err(format!("ACLs of {rolename:?} out of order"));
                }
                for (i, acl) in list.iter().enumerate() {
                    if list[..i].iter().any(|a| a.topic == acl.topic) {
                        return Err(format!("duplicate ACL in {rolename:?}"));
                    }
                }
            }
        }
        if let Some(anonymous) = &self.anonymous_group {
            if !self.groups.contains_key(anonymous) {
                return Err(format!("anonymous group {anonymous:?} does not exist"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(topic: &str, priority: i32) -> Acl {
        Acl {
            topic: topic.as_bytes().to_vec(),
            priority,
            allow: true,
        }
    }

    #[test]
    fn acls_sort_by_priority_then_insertion_and_first_duplicate_wins() {
        let mut role = Role::default();
        assert!(role.insert_acl(AclType::PublishClientSend, acl("q/#", 0)));
        assert!(role.insert_acl(AclType::PublishClientSend, acl("q/a", 0)));
        assert!(role.insert_acl(AclType::PublishClientSend, acl("hi", 5)));
        assert!(!role.insert_acl(AclType::PublishClientSend, acl("q/#", 9)));
        assert!(role.insert_acl(AclType::SubscribePattern, acl("q/#", 9)));
        let topics: Vec<_> = role
            .acls(AclType::PublishClientSend)
            .iter()
            .map(|a| String::from_utf8_lossy(&a.topic).into_owned())
            .collect();
        assert_eq!(topics, ["hi", "q/#", "q/a"]);
        assert!(role.remove_acl(AclType::PublishClientSend, b"q/#"));
        assert!(!role.remove_acl(AclType::PublishClientSend, b"q/#"));
    }

    #[test]
    fn role_links_sort_by_priority_then_name() {
        let mut links = Vec::new();
        assert!(insert_role_link(&mut links, b"r-deny", -1));
        assert!(insert_role_link(&mut links, b"r-allow", -1));
        assert!(insert_role_link(&mut links, b"z", 3));
        assert!(!insert_role_link(&mut links, b"z", 7));
        let names: Vec<_> = links.iter().map(|l| l.rolename.clone()).collect();
        assert_eq!(
            names,
            [b"z".to_vec(), b"r-allow".to_vec(), b"r-deny".to_vec()]
        );
    }

    #[test]
    fn memberships_stay_mirrored() {
        let mut state = DynsecState::new();
        state.clients.insert(b"u".to_vec(), Client::default());
        state.groups.insert(b"g".to_vec(), Group::default());
        state.groups.insert(b"h".to_vec(), Group::default());
        assert!(state.add_member(b"u", b"g", 2));
        assert!(state.add_member(b"u", b"h", 5));
        assert!(!state.add_member(b"u", b"g", 1));
        state.check_invariants().unwrap();
        assert_eq!(state.clients[&b"u".to_vec()].groups[0].groupname, b"h");
        state.anonymous_group = Some(b"h".to_vec());
        assert_eq!(
            state.group_holders(b"h"),
            Holders {
                usernames: vec![b"u".to_vec()],
                anonymous: true
            }
        );
        state.remove_group(b"h");
        assert_eq!(state.anonymous_group, None);
        state.remove_client(b"u");
        state.check_invariants().unwrap();
        assert!(state.groups[&b"g".to_vec()].clients.is_empty());
    }
}
