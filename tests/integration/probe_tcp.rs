//! The TCP check in process (`probe::Prober`, the code the worker runs)
//! against listeners the test starts: connected or refused, `send` and the
//! banner, a port asserted closed, a silent server, and the deny list.

use std::net::SocketAddr;
use std::time::Duration;

use sentryk8s::model::{CheckOutcome, CheckSpec, ErrorClass};
use sentryk8s::net::deny::DenyList;
use sentryk8s::probe::{Prober, ProberOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::servers::refused_addr;

pub fn prober(deny: DenyList) -> Prober {
    Prober::new(ProberOptions { body_limit: 1 << 20, user_agent: "sentryk8s-test".into(), deny }).unwrap()
}

pub async fn run(spec: serde_json::Value) -> CheckOutcome {
    let spec: CheckSpec = serde_json::from_value(spec).unwrap();
    prober(DenyList::default()).run(&spec).await
}

/// A server that greets with `greeting`, then answers each line it reads
/// with "echo: <line>".
async fn banner_server(greeting: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let _ = stream.write_all(greeting.as_bytes()).await;
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    let line = String::from_utf8_lossy(&buf[..n]).trim().to_string();
                    let _ = stream.write_all(format!("echo: {line}\r\n").as_bytes()).await;
                }
            });
        }
    });
    addr
}

/// Accepts and never sends a byte (holding the connection open).
async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

#[tokio::test]
async fn a_listener_is_up_and_a_closed_port_is_down() {
    let addr = silent_server().await;
    let up = run(json!({"kind": "tcp", "url": format!("tcp://{addr}"), "timeout_ms": 2000})).await;
    assert!(up.success, "{up:?}");
    assert!(up.timings.connect_ms.is_some_and(|ms| ms > 0.0), "{up:?}");
    assert_eq!(up.timings.dns_ms, None, "an IP literal needs no DNS");

    let closed = refused_addr().await;
    let down = run(json!({"kind": "tcp", "url": format!("tcp://{closed}"), "timeout_ms": 2000})).await;
    assert!(!down.success);
    assert_eq!(down.error_class, Some(ErrorClass::Refused), "{down:?}");
    assert!(down.error_message.as_deref().unwrap().contains("connection refused"), "{down:?}");
    assert!(down.timings.connect_ms.is_some(), "{down:?}");

    // `localhost` is resolved (from /etc/hosts): the DNS phase is timed.
    let named =
        run(json!({"kind": "tcp", "url": format!("tcp://localhost:{}", addr.port()), "timeout_ms": 2000}))
            .await;
    assert!(named.timings.dns_ms.is_some(), "{named:?}");
}

#[tokio::test]
async fn connected_false_asserts_that_a_port_is_closed() {
    let closed = refused_addr().await;
    let spec = |addr: SocketAddr| json!({"kind": "tcp", "url": format!("tcp://{addr}"), "timeout_ms": 2000, "expect": {"connected": false}});
    let up = run(spec(closed)).await;
    assert!(up.success, "{up:?}");
    let open = silent_server().await;
    let down = run(spec(open)).await;
    assert_eq!(down.error_class, Some(ErrorClass::Assertion), "{down:?}");
    assert_eq!(
        down.failed_assertions,
        [format!("port {} accepted a connection (expected closed)", open.port())]
    );
}

#[tokio::test]
async fn the_banner_is_read_after_send_and_judged() {
    let addr = banner_server("220 mail.test ESMTP ready\r\n").await;
    let url = format!("tcp://{addr}");
    let greeted = run(json!({
        "kind": "tcp", "url": url, "timeout_ms": 2000,
        "expect": {"banner_contains": ["ESMTP"], "banner_regex": ["^220 "]}
    }))
    .await;
    assert!(greeted.success, "{greeted:?}");
    assert!(greeted.timings.first_byte_ms.is_some() && greeted.bytes_read > 0, "{greeted:?}");

    // `send` goes first; the banner is read until the assertion holds.
    let echoed = run(json!({
        "kind": "tcp", "url": url, "timeout_ms": 2000, "send": "PING\r\n",
        "expect": {"banner_contains": ["echo: PING"]}
    }))
    .await;
    assert!(echoed.success, "{echoed:?}");

    // A banner that never matches fails on what arrived, by the deadline.
    let wrong = run(json!({
        "kind": "tcp", "url": url, "timeout_ms": 500,
        "expect": {"banner_contains": ["SSH-2.0"]}
    }))
    .await;
    assert_eq!(wrong.error_class, Some(ErrorClass::Assertion), "{wrong:?}");
    assert_eq!(
        wrong.failed_assertions,
        ["banner \"220 mail.test ESMTP ready\" does not contain \"SSH-2.0\""]
    );
}

#[tokio::test]
async fn a_silent_server_times_out_waiting_for_the_banner() {
    let addr = silent_server().await;
    let started = std::time::Instant::now();
    let out = run(json!({
        "kind": "tcp", "url": format!("tcp://{addr}"), "timeout_ms": 400,
        "expect": {"banner_contains": ["hello"]}
    }))
    .await;
    assert_eq!(out.error_class, Some(ErrorClass::Timeout), "{out:?}");
    assert!(out.error_message.as_deref().unwrap().contains("banner"), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "the deadline holds");
    assert!(out.timings.connect_ms.is_some(), "phases before the deadline are kept: {out:?}");
}

#[tokio::test]
async fn the_deny_list_applies_to_tcp_checks() {
    let addr = silent_server().await;
    let spec: CheckSpec =
        serde_json::from_value(json!({"kind": "tcp", "url": format!("tcp://{addr}"), "timeout_ms": 1000}))
            .unwrap();
    let out = prober(DenyList::parse(&["127.0.0.0/8".to_string()]).unwrap()).run(&spec).await;
    assert_eq!(out.error_class, Some(ErrorClass::Blocked), "{out:?}");
    assert!(out.error_message.unwrap().contains("deny-list"));
}
