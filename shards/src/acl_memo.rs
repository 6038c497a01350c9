//! `AclMemo`: the last publish and the last receive decision of one connection, so a client
//! that keeps publishing to (or receiving from) the same topic is checked once, not once
//! per message.
//!
//! Why: with dynamic security every PUBLISH is checked twice (the publisher may send, each
//! subscriber may receive), and a check resolves the client's roles and walks their ACLs.
//! Most clients use one or a few topics over and over, so the walk is repeated for nothing.
//!
//! Correctness: a memo holds the topic's bytes (compared in full, never a hash) and the
//! shard's access epoch it was decided under. The epoch changes whenever the shard swaps
//! in a new [`crate::access::AccessPolicy`] (a dynamic-security change or a reload), so a
//! decision never outlives the rules it came from. The identity a check is made for (client
//! id, user name, listener) is the connection's own and fixed for its life.
//!
//! Placement: one per [`crate::connection::Connection`], empty (one pointer) until the
//! connection's first check under rules that make checks worth remembering. Called by the
//! shard's publish admission and delivery.

use crate::access::{AccessPolicy, Action, Identity};
use std::cell::RefCell;

/// One remembered decision.
#[derive(Default)]
struct Decision {
    /// Access epoch it was made under; 0 = none.
    epoch: u64,
    topic: Vec<u8>,
    allowed: bool,
}

/// The last [`Action::Publish`] and [`Action::Receive`] decision of one connection.
#[derive(Default)]
pub struct AclMemo {
    decisions: RefCell<Option<Box<[Decision; 2]>>>,
}

impl AclMemo {
    /// [`AccessPolicy::allows`] for `who` (this memo's connection), remembered per action
    /// under `epoch` (never 0). Other actions, and policies whose checks cost nothing
    /// (no dynamic security, no ACL file), are passed straight through.
    pub fn allows(
        &self,
        policy: &AccessPolicy,
        epoch: u64,
        action: Action,
        who: &Identity<'_>,
        topic: &str,
    ) -> bool {
        let slot = match action {
            Action::Publish => 0,
            Action::Receive => 1,
            Action::Subscribe | Action::Unsubscribe => return policy.allows(action, who, topic),
        };
        if !policy.has_rules(who.listener) {
            return policy.allows(action, who, topic);
        }
        let mut decisions = self.decisions.borrow_mut();
        let decision = &mut decisions.get_or_insert_with(Box::default)[slot];
        if decision.epoch != epoch || decision.topic != topic.as_bytes() {
            decision.allowed = policy.allows(action, who, topic);
            decision.epoch = epoch;
            decision.topic.clear();
            decision.topic.extend_from_slice(topic.as_bytes());
        }
        decision.allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::ListenerAccess;
    use crate::authfile::AclFile;
    use std::sync::Arc;

    fn policy(acl: &str) -> AccessPolicy {
        let file = AclFile::parse(std::path::Path::new("acl"), acl).expect("acl file");
        AccessPolicy::open(vec![ListenerAccess {
            allow_anonymous: true,
            acl_file: Some(Arc::new(file)),
            ..Default::default()
        }])
    }

    const WHO: Identity<'static> = Identity {
        listener: 0,
        client_id: "c",
        username: Some("u"),
    };

    #[test]
    fn a_decision_is_remembered_per_topic_action_and_epoch() {
        let memo = AclMemo::default();
        let open = policy("user u\ntopic write a/#\ntopic read b/#\n");
        let closed = policy("user u\ntopic read a/#\n");
        assert!(memo.allows(&open, 1, Action::Publish, &WHO, "a/1"));
        assert!(
            !memo.allows(&open, 1, Action::Publish, &WHO, "b/1"),
            "other topic"
        );
        assert!(memo.allows(&open, 1, Action::Receive, &WHO, "b/1"));
        assert!(memo.allows(&open, 1, Action::Publish, &WHO, "a/1"));
        // Same epoch: the remembered answer stands even if handed other rules (the shard
        // never does that; it shows the memo answers without asking).
        assert!(memo.allows(&closed, 1, Action::Publish, &WHO, "a/1"));
        assert!(
            !memo.allows(&closed, 2, Action::Publish, &WHO, "a/1"),
            "a new epoch decides again"
        );
        assert!(memo.allows(&closed, 2, Action::Receive, &WHO, "a/1"));
        assert!(!memo.allows(&closed, 2, Action::Receive, &WHO, "b/1"));
    }

    #[test]
    fn without_rules_nothing_is_stored() {
        let memo = AclMemo::default();
        let open = AccessPolicy::open(vec![ListenerAccess {
            allow_anonymous: true,
            ..Default::default()
        }]);
        assert!(memo.allows(&open, 1, Action::Publish, &WHO, "a"));
        assert!(!memo.allows(&open, 1, Action::Publish, &WHO, "$SYS/x"));
        assert!(memo.decisions.borrow().is_none());
    }
}
