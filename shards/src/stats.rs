//! Counters behind `$SYS` and `/metrics`.
//!
//! Placement: one [`ShardStats`] per shard, written only by that shard (a relaxed load and
//! store, no read-modify-write, so no cache-line traffic between cores on the publish
//! path) and read by whoever reports (shard 0's `$SYS` publisher, the metrics endpoint).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The counters of one shard.
        #[derive(Default, Debug)]
        #[repr(align(128))]
        pub struct ShardStats {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A plain copy of counters, summed over shards.
        #[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
        pub struct Totals {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl ShardStats {
            /// Adds this shard's counters into `totals`.
            pub fn add_to(&self, totals: &mut Totals) {
                $(totals.$name += self.$name.load(Ordering::Relaxed);)*
            }
        }
    };
}

counters! {
    /// MQTT packets received.
    messages_received,
    /// MQTT packets sent.
    messages_sent,
    /// PUBLISH packets received.
    publish_received,
    /// PUBLISH packets sent.
    publish_sent,
    /// Messages dropped (queue or buffer limits, oversize for the client).
    publish_dropped,
    /// PUBLISH payload bytes received.
    publish_bytes_received,
    /// PUBLISH payload bytes sent.
    publish_bytes_sent,
    /// Bytes read from sockets.
    bytes_received,
    /// Bytes written to sockets.
    bytes_sent,
    /// Connected clients now (gauge).
    clients_connected,
    /// Sessions on this shard, connected or not (gauge).
    sessions,
    /// Sessions removed by expiry.
    clients_expired,
    /// Subscriptions (gauge).
    subscriptions,
    /// Shared subscriptions (gauge).
    shared_subscriptions,
    /// Messages held in queues and windows (gauge).
    stored_messages,
    /// Payload bytes held in queues and windows (gauge).
    stored_bytes,
    /// Retained messages in this shard's copy (gauge).
    retained,
    /// Sockets accepted.
    sockets_opened,
    /// CONNECTs accepted.
    connections_opened,
}

/// Adds `delta` to a counter only this thread writes.
#[inline]
pub fn bump(counter: &AtomicU64, delta: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(delta),
        Ordering::Relaxed,
    );
}

/// Subtracts `delta` from a gauge only this thread writes.
#[inline]
pub fn drop_by(counter: &AtomicU64, delta: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).saturating_sub(delta),
        Ordering::Relaxed,
    );
}

/// Sets a gauge only this thread writes.
#[inline]
pub fn set(counter: &AtomicU64, value: u64) {
    counter.store(value, Ordering::Relaxed);
}

/// Sums the counters of all shards.
pub fn totals(shards: &[ShardStats]) -> Totals {
    let mut totals = Totals::default();
    for shard in shards {
        shard.add_to(&mut totals);
    }
    totals
}
