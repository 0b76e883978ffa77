//! The member table: states and their precedence (SWIM §4.2), compact member ids from an
//! interned name table, each record's fingerprint, and a copy-on-write table so thousands of
//! simulated nodes can share the records they agree on.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::event::MemberInfo;
use crate::trust::Credential;
use crate::wire::{self, Accusation, Item, Own, Silence, Update, UpdateKind};

/// Compact per-table member id: an index into the [`NameTable`].
pub(crate) type MemberId = u32;

/// A member's state in one node's view.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberState {
    /// Answering probes (or not yet found otherwise).
    Alive,
    /// Missed a probe round; declared dead when the suspicion timeout ends unless it refutes.
    Suspect,
    /// Declared failed. Kept as a tombstone until reaped.
    Dead,
    /// Left the cluster gracefully: not a failure.
    Left,
}

impl MemberState {
    /// Lower-case name, used as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }

    /// Precedence among updates at one incarnation: alive < suspect < dead < left.
    const fn rank(self) -> u8 {
        match self {
            MemberState::Alive => 0,
            MemberState::Suspect => 1,
            MemberState::Dead => 2,
            MemberState::Left => 3,
        }
    }

    pub(crate) fn index(self) -> usize {
        self.rank() as usize
    }
}

/// Whether an update `(incarnation, state)` replaces what a view holds: updates are ordered
/// by incarnation, then by state precedence, and only a strictly greater one applies.
///
/// This is SWIM §4.2: `Alive(i)` overrides `Suspect(j)` and `Alive(j)` iff `i > j`;
/// `Suspect(i)` overrides `Suspect(j)` iff `i > j` and `Alive(j)` iff `i ≥ j`. For `Dead` we
/// follow memberlist rather than the paper's "confirm overrides anything": a death at an
/// older incarnation than the view holds is stale (the member already refuted it), so it
/// does not apply. `Left` outranks `Dead` so a graceful leave is never reported as a failure.
pub(crate) const fn supersedes(
    new_incarnation: u32,
    new_state: MemberState,
    incarnation: u32,
    state: MemberState,
) -> bool {
    new_incarnation > incarnation
        || (new_incarnation == incarnation && new_state.rank() > state.rank())
}

/// One member as this node sees it. Small and fixed-size apart from the shared name and
/// metadata.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub name: Arc<str>,
    pub addr: SocketAddr,
    pub meta: Option<Arc<[u8]>>,
    pub incarnation: u32,
    /// Random per process start: tells a restart (new boot id) from a false death (same).
    pub boot_id: u32,
    pub state: MemberState,
    /// When this view entered `state`.
    pub since: Instant,
    /// The last time this node knows the member was heard: any authenticated message from it
    /// here, a newer alive update, or an accusation's [`Silence`](crate::wire::Silence) (a
    /// peer heard it then). Crash-to-dead latency is measured from it.
    pub last_alive: Instant,
    /// False positives this view raised about the member: suspicions it refuted, deaths it
    /// came back from as the same process (saturating).
    pub false_suspicions: u32,
    pub false_deaths: u32,
    /// What vouches for the record (see [`Proof`]); `None` when nothing does (no trust).
    pub proof: Option<Arc<Proof>>,
}

/// What vouches for a record: the member's credential, its signature over its own claim at
/// the record's incarnation (alive, or left for a left record), and for a suspect or dead
/// record the accusation. Replaced whole when the record changes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Proof {
    pub credential: Option<Credential>,
    pub own_sig: Box<[u8]>,
    pub accusation: Option<Accused>,
}

/// The accuser of a suspect or dead record, and its signature.
#[derive(Clone, Debug)]
pub(crate) struct Accused {
    pub accuser: Arc<str>,
    pub sig: Box<[u8]>,
}

impl Member {
    /// A record of `name` first heard alive now, as the process `boot_id` at `addr`.
    pub(crate) fn alive(
        name: Arc<str>,
        addr: SocketAddr,
        meta: Option<Arc<[u8]>>,
        incarnation: u32,
        boot_id: u32,
        now: Instant,
    ) -> Self {
        Member {
            name,
            addr,
            meta,
            incarnation,
            boot_id,
            state: MemberState::Alive,
            since: now,
            last_alive: now,
            false_suspicions: 0,
            false_deaths: 0,
            proof: None,
        }
    }

    pub(crate) fn credential(&self) -> Option<&Credential> {
        self.proof.as_ref()?.credential.as_ref()
    }

    pub(crate) fn own_sig(&self) -> &[u8] {
        self.proof.as_ref().map_or(&[], |p| &p.own_sig)
    }

    pub(crate) fn accusation(&self) -> Option<&Accused> {
        self.proof.as_ref()?.accusation.as_ref()
    }

    /// The record's own claim, with its signature.
    pub(crate) fn own(&self) -> Own<'_> {
        Own {
            addr: self.addr,
            boot_id: self.boot_id,
            meta: self.meta.as_deref().unwrap_or(&[]),
            sig: self.own_sig(),
        }
    }

    /// The accusation of a suspect or dead record: `accused` if given, else the record's
    /// (a record without one, from a peer without trust, names `fallback` unsigned).
    /// With `silent`: how long the member had been silent (see [`Silence`]).
    pub(crate) fn accusation_or<'a>(
        &'a self,
        accused: Option<&'a Accused>,
        fallback: &'a str,
        silent: Silence,
    ) -> Accusation<'a> {
        match accused.or(self.accusation()) {
            Some(a) => Accusation {
                accuser: &a.accuser,
                sig: &a.sig,
                silent,
            },
            None => Accusation {
                accuser: fallback,
                sig: &[],
                silent,
            },
        }
    }

    /// The record as a membership update to piggyback, as of `now` (see `accusation_or`).
    /// A suspect or dead update ends with its [`Silence`], which a queue restamps when it
    /// sends the update later (see [`Member::heard_for_restamp`]).
    pub(crate) fn encode_update(
        &self,
        accused: Option<&Accused>,
        fallback: &str,
        now: Instant,
    ) -> Vec<u8> {
        let silent = Silence::since(self.last_alive, now);
        let accusation = || self.accusation_or(accused, fallback, silent);
        let kind = match self.state {
            MemberState::Alive => UpdateKind::Alive(self.own()),
            MemberState::Left => UpdateKind::Left(self.own()),
            MemberState::Suspect => UpdateKind::Suspect(accusation()),
            MemberState::Dead => UpdateKind::Dead(accusation()),
        };
        wire::encode_item(&Item::Member(Update {
            name: &self.name,
            incarnation: self.incarnation,
            kind,
        }))
    }

    /// When the member was last heard, for an encoded update that ends with a silence (a
    /// suspect or dead one); `None` for the others.
    pub(crate) fn heard_for_restamp(&self) -> Option<Instant> {
        matches!(self.state, MemberState::Suspect | MemberState::Dead).then_some(self.last_alive)
    }

    /// Replaces the proof, keeping the credential unless `credential` gives one.
    pub(crate) fn prove(
        &mut self,
        credential: Option<Credential>,
        own_sig: Option<Box<[u8]>>,
        accusation: Option<Accused>,
    ) {
        let old = self.proof.take();
        let credential = credential.or_else(|| old.as_ref().and_then(|p| p.credential.clone()));
        let own_sig = own_sig.unwrap_or_else(|| {
            old.as_ref()
                .map_or_else(Box::default, |p| p.own_sig.clone())
        });
        if credential.is_none() && own_sig.is_empty() && accusation.is_none() {
            return;
        }
        self.proof = Some(Arc::new(Proof {
            credential,
            own_sig,
            accusation,
        }));
    }

    /// A hash of everything a push-pull carries about this member. FNV-1a with a final mix,
    /// rather than std's hasher, so that every build computes the same value.
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut h = Fnv::default();
        h.write(self.name.as_bytes());
        h.write(&[0xff]);
        match self.addr {
            SocketAddr::V4(a) => h.write(&a.ip().octets()),
            SocketAddr::V6(a) => h.write(&a.ip().octets()),
        }
        h.write(&self.addr.port().to_le_bytes());
        h.write(&self.incarnation.to_le_bytes());
        h.write(&self.boot_id.to_le_bytes());
        h.write(&[self.state as u8]);
        h.write(self.meta.as_deref().unwrap_or(&[]));
        mix(h.0)
    }

    pub(crate) fn info(&self) -> MemberInfo {
        MemberInfo {
            name: self.name.clone(),
            addr: self.addr,
            incarnation: self.incarnation,
            boot_id: self.boot_id,
            state: self.state,
            metadata: self.meta.clone(),
            since: self.since,
            false_suspicions: self.false_suspicions,
            false_deaths: self.false_deaths,
        }
    }
}

/// Records every view of a converged simulation starts from, with their fingerprint sum
/// computed once for all of them.
#[derive(Debug, Default)]
pub(crate) struct SharedBase {
    records: Vec<Member>,
    fingerprint: u64,
    /// Records per state, indexed by `MemberState::index`: counted once, not once per view.
    counts: [usize; 4],
    /// Each record's state, by id: a byte apiece to read on every datagram, where the
    /// records themselves are a few hundred bytes apart.
    states: Vec<MemberState>,
}

impl SharedBase {
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn new(records: Vec<Member>) -> Self {
        let fingerprint = records
            .iter()
            .fold(0u64, |sum, m| sum.wrapping_add(m.fingerprint()));
        let mut counts = [0; 4];
        for m in &records {
            counts[m.state.index()] += 1;
        }
        let states = records.iter().map(|m| m.state).collect();
        Self {
            records,
            fingerprint,
            counts,
            states,
        }
    }
}

/// One node's member records: a shared base (what every node of a converged simulation
/// agrees on) plus this node's own changes. A real node has an empty base. Reads look at the
/// changes first; writes only touch the changes, so the base is never copied.
#[derive(Debug, Clone)]
pub(crate) struct MemberTable {
    base: Arc<SharedBase>,
    /// `None` hides a base record (reaped). Boxed: a map's node has room for eleven values,
    /// and most simulated views hold one or two changes.
    changes: BTreeMap<MemberId, Option<Box<Member>>>,
    /// Members per state, indexed by `MemberState::index`.
    counts: [usize; 4],
    /// One past the highest id ever present.
    id_bound: usize,
    /// The sum of every record's fingerprint, kept as records change.
    fingerprint: u64,
    /// When members whose record is still the base's were last heard (a real node's base is
    /// empty, so this stays empty there).
    recent: RecentContacts,
}

/// When members whose record is still shared with the base were last heard, oldest first,
/// for a horizon. A simulated node hears from a few members it has not heard before every
/// second; writing `last_alive` into their records would copy each out of the base (about
/// 200 bytes apiece), and that copying grew the simulator's memory with its running time.
/// An entry here is 12 bytes and lives one horizon; a record that changes takes its entry
/// in. What is lost: a contact older than the horizon when an accusation of the member first
/// reaches this view, which then counts the member's silence from what the accusation says
/// (or from the start). Only simulated views have a base: a real node keeps every contact.
#[derive(Debug, Clone, Default)]
struct RecentContacts {
    origin: Option<Instant>,
    /// `[member, nanoseconds since origin (low, high 32 bits)]`, in the order heard: three
    /// words rather than a (u32, u64) pair, which alignment pads to 16 bytes.
    entries: VecDeque<[u32; 3]>,
}

impl RecentContacts {
    fn heard(&mut self, id: MemberId, now: Instant, horizon: Duration) {
        let origin = *self.origin.get_or_insert(now);
        let at = nanos(now.saturating_duration_since(origin));
        let entry = [id, at as u32, (at >> 32) as u32];
        match self.entries.back_mut() {
            Some(last) if last[0] == id => *last = entry,
            _ => self.entries.push_back(entry),
        }
        let oldest_kept = at.saturating_sub(nanos(horizon));
        while self.entries.front().is_some_and(|e| at_of(e) < oldest_kept) {
            self.entries.pop_front();
        }
    }

    fn get(&self, id: MemberId) -> Option<Instant> {
        let origin = self.origin?;
        let entry = self.entries.iter().rev().find(|e| e[0] == id)?;
        Some(origin + Duration::from_nanos(at_of(entry)))
    }

    /// `last_alive`, or a later contact with `id` kept here while its record was the base's.
    fn latest(&self, id: MemberId, last_alive: Instant) -> Instant {
        self.get(id).map_or(last_alive, |h| h.max(last_alive))
    }
}

fn at_of(entry: &[u32; 3]) -> u64 {
    u64::from(entry[1]) | (u64::from(entry[2]) << 32)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl MemberTable {
    pub(crate) fn new() -> Self {
        Self::with_base(Arc::default())
    }

    /// Replaces everything with a shared base (used by the simulator's converged start).
    pub(crate) fn with_base(base: Arc<SharedBase>) -> Self {
        Self {
            id_bound: base.records.len(),
            fingerprint: base.fingerprint,
            changes: BTreeMap::new(),
            counts: base.counts,
            recent: RecentContacts::default(),
            base,
        }
    }

    pub(crate) fn get(&self, id: MemberId) -> Option<&Member> {
        match self.changes.get(&id) {
            Some(slot) => slot.as_deref(),
            None => self.base.records.get(id as usize),
        }
    }

    pub(crate) fn set(&mut self, id: MemberId, mut member: Member) {
        if !self.changes.contains_key(&id) {
            member.last_alive = self.recent.latest(id, member.last_alive);
        }
        if let Some((state, fingerprint)) = self.get(id).map(|m| (m.state, m.fingerprint())) {
            self.counts[state.index()] -= 1;
            self.fingerprint = self.fingerprint.wrapping_sub(fingerprint);
        }
        self.counts[member.state.index()] += 1;
        self.fingerprint = self.fingerprint.wrapping_add(member.fingerprint());
        self.id_bound = self.id_bound.max(id as usize + 1);
        self.changes.insert(id, Some(Box::new(member)));
    }

    /// Changes one record in place (copying it out of the shared base first, if it is
    /// there). Returns `false`, changing nothing, if there is no record.
    pub(crate) fn modify(&mut self, id: MemberId, change: impl FnOnce(&mut Member)) -> bool {
        let Some(m) = self.private_mut(id) else {
            return false;
        };
        let (state, fingerprint) = (m.state, m.fingerprint());
        change(m);
        let (new_state, new_fingerprint) = (m.state, m.fingerprint());
        if new_state != state {
            self.counts[state.index()] -= 1;
            self.counts[new_state.index()] += 1;
        }
        self.fingerprint = self
            .fingerprint
            .wrapping_sub(fingerprint)
            .wrapping_add(new_fingerprint);
        true
    }

    /// Records that this node heard `id` at `now` if its record is alive or suspect (a
    /// field no fingerprint covers); returns whether it did. For a record still shared with
    /// the base it is kept aside for `horizon` instead: long enough for any accusation of
    /// the member to reach this node, which then takes it in.
    pub(crate) fn heard_running(
        &mut self,
        id: MemberId,
        now: Instant,
        horizon: impl FnOnce() -> Duration,
    ) -> bool {
        let running = |s: MemberState| matches!(s, MemberState::Alive | MemberState::Suspect);
        match self.changes.get_mut(&id) {
            Some(Some(m)) if running(m.state) => m.last_alive = now,
            Some(_) => return false,
            None if self
                .base
                .states
                .get(id as usize)
                .is_some_and(|&s| running(s)) =>
            {
                self.recent.heard(id, now, horizon())
            }
            None => return false,
        }
        true
    }

    /// When this view last heard `id` (its record's `last_alive`, or later if heard since
    /// and the record is still the base's); `None` without a record.
    pub(crate) fn last_heard(&self, id: MemberId) -> Option<Instant> {
        self.get_heard(id).map(|(_, heard)| heard)
    }

    /// The record of `id` and when this view last heard it, in one lookup.
    pub(crate) fn get_heard(&self, id: MemberId) -> Option<(&Member, Instant)> {
        match self.changes.get(&id) {
            Some(slot) => slot.as_deref().map(|m| (m, m.last_alive)),
            None => {
                let m = self.base.records.get(id as usize)?;
                Some((m, self.recent.latest(id, m.last_alive)))
            }
        }
    }

    /// The record of `id` in this view's own changes, copied there from the base first
    /// (with when it was heard since).
    fn private_mut(&mut self, id: MemberId) -> Option<&mut Member> {
        let slot = match self.changes.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let mut m = self.base.records.get(id as usize)?.clone();
                m.last_alive = self.recent.latest(id, m.last_alive);
                e.insert(Some(Box::new(m)))
            }
        };
        slot.as_deref_mut()
    }

    pub(crate) fn remove(&mut self, id: MemberId) {
        if let Some((state, fingerprint)) = self.get(id).map(|m| (m.state, m.fingerprint())) {
            self.counts[state.index()] -= 1;
            self.fingerprint = self.fingerprint.wrapping_sub(fingerprint);
            if (id as usize) < self.base.records.len() {
                self.changes.insert(id, None);
            } else {
                self.changes.remove(&id);
            }
        }
    }

    /// The sum of every record's fingerprint: equal for tables holding the same records.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Number of members in `state`.
    pub(crate) fn count(&self, state: MemberState) -> usize {
        self.counts[state.index()]
    }

    /// Number of records held, tombstones included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.counts.iter().sum()
    }

    /// Ids range over `0..id_bound()`; some are holes.
    pub(crate) fn id_bound(&self) -> usize {
        self.id_bound
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (MemberId, &Member)> + '_ {
        (0..self.id_bound as MemberId).filter_map(move |id| self.get(id).map(|m| (id, m)))
    }

    /// How many records this view holds privately (not shared with the base).
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn private_records(&self) -> usize {
        self.changes.len()
    }
}

/// A 64-bit hash of `bytes`, to recognise bytes seen before without keeping them (a
/// signature this node checked). Eight bytes a step, each step mixed: a 64-byte signature
/// costs eight mixes where byte-wise FNV took 64 multiplications, on a path every gossiped
/// copy of an accusation takes. Local to this node: nothing compares it across nodes (the
/// records' [`Member::fingerprint`], which push-pull compares, stays FNV-1a).
pub(crate) fn fingerprint_bytes(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut h = 0xcbf2_9ce4_8422_2325;
    for w in &mut words {
        h = mix(h ^ u64::from_le_bytes(w.try_into().expect("a chunk of eight bytes")));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    // The length last, so that a zero-padded tail is not the shorter input.
    mix(mix(h ^ u64::from_le_bytes(tail)) ^ bytes.len() as u64)
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
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
    use super::MemberState::*;
    use super::*;

    #[test]
    fn byte_fingerprints_tell_any_one_bit_apart() {
        let sig: Vec<u8> = (0..64u8).map(|b| b.wrapping_mul(37)).collect();
        let mut seen = std::collections::HashSet::new();
        assert!(seen.insert(fingerprint_bytes(&sig)));
        for bit in 0..sig.len() * 8 {
            let mut flipped = sig.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(seen.insert(fingerprint_bytes(&flipped)), "bit {bit}");
        }
        // A zero-padded tail is not the shorter input, nor a prefix the longer one.
        for len in 0..sig.len() {
            assert!(seen.insert(fingerprint_bytes(&sig[..len])), "prefix {len}");
        }
        assert!(seen.insert(fingerprint_bytes(&[sig.as_slice(), &[0]].concat())));
    }

    #[test]
    fn alive_needs_a_higher_incarnation() {
        assert!(supersedes(2, Alive, 1, Suspect));
        assert!(!supersedes(1, Alive, 1, Suspect));
        assert!(supersedes(2, Alive, 1, Alive));
        assert!(!supersedes(1, Alive, 1, Alive));
        assert!(!supersedes(0, Alive, 1, Dead));
        assert!(supersedes(2, Alive, 1, Dead));
    }

    #[test]
    fn suspect_overrides_alive_at_equal_incarnation_but_not_suspect() {
        assert!(supersedes(1, Suspect, 1, Alive));
        assert!(!supersedes(0, Suspect, 1, Alive));
        assert!(!supersedes(1, Suspect, 1, Suspect));
        assert!(supersedes(2, Suspect, 1, Suspect));
        assert!(!supersedes(1, Suspect, 1, Dead));
    }

    #[test]
    fn dead_at_an_older_incarnation_is_stale() {
        assert!(supersedes(1, Dead, 1, Suspect));
        assert!(supersedes(1, Dead, 1, Alive));
        assert!(!supersedes(0, Dead, 1, Alive));
        assert!(!supersedes(1, Dead, 1, Dead));
    }

    #[test]
    fn left_outranks_dead_at_the_same_incarnation() {
        assert!(supersedes(1, Left, 1, Dead));
        assert!(!supersedes(1, Dead, 1, Left));
        assert!(supersedes(2, Alive, 1, Left));
    }

    #[test]
    fn ordering_is_a_strict_total_order() {
        let states = [Alive, Suspect, Dead, Left];
        for a in 0..3 {
            for sa in states {
                for b in 0..3 {
                    for sb in states {
                        let ab = supersedes(a, sa, b, sb);
                        let ba = supersedes(b, sb, a, sa);
                        assert!(!(ab && ba), "both directions for ({a},{sa:?}) ({b},{sb:?})");
                        if (a, sa) != (b, sb) {
                            assert!(ab || ba, "incomparable ({a},{sa:?}) ({b},{sb:?})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn table_overlay_counts_and_hides() {
        let now = Instant::now();
        let m = |name: &str| Member {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            meta: None,
            incarnation: 0,
            boot_id: 0,
            state: Alive,
            since: now,
            last_alive: now,
            false_suspicions: 0,
            false_deaths: 0,
            proof: None,
        };
        let base = Arc::new(SharedBase::new(vec![m("a"), m("b")]));
        let mut t = MemberTable::with_base(base.clone());
        assert_eq!(t.count(Alive), 2);
        let mut dead = m("b");
        dead.state = Dead;
        t.set(1, dead);
        assert_eq!((t.count(Alive), t.count(Dead)), (1, 1));
        t.remove(1);
        assert!(t.get(1).is_none());
        assert_eq!(t.len(), 1);
        t.set(5, m("c"));
        assert_eq!(t.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![0, 5]);
        assert!(t.modify(0, |a| a.state = Suspect), "copied out of the base");
        assert_eq!((t.count(Alive), t.count(Suspect)), (1, 1));
        assert!(!t.modify(1, |_| {}), "a hidden record stays hidden");
        assert!(!t.modify(9, |_| {}));
        let sum = |t: &MemberTable| {
            t.iter()
                .fold(0u64, |s, (_, m)| s.wrapping_add(m.fingerprint()))
        };
        assert_eq!(t.fingerprint(), sum(&t), "the kept sum is the sum");
        assert_eq!(base.records[0].state, Alive, "base is never written");
        assert_eq!(base.records[1].state, Alive, "base is never written");
    }
}
