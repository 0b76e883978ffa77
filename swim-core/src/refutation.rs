//! Claims other members make about this node: a suspicion, death or leave at this node's
//! incarnation or above is refuted with a higher incarnation; an alive claim by another
//! process (boot id) is a previous instance of this node the first time, and a name conflict
//! when that same process outbids the refutation.

use std::net::SocketAddr;

use crate::wire::UpdateKind;

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
        /// Another live process uses our name, first seen now, at this address.
        conflict: Option<SocketAddr>,
    },
}

/// Judges claims about this node; remembers which foreign process claimed its name.
#[derive(Debug, Default)]
pub(crate) struct Refuter {
    /// The last foreign process (boot id) that claimed our name, and whether a conflict was
    /// reported for it.
    foreign: Option<(u32, bool)>,
}

impl Refuter {
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
        let accusation = !matches!(kind, UpdateKind::Alive { .. });
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
        let mut conflict = None;
        match *kind {
            UpdateKind::Alive { boot_id: b, .. } if b == boot_id => return Verdict::Ignore,
            UpdateKind::Alive {
                boot_id: b, addr, ..
            } => match self.foreign {
                Some((seen, reported)) if seen == b => {
                    if !reported {
                        self.foreign = Some((seen, true));
                        conflict = Some(addr);
                    }
                }
                _ => self.foreign = Some((b, false)),
            },
            UpdateKind::Suspect { .. } | UpdateKind::Dead | UpdateKind::Left => {}
        }
        Verdict::Refute {
            to,
            suspected: matches!(kind, UpdateKind::Suspect { .. }),
            conflict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(boot_id: u32) -> UpdateKind<'static> {
        UpdateKind::Alive {
            addr: "127.0.0.1:9".parse().unwrap(),
            boot_id,
            meta: b"",
        }
    }

    #[test]
    fn a_foreign_process_is_a_previous_instance_once_and_a_conflict_when_it_outbids_us() {
        let mut r = Refuter::default();
        let refute = |to, conflict| Verdict::Refute {
            to,
            suspected: false,
            conflict,
        };
        assert_eq!(r.judge(false, 0, 1, 3, &alive(1)), Verdict::Ignore, "ours");
        assert_eq!(r.judge(false, 0, 1, 3, &alive(2)), refute(4, None));
        let addr = "127.0.0.1:9".parse().ok();
        assert_eq!(r.judge(false, 4, 1, 5, &alive(2)), refute(6, addr));
        assert_eq!(r.judge(false, 6, 1, 7, &alive(2)), refute(8, None), "once");
    }

    #[test]
    fn stale_or_unbeatable_claims_are_never_refuted() {
        let mut r = Refuter::default();
        let suspect = UpdateKind::Suspect { accuser: "b" };
        assert_eq!(r.judge(false, 5, 1, 4, &suspect), Verdict::AnswerStale);
        assert_eq!(
            r.judge(true, 0, 1, 4, &UpdateKind::Dead),
            Verdict::AnswerStale
        );
        assert_eq!(r.judge(false, 5, 1, 4, &alive(2)), Verdict::Ignore);
        assert_eq!(r.judge(false, 5, 1, u32::MAX, &suspect), Verdict::Ignore);
        assert_eq!(
            r.judge(false, 5, 1, 5, &suspect),
            Verdict::Refute {
                to: 6,
                suspected: true,
                conflict: None
            }
        );
    }
}
