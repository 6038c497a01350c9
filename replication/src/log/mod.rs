//! The node's durable Raft state on disk, in the HA data directory: the write-ahead log of
//! entries, and the small stable records (vote, membership, committed index).
