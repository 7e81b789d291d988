//! Writes what the dispatcher has settled: watermarks (fenced) and missed
//! slots, together in one transaction so a watermark never moves past
//! slots whose misses are not recorded.
//!
//! The dispatcher never waits on PostgreSQL: it merges into [`Pending`]
//! (latest watermark per partition wins) and this task flushes it every
//! `FLUSH_EVERY`, keeping it across failures until the database answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ledger::MissReason;
use super::schedule::MissedRange;
use super::store;
use crate::history;
use crate::history::buckets::from_ms;
use crate::history::rollup::{self, Rollups};

const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Missed slots kept while PostgreSQL is unreachable; beyond this the
/// oldest are dropped, logged as an error and counted
/// (`sentryk8s_missed_records_dropped_total`): the slots stay missed, only
/// their record is lost. Two hundred thousand is minutes of a large
/// install's misses, far more than an outage the lease survives.
const MAX_PENDING_MISSED: usize = 200_000;

#[derive(Default)]
struct PendingInner {
    marks: HashMap<u32, (i64, i64)>,
    missed: Vec<(MissedRange, MissReason)>,
}

/// Shared between the dispatcher (producer) and the writer task.
#[derive(Clone, Default)]
pub struct Pending(Arc<Mutex<PendingInner>>);

impl Pending {
    pub fn watermark(&self, partition: u32, epoch: i64, watermark: i64) {
        if let Ok(mut p) = self.0.lock() {
            p.marks.insert(partition, (epoch, watermark));
        }
    }

    pub fn missed(&self, ranges: impl IntoIterator<Item = (MissedRange, MissReason)>) {
        if let Ok(mut p) = self.0.lock() {
            p.missed.extend(ranges);
            if p.missed.len() > MAX_PENDING_MISSED {
                let excess = p.missed.len() - MAX_PENDING_MISSED;
                p.missed.drain(..excess);
                metrics::counter!("sentryk8s_missed_records_dropped_total").increment(excess as u64);
                tracing::error!(
                    dropped = excess,
                    "too many missed slots waiting for PostgreSQL; dropping the oldest records"
                );
            }
        }
    }

    /// Forgets the watermark of a partition no longer held.
    pub fn forget(&self, partition: u32) {
        if let Ok(mut p) = self.0.lock() {
            p.marks.remove(&partition);
        }
    }

    fn take(&self) -> PendingInner {
        self.0.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
    }

    /// Puts back what could not be written; anything newer wins.
    fn restore(&self, old: PendingInner) {
        if let Ok(mut p) = self.0.lock() {
            for (partition, mark) in old.marks {
                p.marks.entry(partition).or_insert(mark);
            }
            let newer = std::mem::take(&mut p.missed);
            p.missed = old.missed;
            p.missed.extend(newer);
        }
    }
}

/// Flushes `pending` until `shutdown`, then once more. Partitions whose
/// fence failed (taken over) are reported on `fenced`.
pub async fn run(
    pool: Pool,
    member_id: String,
    pending: Pending,
    fenced: mpsc::UnboundedSender<(u32, i64)>,
    shutdown: CancellationToken,
) {
    let mut backoff = FLUSH_EVERY;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(backoff) => false,
            _ = shutdown.cancelled() => true,
        };
        match flush_now(&pool, &member_id, &pending).await {
            Ok(lost) => {
                backoff = FLUSH_EVERY;
                for (partition, epoch) in lost {
                    let _ = fenced.send((partition, epoch));
                }
            }
            Err(e) if stopping => {
                let unwritten = pending.take();
                tracing::error!(
                    error = %e,
                    watermarks = unwritten.marks.len(),
                    missed_records = unwritten.missed.len(),
                    "cannot write the last watermarks and missed-slot records before exiting"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot write watermarks, will retry");
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        if stopping {
            return;
        }
    }
}

/// Writes what is pending now (kept for the next try when it fails);
/// returns the partitions whose fence failed. The coordinator also calls
/// it before a release, so the misses of a partition's last moments are
/// recorded before its new owner can start.
pub async fn flush_now(pool: &Pool, me: &str, pending: &Pending) -> Result<Vec<(u32, i64)>, String> {
    let batch = pending.take();
    if batch.marks.is_empty() && batch.missed.is_empty() {
        return Ok(Vec::new());
    }
    let result = flush(pool, me, &batch).await;
    if result.is_err() {
        pending.restore(batch);
    }
    result
}

/// Adds the recorded misses to the rollups (no data, or maintenance for
/// the slots inside a window covering the check), in the same transaction.
async fn count_in_history(
    tx: &deadpool_postgres::Transaction<'_>,
    recorded: &[store::RecordedMiss],
) -> Result<(), tokio_postgres::Error> {
    if recorded.is_empty() {
        return Ok(());
    }
    let windows = history::store::load_windows(tx).await?;
    let mut rollups = Rollups::new();
    for miss in recorded {
        let covered = |slot: i64| windows.covers(&miss.name, &miss.labels, from_ms(slot));
        let covers_check = !windows.for_check(&miss.name, &miss.labels).is_empty();
        rollup::add_missed(
            &mut rollups,
            &miss.fact,
            covers_check.then_some(&covered as &dyn Fn(i64) -> bool),
        );
    }
    history::store::upsert_rollups(tx, &rollups).await
}

async fn flush(pool: &Pool, me: &str, batch: &PendingInner) -> Result<Vec<(u32, i64)>, String> {
    let mut client = pool.get().await.map_err(|e| crate::db::error_chain(&e))?;
    let tx = client.transaction().await.map_err(|e| crate::db::error_chain(&e))?;
    if !batch.missed.is_empty() {
        let recorded =
            store::insert_missed(&*tx, &batch.missed).await.map_err(|e| crate::db::error_chain(&e))?;
        count_in_history(&tx, &recorded).await.map_err(|e| crate::db::error_chain(&e))?;
    }
    let mut lost = Vec::new();
    if !batch.marks.is_empty() {
        let marks: Vec<(u32, i64, i64)> = batch.marks.iter().map(|(p, (e, w))| (*p, *e, *w)).collect();
        let kept = store::write_watermarks(&*tx, me, &marks).await.map_err(|e| crate::db::error_chain(&e))?;
        lost = marks.iter().filter(|(p, _, _)| !kept.contains(p)).map(|(p, e, _)| (*p, *e)).collect();
    }
    tx.commit().await.map_err(|e| crate::db::error_chain(&e))?;
    Ok(lost)
}
