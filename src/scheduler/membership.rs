//! Scheduler membership: a heartbeat row per live scheduler, judged by
//! PostgreSQL's clock (`now()`), never a local one.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::assignment::Member;
use super::identity::Identity;

/// Channel on which membership and lease changes are announced, so that the
/// other schedulers rebalance at once instead of at their next tick.
pub const LEASES_CHANNEL: &str = "sentryk8s_leases";

fn millis(d: Duration) -> f64 {
    d.as_millis() as f64
}

/// Upserts this member's row with `expires_at = now() + ttl`. Announces the
/// member when it is new or was considered dead, so that holders of its
/// preferred partitions hand them back without waiting for a tick.
/// Returns the database's clock (unix ms), to measure our own against it.
pub async fn heartbeat(
    client: &impl GenericClient,
    me: &Identity,
    ttl: Duration,
) -> Result<i64, tokio_postgres::Error> {
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
pub async fn live_members(client: &impl GenericClient) -> Result<Vec<Member>, tokio_postgres::Error> {
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
pub async fn leave(client: &impl GenericClient, me: &Identity) -> Result<(), tokio_postgres::Error> {
    client.execute("DELETE FROM scheduler_members WHERE member_id = $1", &[&me.member_id]).await?;
    client.execute("SELECT pg_notify($1, 'left')", &[&LEASES_CHANNEL]).await?;
    Ok(())
}

/// Forgets members dead for over an hour (housekeeping; harmless to race).
pub async fn forget_dead(client: &impl GenericClient) -> Result<u64, tokio_postgres::Error> {
    client.execute("DELETE FROM scheduler_members WHERE expires_at < now() - interval '1 hour'", &[]).await
}
