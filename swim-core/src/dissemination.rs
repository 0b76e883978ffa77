//! Piggybacked dissemination: a queue of encoded updates, sent fewest-transmissions first
//! (newest first among equals), each at most `λ·⌈log10(N+1)⌉` times; a newer update about the
//! same member replaces the older one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::error::{ApiMisuse, Error};
use crate::event::Event;
use crate::membership::{MemberId, MemberState};
use crate::node::Node;
use crate::wire::{self, Item, Message};

/// What an update is about; a new update with the same key invalidates the queued one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    /// The latest state of one member.
    Member(MemberId),
    /// One user broadcast: origin and its sequence number.
    User(MemberId, u32),
}

#[derive(Debug, Clone)]
struct Entry {
    bytes: Vec<u8>,
    transmits: u32,
    seq: u64,
}

/// Encoded items waiting to be piggybacked.
#[derive(Debug, Clone, Default)]
pub(crate) struct BroadcastQueue {
    entries: BTreeMap<Key, Entry>,
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
        self.remove(key);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert((0, Reverse(seq), key));
        self.entries.insert(
            key,
            Entry {
                bytes,
                transmits: 0,
                seq,
            },
        );
    }

    pub(crate) fn remove(&mut self, key: Key) {
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&(old.transmits, Reverse(old.seq), key));
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

    /// Appends queued items to `buf` while it stays within `max_len` bytes, fewest-sent
    /// first; counts a transmission for each and drops those that reached `limit`.
    /// Returns how many items were appended.
    pub(crate) fn fill(&mut self, buf: &mut Vec<u8>, max_len: usize, limit: u32) -> usize {
        let mut chosen = Vec::new();
        let mut misses = 0;
        for &(transmits, seq, key) in &self.order {
            let room = max_len.saturating_sub(buf.len());
            if room == 0 || misses >= MAX_MISSES {
                break;
            }
            let bytes = &self.entries[&key].bytes;
            if bytes.len() <= room {
                buf.extend_from_slice(bytes);
                chosen.push((transmits, seq, key));
            } else {
                misses += 1;
            }
        }
        for &(transmits, seq, key) in &chosen {
            self.order.remove(&(transmits, seq, key));
            let entry = self
                .entries
                .get_mut(&key)
                .expect("BUG! order and entries disagree");
            entry.transmits += 1;
            if entry.transmits >= limit {
                self.entries.remove(&key);
            } else {
                self.order.insert((entry.transmits, seq, key));
            }
        }
        chosen.len()
    }
}

/// Piggybacking and gossip rounds; membership updates and user broadcasts share each packet
/// by one rule: **each class is guaranteed half of the free space when it has something
/// queued, and space one class leaves unused goes to the other** (membership first fills its
/// half, then user broadcasts fill what remains, then membership takes any leftover).
impl Node {
    pub(crate) fn piggyback(&mut self, buf: &mut Vec<u8>) {
        let max = self.config.max_datagram_size;
        let limit = self.config.timings(self.cluster_size()).retransmit_limit();
        let mut members = 0;
        let mut users = 0;
        if self.user_queue.is_empty() {
            members += self.member_queue.fill(buf, max, limit);
        } else {
            let half = buf.len() + max.saturating_sub(buf.len()) / 2;
            members += self.member_queue.fill(buf, half, limit);
            users += self.user_queue.fill(buf, max, limit);
            members += self.member_queue.fill(buf, max, limit);
        }
        self.stats.updates_piggybacked += members as u64;
        self.stats.user_broadcasts_piggybacked += users as u64;
    }

    /// Sends queued updates to `gossip_fanout` random members: alive and suspect ones, and
    /// members dead for less than `gossip_to_dead_time` (so a wrongly declared member hears of
    /// it and refutes).
    pub(crate) fn gossip_round(&mut self, now: Instant) {
        let to_dead = self.config.gossip_to_dead_time;
        let targets = self.sample_members(self.config.gossip_fanout, None, |m| match m.state {
            MemberState::Alive | MemberState::Suspect => true,
            MemberState::Dead => now.saturating_duration_since(m.since) < to_dead,
            MemberState::Left => false,
        });
        for id in targets {
            let Some(m) = self.members.get(id) else {
                continue;
            };
            let (addr, name) = (m.addr, m.name.clone());
            let mut buf = wire::encode_message(&Message::Gossip);
            let header = buf.len();
            self.piggyback(&mut buf);
            if buf.len() == header {
                break;
            }
            self.send(addr, Some(name), buf, wire::MessageKind::Gossip, false);
        }
    }

    /// Queues an application broadcast: every member receives it once, as
    /// [`Event::UserBroadcast`], piggybacked like membership updates.
    pub fn broadcast(&mut self, payload: &[u8]) -> Result<(), Error> {
        if self.left {
            return Err(ApiMisuse::Left.into());
        }
        if payload.len() > self.config.max_broadcast_size {
            return Err(ApiMisuse::BroadcastTooLarge {
                len: payload.len(),
                max: self.config.max_broadcast_size,
            }
            .into());
        }
        let seq = self.user_seq;
        self.user_seq = self.user_seq.wrapping_add(1);
        self.remember_user_broadcast(self.me, seq);
        let bytes = wire::encode_item(&Item::User {
            origin: &self.my_name,
            seq,
            payload,
        });
        self.user_queue.push(Key::User(self.me, seq), bytes);
        Ok(())
    }

    pub(crate) fn receive_user_broadcast(&mut self, origin: &str, seq: u32, payload: &[u8]) {
        let (origin_id, origin_name) = self.names.intern(origin);
        if origin_id == self.me || !self.remember_user_broadcast(origin_id, seq) {
            return;
        }
        self.events.push_back(Event::UserBroadcast {
            origin: origin_name,
            payload: payload.to_vec(),
        });
        let bytes = wire::encode_item(&Item::User {
            origin,
            seq,
            payload,
        });
        self.user_queue.push(Key::User(origin_id, seq), bytes);
    }

    /// True when `(origin, seq)` is new; remembers a bounded number of them.
    fn remember_user_broadcast(&mut self, origin: MemberId, seq: u32) -> bool {
        if !self.user_seen.insert((origin, seq)) {
            return false;
        }
        self.user_seen_order.push_back((origin, seq));
        if self.user_seen_order.len() > crate::node::USER_SEEN_CAPACITY {
            if let Some(old) = self.user_seen_order.pop_front() {
                self.user_seen.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fewest_sent_first_and_limit() {
        let mut q = BroadcastQueue::default();
        q.push(Key::Member(1), vec![1; 10]);
        q.push(Key::Member(2), vec![2; 10]);
        let mut buf = Vec::new();
        assert_eq!(q.fill(&mut buf, 15, 2), 1);
        assert_eq!(buf, vec![2; 10], "newest first among equals");
        buf.clear();
        assert_eq!(q.fill(&mut buf, 15, 2), 1);
        assert_eq!(buf, vec![1; 10], "then the one sent fewer times");
        buf.clear();
        assert_eq!(q.fill(&mut buf, 100, 2), 2);
        assert!(q.is_empty(), "both reached the limit of 2");
    }

    #[test]
    fn newer_update_replaces_older() {
        let mut q = BroadcastQueue::default();
        q.push(Key::Member(1), vec![1; 3]);
        q.push(Key::Member(1), vec![9; 3]);
        assert_eq!(q.len(), 1);
        let mut buf = Vec::new();
        q.fill(&mut buf, 100, 5);
        assert_eq!(buf, vec![9; 3]);
    }

    #[test]
    fn never_exceeds_max_len() {
        let mut q = BroadcastQueue::default();
        for i in 0..100 {
            q.push(Key::Member(i), vec![0; 1 + (i as usize % 7)]);
        }
        let mut buf = vec![0; 5];
        q.fill(&mut buf, 64, 3);
        assert!(buf.len() <= 64);
    }
}
