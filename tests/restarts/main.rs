//! Real restarts of RabbitMQ and PostgreSQL under a running worker (issue
//! 4, acceptance 4), and of RabbitMQ under running schedulers (issue 3,
//! acceptance 5). These stop the shared services, so this binary is
//! serial and runs alone:
//! `flock -o -x /tmp/sentryk8s-services.lock cargo test --test restarts`.
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

/// Two sharded schedulers and 200 checks of 1–5 s intervals; RabbitMQ is
/// restarted under them. They recover by themselves, publish the slots due
/// during the outage late (the outage is shorter than the catch-up window),
/// and every slot of the run is published (duplicates only around the
/// restart, where a confirm may have been lost).
async fn schedulers_survive_a_rabbitmq_restart() {
    use std::collections::HashMap;
    use support::fleet::{expected_slots, now_ms as wall_ms, Fleet};
    use support::jobs::JobCollector;

    let mut fleet = Fleet::new(16, 2, 5000, 1000).await;
    let checks = fleet
        .insert_checks(
            "SELECT 'check-' || i, 1000 + (i % 5) * 1000, '{\"url\":\"http://127.0.0.1:9/\",\"timeout_ms\":500}'
               FROM generate_series(1, 200) i",
        )
        .await;
    let before = JobCollector::start(&fleet.broker).await;
    fleet.start_scheduler(0);
    fleet.start_scheduler(1);
    fleet.wait_converged(Duration::from_secs(20)).await.expect("converged");
    let from = wall_ms();
    tokio::time::sleep(Duration::from_secs(5)).await;

    let down_at = wall_ms();
    restart_rabbitmq().await;
    let up_at = wall_ms();
    // The collector's connection died with the broker; what was published
    // and not yet consumed waits in the quorum queue for the new one.
    let after = JobCollector::start(&fleet.broker).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    let to = wall_ms() - 3000;
    for (ordinal, scheduler) in fleet.schedulers.iter_mut() {
        assert!(
            scheduler.try_status().is_none(),
            "scheduler {ordinal} is still running:\n{}",
            scheduler.output()
        );
    }
    let exits = fleet.stop_all().await;

    let mut seen: HashMap<(i64, i64), usize> = HashMap::new();
    for r in before.snapshot().into_iter().chain(after.snapshot()) {
        *seen.entry((r.check_id, r.slot)).or_default() += 1;
    }
    let missed = fleet.missed(&checks).await;
    let mut problems = Vec::new();
    let mut late = 0;
    for (id, slot) in expected_slots(&checks, from, to) {
        let n = seen.get(&(id, slot)).copied().unwrap_or(0);
        if n == 0 {
            let reason = missed.get(&id).and_then(|m| m.get(&slot));
            problems.push(format!(
                "check {id} slot {slot} ({} ms after the stop) not published; miss {reason:?}",
                slot - down_at
            ));
        }
        if n > 1 && !(slot >= down_at - 2000 && slot <= up_at + 2000) {
            problems.push(format!("check {id} slot {slot} published {n} times, away from the restart"));
        }
        if slot > down_at && slot < up_at {
            late += 1;
        }
    }
    assert!(late > 100, "{late} slots fell inside the outage");
    assert!(
        problems.is_empty(),
        "{} problems, e.g. {:#?}",
        problems.len(),
        &problems[..problems.len().min(10)]
    );
    for (name, code) in exits {
        assert_eq!(code, Some(0), "{name} exits 0");
    }
    let output = fleet.all_output();
    assert!(!output.contains("panicked"), "{output}");
    assert!(output.contains("publishing to RabbitMQ"), "reconnected by itself");
}

#[test]
fn roles_recover_from_real_restarts() {
    let _restore = Restore;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        rabbitmq_restart().await;
        postgres_restart().await;
        schedulers_survive_a_rabbitmq_restart().await;
    });
}
