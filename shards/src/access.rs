//! Who may connect, publish, subscribe and receive: the rules of every authentication and
//! authorisation source a broker runs, combined the way Mosquitto combines them.
//!
//! Placement: each shard holds an `Arc<AccessPolicy>`, an immutable snapshot. A reload or a
//! dynamic-security change builds a new policy and the shards swap it in; a check is a
//! plain call on the current one, never a lock or a file read.
//!
//! Combination (Mosquitto 2.0, `dynsec.md` §8.1 and §9):
//! - CONNECT: dynamic security decides first (allow, deny, or defer for names it does not
//!   know); then the password file; a client without a user name is let in only where
//!   `allow_anonymous` says so; a user name no source accepted is refused when any source
//!   is configured, and accepted when none is (Mosquitto without a password file).
//! - ACL checks: dynamic security first; on defer the ACL file; on defer with no ACL file,
//!   deny if an authentication module is configured, allow if none is.
//! - Broker rules before any source: nobody publishes into `$SYS` (except bridge state
//!   topics) or `$share/`.

use crate::authfile::{AclAccess, AclFile, CredentialCache, PasswordCheck, PasswordFile};
use crate::dynsec::{AclDecision, AclEvent, AclSnapshot, AuthResult, ClientIdentity};
use crate::mqtt::{ByteStr, Bytes};
use std::sync::Arc;

/// What a CONNECT presents.
pub struct AuthRequest<'a> {
    /// Listener index.
    pub listener: usize,
    /// Client identifier (after assignment).
    pub client_id: &'a str,
    /// User name, if given.
    pub username: Option<&'a ByteStr>,
    /// Password, if given.
    pub password: Option<&'a Bytes>,
}

/// The outcome of authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthDecision {
    /// Connect, with this user name.
    Allow {
        /// User name the session runs as.
        username: Option<ByteStr>,
    },
    /// Refused: CONNACK 5 (3.1.1) / 0x87 (5.0), which is what Mosquitto answers for wrong
    /// credentials as well as for anonymous clients where they are not allowed.
    NotAuthorized,
}

/// What an ACL check is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A client publishes.
    Publish,
    /// A message is delivered to a subscriber (retained messages included).
    Receive,
    /// A client subscribes (the full filter, `$share/g/` included).
    Subscribe,
    /// A client unsubscribes.
    Unsubscribe,
}

/// The identity an authorisation check is made for.
#[derive(Clone, Copy, Debug)]
pub struct Identity<'a> {
    /// Listener index.
    pub listener: usize,
    /// Client identifier.
    pub client_id: &'a str,
    /// User name.
    pub username: Option<&'a str>,
}

/// Per-listener part of the policy (with `per_listener_settings false` every listener
/// shares the same files).
#[derive(Clone, Debug, Default)]
pub struct ListenerAccess {
    /// `allow_anonymous` in effect on this listener.
    pub allow_anonymous: bool,
    /// `password_file` (or the password-file plugin).
    pub password_file: Option<Arc<PasswordFile>>,
    /// `acl_file` (or the ACL-file plugin).
    pub acl_file: Option<Arc<AclFile>>,
}

/// A shard's cache of credentials it verified recently (PBKDF2 is slow), for every
/// source. Placement: one per shard, `&mut` next to its `Arc<AccessPolicy>`.
pub type AuthCaches = CredentialCache;

/// The combined rules of a broker.
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    /// Per listener, in configuration order.
    pub listeners: Vec<ListenerAccess>,
    /// The dynamic-security rules, when that module is enabled.
    pub dynsec: Option<Arc<AclSnapshot>>,
}

impl AccessPolicy {
    /// No authentication sources: every topic open, anonymous clients per listener.
    pub fn open(listeners: Vec<ListenerAccess>) -> AccessPolicy {
        AccessPolicy {
            listeners,
            dynsec: None,
        }
    }

    /// The same policy with new dynamic-security rules.
    pub fn with_dynsec(&self, snapshot: Arc<AclSnapshot>) -> AccessPolicy {
        AccessPolicy {
            listeners: self.listeners.clone(),
            dynsec: Some(snapshot),
        }
    }

    fn listener(&self, index: usize) -> Option<&ListenerAccess> {
        self.listeners.get(index)
    }

    /// True when checks on `listener` consult rules (dynamic security or an ACL file),
    /// so remembering their outcome saves work (`crate::acl_memo`).
    pub fn has_rules(&self, listener: usize) -> bool {
        self.dynsec.is_some()
            || self
                .listener(listener)
                .is_some_and(|l| l.acl_file.is_some())
    }

    /// True when something on `listener` authenticates user names.
    fn authenticates(&self, listener: usize) -> bool {
        self.dynsec.is_some()
            || self
                .listener(listener)
                .is_some_and(|l| l.password_file.is_some())
    }

    /// Decides a CONNECT. `caches` hold credentials this shard verified recently.
    pub fn authenticate(&self, request: &AuthRequest<'_>, caches: &mut AuthCaches) -> AuthDecision {
        let username = request.username.filter(|name| !name.is_empty());
        let allow = AuthDecision::Allow {
            username: request.username.cloned(),
        };
        let password = request.password.map(|p| &p[..]);
        if let (Some(snapshot), Some(name)) = (&self.dynsec, username) {
            let client_id = request.client_id.as_bytes();
            match snapshot.authenticate_cached(caches, Some(name.as_bytes()), password, client_id) {
                AuthResult::Allow => return allow,
                AuthResult::Deny(_) => return AuthDecision::NotAuthorized,
                AuthResult::Defer => {}
            }
        }
        let listener = self.listener(request.listener);
        if let (Some(file), Some(name)) =
            (listener.and_then(|l| l.password_file.as_ref()), username)
        {
            match file.check_cached(caches, name.as_bytes(), password) {
                PasswordCheck::Allow => return allow,
                PasswordCheck::Deny => return AuthDecision::NotAuthorized,
                PasswordCheck::UnknownUser => {}
            }
        }
        match username {
            None if listener.is_some_and(|l| l.allow_anonymous) => allow,
            None => AuthDecision::NotAuthorized,
            Some(_) if self.authenticates(request.listener) => AuthDecision::NotAuthorized,
            Some(_) => allow,
        }
    }

    /// May `who` do `action` on `topic` (a topic name, or a filter for (un)subscribe)?
    pub fn allows(&self, action: Action, who: &Identity<'_>, topic: &str) -> bool {
        if action == Action::Publish && publish_forbidden(topic) {
            return false;
        }
        if let Some(snapshot) = &self.dynsec {
            let event = match action {
                Action::Publish => AclEvent::PublishClientSend,
                Action::Receive => AclEvent::PublishClientReceive,
                Action::Subscribe => AclEvent::Subscribe,
                Action::Unsubscribe => AclEvent::Unsubscribe,
            };
            let client = ClientIdentity {
                client_id: who.client_id.as_bytes(),
                username: who.username.map(str::as_bytes),
            };
            match snapshot.decide(event, &client, topic.as_bytes()) {
                AclDecision::Allow => return true,
                AclDecision::Deny => return false,
                AclDecision::Defer => {}
            }
        }
        if let Some(file) = self
            .listener(who.listener)
            .and_then(|l| l.acl_file.as_ref())
        {
            let access = match action {
                Action::Publish => AclAccess::Write,
                Action::Receive => AclAccess::Read,
                Action::Subscribe => AclAccess::Subscribe,
                Action::Unsubscribe => AclAccess::Unsubscribe,
            };
            let username = who.username.map(str::as_bytes);
            return file.check(access, who.client_id.as_bytes(), username, topic.as_bytes());
        }
        // Dynamic security deferred and no ACL file decides: deny (Mosquitto 2.0).
        self.dynsec.is_none()
    }
}

/// Topics no client may publish to, whatever the ACLs say (Mosquitto core, `dynsec.md`
/// §8.1): the broker's own `$SYS` tree, except the bridge state topics, and `$share/`.
fn publish_forbidden(topic: &str) -> bool {
    if let Some(rest) = topic.strip_prefix("$SYS/") {
        let bridge_state = rest
            .strip_prefix("broker/connection/")
            .is_some_and(|tail| tail.split('/').count() == 2 && tail.ends_with("/state"));
        return !bridge_state;
    }
    topic == "$SYS" || topic.starts_with("$share/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(username: Option<&'static str>) -> Identity<'static> {
        Identity {
            listener: 0,
            client_id: "c",
            username,
        }
    }

    #[test]
    fn without_sources_everything_is_open_but_sys_and_share_publishes() {
        let policy = AccessPolicy::open(vec![ListenerAccess {
            allow_anonymous: true,
            ..Default::default()
        }]);
        assert!(policy.allows(Action::Publish, &who(None), "a/b"));
        assert!(policy.allows(Action::Subscribe, &who(None), "$SYS/#"));
        assert!(!policy.allows(Action::Publish, &who(None), "$SYS/broker/uptime"));
        assert!(policy.allows(
            Action::Publish,
            &who(None),
            "$SYS/broker/connection/br1/state"
        ));
        assert!(!policy.allows(Action::Publish, &who(None), "$share/g/t"));
    }

    #[test]
    fn anonymous_clients_follow_the_listener_and_named_ones_pass_without_sources() {
        let policy = AccessPolicy::open(vec![
            ListenerAccess {
                allow_anonymous: true,
                ..Default::default()
            },
            ListenerAccess {
                allow_anonymous: false,
                ..Default::default()
            },
        ]);
        let mut cache = AuthCaches::new().expect("random key");
        let name = ByteStr::from_static("alice");
        let request = |listener, username| AuthRequest {
            listener,
            client_id: "c",
            username,
            password: None,
        };
        assert!(matches!(
            policy.authenticate(&request(0, None), &mut cache),
            AuthDecision::Allow { .. }
        ));
        assert_eq!(
            policy.authenticate(&request(1, None), &mut cache),
            AuthDecision::NotAuthorized
        );
        assert!(matches!(
            policy.authenticate(&request(1, Some(&name)), &mut cache),
            AuthDecision::Allow { .. }
        ));
    }
}
