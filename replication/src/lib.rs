//! Culex's replication core: what makes three or more brokers one cluster.
//!
//! Brief overview. A dedicated thread (the replication core, its own monoio runtime) owns
//! the node's Raft instance (openraft), its log and snapshots on disk, the links to the
//! other nodes, and the `$CONTROL/cedalo/ha/v1` control API. The shards never see Raft:
//! they emit their durable changes on their output rings (`shards::state::port`), the core
//! batches them into log entries, and committed entries come back to every node's shards as
//! records (`shards::state::record`) applied through the same store apply.
//!
//! ```text
//!   shards ─► output rings ─► batch ─► Raft log (wal) ─► links ─► followers' log
//!                                          │ commit                 │ commit
//!   shards ◄── records ◄── state machine ◄─┘        followers' shards ◄┘
//!   $CONTROL/cedalo/ha/v1 ─► control (parse, validate) ─► cluster commands ─► Raft
//! ```
//!
//! Modules: `log` (the write-ahead log and the node's stable state on disk), `control`
//! (the control API's commands and responses, pure).

#![deny(missing_docs)]

pub mod committed;
pub mod control;
pub mod core;
pub mod log;
pub mod machine;
pub mod network;
pub mod proposal;
pub mod snapshot_file;
pub mod store;
pub mod types;
pub mod wire;
