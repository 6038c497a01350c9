//! Durable state in and out of a shard as records: the shard's part of a snapshot, and
//! the records a restored state file (or, in a cluster, a follower) applies.
//!
//! Records from outside go through the store's checked door (`SessionStore::apply_named`)
//! and the same bookkeeping as the shard's own changes (`Shard::after_apply`): interest is
//! broadcast, routes are refreshed. Called by the runtime (restore at start, snapshot
//! requests) and by the replication apply path.

use super::Shard;
use crate::state::snapshot::{retained_records, session_records};
use crate::state::{ApplyError, Decoded, Record, RecordError, SessionDelta};

/// Why a record could not be applied; nothing of it was.
#[derive(Debug, Clone, PartialEq)]
pub enum RestoreError {
    /// Occurs when the record holds a value no valid state can have.
    Record(RecordError),
    /// Occurs when the record does not fit the state.
    Apply(ApplyError),
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestoreError::Record(error) => write!(f, "{error}"),
            RestoreError::Apply(error) => write!(f, "{error}"),
        }
    }
}

impl Shard {
    /// The records of this shard's durable state: its persistent sessions, and on shard 0
    /// the retained messages (every shard holds the same copy). Connected sessions are
    /// written as disconnected at `connected_until` when given (see `session_records`).
    pub fn snapshot_records(&self, connected_until: Option<u64>) -> Vec<Record> {
        let mut records = session_records(&self.store, connected_until);
        if self.id == 0 {
            records.extend(retained_records(&self.retained));
        }
        records
    }

    /// Applies records from outside, in order, then re-arms the timers of what they
    /// restored. Stops at the first record that is invalid or does not fit, which changed
    /// nothing (the records before it stay applied).
    pub fn apply_records(
        &mut self,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<(), RestoreError> {
        let mut result = Ok(());
        for record in records {
            let applied = record
                .decode()
                .map_err(RestoreError::Record)
                .and_then(|decoded| self.apply_decoded(decoded).map_err(RestoreError::Apply));
            if let Err(error) = applied {
                result = Err(error);
                break;
            }
        }
        self.rearm_wills();
        result
    }

    /// Applies one validated record.
    pub fn apply_decoded(&mut self, decoded: Decoded) -> Result<(), ApplyError> {
        match decoded {
            Decoded::Session { client_id, change } => {
                let routes_change = matches!(
                    change,
                    SessionDelta::Subscribed { .. }
                        | SessionDelta::Unsubscribed { .. }
                        | SessionDelta::Ended
                );
                let applied = self.store.apply_named(client_id, change)?;
                self.after_apply(applied, routes_change);
            }
            Decoded::Retained { topic, message } => self.set_retained(&topic, message),
            // Applied by the dynamic-security service, not by shards.
            Decoded::Dynsec { .. } => {}
        }
        Ok(())
    }

    /// Arms a timer for every offline session with a pending will (restored, or taken
    /// over by a new leader): due at its disconnection plus the will delay, at once if
    /// that has passed.
    pub fn rearm_wills(&mut self) {
        let now = self.now;
        let due: Vec<(u64, crate::state::SessionKey)> = self
            .store
            .iter()
            .filter(|(key, _)| self.conn_of(*key).is_none())
            .filter_map(|(key, session)| {
                let will = session.will.as_ref()?;
                let since = session.disconnected_at?;
                let delay = u64::from(will.delay_interval.min(session.expiry_interval));
                let due_in_s = (since + delay).saturating_sub(now.unix_s);
                Some((now.mono_ms + due_in_s * 1000, key))
            })
            .collect();
        for (at, key) in due {
            self.delayed_wills.retain(|(_, k)| *k != key);
            self.delayed_wills.push((at, key));
        }
    }
}

impl Shard {
    /// Ends the connections a restore (or, in a cluster, a new leader) holds sessions as
    /// connected for while no connection of this process is attached to them: they are
    /// gone, so each session ends as after a lost connection (its will published or
    /// delayed, the session kept while persistent).
    pub fn close_orphans(&mut self) {
        let orphans: Vec<crate::state::SessionKey> = self
            .store
            .iter()
            .filter(|(key, session)| {
                session.disconnected_at.is_none() && self.conn_of(*key).is_none()
            })
            .map(|(key, _)| key)
            .collect();
        for key in orphans {
            self.session_disconnected(key, true);
        }
    }
}

impl Shard {
    /// Discards this shard's durable state (a cluster leader that lost office: what it
    /// applied eagerly may never have been committed; the committed state is applied
    /// again after this). Every connection with a persistent session is closed (5.0:
    /// DISCONNECT "server shutting down") and forgets it, without a will or any change to
    /// it; every persistent or unattached session ends through the store, so the other
    /// shards drop their interest in the same order as any later change; the retained copy
    /// is emptied. `$SYS` topics stay, and so do connections with a session that ends with
    /// them (it was never replicated: an operator on the admin listener keeps working).
    pub fn reset_durable(&mut self) {
        use crate::mqtt::{reason, Disconnect, Packet};
        use crate::state::Delta;
        let mut detached = 0;
        for (_, conn) in self.conns.iter_mut() {
            let Some(key) = conn.session else {
                continue;
            };
            if !self.store.get(key).is_some_and(|s| s.is_persistent()) {
                continue;
            }
            conn.session = None;
            detached += 1;
            conn.will_on_close = false;
            if conn.closing.is_none() {
                if conn.protocol.is_v5() {
                    let disconnect = Disconnect {
                        reason_code: reason::SERVER_SHUTTING_DOWN,
                        ..Default::default()
                    };
                    conn.send(&Packet::Disconnect(Box::new(disconnect)));
                }
                conn.close(crate::connection::CloseReason::ServerShutdown);
            }
        }
        crate::stats::drop_by(&self.my_stats().clients_connected, detached);
        let kept: Vec<crate::state::SessionKey> = self
            .conns
            .iter()
            .filter_map(|(_, conn)| conn.session)
            .collect();
        for (key, slot) in self.online.iter_mut().enumerate() {
            if slot.is_some() && !kept.iter().any(|k| *k as usize == key) {
                *slot = None;
            }
        }
        self.delayed_wills.clear();
        let keys: Vec<crate::state::SessionKey> = self
            .store
            .iter()
            .map(|(key, _)| key)
            .filter(|key| !kept.contains(key))
            .collect();
        for key in keys {
            self.apply(Delta::Update {
                key,
                change: SessionDelta::Ended,
            });
        }
        let topics: Vec<crate::mqtt::ByteStr> = self
            .retained
            .iter()
            .filter(|(topic, _)| !topic.starts_with(b"$SYS/"))
            .map(|(_, message)| message.topic.clone())
            .collect();
        for topic in topics {
            self.set_retained(&topic, None);
        }
    }
}
