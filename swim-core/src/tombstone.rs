//! Tombstones: a member that left is kept (so stale news about it is recognised as stale)
//! for `Config::tombstone_timeout`; a member declared dead is kept — listed, and contacted
//! at the reconnect cadence — for `Config::reconnect_timeout`, and at most
//! `Config::max_dead_members` of them, the longest-dead forgotten first past that bound.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::membership::MemberId;

/// Dead and left members by the time they entered that state, earliest first.
#[derive(Debug)]
pub(crate) struct Tombstones {
    /// (left at, member).
    left: BTreeSet<(Instant, MemberId)>,
    /// (declared dead at, member).
    dead: BTreeSet<(Instant, MemberId)>,
    left_timeout: Duration,
    dead_timeout: Duration,
    max_dead: usize,
    /// `deadline()`, kept as the sets change: every input asks for it, and reading the sets
    /// for it touched memory no other part of that input needed.
    next: Option<Instant>,
}

/// Why a member is forgotten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Forgotten {
    /// It left, `tombstone_timeout` ago.
    Left,
    /// It has been dead for `reconnect_timeout`: this node gives up on it.
    GaveUp,
    /// More than `max_dead_members` are dead and it has been dead longest.
    Evicted,
}

impl Tombstones {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            left: BTreeSet::new(),
            dead: BTreeSet::new(),
            left_timeout: config.tombstone_timeout,
            dead_timeout: config.reconnect_timeout,
            max_dead: config.max_dead_members,
            next: None,
        }
    }

    fn set(&mut self, dead: bool) -> &mut BTreeSet<(Instant, MemberId)> {
        if dead {
            &mut self.dead
        } else {
            &mut self.left
        }
    }

    /// `id` became dead (or left, `dead == false`) at `since`.
    pub(crate) fn bury(&mut self, id: MemberId, since: Instant, dead: bool) {
        self.set(dead).insert((since, id));
        self.next = self.compute_deadline();
    }

    /// `id`, dead (or left) since `since`, changed state again: it is not to be forgotten.
    pub(crate) fn exhume(&mut self, id: MemberId, since: Instant, dead: bool) {
        self.set(dead).remove(&(since, id));
        self.next = self.compute_deadline();
    }

    /// The next member to forget by `now`, and why.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(MemberId, Forgotten)> {
        let due = self.take_due(now);
        if due.is_some() {
            self.next = self.compute_deadline();
        }
        due
    }

    fn take_due(&mut self, now: Instant) -> Option<(MemberId, Forgotten)> {
        if self.dead.len() > self.max_dead {
            return self
                .dead
                .pop_first()
                .map(|(_, id)| (id, Forgotten::Evicted));
        }
        if let Some(&(since, id)) = self.dead.first() {
            if since + self.dead_timeout <= now {
                self.dead.pop_first();
                return Some((id, Forgotten::GaveUp));
            }
        }
        match self.left.first() {
            Some(&(since, id)) if since + self.left_timeout <= now => {
                self.left.pop_first();
                Some((id, Forgotten::Left))
            }
            _ => None,
        }
    }

    /// When the next member is to be forgotten (at once, past the dead bound).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.next
    }

    fn compute_deadline(&self) -> Option<Instant> {
        let dead = self.dead.first().map(|&(since, _)| {
            if self.dead.len() > self.max_dead {
                since
            } else {
                since + self.dead_timeout
            }
        });
        let left = self
            .left
            .first()
            .map(|&(since, _)| since + self.left_timeout);
        dead.into_iter().chain(left).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(left_s: u64, dead_s: u64, max_dead: usize) -> Config {
        Config {
            tombstone_timeout: Duration::from_secs(left_s),
            reconnect_timeout: Duration::from_secs(dead_s),
            max_dead_members: max_dead,
            ..Config::default()
        }
    }

    #[test]
    fn left_members_go_after_the_tombstone_time_dead_ones_after_the_reconnect_time() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let mut t = Tombstones::new(&config(10, 100, 8));
        t.bury(4, now + s(2), false);
        t.bury(2, now, false);
        t.bury(9, now + s(1), false);
        t.exhume(9, now + s(1), false);
        t.bury(7, now, true);
        assert_eq!(t.deadline(), Some(now + s(10)));
        assert_eq!(t.pop_due(now + s(9)), None);
        let late = now + s(60);
        assert_eq!(t.pop_due(late), Some((2, Forgotten::Left)));
        assert_eq!(t.pop_due(late), Some((4, Forgotten::Left)));
        assert_eq!(t.pop_due(late), None, "the dead member is still listed");
        assert_eq!(t.deadline(), Some(now + s(100)));
        assert_eq!(t.pop_due(now + s(100)), Some((7, Forgotten::GaveUp)));
        assert_eq!(t.deadline(), None);
    }

    #[test]
    fn past_the_bound_the_longest_dead_is_forgotten_at_once() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let mut t = Tombstones::new(&config(10, 100, 2));
        t.bury(1, now + s(3), true);
        t.bury(2, now + s(1), true);
        assert_eq!(t.deadline(), Some(now + s(101)));
        t.bury(3, now + s(5), true);
        assert!(t.deadline().unwrap() <= now + s(5), "due at once");
        assert_eq!(t.pop_due(now + s(5)), Some((2, Forgotten::Evicted)));
        assert_eq!(t.pop_due(now + s(5)), None);
    }
}
