//! Every timer a node has, in one closed enum, and the one table of their deadlines:
//! `Node::poll_timeout` is the earliest and `Node::handle_timeout` fires each one that is due,
//! in the enum's order, reading the same table — so the two can never disagree. Each deadline
//! is kept by the concern that owns the timer (quinn-proto's `connection/timer.rs` is the
//! model); what firing one does is routed from here.

use std::time::Instant;

use super::Node;
use crate::accusation::Accuser;
use crate::claims::Sender;
use crate::probe::Failed;
use crate::pushpull::Exchange;
use crate::update::Fx;
use crate::wire::{self, Item, Message, MessageKind};

/// One timer of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Timer {
    /// Retry an unanswered join (`join.rs`).
    Join,
    /// The probe in flight's direct or final deadline, or the start of the next probe
    /// (`probe.rs`); off once the node has left.
    Probe,
    /// Give up on a relayed ping and nack its origin (`probe.rs`).
    Relay,
    /// The earliest open suspicion runs out (`suspicion.rs`).
    Suspicion,
    /// The next gossip round, while anything waits to be spread (`dissemination.rs`).
    Gossip,
    /// The next periodic push-pull (`pushpull.rs`); on while joined and not left.
    PushPull,
    /// The next tombstone to forget (`tombstone.rs`).
    Reap,
    /// The next attempt to reach dead members and, if the view shrank, seeds
    /// (`reconnect.rs`); on while joined and not left.
    Reconnect,
    /// The oldest claim waiting for a credential gives up (`claims.rs`).
    Credentials,
}

impl Timer {
    /// Every timer, in the order `handle_timeout` fires those that are due.
    pub(crate) const ALL: [Timer; 9] = [
        Timer::Join,
        Timer::Probe,
        Timer::Relay,
        Timer::Suspicion,
        Timer::Gossip,
        Timer::PushPull,
        Timer::Reap,
        Timer::Reconnect,
        Timer::Credentials,
    ];
}

impl Node {
    /// Runs every timer that is due at `now`. Early or repeated calls are harmless no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in Timer::ALL {
            if self.deadline(timer).is_some_and(|d| now >= d) {
                self.fire(timer, now);
            }
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the earliest deadline of
    /// every timer (join retry, probe, relayed ping, suspicion, gossip, push-pull, tombstone
    /// reaping, reconnect, credential wait).
    pub fn poll_timeout(&self) -> Option<Instant> {
        Timer::ALL.iter().filter_map(|&t| self.deadline(t)).min()
    }

    /// The one table of deadlines, read by both `poll_timeout` and `handle_timeout`.
    fn deadline(&self, timer: Timer) -> Option<Instant> {
        let active = !self.has_left();
        match timer {
            Timer::Join => self.joiner.deadline(),
            Timer::Probe => active.then(|| self.prober.deadline()),
            Timer::Relay => self.prober.relay_deadline(),
            Timer::Suspicion => self.membership.suspicion_deadline(),
            Timer::Gossip => self.gossip.deadline(),
            Timer::PushPull => {
                (active && self.is_joined() && !self.config.push_pull_interval.is_zero())
                    .then(|| self.anti_entropy.next())
            }
            Timer::Reap => self.membership.reap_deadline(),
            Timer::Reconnect => (active && self.is_joined()).then(|| self.reconnector.deadline()),
            Timer::Credentials => self.membership.claims.waiting.deadline(),
        }
    }

    fn fire(&mut self, timer: Timer, now: Instant) {
        match timer {
            Timer::Join => self.join_attempt(now),
            Timer::Probe => self.probe_timer(now),
            Timer::Relay => {
                for r in self.prober.expired_relays(now) {
                    if r.nack {
                        let nack = Message::Nack { seq: r.origin_seq };
                        self.send(now, r.origin_addr, Some(r.origin_name), &nack, None, false);
                    }
                }
            }
            Timer::Suspicion => {
                while let Some(id) = self.membership.suspicions.pop_ask(now) {
                    self.tell_accused(now, id);
                }
                self.membership.expire_suspicions(now, fx!(self));
            }
            Timer::Gossip => {
                self.gossip_round(now);
                self.gossip
                    .schedule_round(now + self.config.gossip_interval);
            }
            Timer::PushPull => self.periodic_push_pull(now),
            Timer::Reap => {
                let left = self.membership.reap(now, fx!(self));
                self.reconnector.forgot_left(left);
            }
            Timer::Reconnect => self.reconnect(now),
            Timer::Credentials => {
                for reason in self.membership.claims_mut().waiting.expire(now) {
                    self.stats.count_refused(reason);
                }
            }
        }
    }

    /// Sends a join push-pull to every seed and schedules the next attempt.
    fn join_attempt(&mut self, now: Instant) {
        for seed in self.joiner.attempt(now, self.config.join_retry_max) {
            self.stats.join_attempts += 1;
            self.request_state(now, seed, None, true);
        }
    }

    /// The probe in flight reaches its deadlines, and the next one starts when due.
    fn probe_timer(&mut self, now: Instant) {
        let (view, rng) = (self.membership.view(), &mut self.rng);
        let (k, lifeguard) = (self.config.indirect_checks, self.config.lifeguard);
        if let Some(ind) = self.prober.go_indirect(now, view, rng, k, lifeguard) {
            for &helper in &ind.helpers {
                let req = Message::PingReq {
                    seq: ind.seq,
                    target: &ind.target_name,
                    addr: ind.target_addr,
                    nack: ind.nack,
                };
                self.send_to(now, helper, &req, None, false);
                self.stats.indirect_probes += 1;
            }
            // The reliable channel too: a lossy datagram path alone causes no suspicion.
            if self.config.reliable_fallback_ping {
                self.send_to(now, ind.target, &Message::Ping { seq: ind.seq }, None, true);
                self.stats.reliable_pings += 1;
            }
        }
        if let Some(failed) = self.prober.take_failed(now, self.membership.view()) {
            self.probe_failed(now, failed);
        }
        if self.prober.start_due(now) {
            self.start_probe(now);
        }
    }

    fn start_probe(&mut self, now: Instant) {
        // In quarantine this node accuses no one, so its probes only measure its hearing:
        // at the unscaled rate, so that it knows soon when it hears again. In doubt of its
        // hearing it probes at that rate too: Lifeguard's slowing would otherwise starve the
        // quarantine of the probes that tell it this node cannot hear (at 80 % ingress loss a
        // probe every 2.7 s instead of 0.3 s), and each accusation before it knows is refuted.
        let quarantine = &self.membership.quarantine;
        let score = if quarantine.active() || quarantine.in_doubt() {
            0
        } else {
            self.awareness.score()
        };
        let timings = self.timings();
        let timeouts = (timings.probe_interval(score), timings.probe_timeout(score));
        let view = self.membership.view();
        let lifeguard = self.config.lifeguard;
        let Some(ping) = self
            .prober
            .start(now, view, &mut self.rng, timeouts, lifeguard)
        else {
            return;
        };
        let message = Message::Ping { seq: ping.seq };
        let mut extra = ping.buddy;
        // The buddy update rides only if it fits beside the header and a digest: an
        // accusation carries its accuser's signature (up to `MAX_SIGNATURE_LEN` bytes), more
        // than a small datagram holds. It still spreads as gossip.
        let digest = wire::encode_item(&Item::StateDigest([0; 8])).len();
        let header = wire::encode_message(self.config.framing, &message).len();
        if header + extra.len() + digest > self.config.max_datagram_size {
            extra.clear();
        }
        if self.anti_entropy.take_digest_due() {
            wire::append_item(&mut extra, &Item::StateDigest(view.fingerprint()));
            self.stats.digests_sent += 1;
        }
        self.send_to(now, ping.target, &message, Some(&extra), false);
        self.stats.probes += 1;
        if score > 0 {
            self.stats.probes_slowed += 1;
        }
    }

    /// No ack by the end of the period: Lifeguard charges local health, and the process
    /// probed becomes suspect.
    fn probe_failed(&mut self, now: Instant, failed: Failed) {
        self.stats.probes_failed += 1;
        if self.config.lifeguard {
            self.awareness.apply(failed.health_penalty);
        }
        self.membership
            .judge_probe(now, false, failed.silent, fx!(self));
        if failed.suspect.is_some() && self.membership.quarantine.active() {
            // This node cannot hear: the failure is its own, not the target's.
            self.stats.accusations_withheld += 1;
            return;
        }
        if let Some((target, incarnation)) = failed.suspect {
            let me = self.view().my_name().clone();
            let from = Sender {
                addr: self.view().me().addr,
                name: &me,
            };
            let (config, fx) = (&self.config, fx!(self));
            self.membership
                .suspect(now, config, from, target, incarnation, Accuser::Us, fx);
        }
    }

    fn gossip_round(&mut self, now: Instant) {
        let limit = self.timings().retransmit_limit();
        let (view, rng) = (self.membership.view(), &mut self.rng);
        let packets =
            self.gossip
                .gossip_round(now, view, rng, &self.config, limit, &mut self.stats);
        for (addr, name, payload) in packets {
            self.queue(addr, Some(name), payload, MessageKind::Gossip, false);
        }
    }

    /// Full push-pulls to a member held dead and, if the view shrank, to a seed that is not
    /// a live member (with credentials, as a join: it may have forgotten us).
    fn reconnect(&mut self, now: Instant) {
        let interval = self.config.reconnect_interval;
        let (view, rng) = (self.membership.view(), &mut self.rng);
        let contacts = self.reconnector.tick(now, interval, view, rng);
        if let Some(id) = contacts.dead {
            if let Some(m) = self.view().get(id) {
                let (addr, name) = (m.addr, m.name.clone());
                self.stats.reconnects += 1;
                self.request_state(now, addr, Some(name), false);
            }
        }
        if let Some(seed) = contacts.seed {
            self.stats.seed_rejoins += 1;
            self.request_state(now, seed, None, true);
        }
    }

    fn periodic_push_pull(&mut self, now: Instant) {
        let interval = self.timings().push_pull_interval();
        let (view, rng) = (self.membership.view(), &mut self.rng);
        let exchange =
            self.anti_entropy
                .periodic(now, interval, view, rng, self.config.push_pull_digest);
        if let Some(Exchange::Full(addr, name)) = exchange {
            self.request_state(now, addr, Some(name), false);
        }
    }
}
