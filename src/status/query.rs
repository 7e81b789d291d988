//! One query for the status of every declared check, and one for the
//! notifications of their latest incidents that could not be delivered.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use crate::model::redact::{scrub, secrets};
use crate::model::CheckSpec;

/// The status of one check: the stable JSON shape of `status -o json`
/// (fields are only ever added).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckStatus {
    pub name: String,
    /// "up", "down" or "unknown" (no result yet, or not enough to decide).
    pub state: String,
    /// False when the check is paused (`enabled: false`).
    pub enabled: bool,
    /// When the state last changed (RFC 3339, UTC); for a check without
    /// results, when it was declared.
    pub since: String,
    pub last_checked_at: Option<String>,
    pub last_duration_ms: Option<f64>,
    pub last_status_code: Option<i32>,
    /// Why the last check failed (secrets masked); null after a success.
    pub last_error: Option<String>,
    pub consecutive_failures: i32,
    pub labels: BTreeMap<String, String>,
    /// Notifications of the check's latest incident that could not be
    /// delivered after every attempt (newest first).
    pub failed_notifications: Vec<FailedNotification>,
    #[serde(skip)]
    pub since_at: DateTime<Utc>,
    #[serde(skip)]
    pub last_checked: Option<DateTime<Utc>>,
}

/// A delivery that ended in "failed".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedNotification {
    /// The channel's name (`alerts:` in the checks file).
    pub channel: String,
    /// "down", "up" or "reminder".
    pub event: String,
    pub incident_id: i64,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// When the last attempt failed (RFC 3339, UTC).
    pub failed_at: String,
}

/// Failed deliveries shown per check at most.
const FAILED_SHOWN: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("database error: {0}")]
    Db(String),
}

pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Every declared check with its current state, by name.
pub async fn fetch(client: &Client) -> Result<Vec<CheckStatus>, StatusError> {
    let rows = client
        .query(
            "SELECT c.name, c.enabled, c.spec, coalesce(s.status, 'unknown'), coalesce(s.since, c.created_at),
                    s.last_checked_at, s.last_duration_ms, s.last_status_code, s.last_error,
                    coalesce(s.consecutive_failures, 0)
               FROM checks c LEFT JOIN check_state s ON s.check_id = c.id
              ORDER BY c.name",
            &[],
        )
        .await
        .map_err(|e| StatusError::Db(crate::db::error_chain(&e)))?;
    let mut failed: std::collections::HashMap<String, Vec<FailedNotification>> = Default::default();
    let failures = client
        .query(
            "SELECT c.name, d.channel, d.event, d.incident_id, d.attempts, d.last_error, d.updated_at
               FROM notification_deliveries d
               JOIN check_state s ON s.check_id = d.check_id AND s.incident_id = d.incident_id
               JOIN checks c ON c.id = d.check_id
              WHERE d.status = 'failed'
              ORDER BY d.updated_at DESC, d.id DESC",
            &[],
        )
        .await
        .map_err(|e| StatusError::Db(crate::db::error_chain(&e)))?;
    for r in &failures {
        let list = failed.entry(r.get(0)).or_default();
        if list.len() < FAILED_SHOWN {
            let at: DateTime<Utc> = r.get(6);
            list.push(FailedNotification {
                channel: r.get(1),
                event: r.get(2),
                incident_id: r.get(3),
                attempts: r.get(4),
                last_error: r.get(5),
                failed_at: timestamp(&at),
            });
        }
    }
    Ok(rows
        .iter()
        .map(|r| {
            let spec: Option<CheckSpec> = serde_json::from_value(r.get::<_, serde_json::Value>(2)).ok();
            let error: Option<String> = r.get(8);
            // A target may echo a request's token back into an error
            // message; without the spec, nothing is known to be safe.
            let last_error = match (&spec, error) {
                (Some(spec), Some(e)) => Some(scrub(&e, &secrets(spec))),
                (None, Some(_)) => Some("(hidden: the stored check could not be decoded)".to_string()),
                (_, None) => None,
            };
            let since_at: DateTime<Utc> = r.get(4);
            let last_checked: Option<DateTime<Utc>> = r.get(5);
            CheckStatus {
                name: r.get(0),
                enabled: r.get(1),
                state: r.get(3),
                since: timestamp(&since_at),
                last_checked_at: last_checked.as_ref().map(timestamp),
                last_duration_ms: r.get(6),
                last_status_code: r.get(7),
                last_error,
                consecutive_failures: r.get(9),
                labels: spec.map(|s| s.labels).unwrap_or_default(),
                failed_notifications: failed.remove(r.get::<_, &str>(0)).unwrap_or_default(),
                since_at,
                last_checked,
            }
        })
        .collect())
}
