//! The ops HTTP server every long-running role exposes: `/metrics`
//! (Prometheus text), `/healthz` (the process serves requests) and `/readyz`
//! (every dependency answers right now).
//!
//! Readiness probes run on each request rather than reporting a cached flag:
//! a cached flag is only as fresh as the last loop that happened to touch
//! the dependency, and Kubernetes polls every few seconds anyway.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::join_all;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::health::{BoxFuture, ReadinessProbe};

/// What the server needs to answer.
#[derive(Clone)]
pub struct OpsState {
    pub metrics: PrometheusHandle,
    pub probes: Vec<Arc<dyn ReadinessProbe>>,
}

/// Binds `addr`; separate from [`serve`] so a bind failure is a startup
/// error and tests can bind port 0.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: OpsState, shutdown: CancellationToken) {
    let state = Arc::new(state);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "ops server listening");
    }
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "ops server accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(req, &state).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

async fn route(req: Request<Incoming>, state: &OpsState) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            state.metrics.run_upkeep();
            let mut response = text(StatusCode::OK, state.metrics.render());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => readiness(state).await,
        _ => text(StatusCode::NOT_FOUND, "not found; try /metrics, /healthz or /readyz\n".into()),
    }
}

async fn readiness(state: &OpsState) -> Response<Full<Bytes>> {
    // Concurrently, so one slow dependency does not hide the state of another.
    let results = join_all(state.probes.iter().map(|p| async move { (p.name(), p.check().await) })).await;
    let mut body = String::new();
    let mut ready = true;
    for (name, result) in results {
        match result {
            Ok(()) => body.push_str(&format!("{name}: ok\n")),
            Err(why) => {
                ready = false;
                body.push_str(&format!("{name}: {why}\n"));
            }
        }
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    text(status, format!("{}\n{body}", if ready { "ready" } else { "not ready" }))
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// Starts the ops server for a role: binds now (so a busy port fails the
/// start) and serves in the background until `shutdown`.
pub async fn start(
    addr: SocketAddr,
    probes: Vec<Arc<dyn ReadinessProbe>>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = bind(addr).await?;
    let local = listener.local_addr()?;
    let state = OpsState { metrics: crate::telemetry::metrics(), probes };
    Ok((local, tokio::spawn(serve(listener, state, shutdown))))
}
