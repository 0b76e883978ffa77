//! The core's [`Trust`] over the cluster's certificates: this node signs its claims with
//! its TLS private key, and a peer's claims are checked with the key of the certificate that
//! names it — a certificate admitted only if it chains to the cluster CA, names the member,
//! is valid now and allows both TLS usages (the same rules as a handshake), whoever relayed
//! it. Reloaded with the TLS files.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::Signer;
use rustls::SignatureScheme;
use swim_core::{ClaimKey, CredentialRefused, Trust};

use crate::error::NetError;
use crate::identity::{self, node_name_of};

/// Signature schemes this node may sign claims with, most preferred first (those of TLS 1.3).
const SCHEMES: [SignatureScheme; 6] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ED25519,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
];

/// A credential is a certificate chain, the node's own certificate first: each certificate
/// as a 4-byte little-endian length and its DER.
fn encode_chain(chain: &[CertificateDer<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for cert in chain {
        out.extend_from_slice(&(cert.len() as u32).to_le_bytes());
        out.extend_from_slice(cert);
    }
    out
}

fn decode_chain(mut bytes: &[u8]) -> Option<Vec<CertificateDer<'static>>> {
    let mut chain = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        chain.push(CertificateDer::from(rest[..len].to_vec()));
        bytes = &rest[len..];
    }
    (!chain.is_empty()).then_some(chain)
}

/// What signs and admits with one set of loaded TLS files.
#[derive(Debug)]
struct Keys {
    signer: Box<dyn Signer>,
    credential: Arc<[u8]>,
    verifier: Arc<rustls::client::WebPkiServerVerifier>,
}

/// See the module doc. Cheap to share: the node's driver and core hold the same one.
#[derive(Debug)]
pub struct CertTrust {
    keys: RwLock<Keys>,
    algorithms: WebPkiSupportedAlgorithms,
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

impl CertTrust {
    /// Loads the node's TLS files (as [`Cluster::start`](crate::Cluster::start) does) to
    /// sign claims as `name` and admit its peers' certificates.
    pub fn load(files: &crate::TlsFiles, name: &str) -> Result<Self, NetError> {
        Self::new(&crate::tls::Credentials::load(files, name)?)
    }

    pub(crate) fn new(creds: &crate::tls::Credentials) -> Result<Self, NetError> {
        Ok(Self {
            keys: RwLock::new(Self::keys(creds)?),
            algorithms: provider().signature_verification_algorithms,
        })
    }

    fn keys(creds: &crate::tls::Credentials) -> Result<Keys, NetError> {
        let key = provider()
            .key_provider
            .load_private_key(creds.key().clone_key())
            .map_err(|e| NetError::TlsSetup(e.into()))?;
        let signer = key.choose_scheme(&SCHEMES).ok_or_else(|| {
            NetError::TlsSetup(
                rustls::Error::General("the private key signs with no TLS 1.3 scheme".into())
                    .into(),
            )
        })?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            creds.roots(),
            Arc::new(provider()),
        )
        .build()
        .map_err(|e| NetError::TlsSetup(e.into()))?;
        Ok(Keys {
            signer,
            credential: encode_chain(creds.chain()).into(),
            verifier,
        })
    }

    /// Signs and admits with newly loaded files from now on.
    pub(crate) fn replace(&self, creds: &crate::tls::Credentials) -> Result<(), NetError> {
        let keys = Self::keys(creds)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    /// Whether the cluster CA (as loaded now) vouches for `chain` as member `name`: it chains
    /// to the CA, names `name` first, is valid now and allows both usages.
    pub(crate) fn vouches(
        &self,
        name: &str,
        chain: &[CertificateDer<'_>],
    ) -> Result<(), CredentialRefused> {
        let refused = |why: &str| CredentialRefused(why.to_string());
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| refused("no certificate"))?;
        let server_name =
            ServerName::try_from(name.to_string()).map_err(|_| refused("not a DNS name"))?;
        self.read()
            .verifier
            .verify_server_cert(leaf, intermediates, &server_name, &[], UnixTime::now())
            .map_err(|e| CredentialRefused(e.to_string()))?;
        if node_name_of(leaf).as_deref() != Some(name) {
            return Err(refused("its first DNS name is another node's"));
        }
        if let Some(missing) = identity::missing_usage(leaf) {
            return Err(CredentialRefused(format!("it lacks the {missing} usage")));
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        // A panic elsewhere while holding the lock left the keys whole (they are replaced in
        // one assignment).
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Trust for CertTrust {
    fn credential(&self) -> Arc<[u8]> {
        self.read().credential.clone()
    }

    /// The scheme (2 bytes, big-endian) and the signature.
    fn sign(&self, claim: &[u8]) -> Vec<u8> {
        let keys = self.read();
        let mut out = u16::from(keys.signer.scheme()).to_be_bytes().to_vec();
        match keys.signer.sign(claim) {
            Ok(sig) => out.extend_from_slice(&sig),
            // ring fails to sign only on a broken key, which loading already ruled out; an
            // empty signature is refused by every peer rather than taken.
            Err(e) => {
                tracing::error!(error = %e, "could not sign a claim");
                out.clear();
            }
        }
        out
    }

    fn admit(&self, name: &str, credential: &[u8]) -> Result<Arc<dyn ClaimKey>, CredentialRefused> {
        let refused = |why: &str| CredentialRefused(why.to_string());
        let mut chain =
            decode_chain(credential).ok_or_else(|| refused("not a certificate chain"))?;
        self.vouches(name, &chain)?;
        let not_after = identity::not_after(&chain[0]).ok_or_else(|| refused("no validity"))?;
        Ok(Arc::new(CertKey {
            cert: chain.swap_remove(0),
            not_after,
            algorithms: self.algorithms,
        }))
    }
}

/// The key of one admitted certificate.
#[derive(Debug)]
struct CertKey {
    cert: CertificateDer<'static>,
    not_after: SystemTime,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClaimKey for CertKey {
    fn verify(&self, claim: &[u8], signature: &[u8]) -> bool {
        let Some((scheme, sig)) = signature.split_first_chunk::<2>() else {
            return false;
        };
        let scheme = SignatureScheme::from(u16::from_be_bytes(*scheme));
        if SystemTime::now() > self.not_after || !SCHEMES.contains(&scheme) {
            return false;
        }
        let Some((_, algs)) = self.algorithms.mapping.iter().find(|(s, _)| *s == scheme) else {
            return false;
        };
        let Ok(cert) = webpki::EndEntityCert::try_from(&self.cert) else {
            return false;
        };
        algs.iter()
            .any(|alg| cert.verify_signature(*alg, claim, sig).is_ok())
    }
}
