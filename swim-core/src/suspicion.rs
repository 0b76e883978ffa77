//! Open suspicions and Lifeguard's dynamic suspicion timeout: a suspicion starts at the
//! maximum timeout and shrinks towards the minimum as independent confirmations (distinct
//! accusers) arrive; when it runs out, the member is declared dead.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::compact::ReleaseWhenEmpty;
use crate::config::Timings;
use crate::membership::{fingerprint_bytes, MemberId};

/// Accusers of one suspicion remembered, if more than the `k + 1` that count: a repeated
/// accusation from one of them is known checked already (no signature to verify again), and
/// the rest of a flood of confirmations past that costs a check each.
const KNOWN_ACCUSERS_MAX: usize = 8;

/// Every open suspicion of this node, and their deadlines in one ordered set (ties broken by
/// member id), so the earliest is always at hand.
#[derive(Debug, Default)]
pub(crate) struct Suspicions {
    /// Boxed: a map's node has room for eleven values, and a view holds one or two.
    open: BTreeMap<MemberId, Box<Suspicion>>,
    /// (when, member, what) of every open suspicion's deadline, and of the ask of each
    /// suspicion taken from a peer: at the minimum timeout after it opened, if it is still
    /// open and not yet due, the suspect is told directly, so that its refutation comes
    /// straight back (a suspicion the suspect refuted is normally closed by gossip long
    /// before; one still open at the minimum has no confirmations, or this view missed the
    /// refutation). One set: a second one cost each view of a 100 000-member simulation a
    /// tree node while it held a suspicion (+42 MiB peak).
    deadlines: BTreeSet<(Instant, MemberId, Due)>,
}

/// What comes due at a suspicion's instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    /// Ask the suspect.
    Ask,
    /// The timeout ran out.
    Expiry,
}

impl Suspicions {
    /// Opens a suspicion of `id` at `incarnation` raised by `accuser` with the checked
    /// signature `sig`, replacing any open one; one that is to `ask` its suspect asks it at
    /// the minimum timeout (see `pop_ask`).
    pub(crate) fn start(
        &mut self,
        now: Instant,
        id: MemberId,
        incarnation: u32,
        (accuser, sig): (Arc<str>, &[u8]),
        timings: &Timings<'_>,
        ask: bool,
    ) {
        self.close(id);
        let suspicion = Suspicion::new(
            incarnation,
            (accuser, fingerprint_bytes(sig)),
            now,
            timings.suspicion_min(),
            timings.suspicion_max(),
            timings.suspicion_confirmations(),
        );
        if ask {
            self.deadlines.insert((suspicion.ask_at(), id, Due::Ask));
        }
        self.deadlines
            .insert((suspicion.deadline(), id, Due::Expiry));
        self.open.insert(id, Box::new(suspicion));
    }

    /// Another accuser of an open suspicion of `id`, with the signature checked: true when
    /// it is a new, independent one that shortened the timeout.
    pub(crate) fn confirm(&mut self, id: MemberId, accuser: &Arc<str>, sig: &[u8]) -> bool {
        let Some(s) = self.open.get_mut(&id) else {
            return false;
        };
        let old = s.deadline();
        if !s.confirm(accuser, fingerprint_bytes(sig)) {
            return false;
        }
        self.deadlines.remove(&(old, id, Due::Expiry));
        self.deadlines.insert((s.deadline(), id, Due::Expiry));
        true
    }

    /// Whether `accuser`'s accusation of `id` at `incarnation`, with signature `sig`, was
    /// checked already for the suspicion open here.
    pub(crate) fn already_checked(
        &self,
        id: MemberId,
        incarnation: u32,
        accuser: &str,
        sig: &[u8],
    ) -> bool {
        self.open.get(&id).is_some_and(|s| {
            s.incarnation == incarnation && {
                let sig = fingerprint_bytes(sig);
                s.accusers.iter().any(|(a, h)| &**a == accuser && *h == sig)
            }
        })
    }

    /// How long the open suspicion of `id` at `incarnation` has been held here, if any.
    pub(crate) fn held_for(
        &self,
        id: MemberId,
        incarnation: u32,
        now: Instant,
    ) -> Option<Duration> {
        self.open
            .get(&id)
            .filter(|s| s.incarnation == incarnation)
            .map(|s| now.saturating_duration_since(s.start))
    }

    /// Ends the suspicion of `id`, if any (refuted, or overtaken by a newer state).
    pub(crate) fn close(&mut self, id: MemberId) {
        if let Some(s) = self.open.remove(&id) {
            self.deadlines.remove(&(s.deadline(), id, Due::Expiry));
            self.deadlines.remove(&(s.ask_at(), id, Due::Ask));
        }
        self.release_when_empty();
    }

    fn release_when_empty(&mut self) {
        self.open.release_when_empty();
        self.deadlines.release_when_empty();
    }

    /// The next suspicion whose suspect is to be asked by `now` and that is still open and
    /// not due: its member. (Asks come due before expiries of the same instant; the caller
    /// takes the asks first.)
    pub(crate) fn pop_ask(&mut self, now: Instant) -> Option<MemberId> {
        loop {
            let (at, id, _) = self
                .deadlines
                .iter()
                .take_while(|(at, ..)| *at <= now)
                .find(|(.., due)| *due == Due::Ask)
                .copied()?;
            self.deadlines.remove(&(at, id, Due::Ask));
            if self.open.get(&id).is_some_and(|s| s.deadline() > now) {
                return Some(id);
            }
        }
    }

    /// The next suspicion whose timeout ended by `now`, closed: the member and the
    /// incarnation suspected, to be declared dead.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<(MemberId, u32)> {
        while let Some(&(at, id, due)) = self.deadlines.first() {
            if at > now {
                return None;
            }
            self.deadlines.pop_first();
            // An ask not taken (`pop_ask`) by the time it is due is dropped.
            if due == Due::Expiry {
                if let Some(s) = self.open.remove(&id) {
                    self.deadlines.remove(&(s.ask_at(), id, Due::Ask));
                    self.release_when_empty();
                    return Some((id, s.incarnation));
                }
            }
        }
        self.release_when_empty();
        None
    }

    /// When the earliest open suspicion runs out, or asks its suspect.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(t, ..)| *t)
    }
}

/// One open suspicion about a member.
#[derive(Debug, Clone)]
struct Suspicion {
    /// The incarnation suspected; a refutation carries a higher one.
    incarnation: u32,
    /// When this node first suspected (or heard the suspicion).
    start: Instant,
    /// Timeout once `k` confirmations arrived.
    min: Duration,
    /// Timeout with no confirmation.
    max: Duration,
    /// Confirmations needed to reach `min`.
    k: u32,
    /// Distinct accusers, the first one included, by name (an accuser need not be in this
    /// view, and ids are given again once a member is forgotten), with a fingerprint of the
    /// signature checked; the first `k + 1` count, and as many or `KNOWN_ACCUSERS_MAX` are
    /// kept.
    accusers: Vec<(Arc<str>, u64)>,
}

impl Suspicion {
    fn new(
        incarnation: u32,
        accuser: (Arc<str>, u64),
        start: Instant,
        min: Duration,
        max: Duration,
        k: u32,
    ) -> Self {
        Self {
            incarnation,
            start,
            min,
            max,
            k,
            accusers: vec![accuser],
        }
    }

    /// When a suspicion taken from a peer asks its suspect: at the minimum timeout (its
    /// entry in the deadlines, if it has one, is found by this).
    fn ask_at(&self) -> Instant {
        self.start + self.min
    }

    /// Records an accuser whose accusation has the signature fingerprint `sig`; true when it
    /// is a new, independent one that shortened the timeout.
    fn confirm(&mut self, accuser: &Arc<str>, sig: u64) -> bool {
        let kept = (self.k as usize + 1).max(KNOWN_ACCUSERS_MAX);
        if self.accusers.len() >= kept || self.accusers.iter().any(|(a, _)| a == accuser) {
            return false;
        }
        let shortens = self.confirmations() < self.k;
        self.accusers.push((accuser.clone(), sig));
        shortens
    }

    /// Confirmations that count: distinct accusers after the first, at most `k`.
    fn confirmations(&self) -> u32 {
        (self.accusers.len() as u32 - 1).min(self.k)
    }

    /// `max − (max − min) · log(c + 1) / log(k + 1)`, never below `min` (Lifeguard §IV-B).
    fn timeout(&self) -> Duration {
        if self.k == 0 || self.max <= self.min {
            return self.min;
        }
        let c = self.confirmations().min(self.k) as f64;
        let fraction = (c + 1.0).ln() / (self.k as f64 + 1.0).ln();
        let spread = (self.max - self.min).as_secs_f64();
        let timeout = self.max.as_secs_f64() - spread * fraction;
        Duration::from_secs_f64(timeout).max(self.min)
    }

    fn deadline(&self) -> Instant {
        self.start + self.timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[test]
    fn timeout_shrinks_from_max_to_min_with_confirmations() {
        let now = Instant::now();
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        let mut s = Suspicion::new(0, (n("a"), 0), now, min, max, 3);
        assert_eq!(s.timeout(), max);
        assert!(s.confirm(&n("b"), 1));
        let one = s.timeout();
        assert!(one < max && one > min);
        assert!(
            !s.confirm(&n("b"), 1),
            "the same accuser twice is not independent"
        );
        assert!(s.confirm(&n("c"), 1));
        assert!(s.confirm(&n("d"), 1));
        assert_eq!(s.timeout(), min);
        assert!(!s.confirm(&n("e"), 1), "no change past k");
    }

    #[test]
    fn every_one_of_k_confirmations_counts_when_k_is_above_the_accusers_kept() {
        let now = Instant::now();
        let (min, max) = (Duration::from_secs(4), Duration::from_secs(24));
        let k = KNOWN_ACCUSERS_MAX as u32 + 2;
        let mut s = Suspicion::new(0, (n("first"), 0), now, min, max, k);
        for i in 0..k {
            assert!(
                s.confirm(&n(&format!("c{i}")), 1),
                "confirmation {i} of {k}"
            );
        }
        assert_eq!(s.timeout(), min);
        assert!(!s.confirm(&n("one-more"), 1));
    }

    #[test]
    fn open_suspicions_expire_in_deadline_order_and_a_closed_one_never() {
        let now = Instant::now();
        let config = crate::Config::default();
        let timings = config.timings(100);
        let mut open = Suspicions::default();
        open.start(now, 7, 1, (n("a"), b"sig"), &timings, false);
        open.start(
            now + Duration::from_secs(1),
            3,
            2,
            (n("a"), b"sig"),
            &timings,
            false,
        );
        open.start(
            now + Duration::from_secs(2),
            5,
            0,
            (n("a"), b"sig"),
            &timings,
            false,
        );
        open.close(5);
        assert!(
            open.confirm(3, &n("z"), b"sig"),
            "an independent accuser shortens it"
        );
        assert!(!open.confirm(3, &n("z"), b"sig"));
        assert!(!open.confirm(5, &n("z"), b"sig"), "closed");
        let first = open.deadline().unwrap();
        assert!(open.pop_expired(first - Duration::from_millis(1)).is_none());
        let late = now + Duration::from_secs(3600);
        assert_eq!(open.pop_expired(late), Some((3, 2)), "confirmed: earliest");
        assert_eq!(open.pop_expired(late), Some((7, 1)));
        assert_eq!(open.pop_expired(late), None);
        assert_eq!(open.deadline(), None);
    }

    #[test]
    fn a_suspicion_taken_from_a_peer_asks_its_suspect_once_at_the_minimum_unless_closed_or_due() {
        let now = Instant::now();
        let config = crate::Config::default();
        let timings = config.timings(100);
        let min = timings.suspicion_min();
        let mut open = Suspicions::default();
        open.start(now, 7, 1, (n("a"), b"sig"), &timings, true);
        open.start(now, 8, 1, (n("a"), b"sig"), &timings, true);
        open.start(now, 9, 1, (n("a"), b"sig"), &timings, false);
        open.close(8);
        assert_eq!(open.deadline(), Some(now + min), "the ask comes first");
        assert_eq!(open.pop_ask(now + min - Duration::from_millis(1)), None);
        assert_eq!(open.pop_ask(now + min), Some(7), "asked: still open");
        assert_eq!(
            open.pop_ask(now + min),
            None,
            "once; 8 closed, 9 never asks"
        );
        assert!(open.deadline().unwrap() > now + min);
        // Confirmed down to the minimum, a suspicion is due when it would ask: it asks no one.
        open.start(now, 4, 1, (n("a"), b"sig"), &timings, true);
        for accuser in ["b", "c", "d", "e"] {
            open.confirm(4, &n(accuser), b"sig");
        }
        assert_eq!(open.pop_ask(now + min), None);
        assert_eq!(open.pop_expired(now + min), Some((4, 1)));
    }

    #[test]
    fn a_checked_accusation_is_known_by_accuser_signature_and_incarnation_even_past_k() {
        let now = Instant::now();
        let config = crate::Config::default();
        let timings = config.timings(100);
        let k = timings.suspicion_confirmations() as usize;
        let mut open = Suspicions::default();
        open.start(now, 7, 1, (n("a"), b"sig-a"), &timings, false);
        assert!(open.already_checked(7, 1, "a", b"sig-a"));
        assert!(
            !open.already_checked(7, 1, "a", b"forged"),
            "another signature"
        );
        assert!(
            !open.already_checked(7, 2, "a", b"sig-a"),
            "another incarnation"
        );
        assert!(!open.already_checked(6, 1, "a", b"sig-a"), "another member");
        let names: Vec<String> = (0..KNOWN_ACCUSERS_MAX + 2)
            .map(|i| format!("c{i}"))
            .collect();
        for (i, name) in names.iter().enumerate() {
            let shortened = open.confirm(7, &n(name), name.as_bytes());
            assert_eq!(shortened, i < k, "only the first k confirmations count");
        }
        for (i, name) in names.iter().enumerate() {
            let known = open.already_checked(7, 1, name, name.as_bytes());
            assert_eq!(
                known,
                i + 1 < KNOWN_ACCUSERS_MAX,
                "{name}: kept up to the bound"
            );
        }
        open.close(7);
        assert!(!open.already_checked(7, 1, "a", b"sig-a"), "closed");
    }
}
