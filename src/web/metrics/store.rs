//! The SQL of the per-check metrics: one read of every declared check with
//! its state and the certificate expiry of its newest result.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

/// One declared check as the metrics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRow {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub labels: BTreeMap<String, String>,
    /// "up", "down", "unknown"; `None` before the first result.
    pub status: Option<String>,
    pub last_duration_ms: Option<f64>,
    /// `cert_expires_at` of the newest result (`None`: no result yet, or
    /// one without a certificate: plain HTTP, or a run that failed before
    /// the TLS handshake).
    pub cert_expires_at: Option<DateTime<Utc>>,
}

/// Every declared check with its state, by name.
///
/// `check_state` has no certificate column, so the newest result's is read
/// from `check_results` by its primary key: `(check_id, last_slot)`, one
/// index probe per check (the slot also prunes the daily partitions to one
/// at execution time), never a scan of a check's history.
pub async fn checks(client: &impl GenericClient) -> Result<Vec<CheckRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT c.id, c.name, c.enabled, coalesce(c.spec->'labels', '{}'::jsonb),
                    s.status, s.last_duration_ms, cert.cert_expires_at
               FROM checks c
               LEFT JOIN check_state s ON s.check_id = c.id
               LEFT JOIN LATERAL (
                    SELECT r.cert_expires_at FROM check_results r
                     WHERE r.check_id = c.id AND r.slot = s.last_slot
                     LIMIT 1
               ) cert ON true
              ORDER BY c.name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| CheckRow {
            id: r.get(0),
            name: r.get(1),
            enabled: r.get(2),
            // Labels are validated as strings on apply and on PUT.
            labels: serde_json::from_value(r.get(3)).unwrap_or_default(),
            status: r.get(4),
            last_duration_ms: r.get(5),
            cert_expires_at: r.get(6),
        })
        .collect())
}
