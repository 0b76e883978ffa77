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
fn dead_members_stay_listed_past_the_tombstone_timeout_and_go_after_the_reconnect_timeout() {
    let mut config = Config::default();
    config.tombstone_timeout = Duration::from_secs(20);
    config.reconnect_timeout = Duration::from_secs(90);
    config.reconnect_interval = Duration::from_secs(5);
    let mut s = sim(8, 11, config);
    s.run_for(Duration::from_secs(2));
    s.crash(5);
    s.run_for(Duration::from_secs(40));
    assert!(s.all_running_agree_on_dead(5));
    // Three tombstone timeouts later, still listed as dead (and still tried: the
    // reconnect path dials it).
    s.run_for(Duration::from_secs(60));
    assert!(s.all_running_agree_on_dead(5));
    let reconnects: u64 = s
        .running()
        .map(|i| s.node(i).unwrap().stats().reconnects)
        .sum();
    // Seven survivors, one dead of seven: together about one attempt per 5 s interval.
    assert!((5..=60).contains(&reconnects), "{reconnects} reconnects");
    s.run_for(Duration::from_secs(60));
    for viewer in s.running().collect::<Vec<_>>() {
        assert!(
            s.view_of(viewer, 5).is_none(),
            "viewer {viewer} still holds the tombstone"
        );
    }
    let reaped = s
        .events()
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::MemberReaped { name, .. } if &**name == "node-5"))
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
fn two_live_processes_with_one_name_settle_the_first_holder_keeps_it() {
    let t0 = Instant::now();
    let a_addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let b_addr: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let c_addr: SocketAddr = "127.0.0.1:3".parse().unwrap();
    let mut a = Node::new(t0, "x", a_addr, Config::default(), 1).unwrap();
    let mut b = Node::new(t0, "x", b_addr, Config::default(), 2).unwrap();
    let mut c = Node::new(t0, "c", c_addr, Config::default(), 3).unwrap();
    c.join(t0, &[]);
    // Push-pull rounds through c, the only other member either "x" knows. What one "x"
    // sends the other directly (its record, each time it outbids the other) is kept aside.
    let direct = std::cell::RefCell::new(Vec::new());
    let exchange = |node: &mut Node, addr: SocketAddr, c: &mut Node, now: Instant| {
        node.handle_timeout(now);
        let name = node.name().to_string();
        while let Some(t) = node.poll_transmit() {
            if t.to == c_addr {
                let _ = if t.reliable {
                    c.handle_stream(now, addr, &name, &t.payload)
                } else {
                    c.handle_packet(now, addr, &name, &t.payload)
                };
            } else if [a_addr, b_addr].contains(&t.to) {
                direct
                    .borrow_mut()
                    .push((addr, t.to, t.reliable, t.payload.len()));
            }
        }
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
    let (mut a_events, mut b_events) = (Vec::new(), Vec::new());
    let mut now = t0;
    for _ in 0..8 {
        now += Duration::from_secs(31);
        exchange(&mut b, b_addr, &mut c, now);
        exchange(&mut a, a_addr, &mut c, now);
        a_events.extend(std::iter::from_fn(|| a.poll_event()));
        b_events.extend(std::iter::from_fn(|| b.poll_event()));
    }
    // Each outbid went straight to the other process, in one datagram that fits.
    let direct = direct.take();
    assert!(
        direct
            .iter()
            .any(|&(from, to, ..)| from == a_addr && to == b_addr),
        "a outbid b directly: {direct:?}"
    );
    assert!(
        direct
            .iter()
            .all(|&(_, _, reliable, len)| !reliable && len <= Config::default().max_datagram_size),
        "{direct:?}"
    );
    // Both saw the conflict; the newcomer b gave the name up to a, which held it first.
    assert_eq!(a.stats().name_conflicts, 1, "{:?}", a.stats());
    assert_eq!(b.stats().name_conflicts, 1, "{:?}", b.stats());
    assert_eq!(a.stats().names_yielded, 0);
    assert_eq!(b.stats().names_yielded, 1);
    let yielded: Vec<_> = b_events
        .iter()
        .filter_map(|e| match e {
            Event::NameYielded {
                my_addr,
                holder_addr,
                ..
            } => Some((*my_addr, *holder_addr)),
            _ => None,
        })
        .collect();
    assert_eq!(yielded, [(b_addr, a_addr)]);
    assert!(!a_events
        .iter()
        .any(|e| matches!(e, Event::NameYielded { .. })));
    // Settled: a's process is the one c knows, and nobody's incarnation climbs any more.
    let settled = (a.incarnation(), b.incarnation());
    for _ in 0..4 {
        now += Duration::from_secs(31);
        exchange(&mut b, b_addr, &mut c, now);
        exchange(&mut a, a_addr, &mut c, now);
    }
    assert_eq!((a.incarnation(), b.incarnation()), settled);
    let x = c.member("x").unwrap();
    assert_eq!((x.addr, x.boot_id), (a_addr, a.boot_id()));
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

#[test]
fn each_member_shows_the_false_positives_raised_about_it() {
    // Member 4 stops for 1.5 s every 6 s (a process that stalls): long enough for its probes
    // to fail and it to be suspected, short enough to refute before the suspicion times out.
    // (A member slowed all the time cannot answer any probe in time: it puts itself in
    // quarantine and is removed once, which is a false death, not a refuted suspicion.)
    let mut s = sim(12, 9, Config::default());
    s.run_for(Duration::from_secs(2));
    for _ in 0..10 {
        s.pause(4);
        s.run_for(Duration::from_millis(1500));
        s.resume(4);
        s.run_for(Duration::from_millis(4500));
    }
    let mut shown = 0;
    for viewer in s.running().filter(|&v| v != 4).collect::<Vec<_>>() {
        let refuted = s
            .events()
            .iter()
            .filter(|(_, v, e)| {
                *v == viewer
                    && matches!(e, Event::SuspicionRefuted { member, .. } if &*member.name == "node-4")
            })
            .count() as u32;
        let m = s.view_of(viewer, 4).unwrap();
        assert_eq!(m.false_suspicions, refuted, "viewer {viewer}");
        assert_eq!(m.false_deaths, 0);
        shown += m.false_suspicions;
    }
    assert!(shown > 0, "the slow member was never falsely suspected");
}

/// Runs `s` a second at a time until every other running member holds `i` dead, for at most
/// `limit`; whether they did.
fn until_all_hold_dead(s: &mut Sim, i: usize, limit: Duration) -> bool {
    let end = s.elapsed() + limit;
    while !s.all_running_agree_on_dead(i) {
        if s.elapsed() >= end {
            return false;
        }
        s.run_for(Duration::from_secs(1));
    }
    true
}

/// How `viewer` saw member `i` come back: the `after_false_death` of each `MemberUp` of it.
fn comebacks(s: &Sim, viewer: usize, i: usize) -> Vec<bool> {
    let name = s.name(i).to_string();
    s.events()
        .iter()
        .filter_map(|(_, v, e)| match e {
            Event::MemberUp {
                member,
                after_false_death,
            } if *v == viewer && *member.name == *name => Some(*after_false_death),
            _ => None,
        })
        .collect()
}

/// A process stopped past the suspicion timeout (SIGSTOP) and continued is the same process
/// (same boot id) declared dead: a false death, in the ground truth and in every view that
/// declared it — not a restart.
#[test]
fn a_member_paused_past_the_suspicion_timeout_counts_as_a_false_death_not_a_restart() {
    for seed in 1..=5 {
        let mut s = sim(12, seed, Config::default());
        s.run_for(Duration::from_secs(3));
        let boot_id = s.node(4).unwrap().boot_id();
        s.pause(4);
        assert!(
            until_all_hold_dead(&mut s, 4, Duration::from_secs(60)),
            "seed {seed}: the paused member was never declared dead by all"
        );
        s.resume(4);
        s.run_for(Duration::from_secs(30));
        let r = s.report();
        assert!(r.false_deaths >= 1, "seed {seed}: {r:?}");
        assert!(r.crashes.is_empty(), "seed {seed}: a pause is no crash");
        for viewer in s.running().filter(|&v| v != 4).collect::<Vec<_>>() {
            let m = s.view_of(viewer, 4).unwrap();
            assert_eq!(m.state, MemberState::Alive, "seed {seed}, viewer {viewer}");
            assert_eq!(m.boot_id, boot_id, "seed {seed}: the same process");
            assert!(m.false_deaths >= 1, "seed {seed}, viewer {viewer}: {m:?}");
            let back = comebacks(&s, viewer, 4);
            assert!(
                back.contains(&true) && !back.contains(&false),
                "seed {seed}, viewer {viewer}: came back as {back:?}"
            );
        }
    }
}

/// A crashed process replaced by a new one (a new boot id) is a restart: no false death in
/// the ground truth or in any view, and every view sees the new process come up.
#[test]
fn a_new_boot_id_counts_as_a_restart_not_a_false_death() {
    for seed in 1..=5 {
        let mut s = sim(12, seed, Config::default());
        s.run_for(Duration::from_secs(3));
        let old_boot = s.node(4).unwrap().boot_id();
        s.crash(4);
        assert!(
            until_all_hold_dead(&mut s, 4, Duration::from_secs(60)),
            "seed {seed}: the crash was never detected by all"
        );
        s.restart(4);
        let new_boot = s.node(4).unwrap().boot_id();
        assert_ne!(new_boot, old_boot);
        s.run_for(Duration::from_secs(30));
        let r = s.report();
        assert_eq!((r.false_deaths, r.false_death_views), (0, 0), "seed {seed}");
        for viewer in s.running().filter(|&v| v != 4).collect::<Vec<_>>() {
            let m = s.view_of(viewer, 4).unwrap();
            assert_eq!(m.state, MemberState::Alive, "seed {seed}, viewer {viewer}");
            assert_eq!(m.boot_id, new_boot, "seed {seed}, viewer {viewer}");
            assert_eq!(m.false_deaths, 0, "seed {seed}, viewer {viewer}: {m:?}");
            let back = comebacks(&s, viewer, 4);
            assert!(
                back.contains(&false) && !back.contains(&true),
                "seed {seed}, viewer {viewer}: came back as {back:?}"
            );
        }
    }
}

/// Hundreds of distinct members join a long-lived node, then crash or leave and are reaped:
/// the long-lived node's name table holds only the members of the moment, never the history.
#[test]
fn names_of_reaped_members_are_released_under_churn() {
    let t0 = Instant::now();
    let mut config = Config::default();
    config.tombstone_timeout = Duration::from_secs(5);
    config.reconnect_timeout = Duration::from_secs(5);
    let hub_addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    // The hub and four other long-lived members (they share the work of detecting crashes).
    let forever = t0 + Duration::from_secs(1 << 20);
    let mut nodes: Vec<(SocketAddr, Node, Instant)> = (0..5u8)
        .map(|i| {
            let addr = SocketAddr::from(([127, 0, 0, 1], 1 + i as u16));
            let name = if i == 0 {
                "hub".to_string()
            } else {
                format!("stable-{i}")
            };
            let mut n = Node::new(t0, &name, addr, config.clone(), i as u64 + 1).unwrap();
            n.join(t0, &[hub_addr]);
            (addr, n, forever)
        })
        .collect();
    const LONG_LIVED: usize = 5;
    let (step, lifetime, churners) = (Duration::from_millis(100), Duration::from_secs(4), 400);
    let mut now = t0;
    let mut started = 0u32;
    let mut most_held = 0;
    let mut tick = 0u64;
    let mut reaped = 0;
    // Until every churner is gone and reaped, with ten virtual minutes to spare.
    let end = t0 + step * 5 * churners + Duration::from_secs(600);
    while (started < churners || nodes.len() > LONG_LIVED || nodes[0].1.names_held() > LONG_LIVED)
        && now < end
    {
        // A new member every half second, each under a name never used before.
        if tick % 5 == 0 && started < churners {
            started += 1;
            let addr = SocketAddr::from(([127, 0, (started >> 8) as u8, started as u8], 9));
            let mut n = Node::new(
                now,
                &format!("churn-{started}"),
                addr,
                config.clone(),
                100 + started as u64,
            )
            .unwrap();
            n.join(now, &[hub_addr]);
            nodes.push((addr, n, now + lifetime));
        }
        // Members whose time is up: one in four crashes, the others leave and are gone once
        // their leave has spread (or after five seconds).
        let mut i = LONG_LIVED;
        while i < nodes.len() {
            let (_, n, until) = &mut nodes[i];
            if *until <= now {
                if n.has_left() || i % 4 == 0 {
                    nodes.swap_remove(i);
                    continue;
                }
                n.leave(now);
                *until = now + Duration::from_secs(5);
            } else if n.has_left() && n.leave_spread() {
                *until = now;
            }
            i += 1;
        }
        for (_, n, _) in nodes.iter_mut() {
            n.handle_timeout(now);
        }
        let mut sent = Vec::new();
        for (addr, n, _) in nodes.iter_mut() {
            let name = n.name().to_string();
            sent.extend(std::iter::from_fn(|| n.poll_transmit()).map(|t| (*addr, name.clone(), t)));
            let hub = name == "hub";
            while let Some(e) = n.poll_event() {
                reaped += (hub && matches!(e, Event::MemberReaped { .. })) as u32;
            }
        }
        for (from, name, t) in sent {
            if let Some((_, to, _)) = nodes.iter_mut().find(|(a, _, _)| *a == t.to) {
                let r = if t.reliable {
                    to.handle_stream(now, from, &name, &t.payload)
                } else {
                    to.handle_packet(now, from, &name, &t.payload)
                };
                assert!(r.is_ok(), "{name} -> {}: {r:?}", to.name());
            }
        }
        most_held = most_held.max(nodes[0].1.names_held());
        now += step;
        tick += 1;
    }
    let hub = &nodes[0].1;
    let stats = hub.stats();
    assert!(
        stats.deaths >= churners as u64 / 5 && reaped >= churners,
        "the churn ran: {reaped} reaped, {stats:?}"
    );
    // About eight live at a time, plus the dead and left still within their tombstone time.
    assert!(most_held <= 40, "at most {most_held} names held at once");
    assert_eq!(hub.names_held(), hub.members().len());
    assert_eq!(
        hub.names_held(),
        LONG_LIVED,
        "all reaped: {:?}",
        hub.members()
    );
}

/// A member nobody hears (its sends all lost) refutes the first accusation, unheard; every
/// later one reaches it as stale news (below the incarnation it refuted at). Those still
/// tell it that it cannot hear: it puts itself in quarantine and takes back the deaths it
/// declared of members it could not reach, instead of holding all of them dead and spreading
/// that once it is heard again.
#[test]
fn a_mute_member_quarantines_itself_on_stale_accusations_and_accuses_no_one() {
    for seed in 1..=5 {
        let mut s = sim(9, seed, Config::default());
        s.run_for(Duration::from_secs(3));
        let mute = 7;
        s.set_egress_loss(mute, 1.0);
        s.run_for(Duration::from_secs(60));
        let stats = s.node(mute).unwrap().stats();
        assert!(stats.quarantines >= 1, "seed {seed}: {stats:?}");
        let dead: Vec<usize> = (0..9)
            .filter(|&j| j != mute)
            .filter(|&j| {
                s.view_of(mute, j)
                    .is_some_and(|m| m.state == MemberState::Dead)
            })
            .collect();
        assert!(
            dead.is_empty(),
            "seed {seed}: the mute member holds {dead:?} dead"
        );
        assert!(s.all_running_agree_on_dead(mute), "seed {seed}");
    }
}
