//! The node's dynamic-security state, as the replication core owns it (with the HA module
//! loaded, the core replaces the standalone dynamic-security service).
//!
//! Three ways a request is served, chosen by the core:
//! - outside a cluster, [`Dynsec::serve_here`] runs it as the standalone service does
//!   (change, save, new rules to the shards, response, kicks);
//! - on the leader, [`Dynsec::evaluate`] runs it on a copy of the committed state and
//!   turns a change into a [`Proposal`]: the whole serialised document (passwords carry
//!   random salts, so replaying the request elsewhere would diverge), the kicks, and the
//!   response, published by the asker's node once it has applied the entry;
//! - every node applies a committed document with [`Dynsec::install`].
//!
//! Pure except for `install` and `serve_here`, which hand their results to the shards.

use crate::proposal::{KickList, Proposal, Reply};
use shards::access::AccessPolicy;
use shards::control::DYNSEC_RESPONSE_TOPIC;
use shards::dynsec::json::{self, Value};
use shards::dynsec::json_out::{to_compact, Out};
use shards::dynsec::service::{kick, publish_policy, respond, save};

use shards::dynsec::{handle_request, store, DynsecState, Kick, RequestContext};
use shards::mesh::ShardId;
use shards::runtime::Inboxes;
use shards::state::Record;
use std::path::PathBuf;
use std::sync::Arc;

/// The state and where it lives.
pub struct Dynsec {
    /// The state in force on this node (the committed one in a cluster).
    pub state: DynsecState,
    /// `dynamic-security.json`.
    pub path: PathBuf,
    /// The rest of the access policy (listeners, files), combined with the state's rules.
    pub base: AccessPolicy,
}

/// Who asked, for the audit lines and the response.
#[derive(Debug, Clone)]
pub struct Asker {
    /// The client id.
    pub client_id: String,
    /// The user name.
    pub username: Option<String>,
    /// The node whose client asked.
    pub node: u64,
    /// The shard of that node the request came in on.
    pub shard: ShardId,
}

/// What a request comes to on the leader.
#[derive(Debug)]
pub enum Evaluated {
    /// Nothing changed: the response, to send at once.
    Unchanged(Option<Vec<u8>>),
    /// A change: propose this entry; its reply carries the response.
    Change(Box<Proposal>),
}

impl Dynsec {
    /// Serves `payload` on this node alone (outside a cluster).
    pub fn serve_here(&mut self, inboxes: &Arc<Inboxes>, payload: &[u8], asker: &Asker) {
        let opened_before = shards::connection::opened_so_far();
        let outcome = handle_request(&mut self.state, payload, &context(asker));
        for line in &outcome.audit {
            log::info!("{line}");
        }
        if outcome.changed {
            save(&self.path, &self.state);
            publish_policy(&self.base, &self.state, inboxes);
        }
        if let Some(response) = outcome.response {
            respond(inboxes, asker.shard, DYNSEC_RESPONSE_TOPIC, response);
        }
        kick(inboxes, asker.shard, outcome.kicks, opened_before);
    }

    /// Runs `payload` on a copy of the state (the leader's way, see the module doc).
    pub fn evaluate(&self, payload: &[u8], asker: &Asker) -> Evaluated {
        let mut next = self.state.clone();
        let outcome = handle_request(&mut next, payload, &context(asker));
        for line in &outcome.audit {
            log::info!("{line}");
        }
        if !outcome.changed {
            return Evaluated::Unchanged(outcome.response);
        }
        let kicks = (!outcome.kicks.is_empty()).then(|| KickList {
            anonymous: outcome.kicks.contains(&Kick::Anonymous),
            usernames: outcome
                .kicks
                .iter()
                .filter_map(|kick| match kick {
                    Kick::Username(name) => Some(name.clone()),
                    Kick::Anonymous => None,
                })
                .collect(),
        });
        let reply = outcome.response.map(|payload| Reply {
            node: asker.node,
            shard: asker.shard,
            topic: DYNSEC_RESPONSE_TOPIC.to_string(),
            payload,
        });
        Evaluated::Change(Box::new(Proposal {
            records: vec![Record::Dynsec {
                document: store::serialise(&next),
            }],
            cluster: None,
            kicks,
            reply,
        }))
    }

    /// The proposal that makes this node's state the cluster's (the first leader of a new
    /// cluster proposes it).
    pub fn seed_proposal(&self) -> Proposal {
        Proposal {
            records: vec![Record::Dynsec {
                document: self.document(),
            }],
            ..Proposal::default()
        }
    }

    /// The state, serialised as the file is.
    pub fn document(&self) -> Vec<u8> {
        store::serialise(&self.state)
    }

    /// Puts a committed document in force here: state, the shards' rules, and the file
    /// (written by `saver`, off this thread: the document is already durable in the Raft
    /// log of a majority, the file is its copy for a node that leaves the cluster). A
    /// document this node cannot read (a newer version wrote it) is logged and the state
    /// kept.
    pub fn install(&mut self, inboxes: &Inboxes, document: &[u8], saver: &Saver) {
        match store::load(document) {
            Ok((state, warnings)) => {
                for warning in warnings {
                    log::warn!("Warning: dynamic security: {}", warning.0);
                }
                if state == self.state {
                    return;
                }
                self.state = state;
                saver.save(&self.path, &self.state);
                publish_policy(&self.base, &self.state, inboxes);
            }
            Err(error) => {
                log::error!("Error: HA: the cluster's dynamic-security document: {error}.")
            }
        }
    }

    /// The rest of the policy changed (reload).
    pub fn rebase(&mut self, inboxes: &Inboxes, base: AccessPolicy) {
        self.base = base;
        publish_policy(&self.base, &self.state, inboxes);
    }
}

/// Writes `dynamic-security.json` on a thread of its own: the latest document wins, and
/// one that is superseded before it is written is skipped. Dropped with the core; what is
/// queued then is still written.
pub struct Saver {
    sender: Option<std::sync::mpsc::Sender<(PathBuf, Vec<u8>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Saver {
    /// Starts the saver's thread.
    pub fn start() -> std::io::Result<Saver> {
        let (sender, receiver) = std::sync::mpsc::channel::<(PathBuf, Vec<u8>)>();
        let thread = std::thread::Builder::new()
            .name("culex-ha-save".to_string())
            .spawn(move || {
                while let Ok(mut next) = receiver.recv() {
                    while let Ok(newer) = receiver.try_recv() {
                        next = newer;
                    }
                    let (path, bytes) = next;
                    if let Err(error) = shards::atomic_file::save_atomic(&path, &bytes) {
                        log::error!(
                            "Error: dynamic security: cannot save {}: {error}.",
                            path.display()
                        );
                    }
                }
            })?;
        Ok(Saver {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Queues `state` to be written to `path`.
    pub fn save(&self, path: &std::path::Path, state: &DynsecState) {
        if let Some(sender) = &self.sender {
            let _ = sender.send((path.to_path_buf(), store::serialise(state)));
        }
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Disconnects the clients of a committed change on this node (every shard).
pub fn kick_here(inboxes: &Arc<Inboxes>, kicks: &KickList) {
    let mut who: Vec<Kick> = kicks
        .usernames
        .iter()
        .cloned()
        .map(Kick::Username)
        .collect();
    if kicks.anonymous {
        who.push(Kick::Anonymous);
    }
    kick(inboxes, 0, who, shards::connection::opened_so_far());
}

fn context(asker: &Asker) -> RequestContext<'_> {
    RequestContext {
        client_id: asker.client_id.as_bytes(),
        username: asker.username.as_deref().map(str::as_bytes),
    }
}

/// The response to a request that could not be served (no leader, the change was not
/// committed): one entry per command, each with `error`, in the API's envelope; what
/// the request's JSON does not give is answered as dynamic security answers it.
pub fn refusal(payload: &[u8], error: &str) -> Vec<u8> {
    let entry = |command: &[u8], correlation: Option<&[u8]>| {
        let mut members = vec![
            ("command", Out::str(command)),
            ("error", Out::str(error.as_bytes())),
        ];
        if let Some(correlation) = correlation {
            members.push(("correlationData", Out::str(correlation)));
        }
        Out::Object(members)
    };
    let commands = json::parse(payload).ok().and_then(|tree| {
        tree.get("commands")
            .and_then(Value::as_array)
            .map(<[Value]>::to_vec)
    });
    let entries = match commands {
        Some(commands) => commands
            .iter()
            .map(|command| {
                entry(
                    command
                        .get("command")
                        .and_then(Value::as_bytes)
                        .unwrap_or(b"Unknown command"),
                    command.get("correlationData").and_then(Value::as_bytes),
                )
            })
            .collect(),
        None => vec![entry(b"Unknown command", None)],
    };
    to_compact(&Out::Object(vec![("responses", Out::Array(entries))]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proposal::Proposal;

    fn dynsec() -> Dynsec {
        Dynsec {
            state: DynsecState::default(),
            path: std::env::temp_dir().join("culex-core-dynsec-unused.json"),
            base: AccessPolicy::open(Vec::new()),
        }
    }

    fn asker() -> Asker {
        Asker {
            client_id: "admin-cli".to_string(),
            username: Some("admin".to_string()),
            node: 2,
            shard: 1,
        }
    }

    #[test]
    fn a_change_becomes_a_document_a_reply_and_no_local_change() {
        let owner = dynsec();
        let request = br#"{"commands":[{"command":"createClient","username":"alice","password":"pw","correlationData":"7"}]}"#;
        let Evaluated::Change(proposal) = owner.evaluate(request, &asker()) else {
            panic!("a change");
        };
        assert_eq!(owner.state, DynsecState::default(), "evaluated on a copy");
        let [Record::Dynsec { document }] = &proposal.records[..] else {
            panic!("one document: {:?}", proposal.records);
        };
        let (state, _) = store::load(document).expect("a document");
        assert!(state.clients().contains_key(b"alice".as_slice()));
        let reply = proposal.reply.as_ref().expect("a reply");
        assert_eq!((reply.node, reply.shard), (2, 1));
        assert_eq!(reply.topic, DYNSEC_RESPONSE_TOPIC);
        assert!(String::from_utf8_lossy(&reply.payload).contains("\"correlationData\":\"7\""));
        let decoded = Proposal::decode(&proposal.encode()).expect("decodes");
        assert_eq!(decoded, *proposal);
    }

    #[test]
    fn a_query_is_answered_at_once() {
        let owner = dynsec();
        let request = br#"{"commands":[{"command":"listClients"}]}"#;
        let Evaluated::Unchanged(Some(response)) = owner.evaluate(request, &asker()) else {
            panic!("answered at once");
        };
        assert!(String::from_utf8_lossy(&response).contains("listClients"));
    }

    #[test]
    fn a_refusal_answers_every_command_with_its_correlation_data() {
        let text = refusal(
            br#"{"commands":[{"command":"createClient","correlationData":"a"},{"command":"listRoles"}]}"#,
            "no leader",
        );
        assert_eq!(
            String::from_utf8_lossy(&text),
            r#"{"responses":[{"command":"createClient","error":"no leader","correlationData":"a"},{"command":"listRoles","error":"no leader"}]}"#
        );
        let text = refusal(b"nonsense", "no leader");
        assert_eq!(
            String::from_utf8_lossy(&text),
            r#"{"responses":[{"command":"Unknown command","error":"no leader"}]}"#
        );
    }
}
