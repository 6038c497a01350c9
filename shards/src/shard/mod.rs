//! `Shard`: everything one core owns and the protocol logic that runs on it.
//!
//! Owns the sessions whose client ids hash to this core, the connections attached to them,
//! this core's copy of the retained messages and of every core's subscription interest, and
//! the counters. It is pure state and logic: the runtime (`crate::runtime`) feeds it decoded
//! packets, mesh messages and clock ticks, and it answers by writing encoded packets into
//! connections' outbound buffers, sending mesh messages and applying session deltas. No
//! function here performs I/O or reads the clock ([`Now`] is passed in), so all of it runs
//! in unit tests without sockets.
//!
//! ```text
//!   socket ─► runtime reader ─► decode ─► Shard::handle ─┬─► SessionStore::apply (deltas)
//!                                                       ├─► Connection::out ─► writer ─► socket
//!                                                       └─► MeshPort::send ─► other shards
//!   other shards ─► MeshPort::drain ─► Shard::on_mesh ─► deliver to local sessions
//! ```
//!
//! Files: `connect.rs` (CONNECT, takeover, CONNACK), `publish.rs` (inbound PUBLISH and
//! routing), `deliver.rs` (to local sessions: window, queue, encoding), `subscribe.rs`,
//! `acks.rs` (the QoS 1/2 exchanges), `lifecycle.rs` (close, wills, expiry, keep alive),
//! `mesh_in.rs` (messages from other shards), `retained.rs`.

mod acks;
mod connect;
mod deliver;
mod lifecycle;
mod mesh_in;
mod publish;
mod retained;
mod route_cache;
mod subscribe;
#[cfg(test)]
mod tests;

pub use connect::{Accepted, ConnectRequest, Refusal};
pub use lifecycle::Flow;

use crate::access::AuthCaches;
use crate::access::{AccessPolicy, Action, Identity};
use crate::connection::{ConnId, Connection};
use crate::control::ControlPort;
use crate::mesh::{MeshPort, ShardId};
use crate::message::Message;
use crate::mqtt::ByteStr;
use crate::session::store::SharedKey;
use crate::session::{SessionKey, SessionStore};
use crate::settings::Settings;
use crate::stats::ShardStats;
use crate::topics::{InterestTable, RetainedTree, SubscriptionTrie};
use rustc_hash::FxHashMap;
use slab::Slab;
use std::sync::Arc;

/// The time as the runtime read it for this turn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// Wall-clock unix time, seconds (session and message expiry; survives restarts).
    pub unix_s: u64,
    /// Monotonic milliseconds (keep alive, timeouts).
    pub mono_ms: u64,
}

/// Which shards have members of each shared subscription. Placement: a copy on every shard.
#[derive(Default)]
pub struct SharedInterest {
    /// Filter → shared subscription key.
    pub trie: SubscriptionTrie<SharedKey, ()>,
    /// Member count per shard, and the round-robin cursor, per shared subscription.
    pub shards: FxHashMap<SharedKey, SharedShards>,
}

/// Member counts of one shared subscription per shard.
#[derive(Clone, Debug, Default)]
pub struct SharedShards {
    /// Members on each shard.
    pub members: Vec<u32>,
    /// Next shard to consider.
    pub cursor: usize,
}

/// One core's state.
pub struct Shard {
    /// This shard's id.
    pub id: ShardId,
    /// Current settings.
    pub settings: Arc<Settings>,
    /// Current authentication and authorisation rules; replaced only through
    /// [`Shard::set_access`].
    pub access: Arc<AccessPolicy>,
    /// Changes with every `access` swap: connections' remembered ACL decisions
    /// (`crate::acl_memo`) are valid only under the epoch they were made in. Never 0.
    access_epoch: u64,
    /// Credentials this shard verified recently (PBKDF2 is slow).
    auth_cache: AuthCaches,
    /// Where `$CONTROL/...` requests go.
    pub control: ControlPort,
    /// Sessions living here and their subscription index.
    pub store: SessionStore,
    /// Open connections.
    pub conns: Slab<Connection>,
    /// Connection attached to each session, by session key.
    online: Vec<Option<ConnId>>,
    generation: u32,
    /// Which shards subscribe to which plain filters (a copy on every shard).
    pub interest: InterestTable,
    /// Which shards have members of which shared subscriptions.
    pub shared_interest: SharedInterest,
    /// This shard's copy of the retained messages.
    pub retained: RetainedTree<Message>,
    /// Cross-core messaging.
    pub mesh: MeshPort,
    /// Counters of every shard; this one writes `stats[id]` only.
    pub stats: Arc<[ShardStats]>,
    /// The time of the current turn.
    pub now: Now,
    /// Delayed wills: (monotonic milliseconds due, session).
    delayed_wills: Vec<(u64, SessionKey)>,
    /// Scratch space of `deliver_local`, kept to avoid an allocation per message.
    matches: Vec<route_cache::LocalMatch>,
    /// Where topics' messages go, while the subscriptions stay as they are.
    routes: route_cache::RouteCache,
    /// Bumped by every change to the local index or any shard's interest.
    routes_generation: u64,
    /// Scratch space for shared-subscription routing.
    shared_matches: Vec<SharedKey>,
    /// Set once shutdown began: no new connections are accepted.
    pub shutting_down: bool,
    /// Connections with bytes to write, for the runtime's flusher.
    pub flush: std::rc::Rc<crate::connection::FlushQueue>,
    /// Interest changes broadcast so far (a SUBSCRIBE that caused one waits for a barrier).
    interest_broadcasts: u64,
    /// SUBACKs waiting for their barrier: (barrier id, acknowledgements missing, SUBACK).
    barriers: Vec<(u64, usize, subscribe::PendingSubAck)>,
    next_barrier: u64,
    /// Acknowledgements of retained publishes waiting for the topic's owner: (token,
    /// connection, acknowledgement).
    retained_acks: Vec<(u64, ConnId, (crate::mqtt::Ack, publish::AckKind))>,
    next_token: u64,
}

impl Shard {
    /// A shard with no sessions.
    pub fn new(
        mesh: MeshPort,
        settings: Arc<Settings>,
        access: Arc<AccessPolicy>,
        stats: Arc<[ShardStats]>,
    ) -> Shard {
        assert_eq!(stats.len(), mesh.shards(), "one stats block per shard");
        Shard {
            id: mesh.me(),
            settings,
            access,
            access_epoch: 1,
            auth_cache: AuthCaches::new().expect("the OS random source works at start-up"),
            control: None,
            store: SessionStore::default(),
            conns: Slab::new(),
            online: Vec::new(),
            generation: 0,
            interest: InterestTable::default(),
            shared_interest: SharedInterest::default(),
            retained: RetainedTree::default(),
            mesh,
            stats,
            now: Now::default(),
            delayed_wills: Vec::new(),
            matches: Vec::new(),
            routes: route_cache::RouteCache::default(),
            routes_generation: 0,
            shared_matches: Vec::new(),
            shutting_down: false,
            flush: std::rc::Rc::default(),
            interest_broadcasts: 0,
            barriers: Vec::new(),
            next_barrier: 0,
            retained_acks: Vec::new(),
            next_token: 0,
        }
    }

    /// This shard's counters.
    pub fn my_stats(&self) -> &ShardStats {
        &self.stats[usize::from(self.id)]
    }

    /// The shard that owns sessions with `client_id`.
    pub fn home_of(&self, client_id: &[u8]) -> ShardId {
        home_shard(client_id, self.mesh.shards())
    }

    /// The connection `id`, if it is still open.
    pub fn conn(&self, id: ConnId) -> Option<&Connection> {
        self.conns.get(id.slot as usize).filter(|c| c.id == id)
    }

    /// Installs new access rules (a reload or a dynamic-security change); decisions
    /// remembered under the old ones stop counting.
    pub fn set_access(&mut self, access: Arc<AccessPolicy>) {
        self.access = access;
        self.access_epoch += 1;
    }

    /// [`AccessPolicy::allows`] for connection `conn`'s own identity, through its memo.
    pub(crate) fn conn_allows(&self, conn: &Connection, action: Action, topic: &str) -> bool {
        let who = Identity {
            listener: conn.listener,
            client_id: conn.client_id.as_str(),
            username: conn.username.as_deref(),
        };
        conn.acl_memo
            .allows(&self.access, self.access_epoch, action, &who, topic)
    }

    /// The connection `id`, if it is still open.
    pub fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        self.conns.get_mut(id.slot as usize).filter(|c| c.id == id)
    }

    /// The connection attached to session `key`.
    pub fn conn_of(&self, key: SessionKey) -> Option<ConnId> {
        self.online.get(key as usize).copied().flatten()
    }

    fn set_online(&mut self, key: SessionKey, conn: Option<ConnId>) {
        let index = key as usize;
        if self.online.len() <= index {
            self.online.resize(index + 1, None);
        }
        self.online[index] = conn;
    }

    /// Applies a session delta and broadcasts the interest changes it caused.
    fn apply(&mut self, delta: crate::session::Delta) -> Option<SessionKey> {
        use crate::session::{Delta, SessionDelta};
        crate::stats::bump(&self.my_stats().durable_changes, 1);
        if let Delta::Update {
            change:
                SessionDelta::Subscribed { .. }
                | SessionDelta::Unsubscribed { .. }
                | SessionDelta::Ended,
            ..
        } = &delta
        {
            self.routes_generation += 1;
        }
        let applied = self.store.apply(delta);
        for change in applied.interest {
            self.interest_changed(self.id, change.clone());
            if self.mesh.shards() > 1 {
                self.interest_broadcasts += 1;
                let source = self.id;
                self.mesh.broadcast(|| crate::mesh::ShardMsg::Interest {
                    source,
                    change: change.clone(),
                });
            }
        }
        applied.created
    }

    /// Updates this shard's copy of the interest of `source`.
    fn interest_changed(&mut self, source: ShardId, change: crate::session::store::InterestChange) {
        use crate::session::store::InterestChange;
        self.routes_generation += 1;
        match change {
            InterestChange::Plain {
                filter,
                added: true,
            } => {
                self.interest.add(filter.as_bytes(), source);
            }
            InterestChange::Plain {
                filter,
                added: false,
            } => {
                self.interest.remove(filter.as_bytes(), source);
            }
            InterestChange::Shared { key, added } => {
                let shards = self.mesh.shards();
                let entry = self
                    .shared_interest
                    .shards
                    .entry(key.clone())
                    .or_insert_with(|| SharedShards {
                        members: vec![0; shards],
                        cursor: 0,
                    });
                let count = &mut entry.members[usize::from(source)];
                if added {
                    *count += 1;
                } else {
                    *count = count.saturating_sub(1);
                }
                let total: u32 = entry.members.iter().sum();
                if added && total == 1 {
                    self.shared_interest
                        .trie
                        .insert(key.1.as_bytes(), key.clone(), ());
                } else if total == 0 {
                    self.shared_interest.shards.remove(&key);
                    self.shared_interest.trie.remove(key.1.as_bytes(), &key);
                }
            }
        }
    }

    /// Replaces the settings (reload).
    pub fn reload(&mut self, settings: Arc<Settings>) {
        self.settings = settings;
    }
}

/// The shard owning `client_id` among `shards`: FNV-1a, then MurmurHash3's 64-bit
/// finaliser. Deterministic, so a restored snapshot lands where its clients will
/// reconnect (`persist` places sessions with this function at start-up).
///
/// The finaliser matters: FNV-1a's low bit is the parity of the odd bytes in the id, and
/// `% shards` for 2, 4, 8 shards reads only low bits. Without it, `client-7` and
/// `client-107` always landed on different shards of two (every benchmark pair crossed).
pub fn home_shard(client_id: &[u8], shards: usize) -> ShardId {
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

/// Prefixes `topic` with the listener's mount point, if any.
pub fn mount(mount_point: Option<&str>, topic: ByteStr) -> ByteStr {
    match mount_point {
        None => topic,
        Some(prefix) => ByteStr::from(format!("{prefix}{topic}")),
    }
}

/// Entry points for `persist::restore`, which rebuilds state through the same paths.
impl Shard {
    /// Applies a restored delta.
    pub(crate) fn apply_restored(&mut self, delta: crate::session::Delta) -> Option<SessionKey> {
        self.apply(delta)
    }

    /// Restores one retained message into this shard's copy.
    pub(crate) fn set_retained_restored(&mut self, topic: &ByteStr, message: Message) {
        self.set_retained(topic, Some(message));
    }

    /// Re-arms the will timer of an offline session restored with a pending will.
    pub(crate) fn restore_will_timer(&mut self, key: SessionKey, disconnected_at: u64) {
        let Some(session) = self.store.get(key) else {
            return;
        };
        let Some(will) = &session.will else { return };
        let delay = u64::from(will.delay_interval.min(session.expiry_interval));
        let due_in_s = (disconnected_at + delay).saturating_sub(self.now.unix_s);
        self.delayed_wills
            .push((self.now.mono_ms + due_in_s * 1000, key));
    }
}

/// Barriers: a SUBACK is sent only once every other shard processed the interest change
/// the SUBSCRIBE caused. Rings are FIFO per (source, target), so a shard that answers the
/// barrier has applied every interest message sent before it.
impl Shard {
    fn await_barrier(&mut self, pending: subscribe::PendingSubAck) {
        self.next_barrier += 1;
        let barrier = self.next_barrier;
        let source = self.id;
        self.mesh
            .broadcast(|| crate::mesh::ShardMsg::Barrier { source, barrier });
        self.barriers
            .push((barrier, self.mesh.shards() - 1, pending));
    }

    /// Another shard passed barrier `barrier`.
    fn barrier_passed(&mut self, barrier: u64) {
        let Some(index) = self.barriers.iter().position(|(id, _, _)| *id == barrier) else {
            return;
        };
        self.barriers[index].1 -= 1;
        if self.barriers[index].1 == 0 {
            let (_, _, pending) = self.barriers.swap_remove(index);
            self.complete_subscribe(pending);
        }
    }
}

impl Shard {
    /// Ends a turn: sends the cross-core delivery batches gathered during it. The runtime
    /// calls it after every batch of packets, tick and control message it handled.
    pub fn end_turn(&mut self) {
        self.mesh.flush_batches();
    }
}
