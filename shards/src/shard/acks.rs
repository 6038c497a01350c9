//! The acknowledgement half of QoS 1 and 2, both directions ([MQTT-4.3]).
//!
//! Server → client deliveries: PUBACK completes QoS 1; PUBREC releases a QoS 2 message and
//! is answered with PUBREL; PUBCOMP completes QoS 2. Client → server QoS 2: PUBREL is
//! answered with PUBCOMP and forgets the packet id. Each completion frees a window slot,
//! so the queue is drained.

use super::publish::{ack, AckKind};
use super::{Flow, Shard};
use crate::connection::ConnId;
use crate::mqtt::{reason, Ack};
use crate::session::{Delta, InflightState, SessionDelta, SessionKey};

impl Shard {
    fn session_of(&self, id: ConnId) -> Option<SessionKey> {
        self.conn(id).and_then(|c| c.session)
    }

    fn inflight_state(&self, key: SessionKey, ack: &Ack) -> Option<InflightState> {
        let outbound = &self.store.get(key)?.outbound;
        let position = outbound.position(ack.packet_id)?;
        Some(outbound.inflight[position].state)
    }

    pub(super) fn on_puback(&mut self, id: ConnId, received: Ack) -> Flow {
        self.complete(id, &received, InflightState::AwaitPubAck)
    }

    /// PUBACK or PUBCOMP: completes the exchange of `received`'s packet id if it is in
    /// `expected` state, and lets the queue into the freed window slot.
    fn complete(&mut self, id: ConnId, received: &Ack, expected: InflightState) -> Flow {
        let Some(key) = self.session_of(id) else {
            return Flow::Close;
        };
        if self.inflight_state(key, received) == Some(expected) {
            let packet_id = received.packet_id;
            self.apply(Delta::Update {
                key,
                change: SessionDelta::Completed { packet_id },
            });
            self.drain_queue(key);
        }
        Flow::Continue
    }

    pub(super) fn on_pubrec(&mut self, id: ConnId, received: Ack) -> Flow {
        let Some(key) = self.session_of(id) else {
            return Flow::Close;
        };
        let v5 = self.conn(id).is_some_and(|c| c.protocol.is_v5());
        match self.inflight_state(key, &received) {
            Some(InflightState::AwaitPubRec) if v5 && received.reason_code >= 0x80 => {
                // The client refused the message: the exchange ends here ([MQTT-4.3.3-?]).
                self.apply(Delta::Update {
                    key,
                    change: SessionDelta::Completed {
                        packet_id: received.packet_id,
                    },
                });
                self.drain_queue(key);
            }
            Some(InflightState::AwaitPubRec) => {
                self.apply(Delta::Update {
                    key,
                    change: SessionDelta::PubRecReceived {
                        packet_id: received.packet_id,
                    },
                });
                self.send_ack(
                    id,
                    ack(received.packet_id, reason::SUCCESS),
                    AckKind::PubRel,
                );
            }
            Some(InflightState::AwaitPubComp) => {
                // A resent PUBREC: answer it again.
                self.send_ack(
                    id,
                    ack(received.packet_id, reason::SUCCESS),
                    AckKind::PubRel,
                );
            }
            _ => {
                let code = if v5 {
                    reason::PACKET_IDENTIFIER_NOT_FOUND
                } else {
                    reason::SUCCESS
                };
                self.send_ack(id, ack(received.packet_id, code), AckKind::PubRel);
            }
        }
        Flow::Continue
    }

    pub(super) fn on_pubcomp(&mut self, id: ConnId, received: Ack) -> Flow {
        self.complete(id, &received, InflightState::AwaitPubComp)
    }

    pub(super) fn on_pubrel(&mut self, id: ConnId, received: Ack) -> Flow {
        let Some(key) = self.session_of(id) else {
            return Flow::Close;
        };
        let v5 = self.conn(id).is_some_and(|c| c.protocol.is_v5());
        let known = self
            .store
            .get(key)
            .is_some_and(|s| s.inbound_qos2.contains(&received.packet_id.get()));
        let code = if known {
            self.apply(Delta::Update {
                key,
                change: SessionDelta::InboundQos2Released {
                    packet_id: received.packet_id,
                },
            });
            reason::SUCCESS
        } else if v5 {
            reason::PACKET_IDENTIFIER_NOT_FOUND
        } else {
            reason::SUCCESS
        };
        self.send_ack(id, ack(received.packet_id, code), AckKind::PubComp);
        Flow::Continue
    }
}
