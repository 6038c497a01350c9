//! A consumer of the shards' durable changes that does what a replication core does with
//! them, short of sending: it drains every shard's output ring, turns each change into its
//! record and each batch into an rkyv archive, and discards it.
//!
//! Started only when `CULEX_MEASURE_EMISSION=1` is in the environment, to measure what
//! emitting costs the broker (`docs/benchmarks.md`); a cluster attaches its replication
//! core to the same rings instead.

use shards::state::port::{Emitted, OutputDrain, OutputRing};
use shards::state::Record;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

/// Changes taken from one ring per pass (the batch a replication core would propose).
const BATCH_MAX: usize = 1024;

/// Wakes the consumer thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The rings to attach to `shards` shards, with the consumer running; `None` unless
/// `CULEX_MEASURE_EMISSION=1`.
pub fn start(shards: usize) -> std::io::Result<Option<Vec<Arc<OutputRing>>>> {
    if std::env::var_os("CULEX_MEASURE_EMISSION").is_none_or(|v| v != "1") {
        return Ok(None);
    }
    let rings: Vec<Arc<OutputRing>> = (0..shards).map(|_| OutputRing::new()).collect();
    let drain = OutputDrain::new(rings.clone());
    std::thread::Builder::new()
        .name("culex-emission".to_string())
        .spawn(move || consume(&drain))?;
    log::info!("Emission consumer attached (CULEX_MEASURE_EMISSION=1).");
    Ok(Some(rings))
}

fn consume(drain: &OutputDrain) {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut emitted: Vec<Emitted> = Vec::with_capacity(BATCH_MAX);
    loop {
        let mut taken = 0;
        for shard in 0..drain.rings().len() {
            emitted.clear();
            taken += drain.take(shard, BATCH_MAX, &mut emitted);
            if emitted.is_empty() {
                continue;
            }
            let records: Vec<Record> = emitted.iter().map(|e| e.emission.to_record()).collect();
            if let Ok(frame) = rkyv::to_bytes::<rkyv::rancor::Error>(&records) {
                std::hint::black_box(frame);
            }
            if let Some(last) = emitted.last() {
                drain.rings()[shard]
                    .durable
                    .store(last.seq, std::sync::atomic::Ordering::Release);
            }
        }
        if taken == 0 && !drain.park(&waker) {
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }
}
