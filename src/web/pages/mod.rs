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

use super::state::AppState;

/// How long a public page, its summary and its badges may be cached.
pub const PUBLIC_CACHE: &str = "public, max-age=30";

/// `/status/{slug}`, `/status/{slug}/summary.json` and the badges.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/status/{slug}", get(html::page))
        .route("/status/{slug}/summary.json", get(summary::summary))
        .route("/badge/{check}/{file}", get(badges::status))
        .route("/badge/{check}/uptime/{file}", get(badges::uptime))
        .route("/badge/{check}/response-time/{file}", get(badges::response_time))
        .with_state(state)
}
