//! Development certificates made with rcgen: a cluster CA and node certificates whose first
//! DNS subject alternative name is the node name. For tests, demos and first steps; use your
//! own PKI in production.

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use std::path::PathBuf;

use crate::tls::TlsFiles;

/// What can go wrong making development certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevCertError {
    /// rcgen could not make the key or the certificate.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// An extended key usage of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// TLS server authentication (serverAuth).
    Server,
    /// TLS client authentication (clientAuth).
    Client,
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct CertAndKey {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8). Keep it secret.
    pub key_pem: String,
}

/// A cluster certificate authority.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

impl DevCa {
    /// A new CA named `common_name`, valid for ten years from now.
    pub fn new(common_name: &str) -> Result<Self, DevCertError> {
        let key = KeyPair::generate()?;
        let key_pem = key.serialize_pem();
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = (SystemTime::now() - Duration::from_secs(3600)).into();
        params.not_after = (SystemTime::now() + Duration::from_secs(10 * 365 * 86_400)).into();
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem,
            key_pem,
        })
    }

    /// Loads a CA from its PEM certificate and PEM private key.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, DevCertError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA certificate and key, PEM.
    pub fn cert_and_key(&self) -> CertAndKey {
        CertAndKey {
            cert_pem: self.cert_pem(),
            key_pem: self.key_pem.clone(),
        }
    }

    /// A certificate for node `name`, valid from `not_before` to `not_after`, usable both as
    /// a QUIC server and client certificate.
    pub fn issue_with_validity(
        &self,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<CertAndKey, DevCertError> {
        self.issue_custom(name, not_before, not_after, &[Usage::Server, Usage::Client])
    }

    /// A certificate for node `name` valid from an hour ago for one year, with only the
    /// extended key usages in `usages` (for tests of certificates a member must refuse).
    pub fn issue_with_usages(
        &self,
        name: &str,
        usages: &[Usage],
    ) -> Result<CertAndKey, DevCertError> {
        let now = SystemTime::now();
        let year = Duration::from_secs(365 * 86_400);
        self.issue_custom(name, now - Duration::from_secs(3600), now + year, usages)
    }

    fn issue_custom(
        &self,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
        usages: &[Usage],
    ) -> Result<CertAndKey, DevCertError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![name.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages
            .iter()
            .map(|u| match u {
                Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
                Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
            })
            .collect();
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A certificate for node `name` valid from an hour ago for one year.
    pub fn issue(&self, name: &str) -> Result<CertAndKey, DevCertError> {
        let now = SystemTime::now();
        self.issue_with_validity(
            name,
            now - Duration::from_secs(3600),
            now + Duration::from_secs(365 * 86_400),
        )
    }

    /// Writes `ca.pem` and, for `name`, `<name>.pem` and `<name>.key` (mode 0600) into `dir`,
    /// and returns their paths.
    pub fn write_node(&self, dir: &Path, name: &str) -> Result<TlsFiles, DevCertError> {
        let node = self.issue(name)?;
        write_files(dir, &self.cert_pem(), name, &node)
    }
}

/// Writes a CA certificate and a node's certificate and key into `dir` (key mode 0600).
pub fn write_files(
    dir: &Path,
    ca_pem: &str,
    name: &str,
    node: &CertAndKey,
) -> Result<TlsFiles, DevCertError> {
    let io = |path: &Path, source: std::io::Error| DevCertError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.ca, ca_pem).map_err(|e| io(&files.ca, e))?;
    std::fs::write(&files.cert, &node.cert_pem).map_err(|e| io(&files.cert, e))?;
    write_secret(&files.key, &node.key_pem).map_err(|e| io(&files.key, e))?;
    Ok(files)
}

/// Writes a private key readable by its owner only.
pub fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(contents.as_bytes())
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, contents)
    }
}
