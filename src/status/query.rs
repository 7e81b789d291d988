//! The status of every declared check, with the notifications of their
//! latest incidents that could not be delivered: what `status` shows, built
//! from the rows of `store.rs` with every secret masked.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use crate::model::redact::{scrub, secrets};
use crate::model::CheckSpec;

use super::store;

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
    let db = |e: tokio_postgres::Error| StatusError::Db(crate::db::error_chain(&e));
    let rows = store::states(client).await.map_err(db)?;
    let mut failed: std::collections::HashMap<String, Vec<FailedNotification>> = Default::default();
    for r in store::failed_deliveries(client).await.map_err(db)? {
        let list = failed.entry(r.check).or_default();
        if list.len() < FAILED_SHOWN {
            list.push(FailedNotification {
                channel: r.channel,
                event: r.event,
                incident_id: r.incident_id,
                attempts: r.attempts,
                last_error: r.last_error,
                failed_at: timestamp(&r.updated_at),
            });
        }
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let spec: Option<CheckSpec> = serde_json::from_value(r.spec).ok();
            // A target may echo a request's token back into an error
            // message; without the spec, nothing is known to be safe.
            let last_error = match (&spec, r.last_error) {
                (Some(spec), Some(e)) => Some(scrub(&e, &secrets(spec))),
                (None, Some(_)) => Some("(hidden: the stored check could not be decoded)".to_string()),
                (_, None) => None,
            };
            CheckStatus {
                failed_notifications: failed.remove(&r.name).unwrap_or_default(),
                name: r.name,
                enabled: r.enabled,
                state: r.status,
                since: timestamp(&r.since),
                last_checked_at: r.last_checked_at.as_ref().map(timestamp),
                last_duration_ms: r.last_duration_ms,
                last_status_code: r.last_status_code,
                last_error,
                consecutive_failures: r.consecutive_failures,
                labels: spec.map(|s| s.labels).unwrap_or_default(),
                since_at: r.since,
                last_checked: r.last_checked_at,
            }
        })
        .collect())
}
