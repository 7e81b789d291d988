//! Retention (housekeeping), against real PostgreSQL: old notifications
//! and deliveries go while the ones still needed stay, an old result
//! partition goes without making a concurrent insert wait, and the
//! missed-slots prune reads by index.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sentryk8s::scheduler::housekeeping;
use sentryk8s::scheduler::store::DELETE_MISSED_BEFORE;
use tokio_postgres::Client;

use crate::support::db::{connect, TestDb};

const ME: &str = "housekeeper";
/// 30 days of results, and the defaults of notifications and history.
const RETENTION: housekeeping::Retention = housekeeping::Retention {
    results_days: 30,
    notifications_days: 90,
    hourly_days: 90,
    daily_days: 0,
    incidents_days: 0,
};

/// A migrated database in which `ME` holds partition 0 at epoch 1, as the
/// scheduler that runs housekeeping does.
async fn setup() -> (TestDb, Client) {
    let db = TestDb::migrated_named("sk_retention", 4).await;
    let client = db.client().await;
    client
        .execute(
            "UPDATE partition_leases SET owner = $1, epoch = 1, expires_at = now() + interval '1 hour'
              WHERE partition = 0",
            &[&ME],
        )
        .await
        .expect("take partition 0");
    (db, client)
}

async fn ids(client: &Client, sql: &str) -> BTreeSet<i64> {
    client.query(sql, &[]).await.expect(sql).iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn old_notifications_and_deliveries_are_pruned_and_needed_ones_kept() {
    let (_db, client) = setup().await;
    client
        .batch_execute(
            "INSERT INTO checks (id, name, interval_ms, spec) VALUES (1, 'up-now', 60000, '{}'), (2, 'down-now', 60000, '{}');
             INSERT INTO check_state (check_id, status, incident_id) VALUES (1, 'up', NULL), (2, 'down', 200);
             -- id, check, incident, event, age in days, fanned out
             INSERT INTO notifications (check_id, check_name, incident_id, event, slot, payload, created_at, dispatched_at)
             SELECT c, 'x', inc, ev, now() - age * interval '1 day' - inc * interval '1 second', '{}',
                    now() - age * interval '1 day', CASE WHEN sent THEN now() - age * interval '1 day' END
               FROM (VALUES (1, 100, 'down', 100, true),   -- old, settled: pruned
                            (1, 101, 'down', 10, true),    -- recent: kept
                            (1, 102, 'down', 100, true),   -- old, delivery still pending: kept
                            (1, 103, 'up', 100, false),    -- old, never fanned out: kept
                            (2, 200, 'down', 100, true)    -- old, incident still open: kept
                    ) v(c, inc, ev, age, sent);
             INSERT INTO notification_deliveries (notification_id, check_id, check_name, channel, incident_id, event,
                                                  idempotency_key, payload, status, max_attempts, created_at)
             SELECT n.id, n.check_id, 'x', 'ops', n.incident_id, n.event, 'k-' || n.incident_id, '{}',
                    CASE WHEN n.incident_id = 102 THEN 'pending' ELSE 'sent' END, 3, n.created_at
               FROM notifications n WHERE n.dispatched_at IS NOT NULL;
             -- Reminders have no outbox row: an old failed one goes, a recent one stays.
             INSERT INTO notification_deliveries (notification_id, check_id, check_name, channel, incident_id, event,
                                                  idempotency_key, payload, status, max_attempts, created_at)
             VALUES (NULL, 1, 'x', 'ops', 100, 'reminder', 'r-old', '{}', 'failed', 3, now() - interval '95 days'),
                    (NULL, 1, 'x', 'ops', 101, 'reminder', 'r-new', '{}', 'sent', 3, now() - interval '1 day'),
                    (NULL, 2, 'x', 'ops', 200, 'reminder', 'r-open', '{}', 'sent', 3, now() - interval '95 days');",
        )
        .await
        .expect("seed the outbox");

    housekeeping::run(&client, ME, 1, RETENTION).await.expect("housekeeping");

    let kept = ids(&client, "SELECT incident_id FROM notifications").await;
    assert_eq!(kept, BTreeSet::from([101, 102, 103, 200]), "notifications kept (by incident)");
    let kept: BTreeSet<String> = client
        .query("SELECT idempotency_key FROM notification_deliveries", &[])
        .await
        .expect("deliveries")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: BTreeSet<String> =
        ["k-101", "k-102", "k-200", "r-new", "r-open"].iter().map(|s| s.to_string()).collect();
    assert_eq!(kept, expected, "deliveries kept");
}

/// What a worker's result insert into today's partition meets while a long
/// report (a transaction that has read `check_results`, still open) and a
/// housekeeping run beside it: the insert's outcome within 1 s and how long
/// it waited. The report then ends and the run must finish.
async fn insert_while_housekeeping_runs_beside_a_report(
    db: &TestDb,
) -> (Result<Result<u64, tokio_postgres::Error>, tokio::time::error::Elapsed>, Duration) {
    let mut reader = db.client().await;
    let report = reader.transaction().await.expect("begin");
    report.query_one("SELECT count(*) FROM check_results", &[]).await.expect("read");
    let housekeeper = db.client().await;
    let run = tokio::spawn(async move { housekeeping::run(&housekeeper, ME, 1, RETENTION).await });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let writer = connect(&db.url).await;
    let started = Instant::now();
    let insert = writer.execute(
        "INSERT INTO check_results (check_id, slot, started_at, success, total_ms) VALUES (1, now(), now(), true, 1)",
        &[],
    );
    let inserted = tokio::time::timeout(Duration::from_secs(1), insert).await;
    let waited = started.elapsed();
    report.commit().await.expect("end the report");
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("housekeeping ends once the report is over")
        .expect("housekeeping task")
        .expect("housekeeping");
    (inserted, waited)
}

#[tokio::test]
async fn dropping_an_old_result_partition_never_blocks_inserts() {
    let (db, client) = setup().await;
    client
        .batch_execute(
            "SELECT sentryk8s_ensure_result_partitions((now() AT TIME ZONE 'UTC')::date - 40, 2);
             INSERT INTO check_results (check_id, slot, started_at, success, total_ms)
             VALUES (1, now() - interval '39 days 12 hours', now(), true, 1);",
        )
        .await
        .expect("old partitions");
    let old = "SELECT count(*) FROM pg_class WHERE relname IN (
                   'check_results_' || to_char((now() AT TIME ZONE 'UTC')::date - 40, 'YYYYMMDD'),
                   'check_results_' || to_char((now() AT TIME ZONE 'UTC')::date - 39, 'YYYYMMDD'))";
    let before: i64 = client.query_one(old, &[]).await.expect("count").get(0);
    assert_eq!(before, 2);

    // A worker's result insert into today's partition must not queue
    // behind retention (a plain DROP of a partition takes ACCESS EXCLUSIVE
    // on check_results, and waits for a report with everyone behind it).
    let (inserted, waited) = insert_while_housekeeping_runs_beside_a_report(&db).await;
    assert!(
        matches!(inserted, Ok(Ok(1))),
        "the insert waited {waited:?} behind retention ({inserted:?}); it must not wait for an exclusive lock"
    );
    eprintln!("insert committed in {waited:?} while retention ran");
    // A detach that timed out behind the report is finished by the next run.
    housekeeping::run(&client, ME, 1, RETENTION).await.expect("second housekeeping");
    let after: i64 = client.query_one(old, &[]).await.expect("count").get(0);
    assert_eq!(after, 0, "old result partitions are dropped");
    let pending: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'check_results'::regclass AND inhdetachpending",
            &[],
        )
        .await
        .expect("pending")
        .get(0);
    assert_eq!(pending, 0, "no detach left pending");
    let today: i64 = client
        .query_one("SELECT count(*) FROM check_results WHERE slot > now() - interval '1 hour'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(today, 1, "the concurrent insert is kept");
}

#[tokio::test]
async fn creating_a_result_partition_never_blocks_inserts() {
    let (db, client) = setup().await;
    // The partition housekeeping creates next (a week ahead) is missing.
    let name: String = client
        .query_one(
            "SELECT 'check_results_' || to_char((now() AT TIME ZONE 'UTC')::date + 7, 'YYYYMMDD')",
            &[],
        )
        .await
        .expect("name")
        .get(0);
    client.batch_execute(&format!("DROP TABLE \"{name}\"")).await.expect("drop the last partition");

    // `CREATE TABLE … PARTITION OF` takes ACCESS EXCLUSIVE on
    // check_results: it would wait for the report, and the insert behind it.
    let (inserted, waited) = insert_while_housekeeping_runs_beside_a_report(&db).await;
    assert!(
        matches!(inserted, Ok(Ok(1))),
        "the insert waited {waited:?} behind partition creation ({inserted:?})"
    );
    let attached: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = 'check_results'::regclass",
            &[&name],
        )
        .await
        .expect("attached")
        .get(0);
    assert_eq!(attached, 1, "the partition is created and attached");
    // It takes results like any other: the primary key came with it.
    client
        .execute(
            "INSERT INTO check_results (check_id, slot, started_at, success, total_ms)
             VALUES (1, now() + interval '7 days', now(), true, 1)",
            &[],
        )
        .await
        .expect("insert into the new partition");
    let duplicate = client
        .execute(
            "INSERT INTO check_results (check_id, slot, started_at, success, total_ms)
             SELECT check_id, slot, started_at, success, total_ms FROM check_results WHERE slot > now() + interval '6 days'",
            &[],
        )
        .await;
    assert!(duplicate.is_err(), "the new partition enforces (check_id, slot)");
}

#[tokio::test]
async fn a_detach_interrupted_by_a_crash_is_finalized() {
    let (db, client) = setup().await;
    client
        .batch_execute("SELECT sentryk8s_ensure_result_partitions((now() AT TIME ZONE 'UTC')::date - 40, 1)")
        .await
        .expect("old partition");
    let name: String = client
        .query_one(
            "SELECT 'check_results_' || to_char((now() AT TIME ZONE 'UTC')::date - 40, 'YYYYMMDD')",
            &[],
        )
        .await
        .expect("name")
        .get(0);
    // Leave a detach pending, as a crash during its wait would: a reader
    // keeps it waiting, and the detaching session is cancelled.
    let mut reader = db.client().await;
    let report = reader.transaction().await.expect("begin");
    report.query_one("SELECT count(*) FROM check_results", &[]).await.expect("read");
    let detacher = db.client().await;
    detacher.batch_execute("SET statement_timeout = 300").await.expect("timeout");
    let cut = detacher
        .batch_execute(&format!("ALTER TABLE check_results DETACH PARTITION \"{name}\" CONCURRENTLY"))
        .await;
    assert!(cut.is_err(), "the detach must be interrupted for this test");
    report.commit().await.expect("end the report");
    let pending: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'check_results'::regclass AND inhdetachpending",
            &[],
        )
        .await
        .expect("pending")
        .get(0);
    assert_eq!(pending, 1, "the interrupted detach is pending");

    housekeeping::run(&client, ME, 1, RETENTION).await.expect("housekeeping");
    let left: i64 = client
        .query_one("SELECT count(*) FROM pg_class WHERE relname = $1", &[&name])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "the pending partition is finalized and dropped");
}

#[tokio::test]
async fn missed_slots_prune_uses_an_index() {
    let (_db, client) = setup().await;
    // 200,000 recent records and 500 past retention: the planner reads the
    // 500 by index when there is one, and the whole table otherwise.
    client
        .batch_execute(
            "INSERT INTO missed_slots (check_id, first_slot, last_slot, slots, reason)
             SELECT i % 1000, t, t, 1, 'catch_up'
               FROM generate_series(1, 200000) i,
                    LATERAL (SELECT now() - (i % 1700000) * interval '1 second' AS t) s;
             INSERT INTO missed_slots (check_id, first_slot, last_slot, slots, reason)
             SELECT i, t, t, 1, 'stale'
               FROM generate_series(1, 500) i,
                    LATERAL (SELECT now() - interval '40 days' - i * interval '1 minute' AS t) s;
             ANALYZE missed_slots;",
        )
        .await
        .expect("seed missed_slots");

    let plan: Vec<String> = client
        .query(&format!("EXPLAIN {DELETE_MISSED_BEFORE}"), &[&30f64])
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    eprintln!("{plan}");
    assert!(
        plan.contains("missed_slots_last_slot_idx") && !plan.contains("Seq Scan"),
        "the prune must read by index:\n{plan}"
    );

    housekeeping::run(&client, ME, 1, RETENTION).await.expect("housekeeping");
    let left: i64 = client.query_one("SELECT count(*) FROM missed_slots", &[]).await.expect("count").get(0);
    assert_eq!(left, 200_000, "only the records past retention are pruned");
}
