//! The SQL of `status`: every declared check joined with its state, and the
//! notifications of their latest incidents that could not be delivered.
//! Rows come back as stored; `query.rs` decodes and masks them.

use chrono::{DateTime, Utc};
use tokio_postgres::{Error, GenericClient};

/// One check and its state (a check without results has none yet).
#[derive(Debug, Clone)]
pub struct StateRow {
    pub name: String,
    pub enabled: bool,
    /// The stored spec, as JSON.
    pub spec: serde_json::Value,
    /// "up", "down" or "unknown".
    pub status: String,
    /// When the state last changed, else when the check was declared.
    pub since: DateTime<Utc>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_duration_ms: Option<f64>,
    pub last_status_code: Option<i32>,
    /// Unmasked: it may echo a secret of the spec.
    pub last_error: Option<String>,
    pub consecutive_failures: i32,
}

/// Every declared check with its state, by name.
pub async fn states(db: &impl GenericClient) -> Result<Vec<StateRow>, Error> {
    let rows = db
        .query(
            "SELECT c.name, c.enabled, c.spec, coalesce(s.status, 'unknown'), coalesce(s.since, c.created_at),
                    s.last_checked_at, s.last_duration_ms, s.last_status_code, s.last_error,
                    coalesce(s.consecutive_failures, 0)
               FROM checks c LEFT JOIN check_state s ON s.check_id = c.id
              ORDER BY c.name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StateRow {
            name: r.get(0),
            enabled: r.get(1),
            spec: r.get(2),
            status: r.get(3),
            since: r.get(4),
            last_checked_at: r.get(5),
            last_duration_ms: r.get(6),
            last_status_code: r.get(7),
            last_error: r.get(8),
            consecutive_failures: r.get(9),
        })
        .collect())
}

/// A delivery of a check's latest incident that ended in "failed".
#[derive(Debug, Clone)]
pub struct FailedRow {
    /// The check's name.
    pub check: String,
    pub channel: String,
    pub event: String,
    pub incident_id: i64,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Failed deliveries of every check's latest incident, newest first.
pub async fn failed_deliveries(db: &impl GenericClient) -> Result<Vec<FailedRow>, Error> {
    let rows = db
        .query(
            "SELECT c.name, d.channel, d.event, d.incident_id, d.attempts, d.last_error, d.updated_at
               FROM notification_deliveries d
               JOIN check_state s ON s.check_id = d.check_id AND s.incident_id = d.incident_id
               JOIN checks c ON c.id = d.check_id
              WHERE d.status = 'failed'
              ORDER BY d.updated_at DESC, d.id DESC",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| FailedRow {
            check: r.get(0),
            channel: r.get(1),
            event: r.get(2),
            incident_id: r.get(3),
            attempts: r.get(4),
            last_error: r.get(5),
            updated_at: r.get(6),
        })
        .collect())
}
