//! swim-net: the QUIC + mutual-TLS runtime for `swim-core`.
//!
//! Not built yet (issue 3): this crate currently only re-exports the protocol core so the
//! workspace layout is in place. It does not open sockets.

pub use swim_core;
