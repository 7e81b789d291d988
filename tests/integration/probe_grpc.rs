//! The gRPC check in process (`probe::Prober`, the code the worker runs)
//! against a tonic health server the test starts: SERVING and
//! NOT_SERVING, an unknown service, `serving: false`, grpcs:// with its
//! certificate verified or not, nothing listening, a silent server, and
//! the deny list.

use std::net::SocketAddr;
use std::time::Duration;

use sentryk8s::model::{CheckSpec, ErrorClass};
use sentryk8s::net::deny::DenyList;
use serde_json::json;
use tokio::net::TcpListener;

use crate::probe_tcp::{prober, run};
use crate::support::grpc::{HealthServer, ServingStatus};
use crate::support::servers::refused_addr;

fn check(url: String, service: &str) -> serde_json::Value {
    json!({"kind": "grpc", "url": url, "timeout_ms": 2000, "grpc_service": service})
}

#[tokio::test]
async fn serving_is_up_and_not_serving_is_down() {
    let server = HealthServer::start().await.unwrap();
    server.set("shop.Cart", ServingStatus::Serving).await;
    let url = format!("grpc://{}", server.addr);

    let up = run(check(url.clone(), "shop.Cart")).await;
    assert!(up.success, "{up:?}");
    let t = &up.timings;
    assert!(t.connect_ms.is_some() && t.first_byte_ms.is_some(), "{up:?}");
    assert_eq!((t.dns_ms, t.tls_ms), (None, None), "an IP literal over h2c: no DNS, no TLS");

    // The server as a whole (no grpc_service): tonic-health says SERVING.
    let whole = run(json!({"kind": "grpc", "url": url, "timeout_ms": 2000})).await;
    assert!(whole.success, "{whole:?}");

    server.set("shop.Cart", ServingStatus::NotServing).await;
    let down = run(check(url.clone(), "shop.Cart")).await;
    assert!(!down.success);
    assert_eq!(down.error_class, Some(ErrorClass::Assertion), "{down:?}");
    assert_eq!(down.failed_assertions, ["service \"shop.Cart\" is NOT_SERVING (expected SERVING)"]);
    assert!(down.timings.first_byte_ms.is_some(), "a judged answer keeps its phases: {down:?}");

    // serving: false asserts the opposite.
    let mut drained = check(url, "shop.Cart");
    drained["expect"] = json!({"serving": false});
    assert!(run(drained).await.success);
}

#[tokio::test]
async fn an_unknown_service_is_down_with_a_clear_error() {
    let server = HealthServer::start().await.unwrap();
    let out = run(check(format!("grpc://{}", server.addr), "no.Such")).await;
    assert!(!out.success);
    assert_eq!(out.error_class, Some(ErrorClass::Assertion), "{out:?}");
    assert_eq!(
        out.error_message.as_deref(),
        Some("the server does not know service \"no.Such\" (gRPC NOT_FOUND; expected SERVING)")
    );
}

#[tokio::test]
async fn nothing_listening_is_down() {
    let closed = refused_addr().await;
    let out = run(check(format!("grpc://{closed}"), "")).await;
    assert_eq!(out.error_class, Some(ErrorClass::Refused), "{out:?}");
    assert!(out.error_message.as_deref().unwrap().contains("connection refused"), "{out:?}");
    assert!(out.timings.connect_ms.is_some() && out.timings.first_byte_ms.is_none(), "{out:?}");
}

#[tokio::test]
async fn grpcs_times_the_handshake_and_verifies_the_certificate() {
    let server = HealthServer::start_tls().await.unwrap();
    let url = format!("grpcs://localhost:{}", server.addr.port());

    let mut unverified = check(url.clone(), "");
    unverified["tls_verify"] = json!(false);
    let up = run(unverified).await;
    assert!(up.success, "{up:?}");
    let t = &up.timings;
    assert!(t.dns_ms.is_some() && t.connect_ms.is_some() && t.tls_ms.is_some(), "{up:?}");
    assert!(t.first_byte_ms.is_some() && up.cert_expires_at.is_some(), "{up:?}");

    // Verified (the default), a self-signed certificate fails the handshake.
    let refused = run(check(url, "")).await;
    assert_eq!(refused.error_class, Some(ErrorClass::Tls), "{refused:?}");
    assert!(refused.error_message.as_deref().unwrap().starts_with("TLS handshake failed"), "{refused:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts and holds connections, never speaking HTTP/2.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    let mut spec = check(format!("grpc://{addr}"), "");
    spec["timeout_ms"] = json!(400);
    let out = run(spec).await;
    assert_eq!(out.error_class, Some(ErrorClass::Timeout), "{out:?}");
    assert_eq!(out.error_message.as_deref(), Some("timed out after 400 ms waiting for the response"));
    assert!(started.elapsed() < Duration::from_secs(2), "the deadline holds");
}

#[tokio::test]
async fn the_deny_list_applies_to_grpc_checks() {
    let server = HealthServer::start().await.unwrap();
    let spec: CheckSpec = serde_json::from_value(check(format!("grpc://{}", server.addr), "")).unwrap();
    let out = prober(DenyList::parse(&["127.0.0.0/8".to_string()]).unwrap()).run(&spec).await;
    assert_eq!(out.error_class, Some(ErrorClass::Blocked), "{out:?}");
    assert!(out.timings.connect_ms.is_none(), "never connected: {out:?}");
}
