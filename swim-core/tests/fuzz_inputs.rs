//! Fuzz-style tests of the `Node` inputs: arbitrary bytes, bytes behind a valid version
//! byte, and real packets truncated, mutated or extended, fed to `Node::handle_packet` and
//! `Node::handle_stream`. An input must never panic, and a refused input (`Err`) must leave
//! the node exactly as it was: same member table, same timers, nothing to send, no event,
//! and only the matching error counter raised.
//!
//! The node under test (`node-0`) is a real member of a small cluster in the deterministic
//! simulator: `node-1`–`node-3` join through it, then `node-3` crashes, so that depending on
//! the generated setup time `node-0` holds members alive, suspect or dead, with probes,
//! relayed pings and suspicions in flight. Inputs are fed to it directly; the simulation then
//! runs on.
//!
//! ```text
//! cargo test --release -p swim-core --all-features --test fuzz_inputs
//! ```
//! (Also worth running in debug, where integer overflow panics.) With `FUZZ_TALLY=1` every
//! input's outcome (`ok` or the error label) is printed, to see how deep the inputs reach.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use support::cases;
use swim_core::sim::forge::{self, Forgery};
use swim_core::sim::{Delivery, Sim, SimConfig, SimTrust};
use swim_core::{
    Config, Error, Event, Framing, MemberState, MessageKind, Node, PeerMisbehaved, PROTOCOL_VERSION,
};

mod support;

// ----- the cluster under test, in the simulator ------------------------------------------

const NAMES: [&str; 4] = ["node-0", "node-1", "node-2", "node-3"];

/// The simulator's address of member `i` (checked against `Sim::addr` when a cluster is
/// built); `addr(4)` belongs to nobody.
fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, i as u8 + 1], 7946))
}

/// Members `node-0..3` in the deterministic simulator (`swim_core::sim`).
struct Cluster {
    sim: Sim,
}

impl Cluster {
    /// `node-1`–`node-3` join through `node-0`; after 2 s `node-3` crashes; then the cluster
    /// runs `extra` more. `node-1` broadcasts and `node-2` changes its metadata along the way,
    /// so the traffic carries every kind of item. With `capture`, every delivered message is
    /// kept (`Sim::traffic`).
    /// Claims are signed (`SimTrust`) for even seeds, not for odd ones, so that random
    /// inputs meet both a node that checks signatures and one that takes claims as they come.
    fn build(seed: u64, extra: Duration, capture: bool) -> Self {
        Self::build_framed(seed, extra, capture, Framing::VersionByte)
    }

    /// [`build`](Self::build), every member framing packets with `framing`.
    fn build_framed(seed: u64, extra: Duration, capture: bool, framing: Framing) -> Self {
        Self::build_with(seed, extra, capture, framing, seed % 2 == 0)
    }

    /// An unsigned cluster, for hand-built claims that carry no signatures.
    fn unsigned(seed: u64, extra: Duration) -> Self {
        Self::build_with(seed, extra, false, Framing::VersionByte, false)
    }

    fn build_with(
        seed: u64,
        extra: Duration,
        capture: bool,
        framing: Framing,
        signed: bool,
    ) -> Self {
        let mut node = Config::default();
        node.framing = framing;
        let mut sim = Sim::new(SimConfig {
            members: NAMES.len(),
            seed,
            node,
            converged_start: false,
            record_traffic: capture,
            signed,
            ..SimConfig::default()
        });
        for (i, name) in NAMES.iter().enumerate() {
            assert_eq!((sim.name(i), sim.addr(i)), (*name, addr(i)));
        }
        sim.run_for(Duration::from_millis(700));
        let now = sim.now();
        let node = sim.node_mut(1).expect("running");
        node.broadcast(b"hello from node-1")
            .expect("small broadcast");
        let node = sim.node_mut(2).expect("running");
        node.set_metadata(now, b"role=db").expect("small metadata");
        sim.run_for(Duration::from_millis(1300));
        sim.crash(3);
        sim.run_for(extra);
        Cluster { sim }
    }

    fn node(&mut self, i: usize) -> &mut Node {
        self.sim.node_mut(i).expect("running")
    }

    fn now(&self) -> Instant {
        self.sim.now()
    }
}

/// Real traffic of a cluster run, grouped by message kind (the byte after the version).
fn corpus() -> &'static Vec<Vec<Delivery>> {
    static CORPUS: OnceLock<Vec<Vec<Delivery>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        // 45 s: every node has done at least one periodic push-pull, node-3 has been suspected
        // (ping-reqs, nacks) and declared dead.
        let c = Cluster::build(8, Duration::from_secs(45), true);
        let net = c.sim.net_stats();
        assert_eq!(net.refused, 0, "valid traffic refused: {net:?}");
        let kinds = swim_core::MessageKind::ALL.len();
        let mut groups: Vec<Vec<Delivery>> = vec![Vec::new(); kinds];
        for m in c.sim.traffic().iter().cloned() {
            assert_eq!(m.payload[0], PROTOCOL_VERSION, "version byte");
            let kind = m.payload[1] as usize;
            assert!(kind < kinds, "message kind {kind}");
            // Keep the corpus small: at most 200 of each kind.
            if groups[kind].len() < 200 {
                groups[kind].push(m);
            }
        }
        for (kind, g) in groups.iter().enumerate() {
            assert!(!g.is_empty(), "no message of kind {kind} in the corpus");
        }
        groups
    })
}

// ----- structurally valid packets, built by hand -----------------------------------------
//
// The wire layout (swim-core/src/wire.rs) in postcard: enum variants and integers as
// varints, strings and byte strings as varint length + bytes, `bool` as one byte, a
// `SocketAddr` as variant (0 = V4, 1 = V6), the address octets, and the port as a varint.

fn varint(mut v: u32, out: &mut Vec<u8>) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn str_field(s: &str, out: &mut Vec<u8>) {
    bytes_field(s.as_bytes(), out);
}

fn bytes_field(b: &[u8], out: &mut Vec<u8>) {
    varint(b.len() as u32, out);
    out.extend_from_slice(b);
}

fn addr_field(a: SocketAddr, out: &mut Vec<u8>) {
    match a {
        SocketAddr::V4(a) => {
            out.push(0);
            out.extend_from_slice(&a.ip().octets());
            varint(a.port() as u32, out);
        }
        SocketAddr::V6(a) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
            varint(a.port() as u32, out);
        }
    }
}

/// A name: mostly members of the cluster (the node itself included), sometimes a new one,
/// rarely an invalid one (empty, or longer than 253 bytes).
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0usize..4).prop_map(|i| NAMES[i].to_string()),
        3 => "[a-z0-9-]{1,12}",
        1 => Just("x".repeat(253)),
        1 => Just(String::new()),
        1 => Just("y".repeat(254)),
    ]
}

fn incarnation() -> impl Strategy<Value = u32> {
    prop_oneof![
        8 => 0u32..4,
        2 => any::<u32>(),
        1 => Just(u32::MAX - 1),
        1 => Just(u32::MAX),
    ]
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        4 => (0usize..5).prop_map(addr),
        1 => (any::<[u8; 4]>(), any::<u16>()).prop_map(SocketAddr::from),
        1 => (any::<[u8; 16]>(), any::<u16>()).prop_map(SocketAddr::from),
    ]
}

fn meta() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..16),
        1 => prop::collection::vec(any::<u8>(), 500..530),
    ]
}

/// A signature: none, one of the simulator's length (never the right one), or any bytes.
fn sig() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        2 => prop::collection::vec(any::<u8>(), swim_core::sim::trust::SIGNATURE_LEN),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ]
}

/// `Own`: a member's own claim (address, boot id, metadata, signature).
fn own() -> impl Strategy<Value = Vec<u8>> {
    (socket_addr(), any::<u32>(), meta(), sig()).prop_map(|(a, boot, m, sig)| {
        let mut b = Vec::new();
        addr_field(a, &mut b);
        varint(boot, &mut b);
        bytes_field(&m, &mut b);
        bytes_field(&sig, &mut b);
        b
    })
}

/// `Accusation`: an accuser, its signature, and how long the accused had been silent
/// (four bytes, milliseconds; all ones for unknown).
fn accusation() -> impl Strategy<Value = Vec<u8>> {
    (name(), sig(), any::<[u8; 4]>()).prop_map(|(accuser, sig, silent)| {
        let mut b = Vec::new();
        str_field(&accuser, &mut b);
        bytes_field(&sig, &mut b);
        b.extend_from_slice(&silent);
        b
    })
}

/// `Item::Member`: an update about a member.
fn member_item() -> impl Strategy<Value = Vec<u8>> {
    let kind = (0u8..4, own(), accusation()).prop_map(|(tag, own, accusation)| {
        let mut b = vec![tag];
        b.extend(if tag == 1 || tag == 2 {
            accusation
        } else {
            own
        });
        b
    });
    (name(), incarnation(), kind).prop_map(|(n, inc, kind)| {
        let mut b = vec![0];
        str_field(&n, &mut b);
        varint(inc, &mut b);
        b.extend(kind);
        b
    })
}

/// `Item::User`: an application broadcast.
fn user_item() -> impl Strategy<Value = Vec<u8>> {
    (name(), any::<u32>(), meta()).prop_map(|(origin, seq, payload)| {
        let mut b = vec![1];
        str_field(&origin, &mut b);
        varint(seq, &mut b);
        bytes_field(&payload, &mut b);
        b
    })
}

/// A credential: none (asked for), the simulator's credential of some name, or any bytes.
fn credential() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        2 => name().prop_map(|n| SimTrust::credential_of(&n)),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// `Item::State`: one record of a push-pull.
fn state_item() -> impl Strategy<Value = Vec<u8>> {
    (
        name(),
        incarnation(),
        0u32..4,
        own(),
        prop::option::of(accusation()),
        credential(),
    )
        .prop_map(|(n, inc, state, own, accusation, credential)| {
            let mut b = vec![2];
            str_field(&n, &mut b);
            varint(inc, &mut b);
            varint(state, &mut b);
            b.extend(own);
            match accusation {
                Some(a) => {
                    b.push(1);
                    b.extend(a);
                }
                None => b.push(0),
            }
            bytes_field(&credential, &mut b);
            b
        })
}

/// `Item::Wanted`: a member's record asked for.
fn wanted_item() -> impl Strategy<Value = Vec<u8>> {
    name().prop_map(|n| {
        let mut b = vec![3];
        str_field(&n, &mut b);
        b
    })
}

/// A whole packet: version, message, items. Mostly well-formed and well-placed (state items
/// only in push-pull), sometimes not. Returns the bytes and whether it should go on a stream.
fn packet() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let seq = prop_oneof![3 => 0u32..64, 1 => any::<u32>()];
    let message = prop_oneof![
        seq.clone().prop_map(|s| {
            let mut b = vec![0];
            varint(s, &mut b);
            b
        }),
        seq.clone().prop_map(|s| {
            let mut b = vec![1];
            varint(s, &mut b);
            b
        }),
        (seq.clone(), name(), socket_addr(), any::<bool>()).prop_map(|(s, t, a, nack)| {
            let mut b = vec![2];
            varint(s, &mut b);
            str_field(&t, &mut b);
            addr_field(a, &mut b);
            b.push(nack as u8);
            b
        }),
        seq.prop_map(|s| {
            let mut b = vec![3];
            varint(s, &mut b);
            b
        }),
        Just(vec![4]),
        (
            prop_oneof![9 => Just("swim".to_string()), 1 => "[a-z]{0,6}"],
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(cluster, response, join)| {
                let mut b = vec![5];
                str_field(&cluster, &mut b);
                b.push(response as u8);
                b.push(join as u8);
                b
            }),
        any::<bool>().prop_map(|response| vec![6, response as u8]),
    ];
    let piggyback = prop_oneof![
        3 => member_item(),
        1 => user_item(),
        1 => state_item(),
        1 => wanted_item(),
    ];
    let state = prop_oneof![6 => state_item(), 1 => member_item()];
    // Records: asked for by name, or given as state (each placement refused in the other).
    let records = prop_oneof![3 => wanted_item(), 3 => state_item(), 1 => member_item()];
    (
        message,
        prop::collection::vec(piggyback, 0..6),
        prop::collection::vec(state, 0..8),
        prop::collection::vec(records, 0..4),
        prop::bool::weighted(0.9),
    )
        .prop_map(|(message, piggyback, state, records, natural_channel)| {
            let stream_only = message[0] >= 5;
            let items = match message[0] {
                5 => state,
                6 => records,
                _ => piggyback,
            };
            let mut b = vec![PROTOCOL_VERSION];
            b.extend(message);
            for item in items {
                b.extend(item);
            }
            (b, stream_only == natural_channel)
        })
}

// ----- the property ----------------------------------------------------------------------

/// Everything observable about a node that a refused input must not change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    members: Vec<swim_core::MemberInfo>,
    stats: swim_core::Stats,
    timeout: Option<Instant>,
    health: u32,
    incarnation: u32,
    pending: usize,
    joined: bool,
}

fn snapshot(node: &Node) -> Snapshot {
    Snapshot {
        members: node.members(),
        stats: node.stats(),
        timeout: node.poll_timeout(),
        health: node.local_health(),
        incarnation: node.incarnation(),
        pending: node.pending_broadcasts(),
        joined: node.is_joined(),
    }
}

/// Feeds `bytes` to `node-0` and checks the contract. Returns the result for further checks.
fn feed(
    cluster: &mut Cluster,
    from: &str,
    from_addr: SocketAddr,
    bytes: &[u8],
    reliable: bool,
) -> Result<Result<(), Error>, TestCaseError> {
    let now = cluster.now();
    let node = cluster.node(0);
    let before = snapshot(node);
    let result = if reliable {
        node.handle_stream(now, from_addr, from, bytes)
    } else {
        node.handle_packet(now, from_addr, from, bytes)
    };
    if std::env::var_os("FUZZ_TALLY").is_some() {
        eprintln!(
            "TALLY {}",
            match &result {
                Ok(()) => "ok",
                Err(e) => e.label(),
            }
        );
    }
    if let Err(e) = &result {
        let mut expected = before;
        match e {
            Error::Decode(_) => expected.stats.decode_errors += 1,
            Error::PeerMisbehaved(_) => expected.stats.peer_misbehaved += 1,
            other => {
                return Err(TestCaseError::fail(format!(
                    "network input refused as {other:?}"
                )))
            }
        }
        let after = snapshot(node);
        prop_assert_eq!(
            &after.members,
            &expected.members,
            "member table changed by {:?}",
            e
        );
        prop_assert_eq!(after, expected, "node changed by refused input ({:?})", e);
        prop_assert!(
            node.poll_transmit().is_none(),
            "refused input ({:?}) sent something",
            e
        );
        prop_assert!(
            node.poll_event().is_none(),
            "refused input ({:?}) raised an event",
            e
        );
    } else {
        // Accepted: whatever it said, the node's own incarnation never goes backwards, it
        // still holds itself alive, and it keeps running (timers, peers) without panicking.
        prop_assert!(
            node.incarnation() >= before.incarnation,
            "own incarnation went back from {} to {}",
            before.incarnation,
            node.incarnation()
        );
        cluster.sim.run_for(Duration::from_secs(20));
        let node = cluster.node(0);
        let me = node.member("node-0");
        prop_assert!(
            me.as_ref().is_some_and(|m| m.state == MemberState::Alive),
            "the node holds itself as {:?}",
            me
        );
        let members = node.members();
        let mut names: Vec<_> = members.iter().map(|m| m.name.clone()).collect();
        names.sort();
        names.dedup();
        prop_assert_eq!(names.len(), members.len(), "two records for one name");
    }
    Ok(result)
}

fn c_for(seed: u64, setup_ms: u64) -> Cluster {
    Cluster::build(seed, Duration::from_millis(setup_ms), false)
}

fn from_name() -> impl Strategy<Value = (&'static str, SocketAddr)> {
    prop_oneof![
        4 => (1usize..4).prop_map(|i| (NAMES[i], addr(i))),
        1 => Just(("stranger", SocketAddr::from(([10, 9, 9, 9], 7946)))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2048), .. ProptestConfig::default() })]

    /// Any bytes at all.
    #[test]
    fn arbitrary_bytes_never_panic_and_a_refusal_changes_nothing(
        seed in any::<u64>(),
        setup_ms in 0u64..12_000,
        (from, from_addr) in from_name(),
        bytes in prop::collection::vec(any::<u8>(), 0..1500),
        reliable in any::<bool>(),
    ) {
        let mut c = Cluster::build(seed, Duration::from_millis(setup_ms), false);
        let _ = feed(&mut c, from, from_addr, &bytes, reliable)?;
    }

    /// The right version byte, then any bytes (most of them fail deeper in the decoder).
    #[test]
    fn bytes_behind_a_valid_version_byte_never_panic_and_a_refusal_changes_nothing(
        seed in any::<u64>(),
        setup_ms in 0u64..12_000,
        (from, from_addr) in from_name(),
        kind in prop::option::of(0u8..8),
        rest in prop::collection::vec(any::<u8>(), 0..600),
        reliable in any::<bool>(),
    ) {
        let mut bytes = vec![PROTOCOL_VERSION];
        bytes.extend(kind); // a valid (or just invalid) message kind, then anything
        bytes.extend_from_slice(&rest);
        let mut c = Cluster::build(seed, Duration::from_millis(setup_ms), false);
        let _ = feed(&mut c, from, from_addr, &bytes, reliable)?;
    }

    /// Hand-built packets that follow the wire grammar: any message, any piggybacked
    /// items, names of members (the node's own included) and strangers, extreme
    /// incarnations, oversized fields, state items in the wrong place.
    #[test]
    fn structurally_valid_packets_never_panic_and_a_refusal_changes_nothing(
        seed in any::<u64>(),
        setup_ms in 0u64..12_000,
        (from, from_addr) in from_name(),
        (bytes, reliable) in packet(),
    ) {
        let mut c = Cluster::build(seed, Duration::from_millis(setup_ms), false);
        let _ = feed(&mut c, from, from_addr, &bytes, reliable)?;
    }

    /// Real or hand-built messages, truncated, with bytes flipped, and/or with bytes
    /// appended: structurally valid prefixes whose rest is broken.
    #[test]
    fn mutated_valid_messages_never_panic_and_a_refusal_changes_nothing(
        seed in any::<u64>(),
        setup_ms in 0u64..12_000,
        real in any::<bool>(),
        kind in 0usize..swim_core::MessageKind::ALL.len(),
        which in any::<Index>(),
        generated in packet(),
        cut in prop::option::weighted(0.4, any::<Index>()),
        flips in prop::collection::vec((any::<Index>(), 1u8..=255), 0..3),
        tail in prop::option::weighted(0.3, prop::collection::vec(any::<u8>(), 1..24)),
        flip_channel in prop::bool::weighted(0.1),
    ) {
        let (mut bytes, reliable, from) = if real {
            let m = which.get(&corpus()[kind]);
            (m.payload.clone(), m.reliable, if m.from == 0 { 1 } else { m.from })
        } else {
            (generated.0, generated.1, 1)
        };
        if let Some(cut) = cut {
            bytes.truncate(1 + cut.index(bytes.len()));
        }
        for (at, x) in &flips {
            // Past the version byte: a wrong version is covered above.
            if bytes.len() > 1 {
                let i = 1 + at.index(bytes.len() - 1);
                bytes[i] ^= x;
            }
        }
        bytes.extend(tail.unwrap_or_default());
        let _ = feed(&mut c_for(seed, setup_ms), NAMES[from], addr(from), &bytes, reliable ^ flip_channel)?;
    }

    /// The framing swim-net uses (no version byte: the session fixed it): any bytes, and
    /// hand-built packets without their version byte.
    #[test]
    fn session_framed_inputs_never_panic_and_a_refusal_changes_nothing(
        seed in any::<u64>(),
        setup_ms in 0u64..12_000,
        (from, from_addr) in from_name(),
        arbitrary in prop::collection::vec(any::<u8>(), 0..600),
        (built, reliable) in packet(),
        use_built in any::<bool>(),
    ) {
        let bytes = if use_built { built[1..].to_vec() } else { arbitrary };
        let extra = Duration::from_millis(setup_ms);
        let mut c = Cluster::build_framed(seed, extra, false, Framing::Session);
        let _ = feed(&mut c, from, from_addr, &bytes, reliable)?;
    }

    /// An ack or nack for a sequence number the node never issued is refused.
    #[test]
    fn an_ack_or_nack_for_a_never_issued_sequence_number_is_refused(
        seed in any::<u64>(),
        setup_ms in 0u64..12_000,
        seq in (1u32 << 24)..=u32::MAX,
        nack in any::<bool>(),
        reliable in any::<bool>(),
    ) {
        // postcard: version, variant index of Ack (1) or Nack (3), varint seq.
        let mut bytes = vec![PROTOCOL_VERSION, if nack { 3 } else { 1 }];
        varint(seq, &mut bytes);
        let mut c = Cluster::build(seed, Duration::from_millis(setup_ms), false);
        let result = feed(&mut c, "node-1", addr(1), &bytes, reliable)?;
        match result {
            Err(Error::PeerMisbehaved(PeerMisbehaved::UnknownProbe { from, seq: s })) => {
                prop_assert_eq!(from, "node-1");
                prop_assert_eq!(s, seq);
            }
            other => prop_assert!(false, "ack for unissued seq {} gave {:?}", seq, other),
        }
    }
}

// ----- targeted refusals -----------------------------------------------------------------

/// Every real message, sent in the name of the receiving node itself, is refused as
/// `FromOurselves` and changes nothing.
#[test]
fn a_message_claiming_to_come_from_the_node_itself_is_refused() {
    for group in corpus() {
        for m in group.iter().take(40) {
            // Gossip from our own name is a name conflict's refutation, sent straight to us
            // by the other process (which holds our key): taken, as its claims are checked.
            if MessageKind::of_packet(Framing::VersionByte, &m.payload) == Some(MessageKind::Gossip)
            {
                continue;
            }
            let mut c = Cluster::build(3, Duration::from_secs(3), false);
            let result = feed(&mut c, "node-0", addr(0), &m.payload, m.reliable)
                .unwrap_or_else(|e| panic!("{e}: {m:?}"));
            assert_eq!(
                result,
                Err(Error::PeerMisbehaved(PeerMisbehaved::FromOurselves)),
                "{m:?}"
            );
        }
    }
}

/// Builds a node of cluster `other` named `name`, at `incarnation` (raised through metadata
/// changes), that also knows a member named `node-0` of its own; returns its join push-pull to
/// `addr(0)`.
fn foreign_push_pull(name: &str, incarnation: u32) -> Vec<u8> {
    let now = Instant::now();
    let mut config = Config::default();
    config.cluster_name = "other".into();
    let mut x = Node::new(now, name, addr(7), config.clone(), 99).unwrap();
    for i in 0..incarnation {
        x.set_metadata(now, format!("m{i}").as_bytes()).unwrap();
    }
    // Let it learn a "node-0" of its own cluster, so its state makes claims about ours.
    let mut y = Node::new(now, "node-0", addr(8), config, 98).unwrap();
    y.join(now, &[addr(7)]);
    y.handle_timeout(now);
    let req = y.poll_transmit().expect("join push-pull");
    assert!(req.reliable);
    x.handle_stream(now, addr(8), "node-0", &req.payload)
        .unwrap();
    while x.poll_transmit().is_some() {}
    x.join(now, &[addr(0)]);
    x.handle_timeout(now);
    let t = x.poll_transmit().expect("join push-pull");
    assert_eq!(t.to, addr(0));
    assert!(t.reliable);
    t.payload
}

/// A push-pull (a join) from a node of another cluster is refused as `ClusterMismatch`: the
/// node does not answer, does not learn the stranger, and does not apply its claims about
/// members whose names it shares (here a newer incarnation of `node-1`, and `node-0` itself).
#[test]
fn a_push_pull_from_another_cluster_is_refused_and_changes_nothing() {
    let payload = foreign_push_pull("node-1", 5);
    for setup in [0, 3, 9] {
        let mut c = Cluster::build(11, Duration::from_secs(setup), false);
        let n1_before = c.node(0).member("node-1");
        let result = feed(&mut c, "node-1", addr(1), &payload, true).unwrap();
        assert_eq!(
            result,
            Err(Error::PeerMisbehaved(PeerMisbehaved::ClusterMismatch {
                theirs: "other".into(),
                ours: "swim".into(),
            }))
        );
        assert_eq!(c.node(0).member("node-1"), n1_before);
        // As a datagram it is refused before the cluster is even looked at.
        let result = feed(&mut c, "node-1", addr(1), &payload, false).unwrap();
        assert_eq!(
            result,
            Err(Error::PeerMisbehaved(PeerMisbehaved::StreamOnly(
                "push-pull"
            )))
        );
    }
    // A stranger from the other cluster is not learned either.
    let payload = foreign_push_pull("x7", 0);
    let mut c = Cluster::build(12, Duration::from_secs(1), false);
    let result = feed(&mut c, "x7", addr(7), &payload, true).unwrap();
    assert!(matches!(
        result,
        Err(Error::PeerMisbehaved(
            PeerMisbehaved::ClusterMismatch { .. }
        ))
    ));
    assert!(c.node(0).member("x7").is_none());
}

/// The same push-pull with our cluster name is accepted (so the refusal above is about the
/// cluster name, not a malformed message).
#[test]
fn a_push_pull_from_our_cluster_is_accepted() {
    let now = Instant::now();
    let mut x = Node::new(now, "x7", addr(7), Config::default(), 5).unwrap();
    x.join(now, &[addr(0)]);
    x.handle_timeout(now);
    let t = x.poll_transmit().expect("join push-pull");
    let mut c = Cluster::unsigned(13, Duration::from_secs(1));
    let result = feed(&mut c, "x7", addr(7), &t.payload, true).unwrap();
    assert_eq!(result, Ok(()));
    // (`feed` ran the cluster on for a while, and x7 never answers probes: it may be suspect
    // or dead by now, but it was learned, as this very process.)
    let learned = c.node(0).member("x7").expect("x7 learned");
    assert_eq!(learned.boot_id, x.boot_id());
    assert_ne!(learned.state, MemberState::Left);
}

/// An update about the node itself at the highest incarnation (`u32::MAX`) must neither
/// panic (debug builds check overflow) nor move the node's own incarnation backwards (in
/// release, `u32::MAX + 1` wraps to 0, and a refutation at 0 can never supersede the
/// accusation peers hold, so the node could be declared dead for good). Every update that
/// makes the node refute is tried: suspect, dead, left, an alive claim by another process
/// (boot id), as gossip and as a push-pull record.
#[test]
fn an_update_about_ourselves_at_the_highest_incarnation_neither_panics_nor_rolls_back_our_incarnation(
) {
    let gossip = |kind: &[u8]| {
        // Gossip, Item::Member(Update { name: "node-0", incarnation: u32::MAX, kind }).
        let mut b = vec![PROTOCOL_VERSION, 4, 0];
        str_field("node-0", &mut b);
        varint(u32::MAX, &mut b);
        b.extend_from_slice(kind);
        (b, false)
    };
    // Own { addr(5), boot id 12345 (another process's), no metadata, no signature }.
    let mut own = Vec::new();
    addr_field(addr(5), &mut own);
    varint(12345, &mut own);
    bytes_field(b"", &mut own);
    bytes_field(b"", &mut own);
    let push_pull = |state: u32| {
        // PushPull + State { "node-0", u32::MAX, state, own, accusation by node-1 for a
        // failure, no credential }.
        let mut b = vec![PROTOCOL_VERSION, 5];
        str_field("swim", &mut b);
        b.extend([0, 0, 2]);
        str_field("node-0", &mut b);
        varint(u32::MAX, &mut b);
        varint(state, &mut b);
        b.extend_from_slice(&own);
        if state == 1 || state == 2 {
            b.push(1);
            str_field("node-1", &mut b);
            bytes_field(b"", &mut b);
            b.extend_from_slice(&[0xff; 4]); // silence unknown
        } else {
            b.push(0);
        }
        bytes_field(b"", &mut b);
        (b, true)
    };
    let mut alive = vec![0];
    alive.extend_from_slice(&own);
    let mut left = vec![3];
    left.extend_from_slice(&own);
    // Accusation { "node-1", no signature, silence unknown }.
    let accused = |tag: u8| {
        let mut b = vec![tag];
        str_field("node-1", &mut b);
        bytes_field(b"", &mut b);
        b.extend_from_slice(&[0xff; 4]);
        b
    };
    let cases = [
        ("gossip suspect", gossip(&accused(1))),
        ("gossip dead", gossip(&accused(2))),
        ("gossip left", gossip(&left)),
        ("gossip alive (other boot id)", gossip(&alive)),
        ("push-pull alive (other boot id)", push_pull(0)),
        ("push-pull suspect", push_pull(1)),
        ("push-pull dead", push_pull(2)),
    ];
    let mut failures = Vec::new();
    for (label, (bytes, reliable)) in cases {
        let mut c = Cluster::unsigned(21, Duration::from_secs(2));
        let now = c.now();
        // Raise node-0's incarnation above zero first, as any metadata change does.
        c.node(0).set_metadata(now, b"x").unwrap();
        let before = c.node(0).incarnation();
        assert!(before >= 1);
        let node = c.node(0);
        let result = if reliable {
            node.handle_stream(now, addr(1), "node-1", &bytes)
        } else {
            node.handle_packet(now, addr(1), "node-1", &bytes)
        };
        assert_eq!(result, Ok(()), "{label}: the hand-made update must decode");
        let after = node.incarnation();
        if after < before {
            failures.push(format!("{label}: incarnation {before} -> {after}"));
        }
    }
    assert!(
        failures.is_empty(),
        "an update at u32::MAX rolled our incarnation back: {failures:#?}"
    );
}

/// Guard for the hand-built packets above: a push-pull and a gossip built with the same
/// encoder are understood as intended (so the generated packets reach the protocol, not
/// just the decoder's error paths).
#[test]
fn hand_built_packets_are_understood_as_intended() {
    let mut c = Cluster::unsigned(31, Duration::from_secs(1));
    // PushPull { cluster: "swim", response: false, join: false } + State(n9 alive).
    let mut pp = vec![PROTOCOL_VERSION, 5];
    str_field("swim", &mut pp);
    pp.extend([0, 0]);
    pp.push(2);
    str_field("n9", &mut pp);
    varint(3, &mut pp); // incarnation
    varint(0, &mut pp); // Alive
    addr_field(SocketAddr::from(([192, 168, 1, 9], 7000)), &mut pp);
    varint(0xdead_beef, &mut pp); // boot id
    bytes_field(b"meta", &mut pp);
    bytes_field(b"", &mut pp); // no signature
    pp.push(0); // no accusation
    bytes_field(b"", &mut pp); // no credential
    let now = c.now();
    assert_eq!(c.node(0).handle_stream(now, addr(1), "node-1", &pp), Ok(()));
    let n9 = c.node(0).member("n9").expect("n9 learned");
    assert_eq!(n9.addr, SocketAddr::from(([192, 168, 1, 9], 7000)));
    assert_eq!((n9.incarnation, n9.boot_id), (3, 0xdead_beef));
    assert_eq!(n9.metadata.as_deref(), Some(&b"meta"[..]));
    assert_eq!(n9.state, MemberState::Alive);
    // The request is answered with our state.
    let answer = c.node(0).poll_transmit().expect("push-pull answer");
    assert!(answer.reliable && answer.to == addr(1));
    // Gossip + Member(n9, incarnation 3, Suspect(accuser "node-2", unsigned)).
    let mut g = vec![PROTOCOL_VERSION, 4, 0];
    str_field("n9", &mut g);
    varint(3, &mut g);
    g.push(1);
    str_field("node-2", &mut g);
    bytes_field(b"", &mut g); // no signature
    g.extend_from_slice(&250u32.to_le_bytes()); // silent for 250 ms
    assert_eq!(c.node(0).handle_packet(now, addr(1), "node-1", &g), Ok(()));
    assert_eq!(c.node(0).member("n9").unwrap().state, MemberState::Suspect);
    // PingReq { seq: 5, target: "node-2", addr: addr(2), nack: true } is relayed as a ping.
    while c.node(0).poll_transmit().is_some() {}
    let mut pr = vec![PROTOCOL_VERSION, 2];
    varint(5, &mut pr);
    str_field("node-2", &mut pr);
    addr_field(addr(2), &mut pr);
    pr.push(1);
    assert_eq!(c.node(0).handle_packet(now, addr(1), "node-1", &pr), Ok(()));
    let ping = c.node(0).poll_transmit().expect("relayed ping");
    assert_eq!(ping.to, addr(2));
    assert_eq!(&ping.payload[..2], &[PROTOCOL_VERSION, 0], "a Ping");
}

/// The silence an accusation carries (4 bytes, ms) places the member's last word: it moves
/// the recorded detection latency later than this node's own last contact, but never past
/// this node's own suspicion, whatever a peer says; unknown changes nothing.
#[test]
fn an_accusations_silence_moves_the_recorded_latency_only_within_what_the_node_knows() {
    let accuse = |tag: u8, silent: [u8; 4]| {
        // Gossip + Member(n9, incarnation 3, Suspect or Dead by "node-2", unsigned, silent).
        let mut g = vec![PROTOCOL_VERSION, 4, 0];
        str_field("n9", &mut g);
        varint(3, &mut g);
        g.push(tag);
        str_field("node-2", &mut g);
        bytes_field(b"", &mut g);
        g.extend_from_slice(&silent);
        g
    };
    let ms = |v: u32| v.to_le_bytes();
    // The death says: heard just now (0 ms), or nothing (unknown).
    for (dead_silent, want) in [(ms(0), 10_000), ([0xff; 4], 10_500)] {
        let mut c = Cluster::unsigned(33, Duration::from_secs(1));
        let t0 = c.now();
        // n9 learned at t0 over a stream: last heard at t0 as far as this node knows.
        let mut pp = vec![PROTOCOL_VERSION, 5];
        str_field("swim", &mut pp);
        pp.extend([0, 0, 2]);
        str_field("n9", &mut pp);
        varint(3, &mut pp);
        varint(0, &mut pp);
        addr_field(SocketAddr::from(([192, 168, 1, 9], 7000)), &mut pp);
        varint(7, &mut pp);
        bytes_field(b"", &mut pp);
        bytes_field(b"", &mut pp);
        pp.push(0);
        bytes_field(b"", &mut pp);
        let node = c.node(0);
        assert_eq!(node.handle_stream(t0, addr(1), "node-1", &pp), Ok(()));
        // At t0 + 2 s: suspected, silent for 500 ms: last heard t0 + 1.5 s.
        let t = t0 + Duration::from_secs(2);
        assert_eq!(
            node.handle_packet(t, addr(1), "node-1", &accuse(1, ms(500))),
            Ok(())
        );
        assert_eq!(node.member("n9").unwrap().state, MemberState::Suspect);
        // At t0 + 12 s (past the shortest suspicion, so believed): dead. "Heard just now"
        // cannot go past this view's suspicion (t0 + 2 s).
        let t = t0 + Duration::from_secs(12);
        assert_eq!(
            node.handle_packet(t, addr(1), "node-1", &accuse(2, dead_silent)),
            Ok(())
        );
        let mut down = None;
        while let Some(e) = node.poll_event() {
            if let Event::MemberDown {
                since_last_alive,
                since_suspected,
                ..
            } = e
            {
                down = Some((since_last_alive, since_suspected));
            }
        }
        assert_eq!(
            down,
            Some((Duration::from_millis(want), Some(Duration::from_secs(10)))),
            "death silent {dead_silent:?}"
        );
    }
}

/// Found by the `push_pull_merge` fuzz target (tests/fuzz/regressions/push_pull_merge/): an
/// alive claim of `node-1` waits for its credential; the records answer that brings the
/// credential says `node-1` has since left. The answer is the newer news and must win; it
/// used to be merged before the waiting claim was replayed, and a left record about a member
/// not yet in the view is not learned, so the stale alive claim brought `node-1` back alive
/// (and merging the same answer twice gave another view than merging it once).
#[test]
fn a_records_answer_wins_over_the_older_claim_that_waited_for_its_credential() {
    let now = Instant::now();
    let trust = Arc::new(SimTrust::new("node-0"));
    let mut node = Node::with_trust(now, "node-0", addr(0), Config::default(), 7, trust).unwrap();
    let sign =
        |forgery: &Forgery<'_>| SimTrust::signature("node-1", &forge::claim_bytes("swim", forgery));
    // node-1's own alive claim at incarnation 0, signed, without its credential: it waits,
    // and node-0 asks node-1 for its record.
    let alive = Forgery::Alive {
        name: "node-1",
        incarnation: 0,
        addr: addr(1),
        boot_id: 11,
    };
    let gossip = forge::gossip(Framing::VersionByte, &alive, &sign(&alive));
    assert_eq!(node.handle_packet(now, addr(1), "node-1", &gossip), Ok(()));
    assert!(
        node.member("node-1").is_none(),
        "the claim waits for the credential"
    );
    let ask = std::iter::from_fn(|| node.poll_transmit()).find(|t| {
        MessageKind::of_packet(Framing::VersionByte, &t.payload) == Some(MessageKind::Records)
    });
    assert!(ask.is_some(), "node-0 asks for node-1's record");
    // The answer: node-1 left at incarnation 5, signed, with its credential.
    let left = Forgery::Left {
        name: "node-1",
        incarnation: 5,
        addr: addr(1),
        boot_id: 11,
    };
    let mut answer = vec![PROTOCOL_VERSION, 6, 1, 2];
    str_field("node-1", &mut answer);
    varint(5, &mut answer);
    varint(3, &mut answer); // Left
    addr_field(addr(1), &mut answer);
    varint(11, &mut answer);
    bytes_field(b"", &mut answer);
    bytes_field(&sign(&left), &mut answer);
    answer.push(0); // no accusation
    bytes_field(&SimTrust::credential_of("node-1"), &mut answer);
    for round in 0..2 {
        assert_eq!(node.handle_stream(now, addr(1), "node-1", &answer), Ok(()));
        let n1 = node.member("node-1");
        assert_eq!(
            n1.map(|m| (m.state, m.incarnation)),
            Some((MemberState::Left, 5)),
            "after the answer, merged {} time(s)",
            round + 1
        );
    }
}

/// Found by the `node_inputs` fuzz target (tests/fuzz/regressions/node_inputs/): the buddy
/// system's suspect update rides on the ping to the suspect, and was appended whatever its
/// size. An accusation carries its accuser's signature, up to 1024 bytes, so a suspicion a
/// peer spread made this node send pings longer than `max_datagram_size`.
#[test]
fn a_ping_never_exceeds_the_datagram_size_whatever_the_suspicion_it_carries() {
    let now = Instant::now();
    let mut config = Config::default();
    config.max_datagram_size = 512;
    config.max_metadata_size = 64;
    config.max_broadcast_size = 64;
    let mut node = Node::new(now, "node-0", addr(0), config, 3).unwrap();
    node.join(now, &[]);
    let alive = Forgery::Alive {
        name: "node-1",
        incarnation: 0,
        addr: addr(1),
        boot_id: 11,
    };
    let gossip = forge::gossip(Framing::VersionByte, &alive, &[]);
    assert_eq!(node.handle_packet(now, addr(1), "node-1", &gossip), Ok(()));
    // node-2 suspects node-1, signing with 700 bytes (an unsigned node keeps them as given).
    let suspect = Forgery::Suspect {
        name: "node-1",
        incarnation: 0,
        accuser: "node-2",
    };
    let gossip = forge::gossip(Framing::VersionByte, &suspect, &[0x5a; 700]);
    assert_eq!(node.handle_packet(now, addr(2), "node-2", &gossip), Ok(()));
    assert_eq!(node.member("node-1").unwrap().state, MemberState::Suspect);
    let mut pings_to_suspect = 0;
    let mut t = now;
    while t < now + Duration::from_secs(5) {
        t = node
            .poll_timeout()
            .expect("a running node has a timer")
            .max(t);
        node.handle_timeout(t);
        while let Some(out) = node.poll_transmit() {
            if out.reliable {
                continue;
            }
            assert!(
                out.payload.len() <= 512,
                "a datagram of {} bytes",
                out.payload.len()
            );
            if out.to == addr(1)
                && MessageKind::of_packet(Framing::VersionByte, &out.payload)
                    == Some(MessageKind::Ping)
            {
                pings_to_suspect += 1;
            }
        }
    }
    assert!(pings_to_suspect > 0, "the suspect was never probed");
}
