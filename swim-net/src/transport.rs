//! QUIC settings: the transport parameters that suit SWIM (small unreliable datagrams, no
//! keep-alive, SWIM's own traffic keeps paths alive) and the server/client configs built
//! from the TLS credentials.

use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};

use crate::config::ClusterConfig;
use crate::error::NetError;
use crate::tls::{Credentials, Refusals};

fn transport(config: &ClusterConfig) -> Result<Arc<TransportConfig>, NetError> {
    let mut t = TransportConfig::default();
    let idle = IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| NetError::Config("idle_timeout is too large for QUIC".into()))?;
    t.max_idle_timeout(Some(idle));
    // SWIM probes and gossip keep live paths busy; a keep-alive would only add packets.
    t.keep_alive_interval(None);
    // Datagrams are SWIM's probes: enough buffer that a burst of gossip never drops one.
    t.datagram_receive_buffer_size(Some(1 << 20));
    t.datagram_send_buffer_size(1 << 20);
    t.max_concurrent_bidi_streams(VarInt::from_u32(0));
    t.max_concurrent_uni_streams(VarInt::from_u32(256));
    Ok(Arc::new(t))
}

/// The endpoint's server config and default client config.
pub(crate) fn quic_configs(
    creds: &Credentials,
    refusals: &Refusals,
    config: &ClusterConfig,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), NetError> {
    let transport = transport(config)?;
    let server_tls = QuicServerConfig::try_from(creds.server_config(refusals)?)
        .map_err(|e| NetError::TlsSetup(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_tls));
    server.transport_config(transport.clone());
    let client_tls = QuicClientConfig::try_from(creds.client_config(refusals)?)
        .map_err(|e| NetError::TlsSetup(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(client_tls));
    client.transport_config(transport);
    Ok((server, client))
}
