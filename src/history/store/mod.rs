//! Every SQL statement of history. This file: what the writers run inside
//! their own transactions (rollup upserts, incident rows, the maintenance
//! windows they count with). `reads.rs`: reports, bars, incident lists.
//! `rebuild.rs`: `rollups rebuild` and retention. `totals.rs`: the
//! cumulative daily totals (window sums, recount, retention's baseline).

mod reads;
mod rebuild;
mod totals;

pub use reads::*;
pub use rebuild::*;
pub use totals::*;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use crate::history::buckets::{from_ms, Granularity};
use crate::history::histogram::BUCKETS;
use crate::history::incidents::{compact, IncidentOp};
use crate::history::rollup::{Rollups, Tally};
use crate::history::totals::steps;
use crate::history::windows::{Cache, Windows};
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
///
/// The same statement adds a late increment to the cumulative daily
/// totals (`rollup_day_totals`, see `totals.rs`), which exist for closed
/// days only: `x` holds the batch's steps (`totals::Step`, $13–$24); each
/// adds its sum to the stored totals rows in its range of days
/// (`totals_one` in place, like `g` 1, when `k` names the one histogram
/// bucket it adds to; `totals_any` adds the whole array). A step's rows do
/// not overlap another step's. Writers never create totals rows (the
/// close does, [`close_day_totals`]) and take no lock for them: a batch of
/// today's results, today not being closed, updates none. Why that is
/// safe while a day is being closed: see [`close_day_totals`].
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
), x AS (
    SELECT * FROM unnest($13::int8[], $14::timestamptz[], $15::timestamptz[], $16::int8[], $17::int8[], $18::int8[],
                         $19::int8[], $20::int4[], $21::int4[], $22::int8[], $23::int4[])
           WITH ORDINALITY AS x(check_id, since, until, up, down, no_data, maint, runs, failures, us, k, ord)
), totals_one AS (
    UPDATE rollup_day_totals t SET
        up_ms = t.up_ms + x.up, down_ms = t.down_ms + x.down, no_data_ms = t.no_data_ms + x.no_data,
        maintenance_ms = t.maintenance_ms + x.maint, runs = t.runs + x.runs, failures = t.failures + x.failures,
        total_us_sum = t.total_us_sum + x.us,
        latency_histogram[x.k] = t.latency_histogram[x.k] + (x.runs - x.failures)
      FROM x
     WHERE x.k IS NOT NULL AND t.check_id = x.check_id AND t.bucket >= x.since
       AND (x.until IS NULL OR t.bucket < x.until)
    RETURNING 1
), totals_any AS (
    UPDATE rollup_day_totals t SET
        up_ms = t.up_ms + x.up, down_ms = t.down_ms + x.down, no_data_ms = t.no_data_ms + x.no_data,
        maintenance_ms = t.maintenance_ms + x.maint, runs = t.runs + x.runs, failures = t.failures + x.failures,
        total_us_sum = t.total_us_sum + x.us,
        latency_histogram = ARRAY(SELECT a + b FROM unnest(t.latency_histogram,
                                                           ($24::int4[])[(x.ord - 1) * $12::int4 + 1 : x.ord * $12::int4])
                                      WITH ORDINALITY AS h(a, b, i) ORDER BY i)
      FROM x
     WHERE x.k IS NULL AND t.check_id = x.check_id AND t.bucket >= x.since
       AND (x.until IS NULL OR t.bucket < x.until)
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

/// The 1-based histogram element a one-bucket tally adds its successes to
/// (element 1, adding 0, when it has none); `None` for any other tally.
fn one_bucket(t: &Tally) -> Option<i32> {
    if class(t) != Class::OneBucket {
        return None;
    }
    let at = t.histogram.iter().position(|c| *c != 0).unwrap_or(0);
    Some(at as i32 + 1)
}

fn int4(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Adds `rollups` to the stored rows (creating missing ones) and to the
/// cumulative daily totals of closed days, in the caller's transaction.
/// Also how a rebuild applies its corrections (negative amounts included).
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
    let steps = steps(rollups);
    let m = steps.len();
    let mut s_ids = Vec::with_capacity(m);
    let mut s_from: Vec<DateTime<Utc>> = Vec::with_capacity(m);
    let mut s_until: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(m);
    let (mut s_up, mut s_down, mut s_no_data, mut s_maint) =
        (Vec::with_capacity(m), Vec::with_capacity(m), Vec::with_capacity(m), Vec::with_capacity(m));
    let (mut s_runs, mut s_failures, mut s_us, mut s_k) =
        (Vec::with_capacity(m), Vec::with_capacity(m), Vec::with_capacity(m), Vec::with_capacity(m));
    let mut s_histograms: Vec<i32> = Vec::with_capacity(m * BUCKETS);
    for s in &steps {
        let t = &s.added;
        s_ids.push(s.check_id);
        s_from.push(from_ms(s.from));
        s_until.push(s.until.map(from_ms));
        s_up.push(t.durations.up_ms);
        s_down.push(t.durations.down_ms);
        s_no_data.push(t.durations.no_data_ms);
        s_maint.push(t.durations.maintenance_ms);
        s_runs.push(int4(t.runs));
        s_failures.push(int4(t.failures));
        s_us.push(t.total_us_sum);
        s_k.push(one_bucket(t));
        s_histograms.extend(t.histogram.iter().map(|c| int4(*c)));
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
                &s_ids,
                &s_from,
                &s_until,
                &s_up,
                &s_down,
                &s_no_data,
                &s_maint,
                &s_runs,
                &s_failures,
                &s_us,
                &s_k,
                &s_histograms,
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

/// How many columns [`ROLLUP_COLUMNS`] names.
pub const ROLLUP_FIELDS: usize = 8;

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

    #[test]
    fn a_one_bucket_tally_names_its_bucket() {
        let mut t = Tally::default();
        assert_eq!(one_bucket(&t), Some(1), "nothing to add: any element, adding 0");
        t.runs = 2;
        t.histogram[12] = 2;
        assert_eq!(one_bucket(&t), Some(13), "1-based");
        t.histogram[3] = 1;
        assert_eq!(one_bucket(&t), None);
    }

    #[test]
    fn the_field_count_matches_the_column_list() {
        assert_eq!(ROLLUP_COLUMNS.split(", ").count(), ROLLUP_FIELDS);
    }
}
