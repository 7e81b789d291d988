//! History end to end (issue 14): real schedulers and workers run checks
//! against a target whose up/down timeline the test controls, and the
//! `report` and `incidents` commands must tell that timeline back — in
//! time, not samples — with missed slots as no data and maintenance apart.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::support::fleet::Fleet;
use crate::support::target::{Behavior, TestTarget};
use crate::support::worker_bed::{now_ms, WorkerBed};
use crate::support::{eventually, Binary};

/// Seconds between two instants.
fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

fn run_json(args: &[&str], db_url: &str) -> Value {
    let (status, output) = Binary::run(args, &[("SENTRYK8S_DATABASE_URL".into(), db_url.into())]);
    assert!(status.success(), "{args:?} failed: {output}");
    let start = output.find('[').unwrap_or_else(|| panic!("no JSON array in {output}"));
    serde_json::from_str(&output[start..]).unwrap_or_else(|e| panic!("{e}: {output}"))
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap_or_else(|e| panic!("{e}: {v}"))
        .with_timezone(&Utc)
}

fn close(what: &str, got: f64, want: f64, tolerance: f64) {
    assert!((got - want).abs() <= tolerance, "{what}: got {got:.3} s, want {want:.3} s ± {tolerance} s");
}

/// Acceptance 1 and 2: up, down, a scheduler outage, up again, at a 1 s
/// interval. The report's durations match the timeline within one interval
/// per transition; the outage is no data, never down; the incident opens
/// at the first failing slot, is confirmed at the second (threshold 2) and
/// resolves at the first passing one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controlled_timeline_comes_back_as_time_and_one_incident() {
    let target = TestTarget::start(Behavior::default()).await;
    let mut fleet = Fleet::new(4, 1, 3_000, 1_000).await;
    fleet
        .insert_checks(&format!(
            "SELECT 'timeline', 1000, '{{\"url\":\"{}\",\"timeout_ms\":500,\"failure_threshold\":2}}'::jsonb",
            target.url("/")
        ))
        .await;
    fleet.start_worker(0, 8);
    fleet.start_scheduler(0);
    let client = fleet.db.client().await;
    let first_slot = || async {
        client
            .query_one("SELECT min(slot) FROM check_results", &[])
            .await
            .unwrap()
            .get::<_, Option<DateTime<Utc>>>(0)
    };
    assert!(
        eventually(Duration::from_secs(30), || async { first_slot().await.is_some() }).await,
        "no result"
    );
    let start = first_slot().await.unwrap();

    tokio::time::sleep(Duration::from_secs(8)).await;
    let went_down = Utc::now();
    target.set_status(500);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let came_back = Utc::now();
    target.set_status(200);
    tokio::time::sleep(Duration::from_secs(5)).await;

    // The scheduler stops (and releases its leases); nothing is dispatched
    // until its successor owns the partitions again.
    let outage_start = Utc::now();
    let mut scheduler = fleet.schedulers.remove(&0).unwrap();
    scheduler.terminate();
    assert!(scheduler.wait_exit(Duration::from_secs(15)).await.is_some(), "{}", scheduler.output());
    tokio::time::sleep(Duration::from_secs(5)).await;
    fleet.start_scheduler(0);
    assert!(fleet.wait_owned_by(&[0], Duration::from_secs(20)).await.is_some(), "{}", fleet.all_output());
    let outage_end = Utc::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let end = Utc::now();
    // Let the last slots land, then stop everything before reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let output = fleet.all_output();
    fleet.stop_all().await;

    let from = start.to_rfc3339();
    let to = end.to_rfc3339();
    let report = run_json(
        &["report", "--from", &from, "--to", &to, "--check", "timeline", "-o", "json"],
        &fleet.db.url,
    );
    let row = &report[0];
    assert_eq!(row["name"], "timeline", "{report}");
    let up = row["up_seconds"].as_f64().unwrap();
    let down = row["down_seconds"].as_f64().unwrap();
    let no_data = row["no_data_seconds"].as_f64().unwrap();
    let maintenance = row["maintenance_seconds"].as_f64().unwrap();
    let total = secs(start, end);
    let down_want = secs(went_down, came_back);
    let outage_want = secs(outage_start, outage_end);
    eprintln!(
        "timeline: up {up} down {down} no data {no_data} (want down ≈ {down_want:.1}, outage ≈ {outage_want:.1}, total {total:.1}); {row}"
    );
    // Two transitions each: the threshold of 2 confirms one slot late (one
    // interval), and each edge falls somewhere inside a slot (one more).
    close("down", down, down_want, 2.0 + 0.5);
    close("no data", no_data, outage_want, 2.0 + 0.5);
    close("up", up, total - down_want - outage_want, 4.0 + 1.0);
    assert_eq!(maintenance, 0.0);
    assert_eq!(row["incidents"], 1, "{row}");
    let uptime = row["uptime_percent"].as_f64().unwrap();
    close("uptime %", uptime, 100.0 * up / (up + down), 0.01);
    for key in ["p50_ms", "p95_ms", "p99_ms"] {
        assert!(row[key].as_f64().is_some_and(|v| v > 0.0 && v < 500.0), "{key}: {row}");
    }
    let mttr = row["mttr_seconds"].as_f64().unwrap();
    close("mttr", mttr, down_want, 1.5);

    let incidents = run_json(&["incidents", "--check", "timeline", "-o", "json"], &fleet.db.url);
    assert_eq!(incidents.as_array().map(Vec::len), Some(1), "{incidents}\n{output}");
    let incident = &incidents[0];
    let opened = time(&incident["opened_at"]);
    let confirmed = time(&incident["confirmed_at"]);
    let resolved = time(&incident["resolved_at"]);
    close("opened at", secs(went_down, opened), 0.5, 0.6);
    close("confirmed one slot after opened", secs(opened, confirmed), 1.0, 0.01);
    close("resolved at", secs(came_back, resolved), 0.5, 0.6);
    assert_eq!(incident["in_maintenance"], false);
    assert!(incident["first_error"].as_str().is_some_and(|e| e.contains("500")), "{incident}");

    // Hourly and daily rollups agree, and the stored states say why.
    let sums = |table: &str| {
        let sql = format!("SELECT sum(up_ms)::int8, sum(down_ms)::int8, sum(no_data_ms)::int8, sum(runs)::int8 FROM {table}");
        let client = &client;
        async move {
            let r = client.query_one(&sql, &[]).await.unwrap();
            (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2), r.get::<_, i64>(3))
        }
    };
    assert_eq!(sums("rollup_hours").await, sums("rollup_days").await);
    let unstated: i64 =
        client.query_one("SELECT count(*) FROM check_results WHERE state IS NULL", &[]).await.unwrap().get(0);
    assert_eq!(unstated, 0, "every result carries the state it left");
}

/// Acceptance 2: time inside a maintenance window covering the check is
/// maintenance — even while the target fails — and an incident opened
/// there says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_time_is_apart_from_uptime() {
    let target = TestTarget::start(Behavior::default()).await;
    let mut fleet = Fleet::new(4, 1, 3_000, 1_000).await;
    let window_start = Utc::now() + chrono::Duration::seconds(6);
    let window_end = window_start + chrono::Duration::seconds(8);
    let dir = crate::checks_cli::temp_dir();
    let file = dir.join("checks.yaml");
    std::fs::write(
        &file,
        format!(
            "maintenance:
  - name: upgrade
    start: '{}'
    end: '{}'
    checks: [api]
checks:
  - name: api
    url: {}
    interval: 1s
    timeout: 500ms
  - name: other
    url: {}
    interval: 1s
    timeout: 500ms
",
            window_start.to_rfc3339(),
            window_end.to_rfc3339(),
            target.url("/"),
            target.url("/")
        ),
    )
    .unwrap();
    let env = [("SENTRYK8S_DATABASE_URL".to_string(), fleet.db.url.clone())];
    let (status, output) = Binary::run(&["checks", "apply", "-f", file.to_str().unwrap()], &env);
    assert!(status.success(), "{output}");
    fleet.start_worker(0, 8);
    fleet.start_scheduler(0);
    let client = fleet.db.client().await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            client.query_one("SELECT count(*) FROM check_results", &[]).await.unwrap().get::<_, i64>(0) > 0
        })
        .await
    );
    let start = Utc::now();
    // Down inside the window only.
    tokio::time::sleep((window_start - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(1))
        .await;
    target.set_status(503);
    tokio::time::sleep((window_end - Utc::now()).to_std().unwrap_or_default() - Duration::from_secs(1)).await;
    target.set_status(200);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let end = Utc::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    fleet.stop_all().await;
    let _ = std::fs::remove_dir_all(&dir);

    let report = run_json(
        &["report", "--from", &start.to_rfc3339(), "--to", &end.to_rfc3339(), "-o", "json"],
        &fleet.db.url,
    );
    let by_name = |name: &str| {
        report
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{report}"))
    };
    let api = by_name("api");
    let other = by_name("other");
    eprintln!("api {api}\nother {other}");
    close("maintenance", api["maintenance_seconds"].as_f64().unwrap(), secs(window_start, window_end), 2.0);
    assert_eq!(api["down_seconds"], 0.0, "failures inside maintenance are not downtime: {api}");
    assert_eq!(api["uptime_percent"], 100.0, "{api}");
    // The window names only `api`: the same failures are downtime for `other`.
    assert_eq!(other["maintenance_seconds"], 0.0, "{other}");
    close("other down", other["down_seconds"].as_f64().unwrap(), secs(window_start, window_end) - 2.0, 2.5);
    assert!(other["uptime_percent"].as_f64().unwrap() < 100.0);

    let incidents = run_json(&["incidents", "--check", "api", "-o", "json"], &fleet.db.url);
    assert_eq!(incidents.as_array().map(Vec::len), Some(1), "{incidents}");
    assert_eq!(incidents[0]["in_maintenance"], true, "{incidents}");
    let incidents = run_json(&["incidents", "--check", "other", "-o", "json"], &fleet.db.url);
    assert_eq!(incidents[0]["in_maintenance"], false, "{incidents}");
}

/// Acceptance 4: a redelivered job, a duplicate published twice, and a
/// stale copy of a slot that has a result never change a rollup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_and_duplicate_results_never_change_a_rollup() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    let spec = serde_json::json!({"url": target.url("/"), "timeout_ms": 1000});
    let id = bed.add_check("api", &spec).await;
    let worker = bed.spawn_worker(&[]);
    let slot = now_ms();
    let job = WorkerBed::job(id, "api", &spec, slot);
    bed.publish(&job).await;
    let client = bed.db.client().await;
    let stored = || async {
        client.query_one("SELECT count(*) FROM check_results", &[]).await.unwrap().get::<_, i64>(0)
    };
    assert!(
        eventually(Duration::from_secs(20), || async { stored().await == 1 }).await,
        "{}",
        worker.output()
    );
    let snapshot = || async {
        let rows = client
            .query(
                "SELECT 'h', check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                        total_us_sum, latency_histogram::text FROM rollup_hours
                 UNION ALL
                 SELECT 'd', check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                        total_us_sum, latency_histogram::text FROM rollup_days
                 ORDER BY 1, 2, 3",
                &[],
            )
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {} {} {} {} {} {} {}",
                    r.get::<_, &str>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, DateTime<Utc>>(2),
                    r.get::<_, i64>(3),
                    r.get::<_, i64>(4),
                    r.get::<_, i64>(5),
                    r.get::<_, i64>(6),
                    r.get::<_, i32>(7),
                    r.get::<_, i32>(8),
                    r.get::<_, i64>(9),
                    r.get::<_, String>(10)
                )
            })
            .collect::<Vec<_>>()
    };
    let before = snapshot().await;
    assert!(before.iter().any(|r| r.starts_with("h ") && r.contains(" 60000 0 0 0 1 0 ")), "{before:?}");

    // The same job twice more (a redelivery and a duplicate publish), run
    // and written again by the worker; the insert finds the slot taken.
    let requests = target.requests();
    bed.publish(&job).await;
    bed.publish(&job).await;
    assert!(
        eventually(Duration::from_secs(20), || async { target.requests() >= requests + 2 }).await,
        "the duplicates were not run: {}",
        worker.output()
    );
    // And once in the same batch as a new slot, so a batch mixes both.
    let next = WorkerBed::job(id, "api", &spec, slot + chrono::Duration::minutes(1));
    bed.publish(&job).await;
    bed.publish(&next).await;
    assert!(
        eventually(Duration::from_secs(20), || async { stored().await == 2 }).await,
        "{}",
        worker.output()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let queue = bed.broker.topology().queue;
    assert!(eventually(Duration::from_secs(10), || async { bed.depth(&queue).await == 0 }).await);
    let after = snapshot().await;
    let runs: i64 = client.query_one("SELECT sum(runs)::int8 FROM rollup_hours", &[]).await.unwrap().get(0);
    assert_eq!(runs, 2, "two slots ran, however often they were delivered: {after:?}");
    let up: i64 = client.query_one("SELECT sum(up_ms)::int8 FROM rollup_days", &[]).await.unwrap().get(0);
    assert_eq!(up, 120_000, "two slots of one minute: {after:?}");

    // A stale copy of a slot that has a result records nothing either.
    let mut stale = job.clone();
    stale.slot = slot - chrono::Duration::hours(2);
    let mut stale_twice = stale.clone();
    stale_twice.interval_ms = 60_000;
    bed.publish(&stale).await;
    bed.publish(&stale_twice).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            client.query_one("SELECT count(*) FROM missed_slots", &[]).await.unwrap().get::<_, i64>(0) == 1
        })
        .await,
        "{}",
        worker.output()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let no_data: i64 =
        client.query_one("SELECT sum(no_data_ms)::int8 FROM rollup_days", &[]).await.unwrap().get(0);
    assert_eq!(no_data, 60_000, "a stale slot recorded twice counts once");
}

/// The first migrate after an upgrade turns the incidents the outbox and
/// `check_state` already know into rows, with the ids alerts carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_keeps_the_incidents_already_alerted() {
    let db = crate::support::TestDb::empty().await;
    let client = db.client().await;
    // The schema as the previous release left it: migrations 0001–0004.
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (name text PRIMARY KEY, checksum text NOT NULL,
                                             applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .unwrap();
    for m in sentryk8s::migrate::MIGRATIONS.iter().filter(|m| m.name < "0005") {
        client.batch_execute(m.sql).await.unwrap();
        client
            .execute(
                "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                &[&m.name, &m.checksum()],
            )
            .await
            .unwrap();
    }
    client
        .batch_execute(
            "INSERT INTO cluster (partitions) VALUES (4);
             INSERT INTO checks (id, name, interval_ms, spec) VALUES
                 (1, 'api', 1000, '{\"url\":\"http://127.0.0.1:9/\"}'), (2, 'web', 1000, '{\"url\":\"http://127.0.0.1:9/\"}');
             -- Incident 5 of `api`: went down, came back; one alert sent each way.
             INSERT INTO notifications (id, check_id, check_name, incident_id, event, slot, payload) OVERRIDING SYSTEM VALUE VALUES
                 (1, 1, 'api', 5, 'down', '2026-11-01T10:00:00Z', '{\"last_error\": \"HTTP 503\"}'),
                 (2, 1, 'api', 5, 'up', '2026-11-01T10:05:00Z', '{}');
             INSERT INTO notification_deliveries (notification_id, check_id, check_name, channel, incident_id, event,
                                                  idempotency_key, payload, status, max_attempts) VALUES
                 (1, 1, 'api', 'hook', 5, 'down', 'k1', '{}', 'sent', 3),
                 (2, 1, 'api', 'hook', 5, 'up', 'k2', '{}', 'sent', 3);
             -- Incident 7 of `web`: down now, its trigger already pruned.
             INSERT INTO check_state (check_id, status, since, last_slot, consecutive_failures, incident_id,
                                      streak_start, last_error)
                 VALUES (2, 'down', '2026-11-02T08:00:03Z', '2026-11-02T09:00:00Z', 3600, 7,
                         '2026-11-02T08:00:01Z', 'connection refused');",
        )
        .await
        .unwrap();
    let (status, output) = Binary::run(&["migrate"], &[("SENTRYK8S_DATABASE_URL".into(), db.url.clone())]);
    assert!(status.success(), "{output}");
    let rows = client
        .query(
            "SELECT id, check_id, check_name, opened_at, confirmed_at, resolved_at, resolution, first_error,
                    last_error, alerts_sent
               FROM incidents ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let api = &rows[0];
    assert_eq!((api.get::<_, i64>(0), api.get::<_, &str>(2)), (5, "api"));
    assert_eq!(api.get::<_, DateTime<Utc>>(3), t("2026-11-01T10:00:00Z"));
    assert_eq!(api.get::<_, Option<DateTime<Utc>>>(5), Some(t("2026-11-01T10:05:00Z")));
    assert_eq!(api.get::<_, Option<&str>>(6), Some("recovered"));
    assert_eq!(api.get::<_, Option<&str>>(7), Some("HTTP 503"));
    assert_eq!(api.get::<_, i32>(9), 2);
    let web = &rows[1];
    assert_eq!((web.get::<_, i64>(0), web.get::<_, &str>(2)), (7, "web"));
    assert_eq!(web.get::<_, DateTime<Utc>>(3), t("2026-11-02T08:00:01Z"), "opened at the first failing slot");
    assert_eq!(web.get::<_, DateTime<Utc>>(4), t("2026-11-02T08:00:03Z"), "confirmed when it went down");
    assert_eq!(web.get::<_, Option<DateTime<Utc>>>(5), None, "still open");
    assert_eq!(web.get::<_, Option<&str>>(8), Some("connection refused"));
}
