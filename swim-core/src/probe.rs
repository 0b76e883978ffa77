//! The probe protocol's state: the randomised round-robin target order (SWIM's
//! time-bounded completeness), the probe of the current period (direct ping, then `k`
//! ping-reqs with Lifeguard's nacks), and the pings this node relays for other members'
//! ping-reqs. It decides; the node sends.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::compact::ReleaseWhenEmpty;
use crate::membership::{MemberId, MemberState};
use crate::view::View;

/// Ping sequence numbers are below this: each fits one varint byte on the wire.
pub(crate) const SEQ_SPACE: u32 = 128;

/// Uncollected probe RTT samples kept at most.
pub const MAX_RTT_SAMPLES: usize = 256;

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
struct Probe {
    target: MemberId,
    /// The process probed: a failed probe suspects this one only, never a successor that
    /// restarted under the same name while the probe was in flight.
    incarnation: u32,
    boot_id: u32,
    seq: u32,
    sent_at: Instant,
    /// When the direct ack is late: ask `k` others (and send the reliable fallback ping).
    direct_deadline: Instant,
    /// End of the protocol period: no ack by then means the probe failed.
    end: Instant,
    indirect_sent: bool,
    /// Members asked to ping the target for us.
    helpers: Vec<MemberId>,
    /// Nacks we asked for, and how many came back (Lifeguard).
    expected_nacks: u32,
    nacks: u32,
}

impl Probe {
    fn deadline(&self) -> Instant {
        if self.indirect_sent {
            self.end
        } else {
            self.direct_deadline
        }
    }

    /// Whether an ack from `from` with `seq` answers this probe (from the target, or relayed
    /// by a helper).
    fn answered_by(&self, from: MemberId, seq: u32) -> bool {
        self.seq == seq && (from == self.target || self.helpers.contains(&from))
    }

    /// Lifeguard's charge to local health for this failed probe: the nacks asked for that
    /// did not come (they point at our own trouble), or one for the failure itself.
    fn health_penalty(&self) -> i32 {
        if self.expected_nacks > 0 {
            self.expected_nacks.saturating_sub(self.nacks) as i32
        } else {
            1
        }
    }
}

/// A probe that ended without an ack.
#[derive(Debug)]
pub(crate) struct Failed {
    /// Lifeguard's charge to local health: the nacks asked for that did not come (they point
    /// at our own trouble), or one for the failure itself.
    pub(crate) health_penalty: i32,
    /// Neither an ack nor any of the nacks asked for came (there were some to ask for):
    /// evidence that this node cannot hear (`quarantine.rs`).
    pub(crate) silent: bool,
    /// The member to suspect and at which incarnation: the process probed, if it is still
    /// the one in the view (never a successor that restarted under its name meanwhile).
    pub(crate) suspect: Option<(MemberId, u32)>,
}

/// A ping this node relays for another member's `PingReq`.
#[derive(Debug, Clone)]
pub(crate) struct Relay {
    /// Who asked, where to answer it, and under which of its sequence numbers.
    pub(crate) origin_addr: SocketAddr,
    pub(crate) origin_name: Arc<str>,
    pub(crate) origin_seq: u32,
    /// Whether the origin wants a nack if the target stays silent.
    pub(crate) nack: bool,
    pub(crate) deadline: Instant,
    /// The member pinged, by name (it need not be in this view).
    pub(crate) target: Arc<str>,
}

/// This period's ping: whom to ping with which sequence number, and the buddy system's item
/// to put on it first (Lifeguard: a suspect target hears of its suspicion on the ping itself,
/// so it can refute at once; empty otherwise).
#[derive(Debug)]
pub(crate) struct Ping {
    pub(crate) target: MemberId,
    pub(crate) seq: u32,
    pub(crate) buddy: Vec<u8>,
}

/// A probe gone indirect: ask `helpers` to ping the target for us (nacking if `nack`).
#[derive(Debug)]
pub(crate) struct Indirect {
    pub(crate) target: MemberId,
    pub(crate) target_name: Arc<str>,
    pub(crate) target_addr: SocketAddr,
    pub(crate) seq: u32,
    pub(crate) helpers: Vec<MemberId>,
    pub(crate) nack: bool,
}

/// What an ack answered.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The probe of this period: the target is alive. `rtt` when the target itself answered;
    /// `indirect` when the answer came only after the direct probe timeout, once the
    /// indirect probes (and the fallback ping) were out: a degraded probe.
    Probe {
        target: MemberId,
        rtt: Option<Duration>,
        indirect: bool,
    },
    /// A ping relayed for `Relay::origin`, to be acked to it.
    Relay(Relay),
    /// Nothing waiting for it any more.
    Late,
}

/// The probe protocol's state. See the module doc.
#[derive(Debug)]
pub(crate) struct Prober {
    order: ProbeOrder,
    probe: Option<Probe>,
    /// When the next probe starts (while none is in flight).
    next_probe: Instant,
    /// Next sequence number for pings we send (probes and relayed pings share it), below
    /// [`SEQ_SPACE`].
    next_seq: u32,
    /// Relayed pings by the sequence number we sent them with.
    relays: BTreeMap<u32, Relay>,
    /// Round-trip times of direct probe acks not yet collected (bounded).
    rtt_samples: VecDeque<Duration>,
}

impl Prober {
    pub(crate) fn new(first_probe: Instant) -> Self {
        Self {
            order: ProbeOrder::new(),
            probe: None,
            next_probe: first_probe,
            next_seq: 0,
            relays: BTreeMap::new(),
            rtt_samples: VecDeque::new(),
        }
    }

    /// The probe timer: the probe in flight's next deadline, or when the next one starts.
    pub(crate) fn deadline(&self) -> Instant {
        self.probe.as_ref().map_or(self.next_probe, Probe::deadline)
    }

    /// The earliest relayed ping to give up on.
    pub(crate) fn relay_deadline(&self) -> Option<Instant> {
        self.relays.values().map(|r| r.deadline).min()
    }

    /// If the probe in flight's direct ack is late by `now`, it goes indirect: `k` random
    /// alive members are asked to ping the target (and, with Lifeguard, to nack if it stays
    /// silent). A probe whose target has left the view is dropped.
    pub(crate) fn go_indirect(
        &mut self,
        now: Instant,
        view: &View,
        rng: &mut impl RngCore,
        k: usize,
        lifeguard: bool,
    ) -> Option<Indirect> {
        let p = self
            .probe
            .as_mut()
            .filter(|p| !p.indirect_sent && now >= p.direct_deadline)?;
        let (target, seq) = (p.target, p.seq);
        let Some(t) = view.get(target) else {
            self.probe = None;
            return None;
        };
        let helpers = view.sample(rng, k, Some(target), |m| m.state == MemberState::Alive);
        p.indirect_sent = true;
        p.expected_nacks = if lifeguard { helpers.len() as u32 } else { 0 };
        p.helpers = helpers.clone();
        Some(Indirect {
            target,
            target_name: t.name.clone(),
            target_addr: t.addr,
            seq,
            helpers,
            nack: lifeguard,
        })
    }

    /// Drops the probe in flight without judging it (we left).
    pub(crate) fn abandon(&mut self) {
        self.probe = None;
    }

    /// The probe in flight, if its period ended by `now` without an ack: it failed.
    pub(crate) fn take_failed(&mut self, now: Instant, view: &View) -> Option<Failed> {
        if self.probe.as_ref().is_none_or(|p| now < p.end) {
            return None;
        }
        let p = self.probe.take()?;
        let same_process = view.get(p.target).is_some_and(|m| m.boot_id == p.boot_id);
        Some(Failed {
            health_penalty: p.health_penalty(),
            silent: p.expected_nacks > 0 && p.nacks == 0,
            suspect: same_process.then_some((p.target, p.incarnation)),
        })
    }

    /// Whether a new probe is due at `now`.
    pub(crate) fn start_due(&self, now: Instant) -> bool {
        self.probe.is_none() && now >= self.next_probe
    }

    /// Starts this period's probe: schedules the next period `interval` from now, picks the
    /// next alive or suspect member in this round's order, and gives it `timeout` to ack.
    /// `None` when there is nobody to probe.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        view: &View,
        rng: &mut impl RngCore,
        (interval, timeout): (Duration, Duration),
        lifeguard: bool,
    ) -> Option<Ping> {
        self.next_probe = now + interval;
        let bound = view.id_bound();
        let probeable = |id: MemberId| {
            id != view.my_id()
                && view
                    .get(id)
                    .is_some_and(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
        };
        let mut target = None;
        for _ in 0..bound {
            match self.order.next(bound, rng) {
                Some(id) if probeable(id) => {
                    target = Some(id);
                    break;
                }
                Some(_) => continue,
                None => break,
            }
        }
        let target = target?;
        let m = view.get(target)?;
        let (incarnation, boot_id) = (m.incarnation, m.boot_id);
        let seq = self.next_seq();
        self.probe = Some(Probe {
            target,
            incarnation,
            boot_id,
            seq,
            sent_at: now,
            direct_deadline: now + timeout,
            end: self.next_probe,
            indirect_sent: false,
            helpers: Vec::new(),
            expected_nacks: 0,
            nacks: 0,
        });
        let buddy = if lifeguard && m.state == MemberState::Suspect {
            m.encode_update(None, view.my_name(), now)
        } else {
            Vec::new()
        };
        Some(Ping { target, seq, buddy })
    }

    /// An ack from `from` with `seq`: what it answers.
    /// `from` is the sender's id if it is in this view.
    pub(crate) fn answer(
        &mut self,
        now: Instant,
        from: Option<MemberId>,
        from_name: &str,
        seq: u32,
    ) -> Answer {
        if let Some(from) =
            from.filter(|&f| self.probe.as_ref().is_some_and(|p| p.answered_by(f, seq)))
        {
            let p = self.probe.take().expect("checked above");
            let rtt = (from == p.target).then(|| now.saturating_duration_since(p.sent_at));
            if let Some(rtt) = rtt {
                if self.rtt_samples.len() == MAX_RTT_SAMPLES {
                    self.rtt_samples.pop_front();
                }
                self.rtt_samples.push_back(rtt);
            }
            return Answer::Probe {
                target: p.target,
                rtt,
                indirect: p.indirect_sent,
            };
        }
        if self
            .relays
            .get(&seq)
            .is_some_and(|r| &*r.target == from_name)
        {
            let relay = self.relays.remove(&seq).expect("checked above");
            self.relays.release_when_empty();
            return Answer::Relay(relay);
        }
        Answer::Late
    }

    /// A nack from `from` with `seq`: true when it is one our probe asked for.
    pub(crate) fn nack(&mut self, from: Option<MemberId>, seq: u32) -> bool {
        match (self.probe.as_mut(), from) {
            (Some(p), Some(from)) if p.seq == seq && p.helpers.contains(&from) => {
                p.nacks += 1;
                true
            }
            _ => false,
        }
    }

    /// Relays a ping for another member's ping-req; returns the sequence number to ping the
    /// target with.
    pub(crate) fn relay(&mut self, relay: Relay) -> u32 {
        let seq = self.next_seq();
        self.relays.insert(seq, relay);
        seq
    }

    /// Relayed pings whose target did not answer by `now`, oldest sequence number first.
    pub(crate) fn expired_relays(&mut self, now: Instant) -> Vec<Relay> {
        let expired: Vec<u32> = self
            .relays
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        let relays = expired
            .into_iter()
            .filter_map(|seq| self.relays.remove(&seq))
            .collect();
        self.relays.release_when_empty();
        relays
    }

    /// The round-trip time of a direct probe ack, oldest first.
    pub(crate) fn poll_rtt(&mut self) -> Option<Duration> {
        self.rtt_samples.pop_front()
    }

    /// The next ping sequence number: one varint byte, wrapping, skipping the numbers of
    /// pings still awaited (acks are matched by number *and* sender, so a number can be
    /// reused once its ping is settled).
    fn next_seq(&mut self) -> u32 {
        for _ in 0..SEQ_SPACE {
            let seq = self.next_seq;
            self.next_seq = (seq + 1) % SEQ_SPACE;
            let in_use =
                self.relays.contains_key(&seq) || self.probe.as_ref().is_some_and(|p| p.seq == seq);
            if !in_use {
                return seq;
            }
        }
        // All 128 awaited at once: reuse the oldest-issued number.
        self.next_seq
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
