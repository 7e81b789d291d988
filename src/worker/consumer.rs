//! Consuming check jobs: one AMQP session at a time, reconnecting forever.
//!
//! Each session opens a connection and a channel, declares the topology
//! (idempotent), sets the prefetch window and consumes with manual acks.
//! Per delivery: undecodable, other-version or nonsensical jobs are rejected
//! without requeue, so the broker moves them to the dead-letter queue; a job
//! whose slot + interval has passed is not run but recorded as missed
//! (`stale`); anything else waits for one of `concurrency` permits and runs
//! in its own task. Results go to the batcher, which acknowledges them after
//! its commit (see `acks.rs`).
//!
//! The prefetch window is `concurrency + batch_size`: results waiting for
//! their batch commit still hold their delivery, and counting them against
//! the checks' concurrency would idle the worker for every batch delay.
//!
//! amqprs has no automatic recovery, so a network failure, a closed channel
//! or a cancelled consumer ends the session; the broker requeues whatever
//! the session had not acknowledged, and a new session starts after backoff.
//! While the batcher cannot write (PostgreSQL down) no new check starts:
//! the held deliveries stay unacknowledged and the prefetch window keeps
//! the rest of the backlog in the queue.

use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::{
    BasicCancelArguments, BasicConsumeArguments, BasicQosArguments, Channel, ConsumerMessage,
};
use amqprs::connection::Connection;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::acks::Session;
use super::heartbeat::{self, Heartbeats};
use super::item::{Item, ResultRow};
use super::metrics::{DeadLetterReason, WorkerMetrics};
use crate::model::bounds::INTERVAL_MS;
use crate::model::{CheckJob, DecodeError};
use crate::probe::Prober;
use crate::queue::{self, AmqpLink, AmqpTarget, LogChannel, QueueError, Topology};

/// Finished jobs allowed to wait for their acknowledgement behind a slower
/// one. The autoscaler reads ready + unacknowledged messages per worker:
/// finished jobs held unacknowledged would read as backlog (up to a quarter
/// of the prefetch window per worker, measured in the autoscaling
/// experiment), and the HPA would add workers for work already done.
const WAITING_ACKS: usize = 16;

/// Undecodable jobs logged so far (the first ten, then one in a thousand).
static DEAD_LETTERS_LOGGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How far in the future a slot may be before the job is refused as
/// nonsense (clock skew between scheduler and worker is far smaller).
const MAX_SLOT_AHEAD: chrono::Duration = chrono::Duration::minutes(5);
/// Everything a consumer needs; built by `worker::run`.
pub struct Consumer {
    pub target: AmqpTarget,
    pub topology: Topology,
    pub connection_name: String,
    pub heartbeat: Duration,
    pub max_backoff: Duration,
    pub concurrency: usize,
    pub prefetch: u16,
    /// How long a drain waits for running checks before abandoning them.
    pub checks_budget: Duration,
    pub prober: Arc<Prober>,
    /// Heartbeat jobs are judged from pings, not probed.
    pub heartbeats: Arc<Heartbeats>,
    pub metrics: Arc<WorkerMetrics>,
    pub link: AmqpLink,
    pub results: mpsc::Sender<Item>,
    pub healthy: watch::Receiver<bool>,
}

/// Why a decoded job is refused.
pub fn validate(job: &CheckJob, now: DateTime<Utc>) -> Result<(), String> {
    if !INTERVAL_MS.contains(&job.interval_ms) {
        return Err(format!(
            "interval_ms {} is out of range {}..={}",
            job.interval_ms,
            INTERVAL_MS.start(),
            INTERVAL_MS.end()
        ));
    }
    if job.slot > now + MAX_SLOT_AHEAD {
        return Err(format!("slot {} is more than a day in the future", job.slot.to_rfc3339()));
    }
    Ok(())
}

/// Whether a job's slot + interval has passed.
pub fn is_stale(job: &CheckJob, now: DateTime<Utc>) -> bool {
    now > job.stale_after()
}

struct Running {
    connection: Connection,
    channel: Channel,
    consumer_tag: String,
    session: Arc<Session>,
}

impl Consumer {
    /// Consumes until `shutdown`, then drains: stops consuming, lets running
    /// checks finish within the budget, waits for the batcher's last commit
    /// (`batcher_done`), and closes the connection, which returns anything
    /// unacknowledged to the queue.
    pub async fn run(self, shutdown: CancellationToken, batcher_done: CancellationToken) {
        let semaphore = Arc::new(Semaphore::new(self.concurrency));
        let abort = CancellationToken::new();
        let mut active: Option<Running> = None;
        let mut retry_delay = Duration::from_millis(200);
        while !shutdown.is_cancelled() {
            let connection = match queue::connect_with_backoff(
                &self.target,
                &self.connection_name,
                self.heartbeat,
                self.max_backoff,
                &shutdown,
            )
            .await
            {
                Ok(c) => c,
                Err(_) => break,
            };
            let (channel, consumer_tag, mut rx) = match self.open_session(&connection).await {
                Ok(opened) => opened,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start consuming; reconnecting");
                    let _ = connection.close().await;
                    tokio::select! {
                        _ = tokio::time::sleep(retry_delay) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    retry_delay = (retry_delay * 2).min(self.max_backoff);
                    continue;
                }
            };
            retry_delay = Duration::from_millis(200);
            self.link.set(Some(connection.clone()));
            let session = Session::new(channel.clone(), WAITING_ACKS);
            tracing::info!(queue = %self.topology.queue, prefetch = self.prefetch, concurrency = self.concurrency, "consuming check jobs");
            let watcher = connection.clone();
            let failure = watcher.listen_network_io_failure();
            tokio::pin!(failure);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let ended_by_shutdown = loop {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break true,
                    _ = &mut failure => {
                        tracing::warn!("lost the RabbitMQ connection; reconnecting");
                        break false;
                    }
                    _ = tick.tick() => if !session.is_open() || !connection.is_open() {
                        tracing::warn!("RabbitMQ channel closed; reconnecting");
                        break false;
                    },
                    message = rx.recv() => match message {
                        Some(message) => self.handle(message, &session, &semaphore, &abort, &shutdown).await,
                        None => {
                            tracing::warn!("RabbitMQ stopped delivering (consumer cancelled or channel closed); reconnecting");
                            break false;
                        }
                    },
                }
            };
            if ended_by_shutdown {
                active = Some(Running { connection, channel, consumer_tag, session });
                break;
            }
            session.close();
            self.link.set(None);
            if connection.is_open() {
                let _ = connection.close().await;
            }
        }
        self.drain(active, semaphore, abort, batcher_done).await;
    }

    async fn open_session(
        &self,
        connection: &Connection,
    ) -> Result<(Channel, String, mpsc::UnboundedReceiver<ConsumerMessage>), QueueError> {
        let channel = connection.open_channel(None).await?;
        channel.register_callback(LogChannel).await?;
        queue::declare_topology(&channel, &self.topology).await?;
        channel.basic_qos(BasicQosArguments::new(0, self.prefetch, false)).await?;
        let args = BasicConsumeArguments::new(&self.topology.queue, "").manual_ack(true).finish();
        let (tag, rx) = channel.basic_consume_rx(args).await?;
        Ok((channel, tag, rx))
    }

    async fn handle(
        &self,
        message: ConsumerMessage,
        session: &Arc<Session>,
        semaphore: &Arc<Semaphore>,
        abort: &CancellationToken,
        shutdown: &CancellationToken,
    ) {
        let Some(deliver) = message.deliver else { return };
        let tag = deliver.delivery_tag();
        let content = message.content.unwrap_or_default();
        let job = match CheckJob::decode(&content) {
            Ok(job) => job,
            Err(e) => {
                let reason = match e {
                    DecodeError::Version(_) | DecodeError::KindInV1(_) => {
                        DeadLetterReason::UnsupportedVersion
                    }
                    DecodeError::Json(_) | DecodeError::EmptyBatch => DeadLetterReason::Undecodable,
                };
                let id = message.basic_properties.as_ref().and_then(|p| p.message_id().cloned());
                // Neither the content nor serde's message (which quotes
                // values) is logged: a job's headers may hold secrets. And
                // a flood of bad messages logs a sample, not a flood.
                let seen = DEAD_LETTERS_LOGGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if seen < 10 || seen.is_multiple_of(1000) {
                    let what = match &e {
                        DecodeError::Json(j) => {
                            format!("{:?} error at line {} column {}", j.classify(), j.line(), j.column())
                        }
                        other => other.to_string(),
                    };
                    tracing::warn!(message_id = ?id, bytes = content.len(), error = %what, dead_lettered_so_far = seen + 1, "dead-lettering a job that cannot be read");
                }
                self.metrics.dead_lettered(reason);
                session.reject(tag, false).await;
                return;
            }
        };
        if let Err(why) = validate(&job, Utc::now()) {
            tracing::warn!(message_id = %job.message_id(), error = %why, "dead-lettering an invalid job");
            self.metrics.dead_lettered(DeadLetterReason::Invalid);
            session.reject(tag, false).await;
            return;
        }
        let delivery = session.deliver(tag);
        if !*self.healthy.borrow() {
            // Results cannot be written: hold this delivery and take no more.
            let mut healthy = self.healthy.clone();
            tokio::select! {
                _ = healthy.wait_for(|h| *h) => {}
                _ = shutdown.cancelled() => return,
            }
        }
        let permit = tokio::select! {
            permit = semaphore.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.cancelled() => return,
        };
        if is_stale(&job, Utc::now()) {
            drop(permit);
            self.metrics.stale.increment(1);
            let _ = self.results.send(Item::Stale { job: Box::new(job), delivery }).await;
            return;
        }
        let prober = self.prober.clone();
        let heartbeats = self.heartbeats.clone();
        let metrics = self.metrics.clone();
        let results = self.results.clone();
        let abort = abort.clone();
        tokio::spawn(async move {
            metrics.in_flight.increment(1.0);
            let delay = (Utc::now() - job.slot).num_microseconds().unwrap_or(0).max(0);
            metrics.queue_delay.record(delay as f64 / 1e6);
            let outcome = tokio::select! {
                outcome = heartbeat::run(&prober, &heartbeats, &job) => Some(outcome),
                // Drain budget exhausted: abandon; the delivery is requeued.
                _ = abort.cancelled() => None,
            };
            metrics.in_flight.decrement(1.0);
            if let Some(outcome) = outcome {
                metrics.record(&outcome);
                let row = Box::new(ResultRow { job, outcome });
                let _ = results.send(Item::Finished { row, delivery }).await;
            }
            drop(permit);
        });
    }

    async fn drain(
        self,
        active: Option<Running>,
        semaphore: Arc<Semaphore>,
        abort: CancellationToken,
        batcher_done: CancellationToken,
    ) {
        if let Some(running) = &active {
            // Stop deliveries first; what is prefetched but not started is
            // returned to the queue when the channel closes.
            let cancel = running.channel.basic_cancel(BasicCancelArguments::new(&running.consumer_tag));
            let _ = tokio::time::timeout(Duration::from_secs(2), cancel).await;
        }
        let all = self.concurrency.min(u32::MAX as usize) as u32;
        let running_checks = self.concurrency - semaphore.available_permits();
        if running_checks > 0 {
            tracing::info!(running_checks, "draining: waiting for running checks");
        }
        if tokio::time::timeout(self.checks_budget, semaphore.acquire_many(all)).await.is_err() {
            let left = self.concurrency - semaphore.available_permits();
            tracing::warn!(
                abandoned = left,
                "drain budget over: abandoning running checks; their jobs return to the queue"
            );
            abort.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), semaphore.acquire_many(all)).await;
        }
        // Closing our sender lets the batcher write its last batch and stop.
        drop(self.results);
        batcher_done.cancelled().await;
        if let Some(running) = active {
            running.session.close();
            self.link.set(None);
            let _ = running.channel.close().await;
            let _ = running.connection.close().await;
        }
        tracing::info!("worker drained");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::job::slot_from_millis;

    fn job(slot: DateTime<Utc>, interval_ms: u64) -> CheckJob {
        CheckJob {
            v: crate::model::JOB_SCHEMA_VERSION,
            check_id: 1,
            name: "x".into(),
            slot,
            interval_ms,
            version: 1,
            spec: serde_json::from_str(r#"{"url":"http://127.0.0.1/","timeout_ms":1000}"#).unwrap(),
        }
    }

    #[test]
    fn staleness_is_slot_plus_interval() {
        let slot = slot_from_millis(1_700_000_000_000);
        let j = job(slot, 30_000);
        assert!(!is_stale(&j, slot + chrono::Duration::seconds(30)));
        assert!(is_stale(&j, slot + chrono::Duration::milliseconds(30_001)));
    }

    #[test]
    fn nonsense_jobs_are_refused() {
        let now = slot_from_millis(1_700_000_000_000);
        assert!(validate(&job(now, 30_000), now).is_ok());
        assert!(validate(&job(now, 10), now).unwrap_err().contains("interval_ms"));
        assert!(validate(&job(now, 100_000_000), now).is_err());
        assert!(validate(&job(now + chrono::Duration::days(2), 30_000), now).unwrap_err().contains("future"));
    }
}
