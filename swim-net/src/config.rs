//! The settings of one cluster member: identity, addresses, TLS files, connection limits,
//! and the protocol's own [`swim_core::Config`].

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::NetError;
use crate::tls::TlsFiles;
use crate::transport::QuicTuning;

/// Bounds of the derived idle timeout (see [`ClusterConfig::idle_timeout`]): at least this
/// many probe intervals, at most an hour.
const DERIVED_IDLE_FLOOR_PERIODS: u32 = 120;
const DERIVED_IDLE_MAX: Duration = Duration::from_secs(3600);
/// The shortest a probe's dial to a member that is not alive may take: room for a handshake
/// on a loaded host, still below QUIC's first Initial retransmission (999 ms).
const MIN_SUSPECT_DIAL: Duration = Duration::from_millis(250);

/// Everything [`Cluster::start`](crate::Cluster::start) needs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// This node's name; must be the first DNS subject alternative name of its certificate.
    pub name: String,
    /// UDP address the QUIC endpoint binds (client and server at once).
    pub bind: SocketAddr,
    /// Address other members are told to use; defaults to the bound address (set it behind
    /// NAT or in containers when the two differ).
    pub advertise: Option<SocketAddr>,
    /// PEM files: cluster CA, node certificate chain, node key.
    pub tls: TlsFiles,
    /// Protocol settings. `max_datagram_size` is lowered to what QUIC allows per connection.
    pub swim: swim_core::Config,
    /// Most connections kept open at once; the least recently used is closed beyond it.
    /// 2 to 65536; defaults to 256.
    pub max_connections: usize,
    /// A connection with no traffic for this long is closed by QUIC. A closed connection is
    /// not a member failure: the next message opens a new one. `None` (the default) derives
    /// it, when a connection is dialled, from the cluster size and probe interval
    /// ([`swim_core::Timings::peer_silence_bound`], at least 120 probe intervals and at most
    /// 1 h), so that in steady state no connection in use ever idles out. If set: from 2 probe
    /// intervals to 1 day.
    pub idle_timeout: Option<Duration>,
    /// The QUIC and TLS economies (all on by default).
    pub quic: QuicTuning,
    /// Random loss and delay injected at this member's UDP socket, for testing under
    /// impairment without `netem`.
    #[cfg(feature = "impairment")]
    pub impairment: Option<crate::socket::Impairment>,
    /// Largest stream message accepted (push-pull state grows with the cluster); a longer
    /// one is refused and its stream stopped. 64 KiB to 1 GiB; defaults to 16 MiB.
    pub max_stream_size: usize,
    /// How long a peer may take to send one whole stream message; a stream still open after
    /// it is refused and stopped, so a peer trickling bytes holds nothing for long. 100 ms to
    /// 10 min; defaults to 10 s.
    pub stream_timeout: Duration,
    /// Streams one peer may have open towards this node at once (QUIC's stream limit: the
    /// peer waits for more). 1 to 256; defaults to 16.
    pub max_streams_per_peer: u32,
    /// Memory one peer's stream messages may hold at once, while they are read and until
    /// they are handled (the bytes in memory, not the payload sent; a message is gathered in
    /// segments and then made one buffer, so a whole one holds twice its length for a
    /// moment): a message that would exceed it is refused. At least twice
    /// `max_stream_size`; defaults to 32 MiB.
    pub max_held_per_peer: usize,
    /// The same, over all peers. At least `max_held_per_peer`; defaults to 64 MiB.
    pub max_held_total: usize,
    /// Datagrams waiting for the protocol at most; one that finds the queue full is dropped
    /// (counted), as on a busy link. 64 to 1 048 576; defaults to 4096.
    pub max_queued_datagrams: usize,
    /// How often the TLS files are checked for changes (rotation without restart); 100 ms to
    /// 1 day. Defaults to 10 s.
    pub reload_interval: Duration,
    /// Seed of the protocol's randomness; `None` (the default) draws one from the OS.
    pub seed: Option<u64>,
}

impl ClusterConfig {
    /// A config with every default, for `name` at `bind` with these TLS files.
    pub fn new(name: impl Into<String>, bind: SocketAddr, tls: TlsFiles) -> Self {
        let mut swim = swim_core::Config::default();
        // Leaves room for QUIC's short header, packet number, AEAD tag and DATAGRAM frame
        // header inside QUIC's guaranteed 1200-byte packets.
        swim.max_datagram_size = 1100;
        Self {
            name: name.into(),
            bind,
            advertise: None,
            tls,
            swim,
            max_connections: 256,
            idle_timeout: None,
            quic: QuicTuning::default(),
            #[cfg(feature = "impairment")]
            impairment: None,
            max_stream_size: 16 << 20,
            stream_timeout: Duration::from_secs(10),
            max_streams_per_peer: 16,
            max_held_per_peer: 32 << 20,
            max_held_total: 64 << 20,
            max_queued_datagrams: 4096,
            reload_interval: Duration::from_secs(10),
            seed: None,
        }
    }

    /// Checks the settings; the error names the one at fault (a protocol setting as
    /// [`NetError::Core`], naming its `swim_core::Config` field).
    pub fn validate(&self) -> Result<(), NetError> {
        let fail = |field, reason: &str| {
            Err(NetError::Setting {
                field,
                reason: reason.into(),
            })
        };
        self.swim.validate().map_err(swim_core::Error::from)?;
        const DAY: Duration = Duration::from_secs(86_400);
        if !(2..=65_536).contains(&self.max_connections) {
            return fail("max_connections", "must be 2 to 65536");
        }
        if let Some(idle) = self.idle_timeout {
            if idle < self.swim.probe_interval * 2 || idle > DAY {
                return fail("idle_timeout", "must be from 2 probe intervals to 1 day");
            }
        }
        if !((64 << 10)..=(1 << 30)).contains(&self.max_stream_size) {
            return fail("max_stream_size", "must be 64 KiB to 1 GiB");
        }
        if self.reload_interval < Duration::from_millis(100) || self.reload_interval > DAY {
            return fail("reload_interval", "must be 100 ms to 1 day");
        }
        if self.stream_timeout < Duration::from_millis(100)
            || self.stream_timeout > Duration::from_secs(600)
        {
            return fail("stream_timeout", "must be 100 ms to 10 min");
        }
        if !(1..=256).contains(&self.max_streams_per_peer) {
            return fail("max_streams_per_peer", "must be 1 to 256");
        }
        if self.max_held_per_peer < 2 * self.max_stream_size || self.max_held_per_peer > 1 << 34 {
            return fail(
                "max_held_per_peer",
                "must be from twice max_stream_size to 16 GiB",
            );
        }
        if self.max_held_total < self.max_held_per_peer || self.max_held_total > 1 << 36 {
            return fail("max_held_total", "must be from max_held_per_peer to 64 GiB");
        }
        if !(64..=1 << 20).contains(&self.max_queued_datagrams) {
            return fail("max_queued_datagrams", "must be 64 to 1048576");
        }
        let advertised = self.advertise.map_or(self.bind.ip(), |a| a.ip());
        if advertised.is_unspecified() {
            return fail(
                "advertise",
                "must be a reachable address (other members dial it); set it when binding an unspecified address",
            );
        }
        Ok(())
    }
}

impl ClusterConfig {
    /// The idle timeout of a connection dialled while the cluster has `members` members.
    pub(crate) fn idle_timeout_for(&self, members: usize) -> Duration {
        self.idle_timeout.unwrap_or_else(|| {
            // A connection dialled while joining knows only part of the cluster; the floor
            // keeps it from idling out as the cluster grows around it.
            let floor = self.swim.probe_interval * DERIVED_IDLE_FLOOR_PERIODS;
            self.swim
                .timings(members)
                .peer_silence_bound()
                .max(floor)
                .min(DERIVED_IDLE_MAX)
        })
    }

    /// How long a dial may take before it is given up: three probe intervals (at least 3 s,
    /// room for two handshake retransmissions), after which the probe that wanted it is long
    /// over. A dial to a crashed member then costs a few Initial packets, not a stream of
    /// them until the idle timeout.
    pub(crate) fn dial_timeout(&self) -> Duration {
        (self.swim.probe_interval * 3).max(Duration::from_secs(3))
    }

    /// How long a probe's dial to a member held suspect or dead may take: the probe timeout,
    /// at least 250 ms (room for a mutual-TLS handshake on a loaded host). A probe can use
    /// no later answer, and the next one dials again. QUIC resends a lost Initial after
    /// three initial RTTs (999 ms in quinn), past the default 500 ms, so a crashed member
    /// costs one padded Initial per dial (and the padded close of giving up), not three.
    /// Slower settings leave room for retransmissions the probe can use.
    pub(crate) fn suspect_dial_timeout(&self) -> Duration {
        self.swim
            .probe_timeout
            .max(MIN_SUSPECT_DIAL)
            .min(self.dial_timeout())
    }

    /// The longest idle timeout this member accepts from a dialling peer (QUIC applies the
    /// smaller of the two sides' values, so the dialler's derived value decides).
    pub(crate) fn max_idle_timeout(&self) -> Duration {
        self.idle_timeout.unwrap_or(DERIVED_IDLE_MAX)
    }
}

/// A config whose TLS files are never opened, for unit tests of what derives from it.
#[cfg(test)]
pub(crate) fn unopened() -> ClusterConfig {
    let files = TlsFiles {
        ca: "ca.pem".into(),
        cert: "n.pem".into(),
        key: "n.key".into(),
    };
    ClusterConfig::new("n", "127.0.0.1:0".parse().unwrap(), files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        unopened()
    }

    #[test]
    fn every_resource_bound_is_checked_and_named() {
        type Case = (&'static str, fn(&mut ClusterConfig));
        let cases: [Case; 7] = [
            ("max_connections", |c| c.max_connections = 1 << 20),
            ("max_stream_size", |c| c.max_stream_size = usize::MAX),
            ("stream_timeout", |c| c.stream_timeout = Duration::MAX),
            ("max_streams_per_peer", |c| c.max_streams_per_peer = 0),
            ("max_held_per_peer", |c| c.max_held_per_peer = 1),
            ("max_held_total", |c| c.max_held_total = 1),
            ("max_queued_datagrams", |c| c.max_queued_datagrams = 0),
        ];
        for (field, set) in cases {
            let mut c = config();
            set(&mut c);
            match c.validate() {
                Err(NetError::Setting { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        config().validate().unwrap();
    }

    #[test]
    fn the_idle_timeout_follows_the_cluster_size_between_its_bounds() {
        let c = config(); // 1 s probe interval
                          // Small clusters: the floor of 120 probe intervals.
        assert_eq!(c.idle_timeout_for(4), Duration::from_secs(120));
        // 6·(N − 1) probe intervals above it.
        assert_eq!(c.idle_timeout_for(32), Duration::from_secs(186));
        assert_eq!(c.idle_timeout_for(128), Duration::from_secs(762));
        // At most an hour.
        assert_eq!(c.idle_timeout_for(10_000), Duration::from_secs(3600));
        let mut fixed = config();
        fixed.idle_timeout = Some(Duration::from_secs(7));
        assert_eq!(fixed.idle_timeout_for(10_000), Duration::from_secs(7));
        assert_eq!(fixed.max_idle_timeout(), Duration::from_secs(7));
        assert_eq!(c.max_idle_timeout(), Duration::from_secs(3600));
    }
}
