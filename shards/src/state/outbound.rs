//! Server → client QoS state of one session: the in-flight window and the queue behind it.
//!
//! Owns packet-id allocation and the order of redelivery. Mutated only through
//! `SessionStore::apply`; read by `shard::deliver` to decide whether a message can be sent
//! now, must wait in the queue, or must be dropped. A QoS 1/2 delivery takes its packet
//! identifier when it first enters the session (window or queue), as Mosquitto's do.

use crate::message::Delivery;
use crate::mqtt::PacketId;
use std::collections::VecDeque;

/// Where a QoS 1/2 message sent to the client stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflightState {
    /// QoS 1 sent, waiting for PUBACK.
    AwaitPubAck,
    /// QoS 2 sent, waiting for PUBREC.
    AwaitPubRec,
    /// QoS 2 PUBREC received and PUBREL sent, waiting for PUBCOMP. The message itself is no
    /// longer needed ([MQTT-4.3.3-?]: after PUBREC the sender only resends PUBREL).
    AwaitPubComp,
}

/// One message in the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflight {
    /// Packet identifier used for it.
    pub packet_id: PacketId,
    /// State of the exchange.
    pub state: InflightState,
    /// The delivery, kept until PUBREC (QoS 2) or PUBACK (QoS 1) so it can be resent with DUP.
    pub delivery: Option<Delivery>,
}

/// A delivery waiting in the queue, with the packet identifier it took (QoS 1/2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Its packet identifier; `None` for a queued QoS 0 message.
    pub packet_id: Option<PacketId>,
    /// The delivery.
    pub delivery: Delivery,
}

/// The outbound window and queue of a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outbound {
    /// Messages sent and not yet acknowledged, oldest first (the order of redelivery,
    /// [MQTT-4.6.0-1]).
    pub inflight: VecDeque<Inflight>,
    /// Messages waiting for room in the window, or for the client to reconnect.
    pub queue: VecDeque<Queued>,
    /// Payload bytes of the deliveries held in `inflight`.
    pub inflight_bytes: usize,
    /// Payload bytes of the deliveries held in `queue`.
    pub queued_bytes: usize,
    /// Last packet identifier handed out (0 before the first).
    pub last_packet_id: u16,
}

impl Outbound {
    /// Position of `packet_id` in the window.
    pub fn position(&self, packet_id: PacketId) -> Option<usize> {
        // Acknowledgements usually arrive in order, so the front is the common hit.
        self.inflight
            .iter()
            .position(|entry| entry.packet_id == packet_id)
    }

    /// The next packet identifier not in use by the window, without taking it (taking it
    /// is part of the `Sent`, `Queued` or `PacketIdTaken` change). `None` only when all
    /// 65,535 ids are in flight.
    pub fn next_packet_id(&self) -> Option<PacketId> {
        if self.inflight.len() >= usize::from(u16::MAX) {
            return None;
        }
        let mut candidate = self.last_packet_id;
        loop {
            candidate = if candidate == u16::MAX {
                1
            } else {
                candidate + 1
            };
            let id = PacketId::new(candidate)?;
            if self.position(id).is_none() {
                return Some(id);
            }
        }
    }

    /// The identifier the front of the queue goes out with: its own, unless the counter
    /// wrapped and that one is still in flight (then the next free one).
    pub fn dequeue_packet_id(&self) -> Option<PacketId> {
        match self.queue.front()?.packet_id {
            Some(own) if self.position(own).is_none() => Some(own),
            _ => self.next_packet_id(),
        }
    }

    /// Messages in the window that still count against the client's Receive Maximum.
    pub fn window_len(&self) -> usize {
        self.inflight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u16) -> Inflight {
        Inflight {
            packet_id: PacketId::new(id).expect("test ids are non-zero"),
            state: InflightState::AwaitPubAck,
            delivery: None,
        }
    }

    #[test]
    fn packet_ids_skip_ids_in_flight_and_wrap_past_zero() {
        let mut outbound = Outbound::default();
        assert_eq!(outbound.next_packet_id().map(PacketId::get), Some(1));
        outbound.last_packet_id = u16::MAX - 1;
        outbound.inflight.push_back(entry(u16::MAX));
        outbound.inflight.push_back(entry(1));
        assert_eq!(outbound.next_packet_id().map(PacketId::get), Some(2));
    }
}
