//! The simulator's one event queue: actions keyed by (virtual instant, sequence number), so
//! actions due at the same instant run in the order they were scheduled. Generic over the
//! action, so that a benchmark running another protocol on the simulated network schedules
//! its own.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Something the simulation does at an instant.
#[derive(Debug)]
pub(super) enum Action {
    /// A message from slot `from` arrives at slot `to` (`queued`: with processing time,
    /// it has not yet waited its turn at the receiver).
    Deliver {
        to: u32,
        from: u32,
        payload: Vec<u8>,
        reliable: bool,
        queued: bool,
    },
    /// Slot `slot`'s timer (ignored if it was re-armed since).
    Wake { slot: u32 },
    /// A leaving member is stopped (if it is still process `boot_id`).
    StopLeaver { slot: u32, boot_id: u32 },
}

/// An action and when it is due: (nanoseconds since the origin, sequence number) order the
/// queue. Kept inline in the calendar so a bucket is drained front to back in memory.
#[derive(Debug)]
struct Entry<A> {
    at: u64,
    seq: u64,
    action: A,
}

impl<A> Entry<A> {
    fn key(&self) -> (u64, u64) {
        (self.at, self.seq)
    }
}

impl<A> PartialEq for Entry<A> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl<A> Eq for Entry<A> {}
impl<A> PartialOrd for Entry<A> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<A> Ord for Entry<A> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Width of a calendar bucket: 2^17 ns, about 131 µs. A bucket is sorted when the calendar
/// reaches it; at 100 000 members a millisecond held about 450 actions, an eighth of one
/// holds about 56, so each is moved fewer times by the sort.
const BUCKET_SHIFT: u32 = 17;
/// Buckets in the calendar: about four seconds ahead; later actions wait in a heap.
const BUCKETS: u64 = 32768;
/// Room a bucket keeps once passed: eight times as many buckets as when they were a
/// millisecond wide, so an eighth of the room, and the calendar holds no more than it did.
const BUCKET_KEPT: usize = 8;

fn bucket(at: u64) -> u64 {
    at >> BUCKET_SHIFT
}

/// Actions waiting for their instant, earliest (then first scheduled) first.
///
/// A calendar queue: one bucket per 131 µs for the next four seconds, where nearly
/// every action lands (deliveries, probe timers), and a heap for the rest. Only the current
/// bucket is kept sorted; the others are sorted when the calendar reaches them. A binary
/// heap of every pending action cost a cache miss per level of each pop at 100 000 members.
#[derive(Debug)]
pub struct EventQueue<A> {
    origin: Instant,
    /// Bucket `b` (absolute) is `calendar[b % BUCKETS]`, for `b` in `cursor..cursor +
    /// BUCKETS`. The current one is sorted latest first, so the next action is its last.
    calendar: Vec<Vec<Entry<A>>>,
    /// The current bucket: nothing is due before it.
    cursor: u64,
    /// Actions in the calendar.
    in_calendar: usize,
    /// Actions due after the calendar's end when they were scheduled.
    later: BinaryHeap<Reverse<Entry<A>>>,
    seq: u64,
    /// The last `until` popped against, as an offset: a run pops every action against
    /// one, and converting an instant costs more than comparing one.
    limit: Option<(Instant, u64)>,
}

impl<A> EventQueue<A> {
    /// An empty queue; every instant pushed must be at or after `origin`.
    pub fn new(origin: Instant) -> Self {
        Self {
            origin,
            calendar: (0..BUCKETS).map(|_| Vec::new()).collect(),
            cursor: 0,
            in_calendar: 0,
            later: BinaryHeap::new(),
            seq: 0,
            limit: None,
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(since).expect("a simulation shorter than 584 years")
    }

    fn slot(&mut self, b: u64) -> &mut Vec<Entry<A>> {
        &mut self.calendar[(b % BUCKETS) as usize]
    }

    /// Schedules `action` at `at`, which must not be before the last action popped.
    pub fn push(&mut self, at: Instant, action: A) {
        let seq = self.seq;
        self.seq += 1;
        let entry = Entry {
            at: self.nanos(at),
            seq,
            action,
        };
        let b = bucket(entry.at);
        debug_assert!(b >= self.cursor, "BUG! an action scheduled in the past");
        let b = b.max(self.cursor);
        if b - self.cursor >= BUCKETS {
            self.later.push(Reverse(entry));
            return;
        }
        self.in_calendar += 1;
        let current = b == self.cursor;
        let slot = self.slot(b);
        if current {
            let at = slot.partition_point(|e| *e > entry);
            slot.insert(at, entry);
        } else {
            slot.push(entry);
        }
    }

    /// The next action due at or before `until`, with its instant.
    pub fn pop_until(&mut self, until: Instant) -> Option<(Instant, A)> {
        let limit = match self.limit {
            Some((at, nanos)) if at == until => nanos,
            _ => {
                let nanos = self.nanos(until);
                self.limit = Some((until, nanos));
                nanos
            }
        };
        loop {
            let cursor = self.cursor;
            let slot = self.slot(cursor);
            if let Some(e) = slot.last() {
                if e.at > limit {
                    return None;
                }
                let e = slot.pop().expect("just seen");
                self.in_calendar -= 1;
                return Some((self.origin + Duration::from_nanos(e.at), e.action));
            }
            // The current bucket is empty: on to the next one with an action, never past
            // `until`'s (an action may still be scheduled at `until`).
            let last = bucket(limit);
            if cursor >= last {
                return None;
            }
            // A bucket keeps what a burst made it hold only until it is passed: 32 768
            // of them holding their largest burst cost more than the queue's contents.
            slot.shrink_to(BUCKET_KEPT);
            // Buckets past `last` need no look: the cursor stops there anyway.
            let end = (cursor + BUCKETS).min(last + 1);
            let in_calendar = (self.in_calendar > 0)
                .then(|| (cursor + 1..end).find(|&b| !self.slot(b).is_empty()))
                .flatten();
            let in_later = self.later.peek().map(|Reverse(e)| bucket(e.at));
            let next = match (in_calendar, in_later) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(last),
            };
            self.advance(next.min(last));
        }
    }

    /// Makes bucket `b` current: the actions of the heap due in it join it, sorted.
    fn advance(&mut self, b: u64) {
        self.cursor = b;
        while self
            .later
            .peek()
            .is_some_and(|Reverse(e)| bucket(e.at) <= b)
        {
            let Reverse(entry) = self.later.pop().expect("just seen");
            self.in_calendar += 1;
            self.slot(b).push(entry);
        }
        self.slot(b).sort_unstable_by(|x, y| y.cmp(x));
    }
}
