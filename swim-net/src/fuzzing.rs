//! Entry points for the fuzz targets in `tests/fuzz/` (feature `fuzzing`): thin wrappers over
//! crate-private certificate parsing. Not a stable API: hidden from the docs, and nothing but
//! the fuzz crate should use it.

use rustls::pki_types::CertificateDer;

/// The node name a DER certificate proves, by the rule the handshake applies to a peer: its
/// first DNS subject alternative name, none if that is a wildcard.
pub fn node_name_of(der: &[u8]) -> Option<String> {
    crate::identity::node_name_of(&CertificateDer::from(der))
}
