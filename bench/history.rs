//! History read benchmark (issue 14, "fast enough to serve pages"): at
//! 10,000 checks with 90 days of daily rollups and 7 days of hourly
//! rollups, how long the two reads a status page or the web role makes
//! take, through the real API (`sentryk8s::history::report`):
//!
//! (a) a 30-day report of every check (`report::report`, answered from the
//!     cumulative daily totals: two totals rows and today's daily row per
//!     check);
//! (b) the 90 daily bars of 100 checks (`report::bars`).
//!
//! and, for scale, (c) a 7-day report of every check (answered from the
//! hourly rollups, 168 rows per check), and for comparison (a′) the sums
//! of (a) as they were read before the totals existed: the 31 daily rows
//! per check summed in SQL (`store::sum_rollup_rows`, the sums alone),
//! beside (a″) the same sums from the totals (`store::sum_day_totals`).
//!
//! The data: a fresh database migrated by the real code (`bench/common`),
//! 10,000 checks (intervals 30 s, 60 s, 5 min; labels), one `rollup_days`
//! row per check and day for the 90 days up to today and one `rollup_hours`
//! row per check and hour for the 168 hours up to now, written by
//! `generate_series` with realistic values (mostly up; some buckets with
//! down time, no data or maintenance; runs and failures from the interval;
//! 40-element latency histograms with four non-zero buckets around each
//! check's typical latency), three incidents per check over the 90 days;
//! the daily totals of every day before today closed one day at a time, as
//! the scheduler's housekeeping closes them (`store::close_day_totals`;
//! today stays open, so a window reaching now reads yesterday's totals row
//! and today's daily row per check); then VACUUM ANALYZE. Each read runs warm: 3 unmeasured runs, then
//! BENCH_RUNS (default 20) timed ones; median and p95 of the wall time the
//! caller sees (query, transfer, decoding into `Report` / `Tally`).
//!
//! ```sh
//! bench/run.sh history                                  # about 3 minutes
//! BENCH_CHECKS=1000 cargo bench --bench history         # a quick try
//! ```
//!
//! Knobs: BENCH_CHECKS (10000), BENCH_DAYS (90), BENCH_HOURS (168),
//! BENCH_BAR_CHECKS (100), BENCH_RUNS (20); BENCH_KEEP_DB=1 keeps the database.
//!
//! Writes bench/results/history.md and history.csv.

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::future::Future;
use std::time::Instant;

use chrono::{DateTime, Utc};
use common::{env_or, percentile};
use sentryk8s::history::buckets::{from_ms, to_ms, Granularity};
use sentryk8s::history::report::{self, Retention, Selection, Source};
use sentryk8s::history::store;

/// Builds one day's or hour's rows for every check: `$1`/`$2` the first and
/// last bucket, `$3` the bucket width in ms, `$4`–`$6` the chances that a
/// bucket has down time, no data, maintenance. The histogram is 40
/// elements: zeros up to the check's typical bucket k (8–13, 11–90 ms),
/// three buckets holding 30 %, 60 % and the rest of the successes minus a
/// 2 % tail three buckets further up.
const ROLLUPS: &str = "
WITH v AS (
    SELECT c.id, b.bucket, c.interval_ms::int8 AS every, 8 + (c.id % 6)::int AS k,
           CASE WHEN random() < $4 THEN (random() * $3::int8 / 4)::int8 ELSE 0 END AS down,
           CASE WHEN random() < $5 THEN (random() * $3::int8 / 2)::int8 ELSE 0 END AS no_data,
           CASE WHEN random() < $6 THEN $3::int8 / 8 ELSE 0 END AS maint
      FROM checks c CROSS JOIN generate_series($1::timestamptz, $2::timestamptz, $3::int8 * interval '1 ms') b(bucket)
), w AS (
    SELECT *, (($3::int8 - no_data - maint) / every)::int4 AS runs, ceil(down::float8 / every)::int4 AS failures
      FROM v
), s AS (
    SELECT *, runs - failures AS ok FROM w
)
INSERT INTO {table} (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures, total_us_sum,
                     latency_histogram)
SELECT id, bucket, $3::int8 - down - no_data - maint, down, no_data, maint, runs, failures,
       ok::int8 * (1000 * 2 ^ (k / 2.0))::int8,
       array_fill(0, ARRAY[k]) || ARRAY[ok * 3 / 10, ok * 6 / 10, ok - ok * 3 / 10 - ok * 6 / 10 - ok / 50]
         || array_fill(0, ARRAY[2]) || ARRAY[ok / 50] || array_fill(0, ARRAY[34 - k])
  FROM s";

/// Three incidents per check at random times in the last `$1` days, each
/// resolved within an hour.
const INCIDENTS: &str = "
WITH v AS (
    SELECT c.id, c.name, now() - random() * $1::int * interval '1 day' AS t, random() AS r
      FROM checks c CROSS JOIN generate_series(1, 3) j
)
INSERT INTO incidents (id, check_id, check_name, opened_at, confirmed_at, resolved_at, resolution, first_error,
                       last_error, alerts_sent)
SELECT nextval('incident_id_seq'), id, name, t, t + interval '2 minutes', t + r * interval '1 hour',
       'recovered', 'connect: connection refused', 'timeout after 5s', 2
  FROM v";

/// One read's timings.
struct Timed {
    name: String,
    api: String,
    detail: String,
    samples: Vec<f64>,
}

impl Timed {
    fn median(&self) -> f64 {
        percentile(&self.samples, 0.5)
    }
    fn p95(&self) -> f64 {
        percentile(&self.samples, 0.95)
    }
}

/// Runs `read` 3 times unmeasured, then `runs` times; milliseconds, sorted.
async fn time<F, Fut>(runs: u64, mut read: F) -> Vec<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..3 {
        read().await;
    }
    let mut out = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        read().await;
        out.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    out.sort_by(f64::total_cmp);
    out
}

fn mib(bytes: i64) -> f64 {
    bytes as f64 / 1024.0 / 1024.0
}

#[tokio::main]
async fn main() {
    let checks = env_or("BENCH_CHECKS", 10_000).max(1);
    let days = env_or("BENCH_DAYS", 90).max(31);
    let hours = env_or("BENCH_HOURS", 168).max(1);
    let bar_checks = env_or("BENCH_BAR_CHECKS", 100).clamp(1, checks);
    let runs = env_or("BENCH_RUNS", 20).max(1);
    let header = common::report_header("History reads: 30-day report and daily bars", "bench/run.sh history");
    println!("{header}");

    let db = common::BenchDb::create("skbench_history", 2).await;
    let client = &db.client;
    let now = Utc::now();
    let today = Granularity::Day.floor(to_ms(now));
    let this_hour = Granularity::Hour.floor(to_ms(now));

    // The data.
    let loading = Instant::now();
    let spec: sentryk8s::model::CheckSpec = serde_json::from_value(
        serde_json::json!({"url": "http://127.0.0.1:8080/health", "timeout_ms": 5000}),
    )
    .expect("spec");
    let spec = serde_json::to_value(&spec).expect("spec json");
    client.execute("SELECT setseed(0.14)", &[]).await.expect("setseed");
    client
        .execute(
            "INSERT INTO checks (name, interval_ms, spec)
             SELECT 'check-' || lpad(i::text, 5, '0'), (ARRAY[30000, 60000, 300000])[1 + i % 3],
                    $2::jsonb || jsonb_build_object('labels', jsonb_build_object('team', 'team-' || (i % 20)))
               FROM generate_series(1, $1::int) i",
            &[&(checks as i32), &spec],
        )
        .await
        .expect("insert checks");
    let load = |table: &'static str, first: i64, last: i64, width: i64, odds: (f64, f64, f64)| {
        let sql = ROLLUPS.replace("{table}", table);
        async move {
            let t0 = Instant::now();
            let n = client
                .execute(&sql, &[&from_ms(first), &from_ms(last), &width, &odds.0, &odds.1, &odds.2])
                .await
                .unwrap_or_else(|e| panic!("fill {table}: {e}"));
            println!("{table}: {n} rows in {:.1} s", t0.elapsed().as_secs_f64());
        }
    };
    let day_ms = Granularity::Day.width_ms();
    let hour_ms = Granularity::Hour.width_ms();
    load("rollup_days", today - (days as i64 - 1) * day_ms, today, day_ms, (0.10, 0.03, 0.01)).await;
    load("rollup_hours", this_hour - (hours as i64 - 1) * hour_ms, this_hour, hour_ms, (0.01, 0.005, 0.002))
        .await;
    let incidents = client.execute(INCIDENTS, &[&(days as i32)]).await.expect("insert incidents");
    let t0 = Instant::now();
    // The migration closed the days before it ran, with no rows yet:
    // reopen from the first day loaded, then close as housekeeping does.
    let first_day = from_ms(today - (days as i64 - 1) * day_ms);
    client
        .execute("UPDATE rollup_day_totals_closed SET day = $1", &[&first_day])
        .await
        .expect("reopen the loaded days");
    let closed = store::close_day_totals(client, days as u32).await.expect("close the daily totals");
    assert_eq!(u64::from(closed), days - 1, "every loaded day before today is closed");
    println!("rollup_day_totals: {closed} days closed in {:.1} s", t0.elapsed().as_secs_f64());
    for table in ["checks", "rollup_days", "rollup_hours", "rollup_day_totals", "incidents"] {
        client.batch_execute(&format!("VACUUM ANALYZE {table}")).await.expect("vacuum analyze");
    }
    let loaded = loading.elapsed().as_secs_f64();
    println!("loaded in {loaded:.0} s ({incidents} incidents)");

    let mut sizes = Vec::new();
    for table in ["rollup_days", "rollup_day_totals", "rollup_hours", "incidents"] {
        let row = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {table}), pg_total_relation_size('{table}'),
                            pg_relation_size('{table}'), pg_indexes_size('{table}')"
                ),
                &[],
            )
            .await
            .expect("table size");
        sizes.push((
            table,
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
            row.get::<_, i64>(3),
        ));
    }

    // The reads.
    let retention = Retention { raw_days: 30, hourly_days: Retention::DEFAULT_HOURLY_DAYS };
    let all = Selection::default();
    let ids: Vec<i64> = client
        .query("SELECT id FROM checks ORDER BY id", &[])
        .await
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // 100 checks spread over the table, as a status page picks them.
    let step = (ids.len() / bar_checks as usize).max(1);
    let bar_ids: Vec<i64> = ids.iter().step_by(step).take(bar_checks as usize).copied().collect();
    let bars_from: DateTime<Utc> = from_ms(today - 89 * day_ms);

    let mut timed = Vec::new();
    for (label, span_days, expected) in [
        ("(a) 30-day report, every check", 30, Source::Day),
        ("(c) 7-day report, every check (for scale)", 7, Source::Hour),
    ] {
        let from = now - chrono::Duration::days(span_days);
        let first = report::report(client, from, now, now, retention, &all).await.expect("report");
        assert_eq!(first.source, expected, "{label}: answered from {:?}", first.source);
        assert_eq!(first.rows.len(), checks as usize, "{label}: one row per check");
        let with_incidents = first.rows.iter().filter(|r| r.incidents > 0).count();
        let uptime: Vec<f64> = first.rows.iter().filter_map(|r| r.uptime_percent).collect();
        let mean_uptime = uptime.iter().sum::<f64>() / uptime.len().max(1) as f64;
        let samples = time(runs, || async {
            let r = report::report(client, from, now, now, retention, &all).await.expect("report");
            assert_eq!(r.rows.len(), checks as usize);
        })
        .await;
        timed.push(Timed {
            name: label.to_string(),
            api: format!(
                "report::report(client, now − {span_days} d, now, now, retention, &Selection::default())"
            ),
            detail: format!(
                "answered from {} ({} → {}), {} rows, mean uptime {mean_uptime:.3} %, {with_incidents} checks with incidents",
                first.source.describe(),
                report::timestamp(&first.from),
                report::timestamp(&first.to),
                first.rows.len()
            ),
            samples,
        });
    }
    // (a′): the sums of (a)'s window, summed from the daily rows.
    let (from, to) = {
        let r = report::report(client, now - chrono::Duration::days(30), now, now, retention, &all).await;
        let r = r.expect("report");
        (r.from, r.to)
    };
    let summed = store::sum_rollup_rows(client, Granularity::Day, None, from, to).await.expect("sum rows");
    let totals = store::sum_day_totals(client, None, from, to).await.expect("totals");
    assert!(summed == totals, "(a′) and (a) read the same sums");
    let summed_samples = time(runs, || async {
        let s = store::sum_rollup_rows(client, Granularity::Day, None, from, to).await.expect("sum rows");
        assert_eq!(s.len(), checks as usize);
    })
    .await;
    let samples = time(runs, || async {
        let s = store::sum_day_totals(client, None, from, to).await.expect("totals");
        assert_eq!(s.len(), checks as usize);
    })
    .await;
    timed.push(Timed {
        name: "(a″) the sums of (a) alone, from the totals".into(),
        api: "store::sum_day_totals(client, None, from, to)".into(),
        detail: "what (a) spends on the sums; the rest is the selection, the incidents and the rows".into(),
        samples,
    });
    timed.push(Timed {
        name: "(a′) the sums of (a) from the daily rows (before the totals; for comparison)".into(),
        api: "store::sum_rollup_rows(client, Granularity::Day, None, from, to)".into(),
        detail: format!(
            "{} checks, the same window; equal to what (a) reads from the totals (`store::sum_day_totals`)",
            summed.len()
        ),
        samples: summed_samples,
    });
    let first = report::bars(client, &bar_ids, bars_from, now, Granularity::Day).await.expect("bars");
    assert_eq!(first.len(), bar_ids.len());
    assert!(first.values().all(|b| b.len() == 90), "90 daily bars per check");
    let empty = first.values().flatten().filter(|(_, t)| t.runs == 0).count();
    let samples = time(runs, || async {
        let b = report::bars(client, &bar_ids, bars_from, now, Granularity::Day).await.expect("bars");
        assert_eq!(b.len(), bar_ids.len());
    })
    .await;
    timed.insert(
        1,
        Timed {
            name: format!("(b) 90 daily bars of {} checks", bar_ids.len()),
            api: "report::bars(client, &ids, today − 89 d, now, Granularity::Day)".into(),
            detail: format!(
                "{} checks spread over the id range, 90 bars each ({empty} without runs)",
                bar_ids.len()
            ),
            samples,
        },
    );
    for t in &timed {
        println!("{}: median {:.1} ms, p95 {:.1} ms", t.name, t.median(), t.p95());
    }

    // BENCH_KEEP_DB=1 keeps the loaded database, to EXPLAIN the reads by hand.
    if env_or("BENCH_KEEP_DB", 0) == 1 {
        println!("kept database {} (drop it by hand)", db.name);
        db.keep();
    } else {
        db.drop_db().await;
    }
    write_report(&header, checks, days, hours, loaded, &sizes, &timed, runs);
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    header: &str,
    checks: u64,
    days: u64,
    hours: u64,
    loaded: f64,
    sizes: &[(&str, i64, i64, i64, i64)],
    timed: &[Timed],
    runs: u64,
) {
    let mut md = String::from(header);
    let _ = writeln!(
        md,
        "- data: {checks} checks, {days} days of daily rollups and {hours} hours of hourly rollups per check, \
         3 incidents per check; loaded and VACUUM ANALYZEd in {loaded:.0} s\n- each read: 3 warm-up runs, then \
         {runs} timed; wall time seen by the caller (query, transfer, decoding)\n"
    );
    md.push_str("| read | median ms | p95 ms | min ms | max ms | goal |\n|---|---|---|---|---|---|\n");
    for t in timed {
        let goal = if t.name.starts_with("(c)") || t.name.starts_with("(a′)") || t.name.starts_with("(a″)")
        {
            "—".to_string()
        } else if t.p95() < 200.0 {
            "< 200 ms: met".to_string()
        } else {
            "< 200 ms: **missed**".to_string()
        };
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {goal} |",
            t.name,
            t.median(),
            t.p95(),
            t.samples.first().copied().unwrap_or(f64::NAN),
            t.samples.last().copied().unwrap_or(f64::NAN)
        );
    }
    md.push('\n');
    for t in timed {
        let _ = writeln!(md, "- {}: `{}`; {}", t.name, t.api, t.detail);
    }
    md.push_str(
        "\n| table | rows | total size | heap | indexes | per row (total) |\n|---|---|---|---|---|---|\n",
    );
    for (table, rows, total, heap, indexes) in sizes {
        let _ = writeln!(
            md,
            "| {table} | {rows} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.0} B |",
            mib(*total),
            mib(*heap),
            mib(*indexes),
            *total as f64 / (*rows).max(1) as f64
        );
    }
    md.push_str(
        "\nSizes from pg_total_relation_size (heap, TOAST and indexes), pg_relation_size and \
         pg_indexes_size after VACUUM ANALYZE. The machine is shared with other engineers' builds and \
         tests (the load average above); PostgreSQL runs with its Debian defaults.\n",
    );
    common::write_result("history.md", &md);
    println!("\n{md}");
    let rows: Vec<Vec<String>> = timed
        .iter()
        .map(|t| {
            vec![
                format!("\"{}\"", t.name),
                format!("{:.2}", t.median()),
                format!("{:.2}", t.p95()),
                format!("{:.2}", t.samples.first().copied().unwrap_or(f64::NAN)),
                format!("{:.2}", t.samples.last().copied().unwrap_or(f64::NAN)),
                t.samples.len().to_string(),
            ]
        })
        .collect();
    common::write_csv("history.csv", &["read", "median_ms", "p95_ms", "min_ms", "max_ms", "runs"], &rows);
}
