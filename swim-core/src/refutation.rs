//! This node's own record and the claims other members make about it: every change of the
//! record (join, refutation, metadata, leave) is signed; a suspicion, death or leave at this
//! node's incarnation or above is refuted with a higher incarnation (once it is found
//! genuine: signed, and, for an accusation, at an incarnation this node's key has signed);
//! an alive claim by another process (boot id) is a previous instance of this node the first
//! time, and a name conflict when that same process outbids the refutation.
//!
//! The conflict rule: the process that held the name first keeps it. Each side counts the
//! times the other outbids it; the newcomer saw the holder's record before the holder saw
//! the newcomer's, so it is always one outbid ahead, and on the holder's third outbid it
//! yields — stops refuting and tells its runtime to stop. A previous instance of this node
//! that crashed outbids it at most once (its last record), so a restart never yields.

use std::net::SocketAddr;
use std::time::Instant;

use crate::claim_refusal::ClaimRefusal;
use crate::claims::Sender;
use crate::error::ApiMisuse;
use crate::event::Event;
use crate::membership::MemberState;
use crate::update::{Fx, Membership, Outcome};
use crate::wire::{Own, UpdateKind};

/// What to do about a claim about this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing (a claim that cannot be outranked, or our own alive record).
    Ignore,
    /// Stale news of a failure: spread our current record so its holder learns better.
    AnswerStale,
    /// Raise our incarnation to `to` and spread it.
    Refute {
        to: u32,
        /// The claim was a suspicion (Lifeguard counts it against our local health).
        suspected: bool,
        /// The claim was another process's alive claim of our name, from this address:
        /// the refutation is also sent to it directly, so that a conflict settles in round
        /// trips, not in gossip rounds.
        foreign: Option<SocketAddr>,
        /// That process outbid us a second time: a name conflict, reported now.
        conflict: bool,
    },
    /// Another live process held our name first (it outbid us [`YIELD_AFTER`] times): stop
    /// claiming it. The address is the holder's.
    Yield(SocketAddr),
}

/// Outbids by one foreign process after which this node gives the name up: once is a
/// previous instance of this node, twice is a conflict, three times means the other process
/// held the name first (see the module doc).
pub(crate) const YIELD_AFTER: u32 = 3;

/// Judges claims about this node; remembers which foreign process claimed its name.
#[derive(Debug, Default)]
pub(crate) struct Refuter {
    /// The last foreign process (boot id) that claimed our name, and how many times it
    /// outbid this node.
    foreign: Option<(u32, u32)>,
    /// This node gave its name up to another process: it refutes nothing any more.
    yielded: bool,
}

impl Refuter {
    /// Whether this node gave its name up.
    pub(crate) fn yielded(&self) -> bool {
        self.yielded
    }

    /// A claim `kind` at `incarnation` about this node, which is at `mine` as process
    /// `boot_id` (and has `left` the cluster or not).
    pub(crate) fn judge(
        &mut self,
        left: bool,
        mine: u32,
        boot_id: u32,
        incarnation: u32,
        kind: &UpdateKind<'_>,
    ) -> Verdict {
        let accusation = !matches!(kind, UpdateKind::Alive(_));
        if self.yielded {
            return Verdict::Ignore;
        }
        if left || incarnation < mine {
            // Stale news about us (or we left): answer it with our current record, so the
            // node that holds it learns better instead of acting on it.
            return if accusation {
                Verdict::AnswerStale
            } else {
                Verdict::Ignore
            };
        }
        let Some(to) = incarnation.checked_add(1) else {
            // No incarnation can outrank this claim; refuting is impossible, and rolling our
            // incarnation back to 0 would make every later refutation lose. Ignore it.
            return Verdict::Ignore;
        };
        let (mut foreign, mut conflict) = (None, false);
        match *kind {
            UpdateKind::Alive(own) if own.boot_id == boot_id => return Verdict::Ignore,
            UpdateKind::Alive(own) => {
                let outbids = match self.foreign {
                    Some((seen, n)) if seen == own.boot_id => n + 1,
                    _ => 1,
                };
                self.foreign = Some((own.boot_id, outbids));
                if outbids >= YIELD_AFTER {
                    self.yielded = true;
                    return Verdict::Yield(own.addr);
                }
                foreign = Some(own.addr);
                conflict = outbids == 2;
            }
            UpdateKind::Suspect(..) | UpdateKind::Dead(..) | UpdateKind::Left(_) => {}
        }
        Verdict::Refute {
            to,
            suspected: matches!(kind, UpdateKind::Suspect(..)),
            foreign,
            conflict,
        }
    }
}

impl Membership {
    /// Signs this node's record as it now stands (after any change to it).
    pub(crate) fn sign_me(&mut self) {
        let me = self.view.me();
        let own = Own {
            addr: me.addr,
            boot_id: me.boot_id,
            meta: me.meta.as_deref().unwrap_or(&[]),
            sig: &[],
        };
        let (incarnation, left) = (me.incarnation, me.state == MemberState::Left);
        let sig = self.claims.sign_own(incarnation, left, &own);
        let credential = self.claims.my_credential().cloned();
        self.view
            .update_me(|m| m.prove(credential, Some(sig), None));
    }

    /// Someone (`from`) says something about us. A claim that would make us refute is
    /// checked first: a forged one is refused and changes nothing.
    pub(crate) fn about_me(
        &mut self,
        now: Instant,
        from: Sender<'_>,
        incarnation: u32,
        kind: UpdateKind<'_>,
        fx: &mut Fx<'_>,
    ) -> Outcome {
        let (left, mine, boot_id) = (
            self.view.has_left(),
            self.view.me().incarnation,
            self.view.boot_id(),
        );
        let ours = matches!(kind, UpdateKind::Alive(own) if own.boot_id == boot_id);
        let news = !left && incarnation >= mine && !ours;
        if news && self.claims.signed() {
            let me = self.view.my_name().clone();
            let check = match kind {
                UpdateKind::Alive(own) | UpdateKind::Left(own) => {
                    let left = matches!(kind, UpdateKind::Left(_));
                    self.claims
                        .check_own(now, &self.view, from, &me, incarnation, left, &own, &[])
                }
                UpdateKind::Suspect(a) | UpdateKind::Dead(a) => {
                    if incarnation > self.claims.highest_mine() {
                        // A previous process of ours may have signed it: ask the sender for
                        // our record as it holds it (once). Else nobody can have our
                        // signature at this incarnation, and refuting would let the accuser
                        // choose our incarnation.
                        if !self.claims.waiting.asked_recently(now, &me) {
                            return Outcome::Wait {
                                wants: me,
                                or_else: ClaimRefusal::AboveSigned,
                            };
                        }
                        let reason = ClaimRefusal::AboveSigned;
                        self.claims.refuse(now, from.name, reason);
                        self.refused(from.name, &me, reason, fx);
                        return Outcome::Done;
                    }
                    self.claims
                        .check_accusation(now, &self.view, from, &me, incarnation, &a)
                }
            };
            if let Err(outcome) = self.vouched(from, &me, check, fx) {
                return outcome;
            }
        }
        let accused = matches!(kind, UpdateKind::Suspect(..) | UpdateKind::Dead(..));
        // Probes older than 16 unscaled probe intervals say nothing of this node's hearing.
        let stale_after = self.probe_interval * 16;
        let verdict = self.refuter.judge(left, mine, boot_id, incarnation, &kind);
        // An accusation this node would answer — refute it, or, if it is stale news (its
        // holder never heard our refutation: a node nobody hears is accused below its
        // incarnation), re-spread our record — is first judged against this node's hearing:
        // one that cannot hear withholds either answer and stays in (or enters) quarantine.
        let answers = matches!(verdict, Verdict::Refute { .. } | Verdict::AnswerStale);
        if accused && answers {
            let already = self.quarantine.active();
            if self
                .quarantine
                .withhold_refutation(now, stale_after, incarnation)
            {
                if already {
                    fx.stats.refutations_withheld += 1;
                } else {
                    self.enter_quarantine(now, incarnation, fx);
                }
                return Outcome::Done;
            }
        }
        match verdict {
            Verdict::Ignore => Outcome::Done,
            Verdict::Yield(holder_addr) => {
                fx.stats.names_yielded += 1;
                let name = self.view.my_name().clone();
                let my_addr = self.view.me().addr;
                fx.events.push_back(Event::NameYielded {
                    name,
                    my_addr,
                    holder_addr,
                });
                Outcome::Done
            }
            Verdict::AnswerStale => self.answer_stale(self.view.my_id(), fx),
            Verdict::Refute {
                to,
                suspected,
                foreign,
                conflict,
            } => {
                if let (true, Some(other_addr)) = (conflict, foreign) {
                    fx.stats.name_conflicts += 1;
                    let name = self.view.my_name().clone();
                    fx.events
                        .push_back(Event::NameConflict { name, other_addr });
                }
                self.view.update_me(|m| m.incarnation = to);
                self.sign_me();
                fx.stats.refutations += 1;
                self.spread(self.view.my_id(), None, fx.updates);
                match (suspected, foreign) {
                    (true, _) => Outcome::RefutedSuspicion,
                    (false, Some(addr)) => Outcome::Outbid(addr),
                    (false, None) => Outcome::Outdated(self.view.my_id()),
                }
            }
        }
    }

    /// A probe of this node's ended (see `Quarantine::judge_probe`); if that lifts its
    /// quarantine, the accusation it held back is refuted now.
    pub(crate) fn judge_probe(
        &mut self,
        now: Instant,
        directly: bool,
        silent: bool,
        fx: &mut Fx<'_>,
    ) {
        self.quarantine.judge_probe(now, directly, silent);
        let Some(accused_at) = self.quarantine.lift() else {
            return;
        };
        let mine = self.view.me().incarnation;
        if accused_at >= mine && !self.view.has_left() && !self.refuter.yielded() {
            if let Some(to) = accused_at.checked_add(1) {
                self.view.update_me(|m| m.incarnation = to);
                self.sign_me();
                fx.stats.refutations += 1;
                self.spread(self.view.my_id(), None, fx.updates);
            }
        }
        let incarnation = self.view.me().incarnation;
        fx.events.push_back(Event::QuarantineLifted { incarnation });
    }

    /// This node, accused at `incarnation`, found it cannot hear: it withholds the
    /// refutation, says so, and takes back its own accusations.
    fn enter_quarantine(&mut self, now: Instant, incarnation: u32, fx: &mut Fx<'_>) {
        fx.stats.quarantines += 1;
        fx.stats.refutations_withheld += 1;
        fx.events.push_back(Event::Quarantined {
            silent_probes: self.quarantine.silent_probes(),
            accused_at: incarnation,
        });
        self.withdraw_own_accusations(now, fx);
    }

    /// This node found it cannot hear: the suspicions and deaths it declared itself are
    /// withdrawn from its own view (their members back to alive at the same incarnation,
    /// which changes no other view), so that it neither spreads them nor stops probing
    /// members that may be fine — its probes are how it learns it hears again.
    fn withdraw_own_accusations(&mut self, now: Instant, fx: &mut Fx<'_>) {
        let me = self.view.my_name().clone();
        let ours: Vec<_> = self
            .view
            .iter()
            .filter(|(_, m)| matches!(m.state, MemberState::Suspect | MemberState::Dead))
            .filter(|(_, m)| m.accusation().is_some_and(|a| a.accuser == me))
            .map(|(id, m)| (id, m.state, m.since))
            .collect();
        for (id, state, since) in ours {
            self.suspicions.close(id);
            if state == MemberState::Dead {
                self.tombstones.exhume(id, since, true);
            }
            self.view.modify(id, |m| {
                m.state = MemberState::Alive;
                // Not heard: its last-heard stays, so a death declared later still counts
                // from the member's last word.
                m.since = now;
            });
            fx.stats.accusations_withdrawn += 1;
            self.push_up(id, false, fx);
        }
    }

    /// This node leaves: announced as `left`.
    pub(crate) fn leave(&mut self, now: Instant, fx: &mut Fx<'_>) {
        self.view.update_me(|m| {
            m.state = MemberState::Left;
            m.since = now;
        });
        self.sign_me();
        self.spread(self.view.my_id(), None, fx.updates);
    }

    /// This node's credential changed (its certificate was renewed): announced at a higher
    /// incarnation, signed with the new key, so peers fetch the new credential.
    pub(crate) fn renew_credential(&mut self, fx: &mut Fx<'_>) -> Result<(), ApiMisuse> {
        self.claims.renew().map_err(|e| ApiMisuse::OwnCredential {
            name: self.view.my_name().to_string(),
            problem: e.0,
        })?;
        if self.view.has_left() {
            return Ok(());
        }
        let incarnation = self.next_incarnation()?;
        self.view.update_me(|m| m.incarnation = incarnation);
        self.sign_me();
        self.spread(self.view.my_id(), None, fx.updates);
        Ok(())
    }

    /// The trust's authority changed (a new CA file): every credential held is admitted
    /// again, and a member's that is no longer vouched for is dropped, so its claims are
    /// checked afresh (and refused, unless a peer gives a credential the new CA vouches
    /// for). Returns how many were dropped.
    pub(crate) fn recheck_credentials(&mut self) -> usize {
        self.claims.forget_admitted();
        let stale: Vec<_> = self
            .view
            .iter()
            .filter(|&(id, m)| {
                id != self.view.my_id()
                    && m.credential()
                        .is_some_and(|c| !self.claims.still_admits(&m.name, c))
            })
            .map(|(id, _)| id)
            .collect();
        for &id in &stale {
            self.view.modify(id, |m| {
                if let Some(p) = &m.proof {
                    let mut p = (**p).clone();
                    p.credential = None;
                    m.proof = Some(std::sync::Arc::new(p));
                }
            });
        }
        stale.len()
    }

    /// The incarnation above this node's own.
    fn next_incarnation(&self) -> Result<u32, ApiMisuse> {
        self.view
            .me()
            .incarnation
            .checked_add(1)
            .ok_or(ApiMisuse::IncarnationExhausted)
    }

    /// This node's metadata changes, announced at a higher incarnation.
    pub(crate) fn set_my_metadata(
        &mut self,
        metadata_bytes: &[u8],
        fx: &mut Fx<'_>,
    ) -> Result<(), ApiMisuse> {
        let incarnation = self.next_incarnation()?;
        self.view.update_me(|m| {
            m.meta = (!metadata_bytes.is_empty()).then(|| metadata_bytes.into());
            m.incarnation = incarnation;
        });
        self.sign_me();
        self.spread(self.view.my_id(), None, fx.updates);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(boot_id: u32) -> UpdateKind<'static> {
        UpdateKind::Alive(Own {
            addr: "127.0.0.1:9".parse().unwrap(),
            boot_id,
            meta: b"",
            sig: b"",
        })
    }

    fn accusation() -> crate::wire::Accusation<'static> {
        crate::wire::Accusation {
            accuser: "b",
            sig: b"",
            silent: crate::wire::Silence::UNKNOWN,
        }
    }

    #[test]
    fn a_foreign_process_is_a_previous_instance_once_a_conflict_twice_and_wins_the_third_time() {
        let mut r = Refuter::default();
        let addr = "127.0.0.1:9".parse().unwrap();
        let refute = |to, conflict| Verdict::Refute {
            to,
            suspected: false,
            foreign: Some(addr),
            conflict,
        };
        assert_eq!(r.judge(false, 0, 1, 3, &alive(1)), Verdict::Ignore, "ours");
        assert_eq!(r.judge(false, 0, 1, 3, &alive(2)), refute(4, false));
        assert_eq!(r.judge(false, 4, 1, 3, &alive(2)), Verdict::Ignore, "stale");
        assert_eq!(r.judge(false, 4, 1, 5, &alive(2)), refute(6, true));
        assert_eq!(r.judge(false, 6, 1, 7, &alive(2)), Verdict::Yield(addr));
        let dead = UpdateKind::Dead(accusation());
        assert_eq!(r.judge(false, 6, 1, 9, &dead), Verdict::Ignore, "yielded");
    }

    #[test]
    fn a_new_foreign_process_starts_the_count_again() {
        let mut r = Refuter::default();
        let conflict = |v| matches!(v, Verdict::Refute { conflict, .. } if conflict);
        assert!(!conflict(r.judge(false, 0, 1, 3, &alive(2))));
        assert!(!conflict(r.judge(false, 4, 1, 5, &alive(3))));
        assert!(conflict(r.judge(false, 6, 1, 7, &alive(3))));
    }

    #[test]
    fn stale_or_unbeatable_claims_are_never_refuted() {
        let mut r = Refuter::default();
        let suspect = UpdateKind::Suspect(accusation());
        assert_eq!(r.judge(false, 5, 1, 4, &suspect), Verdict::AnswerStale);
        assert_eq!(
            r.judge(true, 0, 1, 4, &UpdateKind::Dead(accusation())),
            Verdict::AnswerStale
        );
        assert_eq!(r.judge(false, 5, 1, 4, &alive(2)), Verdict::Ignore);
        assert_eq!(r.judge(false, 5, 1, u32::MAX, &suspect), Verdict::Ignore);
        assert_eq!(
            r.judge(false, 5, 1, 5, &suspect),
            Verdict::Refute {
                to: 6,
                suspected: true,
                foreign: None,
                conflict: false
            }
        );
    }
}
