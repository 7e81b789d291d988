//! The SQL of the cumulative daily totals (`rollup_day_totals`, see
//! `history/totals.rs` and docs/history.md): the value of a check's totals
//! before a day, a window of days read from it, the close of ended days
//! (housekeeping), a rebuild's recount from the daily rows, and the
//! baseline retention folds pruned days into. Their live upkeep (late
//! increments to closed days) is part of `UPSERT_ROLLUPS` (`mod.rs`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;

use super::{tally_from_row, ROLLUP_COLUMNS, ROLLUP_FIELDS};
use crate::history::buckets::{from_ms, to_ms, Granularity};
use crate::history::histogram::BUCKETS;
use crate::history::rollup::Tally;

/// A subquery (for a `LATERAL` join) giving one row: the sums of every
/// daily row of check `{check}` before day `{x}` (SQL expressions), plus
/// its baseline, as `at` (the latest bucket counted: a totals or daily
/// row's; NULL when nothing) and the columns of [`ROLLUP_COLUMNS`].
///
/// It is the check's latest totals row before `x` (or nothing) plus the
/// daily rows after that row and before `x`: totals rows exist for closed
/// days only and may miss a day whose daily row came after its close, but
/// every totals row is the exact running sum at its day, so this is exact
/// whatever the close has done. With days closed up to yesterday, a value
/// before tomorrow is yesterday's totals row plus today's daily row.
fn value_before(check: &str, x: &str) -> String {
    let sum = |c: &str, ty: &str| format!("(coalesce(p.{c}, 0) + coalesce(sum(g.{c}), 0))::{ty} AS {c}");
    let histogram = (1..=BUCKETS)
        .map(|i| {
            format!("coalesce(p.latency_histogram[{i}], 0) + coalesce(sum(g.latency_histogram[{i}]), 0)")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "(SELECT greatest(p.bucket, max(g.bucket)) AS at, {up}, {down}, {no_data}, {maint}, {runs}, {failures},
                 {us}, ARRAY[{histogram}]::int4[] AS latency_histogram
            FROM (SELECT 1) one
            LEFT JOIN LATERAL (SELECT * FROM rollup_day_totals t WHERE t.check_id = {check} AND t.bucket < {x}
                                ORDER BY t.bucket DESC LIMIT 1) p ON true
            LEFT JOIN rollup_days g ON g.check_id = {check} AND g.bucket < {x}
                                   AND g.bucket > coalesce(p.bucket, '-infinity')
           GROUP BY p.bucket, p.up_ms, p.down_ms, p.no_data_ms, p.maintenance_ms, p.runs, p.failures,
                    p.total_us_sum, p.latency_histogram)",
        up = sum("up_ms", "int8"),
        down = sum("down_ms", "int8"),
        no_data = sum("no_data_ms", "int8"),
        maint = sum("maintenance_ms", "int8"),
        runs = sum("runs", "int4"),
        failures = sum("failures", "int4"),
        us = sum("total_us_sum", "int8"),
    )
}

/// The sums of the rows of `table` aliased `g` (SQL select list): `at`
/// (the latest bucket) and the columns of [`ROLLUP_COLUMNS`], summed and
/// cast to the rollup rows' own types, so that [`tally_or_zero`] reads
/// them like a row.
fn sums(g: &str) -> String {
    let histogram =
        (1..=BUCKETS).map(|i| format!("sum({g}.latency_histogram[{i}])")).collect::<Vec<_>>().join(", ");
    let scalars = ROLLUP_COLUMNS
        .split(", ")
        .filter(|c| *c != "latency_histogram")
        .map(|c| {
            let ty = if c == "runs" || c == "failures" { "int4" } else { "int8" };
            format!("sum({g}.{c})::{ty} AS {c}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("max({g}.bucket) AS at, {scalars}, ARRAY[{histogram}]::int4[] AS latency_histogram")
}

/// One end of a window for [`sum_day_totals`], read as [`value_before`]
/// reads it but set-wise, for the check `c.id`: `x` (before which) and
/// `cut` (`x` or the first day not closed, the earlier; SQL parameters),
/// with `open_days` days in `[cut, x)`. Returns (the CTE of the days not
/// closed, if any; the joins; `at`: the latest bucket counted, NULL when
/// nothing; the value's columns, one SQL expression per column of
/// [`ROLLUP_COLUMNS`], the histogram one per bucket).
///
/// The latest totals row before `cut` is almost always that of the day
/// before it (a check that ran that day has one), so the rows of that one
/// day are read as one range of `rollup_day_totals_bucket_idx` and
/// hash-joined (`{e}p`); only a check without a row that day looks up its
/// latest row (`{e}q`) and sums the closed days' daily rows after it
/// (`{e}g`: days written after their close), both gated on that (`{e}g`
/// groups by check so that, gated off, it yields no row instead of one
/// row of 48 empty aggregates: 20,000 of those were a sixth of the
/// statement). The days
/// not closed yet (`[cut, x)`) are, in order of likelihood: none (a window
/// start in the past), one (today: its daily rows are joined as they are,
/// one range of `rollup_days_bucket_idx`), or several (closes lagging:
/// summed per check, `{e}o`). Per-check lookups for every check took
/// ~0.5 s for 10,000 checks on the loaded machine; grouping today's single
/// rows per check cost a fifth of the statement (40 sums each, spilled to
/// disk at the default work_mem).
fn window_end(e: &str, x: &str, cut: &str, open_days: i64) -> (Option<String>, String, String, Vec<String>) {
    // Typed here: which use comes first (and types the parameter) varies.
    let (x, cut) = (format!("{x}::timestamptz"), format!("{cut}::timestamptz"));
    let (cte, open_join) = match open_days {
        0 => (None, String::new()),
        1 => (None, format!("LEFT JOIN rollup_days {e}o ON {e}o.check_id = c.id AND {e}o.bucket = {cut}")),
        _ => (
            Some(format!(
                "{e}o AS (SELECT g.check_id, {sums} FROM rollup_days g
                           WHERE g.bucket >= {cut} AND g.bucket < {x} GROUP BY g.check_id)",
                sums = sums("g"),
            )),
            format!("LEFT JOIN {e}o ON {e}o.check_id = c.id"),
        ),
    };
    let joins = format!(
        "LEFT JOIN rollup_day_totals {e}p ON {e}p.check_id = c.id AND {e}p.bucket = {cut} - interval '24 hours'
         LEFT JOIN LATERAL (SELECT * FROM rollup_day_totals t
                             WHERE {e}p.check_id IS NULL AND t.check_id = c.id AND t.bucket < {cut}
                             ORDER BY t.bucket DESC LIMIT 1) {e}q ON true
         LEFT JOIN LATERAL (SELECT {sums} FROM rollup_days g
                             WHERE {e}p.check_id IS NULL AND g.check_id = c.id AND g.bucket < {cut}
                               AND g.bucket > coalesce({e}q.bucket, '-infinity')
                             GROUP BY g.check_id) {e}g ON true
         {open_join}",
        sums = sums("g"),
    );
    let open_at = match open_days {
        0 => String::new(),
        1 => format!(", {e}o.bucket"),
        _ => format!(", {e}o.at"),
    };
    let at = format!("greatest({e}p.bucket, {e}q.bucket, {e}g.at{open_at})");
    // Groups of the columns of ROLLUP_COLUMNS, each NULL when absent: the
    // base (the totals row), the closed days after it, the open days.
    let group = |f: &dyn Fn(&str) -> String| ROLLUP_COLUMNS.split(", ").map(f).collect::<Vec<_>>().join(", ");
    let mut groups =
        vec![group(&|c| format!("coalesce({e}p.{c}, {e}q.{c})")), group(&|c| format!("{e}g.{c}"))];
    if open_days > 0 {
        groups.push(group(&|c| format!("{e}o.{c}")));
    }
    (cte, joins, at, groups)
}

/// A [`tally_from_row`] of columns that may all be NULL (nothing): zero then.
fn tally_or_zero(row: &tokio_postgres::Row, at: usize) -> Result<Tally, tokio_postgres::Error> {
    Ok(match row.try_get::<_, Option<i64>>(at)? {
        None => Tally::default(),
        Some(_) => tally_from_row(row, at),
    })
}

/// Whole UTC days in `[from, to)` (both day boundaries).
fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_days().max(0)
}

/// The sums of the daily rows of `ids` (every declared check when `None`)
/// with buckets in `[from, to)`, as the difference of the checks' values
/// before each end ([`value_before`], read set-wise: [`window_end`]); what
/// summing those daily rows gives (`sum_rollup_rows`), exactly, whether
/// or not the days are closed. A check with no daily row in the window is
/// absent.
///
/// Each end's parts come back as stored (a totals row, the closed days
/// after it, the open days; mostly NULL but the first) and are added and
/// subtracted here: 80 element-wise histogram sums per check in SQL were a
/// large part of the statement (an array subscript each, in the expression
/// interpreter), more than sending the arrays.
pub async fn sum_day_totals(
    client: &impl tokio_postgres::GenericClient,
    ids: Option<&[i64]>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashMap<i64, Tally>, tokio_postgres::Error> {
    // Buckets are whole UTC days: a bucket is before `to` when it is
    // before the first day boundary at or after it.
    let hi_x = from_ms(Granularity::Day.ceil(to_ms(to)));
    let lo_x = from_ms(Granularity::Day.ceil(to_ms(from)));
    // Read apart: a close committing in between leaves the cut a day
    // early, which is still exact (every totals row is).
    let open = first_open_day(client).await?;
    let (hi_cut, lo_cut) = (hi_x.min(open), lo_x.min(open));
    let checks = match ids {
        None => "(SELECT id FROM checks) AS c(id)",
        Some(_) => "unnest($5::int8[]) AS c(id)",
    };
    let (hi_cte, hi_joins, hi_at, hi) = window_end("hi", "$1", "$3", days_between(hi_cut, hi_x));
    let (lo_cte, lo_joins, _, lo) = window_end("lo", "$2", "$4", days_between(lo_cut, lo_x));
    let ctes: Vec<String> = [hi_cte, lo_cte].into_iter().flatten().collect();
    let with = if ctes.is_empty() { String::new() } else { format!("WITH {}", ctes.join(", ")) };
    let columns = hi.iter().chain(&lo).cloned().collect::<Vec<_>>().join(", ");
    let (hi_parts, lo_parts) = (hi.len(), lo.len());
    // Buckets are compared, not decoded: an anchor's is -infinity.
    let sql = format!(
        "{with}
         SELECT c.id, {columns}
           FROM {checks}
           {hi_joins}
           {lo_joins}
          WHERE {hi_at} >= $2"
    );
    let id_list: Vec<i64> = ids.map(<[i64]>::to_vec).unwrap_or_default();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&hi_x, &lo_x, &hi_cut, &lo_cut];
    if ids.is_some() {
        params.push(&id_list);
    }
    // The planner's estimate of the gated lookups (10,000 of them, almost
    // never run) passes `jit_above_cost`; compiling then costs more than
    // the statement. Off for this statement only, and reset: the
    // connection may be a pool's.
    client.batch_execute("SET jit = off").await?;
    // Typed: an end without open days does not mention its `x`.
    let types =
        [Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::INT8_ARRAY];
    let rows = match client.prepare_typed(&sql, &types[..params.len()]).await {
        Ok(statement) => client.query(&statement, &params).await,
        Err(e) => Err(e),
    };
    let reset = client.batch_execute("RESET jit").await;
    let rows = rows?;
    reset?;
    let mut out = HashMap::with_capacity(rows.len());
    for r in &rows {
        let part = |i: usize| tally_or_zero(r, 1 + i * ROLLUP_FIELDS);
        let mut hi = part(0)?;
        for i in 1..hi_parts {
            hi.merge(&part(i)?);
        }
        let mut lo = part(hi_parts)?;
        for i in hi_parts + 1..hi_parts + lo_parts {
            lo.merge(&part(i)?);
        }
        out.insert(r.try_get::<_, i64>(0)?, hi.minus(&lo));
    }
    Ok(out)
}

/// The first day not closed yet (every earlier day is).
pub async fn first_open_day(
    client: &impl tokio_postgres::GenericClient,
) -> Result<DateTime<Utc>, tokio_postgres::Error> {
    Ok(client.query_one("SELECT day FROM rollup_day_totals_closed", &[]).await?.get(0))
}

/// Closes the oldest day not closed yet if it has ended: adds its totals
/// rows, one per check with a daily row that day, valued the check's value
/// before the day plus that row. Returns whether it closed one.
///
/// Runs in a transaction that first takes `LOCK TABLE rollup_days IN
/// SHARE MODE`. Every writer of daily rows holds ROW EXCLUSIVE on
/// `rollup_days` from its upsert until it commits, so the lock waits for
/// every writer in flight and holds new ones back while the close runs (~1.2 s a day at
/// 10,000 checks on the loaded 2-core machine). Why that is enough for exact totals: a writer that
/// committed before the close is counted by the close through its daily
/// row; a writer's statement waiting behind the close takes its table
/// locks before its snapshot (PostgreSQL locks a statement's tables, then
/// takes its snapshot), so it sees the closed rows and adds its increment
/// to them; and no writer's statement runs during the close. A writer
/// whose statement ran before the close began has committed before the
/// close reads (SHARE waits for it), and its totals UPDATE needed no row
/// of the day being closed (none existed). Writers that wait on the lock
/// hold nothing the close needs (they never create or lock totals rows of
/// an open day, nor `rollup_day_totals_closed`): no deadlock.
async fn close_one_day(client: &impl tokio_postgres::GenericClient) -> Result<bool, tokio_postgres::Error> {
    // `24 hours`, not `1 day`: days are UTC days whatever the session's zone.
    const ENDED: &str = "SELECT day FROM rollup_day_totals_closed WHERE day + interval '24 hours' <= now()";
    // Nearly every call has nothing to close: look first, so that the lock
    // (which holds writers back) is taken only on the one call a day that
    // closes one.
    if client.query_opt(ENDED, &[]).await?.is_none() {
        return Ok(false);
    }
    // The coordinator runs housekeeping inline: never wait long behind a
    // writer (the next round retries).
    client.batch_execute("SET LOCAL lock_timeout = '2s'; LOCK TABLE rollup_days IN SHARE MODE").await?;
    let Some(row) = client.query_opt(&format!("{ENDED} FOR UPDATE"), &[]).await? else {
        return Ok(false);
    };
    let day: DateTime<Utc> = row.get(0);
    let histogram = "ARRAY(SELECT a + b FROM unnest(v.latency_histogram, d.latency_histogram)
                                 WITH ORDINALITY AS h(a, b, i) ORDER BY i)";
    let sql = format!(
        "INSERT INTO rollup_day_totals (check_id, bucket, {ROLLUP_COLUMNS})
         SELECT d.check_id, d.bucket, v.up_ms + d.up_ms, v.down_ms + d.down_ms, v.no_data_ms + d.no_data_ms,
                v.maintenance_ms + d.maintenance_ms, v.runs + d.runs, v.failures + d.failures,
                v.total_us_sum + d.total_us_sum, {histogram}
           FROM rollup_days d CROSS JOIN LATERAL {value} v
          WHERE d.bucket = $1
          ORDER BY d.check_id",
        value = value_before("d.check_id", "$1"),
    );
    client.execute(&sql, &[&day]).await?;
    client.execute("UPDATE rollup_day_totals_closed SET day = day + interval '24 hours'", &[]).await?;
    Ok(true)
}

/// Closes every ended day not closed yet, oldest first, each in its own
/// short transaction ([`close_one_day`]), at most `max_days` in one call
/// (a backlog after an outage drains over the next calls; reads are
/// exact meanwhile). `client` must be a plain connection, not a
/// transaction. Returns how many days it closed.
pub async fn close_day_totals(
    client: &impl tokio_postgres::GenericClient,
    max_days: u32,
) -> Result<u32, tokio_postgres::Error> {
    let mut closed = 0;
    while closed < max_days {
        client.batch_execute("BEGIN").await?;
        match close_one_day(client).await {
            Ok(done) => {
                client.batch_execute("COMMIT").await?;
                if !done {
                    break;
                }
                closed += 1;
            }
            Err(e) => {
                // The error is what matters; a failed rollback leaves the
                // connection broken, which the pool then discards.
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        }
    }
    Ok(closed)
}

/// The running sums of a check's daily rows of closed days, plus its
/// anchor (the baseline, zero without one): one totals row per daily row.
fn recount_sql() -> String {
    let histogram = (1..=BUCKETS)
        .map(|i| format!("coalesce(a.latency_histogram[{i}], 0) + sum(d.latency_histogram[{i}]) OVER w"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO rollup_day_totals (check_id, bucket, {ROLLUP_COLUMNS})
         SELECT d.check_id, d.bucket, coalesce(a.up_ms, 0) + sum(d.up_ms) OVER w,
                coalesce(a.down_ms, 0) + sum(d.down_ms) OVER w, coalesce(a.no_data_ms, 0) + sum(d.no_data_ms) OVER w,
                coalesce(a.maintenance_ms, 0) + sum(d.maintenance_ms) OVER w,
                coalesce(a.runs, 0) + sum(d.runs) OVER w, coalesce(a.failures, 0) + sum(d.failures) OVER w,
                coalesce(a.total_us_sum, 0) + sum(d.total_us_sum) OVER w, ARRAY[{histogram}]::int4[]
           FROM rollup_days d
           LEFT JOIN rollup_day_totals a ON a.check_id = d.check_id AND a.bucket = '-infinity'
          WHERE d.check_id = ANY($1) AND d.bucket < (SELECT day FROM rollup_day_totals_closed)
         WINDOW w AS (PARTITION BY d.check_id ORDER BY d.bucket)"
    )
}

/// Recomputes the totals rows of `ids` from their daily rows (after a
/// rebuild's corrections, in its transaction), keeping each check's
/// baseline: whatever the totals held before, they then match the daily
/// rows exactly.
///
/// No close can run between the caller's upsert and this recount: the
/// upsert holds ROW EXCLUSIVE on `rollup_days` until the caller commits,
/// and a close waits for it ([`close_one_day`]). A live writer adding a
/// late increment to a closed day of the same check meanwhile can race
/// the recount (its UPDATE may find the rows the recount deleted); rare
/// (a rebuild of a closed day while late results of it arrive) and
/// repaired by the next rebuild.
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
    client
        .execute("DELETE FROM rollup_day_totals WHERE check_id = ANY($1) AND bucket > '-infinity'", &[&ids])
        .await?;
    client.execute(&recount_sql(), &[&ids]).await?;
    Ok(())
}

/// Deletes up to `batch` daily rollup rows whose day ended more than
/// `keep_days` ago, oldest first (as `prune_rollups` does hours), and folds
/// those days into each check's baseline (its anchor row, bucket
/// `-infinity`): the baseline becomes the check's value up to its latest
/// pruned day ([`value_before`]: read before the deletes, as the whole
/// statement sees one snapshot), and the totals rows of pruned days go.
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
             SELECT e.check_id, v.* FROM edge e CROSS JOIN LATERAL {value} v
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
         SELECT count(*)::int8 FROM gone",
        value = value_before("e.check_id", "e.upto + interval '24 hours'"),
    );
    let n: i64 = client.query_one(&sql, &[&f64::from(keep_days), &batch]).await?.get(0);
    Ok(n as u64)
}
