//! `sentryk8s rollups rebuild`, the first migrate's backfill and the
//! retention of rollups and incidents, against real PostgreSQL (and, for
//! live upkeep, the real binary running a scheduler and a worker on
//! RabbitMQ against a local target that goes up and down).

use std::time::Duration;

use sentryk8s::scheduler::housekeeping;
use tokio_postgres::Client;

use crate::support::{free_port, Behavior, Binary, TestBroker, TestDb, TestTarget};

/// Every rollup row of both tables, as text, in key order.
async fn rollup_rows(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["rollup_hours", "rollup_days"] {
        let sql = format!(
            "SELECT '{table}' || (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                                  total_us_sum, latency_histogram)::text
               FROM {table} ORDER BY check_id, bucket"
        );
        out.extend(
            client.query(&sql, &[]).await.expect("read rollups").iter().map(|r| r.get::<_, String>(0)),
        );
    }
    out
}

/// The row versions (xmin) of every rollup row: unchanged means unwritten.
async fn row_versions(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["rollup_hours", "rollup_days"] {
        let sql = format!(
            "SELECT check_id::text || bucket::text || xmin::text FROM {table} ORDER BY check_id, bucket"
        );
        out.extend(client.query(&sql, &[]).await.expect("read xmin").iter().map(|r| r.get::<_, String>(0)));
    }
    out
}

/// The cumulative daily totals give what summing the daily rows gives,
/// for yesterday, today and both.
async fn assert_totals_agree(client: &Client, what: &str) {
    use sentryk8s::history::{buckets::Granularity, store};
    let today = chrono::DurationRound::duration_trunc(chrono::Utc::now(), chrono::Duration::days(1)).unwrap();
    let day = chrono::Duration::days(1);
    for (from, to) in [(today - day, today), (today, today + day), (today - day, today + day)] {
        let summed =
            store::sum_rollup_rows(client, Granularity::Day, None, from, to).await.expect("sum rows");
        let totals = store::sum_day_totals(client, None, from, to).await.expect("totals");
        assert_eq!(totals, summed, "{what}: {from} → {to}");
        if to - from > day {
            assert!(!summed.is_empty(), "{what}: rows to compare in {from} → {to}");
        }
    }
}

fn db_env(db: &TestDb) -> Vec<(String, String)> {
    vec![("SENTRYK8S_DATABASE_URL".into(), db.url.clone())]
}

/// Runs `sentryk8s rollups rebuild <args>` off the async threads: (exit code, output).
async fn rebuild(db: &TestDb, args: &[&str]) -> (Option<i32>, String) {
    let env = db_env(db);
    let mut argv: Vec<String> = vec!["rollups".into(), "rebuild".into()];
    argv.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let (status, out) = Binary::run(&argv, &env);
        (status.code(), out)
    })
    .await
    .expect("rebuild task")
}

async fn sum(client: &Client, column: &str) -> i64 {
    let sql = format!("SELECT coalesce(sum({column}), 0)::int8 FROM rollup_hours");
    client.query_one(&sql, &[]).await.expect("sum").get(0)
}

/// Acceptance 3: live upkeep (a scheduler and a worker in `standalone`,
/// with a restart that leaves missed slots, a maintenance window and a
/// target that flaps) writes the rollups; a rebuild running while they are
/// written composes with the writer; and a rebuild after a `DELETE`
/// restores exactly the rows live upkeep wrote, then writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_restores_exactly_what_live_upkeep_wrote_and_composes_with_writers() {
    let db = TestDb::empty_named("sk_rebuild").await;
    let broker = TestBroker::named("sk-rebuild");
    let target = TestTarget::start(Behavior::default()).await;
    let closed = free_port();
    let file = std::env::temp_dir().join(crate::support::unique_name("sk-rebuild")).with_extension("yaml");
    std::fs::write(
        &file,
        format!(
            "maintenance:
  - name: always
    time_zone: UTC
    start: {start}
    end: {end}
    checks: [flaky-in-maintenance]
defaults:
  interval: 1s
  timeout: 500ms
checks:
  - name: flaky
    url: {url}
    failure_threshold: 2
    success_threshold: 2
  - name: closed
    url: http://127.0.0.1:{closed}/
  - name: flaky-in-maintenance
    url: {url}
",
            url = target.url("/"),
            start = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d %H:%M"),
            end = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d %H:%M"),
        ),
    )
    .expect("write the checks file");

    // A short catch-up: the restart below leaves slots recorded missed.
    let mut env = broker.env();
    env.extend(db_env(&db));
    env.push(("SENTRYK8S_SCHEDULER__CATCH_UP".into(), "1s".into()));
    let start = || {
        let listen = format!("127.0.0.1:{}", free_port());
        Binary::spawn(
            &[
                "--listen",
                &listen,
                "standalone",
                "--web-listen",
                "127.0.0.1:0",
                "-f",
                file.to_str().expect("utf-8 path"),
            ],
            &env,
        )
    };
    let target = std::sync::Arc::new(target);
    let flapping = {
        let t = target.clone();
        tokio::spawn(async move {
            for i in 0u32.. {
                t.set_status(if i % 2 == 0 { 200 } else { 500 });
                tokio::time::sleep(Duration::from_millis(2_300)).await;
            }
        })
    };
    let client = db.client().await;

    let mut first = start();
    assert!(first.wait_for_output("applied migration", Duration::from_secs(30)).await, "{}", first.output());
    tokio::time::sleep(Duration::from_secs(7)).await;
    first.terminate();
    assert_eq!(
        first.wait_exit(Duration::from_secs(25)).await.and_then(|s| s.code()),
        Some(0),
        "{}",
        first.output()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut second = start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Rollups lost while the writers run: a rebuild now races them.
    client.batch_execute("DELETE FROM rollup_hours; DELETE FROM rollup_days").await.expect("delete");
    let (code, out) = rebuild(&db, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("created"), "{out}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    second.terminate();
    assert_eq!(
        second.wait_exit(Duration::from_secs(25)).await.and_then(|s| s.code()),
        Some(0),
        "{}",
        second.output()
    );
    flapping.abort();

    // What the test relies on actually happened.
    let missed: i64 = client.query_one("SELECT count(*) FROM missed_slots", &[]).await.unwrap().get(0);
    assert!(missed > 0, "the restart left missed slots");
    for column in ["up_ms", "down_ms", "no_data_ms", "maintenance_ms", "runs", "failures"] {
        assert!(sum(&client, column).await > 0, "{column} is counted somewhere");
    }

    // Quiet now: the rebuild that raced the writers left the rows right.
    let live = rollup_rows(&client).await;
    let (code, out) = rebuild(&db, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("already right: nothing written"), "the concurrent rebuild composed: {out}");
    assert_eq!(rollup_rows(&client).await, live);
    assert_totals_agree(&client, "after live upkeep and a rebuild racing it").await;

    // Deleted on a quiet database: restored exactly.
    client.batch_execute("DELETE FROM rollup_hours; DELETE FROM rollup_days").await.expect("delete");
    let (code, out) = rebuild(&db, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("fixed {} rows: {} created", live.len(), live.len())), "{out}");
    assert_eq!(rollup_rows(&client).await, live, "the rows live upkeep wrote");
    assert_totals_agree(&client, "after restoring deleted rollups").await;

    // And again: nothing to write, no row version changes.
    let versions = row_versions(&client).await;
    let (code, out) = rebuild(&db, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("already right: nothing written"), "{out}");
    assert_eq!(row_versions(&client).await, versions, "no row was written");

    // One check at a time: its rows only.
    let flaky = client
        .execute(
            "UPDATE rollup_hours SET up_ms = up_ms + 1 WHERE check_id = (SELECT id FROM checks WHERE name = 'flaky')",
            &[],
        )
        .await
        .expect("damage");
    let closed = client
        .execute(
            "UPDATE rollup_days SET runs = runs + 1 WHERE check_id = (SELECT id FROM checks WHERE name = 'closed')",
            &[],
        )
        .await
        .expect("damage");
    let (code, out) = rebuild(&db, &["--check", "flaky"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("across 1 check\nfixed {flaky} row")), "{out}");
    let (_, out) = rebuild(&db, &["--check", "closed", "--check", "flaky"]).await;
    assert!(out.contains(&format!("across 2 checks\nfixed {closed} row")), "{out}");
    assert!(out.contains(&format!("0 created, {closed} corrected, 0 deleted")), "{out}");
    assert_eq!(rollup_rows(&client).await, live);
    assert_totals_agree(&client, "after correcting damaged rows").await;
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn bad_input_exits_2_and_writes_nothing() {
    let db = TestDb::migrated_named("sk_rebuild", 4).await;
    let (code, out) = rebuild(&db, &["--from", "2000-01-01"]).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("oldest UTC day whose raw results are all still stored"), "{out}");
    assert!(out.contains("results.retention_days = 30"), "{out}");
    let (code, out) = rebuild(&db, &["--check", "nope"]).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no check is named `nope`"), "{out}");
    let (code, out) = rebuild(&db, &["--to", "soon"]).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("`soon` is neither an RFC 3339 time"), "{out}");
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let (code, out) = rebuild(&db, &["--from", &yesterday]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("already right: nothing written"), "{out}");
}

/// Applies migrations 0001–0004 only, as an install before history.
async fn migrated_before_history(db: &TestDb) -> Client {
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (name text PRIMARY KEY, checksum text NOT NULL,
                                             applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .expect("schema_migrations");
    for m in &sentryk8s::migrate::MIGRATIONS[..4] {
        client.batch_execute(m.sql).await.expect(m.name);
        client
            .execute(
                "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                &[&m.name, &m.checksum()],
            )
            .await
            .expect("record");
    }
    assert_eq!(sentryk8s::migrate::MIGRATIONS[4].name, "0005_history.sql");
    client
        .batch_execute(
            "INSERT INTO cluster (partitions) VALUES (4);
             SELECT sentryk8s_ensure_result_partitions((now() AT TIME ZONE 'UTC')::date - 3, 5);",
        )
        .await
        .expect("cluster");
    client
}

#[tokio::test]
async fn the_first_migrate_fills_the_rollups_from_the_stored_results() {
    let db = TestDb::empty_named("sk_backfill").await;
    let client = migrated_before_history(&db).await;
    // As a worker and a scheduler of 0004 stored them: no state, no interval.
    client
        .batch_execute(
            "INSERT INTO checks (id, name, interval_ms, spec) VALUES (1, 'a', 60000, '{}'), (2, 'b', 30000, '{}');
             -- a: 30 results from yesterday 23:45 (crossing midnight), every 3rd failing.
             INSERT INTO check_results (check_id, slot, started_at, success, total_ms)
             SELECT 1, s, s, k % 3 <> 0, 10 + k
               FROM generate_series(0, 29) k,
                    LATERAL (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                                    - interval '15 minutes' + k * interval '1 minute' AS s) t;
             -- b: 10 results today, and a result of a check deleted since (no interval known: skipped).
             INSERT INTO check_results (check_id, slot, started_at, success, total_ms)
             SELECT c, s, s, true, 5
               FROM (VALUES (2), (99)) v(c), generate_series(0, 9) k,
                    LATERAL (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                                    + k * interval '30 seconds' AS s) t;
             -- 5 missed slots of b after its results.
             INSERT INTO missed_slots (check_id, first_slot, last_slot, slots, reason)
             SELECT 2, d + interval '5 minutes', d + interval '7 minutes', 5, 'catch_up'
               FROM (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS d) t;",
        )
        .await
        .expect("seed the raw data");

    let (status, out) = Binary::run(&["migrate"], &db_env(&db));
    assert!(status.success(), "{out}");
    assert!(out.contains("applied 0005_history.sql"), "{out}");
    assert!(out.contains("rollups filled from the stored results"), "{out}");

    let day = |check: i64| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT coalesce(sum(up_ms), 0)::int8, coalesce(sum(down_ms), 0)::int8,
                            coalesce(sum(no_data_ms), 0)::int8, coalesce(sum(runs), 0)::int8,
                            coalesce(sum(failures), 0)::int8
                       FROM rollup_days WHERE check_id = $1",
                    &[&check],
                )
                .await
                .map(|r| {
                    (
                        r.get::<_, i64>(0),
                        r.get::<_, i64>(1),
                        r.get::<_, i64>(2),
                        r.get::<_, i64>(3),
                        r.get::<_, i64>(4),
                    )
                })
                .expect("day rows")
        }
    };
    // Old rows count by their own outcome, over the check's interval.
    assert_eq!(day(1).await, (20 * 60_000, 10 * 60_000, 0, 30, 10));
    assert_eq!(day(2).await, (10 * 30_000, 0, 5 * 30_000, 10, 0));
    assert_eq!(day(99).await, (0, 0, 0, 0, 0), "the deleted check's rows have no interval");
    let days: i64 =
        client.query_one("SELECT count(*) FROM rollup_days WHERE check_id = 1", &[]).await.unwrap().get(0);
    assert_eq!(days, 2, "yesterday's and today's rows");

    // What a rebuild computes is what the backfill wrote; a second
    // migrate writes nothing either.
    let versions = row_versions(&client).await;
    let (code, out) = rebuild(&db, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("already right: nothing written"), "{out}");
    let (status, out) = Binary::run(&["migrate"], &db_env(&db));
    assert!(status.success(), "{out}");
    assert!(!out.contains("rollups filled"), "{out}");
    assert_eq!(row_versions(&client).await, versions);
}

#[tokio::test]
async fn retention_deletes_old_hourly_rows_and_keeps_daily_rows_and_incidents_by_default() {
    let db = TestDb::migrated_named("sk_rollup_retention", 4).await;
    let client = db.client().await;
    client
        .batch_execute(
            "UPDATE partition_leases SET owner = 'keeper', epoch = 1, expires_at = now() + interval '1 hour'
              WHERE partition = 0;
             INSERT INTO rollup_hours (check_id, bucket, up_ms, latency_histogram)
             SELECT 1, date_trunc('hour', now()) - d * interval '1 day', 1000, array_fill(0, ARRAY[40])
               FROM unnest(ARRAY[400, 100, 91, 89, 10, 0]) d;
             INSERT INTO rollup_days (check_id, bucket, up_ms, latency_histogram)
             SELECT 1, date_trunc('day', now()) - d * interval '1 day', 1000, array_fill(0, ARRAY[40])
               FROM unnest(ARRAY[400, 100, 10]) d;
             INSERT INTO incidents (id, check_id, check_name, opened_at, confirmed_at, resolved_at, resolution)
             VALUES (1, 1, 'a', now() - interval '500 days', now() - interval '500 days',
                     now() - interval '400 days', 'recovered'),
                    (2, 1, 'a', now() - interval '500 days', now() - interval '500 days', NULL, NULL),
                    (3, 1, 'a', now() - interval '20 days', now() - interval '20 days',
                     now() - interval '19 days', 'recovered');",
        )
        .await
        .expect("seed");
    let ages = |table: &'static str| {
        let client = &client;
        async move {
            let sql = format!(
                "SELECT floor(extract(epoch FROM now() - bucket) / 86400)::int8 FROM {table} ORDER BY bucket"
            );
            client
                .query(&sql, &[])
                .await
                .expect("ages")
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect::<Vec<_>>()
        }
    };
    let incidents = || async {
        client
            .query("SELECT id FROM incidents ORDER BY id", &[])
            .await
            .expect("ids")
            .iter()
            .map(|r| r.get::<_, i64>(0))
            .collect::<Vec<_>>()
    };

    let config = sentryk8s::config::Config::defaults().expect("defaults");
    let defaults = housekeeping::Retention::of(&config);
    assert_eq!((defaults.hourly_days, defaults.daily_days, defaults.incidents_days), (90, 0, 0));
    let done = housekeeping::run(&client, "keeper", 1, defaults).await.expect("housekeeping");
    assert_eq!((done.hourly, done.daily, done.incidents), (3, 0, 0));
    assert_eq!(ages("rollup_hours").await, vec![89, 10, 0]);
    assert_eq!(ages("rollup_days").await, vec![400, 100, 10], "daily rows are kept forever by default");
    assert_eq!(incidents().await, vec![1, 2, 3]);

    let year = housekeeping::Retention { daily_days: 365, incidents_days: 365, ..defaults };
    let done = housekeeping::run(&client, "keeper", 1, year).await.expect("housekeeping");
    assert_eq!((done.hourly, done.daily, done.incidents), (0, 1, 1));
    assert_eq!(ages("rollup_days").await, vec![100, 10]);
    assert_eq!(incidents().await, vec![2, 3], "an open incident stays whatever its age");
}
