//! Mutual TLS: loading PEM credentials, verifiers that bind a peer's node name to its
//! verified certificate, and counting every refused handshake by reason.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

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

use crate::error::NetError;

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
        let read_err = |path: &Path, e: &dyn fmt::Display| NetError::Tls {
            path: path.to_path_buf(),
            problem: e.to_string(),
        };
        let mut roots = RootCertStore::empty();
        let ca: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.ca)
            .map_err(|e| read_err(&files.ca, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| read_err(&files.ca, &e))?;
        if ca.is_empty() {
            return Err(read_err(&files.ca, &"no certificate in file"));
        }
        for cert in ca {
            roots.add(cert).map_err(|e| read_err(&files.ca, &e))?;
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
            .map_err(|e| read_err(&files.cert, &e))?
            .collect::<Result<_, _>>()
            .map_err(|e| read_err(&files.cert, &e))?;
        let Some(leaf) = chain.first() else {
            return Err(read_err(&files.cert, &"no certificate in file"));
        };
        match node_name_of(leaf) {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(NetError::NameNotInCertificate {
                    name: name.into(),
                    cert_name: n,
                })
            }
            None => {
                return Err(read_err(
                    &files.cert,
                    &"certificate has no DNS subject alternative name",
                ))
            }
        }
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read_err(&files.key, &e))?;
        Ok(Self {
            roots: Arc::new(roots),
            chain,
            key,
        })
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
            .map_err(|e| NetError::TlsSetup(e.to_string()))?;
        let verifier = Arc::new(CountingClientVerifier {
            inner,
            refusals: refusals.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::TlsSetup(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| NetError::TlsSetup(e.to_string()))?;
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
        .map_err(|e| NetError::TlsSetup(e.to_string()))?;
        let verifier = Arc::new(PeerServerVerifier {
            inner,
            refusals: refusals.clone(),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| NetError::TlsSetup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| NetError::TlsSetup(e.to_string()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        config.resumption = match sessions {
            Some(n) => rustls::client::Resumption::in_memory_sessions(n),
            None => rustls::client::Resumption::disabled(),
        };
        Ok(config)
    }
}

/// Whether the certificate is inside its validity period now.
pub(crate) fn within_validity(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .is_ok_and(|(_, parsed)| parsed.validity().is_valid())
}

/// The node name a certificate proves: its first DNS subject alternative name. A wildcard
/// name proves no node name.
pub(crate) fn node_name_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    san.value
        .general_names
        .iter()
        .find(|n| matches!(n, x509_parser::extensions::GeneralName::DNSName(_)))
        .and_then(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) if !d.contains('*') => {
                Some(d.to_string())
            }
            _ => None,
        })
}

/// A stable label for why a certificate was refused.
pub(crate) fn refusal_reason(e: &TlsError) -> &'static str {
    match e {
        TlsError::NoCertificatesPresented => "no_certificate",
        TlsError::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::UnknownIssuer => "unknown_issuer",
            CertificateError::BadSignature => "bad_signature",
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "name_mismatch"
            }
            CertificateError::Revoked => "revoked",
            CertificateError::BadEncoding => "bad_encoding",
            _ => "invalid_certificate",
        },
        _ => "other",
    }
}

/// Counts refused handshakes (metric `swim_tls_handshake_failures_total{reason}`) and logs
/// each reason at most once every [`LOG_EVERY`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Refusals {
    last_logged: Arc<Mutex<Vec<(&'static str, Instant)>>>,
}

const LOG_EVERY: Duration = Duration::from_secs(10);

impl Refusals {
    pub(crate) fn refuse(&self, reason: &'static str, detail: &dyn fmt::Display) {
        metrics::counter!("swim_tls_handshake_failures_total", "reason" => reason).increment(1);
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match last.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, t)) if now.duration_since(*t) < LOG_EVERY => {}
            Some((_, t)) => {
                *t = now;
                tracing::warn!(reason, %detail, "refused a peer's TLS handshake");
            }
            None => {
                last.push((reason, now));
                tracing::warn!(reason, %detail, "refused a peer's TLS handshake");
            }
        }
    }
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
        }
        if result.is_ok() {
            crate::counted_crypto::note_certificate_verified();
        }
        result
    }

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
            Ok(_) => crate::counted_crypto::note_certificate_verified(),
        }
        result
    }

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
}

/// Notices when any of the three files changed (modification time or size), so credentials
/// can be reloaded without a restart.
#[derive(Debug)]
pub(crate) struct FileWatch {
    files: TlsFiles,
    seen: Vec<Option<(SystemTime, u64)>>,
}

impl FileWatch {
    pub(crate) fn new(files: TlsFiles) -> Self {
        let seen = Self::stamp(&files);
        Self { files, seen }
    }

    fn stamp(files: &TlsFiles) -> Vec<Option<(SystemTime, u64)>> {
        [&files.ca, &files.cert, &files.key]
            .iter()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }

    /// True once after the files changed.
    pub(crate) fn changed(&mut self) -> bool {
        let now = Self::stamp(&self.files);
        if now != self.seen {
            self.seen = now;
            return true;
        }
        false
    }

    pub(crate) fn files(&self) -> &TlsFiles {
        &self.files
    }
}
