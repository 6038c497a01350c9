//! The simulated cluster link: openraft's network between the simulated nodes, with seeded
//! faults.
//!
//! Every request and reply travels in the real wire form (`crate::wire`: encoded, then
//! decoded with every check) and is answered by the real link server's
//! `crate::network::dispatch`, as on a TCP link; only the transport is simulated. Faults,
//! drawn per message from the network's own random stream:
//! - **delay**: each way takes a random latency; some messages take a spike (tens to
//!   hundreds of milliseconds), so messages overtake each other (**reorder**);
//! - **drop**: a request or its reply is lost; the caller learns it by its RPC timeout;
//! - **duplicate**: a request is delivered a second time, later, its answer ignored (an
//!   old message arriving after newer ones);
//! - **partition**: nodes on different sides reach nothing across; checked when a message
//!   arrives, so what was in flight when the partition began is lost too;
//! - **crash**: a node that is down refuses connections;
//! - **damage**: a byte of a frame (request or reply) is flipped in flight; the receiver's
//!   checks refuse it and the link closes, so the caller learns it as a lost message.
//!
//! [`NetBug`] plants a link bug; `super::tests` shows the simulator catches each.
//!
//! Called by the driver (`super`: faults, partitions, nodes up and down) and by openraft
//! (one [`Link`] per target through [`NetFactory`]).

use super::check::{digest, Checker};
use super::rng::Rng;
use super::runtime;
use super::{SimConfig, SimRaft};
use crate::network::{dispatch, ForwardedRequest};
use crate::types::{NodeId, Snapshot, Vote};
use crate::wire::{self, Msg};
use futures_channel::mpsc;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend};
use shards::state::frame;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

/// How long a connection attempt to a node that is down or across a partition takes to
/// fail.
const REFUSED_AFTER: Duration = Duration::from_millis(1);

/// A planted network bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetBug {
    /// A message for a node across a partition is delivered to another node on the
    /// sender's side, whose answer comes back as the target's.
    WrongSide,
    /// The receiver skips the frame's checksum: a damaged frame whose archive still
    /// validates is acted on.
    ApplyDamaged,
    /// A link to a node that was once unreachable is never connected again (its sender
    /// keeps the dead connection): a cluster can lose its majority for good.
    NeverReconnects,
}

/// How hostile the network is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Percent of requests lost, and of replies lost.
    pub drop: u64,
    /// Percent of requests delivered twice.
    pub duplicate: u64,
    /// Percent of messages delayed by a spike.
    pub spike: u64,
    /// The longest ordinary one-way latency, in microseconds.
    pub latency_max_us: u64,
    /// Percent of frames (each way) with one byte damaged in flight.
    pub damage: u64,
}

impl Faults {
    /// A healthy network.
    pub const CALM: Faults = Faults {
        drop: 0,
        duplicate: 0,
        spike: 0,
        latency_max_us: 1_000,
        damage: 0,
    };
}

/// What happens to one exchange.
struct Plan {
    out: Duration,
    back: Duration,
    lose_request: bool,
    lose_reply: bool,
    duplicate: Option<Duration>,
    /// Random bits choosing the damaged byte of the request, and of the reply.
    damage_request: Option<u64>,
    damage_reply: Option<u64>,
}

struct State {
    rng: Rng,
    faults: Faults,
    bug: Option<NetBug>,
    side: BTreeMap<NodeId, u8>,
    live: BTreeMap<NodeId, SimRaft>,
    /// With [`NetBug::NeverReconnects`]: the links that stay dead.
    dead: std::collections::BTreeSet<(NodeId, NodeId)>,
    checker: Rc<Checker>,
    /// Messages delivered, and a digest of who sent what to whom when.
    delivered: u64,
    digest: u64,
}

/// The network shared by every node of a run.
#[derive(Clone)]
pub struct Net {
    state: Rc<RefCell<State>>,
    /// Forwarded control requests go nowhere in the simulator (its receiver is gone).
    forwarded: mpsc::UnboundedSender<ForwardedRequest>,
}

impl Net {
    /// A network whose faults follow `rng`.
    pub fn new(rng: Rng, bug: Option<NetBug>, checker: Rc<Checker>) -> Net {
        let (forwarded, _) = mpsc::unbounded();
        Net {
            state: Rc::new(RefCell::new(State {
                rng,
                faults: Faults::CALM,
                bug,
                side: BTreeMap::new(),
                live: BTreeMap::new(),
                dead: Default::default(),
                checker,
                delivered: 0,
                digest: 0,
            })),
            forwarded,
        }
    }

    /// Sets how hostile the network is.
    pub fn set_faults(&self, faults: Faults) {
        self.state.borrow_mut().faults = faults;
    }

    /// Puts each node on the side `side` gives (absent: side 0).
    pub fn partition(&self, side: BTreeMap<NodeId, u8>) {
        self.state.borrow_mut().side = side;
    }

    /// Every node on one side again.
    pub fn heal(&self) {
        self.state.borrow_mut().side.clear();
    }

    /// `node` is up, answering through `raft`.
    pub fn up(&self, node: NodeId, raft: SimRaft) {
        self.state.borrow_mut().live.insert(node, raft);
    }

    /// `node` is down.
    pub fn down(&self, node: NodeId) {
        self.state.borrow_mut().live.remove(&node);
    }

    /// Messages delivered so far, and their digest.
    pub fn delivered(&self) -> (u64, u64) {
        let state = self.state.borrow();
        (state.delivered, state.digest)
    }

    fn plan(&self) -> Plan {
        let mut state = self.state.borrow_mut();
        let faults = state.faults;
        let rng = &mut state.rng;
        let latency = |rng: &mut Rng| {
            let us = if rng.chance(faults.spike) {
                rng.between(20_000, 400_000)
            } else {
                rng.between(50, faults.latency_max_us.max(50))
            };
            Duration::from_micros(us)
        };
        let out = latency(rng);
        let back = latency(rng);
        let lose_request = rng.chance(faults.drop);
        let lose_reply = rng.chance(faults.drop);
        let duplicate = rng
            .chance(faults.duplicate)
            .then(|| Duration::from_micros(rng.between(1_000, 300_000)));
        let damage_request = rng.chance(faults.damage).then(|| rng.next_u64());
        let damage_reply = rng.chance(faults.damage).then(|| rng.next_u64());
        Plan {
            out,
            back,
            lose_request,
            lose_reply,
            duplicate,
            damage_request,
            damage_reply,
        }
    }

    fn side(state: &State, node: NodeId) -> u8 {
        state.side.get(&node).copied().unwrap_or(0)
    }

    /// Both nodes on the same side (a reply already sent arrives even if its sender
    /// crashed since).
    fn same_side(&self, a: NodeId, b: NodeId) -> bool {
        let state = self.state.borrow();
        Self::side(&state, a) == Self::side(&state, b)
    }

    /// Where a message from `from` to `to` arrives now, and that node's Raft.
    fn route(&self, from: NodeId, to: NodeId, kind: &str) -> Option<(NodeId, SimRaft)> {
        let mut state = self.state.borrow_mut();
        if !state.live.contains_key(&from) {
            return None;
        }
        let mut at = to;
        if state.dead.contains(&(from, to)) {
            return None;
        }
        if state.bug == Some(NetBug::NeverReconnects) && !state.live.contains_key(&to) {
            state.dead.insert((from, to));
        }
        if Self::side(&state, from) != Self::side(&state, to) {
            if state.bug != Some(NetBug::WrongSide) {
                return None;
            }
            let mine = Self::side(&state, from);
            at = state
                .live
                .keys()
                .copied()
                .find(|&n| n != from && Self::side(&state, n) == mine)?;
        }
        let raft = state.live.get(&at)?.clone();
        state.delivered += 1;
        let at_us = runtime::elapsed().as_micros() as u64;
        state.digest = digest(&(state.digest, from, at, kind, at_us));
        Some((at, raft))
    }

    /// One request from `from` to `to` and its reply, with the network's faults.
    async fn call(&self, from: NodeId, to: NodeId, msg: Msg, ttl: Duration) -> Result<Msg, Fail> {
        let plan = self.plan();
        let kind = kind(&msg);
        let mut frame = wire::encode(&msg);
        drop(msg);
        damage(&mut frame, plan.damage_request);
        runtime::sleep(plan.out).await;
        if plan.lose_request {
            runtime::sleep(ttl).await;
            return Err(Fail::Lost(format!("{kind} to node {to} lost")));
        }
        let Some((at, raft)) = self.route(from, to, kind) else {
            runtime::sleep(REFUSED_AFTER).await;
            return Err(Fail::Unreachable(format!("node {to} unreachable")));
        };
        let request = self.receive(&frame, plan.damage_request, kind, at)?;
        if let Some(later) = plan.duplicate {
            let copy = request.clone();
            let copy_raft = raft.clone();
            let forwarded = self.forwarded.clone();
            runtime::spawn_as(at, async move {
                runtime::sleep(later).await;
                let _ = dispatch(copy, &copy_raft, from, &forwarded).await;
            });
        }
        let reply = dispatch(request, &raft, from, &self.forwarded)
            .await
            .map_err(|e| self.bad_frame(e))?;
        drop(raft);
        let mut frame = wire::encode(&reply);
        damage(&mut frame, plan.damage_reply);
        runtime::sleep(plan.back).await;
        if plan.lose_reply || !self.same_side(at, from) {
            runtime::sleep(ttl.saturating_sub(plan.out + plan.back)).await;
            return Err(Fail::Lost(format!("reply of node {to} to {kind} lost")));
        }
        match self.receive(&frame, plan.damage_reply, "reply", from)? {
            Msg::Refused { reason } => Err(Fail::Unreachable(format!("node {to}: {reason}"))),
            reply => Ok(reply),
        }
    }

    /// What the receiver `at` makes of `frame` (damaged if `damaged`): the link's checks,
    /// or with [`NetBug::ApplyDamaged`] the archive's validation alone.
    fn receive(
        &self,
        frame: &[u8],
        damaged: Option<u64>,
        kind: &str,
        at: NodeId,
    ) -> Result<Msg, Fail> {
        let skips_checksum = self.state.borrow().bug == Some(NetBug::ApplyDamaged);
        let decoded = if skips_checksum {
            let body = frame.get(frame::HEADER_LEN..).unwrap_or_default();
            rkyv::from_bytes::<Msg, rkyv::rancor::Error>(&frame::aligned(body))
                .map_err(|_| wire::WireError::Invalid("not an archived message"))
        } else {
            wire::decode(frame)
        };
        match (decoded, damaged) {
            (Ok(msg), None) => Ok(msg),
            (Ok(msg), Some(_)) if skips_checksum => {
                let checker = &self.state.borrow().checker;
                checker.trace(format!("node {at} acts on a damaged {kind} frame"));
                Ok(msg)
            }
            (Ok(_), Some(_)) => Err(self.bad_frame(wire::WireError::Invalid(
                "a damaged frame passed every check",
            ))),
            (Err(_), Some(_)) => Err(Fail::Lost(format!(
                "damaged {kind} frame refused by node {at}, link closed"
            ))),
            (Err(error), None) => Err(self.bad_frame(error)),
        }
    }

    fn bad_frame(&self, error: wire::WireError) -> Fail {
        let what = format!("a frame failed its checks on the simulated link: {error}");
        self.state.borrow().checker.violation(what.clone());
        Fail::Unreachable(what)
    }
}

/// Flips one byte of `frame`'s body (the bits in `at` choose which and how).
fn damage(frame: &mut [u8], at: Option<u64>) {
    let Some(bits) = at else { return };
    let body = frame.len().saturating_sub(frame::HEADER_LEN);
    if body == 0 {
        return;
    }
    let index = frame::HEADER_LEN + (bits % body as u64) as usize;
    let flip = ((bits >> 32) % 255 + 1) as u8;
    frame[index] ^= flip;
}

fn kind(msg: &Msg) -> &'static str {
    match msg {
        Msg::Append(_) => "append",
        Msg::Vote(_) => "vote",
        Msg::Snapshot { .. } => "snapshot",
        Msg::TransferLeader { .. } => "transfer",
        _ => "other",
    }
}

/// Why an exchange failed.
enum Fail {
    Lost(String),
    Unreachable(String),
}

#[derive(Debug)]
struct LinkError(String);

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LinkError {}

impl From<Fail> for RPCError<SimConfig> {
    fn from(fail: Fail) -> Self {
        match fail {
            Fail::Lost(why) => RPCError::Network(NetworkError::new(&LinkError(why))),
            Fail::Unreachable(why) => RPCError::Unreachable(Unreachable::new(&LinkError(why))),
        }
    }
}

fn unexpected(msg: &Msg) -> RPCError<SimConfig> {
    RPCError::Network(NetworkError::new(&LinkError(format!(
        "unexpected answer {}",
        kind(msg)
    ))))
}

/// openraft's factory of links for one node.
pub struct NetFactory {
    me: NodeId,
    net: Net,
}

impl NetFactory {
    /// The links of `me`.
    pub fn new(me: NodeId, net: Net) -> NetFactory {
        NetFactory { me, net }
    }
}

impl RaftNetworkFactory<SimConfig> for NetFactory {
    type Network = Link;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Link {
        Link {
            me: self.me,
            target,
            net: self.net.clone(),
        }
    }
}

/// One node's link to another.
pub struct Link {
    me: NodeId,
    target: NodeId,
    net: Net,
}

impl RaftNetworkV2<SimConfig> for Link {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<SimConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<SimConfig>, RPCError<SimConfig>> {
        let msg = Msg::Append((&rpc).into());
        match self
            .net
            .call(self.me, self.target, msg, option.hard_ttl())
            .await?
        {
            Msg::AppendReply(reply) => Ok((&reply).into()),
            other => Err(unexpected(&other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<SimConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<SimConfig>, RPCError<SimConfig>> {
        let msg = Msg::Vote((&rpc).into());
        match self
            .net
            .call(self.me, self.target, msg, option.hard_ttl())
            .await?
        {
            Msg::VoteReply(reply) => Ok(reply.to_response()),
            other => Err(unexpected(&other)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<SimConfig>, StreamingError<SimConfig>> {
        let msg = Msg::Snapshot {
            vote: (&vote).into(),
            meta: (&snapshot.meta).into(),
            data: snapshot.snapshot,
        };
        let ttl = option.hard_ttl().max(Duration::from_secs(2));
        let call = self.net.call(self.me, self.target, msg, ttl);
        let outcome = futures_util::future::select(Box::pin(call), Box::pin(cancel)).await;
        let reply = match outcome {
            futures_util::future::Either::Left((reply, _)) => reply,
            futures_util::future::Either::Right((closed, _)) => {
                return Err(StreamingError::Closed(closed))
            }
        };
        match reply {
            Ok(Msg::SnapshotReply { vote }) => Ok(SnapshotResponse { vote: vote.into() }),
            Ok(other) => Err(StreamingError::Network(NetworkError::new(&LinkError(
                format!("unexpected answer {}", kind(&other)),
            )))),
            Err(Fail::Lost(why)) => {
                Err(StreamingError::Network(NetworkError::new(&LinkError(why))))
            }
            Err(Fail::Unreachable(why)) => Err(StreamingError::Unreachable(Unreachable::new(
                &LinkError(why),
            ))),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<SimConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<SimConfig>, RPCError<SimConfig>> {
        let msg = Msg::TransferLeader {
            from_leader: req.from_leader().into(),
            to: *req.to_node_id(),
            last_log_id: wire::log_id_opt(req.last_log_id()),
        };
        match self
            .net
            .call(self.me, self.target, msg, option.hard_ttl())
            .await?
        {
            Msg::TransferLeaderReply { refused: None } => Ok(Ok(())),
            Msg::TransferLeaderReply { refused: Some(why) } => Err(RPCError::Network(
                NetworkError::new(&LinkError(format!("leadership refused: {why}"))),
            )),
            other => Err(unexpected(&other)),
        }
    }
}
