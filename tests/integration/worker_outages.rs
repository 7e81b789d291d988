//! The worker across outages of PostgreSQL and RabbitMQ, simulated with a
//! TcpProxy between the worker and the shared server (issue 4, acceptance
//! 4; the real restarts are in tests/restarts), and the ops endpoints of
//! the real binary (foundation: /metrics, /healthz, /readyz, SIGTERM).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::worker_bed::now_ms;
use crate::support::{eventually, http, Behavior, TcpProxy, TestTarget, WorkerBed};

const ROWS: &str = "SELECT count(*) FROM check_results";

fn through(url: &str, proxy: &TcpProxy) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    url.to_string()
}

async fn readyz(bed: &WorkerBed) -> (u16, String) {
    http::get(bed.listen, "/readyz").await.unwrap_or((0, String::new()))
}

/// `/readyz` once it answers `status`, or its last answer after 6 s: it
/// answers from a probe round at most about 3 s old (docs/operations.md).
async fn readyz_becomes(addr: std::net::SocketAddr, status: u16) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let answer = http::get(addr, "/readyz").await.unwrap_or((0, String::new()));
        if answer.0 == status || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes `n` jobs (one per new check) at `slot`; returns their ids.
async fn publish_batch(bed: &WorkerBed, target: &TestTarget, prefix: &str, n: usize) -> Vec<i64> {
    let spec = json!({"url": target.url("/"), "timeout_ms": 5000});
    let mut ids = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        let id = bed.add_check(&name, &spec).await;
        bed.publish(&WorkerBed::job(id, &name, &spec, now_ms())).await;
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn postgres_outage_holds_results_unacked_and_resumes_by_itself() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let db_url = through(&bed.db.url, &proxy);
    let worker = bed.spawn_worker(&[("SENTRYK8S_DATABASE_URL", &db_url)]);

    publish_batch(&bed, &target, "before", 20).await;
    assert!(bed.wait_for_count(ROWS, 20, Duration::from_secs(20)).await, "{}", worker.output());
    assert!(eventually(Duration::from_secs(10), || async { readyz(&bed).await.0 == 200 }).await);

    proxy.block();
    let (status, body) = readyz_becomes(bed.listen, 503).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("postgres:") && !body.contains("postgres: ok"), "{body}");
    let checks_before = target.requests();
    publish_batch(&bed, &target, "during", 20).await;
    // The checks run (their batch is what fails), the worker notices, holds
    // the deliveries and stops taking new work.
    assert!(
        worker.wait_for_output("cannot write results", Duration::from_secs(10)).await,
        "{}",
        worker.output()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(bed.count(ROWS).await, 20, "nothing can be written while PostgreSQL is away");
    // Jobs published now stay in the queue: the worker takes no new work.
    let ran_during = target.requests() - checks_before;
    publish_batch(&bed, &target, "held", 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(target.requests() - checks_before <= ran_during + 1, "new checks started during the outage");

    proxy.unblock();
    let all = bed.wait_for_count(ROWS, 50, Duration::from_secs(30)).await;
    assert!(all, "{} rows\n{}", bed.count(ROWS).await, worker.output());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bed.count(ROWS).await, 50, "no result doubled");
    assert!(worker.wait_for_output("PostgreSQL is back", Duration::from_secs(5)).await);
    assert!(eventually(Duration::from_secs(10), || async { readyz(&bed).await.0 == 200 }).await);
    assert!(eventually(Duration::from_secs(5), || async { bed.depth(&bed.broker.queue).await == 0 }).await);
}

#[tokio::test]
async fn rabbitmq_outage_reconnects_and_loses_nothing() {
    let bed = WorkerBed::new().await;
    let target =
        TestTarget::start(Behavior { delay: Duration::from_millis(300), ..Behavior::default() }).await;
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let amqp_url = through(&bed.broker.url, &proxy);
    let worker = bed.spawn_worker(&[
        ("SENTRYK8S_AMQP_URL", &amqp_url),
        ("SENTRYK8S_AMQP__RECONNECT_MAX_BACKOFF", "500ms"),
    ]);
    publish_batch(&bed, &target, "before", 10).await;
    assert!(bed.wait_for_count(ROWS, 10, Duration::from_secs(20)).await, "{}", worker.output());

    // Cut the connection while checks are running: their acks are lost,
    // the broker redelivers them after the reconnect.
    publish_batch(&bed, &target, "cut", 10).await;
    assert!(eventually(Duration::from_secs(10), || async { target.requests() >= 20 }).await);
    proxy.block();
    let (status, body) = readyz_becomes(bed.listen, 503).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("amqp:") && !body.contains("amqp: ok"), "{body}");
    publish_batch(&bed, &target, "during", 10).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.unblock();

    let all = bed.wait_for_count(ROWS, 30, Duration::from_secs(30)).await;
    assert!(all, "{} rows\n{}", bed.count(ROWS).await, worker.output());
    assert!(eventually(Duration::from_secs(10), || async { bed.depth(&bed.broker.queue).await == 0 }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bed.count(ROWS).await, 30, "no result doubled");
    assert!(
        worker.output().contains("lost the RabbitMQ connection") || worker.output().contains("reconnecting")
    );
    assert!(eventually(Duration::from_secs(10), || async { readyz(&bed).await.0 == 200 }).await);
}

#[tokio::test]
async fn worker_binary_serves_ops_endpoints_and_exits_zero_on_sigterm() {
    let bed = WorkerBed::new().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let db_url = through(&bed.db.url, &proxy);
    let listen = format!("127.0.0.1:{}", crate::support::free_port());
    let mut env = bed.env();
    env.retain(|(k, _)| k != "SENTRYK8S_LISTEN" && k != "SENTRYK8S_DATABASE_URL");
    env.push(("SENTRYK8S_DATABASE_URL".into(), db_url));
    let mut worker =
        crate::support::Binary::spawn(&["worker", "--listen", &listen, "--concurrency", "8"], &env);
    let addr: std::net::SocketAddr = listen.parse().unwrap();

    let up = eventually(Duration::from_secs(15), || async {
        http::get(addr, "/readyz").await.map(|(s, _)| s == 200).unwrap_or(false)
    })
    .await;
    assert!(up, "{}", worker.output());
    assert_eq!(http::get(addr, "/healthz").await.unwrap().0, 200);
    let (status, metrics) = http::get(addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("sentryk8s_checks_in_flight"), "{metrics}");

    proxy.block();
    let (status, body) = readyz_becomes(addr, 503).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(http::get(addr, "/healthz").await.unwrap().0, 200, "liveness does not follow PostgreSQL");
    proxy.unblock();
    assert!(
        eventually(Duration::from_secs(10), || async {
            http::get(addr, "/readyz").await.map(|(s, _)| s == 200).unwrap_or(false)
        })
        .await
    );

    let asked = Instant::now();
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(5)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", worker.output());
    assert!(asked.elapsed() < Duration::from_secs(5));
}
