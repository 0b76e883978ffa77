//! The settings of one cluster member: identity, addresses, TLS files, connection limits,
//! and the protocol's own [`swim_core::Config`].

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::NetError;
use crate::tls::TlsFiles;

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
    /// Defaults to 256.
    pub max_connections: usize,
    /// A connection with no traffic for this long is closed by QUIC. A closed connection is
    /// not a member failure: the next message opens a new one. Defaults to 90 s.
    pub idle_timeout: Duration,
    /// Largest stream message accepted (push-pull state grows with the cluster).
    /// Defaults to 16 MiB.
    pub max_stream_size: usize,
    /// How often the TLS files are checked for changes (rotation without restart).
    /// Defaults to 10 s.
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
            idle_timeout: Duration::from_secs(90),
            max_stream_size: 16 << 20,
            reload_interval: Duration::from_secs(10),
            seed: None,
        }
    }

    /// Checks the settings; the error names the one at fault.
    pub fn validate(&self) -> Result<(), NetError> {
        self.swim.validate().map_err(swim_core::Error::from)?;
        if self.max_connections < 2 {
            return Err(NetError::Config(
                "max_connections must be at least 2".into(),
            ));
        }
        if self.idle_timeout < self.swim.probe_interval * 2 {
            return Err(NetError::Config(
                "idle_timeout must be at least 2 probe intervals".into(),
            ));
        }
        if self.max_stream_size < 64 << 10 {
            return Err(NetError::Config(
                "max_stream_size must be at least 64 KiB".into(),
            ));
        }
        if self.reload_interval < Duration::from_millis(100) {
            return Err(NetError::Config(
                "reload_interval must be at least 100 ms".into(),
            ));
        }
        Ok(())
    }
}
