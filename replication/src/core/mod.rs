//! The replication core: the thread that makes this broker a cluster node.
//!
//! Brief overview. With the HA module loaded (or `enable_control_api true`) the broker
//! starts this core instead of the standalone dynamic-security service. It owns:
//! - the node's dynamic-security state (`dynsec`), served locally outside a cluster and
//!   through Raft inside one (followers forward to the leader, the leader proposes the
//!   whole document, every node applies it);
//! - the `$CONTROL/cedalo/ha/v1` API (`commands`): creating, joining, changing and
//!   leaving the cluster, and the status queries;
//! - the running Raft instance (`raft_node`) and `cluster.json` (`cluster_file`);
//! - the client listeners, opened and closed by the rule in `lease`;
//! - the shared figures (`status`).
//!
//! ```text
//!   shards ──ServiceMsg──► bridge thread ──► requests task (one request at a time)
//!   other nodes ──link──► network::serve ──forwarded──┘        │ client_write / forward
//!   Raft apply ──► Machine effects ──doorbell──► effects task ──► shards (rules,
//!                                                                  responses, kicks)
//!   tick task (every lease::TICK): listeners, figures, role-change logs, learners
//! ```
//!
//! Everything runs on one monoio runtime on one thread; the core's state is an
//! `Rc<RefCell<Core>>` that no task holds across an await. Called by the `culex` binary
//! ([`spawn`]).

mod cluster_file;
mod commands;
pub mod dynsec;
mod full_sync;
pub mod lease;
pub(crate) mod raft_node;
mod status;

pub use cluster_file::ClusterFile;
pub use dynsec::Dynsec;
/// openraft's configuration of a node, and its snapshot policy (the replication bench
/// runs Raft with exactly these).
pub use raft_node::{config, KEPT_BEHIND_SNAPSHOT, SNAPSHOT_EVERY};

use crate::control::SyncMode;
use crate::linksec::LinkSecurity;
use crate::machine::Effect;
use crate::network::{self, ForwardedRequest};
use crate::types::NodeId;
use crate::wire::Forwarded;
use dynsec::{refusal, Asker, Evaluated};
use futures_channel::mpsc;
use futures_util::StreamExt;
use lease::Mode;
use raft_node::RaftNode;
use shards::cluster_status::{ClusterStatus, Reading};
use shards::control::{ControlTopic, ServiceMsg, DYNSEC_RESPONSE_TOPIC, HA_RESPONSE_TOPIC};
use shards::dynsec::service::respond;
use shards::runtime::Inboxes;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Longest wait for a change to commit (or for the leader to confirm it still leads).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for the leader's answer to a forwarded request.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(6);

/// What opens and closes this node's client listeners (every listener but the admin and
/// HTTP ones). Implemented by the binary, which binds the sockets.
pub trait ClientListeners {
    /// Opens (binds) or closes (shuts down, disconnecting their clients) the client
    /// listeners. Called only when the wanted state changes; an error is retried at the
    /// next tick.
    fn set_open(&mut self, open: bool) -> io::Result<()>;
}

/// What the core is started with.
pub struct Setup {
    /// The HA data directory (`CEDALO_HA_DATA_DIR`).
    pub data_dir: PathBuf,
    /// The node's dynamic-security state and file (`None`: dynamic security is off, and
    /// its requests are ignored as Mosquitto ignores them without the plugin).
    pub dynsec: Option<Dynsec>,
    /// The shards' runtime inboxes.
    pub inboxes: Arc<Inboxes>,
    /// Control requests from the shards.
    pub requests: std::sync::mpsc::Receiver<ServiceMsg>,
    /// The client listeners.
    pub listeners: Box<dyn ClientListeners + Send>,
    /// The shared figures.
    pub status: Arc<ClusterStatus>,
    /// How the cluster link is secured (default: plain, as the seed's).
    pub link: Arc<LinkSecurity>,
    /// Every shard's output ring (Full Sync: what the shards emit is proposed while this
    /// node leads).
    pub rings: Vec<Arc<shards::state::port::OutputRing>>,
}

/// Starts the core's thread (and the thread that hands it the shards' requests). The core
/// runs until the request senders are gone (the broker stopped).
pub fn spawn(setup: Setup) -> io::Result<JoinHandle<()>> {
    let (inputs, received) = mpsc::unbounded();
    let requests = setup.requests;
    std::thread::Builder::new()
        .name("culex-ha-requests".to_string())
        .spawn(move || {
            while let Ok(message) = requests.recv() {
                if inputs.unbounded_send(message).is_err() {
                    return;
                }
            }
        })?;
    let parts = Parts {
        rings: setup.rings,
        saver: dynsec::Saver::start()?,
        data_dir: setup.data_dir,
        dynsec: setup.dynsec,
        inboxes: setup.inboxes,
        listeners: setup.listeners,
        status: setup.status,
        link: setup.link,
    };
    std::thread::Builder::new()
        .name("culex-ha".to_string())
        .spawn(move || {
            // A node whose replication core died must not go on as if it were in the
            // cluster: it stops, and its supervisor starts it again (it rejoins).
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                block_on(run(parts, received))
            }));
            match ran {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    log::error!("Error: HA: cannot start the replication core: {error}.");
                    std::process::exit(1);
                }
                Err(_) => {
                    log::error!("Error: HA: the replication core failed; the broker stops.");
                    std::process::exit(1);
                }
            }
        })
}

struct Parts {
    rings: Vec<Arc<shards::state::port::OutputRing>>,
    saver: dynsec::Saver,
    data_dir: PathBuf,
    dynsec: Option<Dynsec>,
    inboxes: Arc<Inboxes>,
    listeners: Box<dyn ClientListeners + Send>,
    status: Arc<ClusterStatus>,
    link: Arc<LinkSecurity>,
}

/// One input of the requests task.
enum Input {
    Service(ServiceMsg),
    Forwarded(ForwardedRequest),
}

/// The core's state.
pub(crate) struct Core {
    dir: PathBuf,
    inboxes: Arc<Inboxes>,
    status: Arc<ClusterStatus>,
    listeners: Box<dyn ClientListeners + Send>,
    /// What the listeners were last set to (`None`: not yet).
    listeners_open: Option<bool>,
    /// A failed open or close was logged (not repeated every tick).
    listeners_error: bool,
    dynsec: Option<Dynsec>,
    saver: dynsec::Saver,
    replication: full_sync::Replication,
    member: Option<Member>,
    forwarded: mpsc::UnboundedSender<ForwardedRequest>,
    doorbell: mpsc::UnboundedSender<()>,
    /// Leaders seen elected, and the (term, leader, role) last logged.
    elections: u64,
    last_seen: (u64, Option<NodeId>, &'static str),
    /// The first leader's settings and document proposal is under way.
    seeding: bool,
    /// A dynamic-security change is proposed and not yet applied here: no seed may be
    /// proposed behind it (the seed, committed after it, would undo it).
    changing_dynsec: bool,
    /// Learners being promoted to voters.
    promoting: BTreeSet<NodeId>,
    /// The membership last written to `cluster.json`.
    membership_seen: Option<Vec<(NodeId, String)>>,
    /// How the cluster link is secured.
    link: Arc<LinkSecurity>,
}

/// This node's cluster: its file, and Raft when it runs.
pub(crate) struct Member {
    file: ClusterFile,
    node: Option<RaftNode>,
    /// The sync mode is known (createCluster, or learned from the cluster after a join).
    sync_known: bool,
}

type Shared = Rc<RefCell<Core>>;

async fn run(parts: Parts, requests: mpsc::UnboundedReceiver<ServiceMsg>) {
    let (forwarded, forwarded_rx) = mpsc::unbounded();
    let (doorbell, doorbell_rx) = mpsc::unbounded();
    let core: Shared = Rc::new(RefCell::new(Core {
        dir: parts.data_dir,
        inboxes: parts.inboxes,
        status: parts.status,
        listeners: parts.listeners,
        listeners_open: None,
        listeners_error: false,
        dynsec: parts.dynsec,
        saver: parts.saver,
        replication: full_sync::Replication::new(parts.rings),
        member: None,
        forwarded,
        doorbell,
        elections: 0,
        last_seen: (0, None, ""),
        seeding: false,
        changing_dynsec: false,
        promoting: BTreeSet::new(),
        membership_seen: None,
        link: parts.link,
    }));
    rejoin(&core).await;
    tick(&core);
    monoio::spawn(effects_loop(core.clone(), doorbell_rx));
    monoio::spawn(tick_loop(core.clone()));
    monoio::spawn(full_sync::drain_loop(core.clone()));
    let mut inputs = futures_util::stream::select(
        requests.map(Input::Service),
        forwarded_rx.map(Input::Forwarded),
    );
    while let Some(input) = inputs.next().await {
        serve(&core, input).await;
    }
    let node = core
        .borrow_mut()
        .member
        .as_mut()
        .and_then(|member| member.node.take());
    if let Some(node) = node {
        node.stop().await;
    }
}

/// At start: a node with `cluster.json` takes part in its cluster again.
async fn rejoin(core: &Shared) {
    let dir = core.borrow().dir.clone();
    match ClusterFile::load(&dir) {
        Ok(Some(file)) => {
            log::info!(
                "HA: node {} rejoins cluster \"{}\" ({} sync).",
                file.me().map_or(0, |me| me.node_id),
                file.name,
                file.sync.as_str()
            );
            if let Err(error) = start_member(core, file, true).await {
                log::error!("Error: HA: {error}.");
            }
        }
        Ok(None) => log::info!("HA: this node is in no cluster (standalone)."),
        Err(error) => log::error!("Error: HA: {error}; this node stays out of its cluster."),
    }
}

/// Records `file` as this node's cluster and starts Raft on it. Without Raft (an error),
/// the node stays a member that serves no clients in Full Sync until fixed and restarted.
pub(crate) async fn start_member(
    core: &Shared,
    file: ClusterFile,
    sync_known: bool,
) -> io::Result<()> {
    let (dir, forwarded, doorbell, status, link) = {
        let core = core.borrow();
        (
            core.dir.clone(),
            core.forwarded.clone(),
            core.doorbell.clone(),
            core.status.clone(),
            core.link.clone(),
        )
    };
    let Some(me) = file.me().cloned() else {
        return Err(io::Error::other("cluster.json names no node as this one"));
    };
    let listen = crate::control::endpoint_text(&me.address, me.port);
    let started = RaftNode::start(raft_node::Start {
        me: NodeId::from(me.node_id),
        cluster: &file.name,
        listen: &listen,
        members: file.nodes.iter().map(|n| NodeId::from(n.node_id)).collect(),
        dir: &dir,
        forwarded,
        doorbell,
        status,
        link,
    })
    .await;
    let mut core = core.borrow_mut();
    match started {
        Ok(node) => {
            core.member = Some(Member {
                file,
                node: Some(node),
                sync_known,
            });
            Ok(())
        }
        Err(error) => {
            core.member = Some(Member {
                file,
                node: None,
                sync_known,
            });
            Err(error)
        }
    }
}

/// Leaves the cluster: stops Raft, forgets the log and `cluster.json`, keeps the data
/// (the dynamic-security state in force stays, and its file).
pub(crate) async fn leave(core: &Shared, why: &str) {
    let (member, dir) = {
        let mut core = core.borrow_mut();
        (core.member.take(), core.dir.clone())
    };
    let Some(member) = member else { return };
    if let Some(node) = member.node {
        node.stop().await;
    }
    if let Err(error) = raft_node::wipe(&dir).and_then(|()| ClusterFile::remove(&dir)) {
        log::error!(
            "Error: HA: cannot remove the cluster's files in {}: {error}.",
            dir.display()
        );
    }
    log::info!(
        "HA: node {} left cluster \"{}\" ({why}); it runs standalone with its data.",
        member.file.me().map_or(0, |me| me.node_id),
        member.file.name
    );
    {
        let mut guard = core.borrow_mut();
        // The node keeps the state its shards hold (its data), standalone.
        guard.replication.leading = None;
        full_sync::standalone(&mut guard);
        guard.promoting.clear();
        guard.membership_seen = None;
        guard.seeding = false;
        guard.last_seen = (0, None, "");
        guard.status.update(&Reading::default());
    }
    tick(core);
}

/// Serves one input; the next waits (so a change is evaluated on the state the previous
/// one left).
async fn serve(core: &Shared, input: Input) {
    match input {
        Input::Service(ServiceMsg::Rebase(base)) => {
            let mut core = core.borrow_mut();
            let inboxes = core.inboxes.clone();
            if let Some(dynsec) = core.dynsec.as_mut() {
                dynsec.rebase(&inboxes, *base);
            }
        }
        Input::Service(ServiceMsg::Request(request)) => {
            let me = my_id(core).unwrap_or(0);
            let asker = Asker {
                client_id: request.client_id.as_str().to_string(),
                username: request.username.as_ref().map(|n| n.as_str().to_string()),
                node: me,
                shard: request.shard,
            };
            let (topic, response) = match request.topic {
                ControlTopic::Dynsec => (
                    DYNSEC_RESPONSE_TOPIC,
                    dynsec_request(core, &request.payload, &asker).await,
                ),
                ControlTopic::Ha => (
                    HA_RESPONSE_TOPIC,
                    Some(commands::serve(core, &request.payload).await),
                ),
            };
            if let Some(response) = response {
                let inboxes = core.borrow().inboxes.clone();
                respond(&inboxes, request.shard, topic, response);
            }
        }
        Input::Forwarded((request, reply)) => {
            let response = match ControlTopic::of(&request.topic) {
                Some(ControlTopic::Dynsec) => {
                    let asker = Asker {
                        client_id: request.client_id.clone(),
                        username: request.username.clone(),
                        node: request.origin,
                        shard: request.shard,
                    };
                    dynsec_on_leader(core, &request.payload, &asker).await
                }
                Some(ControlTopic::Ha) => Some(commands::serve(core, &request.payload).await),
                None => None,
            };
            let _ = reply.send(response);
        }
    }
}

/// This node's id in its cluster.
fn my_id(core: &Shared) -> Option<NodeId> {
    let core = core.borrow();
    let member = core.member.as_ref()?;
    member.file.me().map(|me| NodeId::from(me.node_id))
}

/// A dynamic-security request from a client of this node: the response to publish now
/// (`None` when it is published later, after the change was applied here).
async fn dynsec_request(core: &Shared, payload: &[u8], asker: &Asker) -> Option<Vec<u8>> {
    let route = {
        let core = core.borrow();
        core.dynsec.as_ref()?;
        match &core.member {
            None => Route::Here,
            Some(Member { node: None, .. }) => Route::Unavailable,
            Some(Member {
                node: Some(node), ..
            }) => match node.leader() {
                Some((leader, _)) if leader == node.me => Route::Lead,
                Some((leader, address)) => {
                    Route::Forward(node.me, leader, address, node.gate.clone())
                }
                None => Route::NoLeader,
            },
        }
    };
    match route {
        Route::Here => {
            let mut core = core.borrow_mut();
            let inboxes = core.inboxes.clone();
            if let Some(dynsec) = core.dynsec.as_mut() {
                dynsec.serve_here(&inboxes, payload, asker);
            }
            None
        }
        Route::Unavailable => Some(refusal(
            payload,
            "The cluster is unavailable on this node (its Raft log could not be opened)",
        )),
        Route::NoLeader => Some(refusal(payload, crate::control::NO_LEADER)),
        Route::Lead => dynsec_on_leader(core, payload, asker).await,
        Route::Forward(me, leader, address, gate) => {
            let request = Forwarded {
                topic: shards::control::DYNSEC_TOPIC.to_string(),
                payload: payload.to_vec(),
                client_id: asker.client_id.clone(),
                username: asker.username.clone(),
                origin: me,
                shard: asker.shard,
            };
            match network::forward(me, &gate, leader, &address, request, FORWARD_TIMEOUT).await {
                Ok(response) => response,
                Err(error) => Some(refusal(
                    payload,
                    &format!("The cluster's leader (node {leader}) did not answer: {error}"),
                )),
            }
        }
    }
}

enum Route {
    Here,
    Unavailable,
    NoLeader,
    Lead,
    Forward(NodeId, NodeId, String, Rc<RefCell<network::Gate>>),
}

/// Runs a dynamic-security request on the leader (asked here or forwarded).
async fn dynsec_on_leader(core: &Shared, payload: &[u8], asker: &Asker) -> Option<Vec<u8>> {
    let Some(raft) = raft(core) else {
        return Some(refusal(payload, crate::control::NO_LEADER));
    };
    // The whole committed state must be applied here before a change is evaluated on it:
    // within the leader's lease that needs no round trip; otherwise a majority confirms
    // the leadership first (ReadIndex).
    if let Err(why) = caught_up_as_leader(&raft).await {
        log::warn!("Warning: HA: a dynamic-security request is refused: {why}.");
        return Some(refusal(payload, crate::control::NO_LEADER));
    }
    drain_effects(core);
    let evaluated = match core.borrow().dynsec.as_ref() {
        Some(dynsec) => dynsec.evaluate(payload, asker),
        None => return None,
    };
    match evaluated {
        Evaluated::Unchanged(response) => response,
        Evaluated::Change(proposal) => {
            let write = raft.client_write(proposal.encode());
            core.borrow_mut().changing_dynsec = true;
            let written = monoio::time::timeout(COMMIT_TIMEOUT, write).await;
            core.borrow_mut().changing_dynsec = false;
            match written {
                Ok(Ok(_)) => {
                    // Applied here: the rules, the response (when asked here) and the
                    // kicks go out now; the asker's node publishes its response when it
                    // applies the entry.
                    drain_effects(core);
                    None
                }
                Ok(Err(_)) | Err(_) => Some(refusal(payload, crate::control::NOT_COMMITTED)),
            }
        }
    }
}

/// Waits until this node, as the leader, has applied every committed entry; the error
/// says why it cannot tell (not the leader, no majority answered in time).
async fn caught_up_as_leader(raft: &crate::types::Raft) -> Result<(), String> {
    if raft
        .ensure_linearizable(openraft::ReadPolicy::LeaseRead)
        .await
        .is_ok()
    {
        return Ok(());
    }
    let read_index = raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex);
    match monoio::time::timeout(COMMIT_TIMEOUT, read_index).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "no majority confirmed this node's leadership within {} s",
            COMMIT_TIMEOUT.as_secs()
        )),
    }
}

/// The Raft handle, when Raft runs.
pub(crate) fn raft(core: &Shared) -> Option<crate::types::Raft> {
    let core = core.borrow();
    Some(core.member.as_ref()?.node.as_ref()?.raft.clone())
}

/// Rings of the machine's doorbell: carry out what applying asked for.
async fn effects_loop(core: Shared, mut doorbell: mpsc::UnboundedReceiver<()>) {
    while doorbell.next().await.is_some() {
        drain_effects(&core);
    }
}

/// Carries out every effect the machine queued.
fn drain_effects(core: &Shared) {
    let effects = {
        let core = core.borrow();
        match core.member.as_ref().and_then(|m| m.node.as_ref()) {
            Some(node) => node.machine.take_effects(),
            None => return,
        }
    };
    for effect in effects {
        let mut guard = core.borrow_mut();
        let inboxes = guard.inboxes.clone();
        match effect {
            Effect::Dynsec(document) => {
                let core = &mut *guard;
                if let Some(dynsec) = core.dynsec.as_mut() {
                    dynsec.install(&inboxes, &document, &core.saver);
                }
            }
            Effect::Reply(reply) => {
                let topic = match ControlTopic::of(reply.topic.trim_end_matches("/response")) {
                    Some(topic) => topic.response_topic(),
                    None => continue,
                };
                respond(&inboxes, reply.shard, topic, reply.payload);
            }
            Effect::Kick(kicks) => dynsec::kick_here(&inboxes, &kicks),
            Effect::Settings(settings) => {
                let Some(member) = guard.member.as_mut() else {
                    continue;
                };
                let Some(sync) = SyncMode::from_name(settings.sync.as_bytes()) else {
                    log::error!(
                        "Error: HA: the cluster's sync mode \"{}\" is unknown.",
                        settings.sync
                    );
                    continue;
                };
                if !member.sync_known || member.file.sync != sync {
                    member.file.sync = sync;
                    member.sync_known = true;
                    let dir = guard.dir.clone();
                    if let Some(member) = guard.member.as_ref() {
                        if let Err(error) = member.file.save(&dir) {
                            log::error!("Error: HA: cannot save cluster.json: {error}.");
                        }
                        log::info!(
                            "HA: cluster \"{}\" runs in {} sync.",
                            member.file.name,
                            member.file.sync.as_str()
                        );
                    }
                }
            }
            Effect::ClusterDeleted(index) => {
                drop(guard);
                let core = core.clone();
                monoio::spawn(async move {
                    // The leader stays until every member has the deleting entry and has
                    // heard that it is committed (bounded): a follower that never learns
                    // it would stay in a cluster nobody else is in.
                    members_applied(&core, index).await;
                    leave(&core, "the cluster was deleted").await
                });
            }
            Effect::Records { term, records } => {
                full_sync::apply_committed(&mut guard, term, records)
            }
            Effect::Installed(records) => {
                // Dynamic-Security Sync replicates no sessions: the shards keep their own.
                let dynsec = guard
                    .member
                    .as_ref()
                    .is_some_and(|member| member.file.sync == SyncMode::Dynsec);
                if !dynsec {
                    full_sync::install(&mut guard, records)
                }
            }
        }
    }
}

/// Longest wait of a leader for its members to apply the entry that deletes the cluster.
const DELETE_PROPAGATION: Duration = Duration::from_secs(3);

/// On the leader: waits (bounded) until every member has acknowledged the entry at
/// `index`, then for two heartbeats, which carry the commit index to them.
async fn members_applied(core: &Shared, index: u64) {
    let deadline = std::time::Instant::now() + DELETE_PROPAGATION;
    loop {
        let pending = {
            let core = core.borrow();
            let Some(node) = core.member.as_ref().and_then(|m| m.node.as_ref()) else {
                return;
            };
            let metrics = node.metrics();
            let Some(replication) = metrics.replication.as_ref() else {
                // Not the leader: followers leave at once.
                return;
            };
            replication
                .values()
                .any(|matched| matched.as_ref().is_none_or(|id| id.index < index))
        };
        if !pending || std::time::Instant::now() > deadline {
            break;
        }
        monoio::time::sleep(lease::TICK).await;
    }
    monoio::time::sleep(lease::HEARTBEAT * 2).await;
}

/// Every [`lease::TICK`]: the listeners, the figures, the logs, the learners.
async fn tick_loop(core: Shared) {
    loop {
        monoio::time::sleep(lease::TICK).await;
        tick(&core);
        maybe_seed(&core);
        commands::promote_learners(&core);
    }
}

/// Full Sync: starts proposing the shards' changes once this node leads with every
/// committed entry applied; stops (and goes back to the committed state) when it does not
/// lead any more.
fn replication_role(core: &Shared) {
    let (full, view, leading) = {
        let guard = core.borrow();
        match &guard.member {
            Some(member) if member.sync_known && member.file.sync == SyncMode::Full => (
                true,
                member
                    .node
                    .as_ref()
                    .map(|node| raft_node::view(&node.metrics())),
                guard.replication.leading,
            ),
            _ => (false, None, guard.replication.leading),
        }
    };
    match (full, view, leading) {
        (true, Some(view), None)
            if view.leader
                && view.committed_term == Some(view.term)
                && view.applied_index >= view.committed_index =>
        {
            full_sync::promote(core, view.term)
        }
        (true, Some(view), Some(term)) if !(view.leader && view.term == term) => {
            full_sync::demote(core)
        }
        (true, None, Some(_)) => full_sync::demote(core),
        (true, _, None) => full_sync::follow(core),
        (false, _, _) => {
            let mut guard = core.borrow_mut();
            if guard.member.as_ref().is_none_or(|member| member.sync_known) {
                full_sync::standalone(&mut guard);
            }
        }
        _ => {}
    }
}

/// The listeners' rule and the figures, now.
fn tick(core: &Shared) {
    replication_role(core);
    let mut guard = core.borrow_mut();
    let core = &mut *guard;
    let (mode, metrics) = match &core.member {
        None => (Mode::Standalone, None),
        Some(member) => {
            let mode = match (member.sync_known, member.file.sync) {
                (true, SyncMode::Dynsec) => Mode::Dynsec,
                _ => Mode::Full,
            };
            (mode, member.node.as_ref().map(RaftNode::metrics))
        }
    };
    let view = metrics.as_ref().map(raft_node::view).unwrap_or_default();
    // A Full Sync leader serves once its shards' changes are proposed (`promote`).
    let replicating = mode != Mode::Full || core.replication.leading == Some(view.term);
    let open = lease::serves(mode, &view) && replicating;
    if core.listeners_open != Some(open) {
        match core.listeners.set_open(open) {
            Ok(()) => {
                if core.listeners_open.is_some() || !open {
                    log::info!(
                        "HA: client listeners {} ({}).",
                        if open { "opened" } else { "closed" },
                        match mode {
                            Mode::Standalone => "standalone",
                            Mode::Dynsec => "dynamic-security sync: every node serves",
                            Mode::Full if open => "this node leads",
                            Mode::Full => "this node does not lead",
                        }
                    );
                }
                core.listeners_open = Some(open);
                core.listeners_error = false;
                core.status.set_serving(open);
            }
            Err(error) => {
                if !core.listeners_error {
                    log::error!(
                        "Error: HA: cannot {} the client listeners: {error}; retrying.",
                        if open { "open" } else { "close" }
                    );
                    core.listeners_error = true;
                }
            }
        }
    }
    let Some(metrics) = metrics else {
        return;
    };
    let role = status::role(&metrics).as_str();
    let seen = (metrics.current_term, metrics.current_leader, role);
    if seen != core.last_seen {
        if metrics.current_leader.is_some()
            && (seen.0, seen.1) != (core.last_seen.0, core.last_seen.1)
        {
            core.elections += 1;
        }
        let cluster = core.member.as_ref().map_or("", |m| m.file.name.as_str());
        match metrics.current_leader {
            Some(leader) => log::info!(
                "HA: node {} is {role} in cluster \"{cluster}\", term {}, leader node {leader}.",
                metrics.id,
                metrics.current_term
            ),
            None => log::info!(
                "HA: node {} is {role} in cluster \"{cluster}\", term {}, no leader.",
                metrics.id,
                metrics.current_term
            ),
        }
        core.last_seen = seen;
    }
    let serving = core.listeners_open == Some(true);
    core.status
        .update(&status::reading(&metrics, serving, core.elections));
    membership_changed(core, &metrics);
}

/// Keeps `cluster.json` and the link's gate in step with Raft's membership, and logs its
/// changes.
fn membership_changed(core: &mut Core, metrics: &crate::types::Metrics) {
    let membership = metrics.membership_config.membership();
    let nodes: Vec<(NodeId, String)> = membership
        .nodes()
        .map(|(id, node)| (*id, node.addr.clone()))
        .collect();
    if nodes.is_empty() || core.membership_seen.as_ref() == Some(&nodes) {
        return;
    }
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let Some(member) = core.member.as_mut() else {
        return;
    };
    if let Some(node) = &member.node {
        let mut gate = node.gate.borrow_mut();
        gate.members = nodes.iter().map(|(id, _)| *id).collect();
    }
    let me = member.file.me().map(|me| me.node_id);
    member.file.nodes = nodes
        .iter()
        .filter_map(|(id, addr)| {
            let (address, port) = crate::control::split_endpoint(addr)?;
            let node_id = u16::try_from(*id).ok()?;
            Some(crate::control::NodeSpec {
                address,
                port,
                node_id,
                mine: Some(node_id) == me,
            })
        })
        .collect();
    if member.file.me().is_some() {
        if let Err(error) = member.file.save(&core.dir) {
            log::error!("Error: HA: cannot save cluster.json: {error}.");
        }
    }
    let described: Vec<String> = nodes
        .iter()
        .map(|(id, addr)| {
            let kind = if voters.contains(id) {
                "voter"
            } else {
                "learner"
            };
            format!("node {id} at {addr} ({kind})")
        })
        .collect();
    log::info!(
        "HA: cluster \"{}\" membership: {}.",
        member.file.name,
        described.join(", ")
    );
    core.membership_seen = Some(nodes);
}

/// The first leader of a new cluster proposes its settings and its dynamic-security
/// document (the creating node's data becomes the cluster's).
fn maybe_seed(core: &Shared) {
    let (raft, proposal) = {
        let mut guard = core.borrow_mut();
        let core = &mut *guard;
        if core.seeding || core.changing_dynsec {
            return;
        }
        let Some(member) = core.member.as_ref() else {
            return;
        };
        let Some(node) = member.node.as_ref() else {
            return;
        };
        let metrics = node.metrics();
        let view = raft_node::view(&metrics);
        if !view.leader
            || view.committed_term != Some(view.term)
            || view.applied_index < view.committed_index
        {
            return;
        }
        let document_needed = core.dynsec.is_some() && node.machine.dynsec().is_none();
        if node.machine.settings().is_some() && !document_needed {
            return;
        }
        if !member.sync_known {
            // A node that joined and leads before the cluster's settings reached it
            // cannot seed them; the creating node (or its successor) will.
            return;
        }
        let mut proposal = match core.dynsec.as_ref() {
            Some(dynsec) if document_needed => dynsec.seed_proposal(),
            _ => crate::proposal::Proposal::default(),
        };
        if node.machine.settings().is_none() {
            proposal.cluster = Some(crate::proposal::ClusterOp::Settings(
                crate::proposal::ClusterSettings {
                    name: member.file.name.clone(),
                    sync: member.file.sync.as_str().to_string(),
                },
            ));
        }
        core.seeding = true;
        (node.raft.clone(), proposal)
    };
    let core = core.clone();
    monoio::spawn(async move {
        let write = raft.client_write(proposal.encode());
        if let Ok(Ok(_)) = monoio::time::timeout(COMMIT_TIMEOUT, write).await {
            log::info!("HA: this node's settings and dynamic-security data are the cluster's.");
        }
        drain_effects(&core);
        core.borrow_mut().seeding = false;
    });
}

/// Runs `task` on a runtime of its own: io_uring where the kernel gives one (monoio's
/// fusion driver), epoll when setting up io_uring fails (a kernel that refuses it, or a
/// ring it cannot allocate under memory pressure), with a warning.
fn block_on<F: std::future::Future>(task: F) -> std::io::Result<F::Output> {
    match monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
    {
        Ok(mut runtime) => Ok(runtime.block_on(task)),
        Err(error) => {
            log::warn!("Warning: HA: io_uring unavailable for the replication core ({error}); using epoll.");
            let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()?;
            Ok(runtime.block_on(task))
        }
    }
}
