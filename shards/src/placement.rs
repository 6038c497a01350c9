//! Placement: which shard owns what. A client id's session (and its connection) lives on
//! `home_shard(client_id)`; a topic's retained message is ordered by `home_shard(topic)`.
//!
//! One function, deterministic across processes and restarts, so a restored snapshot, a
//! reconnecting client and a cluster follower with a different shard count all agree on
//! where things go on their own node. Called by the shards (routing, hand-offs, retained
//! ownership) and by persistence and replication when they distribute records.

use crate::mesh::ShardId;

/// The shard owning `client_id` among `shards`: FNV-1a, then MurmurHash3's 64-bit
/// finaliser. Deterministic, so a restored snapshot lands where its clients will
/// reconnect (`persist` places sessions with this function at start-up).
///
/// The finaliser matters: FNV-1a's low bit is the parity of the odd bytes in the id, and
/// `% shards` for 2, 4, 8 shards reads only low bits. Without it, `client-7` and
/// `client-107` always landed on different shards of two (every benchmark pair crossed).
pub fn home_shard(client_id: &[u8], shards: usize) -> ShardId {
    debug_assert!(shards >= 1);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in client_id {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
    (hash % shards as u64) as ShardId
}
