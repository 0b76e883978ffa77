//! The tokio driver: one task owns the `Node` and the connection cache, feeds the node what
//! the network and the API bring, and sends what the node polls out. Connection tasks only
//! move bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::{Connection, Endpoint, TransportConfig};
use swim_core::{Event, MemberInfo, MemberState, Node, Transmit};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::ClusterConfig;
use crate::error::NetError;
use crate::metrics;
use crate::tls::{self, Credentials, FileWatch, Refusals};
use crate::transport::QuicCrypto;

/// Messages waiting for a connection that is being dialled, per peer, at most.
const MAX_PENDING_PER_PEER: usize = 64;

/// Two connections to one peer established within this long of each other are a dialling
/// race (both sides dialled at once), settled the same way on both sides; a later one
/// replaces the earlier (the peer may have restarted).
const DIAL_RACE_WINDOW: Duration = Duration::from_secs(1);

/// What reaches the driver task.
pub(crate) enum Input {
    Datagram {
        name: Arc<str>,
        addr: SocketAddr,
        bytes: Bytes,
    },
    Stream {
        name: Arc<str>,
        addr: SocketAddr,
        bytes: Vec<u8>,
    },
    Connected {
        conn: Connection,
        name: Arc<str>,
        dialled: Option<DialKey>,
        outgoing: bool,
    },
    DialFailed {
        key: DialKey,
    },
    Closed {
        name: Arc<str>,
        id: usize,
    },
    Command(Command),
}

/// API calls from the [`Cluster`](crate::Cluster) handle.
pub(crate) enum Command {
    Join(Vec<SocketAddr>),
    SetMetadata(Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    Broadcast(Vec<u8>, oneshot::Sender<Result<(), NetError>>),
    Leave(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// A dial in progress is known by the peer's name, or by address for a seed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DialKey {
    Name(Arc<str>),
    Addr(SocketAddr),
}

struct CachedConnection {
    conn: Connection,
    last_used: Instant,
    established: Instant,
    /// We dialled it (we are the QUIC client).
    outgoing: bool,
    datagrams: DatagramLedger,
}

/// What happened to the SWIM datagrams handed to one connection, to show whether QUIC
/// ever holds one back (for half a probe timeout or more). quinn sends a connection's datagrams in order, so comparing how many
/// were handed over with how many it has transmitted finds the ones still waiting.
#[derive(Default)]
struct DatagramLedger {
    /// Datagrams handed to quinn.
    enqueued: u64,
    /// Datagrams quinn dropped from a full send buffer (at least one per overflowing send).
    dropped: u64,
    /// `enqueued` at the previous check.
    enqueued_at_check: u64,
    /// Datagrams up to this index were already checked for delay.
    checked_upto: u64,
}

impl DatagramLedger {
    /// Counts the datagrams handed over before the previous check and still not sent: held
    /// back by QUIC for at least one check period. Returns how many are newly found.
    fn newly_delayed(&mut self, transmitted: u64) -> u64 {
        let gone = transmitted + self.dropped;
        let old = self.enqueued_at_check;
        let first_unchecked = gone.max(self.checked_upto);
        let delayed = old.saturating_sub(first_unchecked);
        self.checked_upto = self.checked_upto.max(old);
        self.enqueued_at_check = self.enqueued;
        delayed
    }

    /// Whether some datagram has not yet been checked (otherwise the connection's stats
    /// need not be read).
    fn unchecked(&self) -> bool {
        self.checked_upto < self.enqueued
    }
}

/// Outputs the handle reads without asking the driver.
pub(crate) struct Shared {
    pub members: watch::Sender<Arc<Vec<MemberInfo>>>,
    pub joined: watch::Sender<bool>,
    pub events: broadcast::Sender<Event>,
    pub stats: watch::Sender<swim_core::Stats>,
    pub wire: Arc<crate::accounting::WireCounters>,
}

pub(crate) struct Driver {
    node: Node,
    config: ClusterConfig,
    endpoint: Endpoint,
    crypto: QuicCrypto,
    /// The transport settings of the last dial, reused while the derived idle timeout holds.
    client_transport: Option<(Duration, Arc<TransportConfig>)>,
    refusals: Refusals,
    watch: FileWatch,
    tx: mpsc::UnboundedSender<Input>,
    rx: mpsc::UnboundedReceiver<Input>,
    conns: HashMap<Arc<str>, CachedConnection>,
    pending: HashMap<DialKey, Vec<Transmit>>,
    leave_waiters: Vec<oneshot::Sender<()>>,
    shared: Shared,
    members_dirty: bool,
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
        watch: FileWatch,
        (tx, rx): (mpsc::UnboundedSender<Input>, mpsc::UnboundedReceiver<Input>),
        shared: Shared,
    ) -> Self {
        Self {
            node,
            config,
            endpoint,
            crypto,
            client_transport: None,
            refusals,
            watch,
            tx,
            rx,
            conns: HashMap::new(),
            pending: HashMap::new(),
            leave_waiters: Vec::new(),
            shared,
            members_dirty: true,
            recorded: swim_core::Stats::default(),
            recorded_wire: crate::accounting::WireStats::default(),
        }
    }

    pub(crate) async fn run(mut self) {
        let mut reload = tokio::time::interval(self.config.reload_interval);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
        let held_period = self.held_check_period();
        let mut held_checked = now();
        loop {
            let deadline = self.node.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = self.rx.recv() => match input {
                    Some(Input::Command(Command::Shutdown(done))) => {
                        self.close_all();
                        let _ = done.send(());
                        return;
                    }
                    Some(input) => self.on_input(input),
                    None => return,
                },
                _ = sleep => self.node.handle_timeout(now()),
                _ = reload.tick() => self.maybe_reload(),
                _ = stats_tick.tick() => {
                    metrics::record_node(&self.node, &mut self.recorded);
                    metrics::record_wire(&self.shared.wire.snapshot(), &mut self.recorded_wire);
                    metrics::gauge_connections(self.conns.len());
                    let _ = self.shared.stats.send(self.node.stats());
                }
            }
            self.flush();
            // Checked on the wake-ups the driver has anyway (every probe, every packet, the
            // stats tick each second) rather than on a timer of its own: at most one check
            // per period, and no extra wake-up.
            if now().duration_since(held_checked) >= held_period {
                held_checked = now();
                self.check_datagram_delays();
            }
        }
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Datagram { name, addr, bytes } => {
                self.touch(&name);
                if let Err(e) = self.node.handle_packet(now(), addr, &name, &bytes) {
                    metrics::record_input_error(&e);
                    tracing::debug!(peer = %name, error = %e, "refused a datagram");
                }
            }
            Input::Stream { name, addr, bytes } => {
                self.touch(&name);
                if let Err(e) = self.node.handle_stream(now(), addr, &name, &bytes) {
                    metrics::record_input_error(&e);
                    tracing::debug!(peer = %name, error = %e, "refused a stream message");
                }
            }
            Input::Connected {
                conn,
                name,
                dialled,
                outgoing,
            } => self.on_connected(conn, name, dialled, outgoing),
            Input::DialFailed { key } => {
                ::metrics::counter!("swim_connect_failures_total").increment(1);
                self.drop_pending(&key);
            }
            Input::Closed { name, id } => {
                if self
                    .conns
                    .get(&name)
                    .is_some_and(|c| c.conn.stable_id() == id)
                {
                    self.conns.remove(&name);
                }
            }
            Input::Command(cmd) => self.on_command(cmd),
        }
    }

    fn on_command(&mut self, cmd: Command) {
        let t = now();
        match cmd {
            Command::Join(seeds) => self.node.join(t, &seeds),
            Command::SetMetadata(meta, reply) => {
                let _ = reply.send(self.node.set_metadata(t, &meta).map_err(NetError::from));
                self.members_dirty = true;
            }
            Command::Broadcast(payload, reply) => {
                let _ = reply.send(self.node.broadcast(&payload).map_err(NetError::from));
            }
            Command::Leave(done) => {
                self.node.leave(t);
                self.members_dirty = true;
                self.leave_waiters.push(done);
            }
            Command::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    fn on_connected(
        &mut self,
        conn: Connection,
        name: Arc<str>,
        dialled: Option<DialKey>,
        outgoing: bool,
    ) {
        if let Some(DialKey::Name(expected)) = &dialled {
            if *expected != name {
                // The certificate was valid for the expected name but proves another first:
                // never hand this peer what was meant for someone else.
                conn.close(1u32.into(), b"unexpected identity");
                self.refusals.refuse(
                    "name_mismatch",
                    &format!("dialled {expected}, peer proves {name}"),
                );
                self.drop_pending(&DialKey::Name(expected.clone()));
                return;
            }
        }
        let direction = if outgoing { "out" } else { "in" };
        ::metrics::counter!("swim_connections_opened_total", "direction" => direction).increment(1);
        if let Some(size) = conn.max_datagram_size() {
            if size < self.config.swim.max_datagram_size {
                self.node.set_max_datagram_size(size);
            }
        }
        spawn_reader(
            conn.clone(),
            name.clone(),
            self.tx.clone(),
            self.config.max_stream_size,
        );
        let t = now();
        if let Some(existing) = self.conns.get(&name) {
            if self.keep_existing(existing, &name, outgoing, t) {
                // Both sides dialled at once: the other side keeps the same connection,
                // so this one is closed (its reader delivers anything already on it).
                conn.close(0u32.into(), b"duplicate");
                ::metrics::counter!("swim_connections_replaced_total").increment(1);
                self.flush_pending(dialled, &name);
                return;
            }
        }
        let replaced = self.conns.insert(
            name.clone(),
            CachedConnection {
                conn: conn.clone(),
                last_used: t,
                established: t,
                outgoing,
                datagrams: DatagramLedger::default(),
            },
        );
        if let Some(old) = replaced {
            // Closed, not left to idle out: the peer sees it go and drops it too, so the two
            // sides never keep different connections (each would then carry one-way
            // traffic and ACK-only packets).
            if old.conn.close_reason().is_none() {
                old.conn.close(0u32.into(), b"replaced");
                ::metrics::counter!("swim_connections_replaced_total").increment(1);
            }
        }
        self.evict_beyond_bound();
        self.flush_pending(dialled, &name);
    }

    /// Whether a live cached connection to `name` wins over a new one (the new one is
    /// `outgoing` if we dialled it). Within the race window both sides keep the connection
    /// dialled by the member whose name sorts first; after it, the newer one wins.
    fn keep_existing(
        &self,
        existing: &CachedConnection,
        name: &str,
        outgoing: bool,
        now: Instant,
    ) -> bool {
        if existing.conn.close_reason().is_some()
            || now.duration_since(existing.established) >= DIAL_RACE_WINDOW
            || existing.outgoing == outgoing
        {
            return false;
        }
        let me = self.config.name.as_str();
        let dialler = |out: bool| if out { me } else { name };
        dialler(existing.outgoing) < dialler(outgoing)
    }

    /// Sends what waited for a connection to this peer.
    fn flush_pending(&mut self, dialled: Option<DialKey>, name: &Arc<str>) {
        let mut waiting = dialled
            .and_then(|k| self.pending.remove(&k))
            .unwrap_or_default();
        waiting.extend(
            self.pending
                .remove(&DialKey::Name(name.clone()))
                .unwrap_or_default(),
        );
        for t in waiting {
            self.send_on(name, t);
        }
    }

    /// Forgets the messages that waited for a connection that will not come, counting them.
    fn drop_pending(&mut self, key: &DialKey) {
        let dropped = self.pending.remove(key).map_or(0, |p| p.len());
        ::metrics::counter!("swim_transmit_failures_total", "reason" => "connect_failed")
            .increment(dropped as u64);
    }

    fn touch(&mut self, name: &Arc<str>) {
        if let Some(c) = self.conns.get_mut(name) {
            c.last_used = now();
        }
    }

    fn evict_beyond_bound(&mut self) {
        while self.conns.len() > self.config.max_connections {
            let Some(oldest) = self
                .conns
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(n, _)| n.clone())
            else {
                return;
            };
            if let Some(c) = self.conns.remove(&oldest) {
                c.conn.close(0u32.into(), b"evicted");
            }
        }
    }

    /// Drains the node's outputs: transmits to the network, events to subscribers and
    /// metrics, and wakes leave waiters once the leave has spread.
    fn flush(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            self.transmit(t);
        }
        while let Some(rtt) = self.node.poll_probe_rtt() {
            metrics::record_rtt(rtt);
        }
        while let Some(event) = self.node.poll_event() {
            metrics::record_event(&event);
            if let Event::MemberSuspect { member, .. } | Event::MemberDown { member, .. } = &event {
                // The peer may have crashed and restarted at the same address: a cached
                // connection to the old process would swallow every probe of the new one
                // until it idles out. The next message dials afresh.
                if let Some(c) = self.conns.remove(&member.name) {
                    c.conn.close(0u32.into(), b"suspected");
                }
            }
            log_event(&event);
            self.members_dirty = true;
            if matches!(event, Event::Joined) {
                let _ = self.shared.joined.send(true);
            }
            let _ = self.shared.events.send(event);
        }
        if self.members_dirty {
            self.members_dirty = false;
            let _ = self.shared.members.send(Arc::new(self.node.members()));
        }
        if !self.leave_waiters.is_empty() && self.node.leave_spread() {
            for w in self.leave_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    fn transmit(&mut self, t: Transmit) {
        let cached = match &t.name {
            Some(name) => self.conns.contains_key(name).then(|| name.clone()),
            None => self
                .conns
                .iter()
                .find(|(_, c)| c.conn.remote_address() == t.to)
                .map(|(n, _)| n.clone()),
        };
        if let Some(name) = cached {
            self.send_on(&name, t);
            return;
        }
        let key = match &t.name {
            Some(n) => DialKey::Name(n.clone()),
            None => DialKey::Addr(t.to),
        };
        let (to, server_name) = (
            t.to,
            t.name
                .as_deref()
                .unwrap_or(tls::SEED_SERVER_NAME)
                .to_string(),
        );
        let queue = self.pending.entry(key.clone()).or_default();
        let first = queue.is_empty();
        if queue.len() >= MAX_PENDING_PER_PEER {
            let _dropped = queue.remove(0);
            ::metrics::counter!("swim_transmit_failures_total", "reason" => "pending_full")
                .increment(1);
        }
        queue.push(t);
        if first {
            self.dial(key, to, server_name);
        }
    }

    /// The transport settings for a connection dialled now: the idle timeout follows the
    /// cluster's current size.
    fn client_config(&mut self) -> Result<quinn::ClientConfig, NetError> {
        let members = self.node.member_count(MemberState::Alive)
            + self.node.member_count(MemberState::Suspect);
        let idle = self.config.idle_timeout_for(members);
        let transport = match &self.client_transport {
            Some((d, t)) if *d == idle => t.clone(),
            _ => {
                let t = crate::transport::transport(&self.config.quic, idle)?;
                self.client_transport = Some((idle, t.clone()));
                t
            }
        };
        Ok(self.crypto.client_config(transport))
    }

    fn dial(&mut self, key: DialKey, to: SocketAddr, server_name: String) {
        let (tx, refusals) = (self.tx.clone(), self.refusals.clone());
        let give_up = self.config.dial_timeout();
        let connecting = self
            .client_config()
            .map_err(|e| e.to_string())
            .and_then(|c| {
                self.endpoint
                    .connect_with(c, to, &server_name)
                    .map_err(|e| e.to_string())
            });
        tokio::spawn(async move {
            // A dial to a member that is gone would otherwise resend its Initial packets
            // until the idle timeout; dropping it closes the attempt.
            let result = match connecting {
                Ok(c) => match tokio::time::timeout(give_up, c).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no handshake within {give_up:?}")),
                },
                Err(e) => Err(e),
            };
            let input = match result.map(|conn| (peer_name(&conn, &refusals), conn)) {
                Ok((Some(name), conn)) => Input::Connected {
                    conn,
                    name,
                    dialled: Some(key),
                    outgoing: true,
                },
                Ok((None, conn)) => {
                    conn.close(1u32.into(), b"no identity");
                    Input::DialFailed { key }
                }
                Err(e) => {
                    tracing::debug!(%to, error = %e, "could not connect");
                    Input::DialFailed { key }
                }
            };
            let _ = tx.send(input);
        });
    }

    /// Sends on the cached connection to `name` (which must exist).
    fn send_on(&mut self, name: &Arc<str>, t: Transmit) {
        let Some(cached) = self.conns.get_mut(name) else {
            return;
        };
        cached.last_used = now();
        let conn = cached.conn.clone();
        let payload = Bytes::from(t.payload);
        let fits = conn
            .max_datagram_size()
            .is_some_and(|max| payload.len() <= max);
        if !t.reliable && fits {
            let len = payload.len();
            if conn.datagram_send_buffer_space() < len {
                // quinn makes room by dropping the oldest waiting datagram(s).
                cached.datagrams.dropped += 1;
                self.shared
                    .wire
                    .datagrams_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            match conn.send_datagram(payload) {
                Ok(()) => cached.datagrams.enqueued += 1,
                Err(e) => {
                    tracing::debug!(error = %e, "datagram not sent");
                    ::metrics::counter!("swim_transmit_failures_total", "reason" => "datagram")
                        .increment(1);
                }
            }
            return;
        }
        // Reliable messages, and the rare datagram larger than this path allows, go on a
        // stream of their own, delimited by the stream's end.
        tokio::spawn(async move {
            let sent = async {
                let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
                stream
                    .write_all(&payload)
                    .await
                    .map_err(|e| e.to_string())?;
                stream.finish().map_err(|e| e.to_string())
            };
            if let Err(e) = sent.await {
                tracing::debug!(error = %e, "stream message not sent");
                ::metrics::counter!("swim_transmit_failures_total", "reason" => "stream")
                    .increment(1);
            }
        });
    }

    /// How often (at most) queued SWIM datagrams are checked for being held back: half a
    /// probe timeout, so any hold long enough to cost a probe is seen (a datagram is handed
    /// over on a wake-up, and the next ones follow within a probe interval or the stats tick).
    fn held_check_period(&self) -> Duration {
        (self.config.swim.probe_timeout / 2).max(Duration::from_millis(10))
    }

    /// Finds SWIM datagrams QUIC has held back since the previous check (half a probe
    /// timeout ago): each is checked once, at the first check a full period after it was
    /// handed over.
    fn check_datagram_delays(&mut self) {
        let mut delayed = 0;
        for c in self.conns.values_mut() {
            if !c.datagrams.unchecked() {
                continue;
            }
            let transmitted = c.conn.stats().frame_tx.datagram;
            delayed += c.datagrams.newly_delayed(transmitted);
        }
        self.shared
            .wire
            .datagrams_delayed
            .fetch_add(delayed, Ordering::Relaxed);
    }

    fn maybe_reload(&mut self) {
        if !self.watch.changed() {
            return;
        }
        let loaded = Credentials::load(self.watch.files(), &self.config.name).and_then(|creds| {
            let crypto = QuicCrypto::new(&creds, &self.refusals, &self.config, &self.shared.wire)?;
            let server = crypto.server_config(&self.config)?;
            Ok((crypto, server))
        });
        match loaded {
            Ok((crypto, server)) => {
                // New connections use the new credentials (and new session caches, so no
                // session of the old certificate is resumed); open ones keep theirs.
                self.endpoint.set_server_config(Some(server));
                self.crypto = crypto;
                tracing::info!("reloaded TLS credentials")
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS files changed but could not be loaded; keeping the old ones")
            }
        }
    }

    fn close_all(&mut self) {
        for (_, c) in self.conns.drain() {
            c.conn.close(0u32.into(), b"shutdown");
        }
        self.endpoint.close(0u32.into(), b"shutdown");
    }
}

/// The peer's node name, from the certificate the handshake verified — or, for a resumed
/// TLS session, verified when the session was first established. Resumption skips the
/// verifier, so the certificate's validity period is checked again here: a peer whose
/// certificate has expired since is refused (counted as `expired`), however fresh its
/// ticket.
pub(crate) fn peer_name(conn: &Connection, refusals: &Refusals) -> Option<Arc<str>> {
    let identity = conn.peer_identity()?;
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    let leaf = chain.first()?;
    if !tls::within_validity(leaf) {
        refusals.refuse(
            "expired",
            &"a resumed session's certificate is no longer valid",
        );
        return None;
    }
    tls::node_name_of(leaf).map(Arc::from)
}

/// Forwards a connection's datagrams and stream messages to the driver until it closes.
fn spawn_reader(
    conn: Connection,
    name: Arc<str>,
    tx: mpsc::UnboundedSender<Input>,
    max_stream: usize,
) {
    tokio::spawn(async move {
        let addr = conn.remote_address();
        loop {
            tokio::select! {
                d = conn.read_datagram() => match d {
                    Ok(bytes) => {
                        if tx.send(Input::Datagram { name: name.clone(), addr, bytes }).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                },
                s = conn.accept_uni() => match s {
                    Ok(mut stream) => {
                        let (tx, name) = (tx.clone(), name.clone());
                        tokio::spawn(async move {
                            match stream.read_to_end(max_stream).await {
                                Ok(bytes) => { let _ = tx.send(Input::Stream { name, addr, bytes }); }
                                Err(e) => {
                                    ::metrics::counter!("swim_input_errors_total", "reason" => "stream_read").increment(1);
                                    tracing::debug!(peer = %name, error = %e, "stream message not read");
                                }
                            }
                        });
                    }
                    Err(_) => break,
                },
            }
        }
        let _ = tx.send(Input::Closed {
            name,
            id: conn.stable_id(),
        });
    });
}

fn log_event(event: &Event) {
    match event {
        Event::Joined => tracing::info!("joined the cluster"),
        Event::MemberUp {
            member,
            after_false_death,
        } => tracing::info!(
            member = %member.name, addr = %member.addr, incarnation = member.incarnation,
            after_false_death, "member up"
        ),
        Event::MemberUpdated { member } => tracing::info!(
            member = %member.name, incarnation = member.incarnation, "member updated"
        ),
        Event::MemberSuspect { member, accuser } => tracing::info!(
            member = %member.name, incarnation = member.incarnation, accuser = %accuser, "member suspect"
        ),
        Event::SuspicionRefuted {
            member,
            suspected_for,
        } => tracing::info!(
            member = %member.name, incarnation = member.incarnation,
            suspected_for_s = suspected_for.as_secs_f64(), "suspicion refuted"
        ),
        Event::MemberDown {
            member,
            since_last_alive,
            since_suspected,
            by_us,
        } => tracing::info!(
            member = %member.name, incarnation = member.incarnation,
            since_last_alive_s = since_last_alive.as_secs_f64(),
            since_suspected_s = since_suspected.map(|d| d.as_secs_f64()), by_us, "member dead"
        ),
        Event::MemberLeft { member } => tracing::info!(member = %member.name, "member left"),
        Event::MemberReaped { name } => tracing::debug!(member = %name, "tombstone reaped"),
        Event::NameConflict { name, other_addr } => tracing::error!(
            name = %name, other_addr = %other_addr, "another live process uses this node's name"
        ),
        Event::UserBroadcast { .. } => {}
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::DatagramLedger;

    #[test]
    fn a_datagram_still_unsent_a_period_later_counts_once_as_delayed() {
        let mut l = DatagramLedger {
            enqueued: 3,
            ..DatagramLedger::default()
        };
        // First check: nothing is a period old yet.
        assert_eq!(l.newly_delayed(1), 0);
        // A period later two of the three are still waiting.
        assert_eq!(l.newly_delayed(1), 2);
        // Still waiting: not counted again.
        l.enqueued = 4;
        assert_eq!(l.newly_delayed(1), 0);
        assert!(l.unchecked());
        // All sent by the next check.
        assert_eq!(l.newly_delayed(4), 0);
        assert!(!l.unchecked());
    }

    #[test]
    fn datagrams_sent_promptly_are_never_delayed() {
        let mut l = DatagramLedger::default();
        for sent in 1..10 {
            l.enqueued = sent;
            assert_eq!(l.newly_delayed(sent), 0);
        }
    }
}
