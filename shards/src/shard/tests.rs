//! Shard protocol tests without sockets: packets in, encoded packets out.
