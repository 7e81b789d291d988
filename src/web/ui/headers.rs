//! Security headers on every response of the web role, API and pages
//! alike (a JSON answer opened in a browser is a page too):
//!
//! - `Content-Security-Policy`: scripts, styles and images only from this
//!   origin (images also as `data:` URLs), no inline script or style, no
//!   plugins, forms post only here, and no framing;
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`;
//! - `X-Frame-Options: DENY` for browsers that predate `frame-ancestors`.
//!
//! A handler whose page may be framed (a status page marked `embeddable`)
//! puts [`Embeddable`] in its response's extensions: it then gets
//! `frame-ancestors *` and no `X-Frame-Options`.

use axum::http::{header, HeaderValue};

/// Marks a response whose page may be embedded in other sites' frames.
#[derive(Debug, Clone, Copy)]
pub struct Embeddable;

/// The policy, without its `frame-ancestors` directive.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; form-action 'self'; base-uri 'none'";

/// Adds the security headers to every response (a handler's own value of
/// one of these headers is kept).
pub async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    let embeddable = response.extensions().get::<Embeddable>().is_some();
    let headers = response.headers_mut();
    let policy = if embeddable {
        format!("{POLICY}; frame-ancestors *")
    } else {
        format!("{POLICY}; frame-ancestors 'none'")
    };
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.entry(header::CONTENT_SECURITY_POLICY).or_insert(value);
    }
    headers.entry(header::X_CONTENT_TYPE_OPTIONS).or_insert(HeaderValue::from_static("nosniff"));
    headers.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("no-referrer"));
    if !embeddable {
        headers.entry(header::X_FRAME_OPTIONS).or_insert(HeaderValue::from_static("DENY"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    async fn headers_of(router: Router) -> axum::http::HeaderMap {
        let request = axum::http::Request::get("/").body(axum::body::Body::empty()).expect("request");
        let response = router.layer(axum::middleware::from_fn(security_headers)).oneshot(request).await;
        response.expect("infallible").headers().clone()
    }

    #[tokio::test]
    async fn every_response_forbids_inline_code_and_framing() {
        let headers = headers_of(Router::new().route("/", get(|| async { "page" }))).await;
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("style-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    }

    #[tokio::test]
    async fn an_embeddable_page_may_be_framed() {
        let route = get(|| async {
            let mut response = axum::response::IntoResponse::into_response("page");
            response.extensions_mut().insert(Embeddable);
            response
        });
        let headers = headers_of(Router::new().route("/", route)).await;
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
        assert!(csp.ends_with("frame-ancestors *"), "{csp}");
        assert!(headers.get(header::X_FRAME_OPTIONS).is_none());
    }
}
