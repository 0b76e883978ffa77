//! Whether this node can hear its peers, judged from its own probes, and the quarantine it
//! puts itself in when it cannot: it stops refuting accusations and stops accusing, so that
//! the cluster removes it once and keeps it out until it hears again (the flaky member of
//! the Rapid paper, which otherwise makes every view flap between alive and suspect).
//!
//! The evidence is this node's own probes of its peers, the last 16 of them: a probe whose
//! direct ping got no ack in time, and a probe that got no answer at all (no ack, and not
//! one of the nacks asked of the helpers — a helper that reached us but not the target says
//! so, Lifeguard's nack). Losing those answers points at this node's own ingress, not at its
//! targets: a crashed target still leaves the helpers' nacks, a partition leaves the nacks
//! of the helpers on this node's side, and ordinary loss rarely takes the ack and every nack
//! at once (10 % loss: about one probe in 800) or three direct acks in four (10 % loss: one
//! time in 1600 over 8 probes). A member losing 80 % of what it receives misses four direct
//! acks in five.
//!
//! Lifeguard slows a node whose probes fail (up to nine times the interval), which would
//! starve this judgement of the probes it needs: so while the last probes raise a doubt
//! ([`Quarantine::in_doubt`]) the node probes at the unscaled rate. At 80 % ingress loss that
//! halved the accusations a flaky member refutes before it knows (simulator, N = 8, chaos
//! timings, 40 seeds: at most 7 per observer, from 12).
//!
//! The judgement is made only when this node is accused (stale news of an accusation
//! included: a node whose refutations go unheard is accused below its incarnation), because
//! withholding a refutation is what removes it; a node nobody accuses (a survivor of a mass
//! crash whose probes of the dead go unanswered) keeps accusing and refuting as usual.
//! Quarantine ends when [`DIRECT_TO_LIFT`] of the last 16 probes were answered directly, and
//! the refutation it held back is made then.

use std::time::{Duration, Instant};

/// Silent probes among the last 16 that put this node in quarantine when accused.
pub(crate) const SILENT_TO_QUARANTINE: u32 = 2;
/// Probes needed before the share of direct acks missed is judged.
const MIN_SAMPLES: u32 = 8;
/// Probes needed before the share of direct acks missed raises a doubt.
const DOUBT_SAMPLES: u32 = 4;
/// Direct acks among the last 16 probes that lift the quarantine (a member losing 80 % of
/// its ingress gets 14 in 16 about once in 10^8 tries; one at 10 % loss 37 % of the time).
pub(crate) const DIRECT_TO_LIFT: u32 = 14;

/// This node's hearing and quarantine.
#[derive(Debug, Default)]
pub(crate) struct Quarantine {
    /// The last 16 probes judged, newest in bit 0: 1 = silent (no ack, no nack).
    silent: u16,
    /// The same probes: 1 = the direct ack did not come in time.
    missed: u16,
    /// Probes judged, up to 16.
    samples: u32,
    /// When the last probe was judged: evidence older than the caller's `stale_after` is
    /// dropped (a node that declared every peer dead while it could not hear has no one
    /// left to probe; when it hears again, its last probes say nothing of now).
    last: Option<Instant>,
    /// In quarantine: the highest incarnation accused while in it (refuted on release).
    held: Option<u32>,
}

impl Quarantine {
    /// A probe of this node's ended: answered `directly` (the target's ack within the
    /// probe timeout, unscaled) or not; `silent` if it got no answer at all and none of the nacks it
    /// asked for (a probe that asked no helper is never silent).
    pub(crate) fn judge_probe(&mut self, now: Instant, directly: bool, silent: bool) {
        self.last = Some(now);
        self.silent = (self.silent << 1) | u16::from(silent);
        self.missed = (self.missed << 1) | u16::from(!directly);
        self.samples = (self.samples + 1).min(u16::BITS);
    }

    /// Silent probes among the last 16.
    pub(crate) fn silent_probes(&self) -> u32 {
        self.silent.count_ones()
    }

    /// Whether the last probes say this node cannot hear its peers.
    fn cannot_hear(&self) -> bool {
        let missed = self.missed.count_ones();
        self.silent_probes() >= SILENT_TO_QUARANTINE
            || (self.samples >= MIN_SAMPLES && missed * 4 >= self.samples * 3)
    }

    /// Whether the last probes, at least [`DOUBT_SAMPLES`] of them, raise a doubt about this
    /// node's hearing (one silent probe, or three direct acks missed in four), so that it
    /// should gather evidence at the unscaled probe rate. Under 10 % loss about one direct
    /// ack in five is missed, and three in four about one time in 40; at 80 % ingress loss
    /// four in five are.
    pub(crate) fn in_doubt(&self) -> bool {
        let missed = self.missed.count_ones();
        self.samples >= DOUBT_SAMPLES
            && (self.silent_probes() >= 1 || missed * 4 >= self.samples * 3)
    }

    /// This node is accused at `incarnation`: `true` if it must not refute, because it
    /// cannot hear its peers (it enters quarantine now, or is in it already).
    pub(crate) fn withhold_refutation(
        &mut self,
        now: Instant,
        stale_after: Duration,
        incarnation: u32,
    ) -> bool {
        let stale = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) > stale_after);
        if self.held.is_none() && stale {
            *self = Self::default();
            return false;
        }
        if self.held.is_none() && !self.cannot_hear() {
            return false;
        }
        self.held = Some(self.held.map_or(incarnation, |h| h.max(incarnation)));
        true
    }

    /// Whether this node is in quarantine.
    pub(crate) fn active(&self) -> bool {
        self.held.is_some()
    }

    /// Ends the quarantine once [`DIRECT_TO_LIFT`] of the last 16 probes were answered
    /// directly: the highest incarnation this node was accused at, to refute now.
    pub(crate) fn lift(&mut self) -> Option<u32> {
        let direct = self.samples - self.missed.count_ones().min(self.samples);
        if self.samples < u16::BITS || direct < DIRECT_TO_LIFT {
            return None;
        }
        let held = self.held.take()?;
        *self = Self::default();
        Some(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALE: Duration = Duration::from_secs(16);

    #[test]
    fn a_node_that_hears_refutes_and_one_that_does_not_holds_back_until_it_hears_again() {
        let mut q = Quarantine::default();
        let now = Instant::now();
        q.judge_probe(now, false, true);
        for _ in 0..20 {
            q.judge_probe(now, true, false);
        }
        assert!(
            !q.withhold_refutation(now, STALE, 1),
            "one silent probe is loss, not deafness"
        );
        q.judge_probe(now, false, true);
        q.judge_probe(now, false, false);
        q.judge_probe(now, true, false);
        q.judge_probe(now, false, true);
        assert!(q.withhold_refutation(now, STALE, 3));
        assert!(q.active());
        assert!(q.withhold_refutation(now, STALE, 2), "stays in quarantine");
        for _ in 0..16 {
            q.judge_probe(now, true, false);
        }
        assert_eq!(
            q.lift(),
            Some(3),
            "the highest accusation is refuted on release"
        );
        assert!(!q.active());
        assert!(
            !q.withhold_refutation(now, STALE, 4),
            "the old silence is forgotten"
        );
    }

    #[test]
    fn three_direct_acks_missed_in_four_is_deafness_and_two_in_sixteen_lift_it() {
        let mut q = Quarantine::default();
        let now = Instant::now();
        for i in 0..7 {
            q.judge_probe(now, i % 4 == 0, false);
        }
        assert!(
            !q.withhold_refutation(now, STALE, 0),
            "too few probes to judge"
        );
        q.judge_probe(now, false, false);
        assert!(
            q.withhold_refutation(now, STALE, 0),
            "6 of 8 direct acks missed"
        );
        for i in 0..16 {
            q.judge_probe(now, i % 4 != 0, false);
            assert_eq!(q.lift(), None, "12 of 16 is not enough");
        }
        for i in 0..16 {
            q.judge_probe(now, i % 8 != 0, false);
        }
        assert_eq!(q.lift(), Some(0));
    }

    #[test]
    fn failures_with_nacks_and_a_quarter_of_direct_acks_missed_are_hearing() {
        let mut q = Quarantine::default();
        let now = Instant::now();
        for i in 0..16 {
            q.judge_probe(now, i % 4 != 0, false);
        }
        assert_eq!(q.silent_probes(), 0);
        assert!(!q.withhold_refutation(now, STALE, 1));
    }

    #[test]
    fn old_evidence_is_dropped() {
        let mut q = Quarantine::default();
        let now = Instant::now();
        for _ in 0..16 {
            q.judge_probe(now, false, true);
        }
        assert!(!q.withhold_refutation(now + STALE * 2, STALE, 1));
        assert!(
            !q.withhold_refutation(now, STALE, 1),
            "dropped, not kept for later"
        );
    }
}
