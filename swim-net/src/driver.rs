//! The tokio driver: one task owns the `Node` and the connection cache, feeds the node what
//! the network and the API bring, and sends what the node polls out. Connection tasks only
//! move bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::{Connection, Endpoint};
use swim_core::{Event, MemberInfo, Node, Transmit};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::config::ClusterConfig;
use crate::error::NetError;
use crate::metrics;
use crate::tls::{self, Credentials, FileWatch, Refusals};

/// Messages waiting for a connection that is being dialled, per peer, at most.
const MAX_PENDING_PER_PEER: usize = 64;

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
}

/// Outputs the handle reads without asking the driver.
pub(crate) struct Shared {
    pub members: watch::Sender<Arc<Vec<MemberInfo>>>,
    pub joined: watch::Sender<bool>,
    pub events: broadcast::Sender<Event>,
    pub stats: watch::Sender<swim_core::Stats>,
    pub wire: Arc<crate::socket::WireCounters>,
}

pub(crate) struct Driver {
    node: Node,
    config: ClusterConfig,
    endpoint: Endpoint,
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
    recorded_wire: crate::socket::WireStats,
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
        refusals: Refusals,
        watch: FileWatch,
        tx: mpsc::UnboundedSender<Input>,
        rx: mpsc::UnboundedReceiver<Input>,
        shared: Shared,
    ) -> Self {
        Self {
            node,
            config,
            endpoint,
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
            recorded_wire: crate::socket::WireStats::default(),
        }
    }

    pub(crate) async fn run(mut self) {
        let mut reload = tokio::time::interval(self.config.reload_interval);
        reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
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
            Command::Join(seeds) => self.node.join(&seeds, t),
            Command::SetMetadata(meta, reply) => {
                let _ = reply.send(self.node.set_metadata(&meta, t).map_err(NetError::from));
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
        self.conns.insert(
            name.clone(),
            CachedConnection {
                conn: conn.clone(),
                last_used: now(),
            },
        );
        self.evict_beyond_bound();
        let mut waiting = dialled
            .and_then(|k| self.pending.remove(&k))
            .unwrap_or_default();
        waiting.extend(
            self.pending
                .remove(&DialKey::Name(name.clone()))
                .unwrap_or_default(),
        );
        for t in waiting {
            self.send_on(&conn, t);
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
            Some(name) => self.conns.get_mut(name),
            None => self
                .conns
                .values_mut()
                .find(|c| c.conn.remote_address() == t.to),
        };
        if let Some(c) = cached {
            c.last_used = now();
            let conn = c.conn.clone();
            self.send_on(&conn, t);
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

    fn dial(&self, key: DialKey, to: SocketAddr, server_name: String) {
        let tx = self.tx.clone();
        let connecting = self.endpoint.connect(to, &server_name);
        tokio::spawn(async move {
            let result = match connecting {
                Ok(c) => c.await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let input = match result.map(|conn| (peer_name(&conn), conn)) {
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

    fn send_on(&self, conn: &Connection, t: Transmit) {
        let fits = conn
            .max_datagram_size()
            .is_some_and(|max| t.payload.len() <= max);
        if !t.reliable && fits {
            if let Err(e) = conn.send_datagram(Bytes::from(t.payload)) {
                tracing::debug!(error = %e, "datagram not sent");
                ::metrics::counter!("swim_transmit_failures_total", "reason" => "datagram")
                    .increment(1);
            }
            return;
        }
        // Reliable messages, and the rare datagram larger than this path allows, go on a
        // stream of their own, delimited by the stream's end.
        let conn = conn.clone();
        tokio::spawn(async move {
            let sent = async {
                let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
                stream
                    .write_all(&t.payload)
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

    fn maybe_reload(&mut self) {
        if !self.watch.changed() {
            return;
        }
        match reload(
            &mut self.endpoint,
            self.watch.files(),
            &self.config,
            &self.refusals,
        ) {
            Ok(()) => tracing::info!("reloaded TLS credentials"),
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

/// Builds the QUIC configs from freshly loaded credentials and installs them: new
/// connections use them, open ones keep theirs.
pub(crate) fn reload(
    endpoint: &mut Endpoint,
    files: &tls::TlsFiles,
    config: &ClusterConfig,
    refusals: &Refusals,
) -> Result<(), NetError> {
    let creds = Credentials::load(files, &config.name)?;
    let (server, client) = crate::transport::quic_configs(&creds, refusals, config)?;
    endpoint.set_server_config(Some(server));
    endpoint.set_default_client_config(client);
    Ok(())
}

/// The peer's node name, from the certificate the handshake verified.
pub(crate) fn peer_name(conn: &Connection) -> Option<Arc<str>> {
    let identity = conn.peer_identity()?;
    let chain = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    tls::node_name_of(chain.first()?).map(Arc::from)
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
