//! The newcomer demo's local world (`scripts/demo.sh`), so
//! examples/checks.yaml has something to watch, and somewhere to alert,
//! offline:
//!
//! - a web site on 127.0.0.1:18080:
//!
//!   | path | answer |
//!   |---|---|
//!   | `/` | 200, a page that says Welcome |
//!   | `/health` | 200, `{"status":"UP","version":"v1"}` |
//!   | `/slow` | 200 after 3 s |
//!   | `/status/<code>` | that status |
//!   | `/redirect` | 302 to `/` |
//!
//! - an alert receiver on 127.0.0.1:18090 (the example's webhook, PagerDuty
//!   and Slack channels): accepts every POST and prints one line per alert;
//! - a mail sink on 127.0.0.1:18025 (the example's email channel): speaks
//!   just enough SMTP to accept a message, and prints its subject;
//! - for the other kinds of check: a line server on 127.0.0.1:18083 (TCP:
//!   greets `+OK demo`, answers `PING` with `+PONG`), a TLS server on
//!   127.0.0.1:18443 (a self-signed certificate for localhost, made at
//!   start), and a DNS server on 127.0.0.1:18053 (UDP: `demo.test` has the
//!   A records 127.0.0.1 and 127.0.0.2; other names are NXDOMAIN).
//! - a gRPC health server on 127.0.0.1:18051 (h2c): `demo.Greeter` is
//!   SERVING, `demo.Legacy` NOT_SERVING.
//!
//! `cargo run --example demo_target`.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The gRPC health server the tests run too (tonic-health on hyper). The
/// standalone test includes this file beside the test support, which holds
/// it already: the same file twice, on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "../tests/integration/support/grpc.rs"]
mod grpc;

pub async fn answer(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let (status, body, location) = match path.as_str() {
        "/" => (200, "<html><body><h1>Welcome to the demo target</h1></body></html>".to_string(), None),
        "/health" => (200, r#"{"status":"UP","version":"v1"}"#.to_string(), None),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (200, "finally".to_string(), None)
        }
        "/redirect" => (302, String::new(), Some("/")),
        p if p.starts_with("/status/") => {
            let code = p.trim_start_matches("/status/").parse().unwrap_or(500);
            (code, format!("status {code}"), None)
        }
        _ => (404, "not found".to_string(), None),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(location) = location {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, hyper::header::HeaderValue::from_static(location));
    }
    Ok(response)
}

/// Accepts an alert and prints what it says.
async fn receive_alert(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    // Webhook: check/state; PagerDuty: event_action + payload.summary; Slack: text.
    let what = doc["check"]
        .as_str()
        .map(|c| format!("{c} is {}", doc["state"].as_str().unwrap_or("?")))
        .or_else(|| doc["payload"]["summary"].as_str().map(|s| format!("{} {s}", doc["event_action"])))
        .or_else(|| doc["text"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{} bytes", body.len()));
    eprintln!("[demo] alert on {path}: {what}");
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

async fn serve_http<F, Fut>(listener: TcpListener, handler: F) -> std::io::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    loop {
        let (stream, _) = listener.accept().await?;
        let handler = handler.clone();
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(handler))
                .await;
        });
    }
}

/// Serves the web site on `listener` forever (the tests run it in process).
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    serve_http(listener, answer).await
}

/// Accepts mail: the minimum of SMTP (no TLS, no auth) a client needs.
async fn serve_smtp(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = BufReader::new(read).lines();
            let _ = write.write_all(b"220 demo ESMTP\r\n").await;
            let mut subject = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250 demo\r\n",
                    "DATA" => {
                        let _ = write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
                        while let Ok(Some(data)) = lines.next_line().await {
                            if data == "." {
                                break;
                            }
                            if let Some(s) = data.strip_prefix("Subject: ") {
                                subject = s.to_string();
                            }
                        }
                        eprintln!("[demo] mail: {subject}");
                        b"250 queued\r\n"
                    }
                    "QUIT" => {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        break;
                    }
                    _ => b"250 ok\r\n",
                };
                let _ = write.write_all(reply).await;
            }
        });
    }
}

/// The TCP check's server: greets, then answers `PING` with `+PONG`.
pub async fn serve_line(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let _ = write.write_all(b"+OK demo ready\r\n").await;
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply: &[u8] =
                    if line.trim().eq_ignore_ascii_case("PING") { b"+PONG\r\n" } else { b"-ERR\r\n" };
                let _ = write.write_all(reply).await;
            }
        });
    }
}

/// The TLS check's server: a self-signed certificate for localhost,
/// valid until 2036, made at start; each connection ends after the handshake.
pub async fn serve_tls(listener: TcpListener) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(|e| invalid(e.to_string()))?;
    params.not_after = rcgen::date_time_ymd(2036, 1, 2);
    let key = rcgen::KeyPair::generate().map_err(|e| invalid(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| invalid(e.to_string()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .map_err(|e| invalid(e.to_string()))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    loop {
        let (stream, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Ok(mut tls) = acceptor.accept(stream).await {
                let _ = tls.shutdown().await;
            }
        });
    }
}

/// The DNS check's server: `demo.test` A 127.0.0.1 and 127.0.0.2 (TTL
/// 300); no other records; other names NXDOMAIN.
pub async fn serve_dns(socket: tokio::net::UdpSocket) -> std::io::Result<()> {
    use hickory_resolver::proto::op::{Message, ResponseCode};
    use hickory_resolver::proto::rr::{rdata::A, RData, Record, RecordType};
    let mut buf = [0u8; 1500];
    loop {
        let (n, peer) = socket.recv_from(&mut buf).await?;
        let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
        let Some(query) = request.queries.first().cloned() else { continue };
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata.authoritative = true;
        response.add_query(query.clone());
        if query.name().to_ascii().eq_ignore_ascii_case("demo.test.") {
            if query.query_type() == RecordType::A {
                for last in [1, 2] {
                    let ip = std::net::Ipv4Addr::new(127, 0, 0, last);
                    response.add_answer(Record::from_rdata(query.name().clone(), 300, RData::A(A(ip))));
                }
            }
        } else {
            response.metadata.response_code = ResponseCode::NXDomain;
        }
        if let Ok(bytes) = response.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

#[allow(dead_code)] // the tests include this file as a module and use `serve`
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let site = TcpListener::bind("127.0.0.1:18080").await?;
    let alerts = TcpListener::bind("127.0.0.1:18090").await?;
    let mail = TcpListener::bind("127.0.0.1:18025").await?;
    let line = TcpListener::bind("127.0.0.1:18083").await?;
    let tls = TcpListener::bind("127.0.0.1:18443").await?;
    let dns = tokio::net::UdpSocket::bind("127.0.0.1:18053").await?;
    let health = grpc::HealthServer::on(TcpListener::bind("127.0.0.1:18051").await?, None)?;
    health.set("demo.Greeter", grpc::ServingStatus::Serving).await;
    health.set("demo.Legacy", grpc::ServingStatus::NotServing).await;
    eprintln!("[demo] site on http://127.0.0.1:18080, alerts on :18090, mail on :18025");
    eprintln!("[demo] tcp on :18083, tls on :18443, dns on udp :18053, gRPC health on :18051");
    tokio::try_join!(
        serve(site),
        serve_http(alerts, receive_alert),
        serve_smtp(mail),
        serve_line(line),
        serve_tls(tls),
        serve_dns(dns)
    )?;
    Ok(())
}
