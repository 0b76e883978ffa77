//! Claims that wait for the credential they need, and the credential requests asked of the
//! peers that relayed them: bounded in all and per sender, each waiting a fixed time.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::claim_refusal::ClaimRefusal;
use crate::claims::Sender;

/// A claim waiting for the credential of `wants`, as it arrived (one encoded item).
#[derive(Debug)]
pub(crate) struct Pending {
    pub wants: Arc<str>,
    pub from_addr: SocketAddr,
    pub from: Arc<str>,
    pub item: Vec<u8>,
    until: Instant,
    /// The refusal it counts as if what it waits for does not come.
    or_else: ClaimRefusal,
}

/// Claims waiting for a credential: in all, and from one sender.
const PENDING_CAPACITY: usize = 1024;
const PENDING_PER_SENDER: usize = 128;
/// How long a claim waits for its credential.
const PENDING_FOR: Duration = Duration::from_secs(10);
/// A credential asked for is not asked for again before this.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(5);
/// Names asked for in one credentials request.
pub(crate) const MAX_ASKED: usize = 64;

/// See the module doc.
#[derive(Debug, Default)]
pub(crate) struct WaitingClaims {
    pending: VecDeque<Pending>,
    /// Names whose credential was asked for, and until when no new request is sent.
    asked: HashMap<Arc<str>, Instant>,
    /// Credential requests to send: to whom, and which names.
    requests: Vec<(SocketAddr, Arc<str>, Vec<Arc<str>>)>,
}

impl WaitingClaims {
    /// Asks `from` for the credential of `wants`, unless it was asked for recently.
    pub(crate) fn ask(&mut self, now: Instant, wants: Arc<str>, from: Sender<'_>) {
        if self.asked_recently(now, &wants) {
            return;
        }
        self.asked.insert(wants.clone(), now + ASK_AGAIN_AFTER);
        let open = self.requests.iter_mut().find(|(addr, name, names)| {
            *addr == from.addr && name == from.name && names.len() < MAX_ASKED
        });
        match open {
            Some((_, _, names)) => names.push(wants),
            None => self
                .requests
                .push((from.addr, from.name.clone(), vec![wants])),
        }
    }

    /// Keeps `item` (from `from`) until the credential of `wants` arrives, and asks `from`
    /// for it unless asked recently. `Err` when there is no room: the claim is refused.
    pub(crate) fn hold(
        &mut self,
        now: Instant,
        (wants, or_else): (Arc<str>, ClaimRefusal),
        from_addr: SocketAddr,
        from: &Arc<str>,
        item: Vec<u8>,
    ) -> Result<(), ClaimRefusal> {
        let _ = self.expire(now);
        let from_sender = self.pending.iter().filter(|p| &p.from == from).count();
        if from_sender >= PENDING_PER_SENDER {
            return Err(ClaimRefusal::NoCredential);
        }
        let mut dropped = Ok(());
        if self.pending.len() >= PENDING_CAPACITY {
            self.pending.pop_front();
            dropped = Err(ClaimRefusal::NoCredential);
        }
        self.ask(
            now,
            wants.clone(),
            Sender {
                addr: from_addr,
                name: from,
            },
        );
        self.pending.push_back(Pending {
            wants,
            from_addr,
            from: from.clone(),
            item,
            until: now + PENDING_FOR,
            or_else,
        });
        dropped
    }

    /// Claims that waited too long are dropped: the refusal each counts as.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<ClaimRefusal> {
        let mut refused = Vec::new();
        self.pending.retain(|p| {
            let keep = p.until > now;
            if !keep {
                refused.push(p.or_else);
            }
            keep
        });
        self.asked.retain(|_, until| *until > now);
        refused
    }

    /// Whether `name`'s record was asked for less than [`ASK_AGAIN_AFTER`] ago.
    pub(crate) fn asked_recently(&self, now: Instant, name: &str) -> bool {
        self.asked.get(name).is_some_and(|&until| now < until)
    }

    /// When the oldest waiting claim gives up (claims wait in arrival order, each as long).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.pending.front().map(|p| p.until)
    }

    /// Credential requests to send.
    pub(crate) fn take_requests(&mut self) -> Vec<(SocketAddr, Arc<str>, Vec<Arc<str>>)> {
        std::mem::take(&mut self.requests)
    }

    /// Whether `name`'s record was asked for and may still be taken (a name stays asked
    /// for until its time is up, so that a claim still refused with the record given, a
    /// forgery, is not asked about again at once).
    pub(crate) fn was_asked(&self, name: &str) -> bool {
        self.asked.contains_key(name)
    }

    /// Drops the claims that waited for `name` (what came for it proves nothing).
    pub(crate) fn drop_waiting_for(&mut self, name: &str) {
        self.pending.retain(|p| &*p.wants != name);
    }

    /// The claims that waited for `name`'s record, handed back to be applied (it came).
    pub(crate) fn release(&mut self, name: &str) -> Vec<Pending> {
        let mut ready = Vec::new();
        self.pending.retain_mut(|p| {
            if &*p.wants != name {
                return true;
            }
            ready.push(Pending {
                wants: p.wants.clone(),
                from_addr: p.from_addr,
                from: p.from.clone(),
                item: std::mem::take(&mut p.item),
                until: p.until,
                or_else: p.or_else,
            });
            false
        });
        ready
    }

    /// Claims waiting for a credential.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_claims_are_bounded_per_sender_and_in_all_and_give_up_in_time() {
        let mut w = WaitingClaims::default();
        let now = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], 2));
        let one: Arc<str> = "one".into();
        for i in 0..PENDING_PER_SENDER {
            w.hold(
                now,
                (format!("x{i}").into(), ClaimRefusal::NoCredential),
                addr,
                &one,
                vec![0],
            )
            .unwrap();
        }
        assert_eq!(
            w.hold(
                now,
                ("y".into(), ClaimRefusal::NoCredential),
                addr,
                &one,
                vec![0]
            ),
            Err(ClaimRefusal::NoCredential),
            "one sender's share is full"
        );
        let requests = w.take_requests();
        assert_eq!(requests.len(), PENDING_PER_SENDER.div_ceil(MAX_ASKED));
        assert!(requests
            .iter()
            .all(|(_, _, names)| names.len() <= MAX_ASKED));
        for s in 0..(PENDING_CAPACITY / PENDING_PER_SENDER) {
            let sender: Arc<str> = format!("s{s}").into();
            for i in 0..PENDING_PER_SENDER {
                let _ = w.hold(
                    now,
                    (format!("z{i}").into(), ClaimRefusal::AboveSigned),
                    addr,
                    &sender,
                    vec![0],
                );
            }
        }
        assert_eq!(w.len(), PENDING_CAPACITY, "never more than the capacity");
        assert_eq!(w.deadline(), Some(now + PENDING_FOR));
        let expired = w.expire(now + PENDING_FOR);
        assert_eq!(expired.len(), PENDING_CAPACITY);
        assert!(
            expired.contains(&ClaimRefusal::AboveSigned),
            "each counts as what it waited for"
        );
        assert_eq!(w.len(), 0);
    }
}
