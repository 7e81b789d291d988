//! The reads of history: reports, status-page bars and incident lists.

use chrono::{DateTime, Utc};

use super::{tally_from_row, ROLLUP_COLUMNS};
use crate::history::buckets::Granularity;
use crate::history::histogram::BUCKETS;
use crate::history::rollup::{MissedFact, Tally};
use crate::history::windows::Windows;
use crate::model::maintenance::WindowSpec;

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
/// check, for the checks `ids` (every declared check when `None`). Checks
/// without rows are absent. Days are read from the cumulative totals (two
/// rows per check, whatever the window: [`sum_day_totals`]), hours summed.
pub async fn sum_rollups(
    client: &impl tokio_postgres::GenericClient,
    granularity: Granularity,
    ids: Option<&[i64]>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<std::collections::HashMap<i64, Tally>, tokio_postgres::Error> {
    match granularity {
        Granularity::Day => super::sum_day_totals(client, ids, from, to).await,
        Granularity::Hour => sum_rollup_rows(client, granularity, ids, from, to).await,
    }
}

/// The rows of `granularity` with buckets in `[from, to)` summed row by
/// row, per check, for the checks `ids` (all checks with rows when
/// `None`). What the daily totals must equal; the bench times both.
pub async fn sum_rollup_rows(
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
