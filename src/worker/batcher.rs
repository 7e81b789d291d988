//! The result batcher: results in, one transaction per batch, deliveries
//! acknowledged only after the commit.
//!
//! A batch closes at `worker.batch_size` items or `worker.batch_max_delay`
//! after its first item, whichever comes first; `store.rs` writes it in one
//! transaction (results, states, outbox rows, stale and invalid slots) and
//! this loop settles its deliveries (a message of several slots once the
//! last of them is committed, see `acks.rs`).
//!
//! When PostgreSQL is unavailable the batch is retried with backoff and
//! `healthy` turns false, which makes the consumer stop taking work; the
//! deliveries stay unacknowledged until the commit succeeds. A batch the
//! database refuses as data (it should not happen: text is sanitised) is
//! retried item by item and the item that still fails is dead-lettered,
//! so one bad result never wedges the worker.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::acks::{Session, Settlement};
use super::item::Item;
use super::metrics::{DeadLetterReason, WorkerMetrics};
use super::store::{self, WriteError};

/// Batch bounds and the name stored in `check_results.worker`.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    pub size: usize,
    pub max_delay: Duration,
    pub worker_name: String,
}

/// How often a filling batch looks for new items. Polling at this pace
/// instead of waking on every result keeps wake-ups (a futex call when the
/// batcher's thread is parked) to a few hundred a second at any load.
const FILL_TICK: Duration = Duration::from_millis(2);

/// Runs until `rx` is closed and drained: the last batch is written and
/// acknowledged before returning.
pub async fn run(
    mut rx: mpsc::Receiver<Item>,
    pool: Pool,
    config: BatchConfig,
    healthy: watch::Sender<bool>,
    metrics: Arc<WorkerMetrics>,
) {
    let size = config.size.max(1);
    let mut batch: Vec<Item> = Vec::with_capacity(size);
    let mut writer =
        Writer { pool, config, healthy, metrics, failing_since: None, windows: Default::default() };
    loop {
        if rx.recv_many(&mut batch, size).await == 0 {
            return;
        }
        let closes_at = Instant::now() + writer.config.max_delay;
        let mut closed = false;
        loop {
            while batch.len() < size {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            let now = Instant::now();
            if closed || batch.len() >= size || now >= closes_at {
                break;
            }
            tokio::time::sleep_until(closes_at.min(now + FILL_TICK)).await;
        }
        writer.write_and_settle(&mut batch).await;
        if closed {
            return;
        }
    }
}

struct Writer {
    pool: Pool,
    config: BatchConfig,
    healthy: watch::Sender<bool>,
    metrics: Arc<WorkerMetrics>,
    failing_since: Option<Instant>,
    /// Maintenance windows, as history counts them (refreshed every few seconds).
    windows: crate::history::windows::Cache,
}

impl Writer {
    /// Writes `batch` (retrying until it is written) and settles every delivery.
    async fn write_and_settle(&mut self, batch: &mut Vec<Item>) {
        self.metrics.batch_size.record(batch.len() as f64);
        match self.write_with_retry(batch).await {
            Ok(()) => settle(batch.drain(..), &self.metrics).await,
            Err(why) => {
                tracing::warn!(error = %why, items = batch.len(), "batch refused; writing its items one by one");
                let items: Vec<Item> = std::mem::take(batch);
                for item in items {
                    let one = std::slice::from_ref(&item);
                    match self.write_with_retry(one).await {
                        Ok(()) => settle(std::iter::once(item), &self.metrics).await,
                        Err(why) => {
                            // The other slots of its message still run and
                            // commit; the message is dead-lettered when the
                            // last one settles.
                            tracing::error!(error = %why, "result cannot be stored; dead-lettering its job");
                            let d = item.delivery();
                            if d.settle(false) == Some(Settlement::Reject) {
                                self.metrics.dead_lettered(DeadLetterReason::Unwritable);
                                d.session().reject(d.tag(), false).await;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Retries until written, or until PostgreSQL refuses the data itself.
    async fn write_with_retry(&mut self, items: &[Item]) -> Result<(), String> {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            match store::write(&self.pool, items, &self.config.worker_name, &self.windows).await {
                Ok(()) => {
                    self.metrics.batch_commit.record(started.elapsed().as_secs_f64());
                    if let Some(since) = self.failing_since.take() {
                        tracing::info!(after = ?since.elapsed(), "PostgreSQL is back; results are being written again");
                    }
                    self.healthy.send_if_modified(|h| !std::mem::replace(h, true));
                    return Ok(());
                }
                Err(WriteError::Rejected(why)) => return Err(why),
                Err(e) => {
                    self.metrics.batch_failures.increment(1);
                    if self.failing_since.is_none() {
                        self.failing_since = Some(Instant::now());
                        tracing::warn!(error = %e, "cannot write results; holding them unacknowledged and retrying");
                    } else {
                        tracing::debug!(error = %e, retry_in = ?backoff, "still cannot write results");
                    }
                    self.healthy.send_if_modified(|h| std::mem::replace(h, false));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Settles committed items: a delivery whose last slot this was joins its
/// session's acknowledgements (one ack run per session); one that had a
/// slot refused is dead-lettered.
async fn settle(items: impl Iterator<Item = Item>, metrics: &WorkerMetrics) {
    let mut groups: Vec<(Arc<Session>, Vec<u64>)> = Vec::new();
    for item in items {
        let d = item.delivery();
        match d.settle(true) {
            None => {}
            Some(Settlement::Reject) => {
                metrics.dead_lettered(DeadLetterReason::Unwritable);
                d.session().reject(d.tag(), false).await
            }
            Some(Settlement::Ack) => match groups.iter_mut().find(|(s, _)| Arc::ptr_eq(s, d.session())) {
                Some((_, tags)) => tags.push(d.tag()),
                None => groups.push((d.session().clone(), vec![d.tag()])),
            },
        }
    }
    for (session, tags) in groups {
        session.ack(&tags).await;
    }
}
