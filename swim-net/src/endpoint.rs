//! The QUIC endpoint: the counting (and, for tests, impairing) UDP socket under quinn, the
//! endpoint's TLS and transport settings, and the accept loop that completes each incoming
//! handshake in a task of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::accounting::WireCounters;
use crate::claim_trust::CertTrust;
use crate::config::ClusterConfig;
use crate::driver::Control;
use crate::error::{tls_alert, NetError};
use crate::identity;
use crate::socket::CountingSocket;
use crate::tls::{Credentials, Refusals};
use crate::transport::QuicCrypto;

/// TLS alert `certificate_required` (RFC 8446 §6): a client that presented no certificate.
const ALERT_CERTIFICATE_REQUIRED: u8 = 116;
/// TLS alert `no_application_protocol` (RFC 7301): a client that offered no `swim/<version>`.
const ALERT_NO_APPLICATION_PROTOCOL: u8 = 120;

/// A bound endpoint and what it was built from.
pub(crate) struct Bound {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) local_addr: SocketAddr,
    pub(crate) crypto: QuicCrypto,
    pub(crate) refusals: Refusals,
    pub(crate) wire: Arc<WireCounters>,
    /// What the node signs its claims with and checks its peers' by.
    pub(crate) trust: Arc<CertTrust>,
    /// Silences the socket: see [`crate::Cluster::crash`].
    #[cfg(feature = "impairment")]
    pub(crate) silence: Arc<std::sync::atomic::AtomicBool>,
}

/// Loads the credentials and binds the endpoint (client and server at once).
pub(crate) fn bind(config: &ClusterConfig) -> Result<Bound, NetError> {
    let creds = Credentials::load(&config.tls, &config.name)?;
    let trust = Arc::new(CertTrust::new(&creds)?);
    let refusals = Refusals::default();
    let wire = Arc::new(WireCounters::default());
    let crypto = QuicCrypto::new(&creds, &refusals, config, &wire)?;
    let server = crypto.server_config(config)?;
    let bind_err = |source| NetError::Bind {
        addr: config.bind,
        source,
    };
    let udp = std::net::UdpSocket::bind(config.bind).map_err(bind_err)?;
    let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
    let inner = runtime.wrap_udp_socket(udp).map_err(bind_err)?;
    let socket = CountingSocket::new(inner, wire.clone(), !config.quic.ecn);
    #[cfg(feature = "impairment")]
    let socket = match config.impairment {
        Some(i) => socket.impaired(i),
        None => socket,
    };
    #[cfg(feature = "impairment")]
    let silence = socket.silence_switch();
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        crate::transport::endpoint_config(config),
        Some(server),
        Arc::new(socket),
        runtime,
    )
    .map_err(bind_err)?;
    let local_addr = endpoint.local_addr().map_err(bind_err)?;
    Ok(Bound {
        endpoint,
        local_addr,
        crypto,
        refusals,
        wire,
        trust,
        #[cfg(feature = "impairment")]
        silence,
    })
}

/// Accepts incoming connections; each handshake runs in its own task so a slow peer holds
/// up nobody. Handshakes refused by our certificate checks are counted there; a client that
/// presents no certificate, or offers no protocol we speak, never reaches them and is
/// counted here.
pub(crate) async fn accept_loop(
    endpoint: quinn::Endpoint,
    control: mpsc::Sender<Control>,
    refusals: Refusals,
) {
    while let Some(incoming) = endpoint.accept().await {
        let (control, refusals) = (control.clone(), refusals.clone());
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            match incoming.await {
                Ok(conn) => match identity::peer_name(&conn, &refusals) {
                    Ok(name) => {
                        let connected = Control::Connected {
                            conn,
                            name,
                            dialled: None,
                            outgoing: false,
                        };
                        let _ = control.send(connected).await;
                    }
                    Err(_) => conn.close(1u32.into(), b"no identity"),
                },
                Err(quinn::ConnectionError::TransportError(e))
                    if tls_alert(e.code) == Some(ALERT_CERTIFICATE_REQUIRED) =>
                {
                    refusals.refuse("no_certificate", &e);
                }
                Err(quinn::ConnectionError::TransportError(e))
                    if tls_alert(e.code) == Some(ALERT_NO_APPLICATION_PROTOCOL) =>
                {
                    // Not a swim peer of this protocol version (or not a swim peer at all).
                    refusals.refuse("no_alpn", &e);
                }
                Err(e) => tracing::debug!(%peer, error = %e, "incoming handshake failed"),
            }
        });
    }
}
