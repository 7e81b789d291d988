//! The web role: the REST API (`/api/v1`), and later status pages,
//! badges and heartbeat pings. Stateless: it reads and writes PostgreSQL
//! only, so any number of replicas serve the same answers.
//!
//! - `server.rs` — the listener: connection cap, header-read and request
//!   timeouts, graceful drain;
//! - `state.rs` — what every handler shares;
//! - `auth.rs` — the one-second token cache and the per-caller rate limit;
//! - `access.rs` — bearer tokens and scopes, per request (`CanRead`, `CanWrite`);
//! - `problem.rs` — RFC 9457 problem+json errors;
//! - `api/` — the routes, one file per resource, and the OpenAPI document
//!   generated from them;
//! - `store.rs` — the SQL of the web role that no concern owns.

// A `Problem` is the error response itself, built only on the error path:
// its size on the stack costs nothing that boxing would save.
#![allow(clippy::result_large_err)]

pub mod access;
pub mod api;
pub mod auth;
pub mod problem;
pub mod results_store;
pub mod server;
pub mod state;
pub mod store;

pub use server::{bind, serve};
pub use state::AppState;

use axum::http::StatusCode;
use axum::Router;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Config;

/// Everything the web role answers, with the layers every route gets: a
/// request timeout (503) and gzip for clients that accept it.
pub fn app(state: AppState) -> Router {
    let timeout = state.web.request_timeout;
    api::router(state)
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(CompressionLayer::new())
}

/// Serves the web role on `listener` until `shutdown`, then drains.
pub async fn run(config: &Config, pool: Pool, listener: TcpListener, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, public_read = config.web.public_read, "web: serving the API");
    }
    let limits = server::Limits {
        max_connections: config.web.max_connections as usize,
        header_read_timeout: config.web.header_read_timeout,
    };
    serve(listener, app(AppState::new(config, pool)), limits, shutdown).await;
}
