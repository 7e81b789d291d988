//! Every SQL statement of history that the writers run inside their own
//! transactions: rollup upserts, incident rows, and the maintenance
//! windows they count with; and the reads of reports and rebuilds.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::buckets::{from_ms, Granularity};
use super::histogram::BUCKETS;
use super::incidents::{compact, IncidentOp};
use super::rollup::{MissedFact, Rollups, Tally};
use super::windows::{Cache, Windows};
use crate::model::maintenance::WindowSpec;

/// Adds rows element by element: `runs = runs + excluded.runs`, the
/// histogram bucket by bucket. Rows are sent in key order, so two
/// transactions touching the same rows lock them in the same order.
///
/// Two ways to add a histogram, because a worker's row almost always
/// carries its check's one run of the batch: `g` 0 and 1 (hours, days) are
/// rows whose histogram is that of their successful runs in at most one
/// bucket (see [`Class`]); its count is `runs - failures`, so the bucket
/// is where that count sits, and it is added in place. `g` 2 and 3 add
/// whole arrays (a rebuild's corrections, several runs of one check in one
/// bucket). In place costs PostgreSQL about half as much per row (20,000
/// upserts: 0.30–0.35 s against 0.59–0.76 s on the 2-core machine).
const UPSERT_ROLLUPS: &str = "
WITH u AS (
    SELECT * FROM unnest($1::int2[], $2::int8[], $3::timestamptz[], $4::int8[], $5::int8[], $6::int8[],
                         $7::int8[], $8::int4[], $9::int4[], $10::int8[])
           WITH ORDINALITY AS u(g, check_id, bucket, up, down, no_data, maint, runs, failures, us, ord)
), hours_one AS (
    INSERT INTO rollup_hours AS r (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                                   total_us_sum, latency_histogram)
    SELECT check_id, bucket, up, down, no_data, maint, runs, failures, us,
           ($11::int4[])[(ord - 1) * $12::int4 + 1 : ord * $12::int4]
      FROM u WHERE g = 0 ORDER BY ord
    ON CONFLICT (check_id, bucket) DO UPDATE SET
        up_ms = r.up_ms + excluded.up_ms, down_ms = r.down_ms + excluded.down_ms,
        no_data_ms = r.no_data_ms + excluded.no_data_ms, maintenance_ms = r.maintenance_ms + excluded.maintenance_ms,
        runs = r.runs + excluded.runs, failures = r.failures + excluded.failures,
        total_us_sum = r.total_us_sum + excluded.total_us_sum,
        latency_histogram[array_position(excluded.latency_histogram, excluded.runs - excluded.failures)]
            = r.latency_histogram[array_position(excluded.latency_histogram, excluded.runs - excluded.failures)]
              + (excluded.runs - excluded.failures)
    RETURNING 1
), days_one AS (
    INSERT INTO rollup_days AS r (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                                   total_us_sum, latency_histogram)
    SELECT check_id, bucket, up, down, no_data, maint, runs, failures, us,
           ($11::int4[])[(ord - 1) * $12::int4 + 1 : ord * $12::int4]
      FROM u WHERE g = 1 ORDER BY ord
    ON CONFLICT (check_id, bucket) DO UPDATE SET
        up_ms = r.up_ms + excluded.up_ms, down_ms = r.down_ms + excluded.down_ms,
        no_data_ms = r.no_data_ms + excluded.no_data_ms, maintenance_ms = r.maintenance_ms + excluded.maintenance_ms,
        runs = r.runs + excluded.runs, failures = r.failures + excluded.failures,
        total_us_sum = r.total_us_sum + excluded.total_us_sum,
        latency_histogram[array_position(excluded.latency_histogram, excluded.runs - excluded.failures)]
            = r.latency_histogram[array_position(excluded.latency_histogram, excluded.runs - excluded.failures)]
              + (excluded.runs - excluded.failures)
    RETURNING 1
), hours_any AS (
    INSERT INTO rollup_hours AS r (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                                   total_us_sum, latency_histogram)
    SELECT check_id, bucket, up, down, no_data, maint, runs, failures, us,
           ($11::int4[])[(ord - 1) * $12::int4 + 1 : ord * $12::int4]
      FROM u WHERE g = 2 ORDER BY ord
    ON CONFLICT (check_id, bucket) DO UPDATE SET
        up_ms = r.up_ms + excluded.up_ms, down_ms = r.down_ms + excluded.down_ms,
        no_data_ms = r.no_data_ms + excluded.no_data_ms, maintenance_ms = r.maintenance_ms + excluded.maintenance_ms,
        runs = r.runs + excluded.runs, failures = r.failures + excluded.failures,
        total_us_sum = r.total_us_sum + excluded.total_us_sum,
        latency_histogram = ARRAY(SELECT a + b FROM unnest(r.latency_histogram, excluded.latency_histogram)
                                      WITH ORDINALITY AS t(a, b, i) ORDER BY i)
    RETURNING 1
)
INSERT INTO rollup_days AS r (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                               total_us_sum, latency_histogram)
SELECT check_id, bucket, up, down, no_data, maint, runs, failures, us,
       ($11::int4[])[(ord - 1) * $12::int4 + 1 : ord * $12::int4]
  FROM u WHERE g = 3 ORDER BY ord
ON CONFLICT (check_id, bucket) DO UPDATE SET
    up_ms = r.up_ms + excluded.up_ms, down_ms = r.down_ms + excluded.down_ms,
    no_data_ms = r.no_data_ms + excluded.no_data_ms, maintenance_ms = r.maintenance_ms + excluded.maintenance_ms,
    runs = r.runs + excluded.runs, failures = r.failures + excluded.failures,
    total_us_sum = r.total_us_sum + excluded.total_us_sum,
    latency_histogram = ARRAY(SELECT a + b FROM unnest(r.latency_histogram, excluded.latency_histogram)
                                  WITH ORDINALITY AS t(a, b, i) ORDER BY i)";

/// How a row's histogram is added ([`UPSERT_ROLLUPS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Its histogram counts its successful runs (`runs - failures`, at
    /// least 0) in at most one bucket, and nothing is negative.
    OneBucket,
    /// Anything else.
    Any,
}

fn class(t: &Tally) -> Class {
    let successes = t.runs - t.failures;
    let mut nonzero = t.histogram.iter().copied().filter(|c| *c != 0);
    let one = match (nonzero.next(), nonzero.next()) {
        (None, _) => successes == 0,
        (Some(count), None) => count == successes && count > 0,
        (Some(_), Some(_)) => false,
    };
    if one && t.runs >= 0 && t.failures >= 0 {
        Class::OneBucket
    } else {
        Class::Any
    }
}

fn int4(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Adds `rollups` to the stored rows (creating missing ones), in the
/// caller's transaction. Also how a rebuild applies its corrections
/// (negative amounts included).
pub async fn upsert_rollups(
    client: &impl GenericClient,
    rollups: &Rollups,
) -> Result<(), tokio_postgres::Error> {
    if rollups.is_empty() {
        return Ok(());
    }
    let n = rollups.len();
    let mut g = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut buckets: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let (mut up, mut down, mut no_data, mut maint) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut runs, mut failures, mut us) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut histograms: Vec<i32> = Vec::with_capacity(n * BUCKETS);
    for ((check_id, granularity, bucket), t) in rollups {
        g.push(match (granularity, class(t)) {
            (Granularity::Hour, Class::OneBucket) => 0i16,
            (Granularity::Day, Class::OneBucket) => 1,
            (Granularity::Hour, Class::Any) => 2,
            (Granularity::Day, Class::Any) => 3,
        });
        ids.push(*check_id);
        buckets.push(from_ms(*bucket));
        up.push(t.durations.up_ms);
        down.push(t.durations.down_ms);
        no_data.push(t.durations.no_data_ms);
        maint.push(t.durations.maintenance_ms);
        runs.push(int4(t.runs));
        failures.push(int4(t.failures));
        us.push(t.total_us_sum);
        histograms.extend(t.histogram.iter().map(|c| int4(*c)));
    }
    let statement = client.prepare_cached(UPSERT_ROLLUPS).await?;
    client
        .execute(
            &statement,
            &[
                &g,
                &ids,
                &buckets,
                &up,
                &down,
                &no_data,
                &maint,
                &runs,
                &failures,
                &us,
                &histograms,
                &(BUCKETS as i32),
            ],
        )
        .await?;
    Ok(())
}

/// Reads a stored rollup row's columns (in the order of [`ROLLUP_COLUMNS`]
/// starting at `at`) into a [`Tally`].
pub fn tally_from_row(row: &tokio_postgres::Row, at: usize) -> Tally {
    let mut t = Tally::default();
    t.durations.up_ms = row.get(at);
    t.durations.down_ms = row.get(at + 1);
    t.durations.no_data_ms = row.get(at + 2);
    t.durations.maintenance_ms = row.get(at + 3);
    t.runs = i64::from(row.get::<_, i32>(at + 4));
    t.failures = i64::from(row.get::<_, i32>(at + 5));
    t.total_us_sum = row.get(at + 6);
    let histogram: Vec<i32> = row.get(at + 7);
    for (slot, count) in t.histogram.iter_mut().zip(histogram) {
        *slot = i64::from(count);
    }
    t
}

/// The columns [`tally_from_row`] reads, in order.
pub const ROLLUP_COLUMNS: &str =
    "up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures, total_us_sum, latency_histogram";

const OPEN_INCIDENTS: &str = "
INSERT INTO incidents (id, check_id, check_name, opened_at, confirmed_at, first_error, last_error, in_maintenance)
SELECT u.id, u.check_id, u.name, u.opened_at, u.confirmed_at,
       coalesce(u.first_error, (SELECT r.error_message FROM check_results r
                                 WHERE r.check_id = u.check_id AND r.slot = u.opened_at)),
       u.last_error, u.maint
  FROM unnest($1::int8[], $2::int8[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::text[],
              $8::bool[]) AS u(id, check_id, name, opened_at, confirmed_at, first_error, last_error, maint)
ON CONFLICT (id) DO NOTHING";

const FAILING_INCIDENTS: &str = "
UPDATE incidents i SET last_error = u.error
  FROM unnest($1::int8[], $2::text[]) AS u(id, error)
 WHERE i.id = u.id AND i.resolved_at IS NULL";

const RESOLVE_INCIDENTS: &str = "
UPDATE incidents i SET resolved_at = u.at, resolution = 'recovered'
  FROM unnest($1::int8[], $2::timestamptz[]) AS u(id, at)
 WHERE i.id = u.id AND i.resolved_at IS NULL";

/// One incident being opened, as [`apply_incidents`] writes it: the
/// worker knows the first failing result's error only when that result is
/// in the same batch (`first_error`); otherwise it is read back from the
/// stored result at `opened_at`.
pub async fn apply_incidents(
    client: &impl GenericClient,
    ops: Vec<IncidentOp>,
) -> Result<(), tokio_postgres::Error> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut open =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut failing: (Vec<i64>, Vec<Option<String>>) = (Vec::new(), Vec::new());
    let mut resolve: (Vec<i64>, Vec<DateTime<Utc>>) = (Vec::new(), Vec::new());
    for op in compact(ops) {
        match op {
            IncidentOp::Open {
                id,
                check_id,
                check_name,
                opened_at,
                confirmed_at,
                first_error,
                error,
                in_maintenance,
            } => {
                open.0.push(id);
                open.1.push(check_id);
                open.2.push(check_name);
                open.3.push(opened_at);
                open.4.push(confirmed_at);
                open.5.push(first_error);
                open.6.push(error);
                open.7.push(in_maintenance);
            }
            IncidentOp::Failing { id, error } => {
                failing.0.push(id);
                failing.1.push(error);
            }
            IncidentOp::Resolve { id, resolved_at } => {
                resolve.0.push(id);
                resolve.1.push(resolved_at);
            }
        }
    }
    if !open.0.is_empty() {
        let s = client.prepare_cached(OPEN_INCIDENTS).await?;
        client.execute(&s, &[&open.0, &open.1, &open.2, &open.3, &open.4, &open.5, &open.6, &open.7]).await?;
    }
    if !failing.0.is_empty() {
        let s = client.prepare_cached(FAILING_INCIDENTS).await?;
        client.execute(&s, &[&failing.0, &failing.1]).await?;
    }
    if !resolve.0.is_empty() {
        let s = client.prepare_cached(RESOLVE_INCIDENTS).await?;
        client.execute(&s, &[&resolve.0, &resolve.1]).await?;
    }
    Ok(())
}

/// The declared maintenance windows. A window that cannot be read is left
/// out (and logged): history then counts its time by state, as before the
/// window existed.
pub async fn load_windows(client: &impl GenericClient) -> Result<Windows, tokio_postgres::Error> {
    let mut out = Vec::new();
    for row in client.query("SELECT name, spec FROM maintenance_windows ORDER BY name", &[]).await? {
        let name: String = row.get(0);
        match serde_json::from_value::<WindowSpec>(row.get(1)) {
            Ok(spec) => out.push((name, spec)),
            Err(e) => tracing::error!(window = %name, error = %e, "stored maintenance window cannot be read"),
        }
    }
    Ok(Windows::new(out))
}

/// The windows from `cache`, read again when older than its refresh period.
pub async fn cached_windows(
    client: &impl GenericClient,
    cache: &Cache,
) -> Result<Arc<Windows>, tokio_postgres::Error> {
    if let Some(w) = cache.fresh() {
        return Ok(w);
    }
    Ok(cache.put(load_windows(client).await?))
}

// ---- reads: reports, bars and incident lists --------------------------------
//
// The reads take `tokio_postgres::GenericClient`: the CLI holds a plain
// client, the web role a pooled one (which derefs to it).

/// A declared check as a report selects it.
#[derive(Debug, Clone)]
pub struct CheckRef {
    pub id: i64,
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The check's interval now (for raw rows stored without theirs).
    pub interval_ms: i64,
}

/// The declared checks named in `names` (all when empty) whose labels
/// contain `labels` (a JSON object), by name.
pub async fn select_checks(
    client: &impl tokio_postgres::GenericClient,
    names: &[String],
    labels: &serde_json::Value,
) -> Result<Vec<CheckRef>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, name, coalesce(spec->'labels', '{}'::jsonb), interval_ms FROM checks
              WHERE (cardinality($1::text[]) = 0 OR name = ANY($1))
                AND coalesce(spec->'labels', '{}'::jsonb) @> $2::jsonb
              ORDER BY name",
            &[&names, labels],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| CheckRef {
            id: r.get(0),
            name: r.get(1),
            // Labels are validated as strings on apply; anything else would
            // only make maintenance windows select by fewer labels.
            labels: serde_json::from_value(r.get(2)).unwrap_or_default(),
            interval_ms: i64::from(r.get::<_, i32>(3)),
        })
        .collect())
}

/// The names of `names` that no declared check has (and, with
/// `or_incidents`, that no incident row carries either), sorted.
pub async fn unknown_names(
    client: &impl tokio_postgres::GenericClient,
    names: &[String],
    or_incidents: bool,
) -> Result<Vec<String>, tokio_postgres::Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT DISTINCT n FROM unnest($1::text[]) AS n
              WHERE NOT EXISTS (SELECT 1 FROM checks c WHERE c.name = n)
                AND NOT ($2 AND EXISTS (SELECT 1 FROM incidents i WHERE i.check_name = n))
              ORDER BY n",
            &[&names, &or_incidents],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Sums of `latency_histogram[i]` for every bucket, as one `int8[]`:
/// element-wise sums in SQL keep a 30-day report of 10,000 checks to one
/// pass over the rows (no unnest, no array aggregation in Rust).
pub(crate) fn histogram_sums() -> String {
    // A group has at least one row, and no element is NULL: never NULL.
    (1..=BUCKETS).map(|i| format!("sum(latency_histogram[{i}])")).collect::<Vec<_>>().join(", ")
}

/// The rollup rows of `granularity` with buckets in `[from, to)` summed per
/// check, for the checks `ids` (all checks when `None`). Checks without
/// rows are absent.
pub async fn sum_rollups(
    client: &impl tokio_postgres::GenericClient,
    granularity: Granularity,
    ids: Option<&[i64]>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<std::collections::HashMap<i64, Tally>, tokio_postgres::Error> {
    // The table name comes from the enum, never from input.
    let sql = format!(
        "SELECT check_id, sum(up_ms)::int8, sum(down_ms)::int8, sum(no_data_ms)::int8,
                sum(maintenance_ms)::int8, sum(runs)::int8, sum(failures)::int8, sum(total_us_sum)::int8,
                ARRAY[{}]::int8[]
           FROM {}
          WHERE ($1::int8[] IS NULL OR check_id = ANY($1)) AND bucket >= $2 AND bucket < $3
          GROUP BY check_id",
        histogram_sums(),
        granularity.table()
    );
    let ids: Option<Vec<i64>> = ids.map(<[i64]>::to_vec);
    // 48 sums per check: under the default work_mem (4 MB) the aggregate of
    // 10,000 checks sorts on disk instead of hashing in memory. Raised for
    // this statement only, and reset: the connection may be a pool's.
    client.batch_execute("SET work_mem = '64MB'").await?;
    let rows = client.query(&sql, &[&ids, &from, &to]).await;
    let reset = client.batch_execute("RESET work_mem").await;
    let rows = rows?;
    reset?;
    Ok(rows
        .iter()
        .map(|r| {
            let mut t = Tally::default();
            t.durations.up_ms = r.get(1);
            t.durations.down_ms = r.get(2);
            t.durations.no_data_ms = r.get(3);
            t.durations.maintenance_ms = r.get(4);
            t.runs = r.get(5);
            t.failures = r.get(6);
            t.total_us_sum = r.get(7);
            for (slot, count) in t.histogram.iter_mut().zip(r.get::<_, Vec<i64>>(8)) {
                *slot = count;
            }
            (r.get::<_, i64>(0), t)
        })
        .collect())
}

/// A stored result as a raw-window report counts it.
#[derive(Debug, Clone)]
pub struct RawResult {
    pub check_id: i64,
    pub slot: DateTime<Utc>,
    pub success: bool,
    pub total_ms: f32,
    /// The state after the result (`check_results.state`).
    pub state: Option<String>,
    /// The stored interval, else the check's.
    pub interval_ms: i64,
}

/// The results of `ids` whose slot's time reaches into `[from, to)`: the
/// slots starting inside, and each check's last slot before `from` (whose
/// interval may reach into it; slots of one check do not overlap, so no
/// earlier one can). Looking back at most a day: the longest interval.
pub async fn raw_results(
    client: &impl tokio_postgres::GenericClient,
    ids: &[i64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RawResult>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT r.check_id, r.slot, r.success, r.total_ms, r.state, coalesce(r.interval_ms, c.interval_ms)
               FROM check_results r JOIN checks c ON c.id = r.check_id
              WHERE r.check_id = ANY($1) AND r.slot >= $2 AND r.slot < $3
             UNION ALL
             SELECT p.check_id, p.slot, p.success, p.total_ms, p.state, coalesce(p.interval_ms, c.interval_ms)
               FROM checks c
               CROSS JOIN LATERAL (SELECT * FROM check_results r
                                    WHERE r.check_id = c.id AND r.slot < $2 AND r.slot >= $2::timestamptz - interval '1 day'
                                    ORDER BY r.slot DESC LIMIT 1) p
              WHERE c.id = ANY($1)
                AND p.slot + coalesce(p.interval_ms, c.interval_ms) * interval '1 millisecond' > $2",
            &[&ids, &from, &to],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RawResult {
            check_id: r.get(0),
            slot: r.get(1),
            success: r.get(2),
            total_ms: r.get(3),
            state: r.get(4),
            interval_ms: i64::from(r.get::<_, i32>(5)),
        })
        .collect())
}

/// The missed ranges of `ids` that may reach into `[from, to)` (the caller
/// clips them slot by slot).
pub async fn raw_missed(
    client: &impl tokio_postgres::GenericClient,
    ids: &[i64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<MissedFact>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT m.check_id, m.first_slot, m.last_slot, m.slots, coalesce(m.interval_ms, c.interval_ms)
               FROM missed_slots m JOIN checks c ON c.id = m.check_id
              WHERE m.check_id = ANY($1) AND m.first_slot < $3 AND m.last_slot >= $2::timestamptz - interval '1 day'",
            &[&ids, &from, &to],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| MissedFact {
            check_id: r.get(0),
            first_ms: r.get::<_, DateTime<Utc>>(1).timestamp_millis(),
            last_ms: r.get::<_, DateTime<Utc>>(2).timestamp_millis(),
            slots: i64::from(r.get::<_, i32>(3)),
            interval_ms: i64::from(r.get::<_, i32>(4)),
        })
        .collect())
}

/// What a report says about a check's incidents in a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IncidentSums {
    pub count: i64,
    /// Mean of resolved_at − opened_at over the resolved ones.
    pub mttr_seconds: Option<f64>,
    /// Longest resolved_at − opened_at; an open one counts until `until`.
    pub longest_seconds: Option<f64>,
}

/// Per check of `ids` (all when `None`): the incidents open at some time in
/// `[from, to)` (opened before `to`, not resolved by `from`).
pub async fn incident_sums(
    client: &impl tokio_postgres::GenericClient,
    ids: Option<&[i64]>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<std::collections::HashMap<i64, IncidentSums>, tokio_postgres::Error> {
    let ids: Option<Vec<i64>> = ids.map(<[i64]>::to_vec);
    let rows = client
        .query(
            "SELECT check_id, count(*)::int8,
                    (avg(extract(epoch FROM resolved_at - opened_at)) FILTER (WHERE resolved_at IS NOT NULL))::float8,
                    max(extract(epoch FROM greatest(coalesce(resolved_at, $4) - opened_at, interval '0')))::float8
               FROM incidents
              WHERE ($1::int8[] IS NULL OR check_id = ANY($1)) AND opened_at < $3
                AND (resolved_at IS NULL OR resolved_at > $2)
              GROUP BY check_id",
            &[&ids, &from, &to, &until],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let sums = IncidentSums { count: r.get(1), mttr_seconds: r.get(2), longest_seconds: r.get(3) };
            (r.get::<_, i64>(0), sums)
        })
        .collect())
}

/// The rollup rows of `ids` with buckets in `[from, to)`, by check and
/// bucket.
pub async fn rollup_rows(
    client: &impl tokio_postgres::GenericClient,
    granularity: Granularity,
    ids: &[i64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(i64, DateTime<Utc>, Tally)>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT check_id, bucket, {ROLLUP_COLUMNS} FROM {}
          WHERE check_id = ANY($1) AND bucket >= $2 AND bucket < $3 ORDER BY check_id, bucket",
        granularity.table()
    );
    let rows = client.query(&sql, &[&ids, &from, &to]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), tally_from_row(r, 2))).collect())
}

/// An incident row as stored, with its check's spec when the check is
/// still declared (the errors are unmasked: they may echo a secret).
#[derive(Debug, Clone)]
pub struct IncidentRow {
    pub id: i64,
    pub check_id: i64,
    pub check_name: String,
    pub opened_at: DateTime<Utc>,
    pub confirmed_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub first_error: Option<String>,
    pub last_error: Option<String>,
    pub in_maintenance: bool,
    pub alerts_sent: i32,
    pub spec: Option<serde_json::Value>,
}

/// Incidents of the check named `check` (any when `None`), only open ones
/// with `open_only`, only those not resolved by `since`; newest first.
pub async fn incident_rows(
    client: &impl tokio_postgres::GenericClient,
    check: Option<&str>,
    open_only: bool,
    since: Option<DateTime<Utc>>,
) -> Result<Vec<IncidentRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT i.id, i.check_id, i.check_name, i.opened_at, i.confirmed_at, i.resolved_at, i.resolution,
                    i.first_error, i.last_error, i.in_maintenance, i.alerts_sent, c.spec
               FROM incidents i LEFT JOIN checks c ON c.id = i.check_id
              WHERE ($1::text IS NULL OR i.check_name = $1 OR c.name = $1)
                AND (NOT $2 OR i.resolved_at IS NULL)
                AND ($3::timestamptz IS NULL OR i.resolved_at IS NULL OR i.resolved_at > $3)
              ORDER BY i.opened_at DESC, i.id DESC",
            &[&check, &open_only, &since],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| IncidentRow {
            id: r.get(0),
            check_id: r.get(1),
            check_name: r.get(2),
            opened_at: r.get(3),
            confirmed_at: r.get(4),
            resolved_at: r.get(5),
            resolution: r.get(6),
            first_error: r.get(7),
            last_error: r.get(8),
            in_maintenance: r.get(9),
            alerts_sent: r.get(10),
            spec: r.get(11),
        })
        .collect())
}

/// The declared maintenance windows, for a reader holding a plain client
/// ([`load_windows`] takes the pool's client type); the same rule for a
/// window that cannot be read.
pub async fn read_windows(
    client: &impl tokio_postgres::GenericClient,
) -> Result<Windows, tokio_postgres::Error> {
    let mut out = Vec::new();
    for row in client.query("SELECT name, spec FROM maintenance_windows ORDER BY name", &[]).await? {
        let name: String = row.get(0);
        match serde_json::from_value::<WindowSpec>(row.get(1)) {
            Ok(spec) => out.push((name, spec)),
            Err(e) => tracing::error!(window = %name, error = %e, "stored maintenance window cannot be read"),
        }
    }
    Ok(Windows::new(out))
}

// (end of reads)

// ---- rebuild and retention --------------------------------------------------
//
// `rollups rebuild` reads one check chunk's raw rows and stored rollups in
// one read-only REPEATABLE READ snapshot ([`Snapshot`]), then applies its
// corrections with [`upsert_rollups`] and [`delete_empty_rollups`] in a
// separate transaction. Retention deletes old rollup and incident rows by
// index, in bounded batches ([`prune_rollups`], [`prune_incidents`]).

/// A check as a rebuild counts it: what the writers took from the job (the
/// name and labels maintenance windows match, the interval of rows stored
/// before the interval was).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckInfo {
    pub id: i64,
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub interval_ms: i64,
}

/// One stored result row, as a rebuild reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResult {
    pub check_id: i64,
    pub slot_ms: i64,
    /// `check_results.state`; NULL before migration 0005 and for results of
    /// a check paused or deleted while its job was in flight.
    pub state: Option<String>,
    /// `check_results.interval_ms`; NULL before migration 0005.
    pub interval_ms: Option<i64>,
    pub success: bool,
    pub total_ms: f32,
}

/// One stored missed-slot range, as a rebuild reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredMissed {
    pub check_id: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub slots: i64,
    /// `missed_slots.interval_ms`; NULL before migration 0005.
    pub interval_ms: Option<i64>,
}

/// The check ids a rebuild of `[from, to)` looks at: every declared check,
/// and every id with raw rows or rollup rows in the range (a deleted
/// check's history is rebuilt too). The partitioned results table and the
/// rollup tables are read by a loose index scan (one index probe per
/// distinct check), not scanned.
const REBUILD_IDS: &str = "
WITH RECURSIVE r AS (
    (SELECT check_id FROM check_results WHERE slot >= $1 AND slot < $2 ORDER BY check_id LIMIT 1)
    UNION ALL
    SELECT (SELECT x.check_id FROM check_results x
             WHERE x.check_id > r.check_id AND x.slot >= $1 AND x.slot < $2 ORDER BY x.check_id LIMIT 1)
      FROM r WHERE r.check_id IS NOT NULL
), h AS (
    (SELECT check_id FROM rollup_hours WHERE bucket >= $1 AND bucket < $2 ORDER BY check_id LIMIT 1)
    UNION ALL
    SELECT (SELECT x.check_id FROM rollup_hours x
             WHERE x.check_id > h.check_id AND x.bucket >= $1 AND x.bucket < $2 ORDER BY x.check_id LIMIT 1)
      FROM h WHERE h.check_id IS NOT NULL
), d AS (
    (SELECT check_id FROM rollup_days WHERE bucket >= $1 AND bucket < $2 ORDER BY check_id LIMIT 1)
    UNION ALL
    SELECT (SELECT x.check_id FROM rollup_days x
             WHERE x.check_id > d.check_id AND x.bucket >= $1 AND x.bucket < $2 ORDER BY x.check_id LIMIT 1)
      FROM d WHERE d.check_id IS NOT NULL
)
SELECT id FROM checks
UNION SELECT check_id FROM r WHERE check_id IS NOT NULL
UNION SELECT check_id FROM h WHERE check_id IS NOT NULL
UNION SELECT check_id FROM d WHERE check_id IS NOT NULL
UNION SELECT check_id FROM missed_slots WHERE last_slot >= $1 AND first_slot < $2
ORDER BY 1";

/// The check ids to rebuild when no `--check` is given (see [`REBUILD_IDS`]).
/// `from`/`to` bound the raw rows and buckets looked at.
pub async fn rebuild_check_ids(
    client: &impl GenericClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<i64>, tokio_postgres::Error> {
    Ok(client.query(REBUILD_IDS, &[&from, &to]).await?.iter().map(|r| r.get(0)).collect())
}

/// The ids of the checks named `names`, in order; `None` for a name no
/// check has.
pub async fn check_ids_by_name(
    client: &impl GenericClient,
    names: &[String],
) -> Result<Vec<Option<i64>>, tokio_postgres::Error> {
    let rows = client.query("SELECT name, id FROM checks WHERE name = ANY($1)", &[&names]).await?;
    let found: std::collections::HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(names.iter().map(|n| found.get(n).copied()).collect())
}

/// The time of the oldest stored raw row (result or missed slot), if any:
/// where the first migrate's backfill starts.
pub async fn oldest_raw(client: &impl GenericClient) -> Result<Option<DateTime<Utc>>, tokio_postgres::Error> {
    Ok(client
        .query_one(
            "SELECT least((SELECT min(slot) FROM check_results), (SELECT min(first_slot) FROM missed_slots))",
            &[],
        )
        .await?
        .get(0))
}

/// One read-only REPEATABLE READ transaction: every read of a rebuild's
/// chunk sees the same committed state, so the raw rows and the rollups it
/// compares agree (a writer commits both together).
pub struct Snapshot<'a>(deadpool_postgres::Transaction<'a>);

/// Longest a snapshot's statement may run: the pool's 60 s limit is for
/// the roles' short statements; a chunk of checks' 30 days of results is
/// read in one streamed statement.
const SNAPSHOT_STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = '15min'";

impl<'a> Snapshot<'a> {
    pub async fn begin(
        client: &'a mut deadpool_postgres::Client,
    ) -> Result<Snapshot<'a>, tokio_postgres::Error> {
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        tx.batch_execute(SNAPSHOT_STATEMENT_TIMEOUT).await?;
        Ok(Snapshot(tx))
    }

    /// The checks among `ids` that still exist.
    pub async fn checks(&self, ids: &[i64]) -> Result<Vec<CheckInfo>, tokio_postgres::Error> {
        let rows = self
            .0
            .query(
                "SELECT id, name, interval_ms, coalesce(spec->'labels', '{}') FROM checks WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| CheckInfo {
                id: r.get(0),
                name: r.get(1),
                interval_ms: i64::from(r.get::<_, i32>(2)),
                labels: serde_json::from_value(r.get(3)).unwrap_or_default(),
            })
            .collect())
    }

    pub async fn windows(&self) -> Result<Windows, tokio_postgres::Error> {
        load_windows(&self.0).await
    }

    /// The stored rollup rows of `ids` whose bucket starts in `[from, to)`.
    pub async fn rollups(
        &self,
        ids: &[i64],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Rollups, tokio_postgres::Error> {
        let sql = format!(
            "SELECT 0::int2, check_id, bucket, {ROLLUP_COLUMNS} FROM rollup_hours
              WHERE check_id = ANY($1) AND bucket >= $2 AND bucket < $3
             UNION ALL
             SELECT 1::int2, check_id, bucket, {ROLLUP_COLUMNS} FROM rollup_days
              WHERE check_id = ANY($1) AND bucket >= $2 AND bucket < $3"
        );
        let mut out = Rollups::new();
        for row in self.0.query(&sql, &[&ids, &from, &to]).await? {
            let g = if row.get::<_, i16>(0) == 0 { Granularity::Hour } else { Granularity::Day };
            let bucket: DateTime<Utc> = row.get(2);
            out.insert((row.get(1), g, bucket.timestamp_millis()), tally_from_row(&row, 3));
        }
        Ok(out)
    }

    /// Calls `each` for every result of `ids` with a slot in `[from, to)`,
    /// streamed: a chunk's results are never all in memory.
    pub async fn each_result(
        &self,
        ids: &[i64],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        mut each: impl FnMut(StoredResult),
    ) -> Result<(), tokio_postgres::Error> {
        use futures_util::TryStreamExt;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&ids, &from, &to];
        let rows = self
            .0
            .query_raw(
                "SELECT check_id, slot, state, interval_ms, success, total_ms FROM check_results
                  WHERE check_id = ANY($1) AND slot >= $2 AND slot < $3",
                params,
            )
            .await?;
        futures_util::pin_mut!(rows);
        while let Some(r) = rows.try_next().await? {
            each(StoredResult {
                check_id: r.get(0),
                slot_ms: r.get::<_, DateTime<Utc>>(1).timestamp_millis(),
                state: r.get(2),
                interval_ms: r.get::<_, Option<i32>>(3).map(i64::from),
                success: r.get(4),
                total_ms: r.get(5),
            });
        }
        Ok(())
    }

    /// The missed ranges of `ids` that end at or after `from` and start
    /// before `to`.
    pub async fn missed(
        &self,
        ids: &[i64],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredMissed>, tokio_postgres::Error> {
        let rows = self
            .0
            .query(
                "SELECT check_id, first_slot, last_slot, slots, interval_ms FROM missed_slots
                  WHERE check_id = ANY($1) AND last_slot >= $2 AND first_slot < $3",
                &[&ids, &from, &to],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredMissed {
                check_id: r.get(0),
                first_ms: r.get::<_, DateTime<Utc>>(1).timestamp_millis(),
                last_ms: r.get::<_, DateTime<Utc>>(2).timestamp_millis(),
                slots: i64::from(r.get::<_, i32>(3)),
                interval_ms: r.get::<_, Option<i32>>(4).map(i64::from),
            })
            .collect())
    }

    /// Ends the (read-only) transaction.
    pub async fn finish(self) -> Result<(), tokio_postgres::Error> {
        self.0.commit().await
    }
}

/// Deletes the rollup rows `keys` that are all zero now (a rebuild's
/// corrections emptied them; live upkeep never writes such a row). A row a
/// writer added to meanwhile is not zero and stays.
const DELETE_EMPTY: &str = "
DELETE FROM {table} r USING unnest($1::int8[], $2::timestamptz[]) AS u(check_id, bucket)
 WHERE r.check_id = u.check_id AND r.bucket = u.bucket
   AND r.up_ms = 0 AND r.down_ms = 0 AND r.no_data_ms = 0 AND r.maintenance_ms = 0
   AND r.runs = 0 AND r.failures = 0 AND r.total_us_sum = 0
   AND NOT EXISTS (SELECT 1 FROM unnest(r.latency_histogram) AS h(n) WHERE h.n <> 0)";

/// Deletes the rows of `keys` that are all zero; returns how many.
pub async fn delete_empty_rollups(
    client: &impl GenericClient,
    keys: &[(i64, Granularity, i64)],
) -> Result<u64, tokio_postgres::Error> {
    let mut deleted = 0;
    for g in Granularity::ALL {
        let (ids, buckets): (Vec<i64>, Vec<DateTime<Utc>>) =
            keys.iter().filter(|k| k.1 == g).map(|k| (k.0, from_ms(k.2))).unzip();
        if !ids.is_empty() {
            let sql = DELETE_EMPTY.replace("{table}", g.table());
            deleted += client.execute(&sql, &[&ids, &buckets]).await?;
        }
    }
    Ok(deleted)
}

/// Deletes up to `batch` rollup rows of `granularity` whose bucket ended
/// more than `keep_days` ago, oldest first, through the `bucket` index
/// (`rollup_hours_bucket_idx`, `rollup_days_bucket_idx`). Returns how many.
pub async fn prune_rollups(
    client: &impl tokio_postgres::GenericClient,
    granularity: Granularity,
    keep_days: u32,
    batch: i64,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "DELETE FROM {t} WHERE (check_id, bucket) IN (
             SELECT check_id, bucket FROM {t}
              WHERE bucket < now() - $1::float8 * interval '1 day' - $2::float8 * interval '1 millisecond'
              ORDER BY bucket LIMIT $3)",
        t = granularity.table()
    );
    client.execute(&sql, &[&f64::from(keep_days), &(granularity.width_ms() as f64), &batch]).await
}

/// Deletes up to `batch` incidents resolved more than `keep_days` ago
/// (open ones are always kept). Read through `incidents_opened_idx`: an
/// incident resolved before the cutoff opened before it too.
pub async fn prune_incidents(
    client: &impl tokio_postgres::GenericClient,
    keep_days: u32,
    batch: i64,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM incidents WHERE id IN (
                 SELECT id FROM incidents
                  WHERE opened_at < now() - $1::float8 * interval '1 day'
                    AND resolved_at < now() - $1::float8 * interval '1 day'
                  ORDER BY opened_at LIMIT $2)",
            &[&f64::from(keep_days), &batch],
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_of_one_run_is_added_in_place_anything_else_as_an_array() {
        let mut t = Tally::default();
        assert_eq!(class(&t), Class::OneBucket, "time only");
        t.runs = 1;
        t.histogram[12] = 1;
        assert_eq!(class(&t), Class::OneBucket, "one success");
        t.runs = 3;
        t.failures = 1;
        t.histogram[12] = 2;
        assert_eq!(class(&t), Class::OneBucket, "two successes in one bucket");
        t.histogram[13] = 1;
        assert_eq!(class(&t), Class::Any, "two buckets");
        let mut f = Tally { runs: 1, failures: 1, ..Tally::default() };
        assert_eq!(class(&f), Class::OneBucket, "one failure: no histogram");
        f.histogram[3] = 1;
        assert_eq!(class(&f), Class::Any, "a histogram that is not the successes");
        let negative = Tally { runs: -1, failures: -1, ..Tally::default() };
        assert_eq!(class(&negative), Class::Any, "a rebuild's correction");
    }
}
