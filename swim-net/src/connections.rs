//! The connection cache and dialling: one connection per pair of members, reused in both
//! directions, bounded (least recently used closed first), with dial races settled the same
//! way on both sides; messages wait (bounded) for a connection being dialled.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use quinn::{Connection, Endpoint, TransportConfig};
use rustls::pki_types::CertificateDer;
use swim_core::{MemberState, MessageKind, Transmit};
use tokio::sync::mpsc;

use crate::accounting::WireCounters;
use crate::config::ClusterConfig;
use crate::driver::Control;
use crate::error::{NetError, PeerError};
use crate::identity;
use crate::ledger::DatagramLedger;
use crate::metrics;
use crate::peer_io;
use crate::tls::{Refusals, SEED_SERVER_NAME};

/// QUIC application error code of a connection this member closed because the peer's
/// push-pull named another cluster; the close's reason says this member's cluster name. The
/// other codes: 0, an ordinary close (replaced, evicted, dead, member changed, shutdown, …);
/// 1, a peer that proved another identity than the one dialled, or none.
pub(crate) const CLOSE_CLUSTER_MISMATCH: u32 = 2;

/// The peer closed the connection in the ordinary way (application code 0): it replaced,
/// evicted or gave up on it — not a refusal of our certificate.
pub(crate) fn ordinary_close(e: &quinn::ConnectionError) -> bool {
    matches!(e, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == quinn::VarInt::from_u32(0))
}

/// What the peer said closing a connection with [`CLOSE_CLUSTER_MISMATCH`], if it did.
pub(crate) fn cluster_mismatch_close(e: &quinn::ConnectionError) -> Option<&[u8]> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c)
            if c.error_code == quinn::VarInt::from_u32(CLOSE_CLUSTER_MISMATCH) =>
        {
            Some(&c.reason)
        }
        _ => None,
    }
}

/// Messages waiting for a connection that is being dialled, per peer, at most.
const MAX_PENDING_PER_PEER: usize = 64;

/// Two connections to one peer established within this long of each other are a dialling
/// race (both sides dialled at once), settled the same way on both sides; a later one
/// replaces the earlier (the peer may have restarted).
const DIAL_RACE_WINDOW: Duration = Duration::from_secs(1);

/// A dial in progress is known by the peer's name, or by address for a seed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DialKey {
    Name(Arc<str>),
    Addr(SocketAddr),
}

/// A dial to start: where, the server name to check the peer's certificate against, and
/// when to give up.
#[derive(Debug)]
pub(crate) struct Dial {
    pub(crate) key: DialKey,
    pub(crate) to: SocketAddr,
    pub(crate) server_name: String,
    pub(crate) give_up: Duration,
}

/// What a message to a peer (in `state` in this node's view; `None`: not in it, e.g. a
/// seed) may cost when there is no open connection to it. A member that is not alive (its
/// connection was closed when it was declared dead, or idled out) is not dialled by gossip
/// rounds — a crashed member would otherwise be dialled by every round that picks it, each
/// dial a padded Initial resent until the dial gives up, then a padded close. Probe
/// traffic (pings, ping-reqs, acks, nacks) dials a suspect only for as long as a probe can
/// use the handshake, and a dead or departed member not at all; push-pulls and records, on
/// streams with their own deadlines, get the full dial — so a dead member is dialled at
/// the reconnect cadence only.
/// (A name conflict's direct gossip names this node itself, always alive: it dials.)
pub(crate) fn reach(
    config: &ClusterConfig,
    state: Option<MemberState>,
    kind: MessageKind,
) -> Reach {
    let full = Reach::Dial(config.dial_timeout());
    match (state, kind) {
        (None | Some(MemberState::Alive), _) => full,
        (Some(_), MessageKind::PushPull | MessageKind::Records) => full,
        (Some(_), MessageKind::Gossip) => Reach::OpenOnly,
        // Probe traffic (pings, ping-reqs, acks, nacks) to a suspect: as long as a probe
        // can use it.
        (Some(MemberState::Suspect), _) => Reach::Dial(config.suspect_dial_timeout()),
        // To a member held dead or gone: a helper relaying a probe that started before the
        // death, or a late answer. A live one behind that verdict has a connection of its
        // own to us when it speaks, and the reconnect push-pull reaches it otherwise.
        (Some(_), _) => Reach::OpenOnly,
    }
}

/// What a message to a peer with no open connection may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Dial the peer, giving up on the handshake after this long.
    Dial(Duration),
    /// Send only on a connection already open or being dialled; otherwise the message is
    /// dropped.
    OpenOnly,
}

struct Cached {
    conn: Connection,
    last_used: Instant,
    /// When the peer last sent something on it (or the handshake ended).
    last_heard: Instant,
    /// The peer's boot id and address in this node's view when last checked: a change of
    /// either is a new process, or one moved, that the connection may not lead to.
    identity: Option<(u32, SocketAddr)>,
    established: Instant,
    /// We dialled it (we are the QUIC client).
    outgoing: bool,
    /// The peer has sent something on it: it accepted our certificate. (An incoming one is
    /// accepted once we verified the peer.)
    accepted: bool,
    datagrams: DatagramLedger,
    /// When the peer's certificate expires (read once, when the connection is adopted).
    expires: Option<SystemTime>,
}

/// The certificate chain the peer's handshake presented.
fn peer_chain(conn: &Connection) -> Option<Vec<CertificateDer<'static>>> {
    let chain = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    Some(*chain)
}

/// Whether the CA as loaded now vouches for a peer's chain: `Err` says why not.
pub(crate) type Vouched<'a> = &'a dyn Fn(&str, &[CertificateDer<'static>]) -> Result<(), String>;

/// The cache of open connections by peer name, and the messages waiting for a dial.
pub(crate) struct Connections {
    my_name: Arc<str>,
    max: usize,
    open: HashMap<Arc<str>, Cached>,
    pending: HashMap<DialKey, Vec<Transmit>>,
    /// The transport settings of the last dial, reused while its idle timeout holds.
    client_transport: Option<(Duration, Arc<TransportConfig>)>,
}

impl Connections {
    pub(crate) fn new(my_name: &str, max: usize) -> Self {
        Self {
            my_name: Arc::from(my_name),
            max,
            open: HashMap::new(),
            pending: HashMap::new(),
            client_transport: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    /// Sends `t` on the cached connection to its peer, or — as far as `reach` allows — queues
    /// it for one; returns the dial to start when it is the first message waiting for that
    /// peer.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        t: Transmit,
        reach: impl FnOnce(&Transmit) -> Reach,
        wire: &WireCounters,
    ) -> Option<Dial> {
        let cached = match &t.name {
            Some(name) => self.open.get_mut(name),
            None => self
                .open
                .values_mut()
                .find(|c| c.conn.remote_address() == t.to),
        };
        if let Some(c) = cached {
            c.last_used = now;
            peer_io::send(&c.conn, &mut c.datagrams, wire, t.payload, t.reliable);
            return None;
        }
        let key = match &t.name {
            Some(n) => DialKey::Name(n.clone()),
            None => DialKey::Addr(t.to),
        };
        // With a dial under way the message waits for it, whatever its reach; otherwise
        // its reach decides whether it starts one (asked only here: most transmits find
        // their connection open).
        let dial = match self.pending.get(&key).filter(|q| !q.is_empty()) {
            Some(_) => None,
            None => match reach(&t) {
                Reach::Dial(give_up) => Some(Dial {
                    key: key.clone(),
                    to: t.to,
                    server_name: t.name.as_deref().unwrap_or(SEED_SERVER_NAME).to_string(),
                    give_up,
                }),
                Reach::OpenOnly => {
                    metrics::not_dialled(t.kind);
                    return None;
                }
            },
        };
        let queue = self.pending.entry(key).or_default();
        if queue.len() >= MAX_PENDING_PER_PEER {
            let _oldest = queue.remove(0);
            metrics::transmit_failed("pending_full", 1);
        }
        queue.push(t);
        dial
    }

    /// A connection to `name` is established (`outgoing`: we dialled it). Within the race
    /// window of an open one in the other direction, both sides keep the one dialled by the
    /// member whose name sorts first; otherwise the new one replaces the old, which is closed
    /// rather than left to idle out, so that the peer drops it too (two connections per pair
    /// would each carry one-way traffic and ACK-only packets).
    pub(crate) fn adopt(
        &mut self,
        now: Instant,
        conn: Connection,
        name: &Arc<str>,
        outgoing: bool,
    ) {
        if let Some(existing) = self.open.get(name) {
            if self.keep_existing(existing, name, outgoing, now) {
                // The other side keeps the same connection, so this one is closed (its
                // reader delivers anything already on it).
                conn.close(0u32.into(), b"duplicate");
                metrics::connection_replaced();
                return;
            }
        }
        let expires = peer_chain(&conn).and_then(|chain| identity::not_after(chain.first()?));
        let cached = Cached {
            expires,
            conn,
            last_used: now,
            last_heard: now,
            identity: None,
            established: now,
            outgoing,
            accepted: !outgoing,
            datagrams: DatagramLedger::default(),
        };
        if !outgoing {
            metrics::connection_opened(false);
        }
        if let Some(old) = self.open.insert(name.clone(), cached) {
            if old.conn.close_reason().is_none() {
                old.conn.close(0u32.into(), b"replaced");
                metrics::connection_replaced();
            }
        }
        self.evict_beyond_bound();
    }

    fn keep_existing(&self, existing: &Cached, name: &str, outgoing: bool, now: Instant) -> bool {
        if existing.conn.close_reason().is_some()
            || now.duration_since(existing.established) >= DIAL_RACE_WINDOW
            || existing.outgoing == outgoing
        {
            return false;
        }
        let me = &*self.my_name;
        let dialler = |out: bool| if out { me } else { name };
        dialler(existing.outgoing) < dialler(outgoing)
    }

    fn evict_beyond_bound(&mut self) {
        while self.open.len() > self.max {
            let Some(oldest) = self
                .open
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(n, _)| n.clone())
            else {
                return;
            };
            if let Some(c) = self.open.remove(&oldest) {
                c.conn.close(0u32.into(), b"evicted");
            }
        }
    }

    /// Sends what waited for a connection to `name` (dialled as `dialled`).
    pub(crate) fn flush(
        &mut self,
        now: Instant,
        dialled: Option<DialKey>,
        name: &Arc<str>,
        wire: &WireCounters,
    ) {
        let mut waiting = dialled
            .and_then(|k| self.pending.remove(&k))
            .unwrap_or_default();
        waiting.extend(
            self.pending
                .remove(&DialKey::Name(name.clone()))
                .unwrap_or_default(),
        );
        // On `name`'s connection whatever address each was meant for: a seed dialled by
        // address may be known by another one (NAT), and a dial race may have kept the
        // connection the peer dialled.
        if let Some(c) = self.open.get_mut(name) {
            for t in waiting {
                c.last_used = now;
                peer_io::send(&c.conn, &mut c.datagrams, wire, t.payload, t.reliable);
            }
        }
    }

    /// Forgets the messages that waited for a connection that will not come, counting them.
    pub(crate) fn drop_pending(&mut self, key: &DialKey) {
        let dropped = self.pending.remove(key).map_or(0, |p| p.len());
        metrics::transmit_failed("connect_failed", dropped as u64);
    }

    /// Traffic from `name`: its connection is in use, and, if we dialled it, accepted.
    pub(crate) fn touch(&mut self, now: Instant, name: &Arc<str>) {
        if let Some(c) = self.open.get_mut(name) {
            c.last_used = now;
            c.last_heard = now;
            if !c.accepted {
                c.accepted = true;
                metrics::connection_opened(true);
            }
        }
    }

    /// The connection `id` to `name` closed (if it is still the cached one, it is dropped).
    /// Returns the peer's address if it was one we dialled that the peer never answered on.
    pub(crate) fn closed(&mut self, name: &Arc<str>, id: usize) -> Option<SocketAddr> {
        if self.open.get(name).is_none_or(|c| c.conn.stable_id() != id) {
            return None;
        }
        let c = self.open.remove(name)?;
        (!c.accepted).then(|| c.conn.remote_address())
    }

    /// Closes the connection to `name`, if any, with the application error `code` (0, or
    /// [`CLOSE_CLUSTER_MISMATCH`]): e.g. the peer may have crashed and restarted at the same
    /// address, and a cached connection to the old process would swallow every probe of the
    /// new one until it idles out. The next message dials afresh.
    pub(crate) fn close(&mut self, name: &str, code: u32, reason: &[u8]) {
        if let Some(c) = self.open.remove(name) {
            c.conn.close(code.into(), reason);
        }
    }

    /// Records who the connection to `name` leads to, as this node's view has it now.
    pub(crate) fn set_identity(&mut self, name: &str, identity: (u32, SocketAddr)) {
        if let Some(c) = self.open.get_mut(name) {
            c.identity = Some(identity);
        }
    }

    /// `name` is now the process with this boot id at this address. If that is not who its
    /// connection was checked against (a new process, perhaps restarted at the same address
    /// before its predecessor was declared dead, or one that moved) and the peer has sent
    /// nothing on it since `since`, the connection may lead to the predecessor — whose
    /// stateless resets the new process cannot forge, so QUIC would never notice — and is
    /// closed: the next message dials. One the new process itself opened, or is using, is
    /// kept. A change of metadata alone closes nothing.
    pub(crate) fn member_changed(
        &mut self,
        name: &str,
        identity: (u32, SocketAddr),
        since: Instant,
    ) {
        let Some(c) = self.open.get_mut(name) else {
            return;
        };
        if c.identity == Some(identity) {
            return;
        }
        if c.last_heard < since {
            self.close(name, 0, b"member changed");
        } else {
            c.identity = Some(identity);
        }
    }

    /// Closes every connection whose peer's certificate has expired, or, with `vouched`
    /// (after the CA file changed), that it no longer accepts: an open connection must not
    /// outlive the credentials it was accepted with. Returns the peers closed, and why.
    pub(crate) fn close_unvouched(
        &mut self,
        vouched: Option<Vouched<'_>>,
    ) -> Vec<(Arc<str>, String)> {
        let mut closed = Vec::new();
        let now = SystemTime::now();
        self.open.retain(|name, c| {
            let verdict = match (c.expires, vouched) {
                (Some(t), _) if now > t => Err("its certificate expired".to_string()),
                (None, _) => Err("no readable certificate".to_string()),
                (Some(_), None) => Ok(()),
                (Some(_), Some(check)) => match peer_chain(&c.conn) {
                    Some(chain) => check(name, &chain),
                    None => Err("no certificate".into()),
                },
            };
            match verdict {
                Ok(()) => true,
                Err(why) => {
                    c.conn.close(0u32.into(), b"credentials no longer valid");
                    closed.push((name.clone(), why));
                    false
                }
            }
        });
        closed
    }

    /// Closes every connection.
    pub(crate) fn close_all(&mut self) {
        for (_, c) in self.open.drain() {
            c.conn.close(0u32.into(), b"shutdown");
        }
    }

    /// SWIM datagrams QUIC has held back since the previous check, over every connection:
    /// each is checked once, at the first check a full period after it was handed over.
    pub(crate) fn newly_delayed(&mut self) -> u64 {
        self.open
            .values_mut()
            .filter(|c| c.datagrams.unchecked())
            .map(|c| {
                let transmitted = c.conn.stats().frame_tx.datagram;
                c.datagrams.newly_delayed(transmitted)
            })
            .sum()
    }

    /// The transport settings for a connection dialled now with this idle timeout (built
    /// again only when the timeout changes with the cluster's size).
    pub(crate) fn client_transport(
        &mut self,
        config: &ClusterConfig,
        idle: Duration,
    ) -> Result<Arc<TransportConfig>, NetError> {
        match &self.client_transport {
            Some((d, t)) if *d == idle => Ok(t.clone()),
            _ => {
                let t = crate::transport::transport(config, idle)?;
                self.client_transport = Some((idle, t.clone()));
                Ok(t)
            }
        }
    }
}

/// Dials in a task of its own and reports the outcome to the driver: `Connected` with the
/// name the peer's certificate proves (the name dialled, unless it was a seed), or
/// `DialFailed` with why. A dial to a member that is
/// gone would otherwise resend its Initial packets until the idle timeout; giving up after
/// the dial's `give_up` closes the attempt.
pub(crate) fn spawn_dial(
    endpoint: &Endpoint,
    client: quinn::ClientConfig,
    dial: Dial,
    control: mpsc::Sender<Control>,
    refusals: Refusals,
) {
    let Dial {
        key,
        to,
        server_name,
        give_up,
    } = dial;
    let connecting = endpoint.connect_with(client, to, &server_name);
    tokio::spawn(async move {
        let connected = match connecting {
            Err(e) => Err(PeerError::CannotDial {
                peer: to,
                reason: e.to_string(),
            }),
            Ok(c) => match tokio::time::timeout(give_up, c).await {
                Err(_) => Err(PeerError::Timeout {
                    peer: to,
                    after: give_up,
                }),
                Ok(Err(e)) => Err(PeerError::from_connection(to, &e)),
                Ok(Ok(conn)) => match identity::peer_name(&conn, &refusals) {
                    Ok(name) => match &key {
                        // The certificate was valid for the expected name but proves another
                        // first: never hand this peer what was meant for someone else.
                        DialKey::Name(expected) if *expected != name => {
                            conn.close(1u32.into(), b"unexpected identity");
                            let error = PeerError::UnexpectedIdentity {
                                peer: to,
                                expected: expected.clone(),
                                proved: name,
                            };
                            refusals.refuse("name_mismatch", &error);
                            Err(error)
                        }
                        _ => Ok((conn, name)),
                    },
                    Err(e) => {
                        conn.close(1u32.into(), b"no identity");
                        Err(e)
                    }
                },
            },
        };
        let input = match connected {
            Ok((conn, name)) => Control::Connected {
                conn,
                name,
                dialled: Some(key),
                outgoing: true,
            },
            Err(error) => Control::DialFailed { key, error },
        };
        let _ = control.send(input).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        let mut config = crate::config::unopened();
        config.swim.probe_interval = Duration::from_millis(700);
        config.swim.probe_timeout = Duration::from_millis(300);
        config
    }

    #[test]
    fn suspects_are_dialled_by_probes_briefly_the_dead_by_reconnects_only_and_neither_by_gossip() {
        let config = config();
        let full = Reach::Dial(Duration::from_secs(3));
        let brief = Reach::Dial(Duration::from_millis(300));
        for kind in MessageKind::ALL {
            // Alive members and addresses outside the view (seeds): anything may dial.
            assert_eq!(reach(&config, Some(MemberState::Alive), kind), full);
            assert_eq!(reach(&config, None, kind), full);
            for state in [MemberState::Suspect, MemberState::Dead, MemberState::Left] {
                let expected = match kind {
                    MessageKind::PushPull | MessageKind::Records => full,
                    MessageKind::Gossip => Reach::OpenOnly,
                    _ if state == MemberState::Suspect => brief,
                    _ => Reach::OpenOnly,
                };
                assert_eq!(
                    reach(&config, Some(state), kind),
                    expected,
                    "{state:?} {kind:?}"
                );
            }
        }
    }

    #[test]
    fn a_brief_dial_leaves_room_for_a_handshake_and_none_for_a_retransmission() {
        let mut config = config();
        config.swim.probe_timeout = Duration::from_millis(20);
        assert_eq!(config.suspect_dial_timeout(), Duration::from_millis(250));
        config.swim.probe_interval = Duration::from_secs(10);
        config.swim.probe_timeout = Duration::from_secs(5);
        assert_eq!(config.suspect_dial_timeout(), Duration::from_secs(5));
    }
}
