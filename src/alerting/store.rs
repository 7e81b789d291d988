//! Every statement of delivery: fan-out of the outbox, claims with a lease,
//! settling an attempt, the reminder scan and the backlog count.
//!
//! Claims are `FOR UPDATE SKIP LOCKED` and set `status = 'sending'` with
//! `next_attempt_at = now() + lease` in the same statement: the row is
//! invisible to other claimers until the lease passes (PostgreSQL's clock),
//! and becomes claimable again if its worker dies before settling it.
//! Settling a failure is fenced by the attempt number, so a worker that
//! outlived its lease cannot overwrite what the next attempt recorded.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;

use super::channel::ChannelSpec;
use super::fanout::{self, NewDelivery, Outbox, Trigger};
use super::reminders::{self, DownCheck, History};
use super::render::Event;
use crate::model::maintenance::WindowSpec;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(String);

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError(crate::db::error_chain(&e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError(crate::db::error_chain(&e))
    }
}

/// Declared channels by name; one the binary cannot read is logged and left out.
pub async fn channels(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<HashMap<String, ChannelSpec>, StoreError> {
    let mut out = HashMap::new();
    for row in client.query("SELECT name, spec FROM alert_channels", &[]).await? {
        let name: String = row.get(0);
        match serde_json::from_value::<ChannelSpec>(row.get(1)) {
            Ok(spec) => {
                out.insert(name, spec);
            }
            Err(e) => {
                tracing::error!(channel = %name, error = %e, "stored channel cannot be read; re-apply the checks file")
            }
        }
    }
    Ok(out)
}

/// Declared maintenance windows, by name.
pub async fn windows(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Vec<(String, WindowSpec)>, StoreError> {
    let mut out = Vec::new();
    for row in client.query("SELECT name, spec FROM maintenance_windows ORDER BY name", &[]).await? {
        let name: String = row.get(0);
        match serde_json::from_value::<WindowSpec>(row.get(1)) {
            Ok(spec) => out.push((name, spec)),
            Err(e) => {
                tracing::error!(window = %name, error = %e, "stored maintenance window cannot be read; re-apply the checks file")
            }
        }
    }
    Ok(out)
}

const INSERT_DELIVERIES: &str = "
INSERT INTO notification_deliveries (notification_id, check_id, check_name, channel, incident_id, event,
                                     idempotency_key, payload, status, max_attempts, suppressed_by, last_error)
SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[],
                     $8::jsonb[], $9::text[], $10::int4[], $11::text[], $12::text[])
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING channel, status";

/// Inserts deliveries (a key already present is skipped); returns the
/// (channel, status) of those inserted.
async fn insert(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[NewDelivery],
) -> Result<Vec<(String, String)>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let col = |f: fn(&NewDelivery) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
    let notification_ids = col(|d| d.notification_id);
    let check_ids: Vec<i64> = rows.iter().map(|d| d.check_id).collect();
    let names: Vec<&str> = rows.iter().map(|d| d.check_name.as_str()).collect();
    let channels: Vec<&str> = rows.iter().map(|d| d.channel.as_str()).collect();
    let incidents: Vec<i64> = rows.iter().map(|d| d.incident_id).collect();
    let events: Vec<&str> = rows.iter().map(|d| d.event.as_str()).collect();
    let keys: Vec<&str> = rows.iter().map(|d| d.key.as_str()).collect();
    let docs: Vec<&Value> = rows.iter().map(|d| &d.document).collect();
    let statuses: Vec<&str> = rows.iter().map(|d| d.status).collect();
    let attempts: Vec<i32> = rows.iter().map(|d| d.max_attempts.min(i32::MAX as u32) as i32).collect();
    let suppressed: Vec<Option<&str>> = rows.iter().map(|d| d.suppressed_by.as_deref()).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|d| d.last_error.as_deref()).collect();
    let statement = tx.prepare_cached(INSERT_DELIVERIES).await?;
    let inserted = tx
        .query(
            &statement,
            &[
                &notification_ids,
                &check_ids,
                &names,
                &channels,
                &incidents,
                &events,
                &keys,
                &docs,
                &statuses,
                &attempts,
                &suppressed,
                &errors,
            ],
        )
        .await?;
    Ok(inserted.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Fans out up to `limit` undispatched outbox rows in one transaction.
/// Returns how many rows were dispatched and the (channel, status) of the
/// deliveries created.
pub async fn fan_out(
    pool: &Pool,
    limit: i64,
    default_attempts: u32,
) -> Result<(usize, Vec<(String, String)>), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            // A recovery waits until its trigger is fanned out (by this or
            // another worker, committed): it follows what became of it.
            "SELECT n.id, n.check_id, n.check_name, n.incident_id, n.event, n.slot, n.payload
               FROM notifications n
              WHERE n.dispatched_at IS NULL
                AND NOT (n.event = 'up' AND EXISTS (
                        SELECT 1 FROM notifications t
                         WHERE t.check_id = n.check_id AND t.incident_id = n.incident_id
                           AND t.event = 'down' AND t.dispatched_at IS NULL))
              ORDER BY n.id LIMIT $1 FOR UPDATE OF n SKIP LOCKED",
            &[&limit],
        )
        .await?;
    if rows.is_empty() {
        tx.rollback().await?;
        return Ok((0, Vec::new()));
    }
    let outbox: Vec<Outbox> = rows
        .iter()
        .map(|r| Outbox {
            id: r.get(0),
            check_id: r.get(1),
            check_name: r.get(2),
            incident_id: r.get(3),
            // The batcher writes only "down" and "up".
            event: Event::parse(r.get::<_, &str>(4)).unwrap_or(Event::Down),
            slot: r.get(5),
            payload: r.get(6),
        })
        .collect();
    let channels = channels(&tx).await?;
    let windows = windows(&tx).await?;
    let ups: Vec<&Outbox> = outbox.iter().filter(|n| n.event == Event::Up).collect();
    let mut triggers: HashMap<(i64, i64, String), Trigger> = HashMap::new();
    if !ups.is_empty() {
        let ids: Vec<i64> = ups.iter().map(|n| n.check_id).collect();
        let incidents: Vec<i64> = ups.iter().map(|n| n.incident_id).collect();
        for r in tx
            .query(
                "SELECT check_id, incident_id, channel, status, suppressed_by FROM notification_deliveries
                  WHERE event = 'down'
                    AND (check_id, incident_id) IN (SELECT * FROM unnest($1::int8[], $2::int8[]))",
                &[&ids, &incidents],
            )
            .await?
        {
            let status: &str = r.get(3);
            let trigger = if status == "suppressed" {
                Trigger::Suppressed(r.get::<_, Option<String>>(4).unwrap_or_default())
            } else {
                Trigger::Delivered
            };
            triggers.insert((r.get(0), r.get(1), r.get(2)), trigger);
        }
    }
    let now = Utc::now();
    let mut planned = Vec::new();
    for n in &outbox {
        let lookup = |channel: &str| triggers.get(&(n.check_id, n.incident_id, channel.to_string())).cloned();
        // A trigger and its resolve are never in one batch: the SELECT
        // above holds a recovery back until its trigger is fanned out.
        planned.extend(fanout::plan(n, &channels, &windows, &lookup, default_attempts, now));
    }
    let created = insert(&tx, &planned).await?;
    // A recovery ends the incident's reminders: one still waiting (a retry)
    // would arrive after the resolve, and a PagerDuty reminder is a trigger.
    if !ups.is_empty() {
        let ids: Vec<i64> = ups.iter().map(|n| n.check_id).collect();
        let incidents: Vec<i64> = ups.iter().map(|n| n.incident_id).collect();
        tx.execute(
            "UPDATE notification_deliveries
                SET status = 'suppressed', updated_at = now(),
                    last_error = coalesce(last_error || '; ', '') || 'the check recovered before this reminder was sent'
              WHERE event = 'reminder' AND status = 'pending'
                AND (check_id, incident_id) IN (SELECT * FROM unnest($1::int8[], $2::int8[]))",
            &[&ids, &incidents],
        )
        .await?;
    }
    let ids: Vec<i64> = outbox.iter().map(|n| n.id).collect();
    tx.execute("UPDATE notifications SET dispatched_at = now() WHERE id = ANY($1::int8[])", &[&ids]).await?;
    tx.commit().await?;
    Ok((outbox.len(), created))
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub check_id: i64,
    pub check_name: String,
    pub channel: String,
    pub event: String,
    pub key: String,
    pub document: Value,
    /// This attempt's number (from 1).
    pub attempt: i32,
    pub max_attempts: i32,
    /// The channel as stored now (`None` when it was removed).
    pub spec: Option<Value>,
}

/// Fails deliveries whose lease passed after their last allowed attempt
/// (the worker died mid-send): there is no attempt left to give them.
pub async fn fail_abandoned(pool: &Pool) -> Result<Vec<String>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "UPDATE notification_deliveries
                SET status = 'failed', leased_by = NULL, updated_at = now(),
                    last_error = coalesce(last_error || '; ', '') || 'the last attempt was never finished (its worker stopped)'
              WHERE status = 'sending' AND next_attempt_at <= now() AND attempts >= max_attempts
             RETURNING channel",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Claims up to `limit` due deliveries for `me`, each for `lease`.
pub async fn claim(pool: &Pool, limit: i64, me: &str, lease: Duration) -> Result<Vec<Claimed>, StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            // A resolve waits while its trigger (or a reminder) for the same
            // channel is still to be sent: sent concurrently, or after the
            // trigger's backoff, it would reach the receiver first and leave
            // the incident open for good.
            "WITH due AS (
                 SELECT id FROM notification_deliveries d
                  WHERE status IN ('pending', 'sending') AND next_attempt_at <= now() AND attempts < max_attempts
                    AND NOT (d.event = 'up' AND EXISTS (
                            SELECT 1 FROM notification_deliveries t
                             WHERE t.check_id = d.check_id AND t.incident_id = d.incident_id
                               AND t.channel = d.channel AND t.event IN ('down', 'reminder')
                               AND t.status IN ('pending', 'sending')))
                  ORDER BY next_attempt_at, id
                  LIMIT $1
                  FOR UPDATE SKIP LOCKED)
             UPDATE notification_deliveries d
                SET status = 'sending', attempts = d.attempts + 1, leased_by = $2,
                    next_attempt_at = now() + make_interval(secs => $3::float8), updated_at = now()
               FROM due
              WHERE d.id = due.id
             RETURNING d.id, d.check_id, d.check_name, d.channel, d.event, d.idempotency_key, d.payload,
                       d.attempts, d.max_attempts, (SELECT spec FROM alert_channels c WHERE c.name = d.channel)",
        )
        .await?;
    let rows = client.query(&statement, &[&limit, &me, &lease.as_secs_f64()]).await?;
    Ok(rows
        .iter()
        .map(|r| Claimed {
            id: r.get(0),
            check_id: r.get(1),
            check_name: r.get(2),
            channel: r.get(3),
            event: r.get(4),
            key: r.get(5),
            document: r.get(6),
            attempt: r.get(7),
            max_attempts: r.get(8),
            spec: r.get(9),
        })
        .collect())
}

/// Records a successful attempt.
pub async fn settle_sent(pool: &Pool, id: i64) -> Result<(), StoreError> {
    let client = pool.get().await?;
    // The incident row counts the alerts sent for it, once per delivery.
    client
        .execute(
            "WITH sent AS (
                 UPDATE notification_deliveries
                    SET status = 'sent', sent_at = now(), last_error = NULL, updated_at = now()
                  WHERE id = $1 AND status <> 'sent'
                 RETURNING incident_id)
             UPDATE incidents i SET alerts_sent = i.alerts_sent + 1 FROM sent WHERE i.id = sent.incident_id",
            &[&id],
        )
        .await?;
    Ok(())
}

/// Records a failed attempt: retried after `retry_in`, or failed for good
/// when `retry_in` is `None`. Fenced by the attempt number.
pub async fn settle_failed(
    pool: &Pool,
    id: i64,
    attempt: i32,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let error: String = error.chars().take(1000).collect();
    match retry_in {
        Some(wait) => {
            client
                .execute(
                    "UPDATE notification_deliveries
                        SET status = 'pending', leased_by = NULL, last_error = $3, updated_at = now(),
                            next_attempt_at = now() + make_interval(secs => $4::float8)
                      WHERE id = $1 AND status = 'sending' AND attempts = $2",
                    &[&id, &attempt, &error, &wait.as_secs_f64()],
                )
                .await?
        }
        None => {
            client
                .execute(
                    "UPDATE notification_deliveries
                        SET status = 'failed', leased_by = NULL, last_error = $3, updated_at = now()
                      WHERE id = $1 AND status = 'sending' AND attempts = $2",
                    &[&id, &attempt, &error],
                )
                .await?
        }
    };
    Ok(())
}

/// Outbox rows not yet fanned out plus deliveries waiting to be sent.
pub async fn backlog(pool: &Pool) -> Result<i64, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM notifications WHERE dispatched_at IS NULL)
                  + (SELECT count(*) FROM notification_deliveries WHERE status IN ('pending', 'sending'))",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Looks at every check that is down: creates the reminders that are due
/// and releases triggers held back by a window that has ended. Returns the
/// (channel, status) of the deliveries created or released.
pub async fn scan_reminders(pool: &Pool, default_attempts: u32) -> Result<Vec<(String, String)>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT s.check_id, c.name, s.incident_id, c.spec, s.last_error, s.last_status_code,
                    s.last_duration_ms, n.payload
               FROM check_state s
               JOIN checks c ON c.id = s.check_id
               LEFT JOIN notifications n
                      ON n.check_id = s.check_id AND n.incident_id = s.incident_id AND n.event = 'down'
              WHERE s.status = 'down' AND s.incident_id IS NOT NULL AND c.enabled AND c.spec ? 'alerts'",
            &[],
        )
        .await?;
    let mut down = Vec::new();
    for r in &rows {
        let spec: crate::model::CheckSpec = match serde_json::from_value(r.get(3)) {
            Ok(spec) => spec,
            Err(_) => continue,
        };
        let Some(mut payload) = r.get::<_, Option<Value>>(7) else { continue };
        // The newest error, not the one of the flip.
        payload["last_error"] = r.get::<_, Option<String>>(4).map_or(Value::Null, Value::from);
        payload["status_code"] = r.get::<_, Option<i32>>(5).map_or(Value::Null, Value::from);
        payload["duration_ms"] = r.get::<_, Option<f64>>(6).map_or(Value::Null, Value::from);
        down.push(DownCheck {
            check_id: r.get(0),
            name: r.get(1),
            incident_id: r.get(2),
            labels: spec.labels.clone().into_iter().collect::<BTreeMap<_, _>>(),
            alerts: spec.alerts.clone(),
            payload,
        });
    }
    if down.is_empty() {
        tx.rollback().await?;
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = down.iter().map(|d| d.check_id).collect();
    let incidents: Vec<i64> = down.iter().map(|d| d.incident_id).collect();
    let mut history: HashMap<(i64, String), History> = HashMap::new();
    for r in tx
        .query(
            "SELECT check_id, channel, max(created_at),
                    count(*) FILTER (WHERE event = 'reminder'),
                    max(status) FILTER (WHERE event = 'down'),
                    max(suppressed_by) FILTER (WHERE event = 'down')
               FROM notification_deliveries
              WHERE (check_id, incident_id) IN (SELECT * FROM unnest($1::int8[], $2::int8[]))
              GROUP BY check_id, channel",
            &[&ids, &incidents],
        )
        .await?
    {
        let trigger = r.get::<_, Option<String>>(4).map(|status| (status, r.get::<_, Option<String>>(5)));
        history.insert(
            (r.get(0), r.get(1)),
            History { last_at: r.get::<_, DateTime<Utc>>(2), reminders: r.get::<_, i64>(3) as u32, trigger },
        );
    }
    let channels = channels(&tx).await?;
    let windows = windows(&tx).await?;
    let now = Utc::now();
    let mut created = Vec::new();
    let mut reminders_due = Vec::new();
    for d in &down {
        let mine: HashMap<String, History> = d
            .alerts
            .iter()
            .filter_map(|c| history.get(&(d.check_id, c.clone())).map(|h| (c.clone(), h.clone())))
            .collect();
        let plan = reminders::plan(d, &channels, &windows, &mine, default_attempts, now);
        for channel in plan.release {
            let n = tx
                .execute(
                    "UPDATE notification_deliveries
                        SET status = 'pending', next_attempt_at = now(), updated_at = now(),
                            suppressed_by = suppressed_by || ' (ended while still down: sent)'
                      WHERE check_id = $1 AND incident_id = $2 AND channel = $3 AND event = 'down'
                        AND status = 'suppressed'",
                    &[&d.check_id, &d.incident_id, &channel],
                )
                .await?;
            if n > 0 {
                created.push((channel, "pending".to_string()));
            }
        }
        reminders_due.extend(plan.reminders);
    }
    created.extend(insert(&tx, &reminders_due).await?);
    tx.commit().await?;
    Ok(created)
}

/// A check that is deleted or paused while DOWN will never recover by a
/// result: its incident would stay open at every receiver (PagerDuty, a
/// ticket). Writes the recovery into the outbox in the caller's
/// transaction — with `reason` in the payload — and clears the state, so a
/// paused check starts afresh when it is enabled again.
///
/// It first takes the `check_state` row locks a worker's batch takes (in
/// the same id order, creating missing rows so a batch inserting a check's
/// first state row is waited for too). Either that batch committed first,
/// and what it wrote (a flip, a recovery) is what gets resolved here, once;
/// or this transaction holds the locks until the apply commits, and the
/// batch then sees the check paused or deleted and leaves its state and
/// outbox alone (`worker::store`).
pub async fn resolve_withdrawn(
    tx: &impl tokio_postgres::GenericClient,
    check_ids: &[i64],
    reason: &str,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO check_state (check_id)
         SELECT id FROM checks WHERE id = ANY($1::int8[]) ORDER BY id
         ON CONFLICT (check_id) DO NOTHING",
        &[&check_ids],
    )
    .await?;
    tx.execute(
        "SELECT 1 FROM check_state WHERE check_id = ANY($1::int8[]) ORDER BY check_id FOR UPDATE",
        &[&check_ids],
    )
    .await?;
    let resolved = tx
        .execute(
            "INSERT INTO notifications (check_id, check_name, incident_id, event, slot, payload)
             SELECT c.id, c.name, s.incident_id, 'up', now(),
                    jsonb_build_object(
                        'check', c.name, 'check_id', c.id, 'state', 'up', 'since', now(),
                        'incident_id', s.incident_id, 'slot', now(), 'reason', $2::text,
                        'description', c.spec->'description', 'labels', coalesce(c.spec->'labels', '{}'),
                        'alerts', coalesce(c.spec->'alerts', '[]'), 'last_error', s.last_error,
                        'down_for_seconds', extract(epoch FROM now() - s.since))
               FROM checks c JOIN check_state s ON s.check_id = c.id
              WHERE c.id = ANY($1::int8[]) AND s.status = 'down' AND s.incident_id IS NOT NULL
             ON CONFLICT (check_id, slot, event) DO NOTHING",
            &[&check_ids, &reason],
        )
        .await?;
    // The incident row ends here too (history keeps why).
    tx.execute(
        "UPDATE incidents i SET resolved_at = now(), resolution = $2
           FROM check_state s
          WHERE s.check_id = ANY($1::int8[]) AND s.status = 'down' AND i.id = s.incident_id
            AND i.resolved_at IS NULL",
        &[&check_ids, &reason],
    )
    .await?;
    tx.execute(
        "UPDATE check_state SET status = 'unknown', since = now(), incident_id = NULL,
                consecutive_failures = 0, consecutive_successes = 0, streak_start = NULL,
                updated_at = now()
          WHERE check_id = ANY($1::int8[]) AND status <> 'unknown'",
        &[&check_ids],
    )
    .await?;
    Ok(resolved)
}

/// Whether a row of incident `(check_id, incident_id)` must be kept for a
/// check still down: `scan_reminders` reads the incident's `down` outbox
/// row (the reminders' payload) and its deliveries (when the last reminder
/// went, how many, what became of the trigger), and a suppressed trigger
/// may still be released when its window ends.
const OPEN_INCIDENT: &str = "EXISTS (SELECT 1 FROM check_state s
                 WHERE s.check_id = {t}.check_id AND s.incident_id = {t}.incident_id AND s.status = 'down')";

/// Deletes up to `batch` deliveries created more than `keep_days` ago
/// that are settled (sent, failed or suppressed), not of an incident still
/// open, and not the trigger a not-yet-fanned-out recovery will look up.
/// Returns how many. The settled test is repeated outside the subquery so
/// a row claimed or released meanwhile is re-checked on its new version.
pub async fn prune_deliveries(
    client: &impl tokio_postgres::GenericClient,
    keep_days: u32,
    batch: i64,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "DELETE FROM notification_deliveries
          WHERE status NOT IN ('pending', 'sending')
            AND id IN (
                SELECT d.id FROM notification_deliveries d
                 WHERE d.created_at < now() - $1::float8 * interval '1 day'
                   AND d.status NOT IN ('pending', 'sending')
                   AND NOT {open}
                   AND NOT EXISTS (SELECT 1 FROM notifications n
                                    WHERE n.check_id = d.check_id AND n.incident_id = d.incident_id
                                      AND n.dispatched_at IS NULL)
                 ORDER BY d.created_at
                 LIMIT $2)",
        open = OPEN_INCIDENT.replace("{t}", "d")
    );
    client.execute(&sql, &[&f64::from(keep_days), &batch]).await
}

/// Deletes up to `batch` outbox rows created more than `keep_days` ago
/// that are fanned out, not of an incident still open, and whose
/// deliveries are all settled and old too (their own deletion follows by
/// `ON DELETE CASCADE`). Returns how many.
pub async fn prune_notifications(
    client: &impl tokio_postgres::GenericClient,
    keep_days: u32,
    batch: i64,
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!(
        "DELETE FROM notifications
          WHERE dispatched_at IS NOT NULL
            AND id IN (
                SELECT n.id FROM notifications n
                 WHERE n.created_at < now() - $1::float8 * interval '1 day'
                   AND n.dispatched_at IS NOT NULL
                   AND NOT {open}
                   AND NOT EXISTS (SELECT 1 FROM notification_deliveries d
                                    WHERE d.notification_id = n.id
                                      AND (d.status IN ('pending', 'sending')
                                           OR d.created_at >= now() - $1::float8 * interval '1 day'))
                 ORDER BY n.created_at
                 LIMIT $2)",
        open = OPEN_INCIDENT.replace("{t}", "n")
    );
    client.execute(&sql, &[&f64::from(keep_days), &batch]).await
}
