//! The standard experiment behind `swim-node simulate`: start a cluster, crash `crash`
//! random members at `crash_at`, inject faults (partitions of any length, one-way
//! partitions, a flaky member), run to `duration`, report against ground truth.

use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Network, Report, Sim, SimConfig};

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

    /// Reads `KIND@START+LENGTH`: `split[:FRACTION]` (0.5 by default), `deaf`, `mute`,
    /// `flaky[:LOSS]` (0.8 by default), each time read by `duration` (e.g.
    /// `split@20s+10m`). The error says what is wrong, for a command-line flag.
    pub fn parse(
        text: &str,
        duration: impl Fn(&str) -> Result<Duration, String>,
    ) -> Result<Self, String> {
        let (kind, when) = text
            .split_once('@')
            .ok_or("expected KIND@START+LENGTH, e.g. split@20s+5m")?;
        let (start, length) = when
            .split_once('+')
            .ok_or("expected START+LENGTH after @, e.g. 20s+5m")?;
        let (name, param) = match kind.split_once(':') {
            Some((name, p)) => {
                let p: f64 = p.parse().map_err(|_| format!("{p:?} is not a number"))?;
                (name, Some(p))
            }
            None => (kind, None),
        };
        let share = |default: f64, what: &str| {
            let p = param.unwrap_or(default);
            if (0.0..=1.0).contains(&p) {
                Ok(p)
            } else {
                Err(format!("{what} must be from 0 to 1, got {p}"))
            }
        };
        let kind = match name {
            "split" => FaultKind::Split {
                fraction: share(0.5, "the split's fraction")?,
            },
            "deaf" => FaultKind::Deaf,
            "mute" => FaultKind::Mute,
            "flaky" => FaultKind::Flaky {
                ingress_loss: share(0.8, "the flaky member's loss")?,
            },
            other => {
                return Err(format!(
                    "unknown fault {other:?}: split, deaf, mute or flaky"
                ))
            }
        };
        Ok(Self::new(kind, duration(start)?, duration(length)?))
    }

    fn end(&self) -> Duration {
        self.at.saturating_add(self.length)
    }
}

/// One thing a [`Scenario`] does at a given time ([`Scenario::steps`]).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Step {
    /// The [`Scenario::crash_victims`] crash.
    Crash,
    /// A fault starts.
    Start(FaultKind),
    /// A fault ends.
    End(FaultKind),
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

    /// The member the one-way and flaky faults hit (the last), if there is such a fault.
    fn faulty(&self) -> Option<usize> {
        self.faults
            .iter()
            .any(|f| !matches!(f.kind, FaultKind::Split { .. }))
            .then(|| self.sim.members.saturating_sub(1))
    }

    /// The members crashed at `crash_at`, in the order they crash: distinct, drawn from the
    /// seed, never the faulty member. The same for the same scenario, so that another
    /// protocol run on the same network (a benchmark) crashes the same members.
    pub fn crash_victims(&self) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.sim.seed ^ 0x5ca1_ab1e);
        let candidates = self.sim.members - usize::from(self.faulty().is_some());
        let mut victims: Vec<usize> = Vec::new();
        while victims.len() < self.crash.min(candidates) {
            let v = (rng.next_u64() % candidates as u64) as usize;
            if !victims.contains(&v) {
                victims.push(v);
            }
        }
        victims
    }

    /// What the scenario does when, from the start, in order: the crash, each fault's
    /// start and end (all within `duration`). Stable: at equal times, the crash, then faults
    /// in their order, starts before ends.
    pub fn steps(&self) -> Vec<(Duration, Step)> {
        let mut steps = vec![(self.crash_at.min(self.duration), Step::Crash)];
        for f in &self.faults {
            steps.push((f.at.min(self.duration), Step::Start(f.kind)));
            steps.push((f.end().min(self.duration), Step::End(f.kind)));
        }
        steps.sort_by_key(|&(at, _)| at);
        steps
    }

    /// Runs it.
    pub fn run(&self) -> Report {
        let mut sim = Sim::new(self.sim.clone());
        let faulty = self.faulty();
        if let Some(f) = faulty {
            sim.mark_faulty(f);
        }
        for (at, step) in self.steps() {
            sim.run_for(at.saturating_sub(sim.elapsed()));
            match step {
                Step::Crash => {
                    for v in self.crash_victims() {
                        sim.crash(v);
                    }
                }
                Step::Start(kind) => kind.apply(&mut sim.network, true),
                Step::End(kind) => kind.apply(&mut sim.network, false),
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
}

impl FaultKind {
    /// Starts (`on`) or ends this fault on `network`.
    pub fn apply(self, network: &mut Network, on: bool) {
        let n = network.len();
        let last = n - 1;
        match self {
            FaultKind::Split { fraction } => {
                let k = ((fraction * n as f64).round() as usize).clamp(1, n - 1);
                for i in k..n {
                    network.set_group(i, u32::from(on));
                }
            }
            FaultKind::Deaf => network.set_ingress_loss(last, if on { 1.0 } else { 0.0 }),
            FaultKind::Mute => network.set_egress_loss(last, if on { 1.0 } else { 0.0 }),
            FaultKind::Flaky { ingress_loss } => {
                network.set_ingress_loss(last, if on { ingress_loss } else { 0.0 })
            }
        }
    }
}
