//! TLS as a client, for every outbound connection (checks, alert channels,
//! PostgreSQL): whom SentryK8s trusts, the two shared rustls client
//! configurations of checks and channels (verifying and not), and reading a
//! certificate's expiry.
//!
//! Trust: Mozilla's roots (bundled, so a slim image needs no CA package),
//! the system's store when one exists (so an internal CA installed in the
//! image is honoured), and optionally a PEM file of private CAs. rustls with
//! the `ring` provider. Session resumption is off: every check is a full
//! handshake, which is what it measures and what delivers the certificate
//! whose expiry is recorded.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

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

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot build the TLS client configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The client configurations every check shares.
#[derive(Clone)]
pub struct TlsConfigs {
    pub verify: Arc<ClientConfig>,
    pub no_verify: Arc<ClientConfig>,
}

/// ALPN offer: HTTP/2 first, HTTP/1.1 for servers that do not speak it.
fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

impl TlsConfigs {
    pub fn new() -> Result<TlsConfigs, TlsSetupError> {
        TlsConfigs::with_alpn(alpn())
    }

    /// Configurations that offer no application protocol: a TLS check
    /// (SMTP after STARTTLS, a database) is not HTTP.
    pub fn without_alpn() -> Result<TlsConfigs, TlsSetupError> {
        TlsConfigs::with_alpn(Vec::new())
    }

    fn with_alpn(alpn: Vec<Vec<u8>>) -> Result<TlsConfigs, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = trust_store();

        let mut verify = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        verify.alpn_protocols = alpn.clone();
        verify.resumption = Resumption::disabled();

        let mut no_verify = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth();
        no_verify.alpn_protocols = alpn;
        no_verify.resumption = Resumption::disabled();

        Ok(TlsConfigs { verify: Arc::new(verify), no_verify: Arc::new(no_verify) })
    }
}

/// `tls_verify: false`: accept any certificate and name, but still check
/// the handshake signatures so the session is a real TLS session with the
/// holder of the presented key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// notAfter of a DER certificate; `None` when it does not parse.
pub fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0)
}

/// The issuer of a DER certificate, as RFC 4514 text
/// (`CN=R3,O=Let's Encrypt,C=US`); `None` when it does not parse.
pub fn issuer(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.issuer().to_string())
}

/// The SHA-256 fingerprint of a DER certificate, lower-case hex.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}

/// A short, safe description of a TLS failure (rustls' messages name the
/// problem — "invalid peer certificate: UnknownIssuer" — and carry no data
/// from the peer beyond that).
pub fn describe_error(error: &std::io::Error) -> String {
    match error.get_ref() {
        Some(inner) => inner.to_string(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["example.test".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 17);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let expires = not_after(cert.der()).unwrap();
        assert_eq!(expires.to_rfc3339(), "2031-05-17T00:00:00+00:00");
        assert_eq!(not_after(b"not a certificate"), None);
        assert_eq!(issuer(cert.der()).as_deref(), Some("CN=rcgen self signed cert"));
        assert_eq!(fingerprint_sha256(b"").len(), 64);
        assert_eq!(
            fingerprint_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn configurations_offer_h2_and_never_resume() {
        let configs = TlsConfigs::new().unwrap();
        for c in [&configs.verify, &configs.no_verify] {
            assert_eq!(c.alpn_protocols, alpn());
        }
        let plain = TlsConfigs::without_alpn().unwrap();
        assert!(plain.verify.alpn_protocols.is_empty() && plain.no_verify.alpn_protocols.is_empty());
    }
}
