//! Membership transitions: how an alive, suspect, dead or left claim about a member changes
//! this node's view (ordered by SWIM §4.2's precedence, `membership::supersedes`), with the
//! suspicion, tombstone and refutation each change starts or ends.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::dissemination::{BroadcastQueue, Key};
use crate::error::ApiMisuse;
use crate::event::Event;
use crate::membership::{supersedes, Member, MemberId, MemberState};
use crate::refutation::{Refuter, Verdict};
use crate::stats::Stats;
use crate::suspicion::Suspicions;
use crate::tombstone::Tombstones;
use crate::view::View;
use crate::wire::{self, Item, Update, UpdateKind};

/// An alive claim about a member, as it arrives in an update or a push-pull record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AliveClaim<'a> {
    pub name: &'a str,
    pub addr: SocketAddr,
    pub incarnation: u32,
    pub boot_id: u32,
    pub meta: &'a [u8],
}

/// Who raised a suspicion.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Accuser<'a> {
    /// This node: its own probe failed.
    Us,
    /// Another member, by name (from an update, or the sender of a push-pull record).
    Peer(&'a str),
}

/// Where a transition's effects go besides the view: events for the user, counters, and the
/// queue of membership updates to piggyback.
pub(crate) struct Fx<'a> {
    pub(crate) events: &'a mut VecDeque<Event>,
    pub(crate) stats: &'a mut Stats,
    pub(crate) updates: &'a mut BroadcastQueue,
}

/// This node's membership state: its view, the open suspicions, the tombstones, and what it
/// knows of claims about itself. Every change of a member's state goes through here.
#[derive(Debug)]
pub(crate) struct Membership {
    view: View,
    suspicions: Suspicions,
    tombstones: Tombstones,
    refuter: Refuter,
}

impl Membership {
    pub(crate) fn new(view: View, tombstone_timeout: Duration) -> Self {
        Self {
            view,
            suspicions: Suspicions::default(),
            tombstones: Tombstones::new(tombstone_timeout),
            refuter: Refuter::default(),
        }
    }

    pub(crate) fn view(&self) -> &View {
        &self.view
    }

    pub(crate) fn view_mut(&mut self) -> &mut View {
        &mut self.view
    }

    /// When the earliest open suspicion runs out.
    pub(crate) fn suspicion_deadline(&self) -> Option<Instant> {
        self.suspicions.deadline()
    }

    /// When the next tombstone is due.
    pub(crate) fn reap_deadline(&self) -> Option<Instant> {
        self.tombstones.deadline()
    }

    /// One piggybacked update. Returns `true` when it was a suspicion of this node that we
    /// refuted (Lifeguard counts it against our local health).
    pub(crate) fn apply_update(
        &mut self,
        now: Instant,
        config: &Config,
        u: Update<'_>,
        fx: &mut Fx<'_>,
    ) -> bool {
        if u.name == &**self.view.my_name() {
            return self.about_me(u.incarnation, u.kind, fx);
        }
        match u.kind {
            UpdateKind::Alive {
                addr,
                boot_id,
                meta,
            } => self.apply_alive(
                now,
                AliveClaim {
                    name: u.name,
                    addr,
                    incarnation: u.incarnation,
                    boot_id,
                    meta,
                },
                fx,
            ),
            UpdateKind::Suspect { accuser } => {
                if let Some(id) = self.view.lookup(u.name) {
                    let accuser = Accuser::Peer(accuser);
                    self.suspect(now, config, id, u.incarnation, accuser, fx);
                }
            }
            UpdateKind::Dead => {
                if let Some(id) = self.view.lookup(u.name) {
                    self.declare_dead(now, id, u.incarnation, false, fx);
                }
            }
            UpdateKind::Left => {
                if let Some(id) = self.view.lookup(u.name) {
                    self.apply_left(now, id, u.incarnation, fx);
                }
            }
        }
        false
    }

    /// A member is alive as claimed. The claim is checked against the record before anything
    /// is copied or allocated: most gossip repeats what the view already holds.
    pub(crate) fn apply_alive(&mut self, now: Instant, c: AliveClaim<'_>, fx: &mut Fx<'_>) {
        let Some((id, cur)) = self.view.known(c.name) else {
            let (id, name) = self.view.intern(c.name);
            self.view.set(
                id,
                Member {
                    name,
                    addr: c.addr,
                    meta: metadata(c.meta),
                    incarnation: c.incarnation,
                    boot_id: c.boot_id,
                    state: MemberState::Alive,
                    since: now,
                    last_alive: now,
                    false_suspicions: 0,
                    false_deaths: 0,
                },
            );
            self.push_up(id, false, fx);
            self.spread(id, None, fx.updates);
            return;
        };
        if !supersedes(
            c.incarnation,
            MemberState::Alive,
            cur.incarnation,
            cur.state,
        ) {
            return;
        }
        let (state, since) = (cur.state, cur.since);
        let same_process = cur.boot_id == c.boot_id;
        let same_meta = cur.meta.as_deref().unwrap_or(&[]) == c.meta;
        let changed = cur.addr != c.addr || !same_meta || !same_process;
        let meta = if same_meta {
            cur.meta.clone()
        } else {
            metadata(c.meta)
        };
        self.suspicions.close(id);
        self.view.modify(id, |m| {
            m.addr = c.addr;
            m.meta = meta;
            m.incarnation = c.incarnation;
            m.boot_id = c.boot_id;
            m.last_alive = now;
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
                self.tombstones.exhume(id, since);
                self.push_up(id, false_death, fx);
            }
            MemberState::Alive if changed => self.push_updated(id, fx),
            MemberState::Alive => {}
        }
        self.spread(id, None, fx.updates);
    }

    /// `accuser` suspects `id` at `incarnation`: a new suspicion, or (Lifeguard) an
    /// independent confirmation of the open one.
    pub(crate) fn suspect(
        &mut self,
        now: Instant,
        config: &Config,
        id: MemberId,
        incarnation: u32,
        accuser: Accuser<'_>,
        fx: &mut Fx<'_>,
    ) {
        let Some(cur) = self.view.get(id) else {
            return;
        };
        if contradicts_failure(cur, incarnation) {
            self.answer_stale(id, fx);
            return;
        }
        let fresh = supersedes(
            incarnation,
            MemberState::Suspect,
            cur.incarnation,
            cur.state,
        );
        let confirms =
            config.lifeguard && cur.state == MemberState::Suspect && cur.incarnation == incarnation;
        if !fresh && !confirms {
            return;
        }
        let accuser_name = match accuser {
            Accuser::Us => self.view.my_name().clone(),
            // Not interned: an accuser need not be a member of this view.
            Accuser::Peer(name) => self.view.name(name),
        };
        if !fresh {
            if self.suspicions.confirm(id, &accuser_name) {
                // Spread the confirmation so others shorten their timers too.
                self.spread(id, Some(&accuser_name), fx.updates);
            }
            return;
        }
        let timings = config.timings(self.view.cluster_size());
        self.suspicions
            .start(now, id, incarnation, accuser_name.clone(), &timings);
        self.view.modify(id, |m| {
            m.state = MemberState::Suspect;
            m.since = now;
            m.incarnation = incarnation;
        });
        fx.stats.suspicions_started += 1;
        if matches!(accuser, Accuser::Us) {
            fx.stats.suspicions_raised += 1;
        }
        let member = self.view.info(id).expect("just set");
        fx.events.push_back(Event::MemberSuspect {
            member,
            accuser: accuser_name.clone(),
        });
        self.spread(id, Some(&accuser_name), fx.updates);
    }

    /// `id` is dead at `incarnation`: this node's suspicion ran out (`by_us`), or it heard so.
    pub(crate) fn declare_dead(
        &mut self,
        now: Instant,
        id: MemberId,
        incarnation: u32,
        by_us: bool,
        fx: &mut Fx<'_>,
    ) {
        let Some(cur) = self.view.get(id) else {
            return;
        };
        if !by_us && contradicts_failure(cur, incarnation) {
            self.answer_stale(id, fx);
            return;
        }
        if !supersedes(incarnation, MemberState::Dead, cur.incarnation, cur.state) {
            return;
        }
        let (state, since, last_alive) = (cur.state, cur.since, cur.last_alive);
        let since_suspected =
            (state == MemberState::Suspect).then(|| now.saturating_duration_since(since));
        let since_last_alive = now.saturating_duration_since(last_alive);
        self.bury(id, MemberState::Dead, incarnation, now);
        if state == MemberState::Suspect {
            fx.stats.suspicions_confirmed += 1;
        }
        fx.stats.deaths += 1;
        if by_us {
            fx.stats.deaths_declared += 1;
        }
        let member = self.view.info(id).expect("just set");
        fx.events.push_back(Event::MemberDown {
            member,
            since_last_alive,
            since_suspected,
            by_us,
        });
        self.spread(id, None, fx.updates);
    }

    /// `id` left gracefully at `incarnation`.
    pub(crate) fn apply_left(
        &mut self,
        now: Instant,
        id: MemberId,
        incarnation: u32,
        fx: &mut Fx<'_>,
    ) {
        let Some(cur) = self.view.get(id) else {
            return;
        };
        if !supersedes(incarnation, MemberState::Left, cur.incarnation, cur.state) {
            return;
        }
        self.bury(id, MemberState::Left, incarnation, now);
        let member = self.view.info(id).expect("just set");
        fx.events.push_back(Event::MemberLeft { member });
        self.spread(id, None, fx.updates);
    }

    /// `id` becomes dead or left (`state`) at `incarnation`: its suspicion ends, and its
    /// tombstone time starts again from now.
    fn bury(&mut self, id: MemberId, state: MemberState, incarnation: u32, now: Instant) {
        let Some(cur) = self.view.get(id) else {
            return;
        };
        if matches!(cur.state, MemberState::Dead | MemberState::Left) {
            self.tombstones.exhume(id, cur.since);
        }
        self.suspicions.close(id);
        self.view.modify(id, |m| {
            m.state = state;
            m.since = now;
            m.incarnation = incarnation;
        });
        self.tombstones.bury(id, now);
    }

    /// Someone says something about us (see `refutation`). Returns `true` when it was a
    /// suspicion we refuted.
    pub(crate) fn about_me(
        &mut self,
        incarnation: u32,
        kind: UpdateKind<'_>,
        fx: &mut Fx<'_>,
    ) -> bool {
        let (left, mine) = (self.view.has_left(), self.view.me().incarnation);
        let verdict = self
            .refuter
            .judge(left, mine, self.view.boot_id(), incarnation, &kind);
        match verdict {
            Verdict::Ignore => false,
            Verdict::AnswerStale => {
                self.answer_stale(self.view.my_id(), fx);
                false
            }
            Verdict::Refute {
                to,
                suspected,
                conflict,
            } => {
                if let Some(other_addr) = conflict {
                    fx.stats.name_conflicts += 1;
                    let name = self.view.my_name().clone();
                    fx.events
                        .push_back(Event::NameConflict { name, other_addr });
                }
                self.view.update_me(|m| m.incarnation = to);
                fx.stats.refutations += 1;
                self.spread(self.view.my_id(), None, fx.updates);
                suspected
            }
        }
    }

    /// Suspicions whose timeout ended: the member is declared dead by this node.
    pub(crate) fn expire_suspicions(&mut self, now: Instant, fx: &mut Fx<'_>) {
        while let Some((id, incarnation)) = self.suspicions.pop_expired(now) {
            self.declare_dead(now, id, incarnation, true, fx);
        }
    }

    /// Forgets dead and left members whose tombstone time is over.
    pub(crate) fn reap(&mut self, now: Instant, fx: &mut Fx<'_>) {
        while let Some(id) = self.tombstones.pop_due(now) {
            let Some(m) = self.view.get(id) else {
                continue;
            };
            if matches!(m.state, MemberState::Dead | MemberState::Left) && id != self.view.my_id() {
                let name = m.name.clone();
                self.view.remove(id);
                fx.updates.remove(Key::Member(id));
                fx.events.push_back(Event::MemberReaped { name });
            }
        }
    }

    /// This node leaves: announced as `left`.
    pub(crate) fn leave(&mut self, now: Instant, fx: &mut Fx<'_>) {
        self.view.update_me(|m| {
            m.state = MemberState::Left;
            m.since = now;
        });
        self.spread(self.view.my_id(), None, fx.updates);
    }

    /// This node's metadata changes, announced at a higher incarnation.
    pub(crate) fn set_my_metadata(
        &mut self,
        metadata_bytes: &[u8],
        fx: &mut Fx<'_>,
    ) -> Result<(), ApiMisuse> {
        let incarnation = self
            .view
            .me()
            .incarnation
            .checked_add(1)
            .ok_or(ApiMisuse::IncarnationExhausted)?;
        self.view.update_me(|m| {
            m.meta = metadata(metadata_bytes);
            m.incarnation = incarnation;
        });
        self.spread(self.view.my_id(), None, fx.updates);
        Ok(())
    }

    /// Someone still spreads a failure that our record already disproves: re-spread our
    /// record (unless it is still queued), so the stale holder corrects itself before its own
    /// suspicion timer declares a live or departed member dead.
    fn answer_stale(&self, id: MemberId, fx: &mut Fx<'_>) {
        if !fx.updates.contains(Key::Member(id)) {
            self.spread(id, None, fx.updates);
        }
    }

    /// Queues this view's current record of `id` to be disseminated, replacing any older one
    /// queued about it. A suspect update names `accuser` (kept as received, so re-gossip is
    /// not mistaken for an independent confirmation; this node when `None`).
    pub(crate) fn spread(&self, id: MemberId, accuser: Option<&str>, updates: &mut BroadcastQueue) {
        let Some(m) = self.view.get(id) else {
            return;
        };
        let kind = match m.state {
            MemberState::Alive => UpdateKind::Alive {
                addr: m.addr,
                boot_id: m.boot_id,
                meta: m.meta.as_deref().unwrap_or(&[]),
            },
            MemberState::Suspect => UpdateKind::Suspect {
                accuser: accuser.unwrap_or(self.view.my_name()),
            },
            MemberState::Dead => UpdateKind::Dead,
            MemberState::Left => UpdateKind::Left,
        };
        let bytes = wire::encode_item(&Item::Member(Update {
            name: &m.name,
            incarnation: m.incarnation,
            kind,
        }));
        updates.push(Key::Member(id), bytes);
    }

    fn push_up(&self, id: MemberId, after_false_death: bool, fx: &mut Fx<'_>) {
        let member = self.view.info(id).expect("caller just set it");
        fx.events.push_back(Event::MemberUp {
            member,
            after_false_death,
        });
    }

    fn push_updated(&self, id: MemberId, fx: &mut Fx<'_>) {
        let member = self.view.info(id).expect("caller just set it");
        fx.events.push_back(Event::MemberUpdated { member });
    }
}

/// Stored metadata: none for empty bytes.
fn metadata(bytes: &[u8]) -> Option<Arc<[u8]>> {
    (!bytes.is_empty()).then(|| Arc::from(bytes))
}

/// Whether our record of a member disproves a suspicion or death of it at `incarnation`: the
/// member left, or is alive at a higher incarnation (it already refuted).
fn contradicts_failure(ours: &Member, incarnation: u32) -> bool {
    match ours.state {
        MemberState::Left => ours.incarnation >= incarnation,
        MemberState::Alive => ours.incarnation > incarnation,
        MemberState::Suspect | MemberState::Dead => false,
    }
}
