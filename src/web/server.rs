//! The web listener. axum routes, served by hyper directly so the things a
//! public port needs are bounded here:
//! - at most `web.max_connections` connections; the next one waits in the
//!   listen backlog until one closes (a flood costs a queue, not memory);
//! - a request head must arrive within `web.header_read_timeout`
//!   (slow-loris), a request must be answered within
//!   `web.request_timeout`, and a body is at most 1 MiB (in the router);
//! - on shutdown the listener closes, requests in flight finish (up to the
//!   role's drain deadline), idle keep-alive connections close.
//!
//! HTTP/1.1 only. hyper's HTTP/1 header-read timer also runs while a
//! keep-alive connection waits for its next request, so an idle or silent
//! connection gives its place back after `web.header_read_timeout`. With
//! HTTP/2 (or the automatic HTTP/1-or-2 detection, which waits for a first
//! byte with no deadline) a connection that sends nothing would hold one
//! of the `max_connections` places for ever. Ingress controllers and
//! gateways speak HTTP/1.1 to their backends anyway.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::auth::Peer;

/// Binds the web listener; separate from [`serve`] so a busy port is a
/// startup error and tests can bind port 0.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Limits of the listener (from `web.*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown`, then waits for the
/// connections still open to finish their requests.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors, or a connection reset before
                    // accept: pause instead of spinning.
                    tracing::warn!(error = %e, "web: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service =
            TowerToHyperService::new(tower::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(Peer(peer));
                router.clone().oneshot(request.map(axum::body::Body::new))
            }));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(peer = %peer, error = %e, "web: connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
