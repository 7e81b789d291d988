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
//! A session whose channel died is never acknowledged on: the broker has
//! already requeued its deliveries, and the redelivered jobs are harmless
//! because results are keyed by (check_id, slot).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// One delivery to settle: its session and tag.
#[derive(Clone)]
pub struct Delivery {
    pub session: Arc<Session>,
    pub tag: u64,
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

    /// Registers `tag` and returns its handle.
    pub fn deliver(self: &Arc<Self>, tag: u64) -> Delivery {
        if let Ok(mut t) = self.tracker.lock() {
            t.register(tag);
        }
        Delivery { session: self.clone(), tag }
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
