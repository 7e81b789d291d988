//! Issue 13, item 8: a check paused or deleted while it is down. `checks
//! apply` resolves its incident once; jobs of it still in flight (queued or
//! running when the apply commits) are stored but never reopen an
//! incident nor page again. Real binary (`checks apply`, `worker`), real
//! PostgreSQL and RabbitMQ, a local webhook receiver.

use std::time::Duration;

use serde_json::Value;

use crate::checks_cli::{sentryk8s, temp_dir};
use crate::support::receiver::Receiver;
use crate::support::worker_bed::now_ms;
use crate::support::{eventually, Behavior, TestTarget, WorkerBed};

/// What the webhook receiver heard, in order: `down` and `up` only.
fn heard(receiver: &Receiver) -> Vec<String> {
    receiver
        .at("/hook")
        .iter()
        .filter_map(|q| q.body["event"].as_str().map(str::to_string))
        .filter(|e| e == "down" || e == "up")
        .collect()
}

/// The checks file: one check against `target`, paging `hook` at the
/// first failure; `None` declares no check at all (deleted with --prune).
fn file(receiver: &Receiver, target: &TestTarget, enabled: Option<bool>) -> String {
    let mut text = format!("alerts:\n  hook: {{ type: webhook, url: '{}' }}\nchecks:", receiver.url("/hook"));
    match enabled {
        Some(enabled) => text.push_str(&format!(
            "\n  - {{ name: api, url: '{}', failure_threshold: 1, alerts: [hook], enabled: {enabled} }}\n",
            target.url("/")
        )),
        None => text.push_str(" []\n"),
    }
    text
}

fn apply(bed: &WorkerBed, dir: &std::path::Path, text: &str) {
    std::fs::write(dir.join("checks.yaml"), text).expect("write checks file");
    let run = sentryk8s(Some(&bed.db), dir, &["checks", "apply", "--prune", "-f", "checks.yaml"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
}

/// Down and paged, then withdrawn (`then`: paused or deleted), then one
/// more failing job of it is processed by the worker.
async fn withdrawn_while_down(then: Option<bool>, reason: &str) {
    let bed = WorkerBed::new().await;
    let receiver = Receiver::start().await;
    let target = TestTarget::start(Behavior { status: 500, ..Behavior::default() }).await;
    let dir = temp_dir();
    apply(&bed, &dir, &file(&receiver, &target, Some(true)));
    let client = bed.db.client().await;
    let row = client.query_one("SELECT id, spec FROM checks WHERE name = 'api'", &[]).await.expect("check");
    let (id, spec): (i64, Value) = (row.get(0), row.get(1));
    let worker = bed.spawn_worker(&[
        ("SENTRYK8S_ALERTS__POLL_INTERVAL", "100ms"),
        ("SENTRYK8S_ALERTS__RETRY_INITIAL", "200ms"),
    ]);
    let base = now_ms() - chrono::Duration::seconds(5);

    // Down, and the page went out.
    bed.publish(&WorkerBed::job(id, "api", &spec, base)).await;
    let paged = eventually(Duration::from_secs(20), || async { heard(&receiver) == ["down"] }).await;
    assert!(paged, "{:?}\n{}", heard(&receiver), worker.output());
    let incident = bed.state(id).await.and_then(|s| s.3).expect("an open incident");

    // Withdrawn while down: resolved once, by the apply.
    apply(&bed, &dir, &file(&receiver, &target, then));
    // A job of it that was already queued or running fails afterwards.
    bed.publish(&WorkerBed::job(id, "api", &spec, base + chrono::Duration::seconds(1))).await;
    let stored = bed.wait_for_count("SELECT count(*) FROM check_results", 2, Duration::from_secs(20)).await;
    assert!(stored, "the in-flight result is still stored\n{}", worker.output());
    let resolved = eventually(Duration::from_secs(20), || async { heard(&receiver).len() >= 2 }).await;
    assert!(resolved, "{:?}\n{}", heard(&receiver), worker.output());
    // Several delivery rounds: nothing else may come.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(heard(&receiver), ["down", "up"], "paged again after being {reason}");
    let events: Vec<(String, i64, Option<String>)> = bed
        .notifications(id)
        .await
        .into_iter()
        .map(|(event, incident, payload)| (event, incident, payload["reason"].as_str().map(str::to_string)))
        .collect();
    assert_eq!(
        events,
        [("down".to_string(), incident, None), ("up".to_string(), incident, Some(reason.to_string()))],
        "one trigger, one resolve"
    );
    match then {
        // Paused: the state stays withdrawn, ready to start afresh.
        Some(_) => {
            let state = bed.state(id).await.expect("state row");
            assert_eq!((state.0.as_str(), state.1, state.3), ("unknown", 0, None), "the incident reopened");
        }
        None => assert_eq!(bed.state(id).await, None, "state for a deleted check"),
    }
}

#[tokio::test]
async fn pausing_a_down_check_resolves_once_and_in_flight_jobs_never_page_again() {
    withdrawn_while_down(Some(false), "paused").await;
}

#[tokio::test]
async fn deleting_a_down_check_resolves_once_and_in_flight_jobs_never_page_again() {
    withdrawn_while_down(None, "deleted").await;
}

/// The race under the two tests above: a worker's batch holds the check's
/// state row (it locks it as its transaction's first step on state) and
/// commits a recovery while `checks apply` pauses the check. The apply
/// must wait for the batch and resolve what the batch left, so the
/// incident is resolved once — before the fix it resolved from its own
/// snapshot of the state (still down) and the incident got two resolves.
#[tokio::test]
async fn a_pause_racing_a_batch_that_recovers_resolves_the_incident_once() {
    let db = crate::support::TestDb::migrated(4).await;
    let dir = temp_dir();
    let write = |enabled: bool| {
        let text = format!(
            "alerts:\n  hook: {{ type: webhook, url: 'http://127.0.0.1:9/hook' }}\nchecks:\n  - {{ name: api, url: 'http://127.0.0.1:9/a', alerts: [hook], enabled: {enabled} }}\n"
        );
        std::fs::write(dir.join("c.yaml"), text).expect("write checks file");
    };
    write(true);
    assert_eq!(sentryk8s(Some(&db), &dir, &["checks", "apply", "-f", "c.yaml"], &[], "").code, Some(0));
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO check_state (check_id, status, since, incident_id, consecutive_failures)
             SELECT id, 'down', now() - interval '5 minutes', 77, 1 FROM checks",
            &[],
        )
        .await
        .expect("down state");

    // The batch: its state lock first, as `worker::store` takes it.
    let mut batch_client = db.client().await;
    let batch = batch_client.transaction().await.expect("begin");
    batch.execute("SELECT 1 FROM check_state FOR UPDATE", &[]).await.expect("lock state");

    write(false);
    let (apply_db, apply_dir) = (db.url.clone(), dir.clone());
    let apply = std::thread::spawn(move || {
        let env = [("SENTRYK8S_DATABASE_URL", apply_db.as_str())];
        sentryk8s(None, &apply_dir, &["checks", "apply", "-f", "c.yaml"], &env, "")
    });
    let waiting = eventually(Duration::from_secs(20), || async {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .expect("pg_stat_activity");
        row.get::<_, i64>(0) > 0
    })
    .await;
    assert!(waiting, "the apply never waited for the batch's lock");
    // The batch recovers the check and writes its resolve, then commits.
    batch
        .execute(
            "UPDATE check_state SET status = 'up', since = now(), consecutive_failures = 0, consecutive_successes = 1",
            &[],
        )
        .await
        .expect("recover");
    batch
        .execute(
            "INSERT INTO notifications (check_id, check_name, incident_id, event, slot, payload)
             SELECT id, name, 77, 'up', now(), '{\"state\": \"up\"}' FROM checks",
            &[],
        )
        .await
        .expect("recovery outbox row");
    batch.commit().await.expect("commit batch");
    let run = apply.join().expect("apply thread");
    assert_eq!(run.code, Some(0), "{}", run.all());

    let ups: i64 = client
        .query_one("SELECT count(*) FROM notifications WHERE event = 'up' AND incident_id = 77", &[])
        .await
        .expect("count resolves")
        .get(0);
    assert_eq!(ups, 1, "the incident was resolved twice");
    let state: String = client.query_one("SELECT status FROM check_state", &[]).await.expect("state").get(0);
    assert_eq!(state, "unknown", "a paused check starts afresh");
}
