//! What happens to jobs: redelivery, `kill -9`, dead letters, stale jobs,
//! the state machine and its outbox, and the SIGTERM drain (issue 4,
//! acceptance 3, 5 and 6), through the real binary.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::worker_bed::now_ms;
use crate::support::{http, Behavior, TestTarget, WorkerBed};

const ROWS: &str = "SELECT count(*) FROM check_results";

#[tokio::test]
async fn the_same_slot_delivered_twice_is_one_row() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 2000});
    let id = bed.add_check("twice", &spec).await;
    let job = WorkerBed::job(id, "twice", &spec, now_ms());
    bed.publish(&job).await;
    bed.publish(&job).await;
    let worker = bed.spawn_worker(&[]);
    assert!(bed.wait_for_count(ROWS, 1, Duration::from_secs(20)).await, "{}", worker.output());
    // Once the first is stored, a third delivery (a republish after a
    // crash between confirm and watermark) must change nothing either.
    bed.publish(&job).await;
    let drained = crate::support::eventually(Duration::from_secs(10), || async {
        bed.depth(&bed.broker.queue).await == 0 && target.requests() >= 2
    })
    .await;
    assert!(drained, "{}", worker.output());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bed.results(id).await.len(), 1);
    assert_eq!(bed.count(ROWS).await, 1);
    let state = bed.state(id).await.expect("state row");
    assert_eq!((state.0.as_str(), state.2), ("up", Some(job.slot)));
    assert!(bed.notifications(id).await.is_empty(), "coming up from unknown is not notified");
}

#[tokio::test]
async fn kill_9_mid_batch_then_a_new_worker_leaves_exactly_one_row_per_job() {
    let bed = WorkerBed::new().await;
    let target =
        TestTarget::start(Behavior { delay: Duration::from_millis(200), ..Behavior::default() }).await;
    let base = now_ms() - chrono::Duration::seconds(5);
    let mut published = Vec::new();
    for c in 0..30 {
        let name = format!("k9-{c}");
        let spec = json!({"url": target.url("/"), "timeout_ms": 5000});
        let id = bed.add_check(&name, &spec).await;
        for s in 0..10 {
            let job = WorkerBed::job(id, &name, &spec, base + chrono::Duration::milliseconds(s * 250));
            bed.publish(&job).await;
            published.push((id, job.slot));
        }
    }
    // Long batches and modest concurrency: the kill lands with results
    // waiting for a commit, checks running, and jobs prefetched.
    let extra = [("SENTRYK8S_WORKER__BATCH_MAX_DELAY", "400ms"), ("SENTRYK8S_WORKER__CONCURRENCY", "40")];
    let mut first = bed.spawn_worker(&extra);
    assert!(bed.wait_for_count(ROWS, 40, Duration::from_secs(30)).await, "{}", first.output());
    first.kill9();
    let after_kill = bed.count(ROWS).await;
    assert!(after_kill < published.len() as i64, "the kill came too late to mean anything");

    let second = bed.spawn_worker(&[]);
    let all = bed.wait_for_count(ROWS, published.len() as i64, Duration::from_secs(60)).await;
    assert!(all, "{} of {} rows\n{}", bed.count(ROWS).await, published.len(), second.output());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bed.count(ROWS).await, published.len() as i64, "a job produced two rows");
    assert_eq!(bed.count("SELECT count(*) FROM missed_slots").await, 0, "nothing was stale");
    let client = bed.db.client().await;
    for (id, slot) in &published {
        let n: i64 = client
            .query_one("SELECT count(*) FROM check_results WHERE check_id = $1 AND slot = $2", &[id, slot])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "check {id} slot {slot}");
    }
    // Every check's state reached its newest slot.
    let behind = bed
        .count(&format!(
            "SELECT count(*) FROM check_state WHERE last_slot IS DISTINCT FROM '{}'::timestamptz",
            (base + chrono::Duration::milliseconds(9 * 250)).to_rfc3339()
        ))
        .await;
    assert_eq!(behind, 0);
}

#[tokio::test]
async fn garbage_goes_to_the_dead_letter_queue_and_the_worker_continues() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    bed.publish_raw(b"\xff\xfe this is not a job".to_vec(), "garbage-1").await;
    bed.publish_raw(br#"{"v": 99, "anything": true}"#.to_vec(), "future-version").await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 2000});
    let mut nonsense = WorkerBed::job(1, "nonsense", &spec, now_ms());
    nonsense.interval_ms = 5;
    bed.publish(&nonsense).await;

    let mut worker = bed.spawn_worker(&[]);
    let dead = bed.broker.dead_letter_queue();
    let dead_lettered =
        crate::support::eventually(Duration::from_secs(20), || async { bed.depth(&dead).await == 3 }).await;
    assert!(dead_lettered, "dead-letter queue holds {}\n{}", bed.depth(&dead).await, worker.output());

    let id = bed.add_check("after-garbage", &spec).await;
    bed.publish(&WorkerBed::job(id, "after-garbage", &spec, now_ms())).await;
    assert!(bed.wait_for_count(ROWS, 1, Duration::from_secs(20)).await, "{}", worker.output());
    assert!(worker.try_status().is_none(), "the worker exited\n{}", worker.output());

    let (_, metrics) = http::get(bed.listen, "/metrics").await.unwrap();
    for reason in ["undecodable", "unsupported_version", "invalid"] {
        let line = format!("sentryk8s_jobs_dead_lettered_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} missing\n{metrics}");
    }
    let output = worker.output();
    assert_eq!(output.matches("dead-lettering").count(), 3, "logged once each\n{output}");
    assert!(!output.contains("this is not a job"), "message content must not be logged");
    worker.terminate();
    assert!(worker.wait_exit(Duration::from_secs(10)).await.is_some_and(|s| s.success()));
}

#[tokio::test]
async fn stale_jobs_are_acked_recorded_and_not_run() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 2000});
    let id = bed.add_check("stale", &spec).await;
    let slot = now_ms() - chrono::Duration::minutes(5);
    bed.publish(&WorkerBed::job(id, "stale", &spec, slot)).await;
    let worker = bed.spawn_worker(&[]);
    let recorded = bed
        .wait_for_count(
            "SELECT count(*) FROM missed_slots WHERE reason = 'stale'",
            1,
            Duration::from_secs(20),
        )
        .await;
    assert!(recorded, "{}", worker.output());
    assert_eq!(target.requests(), 0, "a stale job must not run");
    assert_eq!(bed.count(ROWS).await, 0);
    let client = bed.db.client().await;
    let row = client
        .query_one("SELECT check_id, first_slot, last_slot, slots FROM missed_slots", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), id);
    assert_eq!(row.get::<_, chrono::DateTime<chrono::Utc>>(1), slot);
    assert_eq!(row.get::<_, i32>(3), 1);
    assert!(
        crate::support::eventually(Duration::from_secs(5), || async {
            bed.depth(&bed.broker.queue).await == 0
        })
        .await
    );
    let (_, metrics) = http::get(bed.listen, "/metrics").await.unwrap();
    assert!(metrics.contains("sentryk8s_jobs_stale_total 1"), "{metrics}");
}

#[tokio::test]
async fn failing_twice_goes_down_once_recovering_goes_up_once_and_old_results_do_not_count() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior { status: 500, ..Behavior::default() }).await;
    let spec = json!({
        "url": target.url("/shop?token=hunter2"),
        "timeout_ms": 2000,
        "failure_threshold": 2,
        "success_threshold": 1,
        "headers": {"Authorization": "Bearer s3cret-token"},
    });
    let id = bed.add_check("flappy", &spec).await;
    let worker = bed.spawn_worker(&[]);
    let base = now_ms() - chrono::Duration::seconds(10);
    let slot = |i: i64| base + chrono::Duration::seconds(i);
    let mut expected_rows = 0;
    let job_at = |i: i64| WorkerBed::job(id, "flappy", &spec, slot(i));
    for (i, status) in [(1, 500), (2, 500), (3, 500), (4, 200), (5, 200)] {
        target.set_status(status);
        bed.publish(&job_at(i)).await;
        expected_rows += 1;
        assert!(
            bed.wait_for_count(ROWS, expected_rows, Duration::from_secs(20)).await,
            "{}",
            worker.output()
        );
        let state = bed.state(id).await.expect("state");
        let notes = bed.notifications(id).await;
        match i {
            1 => assert_eq!((state.0.as_str(), notes.len()), ("unknown", 0), "one failure of two"),
            2 | 3 => assert_eq!((state.0.as_str(), notes.len()), ("down", 1)),
            _ => assert_eq!((state.0.as_str(), notes.len()), ("up", 2)),
        }
    }
    let notes = bed.notifications(id).await;
    assert_eq!(notes[0].0, "down");
    assert_eq!(notes[1].0, "up");
    assert_eq!(notes[0].1, notes[1].1, "the recovery carries the incident id of the outage");
    let down = &notes[0].2;
    assert_eq!(down["check"], "flappy");
    assert_eq!(down["state"], "down");
    assert_eq!(down["status_code"], 500);
    assert_eq!(down["host"], "127.0.0.1");
    assert!(down["last_error"].as_str().is_some_and(|e| e.contains("500")), "{down}");
    assert!(notes[1].2["down_for_seconds"].as_f64().is_some(), "{}", notes[1].2);
    for (_, _, payload) in &notes {
        let text = payload.to_string();
        assert!(!text.contains("s3cret") && !text.contains("hunter2"), "secret in payload: {text}");
    }

    // An old failing slot arrives late: stored, but the state stays put.
    target.set_status(500);
    bed.publish(&job_at(0)).await;
    assert!(bed.wait_for_count(ROWS, 6, Duration::from_secs(20)).await);
    let state = bed.state(id).await.expect("state");
    assert_eq!(state.0, "up");
    assert_eq!(state.1, 0, "consecutive failures untouched");
    assert_eq!(state.2, Some(slot(5)));
    assert_eq!(bed.notifications(id).await.len(), 2);
}

/// Issue 13, item 9: a slow or redelivered job committed after a newer
/// slot. Slots 1 and 3 fail, slot 2 succeeded but arrives last: in slot
/// order the failures are not consecutive, so slot 4 failing makes two in a
/// row, not three, and nobody is paged (before the fix: down at slot 4).
#[tokio::test]
async fn a_late_success_breaks_the_failure_streak_in_slot_order() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior { status: 500, ..Behavior::default() }).await;
    let spec =
        json!({"url": target.url("/"), "timeout_ms": 2000, "failure_threshold": 3, "success_threshold": 1});
    let id = bed.add_check("late", &spec).await;
    let worker = bed.spawn_worker(&[]);
    let base = now_ms() - chrono::Duration::seconds(10);
    let job_at = |i: i64| WorkerBed::job(id, "late", &spec, base + chrono::Duration::seconds(i));
    for (n, (i, status)) in [(1, 500), (3, 500), (2, 200), (4, 500)].into_iter().enumerate() {
        target.set_status(status);
        bed.publish(&job_at(i)).await;
        let stored = bed.wait_for_count(ROWS, n as i64 + 1, Duration::from_secs(20)).await;
        assert!(stored, "{}", worker.output());
    }
    let state = bed.state(id).await.expect("state");
    assert_eq!((state.0.as_str(), state.1), ("unknown", 2), "F S F F in slot order: two failures in a row");
    assert_eq!(state.2, Some(job_at(4).slot), "the late slot did not move last_slot");
    assert!(bed.notifications(id).await.is_empty(), "paged for failures that were not consecutive");
    // The streak still counts on: the third consecutive failure pages once.
    bed.publish(&job_at(5)).await;
    assert!(bed.wait_for_count(ROWS, 5, Duration::from_secs(20)).await, "{}", worker.output());
    assert_eq!(bed.state(id).await.map(|s| (s.0, s.1)), Some(("down".to_string(), 3)));
    let notes = bed.notifications(id).await;
    assert_eq!(notes.iter().map(|n| n.0.as_str()).collect::<Vec<_>>(), ["down"]);
    assert_eq!(notes[0].2["slot"], json!(job_at(5).slot));
}

#[tokio::test]
async fn sigterm_finishes_running_checks_commits_and_exits_zero() {
    let bed = WorkerBed::new().await;
    let target =
        TestTarget::start(Behavior { delay: Duration::from_millis(1500), ..Behavior::default() }).await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 10_000});
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = bed.add_check(&format!("drain-{i}"), &spec).await;
        bed.publish(&WorkerBed::job(id, "drain", &spec, now_ms())).await;
        ids.push(id);
    }
    let mut worker = bed.spawn_worker(&[]);
    let in_flight =
        crate::support::eventually(Duration::from_secs(20), || async { target.requests() == 5 }).await;
    assert!(in_flight, "{}", worker.output());
    let asked = Instant::now();
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(5)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", worker.output());
    assert!(asked.elapsed() < Duration::from_secs(5));
    // The running checks finished and were committed before the exit...
    assert_eq!(bed.count(ROWS).await, 5, "{}", worker.output());
    // ...and acknowledged: nothing returns to the queue.
    assert_eq!(bed.depth(&bed.broker.queue).await, 0);
}

#[tokio::test]
async fn sigterm_returns_checks_that_outlive_the_drain_to_the_queue() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior { delay: Duration::from_secs(30), ..Behavior::default() }).await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 25_000});
    let id = bed.add_check("endless", &spec).await;
    bed.publish(&WorkerBed::job(id, "endless", &spec, now_ms())).await;
    let mut worker = bed.spawn_worker(&[("SENTRYK8S_DRAIN_TIMEOUT", "2s")]);
    assert!(crate::support::eventually(Duration::from_secs(20), || async { target.requests() == 1 }).await);
    let asked = Instant::now();
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(5)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", worker.output());
    assert!(asked.elapsed() < Duration::from_secs(4), "drain took {:?}", asked.elapsed());
    assert_eq!(bed.count(ROWS).await, 0);
    let requeued = crate::support::eventually(Duration::from_secs(5), || async {
        bed.depth(&bed.broker.queue).await == 1
    })
    .await;
    assert!(requeued, "the unfinished job must go back to the queue\n{}", worker.output());
}

#[tokio::test]
async fn a_missing_partition_is_created_and_a_deleted_check_does_not_abort_the_batch() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    let client = bed.db.client().await;
    let slot = now_ms();
    let partition = format!("check_results_{}", slot.format("%Y%m%d"));
    client.batch_execute(&format!("DROP TABLE {partition}")).await.unwrap();

    let spec = json!({"url": target.url("/"), "timeout_ms": 2000});
    let kept = bed.add_check("kept", &spec).await;
    let deleted = bed.add_check("deleted", &spec).await;
    client.execute("DELETE FROM checks WHERE id = $1", &[&deleted]).await.unwrap();
    // Both results land in one batch (long batch delay).
    bed.publish(&WorkerBed::job(kept, "kept", &spec, slot)).await;
    bed.publish(&WorkerBed::job(deleted, "deleted", &spec, slot)).await;
    let worker = bed.spawn_worker(&[("SENTRYK8S_WORKER__BATCH_MAX_DELAY", "500ms")]);
    assert!(bed.wait_for_count(ROWS, 2, Duration::from_secs(20)).await, "{}", worker.output());
    let exists: bool =
        client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&partition]).await.unwrap().get(0);
    assert!(exists, "the worker created {partition}");
    assert_eq!(bed.state(kept).await.map(|s| s.0), Some("up".to_string()));
    assert_eq!(bed.state(deleted).await, None, "no state for a deleted check");
    assert!(worker.output().contains("created missing result partitions"), "{}", worker.output());
}
