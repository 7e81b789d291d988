//! Conditional GETs: every successful `GET` answer carries a strong `ETag`
//! (a hash of the bytes sent) and `Cache-Control: private, no-cache`; a
//! request whose `If-None-Match` names that tag gets `304 Not Modified`
//! without a body.
//!
//! Why this shape:
//! - The tag hashes the body as sent, so it is layered outside the gzip
//!   layer: a gzip answer and an identity answer are different
//!   representations and get different strong tags (RFC 9110 §8.8.3), and
//!   `Vary: Accept-Encoding` (set by the compression layer) keeps caches
//!   from mixing them. Compression is deterministic, so the same data
//!   gives the same tag on every request and every replica.
//! - The handler still runs (and its token check with it: a 304 reveals
//!   nothing a 200 would not), so what a 304 saves is the transfer, which
//!   is what a poller such as a dashboard pays for.
//! - `private`: answers depend on the caller's token, so no shared cache
//!   may keep them; `no-cache`: a client may keep one but must ask again
//!   (cheaply, with `If-None-Match`) before using it. A handler that sets
//!   its own `Cache-Control` (a public status page, later) keeps it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// What answers carry when their handler says nothing of caching.
pub const CACHE_CONTROL: &str = "private, no-cache";

/// The middleware (`axum::middleware::from_fn(etag::conditional)`).
pub async fn conditional(request: Request, next: Next) -> Response {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return next.run(request).await;
    }
    let wanted = request.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(request).await;
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Our handlers' answers are bounded (lists are paginated or capped), so
    // holding one whole to hash it is bounded too.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read an answer to tag it");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let tag = tag_of(&bytes);
    parts.headers.insert(header::ETAG, tag.clone());
    if !parts.headers.contains_key(header::CACHE_CONTROL) {
        parts.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL));
    }
    if wanted.as_ref().is_some_and(|w| matches(w, &tag)) {
        return not_modified(&parts.headers);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A strong tag of `body`: 128 bits of its SHA-256, quoted.
fn tag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    // Hex in quotes is always a valid header value.
    HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// Whether `If-None-Match: wanted` names `tag` (RFC 9110 §13.1.2: `*`, or
/// a list compared weakly, so `W/"x"` matches `"x"`).
fn matches(wanted: &HeaderValue, tag: &HeaderValue) -> bool {
    let (Ok(wanted), Ok(tag)) = (wanted.to_str(), tag.to_str()) else { return false };
    wanted.split(',').map(str::trim).any(|w| w == "*" || w.strip_prefix("W/").unwrap_or(w) == tag)
}

/// 304 with the headers a 200 would have had that matter to a cache.
fn not_modified(headers: &HeaderMap) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    for name in [header::ETAG, header::CACHE_CONTROL, header::VARY, header::CONTENT_LOCATION] {
        for value in headers.get_all(&name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/data", get(|| async { "some data" }))
            .route("/cached", get(|| async { ([(header::CACHE_CONTROL, "public, max-age=60")], "page") }))
            .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no") }))
            .route("/post", post(|| async { "posted" }))
            .layer(axum::middleware::from_fn(conditional))
    }

    async fn call(method: Method, path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        app().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec()
    }

    #[tokio::test]
    async fn a_get_is_tagged_and_a_matching_tag_gets_304_without_body() {
        let first = call(Method::GET, "/data", None).await;
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34, "{tag}");
        assert_eq!(first.headers()[header::CACHE_CONTROL], CACHE_CONTROL);
        assert_eq!(body(first).await, b"some data");

        for sent in [tag.clone(), format!("W/{tag}"), format!("\"other\", {tag}"), "*".into()] {
            let again = call(Method::GET, "/data", Some(&sent)).await;
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{sent}");
            assert_eq!(again.headers()[header::ETAG], tag.as_str());
            assert_eq!(again.headers()[header::CACHE_CONTROL], CACHE_CONTROL);
            assert!(body(again).await.is_empty());
        }
        let stale = call(Method::GET, "/data", Some("\"0123\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
        assert_eq!(stale.headers()[header::ETAG], tag.as_str(), "the same data, the same tag");
    }

    #[tokio::test]
    async fn only_successful_gets_are_tagged_and_a_handlers_cache_control_stays() {
        let missing = call(Method::GET, "/missing", Some("*")).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(missing.headers().get(header::ETAG).is_none());
        let posted = call(Method::POST, "/post", Some("*")).await;
        assert_eq!(posted.status(), StatusCode::OK);
        assert!(posted.headers().get(header::ETAG).is_none());
        let page = call(Method::GET, "/cached", None).await;
        assert_eq!(page.headers()[header::CACHE_CONTROL], "public, max-age=60");
        assert!(page.headers().get(header::ETAG).is_some());
    }
}
