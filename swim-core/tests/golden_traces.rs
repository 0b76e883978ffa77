//! Golden traces: named simulator scenarios whose whole run (every event of every node, every
//! message sent) is pinned by [`Sim::trace_hash`]. Together they exercise every protocol
//! feature — probes and indirect probes, suspicion and its confirmations, Lifeguard on and
//! off, refutation, death, reaping, leave, restart, join, partitions, slow members, loss,
//! metadata, user broadcasts, push-pull with and without fingerprints.
//!
//! A change that alters any of these runs fails here, loudly. That is the point when a change
//! must not alter behaviour (a refactor, a speed-up): the hashes prove it did not. When a
//! change is meant to alter behaviour, check that each scenario still does what its name says
//! (and that the `regression_*` tests in `sim_properties.rs` still replay their bugs), then
//! update the hashes printed by the failure.
//!
//! What they cannot see: the simulator shares one name table among all its nodes, so how a
//! real node numbers the names it hears (which decides the id space its probe order and
//! sampling range over) is not exercised here.

use std::time::Duration;

use swim_core::sim::{Sim, SimConfig};
use swim_core::Config;

/// The node configuration the traces were recorded with: the defaults of the time, pinned to
/// the α they were recorded with (`suspicion_mult` 4; the default is now 2), so that a change
/// of default does not change what these scenarios run.
fn recorded() -> Config {
    let mut config = Config::default();
    config.suspicion_mult = 4;
    config
}

fn sim(members: usize, seed: u64, loss: f64, node: Config) -> Sim {
    Sim::new(SimConfig {
        members,
        seed,
        loss,
        node,
        ..SimConfig::default()
    })
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Loss, a crash, a leave, a restart (the determinism property's scenario, seed 1).
fn crash_leave_restart() -> Sim {
    let mut s = sim(12, 1, 0.03, recorded());
    s.run_for(secs(3));
    s.crash(1);
    s.run_for(secs(4));
    s.leave(2);
    s.run_for(secs(40));
    s.restart(1);
    s.run_for(secs(20));
    assert!(s.converged());
    s
}

/// A split long enough for each side to declare the other dead, healed before the short
/// reconnect timeout forgets them; then a crash, forgotten after the reconnect timeout.
fn partition_heal_and_reap() -> Sim {
    let mut config = recorded();
    config.tombstone_timeout = secs(60);
    config.reconnect_timeout = secs(60);
    let mut s = sim(12, 2, 0.0, config);
    s.run_for(secs(3));
    for i in 6..12 {
        s.set_group(i, 1);
    }
    s.run_for(secs(45));
    s.heal();
    s.run_for(secs(60));
    s.crash(4);
    s.run_for(secs(90));
    let r = s.report();
    assert!(
        r.false_deaths > 0,
        "each side declared the other dead: {r:?}"
    );
    assert!(s.converged(), "the halves merged again");
    assert!(
        s.running().all(|v| s.view_of(v, 4).is_none()),
        "the crashed member was reaped"
    );
    s
}

/// A member with 1.5 s of inbound delay, with Lifeguard on and then off.
fn slow_member(lifeguard: bool) -> Sim {
    let mut config = recorded();
    config.lifeguard = lifeguard;
    let mut s = sim(16, 3, 0.0, config);
    s.run_for(secs(2));
    s.set_slow(5, Some(Duration::from_millis(1500)));
    s.run_for(secs(60));
    s.set_slow(5, None);
    s.run_for(secs(20));
    assert!(
        s.report().false_suspicions > 0,
        "the slow member was suspected"
    );
    s
}

/// Members joining through member 0, changing metadata and broadcasting in small datagrams.
fn join_metadata_and_broadcasts() -> Sim {
    let mut config = recorded();
    config.max_datagram_size = 600;
    config.max_metadata_size = 200;
    config.max_broadcast_size = 300;
    let mut s = Sim::new(SimConfig {
        members: 20,
        seed: 4,
        node: config,
        converged_start: false,
        ..SimConfig::default()
    });
    s.run_for(secs(10));
    for i in 0..20 {
        let now = s.now();
        let node = s.node_mut(i).expect("running");
        node.set_metadata(now, &[i as u8; 150]).expect("fits");
        node.broadcast(&[i as u8; 250]).expect("fits");
    }
    s.run_for(secs(40));
    assert!(s.converged());
    assert_eq!(s.net_stats().oversized, 0);
    s
}

/// Heavy loss with full-state push-pull and no reliable fallback ping: false suspicions,
/// refutations and confirmations.
fn heavy_loss_plain_swim_transport() -> Sim {
    let mut config = recorded();
    config.push_pull_digest = false;
    config.reliable_fallback_ping = false;
    let mut s = sim(24, 5, 0.15, config);
    s.run_for(secs(30));
    s.crash(7);
    s.run_for(secs(60));
    let r = s.report();
    assert!(r.false_suspicions > 0, "loss raised suspicions: {r:?}");
    assert!(
        r.detect_all_dead_s.is_some(),
        "the crash was detected: {r:?}"
    );
    s
}

/// A larger converged cluster with two crashes under light loss.
fn two_hundred_members() -> Sim {
    let mut s = sim(200, 6, 0.01, recorded());
    s.run_for(secs(5));
    s.crash(17);
    s.crash(150);
    s.run_for(secs(60));
    assert!(s.report().detect_all_dead_s.is_some());
    s
}

/// A scenario's name, how to run it, and the trace hash it is pinned to.
type Pinned = (&'static str, fn() -> Sim, u64);

#[test]
fn every_named_scenario_replays_its_pinned_trace() {
    let scenarios: [Pinned; 7] = [
        (
            "crash_leave_restart",
            crash_leave_restart,
            0xe188_2020_625d_9de3,
        ),
        (
            "partition_heal_and_reap",
            partition_heal_and_reap,
            0x0260_f17c_8450_e4e6,
        ),
        (
            "slow_member_lifeguard",
            || slow_member(true),
            0x8f44_95e2_a49c_0c9f,
        ),
        (
            "slow_member_classic",
            || slow_member(false),
            0xb5f3_7d6c_3386_b9fb,
        ),
        (
            "join_metadata_and_broadcasts",
            join_metadata_and_broadcasts,
            0x54a4_f15e_99b3_3c56,
        ),
        (
            "heavy_loss_plain_swim_transport",
            heavy_loss_plain_swim_transport,
            0xad07_62b8_1e7a_4146,
        ),
        (
            "two_hundred_members",
            two_hundred_members,
            0x238b_ea44_98ef_ff09,
        ),
    ];
    let mut wrong = Vec::new();
    for (name, run, pinned) in scenarios {
        let sim = run();
        assert_eq!(
            sim.net_stats().refused,
            0,
            "{name}: a member refused valid traffic"
        );
        let got = sim.trace_hash();
        if got != pinned {
            wrong.push(format!("{name}: pinned {pinned:#018x}, got {got:#018x}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "these scenarios no longer replay their pinned traces (see the module doc):\n{}",
        wrong.join("\n")
    );
}
