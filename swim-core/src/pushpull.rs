//! Anti-entropy: full-state push-pull over a reliable stream, periodic (interval scaled
//! with cluster size, preceded by a table fingerprint so equal tables exchange nothing more)
//! and on join; the rule for merging a peer's records into this view.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::accusation::Accuser;
use crate::claims::Sender;
use crate::config::Config;
use crate::membership::{Member, MemberState};
use crate::update::{AliveClaim, Fx, Membership, Outcome};
use crate::view::View;
use crate::wire::{self, Accusation, Framing, Item, Message, Silence, StateEntry, UpdateKind};

/// Push-pulls this node started and still awaits the answer of, at most.
const MAX_AWAITED: usize = 16;

/// Uncollected push-pull durations kept at most.
pub const MAX_PUSH_PULL_SAMPLES: usize = 64;

/// When the next periodic push-pull is, whether the next probe carries the table
/// fingerprint in its place, and the push-pulls this node started, to time each exchange.
#[derive(Debug)]
pub(crate) struct AntiEntropy {
    next: Instant,
    /// The next probe's ping carries a table fingerprint (periodic anti-entropy).
    digest_due: bool,
    /// Requests awaiting their answer: where each went (the peer's name, if known) and
    /// when, oldest first. One per peer: a newer request replaces an older, whose answer
    /// (if it ever comes) is taken for the newer's. Bounded by [`MAX_AWAITED`], oldest
    /// forgotten (an unanswered request is never timed).
    awaited: VecDeque<(SocketAddr, Option<Arc<str>>, Instant)>,
    /// Durations of exchanges answered, not yet collected (bounded, oldest dropped).
    durations: VecDeque<Duration>,
}

impl AntiEntropy {
    pub(crate) fn new(first: Instant) -> Self {
        Self {
            next: first,
            digest_due: false,
            awaited: VecDeque::new(),
            durations: VecDeque::new(),
        }
    }

    /// A push-pull request to `to` (known as `name`) handed to the runtime at `now`.
    pub(crate) fn started(&mut self, now: Instant, to: SocketAddr, name: Option<Arc<str>>) {
        let same_peer =
            |a: &SocketAddr, n: &Option<Arc<str>>| *a == to || (name.is_some() && *n == name);
        self.awaited.retain(|(a, n, _)| !same_peer(a, n));
        if self.awaited.len() == MAX_AWAITED {
            self.awaited.pop_front();
        }
        self.awaited.push_back((to, name, now));
    }

    /// A push-pull answer from `from` was merged at `now`: the exchange it ends, if this
    /// node awaited one from that address (or that peer's name), took this long.
    pub(crate) fn answered(&mut self, now: Instant, from: Sender<'_>) {
        let Some(i) = self
            .awaited
            .iter()
            .position(|(a, n, _)| *a == from.addr || n.as_deref() == Some(&**from.name))
        else {
            return;
        };
        let (_, _, at) = self.awaited.remove(i).expect("found above");
        if self.durations.len() == MAX_PUSH_PULL_SAMPLES {
            self.durations.pop_front();
        }
        self.durations.push_back(now.saturating_duration_since(at));
    }

    /// The duration of an answered push-pull, oldest first.
    pub(crate) fn poll_duration(&mut self) -> Option<Duration> {
        self.durations.pop_front()
    }

    /// When the next periodic exchange is due.
    pub(crate) fn next(&self) -> Instant {
        self.next
    }

    pub(crate) fn schedule(&mut self, at: Instant) {
        self.next = at;
    }

    /// Whether this probe carries the fingerprint (once per period).
    pub(crate) fn take_digest_due(&mut self) -> bool {
        std::mem::take(&mut self.digest_due)
    }

    /// The periodic exchange, `interval` after the last (none when push-pull is off): with
    /// one random live (alive or suspect) member. Members held dead are contacted at the
    /// reconnect cadence instead (`reconnect.rs`), so a dead member costs the cluster one
    /// dial per reconnect interval whatever the push-pull interval. With fingerprints on,
    /// the fingerprint rides on the next probe instead (whose target is as random a live
    /// peer: no datagram of its own).
    pub(crate) fn periodic(
        &mut self,
        now: Instant,
        interval: Option<Duration>,
        view: &View,
        rng: &mut impl RngCore,
        fingerprints: bool,
    ) -> Option<Exchange> {
        self.schedule(now + interval?);
        let peer = *view
            .sample(rng, 1, None, |m| {
                matches!(m.state, MemberState::Alive | MemberState::Suspect)
            })
            .first()?;
        let m = view.get(peer).expect("sampled from the table");
        if !fingerprints {
            Some(Exchange::Full(m.addr, m.name.clone()))
        } else {
            self.digest_due = true;
            None
        }
    }
}

/// A periodic exchange to send now.
#[derive(Debug)]
pub(crate) enum Exchange {
    /// This node's full state to that member (memberlist's push-pull).
    Full(SocketAddr, Arc<str>),
}

/// A push-pull message with this view's full state (a request, or the `response` to one).
pub(crate) fn encode_state(
    framing: Framing,
    cluster: &str,
    response: bool,
    join: bool,
    view: &View,
) -> Vec<u8> {
    let mut buf = wire::encode_message(
        framing,
        &Message::PushPull {
            cluster,
            response,
            join,
        },
    );
    for (_, m) in view.iter() {
        wire::append_item(&mut buf, &Item::State(entry_of(m, join, view)));
    }
    buf
}

/// A member's record as a push-pull entry, with its credential if `with_credential`.
fn entry_of<'a>(m: &'a Member, with_credential: bool, view: &'a View) -> StateEntry<'a> {
    let failed = matches!(m.state, MemberState::Suspect | MemberState::Dead);
    let credential = match (with_credential, m.credential()) {
        (true, Some(c)) => &c.bytes[..],
        _ => &[],
    };
    StateEntry {
        name: &m.name,
        incarnation: m.incarnation,
        state: m.state,
        own: m.own(),
        // No silence on a stream: retransmissions may hold it for long, and the receiver
        // would take the member for heard later than it was.
        accusation: failed.then(|| m.accusation_or(None, view.my_name(), Silence::UNKNOWN)),
        credential,
    }
}

/// The answer to a records request: the records this view holds of the `wanted` names (at
/// most `max`), each with its credential. `None` when it holds none of them.
pub(crate) fn encode_records<'a>(
    framing: Framing,
    view: &View,
    wanted: impl Iterator<Item = &'a str>,
    max: usize,
) -> Option<Vec<u8>> {
    let mut buf = wire::encode_message(framing, &Message::Records { response: true });
    let mut any = false;
    for name in wanted.take(max) {
        if let Some((_, m)) = view.known(name) {
            wire::append_item(&mut buf, &Item::State(entry_of(m, true, view)));
            any = true;
        }
    }
    any.then_some(buf)
}

/// One record of a push-pull from `from`. A remote `dead` becomes a local suspicion by its
/// accuser (memberlist's rule): one peer's stale tombstone must not kill a live member here
/// without a suspicion it can refute. Unknown dead or left members are not learned (no
/// tombstone for a member we never knew). A suspect or dead record at an incarnation above
/// ours carries the member's own signed claim at it, which is applied first.
pub(crate) fn merge_record(
    now: Instant,
    membership: &mut Membership,
    config: &Config,
    from: Sender<'_>,
    e: StateEntry<'_>,
    fx: &mut Fx<'_>,
) -> Outcome {
    let view = membership.view();
    // A record may come without its accusation (from a peer without trust): the sender
    // accuses.
    let accusation = e.accusation.unwrap_or(Accusation {
        accuser: from.name,
        sig: &[],
        silent: Silence::UNKNOWN,
    });
    if e.name == &**view.my_name() {
        let kind = match e.state {
            MemberState::Alive => UpdateKind::Alive(e.own),
            MemberState::Suspect => UpdateKind::Suspect(accusation),
            MemberState::Dead => UpdateKind::Dead(accusation),
            MemberState::Left => UpdateKind::Left(e.own),
        };
        let failed = matches!(e.state, MemberState::Suspect | MemberState::Dead);
        if failed && e.incarnation > membership.claims.highest_mine() {
            // A previous process of ours may have signed that incarnation: the record
            // carries its claim; learn it first (and refute it).
            let alive = UpdateKind::Alive(e.own);
            let outcome = membership.about_me(now, from, e.incarnation, alive, fx);
            if outcome != Outcome::Done {
                return outcome;
            }
        }
        return membership.about_me(now, from, e.incarnation, kind, fx);
    }
    let claim = AliveClaim {
        name: e.name,
        incarnation: e.incarnation,
        own: e.own,
        offered: e.credential,
    };
    let known = view.known(e.name).map(|(id, m)| (id, m.incarnation));
    match e.state {
        MemberState::Alive => membership.apply_alive(now, from, claim, fx),
        MemberState::Suspect | MemberState::Dead => {
            if known.is_none() && e.state == MemberState::Suspect {
                let outcome = membership.apply_alive(now, from, claim, fx);
                if outcome != Outcome::Done {
                    return outcome;
                }
            }
            let Some(id) = membership.view().lookup(e.name) else {
                return Outcome::Done;
            };
            if let Err(outcome) = membership.catch_up(now, from, id, e.incarnation, e.own, fx) {
                return outcome;
            }
            let accuser = Accuser::Peer(accusation);
            membership.suspect(now, config, from, id, e.incarnation, accuser, fx)
        }
        MemberState::Left => match known {
            Some((id, _)) => membership.apply_left(now, from, id, e.incarnation, e.own, fx),
            None => Outcome::Done,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::{AntiEntropy, MAX_AWAITED};
    use crate::claims::Sender;
    use crate::config::Config;
    use crate::node::{Node, Transmit};
    use crate::wire::{self, Framing, Item, Message, MessageKind};

    fn addr(port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn deliver(to: &mut Node, from: &str, from_port: u16, t: Transmit, now: Instant) {
        let result = if t.reliable {
            to.handle_stream(now, addr(from_port), from, &t.payload)
        } else {
            to.handle_packet(now, addr(from_port), from, &t.payload)
        };
        result.expect("valid message");
    }

    /// `a` joins `b`; both hold the same two records afterwards.
    fn pair() -> (Node, Node, Instant) {
        let now = Instant::now();
        let mut a = Node::new(now, "a", addr(1), Config::default(), 1).unwrap();
        let mut b = Node::new(now, "b", addr(2), Config::default(), 2).unwrap();
        a.join(now, &[addr(2)]);
        a.handle_timeout(now);
        let req = a.poll_transmit().expect("join request");
        deliver(&mut b, "a", 1, req, now);
        let resp = b.poll_transmit().expect("join response");
        deliver(&mut a, "b", 2, resp, now);
        while a.poll_transmit().is_some() {}
        while b.poll_transmit().is_some() {}
        (a, b, now)
    }

    #[test]
    fn equal_tables_have_equal_digests_and_any_difference_shows() {
        let (mut a, b, now) = pair();
        assert_eq!(a.view().fingerprint(), b.view().fingerprint());
        a.set_metadata(now, b"zone=a").unwrap();
        assert_ne!(a.view().fingerprint(), b.view().fingerprint());
    }

    /// A ping from `a` carrying `a`'s fingerprint.
    fn ping_with_digest(a: &Node) -> Vec<u8> {
        let mut p = wire::encode_message(Framing::VersionByte, &Message::Ping { seq: 1 });
        wire::append_item(&mut p, &Item::StateDigest(a.view().fingerprint()));
        p
    }

    fn push_pulls(n: &mut Node) -> Vec<Transmit> {
        let all: Vec<Transmit> = std::iter::from_fn(|| n.poll_transmit()).collect();
        all.into_iter()
            .filter(|t| {
                MessageKind::of_packet(Framing::VersionByte, &t.payload)
                    == Some(MessageKind::PushPull)
            })
            .collect()
    }

    #[test]
    fn a_differing_digest_starts_a_full_push_pull_and_an_equal_one_nothing() {
        let (mut a, mut b, now) = pair();
        b.handle_packet(now, addr(1), "a", &ping_with_digest(&a))
            .unwrap();
        assert!(
            push_pulls(&mut b).is_empty(),
            "equal tables need no exchange"
        );

        a.set_metadata(now, b"zone=a").unwrap();
        b.handle_packet(now, addr(1), "a", &ping_with_digest(&a))
            .unwrap();
        let mut full = push_pulls(&mut b);
        assert_eq!(full.len(), 1, "a full push-pull");
        let t = full.pop().unwrap();
        assert!(t.reliable);
        assert_eq!(b.stats().digest_mismatches, 1);
        // a answers with its state, which carries the new metadata to b.
        deliver(&mut a, "b", 2, t, now);
        let answer = a.poll_transmit().expect("push-pull response");
        deliver(&mut b, "a", 1, answer, now);
        assert_eq!(a.view().fingerprint(), b.view().fingerprint());
    }

    #[test]
    fn a_join_is_timed_from_its_request_to_its_answer_merged_once() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let mut a = Node::new(now, "a", addr(1), Config::default(), 1).unwrap();
        let mut b = Node::new(now, "b", addr(2), Config::default(), 2).unwrap();
        a.join(now, &[addr(2)]);
        a.handle_timeout(now);
        let req = a.poll_transmit().expect("join request");
        deliver(&mut b, "a", 1, req, now + ms(30));
        let resp = b.poll_transmit().expect("join response");
        assert_eq!(a.poll_push_pull_duration(), None, "not answered yet");
        deliver(&mut a, "b", 2, resp.clone(), now + ms(75));
        assert_eq!(a.poll_push_pull_duration(), Some(ms(75)));
        assert_eq!(a.poll_push_pull_duration(), None);
        // The same answer again ends no exchange; b only answered, it timed nothing.
        deliver(&mut a, "b", 2, resp, now + ms(90));
        assert_eq!(a.poll_push_pull_duration(), None);
        assert_eq!(b.poll_push_pull_duration(), None);
    }

    #[test]
    fn a_push_pull_started_by_a_differing_digest_is_timed_by_its_starter() {
        let (mut a, mut b, now) = pair();
        let ms = Duration::from_millis;
        assert_eq!(
            a.poll_push_pull_duration(),
            Some(ms(0)),
            "a's join, at once"
        );
        a.set_metadata(now, b"zone=a").unwrap();
        let t0 = now + ms(10);
        b.handle_packet(t0, addr(1), "a", &ping_with_digest(&a))
            .unwrap();
        let request = push_pulls(&mut b).pop().expect("a full push-pull");
        deliver(&mut a, "b", 2, request, t0 + ms(5));
        let answer = a.poll_transmit().expect("push-pull response");
        deliver(&mut b, "a", 1, answer, t0 + ms(12));
        assert_eq!(b.poll_push_pull_duration(), Some(ms(12)));
        assert_eq!(a.poll_push_pull_duration(), None, "a only answered");
    }

    #[test]
    fn awaited_requests_are_one_per_peer_and_bounded() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut ae = AntiEntropy::new(t0);
        let name: Arc<str> = Arc::from("p");
        let from = |port| Sender {
            addr: addr(port),
            name: &name,
        };
        // A second request to the same peer replaces the first: its answer times the second.
        ae.started(t0, addr(100), None);
        ae.started(t0 + ms(40), addr(100), None);
        ae.answered(t0 + ms(50), from(100));
        assert_eq!(ae.poll_duration(), Some(ms(10)));
        ae.answered(t0 + ms(60), from(100));
        assert_eq!(ae.poll_duration(), None, "answered once");
        // Beyond the bound, the oldest unanswered request is forgotten.
        for port in 0..=MAX_AWAITED as u16 {
            ae.started(t0 + ms(u64::from(port)), addr(200 + port), None);
        }
        ae.answered(t0 + ms(100), from(200));
        assert_eq!(ae.poll_duration(), None, "forgotten");
        ae.answered(t0 + ms(100), from(200 + MAX_AWAITED as u16));
        assert_eq!(ae.poll_duration(), Some(ms(100 - MAX_AWAITED as u64)));
    }
}
