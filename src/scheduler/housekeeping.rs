//! Chores done once for the whole cluster, by whoever holds partition 0:
//! daily result partitions ahead of time, closing the cumulative daily
//! totals of ended days (`history::store::close_day_totals`: it holds
//! rollup writers back while each day closes, ~1 s at 10,000 checks, once a day),
//! retention (heartbeat pings included), forgetting dead members.
//!
//! Retention never makes a writer wait: old result partitions are detached
//! `CONCURRENTLY` (no exclusive lock on `check_results`, so result inserts
//! go on) and dropped only once detached, and the deletes of missed slots,
//! notifications, deliveries, rollup rows and resolved incidents go by
//! index, in bounded batches. Every
//! step is bounded in time too, because the coordinator runs this inline
//! between lease renewals; what one run leaves, the next one finishes.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::store::{self, OldPartition};
use crate::alerting::store as alerting_store;
use crate::heartbeat::store as heartbeat_store;
use crate::history::buckets::Granularity;
use crate::history::store as history_store;

/// Longest wait of one detach for the transactions still using the
/// partition (a long report query): well under the lease TTL, so the
/// coordinator renews on time. An interrupted detach is finalized later.
const DETACH_WAIT: Duration = Duration::from_secs(2);

/// Rows deleted per statement, so each delete holds its row locks briefly.
const PRUNE_BATCH: i64 = 5_000;

/// Batches per table and run: bounds one run; a backlog (the first run
/// after an upgrade) drains over the next hourly runs.
const PRUNE_ROUNDS: u32 = 20;

/// Days of daily totals closed per run: bounds one run (~1 s each at 10,000 checks);
/// after an outage the rest close over the next runs.
const CLOSE_DAYS: u32 = 40;

/// How long each kind of history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days of check results and missed-slot records (`results.retention_days`).
    pub results_days: u32,
    /// Days of settled notifications and deliveries (`alerts.retention_days`).
    pub notifications_days: u32,
    /// Days of hourly rollup rows (`history.hourly_retention_days`); 0: forever.
    pub hourly_days: u32,
    /// Days of daily rollup rows (`history.daily_retention_days`); 0: forever.
    pub daily_days: u32,
    /// Days of resolved incidents (`history.incident_retention_days`); 0: forever.
    pub incidents_days: u32,
}

impl Retention {
    /// The retention of `config`.
    pub fn of(config: &crate::config::Config) -> Retention {
        Retention {
            results_days: config.results.retention_days,
            notifications_days: config.alerts.retention_days,
            hourly_days: config.history.hourly_retention_days,
            daily_days: config.history.daily_retention_days,
            incidents_days: config.history.incident_retention_days,
        }
    }
}

/// What one run did, for the log and for tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Done {
    pub created: i32,
    /// Result tables dropped.
    pub dropped: u32,
    /// Old partitions left for the next run (a detach that timed out).
    pub deferred: u32,
    pub missed: u64,
    pub notifications: u64,
    pub deliveries: u64,
    /// Hourly and daily rollup rows deleted.
    pub hourly: u64,
    pub daily: u64,
    /// Resolved incidents deleted.
    pub incidents: u64,
    /// Heartbeat pings deleted (kept as long as results).
    pub pings: u64,
    /// Days whose cumulative daily totals were closed.
    pub closed_days: u32,
    pub members: u64,
}

/// Runs the chores if this member still holds partition 0 at `epoch`.
/// `client` must be a plain connection, not a transaction: a concurrent
/// detach cannot run inside one.
pub async fn run(
    client: &impl GenericClient,
    me: &str,
    epoch: i64,
    retention: Retention,
) -> Result<Done, tokio_postgres::Error> {
    let mut done = Done::default();
    if !store::holds_lease(client, me, 0, epoch).await? {
        return Ok(done);
    }
    done.created = store::ensure_result_partitions(client).await?;
    let keep = retention.results_days.min(i32::MAX as u32) as i32;
    (done.dropped, done.deferred) = drop_old_partitions(client, keep).await?;
    done.missed = store::delete_missed_before(client, keep).await?;
    done.deliveries =
        prune(|| alerting_store::prune_deliveries(client, retention.notifications_days, PRUNE_BATCH)).await?;
    done.notifications =
        prune(|| alerting_store::prune_notifications(client, retention.notifications_days, PRUNE_BATCH))
            .await?;
    done.closed_days = history_store::close_day_totals(client, CLOSE_DAYS).await?;
    for (granularity, days, deleted) in [
        (Granularity::Hour, retention.hourly_days, &mut done.hourly),
        (Granularity::Day, retention.daily_days, &mut done.daily),
    ] {
        if days > 0 {
            *deleted = prune(|| history_store::prune_rollups(client, granularity, days, PRUNE_BATCH)).await?;
        }
    }
    if retention.incidents_days > 0 {
        done.incidents =
            prune(|| history_store::prune_incidents(client, retention.incidents_days, PRUNE_BATCH)).await?;
    }
    done.pings = prune(|| heartbeat_store::prune(client, retention.results_days, PRUNE_BATCH)).await?;
    done.members = store::forget_dead_members(client).await?;
    tracing::info!(
        created = done.created,
        dropped = done.dropped,
        deferred = done.deferred,
        missed = done.missed,
        notifications = done.notifications,
        deliveries = done.deliveries,
        hourly_rollups = done.hourly,
        daily_rollups = done.daily,
        incidents = done.incidents,
        pings = done.pings,
        closed_days = done.closed_days,
        members = done.members,
        "housekeeping done"
    );
    Ok(done)
}

/// Repeats one batch delete until it comes back short, at most
/// [`PRUNE_ROUNDS`] times; returns the rows deleted.
async fn prune<F, Fut>(mut batch: F) -> Result<u64, tokio_postgres::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, tokio_postgres::Error>>,
{
    let mut total = 0;
    for _ in 0..PRUNE_ROUNDS {
        let n = batch().await?;
        total += n;
        if n < PRUNE_BATCH as u64 {
            break;
        }
    }
    Ok(total)
}

/// Detaches (or finishes detaching) and drops the result partitions older
/// than `keep_days`. Returns (dropped, deferred). A detach that times out
/// waiting for a long transaction is deferred to the next run, not an
/// error; any other failure is.
async fn drop_old_partitions(
    client: &impl GenericClient,
    keep_days: i32,
) -> Result<(u32, u32), tokio_postgres::Error> {
    let mut old = store::old_result_partitions(client, keep_days).await?;
    // PostgreSQL allows one pending detach per table: finish those first.
    old.sort_by_key(|(_, state)| *state != OldPartition::DetachPending);
    let (mut dropped, mut deferred) = (0, 0);
    for (name, state) in old {
        if state != OldPartition::Detached {
            let finalize = state == OldPartition::DetachPending;
            if let Err(e) = store::detach_result_partition(client, &name, finalize, DETACH_WAIT).await {
                if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
                    tracing::info!(partition = %name, "detach waits for a long transaction; finished next run");
                    deferred += 1;
                    // A pending detach blocks every other one on this table.
                    break;
                }
                return Err(e);
            }
        }
        if store::drop_detached_result_table(client, &name).await? {
            dropped += 1;
        }
    }
    Ok((dropped, deferred))
}
