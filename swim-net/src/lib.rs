//! # swim-net
//!
//! SWIM over QUIC with mutual TLS: a tokio driver for [`swim_core::Node`] and the async
//! embedding API, [`Cluster`].
//!
//! - One quinn endpoint per member, client and server at once. Probes, acks and gossip travel
//!   as QUIC datagrams (never retransmitted: a late probe is worthless); push-pull state and
//!   anything larger than a datagram travel on a unidirectional stream per message, which
//!   announces its length.
//! - Mutual TLS (rustls, ring): every member presents a certificate signed by the cluster CA
//!   and verifies the peer's. The peer's node name is its certificate's first DNS subject
//!   alternative name; that name, never a payload field, is what the protocol core is told.
//!   A peer without a valid certificate gets no byte into the core, and the refusal is
//!   counted by reason. Certificate files are re-read when they change.
//! - Connections are cached (bounded, least recently used closed first), one per pair of
//!   members and reused in both directions, with an idle timeout derived from the cluster
//!   size so steady state never re-connects; a reconnect resumes the TLS session. A closed
//!   connection is not a failure — only SWIM decides that.
//! - Every byte sent is accounted by cause (SWIM message type, QUIC framing, ACK-only
//!   packets, handshakes full or resumed, …): [`Cluster::wire_stats`] and the metrics.
//! - Metrics go through the `metrics` facade (see `METRICS.md`); install any exporter.
//!
//! ```no_run
//! # async fn run() -> Result<(), swim_net::NetError> {
//! use swim_net::{Cluster, ClusterConfig, TlsFiles};
//! let tls = TlsFiles { ca: "ca.pem".into(), cert: "node-1.pem".into(), key: "node-1.key".into() };
//! let cluster = Cluster::start(ClusterConfig::new("node-1", "127.0.0.1:7946".parse().unwrap(), tls)).await?;
//! cluster.join(&["127.0.0.1:7947".parse().unwrap()])?;
//! cluster.joined().await?;
//! for m in cluster.members().iter() {
//!     println!("{} {:?}", m.name, m.state);
//! }
//! cluster.leave(std::time::Duration::from_secs(5)).await?;
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```

#![warn(missing_docs, unreachable_pub)]

mod accounting;
mod budget;
mod claim_trust;
mod cluster;
mod config;
mod connections;
mod counted_crypto;
#[cfg(feature = "dev-certs")]
pub mod dev_certs;
mod driver;
mod endpoint;
mod error;
mod events;
// The fuzz targets' entry points (tests/fuzz/): not a public API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod identity;
mod ledger;
mod log_limit;
mod metric_families;
mod metrics;
mod peer_io;
mod socket;
mod tls;
mod transport;

pub use accounting::{WireCause, WireStats};
pub use claim_trust::CertTrust;
pub use cluster::{Cluster, Watcher};
pub use config::ClusterConfig;
pub use error::{alert_name, NetError, PeerError, TlsFile, TlsFileProblem, TlsSetupError};
#[cfg(feature = "impairment")]
pub use socket::Impairment;
pub use swim_core::Stats;
pub use swim_core::{ClaimRefusal, Event, MemberInfo, MemberState, MessageKind};
pub use tls::TlsFiles;
pub use transport::QuicTuning;
