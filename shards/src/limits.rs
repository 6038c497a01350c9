//! Every fixed bound of a shard in one place, with the relations between them checked at
//! compile time (TigerBeetle's `constants.zig`).
//!
//! Configurable limits (`max_inflight_messages`, `max_queued_messages`, ...) live in
//! [`crate::settings::Settings`]; the constants here are the ones no user needs to tune.

/// Most shards (cores) one broker runs. Shard sets are `u64` bit masks (a shard's bit in
/// the mask `InterestTable::shards_matching` returns) and shard ids are `u8`.
pub const SHARDS_MAX: usize = 64;

/// Listeners whose connections are counted separately (later ones share the last slot).
pub const LISTENERS_MAX: usize = 32;

/// Topics a shard's route cache remembers before it starts over.
pub const ROUTE_CACHE_ENTRIES_MAX: usize = 8192;

/// Verified credentials a shard remembers before the cache is cleared.
pub const CREDENTIAL_CACHE_ENTRIES_MAX: usize = 4_096;

/// Largest HTTP request (`protocol http_api`, `http_dir`) accepted, in bytes.
pub const HTTP_REQUEST_MAX: usize = 8 * 1024;

/// Bytes of a static file (`http_dir`) read per step.
pub const STATIC_FILE_CHUNK: usize = 64 * 1024;

/// How long an HTTP exchange may take, in seconds.
pub const HTTP_REQUEST_TIMEOUT_S: u64 = 5;

/// How long a static-file reader may refuse bytes before it is dropped, in seconds.
pub const STATIC_FILE_WRITE_STALL_S: u64 = 10;

/// How long a connection the broker is closing may take to accept its last bytes, in
/// milliseconds.
pub const CLOSE_FLUSH_TIMEOUT_MS: u64 = 2_000;

/// How long a connection the broker closed (its last bytes written, its write side shut
/// down) is still read, and what it reads discarded, so that a client still sending gets
/// no reset and can read why it was closed; ends sooner at the client's end of stream, in
/// milliseconds.
pub const CLOSE_LINGER_MS: u64 = 2_000;

/// Most bytes a closing connection may still send during [`CLOSE_LINGER_MS`]; past them
/// it is closed at once.
pub const CLOSE_LINGER_BYTES_MAX: usize = 1024 * 1024;

/// How long a refused client may take to accept its CONNACK during the handshake, in
/// milliseconds.
pub const HANDSHAKE_WRITE_TIMEOUT_MS: u64 = 2_000;

/// Pause after a failed `accept` (out of file descriptors, say) before the next one, in
/// milliseconds.
pub const ACCEPT_RETRY_MS: u64 = 10;

/// How often a task waiting for its shard to be uncongested looks again, in milliseconds.
pub const CONGESTION_RECHECK_MS: u64 = 20;

/// Longest park of a shard's mesh task while it has overflowed messages to flush, in
/// milliseconds: a lost wake-up then costs a millisecond, never a stall.
pub const OVERFLOW_RECHECK_MS: u64 = 1;

/// How long shutdown waits for every connection to flush and close, in seconds.
pub const SHUTDOWN_DRAIN_S: u64 = 5;

/// How long the main thread waits for each shard's part of a snapshot, in seconds.
pub const SNAPSHOT_REPLY_TIMEOUT_S: u64 = 30;

/// Longest a shard's reader waits, before routing what it read, for another shard that is
/// handling a SUBSCRIBE to push its interest, in microseconds (a SUBSCRIBE takes a few).
pub const SUBSCRIBE_WAIT_MAX_US: u64 = 200;

/// Capacity of one cross-core ring (per source → target pair), in messages.
pub const MESH_RING_CAPACITY: usize = 2048;

/// Capacity of one shard's output ring (durable changes on their way to the replication
/// core), in changes. Beyond it they wait in the shard's overflow and its readers pause.
pub const OUTPUT_RING_CAPACITY: usize = 8192;

/// Runtime messages that may wait for one shard before best-effort traffic (log lines on
/// `$SYS/broker/log/#`) is dropped rather than queued.
pub const RUNTIME_INBOX_BEST_EFFORT_MAX: usize = 4096;

/// Most mesh messages a shard handles before yielding to its other tasks.
pub const MESH_DRAIN_BUDGET: usize = 1024;

/// Size of a shard's shared read buffer; a fresh one is allocated when less than
/// [`READ_CHUNK_MIN`] is free in the current one.
pub const READ_BUFFER_SIZE: usize = 64 * 1024;

/// Smallest free space worth a `recv` into the shared read buffer.
pub const READ_CHUNK_MIN: usize = 8 * 1024;

/// Bytes a connection may read in one turn before it yields to other connections.
pub const READ_TURN_BYTES_MAX: usize = 256 * 1024;

/// Largest packet when neither the listener nor the configuration sets one: the largest
/// remaining length MQTT can express plus the fixed header.
pub const PACKET_SIZE_MAX: usize = 268_435_455 + 5;

/// Seconds a new connection has to send a complete CONNECT before it is closed.
pub const CONNECT_TIMEOUT_S: u64 = 10;

/// Outbound bytes queued on one connection beyond which QoS 0 messages are dropped rather
/// than buffered (a slow subscriber must not grow the broker without bound).
pub const OUTBOUND_BYTES_SOFT_MAX: usize = 4 * 1024 * 1024;

/// Outbound bytes on one connection beyond which the shard stops reading its clients (and
/// its mesh) until the flusher wrote them: when the broker produces faster than a consumer
/// that keeps reading can take, reading more would only be dropped later, wasting the
/// cores the writing needs. See `Connection::backlogged`.
pub const OUTBOUND_BACKLOG_HIGH: usize = 512 * 1024;

/// A connection whose outbound buffer reaches this many bytes is written as soon as the
/// reader or mesh drain that filled it is done with its batch, not at the end of the turn
/// (`runtime::flush::flush_early`). 16 KiB measured 1–2 % better than 32 KiB with 4 KiB
/// payloads, and keeps a `send` per 16 KiB at most.
pub const FLUSH_EARLY_BYTES: usize = 16 * 1024;

/// Messages queued for a connected client (beyond its in-flight window) at which the
/// shard stops reading publishes until the client acknowledged the queue down to a quarter
/// of it: a publisher faster than its subscribers is slowed rather than its messages
/// dropped at `max_queued_messages`. Half of `max_queued_messages` when that is lower.
/// See `Connection::queue_backlogged`.
pub const QUEUE_BACKLOG_HIGH: usize = 128;

/// Longest one client's queue may hold its shard's readers back in one go, even while it
/// drains: past this, it is treated like a slow consumer until its queue is down to the
/// low mark again. Bounds what a client draining a long backlog costs the shard's other
/// publishers. A hold in a steady stream lasts milliseconds (96 acknowledgements).
pub const QUEUE_HOLD_MAX_MS: u64 = 250;

/// How long a backlogged connection's socket may refuse bytes before it counts as a slow
/// consumer: it stops holding the shard's readers back, and its QoS 0 messages beyond
/// [`OUTBOUND_BYTES_SOFT_MAX`] are dropped instead. Likewise a backlogged queue that
/// does not move for this long. This bounds how long one client that does not read (or
/// does not acknowledge) can slow anyone else down.
pub const SLOW_CONSUMER_AFTER_MS: u64 = 100;

/// Topic aliases a client may use when the listener does not set `max_topic_alias`.
pub const TOPIC_ALIAS_DEFAULT_MAX: u16 = 10;

/// Topic aliases the broker assigns to a client that allows them when the listener does
/// not set `max_topic_alias_broker` (Mosquitto 2.1's default).
pub const TOPIC_ALIAS_BROKER_DEFAULT_MAX: u16 = 10;

/// Interval of the shard housekeeping tick (keep alive, expiry, wills), in milliseconds.
pub const TICK_MS: u64 = 250;

const _: () = assert!(SHARDS_MAX <= u64::BITS as usize, "shard sets are u64 masks");
const _: () = assert!(SHARDS_MAX <= u8::MAX as usize + 1, "shard ids are u8");
const _: () = assert!(CREDENTIAL_CACHE_ENTRIES_MAX > 0);
const _: () = assert!(OVERFLOW_RECHECK_MS < CONGESTION_RECHECK_MS);
const _: () = assert!(READ_CHUNK_MIN < READ_BUFFER_SIZE);
const _: () = assert!(READ_TURN_BYTES_MAX >= READ_BUFFER_SIZE);
const _: () = assert!(MESH_DRAIN_BUDGET <= MESH_RING_CAPACITY);
