//! The dynamic-security service: the one thread that owns the mutable [`DynsecState`].
//!
//! It receives `$CONTROL/dynamic-security/v1` requests from every shard, runs them
//! ([`handle_request`]), and in this order: saves `dynamic-security.json` crash-safely and
//! hands every shard a new compiled [`AclSnapshot`] when something changed, asks the
//! requesting shard to publish the response, then asks it to kick the clients whose rights
//! changed (it forwards the kick to the other shards behind the response, so the response
//! is delivered first — the 2.1 order, `dynsec.md` §10). File writes and PBKDF2 hashing
//! run here, never on a shard's event loop.

use super::{handle_request, store, AclSnapshot, DynsecState, RequestContext};
use crate::access::AccessPolicy;
use crate::control::{ControlRequest, ServiceMsg, DYNSEC_RESPONSE_TOPIC};
use crate::mesh::ShardId;
use crate::message::Message;
use crate::mqtt::{ByteStr, Bytes, QoS};
use crate::runtime::{Control, Inboxes, RuntimeMsg};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;

/// What the service needs.
pub struct DynsecService {
    /// The state, loaded at start.
    pub state: DynsecState,
    /// `plugin_opt_config_file`.
    pub path: PathBuf,
    /// The rest of the access policy (listeners, files); the snapshot is replaced.
    pub base: AccessPolicy,
}

impl DynsecService {
    /// Starts the service thread; it ends when every request sender is gone.
    pub fn spawn(
        self,
        inboxes: Arc<Inboxes>,
        requests: Receiver<ServiceMsg>,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("culex-dynsec".to_string())
            .spawn(move || self.run(&inboxes, &requests))
    }

    fn run(mut self, inboxes: &Arc<Inboxes>, requests: &Receiver<ServiceMsg>) {
        while let Ok(message) = requests.recv() {
            match message {
                ServiceMsg::Request(request) => self.serve(inboxes, request),
                ServiceMsg::Rebase(base) => {
                    self.base = *base;
                    self.publish_policy(inboxes);
                }
            }
        }
    }

    /// Hands every shard the policy built from `base` and the current state.
    fn publish_policy(&self, inboxes: &Inboxes) {
        publish_policy(&self.base, &self.state, inboxes);
    }

    fn serve(&mut self, inboxes: &Arc<Inboxes>, request: ControlRequest) {
        let context = RequestContext {
            client_id: request.client_id.as_bytes(),
            username: request.username.as_ref().map(|name| name.as_bytes()),
        };
        // The kicks are for the connections opened before this change: a client that
        // (re)connects once it saw the response is not kicked by a kick that reaches its
        // shard after it connected.
        let opened_before = crate::connection::opened_so_far();
        let outcome = handle_request(&mut self.state, &request.payload, &context);
        for line in &outcome.audit {
            log::info!("{line}");
        }
        if outcome.changed {
            save(&self.path, &self.state);
            self.publish_policy(inboxes);
        }
        if let Some(response) = outcome.response {
            respond(inboxes, request.shard, DYNSEC_RESPONSE_TOPIC, response);
        }
        kick(inboxes, request.shard, outcome.kicks, opened_before);
    }
}

/// Saves the state to `path` crash-safely; a failure is logged (the state in memory
/// stays the one in force).
pub fn save(path: &Path, state: &DynsecState) {
    if let Err(error) = crate::atomic_file::save_atomic(path, &store::serialise(state)) {
        log::error!(
            "Error: dynamic security: cannot save {}: {error}.",
            path.display()
        );
    }
}

/// Hands every shard the access policy built from `base` and `state`.
pub fn publish_policy(base: &AccessPolicy, state: &DynsecState, inboxes: &Inboxes) {
    let policy = Arc::new(base.with_dynsec(Arc::new(AclSnapshot::build(state))));
    for shard in 0..inboxes.shards() {
        inboxes.send(
            shard as u8,
            RuntimeMsg::Control(Control::Access(policy.clone())),
        );
    }
}

/// Asks shard `shard` to publish a control response on `topic` (QoS 0, not retained), once
/// every shard has handled what was sent to it before (the access rules the response
/// confirms: a client that creates a user and connects as it at once is let in).
pub fn respond(inboxes: &Arc<Inboxes>, shard: ShardId, topic: &'static str, response: Vec<u8>) {
    let message = Message::new(
        ByteStr::from_static(topic),
        Bytes::from(response),
        QoS::AtMostOnce,
        false,
    );
    inboxes.send_after_all(
        shard,
        RuntimeMsg::Control(Control::Publish(Box::new(message))),
    );
}

/// Asks shard `shard` to disconnect `who` (connections opened before `opened_before`)
/// there and on every other shard, after what it published before.
pub fn kick(inboxes: &Arc<Inboxes>, shard: ShardId, who: Vec<super::Kick>, opened_before: u64) {
    if who.is_empty() {
        return;
    }
    let kicks = Arc::new(super::Kicks { who, opened_before });
    // Relayed as the response before it is: the kick must not overtake it.
    inboxes.send_after_all(shard, RuntimeMsg::Control(Control::Kick(kicks)));
}
