//! Consuming check jobs: one AMQP session at a time, reconnecting forever.
//!
//! Each session opens a connection and one channel, declares the topology
//! (idempotent), sets the prefetch window and consumes every job queue of
//! `topology.job_queues` (one consumer each, manual acks). What becomes of a
//! delivered message — decoding, per-slot judgement, redelivery — is
//! `consumer/admit.rs`. Results go to the batcher, which acknowledges them
//! after its commit (see `acks.rs`).
//!
//! The prefetch window. Results waiting for their batch commit still hold
//! their delivery, so the window must cover `concurrency + batch_size`
//! slots, or counting held results against the checks' concurrency would
//! idle the worker for every batch delay. RabbitMQ counts the window in
//! messages, per consumer (quorum queues refuse a channel-global window).
//! A message holds 1 to `slots_per_message` slots, and at high rates it
//! holds few: the scheduler packs what *one partition* has due in *one*
//! dispatch round (10,000 checks/s over 256 partitions at a 50 ms tick is
//! about two slots a message). A window sized for full messages would
//! starve the worker exactly when it matters, so the window stays
//! `concurrency + batch_size` *messages* in all, split over the queues:
//! each consumer gets `ceil((concurrency + batch_size) / queues)`. With
//! one-slot messages (the old formats) this is exactly the window of
//! before; with full messages a worker may hold up to `slots_per_message`
//! times more slots than it runs, which happens only under a backlog (a
//! message fills only when a partition has that many slots due in one
//! round): those slots wait here instead of in the queue, still
//! unacknowledged, so the autoscaler's backlog (ready + unacked messages ×
//! slots per message) still counts them, and a failing worker returns
//! them to the queue. Slots past the running ones wait for a concurrency
//! permit one message at a time; the rest stay raw bytes in the channel.
//!
//! amqprs has no automatic recovery, so a network failure, a closed channel
//! or a consumer cancelled by the broker (its queue deleted) ends the
//! session; the broker requeues whatever the session had not acknowledged,
//! and a new session (which declares the queues again) starts after
//! backoff. `sentryk8s_worker_consuming{queue}` is 1 while a consumer is
//! on the queue. While the batcher cannot write (PostgreSQL down) no new
//! check starts: the held deliveries stay unacknowledged and the prefetch
//! window keeps the rest of the backlog in the queue.

mod admit;

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use amqprs::channel::{
    BasicCancelArguments, BasicConsumeArguments, BasicQosArguments, Channel, ConsumerMessage,
};
use amqprs::connection::Connection;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::acks::Session;
use super::heartbeat::Heartbeats;
use super::item::Item;
use super::metrics::WorkerMetrics;
use crate::model::bounds::INTERVAL_MS;
use crate::model::CheckJob;
use crate::probe::Prober;
use crate::queue::{self, AmqpLink, AmqpTarget, LogChannel, QueueError, Topology};

/// Finished jobs allowed to wait for their acknowledgement behind a slower
/// one. The autoscaler reads ready + unacknowledged messages per worker:
/// finished jobs held unacknowledged would read as backlog (up to a quarter
/// of the prefetch window per worker, measured in the autoscaling
/// experiment), and the HPA would add workers for work already done.
const WAITING_ACKS: usize = 16;

/// How far in the future a slot may be before the job is refused as
/// nonsense (clock skew between scheduler and worker is far smaller).
const MAX_SLOT_AHEAD: chrono::Duration = chrono::Duration::minutes(5);

/// The prefetch window of each consumer: `concurrency + batch_size`
/// messages in all, split over `queues` consumers (see the module comment).
pub fn prefetch_per_consumer(concurrency: usize, batch_size: usize, queues: usize) -> u16 {
    let window = concurrency.saturating_add(batch_size).max(1);
    window.div_ceil(queues.max(1)).clamp(1, u16::MAX as usize) as u16
}

/// Everything a consumer needs; built by `worker::run`.
pub struct Consumer {
    pub target: AmqpTarget,
    pub topology: Topology,
    pub connection_name: String,
    pub heartbeat: Duration,
    pub max_backoff: Duration,
    pub concurrency: usize,
    /// Prefetch window of each consumer, in messages.
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
    /// Which slots of a redelivered message are already accounted.
    pub pool: Pool,
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

/// The consumers of one session, one per job queue, received from in
/// turn (no queue's backlog starves another's).
struct Consumers {
    /// (queue, consumer tag, deliveries), in `topology.job_queues` order.
    queues: Vec<(String, String, mpsc::UnboundedReceiver<ConsumerMessage>)>,
    /// Where the next receive starts looking.
    next: usize,
}

impl Consumers {
    /// The next delivery and its queue's index; `None` when that consumer
    /// ended (cancelled by the broker, or the channel closed).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<(usize, Option<ConsumerMessage>)> {
        let n = self.queues.len();
        for i in 0..n {
            let index = (self.next + i) % n;
            if let Poll::Ready(message) = self.queues[index].2.poll_recv(cx) {
                self.next = (index + 1) % n;
                return Poll::Ready((index, message));
            }
        }
        Poll::Pending
    }

    async fn recv(&mut self) -> (usize, Option<ConsumerMessage>) {
        poll_fn(|cx| self.poll_next(cx)).await
    }
}

struct Running {
    connection: Connection,
    channel: Channel,
    consumers: Consumers,
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
        self.set_consuming(false);
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
            let (channel, mut consumers) = match self.open_session(&connection).await {
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
            self.set_consuming(true);
            let session = Session::new(channel.clone(), WAITING_ACKS);
            tracing::info!(
                queues = consumers.queues.len(),
                first_queue = %self.topology.queue,
                prefetch_per_queue = self.prefetch,
                concurrency = self.concurrency,
                "consuming check jobs"
            );
            let watcher = connection.clone();
            let failure = watcher.listen_network_io_failure();
            tokio::pin!(failure);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let context = admit::Context {
                session: &session,
                semaphore: &semaphore,
                abort: &abort,
                shutdown: &shutdown,
            };
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
                    (index, message) = consumers.recv() => match message {
                        Some(message) => self.handle(message, &context).await,
                        None => {
                            let queue = consumers.queues.get(index).map(|q| q.0.as_str()).unwrap_or_default();
                            tracing::warn!(%queue, "RabbitMQ stopped delivering from a queue (consumer cancelled, queue deleted, or channel closed); reconnecting");
                            break false;
                        }
                    },
                }
            };
            if ended_by_shutdown {
                active = Some(Running { connection, channel, consumers, session });
                break;
            }
            self.set_consuming(false);
            session.close();
            self.link.set(None);
            if connection.is_open() {
                let _ = connection.close().await;
            }
        }
        self.drain(active, semaphore, abort, batcher_done).await;
    }

    fn set_consuming(&self, on: bool) {
        for q in &self.topology.job_queues {
            self.metrics.consuming(&q.name, on);
        }
    }

    async fn open_session(&self, connection: &Connection) -> Result<(Channel, Consumers), QueueError> {
        let channel = connection.open_channel(None).await?;
        channel.register_callback(LogChannel).await?;
        queue::declare_topology(&channel, &self.topology).await?;
        // Not global: applies to each consumer opened after it.
        channel.basic_qos(BasicQosArguments::new(0, self.prefetch, false)).await?;
        let mut queues = Vec::with_capacity(self.topology.job_queues.len());
        for job_queue in &self.topology.job_queues {
            let args = BasicConsumeArguments::new(&job_queue.name, "").manual_ack(true).finish();
            let (tag, rx) = channel.basic_consume_rx(args).await?;
            queues.push((job_queue.name.clone(), tag, rx));
        }
        Ok((channel, Consumers { queues, next: 0 }))
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
            // One at a time: synchronous methods on one channel do not overlap.
            let cancels = async {
                for (_, tag, _) in &running.consumers.queues {
                    let _ = running.channel.basic_cancel(BasicCancelArguments::new(tag)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), cancels).await;
            self.set_consuming(false);
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
    fn the_prefetch_window_is_split_over_the_queues() {
        // One queue: the window of before, in messages.
        assert_eq!(prefetch_per_consumer(256, 500, 1), 756);
        // Four queues: a quarter each, rounded up so the sum covers it.
        assert_eq!(prefetch_per_consumer(256, 500, 4), 189);
        assert_eq!(prefetch_per_consumer(1, 1, 64), 1);
        assert_eq!(prefetch_per_consumer(100_000, 100_000, 1), u16::MAX);
        assert_eq!(prefetch_per_consumer(3, 2, 0), 5);
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
