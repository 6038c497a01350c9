//! Topic names, topic filters and the indexes built on them (MQTT 5.0 §4.7, §4.8.2).
//!
//! Brief overview: this module is pure logic on `&[u8]` topics that the codec has already
//! checked to be UTF-8. It does no I/O, owns no connection, and never allocates on the publish
//! path. The connection handlers validate with [`valid_topic_name`], [`valid_topic_filter`]
//! and [`parse_subscription`]; the shard then routes and fans out with three indexes:
//!
//! ```text
//!   PUBLISH topic ──► InterestTable::shards_matching ──► bitmask of target shards
//!   (on shard C)        (copy on every shard)                │  one hop per target shard
//!                                                             ▼
//!                      SubscriptionTrie::for_each_match ──► (session, options) pairs
//!                        (one per shard, its own sessions)
//!   retained PUBLISH ─► RetainedTree::insert/remove (one per shard, topics it owns)
//!   SUBSCRIBE filter ─► RetainedTree::for_each_match ──► retained messages to send
//! ```
//!
//! [`matches()`] is the reference every index is property-tested against (`model_test.rs`).
//!
//! Files: `validate` (rules and limits), `subscription` (`$share` parsing), `matches` (the
//! oracle), `levels` (allocation-free level splitting), `trie`, `interest`, `retained`.

mod interest;
mod levels;
mod matches;
mod retained;
mod subscription;
mod trie;
mod validate;

#[cfg(test)]
mod model_test;

pub use interest::{InterestTable, SHARDS_MAX};
pub use matches::matches;
pub use retained::RetainedTree;
pub use subscription::{parse_subscription, FilterError, Subscription};
pub use trie::SubscriptionTrie;
pub use validate::{valid_topic_filter, valid_topic_name, TOPIC_BYTES_MAX, TOPIC_LEVELS_MAX};
