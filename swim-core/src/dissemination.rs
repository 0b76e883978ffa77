//! Piggybacked dissemination: queues of encoded membership updates and user broadcasts,
//! sent fewest-transmissions first (newest first among equals), each at most
//! `λ·⌈log10(N+1)⌉` times, sharing every packet by one rule; a newer update about the same
//! member replaces the older one; gossip rounds; each user broadcast delivered once.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand_core::RngCore;

use crate::compact::ReleaseWhenEmpty;
use crate::config::Config;
use crate::membership::{MemberId, MemberState};
use crate::stats::Stats;
use crate::view::View;
use crate::wire::{self, Item, Message, Silence};

/// User broadcasts already delivered, so each is delivered once: bounded, oldest forgotten.
const USER_SEEN_CAPACITY: usize = 8192;

/// What an update is about; a new update with the same key invalidates the queued one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    /// The latest state of one member.
    Member(MemberId),
    /// One user broadcast, numbered in the order this node queued it.
    User(u64),
}

#[derive(Debug, Clone)]
struct Entry {
    bytes: Vec<u8>,
    transmits: u32,
    seq: u64,
    /// For an accusation: when its subject was last heard. Its last bytes, the silence, are
    /// rewritten from this at each send, so that the time it waited here counts.
    heard: Option<Instant>,
}

/// Encoded items waiting to be piggybacked.
#[derive(Debug, Clone, Default)]
pub(crate) struct BroadcastQueue {
    /// Boxed: a map's node has room for eleven values, and a queue mostly holds a few.
    entries: BTreeMap<Key, Box<Entry>>,
    /// (transmissions so far, newest first, key): the send order.
    order: BTreeSet<(u32, Reverse<u64>, Key)>,
    next_seq: u64,
}

/// Stop looking for an item that fits after this many misses: items are small, so a packet
/// this full is done.
const MAX_MISSES: usize = 32;

impl BroadcastQueue {
    /// Queues `bytes` (an encoded item), replacing any queued item with the same key.
    pub(crate) fn push(&mut self, key: Key, bytes: Vec<u8>) {
        self.push_stamped(key, bytes, None);
    }

    /// Queues `bytes`, an encoded item that ends with a [`Silence`] counted from `heard`
    /// when it is `Some` (restamped at each send).
    pub(crate) fn push_stamped(&mut self, key: Key, bytes: Vec<u8>, heard: Option<Instant>) {
        self.remove(key);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert((0, Reverse(seq), key));
        self.entries.insert(
            key,
            Box::new(Entry {
                bytes,
                transmits: 0,
                seq,
                heard,
            }),
        );
    }

    pub(crate) fn remove(&mut self, key: Key) {
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&(old.transmits, Reverse(old.seq), key));
            self.release_when_empty();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn contains(&self, key: Key) -> bool {
        self.entries.contains_key(&key)
    }

    /// The queued accusation under `key`, if any, now counts its silence from `heard`.
    pub(crate) fn restamp(&mut self, key: Key, heard: Instant) {
        if let Some(e) = self.entries.get_mut(&key) {
            if e.heard.is_some() {
                e.heard = Some(heard);
            }
        }
    }

    /// Appends queued items to `buf` while it stays within `max_len` bytes, fewest-sent
    /// first, accusations with their silence as of `now` (unknown without: on a stream,
    /// which retransmissions may hold for long); counts a transmission for each and drops
    /// those that reached `limit`. Returns how many items were appended.
    pub(crate) fn fill(
        &mut self,
        buf: &mut Vec<u8>,
        max_len: usize,
        limit: u32,
        now: Option<Instant>,
    ) -> usize {
        // Chosen first, copied after: the packet grows once, to its final length.
        let mut chosen = Vec::new();
        let free = max_len.saturating_sub(buf.len());
        let (mut room, mut misses) = (free, 0);
        for &(transmits, seq, key) in &self.order {
            if room == 0 || misses >= MAX_MISSES {
                break;
            }
            let len = self.entries[&key].bytes.len();
            if len <= room {
                room -= len;
                chosen.push((transmits, seq, key));
            } else {
                misses += 1;
            }
        }
        buf.reserve(free - room);
        for &(transmits, seq, key) in &chosen {
            let entry = self
                .entries
                .get_mut(&key)
                .expect("BUG! order and entries disagree");
            buf.extend_from_slice(&entry.bytes);
            if let Some(heard) = entry.heard {
                let silent = now.map_or(Silence::UNKNOWN, |now| Silence::since(heard, now));
                let at = buf.len() - Silence::LEN;
                buf[at..].copy_from_slice(&silent.0);
            }
            self.order.remove(&(transmits, seq, key));
            entry.transmits += 1;
            if entry.transmits >= limit {
                self.entries.remove(&key);
            } else {
                self.order.insert((entry.transmits, seq, key));
            }
        }
        self.release_when_empty();
        chosen.len()
    }

    fn release_when_empty(&mut self) {
        self.entries.release_when_empty();
        self.order.release_when_empty();
    }
}

/// What this node has to piggyback, and when its next gossip round is.
///
/// Membership updates and user broadcasts share each packet by one rule: **each class is
/// guaranteed half of the free space when it has something queued, and space one class
/// leaves unused goes to the other** (membership first fills its half, then user broadcasts
/// fill what remains, then membership takes any leftover).
#[derive(Debug)]
pub(crate) struct Dissemination {
    /// Membership updates (keyed by member).
    updates: BroadcastQueue,
    /// User broadcasts (keyed by origin and sequence number).
    users: BroadcastQueue,
    /// When the next gossip round may run (only when something is queued).
    next_round: Instant,
    /// Sequence number of this node's next own broadcast.
    user_seq: u32,
    /// Key of the next broadcast queued (own or relayed).
    next_user_key: u64,
    /// Broadcasts delivered (or sent) already, and the order to forget them in.
    /// By origin name, so that no name is interned for a broadcast (its origin need not be
    /// in this view yet).
    seen: BTreeSet<(Arc<str>, u32)>,
    seen_order: VecDeque<(Arc<str>, u32)>,
}

impl Dissemination {
    pub(crate) fn new(first_round: Instant) -> Self {
        Self {
            updates: BroadcastQueue::default(),
            users: BroadcastQueue::default(),
            next_round: first_round,
            user_seq: 0,
            next_user_key: 0,
            seen: BTreeSet::new(),
            seen_order: VecDeque::new(),
        }
    }

    /// The membership update queue, for the transitions that fill it.
    pub(crate) fn updates(&mut self) -> &mut BroadcastQueue {
        &mut self.updates
    }

    /// Whether an update about this member is still queued.
    pub(crate) fn has_update(&self, id: MemberId) -> bool {
        self.updates.contains(Key::Member(id))
    }

    /// Updates and broadcasts waiting.
    pub(crate) fn pending(&self) -> usize {
        self.updates.len() + self.users.len()
    }

    /// The gossip timer: set while anything waits to be spread.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        (self.pending() > 0).then_some(self.next_round)
    }

    pub(crate) fn schedule_round(&mut self, at: Instant) {
        self.next_round = at;
    }

    /// Appends what fits in `max` bytes to `buf`, by the sharing rule; counts a transmission
    /// for each item (dropping those sent `limit` times) and the items piggybacked.
    pub(crate) fn piggyback(
        &mut self,
        buf: &mut Vec<u8>,
        max: usize,
        limit: u32,
        now: Option<Instant>,
        stats: &mut Stats,
    ) {
        let (updates, users) = if self.users.is_empty() {
            (self.updates.fill(buf, max, limit, now), 0)
        } else {
            let half = buf.len() + max.saturating_sub(buf.len()) / 2;
            let mut updates = self.updates.fill(buf, half, limit, now);
            let users = self.users.fill(buf, max, limit, now);
            updates += self.updates.fill(buf, max, limit, now);
            (updates, users)
        };
        stats.updates_piggybacked += updates as u64;
        stats.user_broadcasts_piggybacked += users as u64;
    }

    /// A gossip round: a `Gossip` packet, filled with what is queued, for each of up to
    /// `gossip_fanout` random members — alive and suspect ones, and members dead for less than
    /// `gossip_to_dead_time` (so a wrongly declared member hears of it and refutes). Stops at
    /// the first packet with nothing to carry. Returns (address, name, payload) of each.
    pub(crate) fn gossip_round(
        &mut self,
        now: Instant,
        view: &View,
        rng: &mut impl RngCore,
        config: &Config,
        limit: u32,
        stats: &mut Stats,
    ) -> Vec<(SocketAddr, Arc<str>, Vec<u8>)> {
        let to_dead = config.gossip_to_dead_time;
        let targets = view.sample(rng, config.gossip_fanout, None, |m| match m.state {
            MemberState::Alive | MemberState::Suspect => true,
            MemberState::Dead => now.saturating_duration_since(m.since) < to_dead,
            MemberState::Left => false,
        });
        let mut packets = Vec::with_capacity(targets.len());
        for id in targets {
            let Some(m) = view.get(id) else {
                continue;
            };
            let mut buf = wire::encode_message(config.framing, &Message::Gossip);
            let header = buf.len();
            self.piggyback(&mut buf, config.max_datagram_size, limit, Some(now), stats);
            if buf.len() == header {
                break;
            }
            packets.push((m.addr, m.name.clone(), buf));
        }
        packets
    }

    /// Queues this node's own broadcast.
    pub(crate) fn originate(&mut self, my_name: &Arc<str>, payload: &[u8]) {
        let seq = self.user_seq;
        self.user_seq = self.user_seq.wrapping_add(1);
        self.remember(my_name.clone(), seq);
        self.queue_user(my_name, seq, payload);
    }

    /// A broadcast from `origin` (not this node): its origin's name, and the broadcast queued
    /// to spread on, the first time it arrives; `None` after.
    pub(crate) fn receive(&mut self, origin: &str, seq: u32, payload: &[u8]) -> Option<Arc<str>> {
        let key = (Arc::<str>::from(origin), seq);
        if self.seen.contains(&key) {
            return None;
        }
        self.remember(key.0.clone(), seq);
        self.queue_user(origin, seq, payload);
        Some(key.0)
    }

    fn queue_user(&mut self, origin: &str, seq: u32, payload: &[u8]) {
        let bytes = wire::encode_item(&Item::User {
            origin,
            seq,
            payload,
        });
        let key = Key::User(self.next_user_key);
        self.next_user_key += 1;
        self.users.push(key, bytes);
    }

    /// Remembers `(origin, seq)` as delivered; a bounded number of them.
    fn remember(&mut self, origin: Arc<str>, seq: u32) {
        if !self.seen.insert((origin.clone(), seq)) {
            return;
        }
        self.seen_order.push_back((origin, seq));
        if self.seen_order.len() > USER_SEEN_CAPACITY {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn fewest_sent_first_and_limit() {
        let mut q = BroadcastQueue::default();
        q.push(Key::Member(1), vec![1; 10]);
        q.push(Key::Member(2), vec![2; 10]);
        let mut buf = Vec::new();
        assert_eq!(q.fill(&mut buf, 15, 2, Some(Instant::now())), 1);
        assert_eq!(buf, vec![2; 10], "newest first among equals");
        buf.clear();
        assert_eq!(q.fill(&mut buf, 15, 2, Some(Instant::now())), 1);
        assert_eq!(buf, vec![1; 10], "then the one sent fewer times");
        buf.clear();
        assert_eq!(q.fill(&mut buf, 100, 2, Some(Instant::now())), 2);
        assert!(q.is_empty(), "both reached the limit of 2");
    }

    #[test]
    fn newer_update_replaces_older() {
        let mut q = BroadcastQueue::default();
        q.push(Key::Member(1), vec![1; 3]);
        q.push(Key::Member(1), vec![9; 3]);
        assert_eq!(q.len(), 1);
        let mut buf = Vec::new();
        q.fill(&mut buf, 100, 5, Some(Instant::now()));
        assert_eq!(buf, vec![9; 3]);
    }

    #[test]
    fn never_exceeds_max_len() {
        let mut q = BroadcastQueue::default();
        for i in 0..100 {
            q.push(Key::Member(i), vec![0; 1 + (i as usize % 7)]);
        }
        let mut buf = vec![0; 5];
        q.fill(&mut buf, 64, 3, Some(Instant::now()));
        assert!(buf.len() <= 64);
    }

    #[test]
    fn an_accusation_is_sent_with_its_silence_as_of_each_send_and_unknown_on_a_stream() {
        let t0 = Instant::now();
        let mut q = BroadcastQueue::default();
        // An item whose last four bytes are its silence.
        q.push_stamped(Key::Member(1), vec![7, 7, 0, 0, 0, 0], Some(t0));
        let sent = |q: &mut BroadcastQueue, now| {
            let mut buf = Vec::new();
            q.fill(&mut buf, 100, 10, now);
            buf
        };
        let at = |ms| Some(t0 + Duration::from_micros(ms));
        let silent = |ms: u32| [&[7u8, 7][..], &ms.to_le_bytes()].concat();
        assert_eq!(sent(&mut q, at(1_500_000)), silent(1500));
        assert_eq!(sent(&mut q, at(2_000_001)), silent(2001), "rounded up");
        // A peer heard the member 1.2 s after this node did.
        q.restamp(Key::Member(1), t0 + Duration::from_millis(1200));
        assert_eq!(sent(&mut q, at(3_000_000)), silent(1800));
        assert_eq!(sent(&mut q, None), [7, 7, 0xff, 0xff, 0xff, 0xff], "stream");
        // An item without a silence is never rewritten, nor restamped into one.
        q.push(Key::Member(2), vec![1, 2, 3, 4, 5]);
        q.restamp(Key::Member(2), t0);
        let mut buf = Vec::new();
        q.fill(&mut buf, 100, 10, at(9_000_000));
        assert_eq!(buf[..5], [1, 2, 3, 4, 5], "fewest sent first, as given");
    }
}
