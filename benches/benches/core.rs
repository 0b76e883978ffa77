//! Criterion micro-benchmarks of swim-core through its public API: handling a datagram with
//! piggybacked updates, and simulator throughput. Figures: benches/README.md.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use swim_core::sim::{Sim, SimConfig};
use swim_core::{Config, Node};

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i))
}

/// A ping from `a` that carries as many queued alive updates as fit, and the node `b` that
/// will receive it: `a` has just learned of 30 members through their join push-pulls.
fn ping_with_updates() -> (Node, Vec<u8>) {
    let now = Instant::now();
    let mut a = Node::new(now, "a", addr(0), Config::default(), 1).unwrap();
    a.join(now, &[]);
    for i in 1..=30u16 {
        let name = format!("member-{i}");
        let mut m = Node::new(now, &name, addr(i), Config::default(), i as u64 + 1).unwrap();
        m.join(now, &[addr(0)]);
        m.handle_timeout(now);
        let t = m.poll_transmit().expect("join push-pull");
        a.handle_stream(now, addr(i), &name, &t.payload).unwrap();
    }
    while a.poll_transmit().is_some() {}
    let b = Node::new(now, "member-1", addr(1), Config::default(), 99).unwrap();
    let later = now + Duration::from_secs(2);
    a.handle_timeout(later);
    let ping = std::iter::from_fn(|| a.poll_transmit())
        .find(|t| !t.reliable)
        .expect("a probe or gossip datagram");
    (b, ping.payload)
}

fn bench_handle_packet(c: &mut Criterion) {
    let (mut b, payload) = ping_with_updates();
    let now = Instant::now();
    c.bench_function(
        &format!(
            "handle_packet ({} B with piggybacked updates)",
            payload.len()
        ),
        |bench| {
            bench.iter(|| {
                b.handle_packet(now, addr(0), "a", black_box(&payload))
                    .unwrap();
                while b.poll_transmit().is_some() {}
                while b.poll_event().is_some() {}
            })
        },
    );
}

fn bench_sim(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    group.bench_function("100 members, 60 s virtual", |bench| {
        bench.iter(|| {
            let mut sim = Sim::new(SimConfig {
                members: 100,
                seed: 1,
                ..SimConfig::default()
            });
            sim.run_for(Duration::from_secs(60));
            black_box(sim.net_stats())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_handle_packet, bench_sim);
criterion_main!(benches);
