//! The committed durable state of the brokers' shards (Full Sync): persistent sessions and
//! retained messages exactly as the committed log entries left them, kept by the state
//! machine.
//!
//! Placement: one per node, inside the `Machine`, on the replication core's thread. The
//! shards hold the serving copy: on a follower it equals this one (the shards apply the
//! same committed records); on the leader the shards run ahead (they apply their changes
//! eagerly and propose them). This copy is what a snapshot holds at the applied log id,
//! and what a leader that loses office rebuilds its shards from.
//!
//! Pure: records in, records out, through the state layer's checked apply
//! (`SessionStore::apply_named`), which refuses, changing nothing, a record that does not
//! fit.

use shards::state::snapshot::session_records;
use shards::state::{Decoded, Record, SessionStore};
use std::collections::BTreeMap;

/// Sessions and retained messages.
#[derive(Default)]
pub struct Committed {
    sessions: SessionStore,
    /// Topic → the record that set its retained message.
    retained: BTreeMap<String, Record>,
}

impl std::fmt::Debug for Committed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Committed {{ {} sessions, {} retained }}",
            self.sessions.len(),
            self.retained.len()
        )
    }
}

impl Committed {
    /// The state the records rebuild (a snapshot's), refusing the first that does not fit.
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Result<Committed, String> {
        let mut committed = Committed::default();
        for record in records {
            committed.apply(record)?;
        }
        Ok(committed)
    }

    /// Applies one session or retained record; other records are not this state's.
    pub fn apply(&mut self, record: Record) -> Result<(), String> {
        match &record {
            Record::Retained { topic, message } => {
                match message {
                    Some(_) => {
                        record.clone().decode().map_err(|e| e.to_string())?;
                        self.retained.insert(topic.clone(), record);
                    }
                    None => {
                        self.retained.remove(topic);
                    }
                }
                Ok(())
            }
            Record::Session { .. } => match record.decode().map_err(|e| e.to_string())? {
                Decoded::Session { client_id, change } => self
                    .sessions
                    .apply_named(client_id, change)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                _ => Ok(()),
            },
            Record::Dynsec { .. } => Ok(()),
        }
    }

    /// The records that rebuild this state: every session (sessions with a connection
    /// are written as they are: the shards' own connections are not this state's), then
    /// every retained message.
    pub fn records(&self) -> Vec<Record> {
        let mut records = session_records(&self.sessions, None);
        records.extend(self.retained.values().cloned());
        records
    }

    /// Sessions held.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Retained messages held.
    pub fn retained(&self) -> usize {
        self.retained.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shards::message::Message;
    use shards::mqtt::{ByteStr, Bytes, Protocol, QoS};
    use shards::state::SessionDelta;

    fn created(client: &str) -> Record {
        Record::session(
            &ByteStr::from(client.to_string()),
            &SessionDelta::Created {
                protocol: Protocol::V5,
                expiry_interval: 3600,
                username: None,
            },
        )
    }

    #[test]
    fn records_rebuild_the_same_state_and_misfits_are_refused() {
        let mut committed = Committed::default();
        committed.apply(created("a")).expect("created");
        let message = Message::new(
            ByteStr::from_static("t"),
            Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
            true,
        );
        committed
            .apply(Record::retained(&ByteStr::from_static("t"), Some(&message)))
            .expect("retained");
        let error = committed.apply(created("a")).expect_err("exists");
        assert!(error.contains("a"), "{error}");
        let rebuilt = Committed::from_records(committed.records()).expect("rebuilds");
        assert_eq!(rebuilt.records(), committed.records());
        assert_eq!((rebuilt.sessions(), rebuilt.retained()), (1, 1));
        committed
            .apply(Record::retained(&ByteStr::from_static("t"), None))
            .expect("cleared");
        assert_eq!(committed.retained(), 0);
    }
}
