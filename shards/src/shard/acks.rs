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
use crate::state::{Delta, InflightState, SessionDelta, SessionKey};

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
        self.complete(id, &received, InflightState::AwaitPubAck, "PUBACK")
    }

    /// PUBACK or PUBCOMP: completes the exchange of `received`'s packet id if it is in
    /// `expected` state, and lets the queue into the freed window slot. An identifier not
    /// in flight is ignored (a late duplicate); one in flight in another state is an
    /// acknowledgement of the wrong type, a protocol error ([MQTT-4.8.0-1]).
    fn complete(
        &mut self,
        id: ConnId,
        received: &Ack,
        expected: InflightState,
        name: &str,
    ) -> Flow {
        let Some(key) = self.session_of(id) else {
            return Flow::Close;
        };
        match self.inflight_state(key, received) {
            None => Flow::Continue,
            Some(state) if state == expected => {
                let packet_id = received.packet_id;
                self.apply(Delta::Update {
                    key,
                    change: SessionDelta::Completed { packet_id },
                });
                self.drain_queue(key);
                Flow::Continue
            }
            Some(state) => self.wrong_acknowledgement(id, name, state),
        }
    }

    /// An acknowledgement that does not fit the exchange its packet id is in: a Protocol
    /// Error (5.0: DISCONNECT 0x82; Mosquitto closes without one).
    fn wrong_acknowledgement(&mut self, id: ConnId, name: &str, state: InflightState) -> Flow {
        let awaited = match state {
            InflightState::AwaitPubAck => "PUBACK",
            InflightState::AwaitPubRec => "PUBREC",
            InflightState::AwaitPubComp => "PUBCOMP",
        };
        let why = format!("sent {name} where {awaited} was due");
        self.violate(id, reason::PROTOCOL_ERROR, &why)
    }

    pub(super) fn on_pubrec(&mut self, id: ConnId, received: Ack) -> Flow {
        let Some(key) = self.session_of(id) else {
            return Flow::Close;
        };
        let v5 = self.conn(id).is_some_and(|c| c.protocol.is_v5());
        match self.inflight_state(key, &received) {
            Some(InflightState::AwaitPubRec) if v5 && received.reason_code >= 0x80 => {
                // The client refused the message: the exchange ends here (§4.3.3).
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
                self.send_ack_held(
                    id,
                    ack(received.packet_id, reason::SUCCESS),
                    AckKind::PubRel,
                    0,
                );
            }
            Some(InflightState::AwaitPubAck) => {
                return self.wrong_acknowledgement(id, "PUBREC", InflightState::AwaitPubAck);
            }
            // A resent PUBREC, or one for an id the session does not know (after a
            // restart without persistence): PUBREL with success, as Mosquitto answers
            // both (0x92 would be allowed for the unknown id; clients treat them alike).
            Some(InflightState::AwaitPubComp) | None => {
                self.send_ack_held(
                    id,
                    ack(received.packet_id, reason::SUCCESS),
                    AckKind::PubRel,
                    0,
                );
            }
        }
        Flow::Continue
    }

    pub(super) fn on_pubcomp(&mut self, id: ConnId, received: Ack) -> Flow {
        self.complete(id, &received, InflightState::AwaitPubComp, "PUBCOMP")
    }

    /// PUBREL: forgets the packet id and answers PUBCOMP. An id the session does not hold
    /// (a resent PUBREL whose PUBCOMP was lost, or one from before a restart without
    /// persistence) is answered with success too, as Mosquitto does: the client's next
    /// step is the same for 0x92, and success keeps its logs and counters quiet.
    pub(super) fn on_pubrel(&mut self, id: ConnId, received: Ack) -> Flow {
        let Some(key) = self.session_of(id) else {
            return Flow::Close;
        };
        let known = self
            .store
            .get(key)
            .is_some_and(|s| s.inbound_qos2.contains(&received.packet_id.get()));
        if known {
            self.apply(Delta::Update {
                key,
                change: SessionDelta::InboundQos2Released {
                    packet_id: received.packet_id,
                },
            });
        }
        self.send_ack_held(
            id,
            ack(received.packet_id, reason::SUCCESS),
            AckKind::PubComp,
            0,
        );
        Flow::Continue
    }
}
