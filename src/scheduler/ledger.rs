//! The dispatcher's bookkeeping, pure: which slots of which partition are
//! in flight (handed out, awaiting a publish or the broker's confirm), the
//! delivery tags of the current channel, what the broker nacked or
//! returned, and the watermark each partition may write.
//!
//! A message carries one slot (job format 1 and 2) or several slots of one
//! partition (format 3, `slots_per_message` > 1): one delivery tag settles
//! every (slot, check) of its message, and the broker's answer is the same
//! for all of them.
//!
//! No I/O, no clock: the dispatcher passes times in (wall-clock unix ms for
//! slots, `Instant`s for confirm ages and release deadlines) and acts on
//! what this returns, so every rule below is tested on its own.
//!
//! The rules:
//! - Watermark of a partition = the oldest slot not yet settled, or, with
//!   nothing in flight, the time up to which slots have been handed out. A
//!   new owner resumes there: no slot is skipped, and only slots published
//!   but not yet reflected in a written watermark can be published twice.
//! - A slot is settled by an ack of its message (published), a nack
//!   (missed: `Rejected`), an ack or nack after its message was returned
//!   (missed: `Unroutable`, every slot of the message), or by giving it up
//!   (too late to publish: `CatchUp`; its check deleted: nothing).
//! - A return names its message by the first slot of its message id
//!   (`parse_message_id`): the confirm that follows settles all the
//!   message's slots as unroutable.
//! - A confirm counts only for the publish it names: a slot republished
//!   since (new tag, possibly in a message grouped differently) is not
//!   settled by an older tag, and a partition no longer held settles
//!   nothing (its new owner republishes from the watermark last written,
//!   so nothing is recorded here for it).
//! - When the channel dies, nothing it did not confirm will be: every
//!   in-flight slot waits for a republish, and the watermark stays put.
//! - A releasing partition publishes nothing more and writes no watermark:
//!   its final one is handed back once its confirms are in, or at its
//!   deadline (then the new owner republishes what was unconfirmed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

/// Why a slot was never published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// Superseded by a newer due slot of the same check (bounded catch-up).
    CatchUp,
    /// The broker refused the publish (queue full).
    Rejected,
    /// The broker could not route the publish (queue missing).
    Unroutable,
}

impl MissReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            MissReason::CatchUp => "catch_up",
            MissReason::Rejected => "rejected",
            MissReason::Unroutable => "unroutable",
        }
    }
}

/// A slot settled as never published: to be recorded in `missed_slots`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Miss {
    pub partition: u32,
    pub check_id: i64,
    pub slot: i64,
    pub reason: MissReason,
}

/// What the broker answered for a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    Ack,
    Nack,
}

/// One held partition's books.
struct Books {
    epoch: i64,
    /// Every slot before this has been handed out (published, in flight, or missed).
    handed_out_upto: i64,
    /// In flight by (slot, check): `Some(tag)` published on the current
    /// channel, `None` waiting to be (re)published.
    in_flight: BTreeMap<(i64, i64), Option<u64>>,
    /// Being handed back: no publish, no watermark write, until this deadline.
    release_by: Option<Instant>,
    /// The watermark last handed to the writer (or read at the claim).
    last_mark: Option<i64>,
}

impl Books {
    fn watermark(&self) -> i64 {
        match self.in_flight.keys().next() {
            Some((slot, _)) => (*slot).min(self.handed_out_upto),
            None => self.handed_out_upto,
        }
    }
}

/// A message published on the current channel awaiting its confirm: the
/// (slot, check) keys it carries, the first one naming the message.
struct Sent {
    partition: u32,
    keys: Vec<(i64, i64)>,
    at: Instant,
}

/// The books of every partition the dispatcher holds.
#[derive(Default)]
pub struct Ledger {
    partitions: HashMap<u32, Books>,
    /// Delivery tag → publish, for the current channel.
    tags: BTreeMap<u64, Sent>,
    /// Slots in the messages of `tags`: what [`Ledger::awaiting_confirm`] bounds.
    slots_in_tags: usize,
    /// (check, slot) naming a message the broker returned as unroutable;
    /// its confirm follows.
    returned: HashSet<(i64, i64)>,
}

impl Ledger {
    /// A claimed partition, dispatched from `from` (unix ms); `written` is
    /// the watermark the lease row holds. Replaces any books of an older
    /// claim of the same partition.
    pub fn acquire(&mut self, partition: u32, epoch: i64, from: i64, written: Option<i64>) {
        self.partitions.insert(
            partition,
            Books {
                epoch,
                handed_out_upto: from,
                in_flight: BTreeMap::new(),
                release_by: None,
                last_mark: written,
            },
        );
    }

    /// Whether `partition` is held at `epoch`.
    pub fn holds(&self, partition: u32, epoch: i64) -> bool {
        self.partitions.get(&partition).is_some_and(|b| b.epoch == epoch)
    }

    /// The epoch `partition` is held at, if held.
    pub fn epoch(&self, partition: u32) -> Option<i64> {
        self.partitions.get(&partition).map(|b| b.epoch)
    }

    /// Forgets a partition whose lease is gone: nothing more is written for
    /// it, and confirms still to come for it settle nothing.
    pub fn drop_partition(&mut self, partition: u32) {
        self.partitions.remove(&partition);
    }

    /// Starts handing `partition` back: it finishes when its confirms are
    /// in, or at `deadline`.
    pub fn start_release(&mut self, partition: u32, deadline: Instant) {
        if let Some(books) = self.partitions.get_mut(&partition) {
            books.release_by = Some(deadline);
        }
    }

    /// Whether `partition` is being handed back (publishes nothing).
    pub fn releasing(&self, partition: u32) -> bool {
        self.partitions.get(&partition).is_some_and(|b| b.release_by.is_some())
    }

    /// The releases done at `now` (every confirm in, or the deadline
    /// passed), each with its final watermark; their books are closed.
    pub fn finish_releases(&mut self, now: Instant) -> Vec<(u32, i64)> {
        let done: Vec<u32> = self
            .partitions
            .iter()
            .filter(|(_, b)| match b.release_by {
                Some(deadline) => b.in_flight.is_empty() || now >= deadline,
                None => false,
            })
            .map(|(p, _)| *p)
            .collect();
        let mut finished = Vec::with_capacity(done.len());
        for partition in done {
            if let Some(books) = self.partitions.remove(&partition) {
                finished.push((partition, books.watermark()));
            }
        }
        finished
    }

    /// Slots of `partition` handed out at `now`: `due` are (slot, check)
    /// to publish, every slot up to `now` is accounted for (the ones not in
    /// `due` were recorded missed or are not due).
    pub fn hand_out(&mut self, partition: u32, now: i64, due: impl IntoIterator<Item = (i64, i64)>) {
        let Some(books) = self.partitions.get_mut(&partition) else { return };
        books.handed_out_upto = books.handed_out_upto.max(now + 1);
        for key in due {
            books.in_flight.insert(key, None);
        }
    }

    /// Whether `partition` has a slot waiting for a (re)publish.
    pub fn has_unsent(&self, partition: u32) -> bool {
        self.partitions.get(&partition).is_some_and(|b| b.in_flight.values().any(Option::is_none))
    }

    /// The (slot, check) of `partition` waiting for a (re)publish, oldest first.
    pub fn unsent(&self, partition: u32) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.partitions
            .get(&partition)
            .into_iter()
            .flat_map(|b| b.in_flight.iter().filter(|(_, tag)| tag.is_none()).map(|(key, _)| *key))
    }

    /// The slot will not be published: its check is gone. Nothing to record.
    pub fn forget(&mut self, partition: u32, slot: i64, check_id: i64) {
        if let Some(books) = self.partitions.get_mut(&partition) {
            books.in_flight.remove(&(slot, check_id));
        }
    }

    /// The slot waited too long for a republish: it is a recorded miss.
    pub fn give_up(&mut self, partition: u32, slot: i64, check_id: i64) -> Miss {
        self.forget(partition, slot, check_id);
        Miss { partition, check_id, slot, reason: MissReason::CatchUp }
    }

    /// One message carrying `keys` (slot, check) of `partition`, the first
    /// naming it, was handed to the current channel at `at` as delivery `tag`.
    pub fn sent(&mut self, partition: u32, keys: Vec<(i64, i64)>, tag: u64, at: Instant) {
        if keys.is_empty() {
            return;
        }
        if let Some(books) = self.partitions.get_mut(&partition) {
            for key in &keys {
                books.in_flight.insert(*key, Some(tag));
            }
        }
        self.slots_in_tags += keys.len();
        if let Some(old) = self.tags.insert(tag, Sent { partition, keys, at }) {
            // A tag is never reused on one channel; stay consistent if it were.
            self.slots_in_tags -= old.keys.len();
        }
    }

    /// Slots in messages awaiting their confirm on the current channel
    /// (including those of partitions no longer held): bounds what may be
    /// in flight.
    pub fn awaiting_confirm(&self) -> usize {
        self.slots_in_tags
    }

    /// When the oldest publish still awaiting its confirm was sent.
    pub fn oldest_unconfirmed(&self) -> Option<Instant> {
        self.tags.first_key_value().map(|(_, sent)| sent.at)
    }

    /// The broker returned the message whose first slot is (check, slot)
    /// as unroutable: its confirm, which follows, settles every slot of it
    /// as a miss.
    pub fn returned(&mut self, check_id: i64, slot: i64) {
        self.returned.insert((check_id, slot));
    }

    /// The broker's answer for `tag` (and every earlier tag when
    /// `multiple`), for every slot of each message. Returns the slots it
    /// settled as missed.
    pub fn confirm(&mut self, tag: u64, multiple: bool, answer: Confirm) -> Vec<Miss> {
        let mut misses = Vec::new();
        if multiple {
            // Every tag up to and including `tag` (all of them at the top).
            let rest = match tag.checked_add(1) {
                Some(after) => self.tags.split_off(&after),
                None => BTreeMap::new(),
            };
            let settled = std::mem::replace(&mut self.tags, rest);
            for (tag, sent) in settled {
                self.settle(tag, sent, answer, &mut misses);
            }
        } else if let Some(sent) = self.tags.remove(&tag) {
            self.settle(tag, sent, answer, &mut misses);
        }
        misses
    }

    fn settle(&mut self, tag: u64, sent: Sent, answer: Confirm, misses: &mut Vec<Miss>) {
        self.slots_in_tags -= sent.keys.len();
        // The return names the message by its first slot; it is used up
        // whether or not the partition is still held.
        let returned = sent.keys.first().is_some_and(|(slot, check)| self.returned.remove(&(*check, *slot)));
        let Some(books) = self.partitions.get_mut(&sent.partition) else { return };
        let reason = if returned {
            Some(MissReason::Unroutable)
        } else {
            match answer {
                Confirm::Ack => None,
                Confirm::Nack => Some(MissReason::Rejected),
            }
        };
        for key in sent.keys {
            // Republished since (a newer tag) or given up: not this tag's to settle.
            if books.in_flight.get(&key) != Some(&Some(tag)) {
                continue;
            }
            books.in_flight.remove(&key);
            if let Some(reason) = reason {
                misses.push(Miss { partition: sent.partition, check_id: key.1, slot: key.0, reason });
            }
        }
    }

    /// The channel is gone: whatever it did not confirm waits for the next one.
    pub fn channel_lost(&mut self) {
        for books in self.partitions.values_mut() {
            for tag in books.in_flight.values_mut() {
                *tag = None;
            }
        }
        self.tags.clear();
        self.slots_in_tags = 0;
        self.returned.clear();
    }

    /// The watermark `partition` may write now, if held.
    pub fn watermark(&self, partition: u32) -> Option<i64> {
        self.partitions.get(&partition).map(Books::watermark)
    }

    /// The watermarks to hand to the writer now, as (partition, epoch,
    /// watermark): those that moved since last handed, of partitions not
    /// being released.
    pub fn marks_to_write(&mut self) -> Vec<(u32, i64, i64)> {
        let mut marks = Vec::new();
        for (partition, books) in self.partitions.iter_mut() {
            if books.release_by.is_some() {
                continue;
            }
            let mark = books.watermark();
            if books.last_mark != Some(mark) {
                marks.push((*partition, books.epoch, mark));
                books.last_mark = Some(mark);
            }
        }
        marks
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
