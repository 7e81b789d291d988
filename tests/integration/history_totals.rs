//! The cumulative daily totals (`rollup_day_totals`, docs/history.md)
//! against real PostgreSQL: a window of days read from them is exactly
//! the sum of its daily rows, through live upkeep (late results, missed
//! ranges over several days, maintenance, several days of a check in one
//! batch), with days closed at various points (none, some, all; late
//! writes to closed days), a rebuild's corrections, retention and the
//! migration's backfill; and writers running while a day is closed lose
//! nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use sentryk8s::history::buckets::{from_ms, to_ms, Granularity, DAY_MS, HOUR_MS};
use sentryk8s::history::rebuild::{apply_corrections, corrections};
use sentryk8s::history::rollup::{self, MissedFact, ResultFact, Rollups, Tally};
use sentryk8s::history::store;
use sentryk8s::history::uptime::Category;
use sentryk8s::scheduler::housekeeping;
use tokio_postgres::Client;

use crate::support::TestDb;

const CHECKS: i64 = 5;

fn pool(db: &TestDb) -> deadpool_postgres::Pool {
    let mut config = sentryk8s::config::Config::defaults().expect("defaults");
    config.database_url = db.url.clone();
    sentryk8s::db::pool(&config, "test").expect("pool")
}

/// Start of today (UTC).
fn today() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::days(1)).expect("whole days")
}

/// A small deterministic generator: the data varies, the test repeats.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

/// One batch of results and missed ranges as the writers count them: for
/// each check, results on `days` (days before today), at varied times,
/// intervals (up to 6 h, so slots straddle midnight), outcomes and
/// categories, plus now and then a missed range spanning several days.
fn batch(rng: &mut Lcg, days: &[i64]) -> Rollups {
    let mut rollups = Rollups::new();
    let today = to_ms(today());
    for check_id in 1..=CHECKS {
        for day in days {
            for _ in 0..1 + rng.next(3) {
                let interval_ms = [60_000, 300_000, 6 * HOUR_MS][rng.next(3) as usize];
                let slot_ms = today - day * DAY_MS + rng.next(DAY_MS as u64 / 1000) as i64 * 1000;
                let category =
                    [Category::Up, Category::Up, Category::Down, Category::Maintenance][rng.next(4) as usize];
                let fact = ResultFact {
                    check_id,
                    slot_ms,
                    interval_ms,
                    category,
                    success: category != Category::Down,
                    total_ms: 1.0 + rng.next(4000) as f32 / 7.0,
                };
                rollup::add_result(&mut rollups, &fact);
            }
            if rng.next(5) == 0 {
                let first_ms = today - day * DAY_MS + rng.next(24) as i64 * HOUR_MS;
                let fact = MissedFact {
                    check_id,
                    first_ms,
                    last_ms: first_ms + 2 * 20 * HOUR_MS,
                    slots: 3,
                    interval_ms: 20 * HOUR_MS,
                };
                rollup::add_missed(&mut rollups, &fact, None);
            }
        }
    }
    // Missed ranges may reach past today: nothing is written ahead of time.
    rollups.retain(|(_, _, bucket), _| *bucket <= today);
    rollups
}

/// Writes `rollups` as a writer does: one transaction.
async fn write(pool: &deadpool_postgres::Pool, rollups: &Rollups) {
    let mut client = pool.get().await.expect("pooled");
    let tx = client.transaction().await.expect("begin");
    store::upsert_rollups(&tx, rollups).await.expect("upsert rollups");
    tx.commit().await.expect("commit");
}

/// Marks every day from `day` on as not closed. Only before any totals
/// row of those days exists (a fresh database's migration closed every
/// day before today, with nothing to count).
async fn reopen_from(client: &Client, day: DateTime<Utc>) {
    let later: i64 = client
        .query_one("SELECT count(*) FROM rollup_day_totals WHERE bucket >= $1", &[&day])
        .await
        .expect("count")
        .get(0);
    assert_eq!(later, 0, "no totals rows from {day} on");
    client.execute("UPDATE rollup_day_totals_closed SET day = $1", &[&day]).await.expect("reopen");
}

/// The windows compared: whole days, and times inside days, from before
/// the oldest row to after the newest.
fn windows() -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let t = today();
    let mut out = Vec::new();
    for (from, to) in [(45, -1), (30, 0), (40, 20), (7, 0), (1, 0), (0, -1), (25, 24), (60, 50), (33, 3)] {
        out.push((t - Duration::days(from), t - Duration::days(to)));
        out.push((
            t - Duration::days(from) + Duration::hours(5),
            t - Duration::days(to) + Duration::minutes(90),
        ));
    }
    out
}

/// Fails unless every window read from the totals equals the sum of its
/// daily rows, for every check and for a selection of checks.
async fn assert_windows_match(client: &Client, what: &str) {
    let some: Vec<i64> = vec![2, 4, 77];
    for (from, to) in windows() {
        let summed =
            store::sum_rollup_rows(client, Granularity::Day, None, from, to).await.expect("sum rows");
        let totals = store::sum_day_totals(client, None, from, to).await.expect("totals");
        assert_eq!(sorted(&totals), sorted(&summed), "{what}: window {from} → {to}, every check");
        let summed =
            store::sum_rollup_rows(client, Granularity::Day, Some(&some), from, to).await.expect("sum rows");
        let totals = store::sum_day_totals(client, Some(&some), from, to).await.expect("totals");
        assert_eq!(sorted(&totals), sorted(&summed), "{what}: window {from} → {to}, checks {some:?}");
    }
}

fn sorted(m: &HashMap<i64, Tally>) -> BTreeMap<i64, Tally> {
    m.iter().map(|(k, v)| (*k, v.clone())).collect()
}

/// Every totals row as text (the anchors' -infinity included), by key.
async fn totals_rows(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures, total_us_sum,
                     latency_histogram)::text FROM rollup_day_totals ORDER BY check_id, bucket",
            &[],
        )
        .await
        .expect("totals rows")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn seed_checks(client: &Client) {
    client
        .execute(
            "INSERT INTO checks (id, name, interval_ms, spec)
             SELECT i, 'check-' || i, 60000, '{}'::jsonb FROM generate_series(1, $1::int8) i
             UNION ALL SELECT 77, 'check-77', 60000, '{}'::jsonb",
            &[&CHECKS],
        )
        .await
        .expect("checks");
}

/// The rollups as stored, for the rebuild step.
async fn stored_days(client: &Client, ids: &[i64]) -> Rollups {
    store::rollup_rows(
        client,
        Granularity::Day,
        ids,
        today() - Duration::days(400),
        today() + Duration::days(1),
    )
    .await
    .expect("daily rows")
    .into_iter()
    .map(|(id, bucket, t)| ((id, Granularity::Day, to_ms(bucket)), t))
    .collect()
}

#[tokio::test]
async fn day_windows_from_totals_equal_the_summed_daily_rows_through_upkeep_rebuild_and_retention() {
    let db = TestDb::migrated_named("sk_totals", 4).await;
    let client = db.client().await;
    seed_checks(&client).await;
    let pool = pool(&db);
    let mut rng = Lcg(14);
    reopen_from(&client, today() - Duration::days(60)).await;

    // Live upkeep, oldest days first, several days of a check per batch;
    // no day closed yet.
    for days in [[40, 39, 38], [37, 36, 30]] {
        write(&pool, &batch(&mut rng, &days)).await;
    }
    assert_windows_match(&client, "no day closed").await;
    // Days closed up to 36 days ago (-60 … -36), as housekeeping does.
    assert_eq!(store::close_day_totals(&client, 25).await.expect("close"), 25);
    assert_eq!(store::first_open_day(&client).await.expect("open day"), today() - Duration::days(35));
    let closed_rows: i64 =
        client.query_one("SELECT count(*) FROM rollup_day_totals", &[]).await.unwrap().get(0);
    assert!(closed_rows >= 3 * CHECKS, "the closed days have totals rows: {closed_rows}");
    assert_windows_match(&client, "some days closed").await;
    for days in [[29, 20, 10], [9, 5, 2], [1, 0, 0]] {
        write(&pool, &batch(&mut rng, &days)).await;
    }
    // Late results and misses: days already written, closed or not, and
    // days with no row yet between written ones (a row is created in the
    // middle, of a closed day too).
    for days in [[35, 31, 0], [12, 3, 33], [39, 38, 37]] {
        write(&pool, &batch(&mut rng, &days)).await;
    }
    assert_windows_match(&client, "late writes to closed days").await;
    // Every ended day closed; today stays open.
    assert_eq!(store::close_day_totals(&client, 100).await.expect("close"), 35);
    assert_eq!(store::close_day_totals(&client, 100).await.expect("close"), 0, "today has not ended");
    assert_windows_match(&client, "every ended day closed").await;
    // Live results of today (the common case) write no totals row: the
    // worker's rows per check stay those of the hourly and daily upserts.
    let before = totals_rows(&client).await;
    write(&pool, &batch(&mut rng, &[0, 0])).await;
    assert_eq!(totals_rows(&client).await, before, "today's results touch no totals row");
    assert_windows_match(&client, "today written after every ended day closed").await;
    for days in [[35, 31, 0], [12, 3, 44]] {
        write(&pool, &batch(&mut rng, &days)).await;
    }
    // A check written for the first time with an old day.
    let mut late = Rollups::new();
    rollup::add_result(
        &mut late,
        &ResultFact {
            check_id: 77,
            slot_ms: to_ms(today() - Duration::days(26)),
            interval_ms: 60_000,
            category: Category::Up,
            success: true,
            total_ms: 12.5,
        },
    );
    write(&pool, &late).await;
    assert_windows_match(&client, "live upkeep").await;
    let days: i64 = client.query_one("SELECT count(*) FROM rollup_days", &[]).await.unwrap().get(0);
    assert!(days > 60, "enough daily rows to compare: {days}");

    // A rebuild's corrections (rows changed, created, emptied), applied by
    // the rebuild's own code; check 3's totals had drifted meanwhile and are
    // recounted from its daily rows.
    client
        .execute(
            "UPDATE rollup_day_totals SET up_ms = up_ms + 999 WHERE check_id = 3 AND bucket > '-infinity'",
            &[],
        )
        .await
        .unwrap();
    let stored = stored_days(&client, &[1, 3]).await;
    let mut expected = stored.clone();
    let keys: Vec<_> = expected.keys().copied().collect();
    expected.remove(&keys[2]);
    expected.get_mut(&keys[5]).expect("row").durations.down_ms += 60_000;
    expected.insert((3, Granularity::Day, to_ms(today() - Duration::days(50))), {
        let mut t = Tally::default();
        t.durations.no_data_ms = 3_600_000;
        t
    });
    let fix = corrections(&expected, &stored);
    assert!(fix.created == 1 && fix.updated == 1 && fix.deleted == 1, "{fix:?}");
    let mut pooled = pool.get().await.expect("pooled");
    apply_corrections(&mut pooled, &fix).await.expect("apply corrections");
    assert_eq!(stored_days(&client, &[1, 3]).await, expected, "the corrections were applied");
    assert_windows_match(&client, "after a rebuild's corrections").await;

    // Retention of 21 days: days 22 and older are pruned, in small batches
    // first, then by housekeeping; windows reaching before the oldest day
    // kept count what is left.
    let pruned = store::prune_rollups(&client, Granularity::Day, 21, 4).await.expect("prune");
    assert_eq!(pruned, 4);
    assert_windows_match(&client, "midway through pruning").await;
    client
        .execute(
            "UPDATE partition_leases SET owner = 'keeper', epoch = 1, expires_at = now() + interval '1 hour'
              WHERE partition = 0",
            &[],
        )
        .await
        .unwrap();
    let config = sentryk8s::config::Config::defaults().expect("defaults");
    let retention = housekeeping::Retention { daily_days: 21, ..housekeeping::Retention::of(&config) };
    let done = housekeeping::run(&client, "keeper", 1, retention).await.expect("housekeeping");
    assert!(done.daily > 0, "{done:?}");
    let oldest: DateTime<Utc> =
        client.query_one("SELECT min(bucket) FROM rollup_days", &[]).await.unwrap().get(0);
    assert!(oldest > today() - Duration::days(22), "oldest daily row kept: {oldest}");
    let old_totals: i64 = client
        .query_one(
            "SELECT count(*) FROM rollup_day_totals WHERE bucket > '-infinity' AND bucket < $1",
            &[&oldest],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(old_totals, 0, "the pruned days' totals are folded into the baselines");
    assert_windows_match(&client, "after retention").await;

    // Upkeep goes on after pruning, and a rebuild recount keeps baselines.
    write(&pool, &batch(&mut rng, &[0, 4])).await;
    assert_windows_match(&client, "upkeep after retention").await;
    let before = totals_rows(&client).await;
    let mut pooled = pool.get().await.expect("pooled");
    let tx = pooled.transaction().await.expect("begin");
    store::recount_day_totals(&*tx, &(1..=CHECKS).chain([77]).collect::<Vec<_>>()).await.expect("recount");
    tx.commit().await.expect("commit");
    // The recount also makes the rows of days written after their close
    // (which reads count from the daily rows); every row upkeep kept
    // agrees with it.
    let after = totals_rows(&client).await;
    for row in &before {
        assert!(after.contains(row), "live upkeep wrote what a recount computes: {row}");
    }
    assert!(after.len() > before.len(), "late rows of closed days are recounted too");
    assert_windows_match(&client, "after a recount").await;
}

/// Writers of day D and the day after (as the worker's batches and the
/// scheduler's missed-slot flush do), each holding its transaction open a
/// moment after its upsert, while housekeeping closes D: the close must
/// count every writer exactly once (through the daily row, or through
/// the writer's update of the closed row). Without the close's `SHARE`
/// lock on `rollup_days`, a writer committing after the close read the
/// daily rows but before the close's rows existed for its update would
/// be lost from D's totals, and the window would come out short.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_racing_the_close_of_their_day_lose_no_delta() {
    let db = TestDb::migrated_named("sk_totals_race", 4).await;
    let client = db.client().await;
    seed_checks(&client).await;
    let pool = pool(&db);
    let writers = 8;
    let first = today() - Duration::days(12);
    reopen_from(&client, first).await;
    for round in 0..6i64 {
        let day = to_ms(first + Duration::days(round));
        // A row of D committed before the race: the close has one to count.
        let mut before = Rollups::new();
        rollup::add_result(
            &mut before,
            &ResultFact {
                check_id: 5,
                slot_ms: day + HOUR_MS,
                interval_ms: 60_000,
                category: Category::Up,
                success: true,
                total_ms: 3.0,
            },
        );
        write(&pool, &before).await;
        let barrier = Arc::new(tokio::sync::Barrier::new(writers + 1));
        let mut tasks = Vec::new();
        for w in 0..writers as i64 {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let mut rollups = Rollups::new();
                // Two checks (one shared by all), day D, and for odd
                // writers the day after as well.
                for check_id in [1, 2 + w % 3] {
                    for d in 0..1 + w % 2 {
                        rollup::add_result(
                            &mut rollups,
                            &ResultFact {
                                check_id,
                                slot_ms: day + d * DAY_MS + (w + 1) * 60_000,
                                interval_ms: 60_000,
                                category: if w % 3 == 0 { Category::Down } else { Category::Up },
                                success: w % 3 != 0,
                                total_ms: 5.0 * (w + 1) as f32,
                            },
                        );
                    }
                }
                let mut client = pool.get().await.expect("pooled");
                barrier.wait().await;
                // Staggered: some write before the close, some while it
                // waits or runs, some after.
                tokio::time::sleep(std::time::Duration::from_millis(10 * w as u64)).await;
                let tx = client.transaction().await.expect("begin");
                store::upsert_rollups(&tx, &rollups).await.expect("upsert");
                tokio::time::sleep(std::time::Duration::from_millis(40)).await;
                tx.commit().await.expect("commit");
            }));
        }
        let closer = {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            tokio::spawn(async move {
                let client = pool.get().await.expect("pooled");
                barrier.wait().await;
                tokio::time::sleep(std::time::Duration::from_millis(15 + 7 * round as u64)).await;
                store::close_day_totals(&**client, 1).await.expect("close")
            })
        };
        for t in tasks {
            t.await.expect("writer");
        }
        assert_eq!(closer.await.expect("closer"), 1, "round {round}: the day was closed");
        let closed: i64 = client
            .query_one("SELECT count(*) FROM rollup_day_totals WHERE bucket = $1", &[&from_ms(day)])
            .await
            .unwrap()
            .get(0);
        assert!(closed >= 1, "round {round}: the close made totals rows");
        for (from, to) in [(day, day + DAY_MS), (day, day + 2 * DAY_MS), (day + DAY_MS, day + 2 * DAY_MS)] {
            let (from, to) = (from_ms(from), from_ms(to));
            let summed =
                store::sum_rollup_rows(&client, Granularity::Day, None, from, to).await.expect("sum rows");
            let totals = store::sum_day_totals(&client, None, from, to).await.expect("totals");
            assert_eq!(sorted(&totals), sorted(&summed), "round {round}: {from} → {to}");
        }
        let runs =
            store::sum_rollup_rows(&client, Granularity::Day, None, from_ms(day), from_ms(day + DAY_MS))
                .await
                .expect("sum rows")
                .get(&1)
                .map(|t| t.runs)
                .unwrap_or(0);
        // Round 0's odd writers also wrote round 1's day D, and so on.
        let earlier = if round > 0 { writers as i64 / 2 } else { 0 };
        assert_eq!(runs, writers as i64 + earlier, "round {round}: every writer's run of check 1 on day D");
        // Next round's day D+1 is closed next: its totals start from D's.
    }
    assert_windows_match(&client, "after the races").await;
}

/// Migration 0007 fills the totals from the daily rows already stored.
#[tokio::test]
async fn the_migration_fills_the_totals_from_the_stored_daily_rows() {
    let db = TestDb::empty_named("sk_totals_backfill").await;
    let client = db.client().await;
    let all = sentryk8s::migrate::MIGRATIONS;
    let at = all.iter().position(|m| m.name == "0007_rollup_totals.sql").expect("0007 is listed");
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (name text PRIMARY KEY, checksum text NOT NULL,
                                             applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .expect("schema_migrations");
    for m in &all[..at] {
        client.batch_execute(m.sql).await.expect(m.name);
        client
            .execute(
                "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                &[&m.name, &m.checksum()],
            )
            .await
            .expect("record");
    }
    client.batch_execute("INSERT INTO cluster (partitions) VALUES (4)").await.expect("cluster");
    seed_checks(&client).await;
    // Daily rows as 0005's upkeep left them (no totals table yet).
    let mut rng = Lcg(7);
    let rollups = batch(&mut rng, &[30, 12, 11, 3, 0]);
    let mut rows = 0;
    for ((check_id, g, bucket), t) in rollups.iter().filter(|(k, _)| k.1 == Granularity::Day) {
        // The migration counts days before today (the days it closes).
        rows += usize::from(*bucket < to_ms(today()));
        let histogram: Vec<i32> = t.histogram.iter().map(|c| *c as i32).collect();
        client
            .execute(
                "INSERT INTO rollup_days (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs,
                                          failures, total_us_sum, latency_histogram)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    check_id,
                    &from_ms(*bucket),
                    &t.durations.up_ms,
                    &t.durations.down_ms,
                    &t.durations.no_data_ms,
                    &t.durations.maintenance_ms,
                    &(t.runs as i32),
                    &(t.failures as i32),
                    &t.total_us_sum,
                    &histogram,
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("{g:?} row: {e}"));
    }
    assert!(rows > 15, "{rows} daily rows before today");
    let mut migrating = db.client().await;
    let report = sentryk8s::migrate::run(&mut migrating, 4).await.expect("migrate");
    assert!(report.applied.iter().any(|n| n == "0007_rollup_totals.sql"), "{report:?}");
    assert_windows_match(&client, "after the migration").await;
    let before = totals_rows(&client).await;
    assert_eq!(before.len(), rows, "one row per daily row of a closed day");
    let pool = pool(&db);
    let mut pooled = pool.get().await.expect("pooled");
    let tx = pooled.transaction().await.expect("begin");
    store::recount_day_totals(&*tx, &(1..=CHECKS).collect::<Vec<_>>()).await.expect("recount");
    tx.commit().await.expect("commit");
    assert_eq!(totals_rows(&client).await, before, "the migration computes what a recount does");
    // Live upkeep continues from them.
    write(&pool, &batch(&mut rng, &[12, 1, 0])).await;
    assert_windows_match(&client, "upkeep after the migration").await;
}
