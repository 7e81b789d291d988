//! Every SQL statement of the scheduler role, by table: `cluster` and
//! `checks` (what to dispatch), `scheduler_members` (who is live),
//! `partition_leases` (who owns what, fenced), `missed_slots`, and the
//! housekeeping of `check_results` partitions. The loops (coordinator,
//! writer, housekeeping) decide what to do; this file only says it in SQL.
//!
//! Every statement runs in autocommit unless its caller passes a
//! transaction, so `now()` is the statement's own time, and every expiry is
//! judged by PostgreSQL's clock, never a local one.
//!
//! Fencing: every write for a partition is conditioned on `owner = me AND
//! epoch = e`. The epoch is a fencing token, bumped by each claim, so a
//! paused or partitioned ex-owner can no longer move the watermark.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::assignment::Member;
use super::identity::Identity;
use super::leases::{Lease, LeaseView};
use super::ledger::MissReason;
use super::schedule::{CheckRow, MissedRange};
use crate::history::rollup::MissedFact;

/// NOTIFY channel of check changes (sent by the triggers of `checks`); the
/// payload is the partition number.
pub const CHECKS_CHANNEL: &str = "sentryk8s_checks";

/// Channel on which membership and lease changes are announced, so that the
/// other schedulers rebalance at once instead of at their next tick.
pub const LEASES_CHANNEL: &str = "sentryk8s_leases";

type Result<T> = std::result::Result<T, tokio_postgres::Error>;

fn millis(d: Duration) -> f64 {
    d.as_millis() as f64
}

// ---- cluster and checks ---------------------------------------------------

/// The partition count fixed at install.
pub async fn partition_count(client: &impl GenericClient) -> Result<Option<u32>> {
    let row = client.query_opt("SELECT partitions FROM cluster", &[]).await?;
    Ok(row.map(|r| r.get::<_, i32>(0) as u32))
}

/// The enabled checks of `partitions`, grouped by partition (every
/// requested partition has an entry, possibly empty).
pub async fn load_checks(
    client: &impl GenericClient,
    partitions: &[u32],
) -> Result<HashMap<u32, Vec<CheckRow>>> {
    let ps: Vec<i32> = partitions.iter().map(|p| *p as i32).collect();
    let rows = client
        .query(
            "SELECT partition, id, name, interval_ms, version, spec::text
               FROM checks WHERE partition = ANY($1) AND enabled",
            &[&ps],
        )
        .await?;
    let mut out: HashMap<u32, Vec<CheckRow>> = partitions.iter().map(|p| (*p, Vec::new())).collect();
    for row in rows {
        let partition = row.get::<_, i32>(0) as u32;
        out.entry(partition).or_default().push(CheckRow {
            id: row.get(1),
            name: row.get(2),
            interval_ms: row.get::<_, i32>(3) as i64,
            version: row.get(4),
            spec_json: row.get(5),
        });
    }
    Ok(out)
}

/// A fingerprint of each partition's enabled checks (their ids and
/// versions), so the periodic fallback reload only reads partitions that
/// changed behind our back. Empty partitions read "0:0".
pub async fn check_fingerprints(
    client: &impl GenericClient,
    partitions: &[u32],
) -> Result<HashMap<u32, String>> {
    let ps: Vec<i32> = partitions.iter().map(|p| *p as i32).collect();
    let rows = client
        .query(
            "SELECT partition,
                    count(*)::text || ':' || sum(hashtextextended(id::text || ':' || version::text, 0)::numeric)::text
               FROM checks WHERE partition = ANY($1) AND enabled GROUP BY partition",
            &[&ps],
        )
        .await?;
    let mut out: HashMap<u32, String> = partitions.iter().map(|p| (*p, "0:0".to_string())).collect();
    for row in rows {
        out.insert(row.get::<_, i32>(0) as u32, row.get(1));
    }
    Ok(out)
}

// ---- scheduler_members ----------------------------------------------------

/// Upserts this member's row with `expires_at = now() + ttl`. Announces the
/// member when it is new or was considered dead, so that holders of its
/// preferred partitions hand them back without waiting for a tick.
/// Returns the database's clock (unix ms), to measure our own against it.
pub async fn heartbeat(client: &impl GenericClient, me: &Identity, ttl: Duration) -> Result<i64> {
    let row = client
        .query_one(
            "WITH previous AS (
                 SELECT expires_at > now() AS live FROM scheduler_members WHERE member_id = $1
             ), upsert AS (
                 INSERT INTO scheduler_members (member_id, ordinal, shards, expires_at)
                 VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
                 ON CONFLICT (member_id) DO UPDATE
                     SET heartbeat_at = now(), expires_at = EXCLUDED.expires_at,
                         ordinal = EXCLUDED.ordinal, shards = EXCLUDED.shards,
                         started_at = CASE WHEN scheduler_members.expires_at > now()
                                           THEN scheduler_members.started_at ELSE now() END
                 RETURNING 1
             )
             SELECT coalesce((SELECT live FROM previous), false),
                    (extract(epoch FROM clock_timestamp()) * 1000)::bigint
               FROM upsert",
            &[&me.member_id, &me.ordinal.map(|o| o as i32), &me.shards.map(|s| s as i32), &millis(ttl)],
        )
        .await?;
    let was_live: bool = row.get(0);
    if !was_live {
        client.execute("SELECT pg_notify($1, 'joined')", &[&LEASES_CHANNEL]).await?;
    }
    Ok(row.get(1))
}

/// Members whose heartbeat has not expired.
pub async fn live_members(client: &impl GenericClient) -> Result<Vec<Member>> {
    let rows = client
        .query("SELECT member_id, ordinal, shards FROM scheduler_members WHERE expires_at > now()", &[])
        .await?;
    Ok(rows
        .iter()
        .map(|r| Member {
            id: r.get(0),
            ordinal: r.get::<_, Option<i32>>(1).map(|o| o as u32),
            shards: r.get::<_, Option<i32>>(2).map(|s| s as u32),
        })
        .collect())
}

/// Leaves the membership (SIGTERM) and tells the others.
pub async fn leave(client: &impl GenericClient, me: &Identity) -> Result<()> {
    client.execute("DELETE FROM scheduler_members WHERE member_id = $1", &[&me.member_id]).await?;
    client.execute("SELECT pg_notify($1, 'left')", &[&LEASES_CHANNEL]).await?;
    Ok(())
}

/// Forgets members dead for over an hour (housekeeping; harmless to race).
pub async fn forget_dead_members(client: &impl GenericClient) -> Result<u64> {
    client.execute("DELETE FROM scheduler_members WHERE expires_at < now() - interval '1 hour'", &[]).await
}

// ---- partition_leases -----------------------------------------------------

const WATERMARK_MS: &str = "(extract(epoch FROM watermark) * 1000)::bigint";

/// Claims those of `partitions` that are free, expired, or already ours
/// (a restarted member with the same identity takes its own back at once,
/// with a higher epoch). Returns what was claimed.
///
/// A partition never claimed before starts at its first claim, and that
/// start is stored at once: an owner that dies before its first watermark
/// write leaves its successor the claim time, not the successor's own
/// "now", so the slots in between are caught up or recorded missed
/// instead of silently skipped.
pub async fn claim_leases(
    client: &impl GenericClient,
    me: &str,
    partitions: &[u32],
    ttl: Duration,
) -> Result<Vec<Lease>> {
    let ps: Vec<i32> = partitions.iter().map(|p| *p as i32).collect();
    let rows = client
        .query(
            &format!(
                "UPDATE partition_leases
                    SET owner = $1, epoch = epoch + 1, acquired_at = now(), updated_at = now(),
                        expires_at = now() + $3 * interval '1 millisecond',
                        watermark = coalesce(watermark, now())
                  WHERE partition = ANY($2)
                    AND (owner IS NULL OR owner = $1 OR expires_at IS NULL OR expires_at < now())
                  RETURNING partition, epoch, {WATERMARK_MS}"
            ),
            &[&me, &ps, &millis(ttl)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Lease { partition: r.get::<_, i32>(0) as u32, epoch: r.get(1), watermark: r.get(2) })
        .collect())
}

/// Extends the leases still held at the given epochs; returns the
/// partitions renewed. One that is missing was taken over: stop at once.
///
/// An expired lease nobody claimed is still ours to renew: any claim would
/// have bumped the epoch, so nobody else dispatched it meanwhile.
pub async fn renew_leases(
    client: &impl GenericClient,
    me: &str,
    held: &[(u32, i64)],
    ttl: Duration,
) -> Result<Vec<u32>> {
    let ps: Vec<i32> = held.iter().map(|(p, _)| *p as i32).collect();
    let es: Vec<i64> = held.iter().map(|(_, e)| *e).collect();
    let rows = client
        .query(
            "UPDATE partition_leases l
                SET expires_at = now() + $4 * interval '1 millisecond', updated_at = now()
               FROM unnest($2::int[], $3::bigint[]) AS h(partition, epoch)
              WHERE l.partition = h.partition AND l.epoch = h.epoch AND l.owner = $1
              RETURNING l.partition",
            &[&me, &ps, &es, &millis(ttl)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, i32>(0) as u32).collect())
}

/// Advances watermarks (partition, epoch, unix ms), fenced. Returns the
/// partitions whose fence held.
pub async fn write_watermarks(
    client: &impl GenericClient,
    me: &str,
    marks: &[(u32, i64, i64)],
) -> Result<Vec<u32>> {
    let ps: Vec<i32> = marks.iter().map(|m| m.0 as i32).collect();
    let es: Vec<i64> = marks.iter().map(|m| m.1).collect();
    let ws: Vec<i64> = marks.iter().map(|m| m.2).collect();
    let rows = client
        .query(
            "UPDATE partition_leases l
                SET watermark = 'epoch'::timestamptz + m.w * interval '1 millisecond', updated_at = now()
               FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS m(partition, epoch, w)
              WHERE l.partition = m.partition AND l.epoch = m.epoch AND l.owner = $1
              RETURNING l.partition",
            &[&me, &ps, &es, &ws],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, i32>(0) as u32).collect())
}

/// Hands partitions back with their final watermarks (`None` keeps the
/// stored one), fenced, and tells the other members so the new owner
/// claims at once rather than after a TTL.
pub async fn release_leases(
    client: &impl GenericClient,
    me: &str,
    marks: &[(u32, i64, Option<i64>)],
) -> Result<Vec<u32>> {
    let ps: Vec<i32> = marks.iter().map(|m| m.0 as i32).collect();
    let es: Vec<i64> = marks.iter().map(|m| m.1).collect();
    let ws: Vec<Option<i64>> = marks.iter().map(|m| m.2).collect();
    let rows = client
        .query(
            "UPDATE partition_leases l
                SET owner = NULL, expires_at = NULL, updated_at = now(),
                    watermark = coalesce('epoch'::timestamptz + m.w * interval '1 millisecond', l.watermark)
               FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS m(partition, epoch, w)
              WHERE l.partition = m.partition AND l.epoch = m.epoch AND l.owner = $1
              RETURNING l.partition",
            &[&me, &ps, &es, &ws],
        )
        .await?;
    if !rows.is_empty() {
        client.execute("SELECT pg_notify($1, 'released')", &[&LEASES_CHANNEL]).await?;
    }
    Ok(rows.iter().map(|r| r.get::<_, i32>(0) as u32).collect())
}

/// The whole lease table (P rows, a few thousand at most).
pub async fn lease_table(client: &impl GenericClient) -> Result<Vec<LeaseView>> {
    let rows = client
        .query(
            "SELECT partition, owner, coalesce(expires_at > now(), false) FROM partition_leases ORDER BY partition",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| LeaseView { partition: r.get::<_, i32>(0) as u32, owner: r.get(1), live: r.get(2) })
        .collect())
}

/// Whether this member still holds `partition` at `epoch` (guards housekeeping).
pub async fn holds_lease(client: &impl GenericClient, me: &str, partition: u32, epoch: i64) -> Result<bool> {
    let row = client
        .query_opt(
            "SELECT 1 FROM partition_leases WHERE partition = $1 AND owner = $2 AND epoch = $3 AND expires_at > now()",
            &[&(partition as i32), &me, &epoch],
        )
        .await?;
    Ok(row.is_some())
}

// ---- missed_slots ---------------------------------------------------------

/// A missed range as recorded, with what history needs to count it: the
/// check's name and labels (maintenance windows select by them).
#[derive(Debug, Clone)]
pub struct RecordedMiss {
    pub fact: MissedFact,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Records missed slots (idempotent: a range already recorded is skipped),
/// with the check's interval at the time. Returns the ranges actually
/// recorded, of checks that still exist: only those count in history.
pub async fn insert_missed(
    client: &impl GenericClient,
    missed: &[(MissedRange, MissReason)],
) -> Result<Vec<RecordedMiss>> {
    let ids: Vec<i64> = missed.iter().map(|(m, _)| m.check_id).collect();
    let firsts: Vec<i64> = missed.iter().map(|(m, _)| m.first).collect();
    let lasts: Vec<i64> = missed.iter().map(|(m, _)| m.last).collect();
    let counts: Vec<i32> = missed.iter().map(|(m, _)| m.count.min(i32::MAX as i64) as i32).collect();
    let reasons: Vec<&str> = missed.iter().map(|(_, r)| r.as_str()).collect();
    let rows = client
        .query(
            "WITH ins AS (
                 INSERT INTO missed_slots (check_id, first_slot, last_slot, slots, reason, interval_ms)
                 SELECT c, 'epoch'::timestamptz + f * interval '1 millisecond',
                           'epoch'::timestamptz + l * interval '1 millisecond', n, r,
                        (SELECT interval_ms FROM checks WHERE id = c)
                   FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::int[], $5::text[]) AS m(c, f, l, n, r)
                 ON CONFLICT DO NOTHING
                 RETURNING check_id, first_slot, last_slot, slots, interval_ms)
             SELECT ins.check_id, ins.first_slot, ins.last_slot, ins.slots, ins.interval_ms, c.name,
                    coalesce(c.spec->'labels', '{}')
               FROM ins JOIN checks c ON c.id = ins.check_id
              WHERE ins.interval_ms IS NOT NULL",
            &[&ids, &firsts, &lasts, &counts, &reasons],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| RecordedMiss {
            fact: MissedFact {
                check_id: r.get(0),
                first_ms: r.get::<_, DateTime<Utc>>(1).timestamp_millis(),
                last_ms: r.get::<_, DateTime<Utc>>(2).timestamp_millis(),
                slots: i64::from(r.get::<_, i32>(3)),
                interval_ms: i64::from(r.get::<_, i32>(4)),
            },
            name: r.get(5),
            labels: serde_json::from_value(r.get(6)).unwrap_or_default(),
        })
        .collect())
}

/// The prune of [`delete_missed_before`]: `last_slot` is indexed
/// (`missed_slots_last_slot_idx`, migration 0004), so it reads only the
/// rows it deletes. Public so a test can EXPLAIN the very statement.
pub const DELETE_MISSED_BEFORE: &str =
    "DELETE FROM missed_slots WHERE last_slot < now() - $1::float8 * interval '1 day'";

/// Deletes missed-slot records older than `keep_days`; returns how many.
pub async fn delete_missed_before(client: &impl GenericClient, keep_days: i32) -> Result<u64> {
    client.execute(DELETE_MISSED_BEFORE, &[&(keep_days as f64)]).await
}

// ---- check_results partitions ---------------------------------------------

/// Creates the daily result partitions from yesterday to 9 days ahead;
/// returns how many were created.
pub async fn ensure_result_partitions(client: &impl GenericClient) -> Result<i32> {
    Ok(client
        .query_one("SELECT sentryk8s_ensure_result_partitions((now() AT TIME ZONE 'UTC')::date - 1, 9)", &[])
        .await?
        .get(0))
}

/// Where an old daily result partition stands on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OldPartition {
    /// Still a partition of `check_results`.
    Attached,
    /// A `DETACH … CONCURRENTLY` began and was interrupted (a crash, a
    /// timeout): it needs `DETACH … FINALIZE`.
    DetachPending,
    /// Detached; only the table is left to drop.
    Detached,
}

/// The daily result tables (attached or not) whose day ends before
/// `keep_days` ago, oldest first, with where each stands. Names are those
/// `sentryk8s_ensure_result_partitions` gives (`check_results_YYYYMMDD`),
/// in the schema of `check_results`.
pub async fn old_result_partitions(
    client: &impl GenericClient,
    keep_days: i32,
) -> Result<Vec<(String, OldPartition)>> {
    let rows = client
        .query(
            "SELECT c.relname, i.inhrelid IS NOT NULL, coalesce(i.inhdetachpending, false)
               FROM pg_class c
               LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'check_results'::regclass
              WHERE c.relkind = 'r'
                AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'check_results'::regclass)
                AND c.relname ~ '^check_results_[0-9]{8}$'
                AND to_date(substring(c.relname from 15), 'YYYYMMDD')
                    < (now() AT TIME ZONE 'UTC')::date - $1::int
              ORDER BY c.relname",
            &[&keep_days],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let state = match (r.get::<_, bool>(1), r.get::<_, bool>(2)) {
                (false, _) => OldPartition::Detached,
                (true, true) => OldPartition::DetachPending,
                (true, false) => OldPartition::Attached,
            };
            (r.get(0), state)
        })
        .collect())
}

/// Quotes a result table name for SQL. The names come from
/// [`old_result_partitions`], which only returns `check_results_` and
/// eight digits, but quoting keeps that guarantee local.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Detaches one daily partition without taking an exclusive lock on
/// `check_results`: `CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE (which
/// inserts and reads never wait for), marks the partition pending, commits,
/// and waits for the transactions that may still use it. `finalize`
/// completes a detach that was interrupted instead.
///
/// `client` must not be in a transaction (PostgreSQL refuses
/// `CONCURRENTLY` there). The wait is bounded by `wait`, so one long
/// report query cannot hold housekeeping (and the scheduler loop running
/// it) for long: on timeout the partition stays pending, invisible to new
/// queries, and the next run finalizes it.
pub async fn detach_result_partition(
    client: &impl GenericClient,
    name: &str,
    finalize: bool,
    wait: Duration,
) -> Result<()> {
    let how = if finalize { "FINALIZE" } else { "CONCURRENTLY" };
    // Session settings: one statement per call, because several statements
    // in one simple query form a transaction block, where CONCURRENTLY fails.
    client.batch_execute(&format!("SET statement_timeout = {}", wait.as_millis().max(1))).await?;
    let detached = client
        .batch_execute(&format!("ALTER TABLE check_results DETACH PARTITION {} {how}", quoted(name)))
        .await;
    // The connection returns to a pool: never leave it with our timeout.
    let reset = client.batch_execute("RESET statement_timeout").await;
    detached?;
    reset
}

/// Drops a result table that is no longer a partition (it locks only that
/// table, never `check_results`). Refuses, by doing nothing, a table that
/// is still attached: dropping one would lock the parent exclusively.
pub async fn drop_detached_result_table(client: &impl GenericClient, name: &str) -> Result<bool> {
    let attached = client
        .query_opt(
            "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1) AND inhparent = 'check_results'::regclass",
            &[&name],
        )
        .await?
        .is_some();
    if attached {
        return Ok(false);
    }
    client.batch_execute(&format!("DROP TABLE IF EXISTS {}", quoted(name))).await?;
    Ok(true)
}
