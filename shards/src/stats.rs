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
            /// Open connections per listener (gauge), by listener index.
            pub listener_connections: [AtomicU64; LISTENERS_MAX],
            /// How long handling one batch of packets read from a socket took.
            pub batch_latency: LatencyHistogram,
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
    /// Payload bytes of the retained messages in this shard's copy (gauge).
    retained_bytes,
    /// Sockets accepted.
    sockets_opened,
    /// CONNECTs accepted.
    connections_opened,
    /// Changes to durable state (sessions, retained), for `autosave_on_changes`.
    durable_changes,
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

pub use crate::limits::LISTENERS_MAX;

/// Upper bounds of the latency buckets, in microseconds (the last bucket is unbounded).
pub const LATENCY_BUCKETS_US: [u64; 11] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000,
];

/// A fixed-bucket histogram written by one shard (Prometheus' cumulative form is built
/// when reporting).
#[derive(Default, Debug)]
pub struct LatencyHistogram {
    /// Count per bucket; the last entry counts everything above the largest bound.
    pub buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    /// Sum of all observations, microseconds.
    pub sum_us: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, micros: u64) {
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|bound| micros <= *bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        bump(&self.buckets[bucket], 1);
        bump(&self.sum_us, micros);
    }
}

impl ShardStats {
    /// The gauge of listener `index`.
    pub fn listener(&self, index: usize) -> &AtomicU64 {
        &self.listener_connections[index.min(LISTENERS_MAX - 1)]
    }
}
