//! foca (2.0, a sans-IO SWIM) run inside swim's simulated network: the same latency, jitter,
//! loss, partitions, crash instants and victims and seeds as `swim-node simulate` with the
//! same flags, foca's own `Config::new_lan(N)`, and the same figures in one JSON line. The
//! fair side by side of `benches/scripts/foca_side_by_side.py` (see `benches/README.md`).
//!
//! What is measured against ground truth, as the simulator does for swim:
//! - a crash is *detected* by a survivor when foca notifies `MemberDown` for it there;
//!   first suspicion is the first `ProbeFailed` about it (foca reports no suspicion it
//!   learned from others);
//! - a *false suspicion* is a `ProbeFailed` about a running process (foca emits it for every
//!   failed probe, also of a member already suspect: an upper bound of the suspicions
//!   raised); a *false death* a `MemberDown` of a running process that this member's own
//!   suspicion timer declared, a *false death view* any `MemberDown` of a running process; a
//!   *forced rejoin* a running member told it was declared down, which then rejoins under a
//!   new identity (foca's `Identity::renew`; the others see a rename, not a death). Truth
//!   is the process (the slot), whichever of its identities an event names.
//!
//! Bytes are foca's UDP payload (plaintext: no wire overhead is added).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use foca::{AccumulatingRuntime, Config, Foca, Identity, Member, OwnedNotification, Timer};
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use swim_core::sim::{percentile, EventQueue, Fault, Network, Scenario, SimConfig, Step};

/// A member: its slot (its address) and which process in it (foca's rejoin bumps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Id {
    slot: u32,
    boot: u32,
}

impl Identity for Id {
    type Addr = u32;

    /// Declared down while running: rejoin at once as the next process of the slot.
    fn renew(&self) -> Option<Self> {
        Some(Id {
            slot: self.slot,
            boot: self.boot + 1,
        })
    }

    fn addr(&self) -> u32 {
        self.slot
    }

    fn win_addr_conflict(&self, other: &Self) -> bool {
        self.boot > other.boot
    }
}

type FocaMember = Foca<Id, foca::PostcardCodec, Pcg64Mcg, foca::NoCustomBroadcast>;

/// Settings: the flags of `swim-node simulate` that describe the network and the scenario.
#[derive(Parser, Debug)]
#[command(about = "foca members in swim's simulated network; prints one JSON line")]
struct Args {
    /// Cluster size.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Random datagram loss probability, 0 ≤ P < 1.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Members crashed at `--crash-at` (the same members `swim-node simulate` crashes).
    #[arg(long, default_value_t = 1)]
    crash: usize,
    /// Simulated seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// When the crashes happen, seconds from the start [default: min(10, duration/4)].
    #[arg(long)]
    crash_at: Option<f64>,
    /// Seed of the network, the victims and every member's RNG.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One-way link latency.
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// Extra uniform random latency, 0 to this.
    #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
    jitter: Duration,
    /// Time a member takes to handle one message (they queue).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    processing: Duration,
    /// A fault, `KIND@START+LENGTH`, as `swim-node simulate --fault`.
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<Fault>,
}

fn parse_fault(text: &str) -> Result<Fault, String> {
    Fault::parse(text, |s| {
        humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e}"))
    })
}

impl Args {
    fn scenario(&self) -> Result<Scenario, String> {
        if self.members < 2 || self.crash >= self.members {
            return Err("--members must be at least 2 and above --crash".into());
        }
        if !(0.0..1.0).contains(&self.loss) {
            return Err(format!("--loss must be in [0, 1), got {}", self.loss));
        }
        if !(self.duration.is_finite() && self.duration > 0.0) {
            return Err("--duration must be a positive number of seconds".into());
        }
        // foca sends plaintext UDP: its payload is its wire (IP and UDP headers aside, as
        // for swim).
        let mut wire = swim_core::sim::WireModel::default();
        wire.datagram_overhead = 0;
        wire.ack_only_packet = 0;
        wire.stream_packet_overhead = 0;
        let sim = SimConfig {
            members: self.members,
            seed: self.seed,
            latency: self.latency,
            jitter: self.jitter,
            loss: self.loss,
            processing: self.processing,
            wire,
            ..SimConfig::default()
        };
        let mut scenario = Scenario::new(sim, self.crash, Duration::from_secs_f64(self.duration));
        scenario.faults = self.faults.clone();
        if let Some(at) = self.crash_at {
            if !(at.is_finite() && (0.0..=self.duration).contains(&at)) {
                return Err("--crash-at must be between 0 and --duration".into());
            }
            scenario.crash_at = Duration::from_secs_f64(at);
        }
        Ok(scenario)
    }
}

/// What the event queue holds.
enum Action {
    /// A datagram arrives (`queued`: it has yet to wait its turn at the receiver).
    Deliver {
        to: u32,
        data: Vec<u8>,
        queued: bool,
    },
    /// A timer foca asked for.
    Timer { slot: u32, timer: Timer<Id> },
}

/// Ground truth of one crash and who declared it when.
struct Crash {
    id: Id,
    at: Instant,
    first_suspect: Option<Instant>,
    dead_by: HashMap<usize, Instant>,
}

/// The cluster, the network and the tallies.
struct Run {
    now: Instant,
    epoch: Instant,
    members: Vec<Option<FocaMember>>,
    /// The current identity of each slot's process.
    ids: Vec<Id>,
    network: Network,
    queue: EventQueue<Action>,
    runtime: AccumulatingRuntime<Id>,
    max_packet: usize,
    crashes: Vec<Crash>,
    false_suspicions: u64,
    false_deaths: u64,
    false_death_views: u64,
    forced_rejoins: u64,
    defunct: u64,
}

impl Run {
    fn new(scenario: &Scenario, config: &Config) -> Self {
        let n = scenario.sim.members;
        let epoch = Instant::now();
        let ids: Vec<Id> = (0..n as u32).map(|slot| Id { slot, boot: 0 }).collect();
        let members = ids
            .iter()
            .map(|&id| {
                let rng = Pcg64Mcg::seed_from_u64(mix(scenario.sim.seed ^ u64::from(id.slot)));
                Some(Foca::new(id, config.clone(), rng, foca::PostcardCodec))
            })
            .collect();
        Run {
            now: epoch,
            epoch,
            members,
            ids,
            network: Network::new(&scenario.sim),
            queue: EventQueue::new(epoch),
            runtime: AccumulatingRuntime::new(),
            max_packet: config.max_packet_size.get(),
            crashes: Vec::new(),
            false_suspicions: 0,
            false_deaths: 0,
            false_death_views: 0,
            forced_rejoins: 0,
            defunct: 0,
        }
    }

    /// A converged cluster, as swim's simulator starts: every member knows every other alive.
    /// Each starts at its own instant within the first probe period (a cluster that has run
    /// for a while does not probe in lockstep).
    fn converge(&mut self, probe_period: Duration, seed: u64) {
        let everyone: Vec<Member<Id>> = self.ids.iter().map(|&id| Member::alive(id)).collect();
        let mut rng = Pcg64Mcg::seed_from_u64(mix(seed ^ 0xf0ca));
        for slot in 0..self.members.len() {
            let offset = probe_period.mul_f64(unit(&mut rng));
            let me = self.ids[slot];
            let foca = self.members[slot].as_mut().expect("all start");
            let others = everyone.iter().filter(|m| *m.id() != me).cloned();
            foca.apply_many(others, false, &mut self.runtime)
                .expect("a fresh member takes the member list");
            self.drain(slot, offset, None);
        }
    }

    fn run_until(&mut self, until: Instant) {
        while let Some((at, action)) = self.queue.pop_until(until) {
            self.now = at;
            match action {
                Action::Deliver {
                    to,
                    data,
                    queued: true,
                } => {
                    let done = self.network.take_turn(to as usize, at);
                    let action = Action::Deliver {
                        to,
                        data,
                        queued: false,
                    };
                    self.queue.push(done, action);
                }
                Action::Deliver {
                    to,
                    data,
                    queued: false,
                } => {
                    let to = to as usize;
                    let Some(foca) = self.members[to].as_mut() else {
                        self.network.receiver_down();
                        continue;
                    };
                    if foca.handle_data(&data, &mut self.runtime).is_err() {
                        self.network.refused();
                    }
                    self.drain(to, Duration::ZERO, None);
                }
                Action::Timer { slot, timer } => {
                    let slot = slot as usize;
                    let Some(foca) = self.members[slot].as_mut() else {
                        continue;
                    };
                    // A death this member's own suspicion timer declares.
                    let declares = match &timer {
                        Timer::ChangeSuspectToDown { member_id, .. } => Some(*member_id),
                        _ => None,
                    };
                    foca.handle_timer(timer, &mut self.runtime)
                        .expect("foca handles its own timers");
                    self.drain(slot, Duration::ZERO, declares);
                }
            }
        }
        self.now = until;
    }

    /// Hands what member `slot` asked for to the network and the queue (timers `delay`ed),
    /// and tallies its notifications.
    fn drain(&mut self, slot: usize, delay: Duration, declares: Option<Id>) {
        while let Some((to, data)) = self.runtime.to_send() {
            let to_slot = (to.slot as usize) < self.members.len();
            let arrives = self.network.send(
                self.now,
                slot,
                to_slot.then_some(to.slot as usize),
                data.len(),
                false,
                self.max_packet,
            );
            if let Some(at) = arrives {
                let action = Action::Deliver {
                    to: to.slot,
                    data: data.to_vec(),
                    queued: self.network.processes(),
                };
                self.queue.push(at, action);
            }
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            let action = Action::Timer {
                slot: slot as u32,
                timer,
            };
            self.queue.push(self.now + delay + after, action);
        }
        while let Some(note) = self.runtime.to_notify() {
            self.note(slot, note, declares);
        }
    }

    /// Whether `id`'s process is running. Ground truth is the process (the slot), not the
    /// identity: after a forced rejoin the old identity names the same running process, so
    /// its death is as false as the new one's would be.
    fn running(&self, id: Id) -> bool {
        self.members
            .get(id.slot as usize)
            .is_some_and(Option::is_some)
    }

    /// The crash of `id`'s process, if it crashed.
    fn crash_of(&mut self, id: Id) -> Option<&mut Crash> {
        self.crashes.iter_mut().find(|c| c.id.slot == id.slot)
    }

    fn note(&mut self, viewer: usize, note: OwnedNotification<Id>, declares: Option<Id>) {
        let now = self.now;
        match note {
            OwnedNotification::ProbeFailed(_, id) => {
                if self.running(id) {
                    self.false_suspicions += 1;
                } else if let Some(c) = self.crash_of(id) {
                    c.first_suspect.get_or_insert(now);
                }
            }
            OwnedNotification::MemberDown(id) => {
                if self.running(id) {
                    self.false_death_views += 1;
                    if declares == Some(id) {
                        self.false_deaths += 1;
                    }
                } else if let Some(c) = self.crash_of(id) {
                    c.dead_by.entry(viewer).or_insert(now);
                }
            }
            OwnedNotification::Rejoin(id) => {
                self.forced_rejoins += 1;
                self.ids[viewer] = id;
            }
            OwnedNotification::Defunct => self.defunct += 1,
            _ => {}
        }
    }

    fn crash(&mut self, slot: usize) {
        if self.members[slot].take().is_some() {
            self.crashes.push(Crash {
                id: self.ids[slot],
                at: self.now,
                first_suspect: None,
                dead_by: HashMap::new(),
            });
        }
    }
}

/// A 64-bit mix (splitmix64's finaliser): distinct seeds per member from one seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(rng: &mut Pcg64Mcg) -> f64 {
    use rand::RngExt;
    rng.random::<f64>()
}

/// Runs `scenario` with foca members and reports it as `swim-node simulate --json` does.
fn run(scenario: &Scenario) -> Value {
    let started = Instant::now();
    let n = scenario.sim.members;
    let config = Config::new_lan(NonZeroU32::new(n as u32).expect("at least 2 members"));
    let mut run = Run::new(scenario, &config);
    run.converge(config.probe_period, scenario.sim.seed);
    for (at, step) in scenario.steps() {
        run.run_until(run.epoch + at);
        match step {
            Step::Crash => {
                for v in scenario.crash_victims() {
                    run.crash(v);
                }
            }
            Step::Start(kind) => kind.apply(&mut run.network, true),
            Step::End(kind) => kind.apply(&mut run.network, false),
            _ => {}
        }
    }
    run.run_until(run.epoch + scenario.duration);
    report(scenario, &config, &run, started.elapsed())
}

fn report(scenario: &Scenario, config: &Config, run: &Run, wall: Duration) -> Value {
    let n = scenario.sim.members;
    let survivors = n - run.crashes.len();
    let secs = |at: Instant, c: &Crash| (at - c.at).as_secs_f64();
    let crashes: Vec<Value> = run
        .crashes
        .iter()
        .map(|c| {
            let mut dead: Vec<f64> = c.dead_by.values().map(|&t| secs(t, c)).collect();
            dead.sort_by(f64::total_cmp);
            let nth = |k: usize| (k >= 1 && dead.len() >= k).then(|| dead[k - 1]);
            json!({
                "slot": c.id.slot,
                "at_s": (c.at - run.epoch).as_secs_f64(),
                "first_suspect_s": c.first_suspect.map(|t| secs(t, c)),
                "first_dead_s": nth(1),
                "median_dead_s": nth(survivors.div_ceil(2)),
                "all_dead_s": nth(survivors),
            })
        })
        .collect();
    let stage = |name: &str, q: f64| {
        let times = crashes
            .iter()
            .map(|c| c[name].as_f64().unwrap_or(f64::INFINITY));
        percentile(times, q).filter(|t| t.is_finite())
    };
    let stats = run.network.stats();
    let per_member_s = |x: u64| x as f64 / n as f64 / scenario.duration.as_secs_f64();
    let mut v = json!({
        "protocol": "foca 2.0.0",
        "members": n,
        "loss": scenario.sim.loss,
        "seed": scenario.sim.seed,
        "crash": scenario.crash,
        "crash_at_s": scenario.crash_at.as_secs_f64(),
        "duration_s": scenario.duration.as_secs_f64(),
        "wall_s": wall.as_secs_f64(),
        "detect_first_suspect_s": stage("first_suspect_s", 0.5),
        "detect_first_dead_s": stage("first_dead_s", 0.5),
        "detect_all_dead_s": stage("all_dead_s", 0.5),
        "false_suspicions": run.false_suspicions,
        "false_deaths": run.false_deaths,
        "false_death_views": run.false_death_views,
        "forced_rejoins": run.forced_rejoins,
        "defunct": run.defunct,
        "refused": stats.refused,
        "bytes_per_member_per_s": per_member_s(stats.datagram_bytes),
        "wire_bytes_per_member_per_s": per_member_s(stats.wire_bytes),
        "msgs_per_member_per_s": per_member_s(stats.datagrams),
        "datagrams_lost": stats.lost,
        "oversized_datagrams": stats.oversized,
        "crashes": crashes,
    });
    for name in ["first_suspect", "first_dead", "median_dead", "all_dead"] {
        for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
            v[format!("detect_{name}_{label}_s")] = stage(&format!("{name}_s"), q).into();
        }
    }
    v["config"] = json!({
        "probe_period_s": config.probe_period.as_secs_f64(),
        "probe_rtt_s": config.probe_rtt.as_secs_f64(),
        "num_indirect_probes": config.num_indirect_probes.get(),
        "max_transmissions": config.max_transmissions.get(),
        "suspect_to_down_after_s": config.suspect_to_down_after.as_secs_f64(),
        "max_packet_size": config.max_packet_size.get(),
        "latency_s": scenario.sim.latency.as_secs_f64(),
        "jitter_s": scenario.sim.jitter.as_secs_f64(),
        "processing_s": scenario.sim.processing.as_secs_f64(),
        "faults": scenario.faults.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>(),
    });
    v
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.scenario() {
        Ok(scenario) => {
            println!("{}", run(&scenario));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("foca_sim: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(members: usize, loss: f64, seed: u64) -> Scenario {
        Args::parse_from([
            "foca_sim",
            "--members",
            &members.to_string(),
            "--loss",
            &loss.to_string(),
            "--seed",
            &seed.to_string(),
            "--crash",
            "2",
            "--duration",
            "40",
        ])
        .scenario()
        .expect("valid")
    }

    /// Every survivor declares each crashed member down between foca's suspicion timeout
    /// and a few probe periods after it, and at 0 % loss nobody is falsely suspected.
    #[test]
    fn every_survivor_detects_each_crash_and_nobody_else_is_suspected() {
        let s = scenario(16, 0.0, 3);
        let v = run(&s);
        let timeout = Config::new_lan(NonZeroU32::new(16).expect("16"))
            .suspect_to_down_after
            .as_secs_f64();
        let crashes = v["crashes"].as_array().expect("crashes");
        assert_eq!(crashes.len(), 2, "{v}");
        let victims: Vec<u64> = crashes
            .iter()
            .map(|c| c["slot"].as_u64().expect("slot"))
            .collect();
        let expected: Vec<u64> = s.crash_victims().iter().map(|&v| v as u64).collect();
        assert_eq!(victims, expected, "the victims swim's simulator crashes");
        for c in crashes {
            let all = c["all_dead_s"]
                .as_f64()
                .unwrap_or_else(|| panic!("not all: {v}"));
            assert!(
                (timeout..timeout + 4.0).contains(&all),
                "all dead after {all} s, suspicion timeout {timeout} s"
            );
        }
        assert_eq!(v["false_suspicions"], 0, "{v}");
        assert_eq!(v["false_death_views"], 0, "{v}");
    }

    /// Loss is the network's: datagrams are lost and counted, and the same seed replays.
    #[test]
    fn loss_is_counted_and_the_same_seed_replays_the_run() {
        let a = run(&scenario(12, 0.1, 5));
        let b = run(&scenario(12, 0.1, 5));
        assert!(a["datagrams_lost"].as_u64().expect("lost") > 0, "{a}");
        let strip = |mut v: Value| {
            v["wall_s"] = Value::Null;
            v
        };
        assert_eq!(strip(a), strip(b));
    }
}
