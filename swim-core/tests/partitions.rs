//! Property tests of faults that outlast the timeouts, in the deterministic simulator:
//! symmetric partitions longer than the tombstone timeout (healed by contacting members held
//! dead) and longer than the reconnect timeout (healed through the seeds), and one-way
//! partitions of one member in each direction. A failure prints the seed that replays it:
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
