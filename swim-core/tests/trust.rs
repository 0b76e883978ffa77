//! Who may say what, in the deterministic simulator with every node signing its claims
//! (`SimTrust`): a member's own claims take effect only with its signature, accusations only
//! with their accuser's and never above what the accused has signed; each forgery is refused
//! and counted, and changes no view.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::deliver;
use swim_core::sim::forge::{self, Forgery};
use swim_core::sim::{Sim, SimConfig, SimTrust};
use swim_core::{
    ClaimKey, ClaimRefusal, Config, CredentialRefused, Framing, MemberInfo, MemberState, Node,
    Trust,
};

mod support;

const N: usize = 5;
/// The member the forgeries are about, the one who sends them, and one who receives them.
const X: usize = 2;
const FORGER: usize = 1;
const RECEIVER: usize = 0;

fn cluster(seed: u64) -> Sim {
    let mut sim = Sim::new(SimConfig {
        members: N,
        seed,
        ..SimConfig::default()
    });
    sim.run_for(Duration::from_secs(5));
    assert!(sim.converged());
    sim
}

/// Every running member's record of `subject`, minus the time it entered its state.
fn views_of(sim: &Sim, subject: usize) -> Vec<Option<(MemberState, u32, SocketAddr, u32)>> {
    sim.running()
        .map(|v| {
            sim.view_of(v, subject)
                .map(|m: MemberInfo| (m.state, m.incarnation, m.addr, m.boot_id))
        })
        .collect()
}

fn refused(sim: &Sim, reason: ClaimRefusal) -> u64 {
    sim.running()
        .map(|i| sim.node(i).unwrap().stats().claims_refused(reason))
        .sum()
}

fn other_addr() -> SocketAddr {
    "10.9.9.9:7946".parse().unwrap()
}

/// The forgeries of the security issue's §1, sent by FORGER (a member, holding a valid key
/// of its own) about X, signed with FORGER's own key.
fn forgeries(sim: &Sim) -> Vec<(&'static str, Forgery<'static>)> {
    let x_inc = sim.view_of(RECEIVER, X).unwrap().incarnation;
    let x = sim_name(X);
    vec![
        (
            "left at u32::MAX",
            Forgery::Left {
                name: x,
                incarnation: u32::MAX,
                addr: sim.addr(X),
                boot_id: 1,
            },
        ),
        (
            "alive at u32::MAX elsewhere",
            Forgery::Alive {
                name: x,
                incarnation: u32::MAX,
                addr: other_addr(),
                boot_id: 1,
            },
        ),
        (
            "suspect in another accuser's name",
            Forgery::Suspect {
                name: x,
                incarnation: x_inc,
                accuser: sim_name(3),
            },
        ),
        (
            "dead in another accuser's name",
            Forgery::Dead {
                name: x,
                incarnation: x_inc,
                accuser: sim_name(3),
            },
        ),
    ]
}

fn sim_name(i: usize) -> &'static str {
    ["node-0", "node-1", "node-2", "node-3", "node-4"][i]
}

#[test]
fn a_members_own_claims_and_accusations_in_another_name_are_refused_by_everyone() {
    for (label, forgery) in forgeries(&cluster(1)) {
        let mut sim = cluster(1);
        let before = views_of(&sim, X);
        let refused_before = refused(&sim, ClaimRefusal::BadSignature);
        let claim = forge::claim_bytes("swim", &forgery);
        let signed_by_forger = SimTrust::signature(sim_name(FORGER), &claim);
        let packet = forge::gossip(Framing::VersionByte, &forgery, &signed_by_forger);
        // To every member but X (and the forger), as if the forger had gossiped it.
        for to in [0, 3, 4] {
            sim.inject(to, FORGER, &packet, false).expect("well-formed");
        }
        sim.run_for(Duration::from_secs(20));
        assert_eq!(views_of(&sim, X), before, "{label}: a view of X changed");
        assert!(
            refused(&sim, ClaimRefusal::BadSignature) >= refused_before + 3,
            "{label}: refusals not counted"
        );
        assert_eq!(sim.report().false_suspicions, 0, "{label}");
    }
}

#[test]
fn an_invented_member_never_enters_a_view() {
    let mut sim = cluster(2);
    let forgery = Forgery::Alive {
        name: "phantom-1",
        incarnation: 0,
        addr: other_addr(),
        boot_id: 7,
    };
    let claim = forge::claim_bytes("swim", &forgery);
    let packet = forge::gossip(
        Framing::VersionByte,
        &forgery,
        &SimTrust::signature(sim_name(FORGER), &claim),
    );
    for to in [0, 3, 4] {
        sim.inject(to, FORGER, &packet, false).unwrap();
    }
    sim.run_for(Duration::from_secs(30));
    for v in sim.running() {
        assert!(sim.node(v).unwrap().member("phantom-1").is_none());
        assert_eq!(sim.node(v).unwrap().member_count(MemberState::Alive), N);
    }
    // Nobody could give phantom-1's credential: each claim gave up waiting for it.
    assert!(refused(&sim, ClaimRefusal::NoCredential) >= 3);
}

#[test]
fn unsigned_claims_are_refused_by_a_node_that_checks_signatures() {
    let mut sim = cluster(3);
    let before = views_of(&sim, X);
    let forgery = Forgery::Left {
        name: sim_name(X),
        incarnation: 9,
        addr: sim.addr(X),
        boot_id: 1,
    };
    let packet = forge::gossip(Framing::VersionByte, &forgery, &[]);
    sim.inject(RECEIVER, FORGER, &packet, false).unwrap();
    sim.run_for(Duration::from_secs(5));
    assert_eq!(views_of(&sim, X), before);
    assert_eq!(refused(&sim, ClaimRefusal::Unsigned), 1);
}

/// A member may accuse in its own name (it may really have failed to reach X): X refutes
/// with one more than its own incarnation. An accusation above what X has signed is refused
/// by everyone, X included, and leaves X's incarnation where it was.
#[test]
fn an_accusation_in_the_accusers_own_name_is_refuted_and_one_above_what_x_signed_is_refused() {
    let mut sim = cluster(4);
    let x_inc = sim.node(X).unwrap().incarnation();
    for (incarnation, refuted) in [(u32::MAX, false), (x_inc + 5, false), (x_inc, true)] {
        let forgery = Forgery::Suspect {
            name: sim_name(X),
            incarnation,
            accuser: sim_name(FORGER),
        };
        let claim = forge::claim_bytes("swim", &forgery);
        let packet = forge::gossip(
            Framing::VersionByte,
            &forgery,
            &SimTrust::signature(sim_name(FORGER), &claim),
        );
        let above = refused(&sim, ClaimRefusal::AboveSigned);
        for to in [0, 2, 3, 4] {
            sim.inject(to, FORGER, &packet, false).unwrap();
        }
        sim.run_for(Duration::from_secs(10));
        let now_inc = sim.node(X).unwrap().incarnation();
        if refuted {
            assert_eq!(now_inc, x_inc + 1, "refuted with one more than its own");
        } else {
            assert_eq!(now_inc, x_inc, "an accusation at {incarnation} moved X");
            assert_eq!(refused(&sim, ClaimRefusal::AboveSigned), above + 4);
        }
        for v in sim.running() {
            let m = sim.view_of(v, X).unwrap();
            assert_eq!((m.state, m.incarnation), (MemberState::Alive, now_inc));
        }
    }
}

#[test]
fn own_signed_leave_and_restart_still_work_and_joiners_fetch_credentials() {
    let mut sim = Sim::new(SimConfig {
        members: 8,
        seed: 5,
        converged_start: false,
        ..SimConfig::default()
    });
    sim.run_for(Duration::from_secs(20));
    assert!(sim.converged(), "joined through node-0 with signed claims");
    let asked: u64 = sim
        .running()
        .map(|i| sim.node(i).unwrap().stats().records_asked)
        .sum();
    assert!(
        asked > 0,
        "members learned of others before their credentials"
    );
    sim.crash(3);
    sim.run_for(Duration::from_secs(40));
    assert!(sim.all_running_agree_on_dead(3));
    sim.restart(3);
    sim.leave(4);
    sim.run_for(Duration::from_secs(30));
    for v in sim.running() {
        assert_eq!(sim.view_of(v, 4).map(|m| m.state), Some(MemberState::Left));
        assert_eq!(sim.view_of(v, 3).map(|m| m.state), Some(MemberState::Alive));
    }
    let all: u64 = ClaimRefusal::ALL.iter().map(|&r| refused(&sim, r)).sum();
    assert_eq!(all, 0, "honest members refuse nothing");
}

/// A trust whose authority can stop vouching for a name (a CA rotated away from it).
#[derive(Debug)]
struct Revocable {
    inner: SimTrust,
    revoked: Arc<Mutex<Vec<String>>>,
}

impl Trust for Revocable {
    fn credential(&self) -> Arc<[u8]> {
        self.inner.credential()
    }
    fn sign(&self, claim: &[u8]) -> Vec<u8> {
        self.inner.sign(claim)
    }
    fn admit(&self, name: &str, credential: &[u8]) -> Result<Arc<dyn ClaimKey>, CredentialRefused> {
        if self.revoked.lock().unwrap().iter().any(|n| n == name) {
            return Err(CredentialRefused(format!(
                "{name} is no longer vouched for"
            )));
        }
        self.inner.admit(name, credential)
    }
}

#[test]
fn a_credential_the_authority_no_longer_vouches_for_stops_vouching_for_claims() {
    let now = Instant::now();
    let (a_addr, b_addr): (SocketAddr, SocketAddr) = (
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
    );
    let revoked = Arc::new(Mutex::new(Vec::new()));
    let trust = Revocable {
        inner: SimTrust::new("a"),
        revoked: revoked.clone(),
    };
    let mut a = Node::with_trust(now, "a", a_addr, Config::default(), 1, Arc::new(trust)).unwrap();
    let b_trust: Arc<dyn Trust> = Arc::new(SimTrust::new("b"));
    let mut b = Node::with_trust(now, "b", b_addr, Config::default(), 2, b_trust).unwrap();
    b.join(now, &[]);
    a.join(now, &[b_addr]);
    let exchange = |a: &mut Node, b: &mut Node, now: Instant| {
        for _ in 0..3 {
            a.handle_timeout(now);
            b.handle_timeout(now);
            deliver(a, a_addr, b, b_addr, now);
            deliver(b, b_addr, a, a_addr, now);
        }
    };
    exchange(&mut a, &mut b, now);
    assert_eq!(a.member("b").map(|m| m.incarnation), Some(0), "a learned b");
    assert_eq!(a.recheck_credentials(now), 0, "still vouched for");
    revoked.lock().unwrap().push("b".into());
    assert_eq!(a.recheck_credentials(now), 1);
    b.set_metadata(now, b"moved").unwrap();
    let later = now + Duration::from_secs(1);
    exchange(&mut a, &mut b, later);
    let b_at_a = a.member("b").unwrap();
    assert_eq!(b_at_a.incarnation, 0, "b's new claim took no effect at a");
    assert!(a.stats().claims_refused(ClaimRefusal::BadCredential) >= 1);
}
