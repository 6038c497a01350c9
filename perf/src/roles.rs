//! What each client of the plan does, as a monoio task on its harness thread: publish
//! (with a window of unacknowledged QoS 1/2 messages, open loop or at a fixed rate),
//! subscribe and account for every delivery, store and fetch retained messages, or hold an
//! idle connection.
//!
//! Owns the per-thread runtime (`thread_main`) and the client tasks. Tasks read the phase
//! from `engine::Shared` and bump their thread's counters; at Close the thread's canceller
//! ends every pending read, each task sends DISCONNECT and returns its [`Outcome`].
//!
//! ```text
//!   publisher:  writer loop ── batch of PUBLISH (+ PUBREL) ──► one write
//!               ack task    ◄── PUBACK / PUBREC / PUBCOMP ── frees window slots
//!   subscriber: read ─► decode all ─► record (seq, latency) ─► PUBACK/PUBREC/PUBCOMP ─► one write
//! ```

use crate::client::{self, Login, Reader, Writer};
use crate::engine::{new_histogram, Counters, Phase, Shared, ThreadOutcome};
use crate::payload::{self, Header};
use crate::scenario::{ClientSpec, Role, Workload, WRITE_BYTES_MAX};
use crate::sync::{Gate, Notify};
use crate::tls::TlsClient;
use crate::tracker::{BitSet, Received};
use hdrhistogram::Histogram;
use monoio::io::{CancelHandle, Canceller};
use monoio::time::{sleep, timeout};
use shards::mqtt::{
    Ack, ConnAck, Packet, PacketId, Publish, PublishEncode, PublishProperties, QoS,
};
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a client saw, handed back at the end of the run.
pub enum Outcome {
    /// A publisher (also the retained publisher).
    Publisher(PublisherOutcome),
    /// A subscriber (also a retained subscriber, with the time it took to get everything).
    Subscriber {
        /// Deliveries per publisher.
        received: Received,
        /// Retained subscribers: time from SUBSCRIBE to the last retained message.
        elapsed: Option<Duration>,
    },
    /// An idle connection, or one opened and closed again (handshakes).
    Idle,
}

/// What one publisher got through.
pub struct PublisherOutcome {
    /// Publisher index.
    pub id: u32,
    /// PUBLISH packets written.
    pub sent: u64,
    /// Sequence numbers the broker acknowledged (QoS 1/2) or that were written (QoS 0).
    pub confirmed: BitSet,
    /// Publishes still unacknowledged when the publisher gave up waiting.
    pub unacked: u64,
    /// Publishes the broker refused (5.0 reason code >= 0x80).
    pub rejected: u64,
    /// Why the publisher failed, if it did (its counts above still hold).
    pub error: Option<String>,
}

/// Everything the tasks of one thread share.
struct Ctx {
    shared: Arc<Shared>,
    thread: usize,
    workload: Arc<Workload>,
    publishers: usize,
    latency: RefCell<Histogram<u64>>,
    cancel: CancelHandle,
    gate: Gate,
    id_prefix: String,
    connects: Cell<u64>,
    started: Instant,
    tls: Option<TlsClient>,
}

impl Ctx {
    fn counters(&self) -> &Counters {
        &self.shared.counters[self.thread]
    }

    fn phase(&self) -> Phase {
        self.shared.phase()
    }

    fn now_ns(&self) -> u64 {
        self.shared.epoch.elapsed().as_nanos() as u64
    }

    async fn wait_phase(&self, phase: Phase) {
        while self.phase() < phase {
            sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Entry point of one harness thread: a monoio runtime running `specs` to the end.
pub fn thread_main(
    shared: Arc<Shared>,
    thread: usize,
    specs: Vec<ClientSpec>,
    workload: Arc<Workload>,
    publishers: usize,
    id_prefix: String,
    tls: Option<TlsClient>,
) -> ThreadOutcome {
    let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(4096)
        .build();
    let mut runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            shared.counters[thread]
                .failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return ThreadOutcome {
                latency: new_histogram(),
                clients: vec![Err(format!("cannot start a monoio runtime: {error}"))],
            };
        }
    };
    runtime.block_on(async move {
        let canceller = Canceller::new();
        let ctx = Rc::new(Ctx {
            shared,
            thread,
            gate: Gate::new(workload.connect_concurrency),
            workload,
            publishers,
            latency: RefCell::new(new_histogram()),
            cancel: canceller.handle(),
            id_prefix,
            connects: Cell::new(0),
            started: Instant::now(),
            tls,
        });
        let tasks: Vec<_> = specs
            .into_iter()
            .map(|spec| monoio::spawn(run_client(ctx.clone(), spec)))
            .collect();
        while ctx.phase() < Phase::Close {
            sleep(Duration::from_millis(5)).await;
        }
        let _ = canceller.cancel();
        let deadline = Instant::now() + ctx.workload.settle_timeout;
        let mut clients = Vec::with_capacity(tasks.len());
        for task in tasks {
            let left = deadline.saturating_duration_since(Instant::now());
            clients.push(match timeout(left, task).await {
                Ok(outcome) => outcome,
                Err(_) => Err("client did not finish after the run closed".to_string()),
            });
        }
        let latency = ctx.latency.replace(new_histogram());
        ThreadOutcome { latency, clients }
    })
}

async fn run_client(ctx: Rc<Ctx>, spec: ClientSpec) -> Result<Outcome, String> {
    let result = match spec.role {
        Role::Publisher { id, topic } => {
            publisher(&ctx, spec.index, id, Topics::Fixed(topic), false).await
        }
        Role::RetainedPublisher { prefix, count } => {
            publisher(&ctx, spec.index, 0, Topics::Indexed(prefix, count), true).await
        }
        Role::Subscriber { filter, publishers } => {
            subscriber(&ctx, spec.index, &filter, &publishers, None).await
        }
        Role::RetainedSubscriber { filter, count } => {
            subscriber(&ctx, spec.index, &filter, &[0], Some(count)).await
        }
        Role::Idle => idle(&ctx, spec.index).await,
        Role::Churn => churn(&ctx, spec.index).await,
    };
    if let Err(error) = &result {
        if ctx.phase() < Phase::Close {
            ctx.counters()
                .failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        return Err(format!("client {}: {error}", spec.index));
    }
    result
}

/// Connects client `index` (bounded by the thread's gate and the connect rate) and
/// completes the MQTT handshake, announcing `topic_alias_max` (0 = none).
async fn open(
    ctx: &Ctx,
    index: usize,
    topic_alias_max: u16,
) -> Result<(Reader, Writer, ConnAck), String> {
    let workload = &ctx.workload;
    let _permit = ctx.gate.enter().await;
    if let Some(rate) = workload.connect_rate {
        let per_thread = rate / workload.threads.max(1) as f64;
        let slot = ctx.connects.get();
        ctx.connects.set(slot + 1);
        let at = ctx.started + Duration::from_secs_f64(slot as f64 / per_thread.max(0.001));
        let wait = at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            sleep(wait).await;
        }
    }
    let source = source_address(workload, index);
    let client_id = format!("{}-{index}", ctx.id_prefix);
    let credentials = workload.credentials.of(index);
    let login = Login {
        protocol: workload.protocol,
        client_id: &client_id,
        credentials: credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
        persistent: workload.persistent,
        topic_alias_max,
    };
    let attempt = async {
        let stream = client::connect(workload.broker, source)
            .await
            .map_err(|error| format!("connect to {} failed: {error}", workload.broker))?;
        client::handshake(stream, &login, ctx.tls.as_ref(), ctx.cancel.clone()).await
    };
    match timeout(workload.settle_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err("connect and CONNACK timed out".to_string()),
    }
}

/// 127.0.0.(1 + index mod n) when the broker is on IPv4 loopback and n > 1.
fn source_address(workload: &Workload, index: usize) -> Option<IpAddr> {
    let IpAddr::V4(broker) = workload.broker.ip() else {
        return None;
    };
    if !broker.is_loopback() || workload.source_addrs <= 1 {
        return None;
    }
    let host = 1 + (index % usize::from(workload.source_addrs)) as u8;
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)))
}

/// The topics a publisher writes to.
enum Topics {
    /// Every message on one topic.
    Fixed(String),
    /// Message k on `<prefix>k`, for k in 0..count, then stop.
    Indexed(String, u32),
}

/// The publisher's window of unacknowledged messages, shared with its ack task.
#[derive(Default)]
struct Window {
    /// Packet id → sequence number + 1 (0 = free).
    slots: RefCell<Vec<u32>>,
    inflight: Cell<usize>,
    confirmed: RefCell<BitSet>,
    pubrels: RefCell<Vec<PacketId>>,
    rejected: Cell<u64>,
    notify: Notify,
    closed: Cell<bool>,
    error: RefCell<Option<String>>,
}

impl Window {
    fn new() -> Window {
        Window {
            slots: RefCell::new(vec![0; 65536]),
            ..Window::default()
        }
    }

    /// Takes a packet id for `seq`, or None when its slot is still in use.
    fn take(&self, seq: u32) -> Option<PacketId> {
        let id = (seq % 65535) as u16 + 1;
        let mut slots = self.slots.borrow_mut();
        if slots[usize::from(id)] != 0 {
            return None;
        }
        slots[usize::from(id)] = seq + 1;
        self.inflight.set(self.inflight.get() + 1);
        PacketId::new(id)
    }

    /// The message with `id` is done: confirmed (true) or refused (false).
    fn complete(&self, id: PacketId, accepted: bool) {
        let seq = std::mem::take(&mut self.slots.borrow_mut()[usize::from(id.get())]);
        if seq == 0 {
            return;
        }
        self.inflight.set(self.inflight.get() - 1);
        if accepted {
            self.confirmed.borrow_mut().insert(seq - 1);
        } else {
            self.rejected.set(self.rejected.get() + 1);
        }
        self.notify.notify();
    }
}

async fn publisher(
    ctx: &Rc<Ctx>,
    index: usize,
    id: u32,
    topics: Topics,
    retained: bool,
) -> Result<Outcome, String> {
    let workload = ctx.workload.clone();
    let (reader, mut writer, connack) = open(ctx, index, 0).await?;
    let qos = workload.qos;
    let window_max = match qos {
        QoS::AtMostOnce => usize::MAX,
        _ => {
            let broker_max = connack.properties.receive_maximum.unwrap_or(u16::MAX);
            workload.window.clamp(1, usize::from(broker_max))
        }
    };
    if !retained {
        ctx.counters()
            .ready
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ctx.wait_phase(Phase::Warmup).await;
    }
    let window = Rc::new(Window::new());
    let acks = monoio::spawn(read_acks(reader, window.clone()));
    let mut state = Publishing {
        ctx: ctx.clone(),
        id,
        qos,
        retain: retained,
        window_max,
        window: window.clone(),
        template: payload::template(workload.payload),
        topic: String::new(),
        seq: 0,
    };
    let outcome = state.run(&mut writer, &topics).await;
    let unacked = state.drain(&mut writer).await;
    ctx.counters()
        .finished
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if retained {
        ctx.counters()
            .ready
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ctx.wait_phase(Phase::Stop).await;
        if let Topics::Indexed(prefix, count) = &topics {
            clear_retained(&mut writer, prefix, *count).await;
        }
    }
    writer.disconnect().await;
    let _ = timeout(workload.settle_timeout, acks).await;
    let error = outcome.err().or_else(|| window.error.borrow_mut().take());
    let confirmed = window.confirmed.replace(BitSet::default());
    Ok(Outcome::Publisher(PublisherOutcome {
        id,
        sent: u64::from(state.seq),
        confirmed,
        unacked,
        rejected: window.rejected.get(),
        error,
    }))
}

/// How late publisher `id` of `publishers` starts its fixed-`rate` schedule (messages per
/// second per publisher): its share of one period, so the publishers' sends interleave.
fn schedule_offset(id: u32, publishers: usize, rate: f64) -> Duration {
    if rate <= 0.0 || publishers == 0 {
        return Duration::ZERO;
    }
    let share = f64::from(id) / publishers as f64;
    Duration::from_secs_f64(share.fract() / rate)
}

/// How many messages a fixed-`rate` schedule has due `since` its start (`None`: it has
/// not started): the first at the start, then one per period.
fn due_messages(since: Option<Duration>, rate: f64) -> u64 {
    since.map_or(0, |since| (since.as_secs_f64() * rate) as u64 + 1)
}

/// One publisher's sending state.
struct Publishing {
    ctx: Rc<Ctx>,
    id: u32,
    qos: QoS,
    retain: bool,
    window_max: usize,
    window: Rc<Window>,
    template: Vec<u8>,
    topic: String,
    seq: u32,
}

impl Publishing {
    /// Publishes until Stop (or, for indexed topics, until every topic is written).
    async fn run(&mut self, writer: &mut Writer, topics: &Topics) -> Result<(), String> {
        let workload = self.ctx.workload.clone();
        let rate = workload.rate.map(|r| r / self.ctx.publishers.max(1) as f64);
        // At a fixed rate, publisher i starts i/N of a period late, so N publishers send
        // one message every period/N between them instead of all N in the same instant.
        let started = match rate {
            Some(rate) => Instant::now() + schedule_offset(self.id, self.ctx.publishers, rate),
            None => Instant::now(),
        };
        let limit = match topics {
            Topics::Fixed(topic) => {
                self.topic.clone_from(topic);
                u32::MAX
            }
            Topics::Indexed(_, count) => *count,
        };
        loop {
            if (!self.retain && self.ctx.phase() >= Phase::Stop) || self.seq >= limit {
                return Ok(());
            }
            if self.window.closed.get() {
                return Err("the broker closed the connection".to_string());
            }
            let room = self.window_max.saturating_sub(self.window.inflight.get());
            let mut count = workload.batch.min(room).min((limit - self.seq) as usize);
            if let Some(rate) = rate {
                let due = due_messages(Instant::now().checked_duration_since(started), rate);
                let allowed = due.saturating_sub(u64::from(self.seq)) as usize;
                if allowed == 0 {
                    self.push_pubrels(writer)?;
                    writer.flush().await?;
                    let next = Duration::from_secs_f64((self.seq as f64) / rate);
                    let wait = (started + next).saturating_duration_since(Instant::now());
                    sleep(wait.clamp(Duration::from_millis(1), Duration::from_millis(50))).await;
                    continue;
                }
                count = count.min(allowed);
            }
            if count == 0 && self.window.pubrels.borrow().is_empty() {
                let _ = timeout(Duration::from_millis(50), self.window.notify.wait()).await;
                continue;
            }
            self.push_pubrels(writer)?;
            let written = self.push_batch(writer, topics, count)?;
            writer.flush().await?;
            let counters = self.ctx.counters();
            counters
                .sent
                .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn push_pubrels(&self, writer: &mut Writer) -> Result<(), String> {
        let pubrels = std::mem::take(&mut *self.window.pubrels.borrow_mut());
        for id in pubrels {
            writer.push(&Packet::PubRel(Ack::new(id)))?;
        }
        Ok(())
    }

    /// Encodes up to `count` PUBLISH packets; returns how many.
    fn push_batch(
        &mut self,
        writer: &mut Writer,
        topics: &Topics,
        count: usize,
    ) -> Result<u64, String> {
        let properties = PublishProperties::default();
        let sent_ns = self.ctx.now_ns();
        let mut written = 0;
        for _ in 0..count {
            let packet_id = match self.qos {
                QoS::AtMostOnce => None,
                _ => match self.window.take(self.seq) {
                    Some(id) => Some(id),
                    None => break,
                },
            };
            if let Topics::Indexed(prefix, _) = topics {
                self.topic.clear();
                self.topic.push_str(prefix);
                self.topic.push_str(&self.seq.to_string());
            }
            let header = Header {
                publisher: self.id,
                seq: self.seq,
                sent_ns,
            };
            payload::write(&mut self.template, header);
            writer.push_publish(&PublishEncode {
                dup: false,
                qos: self.qos,
                retain: self.retain,
                topic: self.topic.as_bytes(),
                packet_id,
                topic_alias: None,
                message_expiry_interval: None,
                subscription_identifiers: &[],
                properties: &properties,
                payload: &self.template,
            })?;
            if self.qos == QoS::AtMostOnce {
                self.window.confirmed.borrow_mut().insert(self.seq);
            }
            self.seq += 1;
            written += 1;
            if writer.pending() >= WRITE_BYTES_MAX {
                break;
            }
        }
        Ok(written)
    }

    /// After Stop: sends the remaining PUBRELs and waits (bounded) until the window is
    /// empty. Returns the messages still unacknowledged.
    async fn drain(&mut self, writer: &mut Writer) -> u64 {
        let deadline = Instant::now() + self.ctx.workload.settle_timeout;
        while self.window.inflight.get() > 0 && !self.window.closed.get() {
            if self.push_pubrels(writer).is_err() || writer.flush().await.is_err() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = timeout(
                left.min(Duration::from_millis(50)),
                self.window.notify.wait(),
            )
            .await;
        }
        self.window.inflight.get() as u64
    }
}

/// A publisher's acknowledgement reader.
async fn read_acks(mut reader: Reader, window: Rc<Window>) {
    let result = async {
        loop {
            while let Some(packet) = reader.try_next()? {
                match packet {
                    Packet::PubAck(ack) | Packet::PubComp(ack) => {
                        window.complete(ack.packet_id, ack.reason_code < 0x80);
                    }
                    Packet::PubRec(ack) if ack.reason_code >= 0x80 => {
                        window.complete(ack.packet_id, false);
                    }
                    Packet::PubRec(ack) => {
                        window.pubrels.borrow_mut().push(ack.packet_id);
                        window.notify.notify();
                    }
                    Packet::Disconnect(disconnect) => {
                        return Err(format!(
                            "broker sent DISCONNECT, reason {:#04x}",
                            disconnect.reason_code
                        ));
                    }
                    _ => {}
                }
            }
            if !reader.fill().await? {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(error) = result {
        *window.error.borrow_mut() = Some(error);
    }
    window.closed.set(true);
    window.notify.notify();
}

/// Removes the retained messages of a run (empty retained payloads), so a long-lived
/// broker does not keep them.
async fn clear_retained(writer: &mut Writer, prefix: &str, count: u32) {
    let properties = PublishProperties::default();
    let mut topic = String::new();
    for k in 0..count {
        topic.clear();
        topic.push_str(prefix);
        topic.push_str(&k.to_string());
        let _ = writer.push_publish(&PublishEncode {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: topic.as_bytes(),
            packet_id: None,
            topic_alias: None,
            message_expiry_interval: None,
            subscription_identifiers: &[],
            properties: &properties,
            payload: &[],
        });
        if writer.pending() > 64 * 1024 && writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.flush().await;
}

async fn subscriber(
    ctx: &Rc<Ctx>,
    index: usize,
    filter: &str,
    publishers: &[u32],
    retained: Option<u32>,
) -> Result<Outcome, String> {
    let qos = ctx.workload.qos;
    let (mut reader, mut writer, _) = open(ctx, index, ctx.workload.topic_alias_max).await?;
    let mut subscribed_at = None;
    if retained.is_some() {
        ctx.counters()
            .ready
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ctx.wait_phase(Phase::Measure).await;
        subscribed_at = Some(Instant::now());
    }
    client::subscribe(&mut reader, &mut writer, filter, qos).await?;
    if retained.is_none() {
        ctx.counters()
            .ready
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let mut received = Received::expect(publishers);
    let mut aliases = AliasBook::new(ctx.workload.topic_alias_max);
    let mut elapsed = None;
    loop {
        let measuring = ctx.phase() == Phase::Measure;
        let now_ns = ctx.now_ns();
        let mut count = 0;
        while let Some(packet) = reader.try_next()? {
            match packet {
                Packet::Publish(publish) => {
                    aliases.learn(&publish)?;
                    // An empty retained message is the run's own clean-up (it deletes one).
                    let cleanup = retained.is_some() && publish.payload.is_empty();
                    count += u64::from(!cleanup);
                    match payload::read(&publish.payload) {
                        _ if cleanup => {}
                        Some(header) => {
                            received.record(header.publisher, header.seq);
                            if measuring && retained.is_none() {
                                let latency = now_ns.saturating_sub(header.sent_ns);
                                ctx.latency.borrow_mut().saturating_record(latency.max(1));
                            }
                        }
                        None => received.record_unreadable(),
                    }
                    if let Some(id) = publish.packet_id {
                        let ack = Ack::new(id);
                        writer.push(&match publish.qos {
                            QoS::ExactlyOnce => Packet::PubRec(ack),
                            _ => Packet::PubAck(ack),
                        })?;
                    }
                }
                Packet::PubRel(ack) => writer.push(&Packet::PubComp(Ack::new(ack.packet_id)))?,
                Packet::Disconnect(disconnect) => {
                    return Err(format!(
                        "broker sent DISCONNECT, reason {:#04x}",
                        disconnect.reason_code
                    ));
                }
                _ => {}
            }
        }
        let counters = ctx.counters();
        counters
            .received
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        counters.received_bytes.fetch_add(
            reader.take_bytes_read(),
            std::sync::atomic::Ordering::Relaxed,
        );
        if let (Some(expected), Some(at), None) = (retained, subscribed_at, elapsed) {
            if received.distinct() >= u64::from(expected) {
                elapsed = Some(at.elapsed());
                counters
                    .finished
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        writer.flush().await?;
        if !reader.fill().await? {
            break;
        }
    }
    if ctx.phase() < Phase::Close {
        return Err("the broker closed the connection before the run ended".to_string());
    }
    writer.disconnect().await;
    Ok(Outcome::Subscriber { received, elapsed })
}

/// The broker's topic aliases as a subscriber learns them (`--topic-alias-max`): a PUBLISH
/// with an alias above the maximum, or with an empty topic and an alias never announced,
/// fails the subscriber (the broker broke §3.3.2.3.4).
struct AliasBook {
    /// Topic of alias `i + 1`.
    topics: Vec<Option<Vec<u8>>>,
}

impl AliasBook {
    fn new(max: u16) -> AliasBook {
        AliasBook {
            topics: vec![None; usize::from(max)],
        }
    }

    fn learn(&mut self, publish: &Publish) -> Result<(), String> {
        let Some(alias) = publish.properties.topic_alias else {
            return Ok(());
        };
        let Some(slot) = usize::from(alias)
            .checked_sub(1)
            .and_then(|i| self.topics.get_mut(i))
        else {
            return Err(format!(
                "broker sent topic alias {alias}, above the maximum {}",
                self.topics.len()
            ));
        };
        if !publish.topic.is_empty() {
            let topic = slot.get_or_insert_with(Vec::new);
            topic.clear();
            topic.extend_from_slice(publish.topic.as_bytes());
        } else if slot.is_none() {
            return Err(format!(
                "broker used topic alias {alias} before naming its topic"
            ));
        }
        Ok(())
    }
}

async fn idle(ctx: &Rc<Ctx>, index: usize) -> Result<Outcome, String> {
    let (mut reader, mut writer, _) = open(ctx, index, 0).await?;
    ctx.counters()
        .ready
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    while reader.next().await?.is_some() {}
    if ctx.phase() < Phase::Close {
        return Err("the broker closed an idle connection".to_string());
    }
    writer.disconnect().await;
    Ok(Outcome::Idle)
}

/// handshakes: open the connection (TLS handshake, CONNECT/CONNACK), count it, send
/// DISCONNECT and close. The gate still holds the slot until the socket is closed.
async fn churn(ctx: &Rc<Ctx>, index: usize) -> Result<Outcome, String> {
    let (reader, mut writer, _) = open(ctx, index, 0).await?;
    ctx.counters()
        .ready
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    writer.disconnect().await;
    drop(reader);
    drop(writer);
    Ok(Outcome::Idle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_rate_publishers_interleave_over_one_period() {
        // 4 publishers at 100 msg/s each: a 10 ms period, starts 2.5 ms apart.
        let starts: Vec<Duration> = (0..4).map(|id| schedule_offset(id, 4, 100.0)).collect();
        let ms: Vec<f64> = starts.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        for (got, want) in ms.iter().zip([0.0, 2.5, 5.0, 7.5]) {
            assert!((got - want).abs() < 1e-9, "{ms:?}");
        }
        assert_eq!(schedule_offset(3, 0, 100.0), Duration::ZERO);
        assert_eq!(schedule_offset(3, 4, 0.0), Duration::ZERO);
    }

    #[test]
    fn a_schedule_has_nothing_due_before_its_start_then_one_per_period() {
        assert_eq!(due_messages(None, 100.0), 0);
        assert_eq!(due_messages(Some(Duration::ZERO), 100.0), 1);
        assert_eq!(due_messages(Some(Duration::from_micros(9_999)), 100.0), 1);
        assert_eq!(due_messages(Some(Duration::from_millis(10)), 100.0), 2);
        assert_eq!(due_messages(Some(Duration::from_secs(1)), 100.0), 101);
    }
}
