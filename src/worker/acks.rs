//! Acknowledging deliveries after their results are committed, cheaply.
//!
//! Delivery tags belong to one channel; a [`Session`] is that channel plus
//! the tags it delivered and not yet settled. Results complete out of order
//! (a slow target holds its delivery while fast ones finish), so the
//! [`AckTracker`] acknowledges the completed *prefix* of outstanding tags
//! with one `basic.ack(multiple)` frame. Completed tags stuck behind a
//! slower one wait for the prefix while they are few; past a small bound
//! (`single_ack_threshold`) they are acknowledged individually, so one slow
//! check neither stalls the worker nor inflates the unacknowledged count
//! the autoscaler reads as backlog.
//! (Each single ack is a frame and a write; the multiple ack is what keeps
//! acknowledgement cost per check near zero.)
//!
//! A message of format v3 carries several slots, each run and committed on
//! its own; its [`Delivery`] is shared by them ([`SlotCount`]): the tag
//! joins the ack plan only when the last of its slots commits, so the
//! broker keeps the message until every slot is a result or a missed
//! record. A slot the database refuses marks the delivery failed: when its
//! last slot settles the message is dead-lettered (for a person to
//! inspect) instead of acknowledged.
//!
//! A session whose channel died is never acknowledged on: the broker has
//! already requeued its deliveries, and the redelivered jobs are harmless
//! because results are keyed by (check_id, slot).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use amqprs::channel::{BasicAckArguments, BasicRejectArguments, Channel};

/// Which acknowledgements to send for a set of completed tags.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AckPlan {
    /// `basic.ack(tag, multiple = true)`: every outstanding tag up to here.
    pub multiple_up_to: Option<u64>,
    /// `basic.ack(tag, multiple = false)` for each.
    pub singles: Vec<u64>,
}

/// Outstanding tags of one channel, in delivery order (pure bookkeeping).
#[derive(Debug)]
pub struct AckTracker {
    /// tag → completed (committed, may be acknowledged).
    outstanding: BTreeMap<u64, bool>,
    /// Completed tags still waiting behind an uncompleted one.
    waiting: usize,
    /// Past this many waiting tags, they are acknowledged singly.
    single_ack_threshold: usize,
}

impl AckTracker {
    pub fn new(single_ack_threshold: usize) -> AckTracker {
        AckTracker { outstanding: BTreeMap::new(), waiting: 0, single_ack_threshold }
    }

    /// Records a delivery that will be acknowledged later.
    pub fn register(&mut self, tag: u64) {
        self.outstanding.insert(tag, false);
    }

    /// Forgets a tag settled another way (rejected).
    pub fn forget(&mut self, tag: u64) {
        if self.outstanding.remove(&tag) == Some(true) {
            self.waiting -= 1;
        }
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Marks `tags` completed and plans their acknowledgement. The multiple
    /// ack's tag is always itself outstanding at the broker (never acked
    /// singly before), as RabbitMQ requires.
    pub fn complete(&mut self, tags: &[u64]) -> AckPlan {
        for tag in tags {
            if let Some(done) = self.outstanding.get_mut(tag) {
                if !*done {
                    *done = true;
                    self.waiting += 1;
                }
            }
        }
        let mut plan = AckPlan::default();
        while let Some((&tag, &done)) = self.outstanding.first_key_value() {
            if !done {
                break;
            }
            self.outstanding.remove(&tag);
            self.waiting -= 1;
            plan.multiple_up_to = Some(tag);
        }
        if self.waiting > self.single_ack_threshold {
            plan.singles = self.outstanding.iter().filter(|(_, done)| **done).map(|(tag, _)| *tag).collect();
            for tag in &plan.singles {
                self.outstanding.remove(tag);
            }
            self.waiting = 0;
        }
        plan
    }
}

/// One AMQP channel's consumption: where its deliveries are settled.
pub struct Session {
    channel: Channel,
    tracker: Mutex<AckTracker>,
    open: AtomicBool,
}

/// How one delivery is settled once all its slots are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Ack,
    /// A slot could not be stored: dead-letter the message.
    Reject,
}

/// The slots of one delivery not yet settled (pure bookkeeping, shared by
/// the slots' items; atomics because they settle from the batcher while
/// the consumer may still be handing out the others).
#[derive(Debug)]
pub struct SlotCount {
    outstanding: AtomicU32,
    failed: AtomicBool,
}

impl SlotCount {
    pub fn new(slots: u32) -> SlotCount {
        SlotCount { outstanding: AtomicU32::new(slots), failed: AtomicBool::new(false) }
    }

    /// Settles one slot (`stored`: committed, or refused by the database).
    /// Returns how to settle the delivery when this was its last slot;
    /// further calls return nothing (the count never wraps).
    pub fn settle(&self, stored: bool) -> Option<Settlement> {
        if !stored {
            self.failed.store(true, Ordering::SeqCst);
        }
        let before =
            self.outstanding.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).ok()?;
        (before == 1).then(|| {
            if self.failed.load(Ordering::SeqCst) {
                Settlement::Reject
            } else {
                Settlement::Ack
            }
        })
    }
}

/// One delivery to settle: its session, tag and, for a message of several
/// items, their shared count. Cloned once per slot of the message (reference
/// counts; a one-slot message allocates nothing for its count).
#[derive(Clone)]
pub struct Delivery {
    session: Arc<Session>,
    tag: u64,
    slots: Option<Arc<SlotCount>>,
}

impl Delivery {
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Settles one of its slots; see [`SlotCount::settle`].
    pub fn settle(&self, stored: bool) -> Option<Settlement> {
        match &self.slots {
            Some(count) => count.settle(stored),
            None if stored => Some(Settlement::Ack),
            None => Some(Settlement::Reject),
        }
    }
}

impl Session {
    /// `single_ack_threshold`: see [`AckTracker::new`]; the consumer keeps it
    /// small, because unacknowledged finished jobs read as backlog to the
    /// autoscaler.
    pub fn new(channel: Channel, single_ack_threshold: usize) -> Arc<Session> {
        Arc::new(Session {
            channel,
            tracker: Mutex::new(AckTracker::new(single_ack_threshold)),
            open: AtomicBool::new(true),
        })
    }

    /// Registers `tag`, whose message hands `slots` (at least one) items
    /// to the batcher, and returns its handle.
    pub fn deliver(self: &Arc<Self>, tag: u64, slots: u32) -> Delivery {
        if let Ok(mut t) = self.tracker.lock() {
            t.register(tag);
        }
        let slots = (slots > 1).then(|| Arc::new(SlotCount::new(slots)));
        Delivery { session: self.clone(), tag, slots }
    }

    /// Acknowledges a delivery with nothing left to commit (every slot of
    /// a redelivered message is already stored), in order with the others.
    pub async fn ack_now(&self, tag: u64) {
        if let Ok(mut t) = self.tracker.lock() {
            t.register(tag);
        }
        self.ack(&[tag]).await;
    }

    /// The channel died or was closed: settle nothing more on it.
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst) && self.channel.is_open()
    }

    /// Acknowledges committed deliveries.
    pub async fn ack(&self, tags: &[u64]) {
        if !self.is_open() {
            return;
        }
        let plan = match self.tracker.lock() {
            Ok(mut t) => t.complete(tags),
            Err(_) => return,
        };
        if let Some(tag) = plan.multiple_up_to {
            if let Err(e) = self.channel.basic_ack(BasicAckArguments::new(tag, true)).await {
                tracing::debug!(error = %e, "ack failed; the broker will redeliver");
                return;
            }
        }
        for tag in plan.singles {
            if let Err(e) = self.channel.basic_ack(BasicAckArguments::new(tag, false)).await {
                tracing::debug!(error = %e, "ack failed; the broker will redeliver");
                return;
            }
        }
    }

    /// Rejects a delivery; without requeue it goes to the dead-letter queue.
    pub async fn reject(&self, tag: u64, requeue: bool) {
        if let Ok(mut t) = self.tracker.lock() {
            t.forget(tag);
        }
        if !self.is_open() {
            return;
        }
        if let Err(e) = self.channel.basic_reject(BasicRejectArguments::new(tag, requeue)).await {
            tracing::debug!(error = %e, "reject failed; the broker will redeliver");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(tags: std::ops::RangeInclusive<u64>) -> AckTracker {
        let mut t = AckTracker::new(0);
        for tag in tags {
            t.register(tag);
        }
        t
    }

    #[test]
    fn in_order_completion_is_one_multiple_ack() {
        let mut t = tracker(1..=5);
        assert_eq!(t.complete(&[1, 2, 3]), AckPlan { multiple_up_to: Some(3), singles: vec![] });
        assert_eq!(t.complete(&[5, 4]), AckPlan { multiple_up_to: Some(5), singles: vec![] });
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn completions_behind_a_slow_one_are_acked_singly() {
        let mut t = tracker(1..=5);
        assert_eq!(t.complete(&[2, 4]), AckPlan { multiple_up_to: None, singles: vec![2, 4] });
        // 2 and 4 are gone; the multiple ack of 3 covers 1 and 3 only.
        assert_eq!(t.complete(&[1, 3]), AckPlan { multiple_up_to: Some(3), singles: vec![] });
        assert_eq!(t.complete(&[5]), AckPlan { multiple_up_to: Some(5), singles: vec![] });
    }

    #[test]
    fn a_few_completions_wait_for_the_prefix() {
        let mut t = AckTracker::new(2);
        for tag in 1..=6 {
            t.register(tag);
        }
        assert_eq!(t.complete(&[2, 3]), AckPlan::default());
        // A third one waiting passes the threshold: all three go singly.
        assert_eq!(t.complete(&[5]), AckPlan { multiple_up_to: None, singles: vec![2, 3, 5] });
        assert_eq!(t.complete(&[1]), AckPlan { multiple_up_to: Some(1), singles: vec![] });
        assert_eq!(t.complete(&[4]), AckPlan { multiple_up_to: Some(4), singles: vec![] });
        assert_eq!(t.outstanding(), 1);
    }

    #[test]
    fn unknown_forgotten_and_repeated_tags_are_ignored() {
        let mut t = tracker(1..=3);
        t.forget(1);
        assert_eq!(t.complete(&[9, 2]), AckPlan { multiple_up_to: Some(2), singles: vec![] });
        assert_eq!(t.complete(&[2]), AckPlan::default());
        assert_eq!(t.outstanding(), 1);
    }

    #[test]
    fn a_shared_delivery_settles_once_with_its_last_slot() {
        let count = SlotCount::new(3);
        assert_eq!(count.settle(true), None);
        assert_eq!(count.settle(true), None);
        assert_eq!(count.settle(true), Some(Settlement::Ack));
        // Nothing is left: a stray settle neither acks again nor wraps.
        assert_eq!(count.settle(true), None);
        let failed = SlotCount::new(2);
        assert_eq!(failed.settle(false), None);
        assert_eq!(failed.settle(true), Some(Settlement::Reject));
    }

    #[test]
    fn slots_of_several_messages_ack_each_message_once_after_its_last_slot() {
        // Three messages (tags 1..=3) of 3, 1 and 2 slots; their slots
        // commit interleaved, in batches, as the batcher would see them.
        let counts = [SlotCount::new(3), SlotCount::new(1), SlotCount::new(2)];
        let mut t = AckTracker::new(0);
        for tag in 1..=3 {
            t.register(tag);
        }
        let batches: [&[u64]; 3] = [&[1, 3, 1], &[2, 3], &[1]];
        let mut acked = Vec::new();
        for (i, batch) in batches.into_iter().enumerate() {
            let ready: Vec<u64> = batch
                .iter()
                .filter(|tag| counts[**tag as usize - 1].settle(true) == Some(Settlement::Ack))
                .copied()
                .collect();
            let plan = t.complete(&ready);
            acked.extend(plan.singles);
            if let Some(up_to) = plan.multiple_up_to {
                acked.extend((1..=up_to).filter(|x| !acked.contains(x)).collect::<Vec<_>>());
            }
            if i == 0 {
                assert!(acked.is_empty(), "no message is complete after the first batch: {acked:?}");
            }
        }
        acked.sort_unstable();
        assert_eq!(acked, vec![1, 2, 3]);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn settling_from_many_threads_settles_exactly_once() {
        let count = Arc::new(SlotCount::new(64));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let count = count.clone();
                std::thread::spawn(move || (0..8).filter(|_| count.settle(true).is_some()).count())
            })
            .collect();
        let settled: usize = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        assert_eq!(settled, 1);
    }

    #[test]
    fn every_tag_is_acked_exactly_once_in_any_order() {
        // Rotated completion orders, for several single-ack thresholds.
        for (shift, threshold) in (0..7u64).flat_map(|s| (0..4).map(move |th| (s, th))) {
            let mut t = AckTracker::new(threshold);
            for tag in 1..=7 {
                t.register(tag);
            }
            let mut acked = std::collections::BTreeSet::new();
            let order: Vec<u64> = (0..7).map(|i| (i * 3 + shift) % 7 + 1).collect();
            let mut completed = std::collections::BTreeSet::new();
            for chunk in order.chunks(2) {
                completed.extend(chunk.iter().copied());
                let plan = t.complete(chunk);
                let mut newly: Vec<u64> = plan.singles.clone();
                if let Some(up_to) = plan.multiple_up_to {
                    newly.extend((1..=up_to).filter(|x| !acked.contains(x) && !plan.singles.contains(x)));
                }
                for tag in newly {
                    assert!(completed.contains(&tag), "tag {tag} acked before it completed");
                    assert!(acked.insert(tag), "tag {tag} acked twice");
                }
            }
            assert_eq!(acked.len(), 7);
        }
    }
}
