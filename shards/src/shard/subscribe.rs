//! SUBSCRIBE and UNSUBSCRIBE: validation, authorisation, the session deltas, the
//! acknowledgement, and the retained messages a new subscription receives.

use super::deliver::{cap_qos, Route};
use super::{Flow, Shard};
use crate::access::{Action, Identity};
use crate::connection::ConnId;
use crate::message::Message;
use crate::mqtt::{
    reason, ByteStr, Packet, QoS, SubAck, SubAckProperties, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe,
};
use crate::state::{Delta, SessionDelta, SessionKey, Subscription};
use crate::topics::{parse_subscription, Subscription as Parsed};

/// A SUBACK waiting for every other shard to have learned the new interest.
pub(super) struct PendingSubAck {
    conn: ConnId,
    key: SessionKey,
    suback: SubAck,
    due: Vec<RetainedDue>,
}

/// A granted subscription whose retained messages are due after the SUBACK.
pub(super) struct RetainedDue {
    filter: ByteStr,
    options: SubscriptionOptions,
    identifier: Option<u32>,
}

impl Shard {
    /// The session, protocol and listener of connection `id`, while it is attached.
    fn attached(&self, id: ConnId) -> Option<(SessionKey, bool, usize)> {
        let conn = self.conn(id)?;
        Some((conn.session?, conn.protocol.is_v5(), conn.listener))
    }

    pub(super) fn on_subscribe(&mut self, id: ConnId, subscribe: Subscribe) -> Flow {
        let Some((key, v5, listener)) = self.attached(id) else {
            return Flow::Close;
        };
        if let Some(flow) = self.refuse_invalid_filters(
            id,
            subscribe.filters.iter().map(|(filter, _)| filter),
            "subscription",
        ) {
            return flow;
        }
        let identifier = subscribe.properties.subscription_identifier;
        let broadcasts_before = self.interest_broadcasts;
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut due = Vec::new();
        for (filter, options) in subscribe.filters {
            let shared = matches!(
                parse_subscription(filter.as_bytes()),
                Ok(Parsed::Shared { .. })
            );
            if shared && options.no_local {
                return self.violate(
                    id,
                    reason::PROTOCOL_ERROR,
                    "set No Local on a shared subscription",
                );
            }
            let filter = self.mounted_filter(listener, &filter, shared);
            let max_qos =
                QoS::from_u8(self.settings.listeners[listener].max_qos).unwrap_or(QoS::ExactlyOnce);
            let options = SubscriptionOptions {
                qos: options.qos.min(max_qos),
                ..options
            };
            if crate::packet_log::enabled() {
                log::debug!(
                    "{}",
                    crate::packet_log::subscribe_filter(&filter, options.qos)
                );
            }
            if !self.may(Action::Subscribe, id, &filter) {
                codes.push(if v5 {
                    reason::NOT_AUTHORIZED
                } else {
                    reason::v3::SUBACK_FAILURE
                });
                continue;
            }
            let is_new = self
                .store
                .get(key)
                .is_some_and(|s| !s.subscriptions.contains_key(&filter));
            let subscription = Subscription {
                options,
                identifier,
            };
            self.apply(Delta::Update {
                key,
                change: SessionDelta::Subscribed {
                    filter: filter.clone(),
                    subscription,
                },
            });
            codes.push(options.qos as u8);
            if let Some(conn) = self.conn(id) {
                log::info!(target: "subscribe", "{} {} {}", conn.client_id, options.qos as u8, filter);
            }
            let wants_retained = match options.retain_handling {
                0 => true,
                1 => is_new,
                _ => false,
            };
            if wants_retained && !shared {
                due.push(RetainedDue {
                    filter,
                    options,
                    identifier,
                });
            }
        }
        let suback = SubAck {
            packet_id: subscribe.packet_id,
            properties: SubAckProperties::default(),
            reason_codes: codes,
        };
        let pending = PendingSubAck {
            conn: id,
            key,
            suback,
            due,
        };
        let reads_retained = !pending.due.is_empty() && self.mesh.shards() > 1;
        if self.interest_broadcasts == broadcasts_before && !reads_retained {
            self.complete_subscribe(pending);
        } else {
            // Another shard must know of this subscription before the client hears it is
            // active: a publish it handles right after would otherwise miss us. And every
            // retained update a shard acknowledged before must be in our copy before we
            // read it.
            self.await_barrier(pending);
        }
        Flow::Continue
    }

    /// Sends the SUBACK, then the retained messages the new subscriptions asked for.
    pub(super) fn complete_subscribe(&mut self, pending: PendingSubAck) {
        let PendingSubAck {
            conn: id,
            key,
            suback,
            due,
        } = pending;
        let hold = self.hold(0);
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.send_held(&Packet::SubAck(suback), hold);
        for retained in due {
            self.send_retained(key, &retained);
        }
    }

    pub(super) fn on_unsubscribe(&mut self, id: ConnId, unsubscribe: Unsubscribe) -> Flow {
        let Some((key, v5, listener)) = self.attached(id) else {
            return Flow::Close;
        };
        let filters = unsubscribe.filters.iter();
        if let Some(flow) = self.refuse_invalid_filters(id, filters, "unsubscription") {
            return flow;
        }
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        for filter in unsubscribe.filters {
            let shared = matches!(
                parse_subscription(filter.as_bytes()),
                Ok(Parsed::Shared { .. })
            );
            let filter = self.mounted_filter(listener, &filter, shared);
            // Both lines whether or not the rules allow it, as Mosquitto logs them.
            if crate::packet_log::enabled() {
                log::debug!("{}", crate::packet_log::unsubscribe_filter(&filter));
            }
            if let Some(conn) = self.conn(id) {
                log::info!(target: "unsubscribe", "{} {}", conn.client_id, filter);
            }
            if !self.may(Action::Unsubscribe, id, &filter) {
                // Refused: the subscription stays (5.0 says why; 3.1.1 has no codes).
                codes.push(reason::NOT_AUTHORIZED);
                continue;
            }
            let existed = self
                .store
                .get(key)
                .is_some_and(|s| s.subscriptions.contains_key(&filter));
            if existed {
                self.apply(Delta::Update {
                    key,
                    change: SessionDelta::Unsubscribed { filter },
                });
            }
            codes.push(if existed {
                reason::SUCCESS
            } else {
                reason::NO_SUBSCRIPTION_EXISTED
            });
        }
        let hold = self.hold(0);
        if let Some(conn) = self.conn_mut(id) {
            let reason_codes = if v5 { codes } else { Vec::new() };
            let unsuback = UnsubAck {
                packet_id: unsubscribe.packet_id,
                properties: SubAckProperties::default(),
                reason_codes,
            };
            conn.send_held(&Packet::UnsubAck(unsuback), hold);
        }
        Flow::Continue
    }

    /// An invalid topic filter makes the whole SUBSCRIBE or UNSUBSCRIBE a Malformed Packet
    /// ([MQTT-4.7.1-1], [MQTT-4.7.1-2], §4.8.2): the connection is closed (5.0: DISCONNECT
    /// 0x81) and nothing of the packet is applied. Mosquitto closes too (it keeps the
    /// filters it read before the bad one; Culex keeps none). `None` when every filter is
    /// valid.
    fn refuse_invalid_filters<'a>(
        &mut self,
        id: ConnId,
        mut filters: impl Iterator<Item = &'a ByteStr>,
        what: &str,
    ) -> Option<Flow> {
        if filters.all(|filter| parse_subscription(filter.as_bytes()).is_ok()) {
            return None;
        }
        if let Some(conn) = self.conn(id) {
            log::info!(
                "Invalid {what} string from {}, disconnecting.",
                conn.peer.ip()
            );
        }
        Some(self.violate(id, reason::MALFORMED_PACKET, "invalid topic filter"))
    }

    /// Applies the listener's mount point to a filter (after `$share/group/` when shared).
    fn mounted_filter(&self, listener: usize, filter: &ByteStr, shared: bool) -> ByteStr {
        let Some(prefix) = self.settings.listeners[listener].mount_point.as_deref() else {
            return filter.clone();
        };
        if !shared {
            return ByteStr::from(format!("{prefix}{filter}"));
        }
        let text = filter.as_str();
        let group_end = text["$share/".len()..]
            .find('/')
            .map_or(text.len(), |i| i + "$share/".len());
        ByteStr::from(format!(
            "{}/{prefix}{}",
            &text[..group_end],
            &text[group_end + 1..]
        ))
    }

    fn may(&self, action: Action, id: ConnId, filter: &ByteStr) -> bool {
        let Some(conn) = self.conn(id) else {
            return false;
        };
        let who = Identity {
            listener: conn.listener,
            client_id: conn.client_id.as_str(),
            username: conn.username.as_deref(),
        };
        self.access.allows(action, &who, filter.as_str())
    }

    /// Sends the retained messages matching a new subscription, with RETAIN set
    /// ([MQTT-3.3.1-9]).
    fn send_retained(&mut self, key: SessionKey, due: &RetainedDue) {
        let now = self.now.unix_s;
        let mut found: Vec<Message> = Vec::new();
        self.retained
            .for_each_match(due.filter.as_bytes(), |_, message| {
                if !message.expired(now) {
                    found.push(message.clone());
                }
            });
        for message in found {
            let route = Route {
                qos: cap_qos(
                    message.qos,
                    due.options.qos,
                    self.settings.upgrade_outgoing_qos,
                ),
                retain: true,
                subscription_ids: due.identifier.into_iter().collect(),
            };
            self.deliver_to_session(key, &message, route);
        }
    }
}
