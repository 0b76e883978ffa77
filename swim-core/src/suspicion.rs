//! Lifeguard's dynamic suspicion timeout: a suspicion starts at the maximum timeout and
//! shrinks towards the minimum as independent confirmations (distinct accusers) arrive.

use std::time::{Duration, Instant};

use crate::membership::MemberId;

/// One open suspicion about a member.
#[derive(Debug, Clone)]
pub(crate) struct Suspicion {
    /// The incarnation suspected; a refutation carries a higher one.
    pub incarnation: u32,
    /// When this node first suspected (or heard the suspicion).
    pub start: Instant,
    /// Timeout once `k` confirmations arrived.
    min: Duration,
    /// Timeout with no confirmation.
    max: Duration,
    /// Confirmations needed to reach `min`.
    k: u32,
    /// Distinct accusers, the first one included.
    accusers: Vec<MemberId>,
}

impl Suspicion {
    pub(crate) fn new(
        incarnation: u32,
        accuser: MemberId,
        start: Instant,
        min: Duration,
        max: Duration,
        k: u32,
    ) -> Self {
        Self {
            incarnation,
            start,
            min,
            max,
            k,
            accusers: vec![accuser],
        }
    }

    /// Records an accuser; true when it is a new, independent one that shortened the timeout.
    pub(crate) fn confirm(&mut self, accuser: MemberId) -> bool {
        if self.confirmations() >= self.k || self.accusers.contains(&accuser) {
            return false;
        }
        self.accusers.push(accuser);
        true
    }

    fn confirmations(&self) -> u32 {
        self.accusers.len() as u32 - 1
    }

    /// `max − (max − min) · log(c + 1) / log(k + 1)`, never below `min` (Lifeguard §IV-B).
    pub(crate) fn timeout(&self) -> Duration {
        if self.k == 0 || self.max <= self.min {
            return self.min;
        }
        let c = self.confirmations().min(self.k) as f64;
        let fraction = (c + 1.0).ln() / (self.k as f64 + 1.0).ln();
        let spread = (self.max - self.min).as_secs_f64();
        let timeout = self.max.as_secs_f64() - spread * fraction;
        Duration::from_secs_f64(timeout).max(self.min)
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.start + self.timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_shrinks_from_max_to_min_with_confirmations() {
        let now = Instant::now();
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        let mut s = Suspicion::new(0, 1, now, min, max, 3);
        assert_eq!(s.timeout(), max);
        assert!(s.confirm(2));
        let one = s.timeout();
        assert!(one < max && one > min);
        assert!(!s.confirm(2), "the same accuser twice is not independent");
        assert!(s.confirm(3));
        assert!(s.confirm(4));
        assert_eq!(s.timeout(), min);
        assert!(!s.confirm(5), "no change past k");
    }
}
