//! Partition leases: claimed, renewed, released and fenced in PostgreSQL.
//!
//! Every statement runs in autocommit so `now()` is the statement's time,
//! and every write for a partition is conditioned on `owner = me AND
//! epoch = e`: the epoch is a fencing token, bumped by each claim, so a
//! paused or partitioned ex-owner can no longer move the watermark.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::membership::LEASES_CHANNEL;

/// A lease this member holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub partition: u32,
    pub epoch: i64,
    /// Every slot before this (unix ms) was handed out: published, or
    /// recorded missed. Set by the first claim; `None` only for a lease row
    /// written by hand.
    pub watermark: Option<i64>,
}

/// One row of the lease table as seen now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub partition: u32,
    pub owner: Option<String>,
    /// Whether the lease is unexpired by the database's clock.
    pub live: bool,
}

fn ms(ttl: Duration) -> f64 {
    ttl.as_millis() as f64
}

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
pub async fn claim(
    client: &impl GenericClient,
    me: &str,
    partitions: &[u32],
    ttl: Duration,
) -> Result<Vec<Lease>, tokio_postgres::Error> {
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
            &[&me, &ps, &ms(ttl)],
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
pub async fn renew(
    client: &impl GenericClient,
    me: &str,
    held: &[(u32, i64)],
    ttl: Duration,
) -> Result<Vec<u32>, tokio_postgres::Error> {
    let ps: Vec<i32> = held.iter().map(|(p, _)| *p as i32).collect();
    let es: Vec<i64> = held.iter().map(|(_, e)| *e).collect();
    let rows = client
        .query(
            "UPDATE partition_leases l
                SET expires_at = now() + $4 * interval '1 millisecond', updated_at = now()
               FROM unnest($2::int[], $3::bigint[]) AS h(partition, epoch)
              WHERE l.partition = h.partition AND l.epoch = h.epoch AND l.owner = $1
              RETURNING l.partition",
            &[&me, &ps, &es, &ms(ttl)],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, i32>(0) as u32).collect())
}

/// Advances watermarks, fenced. Returns the partitions whose fence held.
pub async fn write_watermarks(
    client: &impl GenericClient,
    me: &str,
    marks: &[(u32, i64, i64)],
) -> Result<Vec<u32>, tokio_postgres::Error> {
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

/// Hands partitions back with their final watermarks, fenced, and tells
/// the other members so the new owner claims at once rather than after a TTL.
pub async fn release(
    client: &impl GenericClient,
    me: &str,
    marks: &[(u32, i64, Option<i64>)],
) -> Result<Vec<u32>, tokio_postgres::Error> {
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
pub async fn snapshot(client: &impl GenericClient) -> Result<Vec<LeaseView>, tokio_postgres::Error> {
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
pub async fn holds(
    client: &impl GenericClient,
    me: &str,
    partition: u32,
    epoch: i64,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT 1 FROM partition_leases WHERE partition = $1 AND owner = $2 AND epoch = $3 AND expires_at > now()",
            &[&(partition as i32), &me, &epoch],
        )
        .await?;
    Ok(row.is_some())
}
