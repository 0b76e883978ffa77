//! Checking claims before they take effect: a member's own claims (alive, left) against its
//! credential, accusations (suspect, dead) against their accuser's; this node's own claims
//! signed; claims that wait for a credential, and the credentials asked of the peer that
//! relayed them. Without a [`Trust`] every claim is taken as it comes (and nothing is
//! signed), as on a network where every peer is trusted.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::trust::{Claim, Credential, CredentialRefused, Trust};
use crate::view::View;
use crate::wire::{Accusation, Own};

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

/// The peer an input came from (authenticated by the transport).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sender<'a> {
    pub addr: SocketAddr,
    pub name: &'a Arc<str>,
}

/// The outcome of checking one claim.
#[derive(Debug)]
pub(crate) enum Check {
    /// It may take effect; with the credential that vouched for it (none without a
    /// [`Trust`], or for accusations).
    Valid(Option<Credential>),
    Refused(ClaimRefusal),
    /// The credential of this member is needed first.
    Wait(Arc<str>),
}

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

/// Credentials admitted for members not (yet) in the view.
const ADMITTED_CAPACITY: usize = 256;
/// Claims waiting for a credential: in all, and from one sender.
const PENDING_CAPACITY: usize = 1024;
const PENDING_PER_SENDER: usize = 128;
/// How long a claim waits for its credential.
const PENDING_FOR: Duration = Duration::from_secs(10);
/// A credential asked for is not asked for again before this.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(5);
/// Names asked for in one credentials request.
pub(crate) const MAX_ASKED: usize = 64;
/// Refusals a sender may cause per second before its claims are refused unchecked.
const REFUSAL_BUDGET: u32 = 32;
const REFUSAL_WINDOW: Duration = Duration::from_secs(1);
/// Senders whose refusals are tracked at once.
const TRACKED_SENDERS: usize = 256;

/// See the module doc.
#[derive(Debug)]
pub(crate) struct Claims {
    trust: Option<Arc<dyn Trust>>,
    cluster: Arc<str>,
    my_name: Arc<str>,
    mine: Option<Credential>,
    /// The highest incarnation this node's key is known to have signed: its own, or one a
    /// previous process of this node signed and the cluster still holds. No accusation of
    /// this node above it is genuine.
    highest_mine: u32,
    admitted: VecDeque<(Arc<str>, Credential)>,
    pending: VecDeque<Pending>,
    /// Names whose credential was asked for, and until when no new request is sent.
    asked: HashMap<Arc<str>, Instant>,
    /// Credential requests to send: to whom, and which names.
    requests: Vec<(SocketAddr, Arc<str>, Vec<Arc<str>>)>,
    /// Refusals per sender in its current window (start, count).
    refusals: HashMap<Arc<str>, (Instant, u32)>,
}

impl Claims {
    /// Claims of a node named `my_name` in `cluster`, signed and checked with `trust` if
    /// given. Fails if `trust` refuses this node's own credential.
    pub(crate) fn new(
        trust: Option<Arc<dyn Trust>>,
        cluster: &str,
        my_name: &Arc<str>,
    ) -> Result<Self, CredentialRefused> {
        let mine = match &trust {
            Some(t) => {
                let bytes = t.credential();
                let key = t.admit(my_name, &bytes)?;
                Some(Credential { bytes, key })
            }
            None => None,
        };
        Ok(Self {
            trust,
            cluster: cluster.into(),
            my_name: my_name.clone(),
            mine,
            highest_mine: 0,
            admitted: VecDeque::new(),
            pending: VecDeque::new(),
            asked: HashMap::new(),
            requests: Vec::new(),
            refusals: HashMap::new(),
        })
    }

    /// Takes this node's credential again from the trust (its files changed). Fails, and
    /// keeps the old one, if the trust refuses it.
    pub(crate) fn renew(&mut self) -> Result<(), CredentialRefused> {
        let Some(t) = &self.trust else {
            return Ok(());
        };
        let bytes = t.credential();
        let key = t.admit(&self.my_name, &bytes)?;
        self.mine = Some(Credential { bytes, key });
        Ok(())
    }

    /// Whether the trust still admits `credential` for `name` (its CA may have changed).
    pub(crate) fn still_admits(&self, name: &str, credential: &Credential) -> bool {
        self.trust
            .as_ref()
            .is_none_or(|t| t.admit(name, &credential.bytes).is_ok())
    }

    /// Forgets every credential admitted for members not in the view.
    pub(crate) fn forget_admitted(&mut self) {
        self.admitted.clear();
    }

    /// Whether claims are signed and checked.
    pub(crate) fn signed(&self) -> bool {
        self.trust.is_some()
    }

    pub(crate) fn my_credential(&self) -> Option<&Credential> {
        self.mine.as_ref()
    }

    /// Signs this node's own claim (empty without a trust).
    pub(crate) fn sign_own(&mut self, incarnation: u32, left: bool, own: &Own<'_>) -> Box<[u8]> {
        self.highest_mine = self.highest_mine.max(incarnation);
        let Some(trust) = &self.trust else {
            return Box::default();
        };
        let claim = Claim::Own {
            cluster: &self.cluster,
            name: &self.my_name,
            incarnation,
            left,
            addr: own.addr,
            boot_id: own.boot_id,
            meta: own.meta,
        };
        trust.sign(&claim.to_bytes()).into()
    }

    /// Signs this node's accusation of `name` at `incarnation` (empty without a trust).
    pub(crate) fn sign_accusation(&self, name: &str, incarnation: u32) -> Box<[u8]> {
        let Some(trust) = &self.trust else {
            return Box::default();
        };
        let claim = Claim::Accusation {
            cluster: &self.cluster,
            name,
            incarnation,
            accuser: &self.my_name,
        };
        trust.sign(&claim.to_bytes()).into()
    }

    /// The highest incarnation this node's key is known to have signed.
    pub(crate) fn highest_mine(&self) -> u32 {
        self.highest_mine
    }

    /// The credential this node holds for `name`.
    pub(crate) fn credential_of(&self, view: &View, name: &str) -> Option<Credential> {
        if name == &*self.my_name {
            return self.mine.clone();
        }
        if let Some(c) = view.known(name).and_then(|(_, m)| m.credential()) {
            return Some(c.clone());
        }
        self.admitted
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, c)| c.clone())
    }

    /// `name`'s own claim (alive, or left) at `incarnation`, sent by `from`, possibly with
    /// the credential `offered` (push-pull of a join). The caller has checked it is news.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check_own(
        &mut self,
        now: Instant,
        view: &View,
        from: Sender<'_>,
        name: &str,
        incarnation: u32,
        left: bool,
        own: &Own<'_>,
        offered: &[u8],
    ) -> Check {
        if self.trust.is_none() {
            return Check::Valid(None);
        }
        let cluster = self.cluster.clone();
        let claim = Claim::Own {
            cluster: &cluster,
            name,
            incarnation,
            left,
            addr: own.addr,
            boot_id: own.boot_id,
            meta: own.meta,
        };
        let check = self.check_signed(now, view, from, name, claim, own.sig, offered);
        if matches!(check, Check::Valid(_)) && name == &*self.my_name {
            self.highest_mine = self.highest_mine.max(incarnation);
        }
        check
    }

    /// An accusation of `name` at `incarnation`, sent by `from`. The caller has checked that
    /// the accused has signed `incarnation` (or this node has, for itself).
    pub(crate) fn check_accusation(
        &mut self,
        now: Instant,
        view: &View,
        from: Sender<'_>,
        name: &str,
        incarnation: u32,
        a: &Accusation<'_>,
    ) -> Check {
        if self.trust.is_none() {
            return Check::Valid(None);
        }
        let cluster = self.cluster.clone();
        let claim = Claim::Accusation {
            cluster: &cluster,
            name,
            incarnation,
            accuser: a.accuser,
        };
        match self.check_signed(now, view, from, a.accuser, claim, a.sig, &[]) {
            Check::Valid(_) => Check::Valid(None),
            other => other,
        }
    }

    /// `claim`, signed `sig` by `signer`'s key.
    #[allow(clippy::too_many_arguments)]
    fn check_signed(
        &mut self,
        now: Instant,
        view: &View,
        sender: Sender<'_>,
        signer: &str,
        claim: Claim<'_>,
        sig: &[u8],
        offered: &[u8],
    ) -> Check {
        let from = sender.name;
        if self.over_budget(now, from) {
            return Check::Refused(ClaimRefusal::RateLimited);
        }
        if sig.is_empty() {
            return self.refuse(now, from, ClaimRefusal::Unsigned);
        }
        let bytes = claim.to_bytes();
        let held = self.credential_of(view, signer);
        let credential = match (held, offered.is_empty()) {
            (Some(c), _) => c,
            (None, false) => match self.admit(signer, offered) {
                Some(c) => c,
                None => return self.refuse(now, from, ClaimRefusal::BadCredential),
            },
            (None, true) => return Check::Wait(signer.into()),
        };
        if credential.key.verify(&bytes, sig) {
            return Check::Valid(Some(credential));
        }
        // The member may have a new credential (a renewed certificate) that this node
        // fetched already, or that the sender knows: try the one fetched, else ask for it
        // (this claim is refused, the next copy of it will find the new credential).
        let fetched = self
            .admitted
            .iter()
            .find(|(n, c)| &**n == signer && !Arc::ptr_eq(&c.key, &credential.key))
            .map(|(_, c)| c.clone());
        match fetched {
            Some(c) if c.key.verify(&bytes, sig) => return Check::Valid(Some(c)),
            Some(_) => {}
            None => self.ask(now, signer.into(), sender),
        }
        self.refuse(now, from, ClaimRefusal::BadSignature)
    }

    /// Asks `from` for the credential of `wants`, unless it was asked for recently.
    fn ask(&mut self, now: Instant, wants: Arc<str>, from: Sender<'_>) {
        if self.asked.get(&wants).is_some_and(|&until| now < until) {
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

    fn admit(&mut self, name: &str, bytes: &[u8]) -> Option<Credential> {
        let trust = self.trust.as_ref()?;
        let key = trust.admit(name, bytes).ok()?;
        let credential = Credential {
            bytes: bytes.into(),
            key,
        };
        self.admitted.retain(|(n, _)| &**n != name);
        if self.admitted.len() == ADMITTED_CAPACITY {
            self.admitted.pop_front();
        }
        self.admitted.push_back((name.into(), credential.clone()));
        Some(credential)
    }

    /// Forgets the admitted credential of a member now held in the view (its record keeps it).
    pub(crate) fn settled(&mut self, name: &str) {
        self.admitted.retain(|(n, _)| &**n != name);
    }

    fn over_budget(&mut self, now: Instant, from: &Arc<str>) -> bool {
        match self.refusals.get(from) {
            Some(&(start, n)) => now < start + REFUSAL_WINDOW && n >= REFUSAL_BUDGET,
            None => false,
        }
    }

    /// Counts a refusal caused by `from` against its budget.
    pub(crate) fn refuse(&mut self, now: Instant, from: &Arc<str>, reason: ClaimRefusal) -> Check {
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
        Check::Refused(reason)
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

    /// A credential a peer gave for `name`, which this node asked for: admitted, or `Err`
    /// (and the claims that waited for it dropped) if it proves nothing.
    pub(crate) fn given(&mut self, name: &str, bytes: &[u8]) -> Result<(), ClaimRefusal> {
        if self.admit(name, bytes).is_none() {
            self.pending.retain(|p| &*p.wants != name);
            return Err(ClaimRefusal::BadCredential);
        }
        Ok(())
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
    #[cfg(all(test, feature = "sim"))]
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use crate::names::NameTable;
    use crate::sim::SimTrust;

    fn claims() -> (Claims, View) {
        let me: Arc<str> = "me".into();
        let trust: Arc<dyn Trust> = Arc::new(SimTrust::new("me"));
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let view = View::new(
            Arc::new(NameTable::default()),
            "me",
            addr,
            1,
            Instant::now(),
        );
        (Claims::new(Some(trust), "swim", &me).unwrap(), view)
    }

    #[test]
    fn waiting_claims_are_bounded_per_sender_and_in_all_and_give_up_in_time() {
        let (mut c, _) = claims();
        let now = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], 2));
        let one: Arc<str> = "one".into();
        for i in 0..PENDING_PER_SENDER {
            c.hold(
                now,
                (format!("x{i}").into(), ClaimRefusal::NoCredential),
                addr,
                &one,
                vec![0],
            )
            .unwrap();
        }
        assert_eq!(
            c.hold(
                now,
                ("y".into(), ClaimRefusal::NoCredential),
                addr,
                &one,
                vec![0]
            ),
            Err(ClaimRefusal::NoCredential),
            "one sender's share is full"
        );
        let requests = c.take_requests();
        assert_eq!(requests.len(), PENDING_PER_SENDER.div_ceil(MAX_ASKED));
        assert!(requests
            .iter()
            .all(|(_, _, names)| names.len() <= MAX_ASKED));
        for s in 0..(PENDING_CAPACITY / PENDING_PER_SENDER) {
            let sender: Arc<str> = format!("s{s}").into();
            for i in 0..PENDING_PER_SENDER {
                let _ = c.hold(
                    now,
                    (format!("z{i}").into(), ClaimRefusal::AboveSigned),
                    addr,
                    &sender,
                    vec![0],
                );
            }
        }
        assert_eq!(
            c.pending(),
            PENDING_CAPACITY,
            "never more than the capacity"
        );
        assert_eq!(c.deadline(), Some(now + PENDING_FOR));
        let expired = c.expire(now + PENDING_FOR);
        assert_eq!(expired.len(), PENDING_CAPACITY);
        assert!(
            expired.contains(&ClaimRefusal::AboveSigned),
            "each counts as what it waited for"
        );
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn only_records_asked_for_are_taken_and_a_bad_credential_is_refused() {
        let (mut c, view) = claims();
        let now = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], 2));
        let from: Arc<str> = "peer".into();
        assert!(
            !c.was_asked("a"),
            "not asked: a record given for it is ignored"
        );
        let wait = |n: &str| (Arc::<str>::from(n), ClaimRefusal::NoCredential);
        c.hold(now, wait("a"), addr, &from, vec![1]).unwrap();
        c.hold(now, wait("b"), addr, &from, vec![2]).unwrap();
        assert!(c.was_asked("a") && c.was_asked("b"));
        c.given("a", &SimTrust::credential_of("a")).unwrap();
        assert!(c.credential_of(&view, "a").is_some());
        let ready = c.release("a");
        assert_eq!(
            ready.iter().map(|p| p.item.clone()).collect::<Vec<_>>(),
            vec![vec![1]]
        );
        assert_eq!(
            c.given("b", &SimTrust::credential_of("not-b")).unwrap_err(),
            ClaimRefusal::BadCredential
        );
        assert_eq!(c.pending(), 0, "the claims that waited for b are dropped");
    }
}
