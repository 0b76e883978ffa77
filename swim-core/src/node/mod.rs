//! The `Node` type: the public API, and the routing of every input to the protocol concern
//! that owns it (membership, probe, dissemination, anti-entropy, join) and of each concern's
//! decisions to the others. The rules themselves live in the concern files.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::awareness::Awareness;
use crate::claims::Claims;
use crate::config::{Config, MAX_NAME_LEN, MIN_DATAGRAM_SIZE};
use crate::dissemination::Dissemination;
use crate::error::{ApiMisuse, Error};
use crate::event::{Event, MemberInfo};
use crate::join::Joiner;
#[cfg(feature = "sim")]
use crate::membership::SharedBase;
use crate::membership::{MemberId, MemberState};
use crate::names::NameTable;
use crate::probe::Prober;
use crate::pushpull::{self, AntiEntropy};
use crate::reconnect::Reconnector;
use crate::stats::Stats;
use crate::trust::Trust;
use crate::update::{Fx, Membership};
use crate::view::View;
use crate::wire::{self, Message, MessageKind};

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
    /// The encoded message, framed as `Config::framing` says: exactly the bytes to put on
    /// the wire.
    pub payload: Vec<u8>,
    /// `true`: send on a reliable stream (push-pull, fallback ping); `false`: as a datagram,
    /// never retransmitted. Datagrams never exceed `Config::max_datagram_size`.
    pub reliable: bool,
    /// What it is: a transport may treat kinds differently (swim-net opens no connection
    /// for a gossip round to a member that is not alive; probes reach it).
    pub kind: MessageKind,
}

/// The effects of a membership transition go to the node's events, counters and update
/// queue: borrowed field by field, so the membership state itself can be borrowed beside.
macro_rules! fx {
    ($node:ident) => {
        &mut Fx {
            events: &mut $node.events,
            stats: &mut $node.stats,
            updates: $node.gossip.updates(),
        }
    };
}

mod input;
mod timer;

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
/// Every method that needs the time takes it first, as `now`. After every input or command,
/// drain `poll_transmit` and `poll_event` until they return `None`, then (re)arm one timer at
/// `poll_timeout`. Instants passed in must never go backwards. Calling `handle_timeout` early
/// or twice is a harmless no-op. Everything the node does is a function of its inputs and its
/// seed: the same inputs replay the same run.
///
/// The peer name given with each input must come from an authenticated source (swim-net takes
/// it from the peer's verified certificate), never from the payload.
#[derive(Debug)]
pub struct Node {
    /// Shared by every node of a simulation (a quarter of a kilobyte each otherwise).
    config: Arc<Config>,
    rng: ChaCha8Rng,
    /// The view and every change of a member's state (`update.rs`).
    membership: Membership,
    /// Lifeguard's local health (`awareness.rs`).
    awareness: Awareness,
    /// Probes and relayed pings (`probe.rs`).
    prober: Prober,
    /// What to piggyback, gossip rounds, user broadcasts (`dissemination.rs`).
    gossip: Dissemination,
    /// Periodic push-pull (`pushpull.rs`).
    anti_entropy: AntiEntropy,
    /// Joining through seeds (`join.rs`).
    joiner: Joiner,
    /// Contacting dead members and, after the view shrank, seeds (`reconnect.rs`).
    reconnector: Reconnector,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Node {
    /// Creates a node named `name`, advertising `addr`, with its own fresh name table. `seed`
    /// drives every random choice (and the boot id); give a different one per process start.
    /// The node is alone until [`join`](Self::join).
    pub fn new(
        now: Instant,
        name: &str,
        addr: SocketAddr,
        config: Config,
        seed: u64,
    ) -> Result<Self, Error> {
        Self::alone(now, name, addr, config, seed, None)
    }

    /// As [`new`](Self::new), with claims signed and checked by `trust`: this node signs
    /// every claim about itself with its key, and takes another member's claims about
    /// itself only with that member's signature, and accusations only with their accuser's
    /// (see [`Trust`]). Fails if `trust` refuses this node's own credential.
    pub fn with_trust(
        now: Instant,
        name: &str,
        addr: SocketAddr,
        config: Config,
        seed: u64,
        trust: Arc<dyn Trust>,
    ) -> Result<Self, Error> {
        Self::alone(now, name, addr, config, seed, Some(trust))
    }

    /// A node with its own name table and configuration (see `new` and `with_trust`).
    fn alone(
        now: Instant,
        name: &str,
        addr: SocketAddr,
        config: Config,
        seed: u64,
        trust: Option<Arc<dyn Trust>>,
    ) -> Result<Self, Error> {
        let (config, names) = (Arc::new(config), Arc::default());
        Self::with_names(now, name, addr, config, seed, trust, names)
    }

    pub(crate) fn with_names(
        now: Instant,
        name: &str,
        addr: SocketAddr,
        config: Arc<Config>,
        seed: u64,
        trust: Option<Arc<dyn Trust>>,
        names: Arc<NameTable>,
    ) -> Result<Self, Error> {
        config.validate()?;
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(ApiMisuse::InvalidName(name.into()).into());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let boot_id = rng.next_u32();
        let view = View::new(names, name, addr, boot_id, now);
        let claims = Claims::new(trust, &config.cluster_name, view.my_name()).map_err(|e| {
            ApiMisuse::OwnCredential {
                name: name.into(),
                problem: e.0,
            }
        })?;
        // Spread the first probe and push-pull over one period so nodes started together do
        // not act in lock step.
        let first_probe = config.probe_interval.mul_f64(unit(&mut rng));
        let first_push_pull = config.push_pull_interval.mul_f64(unit(&mut rng));
        let first_reconnect = config.reconnect_interval.mul_f64(unit(&mut rng));
        Ok(Self {
            membership: Membership::new(view, &config, claims),
            reconnector: Reconnector::new(now + first_reconnect),
            awareness: Awareness::new(config.awareness_max_multiplier),
            prober: Prober::new(now + first_probe),
            gossip: Dissemination::new(now),
            anti_entropy: AntiEntropy::new(now + first_push_pull),
            joiner: Joiner::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            rng,
            config,
        })
    }

    /// Starts from a membership every node agrees on (the simulator's converged start), as if
    /// joined through `seeds`: the base is shared, not copied.
    #[cfg(feature = "sim")]
    pub(crate) fn install_base(
        &mut self,
        now: Instant,
        base: Arc<SharedBase>,
        seeds: &[SocketAddr],
    ) {
        self.membership.view_mut().install_base(base);
        let own = self.view().me().addr;
        self.reconnector
            .set_seeds(seeds.iter().copied().filter(|s| *s != own).collect());
        self.joiner.joined();
        // Spread push-pulls over the interval this cluster size implies, as a long-running
        // cluster would have them.
        if let Some(interval) = self.timings().push_pull_interval() {
            let first = now + interval.mul_f64(unit(&mut self.rng));
            self.anti_entropy.schedule(first);
        }
    }

    // ----- getters -------------------------------------------------------------------------

    /// This node's name.
    pub fn name(&self) -> &str {
        self.view().my_name()
    }

    /// This process's boot id.
    pub fn boot_id(&self) -> u32 {
        self.view().boot_id()
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> u32 {
        self.view().me().incarnation
    }

    /// Whether a seed answered the join (or there were no seeds).
    pub fn is_joined(&self) -> bool {
        self.joiner.is_joined()
    }

    /// Whether [`leave`](Self::leave) was called.
    pub fn has_left(&self) -> bool {
        self.view().has_left()
    }

    /// After [`leave`](Self::leave): whether the leave update has been sent its full number of
    /// times, so the runtime may stop.
    pub fn leave_spread(&self) -> bool {
        // Once left, this node no longer counts itself: nobody alive means nobody to tell.
        self.has_left()
            && (!self.gossip.has_update(self.view().my_id()) || self.view().cluster_size() == 0)
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
        self.gossip.pending()
    }

    /// Every member this node knows, itself and tombstones included, in id order.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.view().iter().map(|(_, m)| m.info()).collect()
    }

    /// One member by name.
    pub fn member(&self, name: &str) -> Option<MemberInfo> {
        self.view().known(name).map(|(_, m)| m.info())
    }

    /// One member's state by name, without copying its record (for a transport deciding per
    /// message whether a peer is worth a connection).
    pub fn member_state(&self, name: &str) -> Option<MemberState> {
        self.view().known(name).map(|(_, m)| m.state)
    }

    /// Names this node's table holds: its members (every state, itself included). A name is
    /// held only while its member is in the view and is released when the member is reaped,
    /// so this is bounded by the cluster, not its history. (Every name of a simulation when
    /// the table is the simulation's shared one.)
    pub fn names_held(&self) -> usize {
        self.membership.view().names_held()
    }

    /// A fingerprint of every member record (state, incarnation, address, process,
    /// metadata), kept up to date as records change: when it differs from the last one
    /// read, the member list changed — also when no event said so (a newer incarnation of
    /// an alive member that this view never saw suspected).
    pub fn view_fingerprint(&self) -> u64 {
        u64::from_le_bytes(self.view().fingerprint())
    }

    /// Number of members in `state`, this node included.
    pub fn member_count(&self, state: MemberState) -> usize {
        self.view().count(state)
    }

    /// The largest datagram this node sends.
    pub fn max_datagram_size(&self) -> usize {
        self.config.max_datagram_size
    }

    pub(crate) fn view(&self) -> &View {
        self.membership.view()
    }

    fn timings(&self) -> crate::config::Timings<'_> {
        self.config.timings(self.view().cluster_size())
    }

    // ----- commands ------------------------------------------------------------------------

    /// Starts joining through `seeds` (push-pull with each until one answers, retrying with
    /// exponential backoff). With no seed other than this node's own address, the node is
    /// joined at once (it starts a new cluster).
    pub fn join(&mut self, now: Instant, seeds: &[SocketAddr]) {
        let own = self.view().me().addr;
        let seeds: Vec<_> = seeds.iter().copied().filter(|s| *s != own).collect();
        self.reconnector.set_seeds(seeds.clone());
        if seeds.is_empty() {
            self.mark_joined();
            return;
        }
        self.joiner
            .start(now, seeds, self.config.join_retry_initial);
    }

    /// Leaves gracefully: this node is announced as `left` (not failed), stops probing, and
    /// keeps answering and gossiping until [`leave_spread`](Self::leave_spread) says the news
    /// has been sent enough times.
    pub fn leave(&mut self, now: Instant) {
        if self.has_left() {
            return;
        }
        self.joiner.stop();
        self.prober.abandon();
        self.membership.leave(now, fx!(self));
        self.gossip.schedule_round(now);
    }

    /// Takes this node's credential again from its [`Trust`] (its certificate was renewed)
    /// and announces it: its record at a new incarnation, signed with the new key, so that
    /// peers fetch the new credential. Fails, keeping the old credential, if the trust
    /// refuses the new one. Nothing to do without a trust.
    pub fn renew_credential(&mut self, _now: Instant) -> Result<(), Error> {
        Ok(self.membership.renew_credential(fx!(self))?)
    }

    /// The authority of this node's [`Trust`] changed (a new CA): every member credential
    /// held is checked again, and those no longer vouched for are dropped, so that claims
    /// signed with them stop taking effect. Returns how many were dropped.
    pub fn recheck_credentials(&mut self, _now: Instant) -> usize {
        self.membership.recheck_credentials()
    }

    /// Replaces this node's metadata and spreads it (with a new incarnation).
    pub fn set_metadata(&mut self, _now: Instant, metadata: &[u8]) -> Result<(), Error> {
        let max = self.config.max_metadata_size;
        self.check_own_news(metadata.len(), max, |len, max| {
            ApiMisuse::MetadataTooLarge { len, max }
        })?;
        Ok(self.membership.set_my_metadata(metadata, fx!(self))?)
    }

    /// Queues an application broadcast: every member receives it once, as
    /// [`Event::UserBroadcast`], piggybacked like membership updates.
    pub fn broadcast(&mut self, payload: &[u8]) -> Result<(), Error> {
        let max = self.config.max_broadcast_size;
        self.check_own_news(payload.len(), max, |len, max| {
            ApiMisuse::BroadcastTooLarge { len, max }
        })?;
        self.gossip
            .originate(self.membership.view().my_name(), payload);
        Ok(())
    }

    /// News this node spreads about itself (`len` bytes of at most `max`): refused once it
    /// has left, or when too large.
    fn check_own_news(
        &self,
        len: usize,
        max: usize,
        too_large: fn(usize, usize) -> ApiMisuse,
    ) -> Result<(), Error> {
        if self.has_left() {
            return Err(ApiMisuse::Left.into());
        }
        if len > max {
            return Err(too_large(len, max).into());
        }
        Ok(())
    }

    /// Sets the runtime's real datagram size limit (e.g. QUIC's `max_datagram_size()`).
    /// Values below the protocol's minimum are raised to it.
    pub fn set_max_datagram_size(&mut self, size: usize) {
        Arc::make_mut(&mut self.config).max_datagram_size = size.max(MIN_DATAGRAM_SIZE);
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

    fn mark_joined(&mut self) {
        if self.joiner.joined() {
            self.events.push_back(Event::Joined);
        }
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
    /// [`MAX_RTT_SAMPLES`](crate::MAX_RTT_SAMPLES) are kept when nobody collects them.
    pub fn poll_probe_rtt(&mut self) -> Option<Duration> {
        self.prober.poll_rtt()
    }

    /// How long a push-pull this node started took, oldest first (for a histogram): from
    /// the request handed to the runtime (which dials, or opens a stream on the connection it
    /// holds, at once) to the peer's answer merged into this view. An answer is matched to
    /// the request by the address it went to, or by the peer's name when the request named
    /// it; a request never answered is never timed. At most
    /// [`MAX_PUSH_PULL_SAMPLES`](crate::MAX_PUSH_PULL_SAMPLES) are kept when nobody collects
    /// them.
    pub fn poll_push_pull_duration(&mut self) -> Option<Duration> {
        self.anti_entropy.poll_duration()
    }

    /// Appends as many queued updates and broadcasts as fit in a datagram.
    /// `now` is `None` on a stream (see [`BroadcastQueue::fill`]).
    fn piggyback(&mut self, now: Option<Instant>, buf: &mut Vec<u8>) {
        let max = self.config.max_datagram_size;
        let limit = self.timings().retransmit_limit();
        self.gossip.piggyback(buf, max, limit, now, &mut self.stats);
    }

    /// Sends `message`, then `extra` items (buddy update, fingerprint), then as many queued
    /// updates as fit.
    fn send(
        &mut self,
        now: Instant,
        to: SocketAddr,
        name: Option<Arc<str>>,
        message: &Message<'_>,
        extra: Option<&[u8]>,
        reliable: bool,
    ) {
        let mut buf = wire::encode_message(self.config.framing, message);
        if let Some(extra) = extra {
            buf.extend_from_slice(extra);
        }
        self.piggyback((!reliable).then_some(now), &mut buf);
        self.queue(to, name, buf, message.kind(), reliable);
    }

    /// [`send`](Self::send) to a member of the view.
    fn send_to(
        &mut self,
        now: Instant,
        id: MemberId,
        message: &Message<'_>,
        extra: Option<&[u8]>,
        reliable: bool,
    ) {
        let Some(m) = self.view().get(id) else {
            return;
        };
        let (addr, name) = (m.addr, m.name.clone());
        self.send(now, addr, Some(name), message, extra, reliable);
    }

    /// Starts a push-pull with `to` (a `join` to a seed, or anti-entropy): this node's
    /// full state as a request, the exchange timed until the answer is merged.
    fn request_state(&mut self, now: Instant, to: SocketAddr, name: Option<Arc<str>>, join: bool) {
        self.anti_entropy.started(now, to, name.clone());
        self.send_state(to, name, false, join);
    }

    /// Sends this node's full state to `to` (a request, or the `response` to one).
    fn send_state(&mut self, to: SocketAddr, name: Option<Arc<str>>, response: bool, join: bool) {
        let payload = pushpull::encode_state(
            self.config.framing,
            &self.config.cluster_name,
            response,
            join,
            self.view(),
        );
        self.queue(to, name, payload, MessageKind::PushPull, true);
    }

    /// Queues a transmit and counts it.
    fn queue(
        &mut self,
        to: SocketAddr,
        name: Option<Arc<str>>,
        payload: Vec<u8>,
        kind: MessageKind,
        reliable: bool,
    ) {
        self.stats.count_sent(kind, payload.len());
        self.transmits.push_back(Transmit {
            to,
            name,
            payload,
            reliable,
            kind,
        });
    }
}

/// A uniform sample in `[0, 1)`.
pub(crate) fn unit(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}
