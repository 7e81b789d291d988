//! The web role: the REST API (`/api/v1`), status pages, badges, the
//! operator dashboard and heartbeat pings. Stateless: it reads and writes PostgreSQL
//! only, so any number of replicas serve the same answers.
//!
//! - `server.rs` — the listener: connection cap, header-read and request
//!   timeouts, graceful drain;
//! - `state.rs` — what every handler shares;
//! - `auth.rs` — the one-second token cache and the per-caller rate limit;
//! - `access.rs` — bearer tokens and scopes, per request (`CanRead`, `CanWrite`);
//! - `session.rs` — sign-in sessions of the pages (cookie, CSRF) and the
//!   caller's scope from a cookie or a token (`Viewer`); its SQL in
//!   `session_store.rs`;
//! - `problem.rs` — RFC 9457 problem+json errors;
//! - `etag.rs` — `ETag`, `If-None-Match` and `Cache-Control` on GETs;
//! - `metrics/` — the per-check Prometheus metrics, refreshed in the
//!   background and served by the ops server;
//! - `api/` — the routes, one file per resource, and the OpenAPI document
//!   generated from them;
//! - `ui/` — what every HTML page shares: security headers, embedded
//!   assets, the base layout;
//! - `pages/` — status pages (`/status/{slug}`), their `summary.json` and the
//!   badges;
//! - `dashboard/` — the operator dashboard's pages (`/`, `/checks/{name}`, …);
//! - `ping.rs` — the heartbeat ping API (`/ping/{key}`);
//! - `store.rs` — the SQL of the web role that no concern owns.

// A `Problem` is the error response itself, built only on the error path:
// its size on the stack costs nothing that boxing would save.
#![allow(clippy::result_large_err)]

pub mod access;
pub mod api;
pub mod auth;
pub mod dashboard;
pub mod etag;
pub mod metrics;
pub mod pages;
pub mod ping;
pub mod problem;
pub mod results_store;
pub mod server;
pub mod session;
pub mod session_store;
pub mod state;
pub mod store;
pub mod ui;

pub use server::{bind, serve};
pub use state::AppState;

use axum::http::StatusCode;
use axum::Router;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use self::metrics::CheckMetrics;
use crate::config::{Config, WebConfig};

/// Everything the web role answers, with the layers of [`layered`].
pub fn app(state: AppState) -> Router {
    let web = state.web.clone();
    let routes = api::router(state.clone()).merge(ui::router()).merge(pages::router(state.clone()));
    layered(routes.merge(ping::routes(state.clone())).merge(dashboard::router(state)), &web)
}

/// `router` with the layers every route gets, outermost first:
/// - a debug log line per request (never its headers);
/// - the security headers of `ui/headers.rs` on every response, errors too;
/// - a body larger than [`api::MAX_BODY_BYTES`] is 413, refused on its
///   `Content-Length` before any handler runs, or cut when a chunked body
///   passes it (the routes' `DefaultBodyLimit` says the same to extractors);
/// - `ETag` / `If-None-Match` on GETs (`etag.rs`), outside gzip so the tag
///   is that of the bytes sent;
/// - gzip for clients that accept it (`Vary: Accept-Encoding`);
/// - a request not answered within `web.request_timeout` is 503.
///
/// Public so a test can put the same layers around a route of its own.
pub fn layered(router: Router, web: &WebConfig) -> Router {
    router
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, web.request_timeout))
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn(etag::conditional))
        .layer(RequestBodyLimitLayer::new(api::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(ui::headers::security_headers))
        .layer(axum::middleware::from_fn(log_request))
}

/// One debug line per request: method, path (without the query), status
/// and time. Never a header: the `Authorization` header is the token.
async fn log_request(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = ping::loggable_path(request.uri().path()).into_owned();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        path = %path.escape_debug(),
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// What the per-check metrics refresh needs from `config`.
pub fn metrics_settings(config: &Config) -> metrics::Settings {
    metrics::Settings {
        every: config.web.metrics_refresh,
        labels: config.web.metrics_labels.clone(),
        retention: state::retention(config),
    }
}

/// Serves the web role on `listener` until `shutdown`, then drains; keeps
/// `check_metrics` (served by the ops server) refreshed meanwhile.
pub async fn run(
    config: &Config,
    pool: Pool,
    listener: TcpListener,
    check_metrics: CheckMetrics,
    shutdown: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, public_read = config.web.public_read, "web: serving the API");
    }
    let limits = server::Limits {
        max_connections: config.web.max_connections as usize,
        header_read_timeout: config.web.header_read_timeout,
    };
    let refresh = metrics::run(pool.clone(), metrics_settings(config), check_metrics, shutdown.clone());
    let serving = serve(listener, app(AppState::new(config, pool)), limits, shutdown);
    tokio::join!(serving, refresh);
}
