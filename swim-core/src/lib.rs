//! # swim-core
//!
//! The SWIM failure detector and membership protocol, with the Lifeguard extensions
//! (local health, dynamic suspicion timeout, buddy system), as a deterministic sans-IO state
//! machine in the style of quinn-proto: no sockets, no clocks, no tasks, no global state.
//! Time comes in as an argument and randomness from a seed, so the same inputs replay the
//! same run bit for bit.
//!
//! The caller (swim-net, or the simulator in [`sim`] behind the `sim` feature) feeds a
//! [`Node`] datagrams, stream messages and timeouts, and sends what it polls out. See
//! [`Node`] for the order of calls.

#![warn(missing_docs, unreachable_pub)]

mod accusation;
mod awareness;
mod claim_refusal;
mod claims;
mod compact;
mod config;
mod dissemination;
mod error;
mod event;
mod join;
mod membership;
mod names;
mod node;
mod probe;
mod pushpull;
mod quarantine;
mod reconnect;
mod refutation;
mod stats;
mod suspicion;
mod tombstone;
mod trust;
mod update;
mod view;
mod waiting_claims;
mod wire;

#[cfg(feature = "sim")]
pub mod sim;

// The fuzz targets' entry points into the wire codec (tests/fuzz/): not a public API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use claim_refusal::ClaimRefusal;
pub use config::{Config, Timings};
pub use error::{ApiMisuse, ConfigError, DecodeError, Error, PeerMisbehaved};
pub use event::{Event, MemberInfo};
pub use membership::MemberState;
pub use node::{Node, Transmit};
pub use probe::MAX_RTT_SAMPLES;
pub use pushpull::MAX_PUSH_PULL_SAMPLES;
pub use stats::{Stats, Traffic};
pub use trust::{ClaimKey, CredentialRefused, Trust};
pub use wire::{Framing, MessageKind, ALPN, PROTOCOL_VERSION};
