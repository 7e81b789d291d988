//! Chores done once for the whole cluster, by whoever holds partition 0:
//! daily result partitions ahead of time, retention, forgetting dead members.

use tokio_postgres::GenericClient;

use super::store;

/// Runs the chores if this member still holds partition 0 at `epoch`.
pub async fn run_once(
    client: &impl GenericClient,
    me: &str,
    epoch: i64,
    retention_days: u32,
) -> Result<(), tokio_postgres::Error> {
    if !store::holds_lease(client, me, 0, epoch).await? {
        return Ok(());
    }
    let created = store::ensure_result_partitions(client).await?;
    let keep = retention_days as i32;
    let dropped = store::drop_result_partitions(client, keep).await?;
    let missed = store::delete_missed_before(client, keep).await?;
    let members = store::forget_dead_members(client).await?;
    tracing::info!(created, dropped, missed, members, "housekeeping done");
    Ok(())
}
