//! Applying membership updates to this node's view: the state transitions, suspicion
//! timers, refuting suspicions of ourselves, name conflicts, and reaping tombstones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::event::Event;
use crate::membership::{supersedes, Member, MemberId, MemberState};
use crate::node::Node;
use crate::suspicion::Suspicion;
use crate::wire::{Item, StateEntry, Update, UpdateKind};

/// An alive claim about a member, as it arrives in an update or a push-pull record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AliveClaim<'a> {
    pub name: &'a str,
    pub addr: SocketAddr,
    pub incarnation: u32,
    pub boot_id: u32,
    pub meta: &'a [u8],
}

impl Node {
    /// One piggybacked item.
    pub(crate) fn apply_item(&mut self, item: Item<'_>, now: Instant) {
        match item {
            Item::Member(update) => self.apply_update(update, now),
            Item::User {
                origin,
                seq,
                payload,
            } => self.receive_user_broadcast(origin, seq, payload),
            // `wire::decode` refuses state items outside push-pull; a digest needs its
            // sender and is handled with the message.
            Item::State(_) | Item::StateDigest(_) => {}
        }
    }

    pub(crate) fn apply_update(&mut self, u: Update<'_>, now: Instant) {
        if u.name == &*self.my_name {
            self.update_about_me(u.incarnation, u.kind);
            return;
        }
        match u.kind {
            UpdateKind::Alive {
                addr,
                boot_id,
                meta,
            } => self.apply_alive(
                AliveClaim {
                    name: u.name,
                    addr,
                    incarnation: u.incarnation,
                    boot_id,
                    meta,
                },
                now,
            ),
            UpdateKind::Suspect { accuser } => {
                if let Some(id) = self.names.lookup(u.name) {
                    let (accuser, accuser_name) = self.names.intern(accuser);
                    self.apply_suspect(id, u.incarnation, accuser, &accuser_name, now);
                }
            }
            UpdateKind::Dead => {
                if let Some(id) = self.names.lookup(u.name) {
                    self.apply_dead(id, u.incarnation, now, false);
                }
            }
            UpdateKind::Left => {
                if let Some(id) = self.names.lookup(u.name) {
                    self.apply_left(id, u.incarnation, now);
                }
            }
        }
    }

    /// One record of a push-pull from `from`. A remote `dead` becomes a local suspicion
    /// accused by `from` (memberlist's rule): one peer's stale tombstone must not kill a live
    /// member here without a suspicion it can refute. Unknown dead or left members are not
    /// learned (no tombstone for a member we never knew).
    pub(crate) fn merge_state(
        &mut self,
        from: MemberId,
        from_name: &Arc<str>,
        e: StateEntry<'_>,
        now: Instant,
    ) {
        if e.name == &*self.my_name {
            let kind = match e.state {
                MemberState::Alive => UpdateKind::Alive {
                    addr: e.addr,
                    boot_id: e.boot_id,
                    meta: e.meta,
                },
                MemberState::Suspect => UpdateKind::Suspect { accuser: from_name },
                MemberState::Dead => UpdateKind::Dead,
                MemberState::Left => UpdateKind::Left,
            };
            self.update_about_me(e.incarnation, kind);
            return;
        }
        let claim = AliveClaim {
            name: e.name,
            addr: e.addr,
            incarnation: e.incarnation,
            boot_id: e.boot_id,
            meta: e.meta,
        };
        match e.state {
            MemberState::Alive => self.apply_alive(claim, now),
            MemberState::Suspect | MemberState::Dead => {
                let known = self
                    .names
                    .lookup(e.name)
                    .and_then(|id| self.members.get(id).map(|_| id));
                let id = match known {
                    Some(id) => id,
                    None if e.state == MemberState::Suspect => {
                        self.apply_alive(claim, now);
                        match self.names.lookup(e.name) {
                            Some(id) => id,
                            None => return,
                        }
                    }
                    None => return,
                };
                self.apply_suspect(id, e.incarnation, from, from_name, now);
            }
            MemberState::Left => {
                if let Some(id) = self.names.lookup(e.name) {
                    self.apply_left(id, e.incarnation, now);
                }
            }
        }
    }

    pub(crate) fn apply_alive(&mut self, c: AliveClaim<'_>, now: Instant) {
        let (id, name) = self.names.intern(c.name);
        let meta: Option<Arc<[u8]>> = (!c.meta.is_empty()).then(|| Arc::from(c.meta));
        let Some(cur) = self.members.get(id).cloned() else {
            self.members.set(
                id,
                Member {
                    name,
                    addr: c.addr,
                    meta,
                    incarnation: c.incarnation,
                    boot_id: c.boot_id,
                    state: MemberState::Alive,
                    since: now,
                    last_alive: now,
                },
            );
            self.push_event_up(id, false);
            self.enqueue_member(id);
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
        let same_process = cur.boot_id == c.boot_id;
        let changed = cur.addr != c.addr || cur.meta.as_deref() != meta.as_deref() || !same_process;
        let mut m = cur.clone();
        m.addr = c.addr;
        m.meta = meta;
        m.incarnation = c.incarnation;
        m.boot_id = c.boot_id;
        m.last_alive = now;
        if cur.state != MemberState::Alive {
            m.state = MemberState::Alive;
            m.since = now;
        }
        self.close_suspicion(id);
        self.members.set(id, m);
        match cur.state {
            MemberState::Suspect if same_process => {
                self.stats.suspicions_refuted += 1;
                let member = self.info(id).expect("just set");
                let suspected_for = now.saturating_duration_since(cur.since);
                self.events.push_back(Event::SuspicionRefuted {
                    member,
                    suspected_for,
                });
            }
            MemberState::Suspect => self.push_event_updated(id),
            MemberState::Dead | MemberState::Left => {
                let false_death = cur.state == MemberState::Dead && same_process;
                if false_death {
                    self.stats.false_deaths += 1;
                }
                self.tombstones
                    .remove(&(cur.since + self.config.tombstone_timeout, id));
                self.push_event_up(id, false_death);
            }
            MemberState::Alive if changed => self.push_event_updated(id),
            MemberState::Alive => {}
        }
        self.enqueue_member(id);
    }

    /// `accuser` suspects `id` at `incarnation`: our own probe failed (`accuser` is this
    /// node), or an update or push-pull record says so.
    pub(crate) fn apply_suspect(
        &mut self,
        id: MemberId,
        incarnation: u32,
        accuser: MemberId,
        accuser_name: &Arc<str>,
        now: Instant,
    ) {
        let Some(cur) = self.members.get(id).cloned() else {
            return;
        };
        if contradicts_failure(&cur, incarnation) {
            self.answer_stale(id);
            return;
        }
        if supersedes(
            incarnation,
            MemberState::Suspect,
            cur.incarnation,
            cur.state,
        ) {
            self.close_suspicion(id);
            let timings = self.config.timings(self.cluster_size());
            let suspicion = Suspicion::new(
                incarnation,
                accuser,
                now,
                timings.suspicion_min(),
                timings.suspicion_max(),
                timings.suspicion_confirmations(),
            );
            self.suspicion_deadlines.insert((suspicion.deadline(), id));
            self.suspicions.insert(id, suspicion);
            let mut m = cur;
            m.state = MemberState::Suspect;
            m.since = now;
            m.incarnation = incarnation;
            self.members.set(id, m);
            self.stats.suspicions_started += 1;
            if accuser == self.me {
                self.stats.suspicions_raised += 1;
            }
            let member = self.info(id).expect("just set");
            self.events.push_back(Event::MemberSuspect {
                member,
                accuser: accuser_name.clone(),
            });
            self.enqueue_update(id, Some(accuser_name));
        } else if self.config.lifeguard
            && cur.state == MemberState::Suspect
            && cur.incarnation == incarnation
        {
            let Some(s) = self.suspicions.get_mut(&id) else {
                return;
            };
            let old = s.deadline();
            if s.confirm(accuser) {
                let new = s.deadline();
                self.suspicion_deadlines.remove(&(old, id));
                self.suspicion_deadlines.insert((new, id));
                // Spread the confirmation so others shorten their timers too.
                self.enqueue_update(id, Some(accuser_name));
            }
        }
    }

    pub(crate) fn apply_dead(&mut self, id: MemberId, incarnation: u32, now: Instant, by_us: bool) {
        let Some(cur) = self.members.get(id).cloned() else {
            return;
        };
        if !by_us && contradicts_failure(&cur, incarnation) {
            self.answer_stale(id);
            return;
        }
        if !supersedes(incarnation, MemberState::Dead, cur.incarnation, cur.state) {
            return;
        }
        self.close_suspicion(id);
        if matches!(cur.state, MemberState::Dead | MemberState::Left) {
            self.tombstones
                .remove(&(cur.since + self.config.tombstone_timeout, id));
        }
        let since_suspected =
            (cur.state == MemberState::Suspect).then(|| now.saturating_duration_since(cur.since));
        let since_last_alive = now.saturating_duration_since(cur.last_alive);
        let mut m = cur.clone();
        m.state = MemberState::Dead;
        m.since = now;
        m.incarnation = incarnation;
        self.members.set(id, m);
        self.tombstones
            .insert((now + self.config.tombstone_timeout, id));
        if cur.state == MemberState::Suspect {
            self.stats.suspicions_confirmed += 1;
        }
        self.stats.deaths += 1;
        if by_us {
            self.stats.deaths_declared += 1;
        }
        let member = self.info(id).expect("just set");
        self.events.push_back(Event::MemberDown {
            member,
            since_last_alive,
            since_suspected,
            by_us,
        });
        self.enqueue_member(id);
    }

    pub(crate) fn apply_left(&mut self, id: MemberId, incarnation: u32, now: Instant) {
        let Some(cur) = self.members.get(id).cloned() else {
            return;
        };
        if !supersedes(incarnation, MemberState::Left, cur.incarnation, cur.state) {
            return;
        }
        self.close_suspicion(id);
        if matches!(cur.state, MemberState::Dead | MemberState::Left) {
            self.tombstones
                .remove(&(cur.since + self.config.tombstone_timeout, id));
        }
        let mut m = cur;
        m.state = MemberState::Left;
        m.since = now;
        m.incarnation = incarnation;
        self.members.set(id, m);
        self.tombstones
            .insert((now + self.config.tombstone_timeout, id));
        let member = self.info(id).expect("just set");
        self.events.push_back(Event::MemberLeft { member });
        self.enqueue_member(id);
    }

    /// Someone says something about us. A suspicion, death or leave at our incarnation or
    /// above is refuted with a higher incarnation (Lifeguard: being suspected also counts
    /// against our local health). An alive claim from another process (boot id) is a previous
    /// instance of us the first time; if that same process outbids our refutation, it is
    /// alive too: a name conflict.
    pub(crate) fn update_about_me(&mut self, incarnation: u32, kind: UpdateKind<'_>) {
        let accusation = !matches!(kind, UpdateKind::Alive { .. });
        let mine = self.me().incarnation;
        if self.left || incarnation < mine {
            // Stale news about us (or we left): answer it with our current record, so the
            // node that holds it learns better instead of acting on it.
            if accusation {
                self.answer_stale(self.me);
            }
            return;
        }
        let Some(refuted) = incarnation.checked_add(1) else {
            // No incarnation can outrank this claim; refuting is impossible, and rolling our
            // incarnation back to 0 would make every later refutation lose. Ignore it.
            return;
        };
        match kind {
            UpdateKind::Alive { boot_id, .. } if boot_id == self.boot_id => return,
            UpdateKind::Alive { boot_id, addr, .. } => match self.foreign {
                Some((b, reported)) if b == boot_id => {
                    if !reported {
                        self.foreign = Some((b, true));
                        self.stats.name_conflicts += 1;
                        let name = self.my_name.clone();
                        self.events.push_back(Event::NameConflict {
                            name,
                            other_addr: addr,
                        });
                    }
                }
                _ => self.foreign = Some((boot_id, false)),
            },
            UpdateKind::Suspect { .. } => {
                if self.config.lifeguard {
                    self.awareness.apply(1);
                }
            }
            UpdateKind::Dead | UpdateKind::Left => {}
        }
        let mut me = self.me().clone();
        me.incarnation = refuted;
        self.members.set(self.me, me);
        self.stats.refutations += 1;
        self.enqueue_member(self.me);
    }

    /// Someone still spreads a failure that our record already disproves: re-spread our
    /// record (unless it is still queued), so the stale holder corrects itself before its own
    /// suspicion timer declares a live or departed member dead.
    fn answer_stale(&mut self, id: MemberId) {
        if !self
            .member_queue
            .contains(crate::dissemination::Key::Member(id))
        {
            self.enqueue_member(id);
        }
    }

    fn close_suspicion(&mut self, id: MemberId) {
        if let Some(s) = self.suspicions.remove(&id) {
            self.suspicion_deadlines.remove(&(s.deadline(), id));
        }
    }

    /// Suspicions whose timeout ended: the member is declared dead by this node.
    pub(crate) fn expire_suspicions(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.suspicion_deadlines.first() {
            if deadline > now {
                break;
            }
            self.suspicion_deadlines.pop_first();
            if let Some(s) = self.suspicions.remove(&id) {
                self.apply_dead(id, s.incarnation, now, true);
            }
        }
    }

    /// Forgets dead and left members whose tombstone time is over.
    pub(crate) fn reap_tombstones(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.tombstones.first() {
            if at > now {
                break;
            }
            self.tombstones.pop_first();
            let Some(m) = self.members.get(id) else {
                continue;
            };
            if matches!(m.state, MemberState::Dead | MemberState::Left) && id != self.me {
                let name = m.name.clone();
                self.members.remove(id);
                self.member_queue
                    .remove(crate::dissemination::Key::Member(id));
                self.events.push_back(Event::MemberReaped { name });
            }
        }
    }

    fn push_event_up(&mut self, id: MemberId, after_false_death: bool) {
        let member = self.info(id).expect("caller just set it");
        self.events.push_back(Event::MemberUp {
            member,
            after_false_death,
        });
    }

    fn push_event_updated(&mut self, id: MemberId) {
        let member = self.info(id).expect("caller just set it");
        self.events.push_back(Event::MemberUpdated { member });
    }
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
