//! Tombstones: dead and left members are kept (so that stale news about them is recognised
//! as stale) for `Config::tombstone_timeout` after they entered that state, then forgotten.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::membership::MemberId;

/// When each dead or left member is to be forgotten, earliest first.
#[derive(Debug)]
pub(crate) struct Tombstones {
    /// (reap at, member).
    reap_at: BTreeSet<(Instant, MemberId)>,
    /// How long a tombstone is kept.
    timeout: Duration,
}

impl Tombstones {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            reap_at: BTreeSet::new(),
            timeout,
        }
    }

    /// `id` became dead or left at `since`.
    pub(crate) fn bury(&mut self, id: MemberId, since: Instant) {
        self.reap_at.insert((since + self.timeout, id));
    }

    /// `id`, dead or left since `since`, changed state again: it is not to be reaped.
    pub(crate) fn exhume(&mut self, id: MemberId, since: Instant) {
        self.reap_at.remove(&(since + self.timeout, id));
    }

    /// The next member whose tombstone time is over by `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<MemberId> {
        match self.reap_at.first() {
            Some(&(at, id)) if at <= now => {
                self.reap_at.pop_first();
                Some(id)
            }
            _ => None,
        }
    }

    /// When the next tombstone is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.reap_at.first().map(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_come_due_in_order_and_an_exhumed_one_never() {
        let now = Instant::now();
        let mut t = Tombstones::new(Duration::from_secs(10));
        t.bury(4, now + Duration::from_secs(2));
        t.bury(2, now);
        t.bury(9, now + Duration::from_secs(1));
        t.exhume(9, now + Duration::from_secs(1));
        assert_eq!(t.deadline(), Some(now + Duration::from_secs(10)));
        assert_eq!(t.pop_due(now + Duration::from_secs(9)), None);
        let late = now + Duration::from_secs(60);
        assert_eq!(t.pop_due(late), Some(2));
        assert_eq!(t.pop_due(late), Some(4));
        assert_eq!(t.pop_due(late), None);
    }
}
