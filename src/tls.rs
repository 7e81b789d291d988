//! The certificates SentryK8s trusts as a TLS client (checks, alert
//! channels, PostgreSQL): Mozilla's roots (bundled, so a slim image needs no
//! CA package), the system's, and optionally a PEM file of private CAs.

use std::path::Path;
use std::sync::OnceLock;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// Mozilla's roots plus the system's. The system's are read from disk once
/// per process: every PostgreSQL (re)connection and HTTP client asks.
pub fn trust_store() -> RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let native = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(system_roots = added, "TLS trust store loaded");
            roots
        })
        .clone()
}

/// Adds every certificate of a PEM file (a private CA, a cloud provider's
/// database CA bundle) to `roots`.
pub fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> Result<usize, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{}: no usable CA certificate", path.display()));
    }
    Ok(added)
}
