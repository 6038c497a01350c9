//! The replicated state machine: everything durable a broker holds, and the one way it
//! changes.
//!
//! Brief overview. Durable state is the sessions of persistent clients (subscriptions,
//! expiry, will, both directions of QoS 1/2 state, queued messages, packet-id counter) and
//! the retained messages. It changes only by [`SessionStore::apply`] of a [`Delta`] (and
//! [`RetainedStore::set`] for retained messages). The shard's protocol code decides, this
//! layer mutates: that split is what makes the state replicable. The persistence file and a
//! cluster's Raft log hold the same changes as [`Record`]s (the wire form, rkyv); a follower,
//! a restore and the leader all run the same mutation.
//!
//! ```text
//!   shard (decides) ─► Delta ─► SessionStore::apply ─┬─► the session, the index
//!                                                    └─► output port ─► consumer (replication)
//!   file / network ─► Record ─► validate ─► apply_record ─► same mutation
//! ```
//!
//! This layer imports only the codec (`mqtt`), the topic index (`topics`) and the message
//! type; it reads no clock and does no I/O (`tests/layers.rs` enforces the import rules).

mod change;
pub mod frame;
mod index;
mod invariants;
mod outbound;
pub mod port;
pub mod record;
mod session;
pub mod snapshot;
pub mod store;

pub use change::{Delta, SessionDelta};
pub use index::SubscriptionIndex;
pub use outbound::{Inflight, InflightState, Outbound, Queued};
pub use record::{Decoded, Record, RecordError};
pub use session::{Session, SessionKey, StoredWill, Subscription, EXPIRY_NEVER};
pub use store::{check, Applied, ApplyError, SessionStore};
