//! The core's one error type, sorted by who is at fault (as rustls does): bytes that did not
//! parse, a peer that broke the protocol, a caller that misused the API, a bad config.

use std::fmt;

/// Everything `swim-core` can refuse. Each variant says what it did to state: none of them
/// changes the member table, because inputs are fully recognised before they are acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes from the network did not parse. State untouched.
    #[error("malformed input: {0}")]
    Decode(#[from] DecodeError),
    /// A peer sent well-formed bytes that break the protocol. State untouched.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// The caller asked for something the API does not allow; never caused by network input.
    /// State untouched.
    #[error("API misuse: {0}")]
    ApiMisuse(#[from] ApiMisuse),
    /// The configuration is invalid; no node was built.
    #[error("invalid config: {0}")]
    Config(#[from] ConfigError),
}

impl Error {
    /// A short stable label for metrics (`reason` label values).
    pub fn label(&self) -> &'static str {
        match self {
            Error::Decode(e) => e.label(),
            Error::PeerMisbehaved(e) => e.label(),
            Error::ApiMisuse(_) => "api_misuse",
            Error::Config(_) => "config",
        }
    }
}

/// Why untrusted bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input was empty.
    #[error("empty message")]
    Empty,
    /// The leading protocol version byte is not one this build speaks.
    #[error("unknown protocol version {0}")]
    UnknownVersion(u8),
    /// The body did not parse as the message it claims to be.
    #[error("malformed body")]
    Malformed,
    /// A name, metadata or payload field exceeds its limit.
    #[error("{field} is {len} bytes, limit {max}")]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An item kind that is not allowed in this kind of message (membership state in a
    /// datagram, for example).
    #[error("{0} not allowed here")]
    UnexpectedItem(&'static str),
}

impl DecodeError {
    /// A short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::UnknownVersion(_) => "unknown_version",
            DecodeError::Malformed => "malformed",
            DecodeError::FieldTooLong { .. } => "field_too_long",
            DecodeError::UnexpectedItem(_) => "unexpected_item",
        }
    }
}

/// A well-formed message that breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// A packet claims to come from this node's own name (foca's `DataFromOurselves`).
    #[error("message claims to come from ourselves")]
    FromOurselves,
    /// An ack or nack for a sequence number this node never issued.
    #[error("ack or nack for unknown probe {seq} from {from}")]
    UnknownProbe {
        /// The sender.
        from: String,
        /// The sequence number.
        seq: u32,
    },
    /// Push-pull state from a node of another cluster.
    #[error("push-pull from cluster {theirs:?}, we are {ours:?}")]
    ClusterMismatch {
        /// Their cluster name.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// A message that must travel on a stream came as a datagram.
    #[error("{0} is only valid on a stream")]
    StreamOnly(&'static str),
}

impl PeerMisbehaved {
    /// A short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PeerMisbehaved::FromOurselves => "from_ourselves",
            PeerMisbehaved::UnknownProbe { .. } => "unknown_probe",
            PeerMisbehaved::ClusterMismatch { .. } => "cluster_mismatch",
            PeerMisbehaved::StreamOnly(_) => "stream_only",
        }
    }
}

/// The caller asked for something the API does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// Metadata larger than `Config::max_metadata_size`.
    #[error("metadata is {len} bytes, limit {max}")]
    MetadataTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A broadcast larger than `Config::max_broadcast_size`.
    #[error("broadcast is {len} bytes, limit {max}")]
    BroadcastTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The node has left the cluster; it no longer changes its own state.
    #[error("the node has left the cluster")]
    Left,
    /// This node's incarnation reached its maximum (a peer pushed it there); it can no
    /// longer announce changes about itself. State untouched.
    #[error("incarnation exhausted")]
    IncarnationExhausted,
    /// A node name that is empty or longer than 253 bytes.
    #[error("invalid node name {0:?}")]
    InvalidName(String),
    /// The node's [`Trust`](crate::Trust) refused its own credential (it does not prove the
    /// node's name); no node was built.
    #[error("own credential refused for {name:?}: {problem}")]
    OwnCredential {
        /// The node's name.
        name: String,
        /// What the trust said.
        problem: String,
    },
}

/// An invalid configuration value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `field` is outside what the protocol can work with.
    #[error("{field}: {reason}")]
    OutOfBounds {
        /// The field's name, as written in `Config`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Guard for `Error: Send + Sync + 'static` (embedders box it across tasks).
#[allow(dead_code)]
fn assert_error_traits() {
    fn check<T: Send + Sync + fmt::Debug + 'static>() {}
    check::<Error>();
}
