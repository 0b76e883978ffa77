//! The simulator's one event queue: actions keyed by (virtual instant, sequence number), so
//! actions due at the same instant run in the order they were scheduled.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

/// Something the simulation does at an instant.
#[derive(Debug)]
pub(super) enum Action {
    /// A message from slot `from` arrives at slot `to`.
    Deliver {
        to: usize,
        from: usize,
        payload: Vec<u8>,
        reliable: bool,
    },
    /// Slot `slot`'s timer (ignored if it was re-armed since).
    Wake { slot: usize },
    /// A leaving member is stopped (if it is still process `boot_id`).
    StopLeaver { slot: usize, boot_id: u32 },
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Actions waiting for their instant, earliest (then first scheduled) first.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    heap: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
}

impl EventQueue {
    pub(super) fn push(&mut self, at: Instant, action: Action) {
        let seq = self.seq;
        self.seq += 1;
        self.heap.push(Reverse(Scheduled { at, seq, action }));
    }

    /// The next action due at or before `until`, with its instant.
    pub(super) fn pop_until(&mut self, until: Instant) -> Option<(Instant, Action)> {
        if self.heap.peek()?.0.at > until {
            return None;
        }
        let Reverse(next) = self.heap.pop()?;
        Some((next.at, next.action))
    }
}
