//! One delivered message: decoded, its slots judged one by one and handed
//! out.
//!
//! - An envelope that cannot be read (undecodable, an unknown version, an
//!   empty batch, a version-1 job of another kind than HTTP) is rejected
//!   without requeue: the broker moves it to the dead-letter queue.
//! - A one-slot message (versions 1 and 2, what schedulers from before
//!   batches publish) works as it always did: a nonsensical job is
//!   dead-lettered, the rest are run or found stale like a batch's slots.
//! - A batch (version 3): each slot on its own. A slot that cannot be read
//!   or makes no sense but names its check and slot is recorded as missed
//!   (reason `invalid`); one that does not name them is only counted and
//!   logged (sampled, never its content: a spec may hold secrets). A slot
//!   whose slot + interval has passed is recorded as missed (`stale`);
//!   every other slot waits for one of `concurrency` permits and runs in
//!   its own task.
//! - A redelivered message (the broker's `redelivered` flag) first asks the
//!   database, in one query, which of its slots are already accounted (a
//!   result, or a stale/invalid record) and runs only the others.
//!
//! The message's delivery is shared by the slots that become items and
//! acknowledged when the last of them is committed (`acks.rs`); a message
//! with none left is acknowledged at once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::ConsumerMessage;
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{is_stale, validate, Consumer};
use crate::model::job::{JobMessage, SlotError};
use crate::model::{CheckJob, DecodeError};
use crate::worker::acks::{Delivery, Session};
use crate::worker::heartbeat;
use crate::worker::item::{Item, ResultRow};
use crate::worker::metrics::DeadLetterReason;
use crate::worker::store;

/// Undecodable messages logged so far (the first ten, then one in a thousand).
static DEAD_LETTERS_LOGGED: AtomicU64 = AtomicU64::new(0);
/// Invalid slots logged so far (sampled the same way).
static INVALID_SLOTS_LOGGED: AtomicU64 = AtomicU64::new(0);
/// Failed redelivery look-ups logged so far (sampled the same way).
static LOOKUPS_FAILED_LOGGED: AtomicU64 = AtomicU64::new(0);

/// Longest the look-up of a redelivered message's slots may take; past it
/// every slot runs again (results are keyed by (check, slot), so a slot
/// run twice is stored once).
const LOOKUP_LIMIT: Duration = Duration::from_secs(5);

/// Whether this occurrence is logged: the first ten, then one in a thousand.
fn sampled(counter: &AtomicU64) -> Option<u64> {
    let seen = counter.fetch_add(1, Ordering::Relaxed);
    (seen < 10 || seen.is_multiple_of(1000)).then_some(seen + 1)
}

/// What the consumer loop lends the handling of one message.
pub(super) struct Context<'a> {
    pub session: &'a Arc<Session>,
    pub semaphore: &'a Arc<Semaphore>,
    /// Cancelled when the drain abandons running checks.
    pub abort: &'a CancellationToken,
    pub shutdown: &'a CancellationToken,
}

/// The (check, slot) a slot names, when it names one.
fn key_of(slot: &Result<CheckJob, SlotError>) -> Option<(i64, DateTime<Utc>)> {
    match slot {
        Ok(job) => Some((job.check_id, job.slot)),
        Err(SlotError { check_id: Some(check), slot: Some(at), .. }) => Some((*check, *at)),
        Err(_) => None,
    }
}

impl Consumer {
    pub(super) async fn handle(&self, message: ConsumerMessage, cx: &Context<'_>) {
        let Some(deliver) = message.deliver else { return };
        self.metrics.job_messages.increment(1);
        let tag = deliver.delivery_tag();
        let redelivered = deliver.redelivered();
        let content = message.content.unwrap_or_default();
        let message_id = message.basic_properties.as_ref().and_then(|p| p.message_id().map(String::as_str));
        match JobMessage::decode(&content) {
            Err(e) => {
                self.dead_letter_unreadable(&e, message_id, content.len()).await;
                cx.session.reject(tag, false).await;
            }
            Ok(JobMessage::One(job)) => self.handle_one(*job, tag, redelivered, cx).await,
            Ok(JobMessage::Batch(slots)) => self.handle_batch(slots, tag, redelivered, message_id, cx).await,
        }
    }

    async fn dead_letter_unreadable(&self, e: &DecodeError, message_id: Option<&str>, bytes: usize) {
        let reason = match e {
            DecodeError::Version(_) | DecodeError::KindInV1(_) => DeadLetterReason::UnsupportedVersion,
            DecodeError::Json(_) | DecodeError::EmptyBatch => DeadLetterReason::Undecodable,
        };
        // Neither the content nor serde's message (which quotes values) is
        // logged: a job's headers may hold secrets. And a flood of bad
        // messages logs a sample, not a flood.
        if let Some(so_far) = sampled(&DEAD_LETTERS_LOGGED) {
            let what = match e {
                DecodeError::Json(j) => {
                    format!("{:?} error at line {} column {}", j.classify(), j.line(), j.column())
                }
                other => other.to_string(),
            };
            tracing::warn!(?message_id, bytes, error = %what, dead_lettered_so_far = so_far, "dead-lettering a job that cannot be read");
        }
        self.metrics.dead_lettered(reason);
    }

    /// A version 1 or 2 message: one slot.
    async fn handle_one(&self, job: CheckJob, tag: u64, redelivered: bool, cx: &Context<'_>) {
        if let Err(why) = validate(&job, Utc::now()) {
            tracing::warn!(message_id = %job.message_id(), error = %why, "dead-lettering an invalid job");
            self.metrics.dead_lettered(DeadLetterReason::Invalid);
            cx.session.reject(tag, false).await;
            return;
        }
        if redelivered && !self.accounted(&[(job.check_id, job.slot)]).await.is_empty() {
            self.metrics.redelivered_skipped.increment(1);
            cx.session.ack_now(tag).await;
            return;
        }
        let delivery = cx.session.deliver(tag, 1);
        self.run_slot(job, delivery, cx).await;
    }

    /// A version 3 message: each slot on its own.
    async fn handle_batch(
        &self,
        slots: Vec<Result<CheckJob, SlotError>>,
        tag: u64,
        redelivered: bool,
        message_id: Option<&str>,
        cx: &Context<'_>,
    ) {
        let done = if redelivered {
            let keys: Vec<(i64, DateTime<Utc>)> = slots.iter().filter_map(key_of).collect();
            self.accounted(&keys).await
        } else {
            HashSet::new()
        };
        // Every slot that names its check and slot and is not accounted yet
        // becomes exactly one item (a result, a stale or an invalid record).
        let items = slots.iter().filter_map(key_of).filter(|k| !done.contains(k)).count();
        let delivery = (items > 0).then(|| cx.session.deliver(tag, items.min(u32::MAX as usize) as u32));
        let now = Utc::now();
        for slot in slots {
            let Some(key) = key_of(&slot) else {
                self.metrics.invalid_unrecorded.increment(1);
                if let (Err(e), Some(so_far)) = (&slot, sampled(&INVALID_SLOTS_LOGGED)) {
                    tracing::warn!(?message_id, error = %e.error, invalid_slots_so_far = so_far, "a slot that names no check and slot cannot be run nor recorded");
                }
                continue;
            };
            if done.contains(&key) {
                self.metrics.redelivered_skipped.increment(1);
                continue;
            }
            // Always set here: this slot is one of the `items`.
            let Some(delivery) = &delivery else { continue };
            let why = match slot {
                Ok(job) => match validate(&job, now) {
                    Ok(()) => {
                        if !self.run_slot(job, delivery.clone(), cx).await {
                            // Shutting down: the unsettled delivery returns
                            // to the queue, and a redelivery runs only what
                            // is not stored by then.
                            return;
                        }
                        continue;
                    }
                    Err(why) => why,
                },
                Err(e) => e.error,
            };
            self.metrics.invalid_recorded.increment(1);
            if let Some(so_far) = sampled(&INVALID_SLOTS_LOGGED) {
                tracing::warn!(?message_id, check_id = key.0, slot = %key.1.to_rfc3339(), error = %why, invalid_slots_so_far = so_far, "recording a slot that cannot be run as missed (invalid)");
            }
            let item = Item::Invalid { check_id: key.0, slot: key.1, delivery: delivery.clone() };
            if !self.hand_over(item, cx).await {
                return;
            }
        }
        if delivery.is_none() {
            cx.session.ack_now(tag).await;
        }
    }

    /// Which of `keys` already have a result or a stale/invalid record.
    /// When the database cannot say, none: every slot runs again.
    async fn accounted(&self, keys: &[(i64, DateTime<Utc>)]) -> HashSet<(i64, DateTime<Utc>)> {
        if keys.is_empty() {
            return HashSet::new();
        }
        let error = match tokio::time::timeout(LOOKUP_LIMIT, store::done_slots(&self.pool, keys)).await {
            Ok(Ok(done)) => return done,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {}", humantime::format_duration(LOOKUP_LIMIT)),
        };
        if let Some(so_far) = sampled(&LOOKUPS_FAILED_LOGGED) {
            tracing::warn!(%error, failed_so_far = so_far, "cannot look up which slots of a redelivered job are stored; running them all");
        }
        HashSet::new()
    }

    /// Gives an item to the batcher; false when shutting down first.
    async fn hand_over(&self, item: Item, cx: &Context<'_>) -> bool {
        tokio::select! {
            sent = self.results.send(item) => sent.is_ok(),
            _ = cx.shutdown.cancelled() => false,
        }
    }

    /// Runs one valid slot (or records it stale) under a concurrency
    /// permit. False when shutdown came first (nothing was handed over).
    async fn run_slot(&self, job: CheckJob, delivery: Delivery, cx: &Context<'_>) -> bool {
        if !*self.healthy.borrow() {
            // Results cannot be written: hold this delivery and take no more.
            let mut healthy = self.healthy.clone();
            tokio::select! {
                _ = healthy.wait_for(|h| *h) => {}
                _ = cx.shutdown.cancelled() => return false,
            }
        }
        let permit = tokio::select! {
            permit = cx.semaphore.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return false,
            },
            _ = cx.shutdown.cancelled() => return false,
        };
        if is_stale(&job, Utc::now()) {
            drop(permit);
            self.metrics.stale.increment(1);
            return self.hand_over(Item::Stale { job: Box::new(job), delivery }, cx).await;
        }
        let prober = self.prober.clone();
        let heartbeats = self.heartbeats.clone();
        let metrics = self.metrics.clone();
        let results = self.results.clone();
        let abort = cx.abort.clone();
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
        true
    }
}
