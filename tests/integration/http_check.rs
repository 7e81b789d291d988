//! The HTTP check in process (`probe::Prober`, the code the worker runs):
//! what travels in the request, HTTP/2 by ALPN, credentials across
//! redirects, and deadlines that cover every phase.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use sentryk8s::model::{CheckSpec, ErrorClass};
use sentryk8s::probe::{Prober, ProberOptions};
use serde_json::json;
use tokio::net::TcpListener;

use crate::support::servers::{Reply, RoutedServer, TlsServer};

fn checker() -> Prober {
    Prober::new(ProberOptions {
        body_limit: 1 << 20,
        user_agent: "sentryk8s-test".into(),
        deny: Default::default(),
    })
    .unwrap()
}

fn spec(value: serde_json::Value) -> CheckSpec {
    serde_json::from_value(value).unwrap()
}

/// Answers with what it received: "<method> <path> ua=<ua> auth=<yes|no> x=<x-test> body=<body>".
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                        // One path redirects within this origin.
                        if req.uri().path() == "/hop" {
                            let mut r = hyper::Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = hyper::StatusCode::FOUND;
                            r.headers_mut()
                                .insert("location", hyper::header::HeaderValue::from_static("/landed"));
                            return Ok::<_, Infallible>(r);
                        }
                        let header = |name: &str| {
                            req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string()
                        };
                        let head = format!(
                            "{} {} ua={} auth={} x={} connection={}",
                            req.method(),
                            req.uri().path(),
                            header("user-agent"),
                            if req.headers().contains_key("authorization") { "yes" } else { "no" },
                            header("x-test"),
                            header("connection"),
                        );
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let text = format!("{head} body={}", String::from_utf8_lossy(&body));
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn method_headers_and_body_are_sent() {
    let addr = echo_server().await;
    let probe = checker()
        .probe(&spec(json!({
            "url": format!("http://{addr}/submit"),
            "method": "POST",
            "headers": {"X-Test": "42", "Authorization": "Bearer t0ken"},
            "body": "{\"a\":1}",
            "timeout_ms": 2000,
            "expect": {"body_contains": ["POST /submit ua=sentryk8s-test auth=yes x=42 connection=close body={\"a\":1}"]},
        })))
        .await;
    assert!(probe.outcome.success, "{:?}", probe.outcome);
    assert_eq!(probe.version, Some(hyper::Version::HTTP_11));
}

#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let echo = echo_server().await;
    let location = format!("http://{echo}/landed");
    let origin = RoutedServer::start(move |_| Reply::redirect(302, &location)).await;
    let outcome = checker()
        .run(&spec(json!({
            "url": origin.url("/start"),
            "method": "POST",
            "body": "payload",
            "headers": {"Authorization": "Bearer t0ken", "X-Test": "kept"},
            "max_redirects": 3,
            "timeout_ms": 2000,
            // Every declared header stays with its origin (any may be a
            // credential); the defaults (User-Agent) travel on.
            "expect": {"body_contains": ["GET /landed", "ua=sentryk8s-test", "auth=no", "x=-", "body="]},
        })))
        .await;
    assert!(outcome.success, "{outcome:?}");
}

#[tokio::test]
async fn declared_headers_follow_a_redirect_within_the_origin() {
    let echo = echo_server().await;
    let outcome = checker()
        .run(&spec(json!({
            "url": format!("http://{echo}/hop"),
            "headers": {"Authorization": "Bearer t0ken", "X-Test": "kept"},
            "max_redirects": 3,
            "timeout_ms": 2000,
            "expect": {"body_contains": ["GET /landed", "auth=yes", "x=kept"]},
        })))
        .await;
    assert!(outcome.success, "{outcome:?}");
}

#[tokio::test]
async fn http2_is_used_when_the_server_offers_it_over_tls() {
    let h2 = TlsServer::start(true, |_| Reply::ok("over h2")).await;
    let h1 = TlsServer::start(false, |_| Reply::ok("over h1")).await;
    let c = checker();
    for (server, version, word) in [(&h2, hyper::Version::HTTP_2, "h2"), (&h1, hyper::Version::HTTP_11, "h1")]
    {
        let probe = c
            .probe(&spec(json!({
                "url": server.url("/"),
                "tls_verify": false,
                "timeout_ms": 2000,
                "expect": {"body_contains": [format!("over {word}")], "cert_days_left": 365},
            })))
            .await;
        assert!(probe.outcome.success, "{:?}", probe.outcome);
        assert_eq!(probe.version, Some(version));
        assert_eq!(probe.outcome.cert_expires_at, Some(server.not_after));
        assert!(probe.outcome.timings.tls_ms.unwrap_or(0.0) > 0.0);
    }
}

#[tokio::test]
async fn tls_verification_checks_the_name_too() {
    // The certificate is for localhost/127.0.0.1 but self-signed: with
    // verification even the right name fails; the reason is named.
    let server = TlsServer::start(true, |_| Reply::ok("x")).await;
    let outcome = checker()
        .run(&spec(json!({"url": format!("https://localhost:{}/", server.addr.port()), "timeout_ms": 2000})))
        .await;
    assert_eq!(outcome.error_class, Some(ErrorClass::Tls), "{outcome:?}");
    assert!(outcome.timings.dns_ms.is_some() && outcome.timings.tls_ms.is_some(), "{outcome:?}");
}

#[tokio::test]
async fn the_deadline_names_the_phase_it_cut() {
    let c = checker();
    let started = Instant::now();
    let slow = RoutedServer::start(|_| Reply::ok("late").delayed(Duration::from_secs(3))).await;
    let outcome = c
        .run(&spec(json!({"url": slow.url("/"), "timeout_ms": 300, "expect": {"body_contains": ["late"]}})))
        .await;
    assert_eq!(outcome.error_class, Some(ErrorClass::Timeout));
    assert!(
        outcome.error_message.as_deref().unwrap_or("").contains("waiting for the response"),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert!(outcome.timings.total_ms >= 290.0 && outcome.timings.total_ms < 800.0, "{outcome:?}");
}

#[tokio::test]
async fn a_mistyped_timeout_is_capped_and_invalid_specs_fail_cleanly() {
    let c = checker();
    for (url, class) in [
        ("ftp://127.0.0.1/", ErrorClass::Protocol),
        ("not a url", ErrorClass::Protocol),
        ("http://[::1]:1/", ErrorClass::Refused),
    ] {
        let outcome = c.run(&spec(json!({"url": url, "timeout_ms": u64::MAX}))).await;
        assert_eq!(outcome.error_class, Some(class), "{url}: {outcome:?}");
        assert!(!outcome.success);
    }
    let outcome = c
        .run(&spec(json!({"url": "http://127.0.0.1:1/", "headers": {"bad header": "v"}, "timeout_ms": 100})))
        .await;
    assert_eq!(outcome.error_class, Some(ErrorClass::Protocol));
    let outcome = c
        .run(&spec(json!({"url": "http://127.0.0.1:1/", "headers": {"X-Secret": "a\nb"}, "timeout_ms": 100})))
        .await;
    assert!(!outcome.error_message.unwrap_or_default().contains("a\nb"), "header values are never echoed");
}

#[tokio::test]
async fn url_credentials_are_sent_as_basic_auth_and_never_shown() {
    let addr = echo_server().await;
    let outcome = checker()
        .run(&spec(json!({
            "url": format!("http://monitor:hunter2@{addr}/private"),
            "timeout_ms": 2000,
            "expect": {"body_contains": ["GET /private", "auth=yes"], "status": [404]},
        })))
        .await;
    // The status assertion fails on purpose: the failure text must not
    // carry the credentials.
    assert_eq!(outcome.error_class, Some(ErrorClass::Assertion), "{outcome:?}");
    assert_eq!(outcome.failed_assertions, vec!["status 200 not in [404]".to_string()]);
    assert!(!format!("{outcome:?}").contains("hunter2"));
}
