//! The standard experiment behind `swim-node simulate`: start a cluster, crash `crash`
//! random members at `crash_at`, inject faults (partitions of any length, one-way
//! partitions, a flaky member), run to `duration`, report against ground truth.

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
    /// Members crashed (distinct, chosen from the seed; never the faulty member).
    pub crash: usize,
    /// When they crash, from the start.
    pub crash_at: Duration,
    /// Total virtual time.
    pub duration: Duration,
    /// Faults, each from its start for its length (they may overlap).
    pub faults: Vec<Fault>,
}

/// A fault injected into a [`Scenario`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Fault {
    /// What goes wrong.
    pub kind: FaultKind,
    /// When, from the start.
    pub at: Duration,
    /// For how long.
    pub length: Duration,
}

/// What goes wrong in a [`Fault`]. One-way and flaky faults hit the last member, which the
/// report then counts as faulty ([`Sim::mark_faulty`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum FaultKind {
    /// Members `0..k` and `k..n` cannot reach each other, `k = round(fraction · n)`
    /// (clamped to leave at least one member on each side).
    Split {
        /// The first side's share of the members.
        fraction: f64,
    },
    /// The last member hears nothing; it still sends.
    Deaf,
    /// Nobody hears the last member; it still hears.
    Mute,
    /// The last member loses this share of the datagrams it receives (the Rapid paper's
    /// flaky node).
    Flaky {
        /// 0 to 1.
        ingress_loss: f64,
    },
}

impl Fault {
    /// A fault of `kind` from `at` for `length`.
    pub fn new(kind: FaultKind, at: Duration, length: Duration) -> Self {
        Self { kind, at, length }
    }

    fn end(&self) -> Duration {
        self.at.saturating_add(self.length)
    }
}

/// One thing the scenario does at a given time.
#[derive(Clone, Copy, Debug)]
enum Step {
    Crash,
    Start(usize),
    End(usize),
}

/// How often the scenario checks whether the cluster merged after the last fault.
const MERGE_CHECK: Duration = Duration::from_millis(250);

impl Scenario {
    /// A scenario with crashes at `min(10 s, duration / 4)` and no fault.
    pub fn new(sim: SimConfig, crash: usize, duration: Duration) -> Self {
        let crash_at = (duration / 4).min(Duration::from_secs(10));
        Self {
            sim,
            crash,
            crash_at,
            duration,
            faults: Vec::new(),
        }
    }

    /// Runs it.
    pub fn run(&self) -> Report {
        let mut rng = ChaCha8Rng::seed_from_u64(self.sim.seed ^ 0x5ca1_ab1e);
        let mut sim = Sim::new(self.sim.clone());
        let n = sim.len();
        let faulty = self
            .faults
            .iter()
            .any(|f| !matches!(f.kind, FaultKind::Split { .. }))
            .then(|| n - 1);
        if let Some(f) = faulty {
            sim.mark_faulty(f);
        }
        let mut steps = vec![(self.crash_at.min(self.duration), Step::Crash)];
        for (i, f) in self.faults.iter().enumerate() {
            steps.push((f.at.min(self.duration), Step::Start(i)));
            steps.push((f.end().min(self.duration), Step::End(i)));
        }
        // Stable: at equal times, the crash, then faults in their order, starts before ends.
        steps.sort_by_key(|&(at, _)| at);
        for (at, step) in steps {
            sim.run_for(at.saturating_sub(sim.elapsed()));
            match step {
                Step::Crash => {
                    let candidates = n - usize::from(faulty.is_some());
                    let mut victims: Vec<usize> = Vec::new();
                    while victims.len() < self.crash.min(candidates) {
                        let v = (rng.next_u64() % candidates as u64) as usize;
                        if !victims.contains(&v) {
                            victims.push(v);
                        }
                    }
                    for v in victims {
                        sim.crash(v);
                    }
                }
                Step::Start(i) => self.apply(&mut sim, self.faults[i].kind, true),
                Step::End(i) => self.apply(&mut sim, self.faults[i].kind, false),
            }
        }
        if let Some(end) = self.faults.iter().map(Fault::end).max() {
            while end < self.duration && sim.elapsed() < self.duration {
                if sim.all_alive() {
                    let merged = sim.elapsed().saturating_sub(end);
                    sim.recorder.merged_after_fault_s = Some(merged.as_secs_f64());
                    break;
                }
                sim.run_for(MERGE_CHECK.min(self.duration - sim.elapsed()));
            }
        }
        sim.run_for(self.duration.saturating_sub(sim.elapsed()));
        sim.report()
    }

    /// Starts (`on`) or ends a fault.
    fn apply(&self, sim: &mut Sim, kind: FaultKind, on: bool) {
        let n = sim.len();
        let last = n - 1;
        match kind {
            FaultKind::Split { fraction } => {
                let k = ((fraction * n as f64).round() as usize).clamp(1, n - 1);
                for i in k..n {
                    sim.set_group(i, u32::from(on));
                }
            }
            FaultKind::Deaf => sim.set_ingress_loss(last, if on { 1.0 } else { 0.0 }),
            FaultKind::Mute => sim.set_egress_loss(last, if on { 1.0 } else { 0.0 }),
            FaultKind::Flaky { ingress_loss } => {
                sim.set_ingress_loss(last, if on { ingress_loss } else { 0.0 })
            }
        }
    }
}
