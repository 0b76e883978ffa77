//! Why claims are refused, and each sender's budget of refusals: a sender whose claims keep
//! failing their checks has the rest of its second refused unchecked, so forgeries cost the
//! forger more than this node.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a claim from a peer was refused (counted in [`Stats::claims_refused`]).
///
/// [`Stats::claims_refused`]: crate::Stats::claims_refused
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ClaimRefusal {
    /// A claim that must be signed carried no signature.
    Unsigned,
    /// The signature does not verify with the key of the member it is about (own claims) or
    /// of its accuser (accusations).
    BadSignature,
    /// An accusation at an incarnation above the highest the accused member has signed (it
    /// could never refute it).
    AboveSigned,
    /// A credential that does not prove the name it was given for.
    BadCredential,
    /// A claim whose credential did not arrive in time, or that found no room to wait.
    NoCredential,
    /// The sender had too many claims refused in the last second; its claims are refused
    /// unchecked for the rest of it.
    RateLimited,
}

impl ClaimRefusal {
    /// Every reason, in counter order.
    pub const ALL: [ClaimRefusal; 6] = [
        ClaimRefusal::Unsigned,
        ClaimRefusal::BadSignature,
        ClaimRefusal::AboveSigned,
        ClaimRefusal::BadCredential,
        ClaimRefusal::NoCredential,
        ClaimRefusal::RateLimited,
    ];

    /// Lower-case name, used as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            ClaimRefusal::Unsigned => "unsigned",
            ClaimRefusal::BadSignature => "bad_signature",
            ClaimRefusal::AboveSigned => "above_signed",
            ClaimRefusal::BadCredential => "bad_credential",
            ClaimRefusal::NoCredential => "no_credential",
            ClaimRefusal::RateLimited => "rate_limited",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Refusals a sender may cause per second before its claims are refused unchecked.
const REFUSAL_BUDGET: u32 = 32;
const REFUSAL_WINDOW: Duration = Duration::from_secs(1);
/// Senders whose refusals are tracked at once.
const TRACKED_SENDERS: usize = 256;

/// Refusals per sender in its current window (start, count).
#[derive(Debug, Default)]
pub(crate) struct RefusalBudget {
    refusals: HashMap<Arc<str>, (Instant, u32)>,
}

impl RefusalBudget {
    /// Whether `from` has used up its refusals for this second.
    pub(crate) fn spent(&self, now: Instant, from: &Arc<str>) -> bool {
        match self.refusals.get(from) {
            Some(&(start, n)) => now < start + REFUSAL_WINDOW && n >= REFUSAL_BUDGET,
            None => false,
        }
    }

    /// Counts a refusal caused by `from`.
    pub(crate) fn charge(&mut self, now: Instant, from: &Arc<str>) {
        if self.refusals.len() >= TRACKED_SENDERS && !self.refusals.contains_key(from) {
            self.refusals
                .retain(|_, (start, _)| now < *start + REFUSAL_WINDOW);
            if self.refusals.len() >= TRACKED_SENDERS {
                // Still full of senders refused this second: forget one, so that a crowd of
                // senders costs nothing more than the table.
                let any = self.refusals.keys().next().cloned();
                if let Some(k) = any {
                    self.refusals.remove(&k);
                }
            }
        }
        let entry = self.refusals.entry(from.clone()).or_insert((now, 0));
        if now >= entry.0 + REFUSAL_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}
