//! Who may say what: the [`Trust`] a node signs its own claims with and checks other
//! members' credentials by, and the exact bytes a claim signature covers.
//!
//! A member's claims about itself (alive or left, with its incarnation, address, boot id and
//! metadata) are signed by its own key, so they take effect however many hops they travel;
//! an accusation (suspect or dead) is signed by its accuser. The core does not know what a
//! key or credential is: swim-net's [`Trust`] uses the member's TLS certificate and its
//! private key; the simulator has a deterministic stand-in.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::wire::Own;

/// Checks the signatures of one member's claims (the public half of its key).
pub trait ClaimKey: Send + Sync + fmt::Debug {
    /// Whether `signature` over `claim` was made with this member's private key, and the key
    /// is still valid.
    fn verify(&self, claim: &[u8], signature: &[u8]) -> bool;
}

/// Why a credential proves nothing about a name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credential refused: {0}")]
pub struct CredentialRefused(pub String);

/// How a node signs its own claims and learns which key speaks for which member. Cheap to
/// call: the core caches every [`ClaimKey`] it admits, and checks each claim once.
pub trait Trust: Send + Sync + fmt::Debug {
    /// This node's credential, which peers [`admit`](Self::admit) to check its signatures
    /// (swim-net: its certificate chain).
    fn credential(&self) -> Arc<[u8]>;

    /// Signs `claim` with this node's private key.
    fn sign(&self, claim: &[u8]) -> Vec<u8>;

    /// The key that speaks for `name`, if `credential` proves it (swim-net: the certificate
    /// chains to the cluster CA, names `name`, is valid now and may be used both ways).
    fn admit(&self, name: &str, credential: &[u8]) -> Result<Arc<dyn ClaimKey>, CredentialRefused>;
}

/// A member's credential as admitted: the bytes (to hand on to peers that ask) and the key.
#[derive(Clone, Debug)]
pub(crate) struct Credential {
    pub bytes: Arc<[u8]>,
    pub key: Arc<dyn ClaimKey>,
}

/// Prefix of every signed claim, so that no signature made for anything else (a TLS
/// handshake, another protocol version) can pass for a claim.
const DOMAIN: &[u8] = b"swim claim v1\0";

/// What a claim signature covers. The cluster name is part of it, so a claim cannot be
/// replayed into another cluster that trusts the same CA.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim<'a> {
    /// A member about itself: alive (or left, when `left`) at `incarnation`, as the process
    /// `boot_id`, at `addr`, with `meta`.
    Own {
        cluster: &'a str,
        name: &'a str,
        incarnation: u32,
        left: bool,
        addr: SocketAddr,
        boot_id: u32,
        meta: &'a [u8],
    },
    /// `accuser` says `name` at `incarnation` did not answer. Whether it said suspect or
    /// dead is not covered: a dead is a suspicion that ran out, and any accuser may declare
    /// one at an incarnation it may suspect at.
    Accusation {
        cluster: &'a str,
        name: &'a str,
        incarnation: u32,
        accuser: &'a str,
    },
}

impl<'a> Claim<'a> {
    /// `name`'s own claim at `incarnation` (left, or alive), as `own` carries it.
    pub(crate) fn own(
        cluster: &'a str,
        name: &'a str,
        incarnation: u32,
        left: bool,
        own: &Own<'a>,
    ) -> Self {
        Claim::Own {
            cluster,
            name,
            incarnation,
            left,
            addr: own.addr,
            boot_id: own.boot_id,
            meta: own.meta,
        }
    }

    /// The bytes signed and verified.
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        // A fixed-shape value always serialises.
        postcard::to_extend(&self, DOMAIN.to_vec())
            .expect("BUG! postcard refused a fixed-shape value")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_differ_in_every_field_and_carry_the_domain() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let own = |cluster, incarnation, left, meta: &'static [u8]| {
            Claim::Own {
                cluster,
                name: "a",
                incarnation,
                left,
                addr,
                boot_id: 7,
                meta,
            }
            .to_bytes()
        };
        let base = own("c", 1, false, b"");
        assert!(base.starts_with(DOMAIN));
        assert_ne!(base, own("d", 1, false, b""));
        assert_ne!(base, own("c", 2, false, b""));
        assert_ne!(base, own("c", 1, true, b""));
        assert_ne!(base, own("c", 1, false, b"m"));
        let accuse = |accuser| {
            Claim::Accusation {
                cluster: "c",
                name: "a",
                incarnation: 1,
                accuser,
            }
            .to_bytes()
        };
        assert_ne!(accuse("b"), accuse("e"));
    }
}
