//! Typed changes to durable session state: the only way a session is mutated.
//!
//! The shard's protocol code (`shard::*`) turns packets and timers into [`Delta`]s and hands
//! them to `SessionStore::apply`. Nothing else writes to a [`super::Session`]. Keeping the
//! decisions (which may read anything) apart from the mutation (which is this small,
//! deterministic vocabulary) is what lets a cluster replicate sessions: the leader ships the
//! deltas, followers apply them with the same function and end with the same state.
//!
//! How the replication core will ship them: each shard pushes the deltas it applies onto a
//! bounded ring to the replication core; the core drains all rings every few hundred
//! microseconds, serialises them as one rkyv `DeltaBatch` (session keys translated to client
//! ids, payloads as byte slices), proposes the batch as one Raft entry, and acknowledges
//! QoS 1/2 publishes to clients only after that entry commits. Variants are only ever
//! appended (their order is part of the wire format once frames exist).

use super::{SessionKey, StoredWill, Subscription};
use crate::message::Delivery;
use crate::mqtt::{ByteStr, PacketId, Protocol};

/// A change to the sessions of one shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delta {
    /// Creates a session for `client_id`; an existing session with that id must have been
    /// ended first.
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

/// A change to one existing session.
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
        /// Filter as written by the client.
        filter: ByteStr,
        /// Its options.
        subscription: Subscription,
    },
    /// A subscription was removed.
    Unsubscribed {
        /// Filter as written by the client.
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
    /// A delivery was queued behind the window (or for an offline client).
    Queued {
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
    /// The oldest queued delivery moved into the window with `packet_id`.
    Dequeued {
        /// Packet identifier it was sent with.
        packet_id: PacketId,
    },
    /// The oldest queued delivery was discarded (expired, or QoS 0 while offline).
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
}
