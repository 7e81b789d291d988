//! The static files of the pages, compiled into the binary and served at
//! `GET /assets/{name}`. One table lists them all: a file is served only
//! if it is named here, so a request can never reach the file system.
//!
//! They are cached for an hour (and revalidated by `ETag`, which the web
//! role's layers add to every GET): a new release's assets reach browsers
//! within the hour.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every asset: its name under `/assets/`, its content type and bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("base.css", CSS, include_bytes!("assets/base.css")),
    ("dashboard.css", CSS, include_bytes!("assets/dashboard.css")),
    ("dashboard.js", JS, include_bytes!("assets/dashboard.js")),
    ("favicon.svg", SVG, include_bytes!("assets/favicon.svg")),
    ("status.css", CSS, include_bytes!("assets/status.css")),
    ("status.js", JS, include_bytes!("assets/status.js")),
];

/// `GET /assets/{name}`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/assets/{name}", get(serve))
}

/// The asset named `name`, if there is one.
pub fn find(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS.iter().find(|(n, _, _)| *n == name).map(|(_, kind, bytes)| (*kind, *bytes))
}

async fn serve(Path(name): Path<String>) -> Response {
    match find(&name) {
        Some((kind, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
                (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")),
            ],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_names_are_served() {
        assert!(find("base.css").is_some());
        assert!(find("../Cargo.toml").is_none());
        assert!(find("").is_none());
    }

    #[test]
    fn names_are_unique_and_typed_by_extension() {
        for (i, (name, kind, _)) in ASSETS.iter().enumerate() {
            assert!(ASSETS[..i].iter().all(|(other, _, _)| other != name), "{name} listed twice");
            let expected = match name.rsplit('.').next() {
                Some("css") => CSS,
                Some("js") => JS,
                Some("svg") => SVG,
                other => panic!("{name}: no content type for {other:?}"),
            };
            assert_eq!(*kind, expected, "{name}");
        }
    }
}
