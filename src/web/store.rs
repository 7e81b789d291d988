//! The SQL of the web role that no concern owns (listing checks with their
//! state, reading results). History and tokens have their own store files.

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, GenericClient};

use crate::checks_file::Owner;

/// Which checks a list returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    /// Only names after this one (keyset pagination).
    pub after: Option<String>,
    /// A JSON object every listed check's labels must contain.
    pub labels: serde_json::Value,
    /// Only names containing this (lower case: names are).
    pub q: Option<String>,
    /// Only checks in this state: up, down, unknown or paused.
    pub state: Option<String>,
    /// At most this many rows.
    pub limit: i64,
    /// Uptime windows: hourly buckets from this one, daily from that one.
    pub hours_from: DateTime<Utc>,
    pub days_from: DateTime<Utc>,
}

/// A check with its state, last result and time by state in two windows.
#[derive(Debug, Clone)]
pub struct ListRow {
    pub id: i64,
    pub name: String,
    pub owner: Owner,
    /// The stored spec (labels and secrets are read from it).
    pub spec: serde_json::Value,
    /// up, down, unknown, or paused (disabled, whatever the last state).
    pub state: String,
    pub since: DateTime<Utc>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_duration_ms: Option<f64>,
    pub last_status_code: Option<i32>,
    /// Unmasked: it may echo a secret of the spec.
    pub last_error: Option<String>,
    /// (up, down) milliseconds over the hourly window, then the daily one.
    pub hours: (i64, i64),
    pub days: (i64, i64),
}

/// The state shown for a check: paused when disabled, else its state row's
/// (unknown without one), and since when. One expression for the list and
/// a single check, so both agree.
const STATE: &str = "CASE WHEN NOT c.enabled THEN 'paused' ELSE coalesce(s.status, 'unknown') END";
const SINCE: &str = "CASE WHEN NOT c.enabled THEN c.updated_at ELSE coalesce(s.since, c.created_at) END";

/// A page of checks by name, with their uptime: one statement. The page is
/// chosen first (in name order, through the name index, filtered, up to
/// the limit), then each of its checks' rollups are summed through the
/// rollups' primary key (check, bucket): a page of 100 reads 100 × (24 +
/// 30) rollup rows, whatever the number of checks stored (6 ms for a page
/// of 10,000 checks with a week of hourly and 90 days of daily rollups).
///
/// Only the filters given are written into the statement (their values
/// always travel as parameters): a catch-all `($n IS NULL OR …)` made the
/// planner guess few rows and sort the whole table for every page.
pub async fn list_checks(db: &impl GenericClient, f: &ListFilter) -> Result<Vec<ListRow>, Error> {
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&f.limit, &f.hours_from, &f.days_from];
    let mut conditions: Vec<String> = Vec::new();
    if let Some(after) = &f.after {
        params.push(after);
        conditions.push(format!("c.name > ${}", params.len()));
    }
    if f.labels.as_object().is_some_and(|labels| !labels.is_empty()) {
        params.push(&f.labels);
        conditions.push(format!("coalesce(c.spec->'labels', '{{}}'::jsonb) @> ${}::jsonb", params.len()));
    }
    if let Some(q) = &f.q {
        params.push(q);
        conditions.push(format!("strpos(c.name, ${}) > 0", params.len()));
    }
    if let Some(state) = &f.state {
        params.push(state);
        conditions.push(format!("{STATE} = ${}", params.len()));
    }
    let filter =
        if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let sql = format!(
        "SELECT p.name, p.owner, p.spec, p.state, p.since, p.last_checked_at, p.last_duration_ms,
                p.last_status_code, p.last_error,
                coalesce(h.up, 0), coalesce(h.down, 0), coalesce(d.up, 0), coalesce(d.down, 0), p.id
           FROM (SELECT c.id, c.name, c.owner, c.spec, {STATE} AS state, {SINCE} AS since,
                        s.last_checked_at, s.last_duration_ms, s.last_status_code, s.last_error
                   FROM checks c LEFT JOIN check_state s ON s.check_id = c.id
                  {filter}
                  ORDER BY c.name
                  LIMIT $1) p
           LEFT JOIN LATERAL (SELECT sum(up_ms)::int8 AS up, sum(down_ms)::int8 AS down
                                FROM rollup_hours r WHERE r.check_id = p.id AND r.bucket >= $2) h ON true
           LEFT JOIN LATERAL (SELECT sum(up_ms)::int8 AS up, sum(down_ms)::int8 AS down
                                FROM rollup_days r WHERE r.check_id = p.id AND r.bucket >= $3) d ON true
          ORDER BY p.name"
    );
    let rows = db.query(&sql, &params).await?;
    Ok(rows
        .iter()
        .map(|r| ListRow {
            id: r.get(13),
            name: r.get(0),
            owner: Owner::from_stored(r.get(1)),
            spec: r.get(2),
            state: r.get(3),
            since: r.get(4),
            last_checked_at: r.get(5),
            last_duration_ms: r.get(6),
            last_status_code: r.get(7),
            last_error: r.get(8),
            hours: (r.get(9), r.get(10)),
            days: (r.get(11), r.get(12)),
        })
        .collect())
}

/// One stored check as `GET /checks/{name}` shows it.
#[derive(Debug, Clone)]
pub struct CheckRow {
    pub name: String,
    pub enabled: bool,
    pub interval_ms: i32,
    pub owner: Owner,
    pub spec: serde_json::Value,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub state: String,
    pub since: DateTime<Utc>,
}

/// The check `name` with its state, if it exists.
pub async fn check(db: &impl GenericClient, name: &str) -> Result<Option<CheckRow>, Error> {
    let sql = format!(
        "SELECT c.name, c.enabled, c.interval_ms, c.owner, c.spec, c.version, c.created_at, c.updated_at,
                {STATE}, {SINCE}
           FROM checks c LEFT JOIN check_state s ON s.check_id = c.id
          WHERE c.name = $1"
    );
    let row = db.query_opt(&sql, &[&name]).await?;
    Ok(row.map(|r| CheckRow {
        name: r.get(0),
        enabled: r.get(1),
        interval_ms: r.get(2),
        owner: Owner::from_stored(r.get(3)),
        spec: r.get(4),
        version: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
        state: r.get(8),
        since: r.get(9),
    }))
}
