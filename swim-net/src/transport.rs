//! QUIC settings for SWIM: what makes encryption and authentication cheap (long-lived
//! connections, resumed TLS sessions, short connection IDs, no keep-alive, no path-MTU
//! probing) and what keeps QUIC from holding back SWIM's own loss-tolerant datagrams (a
//! congestion window SWIM's traffic never fills). Each economy can be turned off, so the
//! scenario runner can measure what it saves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::congestion::{Controller, ControllerFactory};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{AckFrequencyConfig, ConnectionIdGenerator, IdleTimeout, TransportConfig, VarInt};

use crate::accounting::WireCounters;
use crate::config::ClusterConfig;
use crate::counted_crypto::{CountedClientConfig, CountedServerConfig};
use crate::error::NetError;
use crate::tls::{Credentials, Refusals};

/// The QUIC and TLS economies, each on by default. Turning one off restores quinn's or
/// rustls's default for it; the scenario runner uses this to measure what each saves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuicTuning {
    /// TLS 1.3 session resumption: a reconnect to a member met before presents a session
    /// ticket instead of certificates (both sides keep enough sessions for
    /// `max_connections` peers). Off, every connection is a full mutual-TLS handshake.
    pub session_resumption: bool,
    /// Connection IDs of the fewest bytes that still leave room for `max_connections`
    /// connections (2 bytes up to 2048 connections), instead of quinn's 8. Every packet
    /// carries one.
    pub short_connection_ids: bool,
    /// Path-MTU discovery. Off (the default) the path stays at QUIC's guaranteed 1200 bytes,
    /// which already fits `max_datagram_size`: larger probes would only cost bytes.
    pub mtu_discovery: bool,
    /// A fixed congestion window far above what SWIM's traffic can fill, so congestion
    /// control and pacing never hold back or drop a probe (SWIM is loss-tolerant by design;
    /// QUIC's reaction to loss would turn loss into false suspicions). Off: quinn's Cubic.
    pub never_throttle: bool,
    /// Acknowledgement tuning: ask the peer not to acknowledge out-of-order packets at once
    /// (after a lost datagram every later one would otherwise draw an ACK-only packet), so
    /// ACK frames wait for the next SWIM datagram or the delayed-ACK timer. Off: quinn's
    /// defaults.
    pub ack_tuning: bool,
    /// Explicit congestion notification. Off (the default): ECN marks only feed congestion
    /// control, which `never_throttle` does without, and reporting them adds 3 to 6 bytes
    /// of counts to every ACK frame.
    pub ecn: bool,
    /// QUIC keep-alive. `None` (the default): SWIM's probes keep every path in use alive,
    /// and an unused connection may idle out, which is cheap to undo.
    pub keep_alive_interval: Option<Duration>,
    /// No address-validation tokens: a quinn server otherwise sends every client two
    /// NEW_TOKEN frames after each handshake, for the client to skip address validation
    /// when it next connects — which only a server that answers Initials with Retry
    /// needs, and this one never does. Off: quinn's default of two.
    pub no_address_tokens: bool,
}

impl Default for QuicTuning {
    fn default() -> Self {
        Self {
            session_resumption: true,
            short_connection_ids: true,
            mtu_discovery: false,
            never_throttle: true,
            ack_tuning: true,
            ecn: false,
            keep_alive_interval: None,
            no_address_tokens: true,
        }
    }
}

/// The congestion window of [`QuicTuning::never_throttle`]: far above anything SWIM keeps
/// in flight (probes are tens of bytes, push-pull state is bounded by the stream window).
const NEVER_THROTTLE_WINDOW: u64 = 16 << 20;

/// A congestion controller whose window never shrinks.
#[derive(Clone, Debug)]
struct FixedWindow;

impl Controller for FixedWindow {
    fn on_congestion_event(&mut self, _: Instant, _: Instant, _: bool, _: u64) {}

    fn on_mtu_update(&mut self, _: u16) {}

    fn window(&self) -> u64 {
        NEVER_THROTTLE_WINDOW
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(self.clone())
    }

    fn initial_window(&self) -> u64 {
        NEVER_THROTTLE_WINDOW
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

impl ControllerFactory for FixedWindow {
    fn build(self: Arc<Self>, _: Instant, _: u16) -> Box<dyn Controller> {
        Box::new(FixedWindow)
    }
}

/// Connection-ID length in bytes: the shortest whose space quinn considers sufficient for
/// `max_connections` connections of up to 8 IDs each (it refuses new connections once 3/4 of
/// the space is taken).
pub(crate) fn connection_id_len(tuning: &QuicTuning, max_connections: usize) -> usize {
    if !tuning.short_connection_ids {
        return 8;
    }
    let needed = max_connections.saturating_mul(8).saturating_mul(4);
    (1..=8)
        .find(|&len| len >= 8 || needed < 1usize << (8 * len))
        .unwrap_or(8)
}

/// The endpoint settings: connection-ID length.
pub(crate) fn endpoint_config(config: &ClusterConfig) -> quinn::EndpointConfig {
    let len = connection_id_len(&config.quic, config.max_connections);
    let mut endpoint = quinn::EndpointConfig::default();
    endpoint.cid_generator(move || -> Box<dyn ConnectionIdGenerator> {
        Box::new(quinn_proto::RandomConnectionIdGenerator::new(len))
    });
    endpoint
}

/// The transport parameters of every connection, with `idle_timeout` as this side's
/// maximum (QUIC uses the smaller of the two sides' values).
pub(crate) fn transport(
    config: &ClusterConfig,
    idle_timeout: Duration,
) -> Result<Arc<TransportConfig>, NetError> {
    let tuning = &config.quic;
    let mut t = TransportConfig::default();
    let idle = IdleTimeout::try_from(idle_timeout).map_err(|_| NetError::Setting {
        field: "idle_timeout",
        reason: "too large for QUIC".into(),
    })?;
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(tuning.keep_alive_interval);
    if !tuning.mtu_discovery {
        t.mtu_discovery_config(None);
    }
    if tuning.never_throttle {
        t.congestion_controller_factory(Arc::new(FixedWindow));
    }
    if tuning.ack_tuning {
        let mut ack = AckFrequencyConfig::default();
        ack.reordering_threshold(VarInt::from_u32(0));
        t.ack_frequency_config(Some(ack));
    }
    // Datagrams are SWIM's probes: enough buffer that a burst of gossip never drops one.
    t.datagram_receive_buffer_size(Some(1 << 20));
    t.datagram_send_buffer_size(1 << 20);
    t.max_concurrent_bidi_streams(VarInt::from_u32(0));
    // What one peer can make us buffer: a few streams at once, and no more unread data in
    // all of them than its memory budget.
    t.max_concurrent_uni_streams(VarInt::from_u32(config.max_streams_per_peer));
    let window = u32::try_from(config.max_held_per_peer).unwrap_or(u32::MAX);
    t.receive_window(VarInt::from_u32(window));
    t.stream_receive_window(VarInt::from_u32(
        u32::try_from(config.max_stream_size).unwrap_or(u32::MAX),
    ));
    Ok(Arc::new(t))
}

/// The crypto halves of the endpoint's server config and its client configs, accounted.
pub(crate) struct QuicCrypto {
    pub(crate) server: Arc<CountedServerConfig>,
    pub(crate) client: Arc<CountedClientConfig>,
}

impl QuicCrypto {
    pub(crate) fn new(
        creds: &Credentials,
        refusals: &Refusals,
        config: &ClusterConfig,
        counters: &Arc<WireCounters>,
    ) -> Result<Self, NetError> {
        let sessions = if config.quic.session_resumption {
            // A session per peer we may hold a connection to, and some to spare for peers
            // that come and go.
            Some(config.max_connections.saturating_mul(4).max(256))
        } else {
            None
        };
        let server_tls = QuicServerConfig::try_from(creds.server_config(refusals, sessions)?)
            .map_err(|e| NetError::TlsSetup(e.into()))?;
        let client_tls = QuicClientConfig::try_from(creds.client_config(refusals, sessions)?)
            .map_err(|e| NetError::TlsSetup(e.into()))?;
        Ok(Self {
            server: Arc::new(CountedServerConfig {
                inner: Arc::new(server_tls),
                counters: counters.clone(),
            }),
            client: Arc::new(CountedClientConfig {
                inner: Arc::new(client_tls),
                counters: counters.clone(),
            }),
        })
    }

    /// The endpoint's server config. It accepts the longest idle timeout a client may ask
    /// for; the dialling side's own (derived) value is the one that applies.
    pub(crate) fn server_config(
        &self,
        config: &ClusterConfig,
    ) -> Result<quinn::ServerConfig, NetError> {
        let mut server = quinn::ServerConfig::with_crypto(self.server.clone());
        server.transport_config(transport(config, config.max_idle_timeout())?);
        if config.quic.no_address_tokens {
            let mut tokens = quinn::ValidationTokenConfig::default();
            tokens.sent(0);
            server.validation_token_config(tokens);
        }
        Ok(server)
    }

    /// A client config for dialling with this idle timeout.
    pub(crate) fn client_config(&self, transport: Arc<TransportConfig>) -> quinn::ClientConfig {
        let mut client = quinn::ClientConfig::new(self.client.clone());
        client.transport_config(transport);
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_are_as_short_as_the_connection_bound_allows() {
        let on = QuicTuning::default();
        assert_eq!(connection_id_len(&on, 2), 1);
        assert_eq!(connection_id_len(&on, 256), 2);
        assert_eq!(connection_id_len(&on, 2047), 2);
        assert_eq!(connection_id_len(&on, 4096), 3);
        let off = QuicTuning {
            short_connection_ids: false,
            ..QuicTuning::default()
        };
        assert_eq!(connection_id_len(&off, 256), 8);
    }
}
