//! A running fingerprint of a simulation: every event every node reported and every message
//! it sent, with virtual times made relative to the start, folded into one 64-bit hash.
//! Two runs with the same hash behaved the same; a `regression_*` test pins the hash of its
//! scenario, so a protocol change that stops it replaying the bug fails loudly.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::{Event, Framing, MemberInfo, MemberState, MessageKind, Transmit};

/// The fingerprint so far. See the module doc.
#[derive(Debug)]
pub(super) struct Trace {
    epoch: Instant,
    hash: u64,
}

impl Trace {
    pub(super) fn new(epoch: Instant) -> Self {
        Self { epoch, hash: 0 }
    }

    pub(super) fn value(&self) -> u64 {
        self.hash
    }

    /// Folds in one word (FxHash's step: a fingerprint to tell runs apart, cheap enough to
    /// take every message of a 10 000-member run; not meant to resist crafted collisions).
    fn u64(&mut self, v: u64) {
        self.hash = (self.hash.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn duration(&mut self, d: Duration) {
        self.u64(d.as_secs());
        self.u64(u64::from(d.subsec_nanos()));
    }

    fn instant(&mut self, t: Instant) {
        self.duration(t.saturating_duration_since(self.epoch));
    }

    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        for chunk in b.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.u64(u64::from_le_bytes(word));
        }
    }

    fn addr(&mut self, a: SocketAddr) {
        match a {
            SocketAddr::V4(a) => self.bytes(&a.ip().octets()),
            SocketAddr::V6(a) => self.bytes(&a.ip().octets()),
        }
        self.u64(u64::from(a.port()));
    }

    fn member(&mut self, m: &MemberInfo) {
        self.bytes(m.name.as_bytes());
        self.addr(m.addr);
        self.u64(u64::from(m.incarnation));
        self.u64(u64::from(m.boot_id));
        self.u64(state_code(m.state));
        self.bytes(m.metadata.as_deref().unwrap_or(&[]));
        self.instant(m.since);
    }

    /// A message slot `from` sent at `now`: who to, on which channel, how long, and which
    /// kind of message.
    pub(super) fn transmit(&mut self, now: Instant, from: usize, t: &Transmit, framing: Framing) {
        self.instant(now);
        self.u64(0x7e);
        self.u64(from as u64);
        self.addr(t.to);
        self.u64(u64::from(t.reliable));
        self.u64(t.payload.len() as u64);
        let kind = MessageKind::of_packet(framing, &t.payload);
        self.u64(kind.map_or(u64::MAX, |k| k.index() as u64));
    }

    /// An event slot `viewer` reported at `now`.
    pub(super) fn event(&mut self, now: Instant, viewer: usize, e: &Event) {
        self.instant(now);
        self.u64(0xe0);
        self.u64(viewer as u64);
        match e {
            Event::Joined => self.u64(1),
            Event::MemberUp {
                member,
                after_false_death,
            } => {
                self.u64(2);
                self.member(member);
                self.u64(u64::from(*after_false_death));
            }
            Event::MemberUpdated { member } => {
                self.u64(3);
                self.member(member);
            }
            Event::MemberSuspect { member, accuser } => {
                self.u64(4);
                self.member(member);
                self.bytes(accuser.as_bytes());
            }
            Event::SuspicionRefuted {
                member,
                suspected_for,
            } => {
                self.u64(5);
                self.member(member);
                self.duration(*suspected_for);
            }
            Event::MemberDown {
                member,
                since_last_alive,
                since_suspected,
                by_us,
            } => {
                self.u64(6);
                self.member(member);
                self.duration(*since_last_alive);
                match since_suspected {
                    Some(d) => self.duration(*d),
                    None => self.u64(u64::MAX),
                }
                self.u64(u64::from(*by_us));
            }
            Event::MemberLeft { member } => {
                self.u64(7);
                self.member(member);
            }
            Event::MemberReaped { name, state } => {
                self.u64(8);
                self.bytes(name.as_bytes());
                self.u64(state_code(*state));
            }
            Event::UserBroadcast { origin, payload } => {
                self.u64(9);
                self.bytes(origin.as_bytes());
                self.bytes(payload);
            }
            Event::NameConflict { name, other_addr } => {
                self.u64(10);
                self.bytes(name.as_bytes());
                self.addr(*other_addr);
            }
            Event::ClaimRefused {
                from,
                about,
                reason,
            } => {
                self.u64(11);
                self.bytes(from.as_bytes());
                self.bytes(about.as_bytes());
                self.u64(reason.index() as u64);
            }
            Event::NameYielded {
                name,
                my_addr,
                holder_addr,
            } => {
                self.u64(12);
                self.bytes(name.as_bytes());
                self.addr(*my_addr);
                self.addr(*holder_addr);
            }
            Event::Quarantined {
                silent_probes,
                accused_at,
            } => {
                self.u64(13);
                self.u64(u64::from(*silent_probes));
                self.u64(u64::from(*accused_at));
            }
            Event::QuarantineLifted { incarnation } => {
                self.u64(14);
                self.u64(u64::from(*incarnation));
            }
        }
    }
}

fn state_code(s: MemberState) -> u64 {
    match s {
        MemberState::Alive => 0,
        MemberState::Suspect => 1,
        MemberState::Dead => 2,
        MemberState::Left => 3,
    }
}
