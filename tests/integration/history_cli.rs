//! `sentryk8s report` and `sentryk8s incidents` through the real binary,
//! over history the test writes the way the worker and the scheduler do:
//! results with the state they left and their interval, a missed range,
//! the hourly and daily rollups counted by `history::rollup` from the same
//! facts, incident rows. The timeline is the worked example of
//! docs/history.md: one hour at a 1-minute interval, 50 slots up, 5 down,
//! 3 missed, 2 inside a maintenance window.

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::Value;

use crate::checks_cli::{sentryk8s, temp_dir, Run};
use crate::support::TestDb;
use sentryk8s::history::buckets::{from_ms, to_ms};
use sentryk8s::history::rollup::{self, MissedFact, ResultFact, Rollups};
use sentryk8s::history::{store, uptime};

const TOKEN: &str = "tok-S3CRET-9";

/// The declared checks and the maintenance window over slots 28 and 29 of
/// the timeline (written in by [`checks_file`]).
fn checks_file(base: DateTime<Utc>) -> String {
    let at = |m: i64| (base + Duration::minutes(m)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!(
        "checks:
  - name: api
    url: http://127.0.0.1:18080/health
    labels: {{ team: web }}
  - name: idle
    url: http://127.0.0.1:18080/idle
    labels: {{ team: ops }}
  - name: private
    url: http://127.0.0.1:18080/private
    headers:
      X-Api-Key: \"${{API_TOKEN}}\"
maintenance:
  - name: deploy
    start: {}
    end: {}
    checks: [api]
",
        at(28),
        at(30)
    )
}

/// 10:00 UTC two days ago: inside the raw retention (30 days by default)
/// and the hourly one, outside a 1-day raw retention.
fn base() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::days(1)).unwrap() - Duration::days(2) + Duration::hours(10)
}

struct Bed {
    db: TestDb,
    dir: std::path::PathBuf,
    base: DateTime<Utc>,
    api: i64,
}

impl Bed {
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut env = env.to_vec();
        env.push(("API_TOKEN", TOKEN));
        sentryk8s(Some(&self.db), &self.dir, args, &env, "")
    }

    fn json(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let run = self.run(args, env);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.all());
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", run.stdout))
    }

    fn at(&self, minutes: i64) -> String {
        (self.base + Duration::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// Declares the checks and writes the timeline of `api` (slot k at
/// base + k minutes):
/// - 0..20 up (100 ms), 20..25 down, 25..28 missed (one range), 28..30 down
///   inside the maintenance window, 30..60 up (100 ms);
/// - its incident: opened at slot 20, resolved at slot 25;
/// - an older incident 20 days ago (10 minutes), of no window of interest;
/// - an open incident of `private` whose error echoes its token, and one of
///   a deleted check.
async fn bed() -> Bed {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    let base = base();
    std::fs::write(dir.join("c.yaml"), checks_file(base)).unwrap();
    let bed = Bed { db, dir, base, api: 0 };
    let run = bed.run(&["checks", "apply", "-f", "c.yaml"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let client = bed.db.client().await;
    let id = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one("SELECT id FROM checks WHERE name = $1", &[&name])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let (api, private) = (id("api").await, id("private").await);
    client
        .execute("SELECT sentryk8s_ensure_result_partitions(($1::timestamptz)::date, 2)", &[&base])
        .await
        .unwrap();

    // What the worker and scheduler would write, and what they would add to
    // the rollups (the maintenance rule of live upkeep: the window covering
    // the check at the slot's start).
    let mut config = sentryk8s::config::Config::defaults().unwrap();
    config.database_url = bed.db.url.clone();
    let pool = sentryk8s::db::pool(&config, "test").unwrap();
    let pooled = pool.get().await.unwrap();
    let windows = store::load_windows(&pooled).await.unwrap();
    let labels = [("team".to_string(), "web".to_string())].into_iter().collect();
    let mut rollups = Rollups::new();
    for k in (0..60).filter(|k| !(25..28).contains(k)) {
        let slot = base + Duration::minutes(k);
        let success = !(20..30).contains(&k);
        let state = if success { "up" } else { "down" };
        let total_ms: f32 = if success { 100.0 } else { 5000.0 };
        let error = (!success).then_some("HTTP 503");
        client
            .execute(
                "INSERT INTO check_results (check_id, slot, started_at, success, error_message, total_ms, state,
                                            interval_ms)
                 VALUES ($1, $2, $2, $3, $4, $5, $6, 60000)",
                &[&api, &slot, &success, &error, &total_ms, &state],
            )
            .await
            .unwrap();
        let category = uptime::of_result(Some(state), success, windows.covers("api", &labels, slot));
        let fact = ResultFact {
            check_id: api,
            slot_ms: to_ms(slot),
            interval_ms: 60_000,
            category,
            success,
            total_ms,
        };
        rollup::add_result(&mut rollups, &fact);
    }
    let first = base + Duration::minutes(25);
    let last = base + Duration::minutes(27);
    client
        .execute(
            "INSERT INTO missed_slots (check_id, first_slot, last_slot, slots, reason, interval_ms)
             VALUES ($1, $2, $3, 3, 'catch_up', 60000)",
            &[&api, &first, &last],
        )
        .await
        .unwrap();
    let fact = MissedFact {
        check_id: api,
        first_ms: to_ms(first),
        last_ms: to_ms(last),
        slots: 3,
        interval_ms: 60_000,
    };
    let covered = |slot: i64| windows.covers("api", &labels, from_ms(slot));
    rollup::add_missed(&mut rollups, &fact, Some(&covered));
    store::upsert_rollups(&pooled, &rollups).await.unwrap();

    let now = Utc::now();
    client
        .execute(
            "INSERT INTO incidents (id, check_id, check_name, opened_at, confirmed_at, resolved_at, resolution,
                                    first_error, last_error, in_maintenance, alerts_sent)
             VALUES (1, $1, 'api', $2, $2, $3, 'recovered', 'HTTP 503', 'HTTP 503', false, 2),
                    (3, $1, 'api', $4, $4, $5, 'recovered', 'timeout', 'timeout', false, 1),
                    (4, $6, 'private', $7, $8, NULL, NULL, 'HTTP 401 for key tok-S3CRET-9',
                     'HTTP 401 for key tok-S3CRET-9', false, 1),
                    (5, 999999, 'gone', $7, $7, NULL, NULL, 'token gone-S3CRET-0', 'token gone-S3CRET-0', false, 0)",
            &[
                &api,
                &(base + Duration::minutes(20)),
                &(base + Duration::minutes(25)),
                &(now - Duration::days(20)),
                &(now - Duration::days(20) + Duration::minutes(10)),
                &private,
                &(now - Duration::hours(1)),
                &(now - Duration::hours(1) + Duration::minutes(2)),
            ],
        )
        .await
        .unwrap();
    Bed { api, ..bed }
}

fn row<'a>(report: &'a Value, name: &str) -> &'a Value {
    report
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {report}"))
}

fn seconds(r: &Value) -> [f64; 4] {
    ["up_seconds", "down_seconds", "no_data_seconds", "maintenance_seconds"].map(|k| r[k].as_f64().unwrap())
}

#[tokio::test]
async fn report_json_counts_the_timeline_exactly() {
    let bed = bed().await;
    let (from, to) = (bed.at(0), bed.at(120));
    let report = bed.json(&["report", "--from", &from, "--to", &to, "-o", "json"], &[]);
    let names: Vec<&str> = report.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["api", "idle", "private"], "every declared check has a row, by name");

    let api = row(&report, "api");
    assert_eq!(api["granularity"], "raw", "{api}");
    assert_eq!((api["from"].as_str(), api["to"].as_str()), (Some(from.as_str()), Some(to.as_str())));
    assert_eq!(seconds(api), [3000.0, 300.0, 180.0, 120.0], "{api}");
    assert!((api["uptime_percent"].as_f64().unwrap() - 90.909_090_909).abs() < 1e-6, "{api}");
    assert_eq!((api["runs"].as_i64(), api["failures"].as_i64()), (Some(57), Some(7)));
    assert_eq!(api["incidents"], 1);
    assert_eq!(api["mttr_seconds"], 300.0);
    assert_eq!(api["longest_outage_seconds"], 300.0);
    for p in ["p50_ms", "p95_ms", "p99_ms"] {
        // 50 successful runs of 100 ms: the bucket [90.5, 128), whose top
        // the highest rank reaches.
        let v = api[p].as_f64().unwrap();
        assert!((90.5..=128.0).contains(&v), "{p} = {v}");
    }
    assert_eq!(api["mean_ms"], 100.0);

    // No data at all: nothing to judge, which is neither 0 % nor 100 %.
    let idle = row(&report, "idle");
    assert_eq!(idle["uptime_percent"], Value::Null, "{idle}");
    assert_eq!(seconds(idle), [0.0; 4]);
    assert_eq!((idle["p50_ms"].clone(), idle["mttr_seconds"].clone()), (Value::Null, Value::Null));
    assert_eq!(idle["incidents"], 0);
    for key in [
        "name",
        "uptime_percent",
        "up_seconds",
        "down_seconds",
        "no_data_seconds",
        "maintenance_seconds",
        "incidents",
        "mttr_seconds",
        "longest_outage_seconds",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "granularity",
    ] {
        assert!(idle.get(key).is_some(), "{key} missing: {idle}");
    }

    // A window inside the timeline is clipped exactly: it starts half-way
    // through slot 10 (whose earlier half is outside) and ends at slot 40.
    let clipped = bed.json(&["report", "--from", &bed.at(10), "--to", &bed.at(40), "-o", "json"], &[]);
    let api = row(&clipped, "api");
    assert_eq!(seconds(api), [1200.0, 300.0, 180.0, 120.0], "{api}");
    assert_eq!(api["runs"], 27);
    let half = (bed.base + Duration::seconds(630)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let clipped = bed.json(&["report", "--from", &half, "--to", &bed.at(40), "-o", "json"], &[]);
    assert_eq!(seconds(row(&clipped, "api")), [1170.0, 300.0, 180.0, 120.0]);
    assert_eq!(row(&clipped, "api")["runs"], 26, "slot 10 started before the window");
}

#[tokio::test]
async fn raw_and_hourly_answers_agree_and_long_windows_come_from_daily_rollups() {
    let bed = bed().await;
    let (from, to) = (bed.at(0), bed.at(120));
    let args = ["report", "--from", &from, "--to", &to, "-o", "json"];
    let raw = bed.json(&args, &[]);
    // With a 1-day raw retention the same window is past it: hourly rollups.
    let hourly = bed.json(&args, &[("SENTRYK8S_RESULTS__RETENTION_DAYS", "1")]);
    assert_eq!(row(&hourly, "api")["granularity"], "hour");
    let strip = |v: &Value| {
        let mut v = v.clone();
        for r in v.as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("granularity");
        }
        v
    };
    assert_eq!(strip(&raw), strip(&hourly));

    // Raw results past their retention are gone: 30 days come from the
    // daily rollups, whole days, up to now.
    let client = bed.db.client().await;
    client.batch_execute("DELETE FROM check_results; DELETE FROM missed_slots").await.unwrap();
    let daily =
        bed.json(&["report", "--since", "30d", "-o", "json"], &[("SENTRYK8S_RESULTS__RETENTION_DAYS", "1")]);
    let api = row(&daily, "api");
    assert_eq!(api["granularity"], "day", "{api}");
    assert!(api["from"].as_str().unwrap().ends_with("T00:00:00Z"), "{api}");
    assert_eq!(seconds(api), [3000.0, 300.0, 180.0, 120.0], "{api}");
    assert_eq!(api["incidents"], 2, "the one of the timeline and the one 20 days ago");
    assert_eq!(api["longest_outage_seconds"], 600.0);
    assert_eq!(api["mttr_seconds"], 450.0);

    // The table names the data and the window it answered.
    let run = bed.run(&["report", "--since", "30d"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("UPTIME"), "{}", run.stdout);
    assert!(
        lines[1].starts_with("api ") && lines[1].contains("90.909%") && lines[1].contains("50m 0s"),
        "{}",
        run.stdout
    );
    assert!(lines[2].starts_with("idle ") && lines[2].contains(" - "), "{}", run.stdout);
    let note = lines.last().unwrap();
    assert!(note.starts_with("from daily rollups: ") && note.ends_with("T00:00:00Z – now"), "{}", run.stdout);
}

#[tokio::test]
async fn filters_select_checks_by_name_and_label_and_csv_quotes_names() {
    let bed = bed().await;
    let names = |v: &Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
    };
    let web = bed.json(&["report", "-l", "team=web", "-o", "json"], &[]);
    assert_eq!(names(&web), ["api"]);
    let two = bed.json(&["report", "--check", "private", "--check", "idle", "-o", "json"], &[]);
    assert_eq!(names(&two), ["idle", "private"]);
    let none = bed.json(&["report", "--check", "api", "-l", "team=ops", "-o", "json"], &[]);
    assert_eq!(names(&none), Vec::<String>::new());

    // Names from a checks file cannot hold a comma or a quote; the CSV must
    // not break on any stored name all the same.
    let client = bed.db.client().await;
    client
        .execute(
            "INSERT INTO checks (name, interval_ms, spec) SELECT 'legacy, \"eu\"', interval_ms, spec FROM checks WHERE id = $1",
            &[&bed.api],
        )
        .await
        .unwrap();
    let run = bed.run(&["report", "--from", &bed.at(0), "--to", &bed.at(120), "-o", "csv"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0]
        .starts_with("name,uptime_percent,up_seconds,down_seconds,no_data_seconds,maintenance_seconds,"));
    assert!(lines[0].contains(",granularity,from,to"), "{}", lines[0]);
    assert!(lines[1].starts_with("api,90.9090909090909"), "{}", run.stdout);
    assert!(lines[1].contains(",3000,300,180,120,1,300,300,"), "{}", run.stdout);
    assert!(lines[3].starts_with("\"legacy, \"\"eu\"\"\",,0,0,0,0,0,,,,,,,0,0,raw,"), "{}", run.stdout);
    assert_eq!(lines.len(), 5, "{}", run.stdout);
}

#[tokio::test]
async fn incidents_list_filters_and_masks_errors() {
    let bed = bed().await;
    let ids =
        |v: &Value| -> Vec<i64> { v.as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect() };
    let all = bed.json(&["incidents", "-o", "json"], &[]);
    assert_eq!(ids(&all), [5, 4, 1, 3], "newest first: {all}");
    let first = all.as_array().unwrap().iter().find(|i| i["id"] == 1).unwrap();
    assert_eq!(first["check"], "api");
    assert_eq!(first["opened_at"], bed.at(20));
    assert_eq!(first["confirmed_at"], bed.at(20));
    assert_eq!(first["resolved_at"], bed.at(25));
    assert_eq!(first["resolution"], "recovered");
    assert_eq!(first["first_error"], "HTTP 503");
    assert_eq!(first["last_error"], "HTTP 503");
    assert_eq!(first["in_maintenance"], false);
    assert_eq!(first["alerts_sent"], 2);
    assert_eq!(first["duration_seconds"], 300.0);

    assert_eq!(ids(&bed.json(&["incidents", "--open", "-o", "json"], &[])), [5, 4]);
    let open = bed.json(&["incidents", "--open", "-o", "json"], &[]);
    assert_eq!(open[1]["resolved_at"], Value::Null);
    assert_eq!(ids(&bed.json(&["incidents", "--check", "api", "-o", "json"], &[])), [1, 3]);
    assert_eq!(ids(&bed.json(&["incidents", "--since", "7d", "-o", "json"], &[])), [5, 4, 1]);
    assert_eq!(ids(&bed.json(&["incidents", "--check", "api", "--since", "7d", "-o", "json"], &[])), [1]);
    // A deleted check's incidents stay listed under its name.
    assert_eq!(ids(&bed.json(&["incidents", "--check", "gone", "-o", "json"], &[])), [5]);

    let run = bed.run(&["incidents"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.all());
    assert!(run.stdout.lines().next().unwrap().starts_with("ID"), "{}", run.stdout);
    assert!(run.stdout.ends_with("4 incidents, 2 open\n"), "{}", run.stdout);

    // The error a target echoed the check's key into is masked; the error
    // of a check no longer declared (whose secrets are unknown) is hidden.
    let mut everything = String::new();
    for args in [&["incidents"][..], &["incidents", "-o", "json"], &["incidents", "--check", "private"]] {
        everything.push_str(&bed.run(args, &[]).all());
    }
    assert!(!everything.contains(TOKEN) && !everything.contains("gone-S3CRET-0"), "{everything}");
    assert!(everything.contains("HTTP 401 for key ***"), "{everything}");
    assert!(everything.contains("(hidden: the check is no longer declared)"), "{everything}");
}

#[tokio::test]
async fn bad_input_exits_2_naming_what_was_wrong() {
    let bed = bed().await;
    let cases: &[(&[&str], &str)] = &[
        (&["report", "--since", "soon"], "--since: invalid duration \"soon\""),
        (&["report", "--since", "0s"], "--since: \"0s\" is an empty window"),
        (
            &["report", "--from", "yesterday", "--to", "2026-01-01T00:00:00Z"],
            "--from: \"yesterday\" is not an RFC 3339 time",
        ),
        (
            &["report", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01"],
            "--to: \"2026-01-01\" is not an RFC 3339 time",
        ),
        (
            &["report", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"],
            "the window is empty",
        ),
        (&["report", "-l", "team"], "--label: \"team\" is not key=value"),
        (
            &["report", "--check", "api", "--check", "nope", "--check", "nada"],
            "no check named \"nada\", \"nope\"",
        ),
        (&["incidents", "--check", "nope"], "no check named \"nope\""),
        (&["incidents", "--since", "a week"], "--since: invalid duration \"a week\""),
    ];
    for (args, message) in cases {
        let run = bed.run(args, &[]);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.all());
        assert!(run.stderr.contains(message), "{args:?}: expected {message:?} in {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
    // clap's own usage errors share the exit status.
    let run = bed.run(&["report", "--since", "1d", "--from", "2026-01-01T00:00:00Z"], &[]);
    assert_eq!(run.code, Some(2), "{}", run.all());
}

#[tokio::test]
async fn bars_have_every_bucket_in_order_zero_where_nothing_was_counted() {
    let bed = bed().await;
    let client = bed.db.client().await;
    let (from, to) = (bed.base - Duration::minutes(30), bed.base + Duration::hours(2));
    let bars = sentryk8s::history::report::bars(
        &client,
        &[bed.api, 999_999],
        from,
        to,
        sentryk8s::history::buckets::Granularity::Hour,
    )
    .await
    .unwrap();
    let api = &bars[&bed.api];
    let starts: Vec<DateTime<Utc>> = api.iter().map(|(b, _)| *b).collect();
    assert_eq!(starts, [bed.base - Duration::hours(1), bed.base, bed.base + Duration::hours(1)]);
    let d = api[1].1.durations;
    assert_eq!([d.up_ms, d.down_ms, d.no_data_ms, d.maintenance_ms], [3_000_000, 300_000, 180_000, 120_000]);
    assert_eq!((api[1].1.runs, api[1].1.failures), (57, 7));
    assert!(api[0].1.is_zero() && api[2].1.is_zero());
    assert_eq!(bars[&999_999].len(), 3);
    assert!(bars[&999_999].iter().all(|(_, t)| t.is_zero()));
}
