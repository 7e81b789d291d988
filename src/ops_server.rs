//! The ops HTTP server every long-running role exposes: `/metrics`
//! (Prometheus text), `/healthz` (the process serves requests) and `/readyz`
//! (every dependency answered in the last probe round).
//!
//! It must keep answering `/healthz` whatever arrives on its port, or a
//! kubelet restarts a healthy pod, and nothing that arrives may take from
//! the role. So:
//! - `/readyz` reads the result of a background probe loop
//!   ([`crate::health::Readiness`]); a request never runs a probe itself;
//! - at most [`MAX_CONNECTIONS`] connections are held. When a new one
//!   arrives at the cap, the oldest one that has sent nothing is closed to
//!   make room, or failing that the oldest whose request head is still
//!   incomplete. A prober connects and asks at once, so its request is
//!   waiting even before its task has parsed it: a burst of silent
//!   connections arriving meanwhile evicts each other, not the prober.
//!   When every held connection is mid-request, the new one is closed. The
//!   accept loop itself never waits, so the listen backlog never fills up
//!   behind idle peers;
//! - a request head must arrive within [`HEADER_READ_TIMEOUT`], and a
//!   connection lasts at most [`REQUEST_TIMEOUT`]: one request per
//!   connection (no keep-alive), so that bound is the request's.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use crate::health::{BoxFuture, ReadinessProbe};
use crate::health::{Readiness, STALE_AFTER};

/// Connections held at once. Kubelet probes and a scrape or two need a
/// handful; the cap bounds file descriptors and memory under a flood.
pub const MAX_CONNECTIONS: usize = 128;
/// Time from accept to a complete request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time from accept to the end of the response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// More Prometheus text a role renders itself, appended to `/metrics` (the
/// web role's per-check metrics). Called per scrape, so it must return
/// text prepared beforehand, not compute it.
pub type ExtraMetrics = Arc<dyn Fn() -> Arc<str> + Send + Sync>;

/// What the server needs to answer.
#[derive(Clone)]
pub struct OpsState {
    pub metrics: PrometheusHandle,
    pub readiness: Readiness,
    /// Appended to the recorder's text on `/metrics`, when set.
    pub extra: Option<ExtraMetrics>,
}

/// Binds `addr`; separate from [`serve`] so a bind failure is a startup
/// error and tests can bind port 0.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// One held connection, as the cap sees it.
struct Held {
    /// Set once hyper has read the whole request head.
    asked: Arc<AtomicBool>,
    /// Cancelled to close the connection and make room.
    evict: CancellationToken,
    /// A duplicate of the connection's socket, only to peek whether the
    /// peer has sent anything yet (`None` if it could not be duplicated).
    peer: Option<std::net::TcpStream>,
}

impl Held {
    /// Whether bytes wait unread: a request sent but not parsed yet, which a
    /// burst of new connections must not evict before its task runs.
    /// Peeking a duplicate leaves the bytes, and tokio's readiness, alone.
    fn spoke(&self) -> bool {
        self.peer.as_ref().is_some_and(|s| matches!(s.peek(&mut [0u8; 1]), Ok(n) if n > 0))
    }
}

/// The held connections, by accept order (ids only grow, so the first
/// entry is the oldest).
#[derive(Default)]
struct Connections {
    next: u64,
    held: BTreeMap<u64, Held>,
}

impl Connections {
    /// Makes room for one more, if it can: `Some(id)` to serve it. The
    /// victim is the oldest connection that has sent nothing; failing that,
    /// the oldest whose request head is still incomplete.
    fn admit(
        &mut self,
        asked: &Arc<AtomicBool>,
        evict: &CancellationToken,
        peer: Option<std::net::TcpStream>,
    ) -> Option<u64> {
        if self.held.len() >= MAX_CONNECTIONS {
            let waiting = |h: &Held| !h.asked.load(Ordering::Relaxed);
            let silent = self.held.iter().find(|(_, h)| waiting(h) && !h.spoke()).map(|(id, _)| *id);
            let victim = silent.or_else(|| self.held.iter().find(|(_, h)| waiting(h)).map(|(id, _)| *id));
            let held = victim.and_then(|id| self.held.remove(&id))?;
            held.evict.cancel();
            metrics::counter!("sentryk8s_ops_connections_closed_total", "reason" => "evicted").increment(1);
        }
        let id = self.next;
        self.next += 1;
        self.held.insert(id, Held { asked: asked.clone(), evict: evict.clone(), peer });
        Some(id)
    }
}

/// Removes a connection from [`Connections`] however its task ends.
struct Release(Arc<Mutex<Connections>>, u64);

impl Drop for Release {
    fn drop(&mut self) {
        lock(&self.0).held.remove(&self.1);
    }
}

/// The table is consistent after any panic (single inserts and removes).
fn lock(m: &Mutex<Connections>) -> std::sync::MutexGuard<'_, Connections> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: OpsState, shutdown: CancellationToken) {
    let state = Arc::new(state);
    let connections = Arc::new(Mutex::new(Connections::default()));
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
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let asked = Arc::new(AtomicBool::new(false));
        let evict = CancellationToken::new();
        let peer = stream.as_fd().try_clone_to_owned().ok().map(std::net::TcpStream::from);
        let Some(id) = lock(&connections).admit(&asked, &evict, peer) else {
            // Every held connection is mid-request: this one waits for none.
            metrics::counter!("sentryk8s_ops_connections_closed_total", "reason" => "full").increment(1);
            drop(stream);
            continue;
        };
        let release = Release(connections.clone(), id);
        tokio::spawn(serve_one(stream, state.clone(), asked, evict, shutdown.clone(), release));
    }
}

/// Serves one request on `stream` under the timeouts.
async fn serve_one(
    stream: TcpStream,
    state: Arc<OpsState>,
    asked: Arc<AtomicBool>,
    evict: CancellationToken,
    shutdown: CancellationToken,
    _release: Release,
) {
    let flag = asked.clone();
    let service = service_fn(move |req| {
        flag.store(true, Ordering::Relaxed);
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(req, &state).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(false).max_buf_size(16 * 1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let head_deadline = async {
        tokio::time::sleep(HEADER_READ_TIMEOUT).await;
        if asked.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    let reason = tokio::select! {
        _ = conn => return,
        _ = head_deadline => "header_timeout",
        _ = tokio::time::sleep(REQUEST_TIMEOUT) => "request_timeout",
        _ = evict.cancelled() => return, // counted where it was decided
        _ = shutdown.cancelled() => return,
    };
    metrics::counter!("sentryk8s_ops_connections_closed_total", "reason" => reason).increment(1);
}

async fn route(req: Request<Incoming>, state: &OpsState) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            state.metrics.run_upkeep();
            let mut body = state.metrics.render();
            if let Some(extra) = &state.extra {
                body.push_str(&extra());
            }
            let mut response = text(StatusCode::OK, body);
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

/// "ready" or "not ready", then one line per dependency
/// ("postgres: ok", or the reason it is not), from the last probe round.
async fn readiness(state: &OpsState) -> Response<Full<Bytes>> {
    let mut body = String::new();
    let mut ready = true;
    match state.readiness.latest().await {
        None => {
            ready = false;
            body.push_str("readiness: not probed yet\n");
        }
        Some(round) => {
            for (name, result) in &round.results {
                match result {
                    Ok(()) => body.push_str(&format!("{name}: ok\n")),
                    Err(why) => {
                        ready = false;
                        body.push_str(&format!("{name}: {why}\n"));
                    }
                }
            }
            let age = round.at.elapsed();
            if age > STALE_AFTER {
                ready = false;
                body.push_str(&format!("readiness: last probed {}s ago\n", age.as_secs()));
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
/// start), starts the readiness probe loop, and serves in the background
/// until `shutdown`.
pub async fn start(
    addr: SocketAddr,
    probes: Vec<Arc<dyn ReadinessProbe>>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    start_with(addr, probes, None, shutdown).await
}

/// [`start`], with `extra` text appended to `/metrics`.
pub async fn start_with(
    addr: SocketAddr,
    probes: Vec<Arc<dyn ReadinessProbe>>,
    extra: Option<ExtraMetrics>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = bind(addr).await?;
    let local = listener.local_addr()?;
    let readiness = Readiness::spawn(probes, shutdown.clone());
    let state = OpsState { metrics: crate::telemetry::metrics(), readiness, extra };
    Ok((local, tokio::spawn(serve(listener, state, shutdown))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(c: &mut Connections, asked: bool) -> (Option<u64>, CancellationToken) {
        let evict = CancellationToken::new();
        (c.admit(&Arc::new(AtomicBool::new(asked)), &evict, None), evict)
    }

    /// The server's end of a real loopback connection whose client has
    /// written `sent`, and the client (kept open).
    fn connection(sent: &[u8]) -> (std::net::TcpStream, std::net::TcpStream) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        client.write_all(sent).expect("write");
        let (server, _) = listener.accept().expect("accept");
        server.set_nonblocking(true).expect("nonblocking");
        (server, client)
    }

    #[test]
    fn a_request_sent_but_not_yet_parsed_is_not_evicted_while_a_silent_one_is_held() {
        let mut c = Connections::default();
        let (asking, _client) = connection(b"GET /healthz HTTP/1.1\r\n\r\n");
        // Wait for the bytes to be readable on the server's end.
        let mut byte = [0u8; 1];
        for _ in 0..100 {
            if asking.peek(&mut byte).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let probe_evict = CancellationToken::new();
        c.admit(&Arc::new(AtomicBool::new(false)), &probe_evict, Some(asking));
        let (silent, _silent_client) = connection(b"");
        let silent_evict = CancellationToken::new();
        c.admit(&Arc::new(AtomicBool::new(false)), &silent_evict, Some(silent));
        for _ in 2..MAX_CONNECTIONS {
            admit(&mut c, true);
        }
        assert!(admit(&mut c, false).0.is_some());
        assert!(silent_evict.is_cancelled(), "the silent connection makes room");
        assert!(!probe_evict.is_cancelled(), "the waiting request is kept");
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let mut c = Connections::default();
        let (_, busy) = admit(&mut c, true);
        let (_, oldest_idle) = admit(&mut c, false);
        let (_, next_idle) = admit(&mut c, false);
        for _ in 3..MAX_CONNECTIONS {
            admit(&mut c, true);
        }
        assert_eq!(c.held.len(), MAX_CONNECTIONS);
        assert!(admit(&mut c, false).0.is_some());
        assert!(oldest_idle.is_cancelled() && !next_idle.is_cancelled() && !busy.is_cancelled());
        assert_eq!(c.held.len(), MAX_CONNECTIONS);
    }

    #[test]
    fn at_the_cap_with_every_connection_mid_request_a_new_one_is_refused() {
        let mut c = Connections::default();
        for _ in 0..MAX_CONNECTIONS {
            admit(&mut c, true);
        }
        assert_eq!(admit(&mut c, false).0, None);
        assert_eq!(c.held.len(), MAX_CONNECTIONS);
    }
}
