//! The driver: one task owns the `Node` and routes — every input (a peer's bytes, a
//! connection coming or going, an API command, shutdown) to the node or the concern that
//! handles it, and every output of the node to the network and the outside. Connection
//! tasks only move bytes, through bounded queues.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::{Connection, Endpoint};
use swim_core::{Event, MemberState, Node};
use tokio::sync::{mpsc, oneshot};

use crate::budget::{Budget, Held};
use crate::claim_trust::CertTrust;
use crate::config::ClusterConfig;
use crate::connections::{self, Connections, Dial, DialKey, CLOSE_CLUSTER_MISMATCH};
use crate::error::{NetError, PeerError};
use crate::events::Outputs;
use crate::identity::{self, FileWatch};
use crate::ledger::CheckSchedule;
use crate::log_limit::LogLimit;
use crate::metrics;
use crate::peer_io::{self, StreamLimits};
use crate::tls::Refusals;
use crate::transport::QuicCrypto;

/// A datagram from an authenticated peer.
pub(crate) struct Datagram {
    pub(crate) name: Arc<str>,
    pub(crate) addr: SocketAddr,
    pub(crate) bytes: Bytes,
}

/// A whole stream message from an authenticated peer; its bytes stay held against the
/// memory budgets until it has been handled.
pub(crate) struct StreamMessage {
    pub(crate) name: Arc<str>,
    pub(crate) addr: SocketAddr,
    pub(crate) bytes: Vec<u8>,
    pub(crate) held: Held,
}

/// What happens to connections.
pub(crate) enum Control {
    /// A handshake completed: the peer proves `name`. `dialled` is the dial that asked for
    /// it (none for an incoming connection).
    Connected {
        conn: Connection,
        name: Arc<str>,
        dialled: Option<DialKey>,
        outgoing: bool,
    },
    /// A dial failed.
    DialFailed { key: DialKey, error: PeerError },
    /// The connection `id` to `name` closed, and why.
    Closed {
        name: Arc<str>,
        id: usize,
        error: Option<quinn::ConnectionError>,
    },
}

/// How the tasks hand the driver what they received: datagrams in a bounded queue (a full
/// one drops, counted), stream messages and connection changes in bounded queues the tasks
/// wait on (their memory is bounded by the budgets and the connection count).
#[derive(Clone)]
pub(crate) struct Inbound {
    pub(crate) datagrams: mpsc::Sender<Datagram>,
    pub(crate) streams: mpsc::Sender<StreamMessage>,
    pub(crate) control: mpsc::Sender<Control>,
}

/// The receiving ends of [`Inbound`], and the API's commands.
pub(crate) struct Queues {
    pub(crate) datagrams: mpsc::Receiver<Datagram>,
    pub(crate) streams: mpsc::Receiver<StreamMessage>,
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
}

impl Queues {
    /// Bounded queues for `config`, and their senders.
    pub(crate) fn new(config: &ClusterConfig) -> (Inbound, mpsc::UnboundedSender<Command>, Queues) {
        let (datagrams_tx, datagrams) = mpsc::channel(config.max_queued_datagrams);
        let (streams_tx, streams) = mpsc::channel(STREAM_QUEUE);
        let (control_tx, control) = mpsc::channel(CONTROL_QUEUE);
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let inbound = Inbound {
            datagrams: datagrams_tx,
            streams: streams_tx,
            control: control_tx,
        };
        let queues = Queues {
            datagrams,
            streams,
            control,
            commands,
        };
        (inbound, commands_tx, queues)
    }
}

/// Stream messages waiting for the driver (their bytes are bounded by the budgets).
const STREAM_QUEUE: usize = 64;
/// Connection changes waiting for the driver.
const CONTROL_QUEUE: usize = 1024;

/// API calls from the [`Cluster`](crate::Cluster) handle.
pub(crate) enum Command {
    Join(Vec<SocketAddr>),
    SetMetadata(Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    Broadcast(Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    Leave(oneshot::Sender<()>),
    /// Close every connection and the endpoint, then stop.
    Shutdown(oneshot::Sender<()>),
}

/// The driver's state: the node and each concern around it.
pub(crate) struct Driver {
    node: Node,
    config: ClusterConfig,
    endpoint: Endpoint,
    /// The TLS halves of new connections (replaced when the files change).
    crypto: QuicCrypto,
    refusals: Refusals,
    /// What the node signs claims with (replaced with the files too).
    trust: Arc<CertTrust>,
    watch: FileWatch,
    inbound: Inbound,
    queues: Queues,
    stream_limits: StreamLimits,
    /// The memory budget over all peers, from which each connection's is made.
    budget: Budget,
    connections: Connections,
    held_check: CheckSchedule,
    outputs: Outputs,
    leave_waiters: Vec<oneshot::Sender<()>>,
    /// Lines a peer can make frequent: push-pulls refused for another cluster name.
    peer_logs: LogLimit,
    /// Set by `Shutdown`: the loop ends once it is answered.
    stopped: Option<oneshot::Sender<()>>,
    /// What the metrics were last told, so counters are recorded as increments.
    recorded: swim_core::Stats,
    recorded_wire: crate::accounting::WireStats,
}

/// The single seam where the driver reads the clock.
fn now() -> Instant {
    Instant::now()
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        node: Node,
        config: ClusterConfig,
        endpoint: Endpoint,
        crypto: QuicCrypto,
        refusals: Refusals,
        trust: Arc<CertTrust>,
        (inbound, queues): (Inbound, Queues),
        outputs: Outputs,
    ) -> Self {
        Self {
            stream_limits: StreamLimits {
                timeout: config.stream_timeout,
                max_size: config.max_stream_size,
            },
            budget: Budget::total(config.max_held_total),
            watch: FileWatch::new(config.tls.clone()),
            connections: Connections::new(&config.name, config.max_connections),
            held_check: CheckSchedule::new(config.swim.probe_timeout, now()),
            node,
            config,
            endpoint,
            crypto,
            refusals,
            trust,
            inbound,
            queues,
            outputs,
            leave_waiters: Vec::new(),
            peer_logs: LogLimit::default(),
            stopped: None,
            recorded: swim_core::Stats::default(),
            recorded_wire: crate::accounting::WireStats::default(),
        }
    }

    /// The loop: wait for an input, the node's one timer, a reload check or the stats tick;
    /// handle it; drain the node's outputs.
    pub(crate) async fn run(mut self) {
        let mut reload = tokio::time::interval(self.config.reload_interval);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
        // One timer for the node's deadline, moved only when the deadline moves: a timer
        // made and dropped for every input costs two updates of the runtime's timer wheel.
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        let mut armed = None;
        loop {
            let deadline = self.node.poll_timeout();
            if let Some(d) = deadline.filter(|&d| armed != Some(d)) {
                timer.as_mut().reset(d.into());
                armed = Some(d);
            }
            // Unbiased: whichever inputs are ready take turns at random, so neither a flood
            // of datagrams nor one of stream messages (bulk state) starves the other, the
            // node's timer or connection changes; each input is handled in microseconds.
            tokio::select! {
                command = self.queues.commands.recv() => match command {
                    Some(command) => self.on_command(now(), command),
                    // The handle is gone (dropped without shutdown): stop.
                    None => return,
                },
                Some(control) = self.queues.control.recv() => self.on_control(now(), control),
                _ = &mut timer, if deadline.is_some() => {
                    armed = None;
                    self.node.handle_timeout(now());
                }
                Some(d) = self.queues.datagrams.recv() => self.on_datagram(now(), d),
                Some(m) = self.queues.streams.recv() => self.on_stream(now(), m),
                _ = reload.tick() => self.maybe_reload(),
                _ = stats_tick.tick() => self.record_stats(),
            }
            if let Some(done) = self.stopped.take() {
                let _ = done.send(());
                return;
            }
            self.flush();
            if self.held_check.due(now()) {
                let delayed = self.connections.newly_delayed();
                let wire = &self.outputs.wire;
                wire.datagrams_delayed.fetch_add(delayed, Ordering::Relaxed);
            }
        }
    }

    fn on_datagram(&mut self, t: Instant, d: Datagram) {
        self.connections.touch(t, &d.name);
        if let Err(e) = self.node.handle_packet(t, d.addr, &d.name, &d.bytes) {
            metrics::input_error(e.label());
            tracing::debug!(peer = %d.name, error = %e, "refused a datagram");
        }
    }

    fn on_stream(&mut self, t: Instant, m: StreamMessage) {
        self.connections.touch(t, &m.name);
        if let Err(e) = self.node.handle_stream(t, m.addr, &m.name, &m.bytes) {
            metrics::input_error(e.label());
            if e.label() == "cluster_mismatch" {
                self.refuse_other_cluster(t, &m, &e);
            } else {
                tracing::debug!(peer = %m.name, error = %e, "refused a stream message");
            }
        }
        // Handled: its bytes leave the budgets.
        drop(m.held);
    }

    /// A push-pull from a member of another cluster holding our CA (an operator's mistake to
    /// name): counted, logged, and answered by closing the connection with
    /// [`CLOSE_CLUSTER_MISMATCH`] and our cluster name, so that the peer learns why no state
    /// comes back. The peer decides how often this happens: one line per period at most.
    fn refuse_other_cluster(&mut self, t: Instant, m: &StreamMessage, e: &swim_core::Error) {
        metrics::cluster_mismatch("us");
        let ours = &self.config.swim.cluster_name;
        let reason = format!("cluster_name differs: ours is {ours:?}");
        self.connections
            .close(&m.name, CLOSE_CLUSTER_MISMATCH, reason.as_bytes());
        if let Some(more_since_last) = self.peer_logs.allow("cluster_mismatch_us", t) {
            tracing::warn!(
                peer = %m.name, addr = %m.addr, error = %e, more_since_last,
                "refused a push-pull from another cluster (cluster_name differs); closed the connection to tell the peer"
            );
        }
    }

    /// A peer closed a connection with [`CLOSE_CLUSTER_MISMATCH`]: it refused our push-pull
    /// (a join, if it was a seed) because its cluster name is not ours. Counted and logged
    /// with what the peer says its name is (at most one line per period).
    fn refused_as_other_cluster(&mut self, t: Instant, peer: &str, said: &[u8]) {
        metrics::cluster_mismatch("peer");
        if let Some(more_since_last) = self.peer_logs.allow("cluster_mismatch_peer", t) {
            // The peer's own words: escaped (`?`) and cut to a name's length.
            let said = String::from_utf8_lossy(&said[..said.len().min(300)]);
            tracing::warn!(
                peer = %peer, ours = %self.config.swim.cluster_name, peer_says = ?said,
                more_since_last,
                "a peer refused our push-pull: its cluster_name differs from ours, so we cannot join it"
            );
        }
    }

    fn on_control(&mut self, t: Instant, control: Control) {
        match control {
            Control::Connected {
                conn,
                name,
                dialled,
                outgoing,
            } => self.on_connected(t, conn, name, dialled, outgoing),
            Control::DialFailed { key, error } => {
                metrics::connect_failed(&error);
                if matches!(error, PeerError::Refused { .. }) {
                    self.refusals.refused_by_peer(&error);
                } else {
                    tracing::debug!(%error, "could not connect");
                }
                self.connections.drop_pending(&key);
            }
            Control::Closed { name, id, error } => {
                let peer = self.connections.closed(&name, id);
                let Some(error) = error else { return };
                if let Some(said) = connections::cluster_mismatch_close(&error) {
                    // Our certificate was accepted; our cluster name was not.
                    self.refused_as_other_cluster(t, &name, said);
                } else if let Some(peer) = peer.filter(|_| !connections::ordinary_close(&error)) {
                    // An outgoing connection that closes before the peer ever answered on
                    // it was refused (in TLS 1.3 the server judges our certificate after our
                    // side considers the handshake done): a failed connection, not an
                    // opened one. (Unless the peer closed it the ordinary way — it replaced
                    // or gave up on it, e.g. on learning that we restarted.)
                    let error = PeerError::from_connection(peer, &error);
                    metrics::connect_failed(&error);
                    self.refusals.refused_by_peer(&error);
                }
            }
        }
    }

    fn on_command(&mut self, t: Instant, cmd: Command) {
        match cmd {
            Command::Join(seeds) => self.node.join(t, &seeds),
            Command::SetMetadata(meta, reply) => {
                let _ = reply.send(self.node.set_metadata(t, &meta).map_err(NetError::from));
                self.outputs.members_changed();
            }
            Command::Broadcast(payload, reply) => {
                let _ = reply.send(self.node.broadcast(&payload).map_err(NetError::from));
            }
            Command::Leave(done) => {
                self.node.leave(t);
                self.outputs.members_changed();
                self.leave_waiters.push(done);
            }
            Command::Shutdown(done) => {
                self.connections.close_all();
                self.endpoint.close(0u32.into(), b"shutdown");
                self.stopped = Some(done);
            }
        }
    }

    fn on_connected(
        &mut self,
        t: Instant,
        conn: Connection,
        name: Arc<str>,
        dialled: Option<DialKey>,
        outgoing: bool,
    ) {
        if let Some(size) = conn.max_datagram_size() {
            if size < self.config.swim.max_datagram_size {
                self.node.set_max_datagram_size(size);
            }
        }
        peer_io::spawn_reader(
            conn.clone(),
            name.clone(),
            self.inbound.clone(),
            self.stream_limits,
            self.budget.for_peer(self.config.max_held_per_peer),
        );
        self.connections.adopt(t, conn, &name, outgoing);
        if let Some(m) = self.node.member(&name) {
            self.connections.set_identity(&name, (m.boot_id, m.addr));
        }
        self.connections
            .flush(t, dialled, &name, &self.outputs.wire);
    }

    /// Drains the node's outputs: transmits to the network, events to subscribers and
    /// metrics, and wakes leave waiters once the leave has spread.
    fn flush(&mut self) {
        let t = now();
        while let Some(transmit) = self.node.poll_transmit() {
            let (node, config) = (&self.node, &self.config);
            let reach = |t: &swim_core::Transmit| {
                let state = t.name.as_deref().and_then(|n| node.member_state(n));
                connections::reach(config, state, t.kind)
            };
            if let Some(dial) = self
                .connections
                .send(t, transmit, reach, &self.outputs.wire)
            {
                self.dial(dial);
            }
        }
        while let Some(rtt) = self.node.poll_probe_rtt() {
            metrics::record_rtt(rtt);
        }
        while let Some(d) = self.node.poll_push_pull_duration() {
            metrics::record_push_pull(d);
        }
        while let Some(event) = self.node.poll_event() {
            match &event {
                // A dead member's connection is closed: its process may restart at the same
                // address, and probes of the new one must not vanish into the old
                // connection until it idles out (the new process's stateless resets do not
                // match the old one's tokens). A suspect keeps its connection: a live one
                // refutes over it at no cost, a crashed one costs a datagram per probe,
                // where closing it made every probe and every helper's ping a dial (a padded
                // Initial and a padded close).
                Event::MemberDown { member, .. } => {
                    self.connections.close(&member.name, 0, b"dead");
                }
                // Back, or changed: a new process (restarted before it was declared dead)
                // or a new address. A connection silent for a probe interval may lead to
                // the predecessor, so it goes and the next message dials; one the member is
                // using is kept (the new process's own, once it has spoken).
                Event::MemberUp { member, .. } | Event::MemberUpdated { member } => {
                    if let Some(since) = t.checked_sub(self.config.swim.probe_interval) {
                        let identity = (member.boot_id, member.addr);
                        self.connections
                            .member_changed(&member.name, identity, since);
                    }
                }
                _ => {}
            }
            self.outputs.event(event);
        }
        self.outputs.publish_members(&self.node);
        if !self.leave_waiters.is_empty() && self.node.leave_spread() {
            for w in self.leave_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    /// Starts a dial; its transport settings follow the cluster's current size (the idle
    /// timeout is derived from it).
    fn dial(&mut self, dial: Dial) {
        let members = self.node.member_count(MemberState::Alive)
            + self.node.member_count(MemberState::Suspect);
        let idle = self.config.idle_timeout_for(members);
        let client = match self.connections.client_transport(&self.config, idle) {
            Ok(transport) => self.crypto.client_config(transport),
            Err(e) => {
                // Validated at start; a setting QUIC refuses later is a bug, not a peer's.
                tracing::error!(error = %e, "BUG! no transport settings for a dial");
                metrics::connect_failed(&PeerError::CannotDial {
                    peer: dial.to,
                    reason: e.to_string(),
                });
                self.connections.drop_pending(&dial.key);
                return;
            }
        };
        let (control, refusals) = (self.inbound.control.clone(), self.refusals.clone());
        connections::spawn_dial(&self.endpoint, client, dial, control, refusals);
    }

    fn record_stats(&mut self) {
        metrics::record_node(&self.node, &mut self.recorded);
        let wire = self.outputs.wire.snapshot();
        metrics::record_wire(&wire, &mut self.recorded_wire);
        metrics::gauge_connections(self.connections.len());
        self.outputs.publish_stats(&self.node);
    }

    /// Every reload tick: closes connections whose peer's certificate has expired or is no
    /// longer vouched for by the CA (as loaded now), then reloads changed files (and checks
    /// again under the new CA).
    fn maybe_reload(&mut self) {
        self.close_unvouched(false);
        if !self.watch.changed() {
            return;
        }
        self.reload();
        self.close_unvouched(true);
    }

    /// Closes connections whose peer's certificate expired; with `recheck`, also those the
    /// CA as loaded now does not vouch for (a chain verification per connection, so only
    /// when the files changed).
    fn close_unvouched(&mut self, recheck: bool) {
        let trust = self.trust.clone();
        let check = |name: &str, chain: &[rustls::pki_types::CertificateDer<'static>]| {
            trust.vouches(name, chain).map_err(|e| e.0)
        };
        let closed = self
            .connections
            .close_unvouched(recheck.then_some(&check as _));
        for (peer, why) in closed {
            metrics::connection_closed("credentials");
            tracing::warn!(peer = %peer, reason = %why, "closed a connection: the peer's certificate is no longer valid");
        }
    }

    fn reload(&mut self) {
        match identity::reload(
            &self.config,
            &self.refusals,
            &self.outputs.wire,
            &self.trust,
        ) {
            Ok((crypto, server)) => {
                self.endpoint.set_server_config(Some(server));
                self.crypto = crypto;
                // Announce the new certificate: the node's claims are signed with its key
                // from now on.
                let dropped = self.node.recheck_credentials(now());
                if dropped > 0 {
                    tracing::warn!(dropped, "the new CA no longer vouches for some members' certificates: their claims are refused");
                }
                match self.node.renew_credential(now()) {
                    Ok(()) => tracing::info!("reloaded TLS credentials"),
                    Err(e) => {
                        tracing::warn!(error = %e, "reloaded TLS credentials, but claims still carry the old ones")
                    }
                }
            }
            Err(e) => tracing::warn!(
                error = %e,
                "TLS files changed but could not be loaded; keeping the old ones"
            ),
        }
    }
}
