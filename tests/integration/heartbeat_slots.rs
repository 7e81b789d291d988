//! Heartbeat slots through the real worker (RabbitMQ in, PostgreSQL out):
//! each case is a heartbeat check whose pings were received at chosen
//! times before its slot (written as the web role writes them; one case
//! pings through the real `sentryk8s web`), then one job for the slot. The
//! stored result row says up or down and why: on time (timed from its
//! start), late within grace, missed, `fail`, exit codes, a start without
//! an end past `max_run`, a new check before its first deadline, and a
//! cron schedule in a time zone.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use serde_json::{json, Value};

use sentryk8s::heartbeat::schedule::Schedule;

use crate::support::worker_bed::now_ms;
use crate::support::WorkerBed;
use crate::web_auth::request;
use crate::web_bed::Web;

/// Every hour, 10 minutes' grace, runs may take 30 minutes.
fn hourly() -> Value {
    json!({
        "kind": "heartbeat",
        "timeout_ms": 1000,
        "heartbeat": {"period_ms": 3_600_000, "grace_ms": 600_000, "max_run_ms": 1_800_000}
    })
}

/// A heartbeat check watched for a day (its key's `created_at`), so the
/// first deadline is not what decides.
async fn add(bed: &WorkerBed, name: &str, spec: &Value) -> i64 {
    let id = bed.add_check(name, spec).await;
    bed.db
        .client()
        .await
        .execute(
            "UPDATE heartbeat_keys SET created_at = now() - interval '1 day' WHERE check_id = $1",
            &[&id],
        )
        .await
        .expect("backdate the key");
    id
}

/// A ping received `ago` before `slot`, as the web role stores it.
async fn ping(
    bed: &WorkerBed,
    id: i64,
    slot: DateTime<Utc>,
    ago: Span,
    kind: &str,
    exit: Option<i32>,
    rid: Option<&str>,
) {
    bed.db
        .client()
        .await
        .execute(
            "INSERT INTO heartbeat_pings (check_id, received_at, kind, exit_code, rid) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &(slot - ago), &kind, &exit, &rid],
        )
        .await
        .expect("insert ping");
}

/// (success, error_class, error_message, run_ms, total_ms) of a check's only result.
async fn result(bed: &WorkerBed, id: i64) -> (bool, Option<String>, Option<String>, Option<f32>, f32) {
    let row = bed
        .db
        .client()
        .await
        .query_one(
            "SELECT success, error_class, error_message, run_ms, total_ms FROM check_results WHERE check_id = $1",
            &[&id],
        )
        .await
        .expect("one result");
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

fn min(m: i64) -> Span {
    Span::minutes(m)
}

#[tokio::test]
async fn each_slot_is_judged_from_the_pings_before_it() {
    let bed = WorkerBed::new().await;
    let slot = now_ms();
    let spec = hourly();

    let on_time = add(&bed, "on-time", &spec).await;
    ping(&bed, on_time, slot, min(32), "start", None, None).await;
    ping(&bed, on_time, slot, min(30), "success", None, None).await;
    let late = add(&bed, "late-within-grace", &spec).await;
    ping(&bed, late, slot, min(65), "success", None, None).await;
    let missed = add(&bed, "missed", &spec).await;
    ping(&bed, missed, slot, min(71), "success", None, None).await;
    let failed = add(&bed, "failed", &spec).await;
    ping(&bed, failed, slot, min(30), "success", None, None).await;
    ping(&bed, failed, slot, min(1), "fail", None, None).await;
    let exit_bad = add(&bed, "exit-2", &spec).await;
    ping(&bed, exit_bad, slot, min(30), "success", None, None).await;
    ping(&bed, exit_bad, slot, min(1), "exit", Some(2), None).await;
    let exit_ok = add(&bed, "exit-0", &spec).await;
    ping(&bed, exit_ok, slot, min(3), "start", None, Some("r1")).await;
    ping(&bed, exit_ok, slot, min(1), "exit", Some(0), Some("r1")).await;
    let overrun = add(&bed, "overrun", &spec).await;
    ping(&bed, overrun, slot, min(40), "success", None, None).await;
    ping(&bed, overrun, slot, min(31), "start", None, Some("r2")).await;
    let running = add(&bed, "running", &spec).await;
    ping(&bed, running, slot, min(40), "success", None, None).await;
    ping(&bed, running, slot, min(29), "start", None, None).await;
    // New: watched since now, never pinged: not late before its first deadline.
    let new = bed.add_check("new", &spec).await;
    // A ping after the slot does not count for it.
    let after = add(&bed, "after-the-slot", &spec).await;
    ping(&bed, after, slot, min(-1), "success", None, None).await;

    let ids = [on_time, late, missed, failed, exit_bad, exit_ok, overrun, running, new, after];
    let names = [
        "on-time",
        "late-within-grace",
        "missed",
        "failed",
        "exit-2",
        "exit-0",
        "overrun",
        "running",
        "new",
        "after-the-slot",
    ];
    let worker = bed.spawn_worker(&[]);
    for (id, name) in ids.iter().zip(names) {
        bed.publish(&WorkerBed::job(*id, name, &spec, slot)).await;
    }
    let stored = bed
        .wait_for_count("SELECT count(*) FROM check_results", ids.len() as i64, Duration::from_secs(30))
        .await;
    assert!(stored, "results not stored:\n{}", worker.output());

    let (ok, class, message, run_ms, total_ms) = result(&bed, on_time).await;
    assert!(ok && class.is_none() && message.is_none());
    assert_eq!((run_ms, total_ms), (Some(120_000.0), 120_000.0), "timed from its start to its success");
    assert!(result(&bed, late).await.0, "late within grace is up");
    assert!(result(&bed, exit_ok).await.0, "exit code 0 is a success");
    assert_eq!(result(&bed, exit_ok).await.3, Some(120_000.0), "start and end paired by rid");
    assert!(result(&bed, running).await.0, "a run within max_run is up");
    assert!(result(&bed, new).await.0, "a new check is not late before its first deadline");

    let (ok, class, message, _, _) = result(&bed, missed).await;
    assert!(!ok);
    assert_eq!(class.as_deref(), Some("missed"));
    let message = message.unwrap_or_default();
    assert!(message.starts_with("no success ping within 1h + grace 10m; last success ping at "), "{message}");

    let (ok, class, message, _, _) = result(&bed, failed).await;
    assert_eq!((ok, class.as_deref()), (false, Some("failed")));
    assert!(message.unwrap_or_default().contains("(a fail ping at "));
    let (ok, class, message, _, _) = result(&bed, exit_bad).await;
    assert_eq!((ok, class.as_deref()), (false, Some("failed")));
    assert!(message.unwrap_or_default().contains("(exit code 2 at "));

    let (ok, class, message, _, _) = result(&bed, overrun).await;
    assert_eq!((ok, class.as_deref()), (false, Some("overrun")));
    assert!(message.unwrap_or_default().contains("has not ended within max_run 30m"));

    let (ok, class, _, _, _) = result(&bed, after).await;
    assert_eq!((ok, class.as_deref()), (false, Some("missed")), "the ping after the slot is not seen");

    // Down results drive state like any check's.
    let state = bed.state(missed).await.expect("state");
    assert_eq!(state.0, "down");
    worker.terminate();
}

#[tokio::test]
async fn a_cron_schedule_in_a_time_zone_through_the_web_role_and_the_worker() {
    let bed = WorkerBed::new().await;
    let web = Web::start(&bed.db, &[]).await;
    let spec = json!({
        "kind": "heartbeat",
        "timeout_ms": 1000,
        "heartbeat": {"cron": "*/5 * * * *", "time_zone": "Europe/Paris", "grace_ms": 60_000}
    });
    let pinged = add(&bed, "pinged", &spec).await;
    let silent = add(&bed, "silent", &spec).await;
    let key: String = bed
        .db
        .client()
        .await
        .query_one("SELECT key FROM heartbeat_keys WHERE check_id = $1", &[&pinged])
        .await
        .expect("key")
        .get(0);
    // `silent` ran before the last due time (missed); `pinged` pings now,
    // through the real web role (after the due time whose grace has run
    // out by the slot, whenever the test runs).
    let schedule = Schedule::cron("*/5 * * * *", "Europe/Paris").expect("schedule");
    let answer = request(web.addr, "POST", &format!("/ping/{key}"), &[], b"done").await.expect("ping");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let slot = now_ms() + Span::milliseconds(50);
    let due = schedule.due_since(slot, Span::minutes(1)).expect("a due time");
    ping(&bed, silent, due, Span::seconds(1), "success", None, None).await;

    let worker = bed.spawn_worker(&[]);
    bed.publish(&WorkerBed::job(pinged, "pinged", &spec, slot)).await;
    bed.publish(&WorkerBed::job(silent, "silent", &spec, slot)).await;
    let stored = bed.wait_for_count("SELECT count(*) FROM check_results", 2, Duration::from_secs(30)).await;
    assert!(stored, "results not stored:\n{}", worker.output());
    assert!(result(&bed, pinged).await.0, "pinged since {due}");
    let (ok, class, message, _, _) = result(&bed, silent).await;
    assert_eq!((ok, class.as_deref()), (false, Some("missed")));
    let message = message.unwrap_or_default();
    assert!(
        message.contains("(\"*/5 * * * *\" in Europe/Paris) did not report success within grace 1m"),
        "{message}"
    );
    worker.terminate();
}
