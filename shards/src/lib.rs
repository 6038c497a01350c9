//! Everything a Culex per-core executor owns: the MQTT codec, topic index, sessions,
//! connection state machine, the cross-core mesh, and the monoio runtime that drives them.
//!
//! Brief overview. A broker runs one shard per core. Each shard is a single-threaded
//! [`shard::Shard`] (pure state and protocol logic) driven by a monoio runtime
//! ([`runtime`]). Connections land on any shard (SO_REUSEPORT) and move, right after
//! CONNECT, to the shard that owns their client id, so a session and its connection always
//! share a core. Publishes are matched against the local subscription index and against a
//! copy of every other shard's interest; a message crosses to another core only when that
//! core has a matching subscription, as one message on a bounded ring ([`mesh`]).
//!
//! ```text
//!   mqtt (codec) ─► shard (protocol) ─► session (durable state, deltas) ─► persist
//!                          │  ▲
//!                 topics ──┘  └── mesh (other cores)        runtime: sockets, tasks, time
//! ```

pub mod access;
pub mod acl_memo;
pub mod atomic_file;
pub mod authfile;
pub mod cluster_status;
pub mod connection;
pub mod control;
pub mod cpu_affinity;
pub mod credential_cache;
pub mod delivery_batch;
pub mod dynsec;
pub mod figures;
pub mod http;
pub mod limits;
pub mod mesh;
pub mod message;
pub mod mqtt;
pub mod packet_log;
pub mod persist;
pub mod placement;
pub mod runtime;
pub mod server_aliases;
pub mod settings;
pub mod shard;
#[cfg(test)]
mod sim;
pub mod state;
pub mod static_files;
pub mod stats;
pub mod sys;
pub mod topics;
pub mod transport;
