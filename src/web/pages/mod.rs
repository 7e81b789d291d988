//! The public face of the web role: status pages (`/status/{slug}`, as
//! HTML and as Statuspage's `summary.json`) and badges (`/badge/…`).
//!
//! - `visibility.rs` — who may see a page or a check's badges (a private
//!   page, or a check on no public page, answers 404 to anonymous callers);
//! - `html.rs` — the page, rendered on the server (askama templates in
//!   `templates/status/`), working without JavaScript;
//! - `summary.rs` — `summary.json` in Atlassian Statuspage's shape;
//! - `badges.rs` — SVG badges and shields.io endpoint JSON.
//!
//! What a page may reveal is decided by `status_pages::view`; these files
//! only draw it.

pub mod badges;
pub mod html;
pub mod summary;
pub mod visibility;

use axum::routing::get;
use axum::Router;
use tower_http::compression::{CompressionLayer, CompressionLevel};

use super::state::AppState;

/// How long a public page, its summary and its badges may be cached.
pub const PUBLIC_CACHE: &str = "public, max-age=30";

/// The gzip level of these pages' answers (zlib's 0 to 9).
///
/// A status page is large (2.1 MB of HTML for 200 checks, and such pages
/// are read by many people at once during an outage), so its gzip costs
/// more than its rendering. Measured in-process on a 200-check page
/// (release build, quiet machine): level 6, the default, takes about 12 ms
/// for 57 KB; level 3 about 6.5 ms for 70 KB; level 1 about 3 ms but
/// 202 KB. Level 3 halves the cost for a fifth more bytes.
pub const GZIP_LEVEL: i32 = 3;

/// `/status/{slug}`, `/status/{slug}/summary.json` and the badges, gzipped
/// at [`GZIP_LEVEL`] (the web role's own gzip layer leaves an answer
/// already encoded as it is).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/status/{slug}", get(html::page))
        .route("/status/{slug}/summary.json", get(summary::summary))
        .route("/badge/{check}/{file}", get(badges::status))
        .route("/badge/{check}/uptime/{file}", get(badges::uptime))
        .route("/badge/{check}/response-time/{file}", get(badges::response_time))
        .layer(CompressionLayer::new().quality(CompressionLevel::Precise(GZIP_LEVEL)))
        .with_state(state)
}
