//! Every SQL statement on `heartbeat_keys` and `heartbeat_pings`
//! (migrations/0010_heartbeats.sql, where the trigger that makes keys is).
//!
//! A key is looked up by its SHA-256, computed by PostgreSQL the same way
//! the trigger stored it. Keys leave this file only for callers that show
//! them to someone allowed to see them (`checks list --show-ping-urls`,
//! write-scope API answers).

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::judge::{Ping, PingKind};

type Result<T> = std::result::Result<T, tokio_postgres::Error>;

/// Most pings one judgement reads (newest first): a job that pings in a
/// loop costs a bounded read, and the newest pings decide anyway.
pub const PINGS_READ: i64 = 1000;

/// A ping to record.
#[derive(Debug, Clone)]
pub struct NewPing<'a> {
    pub kind: PingKind,
    pub rid: Option<&'a str>,
    /// The run's log (already cut to [`super::MAX_BODY_BYTES`]); `None` when empty.
    pub body: Option<&'a [u8]>,
    pub source_ip: Option<IpAddr>,
}

/// Records a ping for the check whose key is `key`; `false` (nothing
/// recorded) when no check has that key. One statement: the lookup and
/// the insert cannot disagree.
pub async fn record(client: &impl GenericClient, key: &str, ping: &NewPing<'_>) -> Result<bool> {
    let row = client
        .query_opt(
            "INSERT INTO heartbeat_pings (check_id, kind, exit_code, rid, body, source_ip)
             SELECT check_id, $2::text, $3::int4, $4::text, $5::bytea, $6::inet FROM heartbeat_keys
              WHERE key_sha256 = encode(sha256(convert_to($1, 'UTF8')), 'hex')
             RETURNING id",
            &[&key, &ping.kind.as_str(), &ping.kind.exit_code(), &ping.rid, &ping.body, &ping.source_ip],
        )
        .await?;
    Ok(row.is_some())
}

/// What the judgement of one slot reads: when the check became a
/// heartbeat (`None`: it is not one now) and its pings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPings {
    pub watched_since: Option<DateTime<Utc>>,
    pub pings: Vec<Ping>,
}

/// The pings of `check_id` received in `(since, slot]` (the newest
/// [`PINGS_READ`]), plus the latest run end at or before `since` (whether
/// the last run failed does not expire).
pub async fn pings_before(
    client: &impl GenericClient,
    check_id: i64,
    since: DateTime<Utc>,
    slot: DateTime<Utc>,
) -> Result<SlotPings> {
    let watched =
        client.query_opt("SELECT created_at FROM heartbeat_keys WHERE check_id = $1", &[&check_id]).await?;
    let rows = client
        .query(
            "(SELECT received_at, kind, exit_code, rid FROM heartbeat_pings
               WHERE check_id = $1 AND received_at > $2 AND received_at <= $3
               ORDER BY received_at DESC, id DESC LIMIT $4)
             UNION ALL
             (SELECT received_at, kind, exit_code, rid FROM heartbeat_pings
               WHERE check_id = $1 AND received_at <= LEAST($2::timestamptz, $3::timestamptz) AND kind <> 'start'
               ORDER BY received_at DESC, id DESC LIMIT 1)",
            &[&check_id, &since, &slot, &PINGS_READ],
        )
        .await?;
    // Oldest first: pings received at the same instant keep the order
    // they were received in (the judge's tie rule).
    let pings = rows
        .iter()
        .rev()
        .filter_map(|r| {
            let kind = PingKind::from_row(r.get(1), r.get(2))?;
            Some(Ping { at: r.get(0), kind, rid: r.get(3) })
        })
        .collect();
    Ok(SlotPings { watched_since: watched.map(|r| r.get(0)), pings })
}

/// The ping keys of the named checks (all heartbeat checks when `names`
/// is empty), by check name. Secrets: only for callers allowed to see them.
pub async fn keys_by_name(client: &impl GenericClient, names: &[String]) -> Result<HashMap<String, String>> {
    let rows = client
        .query(
            "SELECT c.name, k.key FROM heartbeat_keys k JOIN checks c ON c.id = k.check_id
              WHERE cardinality($1::text[]) = 0 OR c.name = ANY($1)",
            &[&names],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Deletes up to `batch` pings older than `days` days (as results are
/// kept); returns how many.
pub async fn prune(client: &impl GenericClient, days: u32, batch: i64) -> Result<u64> {
    client
        .execute(
            "DELETE FROM heartbeat_pings WHERE id IN (
                 SELECT id FROM heartbeat_pings
                  WHERE received_at < now() - $1::int * interval '1 day' LIMIT $2)",
            &[&(days.min(i32::MAX as u32) as i32), &batch],
        )
        .await
}
