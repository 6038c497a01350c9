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
mod restore;
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
use crate::settings::Settings;
use crate::state::store::SharedKey;
use crate::state::{SessionKey, SessionStore};
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
    /// The cluster's figures, when the HA module is loaded (read by `$SYS` and HTTP).
    pub cluster: Option<Arc<crate::cluster_status::ClusterStatus>>,
    /// Sessions living here and their subscription index.
    pub store: SessionStore,
    /// Where durable changes go when a consumer (replication) is attached.
    pub output: crate::state::port::OutputPort,
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
    /// Listeners (by index) whose clients this node does not serve now: a cluster node
    /// that is not the leader in Full Sync. CONNECTs on them are refused.
    closed_listeners: Vec<usize>,
    /// Connections with bytes to write, for the runtime's flusher.
    pub flush: std::rc::Rc<crate::connection::FlushQueue>,
    /// Interest changes broadcast so far (a SUBSCRIBE that caused one waits for a barrier).
    interest_broadcasts: u64,
    /// The interest epoch ([`crate::mesh::Mesh::interest_epoch`]) this shard's copy of the
    /// other shards' interest is known to include (`mesh_in.rs`).
    pub(super) interest_seen: u64,
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
            cluster: None,
            store: SessionStore::default(),
            output: Default::default(),
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
            closed_listeners: Vec::new(),
            flush: std::rc::Rc::default(),
            interest_broadcasts: 0,
            interest_seen: 0,
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

    /// The shard that owns sessions with `client_id` (and the retained message of a topic).
    pub fn home_of(&self, client_id: &[u8]) -> ShardId {
        crate::placement::home_shard(client_id, self.mesh.shards())
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

    /// Applies a session change this shard decided, and broadcasts the interest changes
    /// it caused. The one funnel of the shard's own durable changes.
    fn apply(&mut self, delta: crate::state::Delta) -> Option<SessionKey> {
        use crate::state::{Delta, SessionDelta};
        let routes_change = matches!(
            &delta,
            Delta::Update {
                change: SessionDelta::Subscribed { .. }
                    | SessionDelta::Unsubscribed { .. }
                    | SessionDelta::Ended,
                ..
            }
        );
        let emission = self.output.attached().then(|| self.emission_of(&delta));
        let applied = self.store.apply(delta);
        if let Some(Some((client_id, change, was_persistent))) = emission {
            self.emit_session(client_id, change, was_persistent);
        }
        self.after_apply(applied, routes_change)
    }

    /// Tells the consumer of a change to the session of `client_id`. Only persistent
    /// sessions are replicated: a session enters the replicated state when it is created
    /// (or becomes) persistent, and leaves it (`Ended`) when it stops being persistent,
    /// since it then ends with its connection and no other node could resume it.
    #[cold]
    fn emit_session(
        &mut self,
        client_id: ByteStr,
        change: crate::state::SessionDelta,
        was_persistent: bool,
    ) {
        use crate::state::{port::Emission, SessionDelta};
        let persistent = self
            .store
            .key_of(client_id.as_str())
            .and_then(|key| self.store.get(key))
            .is_some_and(|session| session.is_persistent());
        let change = match (was_persistent, persistent) {
            (false, false) => return,
            (true, false) if change != SessionDelta::Ended => SessionDelta::Ended,
            _ => change,
        };
        self.output.emit(Emission::Session { client_id, change });
    }

    /// What a consumer is told of `delta`: the client id, the change, and whether the
    /// session was persistent before it (only persistent sessions are replicated; a change
    /// that ends persistence is still told). Called only with a consumer attached.
    #[cold]
    fn emission_of(
        &self,
        delta: &crate::state::Delta,
    ) -> Option<(ByteStr, crate::state::SessionDelta, bool)> {
        use crate::state::{Delta, SessionDelta};
        match delta {
            Delta::Create {
                client_id,
                protocol,
                expiry_interval,
                username,
            } => Some((
                client_id.clone(),
                SessionDelta::Created {
                    protocol: *protocol,
                    expiry_interval: *expiry_interval,
                    username: username.clone(),
                },
                false,
            )),
            Delta::Update { key, change } => {
                let session = self.store.get(*key)?;
                Some((
                    session.client_id.clone(),
                    change.clone(),
                    session.is_persistent(),
                ))
            }
        }
    }

    /// What every applied session change entails besides the store: the counter autosave
    /// reads, the route cache, and the interest other shards must learn.
    fn after_apply(
        &mut self,
        applied: crate::state::Applied,
        routes_change: bool,
    ) -> Option<SessionKey> {
        crate::stats::bump(&self.my_stats().durable_changes, 1);
        if routes_change {
            self.routes_generation += 1;
        }
        let broadcasts_before = self.interest_broadcasts;
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
        if self.interest_broadcasts != broadcasts_before {
            self.interest_announced();
        }
        applied.created
    }

    /// Updates this shard's copy of the interest of `source`.
    fn interest_changed(&mut self, source: ShardId, change: crate::state::store::InterestChange) {
        use crate::state::store::InterestChange;
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

/// Prefixes `topic` with the listener's mount point, if any.
pub fn mount(mount_point: Option<&str>, topic: ByteStr) -> ByteStr {
    match mount_point {
        None => topic,
        Some(prefix) => ByteStr::from(format!("{prefix}{topic}")),
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
        if self.output.congested() {
            self.output.flush();
        }
    }
}
