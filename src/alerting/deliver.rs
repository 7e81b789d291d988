//! The delivery loop: fan the outbox out, claim due deliveries, send them
//! (at most `alerts.concurrency` at once), settle each attempt, scan for
//! reminders, and keep the backlog gauge current.
//!
//! Any number of processes run it side by side: fan-out and claims use
//! `FOR UPDATE SKIP LOCKED`, so each outbox row is fanned out once and each
//! delivery is sent by one process at a time. A process that dies between
//! claim and settle leaves the delivery `sending` until its lease passes;
//! another then sends it again with the same idempotency key (at least
//! once, never silently dropped).

use deadpool_postgres::Pool;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff;
use super::channel::ChannelSpec;
use super::metrics;
use super::send::Sender;
use super::store::{self, Claimed};
use crate::config::AlertsConfig;

/// What the loop needs from the configuration.
#[derive(Debug, Clone)]
pub struct Options {
    pub alerts: AlertsConfig,
    /// Who claims (`notification_deliveries.leased_by`): the pod name.
    pub me: String,
    /// User-Agent of webhook requests.
    pub user_agent: String,
    /// The workers' target deny-list, applied to channel URLs too.
    pub deny: crate::net::deny::DenyList,
}

impl Options {
    pub fn from_config(
        config: &crate::config::Config,
        me: String,
        deny: crate::net::deny::DenyList,
    ) -> Options {
        Options { alerts: config.alerts.clone(), me, user_agent: config.worker.user_agent.clone(), deny }
    }
}

/// Runs delivery until `shutdown`; attempts in flight are finished (each is
/// bounded by `alerts.send_timeout`) before it returns.
pub async fn run(
    options: Options,
    pool: Pool,
    shutdown: CancellationToken,
) -> Result<(), crate::net::tls::TlsSetupError> {
    let a = options.alerts.clone();
    let sender = Arc::new(Sender::new(a.send_timeout, &options.user_agent, options.deny.clone())?);
    let permits = Arc::new(Semaphore::new(a.concurrency.max(1) as usize));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut next_scan = Instant::now();
    let mut failing = false;
    tracing::info!(concurrency = a.concurrency, "delivering notifications");
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        match round(&options, &pool, &sender, &permits, &mut tasks, &mut next_scan).await {
            Ok(busy) => {
                if failing {
                    tracing::info!("notification delivery works again");
                    failing = false;
                }
                if busy {
                    // More may be waiting: go again without sleeping.
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "notification delivery cannot reach PostgreSQL; retrying");
                    failing = true;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(a.poll_interval) => {}
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => log_task_failure(joined),
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// A delivery task that panicked loses nothing (its delivery is retried
/// when the lease passes), but an operator must hear of it.
fn log_task_failure(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        tracing::error!(error = %e, "a notification delivery task failed; its delivery will be retried");
    }
}

/// One pass; `true` when it found a full batch (more may be waiting).
async fn round(
    options: &Options,
    pool: &Pool,
    sender: &Arc<Sender>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    next_scan: &mut Instant,
) -> Result<bool, store::StoreError> {
    let a = &options.alerts;
    let batch = a.batch_size.max(1) as i64;
    let (fanned, created) = store::fan_out(pool, batch, a.max_attempts).await?;
    for (channel, status) in &created {
        match status.as_str() {
            "suppressed" => metrics::outcome(channel, "suppressed"),
            "failed" => metrics::outcome(channel, "failed"),
            _ => {}
        }
    }
    if Instant::now() >= *next_scan {
        *next_scan = Instant::now() + a.reminder_scan_interval;
        for (channel, status) in store::scan_reminders(pool, a.max_attempts).await? {
            if status == "suppressed" {
                metrics::outcome(&channel, "suppressed");
            }
        }
    }
    for channel in store::fail_abandoned(pool).await? {
        metrics::outcome(&channel, "failed");
    }
    while let Some(joined) = tasks.try_join_next() {
        log_task_failure(joined);
    }
    let free = permits.available_permits().min(batch as usize);
    let mut claimed_count = 0;
    if free > 0 {
        let claimed = store::claim(pool, free as i64, &options.me, a.lease).await?;
        claimed_count = claimed.len();
        for delivery in claimed {
            // Cannot fail: the semaphore is never closed, and `free` permits were available.
            let Ok(permit) = permits.clone().acquire_owned().await else { break };
            let (pool, sender, a) = (pool.clone(), sender.clone(), a.clone());
            tasks.spawn(async move {
                attempt(&pool, &sender, &a, delivery).await;
                drop(permit);
            });
        }
    }
    metrics::pending(store::backlog(pool).await?);
    Ok(fanned as i64 == batch || (claimed_count > 0 && claimed_count == free))
}

/// Sends one claimed delivery and records the outcome.
async fn attempt(pool: &Pool, sender: &Sender, a: &AlertsConfig, d: Claimed) {
    let started = Instant::now();
    let result = match d.spec.as_ref().map(|v| serde_json::from_value::<ChannelSpec>(v.clone())) {
        Some(Ok(channel)) => sender.send(&channel, &d.document, &d.key).await,
        Some(Err(e)) => {
            Err(format!("channel `{}` as stored cannot be read ({e}); re-apply the checks file", d.channel))
        }
        None => Err(format!("channel `{}` is not declared any more", d.channel)),
    };
    metrics::attempt(&d.channel, started.elapsed().as_secs_f64());
    let settled = match &result {
        Ok(()) => {
            metrics::outcome(&d.channel, "sent");
            tracing::info!(check = %d.check_name, channel = %d.channel, event = %d.event, attempt = d.attempt, key = %d.key, "notification sent");
            store::settle_sent(pool, d.id).await
        }
        Err(why) if d.attempt >= d.max_attempts => {
            metrics::outcome(&d.channel, "failed");
            tracing::error!(check = %d.check_name, channel = %d.channel, event = %d.event, attempts = d.attempt, error = %why, "notification failed for good");
            store::settle_failed(pool, d.id, d.attempt, why, None).await
        }
        Err(why) => {
            metrics::outcome(&d.channel, "retry");
            let wait =
                backoff::delay(d.attempt.max(1) as u32, a.retry_initial, a.retry_max, backoff::random_unit());
            tracing::warn!(check = %d.check_name, channel = %d.channel, event = %d.event, attempt = d.attempt, retry_in = ?wait, error = %why, "notification not delivered; retrying");
            store::settle_failed(pool, d.id, d.attempt, why, Some(wait)).await
        }
    };
    if let Err(e) = settled {
        // The lease runs out and the delivery is tried again: at least once.
        tracing::warn!(error = %e, key = %d.key, "cannot record the delivery attempt; it will be retried after its lease");
    }
}
