//! What every HTML page of the web role shares (status pages, badges, the
//! dashboard):
//!
//! - `headers.rs` — the security headers put on every response (a strict
//!   Content-Security-Policy: no inline script or style anywhere);
//! - `assets.rs` — the CSS, JavaScript and images compiled into the binary
//!   and served at `/assets/{name}` (no CDN, no build step: it works in an
//!   air-gapped cluster);
//! - `svg/` — the inline SVG pieces (daily bars, response-time chart,
//!   badges, the dashboard's sparkline and phase bar), pure functions
//!   shared by the status pages and the dashboard;
//! - `templates/base.html` (at the crate root, askama's default place) —
//!   the layout every page extends.

pub mod assets;
pub mod headers;
pub mod svg;

pub use headers::Embeddable;

use axum::Router;

/// The routes of this module: the embedded assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    assets::router()
}
