//! Membership transitions: how a claim about a member changes this node's view (ordered by
//! SWIM §4.2's precedence, `membership::supersedes`) once `claims` has found it vouched for;
//! here the member's own claims (alive, left), tombstones and reaping; accusations (suspect,
//! dead) are in `accusation`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::accusation::Accuser;
use crate::claim_refusal::ClaimRefusal;
use crate::claims::{Check, Claims, Sender};
use crate::config::Config;
use crate::dissemination::{BroadcastQueue, Key};
use crate::event::Event;
use crate::membership::{supersedes, Accused, Member, MemberId, MemberState};
use crate::quarantine::Quarantine;
use crate::refutation::Refuter;
use crate::stats::Stats;
use crate::suspicion::Suspicions;
use crate::tombstone::{Forgotten, Tombstones};
use crate::trust::Credential;
use crate::view::View;
use crate::wire::{Own, Update, UpdateKind};

/// A member's own alive claim, as it arrives in an update or a push-pull record (with the
/// member's credential, if the record carried it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AliveClaim<'a> {
    pub name: &'a str,
    pub incarnation: u32,
    pub own: Own<'a>,
    pub offered: &'a [u8],
}

/// What became of a claim.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Applied, ignored as old news, or refused (and counted).
    Done,
    /// A suspicion of this node, refuted (Lifeguard counts it against local health).
    RefutedSuspicion,
    /// Another process's alive claim of this node's name, from this address, refuted: the
    /// refutation goes to it directly too.
    Outbid(std::net::SocketAddr),
    /// The sender spread a failure of this member that our record disproves (it refuted,
    /// or left; or this node just refuted it): our record goes back to the sender directly
    /// too, as gossip's luck may never bring it there before the sender's own suspicion
    /// runs out.
    Outdated(MemberId),
    /// It waits for this member's record (and credential), asked of the sender; refused for
    /// `or_else` if none comes in time.
    Wait {
        wants: Arc<str>,
        or_else: ClaimRefusal,
    },
}

/// Where a transition's effects go besides the view: events for the user, counters, and the
/// queue of membership updates to piggyback.
pub(crate) struct Fx<'a> {
    pub(crate) events: &'a mut VecDeque<Event>,
    pub(crate) stats: &'a mut Stats,
    pub(crate) updates: &'a mut BroadcastQueue,
}

/// This node's membership state: its view, the open suspicions, the tombstones, what it
/// knows of claims about itself, and the checking of claims. Every change of a member's
/// state goes through here.
#[derive(Debug)]
pub(crate) struct Membership {
    pub(crate) view: View,
    pub(crate) suspicions: Suspicions,
    pub(crate) tombstones: Tombstones,
    pub(crate) refuter: Refuter,
    pub(crate) quarantine: Quarantine,
    pub(crate) claims: Claims,
    /// `Config::probe_interval`, unscaled (how old a probe may be to judge hearing).
    pub(crate) probe_interval: Duration,
}

impl Membership {
    /// The membership of `view`; this node's own record is signed with `claims`.
    pub(crate) fn new(view: View, config: &Config, claims: Claims) -> Self {
        let mut membership = Self {
            view,
            suspicions: Suspicions::default(),
            tombstones: Tombstones::new(config),
            refuter: Refuter::default(),
            quarantine: Quarantine::default(),
            probe_interval: config.probe_interval,
            claims,
        };
        membership.sign_me();
        membership
    }

    pub(crate) fn view(&self) -> &View {
        &self.view
    }

    pub(crate) fn view_mut(&mut self) -> &mut View {
        &mut self.view
    }

    pub(crate) fn claims_mut(&mut self) -> &mut Claims {
        &mut self.claims
    }

    /// When the earliest open suspicion runs out.
    pub(crate) fn suspicion_deadline(&self) -> Option<Instant> {
        self.suspicions.deadline()
    }

    /// When the next tombstone is due.
    pub(crate) fn reap_deadline(&self) -> Option<Instant> {
        self.tombstones.deadline()
    }

    /// One piggybacked update from `from`.
    pub(crate) fn apply_update(
        &mut self,
        now: Instant,
        config: &Config,
        from: Sender<'_>,
        u: Update<'_>,
        fx: &mut Fx<'_>,
    ) -> Outcome {
        if u.name == &**self.view.my_name() {
            return self.about_me(now, from, u.incarnation, u.kind, fx);
        }
        let id = self.view.lookup(u.name);
        match (u.kind, id) {
            (UpdateKind::Alive(own), _) => {
                let claim = AliveClaim {
                    name: u.name,
                    incarnation: u.incarnation,
                    own,
                    offered: &[],
                };
                self.apply_alive(now, from, claim, fx)
            }
            (UpdateKind::Suspect(a), Some(id)) => {
                self.suspect(now, config, from, id, u.incarnation, Accuser::Peer(a), fx)
            }
            (UpdateKind::Dead(a), Some(id)) => {
                let accuser = Accuser::Peer(a);
                if self.death_too_early(now, config, id, u.incarnation) {
                    self.suspect(now, config, from, id, u.incarnation, accuser, fx)
                } else {
                    self.declare_dead(now, from, id, u.incarnation, accuser, fx)
                }
            }
            (UpdateKind::Left(own), Some(id)) => {
                self.apply_left(now, from, id, u.incarnation, own, fx)
            }
            // No record to accuse or bury: a member this view never knew (or forgot).
            _ => Outcome::Done,
        }
    }

    /// Whether news that `id` is dead at `incarnation` comes too early to take effect here:
    /// this view holds it alive (never saw the suspicion), or has held the suspicion for
    /// less than the minimum suspicion timeout. The member may not have heard the suspicion
    /// either — its accuser could not be heard while it suspected (a one-way partition, a
    /// flaky link) — so the news only starts or confirms a suspicion here, which the member
    /// can still refute (as memberlist does for a push-pull's dead record). In the common
    /// case the suspicion spread long before the death and the death takes effect at once.
    fn death_too_early(
        &self,
        now: Instant,
        config: &Config,
        id: MemberId,
        incarnation: u32,
    ) -> bool {
        let Some(m) = self.view.get(id) else {
            return false;
        };
        match m.state {
            MemberState::Alive => m.incarnation <= incarnation,
            MemberState::Suspect if m.incarnation == incarnation => {
                let min = config.timings(self.view.cluster_size()).suspicion_min();
                self.suspicions
                    .held_for(id, incarnation, now)
                    .is_some_and(|held| held < min)
            }
            _ => false,
        }
    }

    /// A push-pull record of `id` accused at an incarnation above the record's, with claims
    /// signed: the member's own claim at that incarnation, which the record carries, is
    /// applied first (this view missed it), so that the accusation is not above what the
    /// member signed. `Err` with the outcome to return if that claim does not hold.
    pub(crate) fn catch_up(
        &mut self,
        now: Instant,
        from: Sender<'_>,
        id: MemberId,
        incarnation: u32,
        own: Own<'_>,
        fx: &mut Fx<'_>,
    ) -> Result<(), Outcome> {
        let Some(m) = self.view.get(id) else {
            return Ok(());
        };
        if !self.claims.signed() || incarnation <= m.incarnation || own.sig.is_empty() {
            return Ok(());
        }
        let name = m.name.clone();
        let claim = AliveClaim {
            name: &name,
            incarnation,
            own,
            offered: &[],
        };
        match self.apply_alive(now, from, claim, fx) {
            Outcome::Done
                if self
                    .view
                    .get(id)
                    .is_some_and(|m| m.incarnation == incarnation) =>
            {
                Ok(())
            }
            Outcome::Done => Err(Outcome::Done),
            other => Err(other),
        }
    }

    /// The verdict on a claim about `about`: the credential that vouched for it, or the
    /// outcome to return at once (a refusal is counted and reported).
    pub(crate) fn vouched(
        &mut self,
        from: Sender<'_>,
        about: &str,
        check: Check,
        fx: &mut Fx<'_>,
    ) -> Result<Option<Credential>, Outcome> {
        match check {
            Check::Valid(credential) => Ok(credential),
            Check::Refused(reason) => {
                self.refused(from.name, about, reason, fx);
                Err(Outcome::Done)
            }
            Check::Wait(wants) => Err(Outcome::Wait {
                wants,
                or_else: ClaimRefusal::NoCredential,
            }),
        }
    }

    /// Counts and reports a refused claim.
    pub(crate) fn refused(
        &self,
        from: &Arc<str>,
        about: &str,
        reason: ClaimRefusal,
        fx: &mut Fx<'_>,
    ) {
        fx.stats.count_refused(reason);
        fx.events.push_back(Event::ClaimRefused {
            from: from.clone(),
            about: self.view.name(about),
            reason,
        });
    }

    /// A member is alive as it claims. The claim is checked against the record before its
    /// signature, and before anything is copied or allocated: most gossip repeats what the
    /// view already holds.
    pub(crate) fn apply_alive(
        &mut self,
        now: Instant,
        from: Sender<'_>,
        c: AliveClaim<'_>,
        fx: &mut Fx<'_>,
    ) -> Outcome {
        let known = self.view.known(c.name);
        if let Some((_, cur)) = known {
            if !supersedes(
                c.incarnation,
                MemberState::Alive,
                cur.incarnation,
                cur.state,
            ) {
                return Outcome::Done;
            }
        }
        let check = self.claims.check_own(
            now,
            &self.view,
            from,
            c.name,
            c.incarnation,
            false,
            &c.own,
            c.offered,
        );
        let credential = match self.vouched(from, c.name, check, fx) {
            Ok(credential) => credential,
            Err(outcome) => return outcome,
        };
        self.claims.settled(c.name);
        let own_sig = Some(Box::from(c.own.sig));
        let Some((id, cur)) = self.view.known(c.name) else {
            let (id, name) = self.view.intern(c.name);
            let mut member = Member::alive(
                name,
                c.own.addr,
                metadata(c.own.meta),
                c.incarnation,
                c.own.boot_id,
                now,
            );
            member.prove(credential, own_sig, None);
            self.view.set(id, member);
            self.push_up(id, false, fx);
            self.spread(id, None, fx.updates);
            return Outcome::Done;
        };
        let (state, since) = (cur.state, cur.since);
        let same_process = cur.boot_id == c.own.boot_id;
        let same_meta = cur.meta.as_deref().unwrap_or(&[]) == c.own.meta;
        let changed = cur.addr != c.own.addr || !same_meta || !same_process;
        let meta = if same_meta {
            cur.meta.clone()
        } else {
            metadata(c.own.meta)
        };
        self.suspicions.close(id);
        self.view.modify(id, |m| {
            m.addr = c.own.addr;
            m.meta = meta;
            m.incarnation = c.incarnation;
            m.boot_id = c.own.boot_id;
            // A new process's record starts now. The same process's claim, relayed, says
            // nothing of when it was last heard: it may have crashed since it signed it.
            if !same_process {
                m.last_alive = now;
            }
            m.prove(credential, own_sig, None);
            if state != MemberState::Alive {
                m.state = MemberState::Alive;
                m.since = now;
            }
            // A false positive, if the same process comes back.
            match state {
                MemberState::Suspect if same_process => {
                    m.false_suspicions = m.false_suspicions.saturating_add(1)
                }
                MemberState::Dead if same_process => {
                    m.false_deaths = m.false_deaths.saturating_add(1)
                }
                _ => {}
            }
        });
        match state {
            MemberState::Suspect if same_process => {
                fx.stats.suspicions_refuted += 1;
                let member = self.view.info(id).expect("just set");
                let suspected_for = now.saturating_duration_since(since);
                fx.events.push_back(Event::SuspicionRefuted {
                    member,
                    suspected_for,
                });
            }
            MemberState::Suspect => self.push_updated(id, fx),
            MemberState::Dead | MemberState::Left => {
                let false_death = state == MemberState::Dead && same_process;
                if false_death {
                    fx.stats.false_deaths += 1;
                }
                self.tombstones
                    .exhume(id, since, state == MemberState::Dead);
                self.push_up(id, false_death, fx);
            }
            MemberState::Alive if changed => self.push_updated(id, fx),
            MemberState::Alive => {}
        }
        self.spread(id, None, fx.updates);
        Outcome::Done
    }

    /// `id` left gracefully at `incarnation`, as its own claim `own` says.
    pub(crate) fn apply_left(
        &mut self,
        now: Instant,
        from: Sender<'_>,
        id: MemberId,
        incarnation: u32,
        own: Own<'_>,
        fx: &mut Fx<'_>,
    ) -> Outcome {
        let Some(cur) = self.view.get(id) else {
            return Outcome::Done;
        };
        if !supersedes(incarnation, MemberState::Left, cur.incarnation, cur.state) {
            return Outcome::Done;
        }
        let name = cur.name.clone();
        let check =
            self.claims
                .check_own(now, &self.view, from, &name, incarnation, true, &own, &[]);
        let credential = match self.vouched(from, &name, check, fx) {
            Ok(credential) => credential,
            Err(outcome) => return outcome,
        };
        self.bury(id, MemberState::Left, incarnation, now);
        self.view.modify(id, |m| {
            m.addr = own.addr;
            m.boot_id = own.boot_id;
            m.meta = metadata(own.meta);
            m.prove(credential, Some(own.sig.into()), None);
        });
        let member = self.view.info(id).expect("just set");
        fx.events.push_back(Event::MemberLeft { member });
        self.spread(id, None, fx.updates);
        Outcome::Done
    }

    /// `id` becomes dead or left (`state`) at `incarnation`: its suspicion ends, and its
    /// tombstone time starts again from now.
    pub(crate) fn bury(
        &mut self,
        id: MemberId,
        state: MemberState,
        incarnation: u32,
        now: Instant,
    ) {
        let Some(cur) = self.view.get(id) else {
            return;
        };
        if matches!(cur.state, MemberState::Dead | MemberState::Left) {
            let dead = cur.state == MemberState::Dead;
            self.tombstones.exhume(id, cur.since, dead);
        }
        self.suspicions.close(id);
        self.view.modify(id, |m| {
            m.state = state;
            m.since = now;
            m.incarnation = incarnation;
        });
        self.tombstones.bury(id, now, state == MemberState::Dead);
    }

    /// Forgets left members whose tombstone time is over, dead members this node gives up
    /// on, and the longest-dead past the bound. Returns how many of them had left.
    pub(crate) fn reap(&mut self, now: Instant, fx: &mut Fx<'_>) -> usize {
        let mut left = 0;
        while let Some((id, why)) = self.tombstones.pop_due(now) {
            let Some(m) = self.view.get(id) else {
                continue;
            };
            if matches!(m.state, MemberState::Dead | MemberState::Left) && id != self.view.my_id() {
                let (name, state) = (m.name.clone(), m.state);
                self.view.remove(id);
                fx.updates.remove(Key::Member(id));
                match why {
                    Forgotten::Left => left += 1,
                    Forgotten::GaveUp => {}
                    Forgotten::Evicted => fx.stats.dead_members_evicted += 1,
                }
                fx.events.push_back(Event::MemberReaped { name, state });
            }
        }
        left
    }

    /// Queues this view's current record of `id` to be disseminated, replacing any older one
    /// queued about it. A suspect or dead update carries the record's accusation, or
    /// `accused` (a confirmation, spread as received so that re-gossip is not mistaken for an
    /// independent one).
    pub(crate) fn spread(
        &self,
        id: MemberId,
        accused: Option<&Accused>,
        updates: &mut BroadcastQueue,
    ) {
        let Some(m) = self.view.get(id) else {
            return;
        };
        // Encoded as of when it was last heard; the queue restamps the silence at each send.
        updates.push_stamped(
            Key::Member(id),
            m.encode_update(accused, self.view.my_name(), m.last_alive),
            m.heard_for_restamp(),
        );
    }

    pub(crate) fn push_up(&self, id: MemberId, after_false_death: bool, fx: &mut Fx<'_>) {
        let member = self.view.info(id).expect("caller just set it");
        fx.events.push_back(Event::MemberUp {
            member,
            after_false_death,
        });
    }

    pub(crate) fn push_updated(&self, id: MemberId, fx: &mut Fx<'_>) {
        let member = self.view.info(id).expect("caller just set it");
        fx.events.push_back(Event::MemberUpdated { member });
    }
}

/// Stored metadata: none for empty bytes.
fn metadata(bytes: &[u8]) -> Option<Arc<[u8]>> {
    (!bytes.is_empty()).then(|| Arc::from(bytes))
}
