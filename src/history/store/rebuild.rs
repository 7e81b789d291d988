//! The SQL of `rollups rebuild` and of the retention of rollups and incidents.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{load_windows, tally_from_row, ROLLUP_COLUMNS};
use crate::history::buckets::{from_ms, Granularity};
use crate::history::rollup::Rollups;
use crate::history::windows::Windows;

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
/// (`rollup_hours_bucket_idx`, `rollup_days_bucket_idx`); days with their
/// totals ([`super::prune_days`]). Returns how many.
pub async fn prune_rollups(
    client: &impl tokio_postgres::GenericClient,
    granularity: Granularity,
    keep_days: u32,
    batch: i64,
) -> Result<u64, tokio_postgres::Error> {
    if granularity == Granularity::Day {
        // The daily totals keep what these rows added, as a baseline.
        return super::prune_days(client, keep_days, batch).await;
    }
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
