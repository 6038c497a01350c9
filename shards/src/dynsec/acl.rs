//! The compiled, immutable view of the dynamic-security state that shards consult on
//! every CONNECT, PUBLISH, delivery, SUBSCRIBE and UNSUBSCRIBE (spec §8, §9).
//!
//! Placement: built once per change by the owner of `DynsecState`
//! ([`AclSnapshot::build`]), shared as `Arc<AclSnapshot>` with every shard (it is
//! `Send + Sync` and never mutated). A check is a hash lookup of the username plus a walk
//! over pre-sorted rules; it takes no lock, parses no JSON and allocates nothing:
//!
//! ```text
//!  DynsecState ──build──▶ AclSnapshot { roles: [CompiledRole], clients: {username → chain} }
//!                                      chain = role indices in evaluation order:
//!                                      client roles (prio desc, name asc), then each group
//!                                      (prio desc, name asc) with its roles; repeats dropped
//!  decide(event, identity, topic):
//!      chain of the username (unknown username → Defer) or of the anonymous group
//!      → first matching rule of the event, in chain order → Allow / Deny
//!      → otherwise default access (never for "$CONTROL…" topics) → Allow / Defer
//! ```
//!
//! Per role and event the rules are ordered as Mosquitto evaluates them: for publish
//! events the ACLs of that type by priority; for subscribe/unsubscribe first the literal
//! ACLs (exact match beats any pattern of the same role), then the pattern ACLs by
//! priority. `%c` / `%u` levels are substituted during the walk (see `topic`).
//!
//! Password checks are slow (PBKDF2, ~0.45 ms at 1000 iterations), so each shard keeps an
//! [`CredentialCache`] of verified credentials next to its snapshot; see its doc.

use std::collections::HashMap;

use super::model::{AclType, DefaultAccess, DynsecState};
use super::password::PasswordHash;
use super::topic::{Pattern, Substitution};
use crate::credential_cache::CredentialCache;

/// The four moments at which the broker asks (spec §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclEvent {
    /// A client publishes (also will messages when they are about to be published);
    /// consults `publishClientSend` ACLs.
    PublishClientSend,
    /// A message is about to be delivered to a client (also retained messages on
    /// subscribe); consults `publishClientReceive` ACLs.
    PublishClientReceive,
    /// One SUBSCRIBE filter (shared subscriptions with the full `$share/g/…` string);
    /// consults `subscribeLiteral` then `subscribePattern` ACLs of each role.
    Subscribe,
    /// One UNSUBSCRIBE filter; consults `unsubscribeLiteral` then `unsubscribePattern`.
    Unsubscribe,
}

impl AclEvent {
    /// All events.
    pub const ALL: [AclEvent; 4] = [
        AclEvent::PublishClientSend,
        AclEvent::PublishClientReceive,
        AclEvent::Subscribe,
        AclEvent::Unsubscribe,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn default_allowed(self, access: &DefaultAccess) -> bool {
        match self {
            AclEvent::PublishClientSend => access.publish_client_send,
            AclEvent::PublishClientReceive => access.publish_client_receive,
            AclEvent::Subscribe => access.subscribe,
            AclEvent::Unsubscribe => access.unsubscribe,
        }
    }
}

/// The connection an ACL check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIdentity<'a> {
    /// The connection's final client id (broker-assigned ids included).
    pub client_id: &'a [u8],
    /// The CONNECT username; `None` or empty means anonymous.
    pub username: Option<&'a [u8]>,
}

impl<'a> ClientIdentity<'a> {
    /// The username, with an empty one treated as absent (spec §9).
    fn name(&self) -> Option<&'a [u8]> {
        self.username.filter(|u| !u.is_empty())
    }

    fn substitution(&self) -> Substitution<'a> {
        Substitution {
            client_id: self.client_id,
            username: self.name(),
        }
    }
}

/// Outcome of an ACL check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclDecision {
    /// An ACL or the default access allows it.
    Allow,
    /// An ACL denies it.
    Deny,
    /// Dynsec has no opinion (username unknown to dynsec, or default access false, or a
    /// `$CONTROL` topic): deny unless another ACL source of the broker allows.
    Defer,
}

/// Why a CONNECT was refused by dynsec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDenied {
    /// The client is disabled.
    Disabled,
    /// The client is bound to another client id.
    ClientIdMismatch,
    /// The password does not match.
    WrongPassword,
}

/// Outcome of a CONNECT authentication (spec §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Known client, right password: accept.
    Allow,
    /// Known client, refused: CONNACK "not authorized".
    Deny(AuthDenied),
    /// Not dynsec's business (no username, no password, unknown username, or a known
    /// client without a password): refuse unless another mechanism accepts.
    Defer,
}

/// One compiled ACL.
#[derive(Debug, Clone)]
struct Rule {
    test: Test,
    allow: bool,
}

#[derive(Debug, Clone)]
enum Test {
    /// publish events: filter against topic.
    Topic(Pattern),
    /// literal subscribe/unsubscribe: exact bytes.
    Literal(Box<[u8]>),
    /// pattern subscribe/unsubscribe: ACL covers the requested filter.
    Cover(Pattern),
}

impl Rule {
    fn matches(&self, topic: &[u8], with: &Substitution<'_>) -> bool {
        match &self.test {
            Test::Topic(pattern) => pattern.matches_topic(topic, with),
            Test::Literal(literal) => **literal == *topic,
            Test::Cover(pattern) => pattern.covers_filter(topic, with),
        }
    }
}

/// A role's rules per event, in evaluation order.
#[derive(Debug, Clone, Default)]
struct CompiledRole {
    rules: [Box<[Rule]>; 4],
}

#[derive(Debug, Clone)]
struct CompiledClient {
    clientid: Option<Box<[u8]>>,
    disabled: bool,
    password: Option<PasswordHash>,
    chain: Box<[u32]>,
}

/// Which rule chain applies to a connection, resolved once (e.g. at CONNECT) and reused
/// for every check while the snapshot generation is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclSubject {
    generation: u64,
    kind: SubjectKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubjectKind {
    /// A username dynsec does not know: every check defers.
    Unknown,
    /// No username: the anonymous group's roles.
    Anonymous,
    /// A known client, by index.
    Client(u32),
}

/// The immutable, compiled ACL and credential view. See the module doc.
#[derive(Debug)]
pub struct AclSnapshot {
    generation: u64,
    default_access: DefaultAccess,
    roles: Box<[CompiledRole]>,
    clients: Box<[CompiledClient]>,
    client_index: HashMap<Box<[u8]>, u32>,
    anonymous_chain: Box<[u32]>,
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<AclSnapshot>();
};

fn compile_role(role: &super::model::Role) -> CompiledRole {
    let topic_rules = |acl_type: AclType| -> Box<[Rule]> {
        role.acls(acl_type)
            .iter()
            .map(|acl| Rule {
                test: Test::Topic(Pattern::compile(&acl.topic)),
                allow: acl.allow,
            })
            .collect()
    };
    let filter_rules = |literal: AclType, pattern: AclType| -> Box<[Rule]> {
        let literals = role.acls(literal).iter().map(|acl| Rule {
            test: Test::Literal(acl.topic.as_slice().into()),
            allow: acl.allow,
        });
        let patterns = role.acls(pattern).iter().map(|acl| Rule {
            test: Test::Cover(Pattern::compile(&acl.topic)),
            allow: acl.allow,
        });
        literals.chain(patterns).collect()
    };
    CompiledRole {
        rules: [
            topic_rules(AclType::PublishClientSend),
            topic_rules(AclType::PublishClientReceive),
            filter_rules(AclType::SubscribeLiteral, AclType::SubscribePattern),
            filter_rules(AclType::UnsubscribeLiteral, AclType::UnsubscribePattern),
        ],
    }
}

impl AclSnapshot {
    /// Compiles `state`. Cost is linear in the size of the state; call it once per
    /// changed request, not per check.
    pub fn build(state: &DynsecState) -> AclSnapshot {
        let role_index: HashMap<&[u8], u32> = state
            .roles()
            .keys()
            .enumerate()
            .map(|(i, name)| (name.as_slice(), u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        let roles: Box<[CompiledRole]> = state.roles().values().map(compile_role).collect();
        let chain_of = |names: &mut dyn Iterator<Item = &[u8]>| -> Box<[u32]> {
            let mut chain: Vec<u32> = Vec::new();
            for name in names {
                if let Some(&index) = role_index.get(name) {
                    if !chain.contains(&index) {
                        chain.push(index);
                    }
                }
            }
            chain.into_boxed_slice()
        };
        let group_roles = |groupname: &[u8]| -> Vec<&[u8]> {
            state
                .groups()
                .get(groupname)
                .map(|g| g.roles().iter().map(|l| l.rolename.as_slice()).collect())
                .unwrap_or_default()
        };
        let mut clients = Vec::with_capacity(state.clients().len());
        let mut client_index = HashMap::with_capacity(state.clients().len());
        for (username, client) in state.clients() {
            let direct = client.roles().iter().map(|l| l.rolename.as_slice());
            let via_groups = client
                .groups()
                .iter()
                .flat_map(|g| group_roles(&g.groupname).into_iter());
            let chain = chain_of(&mut direct.chain(via_groups));
            let index = u32::try_from(clients.len()).unwrap_or(u32::MAX);
            client_index.insert(username.as_slice().into(), index);
            clients.push(CompiledClient {
                clientid: client.clientid.as_deref().map(Into::into),
                disabled: client.disabled,
                password: client.password.clone(),
                chain,
            });
        }
        let anonymous_chain = match state.anonymous_group() {
            Some(groupname) => chain_of(&mut group_roles(groupname).into_iter()),
            None => Box::default(),
        };
        AclSnapshot {
            generation: state.generation(),
            default_access: state.default_access(),
            roles,
            clients: clients.into_boxed_slice(),
            client_index,
            anonymous_chain,
        }
    }

    /// The state generation this snapshot was built from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Resolves which rules apply to a username (once per connection).
    pub fn subject(&self, username: Option<&[u8]>) -> AclSubject {
        let kind = match username.filter(|u| !u.is_empty()) {
            None => SubjectKind::Anonymous,
            Some(name) => match self.client_index.get(name) {
                Some(&index) => SubjectKind::Client(index),
                None => SubjectKind::Unknown,
            },
        };
        AclSubject {
            generation: self.generation,
            kind,
        }
    }

    /// Decides an ACL check (spec §8.2).
    pub fn decide(
        &self,
        event: AclEvent,
        client: &ClientIdentity<'_>,
        topic: &[u8],
    ) -> AclDecision {
        let subject = self.subject(client.name());
        self.decide_subject(subject, event, client, topic)
    }

    /// Like [`AclSnapshot::decide`] with a subject resolved earlier; a subject from
    /// another snapshot generation is resolved again, so a stale one is never wrong.
    pub fn decide_subject(
        &self,
        subject: AclSubject,
        event: AclEvent,
        client: &ClientIdentity<'_>,
        topic: &[u8],
    ) -> AclDecision {
        let subject = if subject.generation == self.generation {
            subject
        } else {
            self.subject(client.name())
        };
        let chain: &[u32] = match subject.kind {
            SubjectKind::Unknown => return AclDecision::Defer,
            SubjectKind::Anonymous => &self.anonymous_chain,
            SubjectKind::Client(index) => match self.clients.get(index as usize) {
                Some(compiled) => &compiled.chain,
                None => return AclDecision::Defer,
            },
        };
        let with = client.substitution();
        for &role in chain {
            let Some(role) = self.roles.get(role as usize) else {
                continue;
            };
            for rule in role.rules[event.index()].iter() {
                if rule.matches(topic, &with) {
                    return if rule.allow {
                        AclDecision::Allow
                    } else {
                        AclDecision::Deny
                    };
                }
            }
        }
        if event.default_allowed(&self.default_access) && !topic.starts_with(b"$CONTROL") {
            AclDecision::Allow
        } else {
            AclDecision::Defer
        }
    }

    /// Whether dynsec allows the action (a `Defer` counts as not allowed).
    pub fn check(&self, event: AclEvent, client: &ClientIdentity<'_>, topic: &[u8]) -> bool {
        self.decide(event, client, topic) == AclDecision::Allow
    }

    /// Authenticates a CONNECT (spec §9) with a full password hash. Prefer
    /// [`AclSnapshot::authenticate_cached`] on a shard.
    pub fn authenticate(
        &self,
        username: Option<&[u8]>,
        password: Option<&[u8]>,
        client_id: &[u8],
    ) -> AuthResult {
        self.authenticate_with(username, password, client_id, None)
    }

    /// Like [`AclSnapshot::authenticate`], consulting and filling `cache` so that a
    /// repeated login with the same credentials skips PBKDF2.
    pub fn authenticate_cached(
        &self,
        cache: &mut CredentialCache,
        username: Option<&[u8]>,
        password: Option<&[u8]>,
        client_id: &[u8],
    ) -> AuthResult {
        self.authenticate_with(username, password, client_id, Some(cache))
    }

    fn authenticate_with(
        &self,
        username: Option<&[u8]>,
        password: Option<&[u8]>,
        client_id: &[u8],
        cache: Option<&mut CredentialCache>,
    ) -> AuthResult {
        let (Some(username), Some(password)) = (
            username.filter(|u| !u.is_empty()),
            password.filter(|p| !p.is_empty()),
        ) else {
            return AuthResult::Defer;
        };
        let Some(client) = self
            .client_index
            .get(username)
            .and_then(|&i| self.clients.get(i as usize))
        else {
            return AuthResult::Defer;
        };
        if client.disabled {
            return AuthResult::Deny(AuthDenied::Disabled);
        }
        if client
            .clientid
            .as_deref()
            .is_some_and(|bound| bound != client_id)
        {
            return AuthResult::Deny(AuthDenied::ClientIdMismatch);
        }
        let Some(hash) = &client.password else {
            return AuthResult::Defer;
        };
        let verified = match cache {
            Some(cache) => cache.verify(username, password, hash),
            None => hash.verify(password),
        };
        if verified {
            AuthResult::Allow
        } else {
            AuthResult::Deny(AuthDenied::WrongPassword)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynsec::control::{handle_request, RequestContext};
    use crate::dynsec::password::{PasswordPolicy, StoredForm};

    const CTX: RequestContext<'static> = RequestContext {
        client_id: b"t",
        username: None,
    };

    fn state_with(request: &str) -> DynsecState {
        let mut state = DynsecState::new();
        state.set_password_policy(PasswordPolicy {
            iterations: 2,
            salt_bytes: 12,
            form: StoredForm::Encoded,
        });
        let outcome = handle_request(&mut state, request.as_bytes(), &CTX);
        assert!(!String::from_utf8(outcome.response.unwrap())
            .unwrap()
            .contains("error"));
        state
    }

    #[test]
    fn cache_hits_only_for_the_current_password() {
        let mut state = state_with(
            r#"{"commands":[{"command":"createClient","username":"alice","password":"one"}]}"#,
        );
        let mut cache = CredentialCache::new().unwrap();
        let first = AclSnapshot::build(&state);
        let login = |snapshot: &AclSnapshot, cache: &mut CredentialCache, pw: &[u8]| {
            snapshot.authenticate_cached(cache, Some(b"alice"), Some(pw), b"id")
        };
        assert_eq!(login(&first, &mut cache, b"one"), AuthResult::Allow);
        assert_eq!(cache.len(), 1);
        assert_eq!(login(&first, &mut cache, b"one"), AuthResult::Allow);
        assert_eq!(
            login(&first, &mut cache, b"two"),
            AuthResult::Deny(AuthDenied::WrongPassword)
        );
        assert_eq!(cache.len(), 1, "failures are not cached");
        let outcome = handle_request(
            &mut state,
            br#"{"commands":[{"command":"setClientPassword","username":"alice","password":"two"}]}"#,
            &CTX,
        );
        assert!(outcome.changed);
        let second = AclSnapshot::build(&state);
        assert_eq!(
            login(&second, &mut cache, b"one"),
            AuthResult::Deny(AuthDenied::WrongPassword),
            "a cached old password must not survive a password change"
        );
        assert_eq!(login(&second, &mut cache, b"two"), AuthResult::Allow);
        assert_eq!(
            login(&first, &mut cache, b"one"),
            AuthResult::Allow,
            "old snapshot, old hash"
        );
    }

    #[test]
    fn cache_is_bounded() {
        let commands: Vec<String> = (0..=crate::credential_cache::CREDENTIAL_CACHE_ENTRIES_MAX)
            .map(|i| format!(r#"{{"command":"createClient","username":"u{i}","password":"p"}}"#))
            .collect();
        let state = state_with(&format!(r#"{{"commands":[{}]}}"#, commands.join(",")));
        let snapshot = AclSnapshot::build(&state);
        let mut cache = CredentialCache::new().unwrap();
        for i in 0..=crate::credential_cache::CREDENTIAL_CACHE_ENTRIES_MAX {
            let user = format!("u{i}");
            let result =
                snapshot.authenticate_cached(&mut cache, Some(user.as_bytes()), Some(b"p"), b"c");
            assert_eq!(result, AuthResult::Allow);
            assert!(cache.len() <= crate::credential_cache::CREDENTIAL_CACHE_ENTRIES_MAX);
        }
        assert_eq!(cache.len(), 1, "cleared when full, then refilled");
    }

    #[test]
    fn authentication_rules() {
        let state = state_with(
            r#"{"commands":[
            {"command":"createClient","username":"bound","password":"pw","clientid":"dev-1"},
            {"command":"createClient","username":"off","password":"pw"},
            {"command":"disableClient","username":"off"},
            {"command":"createClient","username":"nopw"}]}"#,
        );
        let snapshot = AclSnapshot::build(&state);
        let auth = |u: Option<&[u8]>, p: Option<&[u8]>, id: &[u8]| snapshot.authenticate(u, p, id);
        assert_eq!(
            auth(Some(b"bound"), Some(b"pw"), b"dev-1"),
            AuthResult::Allow
        );
        assert_eq!(
            auth(Some(b"bound"), Some(b"pw"), b"dev-2"),
            AuthResult::Deny(AuthDenied::ClientIdMismatch)
        );
        assert_eq!(
            auth(Some(b"off"), Some(b"pw"), b"x"),
            AuthResult::Deny(AuthDenied::Disabled)
        );
        assert_eq!(auth(Some(b"nopw"), Some(b"pw"), b"x"), AuthResult::Defer);
        assert_eq!(auth(Some(b"ghost"), Some(b"pw"), b"x"), AuthResult::Defer);
        assert_eq!(auth(Some(b""), Some(b"pw"), b"x"), AuthResult::Defer);
        assert_eq!(auth(Some(b"bound"), Some(b""), b"dev-1"), AuthResult::Defer);
        assert_eq!(auth(None, None, b"x"), AuthResult::Defer);
    }

    #[test]
    fn stale_subjects_are_resolved_again() {
        let mut state = state_with(
            r#"{"commands":[{"command":"createRole","rolename":"r","acls":[{"acltype":"publishClientSend","topic":"t/#","allow":true}]},
            {"command":"createClient","username":"a"},{"command":"createClient","username":"b","roles":[{"rolename":"r"}]}]}"#,
        );
        let old = AclSnapshot::build(&state);
        let subject = old.subject(Some(b"b"));
        // Deleting "a" shifts "b" to another index in the next snapshot.
        handle_request(
            &mut state,
            br#"{"commands":[{"command":"deleteClient","username":"a"}]}"#,
            &CTX,
        );
        let new = AclSnapshot::build(&state);
        assert_ne!(new.generation(), old.generation());
        let b = ClientIdentity {
            client_id: b"c",
            username: Some(b"b"),
        };
        assert_eq!(
            new.decide_subject(subject, AclEvent::PublishClientSend, &b, b"t/x"),
            AclDecision::Allow
        );
        assert_eq!(
            new.decide(AclEvent::PublishClientSend, &b, b"t/x"),
            AclDecision::Allow
        );
        assert_eq!(
            new.decide(AclEvent::PublishClientSend, &b, b"u/x"),
            AclDecision::Defer
        );
    }
}
