//! The `Node` type: its state, the public API, and the routing of inputs to the protocol
//! concern that handles them (probe, update, dissemination, push-pull).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::awareness::Awareness;
use crate::config::{Config, MAX_NAME_LEN};
use crate::dissemination::{BroadcastQueue, Key};
use crate::error::{ApiMisuse, Error, PeerMisbehaved};
use crate::event::{Event, MemberInfo};
use crate::membership::{Member, MemberId, MemberState, MemberTable, NameTable};
use crate::probe::{Forward, ProbeInFlight, ProbeOrder};
use crate::stats::Stats;
use crate::suspicion::Suspicion;
use crate::wire::{self, Item, Limits, Message, Update, UpdateKind};

/// Ping sequence numbers are below this: each fits one varint byte on the wire.
pub(crate) const SEQ_SPACE: u32 = 128;

/// A datagram or stream message to send. Plain data: the runtime delivers it.
#[must_use]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transmit {
    /// Where to send it.
    pub to: SocketAddr,
    /// The node name expected at `to`, to check against its certificate; `None` for a seed
    /// whose name is not known yet.
    pub name: Option<Arc<str>>,
    /// The encoded message.
    pub payload: Vec<u8>,
    /// `true`: send on a reliable stream (push-pull, fallback ping); `false`: as a datagram,
    /// never retransmitted. Datagrams never exceed `Config::max_datagram_size`.
    pub reliable: bool,
}

/// A join in progress: seeds to push-pull with until one answers.
#[derive(Debug, Clone)]
pub(crate) struct JoinState {
    pub seeds: Vec<SocketAddr>,
    pub next_attempt: Instant,
    pub backoff: Duration,
}

/// User broadcasts already delivered, so each is delivered once: bounded, oldest forgotten.
pub(crate) const USER_SEEN_CAPACITY: usize = 8192;

/// Uncollected probe RTT samples kept at most.
pub const MAX_RTT_SAMPLES: usize = 256;

/// One SWIM + Lifeguard member, as a deterministic state machine with no I/O.
///
/// Like quinn-proto's `Connection`, its methods fall into four groups:
/// - getters (`&self`): [`members`](Self::members), [`member`](Self::member),
///   [`stats`](Self::stats), [`local_health`](Self::local_health), …
/// - inputs: [`handle_packet`](Self::handle_packet) (a datagram from an authenticated peer),
///   [`handle_stream`](Self::handle_stream) (a complete reliable message),
///   [`handle_timeout`](Self::handle_timeout);
/// - commands: [`join`](Self::join), [`leave`](Self::leave),
///   [`set_metadata`](Self::set_metadata), [`broadcast`](Self::broadcast);
/// - outputs: [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
///   [`poll_timeout`](Self::poll_timeout).
///
/// After every input or command, drain `poll_transmit` and `poll_event` until they return
/// `None`, then (re)arm one timer at `poll_timeout`. Instants passed in must never go
/// backwards. Calling `handle_timeout` early or twice is a harmless no-op. Everything the node
/// does is a function of its inputs and its seed: the same inputs replay the same run.
///
/// The peer name given with each input must come from an authenticated source (swim-net takes
/// it from the peer's verified certificate), never from the payload.
#[derive(Debug)]
pub struct Node {
    pub(crate) config: Config,
    pub(crate) limits: Limits,
    pub(crate) names: Arc<NameTable>,
    pub(crate) me: MemberId,
    pub(crate) my_name: Arc<str>,
    pub(crate) boot_id: u32,
    pub(crate) members: MemberTable,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) awareness: Awareness,
    pub(crate) probe_order: ProbeOrder,
    pub(crate) probe: Option<ProbeInFlight>,
    pub(crate) next_probe: Instant,
    /// Next sequence number for pings we send (probes and relayed pings share it), below
    /// [`SEQ_SPACE`].
    pub(crate) next_seq: u32,
    pub(crate) forwards: BTreeMap<u32, (Forward, MemberId)>,
    pub(crate) suspicions: BTreeMap<MemberId, Suspicion>,
    pub(crate) suspicion_deadlines: BTreeSet<(Instant, MemberId)>,
    /// (reap at, member): dead and left members to forget.
    pub(crate) tombstones: BTreeSet<(Instant, MemberId)>,
    pub(crate) member_queue: BroadcastQueue,
    pub(crate) user_queue: BroadcastQueue,
    pub(crate) next_gossip: Instant,
    pub(crate) next_push_pull: Instant,
    pub(crate) join: Option<JoinState>,
    pub(crate) joined: bool,
    pub(crate) left: bool,
    pub(crate) user_seq: u32,
    /// The next probe's ping carries a table fingerprint (periodic anti-entropy).
    pub(crate) digest_due: bool,
    pub(crate) user_seen: BTreeSet<(MemberId, u32)>,
    pub(crate) user_seen_order: VecDeque<(MemberId, u32)>,
    /// The last foreign process (boot id) that claimed our name, and whether a conflict was
    /// reported for it.
    pub(crate) foreign: Option<(u32, bool)>,
    pub(crate) transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    /// Round-trip times of direct probe acks not yet collected (bounded).
    pub(crate) rtt_samples: VecDeque<Duration>,
    pub(crate) stats: Stats,
}

impl Node {
    /// Creates a node named `name`, advertising `addr`, with its own fresh name table. `seed`
    /// drives every random choice (and the boot id); give a different one per process start.
    /// The node is alone until [`join`](Self::join).
    pub fn new(
        name: &str,
        addr: SocketAddr,
        config: Config,
        seed: u64,
        now: Instant,
    ) -> Result<Self, Error> {
        Self::with_names(
            name,
            addr,
            config,
            seed,
            now,
            Arc::new(NameTable::default()),
        )
    }

    pub(crate) fn with_names(
        name: &str,
        addr: SocketAddr,
        config: Config,
        seed: u64,
        now: Instant,
        names: Arc<NameTable>,
    ) -> Result<Self, Error> {
        config.validate()?;
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(ApiMisuse::InvalidName(name.into()).into());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let boot_id = rng.next_u32();
        let (me, my_name) = names.intern(name);
        let mut members = MemberTable::new();
        members.set(
            me,
            Member {
                name: my_name.clone(),
                addr,
                meta: None,
                incarnation: 0,
                boot_id,
                state: MemberState::Alive,
                since: now,
                last_alive: now,
            },
        );
        let limits = Limits {
            max_meta: config.max_metadata_size,
            max_broadcast: config.max_broadcast_size,
        };
        // Spread the first probe and push-pull over one period so nodes started together do
        // not act in lock step.
        let first_probe = config.probe_interval.mul_f64(unit(&mut rng));
        let first_push_pull = config.push_pull_interval.mul_f64(unit(&mut rng));
        Ok(Self {
            awareness: Awareness::new(config.awareness_max_multiplier),
            limits,
            names,
            me,
            my_name,
            boot_id,
            members,
            rng,
            probe_order: ProbeOrder::new(),
            probe: None,
            next_probe: now + first_probe,
            next_seq: 0,
            forwards: BTreeMap::new(),
            suspicions: BTreeMap::new(),
            suspicion_deadlines: BTreeSet::new(),
            tombstones: BTreeSet::new(),
            member_queue: BroadcastQueue::default(),
            user_queue: BroadcastQueue::default(),
            next_gossip: now,
            next_push_pull: now + first_push_pull,
            join: None,
            joined: false,
            left: false,
            user_seq: 0,
            digest_due: false,
            user_seen: BTreeSet::new(),
            user_seen_order: VecDeque::new(),
            foreign: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rtt_samples: VecDeque::new(),
            stats: Stats::default(),
            config,
        })
    }

    /// Starts from a membership every node agrees on (the simulator's converged start): the
    /// base is shared, not copied.
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn install_base(&mut self, base: Arc<Vec<Member>>, now: Instant) {
        self.members = MemberTable::with_base(base);
        self.joined = true;
        // Spread push-pulls over the interval this cluster size implies, as a long-running
        // cluster would have them.
        if let Some(interval) = self
            .config
            .timings(self.cluster_size())
            .push_pull_interval()
        {
            self.next_push_pull = now + interval.mul_f64(unit(&mut self.rng));
        }
    }

    // ----- getters -------------------------------------------------------------------------

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.my_name
    }

    /// This process's boot id.
    pub fn boot_id(&self) -> u32 {
        self.boot_id
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> u32 {
        self.me().incarnation
    }

    /// Whether a seed answered the join (or there were no seeds).
    pub fn is_joined(&self) -> bool {
        self.joined
    }

    /// Whether [`leave`](Self::leave) was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// After [`leave`](Self::leave): whether the leave update has been sent its full number of
    /// times, so the runtime may stop.
    pub fn leave_spread(&self) -> bool {
        // Once left, this node no longer counts itself: nobody alive means nobody to tell.
        self.left && (!self.member_queue.contains(Key::Member(self.me)) || self.cluster_size() == 0)
    }

    /// Lifeguard's local health score: 0 is healthy; probe timings are scaled by `1 + score`.
    pub fn local_health(&self) -> u32 {
        self.awareness.score()
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Updates and user broadcasts waiting to be piggybacked.
    pub fn pending_broadcasts(&self) -> usize {
        self.member_queue.len() + self.user_queue.len()
    }

    /// Every member this node knows, itself and tombstones included, in id order.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.members.iter().map(|(_, m)| info(m)).collect()
    }

    /// One member by name.
    pub fn member(&self, name: &str) -> Option<MemberInfo> {
        let id = self.names.lookup(name)?;
        self.members.get(id).map(info)
    }

    /// Number of members in `state`, this node included.
    pub fn member_count(&self, state: MemberState) -> usize {
        self.members.count(state)
    }

    /// Member records this node holds privately (not shared with a simulation's base).
    #[cfg_attr(not(feature = "sim"), allow(dead_code))]
    pub(crate) fn private_records(&self) -> usize {
        self.members.private_records()
    }

    // ----- commands ------------------------------------------------------------------------

    /// Starts joining through `seeds` (push-pull with each until one answers, retrying with
    /// exponential backoff). With no seed other than this node's own address, the node is
    /// joined at once (it starts a new cluster).
    pub fn join(&mut self, seeds: &[SocketAddr], now: Instant) {
        let own = self.me().addr;
        let seeds: Vec<_> = seeds.iter().copied().filter(|s| *s != own).collect();
        if seeds.is_empty() {
            self.mark_joined();
            return;
        }
        self.join = Some(JoinState {
            seeds,
            next_attempt: now,
            backoff: self.config.join_retry_initial,
        });
    }

    /// Leaves gracefully: this node is announced as `left` (not failed), stops probing, and
    /// keeps answering and gossiping until [`leave_spread`](Self::leave_spread) says the news
    /// has been sent enough times.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.left = true;
        self.join = None;
        self.probe = None;
        let mut me = self.me().clone();
        me.state = MemberState::Left;
        me.since = now;
        self.members.set(self.me, me);
        self.enqueue_member(self.me);
        self.next_gossip = now;
    }

    /// Replaces this node's metadata and spreads it (with a new incarnation).
    pub fn set_metadata(&mut self, metadata: &[u8], _now: Instant) -> Result<(), Error> {
        if self.left {
            return Err(ApiMisuse::Left.into());
        }
        if metadata.len() > self.config.max_metadata_size {
            return Err(ApiMisuse::MetadataTooLarge {
                len: metadata.len(),
                max: self.config.max_metadata_size,
            }
            .into());
        }
        let mut me = self.me().clone();
        me.meta = (!metadata.is_empty()).then(|| Arc::from(metadata));
        me.incarnation = me
            .incarnation
            .checked_add(1)
            .ok_or(ApiMisuse::IncarnationExhausted)?;
        self.members.set(self.me, me);
        self.enqueue_member(self.me);
        Ok(())
    }

    /// Sends the runtime's real datagram size limit (e.g. QUIC's `max_datagram_size()`).
    /// Values below the protocol's minimum are raised to it.
    pub fn set_max_datagram_size(&mut self, size: usize) {
        self.config.max_datagram_size = size.max(crate::config::MIN_DATAGRAM_SIZE);
    }

    // ----- inputs --------------------------------------------------------------------------

    /// A datagram from the peer `from` (its authenticated name) at `from_addr`.
    /// On error nothing in the node changed; the error is also counted in [`Stats`].
    pub fn handle_packet(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from: &str,
        bytes: &[u8],
    ) -> Result<(), Error> {
        self.handle_input(now, from_addr, from, bytes, false)
    }

    /// A complete message from a reliable stream (push-pull state, fallback pings).
    /// On error nothing in the node changed; the error is also counted in [`Stats`].
    pub fn handle_stream(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from: &str,
        bytes: &[u8],
    ) -> Result<(), Error> {
        self.handle_input(now, from_addr, from, bytes, true)
    }

    fn handle_input(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from: &str,
        bytes: &[u8],
        reliable: bool,
    ) -> Result<(), Error> {
        let packet = match wire::decode(bytes, self.limits) {
            Ok(p) => p,
            Err(e) => {
                self.stats.decode_errors += 1;
                return Err(e.into());
            }
        };
        if let Err(e) = self.check_peer(&packet.message, from, reliable) {
            self.stats.peer_misbehaved += 1;
            return Err(e.into());
        }
        self.stats
            .count_received(packet.message.kind(), bytes.len());
        let (from_id, from_name) = self.names.intern(from);
        match packet.message {
            Message::PushPull { response, .. } => {
                self.handle_push_pull(now, from_addr, from_id, &from_name, response, &packet)
            }
            message => {
                // Updates first: a refutation triggered by the buddy system then rides on the
                // ack this message may ask for.
                let mut digest = None;
                for item in packet.items() {
                    if let Item::StateDigest(d) = item {
                        digest = Some(d);
                    }
                    self.apply_item(item, now);
                }
                self.handle_message(now, from_addr, from_id, &from_name, message, reliable);
                if let Some(d) = digest {
                    self.handle_state_digest(from_addr, &from_name, d);
                }
            }
        }
        Ok(())
    }

    /// Protocol checks that need no state change, so a refused input leaves none behind.
    fn check_peer(
        &self,
        message: &Message<'_>,
        from: &str,
        reliable: bool,
    ) -> Result<(), PeerMisbehaved> {
        if from == &*self.my_name {
            return Err(PeerMisbehaved::FromOurselves);
        }
        match *message {
            Message::PushPull { cluster, .. } => {
                if !reliable {
                    return Err(PeerMisbehaved::StreamOnly("push-pull"));
                }
                if cluster != self.config.cluster_name {
                    return Err(PeerMisbehaved::ClusterMismatch {
                        theirs: cluster.into(),
                        ours: self.config.cluster_name.clone(),
                    });
                }
            }
            Message::Ack { seq } | Message::Nack { seq } if seq >= SEQ_SPACE => {
                return Err(PeerMisbehaved::UnknownProbe {
                    from: from.into(),
                    seq,
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn handle_message(
        &mut self,
        now: Instant,
        from_addr: SocketAddr,
        from: MemberId,
        from_name: &Arc<str>,
        message: Message<'_>,
        reliable: bool,
    ) {
        match message {
            Message::Ping { seq } => {
                let ack = self.packet(&Message::Ack { seq }, None);
                self.send(
                    from_addr,
                    Some(from_name.clone()),
                    ack,
                    Message::Ack { seq }.kind(),
                    reliable,
                );
            }
            Message::Ack { seq } => self.handle_ack(now, from, seq),
            Message::Nack { seq } => self.handle_nack(from, seq),
            Message::PingReq {
                seq,
                target,
                addr,
                nack,
            } => self.handle_ping_req(now, from_addr, from_name, seq, target, addr, nack),
            Message::Gossip | Message::PushPull { .. } => {}
        }
    }

    /// Runs every timer that is due at `now`. Early or repeated calls are harmless no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.join.as_ref().is_some_and(|j| now >= j.next_attempt) {
            self.join_attempt(now);
        }
        if !self.left {
            self.probe_timers(now);
        }
        self.expire_forwards(now);
        self.expire_suspicions(now);
        if now >= self.next_gossip && self.pending_broadcasts() > 0 {
            self.gossip_round(now);
            self.next_gossip = now + self.config.gossip_interval;
        }
        if !self.left && self.joined && now >= self.next_push_pull {
            self.periodic_push_pull(now);
        }
        self.reap_tombstones(now);
    }

    // ----- outputs -------------------------------------------------------------------------

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The round-trip time of a direct probe ack, oldest first (for an RTT histogram). At most
    /// [`MAX_RTT_SAMPLES`] are kept when nobody collects them.
    pub fn poll_probe_rtt(&mut self) -> Option<Duration> {
        self.rtt_samples.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the earliest deadline of
    /// every timer (probe, indirect probe, relayed ping, suspicion, gossip, push-pull, join
    /// retry, tombstone reaping).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut deadlines = [None; 8];
        deadlines[0] = self.join.as_ref().map(|j| j.next_attempt);
        if !self.left {
            deadlines[1] = Some(match &self.probe {
                Some(p) if !p.indirect_sent => p.direct_deadline,
                Some(p) => p.end,
                None => self.next_probe,
            });
        }
        deadlines[2] = self.forwards.values().map(|(f, _)| f.deadline).min();
        deadlines[3] = self.suspicion_deadlines.first().map(|(t, _)| *t);
        if self.pending_broadcasts() > 0 {
            deadlines[4] = Some(self.next_gossip);
        }
        if !self.left && self.joined && !self.config.push_pull_interval.is_zero() {
            deadlines[5] = Some(self.next_push_pull);
        }
        deadlines[6] = self.tombstones.first().map(|(t, _)| *t);
        deadlines.into_iter().flatten().min()
    }

    // ----- shared helpers ------------------------------------------------------------------

    pub(crate) fn me(&self) -> &Member {
        self.members
            .get(self.me)
            .expect("BUG! a node always holds its own record")
    }

    /// Alive and suspect members, this node included: the `N` of every formula.
    pub(crate) fn cluster_size(&self) -> usize {
        self.members.count(MemberState::Alive) + self.members.count(MemberState::Suspect)
    }

    pub(crate) fn info(&self, id: MemberId) -> Option<MemberInfo> {
        self.members.get(id).map(info)
    }

    /// The next ping sequence number: one varint byte, wrapping, skipping the numbers of
    /// pings still awaited (acks are matched by number *and* sender, so a number can be
    /// reused once its ping is settled).
    pub(crate) fn next_seq(&mut self) -> u32 {
        for _ in 0..SEQ_SPACE {
            let seq = self.next_seq;
            self.next_seq = (seq + 1) % SEQ_SPACE;
            let in_use = self.forwards.contains_key(&seq)
                || self.probe.as_ref().is_some_and(|p| p.seq == seq);
            if !in_use {
                return seq;
            }
        }
        // All 128 awaited at once: reuse the oldest-issued number.
        self.next_seq
    }

    pub(crate) fn mark_joined(&mut self) {
        self.join = None;
        if !self.joined {
            self.joined = true;
            self.events.push_back(Event::Joined);
        }
    }

    /// Encodes `message`, then the buddy item if any, then as many queued updates as fit.
    pub(crate) fn packet(&mut self, message: &Message<'_>, buddy: Option<&[u8]>) -> Vec<u8> {
        let mut buf = wire::encode_message(message);
        if let Some(b) = buddy {
            buf.extend_from_slice(b);
        }
        self.piggyback(&mut buf);
        buf
    }

    /// Queues a transmit and counts it.
    pub(crate) fn send(
        &mut self,
        to: SocketAddr,
        name: Option<Arc<str>>,
        payload: Vec<u8>,
        kind: wire::MessageKind,
        reliable: bool,
    ) {
        self.stats.count_sent(kind, payload.len());
        self.transmits.push_back(Transmit {
            to,
            name,
            payload,
            reliable,
        });
    }

    /// Sends `message` with piggybacked updates to a known member.
    pub(crate) fn send_to(
        &mut self,
        id: MemberId,
        message: &Message<'_>,
        buddy: Option<&[u8]>,
        reliable: bool,
    ) {
        let Some(m) = self.members.get(id) else {
            return;
        };
        let (addr, name) = (m.addr, m.name.clone());
        let payload = self.packet(message, buddy);
        self.send(addr, Some(name), payload, message.kind(), reliable);
    }

    /// Picks up to `k` distinct random members other than this node and `exclude` that pass
    /// `keep`: rejection sampling over the id space (no O(N) scan in large clusters), then a
    /// scan from a random start if sampling came up short.
    pub(crate) fn sample_members(
        &mut self,
        k: usize,
        exclude: Option<MemberId>,
        keep: impl Fn(&Member) -> bool,
    ) -> Vec<MemberId> {
        let bound = self.members.id_bound() as u32;
        let mut out = Vec::with_capacity(k);
        if bound == 0 || k == 0 {
            return out;
        }
        let wanted = |id: MemberId, out: &Vec<MemberId>, t: &MemberTable| {
            id != self.me
                && Some(id) != exclude
                && !out.contains(&id)
                && t.get(id).is_some_and(&keep)
        };
        for _ in 0..(4 * k + 8) {
            if out.len() == k {
                return out;
            }
            let id = self.rng.next_u32() % bound;
            if wanted(id, &out, &self.members) {
                out.push(id);
            }
        }
        let start = self.rng.next_u32() % bound;
        for offset in 0..bound {
            if out.len() == k {
                break;
            }
            let id = (start + offset) % bound;
            if wanted(id, &out, &self.members) {
                out.push(id);
            }
        }
        out
    }

    /// Encodes this member's current record as an update to disseminate, replacing any older
    /// one queued about it.
    pub(crate) fn enqueue_member(&mut self, id: MemberId) {
        self.enqueue_update(id, None);
    }

    /// As [`enqueue_member`](Self::enqueue_member); a suspect update names `accuser` (kept
    /// as received, so re-gossip is not mistaken for an independent confirmation).
    pub(crate) fn enqueue_update(&mut self, id: MemberId, accuser: Option<&str>) {
        let Some(m) = self.members.get(id) else {
            return;
        };
        let kind = match m.state {
            MemberState::Alive => UpdateKind::Alive {
                addr: m.addr,
                boot_id: m.boot_id,
                meta: m.meta.as_deref().unwrap_or(&[]),
            },
            MemberState::Suspect => UpdateKind::Suspect {
                accuser: accuser.unwrap_or(&self.my_name),
            },
            MemberState::Dead => UpdateKind::Dead,
            MemberState::Left => UpdateKind::Left,
        };
        let bytes = wire::encode_item(&Item::Member(Update {
            name: &m.name,
            incarnation: m.incarnation,
            kind,
        }));
        self.member_queue.push(Key::Member(id), bytes);
    }
}

fn info(m: &Member) -> MemberInfo {
    MemberInfo {
        name: m.name.clone(),
        addr: m.addr,
        incarnation: m.incarnation,
        boot_id: m.boot_id,
        state: m.state,
        metadata: m.meta.clone(),
        since: m.since,
    }
}

/// A uniform sample in `[0, 1)`.
pub(crate) fn unit(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}
