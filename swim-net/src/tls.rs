//! Mutual TLS: loading PEM credentials, the rustls configurations, verifiers that bind a
//! peer's node name to its verified certificate, and counting every refused handshake by
//! reason.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error as TlsError, RootCertStore,
    SignatureScheme,
};

use crate::error::{alert_name, NetError, PeerError, TlsFile, TlsFileProblem};
use crate::identity::{self, node_name_of, Validity};
use crate::log_limit::LogLimit;

/// ALPN protocol id, derived from the protocol version by the core: a peer of another
/// version cannot connect at all, rather than having its messages misread.
pub(crate) const ALPN: &[u8] = swim_core::ALPN;

/// Server name used when dialling a seed whose node name is not known yet: the server's
/// certificate is then checked against the name it carries itself (still signed by the
/// cluster CA), and that name becomes the peer's identity.
pub(crate) const SEED_SERVER_NAME: &str = "seed.swim.invalid";

/// Where a node's PEM files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA certificate(s): peers must present a chain to one of these.
    pub ca: PathBuf,
    /// This node's certificate chain; its first DNS subject alternative name is the node name.
    pub cert: PathBuf,
    /// This node's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// One loaded set of credentials.
#[derive(Debug)]
pub(crate) struct Credentials {
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Credentials {
    /// Loads and checks the files: the CA parses, the chain is not empty, and the node's
    /// own certificate carries `name`.
    pub(crate) fn load(files: &TlsFiles, name: &str) -> Result<Self, NetError> {
        let fail = |file, path: &Path, problem| NetError::TlsFile {
            file,
            path: path.to_path_buf(),
            problem,
        };
        let certificates = |file, path: &Path| -> Result<Vec<CertificateDer<'static>>, NetError> {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| fail(file, path, TlsFileProblem::Pem(e)))?;
            if certs.is_empty() {
                return Err(fail(file, path, TlsFileProblem::NoCertificate));
            }
            Ok(certs)
        };
        let mut roots = RootCertStore::empty();
        for cert in certificates(TlsFile::Ca, &files.ca)? {
            if !identity::is_ca(&cert) {
                return Err(fail(TlsFile::Ca, &files.ca, TlsFileProblem::NotACa));
            }
            roots
                .add(cert)
                .map_err(|e| fail(TlsFile::Ca, &files.ca, TlsFileProblem::BadCa(e)))?;
        }
        let roots = Arc::new(roots);
        let chain = certificates(TlsFile::Cert, &files.cert)?;
        let cert_problem = |problem| fail(TlsFile::Cert, &files.cert, problem);
        match node_name_of(&chain[0]) {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(NetError::NameNotInCertificate {
                    name: name.into(),
                    cert_name: n,
                })
            }
            None => return Err(cert_problem(TlsFileProblem::NoNodeName)),
        }
        match identity::validity(&chain[0]) {
            Validity::Valid => {}
            Validity::Expired => return Err(cert_problem(TlsFileProblem::Expired)),
            Validity::NotYetValid => return Err(cert_problem(TlsFileProblem::NotYetValid)),
            Validity::Unparsable => return Err(cert_problem(TlsFileProblem::NoNodeName)),
        }
        if let Some(missing) = identity::missing_usage(&chain[0]) {
            return Err(cert_problem(TlsFileProblem::WrongUsage(missing)));
        }
        // The node must be able to prove itself to its peers: its chain must lead to the CA
        // it trusts them by (the same check a peer makes of it).
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| NetError::TlsSetup(e.into()))?;
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|_| cert_problem(TlsFileProblem::NoNodeName))?;
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], UnixTime::now())
            .map_err(|e| cert_problem(TlsFileProblem::NotTrusted(e)))?;
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|e| fail(TlsFile::Key, &files.key, TlsFileProblem::Pem(e)))?;
        warn_if_readable_by_others(&files.key);
        if let Some(not_after) = identity::not_after(&chain[0]) {
            crate::metrics::own_certificate(not_after);
        }
        Ok(Self { roots, chain, key })
    }

    pub(crate) fn roots(&self) -> Arc<RootCertStore> {
        self.roots.clone()
    }

    pub(crate) fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub(crate) fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// The QUIC server side: client certificates are required and verified. With
    /// `sessions`, up to that many TLS sessions are kept so that clients can resume them
    /// (one single-use ticket per connection; a resumed session keeps the certificate chain
    /// verified when it was first established).
    pub(crate) fn server_config(
        &self,
        refusals: &Refusals,
        sessions: Option<usize>,
    ) -> Result<rustls::ServerConfig, NetError> {
        let inner = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| NetError::TlsSetup(e.into()))?;
        let verifier = Arc::new(CountingClientVerifier {
            inner,
            refusals: refusals.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::TlsSetup(e.into()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| NetError::TlsSetup(e.into()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        match sessions {
            Some(n) => {
                config.session_storage = rustls::server::ServerSessionMemoryCache::new(n);
                // A client needs one ticket for its next reconnect; a second would only
                // cost bytes.
                config.send_tls13_tickets = 1;
            }
            None => {
                config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
                config.send_tls13_tickets = 0;
            }
        }
        Ok(config)
    }

    /// The QUIC client side: the server must be the expected node (or, for a seed, any node
    /// of the cluster CA), and we present our own certificate. With `sessions`, tickets for
    /// up to that many servers are kept for resumption.
    pub(crate) fn client_config(
        &self,
        refusals: &Refusals,
        sessions: Option<usize>,
    ) -> Result<rustls::ClientConfig, NetError> {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            self.roots.clone(),
            provider(),
        )
        .build()
        .map_err(|e| NetError::TlsSetup(e.into()))?;
        let verifier = Arc::new(PeerServerVerifier {
            inner,
            refusals: refusals.clone(),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::TlsSetup(e.into()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| NetError::TlsSetup(e.into()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.resumption = match sessions {
            Some(n) => rustls::client::Resumption::in_memory_sessions(n),
            None => rustls::client::Resumption::disabled(),
        };
        Ok(config)
    }
}

/// Warns when the private key can be read by users other than its owner.
fn warn_if_readable_by_others(key: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(key) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    file = %key.display(),
                    mode = format!("{mode:o}"),
                    "the private key is readable by others than its owner (chmod 600 it)"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = key;
}

/// A stable label for why a certificate was refused.
pub(crate) fn refusal_reason(e: &TlsError) -> &'static str {
    match e {
        TlsError::NoCertificatesPresented => "no_certificate",
        TlsError::InvalidCertificate(c) => {
            match c {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "not_yet_valid"
                }
                CertificateError::UnknownIssuer => "unknown_issuer",
                CertificateError::BadSignature => "bad_signature",
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => "name_mismatch",
                CertificateError::Revoked => "revoked",
                CertificateError::InvalidPurpose
                | CertificateError::InvalidPurposeContext { .. } => "wrong_usage",
                CertificateError::BadEncoding => "bad_encoding",
                _ => "invalid_certificate",
            }
        }
        _ => "other",
    }
}

/// Counts refused handshakes, ours (`swim_tls_handshake_failures_total{reason}`) and the
/// peers' (`swim_refused_by_peer_total{alert}`), and logs each reason at most once every
/// [`PEER_LOG_EVERY`](crate::log_limit::PEER_LOG_EVERY).
#[derive(Clone, Debug, Default)]
pub(crate) struct Refusals {
    logs: Arc<Mutex<LogLimit>>,
}

impl Refusals {
    /// A certificate refused because it does not allow `missing` (counted as
    /// `wrong_usage`); the error to end the handshake with.
    fn wrong_usage(&self, missing: &'static str) -> TlsError {
        let e = TlsError::InvalidCertificate(CertificateError::InvalidPurpose);
        self.refuse(
            "wrong_usage",
            &format!("the certificate does not allow {missing}"),
        );
        e
    }

    pub(crate) fn refuse(&self, reason: &'static str, detail: &dyn fmt::Display) {
        metrics::counter!("swim_tls_handshake_failures_total", "reason" => reason).increment(1);
        if let Some(more_since_last) = self.log_now(reason) {
            tracing::warn!(reason, %detail, more_since_last, "refused a peer's TLS handshake");
        }
    }

    /// A peer refused our handshake (its TLS alert says why): counted by alert, logged at
    /// most once per alert every [`PEER_LOG_EVERY`](crate::log_limit::PEER_LOG_EVERY).
    pub(crate) fn refused_by_peer(&self, e: &PeerError) {
        let alert = match e {
            PeerError::Refused { alert, .. } => alert.map_or("none", alert_name),
            _ => "none",
        };
        metrics::counter!("swim_refused_by_peer_total", "alert" => alert).increment(1);
        if let Some(more_since_last) = self.log_now(alert) {
            tracing::warn!(alert, error = %e, more_since_last, "a peer refused our TLS handshake");
        }
    }

    /// Whether a line about `key` may be logged now: with how many were held back since.
    fn log_now(&self, key: &'static str) -> Option<u64> {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        logs.allow(key, Instant::now())
    }
}

/// The signature checks of a verifier that only adds to how its `inner` one judges
/// certificates: passed through unchanged.
macro_rules! signatures_by_inner {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            self.inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, TlsError> {
            self.inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.inner.supported_verify_schemes()
        }
    };
}

#[derive(Debug)]
struct CountingClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    refusals: Refusals,
}

impl ClientCertVerifier for CountingClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, TlsError> {
        let result = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(e) = &result {
            self.refusals.refuse(refusal_reason(e), e);
        } else if node_name_of(end_entity).is_none() {
            let e = TlsError::InvalidCertificate(CertificateError::NotValidForName);
            self.refusals.refuse("no_node_name", &e);
            return Err(e);
        } else if let Some(missing) = identity::missing_usage(end_entity) {
            // webpki checked clientAuth; a member must also be able to serve.
            return Err(self.refusals.wrong_usage(missing));
        }
        if result.is_ok() {
            crate::counted_crypto::note_certificate_verified();
        }
        result
    }

    signatures_by_inner!();
}

#[derive(Debug)]
struct PeerServerVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    refusals: Refusals,
}

impl ServerCertVerifier for PeerServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let seed = matches!(server_name, ServerName::DnsName(d) if d.as_ref() == SEED_SERVER_NAME);
        let result = if seed {
            // A seed: any node of the cluster CA, identified by the name it proves.
            match node_name_of(end_entity).and_then(|n| ServerName::try_from(n).ok()) {
                Some(own) => self.inner.verify_server_cert(
                    end_entity,
                    intermediates,
                    &own,
                    ocsp_response,
                    now,
                ),
                None => Err(TlsError::InvalidCertificate(
                    CertificateError::NotValidForName,
                )),
            }
        } else {
            self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )
        };
        match &result {
            Err(e) => self.refusals.refuse(refusal_reason(e), e),
            Ok(_) => {
                // webpki checked serverAuth; a member must also be able to dial.
                if let Some(missing) = identity::missing_usage(end_entity) {
                    return Err(self.refusals.wrong_usage(missing));
                }
                crate::counted_crypto::note_certificate_verified();
            }
        }
        result
    }

    signatures_by_inner!();
}
