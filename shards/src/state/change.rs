//! Typed changes to durable session state: the only way a session is mutated.
//!
//! The shard's protocol code (`shard::*`) turns packets and timers into [`Delta`]s and hands
//! them to [`SessionStore::apply`](super::SessionStore::apply). Nothing else writes to a
//! [`Session`](super::Session). Keeping the decisions (which may read anything) apart from
//! the mutation (this small, deterministic vocabulary) is what lets a cluster replicate
//! sessions: the leader ships the changes (as [`Record`](super::Record)s, keyed by client
//! id), followers apply them with the same function and end with the same state. A
//! snapshot is the list of changes that rebuilds a state from nothing, so it uses the same
//! vocabulary; the variants marked "snapshot" exist for that.
//!
//! Variants are only ever appended: their order is part of the record format.

use super::{SessionKey, StoredWill, Subscription};
use crate::message::Delivery;
use crate::mqtt::{ByteStr, PacketId, Protocol};

/// A change to the sessions of one shard, as the shard that owns them decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delta {
    /// Creates a session for `client_id`; an existing session with that id must have been
    /// ended first. The same change as [`SessionDelta::Created`] for `client_id`.
    Create {
        /// Client identifier.
        client_id: ByteStr,
        /// Protocol of the creating connection.
        protocol: Protocol,
        /// Session Expiry Interval.
        expiry_interval: u32,
        /// User name of the creating connection.
        username: Option<ByteStr>,
    },
    /// Changes the existing session `key`.
    Update {
        /// The session.
        key: SessionKey,
        /// The change.
        change: SessionDelta,
    },
}

/// A change to one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionDelta {
    /// A new connection took over the session (clean start false).
    Resumed {
        /// Protocol of the new connection.
        protocol: Protocol,
        /// User name of the new connection.
        username: Option<ByteStr>,
        /// Session Expiry Interval of the new connection.
        expiry_interval: u32,
    },
    /// The Session Expiry Interval changed (5.0 DISCONNECT may change it).
    ExpiryChanged {
        /// New interval.
        expiry_interval: u32,
    },
    /// A subscription was added or replaced.
    Subscribed {
        /// Filter as written by the client (after the mount point).
        filter: ByteStr,
        /// Its options.
        subscription: Subscription,
    },
    /// A subscription was removed.
    Unsubscribed {
        /// Filter as written by the client (after the mount point).
        filter: ByteStr,
    },
    /// The will was set (at connect) or cleared (normal disconnect, published, cancelled).
    WillChanged {
        /// The new will.
        will: Option<Box<StoredWill>>,
    },
    /// The connection ended at `at` (unix seconds); the session stays if persistent.
    Disconnected {
        /// Unix time.
        at: u64,
    },
    /// A delivery was queued behind the window (or for an offline client). A QoS 1/2
    /// delivery takes its packet identifier now, as Mosquitto's do: one that later expires
    /// in the queue has used it up.
    Queued {
        /// Its packet identifier (QoS 1/2; `None` for a queued QoS 0 message).
        packet_id: Option<PacketId>,
        /// The delivery.
        delivery: Delivery,
    },
    /// A delivery was sent directly into the window with `packet_id`.
    Sent {
        /// Packet identifier it was sent with.
        packet_id: PacketId,
        /// The delivery (QoS 1 or 2).
        delivery: Delivery,
    },
    /// The oldest queued delivery moved into the window with `packet_id` (its own, unless
    /// that one was still in flight after the counter wrapped).
    Dequeued {
        /// Packet identifier it was sent with.
        packet_id: PacketId,
    },
    /// The oldest queued delivery was discarded (expired, too large, or sent at QoS 0).
    QueueFrontDropped,
    /// PUBREC arrived for a QoS 2 delivery: the message is released, PUBREL follows.
    PubRecReceived {
        /// Packet identifier.
        packet_id: PacketId,
    },
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) arrived: the exchange is complete.
    Completed {
        /// Packet identifier.
        packet_id: PacketId,
    },
    /// A QoS 2 PUBLISH from the client was delivered and answered with PUBREC.
    InboundQos2Received {
        /// Packet identifier.
        packet_id: PacketId,
    },
    /// PUBREL arrived for a QoS 2 PUBLISH from the client.
    InboundQos2Released {
        /// Packet identifier.
        packet_id: PacketId,
    },
    /// The session ends: it and its subscriptions are removed.
    Ended,
    /// Creates the session (the change [`Delta::Create`] names by client id).
    Created {
        /// Protocol of the creating connection.
        protocol: Protocol,
        /// Session Expiry Interval.
        expiry_interval: u32,
        /// User name of the creating connection.
        username: Option<ByteStr>,
    },
    /// A packet identifier was used up without anything entering the window or queue (a
    /// delivery dropped at `max_queued_messages`, as Mosquitto counts it); in a snapshot,
    /// the counter's value.
    PacketIdTaken {
        /// The identifier; the next one handed out follows it.
        packet_id: PacketId,
    },
    /// Snapshot: a QoS 2 delivery whose PUBREC arrived, waiting for PUBCOMP (the window
    /// keeps only its packet identifier).
    AwaitingPubComp {
        /// Packet identifier.
        packet_id: PacketId,
    },
}

impl SessionDelta {
    /// A short name for log lines and errors.
    pub fn name(&self) -> &'static str {
        match self {
            SessionDelta::Resumed { .. } => "Resumed",
            SessionDelta::ExpiryChanged { .. } => "ExpiryChanged",
            SessionDelta::Subscribed { .. } => "Subscribed",
            SessionDelta::Unsubscribed { .. } => "Unsubscribed",
            SessionDelta::WillChanged { .. } => "WillChanged",
            SessionDelta::Disconnected { .. } => "Disconnected",
            SessionDelta::Queued { .. } => "Queued",
            SessionDelta::Sent { .. } => "Sent",
            SessionDelta::Dequeued { .. } => "Dequeued",
            SessionDelta::QueueFrontDropped => "QueueFrontDropped",
            SessionDelta::PubRecReceived { .. } => "PubRecReceived",
            SessionDelta::Completed { .. } => "Completed",
            SessionDelta::InboundQos2Received { .. } => "InboundQos2Received",
            SessionDelta::InboundQos2Released { .. } => "InboundQos2Released",
            SessionDelta::Ended => "Ended",
            SessionDelta::Created { .. } => "Created",
            SessionDelta::PacketIdTaken { .. } => "PacketIdTaken",
            SessionDelta::AwaitingPubComp { .. } => "AwaitingPubComp",
        }
    }
}
