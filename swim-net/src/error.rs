//! swim-net's one error type.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What can go wrong starting or using a cluster member.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A TLS file could not be read or parsed. Nothing was started.
    #[error("TLS file {path}: {problem}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
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
    /// rustls or quinn refused the TLS settings. Nothing was started.
    #[error("TLS setup: {0}")]
    TlsSetup(String),
    /// The UDP socket could not be bound. Nothing was started.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A setting is out of range; the message names it. Nothing was started.
    #[error("invalid setting: {0}")]
    Config(String),
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
