//! The held-datagram ledger: whether QUIC ever holds back (for half a probe timeout or
//! more) or drops a SWIM datagram handed to it — what would turn loss into false suspicion.

use std::time::{Duration, Instant};

/// What happened to the SWIM datagrams handed to one connection. quinn sends a connection's
/// datagrams in order, so comparing how many were handed over with how many it has
/// transmitted finds the ones still waiting.
#[derive(Debug, Default)]
pub(crate) struct DatagramLedger {
    /// Datagrams handed to quinn.
    pub(crate) enqueued: u64,
    /// Datagrams quinn dropped from a full send buffer (at least one per overflowing send).
    pub(crate) dropped: u64,
    /// `enqueued` at the previous check.
    enqueued_at_check: u64,
    /// Datagrams up to this index were already checked for delay.
    checked_upto: u64,
}

impl DatagramLedger {
    /// Counts the datagrams handed over before the previous check and still not sent: held
    /// back by QUIC for at least one check period. Returns how many are newly found.
    pub(crate) fn newly_delayed(&mut self, transmitted: u64) -> u64 {
        let gone = transmitted + self.dropped;
        let old = self.enqueued_at_check;
        let first_unchecked = gone.max(self.checked_upto);
        let delayed = old.saturating_sub(first_unchecked);
        self.checked_upto = self.checked_upto.max(old);
        self.enqueued_at_check = self.enqueued;
        delayed
    }

    /// Whether some datagram has not yet been checked (otherwise the connection's stats
    /// need not be read).
    pub(crate) fn unchecked(&self) -> bool {
        self.checked_upto < self.enqueued
    }
}

/// When the ledgers are next checked: at most once per period (half a probe timeout, so any
/// hold long enough to cost a probe is seen), on the driver's own wake-ups — every probe,
/// every packet, the stats tick each second — rather than on a timer of its own.
#[derive(Debug)]
pub(crate) struct CheckSchedule {
    period: Duration,
    last: Instant,
}

impl CheckSchedule {
    pub(crate) fn new(probe_timeout: Duration, now: Instant) -> Self {
        Self {
            period: (probe_timeout / 2).max(Duration::from_millis(10)),
            last: now,
        }
    }

    /// Whether a check is due at `now` (and if so, counts it as done).
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if now.duration_since(self.last) < self.period {
            return false;
        }
        self.last = now;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_still_unsent_a_period_later_counts_once_as_delayed() {
        let mut l = DatagramLedger {
            enqueued: 3,
            ..DatagramLedger::default()
        };
        // First check: nothing is a period old yet.
        assert_eq!(l.newly_delayed(1), 0);
        // A period later two of the three are still waiting.
        assert_eq!(l.newly_delayed(1), 2);
        // Still waiting: not counted again.
        l.enqueued = 4;
        assert_eq!(l.newly_delayed(1), 0);
        assert!(l.unchecked());
        // All sent by the next check.
        assert_eq!(l.newly_delayed(4), 0);
        assert!(!l.unchecked());
    }

    #[test]
    fn datagrams_sent_promptly_are_never_delayed() {
        let mut l = DatagramLedger::default();
        for sent in 1..10 {
            l.enqueued = sent;
            assert_eq!(l.newly_delayed(sent), 0);
        }
    }

    #[test]
    fn checks_come_at_most_once_a_period() {
        let t = Instant::now();
        let mut s = CheckSchedule::new(Duration::from_millis(500), t);
        assert!(!s.due(t + Duration::from_millis(100)));
        assert!(s.due(t + Duration::from_millis(250)));
        assert!(!s.due(t + Duration::from_millis(400)));
        assert!(s.due(t + Duration::from_millis(500)));
    }
}
