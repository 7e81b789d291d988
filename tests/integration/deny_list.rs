//! The target deny-list (worker.deny_targets): enforced on resolved
//! addresses, every hop, before any connection is made.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sentryk8s::model::{CheckSpec, ErrorClass};
use sentryk8s::net::deny::DenyList;
use sentryk8s::probe::{Prober, ProberOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::worker_bed::now_ms;
use crate::support::WorkerBed;

fn checker(deny: &[&str]) -> Prober {
    let deny = DenyList::parse(&deny.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    Prober::new(ProberOptions { body_limit: 1 << 20, user_agent: "sentryk8s-test".into(), deny }).unwrap()
}

fn spec(url: &str) -> CheckSpec {
    serde_json::from_value(json!({"url": url, "timeout_ms": 3000})).unwrap()
}

/// A server on `ip` that counts accepted connections and answers 200, or a
/// redirect to `location` when given.
async fn counting_server(ip: &str, location: Option<String>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let location = location.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let reply = match location {
                    Some(to) => format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                    None => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_string(),
                };
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn the_metadata_address_is_blocked_without_a_connection() {
    let started = std::time::Instant::now();
    let outcome = checker(&["metadata"]).run(&spec("http://169.254.169.254/latest/meta-data/")).await;
    assert!(!outcome.success);
    assert_eq!(outcome.error_class, Some(ErrorClass::Blocked), "{outcome:?}");
    let message = outcome.error_message.clone().unwrap_or_default();
    assert!(message.starts_with("blocked: 169.254.169.254"), "{message}");
    assert_eq!(outcome.timings.connect_ms, None, "no connection attempted");
    assert!(started.elapsed() < Duration::from_secs(1), "no waiting on an unreachable address");
    // IPv4-mapped IPv6 is the same address.
    let mapped = checker(&["metadata"]).run(&spec("http://[::ffff:169.254.169.254]/")).await;
    assert_eq!(mapped.error_class, Some(ErrorClass::Blocked), "{mapped:?}");
    // Off by default.
    let open = checker(&[]).run(&spec("http://169.254.169.254:1/")).await;
    assert_ne!(open.error_class, Some(ErrorClass::Blocked));
}

#[tokio::test]
async fn a_denied_address_receives_no_connection_even_through_a_name_or_a_redirect() {
    // A listening server in a denied range, reached by address: nothing connects.
    let (denied, accepted) = counting_server("127.0.0.2", None).await;
    let outcome = checker(&["127.0.0.2/32"]).run(&spec(&format!("http://{denied}/"))).await;
    assert_eq!(outcome.error_class, Some(ErrorClass::Blocked), "{outcome:?}");

    // The same through a redirect from an allowed host: blocked at the second hop.
    let (allowed, first) = counting_server("127.0.0.1", Some(format!("http://{denied}/next"))).await;
    let mut redirecting = spec(&format!("http://{allowed}/"));
    redirecting.max_redirects = 3;
    let outcome = checker(&["127.0.0.2/32"]).run(&redirecting).await;
    assert_eq!(outcome.error_class, Some(ErrorClass::Blocked), "{outcome:?}");
    assert_eq!(first.load(Ordering::SeqCst), 1, "the allowed hop was made");
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "the denied server was never connected to");

    // A name that resolves to a denied address: localhost is loopback.
    let (local, local_accepted) = counting_server("127.0.0.1", None).await;
    let outcome = checker(&["loopback"]).run(&spec(&format!("http://localhost:{}/", local.port()))).await;
    assert_eq!(outcome.error_class, Some(ErrorClass::Blocked), "{outcome:?}");
    assert!(outcome.timings.dns_ms.is_some(), "judged after resolution");
    assert_eq!(local_accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_binary_records_blocked_checks() {
    let bed = WorkerBed::new().await;
    let mut worker = bed.spawn_worker(&[("SENTRYK8S_WORKER__DENY_TARGETS", r#"["metadata", "10.0.0.0/8"]"#)]);
    let spec = json!({"url": "http://169.254.169.254/computeMetadata/v1/", "timeout_ms": 2000});
    let id = bed.add_check("metadata", &spec).await;
    bed.publish(&WorkerBed::job(id, "metadata", &spec, now_ms())).await;
    let stored = bed.wait_for_count("SELECT count(*) FROM check_results", 1, Duration::from_secs(15)).await;
    assert!(stored, "{}", worker.output());
    let results = bed.results(id).await;
    assert_eq!(results[0].error_class.as_deref(), Some("blocked"));
    assert!(results[0].error_message.as_deref().unwrap_or("").contains("deny-list"));
    worker.terminate();
    assert_eq!(worker.wait_exit(Duration::from_secs(10)).await.and_then(|s| s.code()), Some(0));

    // A malformed entry is a configuration error naming the key.
    let (status, out) = crate::support::Binary::run(
        &["config"],
        &[("SENTRYK8S_WORKER__DENY_TARGETS".into(), r#"["10.0.0.0/40"]"#.into())],
    );
    assert_eq!(status.code(), Some(2), "{out}");
    assert!(out.contains("worker.deny_targets") && out.contains("10.0.0.0/40"), "{out}");
}
