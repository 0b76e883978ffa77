//! Behaviour of the features around the failure detector: user broadcasts, metadata,
//! tombstone reaping, the datagram size bound, name conflicts, join retries.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::deliver;
use swim_core::sim::{Sim, SimConfig};
use swim_core::{Config, Event, MemberState, MessageKind, Node};

mod support;

fn sim(members: usize, seed: u64, node: Config) -> Sim {
    Sim::new(SimConfig {
        members,
        seed,
        node,
        record_events: true,
        ..SimConfig::default()
    })
}

#[test]
fn a_user_broadcast_reaches_every_member_exactly_once() {
    let mut s = sim(12, 7, Config::default());
    s.run_for(Duration::from_secs(2));
    s.node_mut(0).unwrap().broadcast(b"hello").unwrap();
    s.run_for(Duration::from_secs(10));
    for viewer in 1..12 {
        let got = s
            .events()
            .iter()
            .filter(|(_, v, e)| {
                *v == viewer
                    && matches!(e, Event::UserBroadcast { origin, payload }
                        if &**origin == "node-0" && payload == b"hello")
            })
            .count();
        assert_eq!(got, 1, "node {viewer} received the broadcast {got} times");
    }
    assert!(!s
        .events()
        .iter()
        .any(|(_, v, e)| *v == 0 && matches!(e, Event::UserBroadcast { .. })));
}

#[test]
fn metadata_spreads_with_a_higher_incarnation() {
    let mut s = sim(10, 3, Config::default());
    s.run_for(Duration::from_secs(1));
    let now = s.now();
    s.node_mut(4).unwrap().set_metadata(now, b"zone=b").unwrap();
    s.run_for(Duration::from_secs(10));
    for viewer in s.running().collect::<Vec<_>>() {
        let m = s.view_of(viewer, 4).unwrap();
        assert_eq!(
            m.metadata.as_deref(),
            Some(&b"zone=b"[..]),
            "viewer {viewer}"
        );
        assert_eq!(m.incarnation, 1);
        assert_eq!(m.state, MemberState::Alive);
    }
}

#[test]
fn oversized_metadata_and_broadcasts_are_refused_without_change() {
    let now = Instant::now();
    let mut n = Node::new(
        now,
        "a",
        "127.0.0.1:1".parse().unwrap(),
        Config::default(),
        1,
    )
    .unwrap();
    assert!(n.set_metadata(now, &[0; 513]).is_err());
    assert!(n.broadcast(&[0; 513]).is_err());
    assert_eq!(n.incarnation(), 0);
    assert_eq!(n.pending_broadcasts(), 0);
}

#[test]
fn dead_members_are_reaped_after_the_tombstone_timeout() {
    let mut config = Config::default();
    config.tombstone_timeout = Duration::from_secs(20);
    let mut s = sim(8, 11, config);
    s.run_for(Duration::from_secs(2));
    s.crash(5);
    s.run_for(Duration::from_secs(40));
    assert!(s.all_running_agree_on_dead(5));
    s.run_for(Duration::from_secs(25));
    for viewer in s.running().collect::<Vec<_>>() {
        assert!(
            s.view_of(viewer, 5).is_none(),
            "viewer {viewer} still holds the tombstone"
        );
    }
    let reaped = s
        .events()
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::MemberReaped { name } if &**name == "node-5"))
        .count();
    assert_eq!(reaped, 7);
}

#[test]
fn datagrams_never_exceed_the_configured_size() {
    let mut config = Config::default();
    config.max_datagram_size = 600;
    config.max_metadata_size = 200;
    config.max_broadcast_size = 300;
    let mut s = sim(40, 5, config);
    for i in 0..40 {
        let now = s.now();
        let node = s.node_mut(i).unwrap();
        node.set_metadata(now, &[i as u8; 200]).unwrap();
        node.broadcast(&[i as u8; 300]).unwrap();
    }
    s.run_for(Duration::from_secs(30));
    let net = s.net_stats();
    assert!(net.datagrams > 1000, "there was traffic: {net:?}");
    assert_eq!(net.oversized, 0);
    for viewer in 0..40 {
        let m = s.view_of(viewer, (viewer + 1) % 40).unwrap();
        assert_eq!(
            m.metadata.map(|m| m.len()),
            Some(200),
            "metadata reached {viewer}"
        );
    }
}

#[test]
fn two_live_processes_with_one_name_are_reported_as_a_conflict() {
    let t0 = Instant::now();
    let a_addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let b_addr: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let c_addr: SocketAddr = "127.0.0.1:3".parse().unwrap();
    let mut a = Node::new(t0, "x", a_addr, Config::default(), 1).unwrap();
    let mut b = Node::new(t0, "x", b_addr, Config::default(), 2).unwrap();
    let mut c = Node::new(t0, "c", c_addr, Config::default(), 3).unwrap();
    c.join(t0, &[]);
    // Push-pull rounds through c, the only other member either "x" knows.
    let exchange = |node: &mut Node, addr: SocketAddr, c: &mut Node, now: Instant| {
        node.handle_timeout(now);
        deliver(node, addr, c, c_addr, now);
        deliver(c, c_addr, node, addr, now);
    };
    a.join(t0, &[c_addr]);
    exchange(&mut a, a_addr, &mut c, t0);
    b.join(t0, &[c_addr]);
    exchange(&mut b, b_addr, &mut c, t0);
    assert_eq!(
        b.incarnation(),
        1,
        "b took a's record for a previous instance and refuted"
    );
    let conflict = |n: &mut Node| {
        std::iter::from_fn(|| n.poll_event()).any(|e| matches!(e, Event::NameConflict { .. }))
    };
    let mut now = t0;
    let mut seen = false;
    for _ in 0..6 {
        now += Duration::from_secs(31);
        exchange(&mut b, b_addr, &mut c, now);
        exchange(&mut a, a_addr, &mut c, now);
        seen |= conflict(&mut a) | conflict(&mut b);
    }
    assert!(seen, "a: {:?}, b: {:?}", a.stats(), b.stats());
    assert!(a.stats().name_conflicts + b.stats().name_conflicts >= 1);
}

#[test]
fn a_join_retries_with_backoff_until_a_seed_answers() {
    let t0 = Instant::now();
    let seed: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut n = Node::new(
        t0,
        "a",
        "127.0.0.1:1".parse().unwrap(),
        Config::default(),
        1,
    )
    .unwrap();
    n.join(t0, &[seed]);
    let mut attempts = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(40) {
        n.handle_timeout(now);
        while let Some(t) = n.poll_transmit() {
            if t.to == seed && t.reliable {
                attempts.push((now - t0).as_secs());
            }
        }
        now = n
            .poll_timeout()
            .unwrap()
            .max(now + Duration::from_millis(1));
    }
    assert_eq!(
        attempts,
        vec![0, 1, 3, 7, 15, 31],
        "exponential backoff capped at 30 s"
    );
    assert!(!n.is_joined());
}

/// Full push-pulls sent by every member so far.
fn full_push_pulls(s: &Sim) -> u64 {
    s.running()
        .map(|i| {
            s.node(i)
                .unwrap()
                .stats()
                .sent(MessageKind::PushPull)
                .messages
        })
        .sum()
}

#[test]
fn equal_tables_exchange_only_a_fingerprint() {
    let mut s = sim(10, 5, Config::default());
    s.run_for(Duration::from_secs(20));
    assert!(s.converged());
    let after_join = full_push_pulls(&s);
    s.run_for(Duration::from_secs(300));
    assert_eq!(
        full_push_pulls(&s),
        after_join,
        "a stable cluster sent full state although every table was the same"
    );
    let digests: u64 = s
        .running()
        .map(|i| s.node(i).unwrap().stats().digests_sent)
        .sum();
    // 10 members, one exchange per 30 s each, over 300 s.
    assert!(digests >= 90, "only {digests} fingerprints sent");

    let mut full_state = Config::default();
    full_state.push_pull_digest = false;
    let mut plain = sim(10, 5, full_state);
    plain.run_for(Duration::from_secs(20));
    let after_join = full_push_pulls(&plain);
    plain.run_for(Duration::from_secs(300));
    assert!(full_push_pulls(&plain) >= after_join + 90);
}
