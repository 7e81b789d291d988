//! Real restarts of RabbitMQ and PostgreSQL under a running worker (issue
//! 4, acceptance 4). These stop the shared services, so this binary is
//! serial and runs alone:
//! `flock -x /tmp/sentryk8s-services.lock cargo test --test restarts`.
//! A single #[test] runs the scenarios one after the other; a guard
//! restarts a service that a failed scenario left stopped.

#[path = "../integration/support/mod.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use support::services::{restart_postgres, restart_rabbitmq, Restore};
use support::worker_bed::now_ms;
use support::{Behavior, TestTarget, WorkerBed};

const ROWS: &str = "SELECT count(*) FROM check_results";

async fn publish(bed: &WorkerBed, target: &TestTarget, prefix: &str, n: usize) {
    let spec = json!({"url": target.url("/"), "timeout_ms": 5000});
    for i in 0..n {
        let name = format!("{prefix}-{i}");
        let id = bed.add_check(&name, &spec).await;
        bed.publish(&WorkerBed::job(id, &name, &spec, now_ms())).await;
    }
}

async fn rabbitmq_restart() {
    let mut bed = WorkerBed::new().await;
    let target =
        TestTarget::start(Behavior { delay: Duration::from_millis(100), ..Behavior::default() }).await;
    let worker = bed.spawn_worker(&[("SENTRYK8S_AMQP__RECONNECT_MAX_BACKOFF", "1s")]);
    publish(&bed, &target, "before", 60).await;
    assert!(bed.wait_for_count(ROWS, 10, Duration::from_secs(20)).await, "{}", worker.output());

    restart_rabbitmq().await;
    bed.reconnect_publisher().await;
    publish(&bed, &target, "after", 40).await;

    let all = bed.wait_for_count(ROWS, 100, Duration::from_secs(90)).await;
    assert!(all, "{} rows of 100\n{}", bed.count(ROWS).await, worker.output());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(bed.count(ROWS).await, 100, "a result was doubled");
    // It reconnected by itself: a second session started.
    assert!(worker.output().matches("consuming check jobs").count() >= 2, "{}", worker.output());
}

async fn postgres_restart() {
    let bed = WorkerBed::new().await;
    let target =
        TestTarget::start(Behavior { delay: Duration::from_millis(100), ..Behavior::default() }).await;
    let worker = bed.spawn_worker(&[]);
    publish(&bed, &target, "before", 60).await;
    assert!(bed.wait_for_count(ROWS, 10, Duration::from_secs(20)).await, "{}", worker.output());

    restart_postgres();
    publish(&bed, &target, "after", 40).await;

    let all = bed.wait_for_count(ROWS, 100, Duration::from_secs(60)).await;
    assert!(all, "{} rows of 100\n{}", bed.count(ROWS).await, worker.output());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(bed.count(ROWS).await, 100, "a result was doubled");
    assert!(
        support::eventually(Duration::from_secs(10), || async { bed.depth(&bed.broker.queue).await == 0 })
            .await
    );
}

#[test]
fn worker_recovers_from_real_restarts() {
    let _restore = Restore;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        rabbitmq_restart().await;
        postgres_restart().await;
    });
}
