//! Probe bookkeeping: the randomised round-robin target order (SWIM's time-bounded
//! completeness) and the state of the probe in flight. No I/O here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand_core::RngCore;

use crate::membership::{MemberId, MemberState};
use crate::node::Node;
use crate::wire::{self, Item, Message, MessageKind, Update, UpdateKind};

/// A fresh random permutation of the id space each round, stored in O(1): position `k` maps
/// to `(a·k + b) mod p` for a prime `p ≥ ids`, skipping values `≥ ids`. Every id present when
/// the round started is visited exactly once per round, so a member is probed by this node
/// at least once every two rounds (time-bounded completeness) without an O(N) shuffled list
/// per node.
#[derive(Debug, Clone)]
pub(crate) struct ProbeOrder {
    ids: u64,
    prime: u64,
    a: u64,
    b: u64,
    position: u64,
}

impl ProbeOrder {
    pub(crate) fn new() -> Self {
        Self {
            ids: 0,
            prime: 1,
            a: 1,
            b: 0,
            position: 0,
        }
    }

    /// The next id in this round's order, starting a new round when the current one is done.
    /// `ids` is the current size of the id space; returns `None` only when it is zero.
    pub(crate) fn next(&mut self, ids: usize, rng: &mut impl RngCore) -> Option<MemberId> {
        if ids == 0 {
            return None;
        }
        loop {
            if self.position >= self.prime {
                self.new_round(ids as u64, rng);
            }
            let k = self.position;
            self.position += 1;
            let id = (self.a.wrapping_mul(k) + self.b) % self.prime;
            if id < self.ids {
                return Some(id as MemberId);
            }
        }
    }

    fn new_round(&mut self, ids: u64, rng: &mut impl RngCore) {
        self.ids = ids;
        self.prime = next_prime(ids.max(2));
        self.a = 1 + rng.next_u64() % (self.prime - 1);
        self.b = rng.next_u64() % self.prime;
        self.position = 0;
    }
}

fn next_prime(n: u64) -> u64 {
    let is_prime = |c: u64| c >= 2 && (2..).take_while(|d| d * d <= c).all(|d| c % d != 0);
    (n..)
        .find(|&c| is_prime(c))
        .expect("BUG! primes are unbounded")
}

/// The probe of one protocol period.
#[derive(Debug, Clone)]
pub(crate) struct ProbeInFlight {
    pub target: MemberId,
    /// The process probed: a failed probe suspects this one only, never a successor that
    /// restarted under the same name while the probe was in flight.
    pub incarnation: u32,
    pub boot_id: u32,
    pub seq: u32,
    pub sent_at: Instant,
    /// When the direct ack is late: ask `k` others (and send the reliable fallback ping).
    pub direct_deadline: Instant,
    /// End of the protocol period: no ack by then means the probe failed.
    pub end: Instant,
    pub indirect_sent: bool,
    /// Members asked to ping the target for us.
    pub intermediaries: Vec<MemberId>,
    /// Nacks we asked for, and how many came back (Lifeguard).
    pub expected_nacks: u32,
    pub nacks: u32,
}

/// A ping this node relays for another member's `PingReq`.
#[derive(Debug, Clone)]
pub(crate) struct Forward {
    /// Who asked, where to answer it, and under which of its sequence numbers.
    pub origin_addr: std::net::SocketAddr,
    pub origin_name: std::sync::Arc<str>,
    pub origin_seq: u32,
    pub nack: bool,
    pub deadline: Instant,
}

/// The probe protocol: ping, ping-req through `k` others, nacks, and relaying for others.
impl Node {
    /// Ends the probe in flight at its deadlines and starts the next one when due.
    pub(crate) fn probe_timers(&mut self, now: Instant) {
        if let Some(p) = &self.probe {
            if !p.indirect_sent && now >= p.direct_deadline {
                self.probe_direct_timeout();
            }
        }
        if self.probe.as_ref().is_some_and(|p| now >= p.end) {
            self.probe_failed(now);
        }
        if self.probe.is_none() && now >= self.next_probe {
            self.start_probe(now);
        }
    }

    fn probeable(&self, id: MemberId) -> bool {
        id != self.me
            && self
                .members
                .get(id)
                .is_some_and(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
    }

    fn start_probe(&mut self, now: Instant) {
        let score = self.awareness.score();
        let timings = self.config.timings(self.cluster_size());
        let (interval, timeout) = (timings.probe_interval(score), timings.probe_timeout(score));
        self.next_probe = now + interval;
        let bound = self.members.id_bound();
        let mut target = None;
        for _ in 0..bound {
            match self.probe_order.next(bound, &mut self.rng) {
                Some(id) if self.probeable(id) => {
                    target = Some(id);
                    break;
                }
                Some(_) => continue,
                None => break,
            }
        }
        let Some(target) = target else { return };
        let (incarnation, boot_id) = match self.members.get(target) {
            Some(m) => (m.incarnation, m.boot_id),
            None => return,
        };
        let seq = self.next_seq();
        // Buddy system (Lifeguard): a suspect target hears of its suspicion first, on the ping
        // itself, so it can refute at once.
        let buddy = match self.members.get(target) {
            Some(m) if self.config.lifeguard && m.state == MemberState::Suspect => {
                Some(wire::encode_item(&Item::Member(Update {
                    name: &m.name,
                    incarnation: m.incarnation,
                    kind: UpdateKind::Suspect {
                        accuser: &self.my_name,
                    },
                })))
            }
            _ => None,
        };
        let buddy = if std::mem::take(&mut self.digest_due) {
            let mut extra = buddy.unwrap_or_default();
            wire::append_item(&mut extra, &Item::StateDigest(self.state_digest()));
            self.stats.digests_sent += 1;
            Some(extra)
        } else {
            buddy
        };
        self.send_to(target, &Message::Ping { seq }, buddy.as_deref(), false);
        self.stats.probes += 1;
        self.probe = Some(ProbeInFlight {
            target,
            incarnation,
            boot_id,
            seq,
            sent_at: now,
            direct_deadline: now + timeout,
            end: self.next_probe,
            indirect_sent: false,
            intermediaries: Vec::new(),
            expected_nacks: 0,
            nacks: 0,
        });
    }

    /// The direct ack is late: ask `k` members to ping the target, and ping it once more on
    /// the reliable channel.
    fn probe_direct_timeout(&mut self) {
        let Some(p) = self.probe.as_ref() else { return };
        let (target, seq) = (p.target, p.seq);
        let Some(t) = self.members.get(target) else {
            self.probe = None;
            return;
        };
        let (target_name, target_addr) = (t.name.clone(), t.addr);
        let helpers = self.sample_members(self.config.indirect_checks, Some(target), |m| {
            m.state == MemberState::Alive
        });
        let nack = self.config.lifeguard;
        for &h in &helpers {
            let req = Message::PingReq {
                seq,
                target: &target_name,
                addr: target_addr,
                nack,
            };
            self.send_to(h, &req, None, false);
            self.stats.indirect_probes += 1;
        }
        if self.config.reliable_fallback_ping {
            self.send_to(target, &Message::Ping { seq }, None, true);
            self.stats.reliable_pings += 1;
        }
        if let Some(p) = self.probe.as_mut() {
            p.indirect_sent = true;
            p.expected_nacks = if nack { helpers.len() as u32 } else { 0 };
            p.intermediaries = helpers;
        }
    }

    /// No ack by the end of the period: Lifeguard charges local health with the nacks that
    /// did not come (our own trouble) or one failed probe, and the target becomes suspect.
    fn probe_failed(&mut self, now: Instant) {
        let Some(p) = self.probe.take() else { return };
        self.stats.probes_failed += 1;
        if self.config.lifeguard {
            let delta = if p.expected_nacks > 0 {
                p.expected_nacks.saturating_sub(p.nacks) as i32
            } else {
                1
            };
            self.awareness.apply(delta);
        }
        if self
            .members
            .get(p.target)
            .is_some_and(|m| m.boot_id == p.boot_id)
        {
            let (me, my_name) = (self.me, self.my_name.clone());
            self.apply_suspect(p.target, p.incarnation, me, &my_name, now);
        }
    }

    pub(crate) fn handle_ack(&mut self, now: Instant, from: MemberId, seq: u32) {
        if let Some(p) = &self.probe {
            if p.seq == seq && (from == p.target || p.intermediaries.contains(&from)) {
                let p = self.probe.take().expect("checked above");
                if self.config.lifeguard {
                    self.awareness.apply(-1);
                }
                if from == p.target {
                    let rtt = now.saturating_duration_since(p.sent_at);
                    self.stats.probe_rtt_sum_us += rtt.as_micros() as u64;
                    self.stats.probe_rtt_count += 1;
                    if self.rtt_samples.len() == crate::node::MAX_RTT_SAMPLES {
                        self.rtt_samples.pop_front();
                    }
                    self.rtt_samples.push_back(rtt);
                }
                if let Some(m) = self.members.get(p.target) {
                    if m.state == MemberState::Alive {
                        let mut m = m.clone();
                        m.last_alive = now;
                        self.members.set(p.target, m);
                    }
                }
                return;
            }
        }
        if self
            .forwards
            .get(&seq)
            .is_some_and(|(_, target)| *target == from)
        {
            let (f, _) = self.forwards.remove(&seq).expect("checked above");
            let ack = self.packet(&Message::Ack { seq: f.origin_seq }, None);
            self.send(
                f.origin_addr,
                Some(f.origin_name),
                ack,
                MessageKind::Ack,
                false,
            );
            return;
        }
        self.stats.late_acks += 1;
    }

    pub(crate) fn handle_nack(&mut self, from: MemberId, seq: u32) {
        match self.probe.as_mut() {
            Some(p) if p.seq == seq && p.intermediaries.contains(&from) => {
                p.nacks += 1;
                self.stats.nacks_received += 1;
            }
            _ => self.stats.late_acks += 1,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn handle_ping_req(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from_name: &Arc<str>,
        origin_seq: u32,
        target: &str,
        target_addr: SocketAddr,
        nack: bool,
    ) {
        if target == &*self.my_name {
            let ack = self.packet(&Message::Ack { seq: origin_seq }, None);
            self.send(
                from_addr,
                Some(from_name.clone()),
                ack,
                MessageKind::Ack,
                false,
            );
            return;
        }
        let (target_id, target_name) = self.names.intern(target);
        let seq = self.next_seq();
        let ping = self.packet(&Message::Ping { seq }, None);
        self.send(
            target_addr,
            Some(target_name),
            ping,
            MessageKind::Ping,
            false,
        );
        let deadline = now + self.config.timings(self.cluster_size()).nack_timeout();
        let forward = Forward {
            origin_addr: from_addr,
            origin_name: from_name.clone(),
            origin_seq,
            nack,
            deadline,
        };
        self.forwards.insert(seq, (forward, target_id));
    }

    /// Relayed pings whose target did not answer: nack the origin if it asked.
    pub(crate) fn expire_forwards(&mut self, now: Instant) {
        let expired: Vec<u32> = self
            .forwards
            .iter()
            .filter(|(_, (f, _))| f.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for seq in expired {
            let (f, _) = self.forwards.remove(&seq).expect("collected above");
            if f.nack {
                let nack = self.packet(&Message::Nack { seq: f.origin_seq }, None);
                self.send(
                    f.origin_addr,
                    Some(f.origin_name),
                    nack,
                    MessageKind::Nack,
                    false,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    #[test]
    fn each_round_visits_every_id_once() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut order = ProbeOrder::new();
        for n in [1usize, 2, 7, 100] {
            order.position = u64::MAX; // force a new round with this size
            let mut seen: Vec<_> = (0..n).map(|_| order.next(n, &mut rng).unwrap()).collect();
            seen.sort();
            assert_eq!(seen, (0..n as u32).collect::<Vec<_>>());
        }
    }

    #[test]
    fn rounds_differ() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut order = ProbeOrder::new();
        let r1: Vec<_> = (0..50).map(|_| order.next(50, &mut rng).unwrap()).collect();
        let r2: Vec<_> = (0..50).map(|_| order.next(50, &mut rng).unwrap()).collect();
        assert_ne!(r1, r2);
    }
}
