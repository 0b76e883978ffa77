//! A deterministic discrete-event network that runs many [`Node`]s in virtual time, with
//! per-link latency and jitter, random loss, partitions, crashes, restarts, graceful leaves
//! and slow members. Same [`SimConfig`] (seed included) → same run, bit for bit.
//!
//! One event queue keyed by (virtual instant, sequence number); the network has its own RNG,
//! separate from the nodes'. Names are interned once for the whole simulation, and with
//! `converged_start` every node starts from one shared membership table and stores only what
//! it sees differently, so memory grows with what changes, not with N².
//!
//! ```
//! use std::time::Duration;
//! use swim_core::sim::{Sim, SimConfig};
//!
//! let mut sim = Sim::new(SimConfig { members: 8, seed: 1, ..SimConfig::default() });
//! sim.run_for(Duration::from_secs(5));
//! sim.crash(3);
//! sim.run_for(Duration::from_secs(60));
//! assert!(sim.all_running_agree_on_dead(3));
//! ```

pub mod forge;
mod network;
mod queue;
mod report;
mod scenario;
mod trace;
pub mod trust;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::membership::{Member, MemberState, SharedBase};
use crate::names::NameTable;
use crate::node::Node;
use crate::{Config, Event, MemberInfo, Transmit};

pub use self::trust::SimTrust;
pub use network::{Delivery, NetStats, Network, WireModel};
use queue::Action;
pub use queue::EventQueue;
pub use report::{median, percentile, CrashOutcome, Report};
pub use scenario::{Fault, FaultKind, Scenario, Step};

/// Settings of one simulation.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Number of members at start.
    pub members: usize,
    /// Seed of everything: node seeds and the network's RNG derive from it.
    pub seed: u64,
    /// Protocol configuration of every node.
    pub node: Config,
    /// One-way latency of every link. Defaults to 1 ms.
    pub latency: Duration,
    /// Extra uniform random latency in `[0, jitter]`. Defaults to 1 ms.
    pub jitter: Duration,
    /// Probability that a datagram is lost. Streams are not lost, they are delayed by a
    /// retransmission timeout per loss. Defaults to 0.
    pub loss: f64,
    /// Time a member takes to handle one message. A member handles its messages one at a
    /// time, in the order they arrive, so a burst queues: CPU cost per message on a loaded
    /// host. Defaults to 0 (folded into the latency).
    pub processing: Duration,
    /// `true`: every node starts knowing every other as alive (a shared base table), as a
    /// cluster that has long converged. `false`: nodes start alone and join through member 0.
    /// Defaults to `true`.
    pub converged_start: bool,
    /// Keep every event of every node in [`Sim::events`] (for tests). Defaults to `false`.
    pub record_events: bool,
    /// Keep every message delivered in [`Sim::traffic`] (a corpus of real traffic for
    /// tests). Defaults to `false`.
    pub record_traffic: bool,
    /// Every node signs its claims and checks its peers' with a [`SimTrust`] (the sizes of
    /// real signatures and certificates on the wire). `false`: no trust, as
    /// [`Node::new`]. Defaults to `true`.
    pub signed: bool,
    /// What each message costs on a QUIC + TLS wire, for [`NetStats::wire_bytes`]. Only
    /// counted: it changes no delivery.
    pub wire: WireModel,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            members: 16,
            seed: 0,
            node: Config::default(),
            latency: Duration::from_millis(1),
            jitter: Duration::from_millis(1),
            loss: 0.0,
            processing: Duration::ZERO,
            converged_start: true,
            record_events: false,
            record_traffic: false,
            signed: true,
            wire: WireModel::default(),
        }
    }
}

/// How long a leaving member keeps running at most before the simulation stops it.
const LEAVE_LINGER: Duration = Duration::from_secs(10);

/// In declaration order (`repr(C)`): what a delivery reads of its sender's slot (name,
/// address, last-heard record) leads it, in adjacent cache lines, instead of wherever the
/// compiler put it around the 2 KB node (whether the sender runs is still read inside the
/// node). At 100 000 members each line touched is a miss.
#[derive(Debug)]
#[repr(C)]
struct Slot {
    name: Arc<str>,
    addr: SocketAddr,
    /// The last datagrams from this member that reached a running member, newest first, one
    /// per receiver: the latest moment anyone could know it was up (the truth a detection
    /// metric is held to), unless that receiver crashed too before it could tell.
    last_heard: Heard,
    /// The process is stopped (SIGSTOP): it keeps its state, handles nothing, and its timer
    /// waits; see [`Sim::pause`].
    paused: bool,
    /// Boot id of the current (or last) process in this slot, and when it started.
    boot_id: u32,
    started: Instant,
    node: Option<Node>,
}

/// A member's last datagrams delivered, newest first, to distinct receivers (slot, when).
#[derive(Clone, Debug, Default)]
pub(crate) struct Heard([Option<(u32, Instant)>; 4]);

impl Heard {
    pub(crate) fn record(&mut self, to: usize, at: Instant) {
        let to = to as u32;
        let end = self
            .0
            .iter()
            .position(|e| e.is_none_or(|(r, _)| r == to))
            .unwrap_or(self.0.len() - 1);
        self.0.copy_within(0..end, 1);
        self.0[0] = Some((to, at));
    }

    /// The newest delivery whose receiver `told` says could pass it on.
    pub(crate) fn latest(&self, told: impl Fn(usize, Instant) -> bool) -> Option<Instant> {
        self.0
            .iter()
            .flatten()
            .find(|&&(r, at)| told(r as usize, at))
            .map(|&(_, at)| at)
    }
}

/// The simulation. See the module doc.
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    /// `config.node`, shared by every node.
    node_config: Arc<Config>,
    /// A node's outputs while they are handed on (see `after_input`).
    transmits_buf: Vec<Transmit>,
    /// The sender of the message being handled, until the receiver sends it something.
    awaiting_answer: Option<SocketAddr>,
    events_buf: Vec<Event>,
    epoch: Instant,
    now: Instant,
    names: Arc<NameTable>,
    slots: Vec<Slot>,
    /// When each slot's timer is armed for, if it is: apart from the slots, so that the
    /// check each wake makes (most are superseded) reads a dense array, not a 2 KB slot.
    wake_at: Vec<Option<Instant>>,
    /// The network between the slots.
    network: Network,
    by_name: HashMap<Arc<str>, usize>,
    queue: EventQueue<Action>,
    seed_rng: ChaCha8Rng,
    recorder: report::Recorder,
    events: Vec<(Duration, usize, Event)>,
    traffic: Vec<Delivery>,
    trace: trace::Trace,
}

/// The simulated address of slot `i`: a distinct loopback address (never used on a socket).
fn slot_addr(i: usize) -> SocketAddr {
    let n = i as u32 + 1;
    let ip = Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8);
    SocketAddr::V4(SocketAddrV4::new(ip, SLOT_PORT))
}

const SLOT_PORT: u16 = 7946;

/// The slot whose address `addr` is, if any of `slots` (the inverse of [`slot_addr`]: no
/// hashing on the path of every datagram).
fn slot_of(addr: SocketAddr, slots: usize) -> Option<usize> {
    let SocketAddr::V4(a) = addr else {
        return None;
    };
    let [first, hi, mid, lo] = a.ip().octets();
    if first != 127 || a.port() != SLOT_PORT {
        return None;
    }
    let n = (usize::from(hi) << 16) | (usize::from(mid) << 8) | usize::from(lo);
    (1..=slots).contains(&n).then(|| n - 1)
}

/// A slot number as the event queue stores it.
fn slot_index(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 members")
}

impl Sim {
    /// Builds the cluster at virtual time zero.
    ///
    /// # Panics
    /// If `config.node` does not validate (a simulation setup error, not network input).
    pub fn new(config: SimConfig) -> Self {
        // Instants only serve as an origin; every result depends on differences from it.
        let epoch = Instant::now();
        let mut seed_rng = ChaCha8Rng::seed_from_u64(config.seed);
        // The first draw seeds the network's own RNG (see `Network::new`).
        seed_rng.next_u64();
        let names = Arc::new(NameTable::shared());
        let mut sim = Sim {
            epoch,
            now: epoch,
            names,
            slots: Vec::with_capacity(config.members),
            wake_at: vec![None; config.members],
            network: Network::new(&config),
            by_name: HashMap::new(),
            queue: EventQueue::new(epoch),
            seed_rng,
            recorder: report::Recorder::default(),
            events: Vec::new(),
            traffic: Vec::new(),
            trace: trace::Trace::new(epoch),
            node_config: Arc::new(config.node.clone()),
            transmits_buf: Vec::new(),
            awaiting_answer: None,
            events_buf: Vec::new(),
            config,
        };
        for i in 0..sim.config.members {
            // The shared table's own string: a delivery hashes the sender's name and the
            // table compares it with its key, one allocation rather than two to fetch.
            let (_, name) = sim.names.intern(&format!("node-{i}"));
            let addr = slot_addr(i);
            let node = sim.new_node(&name, addr);
            sim.recorder.started(i, node.boot_id());
            sim.by_name.insert(name.clone(), i);
            sim.slots.push(Slot {
                name,
                addr,
                boot_id: node.boot_id(),
                node: Some(node),
                paused: false,
                started: epoch,
                last_heard: Heard::default(),
            });
        }
        if sim.config.converged_start {
            let base: Vec<Member> = sim
                .slots
                .iter()
                .map(|s| s.node.as_ref().expect("just built").view().me().clone())
                .collect();
            let base = Arc::new(SharedBase::new(base));
            let now = sim.now;
            // As deployed: every member was given the first three as seeds.
            let seeds: Vec<SocketAddr> = (0..sim.slots.len().min(3)).map(slot_addr).collect();
            for s in &mut sim.slots {
                let node = s.node.as_mut().expect("just built");
                node.install_base(now, base.clone(), &seeds);
            }
        } else {
            let seed = [slot_addr(0)];
            for i in 0..sim.slots.len() {
                let now = sim.now;
                let node = sim.slots[i].node.as_mut().expect("just built");
                node.join(now, if i == 0 { &[] } else { &seed });
            }
        }
        for i in 0..sim.slots.len() {
            sim.after_input(i);
        }
        sim
    }

    fn new_node(&mut self, name: &str, addr: SocketAddr) -> Node {
        let seed = self.seed_rng.next_u64();
        Node::with_names(
            self.now,
            name,
            addr,
            self.node_config.clone(),
            seed,
            self.config
                .signed
                .then(|| Arc::new(SimTrust::new(name)) as Arc<dyn crate::Trust>),
            self.names.clone(),
        )
        .expect("simulation node config must validate")
    }

    // ----- time ----------------------------------------------------------------------------

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.epoch
    }

    /// The current virtual instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Runs every event up to `elapsed() + d`.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some((at, action)) = self.queue.pop_until(until) {
            self.now = at;
            self.dispatch(action);
        }
        self.now = until;
    }

    // ----- faults --------------------------------------------------------------------------

    /// Crashes member `i` abruptly: no leave, packets to it vanish.
    pub fn crash(&mut self, i: usize) {
        if let Some(node) = self.slots[i].node.take() {
            let heard = self.slots[i].last_heard.clone();
            self.recorder.crashed(i, node.boot_id(), self.now, heard);
        }
        self.wake_at[i] = None;
        self.slots[i].paused = false;
    }

    /// Stops member `i`'s process without ending it, as SIGSTOP does: it keeps its state and
    /// boot id, what arrives for it meanwhile is lost (a real socket would buffer a little;
    /// what matters here is the silence) and its timer waits for [`resume`](Self::resume).
    /// To the [`Report`] it is still running: declaring it dead is a false death.
    pub fn pause(&mut self, i: usize) {
        if self.slots[i].node.is_some() {
            self.slots[i].paused = true;
        }
    }

    /// Continues a paused process (SIGCONT): its timer fires at once, late, as a stopped
    /// process's would.
    pub fn resume(&mut self, i: usize) {
        if !std::mem::take(&mut self.slots[i].paused) || self.slots[i].node.is_none() {
            return;
        }
        let now = self.now;
        self.wake_at[i] = Some(now);
        self.schedule(
            now,
            Action::Wake {
                slot: slot_index(i),
            },
        );
    }

    /// Starts a new process (new boot id) with the crashed member's name and address, joining
    /// through the first running member.
    pub fn restart(&mut self, i: usize) {
        if self.slots[i].node.is_some() {
            return;
        }
        let (name, addr) = (self.slots[i].name.clone(), self.slots[i].addr);
        // A new process has no backlog.
        self.network.restarted(i);
        let mut node = self.new_node(&name, addr);
        let seeds: Vec<SocketAddr> = self
            .running()
            .filter(|&j| j != i)
            .take(3)
            .map(|j| self.slots[j].addr)
            .collect();
        node.join(self.now, &seeds);
        self.recorder.started(i, node.boot_id());
        let slot = &mut self.slots[i];
        slot.boot_id = node.boot_id();
        slot.started = self.now;
        slot.node = Some(node);
        self.after_input(i);
    }

    /// Member `i` leaves gracefully; it is stopped once its leave has spread (or after 10 s).
    pub fn leave(&mut self, i: usize) {
        let now = self.now;
        let Some(node) = self.slots[i].node.as_mut() else {
            return;
        };
        node.leave(now);
        let boot_id = node.boot_id();
        self.recorder.left(i, boot_id, now);
        self.schedule(
            now + LEAVE_LINGER,
            Action::StopLeaver {
                slot: slot_index(i),
                boot_id,
            },
        );
        self.after_input(i);
    }

    /// Puts member `i` in partition group `group`; only members of one group reach each other.
    pub fn set_group(&mut self, i: usize, group: u32) {
        self.network.set_group(i, group);
    }

    /// Loses each message to member `i` with probability `loss` (datagrams; a stream's
    /// packets are retransmitted): a flaky member that drops most of what it receives. At
    /// 1.0, a one-way partition: `i` still sends, but hears nothing, and no stream (which
    /// needs both directions) reaches or leaves it.
    pub fn set_ingress_loss(&mut self, i: usize, loss: f64) {
        self.network.set_ingress_loss(i, loss);
    }

    /// Loses each message from member `i` with probability `loss`; at 1.0, `i` hears
    /// everything and nobody hears it (the other one-way partition).
    pub fn set_egress_loss(&mut self, i: usize, loss: f64) {
        self.network.set_egress_loss(i, loss);
    }

    /// Counts member `i` as faulty in the [`Report`]: its deaths in healthy views are its
    /// flaps, not false deaths, and what it does to healthy members is measured apart.
    pub fn mark_faulty(&mut self, i: usize) {
        self.recorder.mark_faulty(i);
    }

    /// Whether every running member holds every other running member alive.
    pub fn all_alive(&self) -> bool {
        let running: Vec<usize> = self.running().collect();
        running.iter().all(|&a| {
            running.iter().all(|&b| {
                a == b
                    || self
                        .view_of(a, b)
                        .is_some_and(|m| m.state == MemberState::Alive)
            })
        })
    }

    /// Removes every partition, symmetric and one-way, and every member's own loss.
    pub fn heal(&mut self) {
        self.network.heal();
    }

    /// Delays everything member `i` receives by `delay` (a member whose processing is slow:
    /// CPU starvation, a long pause). `None` makes it normal again.
    pub fn set_slow(&mut self, i: usize, delay: Option<Duration>) {
        self.network.set_slow(i, delay);
    }

    /// Changes the datagram loss probability.
    pub fn set_loss(&mut self, loss: f64) {
        self.config.loss = loss;
        self.network.set_loss(loss);
    }

    // ----- observation ---------------------------------------------------------------------

    /// Number of member slots (running or not).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the simulation has no members.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Slots whose process is running.
    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|&i| self.slots[i].node.is_some())
    }

    /// The node in slot `i`, if running.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.slots[i].node.as_ref()
    }

    /// The node in slot `i`, if running, to issue commands (`broadcast`, `set_metadata`).
    /// Its outputs are collected at the next [`run_for`](Self::run_for).
    pub fn node_mut(&mut self, i: usize) -> Option<&mut Node> {
        let wake = self.now;
        if self.slots[i].node.is_some() {
            self.wake_at[i] = Some(wake);
            self.schedule(
                wake,
                Action::Wake {
                    slot: slot_index(i),
                },
            );
        }
        self.slots[i].node.as_mut()
    }

    /// Name of slot `i`.
    pub fn name(&self, i: usize) -> &str {
        &self.slots[i].name
    }

    /// How member `subject` looks from member `viewer`, if running and known.
    pub fn view_of(&self, viewer: usize, subject: usize) -> Option<MemberInfo> {
        self.node(viewer)?.member(&self.slots[subject].name)
    }

    /// Whether every running member other than `i` holds `i` as dead (or forgot it).
    pub fn all_running_agree_on_dead(&self, i: usize) -> bool {
        self.running().filter(|&j| j != i).all(|j| {
            self.view_of(j, i)
                .is_none_or(|m| m.state == MemberState::Dead)
        })
    }

    /// Whether every running member sees exactly the running members alive, with the same
    /// incarnation and boot id each, and nobody else alive or suspect.
    pub fn converged(&self) -> bool {
        let running: Vec<usize> = self.running().collect();
        running.iter().all(|&v| {
            let node = self.node(v).expect("running");
            let alive = node.member_count(MemberState::Alive);
            let suspect = node.member_count(MemberState::Suspect);
            suspect == 0
                && alive == running.len()
                && running.iter().all(|&s| {
                    let truth = self.node(s).expect("running");
                    node.member(&self.slots[s].name).is_some_and(|m| {
                        m.state == MemberState::Alive
                            && m.incarnation == truth.incarnation()
                            && m.boot_id == truth.boot_id()
                    })
                })
        })
    }

    /// Every event of every node, with its virtual time and slot (only with
    /// `SimConfig::record_events`).
    pub fn events(&self) -> &[(Duration, usize, Event)] {
        &self.events
    }

    /// Every message delivered to a running member so far (only with
    /// `SimConfig::record_traffic`).
    pub fn traffic(&self) -> &[Delivery] {
        &self.traffic
    }

    /// The address of slot `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.slots[i].addr
    }

    /// What the network carried so far.
    pub fn net_stats(&self) -> NetStats {
        self.network.stats()
    }

    /// Member records held privately by running nodes (beyond the shared base): the
    /// simulator's memory per member grows with this.
    pub fn private_records(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.node.as_ref())
            .map(|n| n.view().private_records())
            .sum()
    }

    /// A fingerprint of everything observable so far: every event of every node and every
    /// message sent (when, by whom, to whom, how long), with times relative to the start.
    /// Equal for two runs that behaved the same; tests pin it for named scenarios.
    pub fn trace_hash(&self) -> u64 {
        self.trace.value()
    }

    /// Ground-truth measurements so far. See [`Report`].
    pub fn report(&self) -> Report {
        self.recorder.report(self)
    }

    /// Delivers `payload` to member `to` now, as if member `from` had sent it (a test's
    /// forgery, see [`forge`]); the node's answer, if any, goes out as usual. `Err` if `to`
    /// is not running or refused the input.
    pub fn inject(
        &mut self,
        to: usize,
        from: usize,
        payload: &[u8],
        reliable: bool,
    ) -> Result<(), crate::Error> {
        let now = self.now;
        let (from_addr, from_name) = (self.slots[from].addr, self.slots[from].name.clone());
        let node = self.slots[to].node.as_mut().ok_or(crate::ApiMisuse::Left)?;
        let result = if reliable {
            node.handle_stream(now, from_addr, &from_name, payload)
        } else {
            node.handle_packet(now, from_addr, &from_name, payload)
        };
        self.after_input(to);
        result
    }

    // ----- the event loop ------------------------------------------------------------------

    fn schedule(&mut self, at: Instant, action: Action) {
        self.queue.push(at, action);
    }

    fn dispatch(&mut self, action: Action) {
        let now = self.now;
        match action {
            Action::Deliver {
                to,
                from,
                payload,
                reliable,
                queued: true,
            } => {
                // Its turn at the receiver comes after what arrived there before it.
                let done = self.network.take_turn(to as usize, now);
                let action = Action::Deliver {
                    to,
                    from,
                    payload,
                    reliable,
                    queued: false,
                };
                self.schedule(done, action);
            }
            Action::Deliver {
                to,
                from,
                payload,
                reliable,
                queued: false,
            } => {
                let (to, from) = (to as usize, from as usize);
                let (from_addr, from_name) = (self.slots[from].addr, self.slots[from].name.clone());
                let slot = &mut self.slots[to];
                let Some(node) = slot.node.as_mut().filter(|_| !slot.paused) else {
                    self.network.receiver_down();
                    return;
                };
                // A refused input is counted by the node; the simulation carries on.
                let result = if reliable {
                    node.handle_stream(now, from_addr, &from_name, &payload)
                } else {
                    node.handle_packet(now, from_addr, &from_name, &payload)
                };
                if result.is_err() {
                    self.network.refused();
                }
                if !reliable {
                    let sender = &mut self.slots[from];
                    if sender.node.is_some() {
                        sender.last_heard.record(to, now);
                    } else {
                        // Sent before its crash, delivered after: heard all the same.
                        self.recorder
                            .heard_after_crash(from, sender.boot_id, to, now);
                    }
                }
                let len = payload.len();
                if self.config.record_traffic {
                    self.traffic.push(Delivery {
                        at: now - self.epoch,
                        from,
                        to,
                        payload,
                        reliable,
                    });
                }
                self.await_answer(from_addr);
                self.after_input(to);
                let answered = self.answered();
                self.network.acknowledge(reliable, len, answered);
            }
            Action::Wake { slot } => {
                let slot = slot as usize;
                if self.wake_at[slot] != Some(now) {
                    return; // superseded by a later reschedule
                }
                self.wake_at[slot] = None;
                if self.slots[slot].paused {
                    return; // `resume` wakes it
                }
                if let Some(node) = self.slots[slot].node.as_mut() {
                    node.handle_timeout(now);
                    // A timer still due after it fired would make a runtime spin.
                    assert!(
                        node.poll_timeout().is_none_or(|t| t > now),
                        "BUG! {}'s timer is still due at {:?} after handle_timeout",
                        self.slots[slot].name,
                        now - self.epoch
                    );
                    self.after_input(slot);
                }
            }
            Action::StopLeaver { slot, boot_id } => {
                let slot = slot as usize;
                if self.slots[slot].boot_id == boot_id {
                    self.stop_leaver(slot);
                }
            }
        }
    }

    fn stop_leaver(&mut self, i: usize) {
        if let Some(node) = self.slots[i].node.take() {
            self.recorder.stopped(i, node.boot_id(), self.now);
        }
        self.wake_at[i] = None;
    }

    /// Drains a node's outputs after an input and re-arms its one timer.
    fn after_input(&mut self, i: usize) {
        let now = self.now;
        // Reused from input to input: no two allocations per input.
        let mut out = std::mem::take(&mut self.transmits_buf);
        let mut events = std::mem::take(&mut self.events_buf);
        let (deadline, leave_done, max_datagram) = {
            let Some(node) = self.slots[i].node.as_mut() else {
                return;
            };
            while let Some(t) = node.poll_transmit() {
                out.push(t);
            }
            while let Some(e) = node.poll_event() {
                events.push(e);
            }
            // Nothing here makes histograms of these: drained, so that no simulated member
            // holds up to 256 probe RTTs and 64 push-pull durations of its own.
            while node.poll_probe_rtt().is_some() {}
            while node.poll_push_pull_duration().is_some() {}
            (
                node.poll_timeout(),
                node.leave_spread(),
                node.max_datagram_size(),
            )
        };
        for e in events.drain(..) {
            self.trace.event(self.now, i, &e);
            self.recorder
                .event(self.now, i, &self.slots, &self.by_name, &e);
            if self.config.record_events {
                self.events.push((self.elapsed(), i, e));
            }
        }
        for t in out.drain(..) {
            self.trace
                .transmit(self.now, i, &t, self.config.node.framing);
            self.transmit(i, t, max_datagram);
        }
        self.transmits_buf = out;
        self.events_buf = events;
        if leave_done {
            self.stop_leaver(i);
            return;
        }
        if let Some(d) = deadline {
            let d = d.max(now);
            if self.wake_at[i] != Some(d) {
                self.wake_at[i] = Some(d);
                self.schedule(
                    d,
                    Action::Wake {
                        slot: slot_index(i),
                    },
                );
            }
        }
    }
}
