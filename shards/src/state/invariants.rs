//! What must hold of a session store after every change: the checks the simulator and
//! the tests run after each step, and debug builds after each apply (for the session it
//! touched).
//!
//! Each check names what broke, so a failing seed says more than "not equal".

use super::{InflightState, Session, SessionKey, SessionStore};
use crate::mqtt::QoS;
use crate::topics::{parse_subscription, Subscription as ParsedFilter};
use std::collections::{HashMap, HashSet};

impl SessionStore {
    /// Checks every invariant of the store: the client-id index and the sessions agree,
    /// each session holds (see [`check_session`]), and the subscription index holds
    /// exactly the sessions' subscriptions.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut by_id = 0;
        for (key, session) in self.iter() {
            if self.key_of(session.client_id.as_str()) != Some(key) {
                return Err(format!("client id index misses {:?}", session.client_id));
            }
            by_id += 1;
            check_session(self, key, session)?;
        }
        if by_id != self.client_id_count() {
            return Err("client id index holds ids without a session".into());
        }
        self.check_index()
    }

    /// [`check_session`] for the session of `key`, if it exists.
    pub fn check_one(&self, key: SessionKey) -> Result<(), String> {
        match self.get(key) {
            Some(session) => check_session(self, key, session),
            None => Ok(()),
        }
    }

    /// The index holds every subscription of every session and nothing else.
    fn check_index(&self) -> Result<(), String> {
        let mut plain: HashMap<&[u8], u32> = HashMap::new();
        let mut shared_members: HashSet<(SessionKey, Vec<u8>)> = HashSet::new();
        for (key, session) in self.iter() {
            for filter in session.subscriptions.keys() {
                match parse_subscription(filter.as_bytes()) {
                    Ok(ParsedFilter::Plain { .. }) => {
                        *plain.entry(filter.as_bytes()).or_default() += 1;
                    }
                    Ok(ParsedFilter::Shared { .. }) => {
                        shared_members.insert((key, filter.as_bytes().to_vec()));
                    }
                    Err(_) => return Err(format!("invalid filter {filter:?} in a session")),
                }
            }
        }
        let index = &self.index;
        if index.plain.len() != plain.values().map(|n| *n as usize).sum::<usize>() {
            return Err("plain index and subscriptions differ in size".into());
        }
        for (filter, count) in &plain {
            if index.plain_count(filter) != *count {
                return Err(format!("subscriber count of {filter:?} out of step"));
            }
        }
        if index.plain_filter_count() != plain.len() {
            return Err("subscriber counts kept for filters nobody subscribes to".into());
        }
        let members: usize = index.groups.values().map(|g| g.members.len()).sum();
        if members != shared_members.len() {
            return Err("shared group members and shared subscriptions differ".into());
        }
        Ok(())
    }
}

/// One session's invariants: byte sums, unique packet ids, window entries consistent with
/// their QoS, queue entries with a packet id exactly when QoS 1/2, and every subscription
/// in the index.
pub fn check_session(
    store: &SessionStore,
    key: SessionKey,
    session: &Session,
) -> Result<(), String> {
    let who = session.client_id.as_str();
    let outbound = &session.outbound;
    let mut ids = HashSet::new();
    let mut inflight_bytes = 0;
    for entry in &outbound.inflight {
        if !ids.insert(entry.packet_id) {
            return Err(format!(
                "{who}: packet id {} twice in flight",
                entry.packet_id
            ));
        }
        let fits = match (&entry.state, &entry.delivery) {
            (InflightState::AwaitPubComp, None) => true,
            (InflightState::AwaitPubAck, Some(d)) => d.qos == QoS::AtLeastOnce,
            (InflightState::AwaitPubRec, Some(d)) => d.qos == QoS::ExactlyOnce,
            _ => false,
        };
        if !fits {
            return Err(format!(
                "{who}: window entry {} out of state",
                entry.packet_id
            ));
        }
        inflight_bytes += entry
            .delivery
            .as_ref()
            .map_or(0, |d| d.message.payload.len());
    }
    if inflight_bytes != outbound.inflight_bytes {
        return Err(format!("{who}: in-flight bytes out of step"));
    }
    let mut queued_bytes = 0;
    for queued in &outbound.queue {
        if (queued.delivery.qos == QoS::AtMostOnce) != queued.packet_id.is_none() {
            return Err(format!("{who}: queued delivery and its packet id disagree"));
        }
        queued_bytes += queued.delivery.message.payload.len();
    }
    if queued_bytes != outbound.queued_bytes {
        return Err(format!("{who}: queued bytes out of step"));
    }
    for (filter, subscription) in &session.subscriptions {
        let indexed = match parse_subscription(filter.as_bytes()) {
            Ok(ParsedFilter::Plain { .. }) => {
                store.index.plain.get(filter.as_bytes(), &key) == Some(subscription)
            }
            Ok(ParsedFilter::Shared { .. }) => store.index.groups.values().any(|group| {
                group
                    .members
                    .iter()
                    .any(|(member, sub)| *member == key && sub == subscription)
            }),
            Err(_) => false,
        };
        if !indexed {
            return Err(format!(
                "{who}: subscription {filter:?} missing from the index"
            ));
        }
    }
    Ok(())
}
