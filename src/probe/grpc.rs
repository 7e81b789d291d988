//! Where a gRPC check is timed: resolve and connect (the deny list judges
//! every address), the TLS handshake for `grpcs://`, then one call of
//! `grpc.health.v1.Health/Check` for `grpc_service` (empty: the server as
//! a whole) on a fresh HTTP/2 connection, and its answer judged.
//!
//! The connection is ours (`net::dial`, rustls, hyper), not a tonic
//! `Channel`: a monitor measures connect and TLS on every check, and a
//! channel would pool, reconnect and resolve on its own. tonic-health only
//! encodes the call and decodes the answer.
//!
//! Phases: dns, connect, tls, first byte (from sending the call to its
//! answer: a health answer is one small frame after the headers).

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use url::Host;

use super::run::{quote_peer, Run, Verdict};
use crate::model::{CheckOutcome, CheckSpec, ErrorClass};
use crate::net::deny::DenyList;
use crate::net::dial::{dial, host_port, ms_since, server_name};
use crate::net::http::{DeadlineExecutor, Failure, Phase, Progress, DEADLINE_GRACE};
use crate::net::tls::{self, TlsConfigs, TlsSetupError};

/// Runs gRPC health checks. Cheap to share: holds the TLS configurations.
pub struct GrpcProbe {
    deny: DenyList,
    /// The shared client configurations, offering only `h2` (gRPC runs
    /// on HTTP/2 alone).
    tls: TlsConfigs,
}

impl GrpcProbe {
    pub fn new(deny: DenyList) -> Result<GrpcProbe, TlsSetupError> {
        let shared = TlsConfigs::new()?;
        let h2_only = |config: &Arc<ClientConfig>| {
            let mut config = ClientConfig::clone(config);
            config.alpn_protocols = vec![b"h2".to_vec()];
            Arc::new(config)
        };
        let tls = TlsConfigs { verify: h2_only(&shared.verify), no_verify: h2_only(&shared.no_verify) };
        Ok(GrpcProbe { deny, tls })
    }

    pub async fn run(&self, spec: &CheckSpec) -> CheckOutcome {
        let mut run = Run::start(spec);
        let verdict =
            tokio::time::timeout_at(run.deadline(), self.execute(spec, &mut run.progress)).await.ok();
        run.finish(verdict, spec.expect.max_response_time_ms)
    }

    async fn execute(&self, spec: &CheckSpec, p: &mut Progress) -> Verdict {
        let secure = url::Url::parse(&spec.url).is_ok_and(|u| u.scheme() == "grpcs");
        let (host, port) = host_port(&spec.url, if secure { 443 } else { 80 })?;
        let stream = dial(&host, port, &self.deny, p).await?;
        let authority = match &host {
            Host::Ipv6(ip) => format!("[{ip}]:{port}"),
            other => format!("{}:{port}", server_name(other)),
        };
        if !secure {
            return self.call(stream, &format!("http://{authority}"), spec, p).await;
        }
        p.phase = Phase::Tls;
        let name = spec.server_name.clone().unwrap_or_else(|| server_name(&host));
        let sni = ServerName::try_from(name.clone())
            .map_err(|_| Failure::new(ErrorClass::Protocol, format!("{name} is not a valid server name")))?;
        let config = if spec.tls_verify { self.tls.verify.clone() } else { self.tls.no_verify.clone() };
        let started = Instant::now();
        let handshake = tokio_rustls::TlsConnector::from(config).connect(sni, stream).await;
        p.timings.tls_ms = Some(ms_since(started));
        let stream = handshake.map_err(|e| {
            Failure::new(ErrorClass::Tls, format!("TLS handshake failed: {}", tls::describe_error(&e)))
        })?;
        if let Some(leaf) = stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            p.cert_expires_at = tls::not_after(leaf);
        }
        self.call(stream, &format!("https://{authority}"), spec, p).await
    }

    /// The health call on an established connection, and its verdict.
    async fn call<IO>(&self, io: IO, origin: &str, spec: &CheckSpec, p: &mut Progress) -> Verdict
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        p.phase = Phase::FirstByte;
        let origin: hyper::Uri = origin
            .parse()
            .map_err(|_| Failure::new(ErrorClass::Protocol, "cannot build the request from the URL"))?;
        // hyper's HTTP/2 tasks must not outlive the check (see net::http).
        let executor = DeadlineExecutor { deadline: p.deadline + DEADLINE_GRACE };
        let (sender, connection) = hyper::client::conn::http2::Builder::new(executor)
            .handshake::<_, tonic::body::Body>(TokioIo::new(io))
            .await
            .map_err(|e| Failure::new(ErrorClass::Protocol, format!("HTTP/2 handshake failed: {e}")))?;
        let service = tower::service_fn(move |request| {
            let mut sender = sender.clone();
            async move { sender.send_request(request).await }
        });
        let mut client = HealthClient::with_origin(service, origin);
        let service_name = spec.grpc_service.clone().unwrap_or_default();
        let mut request = tonic::Request::new(HealthCheckRequest { service: service_name.clone() });
        // grpc-timeout: the server may give up when we do.
        request.set_timeout(p.deadline.saturating_duration_since(Instant::now()));
        let started = Instant::now();
        // The connection is driven here, beside the call: when the
        // deadline drops the check, the connection goes with it.
        tokio::pin!(connection);
        let answer = tokio::select! {
            biased;
            answer = client.check(request) => answer,
            ended = &mut connection => return Err(match ended {
                Ok(()) => Failure::new(ErrorClass::Protocol, "the server closed the connection before answering"),
                Err(e) => Failure::new(ErrorClass::Protocol, format!("HTTP/2 connection failed: {}", chain(&e))),
            }),
        };
        p.timings.first_byte_ms = Some(ms_since(started));
        judge(answer.map(tonic::Response::into_inner), &service_name, spec.expect.serving.unwrap_or(true))
    }
}

/// Up when the service's health matches `want_serving`. An unknown
/// service is not serving; a server without the health service, or a
/// call that fails otherwise, cannot be judged.
fn judge(answer: Result<HealthCheckResponse, tonic::Status>, service: &str, want_serving: bool) -> Verdict {
    let expected = if want_serving { "SERVING" } else { "not SERVING" };
    let named = if service.is_empty() { "the server".to_string() } else { format!("service \"{service}\"") };
    match answer {
        Ok(response) => {
            let status = response.status();
            if (status == ServingStatus::Serving) == want_serving {
                Ok(Vec::new())
            } else {
                Ok(vec![format!("{named} is {} (expected {expected})", status.as_str_name())])
            }
        }
        Err(status) if status.code() == Code::NotFound => {
            if want_serving {
                Ok(vec![format!("the server does not know {named} (gRPC NOT_FOUND; expected {expected})")])
            } else {
                Ok(Vec::new())
            }
        }
        Err(status) if status.code() == Code::Unimplemented => Err(Failure::new(
            ErrorClass::Protocol,
            format!(
                "the server does not implement grpc.health.v1.Health (gRPC UNIMPLEMENTED{})",
                detail(&status)
            ),
        )),
        Err(status) => Err(Failure::new(
            ErrorClass::Protocol,
            format!("gRPC health call failed: {:?}{}", status.code(), detail(&status)),
        )),
    }
}

/// The status's message (the peer's words, quoted) and cause, for a
/// failure message.
fn detail(status: &tonic::Status) -> String {
    let mut text = String::new();
    if !status.message().is_empty() {
        text.push_str(&format!(": {}", quote_peer(status.message().as_bytes(), 100)));
    }
    if let Some(source) = std::error::Error::source(status) {
        text.push_str(&format!(" ({})", chain(source)));
    }
    text
}

/// An error and its causes, joined.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: ServingStatus) -> Result<HealthCheckResponse, tonic::Status> {
        Ok(HealthCheckResponse { status: status as i32 })
    }

    #[test]
    fn serving_is_up_and_anything_else_is_down() {
        assert!(judge(answer(ServingStatus::Serving), "", true).unwrap().is_empty());
        assert_eq!(
            judge(answer(ServingStatus::NotServing), "shop.Cart", true).unwrap(),
            ["service \"shop.Cart\" is NOT_SERVING (expected SERVING)"]
        );
        assert_eq!(
            judge(answer(ServingStatus::Unknown), "", true).unwrap(),
            ["the server is UNKNOWN (expected SERVING)"]
        );
    }

    #[test]
    fn serving_false_asserts_that_a_service_is_not_serving() {
        assert!(judge(answer(ServingStatus::NotServing), "a", false).unwrap().is_empty());
        assert!(judge(Err(tonic::Status::not_found("unknown service")), "a", false).unwrap().is_empty());
        assert_eq!(
            judge(answer(ServingStatus::Serving), "a", false).unwrap(),
            ["service \"a\" is SERVING (expected not SERVING)"]
        );
    }

    #[test]
    fn errors_are_named() {
        assert_eq!(
            judge(Err(tonic::Status::not_found("unknown service")), "nope", true).unwrap(),
            ["the server does not know service \"nope\" (gRPC NOT_FOUND; expected SERVING)"]
        );
        let unimplemented = judge(Err(tonic::Status::unimplemented("")), "", true).unwrap_err();
        assert_eq!(unimplemented.class, ErrorClass::Protocol);
        assert_eq!(
            unimplemented.message,
            "the server does not implement grpc.health.v1.Health (gRPC UNIMPLEMENTED)"
        );
        let other = judge(Err(tonic::Status::internal("boom\nagain")), "", true).unwrap_err();
        assert_eq!(other.message, "gRPC health call failed: Internal: \"boom again\"");
    }
}
