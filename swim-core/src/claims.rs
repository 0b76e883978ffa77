//! Checking claims before they take effect: a member's own claims (alive, left) against its
//! credential, accusations (suspect, dead) against their accuser's; this node's own claims
//! signed; the credentials admitted for members not yet in the view. Without a [`Trust`] every claim is taken as it comes (and nothing is
//! signed), as on a network where every peer is trusted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::claim_refusal::{ClaimRefusal, RefusalBudget};
use crate::trust::{Claim, Credential, CredentialRefused, Trust};
use crate::view::View;
use crate::waiting_claims::WaitingClaims;
use crate::wire::{Accusation, Own};

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

/// Credentials admitted for members not (yet) in the view.
const ADMITTED_CAPACITY: usize = 256;
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
    /// Claims waiting for a credential, and the credential requests to send.
    pub(crate) waiting: WaitingClaims,
    refusals: RefusalBudget,
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
            waiting: WaitingClaims::default(),
            refusals: RefusalBudget::default(),
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
        let claim = Claim::own(&self.cluster, &self.my_name, incarnation, left, own);
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
        let claim = Claim::own(&cluster, name, incarnation, left, own);
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
        if self.refusals.spent(now, from) {
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
        // The member may have a new credential (a renewed certificate, or a restarted
        // process with a new key): the one offered with the claim, or one fetched already.
        if let Some(c) = self.newer_credential(signer, &credential, offered, &bytes, sig) {
            return Check::Valid(Some(c));
        }
        // Else it is asked of the sender (this claim is refused; the next copy of it finds
        // the credential). Asked whatever this node fetched before: what it fetched may be
        // stale (a peer that still held the old process answered), and then only a new
        // request can ever let the member's claims in. A forgery is asked about once per
        // `ASK_AGAIN_AFTER` at most.
        self.waiting.ask(now, signer.into(), sender);
        self.refuse(now, from, ClaimRefusal::BadSignature)
    }

    /// A credential for `signer` other than `held` that verifies `sig` on `bytes`: the one
    /// `offered` with the claim (admitted if the trust vouches for it), or one fetched.
    fn newer_credential(
        &mut self,
        signer: &str,
        held: &Credential,
        offered: &[u8],
        bytes: &[u8],
        sig: &[u8],
    ) -> Option<Credential> {
        let fetched = |(n, c): &&(Arc<str>, Credential)| &**n == signer && *c.bytes == *offered;
        if !offered.is_empty() && *offered != *held.bytes {
            let c = match self.admitted.iter().find(fetched) {
                Some((_, c)) => Some(c.clone()),
                None => self.admit(signer, offered),
            };
            if let Some(c) = c.filter(|c| c.key.verify(bytes, sig)) {
                return Some(c);
            }
        }
        self.admitted
            .iter()
            .find(|(n, c)| &**n == signer && c.bytes != held.bytes && c.key.verify(bytes, sig))
            .map(|(_, c)| c.clone())
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

    /// Counts a refusal caused by `from` against its budget.
    pub(crate) fn refuse(&mut self, now: Instant, from: &Arc<str>, reason: ClaimRefusal) -> Check {
        self.refusals.charge(now, from);
        Check::Refused(reason)
    }

    /// A credential a peer gave for `name`, which this node asked for: admitted, or `Err`
    /// (and the claims that waited for it dropped) if it proves nothing.
    pub(crate) fn given(&mut self, name: &str, bytes: &[u8]) -> Result<(), ClaimRefusal> {
        if self.admit(name, bytes).is_none() {
            self.waiting.drop_waiting_for(name);
            return Err(ClaimRefusal::BadCredential);
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use std::time::Duration;

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
    fn only_records_asked_for_are_taken_and_a_bad_credential_is_refused() {
        let (mut c, view) = claims();
        let now = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], 2));
        let from: Arc<str> = "peer".into();
        assert!(
            !c.waiting.was_asked("a"),
            "not asked: a record given for it is ignored"
        );
        let wait = |n: &str| (Arc::<str>::from(n), ClaimRefusal::NoCredential);
        c.waiting
            .hold(now, wait("a"), addr, &from, vec![1])
            .unwrap();
        c.waiting
            .hold(now, wait("b"), addr, &from, vec![2])
            .unwrap();
        assert!(c.waiting.was_asked("a") && c.waiting.was_asked("b"));
        c.given("a", &SimTrust::credential_of("a")).unwrap();
        assert!(c.credential_of(&view, "a").is_some());
        let ready = c.waiting.release("a");
        assert_eq!(
            ready.iter().map(|p| p.item.clone()).collect::<Vec<_>>(),
            vec![vec![1]]
        );
        assert_eq!(
            c.given("b", &SimTrust::credential_of("not-b")).unwrap_err(),
            ClaimRefusal::BadCredential
        );
        assert_eq!(
            c.waiting.len(),
            0,
            "the claims that waited for b are dropped"
        );
    }

    /// Keys by generation: a member restarted with a new key pair signs with generation 1,
    /// and its credential says so.
    #[derive(Debug)]
    struct Generations;
    #[derive(Debug)]
    struct GenKey(u8);
    impl crate::trust::ClaimKey for GenKey {
        fn verify(&self, claim: &[u8], signature: &[u8]) -> bool {
            signature.split_first() == Some((&self.0, claim))
        }
    }
    fn credential_of(name: &str, generation: u8) -> Vec<u8> {
        let mut c = name.as_bytes().to_vec();
        c.push(generation);
        c
    }
    impl Trust for Generations {
        fn credential(&self) -> Arc<[u8]> {
            credential_of("me", 0).into()
        }
        fn sign(&self, claim: &[u8]) -> Vec<u8> {
            [&[0], claim].concat()
        }
        fn admit(
            &self,
            name: &str,
            credential: &[u8],
        ) -> Result<Arc<dyn crate::trust::ClaimKey>, CredentialRefused> {
            match credential.split_last() {
                Some((&g, n)) if n == name.as_bytes() => Ok(Arc::new(GenKey(g))),
                _ => Err(CredentialRefused(format!("not a credential of {name}"))),
            }
        }
    }

    /// "b" held in the view with its first key; its claim at `incarnation` as the restarted
    /// process (generation 1) signs it.
    fn restarted_b() -> (Claims, View, Vec<u8>) {
        let me: Arc<str> = "me".into();
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let mut view = View::new(
            Arc::new(NameTable::default()),
            "me",
            addr,
            1,
            Instant::now(),
        );
        let mut claims = Claims::new(Some(Arc::new(Generations)), "swim", &me).unwrap();
        let old = claims.admit("b", &credential_of("b", 0)).unwrap();
        claims.settled("b");
        let (id, name) = view.intern("b");
        let mut b = crate::membership::Member::alive(name, addr, None, 0, 7, Instant::now());
        b.prove(Some(old), None, None);
        view.set(id, b);
        let own = Own {
            addr,
            boot_id: 8,
            meta: &[],
            sig: &[],
        };
        let claim = Claim::own("swim", "b", 1, false, &own).to_bytes();
        (claims, view, [&[1], &claim[..]].concat())
    }

    #[test]
    fn a_restarted_members_new_key_is_taken_when_offered_and_asked_again_after_a_stale_answer() {
        let (mut c, view, sig) = restarted_b();
        let now = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let own = Own {
            addr,
            boot_id: 8,
            meta: &[],
            sig: &sig,
        };
        let peer: Arc<str> = "peer".into();
        let from = Sender { addr, name: &peer };
        let check = |c: &mut Claims, now, offered: &[u8]| {
            c.check_own(now, &view, from, "b", 1, false, &own, offered)
        };

        // A peer that still held the old process answered the request: its credential is
        // fetched, and proves nothing about the new claim. The claim is refused, and the
        // credential asked for again once the last request is old enough (before, a fetched
        // credential that failed stopped every further request: the member stayed dead).
        c.given("b", &credential_of("b", 0)).unwrap();
        assert!(matches!(
            check(&mut c, now, &[]),
            Check::Refused(ClaimRefusal::BadSignature)
        ));
        assert_eq!(c.waiting.take_requests().len(), 1, "asked");
        let later = now + Duration::from_secs(6);
        assert!(matches!(check(&mut c, later, &[]), Check::Refused(_)));
        assert_eq!(c.waiting.take_requests().len(), 1, "asked again");

        // Offered with the claim (a push-pull record), the new credential is taken at once.
        let Check::Valid(Some(taken)) = check(&mut c, later, &credential_of("b", 1)) else {
            panic!("the offered credential vouches for the claim");
        };
        assert_eq!(&*taken.bytes, &credential_of("b", 1)[..]);
        // A credential that the trust refuses is not admitted.
        let (mut c, _, _) = restarted_b();
        assert!(matches!(
            check(&mut c, now, &credential_of("not-b", 1)),
            Check::Refused(ClaimRefusal::BadSignature)
        ));
    }
}
