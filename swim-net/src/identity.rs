//! Identity: the node name a certificate proves, the peer name of an established connection
//! (from the certificate its handshake verified), and reloading this node's own credentials
//! when its files change on disk.

use std::sync::Arc;
use std::time::SystemTime;

use quinn::Connection;
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use crate::accounting::WireCounters;
use crate::claim_trust::CertTrust;
use crate::config::ClusterConfig;
use crate::error::{NetError, PeerError};
use crate::tls::{Credentials, Refusals, TlsFiles};
use crate::transport::QuicCrypto;

/// The node name a certificate proves: its first DNS subject alternative name. A wildcard
/// name proves no node name.
pub(crate) fn node_name_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        })
        .filter(|d| !d.contains('*'))
        .map(str::to_string)
}

/// Whether the certificate is inside its validity period now.
pub(crate) fn within_validity(cert: &CertificateDer<'_>) -> bool {
    validity(cert) == Validity::Valid
}

/// Where now falls in a certificate's validity period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Validity {
    NotYetValid,
    Valid,
    Expired,
    Unparsable,
}

pub(crate) fn validity(cert: &CertificateDer<'_>) -> Validity {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Validity::Unparsable;
    };
    let now = x509_parser::time::ASN1Time::now();
    let v = parsed.validity();
    if now < v.not_before {
        Validity::NotYetValid
    } else if now > v.not_after {
        Validity::Expired
    } else {
        Validity::Valid
    }
}

/// When the certificate expires.
pub(crate) fn not_after(cert: &CertificateDer<'_>) -> Option<SystemTime> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let secs = parsed.validity().not_after.timestamp();
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(secs).ok()?))
}

/// The usage a member's certificate must allow, whichever side dialled: a member is a QUIC
/// client and a server at once. `None` if it does, else the usage it lacks. A certificate
/// without the extended-key-usage extension allows any usage (RFC 5280 §4.2.1.12).
pub(crate) fn missing_usage(cert: &CertificateDer<'_>) -> Option<&'static str> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Some("a parsable certificate");
    };
    let eku = match parsed.extended_key_usage() {
        Ok(Some(eku)) => eku.value,
        Ok(None) => return None,
        Err(_) => return Some("a parsable extended key usage"),
    };
    if eku.any {
        return None;
    }
    match (eku.server_auth, eku.client_auth) {
        (true, true) => None,
        (false, _) => Some("serverAuth"),
        (_, false) => Some("clientAuth"),
    }
}

/// Whether a certificate may issue others (basic constraints: CA).
pub(crate) fn is_ca(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref()).is_ok_and(|(_, parsed)| {
        parsed
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca)
    })
}

/// The peer's node name, from the certificate the handshake verified — or, for a resumed
/// TLS session, verified when the session was first established. Resumption skips the
/// verifier, so the certificate's validity period is checked again here: a peer whose
/// certificate has expired since is refused (counted as `expired`), however fresh its
/// ticket.
pub(crate) fn peer_name(conn: &Connection, refusals: &Refusals) -> Result<Arc<str>, PeerError> {
    let peer = conn.remote_address();
    let no_identity = PeerError::NoIdentity { peer };
    let chain = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(no_identity.clone())?;
    let leaf = chain.first().ok_or(no_identity.clone())?;
    if !within_validity(leaf) {
        refusals.refuse(
            "expired",
            &"a resumed session's certificate is no longer valid",
        );
        return Err(no_identity);
    }
    node_name_of(leaf).map(Arc::from).ok_or(no_identity)
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
}

/// New credentials from the (changed) files: the crypto for new connections, the
/// endpoint's new server config, and the key claims are signed with from now on. New connections use them (and new session caches, so no
/// session of the old certificate is resumed); open ones keep theirs.
pub(crate) fn reload(
    config: &ClusterConfig,
    refusals: &Refusals,
    wire: &Arc<WireCounters>,
    trust: &CertTrust,
) -> Result<(QuicCrypto, quinn::ServerConfig), NetError> {
    let creds = Credentials::load(&config.tls, &config.name)?;
    let crypto = QuicCrypto::new(&creds, refusals, config, wire)?;
    let server = crypto.server_config(config)?;
    trust.replace(&creds)?;
    Ok((crypto, server))
}
