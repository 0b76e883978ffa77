//! Which path answered a probe, counted in `Stats`: the direct ack in time (healthy), or,
//! once the direct probe timeout passed, the target's late ack, a helper's relayed ack, or
//! the target's ack to the fallback ping on the reliable channel (degraded); none (failed).
//! And memberlist's `degraded.probe`: a probe started while local health is above 0. Three
//! nodes driven by hand: a message is delivered only when the test says so.

use std::net::SocketAddr;
use std::time::Instant;

use swim_core::{Config, Framing, MemberState, MessageKind, Node, Stats, Transmit};

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16))
}

fn index_of(a: SocketAddr) -> usize {
    usize::from(a.port() - 7000)
}

fn kind(t: &Transmit) -> Option<MessageKind> {
    MessageKind::of_packet(Framing::VersionByte, &t.payload)
}

/// Three members that know each other; only node 0's timers run.
struct Trio {
    nodes: Vec<Node>,
    now: Instant,
}

impl Trio {
    fn new(seed: u64) -> Self {
        let now = Instant::now();
        let nodes = (0..3)
            .map(|i| {
                let name = format!("n{i}");
                Node::new(now, &name, addr(i), Config::default(), seed + i as u64).unwrap()
            })
            .collect();
        let mut t = Trio { nodes, now };
        t.nodes[0].join(now, &[]);
        t.nodes[1].join(now, &[addr(0)]);
        t.nodes[1].handle_timeout(now);
        t.settle();
        t.nodes[2].join(now, &[addr(0), addr(1)]);
        t.nodes[2].handle_timeout(now);
        t.settle();
        for n in &t.nodes {
            assert_eq!(n.member_count(MemberState::Alive), 3, "{}", n.name());
        }
        t
    }

    /// Delivers every message, and every answer, until none is left (time stands still).
    fn settle(&mut self) {
        loop {
            let mut any = false;
            for from in 0..3 {
                for t in self.drain(from) {
                    any = true;
                    self.deliver(from, &t);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn drain(&mut self, i: usize) -> Vec<Transmit> {
        std::iter::from_fn(|| self.nodes[i].poll_transmit()).collect()
    }

    fn deliver(&mut self, from: usize, t: &Transmit) {
        let (now, name) = (self.now, format!("n{from}"));
        let to = &mut self.nodes[index_of(t.to)];
        let result = if t.reliable {
            to.handle_stream(now, addr(from), &name, &t.payload)
        } else {
            to.handle_packet(now, addr(from), &name, &t.payload)
        };
        result.expect("a valid message");
    }

    /// Runs node 0's timers until it sends a message `wanted` picks out; returns those (what
    /// else it sends, gossip, is dropped).
    fn node0_until(&mut self, wanted: impl Fn(&Transmit) -> bool) -> Vec<Transmit> {
        for _ in 0..100 {
            let at = self.nodes[0].poll_timeout().expect("node 0 has timers");
            self.now = self.now.max(at);
            self.nodes[0].handle_timeout(self.now);
            let picked: Vec<Transmit> = self.drain(0).into_iter().filter(&wanted).collect();
            if !picked.is_empty() {
                return picked;
            }
        }
        panic!("node 0 never sent the message waited for");
    }

    /// Node 0's next probe: its ping (a datagram), the target and the other member.
    fn next_probe(&mut self) -> (Transmit, usize, usize) {
        let mut pings = self.node0_until(|t| !t.reliable && kind(t) == Some(MessageKind::Ping));
        let ping = pings.pop().unwrap();
        let target = index_of(ping.to);
        (ping, target, 3 - target)
    }

    /// The direct probe timeout passes: node 0 asks the helper (ping-req) and pings the
    /// target on the reliable channel. Returns (the ping-req, the fallback ping).
    fn go_indirect(&mut self) -> (Transmit, Transmit) {
        let out = self.node0_until(|t| {
            matches!(kind(t), Some(MessageKind::PingReq))
                || (t.reliable && kind(t) == Some(MessageKind::Ping))
        });
        let req = out.iter().find(|t| kind(t) == Some(MessageKind::PingReq));
        let fallback = out.iter().find(|t| kind(t) == Some(MessageKind::Ping));
        (req.unwrap().clone(), fallback.unwrap().clone())
    }

    /// Delivers what `from` sent to `to` (dropping anything else it sent).
    fn pass(&mut self, from: usize, to: usize) {
        for t in self.drain(from) {
            if t.to == addr(to) {
                self.deliver(from, &t);
            }
        }
    }

    fn stats(&self) -> Stats {
        self.nodes[0].stats()
    }
}

/// (late, helper, stream) degraded probes of node 0.
fn degraded(s: &Stats) -> (u64, u64, u64) {
    (
        s.probes_acked_late,
        s.probes_acked_by_helper,
        s.probes_acked_by_stream,
    )
}

#[test]
fn a_direct_ack_in_time_is_a_healthy_probe() {
    let mut t = Trio::new(1);
    let (ping, target, _) = t.next_probe();
    t.deliver(0, &ping);
    t.pass(target, 0);
    let s = t.stats();
    assert_eq!((s.probes, s.probes_failed), (1, 0));
    assert_eq!(degraded(&s), (0, 0, 0));
    assert_eq!(s.probes_slowed, 0);
}

#[test]
fn the_targets_own_ack_after_the_timeout_is_a_late_probe() {
    let mut t = Trio::new(2);
    let (ping, target, _) = t.next_probe();
    let _ = t.go_indirect();
    t.deliver(0, &ping);
    t.pass(target, 0);
    assert_eq!(degraded(&t.stats()), (1, 0, 0));
    assert_eq!(t.stats().probes_failed, 0);
}

#[test]
fn an_ack_relayed_by_a_helper_is_a_degraded_probe_by_helper() {
    let mut t = Trio::new(3);
    let (_lost, target, helper) = t.next_probe();
    let (req, _fallback_lost) = t.go_indirect();
    assert_eq!(index_of(req.to), helper);
    t.deliver(0, &req);
    t.pass(helper, target);
    t.pass(target, helper);
    t.pass(helper, 0);
    assert_eq!(degraded(&t.stats()), (0, 1, 0));
    assert_eq!(t.stats().probes_failed, 0);
}

#[test]
fn the_targets_ack_to_the_fallback_ping_is_a_degraded_probe_by_stream() {
    let mut t = Trio::new(4);
    let (_lost, target, _) = t.next_probe();
    let (_req_lost, fallback) = t.go_indirect();
    assert!(fallback.reliable);
    t.deliver(0, &fallback);
    t.pass(target, 0);
    assert_eq!(degraded(&t.stats()), (0, 0, 1));
}

#[test]
fn a_failed_probe_is_not_degraded_and_the_next_one_runs_slowed() {
    let mut t = Trio::new(5);
    let _lost = t.next_probe();
    let _ = t.go_indirect();
    // Nothing answers, not even a nack: the period ends, the probe fails, and Lifeguard
    // charges this node's local health for the nack that did not come.
    let (next, next_target, _) = t.next_probe();
    let s = t.stats();
    assert_eq!((s.probes, s.probes_failed), (2, 1));
    assert_eq!(degraded(&s), (0, 0, 0));
    assert!(t.nodes[0].local_health() > 0);
    assert_eq!(s.probes_slowed, 1, "the probe after the failure is slowed");
    // It is answered in time: health recovers, and the probe after it runs at full rate.
    t.deliver(0, &next);
    t.pass(next_target, 0);
    assert_eq!(t.nodes[0].local_health(), 0);
    let _ = t.next_probe();
    assert_eq!(t.stats().probes_slowed, 1);
}
