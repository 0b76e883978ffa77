//! Helpers shared by swim-core's integration tests. Each test binary compiles this module
//! and uses part of it, hence `dead_code` is allowed here.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use swim_core::sim::Sim;
use swim_core::Node;

/// Cases per property: `default`, or `PROPTEST_CASES` from the environment for a longer soak.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A cheap, fixed bit mixer (splitmix64) to derive choices from a seed.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Runs the simulation in steps of `step` until `done` holds or `max` has passed. Returns
/// how long it took (checked before every step, so `Some(ZERO)` if it already held).
pub fn run_until(
    sim: &mut Sim,
    step: Duration,
    max: Duration,
    mut done: impl FnMut(&Sim) -> bool,
) -> Option<Duration> {
    let start = sim.elapsed();
    loop {
        if done(sim) {
            return Some(sim.elapsed() - start);
        }
        if sim.elapsed() - start >= max {
            return None;
        }
        sim.run_for(step);
    }
}

/// Moves every transmit of `from` addressed to `to_addr` into `to` (refusals ignored: the
/// receiver counts them), for tests that drive two or three nodes by hand.
pub fn deliver(
    from: &mut Node,
    from_addr: SocketAddr,
    to: &mut Node,
    to_addr: SocketAddr,
    now: Instant,
) {
    let name = from.name().to_string();
    while let Some(t) = from.poll_transmit() {
        if t.to != to_addr {
            continue;
        }
        let _ = if t.reliable {
            to.handle_stream(now, from_addr, &name, &t.payload)
        } else {
            to.handle_packet(now, from_addr, &name, &t.payload)
        };
    }
}
