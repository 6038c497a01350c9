//! Messages on their way to one other shard, gathered during one turn and sent as one mesh
//! message.
//!
//! Owns [`OutBatch`] (the sender's side) and [`DeliveryBatch`] (what crosses). Why: a
//! decoded message's topic and payload are slices of the publisher's read buffer, and every
//! slice shares that buffer's one reference count. If the subscriber's core dropped those
//! slices, the two cores would fight over that counter's cache line for every message. So
//! small topics and payloads are copied into a per-batch arena on the sending core; the
//! receiving core then only touches the arena's counter, once per batch in practice. Large
//! payloads (above [`COPY_MAX`]) are shared instead: copying them would cost more than the
//! counter. One mesh message per target per turn also means one ring slot and at most one
//! wake-up, instead of one per message. Placement: one `OutBatch` per target in each
//! shard's `MeshPort`.

use crate::message::Message;
use crate::mqtt::{ByteStr, Bytes};
use bytes::BytesMut;
use std::ops::Range;

/// Payloads up to this size are copied into the batch arena; larger ones are shared.
/// Measured (`culex-perf compare --scenario pairs --payload 4KiB`, 4 interleaved repeats):
/// sharing 4 KiB payloads instead of copying them cut broker CPU per message by 12 %
/// (4.03 → 3.50 µs) and raised delivery from ~345 k to ~384 k msg/s; 64-byte payloads,
/// where the shared counter is what costs, stay copied.
pub const COPY_MAX: usize = 1024;

/// Messages that crossed to this shard together.
#[derive(Debug, Default)]
pub struct DeliveryBatch {
    /// The messages, in the order they were published.
    pub messages: Vec<Message>,
}

/// Room a fresh arena chunk is given: a turn's small messages fit in one or a few.
const ARENA_CHUNK: usize = 64 * 1024;

/// Where one message's copied bytes are: arena chunk, then ranges in it (`None`: the
/// payload is shared).
struct Copied {
    chunk: usize,
    topic: Range<usize>,
    payload: Option<Range<usize>>,
}

/// The batch being gathered for one target shard: the messages with empty topic and
/// payload, and where their bytes are (filled in by [`OutBatch::finish`], once the arena is
/// frozen). The arena grows by whole chunks, never by reallocating: a full chunk is frozen
/// as it is and a new one started, so no byte is copied twice.
#[derive(Default)]
pub struct OutBatch {
    arena: BytesMut,
    full_chunks: Vec<Bytes>,
    messages: Vec<Message>,
    copied: Vec<Copied>,
}

impl OutBatch {
    /// True when nothing is gathered.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Adds a copy of `message`.
    pub fn push(&mut self, message: &Message) {
        let shared = (message.payload.len() > COPY_MAX).then(|| message.payload.clone());
        self.push_with(message, shared);
    }

    /// Adds `message`, taken: a large payload's reference moves into the batch instead of
    /// being counted once more here and once less when the caller drops its own (two
    /// updates of a counter the receiving core updates too). For the last target of a
    /// message.
    pub fn push_owned(&mut self, mut message: Message) {
        let shared =
            (message.payload.len() > COPY_MAX).then(|| std::mem::take(&mut message.payload));
        self.push_with(&message, shared);
    }

    /// Adds `message` with `shared` as its payload, or a copy of its payload when `None`.
    fn push_with(&mut self, message: &Message, shared: Option<Bytes>) {
        let needed = message.topic.len()
            + if shared.is_none() {
                message.payload.len()
            } else {
                0
            };
        if self.arena.capacity() - self.arena.len() < needed {
            if !self.arena.is_empty() {
                self.full_chunks.push(self.arena.split().freeze());
            }
            self.arena = BytesMut::with_capacity(needed.max(ARENA_CHUNK));
        }
        let topic = self.copy(message.topic.as_bytes());
        let (payload, shared) = match shared {
            Some(shared) => (None, shared),
            None => (Some(self.copy(&message.payload)), Bytes::new()),
        };
        self.messages.push(Message {
            topic: ByteStr::new(),
            payload: shared,
            qos: message.qos,
            retain: message.retain,
            properties: message.properties.clone(),
            expires_at: message.expires_at,
        });
        self.copied.push(Copied {
            chunk: self.full_chunks.len(),
            topic,
            payload,
        });
    }

    fn copy(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.arena.len();
        self.arena.extend_from_slice(bytes);
        start..self.arena.len()
    }

    /// Takes what was gathered; the current chunk's spare room is kept for the next batch.
    pub fn finish(&mut self) -> DeliveryBatch {
        self.full_chunks.push(self.arena.split().freeze());
        for (message, copied) in self.messages.iter_mut().zip(self.copied.drain(..)) {
            let data = &self.full_chunks[copied.chunk];
            message.topic = ByteStr::from_copy_of_valid(data.slice(copied.topic));
            if let Some(range) = copied.payload {
                message.payload = data.slice(range);
            }
        }
        self.full_chunks.clear();
        DeliveryBatch {
            messages: std::mem::take(&mut self.messages),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::QoS;

    #[test]
    fn a_batch_carries_equal_messages_in_order_without_sharing_small_buffers() {
        let source = Bytes::from_static(b"topic/aPAYLOAD-A topic/bPAYLOAD-B");
        let message = |t: std::ops::Range<usize>, p: std::ops::Range<usize>| {
            let topic = ByteStr::from_bytes(source.slice(t)).expect("text");
            Message::new(topic, source.slice(p), QoS::AtLeastOnce, false)
        };
        let a = message(0..7, 7..16);
        let b = message(17..24, 24..33);
        let big = Message::new(
            ByteStr::from_static("big"),
            Bytes::from(vec![9u8; COPY_MAX + 1]),
            QoS::AtMostOnce,
            true,
        );
        let mut batch = OutBatch::default();
        for m in [&a, &b, &big] {
            batch.push(m);
        }
        let out = batch.finish();
        assert!(batch.is_empty());
        assert_eq!(out.messages, vec![a.clone(), b.clone(), big.clone()]);
        assert_ne!(
            out.messages[0].payload.as_ptr(),
            a.payload.as_ptr(),
            "small payloads are copied"
        );
        assert_eq!(
            out.messages[2].payload.as_ptr(),
            big.payload.as_ptr(),
            "large payloads are shared"
        );
    }

    #[test]
    fn an_owned_message_moves_its_large_payload_and_copies_a_small_one() {
        let big_payload = Bytes::from(vec![7u8; COPY_MAX + 1]);
        let big = Message::new(
            ByteStr::from_static("big"),
            big_payload.clone(),
            QoS::AtMostOnce,
            false,
        );
        let small = Message::new(
            ByteStr::from_static("small"),
            Bytes::from_static(b"tiny"),
            QoS::AtLeastOnce,
            true,
        );
        let mut batch = OutBatch::default();
        batch.push_owned(big.clone());
        batch.push_owned(small.clone());
        let out = batch.finish();
        assert_eq!(out.messages, vec![big, small.clone()]);
        assert_eq!(out.messages[0].payload.as_ptr(), big_payload.as_ptr());
        assert_ne!(out.messages[1].payload.as_ptr(), small.payload.as_ptr());
    }

    #[test]
    fn a_batch_larger_than_one_chunk_keeps_every_message_intact() {
        let messages: Vec<Message> = (0..40u8)
            .map(|i| {
                let topic = ByteStr::copy_from_str(&format!("chunk/{i}"));
                Message::new(topic, Bytes::from(vec![i; 4096]), QoS::AtMostOnce, false)
            })
            .collect();
        let mut batch = OutBatch::default();
        for round in 0..2 {
            for message in &messages {
                batch.push(message);
            }
            let out = batch.finish();
            assert_eq!(out.messages, messages, "round {round}");
        }
    }
}
