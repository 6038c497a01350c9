//! Who may connect, publish, subscribe and receive: the seam between the protocol code and
//! the authentication/authorisation backends (anonymous policy now; password and ACL files
//! and dynamic security plug in here).
//!
//! Placement: each shard holds an `Arc<dyn AccessControl>`, an immutable snapshot of the
//! rules. A reload or a dynamic-security change builds a new snapshot and swaps it in; a
//! check is a plain call on the current one, never a lock.

use crate::mqtt::{ByteStr, Bytes};

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
    /// Connect, with this user name (backends may replace it, e.g. a certificate identity).
    Allow {
        /// User name the session runs as.
        username: Option<ByteStr>,
    },
    /// Wrong user name or password: CONNACK 4 (3.1.1) / 0x86 (5.0).
    BadCredentials,
    /// Not allowed to connect: CONNACK 5 / 0x87.
    NotAuthorized,
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

/// An authentication and authorisation policy.
pub trait AccessControl: Send + Sync {
    /// Decides a CONNECT.
    fn authenticate(&self, request: &AuthRequest<'_>, allow_anonymous: bool) -> AuthDecision;
    /// May `who` publish to `topic`?
    fn may_publish(&self, who: &Identity<'_>, topic: &str) -> bool;
    /// May `who` receive a message on `topic`?
    fn may_receive(&self, who: &Identity<'_>, topic: &str) -> bool;
    /// May `who` subscribe to `filter`?
    fn may_subscribe(&self, who: &Identity<'_>, filter: &str) -> bool;
}

/// No users and no ACLs: anonymous clients are allowed where the listener allows them,
/// clients presenting a user name are accepted (Mosquitto with no password file), and every
/// topic is open.
pub struct OpenAccess;

impl AccessControl for OpenAccess {
    fn authenticate(&self, request: &AuthRequest<'_>, allow_anonymous: bool) -> AuthDecision {
        if request.username.is_none() && !allow_anonymous {
            return AuthDecision::NotAuthorized;
        }
        AuthDecision::Allow {
            username: request.username.cloned(),
        }
    }

    fn may_publish(&self, _who: &Identity<'_>, _topic: &str) -> bool {
        true
    }

    fn may_receive(&self, _who: &Identity<'_>, _topic: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _who: &Identity<'_>, _filter: &str) -> bool {
        true
    }
}
