//! Reconnecting: at a low rate, members held dead get a full push-pull (a live one behind a
//! healed partition learns of its death and refutes, and the two sides merge), and seeds
//! are push-pulled again when the view has shrunk (sides that have forgotten each other).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::membership::{MemberId, MemberState};
use crate::node::unit;
use crate::view::View;

/// The reconnect cadence, the seeds this node joined through, and the largest view it has
/// had.
#[derive(Debug)]
pub(crate) struct Reconnector {
    next: Instant,
    /// Seed addresses given to `join` (this node's own excluded).
    seeds: Vec<SocketAddr>,
    /// The most members (other than this node) held at a tick, in any state, less those
    /// that left and were forgotten since: fewer now means members were forgotten without
    /// leaving (dead past the reconnect time or past the dead bound) — the view has shrunk,
    /// and the seeds may know the members this node no longer does.
    peak: usize,
    /// At the last tick, the view held fewer members than `peak`.
    shrunk: bool,
}

/// Whom to push-pull at this tick.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Contacts {
    /// A member held dead.
    pub(crate) dead: Option<MemberId>,
    /// A seed that is not a live member, the view having shrunk.
    pub(crate) seed: Option<SocketAddr>,
}

impl Reconnector {
    pub(crate) fn new(first: Instant) -> Self {
        Self {
            next: first,
            seeds: Vec::new(),
            peak: 0,
            shrunk: false,
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.next
    }

    pub(crate) fn set_seeds(&mut self, seeds: Vec<SocketAddr>) {
        self.seeds = seeds;
    }

    /// Whether, at the last tick, this view had forgotten members that never left.
    pub(crate) fn shrunk(&self) -> bool {
        self.shrunk
    }

    /// `n` members that left were forgotten: the view is expected to be that much smaller.
    pub(crate) fn forgot_left(&mut self, n: usize) {
        self.peak = self.peak.saturating_sub(n);
    }

    /// The tick at `now`: schedules the next (`interval` apart on average, jittered so that
    /// nodes do not act in step) and says whom to contact.
    pub(crate) fn tick(
        &mut self,
        now: Instant,
        interval: Duration,
        view: &View,
        rng: &mut impl RngCore,
    ) -> Contacts {
        self.next = now + interval.mul_f64(0.5 + unit(rng));
        let count = |s| view.count(s);
        let live = (count(MemberState::Alive) + count(MemberState::Suspect)).saturating_sub(1);
        let dead = count(MemberState::Dead);
        let present = live + dead + count(MemberState::Left);
        self.peak = self.peak.max(present);
        self.shrunk = present < self.peak;
        let mut contacts = Contacts::default();
        // Serf's rule: the cluster as a whole contacts each dead member about once per
        // interval, whatever its size; a node that sees no one alive tries every time.
        if dead > 0 && unit(rng) * (live.max(1) as f64) < dead as f64 {
            contacts.dead = view
                .sample(rng, 1, None, |m| m.state == MemberState::Dead)
                .first()
                .copied();
        }
        if self.shrunk && !self.seeds.is_empty() {
            // One pass over the view, and only once it has shrunk (rare).
            let mut missing = self.seeds.clone();
            for (id, m) in view.iter() {
                if id != view.my_id()
                    && matches!(m.state, MemberState::Alive | MemberState::Suspect)
                {
                    missing.retain(|a| *a != m.addr);
                }
            }
            if !missing.is_empty() {
                let pick = (rng.next_u32() as usize) % missing.len();
                contacts.seed = Some(missing[pick]);
            }
        }
        contacts
    }
}
