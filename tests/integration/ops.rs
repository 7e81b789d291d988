//! The ops server against real dependencies: /metrics, /healthz, /readyz;
//! and, through the real binary, the one drain policy of every role
//! (`commands/serve.rs`): the ops server answers until the drain is over.

use std::sync::Arc;
use std::time::Duration;

use sentryk8s::ops_server;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::worker_bed::now_ms;
use crate::support::{http, Behavior, TcpProxy, TestDb, TestTarget, WorkerBed};

#[tokio::test]
async fn readyz_follows_postgres_and_metrics_render() {
    let db = TestDb::migrated(4).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();

    let mut config = sentryk8s::config::Config::defaults().unwrap();
    config.database_url = url.to_string();
    config.database.connect_timeout = Duration::from_secs(1);
    let pool = sentryk8s::db::pool(&config, "test").unwrap();
    let shutdown = CancellationToken::new();
    let (addr, server) = ops_server::start(
        "127.0.0.1:0".parse().unwrap(),
        vec![Arc::new(sentryk8s::db::PostgresProbe(pool))],
        shutdown.clone(),
    )
    .await
    .unwrap();

    metrics::counter!("sentryk8s_test_probe_total").increment(3);
    let (status, body) = http::get(addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("sentryk8s_test_probe_total 3"), "{body}");
    assert_eq!(http::get(addr, "/healthz").await.unwrap().0, 200);
    let (status, body) = http::get(addr, "/readyz").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("postgres: ok"), "{body}");

    proxy.block();
    let (status, body) = http::get(addr, "/readyz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("postgres:") && !body.contains("postgres: ok"), "{body}");
    // Liveness does not depend on PostgreSQL: restarting the pod would not help.
    assert_eq!(http::get(addr, "/healthz").await.unwrap().0, 200);

    proxy.unblock();
    let ready_again = crate::support::eventually(Duration::from_secs(10), || async {
        http::get(addr, "/readyz").await.map(|(s, _)| s == 200).unwrap_or(false)
    })
    .await;
    assert!(ready_again, "ready again once PostgreSQL answers");
    assert_eq!(http::get(addr, "/nope").await.unwrap().0, 404);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_draining_worker_still_serves_metrics_and_liveness() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior { delay: Duration::from_secs(3), ..Behavior::default() }).await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 10_000});
    let id = bed.add_check("slow", &spec).await;
    bed.publish(&WorkerBed::job(id, "slow", &spec, now_ms())).await;
    let mut worker = bed.spawn_worker(&[]);
    let running =
        crate::support::eventually(Duration::from_secs(20), || async { target.requests() == 1 }).await;
    assert!(running, "{}", worker.output());

    worker.terminate();
    // Let the signal land: the check still has seconds to run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = http::get(bed.listen, "/metrics").await.expect("/metrics during the drain");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sentryk8s_checks_in_flight 1"), "the last scrape sees the drain\n{body}");
    assert_eq!(http::get(bed.listen, "/healthz").await.map(|(s, _)| s), Ok(200));

    let exit = worker.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{}", worker.output());
    assert_eq!(bed.count("SELECT count(*) FROM check_results").await, 1, "the drained check was stored");
}
