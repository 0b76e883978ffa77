//! The standard experiment behind `swim-node simulate`: start a cluster, crash `crash`
//! random members at `crash_at`, run to `duration`, report against ground truth.

use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Report, Sim, SimConfig};

/// A crash-detection experiment.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Scenario {
    /// The cluster and network.
    pub sim: SimConfig,
    /// Members crashed (distinct, chosen from the seed).
    pub crash: usize,
    /// When they crash, from the start.
    pub crash_at: Duration,
    /// Total virtual time.
    pub duration: Duration,
}

impl Scenario {
    /// A scenario with crashes at `min(10 s, duration / 4)`.
    pub fn new(sim: SimConfig, crash: usize, duration: Duration) -> Self {
        let crash_at = (duration / 4).min(Duration::from_secs(10));
        Self {
            sim,
            crash,
            crash_at,
            duration,
        }
    }

    /// Runs it.
    pub fn run(&self) -> Report {
        let mut rng = ChaCha8Rng::seed_from_u64(self.sim.seed ^ 0x5ca1_ab1e);
        let mut sim = Sim::new(self.sim.clone());
        let n = sim.len();
        let crash_at = self.crash_at.min(self.duration);
        sim.run_for(crash_at);
        let mut victims: Vec<usize> = Vec::new();
        while victims.len() < self.crash.min(n) {
            let v = (rng.next_u64() % n as u64) as usize;
            if !victims.contains(&v) {
                victims.push(v);
            }
        }
        for v in victims {
            sim.crash(v);
        }
        sim.run_for(self.duration - crash_at);
        sim.report()
    }
}
