//! Sessions: the durable state MQTT keeps for a client id between connections.
//!
//! Owns [`Session`] (subscriptions, expiry, will, both directions of QoS 1/2 state, queued
//! messages) and the types it is made of. Placement: in a shard's
//! [`SessionStore`](super::SessionStore); a client id always lives on the shard
//! `placement::home_shard(client_id)` picks, so no session is ever shared between cores.

use super::outbound::Outbound;
use crate::message::Message;
use crate::mqtt::{ByteStr, Protocol, SubscriptionOptions};
use std::collections::{HashMap, HashSet};

/// Index of a session in its shard's store. Only meaningful on that shard.
pub type SessionKey = u32;

/// Session Expiry Interval meaning "never expires" ([MQTT-3.1.2-?] value 0xFFFFFFFF).
pub const EXPIRY_NEVER: u32 = u32::MAX;

/// One subscription of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// Options from SUBSCRIBE.
    pub options: SubscriptionOptions,
    /// Subscription Identifier (5.0).
    pub identifier: Option<u32>,
}

/// A will message waiting for its connection to end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredWill {
    /// The message to publish (retain and QoS as the client asked).
    pub message: Message,
    /// Will Delay Interval, seconds.
    pub delay_interval: u32,
    /// Message Expiry Interval of the will, counted from when it is published.
    pub message_expiry_interval: Option<u32>,
}

/// The durable state of one client id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Client identifier.
    pub client_id: ByteStr,
    /// User name of the last connection (ACL checks of queued deliveries use it).
    pub username: Option<ByteStr>,
    /// Protocol of the last connection.
    pub protocol: Protocol,
    /// Session Expiry Interval in seconds; 0 ends the session with its connection,
    /// [`EXPIRY_NEVER`] keeps it forever. 3.1.1 clean session false maps to NEVER.
    pub expiry_interval: u32,
    /// Subscriptions by filter as the client wrote it (including `$share/g/`).
    pub subscriptions: HashMap<ByteStr, Subscription>,
    /// Will of the current connection, or the delayed will of the last one (boxed: most
    /// sessions have none, and an idle session should stay small).
    pub will: Option<Box<StoredWill>>,
    /// Unix time (seconds) the last connection ended; `None` while connected.
    pub disconnected_at: Option<u64>,
    /// Server → client QoS 1/2 state and the queue behind it.
    pub outbound: Outbound,
    /// Packet ids of QoS 2 messages received and acknowledged with PUBREC, waiting for
    /// PUBREL ([MQTT-4.3.3-9]): a re-sent PUBLISH with one of them is not delivered again.
    pub inbound_qos2: HashSet<u16>,
}

impl Session {
    /// A new, empty session.
    pub fn new(client_id: ByteStr, protocol: Protocol, expiry_interval: u32) -> Session {
        Session {
            client_id,
            username: None,
            protocol,
            expiry_interval,
            subscriptions: HashMap::new(),
            will: None,
            disconnected_at: None,
            outbound: Outbound::default(),
            inbound_qos2: HashSet::new(),
        }
    }

    /// True when the session outlives its connection.
    pub fn is_persistent(&self) -> bool {
        self.expiry_interval > 0
    }

    /// Unix time at which an offline session expires, if it does.
    pub fn expires_at(&self, persistent_client_expiration: Option<u64>) -> Option<u64> {
        let since = self.disconnected_at?;
        if self.expiry_interval == EXPIRY_NEVER {
            persistent_client_expiration.map(|limit| since.saturating_add(limit))
        } else {
            Some(since.saturating_add(u64::from(self.expiry_interval)))
        }
    }
}
