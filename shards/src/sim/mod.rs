//! The seeded simulation of a broker's durable state: from one seed, random clients
//! connect (3.1.1 and 5.0, clean or persistent, with wills), subscribe, publish at every
//! QoS with and without retain and expiry, acknowledge some of what they get, disconnect
//! cleanly or drop, take their sessions over, and time passes (expiry, wills); at random
//! points the state is saved, and at others the broker "crashes" and is rebuilt from the
//! last save plus the changes emitted since, on a node with another shard count.
//!
//! After every step it checks:
//! - every invariant of every shard (`SessionStore::check_invariants`, retained copies);
//! - that a follower fed only the emitted stream (through the wire form: record, rkyv
//!   archive, validated decode), on another shard count, holds exactly the source's
//!   durable state;
//! - at a crash, that save + stream rebuilds exactly the state that crashed.
//!
//! A failure names its seed; `SIM_SEED=<seed> cargo test -p shards sim::` replays it, and
//! `SIM_SEEDS=<n>` runs more seeds. The cluster issues extend it with a network.

mod client;
mod node;
mod rng;
#[cfg(test)]
mod robustness;

use crate::shard::Now;
use crate::state::port::Emitted;
use crate::state::Record;
use client::Clients;
use node::{settings, Node};
use rng::Rng;

/// Steps per seed.
const STEPS: usize = 400;

/// What one seed's run looks like.
struct Sim {
    rng: Rng,
    node: Node,
    follower: Node,
    clients: Clients,
    /// The last save: the records that rebuilt the state then.
    saved: Vec<Record>,
    /// Every change emitted since the last save.
    log: Vec<Record>,
    /// Every change emitted since the start (for the robustness tests).
    history: Vec<Record>,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        let now = Now {
            unix_s: 1_700_000_000,
            mono_ms: 1_000,
        };
        let shards = 1 + rng.below(4);
        let follower_shards = 1 + (shards + rng.below(3)) % 4;
        Sim {
            clients: Clients::new(&mut rng),
            node: Node::new(shards, settings(), now),
            follower: Node::new(follower_shards, settings(), now),
            rng,
            saved: Vec::new(),
            log: Vec::new(),
            history: Vec::new(),
        }
    }

    fn step(&mut self) -> Result<(), String> {
        match self.rng.below(100) {
            0..=1 => self.save(),
            2 => self.crash()?,
            3..=7 => {
                let seconds = 1 + self.rng.below(20) as u64;
                self.node.advance(seconds);
            }
            _ => self.clients.act(&mut self.rng, &mut self.node)?,
        }
        self.node.close_closing();
        self.clients.receive(&mut self.node);
        self.replicate()?;
        self.node.check_invariants()?;
        self.follower.check_invariants()?;
        if self.node.canonical() != self.follower.canonical() {
            return Err("the follower fed the emitted stream differs from the source".into());
        }
        Ok(())
    }

    /// Feeds the follower what the source emitted, through the wire form, and keeps it
    /// in the log since the last save.
    fn replicate(&mut self) -> Result<(), String> {
        let emitted: Vec<Emitted> = self.node.drain();
        let mut records = Vec::with_capacity(emitted.len());
        for emitted in emitted {
            records.push(through_the_wire(&emitted.emission.to_record())?);
        }
        self.follower.apply(&records)?;
        self.history.extend(records.iter().cloned());
        self.log.extend(records);
        Ok(())
    }

    /// A persistence point: the state as records; the log starts over.
    fn save(&mut self) {
        self.saved = self.node.snapshot();
        self.log.clear();
    }

    /// The broker dies; a new one (another shard count, perhaps) is rebuilt from the last
    /// save and the log, must equal what died, then takes over: every client is gone.
    fn crash(&mut self) -> Result<(), String> {
        let shards = 1 + self.rng.below(4);
        let mut restored = Node::new(shards, settings(), self.node.now);
        restored.apply(&self.saved)?;
        restored.apply(&self.log)?;
        restored.drain();
        if restored.canonical() != self.node.canonical() {
            return Err("save + log does not rebuild the state that crashed".into());
        }
        self.node = restored;
        self.clients.lost_connections();
        for shard in &mut self.node.shards {
            shard.close_orphans();
        }
        self.node.pump();
        Ok(())
    }
}

/// `record` serialised and read back as a follower reads it: rkyv archive, validated
/// access, decode.
fn through_the_wire(record: &Record) -> Result<Record, String> {
    let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(record).map_err(|e| e.to_string())?;
    rkyv::from_bytes::<Record, rkyv::rancor::Error>(&bytes).map_err(|e| e.to_string())
}

/// Runs one seed; the error names the step.
fn run(seed: u64) -> Result<(), String> {
    let mut sim = Sim::new(seed);
    for step in 0..STEPS {
        sim.step()
            .map_err(|error| format!("step {step}: {error}"))?;
    }
    Ok(())
}

/// The seeds to run: `SIM_SEED` alone, or `SIM_SEEDS` (default 200) from 1.
fn seeds() -> Vec<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match var("SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=var("SIM_SEEDS").unwrap_or(200)).collect(),
    }
}

#[test]
fn seeded_simulation_keeps_every_invariant_and_followers_equal() {
    for seed in seeds() {
        if let Err(error) = run(seed) {
            panic!(
                "simulation seed {seed} failed at {error}\n\
                 replay: SIM_SEED={seed} cargo test -p shards sim::"
            );
        }
    }
}
