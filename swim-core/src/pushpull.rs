//! Anti-entropy and joining: full-state push-pull over a reliable stream, periodic (interval
//! scaled with cluster size, preceded by a table fingerprint so equal tables exchange nothing
//! more) and on join (retried with exponential backoff).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::membership::{MemberId, MemberState};
use crate::node::Node;
use crate::wire::{self, Item, Message, MessageKind, Packet, StateEntry};

impl Node {
    /// Sends this node's full state to `to` (a request, or the `response` to one).
    pub(crate) fn send_push_pull(
        &mut self,
        to: SocketAddr,
        name: Option<Arc<str>>,
        response: bool,
        join: bool,
    ) {
        let cluster = self.config.cluster_name.clone();
        let mut buf = wire::encode_message(&Message::PushPull {
            cluster: &cluster,
            response,
            join,
        });
        for (_, m) in self.members.iter() {
            wire::append_item(
                &mut buf,
                &Item::State(StateEntry {
                    name: &m.name,
                    addr: m.addr,
                    incarnation: m.incarnation,
                    boot_id: m.boot_id,
                    state: m.state,
                    meta: m.meta.as_deref().unwrap_or(&[]),
                }),
            );
        }
        self.send(to, name, buf, MessageKind::PushPull, true);
    }

    /// A push-pull arrived (already checked: right cluster, on a stream). Merge it; answer a
    /// request with our state; a response completes a join.
    pub(crate) fn handle_push_pull(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from: MemberId,
        from_name: &Arc<str>,
        response: bool,
        packet: &Packet<'_>,
    ) {
        self.stats.push_pulls += 1;
        for item in packet.items() {
            if let Item::State(entry) = item {
                self.merge_state(from, from_name, entry, now);
            }
        }
        if !response {
            self.send_push_pull(from_addr, Some(from_name.clone()), true, false);
        } else if !self.joined {
            self.mark_joined();
        }
    }

    /// Sends a join push-pull to every seed and schedules the next attempt.
    pub(crate) fn join_attempt(&mut self, now: Instant) {
        let Some(join) = self.join.as_mut() else {
            return;
        };
        let seeds = join.seeds.clone();
        join.next_attempt = now + join.backoff;
        join.backoff = (join.backoff * 2).min(self.config.join_retry_max);
        for seed in seeds {
            self.stats.join_attempts += 1;
            self.send_push_pull(seed, None, false, true);
        }
    }

    /// Push-pull with one random member (alive, suspect or dead: a dead member that is in fact
    /// alive behind a healed partition learns of its death this way and refutes, which is how
    /// the two sides merge again).
    pub(crate) fn periodic_push_pull(&mut self, now: Instant) {
        let Some(interval) = self
            .config
            .timings(self.cluster_size())
            .push_pull_interval()
        else {
            return;
        };
        self.next_push_pull = now + interval;
        let peers = self.sample_members(1, None, |m| m.state != MemberState::Left);
        let Some(&id) = peers.first() else {
            return;
        };
        let m = self.members.get(id).expect("sampled from the table");
        if !self.config.push_pull_digest {
            let (addr, name) = (m.addr, m.name.clone());
            self.send_push_pull(addr, Some(name), false, false);
        } else if m.state == MemberState::Dead {
            // A member we hold dead may be alive behind a healed partition: it is never
            // probed, so the fingerprint goes on a datagram of its own.
            let digest = wire::encode_item(&Item::StateDigest(self.state_digest()));
            self.stats.digests_sent += 1;
            self.send_to(id, &Message::Gossip, Some(&digest), false);
        } else {
            // The fingerprint rides on the next probe, whose target is as random a peer:
            // no datagram of its own.
            self.digest_due = true;
        }
    }

    /// A peer's table fingerprint: if ours differs, the two tables disagree somewhere, and a
    /// full push-pull (which the peer answers with its state) reconciles them.
    pub(crate) fn handle_state_digest(
        &mut self,
        from_addr: SocketAddr,
        from_name: &Arc<str>,
        digest: [u8; 8],
    ) {
        if digest != self.state_digest() {
            self.stats.digest_mismatches += 1;
            self.send_push_pull(from_addr, Some(from_name.clone()), false, false);
        }
    }

    /// An order-independent fingerprint of everything a push-pull would carry: the sum of a
    /// hash of each record. FNV-1a with a final mix, rather than std's hasher, so that every
    /// build computes the same value for the same table.
    pub(crate) fn state_digest(&self) -> [u8; 8] {
        let mut sum = 0u64;
        for (_, m) in self.members.iter() {
            let mut h = Fnv::default();
            h.write(m.name.as_bytes());
            h.write(&[0xff]);
            match m.addr {
                SocketAddr::V4(a) => h.write(&a.ip().octets()),
                SocketAddr::V6(a) => h.write(&a.ip().octets()),
            }
            h.write(&m.addr.port().to_le_bytes());
            h.write(&m.incarnation.to_le_bytes());
            h.write(&m.boot_id.to_le_bytes());
            h.write(&[m.state as u8]);
            h.write(m.meta.as_deref().unwrap_or(&[]));
            sum = sum.wrapping_add(mix(h.0));
        }
        sum.to_le_bytes()
    }
}

/// 64-bit FNV-1a.
#[derive(Debug)]
pub(crate) struct Fnv(pub(crate) u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The splitmix64 finaliser: spreads FNV's weak high bits before the records are summed.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::config::Config;
    use crate::node::{Node, Transmit};
    use crate::wire::{self, Item, Message};

    fn addr(port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn deliver(to: &mut Node, from: &str, from_port: u16, t: Transmit, now: Instant) {
        let result = if t.reliable {
            to.handle_stream(now, addr(from_port), from, &t.payload)
        } else {
            to.handle_packet(now, addr(from_port), from, &t.payload)
        };
        result.expect("valid message");
    }

    /// `a` joins `b`; both hold the same two records afterwards.
    fn pair() -> (Node, Node, Instant) {
        let now = Instant::now();
        let mut a = Node::new("a", addr(1), Config::default(), 1, now).unwrap();
        let mut b = Node::new("b", addr(2), Config::default(), 2, now).unwrap();
        a.join(&[addr(2)], now);
        a.handle_timeout(now);
        let req = a.poll_transmit().expect("join request");
        deliver(&mut b, "a", 1, req, now);
        let resp = b.poll_transmit().expect("join response");
        deliver(&mut a, "b", 2, resp, now);
        while a.poll_transmit().is_some() {}
        while b.poll_transmit().is_some() {}
        (a, b, now)
    }

    #[test]
    fn equal_tables_have_equal_digests_and_any_difference_shows() {
        let (mut a, b, now) = pair();
        assert_eq!(a.state_digest(), b.state_digest());
        a.set_metadata(b"zone=a", now).unwrap();
        assert_ne!(a.state_digest(), b.state_digest());
    }

    /// A ping from `a` carrying `a`'s fingerprint.
    fn ping_with_digest(a: &Node) -> Vec<u8> {
        let mut p = wire::encode_message(&Message::Ping { seq: 1 });
        wire::append_item(&mut p, &Item::StateDigest(a.state_digest()));
        p
    }

    fn push_pulls(n: &mut Node) -> Vec<Transmit> {
        let all: Vec<Transmit> = std::iter::from_fn(|| n.poll_transmit()).collect();
        all.into_iter()
            .filter(|t| {
                wire::decode(&t.payload, n.limits).unwrap().message.kind()
                    == wire::MessageKind::PushPull
            })
            .collect()
    }

    #[test]
    fn a_differing_digest_starts_a_full_push_pull_and_an_equal_one_nothing() {
        let (mut a, mut b, now) = pair();
        b.handle_packet(now, addr(1), "a", &ping_with_digest(&a))
            .unwrap();
        assert!(
            push_pulls(&mut b).is_empty(),
            "equal tables need no exchange"
        );

        a.set_metadata(b"zone=a", now).unwrap();
        b.handle_packet(now, addr(1), "a", &ping_with_digest(&a))
            .unwrap();
        let mut full = push_pulls(&mut b);
        assert_eq!(full.len(), 1, "a full push-pull");
        let t = full.pop().unwrap();
        assert!(t.reliable);
        assert_eq!(b.stats().digest_mismatches, 1);
        // a answers with its state, which carries the new metadata to b.
        deliver(&mut a, "b", 2, t, now);
        let answer = a.poll_transmit().expect("push-pull response");
        deliver(&mut b, "a", 1, answer, now);
        assert_eq!(a.state_digest(), b.state_digest());
    }
}
