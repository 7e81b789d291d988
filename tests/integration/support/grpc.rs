//! A gRPC health server: tonic-health's own `grpc.health.v1.Health`
//! service on hyper's HTTP/2 server, plain or over TLS, whose statuses the
//! caller sets through the returned reporter. Used by the gRPC probe
//! tests, the probe bench and the demo target (both include this file
//! with `#[path]`, so it uses nothing outside itself).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tonic_health::server::HealthReporter;

pub use tonic_health::ServingStatus;

/// A running health server; it stops when dropped.
pub struct HealthServer {
    pub addr: SocketAddr,
    /// Sets what the server answers, per service ("" is the server).
    pub reporter: HealthReporter,
    task: tokio::task::JoinHandle<()>,
}

impl HealthServer {
    /// A plain-text (h2c) server on 127.0.0.1, port chosen by the system.
    pub async fn start() -> std::io::Result<HealthServer> {
        HealthServer::on(TcpListener::bind("127.0.0.1:0").await?, None)
    }

    /// A server over TLS with a certificate for `localhost` and 127.0.0.1,
    /// signed by itself (offering h2 by ALPN, as gRPC servers do).
    pub async fn start_tls() -> std::io::Result<HealthServer> {
        HealthServer::on(TcpListener::bind("127.0.0.1:0").await?, Some(self_signed()?))
    }

    /// A server on `listener` (plain, or TLS with `tls`).
    pub fn on(
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<HealthServer> {
        let addr = listener.local_addr()?;
        let (reporter, service) = tonic_health::server::health_reporter();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let service = TowerToHyperService::new(service.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = http2.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http2.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    }
                });
            }
        });
        Ok(HealthServer { addr, reporter, task })
    }

    /// Sets what the server answers for `service`.
    pub async fn set(&self, service: &str, status: ServingStatus) {
        self.reporter.set_service_status(service, status).await;
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TLS acceptor with a fresh self-signed certificate for `localhost`
/// and 127.0.0.1.
fn self_signed() -> std::io::Result<tokio_rustls::TlsAcceptor> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(|e| invalid(e.to_string()))?;
    let key = rcgen::KeyPair::generate().map_err(|e| invalid(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| invalid(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .map_err(|e| invalid(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
