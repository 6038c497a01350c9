//! `SessionStore`: the sessions of one shard, the subscription index derived from them, and
//! the one mutation of durable session state.
//!
//! Two doors lead to the same mutation ([`SessionStore::update`]):
//! - [`SessionStore::apply`], the shard's own path: a [`Delta`] its protocol code decided,
//!   keyed by the session's slot. Its preconditions are asserted: a failure is a bug in
//!   the shard, not bad input.
//! - [`SessionStore::apply_named`], the path of data from outside (a restored file, a
//!   replicated record): keyed by client id, and checked by [`SessionStore::check`] first.
//!   A change that does not fit the state is refused with an [`ApplyError`] and changes
//!   nothing; the caller decides (refuse the file, ask for a snapshot).
//!
//! Called by the shard (`shard::*`), by the restore of the persistence file and by the
//! replication apply path of a follower.

use super::change::{Delta, SessionDelta};
use super::index::{InterestChanges, SubscriptionIndex};
use super::outbound::{Inflight, InflightState, Queued};
use super::{Session, SessionKey};
use crate::mqtt::{ByteStr, PacketId, QoS};
use crate::topics::parse_subscription;
use rustc_hash::FxHashMap;
use slab::Slab;

pub use super::index::{InterestChange, SharedGroup, SharedKey};

/// What `apply` did besides mutating: the created key and interest changes to broadcast.
#[derive(Debug, Default)]
pub struct Applied {
    /// Key of a session created by `Delta::Create`.
    pub created: Option<SessionKey>,
    /// Interest changes, in order.
    pub interest: InterestChanges,
}

/// Why a change from outside was refused. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplyError {
    /// Occurs when a change names a client id that has no session here.
    UnknownSession(String),
    /// Occurs when `Created` names a client id that already has a session.
    SessionExists(String),
    /// Occurs when a delivery enters the window under a packet id already in flight.
    PacketIdInUse(u16),
    /// Occurs when an acknowledgement names a packet id that is not in flight.
    PacketIdNotInFlight(u16),
    /// Occurs when PUBREC is applied to an entry that is not waiting for one.
    NotAwaitingPubRec(u16),
    /// Occurs when a queue change finds the queue empty, or its front unfit for it.
    QueueMismatch(&'static str),
    /// Occurs when a QoS 0 delivery is put in flight, or a QoS 1/2 one queued without a
    /// packet id (or QoS 0 with one).
    QosMismatch(&'static str),
    /// Occurs when a subscription's filter is not a valid topic filter.
    InvalidFilter(String),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::UnknownSession(id) => write!(f, "no session for client id {id:?}"),
            ApplyError::SessionExists(id) => write!(f, "client id {id:?} already has a session"),
            ApplyError::PacketIdInUse(id) => write!(f, "packet id {id} already in flight"),
            ApplyError::PacketIdNotInFlight(id) => write!(f, "packet id {id} not in flight"),
            ApplyError::NotAwaitingPubRec(id) => write!(f, "packet id {id} awaits no PUBREC"),
            ApplyError::QueueMismatch(why) | ApplyError::QosMismatch(why) => f.write_str(why),
            ApplyError::InvalidFilter(filter) => write!(f, "invalid topic filter {filter:?}"),
        }
    }
}

impl std::error::Error for ApplyError {}

/// All sessions of one shard.
#[derive(Default)]
pub struct SessionStore {
    sessions: Slab<Session>,
    by_client_id: FxHashMap<ByteStr, SessionKey>,
    /// The subscription index, derived from the sessions' subscriptions.
    pub index: SubscriptionIndex,
}

impl SessionStore {
    /// The session with `client_id`, if any.
    pub fn key_of(&self, client_id: &str) -> Option<SessionKey> {
        self.by_client_id.get(client_id.as_bytes()).copied()
    }

    /// The session `key`.
    pub fn get(&self, key: SessionKey) -> Option<&Session> {
        self.sessions.get(key as usize)
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Number of client ids indexed (equal to [`Self::len`] when the store is sound).
    pub fn client_id_count(&self) -> usize {
        self.by_client_id.len()
    }

    /// All sessions with their keys.
    pub fn iter(&self) -> impl Iterator<Item = (SessionKey, &Session)> {
        self.sessions
            .iter()
            .map(|(key, session)| (key as SessionKey, session))
    }

    /// Applies one change the shard decided. Panics if it does not fit the state: the
    /// protocol code checked what it relies on before deciding, so a misfit is a bug in
    /// this shard, not bad input (data from outside goes through [`Self::apply_named`]).
    pub fn apply(&mut self, delta: Delta) -> Applied {
        match delta {
            Delta::Create {
                client_id,
                protocol,
                expiry_interval,
                username,
            } => {
                let created = SessionDelta::Created {
                    protocol,
                    expiry_interval,
                    username,
                };
                match self.apply_named(client_id, created) {
                    Ok(applied) => applied,
                    Err(error) => panic!("the shard created a session it had: {error}"),
                }
            }
            Delta::Update { key, change } => {
                let Some(session) = self.sessions.get(key as usize) else {
                    panic!("{} for session slot {key}, which is empty", change.name());
                };
                if let Err(error) = check(session, &change) {
                    panic!("the shard decided a change that does not fit: {error}");
                }
                let applied = self.update(key, change);
                debug_assert_eq!(self.check_one(key), Ok(()));
                applied
            }
        }
    }

    /// Applies a change from outside (a restored file, a replicated record) to the
    /// session of `client_id`, or refuses it, changing nothing, when it does not fit.
    pub fn apply_named(
        &mut self,
        client_id: ByteStr,
        change: SessionDelta,
    ) -> Result<Applied, ApplyError> {
        if let SessionDelta::Created {
            protocol,
            expiry_interval,
            username,
        } = change
        {
            if self.by_client_id.contains_key(&client_id) {
                return Err(ApplyError::SessionExists(client_id.to_string()));
            }
            let mut session = Session::new(client_id.clone(), protocol, expiry_interval);
            session.username = username;
            let key = self.sessions.insert(session) as SessionKey;
            self.by_client_id.insert(client_id, key);
            return Ok(Applied {
                created: Some(key),
                ..Applied::default()
            });
        }
        let Some(key) = self.key_of(client_id.as_str()) else {
            return Err(ApplyError::UnknownSession(client_id.to_string()));
        };
        let Some(session) = self.sessions.get(key as usize) else {
            return Err(ApplyError::UnknownSession(client_id.to_string()));
        };
        check(session, &change)?;
        let applied = self.update(key, change);
        debug_assert_eq!(self.check_one(key), Ok(()));
        Ok(applied)
    }

    /// The one mutation. `change` passed [`check`] against session `key`, which exists;
    /// nothing here can fail.
    fn update(&mut self, key: SessionKey, change: SessionDelta) -> Applied {
        let mut applied = Applied::default();
        match change {
            SessionDelta::Ended => {
                let session = self.sessions.remove(key as usize);
                for filter in session.subscriptions.keys() {
                    self.index.remove(key, filter, &mut applied.interest);
                }
                self.by_client_id.remove(&session.client_id);
            }
            SessionDelta::Subscribed {
                filter,
                subscription,
            } => {
                if let Some(session) = self.sessions.get_mut(key as usize) {
                    session.subscriptions.insert(filter.clone(), subscription);
                    self.index
                        .insert(key, &filter, subscription, &mut applied.interest);
                }
            }
            SessionDelta::Unsubscribed { filter } => {
                let removed = self
                    .sessions
                    .get_mut(key as usize)
                    .and_then(|session| session.subscriptions.remove(&filter));
                if removed.is_some() {
                    self.index.remove(key, &filter, &mut applied.interest);
                }
            }
            change => {
                if let Some(session) = self.sessions.get_mut(key as usize) {
                    apply_to_session(session, change);
                }
            }
        }
        applied
    }
}

/// Whether `change` fits `session`: every precondition the mutation relies on. The shard's
/// path asserts it; the path of data from outside refuses what fails it.
pub fn check(session: &Session, change: &SessionDelta) -> Result<(), ApplyError> {
    let outbound = &session.outbound;
    let in_flight = |id: &PacketId| outbound.position(*id).is_some();
    match change {
        SessionDelta::Created { .. } => {
            return Err(ApplyError::SessionExists(session.client_id.to_string()))
        }
        SessionDelta::Subscribed { filter, .. } => {
            if parse_subscription(filter.as_bytes()).is_err() {
                return Err(ApplyError::InvalidFilter(filter.to_string()));
            }
        }
        SessionDelta::Sent {
            packet_id,
            delivery,
        } => {
            if delivery.qos == QoS::AtMostOnce {
                return Err(ApplyError::QosMismatch("a QoS 0 delivery put in flight"));
            }
            if in_flight(packet_id) {
                return Err(ApplyError::PacketIdInUse(packet_id.get()));
            }
        }
        SessionDelta::AwaitingPubComp { packet_id } => {
            if in_flight(packet_id) {
                return Err(ApplyError::PacketIdInUse(packet_id.get()));
            }
        }
        SessionDelta::Queued {
            packet_id,
            delivery,
        } => {
            if (delivery.qos == QoS::AtMostOnce) != packet_id.is_none() {
                return Err(ApplyError::QosMismatch(
                    "a queued delivery has a packet id exactly when it is QoS 1 or 2",
                ));
            }
        }
        SessionDelta::Dequeued { packet_id } => {
            let Some(front) = outbound.queue.front() else {
                return Err(ApplyError::QueueMismatch("dequeue from an empty queue"));
            };
            if front.delivery.qos == QoS::AtMostOnce {
                return Err(ApplyError::QueueMismatch(
                    "a QoS 0 delivery dequeued in flight",
                ));
            }
            if in_flight(packet_id) {
                return Err(ApplyError::PacketIdInUse(packet_id.get()));
            }
        }
        SessionDelta::QueueFrontDropped => {
            if outbound.queue.is_empty() {
                return Err(ApplyError::QueueMismatch("drop from an empty queue"));
            }
        }
        SessionDelta::PubRecReceived { packet_id } => {
            let Some(position) = outbound.position(*packet_id) else {
                return Err(ApplyError::PacketIdNotInFlight(packet_id.get()));
            };
            if outbound.inflight[position].state != InflightState::AwaitPubRec {
                return Err(ApplyError::NotAwaitingPubRec(packet_id.get()));
            }
        }
        SessionDelta::Completed { packet_id } => {
            if !in_flight(packet_id) {
                return Err(ApplyError::PacketIdNotInFlight(packet_id.get()));
            }
        }
        SessionDelta::Resumed { .. }
        | SessionDelta::ExpiryChanged { .. }
        | SessionDelta::Unsubscribed { .. }
        | SessionDelta::WillChanged { .. }
        | SessionDelta::Disconnected { .. }
        | SessionDelta::InboundQos2Received { .. }
        | SessionDelta::InboundQos2Released { .. }
        | SessionDelta::Ended
        | SessionDelta::PacketIdTaken { .. } => {}
    }
    Ok(())
}

/// Applies the changes that touch only the session itself (checked by [`check`]).
fn apply_to_session(session: &mut Session, change: SessionDelta) {
    let outbound = &mut session.outbound;
    match change {
        SessionDelta::Resumed {
            protocol,
            username,
            expiry_interval,
        } => {
            session.protocol = protocol;
            session.username = username;
            session.expiry_interval = expiry_interval;
            session.disconnected_at = None;
        }
        SessionDelta::ExpiryChanged { expiry_interval } => {
            session.expiry_interval = expiry_interval
        }
        SessionDelta::WillChanged { will } => session.will = will,
        SessionDelta::Disconnected { at } => session.disconnected_at = Some(at),
        SessionDelta::Queued {
            packet_id,
            delivery,
        } => {
            if let Some(packet_id) = packet_id {
                outbound.last_packet_id = packet_id.get();
            }
            outbound.queued_bytes += delivery.message.payload.len();
            outbound.queue.push_back(Queued {
                packet_id,
                delivery,
            });
        }
        SessionDelta::Sent {
            packet_id,
            delivery,
        } => {
            outbound.last_packet_id = packet_id.get();
            outbound.inflight_bytes += delivery.message.payload.len();
            outbound.inflight.push_back(Inflight {
                packet_id,
                state: first_state(delivery.qos),
                delivery: Some(delivery),
            });
        }
        SessionDelta::Dequeued { packet_id } => {
            if let Some(front) = outbound.queue.pop_front() {
                outbound.queued_bytes -= front.delivery.message.payload.len();
                if front.packet_id != Some(packet_id) {
                    outbound.last_packet_id = packet_id.get();
                }
                outbound.inflight_bytes += front.delivery.message.payload.len();
                outbound.inflight.push_back(Inflight {
                    packet_id,
                    state: first_state(front.delivery.qos),
                    delivery: Some(front.delivery),
                });
            }
        }
        SessionDelta::QueueFrontDropped => {
            if let Some(front) = outbound.queue.pop_front() {
                outbound.queued_bytes -= front.delivery.message.payload.len();
            }
        }
        SessionDelta::PubRecReceived { packet_id } => {
            if let Some(position) = outbound.position(packet_id) {
                let entry = &mut outbound.inflight[position];
                entry.state = InflightState::AwaitPubComp;
                if let Some(delivery) = entry.delivery.take() {
                    outbound.inflight_bytes -= delivery.message.payload.len();
                }
            }
        }
        SessionDelta::Completed { packet_id } => {
            let position = outbound.position(packet_id);
            let entry = position.and_then(|position| outbound.inflight.remove(position));
            if let Some(delivery) = entry.and_then(|entry| entry.delivery) {
                outbound.inflight_bytes -= delivery.message.payload.len();
            }
        }
        SessionDelta::AwaitingPubComp { packet_id } => {
            outbound.inflight.push_back(Inflight {
                packet_id,
                state: InflightState::AwaitPubComp,
                delivery: None,
            });
        }
        SessionDelta::PacketIdTaken { packet_id } => {
            outbound.last_packet_id = packet_id.get();
        }
        SessionDelta::InboundQos2Received { packet_id } => {
            session.inbound_qos2.insert(packet_id.get());
        }
        SessionDelta::InboundQos2Released { packet_id } => {
            session.inbound_qos2.remove(&packet_id.get());
        }
        // Handled by `SessionStore::update` (they touch the index), or refused by `check`.
        SessionDelta::Subscribed { .. }
        | SessionDelta::Unsubscribed { .. }
        | SessionDelta::Ended
        | SessionDelta::Created { .. } => {}
    }
}

/// The state a QoS 1/2 delivery enters the window in.
fn first_state(qos: QoS) -> InflightState {
    if qos == QoS::ExactlyOnce {
        InflightState::AwaitPubRec
    } else {
        InflightState::AwaitPubAck
    }
}
