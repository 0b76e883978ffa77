//! Accusations: a suspicion raised, confirmed (Lifeguard) or run out, and a death declared —
//! each checked for who accuses and at which incarnation before it changes the view.

use std::time::Instant;

use crate::claim_refusal::ClaimRefusal;
use crate::claims::Sender;
use crate::config::Config;
use crate::dissemination::{BroadcastQueue, Key};
use crate::event::Event;
use crate::membership::{supersedes, Accused, Member, MemberId, MemberState};
use crate::update::{Fx, Membership, Outcome};
use crate::wire::{Accusation, Silence};

/// Who raised a suspicion or declared a death.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Accuser<'a> {
    /// This node: its own probe failed, or its suspicion ran out.
    Us,
    /// Another member, as its signed accusation says.
    Peer(Accusation<'a>),
}

impl Membership {
    /// The accusation `accuser` makes of `id` at `incarnation`, checked: who accuses, and
    /// its signature. `Err` with the outcome to return when it may not take effect. With
    /// claims signed, no accusation may name an incarnation above the record's (the
    /// highest the member has signed here), so the member can always refute it.
    fn accusation(
        &mut self,
        now: Instant,
        from: Sender<'_>,
        id: MemberId,
        incarnation: u32,
        accuser: Accuser<'_>,
        fx: &mut Fx<'_>,
    ) -> Result<Accused, Outcome> {
        let m = self.view.get(id).expect("caller checked");
        let name = m.name.clone();
        if self.claims.signed() && incarnation > m.incarnation {
            // This view may have missed the member's alive at that incarnation: its record is
            // asked of the sender (which must hold it to pass the accusation on), once.
            if !self.claims.waiting.asked_recently(now, &name) {
                return Err(Outcome::Wait {
                    wants: name,
                    or_else: ClaimRefusal::AboveSigned,
                });
            }
            self.claims
                .refuse(now, from.name, ClaimRefusal::AboveSigned);
            self.refused(from.name, &name, ClaimRefusal::AboveSigned, fx);
            return Err(Outcome::Done);
        }
        match accuser {
            Accuser::Us => Ok(Accused {
                accuser: self.view.my_name().clone(),
                sig: self.claims.sign_accusation(&name, incarnation),
            }),
            Accuser::Peer(a) => {
                let check =
                    self.claims
                        .check_accusation(now, &self.view, from, &name, incarnation, &a);
                self.vouched(from, &name, check, fx)?;
                Ok(Accused {
                    accuser: self.view.name(a.accuser),
                    sig: a.sig.into(),
                })
            }
        }
    }

    /// A checked accusation of `id` says it was last heard `silent` ago: the view's
    /// last-heard moves up to it, within what this node knows itself. The member was silent
    /// at least since this view began to suspect it (a suspicion starts after a silence),
    /// so no peer can place the last word later than that, or than now; a peer that says
    /// an earlier time than this view knows changes nothing. A queued update about it then
    /// carries the newer silence on.
    fn hear_silence(
        &mut self,
        now: Instant,
        id: MemberId,
        silent: Silence,
        updates: &mut BroadcastQueue,
    ) {
        let Some((m, known)) = self.view.get_heard(id) else {
            return;
        };
        let Some(heard) = silent.heard(now) else {
            return;
        };
        let latest = if m.state == MemberState::Suspect {
            m.since
        } else {
            now
        };
        let heard = heard.min(latest);
        if heard > known {
            self.view.modify(id, |m| m.last_alive = heard);
            updates.restamp(Key::Member(id), heard);
        }
    }

    /// `accuser` suspects `id` at `incarnation`: a new suspicion, or (Lifeguard) an
    /// independent confirmation of the open one.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn suspect(
        &mut self,
        now: Instant,
        config: &Config,
        from: Sender<'_>,
        id: MemberId,
        incarnation: u32,
        accuser: Accuser<'_>,
        fx: &mut Fx<'_>,
    ) -> Outcome {
        let Some(cur) = self.view.get(id) else {
            return Outcome::Done;
        };
        if contradicts_failure(cur, incarnation) {
            return self.answer_stale(id, fx);
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
            return Outcome::Done;
        }
        if let Accuser::Peer(a) = accuser {
            let held = cur.accusation().filter(|h| &*h.accuser == a.accuser);
            if let Some(held) = held.filter(|_| !fresh) {
                // The accusation this view holds, gossiped again: nothing to check, but the
                // silence it carries may be news (a peer heard the member later than this view
                // knew). Taken only with the held signature, so it is the same accusation.
                if *held.sig == *a.sig {
                    self.hear_silence(now, id, a.silent, fx.updates);
                }
                return Outcome::Done;
            }
            if !fresh
                && self
                    .suspicions
                    .already_checked(id, incarnation, a.accuser, a.sig)
            {
                // A confirmation this view checked before, gossiped again by another member:
                // verifying its signature again would change nothing but cost the most of
                // anything a node does; its silence may still be news.
                self.hear_silence(now, id, a.silent, fx.updates);
                return Outcome::Done;
            }
        }
        let by_us = matches!(accuser, Accuser::Us);
        let accused = match self.accusation(now, from, id, incarnation, accuser, fx) {
            Ok(accused) => accused,
            Err(outcome) => return outcome,
        };
        if let Accuser::Peer(a) = accuser {
            if !fresh {
                self.hear_silence(now, id, a.silent, fx.updates);
            }
        }
        if !fresh {
            if self.suspicions.confirm(id, &accused.accuser, &accused.sig) {
                // Spread the confirmation so others shorten their timers too.
                self.spread(id, Some(&accused), fx.updates);
            }
            return Outcome::Done;
        }
        let timings = config.timings(self.view.cluster_size());
        // A suspicion taken from a peer asks the suspect itself if it is still open at the
        // minimum timeout (`Suspicions::pop_ask`); our own probe's is told by the probes.
        self.suspicions.start(
            now,
            id,
            incarnation,
            (accused.accuser.clone(), &accused.sig),
            &timings,
            !by_us,
        );
        let accuser_name = accused.accuser.clone();
        self.view.modify(id, |m| {
            m.state = MemberState::Suspect;
            m.since = now;
            m.incarnation = incarnation;
            m.prove(None, None, Some(accused));
        });
        if let Accuser::Peer(a) = accuser {
            self.hear_silence(now, id, a.silent, fx.updates);
        }
        fx.stats.suspicions_started += 1;
        if by_us {
            fx.stats.suspicions_raised += 1;
        }
        let member = self.view.info(id).expect("just set");
        fx.events.push_back(Event::MemberSuspect {
            member,
            accuser: accuser_name,
        });
        self.spread(id, None, fx.updates);
        Outcome::Done
    }

    /// `id` is dead at `incarnation`: this node's suspicion ran out (`Accuser::Us`), or it
    /// heard so.
    pub(crate) fn declare_dead(
        &mut self,
        now: Instant,
        from: Sender<'_>,
        id: MemberId,
        incarnation: u32,
        accuser: Accuser<'_>,
        fx: &mut Fx<'_>,
    ) -> Outcome {
        let by_us = matches!(accuser, Accuser::Us);
        let Some(cur) = self.view.get(id) else {
            return Outcome::Done;
        };
        if !by_us && contradicts_failure(cur, incarnation) {
            return self.answer_stale(id, fx);
        }
        if !supersedes(incarnation, MemberState::Dead, cur.incarnation, cur.state) {
            return Outcome::Done;
        }
        let (state, since) = (cur.state, cur.since);
        let accused = match self.accusation(now, from, id, incarnation, accuser, fx) {
            Ok(accused) => accused,
            Err(outcome) => return outcome,
        };
        if let Accuser::Peer(a) = accuser {
            self.hear_silence(now, id, a.silent, fx.updates);
        }
        let last_alive = self.view.last_heard(id).unwrap_or(now);
        let since_suspected =
            (state == MemberState::Suspect).then(|| now.saturating_duration_since(since));
        let since_last_alive = now.saturating_duration_since(last_alive);
        self.bury(id, MemberState::Dead, incarnation, now);
        self.view.modify(id, |m| m.prove(None, None, Some(accused)));
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
        Outcome::Done
    }

    /// Suspicions whose timeout ended: the member is declared dead by this node.
    pub(crate) fn expire_suspicions(&mut self, now: Instant, fx: &mut Fx<'_>) {
        let me = self.view.my_name().clone();
        let from = Sender {
            addr: self.view.me().addr,
            name: &me,
        };
        while let Some((id, incarnation)) = self.suspicions.pop_expired(now) {
            self.declare_dead(now, from, id, incarnation, Accuser::Us, fx);
        }
    }

    /// Someone still spreads a failure that our record already disproves: re-spread our
    /// record (unless it is still queued), and answer the sender with it directly
    /// ([`Outcome::Outdated`]), so the stale holder corrects itself before its own suspicion
    /// timer declares a live or departed member dead. Gossip alone left that to chance: a
    /// refutation sent eight times by each of ten members missed one of them for the
    /// whole 12 s of its suspicion (partitions proptest, a deaf member accusing everyone).
    pub(crate) fn answer_stale(&self, id: MemberId, fx: &mut Fx<'_>) -> Outcome {
        if !fx.updates.contains(Key::Member(id)) {
            self.spread(id, None, fx.updates);
        }
        Outcome::Outdated(id)
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
