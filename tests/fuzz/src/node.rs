//! One `Node` (`node-0`) driven by a sequence of [`Step`]s — datagrams and stream messages
//! from peers, push-pull exchanges built from records, forged or signed gossip, answers to
//! what the node sent, commands, and time moved on to its deadlines — with the invariants
//! checked after every step (see [`Harness::check`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use swim_core::fuzzing::{self, MessageView, StateRecord};
use swim_core::sim::forge::{self, Forgery};
use swim_core::sim::SimTrust;
use swim_core::{Config, Error, Event, Framing, MemberInfo, MemberState, Node, Stats, Transmit};

use crate::format::{addr, Reader, Record, Writer, ADDRS, CLUSTER, NAMES};

/// How the node under test is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// Its claims are signed and its peers' checked with the simulator's [`SimTrust`].
    pub signed: bool,
    /// Packets carry no version byte (swim-net's framing), else they do (the simulator's).
    pub session_framing: bool,
    /// Short timeouts and small bounds (see [`config`]), else the defaults.
    pub short: bool,
    /// The node's seed.
    pub seed: u64,
}

impl Setup {
    /// Reads a setup.
    pub fn read(r: &mut Reader<'_>) -> Self {
        let flags = r.u8();
        Setup {
            signed: flags & 1 != 0,
            session_framing: flags & 2 != 0,
            short: flags & 4 != 0,
            seed: r.u64(),
        }
    }

    /// Writes what [`read`](Self::read) reads.
    pub fn write(&self, w: &mut Writer) {
        w.u8(u8::from(self.signed)
            | u8::from(self.session_framing) << 1
            | u8::from(self.short) << 2);
        w.u64(self.seed);
    }

    /// The node's configuration.
    pub fn config(&self) -> Config {
        config(self.short, self.framing())
    }

    /// The node's framing.
    pub fn framing(&self) -> Framing {
        if self.session_framing {
            Framing::Session
        } else {
            Framing::VersionByte
        }
    }

    /// The node under test, at `now`.
    pub fn node(&self, now: Instant) -> Node {
        let (name, config) = (NAMES[0], self.config());
        let node = if self.signed {
            Node::with_trust(
                now,
                name,
                addr(0),
                config,
                self.seed,
                Arc::new(SimTrust::new(name)),
            )
        } else {
            Node::new(now, name, addr(0), config, self.seed)
        };
        node.expect("the fuzz configuration validates")
    }
}

/// The default configuration, or with `short` one whose every timeout and bound is small, so
/// that a short input reaches reaping, reconnects, dead-member eviction and full datagrams.
pub fn config(short: bool, framing: Framing) -> Config {
    let mut c = Config::default();
    c.framing = framing;
    if short {
        c.tombstone_timeout = Duration::from_secs(2);
        c.reconnect_timeout = Duration::from_secs(5);
        c.reconnect_interval = Duration::from_secs(1);
        c.push_pull_interval = Duration::from_secs(2);
        c.gossip_to_dead_time = Duration::from_secs(2);
        c.join_retry_max = Duration::from_secs(2);
        c.max_dead_members = 2;
        c.max_datagram_size = 512;
        c.max_metadata_size = 64;
        c.max_broadcast_size = 64;
    }
    c
}

/// A peer: a name of the pool, at its own address or at another one of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Index into [`NAMES`].
    pub name: usize,
    /// Index into the pool's addresses.
    pub addr: usize,
}

impl Peer {
    /// Reads a peer.
    pub fn read(r: &mut Reader<'_>) -> Self {
        let b = r.u8();
        let name = usize::from(b & 7) % NAMES.len();
        let addr = if b & 0x80 != 0 {
            usize::from((b >> 3) & 7) % ADDRS
        } else {
            name
        };
        Peer { name, addr }
    }

    /// Writes what [`read`](Self::read) reads.
    pub fn write(&self, w: &mut Writer) {
        if self.name == self.addr {
            w.u8(self.name as u8);
        } else {
            w.u8(0x80 | (self.addr as u8) << 3 | self.name as u8);
        }
    }

    fn name(&self) -> &'static str {
        NAMES[self.name]
    }

    fn addr(&self) -> SocketAddr {
        addr(self.addr)
    }
}

/// A gossip update built by `swim_core::sim::forge`, signed as [`Signing`](crate::format::Signing) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip {
    /// 0 alive, 1 left, 2 suspect, 3 dead.
    pub kind: u8,
    /// The member.
    pub name: String,
    /// At incarnation.
    pub incarnation: u32,
    /// Alive/left: the address claimed.
    pub addr: SocketAddr,
    /// Alive/left: the process claimed.
    pub boot_id: u32,
    /// Suspect/dead: the accuser.
    pub accuser: String,
    /// The signature.
    pub signing: crate::format::Signing,
}

impl Gossip {
    fn read(r: &mut Reader<'_>) -> Self {
        Gossip {
            kind: r.u8() % 4,
            name: r.name(),
            incarnation: r.incarnation(),
            addr: r.addr(),
            boot_id: r.boot_id(),
            accuser: r.name(),
            signing: r.signing(),
        }
    }

    fn write(&self, w: &mut Writer) {
        w.u8(self.kind);
        w.name(&self.name);
        w.incarnation(self.incarnation);
        w.addr(self.addr);
        w.boot_id(self.boot_id);
        w.name(&self.accuser);
        w.signing(&self.signing);
    }

    /// The datagram.
    pub fn packet(&self, framing: Framing) -> Vec<u8> {
        let (name, incarnation, addr, boot_id) =
            (&*self.name, self.incarnation, self.addr, self.boot_id);
        let accuser = &*self.accuser;
        let forgery = match self.kind {
            0 => Forgery::Alive {
                name,
                incarnation,
                addr,
                boot_id,
            },
            1 => Forgery::Left {
                name,
                incarnation,
                addr,
                boot_id,
            },
            2 => Forgery::Suspect {
                name,
                incarnation,
                accuser,
            },
            _ => Forgery::Dead {
                name,
                incarnation,
                accuser,
            },
        };
        let rightful = if self.kind < 2 { name } else { accuser };
        let sig = self
            .signing
            .sign(rightful, &forge::claim_bytes(CLUSTER, &forgery));
        forge::gossip(framing, &forgery, &sig)
    }
}

/// One step of a [`NodeInput`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A datagram from `from`.
    Datagram {
        /// Sender.
        from: Peer,
        /// The bytes.
        payload: Vec<u8>,
    },
    /// A complete stream message from `from`.
    Stream {
        /// Sender.
        from: Peer,
        /// The bytes.
        payload: Vec<u8>,
    },
    /// Time moves on by `ms`, the node's timers firing at their deadlines on the way.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Time moves to the node's next deadline, and its timers fire.
    ToDeadline,
    /// A peer answers one of the last transmits (`which`, counted back from the newest),
    /// as a live member would: an ack for a ping or ping-req (a nack with `nack`), its own
    /// record for a push-pull, the records asked for.
    Answer {
        /// Which transmit.
        which: u8,
        /// Nack a ping-req instead.
        nack: bool,
    },
    /// A gossip datagram from `from` built by `swim_core::sim::forge`.
    Gossip {
        /// Sender.
        from: Peer,
        /// The update.
        gossip: Gossip,
    },
    /// A push-pull (or, with `records`, a records answer) from `from` built from records.
    State {
        /// Sender.
        from: Peer,
        /// A records answer rather than a push-pull.
        records: bool,
        /// A push-pull answer (not a request).
        response: bool,
        /// A join exchange.
        join: bool,
        /// The records.
        entries: Vec<Record>,
    },
    /// A command: 0 broadcast, 1 set metadata, 2 leave, 3 join the seeds in the mask's
    /// bits, 4 renew the credential, 5 check credentials again.
    Command {
        /// Which.
        op: u8,
        /// Payload, metadata, or seed mask (first byte).
        data: Vec<u8>,
    },
}

/// At most this many steps are read from one input (libFuzzer's `-max_len` bounds it too).
pub const MAX_STEPS: usize = 256;

impl Step {
    fn read(r: &mut Reader<'_>) -> Self {
        match r.u8() % 8 {
            0 => Step::Datagram {
                from: Peer::read(r),
                payload: r.blob(),
            },
            1 => Step::Stream {
                from: Peer::read(r),
                payload: r.blob(),
            },
            2 => Step::Advance { ms: r.u16() },
            3 => Step::ToDeadline,
            4 => {
                let b = r.u8();
                Step::Answer {
                    which: b & 0x7f,
                    nack: b & 0x80 != 0,
                }
            }
            5 => Step::Gossip {
                from: Peer::read(r),
                gossip: Gossip::read(r),
            },
            6 => {
                let from = Peer::read(r);
                let flags = r.u8();
                let n = usize::from(r.u8() % 16);
                let entries = (0..n).map(|_| r.record()).collect();
                Step::State {
                    from,
                    records: flags & 1 != 0,
                    response: flags & 2 != 0,
                    join: flags & 4 != 0,
                    entries,
                }
            }
            _ => Step::Command {
                op: r.u8() % 6,
                data: r.short_blob(),
            },
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Step::Datagram { from, payload } => {
                w.u8(0);
                from.write(w);
                w.blob(payload);
            }
            Step::Stream { from, payload } => {
                w.u8(1);
                from.write(w);
                w.blob(payload);
            }
            Step::Advance { ms } => {
                w.u8(2);
                w.u16(*ms);
            }
            Step::ToDeadline => w.u8(3),
            Step::Answer { which, nack } => {
                w.u8(4);
                w.u8(which & 0x7f | if *nack { 0x80 } else { 0 });
            }
            Step::Gossip { from, gossip } => {
                w.u8(5);
                from.write(w);
                gossip.write(w);
            }
            Step::State {
                from,
                records,
                response,
                join,
                entries,
            } => {
                w.u8(6);
                from.write(w);
                w.u8(u8::from(*records) | u8::from(*response) << 1 | u8::from(*join) << 2);
                let n = entries.len().min(15);
                w.u8(n as u8);
                for e in &entries[..n] {
                    w.record(e);
                }
            }
            Step::Command { op, data } => {
                w.u8(7);
                w.u8(*op);
                w.short_blob(data);
            }
        }
    }
}

/// The input of the `node_inputs` target: how the node is built, then what happens to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInput {
    /// The node.
    pub setup: Setup,
    /// What happens, in order.
    pub steps: Vec<Step>,
}

impl NodeInput {
    /// Reads an input; every byte string is one.
    pub fn parse(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let setup = Setup::read(&mut r);
        let mut steps = Vec::new();
        while !r.is_empty() && steps.len() < MAX_STEPS {
            steps.push(Step::read(&mut r));
        }
        NodeInput { setup, steps }
    }

    /// The bytes [`parse`](Self::parse) reads back as `self`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.setup.write(&mut w);
        for s in &self.steps {
            s.write(&mut w);
        }
        w.out
    }
}

impl<'a> Arbitrary<'a> for NodeInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self::parse(u.bytes(u.len())?))
    }

    fn arbitrary_take_rest(u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Self::parse(u.take_rest()))
    }
}

/// Observable state that a refused input must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    members: Vec<MemberInfo>,
    stats: Stats,
    timeout: Option<Instant>,
    health: u32,
    incarnation: u32,
    pending: usize,
    joined: bool,
    fingerprint: u64,
}

impl Snapshot {
    fn of(node: &Node) -> Self {
        Snapshot {
            members: node.members(),
            stats: node.stats(),
            timeout: node.poll_timeout(),
            health: node.local_health(),
            incarnation: node.incarnation(),
            pending: node.pending_broadcasts(),
            joined: node.is_joined(),
            fingerprint: node.view_fingerprint(),
        }
    }
}

/// How many of the node's transmits are kept for [`Step::Answer`].
const KEPT_TRANSMITS: usize = 32;

/// Timer firings one [`Step::Advance`] may take before it is a runaway loop.
const MAX_FIRINGS: usize = 100_000;

/// The node under test, its clock, what it sent lately, and what the checks remember.
#[derive(Debug)]
pub struct Harness {
    /// The node.
    pub node: Node,
    /// Its clock.
    pub now: Instant,
    setup: Setup,
    config: Config,
    sent: VecDeque<Transmit>,
    /// Inputs taken and refused so far.
    pub accepted: usize,
    /// Inputs refused so far.
    pub refused: usize,
}

impl Harness {
    /// A node built as `setup` says, alone (not joined).
    pub fn new(setup: Setup) -> Self {
        let now = Instant::now();
        let mut h = Harness {
            node: setup.node(now),
            now,
            config: setup.config(),
            setup,
            sent: VecDeque::new(),
            accepted: 0,
            refused: 0,
        };
        h.drain();
        h.check();
        h
    }

    /// Runs every step, checking after each.
    pub fn run(setup: Setup, steps: &[Step]) -> Self {
        let mut h = Harness::new(setup);
        for s in steps {
            h.step(s);
        }
        h
    }

    /// Applies one step and checks the invariants.
    pub fn step(&mut self, step: &Step) {
        let framing = self.setup.framing();
        match step {
            Step::Datagram { from, payload } => self.input(*from, payload, false),
            Step::Stream { from, payload } => self.input(*from, payload, true),
            Step::Advance { ms } => {
                let until = self.now + Duration::from_millis(u64::from(*ms));
                let mut firings = 0;
                while let Some(d) = self.node.poll_timeout().filter(|d| *d <= until) {
                    self.fire(d);
                    firings += 1;
                    assert!(firings < MAX_FIRINGS, "BUG! timers fire without end");
                }
                self.now = until;
            }
            Step::ToDeadline => {
                if let Some(d) = self.node.poll_timeout() {
                    self.fire(d);
                }
            }
            Step::Answer { which, nack } => {
                if let Some((from, payload, reliable)) = self.answer(*which, *nack) {
                    self.input(from, &payload, reliable);
                }
            }
            Step::Gossip { from, gossip } => self.input(*from, &gossip.packet(framing), false),
            Step::State {
                from,
                records,
                response,
                join,
                entries,
            } => {
                let built: Vec<StateRecord> = entries.iter().map(Record::build).collect();
                let message = if *records {
                    MessageView::Records { response: true }
                } else {
                    MessageView::PushPull {
                        cluster: CLUSTER,
                        response: *response,
                        join: *join,
                    }
                };
                let payload = fuzzing::encode(framing, &message, &built);
                self.input(*from, &payload, true);
            }
            Step::Command { op, data } => {
                let now = self.now;
                // An `Err` is the API refusing misuse (too large, already left): checked below
                // like any other step.
                match op {
                    0 => drop(self.node.broadcast(data)),
                    1 => drop(self.node.set_metadata(now, data)),
                    2 => self.node.leave(now),
                    3 => {
                        let mask = data.first().copied().unwrap_or(0);
                        let seeds: Vec<_> = (0..ADDRS)
                            .filter(|i| mask & (1 << i) != 0)
                            .map(addr)
                            .collect();
                        self.node.join(now, &seeds);
                    }
                    4 => drop(self.node.renew_credential(now)),
                    _ => drop(self.node.recheck_credentials(now)),
                }
                self.drain();
            }
        }
        self.check();
    }

    /// Fires the timers due at `deadline` (the clock moves there if it is later).
    fn fire(&mut self, deadline: Instant) {
        self.now = self.now.max(deadline);
        self.node.handle_timeout(self.now);
        // As the simulator asserts: a timer still due after it fired would make a runtime
        // spin.
        if let Some(next) = self.node.poll_timeout() {
            assert!(
                next > self.now,
                "BUG! a timer is still due after handle_timeout"
            );
        }
        let dead = self.node.member_count(MemberState::Dead);
        assert!(
            dead <= self.config.max_dead_members,
            "{dead} dead members held after the timers fired, at most {} allowed",
            self.config.max_dead_members
        );
        self.drain();
    }

    /// Feeds a datagram or stream message from `from` and checks the refusal contract.
    fn input(&mut self, from: Peer, payload: &[u8], reliable: bool) {
        let before = Snapshot::of(&self.node);
        let (now, name, from_addr) = (self.now, from.name(), from.addr());
        let result = if reliable {
            self.node.handle_stream(now, from_addr, name, payload)
        } else {
            self.node.handle_packet(now, from_addr, name, payload)
        };
        match result {
            Ok(()) => {
                self.accepted += 1;
                assert!(
                    self.node.incarnation() >= before.incarnation,
                    "own incarnation went back from {} to {}",
                    before.incarnation,
                    self.node.incarnation()
                );
            }
            Err(e) => {
                self.refused += 1;
                // On error nothing in the node changed but the matching counter (the
                // contract of `handle_packet` and `handle_stream`).
                let mut expected = before;
                match &e {
                    Error::Decode(_) => expected.stats.decode_errors += 1,
                    Error::PeerMisbehaved(_) => expected.stats.peer_misbehaved += 1,
                    other => panic!("network input refused as {other:?}"),
                }
                assert_eq!(
                    Snapshot::of(&self.node),
                    expected,
                    "a refused input ({e}) changed the node"
                );
                assert!(
                    self.node.poll_transmit().is_none(),
                    "a refused input ({e}) sent something"
                );
                assert!(
                    self.node.poll_event().is_none(),
                    "a refused input ({e}) raised an event"
                );
            }
        }
        self.drain();
    }

    /// Takes every transmit and event out of the node and checks them.
    fn drain(&mut self) {
        let framing = self.setup.framing();
        while let Some(t) = self.node.poll_transmit() {
            if !t.reliable {
                assert!(
                    t.payload.len() <= self.node.max_datagram_size(),
                    "a datagram of {} bytes, at most {} allowed",
                    t.payload.len(),
                    self.node.max_datagram_size()
                );
            }
            // The node never sends what it would refuse to decode itself.
            if let Err(e) = fuzzing::decode(&t.payload, framing, &self.config) {
                panic!("the node sent a packet it cannot decode ({e}): {t:?}");
            }
            if self.sent.len() == KEPT_TRANSMITS {
                self.sent.pop_front();
            }
            self.sent.push_back(t);
        }
        let me = self.node.name().to_string();
        while let Some(e) = self.node.poll_event() {
            let about_me = match &e {
                Event::MemberSuspect { member, .. } | Event::MemberDown { member, .. } => {
                    *member.name == *me
                }
                Event::MemberReaped { name, .. } => **name == me,
                _ => false,
            };
            assert!(
                !about_me,
                "the node reported itself failed or forgotten: {e:?}"
            );
        }
        while self.node.poll_probe_rtt().is_some() {}
        while self.node.poll_push_pull_duration().is_some() {}
    }

    /// The invariants that hold after every step.
    pub fn check(&self) {
        let node = &self.node;
        let members = node.members();
        // It holds itself, alive (left once it left), at its own incarnation.
        let me = node
            .member(node.name())
            .expect("the node holds its own record");
        let expected = if node.has_left() {
            MemberState::Left
        } else {
            MemberState::Alive
        };
        assert_eq!(me.state, expected, "the node holds itself as {me:?}");
        assert_eq!(
            me.incarnation,
            node.incarnation(),
            "its own record's incarnation"
        );
        assert_eq!(me.boot_id, node.boot_id(), "its own record's boot id");
        // Counts agree with the list, and names are unique.
        let states = [
            MemberState::Alive,
            MemberState::Suspect,
            MemberState::Dead,
            MemberState::Left,
        ];
        let counted: usize = states.iter().map(|&s| node.member_count(s)).sum();
        assert_eq!(
            counted,
            members.len(),
            "member counts by state disagree with the list"
        );
        for s in states {
            let listed = members.iter().filter(|m| m.state == s).count();
            assert_eq!(node.member_count(s), listed, "{} count", s.name());
        }
        let mut names: Vec<&str> = members.iter().map(|m| &*m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), members.len(), "two records for one name");
        // A name is held exactly while its member is in the view (a node's own table).
        assert_eq!(node.names_held(), members.len(), "names held");
        // Dead members past the bound are forgotten at once: the node asks to be woken now.
        if node.member_count(MemberState::Dead) > self.config.max_dead_members {
            assert!(
                node.poll_timeout().is_some_and(|t| t <= self.now),
                "more dead members than allowed and no timer due to forget them"
            );
        }
        // Lifeguard's score stays in range.
        assert!(node.local_health() < self.config.awareness_max_multiplier.max(1));
        // A node that has not left always has a timer (its next probe at least).
        if !node.has_left() {
            assert!(
                node.poll_timeout().is_some(),
                "a running node without a timer"
            );
        }
        // Metadata within bounds.
        for m in &members {
            if let Some(meta) = &m.metadata {
                assert!(
                    meta.len() <= self.config.max_metadata_size,
                    "metadata of {}",
                    m.name
                );
            }
        }
    }

    /// What a live peer would answer to the `which`-th last transmit.
    fn answer(&self, which: u8, nack: bool) -> Option<(Peer, Vec<u8>, bool)> {
        let framing = self.setup.framing();
        let i = self
            .sent
            .len()
            .checked_sub(1 + usize::from(which) % self.sent.len().max(1))?;
        let t = self.sent.get(i)?;
        let to = (0..ADDRS).find(|&a| addr(a) == t.to)?;
        // The peer at that address: the name the node expects there, else the pool's.
        let name = match &t.name {
            Some(n) => NAMES.iter().position(|p| **p == **n)?,
            None => to.min(NAMES.len() - 1),
        };
        let peer = Peer { name, addr: to };
        let decoded = fuzzing::decode(&t.payload, framing, &self.config).ok()?;
        let own = |join: bool| Record {
            name: NAMES[name].to_string(),
            incarnation: 0,
            state: MemberState::Alive,
            addr: addr(to),
            boot_id: 1000 + name as u32,
            meta: Vec::new(),
            signing: crate::format::Signing::Rightful,
            accusation: None,
            credential: if join {
                crate::format::Credential::Own
            } else {
                crate::format::Credential::None
            },
        };
        let (payload, reliable) = match decoded.message() {
            MessageView::Ping { seq } => (
                fuzzing::encode(framing, &MessageView::Ack { seq }, &[]),
                t.reliable,
            ),
            MessageView::PingReq { seq, .. } => {
                let m = if nack {
                    MessageView::Nack { seq }
                } else {
                    MessageView::Ack { seq }
                };
                (fuzzing::encode(framing, &m, &[]), false)
            }
            MessageView::PushPull {
                response: false,
                join,
                ..
            } => {
                let m = MessageView::PushPull {
                    cluster: CLUSTER,
                    response: true,
                    join,
                };
                (fuzzing::encode(framing, &m, &[own(join).build()]), true)
            }
            MessageView::Records { response: false } => {
                let records: Vec<StateRecord> = decoded
                    .wanted()
                    .iter()
                    .filter(|w| NAMES.contains(w))
                    .map(|w| {
                        let i = NAMES.iter().position(|p| p == w).unwrap_or(0);
                        let mut r = own(true);
                        r.name = w.to_string();
                        r.addr = addr(i);
                        r.boot_id = 1000 + i as u32;
                        r.build()
                    })
                    .collect();
                let m = MessageView::Records { response: true };
                (fuzzing::encode(framing, &m, &records), true)
            }
            _ => return None,
        };
        Some((peer, payload, reliable))
    }
}
