//! Where a TLS check is timed: resolve, connect, optionally STARTTLS,
//! handshake, then judge the certificate and the session: days left, the
//! issuer, a pinned fingerprint, the protocol version. The chain and the
//! name are verified unless `tls_verify: false` (then the assertions still
//! hold on what the server presented).
//!
//! Phases: dns, connect, tls (the STARTTLS dialogue included: it is part
//! of getting to TLS).

use chrono::Utc;
use rustls::pki_types::ServerName;
use rustls::ProtocolVersion;
use tokio::time::Instant;

use super::run::{Run, Verdict};
use crate::model::{CheckOutcome, CheckSpec, ErrorClass, Expect, TlsVersion};
use crate::net::deny::DenyList;
use crate::net::dial::{dial, host_port, ms_since, server_name};
use crate::net::http::{Failure, Phase, Progress};
use crate::net::starttls;
use crate::net::tls::{self, TlsConfigs, TlsSetupError};

/// Runs TLS checks. Cheap to share: holds the client configurations.
pub struct TlsProbe {
    deny: DenyList,
    tls: TlsConfigs,
}

impl TlsProbe {
    pub fn new(deny: DenyList) -> Result<TlsProbe, TlsSetupError> {
        Ok(TlsProbe { deny, tls: TlsConfigs::without_alpn()? })
    }

    pub async fn run(&self, spec: &CheckSpec) -> CheckOutcome {
        let mut run = Run::start(spec);
        let verdict =
            tokio::time::timeout_at(run.deadline(), self.execute(spec, &mut run.progress)).await.ok();
        run.finish(verdict, spec.expect.max_response_time_ms)
    }

    async fn execute(&self, spec: &CheckSpec, p: &mut Progress) -> Verdict {
        let (host, port) = host_port(&spec.url, 443)?;
        let name = spec.server_name.clone().unwrap_or_else(|| server_name(&host));
        let name = ServerName::try_from(name)
            .map_err(|_| Failure::new(ErrorClass::Protocol, "not a valid TLS server name"))?;
        let mut stream = dial(&host, port, &self.deny, p).await?;
        p.phase = Phase::Tls;
        let started = Instant::now();
        if let Some(protocol) = spec.starttls {
            let upgraded = starttls::negotiate(protocol, &mut stream).await;
            if let Err(e) = upgraded {
                p.timings.tls_ms = Some(ms_since(started));
                return Err(Failure::new(ErrorClass::Protocol, e.to_string()));
            }
        }
        let config = if spec.tls_verify { self.tls.verify.clone() } else { self.tls.no_verify.clone() };
        let handshake = tokio_rustls::TlsConnector::from(config).connect(name, stream).await;
        p.timings.tls_ms = Some(ms_since(started));
        let stream = handshake.map_err(|e| {
            Failure::new(ErrorClass::Tls, format!("TLS handshake failed: {}", tls::describe_error(&e)))
        })?;
        let (_, session) = stream.get_ref();
        let leaf = session.peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec());
        let Some(leaf) = leaf else {
            return Err(Failure::new(ErrorClass::Tls, "the server presented no certificate"));
        };
        p.cert_expires_at = tls::not_after(&leaf);
        let version = match session.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => Some(TlsVersion::V1_3),
            Some(ProtocolVersion::TLSv1_2) => Some(TlsVersion::V1_2),
            _ => None,
        };
        Ok(judge(&spec.expect, &leaf, p.cert_expires_at, version))
    }
}

/// The certificate and session assertions that fail.
fn judge(
    e: &Expect,
    leaf: &[u8],
    not_after: Option<chrono::DateTime<Utc>>,
    version: Option<TlsVersion>,
) -> Vec<String> {
    let mut failed = Vec::new();
    if let Some(min_days) = e.cert_days_left {
        match not_after {
            Some(t) => {
                let left = (t - Utc::now()).num_days();
                if left < min_days as i64 {
                    failed.push(format!("certificate expires in {left} days (< {min_days})"));
                }
            }
            None => failed.push("certificate expiry unreadable".to_string()),
        }
    }
    if !e.cert_issuer_contains.is_empty() {
        let issuer = tls::issuer(leaf).unwrap_or_default();
        for needle in &e.cert_issuer_contains {
            if !issuer.contains(needle.as_str()) {
                failed.push(format!("issuer \"{issuer}\" does not contain \"{needle}\""));
            }
        }
    }
    if !e.cert_fingerprint_sha256.is_empty() {
        let actual = tls::fingerprint_sha256(leaf);
        if !e.cert_fingerprint_sha256.contains(&actual) {
            failed.push(format!("certificate fingerprint {actual} is not pinned"));
        }
    }
    if let Some(min) = e.tls_min_version {
        if version.is_none_or(|v| v < min) {
            let got = version.map_or("unknown", |v| v.as_str());
            failed.push(format!("TLS {got} negotiated (< {})", min.as_str()));
        }
    }
    failed
}
