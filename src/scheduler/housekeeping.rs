//! Chores done once for the whole cluster, by whoever holds partition 0:
//! daily result partitions ahead of time, retention, forgetting dead members.

use tokio_postgres::GenericClient;

use super::{leases, membership};

/// Runs the chores if this member still holds partition 0 at `epoch`.
pub async fn run_once(
    client: &impl GenericClient,
    me: &str,
    epoch: i64,
    retention_days: u32,
) -> Result<(), tokio_postgres::Error> {
    if !leases::holds(client, me, 0, epoch).await? {
        return Ok(());
    }
    let created: i32 = client
        .query_one("SELECT sentryk8s_ensure_result_partitions((now() AT TIME ZONE 'UTC')::date - 1, 9)", &[])
        .await?
        .get(0);
    let keep = retention_days as i32;
    let dropped: i32 = client
        .query_one(
            "SELECT sentryk8s_drop_result_partitions((now() AT TIME ZONE 'UTC')::date - $1::int)",
            &[&keep],
        )
        .await?
        .get(0);
    let missed = client
        .execute(
            "DELETE FROM missed_slots WHERE last_slot < now() - $1 * interval '1 day'",
            &[&(keep as f64)],
        )
        .await?;
    let members = membership::forget_dead(client).await?;
    tracing::info!(created, dropped, missed, members, "housekeeping done");
    Ok(())
}
