//! swim-net's errors: [`NetError`] for what the API refuses (naming the file, setting or
//! address at fault), and [`PeerError`] for why a connection to a peer failed.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What can go wrong starting or using a cluster member.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// One of the TLS files could not be used. Nothing was started (or, on reload, the old
    /// credentials stay in use).
    #[error("TLS {file} file {path}: {problem}")]
    TlsFile {
        /// Which of the three files.
        file: TlsFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        problem: TlsFileProblem,
    },
    /// The configured node name is not the name the node's certificate proves. Nothing was
    /// started.
    #[error("node name {name:?} is not in its certificate, which names {cert_name:?}")]
    NameNotInCertificate {
        /// The configured name.
        name: String,
        /// The certificate's first DNS subject alternative name.
        cert_name: String,
    },
    /// rustls or quinn refused to build a TLS configuration from the credentials (a key that
    /// does not match the certificate, for one). Nothing was started.
    #[error("TLS setup: {0}")]
    TlsSetup(#[source] TlsSetupError),
    /// The UDP socket could not be bound. Nothing was started.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A [`ClusterConfig`](crate::ClusterConfig) setting is out of range. Nothing was
    /// started.
    #[error("{field}: {reason}")]
    Setting {
        /// The field, as named in `ClusterConfig`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The operating system has no entropy to seed the protocol with. Nothing was started.
    #[error("no OS entropy for the protocol's seed: {0}")]
    Entropy(getrandom::Error),
    /// The protocol core refused the call (bad config, metadata too large, already left).
    #[error(transparent)]
    Core(#[from] swim_core::Error),
    /// The member has shut down.
    #[error("the cluster member has shut down")]
    Closed,
    /// `leave` did not finish spreading in time; the member has still left.
    #[error("leave did not finish spreading within {0:?}")]
    LeaveTimeout(Duration),
}

/// One of the three TLS files of [`TlsFiles`](crate::TlsFiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsFile {
    /// The cluster CA certificate(s).
    Ca,
    /// The node's certificate chain.
    Cert,
    /// The node's private key.
    Key,
}

impl fmt::Display for TlsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsFile::Ca => "CA",
            TlsFile::Cert => "certificate",
            TlsFile::Key => "key",
        })
    }
}

/// What is wrong with a TLS file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFileProblem {
    /// It could not be read, or is not PEM of the expected kind.
    #[error("{0}")]
    Pem(#[from] rustls::pki_types::pem::Error),
    /// It holds no certificate.
    #[error("no certificate in file")]
    NoCertificate,
    /// A CA certificate that cannot be a trust anchor.
    #[error("not a usable CA certificate: {0}")]
    BadCa(rustls::Error),
    /// The node certificate has no DNS subject alternative name to be its node name (or
    /// only a wildcard one).
    #[error("certificate has no DNS subject alternative name")]
    NoNodeName,
    /// The certificate's validity period is over.
    #[error("certificate has expired")]
    Expired,
    /// The certificate's validity period has not begun.
    #[error("certificate is not valid yet")]
    NotYetValid,
    /// The certificate does not allow a usage a member needs (members are QUIC clients and
    /// servers at once).
    #[error("certificate does not allow {0} (a member needs serverAuth and clientAuth)")]
    WrongUsage(&'static str),
    /// A certificate in the CA file is not a CA certificate (a leaf given as the CA, say).
    #[error("not a CA certificate (basic constraints do not allow it to issue certificates)")]
    NotACa,
    /// The node's certificate does not chain to the cluster CA.
    #[error("certificate is not issued by the cluster CA: {0}")]
    NotTrusted(rustls::Error),
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// rustls refused the certificate, key or protocol settings.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// rustls could not build a certificate verifier from the CA certificates.
    #[error(transparent)]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// quinn found no cipher suite QUIC can use in the rustls configuration.
    #[error(transparent)]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
}

/// Why a connection to a peer failed or was refused: a log field and a metric label, never
/// a member failure (only SWIM decides that).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// No handshake completed within the dial timeout (the peer is gone, or unreachable).
    #[error("no handshake with {peer} within {after:?}")]
    Timeout {
        /// Where we dialled.
        peer: SocketAddr,
        /// The dial timeout.
        after: Duration,
    },
    /// quinn refused to start the dial (no usable address, too many connections).
    #[error("cannot dial {peer}: {reason}")]
    CannotDial {
        /// Where we wanted to dial.
        peer: SocketAddr,
        /// quinn's reason.
        reason: String,
    },
    /// The peer closed or refused the handshake; `alert` is the TLS alert it sent, if any
    /// (42 bad certificate, 45 certificate expired, 48 unknown CA, 120 no application
    /// protocol, 116 certificate required, …; see [`alert_name`]).
    #[error("refused by {peer}: {}: {reason}", alert.map_or("no TLS alert", alert_name))]
    Refused {
        /// The peer's address.
        peer: SocketAddr,
        /// The TLS alert, when the refusal was a TLS one.
        alert: Option<u8>,
        /// What the transport said.
        reason: String,
    },
    /// The connection failed for another transport reason (timeout, reset, local error).
    #[error("connection with {peer} failed: {reason}")]
    Transport {
        /// The peer's address.
        peer: SocketAddr,
        /// What the transport said.
        reason: String,
    },
    /// The handshake succeeded but the peer's certificate proves no usable node name (or
    /// its resumed session's certificate has expired since).
    #[error("{peer} has no usable identity")]
    NoIdentity {
        /// The peer's address.
        peer: SocketAddr,
    },
    /// The certificate is valid but names another node than the one dialled.
    #[error("dialled {expected} at {peer}, which proves to be {proved}")]
    UnexpectedIdentity {
        /// The peer's address.
        peer: SocketAddr,
        /// The node name we expected there.
        expected: Arc<str>,
        /// The name its certificate proves.
        proved: Arc<str>,
    },
}

impl PeerError {
    /// A short stable label for metrics (`reason` label values).
    pub fn label(&self) -> &'static str {
        match self {
            PeerError::Timeout { .. } => "timeout",
            PeerError::CannotDial { .. } => "cannot_dial",
            PeerError::Refused { .. } => "refused",
            PeerError::Transport { .. } => "transport",
            PeerError::NoIdentity { .. } => "no_identity",
            PeerError::UnexpectedIdentity { .. } => "unexpected_identity",
        }
    }

    /// A failed connection attempt to `peer`, from quinn's error.
    pub(crate) fn from_connection(peer: SocketAddr, e: &quinn::ConnectionError) -> Self {
        use quinn::ConnectionError as E;
        let reason = e.to_string();
        match e {
            E::ConnectionClosed(close) => PeerError::Refused {
                peer,
                alert: tls_alert(close.error_code),
                reason,
            },
            E::TransportError(t) => match tls_alert(t.code) {
                Some(alert) => PeerError::Refused {
                    peer,
                    alert: Some(alert),
                    reason,
                },
                None => PeerError::Transport { peer, reason },
            },
            E::ApplicationClosed(_) => PeerError::Refused {
                peer,
                alert: None,
                reason,
            },
            _ => PeerError::Transport { peer, reason },
        }
    }
}

/// The name of a TLS alert (RFC 8446 §6), as a metric label and in logs: `unknown_ca`,
/// `bad_certificate`, …; `other` for one not listed.
pub fn alert_name(alert: u8) -> &'static str {
    match alert {
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "other",
    }
}

/// The TLS alert a QUIC CRYPTO_ERROR code carries (RFC 9001 §4.8: 0x0100 + alert).
pub(crate) fn tls_alert(code: quinn::TransportErrorCode) -> Option<u8> {
    let code = u64::from(code);
    (0x100..=0x1ff)
        .contains(&code)
        .then(|| (code - 0x100) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypto_error_codes_carry_the_tls_alert() {
        let code = quinn::TransportErrorCode::crypto(116);
        assert_eq!(tls_alert(code), Some(116));
        assert_eq!(
            tls_alert(quinn::TransportErrorCode::PROTOCOL_VIOLATION),
            None
        );
    }

    #[test]
    fn errors_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<NetError>();
        check::<PeerError>();
    }
}
