//! The SQL of the cumulative daily totals (`rollup_day_totals`, see
//! `history/totals.rs` and docs/history.md): a window of days read as two
//! rows per check, a rebuild's recount from the daily rows, and the
//! baseline retention folds pruned days into. Their live upkeep is part of
//! `UPSERT_ROLLUPS` (`mod.rs`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{tally_from_row, ROLLUP_COLUMNS, ROLLUP_FIELDS};
use crate::history::buckets::{from_ms, to_ms, Granularity, DAY_MS};
use crate::history::histogram::BUCKETS;
use crate::history::rollup::Tally;
use crate::history::totals::window;

/// The sums of the daily rows of `ids` (every declared check when `None`)
/// with buckets in `[from, to)`, from the totals rows at both ends of the
/// window; what summing those daily rows gives (`sum_rollup_rows`),
/// exactly. A check with no daily row in the window is absent.
///
/// Each end is "the latest totals row before it". Done as one index
/// lookup per check and end (a `LATERAL … ORDER BY bucket DESC LIMIT 1`)
/// that takes ~130 ms for 10,000 checks on the 2-core machine; instead the
/// rows of the one day where that row almost always is (the day before
/// the end: a check that ran that day has a row for it) are read as one
/// range of `rollup_day_totals_bucket_idx` and hash-joined (~40 ms), and
/// only a check without a row that day falls back to the lookup (a
/// `LATERAL` gated on that, run for no other check).
pub async fn sum_day_totals(
    client: &impl tokio_postgres::GenericClient,
    ids: Option<&[i64]>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashMap<i64, Tally>, tokio_postgres::Error> {
    // The last bucket before each end (buckets are whole UTC days).
    let hi_day = from_ms(Granularity::Day.ceil(to_ms(to)) - DAY_MS);
    let lo_day = from_ms(Granularity::Day.ceil(to_ms(from)) - DAY_MS);
    let pick = |end: &str| -> String {
        ROLLUP_COLUMNS
            .split(", ")
            .map(|c| format!("coalesce({end}_day.{c}, {end}_before.{c})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let checks = match ids {
        None => "(SELECT id FROM checks) AS c(id)",
        Some(_) => "unnest($3::int8[]) AS c(id)",
    };
    // Buckets are compared here, not decoded: an anchor's is -infinity.
    let sql = format!(
        "SELECT c.id, {hi}, {lo}
           FROM {checks}
           LEFT JOIN rollup_day_totals hi_day ON hi_day.check_id = c.id AND hi_day.bucket = $1
           LEFT JOIN rollup_day_totals lo_day ON lo_day.check_id = c.id AND lo_day.bucket = $2
           LEFT JOIN LATERAL (SELECT * FROM rollup_day_totals t
                               WHERE hi_day.check_id IS NULL AND t.check_id = c.id AND t.bucket < $1
                               ORDER BY t.bucket DESC LIMIT 1) hi_before ON true
           LEFT JOIN LATERAL (SELECT * FROM rollup_day_totals t
                               WHERE lo_day.check_id IS NULL AND t.check_id = c.id AND t.bucket < $2
                               ORDER BY t.bucket DESC LIMIT 1) lo_before ON true
          WHERE coalesce(hi_day.bucket, hi_before.bucket) IS NOT NULL
            AND coalesce(hi_day.bucket, hi_before.bucket) IS DISTINCT FROM coalesce(lo_day.bucket, lo_before.bucket)",
        hi = pick("hi"),
        lo = pick("lo"),
    );
    let id_list: Vec<i64> = ids.map(<[i64]>::to_vec).unwrap_or_default();
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = match ids {
        None => vec![&hi_day, &lo_day],
        Some(_) => vec![&hi_day, &lo_day, &id_list],
    };
    // The planner's estimate of the gated lookups (10,000 of them, never
    // run) passes `jit_above_cost`; compiling then costs more than the
    // statement (30 ms). Off for this statement only, and reset: the
    // connection may be a pool's.
    client.batch_execute("SET jit = off").await?;
    let rows = client.query(&sql, &params).await;
    let reset = client.batch_execute("RESET jit").await;
    let rows = rows?;
    reset?;
    let lo_at = 1 + ROLLUP_FIELDS;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        let hi = tally_from_row(r, 1);
        // Every check with totals rows has its anchor, so a row before the
        // start exists; without one the window counts from nothing.
        let lo = r.get::<_, Option<i64>>(lo_at).is_some().then(|| tally_from_row(r, lo_at));
        out.insert(r.get::<_, i64>(0), window(&hi, lo.as_ref()));
    }
    Ok(out)
}

/// The running sums of a check's daily rows, plus its anchor (the
/// baseline): one totals row per daily row.
fn recount_sql() -> String {
    let histogram = (1..=BUCKETS)
        .map(|i| format!("a.latency_histogram[{i}] + sum(d.latency_histogram[{i}]) OVER w"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO rollup_day_totals (check_id, bucket, {ROLLUP_COLUMNS})
         SELECT d.check_id, d.bucket, a.up_ms + sum(d.up_ms) OVER w, a.down_ms + sum(d.down_ms) OVER w,
                a.no_data_ms + sum(d.no_data_ms) OVER w, a.maintenance_ms + sum(d.maintenance_ms) OVER w,
                a.runs + sum(d.runs) OVER w, a.failures + sum(d.failures) OVER w,
                a.total_us_sum + sum(d.total_us_sum) OVER w, ARRAY[{histogram}]::int4[]
           FROM rollup_days d
           JOIN rollup_day_totals a ON a.check_id = d.check_id AND a.bucket = '-infinity'
          WHERE d.check_id = ANY($1)
         WINDOW w AS (PARTITION BY d.check_id ORDER BY d.bucket)"
    )
}

/// Recomputes the totals rows of `ids` from their daily rows (after a
/// rebuild's corrections, in its transaction), keeping each check's
/// baseline: whatever the totals held before, they then match the daily
/// rows exactly. Locks the checks' totals first, as live upkeep does.
pub async fn recount_day_totals(
    client: &impl tokio_postgres::GenericClient,
    ids: &[i64],
) -> Result<(), tokio_postgres::Error> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    client.execute(super::LOCK_TOTALS, &[&ids, &(BUCKETS as i32)]).await?;
    client
        .execute("DELETE FROM rollup_day_totals WHERE check_id = ANY($1) AND bucket > '-infinity'", &[&ids])
        .await?;
    client.execute(&recount_sql(), &[&ids]).await?;
    Ok(())
}

/// Deletes up to `batch` daily rollup rows whose day ended more than
/// `keep_days` ago, oldest first (as `prune_rollups` does hours), and folds the totals rows of those days into
/// each check's baseline (its anchor row, bucket `-infinity`): the latest
/// totals row of a pruned day becomes the baseline, it and older rows go.
/// A window starting before the oldest day kept then reads the baseline
/// at its start: what summing the daily rows left gives. One statement:
/// the daily rows and their totals go together. Returns how many daily
/// rows were deleted.
///
/// A daily row is deleted only if its day is older than the retention; a
/// writer adding to such a day meanwhile (a rebuild of an old range) may
/// deadlock with this statement, which PostgreSQL then aborts: the next
/// housekeeping round prunes again.
pub async fn prune_days(
    client: &impl tokio_postgres::GenericClient,
    keep_days: u32,
    batch: i64,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "WITH gone AS (
             DELETE FROM rollup_days WHERE (check_id, bucket) IN (
                 SELECT check_id, bucket FROM rollup_days
                  WHERE bucket < now() - $1::float8 * interval '1 day' - interval '1 day'
                  ORDER BY bucket LIMIT $2)
             RETURNING check_id, bucket
         ), edge AS (
             SELECT check_id, max(bucket) AS upto FROM gone GROUP BY check_id
         ), latest AS (
             SELECT t.* FROM edge e CROSS JOIN LATERAL (
                 SELECT * FROM rollup_day_totals t WHERE t.check_id = e.check_id AND t.bucket <= e.upto
                  ORDER BY t.bucket DESC LIMIT 1) t
              WHERE t.bucket > '-infinity'
         ), folded AS (
             DELETE FROM rollup_day_totals t USING edge e
              WHERE t.check_id = e.check_id AND t.bucket > '-infinity' AND t.bucket <= e.upto
         ), baseline AS (
             INSERT INTO rollup_day_totals AS r (check_id, bucket, {ROLLUP_COLUMNS})
             SELECT check_id, '-infinity', up_ms, down_ms, no_data_ms, maintenance_ms, runs, failures,
                    total_us_sum, latency_histogram
               FROM latest ORDER BY check_id
             ON CONFLICT (check_id, bucket) DO UPDATE SET
                 up_ms = excluded.up_ms, down_ms = excluded.down_ms, no_data_ms = excluded.no_data_ms,
                 maintenance_ms = excluded.maintenance_ms, runs = excluded.runs, failures = excluded.failures,
                 total_us_sum = excluded.total_us_sum, latency_histogram = excluded.latency_histogram
         )
         SELECT count(*)::int8 FROM gone"
    );
    let n: i64 = client.query_one(&sql, &[&f64::from(keep_days), &batch]).await?.get(0);
    Ok(n as u64)
}
