//! The embedding API: [`Cluster`], a handle on one running member, and [`Watcher`], a
//! read-only view of it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use swim_core::{Event, MemberInfo, Node, Stats};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::accounting::{WireCounters, WireStats};
use crate::config::ClusterConfig;
use crate::driver::{Command, Driver, Queues};
use crate::endpoint;
use crate::error::NetError;
use crate::events::Outputs;

/// Events buffered per subscriber before the slowest one starts missing some.
const EVENT_BUFFER: usize = 4096;

/// A running cluster member: SWIM over QUIC with mutual TLS.
///
/// Dropping the handle stops the member abruptly (no leave: the others will detect it as
/// failed); call [`leave`](Self::leave) then [`shutdown`](Self::shutdown) to go gracefully.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    local_addr: SocketAddr,
    advertise: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    members: watch::Receiver<Arc<Vec<MemberInfo>>>,
    joined: watch::Receiver<bool>,
    events: broadcast::Sender<Event>,
    stats: watch::Receiver<Stats>,
    wire: Arc<WireCounters>,
    endpoint: quinn::Endpoint,
    driver: Option<JoinHandle<()>>,
    acceptor: JoinHandle<()>,
    #[cfg(feature = "impairment")]
    silence: Arc<std::sync::atomic::AtomicBool>,
}

impl Cluster {
    /// Loads the TLS files, binds the QUIC endpoint and starts the member (alone until
    /// [`join`](Self::join)). Must be called inside a tokio runtime.
    pub async fn start(config: ClusterConfig) -> Result<Self, NetError> {
        config.validate()?;
        let seed = match config.seed {
            Some(s) => s,
            None => getrandom::u64().map_err(NetError::Entropy)?,
        };
        let bound = endpoint::bind(&config)?;
        let advertise = config.advertise.unwrap_or(bound.local_addr);
        // The connection's ALPN fixes the protocol version: no version byte in packets.
        let mut swim = config.swim.clone();
        swim.framing = swim_core::Framing::Session;
        let trust: Arc<dyn swim_core::Trust> = bound.trust.clone();
        let node = Node::with_trust(Instant::now(), &config.name, advertise, swim, seed, trust)?;
        crate::metric_families::describe();

        let (inbound, commands, queues) = Queues::new(&config);
        let (members_tx, members) = watch::channel(Arc::new(node.members()));
        let (joined_tx, joined) = watch::channel(false);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (stats_tx, stats) = watch::channel(node.stats());
        let wire = bound.wire.clone();
        let outputs = Outputs::new(
            members_tx,
            joined_tx,
            events.clone(),
            stats_tx,
            wire.clone(),
        );
        let acceptor = tokio::spawn(endpoint::accept_loop(
            bound.endpoint.clone(),
            inbound.control.clone(),
            bound.refusals.clone(),
        ));
        let name = config.name.clone();
        let driver = Driver::new(
            node,
            config,
            bound.endpoint.clone(),
            bound.crypto,
            bound.refusals,
            bound.trust,
            (inbound, queues),
            outputs,
        );
        let driver = tokio::spawn(driver.run());
        Ok(Self {
            name,
            local_addr: bound.local_addr,
            advertise,
            commands,
            members,
            joined,
            events,
            stats,
            wire,
            endpoint: bound.endpoint,
            driver: Some(driver),
            acceptor,
            #[cfg(feature = "impairment")]
            silence: bound.silence,
        })
    }

    /// Stops the member as a crash would (`kill -9`, a lost host): its socket goes silent
    /// first, so its peers get no CONNECTION_CLOSE and find out only by probing, as they
    /// would in production. Dropping the handle instead closes the QUIC endpoint, which
    /// tells every peer at once. For benchmarks and tests.
    #[cfg(feature = "impairment")]
    pub fn crash(self) {
        self.silence
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// This member's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address other members use.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.advertise
    }

    /// Starts joining through these seeds (retried with backoff until one answers). With no
    /// seeds the member starts a new cluster.
    pub fn join(&self, seeds: &[SocketAddr]) -> Result<(), NetError> {
        self.command(Command::Join(seeds.to_vec()))
    }

    /// Waits until a seed answered the join.
    pub async fn joined(&self) -> Result<(), NetError> {
        let mut joined = self.joined.clone();
        joined
            .wait_for(|j| *j)
            .await
            .map(|_| ())
            .map_err(|_| NetError::Closed)
    }

    /// Whether a seed answered the join.
    pub fn is_joined(&self) -> bool {
        *self.joined.borrow()
    }

    /// This member's current view, itself and tombstones included.
    pub fn members(&self) -> Arc<Vec<MemberInfo>> {
        self.members.borrow().clone()
    }

    /// A stream of membership events from now on. A subscriber more than 4096 events
    /// behind misses the oldest (`RecvError::Lagged`).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The protocol core's counters (messages and bytes by type, probes, suspicions, …),
    /// refreshed every second.
    pub fn stats(&self) -> Stats {
        *self.stats.borrow()
    }

    /// Datagrams and bytes through this member's UDP socket, what it really costs on the
    /// wire, and the cause of every byte sent (see [`WireCause`](crate::WireCause)).
    pub fn wire_stats(&self) -> WireStats {
        self.wire.snapshot()
    }

    /// Replaces this member's metadata and spreads it.
    pub async fn set_metadata(&self, metadata: Vec<u8>) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::SetMetadata(metadata, reply))?;
        rx.await.map_err(|_| NetError::Closed)?
    }

    /// Sends an application broadcast to every member (delivered once each as
    /// `Event::UserBroadcast`).
    pub async fn broadcast(&self, payload: Vec<u8>) -> Result<(), NetError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Broadcast(payload, reply))?;
        rx.await.map_err(|_| NetError::Closed)?
    }

    /// Leaves gracefully and waits, at most `timeout`, until the leave has been sent its full
    /// number of times. The member keeps answering probes until [`shutdown`](Self::shutdown).
    pub async fn leave(&self, timeout: Duration) -> Result<(), NetError> {
        let (done, rx) = oneshot::channel();
        self.command(Command::Leave(done))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NetError::Closed),
            Err(_) => Err(NetError::LeaveTimeout(timeout)),
        }
    }

    /// Stops the member: closes its connections and endpoint and waits for the driver.
    pub async fn shutdown(mut self) {
        let (done, rx) = oneshot::channel();
        if self.command(Command::Shutdown(done)).is_ok() {
            let _ = rx.await;
        }
        if let Some(driver) = self.driver.take() {
            let _ = driver.await;
        }
        self.acceptor.abort();
        self.endpoint.wait_idle().await;
    }

    /// A cheap, cloneable read-only view of this member (for an admin server or a UI).
    pub fn watcher(&self) -> Watcher {
        Watcher {
            name: self.name.clone(),
            members: self.members.clone(),
            joined: self.joined.clone(),
            stats: self.stats.clone(),
        }
    }

    fn command(&self, cmd: Command) -> Result<(), NetError> {
        self.commands.send(cmd).map_err(|_| NetError::Closed)
    }
}

/// A read-only view of a running member; see [`Cluster::watcher`].
#[derive(Clone, Debug)]
pub struct Watcher {
    name: String,
    members: watch::Receiver<Arc<Vec<MemberInfo>>>,
    joined: watch::Receiver<bool>,
    stats: watch::Receiver<Stats>,
}

impl Watcher {
    /// The member's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its current view, itself and tombstones included.
    pub fn members(&self) -> Arc<Vec<MemberInfo>> {
        self.members.borrow().clone()
    }

    /// Whether a seed answered its join.
    pub fn is_joined(&self) -> bool {
        *self.joined.borrow()
    }

    /// The protocol core's counters, refreshed every second.
    pub fn stats(&self) -> Stats {
        *self.stats.borrow()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            driver.abort();
        }
        self.acceptor.abort();
        self.endpoint.close(0u32.into(), b"");
    }
}
