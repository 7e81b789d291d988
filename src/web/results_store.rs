//! The SQL behind `GET /api/v1/checks/{name}/results`: a check's id and
//! spec by name, and one page of its stored results, newest first.
//!
//! Pages are keyset pages on `(check_id, slot)`, the primary key of
//! `check_results`: a page is "the newest `limit` slots before the cursor",
//! one index range scan, and a result inserted while a caller pages (a newer
//! slot) lands before the first page, never inside a later one.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

/// A declared check, as the results route needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRow {
    pub id: i64,
    /// The stored spec (JSON): its secrets are scrubbed out of the errors.
    pub spec: serde_json::Value,
}

/// The declared check named `name`.
pub async fn check(
    client: &impl GenericClient,
    name: &str,
) -> Result<Option<CheckRow>, tokio_postgres::Error> {
    let row = client.query_opt("SELECT id, spec FROM checks WHERE name = $1", &[&name]).await?;
    Ok(row.map(|r| CheckRow { id: r.get(0), spec: r.get(1) }))
}

/// One stored result: every column of `check_results` but the check's id.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub slot: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub success: bool,
    pub error_class: Option<String>,
    pub error_message: Option<String>,
    pub status_code: Option<i16>,
    pub dns_ms: Option<f32>,
    pub connect_ms: Option<f32>,
    pub tls_ms: Option<f32>,
    pub first_byte_ms: Option<f32>,
    pub query_ms: Option<f32>,
    pub rtt_min_ms: Option<f32>,
    pub rtt_avg_ms: Option<f32>,
    pub rtt_max_ms: Option<f32>,
    pub run_ms: Option<f32>,
    pub total_ms: f32,
    pub bytes_read: Option<i64>,
    pub cert_expires_at: Option<DateTime<Utc>>,
    pub failed_assertions: Option<Vec<String>>,
    pub worker: Option<String>,
    /// The check's state after this result (up, down, unknown); `None` for
    /// rows stored before history existed.
    pub state: Option<String>,
    /// The check's interval when this slot ran; `None` for older rows.
    pub interval_ms: Option<i32>,
}

/// Which results a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    pub check_id: i64,
    /// Slots at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Slots before this time.
    pub to: Option<DateTime<Utc>>,
    /// Slots before this one (the last slot of the previous page).
    pub before: Option<DateTime<Utc>>,
    /// At most this many rows.
    pub limit: i64,
}

/// The newest results `query` selects, newest first.
pub async fn page(
    client: &impl GenericClient,
    query: &PageQuery,
) -> Result<Vec<ResultRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT slot, started_at, success, error_class, error_message, status_code, dns_ms, connect_ms,
                    tls_ms, first_byte_ms, total_ms, bytes_read, cert_expires_at, failed_assertions, worker,
                    state, interval_ms, query_ms, rtt_min_ms, rtt_avg_ms, rtt_max_ms, run_ms
               FROM check_results
              WHERE check_id = $1
                AND ($2::timestamptz IS NULL OR slot >= $2)
                AND ($3::timestamptz IS NULL OR slot < $3)
                AND ($4::timestamptz IS NULL OR slot < $4)
              ORDER BY slot DESC
              LIMIT $5",
            &[&query.check_id, &query.from, &query.to, &query.before, &query.limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ResultRow {
            slot: r.get(0),
            started_at: r.get(1),
            success: r.get(2),
            error_class: r.get(3),
            error_message: r.get(4),
            status_code: r.get(5),
            dns_ms: r.get(6),
            connect_ms: r.get(7),
            tls_ms: r.get(8),
            first_byte_ms: r.get(9),
            query_ms: r.get(17),
            rtt_min_ms: r.get(18),
            rtt_avg_ms: r.get(19),
            rtt_max_ms: r.get(20),
            run_ms: r.get(21),
            total_ms: r.get(10),
            bytes_read: r.get(11),
            cert_expires_at: r.get(12),
            failed_assertions: r.get(13),
            worker: r.get(14),
            state: r.get(15),
            interval_ms: r.get(16),
        })
        .collect())
}
