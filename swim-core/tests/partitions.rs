//! Property tests of faults that outlast the timeouts, in the deterministic simulator:
//! symmetric partitions longer than the tombstone timeout (healed by contacting members held
//! dead) and longer than the reconnect timeout (healed through the seeds), and one-way
//! partitions of one member in each direction, and a flaky member. A failure prints the seed that replays it:
//!
//! ```text
//! cargo test --release -p swim-core --all-features --test partitions
//! ```

use std::time::Duration;

use proptest::prelude::*;
use support::{cases, run_until};
use swim_core::sim::{Sim, SimConfig};
use swim_core::{Config, Event, MemberState};

mod support;

/// Short timeouts so a case simulates minutes, not days: left members forgotten after
/// 20 s, dead ones kept and contacted every 5 s for 60 s.
fn config() -> Config {
    let mut c = Config::default();
    c.tombstone_timeout = Duration::from_secs(20);
    c.reconnect_timeout = Duration::from_secs(60);
    c.reconnect_interval = Duration::from_secs(5);
    c
}

/// After a heal, every running member holds every other alive within this: a reconnect
/// tick comes at most 1.5 intervals apart; the merge then spreads by gossip, and a member
/// that gossip missed (a member one side had forgotten is news to the other, spread a few
/// times only) learns it at its next push-pull.
fn merge_bound(c: &Config) -> Duration {
    c.reconnect_interval * 2 + c.push_pull_interval
}

/// ... and every view holds the same records (incarnations included) within a push-pull
/// interval more: a refutation gossiped while a side still held its member dead may not
/// reach every view, and the periodic push-pull repairs what gossip missed.
fn converge_bound(c: &Config) -> Duration {
    merge_bound(c) + c.push_pull_interval
}

/// After the fault ends: merged within `merge_bound`, converged within `converge_bound`.
/// Returns how long the merge took.
fn check_heals(sim: &mut Sim, what: &str) -> Result<Duration, TestCaseError> {
    let c = config();
    let step = Duration::from_millis(250);
    let merged = run_until(sim, step, merge_bound(&c), Sim::all_alive);
    prop_assert!(
        merged.is_some(),
        "not merged {:?} after {}",
        merge_bound(&c),
        what
    );
    let rest = converge_bound(&c) - merge_bound(&c);
    let converged = run_until(sim, step, rest, Sim::converged);
    prop_assert!(
        converged.is_some(),
        "not converged {:?} after {}",
        converge_bound(&c),
        what
    );
    Ok(merged.unwrap())
}

// A flaky member (80 % ingress loss for 5 minutes, 8–32 members, default timings), over
// 1 000 seeds: removed once by every observer in 994, twice in 6 (declared dead before it
// had heard enough to know it could not hear, it refuted once); suspected at most 4 times per
// observer at the median, 18 at p99, 32 at most (the ones it refuted before its quarantine);
// back in every view 16 s after the fault at the median, 34 s p99, 51 s at most. No healthy
// member declared dead. The bounds below leave room over those figures.

/// Most suspicions of a flaky member any one healthy observer may see.
const MAX_FLAKY_SUSPICIONS: u32 = 48;
/// Most deaths of a flaky member any one healthy observer may declare or take.
const MAX_FLAKY_DEATHS: u32 = 2;
/// A member flaky no more is back in every view within this.
const FLAKY_BACK_WITHIN: Duration = Duration::from_secs(90);

fn sim(seed: u64, n: usize) -> Sim {
    Sim::new(SimConfig {
        members: n,
        seed,
        node: config(),
        record_events: true,
        ..SimConfig::default()
    })
}

/// Whether no member of one side holds a member of the other alive (`forgotten`: holds
/// it at all).
fn sides_apart(sim: &Sim, n: usize, k: usize, forgotten: bool) -> bool {
    (0..n).all(|a| {
        (0..n).all(|b| {
            (a < k) == (b < k)
                || match sim.view_of(a, b) {
                    None => true,
                    Some(m) => !forgotten && m.state != MemberState::Alive,
                }
        })
    })
}

/// Members `0..k` | `k..n` (the three seeds, members 0–2, all on the first side) until
/// each side holds the other failed, then `length` more; then healed, and every member must
/// merge and converge within the bounds.
fn check_long_partition_heals(
    seed: u64,
    n: usize,
    split: u64,
    length: Duration,
) -> Result<Duration, TestCaseError> {
    let lo = n.div_ceil(3).max(3);
    let k = lo + (split as usize) % (n - 2 * lo + 1);
    let c = config();
    let mut sim = sim(seed, n);
    sim.run_for(Duration::from_secs(3));
    for i in k..n {
        sim.set_group(i, 1);
    }
    // First each side must see the other fail; the partition then lasts `length` more.
    let failed = run_until(
        &mut sim,
        Duration::from_secs(1),
        Duration::from_secs(180),
        |s| sides_apart(s, n, k, false),
    );
    prop_assert!(
        failed.is_some(),
        "the sides ({} | {}) did not see each other fail within 180 s",
        k,
        n - k
    );
    sim.run_for(length);
    if length > c.reconnect_timeout {
        prop_assert!(
            sides_apart(&sim, n, k, true),
            "{:?} into a {} | {} split, the sides have not forgotten each other",
            length,
            k,
            n - k
        );
    }
    sim.heal();
    check_heals(
        &mut sim,
        &format!("healing a {} | {} split of {:?}", k, n - k, length),
    )
}

/// Member `victim` hears nothing (`deaf`) or is heard by nobody, for `length`. No member
/// other than the victim may declare another healthy member dead; at the end of the fault
/// every other member holds the victim dead (consistently); after the heal everyone
/// converges within the bound.
fn check_one_way(
    seed: u64,
    n: usize,
    victim: usize,
    deaf: bool,
    length: Duration,
) -> Result<Duration, TestCaseError> {
    let mut sim = sim(seed, n);
    sim.run_for(Duration::from_secs(3));
    if deaf {
        sim.set_ingress_loss(victim, 1.0);
    } else {
        sim.set_egress_loss(victim, 1.0);
    }
    sim.run_for(length);
    prop_assert!(
        sim.all_running_agree_on_dead(victim),
        "after {:?} of a one-way partition (deaf: {}), not every member holds {} dead",
        length,
        deaf,
        victim
    );
    sim.heal();
    let healed = check_heals(
        &mut sim,
        &format!("a one-way partition of {victim} (deaf: {deaf}) ended"),
    );
    let victim_name = sim.name(victim).to_string();
    let false_deaths: Vec<String> = sim
        .events()
        .iter()
        .filter(|(_, viewer, _)| *viewer != victim)
        .filter_map(|(at, viewer, e)| match e {
            Event::MemberDown { member, .. } if *member.name != *victim_name => {
                Some(format!("{viewer} declared {} dead at {at:?}", member.name))
            }
            _ => None,
        })
        .collect();
    prop_assert!(
        false_deaths.is_empty(),
        "healthy members declared dead: {:?}",
        false_deaths
    );
    healed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), .. ProptestConfig::default() })]

    /// A split three times the tombstone timeout (each side keeps the other as dead and
    /// keeps contacting it) merges once healed.
    #[test]
    fn a_partition_three_times_the_tombstone_timeout_heals(
        seed in any::<u64>(),
        n in 9usize..=16,
        split in any::<u64>(),
    ) {
        check_long_partition_heals(seed, n, split, config().tombstone_timeout * 3)?;
    }

    /// A split so long that each side forgot the other (past the reconnect timeout) merges
    /// through the seeds once healed.
    #[test]
    fn a_partition_past_the_reconnect_timeout_heals_through_the_seeds(
        seed in any::<u64>(),
        n in 9usize..=16,
        split in any::<u64>(),
    ) {
        check_long_partition_heals(seed, n, split, config().reconnect_timeout * 3)?;
    }

    /// One member that hears nothing, or that nobody hears, for three tombstone timeouts:
    /// removed consistently, no healthy member declared dead, merged after.
    #[test]
    fn a_one_way_partition_removes_only_its_member_and_heals(
        seed in any::<u64>(),
        n in 6usize..=12,
        victim in any::<usize>(),
        deaf in any::<bool>(),
    ) {
        check_one_way(seed, n, victim % n, deaf, config().tombstone_timeout * 3)?;
    }
}

/// What each healthy observer saw of `victim` while it was flaky: (suspicions, deaths,
/// returns to alive), and the healthy members any of them declared dead.
fn flaky_record(sim: &Sim, victim: usize, until: Duration) -> (Vec<(u32, u32, u32)>, Vec<String>) {
    let victim_name = sim.name(victim).to_string();
    let mut per_observer = vec![(0u32, 0u32, 0u32); sim.len()];
    let mut healthy_dead = Vec::new();
    for (at, viewer, e) in sim.events() {
        if *viewer == victim || *at > until {
            continue;
        }
        let seen = &mut per_observer[*viewer];
        match e {
            Event::MemberSuspect { member, .. } if *member.name == *victim_name => seen.0 += 1,
            Event::MemberDown { member, .. } if *member.name == *victim_name => seen.1 += 1,
            Event::MemberDown { member, .. } => {
                healthy_dead.push(format!("{viewer} declared {} dead at {at:?}", member.name))
            }
            Event::SuspicionRefuted { member, .. } | Event::MemberUp { member, .. }
                if *member.name == *victim_name =>
            {
                seen.2 += 1
            }
            _ => {}
        }
    }
    per_observer.remove(victim);
    (per_observer, healthy_dead)
}

/// Member `victim` loses `loss` of what it receives for `length` (the Rapid paper's flaky
/// member). It is removed at most once by each healthy observer (it puts itself in
/// quarantine when accused and unable to hear, `quarantine.rs`), no healthy member is
/// declared dead, and it is back in every view soon after the fault ends. Returns the most
/// suspicions of the victim any observer raised or took, and how long it took to come back.
fn check_flaky(
    seed: u64,
    n: usize,
    victim: usize,
    loss: f64,
    length: Duration,
) -> Result<(u32, Duration, u32), TestCaseError> {
    let mut sim = Sim::new(SimConfig {
        members: n,
        seed,
        node: Config::default(),
        record_events: true,
        ..SimConfig::default()
    });
    sim.run_for(Duration::from_secs(10));
    sim.set_ingress_loss(victim, loss);
    sim.run_for(length);
    let (per_observer, healthy_dead) = flaky_record(&sim, victim, sim.elapsed());
    prop_assert!(
        healthy_dead.is_empty(),
        "healthy members declared dead: {:?}",
        healthy_dead
    );
    let most_deaths = per_observer.iter().map(|p| p.1).max().unwrap_or(0);
    prop_assert!(
        most_deaths <= MAX_FLAKY_DEATHS,
        "an observer declared the flaky member dead {} times: {:?}",
        most_deaths,
        per_observer
    );
    let most_suspicions = per_observer.iter().map(|p| p.0).max().unwrap_or(0);
    prop_assert!(
        most_suspicions <= MAX_FLAKY_SUSPICIONS,
        "an observer suspected the flaky member {} times (bound {}): {:?}",
        most_suspicions,
        MAX_FLAKY_SUSPICIONS,
        per_observer
    );
    sim.heal();
    let back = support::run_until(
        &mut sim,
        Duration::from_millis(250),
        FLAKY_BACK_WITHIN,
        Sim::all_alive,
    );
    prop_assert!(
        back.is_some(),
        "the flaky member not back in every view {:?} after the fault",
        FLAKY_BACK_WITHIN
    );
    Ok((most_suspicions, back.unwrap(), most_deaths))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), .. ProptestConfig::default() })]

    /// A member losing 80 % of what it receives for 5 minutes is removed (about) once, not
    /// flapped; no healthy member is declared dead; it is back soon after.
    #[test]
    fn a_flaky_member_is_removed_once_not_flapped_and_comes_back(
        seed in any::<u64>(),
        n in 8usize..=32,
        victim in any::<usize>(),
    ) {
        check_flaky(seed, n, victim % n, 0.8, Duration::from_secs(300))?;
    }
}

/// A deaf member accuses everyone; one healthy member took its suspicion of node-4, relayed
/// by two others, and gossip never brought it node-4's refutation (each of ten members
/// sent it eight times, none to this one) until its 12 s suspicion ran out. The members it
/// relays the stale suspicion to now answer it with node-4's record directly.
#[test]
fn a_stale_suspicion_is_answered_by_the_first_member_it_reaches() {
    let (seed, n) = (16_699_884_986_194_404_197, 11);
    let victim = 934_479_417_686_925_913 % n;
    check_one_way(seed, n, victim, true, config().tombstone_timeout * 3).unwrap();
}

/// A deaf member's suspicion of node-2 reached every member within 3 ms, and each sent it on
/// at once (four times each at ten members); node-2's refutation, gossiped after, missed one
/// member for the whole 12 s of its suspicion. A suspicion taken from a peer and still open
/// at the minimum timeout now asks the suspect directly, which answers with its refutation.
#[test]
fn a_member_that_takes_a_suspicion_hears_the_refutation_from_the_suspect() {
    let (seed, n) = (4_317_899_523_739_234_356, 10);
    let victim = 7_506_623_412_853_266_499 % n;
    check_one_way(seed, n, victim, true, config().tombstone_timeout * 3).unwrap();
}
