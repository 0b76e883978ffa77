//! The simulator's stand-in for certificates and keys: deterministic and cheap, with the
//! sizes of the real thing (swim-net's ECDSA P-256 signature with its scheme, a certificate),
//! so that simulated wire costs stay right. Not cryptography: a "signature" is a hash of the
//! signer's name and the claim, so the simulation exercises the rules (who must sign what)
//! and tests can forge a claim by signing it under another name.

use std::sync::Arc;

use crate::trust::{ClaimKey, CredentialRefused, Trust};

/// Bytes of a simulated signature (swim-net: 2 bytes of scheme and a DER ECDSA P-256
/// signature of about 70).
pub const SIGNATURE_LEN: usize = 72;
/// Bytes of a simulated credential (swim-net: one certificate of about 500 bytes).
pub const CREDENTIAL_LEN: usize = 512;

/// A simulated member's key pair and credential (see the module doc).
#[derive(Debug, Clone)]
pub struct SimTrust {
    name: Arc<str>,
}

impl SimTrust {
    /// The trust of the member named `name`.
    pub fn new(name: &str) -> Self {
        Self { name: name.into() }
    }

    /// What `name` signing `claim` gives (a test signs as someone else with it).
    pub fn signature(name: &str, claim: &[u8]) -> Vec<u8> {
        let mut sig = tag(name, claim).to_le_bytes().to_vec();
        sig.resize(SIGNATURE_LEN, 0x5a);
        sig
    }

    /// The credential of `name`.
    pub fn credential_of(name: &str) -> Vec<u8> {
        let mut c = b"sim credential of ".to_vec();
        c.extend_from_slice(name.as_bytes());
        c.resize(CREDENTIAL_LEN.max(c.len() + 1), 0);
        c
    }
}

/// FNV-1a over the name, a separator and the claim, then a final mix.
fn tag(name: &str, claim: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name.as_bytes().iter().chain(&[0xff]).chain(claim) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[derive(Debug)]
struct SimKey {
    name: Arc<str>,
}

impl ClaimKey for SimKey {
    fn verify(&self, claim: &[u8], signature: &[u8]) -> bool {
        signature == SimTrust::signature(&self.name, claim)
    }
}

impl Trust for SimTrust {
    fn credential(&self) -> Arc<[u8]> {
        Self::credential_of(&self.name).into()
    }

    fn sign(&self, claim: &[u8]) -> Vec<u8> {
        Self::signature(&self.name, claim)
    }

    fn admit(&self, name: &str, credential: &[u8]) -> Result<Arc<dyn ClaimKey>, CredentialRefused> {
        if credential != Self::credential_of(name) {
            return Err(CredentialRefused(format!("not the credential of {name}")));
        }
        Ok(Arc::new(SimKey { name: name.into() }))
    }
}
