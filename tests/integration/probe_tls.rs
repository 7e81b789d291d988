//! The TLS check against servers the test runs with rcgen certificates
//! from a CA of its own: in process (`probe::Prober`) for what the
//! assertions see, and through the real worker, which trusts the test CA
//! by `SSL_CERT_FILE`, for a valid and an expired certificate, directly
//! and after STARTTLS SMTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use sentryk8s::model::{CheckSpec, ErrorClass};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::probe_tcp::{prober, run};
use crate::support::worker_bed::now_ms;
use crate::support::WorkerBed;

/// A CA and a certificate it issued for localhost and 127.0.0.1.
struct Pki {
    ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key_der: Vec<u8>,
    leaf_der: Vec<u8>,
}

fn pki(not_after: (i32, u8, u8)) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "SentryK8s Test CA");
    ca.distinguished_name.push(rcgen::DnType::OrganizationName, "Probe Tests");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        chain: vec![cert.der().clone(), ca_cert.der().clone()],
        key_der: key.serialize_der(),
        leaf_der: cert.der().to_vec(),
    }
}

/// A TLS server (TLS 1.2 only when `tls12_only`), after an SMTP STARTTLS
/// dialogue when `smtp`. Each connection is held open after the handshake.
async fn tls_server(pki: &Pki, smtp: bool, tls12_only: bool) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if tls12_only { &[&rustls::version::TLS12] } else { rustls::DEFAULT_VERSIONS };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            pki.chain.clone(),
            rustls::pki_types::PrivateKeyDer::Pkcs8(pki.key_der.clone().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if smtp && smtp_until_starttls(&mut stream).await.is_err() {
                    return;
                }
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let mut buf = [0u8; 64];
                    let _ = tls.read(&mut buf).await;
                }
            });
        }
    });
    addr
}

/// The server side of SMTP up to "220 Ready to start TLS".
async fn smtp_until_starttls(stream: &mut tokio::net::TcpStream) -> std::io::Result<()> {
    stream.write_all(b"220 mail.test ESMTP\r\n").await?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let command = line.trim().to_ascii_uppercase();
        let answer: &[u8] = if command.starts_with("EHLO") {
            b"250-mail.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
        } else if command == "STARTTLS" {
            reader.get_mut().write_all(b"220 Ready to start TLS\r\n").await?;
            return Ok(());
        } else {
            b"502 unknown\r\n"
        };
        reader.get_mut().write_all(answer).await?;
    }
}

fn tls_spec(addr: SocketAddr, extra: serde_json::Value) -> serde_json::Value {
    let mut spec = json!({"kind": "tls", "url": format!("tls://{addr}"), "timeout_ms": 3000});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

#[tokio::test]
async fn certificate_assertions_in_process() {
    let pki = pki((2036, 1, 2));
    let addr = tls_server(&pki, false, false).await;
    let fingerprint = sentryk8s::net::tls::fingerprint_sha256(&pki.leaf_der);
    let up = run(tls_spec(
        addr,
        json!({
            "tls_verify": false,
            "expect": {
                "cert_days_left": 30, "cert_issuer_contains": ["SentryK8s Test CA"],
                "cert_fingerprint_sha256": [fingerprint], "tls_min_version": "1.3"
            }
        }),
    ))
    .await;
    assert!(up.success, "{up:?}");
    assert!(up.timings.connect_ms.is_some() && up.timings.tls_ms.is_some(), "{up:?}");
    assert_eq!(up.cert_expires_at.unwrap().to_rfc3339(), "2036-01-02T00:00:00+00:00");

    let wrong = run(tls_spec(
        addr,
        json!({
            "tls_verify": false,
            "expect": {"cert_days_left": 100000, "cert_issuer_contains": ["Let's Encrypt"],
                       "cert_fingerprint_sha256": ["0".repeat(64)]}
        }),
    ))
    .await;
    assert_eq!(wrong.error_class, Some(ErrorClass::Assertion), "{wrong:?}");
    assert_eq!(wrong.failed_assertions.len(), 3, "{wrong:?}");
    assert!(wrong.failed_assertions[1].contains("CN=SentryK8s Test CA"), "{wrong:?}");
    assert!(wrong.failed_assertions[2].contains(&fingerprint), "{wrong:?}");

    // The chain is verified by default: this CA is not trusted here.
    let untrusted = run(tls_spec(addr, json!({}))).await;
    assert_eq!(untrusted.error_class, Some(ErrorClass::Tls), "{untrusted:?}");
    assert!(untrusted.error_message.unwrap().contains("UnknownIssuer"));

    let old = tls_server(&pki, false, true).await;
    let v12 = run(tls_spec(old, json!({"tls_verify": false, "expect": {"tls_min_version": "1.3"}}))).await;
    assert_eq!(v12.failed_assertions, ["TLS 1.2 negotiated (< 1.3)"], "{v12:?}");
}

#[tokio::test]
async fn starttls_smtp_then_the_handshake() {
    let pki = pki((2036, 1, 2));
    let smtp = tls_server(&pki, true, false).await;
    let up =
        run(tls_spec(smtp, json!({"starttls": "smtp", "tls_verify": false, "server_name": "localhost"})))
            .await;
    assert!(up.success, "{up:?}");
    assert!(up.cert_expires_at.is_some() && up.timings.tls_ms.is_some(), "{up:?}");
    // Without STARTTLS the handshake meets an SMTP greeting.
    let plain = run(tls_spec(smtp, json!({"tls_verify": false}))).await;
    assert_eq!(plain.error_class, Some(ErrorClass::Tls), "{plain:?}");
    // STARTTLS to a server that is TLS from the first byte.
    let direct = tls_server(&pki, false, false).await;
    let spec: CheckSpec = serde_json::from_value(tls_spec(
        direct,
        json!({"starttls": "smtp", "tls_verify": false, "timeout_ms": 1000}),
    ))
    .unwrap();
    let confused = prober(Default::default()).run(&spec).await;
    assert!(!confused.success, "{confused:?}");
    assert!(matches!(confused.error_class, Some(ErrorClass::Protocol | ErrorClass::Timeout)), "{confused:?}");
}

#[tokio::test]
async fn valid_and_expired_certificates_through_the_worker() {
    let valid = pki((2036, 1, 2));
    let expired = pki((2021, 1, 1));
    let bed = WorkerBed::new().await;
    let dir = std::env::temp_dir().join(crate::support::unique_name("tls-ca"));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("ca.pem");
    std::fs::write(&bundle, format!("{}{}", valid.ca_pem, expired.ca_pem)).unwrap();
    let mut worker = bed.spawn_worker(&[("SSL_CERT_FILE", bundle.to_str().unwrap())]);

    let cases = [
        ("valid", tls_spec(tls_server(&valid, false, false).await, json!({"server_name": "localhost"}))),
        ("expired", tls_spec(tls_server(&expired, false, false).await, json!({"server_name": "localhost"}))),
        (
            "smtp",
            tls_spec(
                tls_server(&valid, true, false).await,
                json!({"starttls": "smtp", "server_name": "localhost"}),
            ),
        ),
    ];
    let mut ids = Vec::new();
    for (name, spec) in &cases {
        let id = bed.add_check(name, spec).await;
        bed.publish(&WorkerBed::job(id, name, spec, now_ms())).await;
        ids.push(id);
    }
    let all = "SELECT count(*) FROM check_results";
    assert!(bed.wait_for_count(all, 3, Duration::from_secs(30)).await, "{}", worker.output());
    let valid_row = &bed.results(ids[0]).await[0];
    assert!(valid_row.success, "{valid_row:?}");
    assert!(valid_row.tls_ms.is_some() && valid_row.cert_expires_at.is_some(), "{valid_row:?}");
    let expired_row = &bed.results(ids[1]).await[0];
    assert_eq!(expired_row.error_class.as_deref(), Some("tls"), "{expired_row:?}");
    assert!(expired_row.error_message.as_deref().unwrap().contains("certificate expired"), "{expired_row:?}");
    let smtp_row = &bed.results(ids[2]).await[0];
    assert!(smtp_row.success, "{smtp_row:?}");
    worker.terminate();
    let _ = worker.wait_exit(Duration::from_secs(15)).await;
    let _ = std::fs::remove_dir_all(dir);
}
