//! A running fingerprint of a simulation: every event every node reported and every message
//! it sent, with virtual times made relative to the start, folded into one 64-bit hash.
//! Two runs with the same hash behaved the same; a `regression_*` test pins the hash of its
//! scenario, so a protocol change that stops it replaying the bug fails loudly.

use std::time::{Duration, Instant};

use crate::pushpull::Fnv;
use crate::{Event, MemberInfo, MemberState, MessageKind, Transmit};

/// The fingerprint so far. See the module doc.
#[derive(Debug)]
pub(super) struct Trace {
    epoch: Instant,
    hash: Fnv,
}

impl Trace {
    pub(super) fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            hash: Fnv::default(),
        }
    }

    pub(super) fn value(&self) -> u64 {
        self.hash.0
    }

    fn u64(&mut self, v: u64) {
        self.hash.write(&v.to_le_bytes());
    }

    fn duration(&mut self, d: Duration) {
        self.hash.write(&d.as_nanos().to_le_bytes());
    }

    fn instant(&mut self, t: Instant) {
        self.duration(t.saturating_duration_since(self.epoch));
    }

    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.hash.write(b);
    }

    fn member(&mut self, m: &MemberInfo) {
        self.bytes(m.name.as_bytes());
        self.bytes(m.addr.to_string().as_bytes());
        self.u64(u64::from(m.incarnation));
        self.u64(u64::from(m.boot_id));
        self.u64(state_code(m.state));
        self.bytes(m.metadata.as_deref().unwrap_or(&[]));
        self.instant(m.since);
    }

    /// A message slot `from` sent at `now`: who to, on which channel, how long, and which
    /// kind of message.
    pub(super) fn transmit(&mut self, now: Instant, from: usize, t: &Transmit) {
        self.instant(now);
        self.u64(0x7e);
        self.u64(from as u64);
        self.bytes(t.to.to_string().as_bytes());
        self.u64(u64::from(t.reliable));
        self.u64(t.payload.len() as u64);
        let kind = MessageKind::of_packet(&t.payload);
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
            Event::MemberReaped { name } => {
                self.u64(8);
                self.bytes(name.as_bytes());
            }
            Event::UserBroadcast { origin, payload } => {
                self.u64(9);
                self.bytes(origin.as_bytes());
                self.bytes(payload);
            }
            Event::NameConflict { name, other_addr } => {
                self.u64(10);
                self.bytes(name.as_bytes());
                self.bytes(other_addr.to_string().as_bytes());
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
