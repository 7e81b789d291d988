//! A property test that drives the ledger with random hand-outs, publishes
//! of messages carrying one or several slots of a partition, confirms
//! (single and multiple, in any order), nacks, returns, channel losses,
//! lost leases and releases, against a plain model of the same rules
//! (`Model`), checking the ledger's promises after every step.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const T0: i64 = 1_700_000_000_000;

/// What happens to the dispatcher, as the property test generates it.
#[derive(Debug, Clone)]
enum Op {
    /// Time passes by `step` ms; `count` due slots of `partition` are handed out.
    HandOut {
        partition: u32,
        step: i64,
        count: usize,
        seed: u64,
    },
    /// The unsent slot number `pick` is published in one message with up
    /// to `size - 1` more unsent slots of its partition.
    Send {
        pick: usize,
        size: usize,
    },
    /// The broker answers for an outstanding tag (or any tag).
    Answer {
        pick: usize,
        any: Option<u64>,
        multiple: bool,
        nack: bool,
    },
    /// The broker returns the sent message number `pick`.
    Return {
        pick: usize,
    },
    ChannelLost,
    /// An unsent slot is given up (too late) or forgotten (check deleted).
    Drop {
        pick: usize,
        too_late: bool,
    },
    Lose {
        partition: u32,
    },
    Acquire {
        partition: u32,
    },
    /// Lost and claimed straight back (a new epoch): confirms of the old
    /// claim are still on their way.
    Reclaim {
        partition: u32,
    },
    Release {
        partition: u32,
        wait_ms: u64,
    },
    FinishReleases {
        advance_ms: u64,
    },
    Marks,
}

fn op() -> impl Strategy<Value = Op> {
    let partition = 0u32..3;
    prop_oneof![
        4 => (partition.clone(), 0i64..1500, 0usize..4, any::<u64>())
            .prop_map(|(partition, step, count, seed)| Op::HandOut { partition, step, count, seed }),
        6 => (any::<usize>(), 1usize..5).prop_map(|(pick, size)| Op::Send { pick, size }),
        6 => (any::<usize>(), proptest::option::weighted(0.1, 0u64..40), any::<bool>(), proptest::bool::weighted(0.3))
            .prop_map(|(pick, any, multiple, nack)| Op::Answer { pick, any, multiple, nack }),
        1 => any::<usize>().prop_map(|pick| Op::Return { pick }),
        1 => Just(Op::ChannelLost),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, too_late)| Op::Drop { pick, too_late }),
        1 => partition.clone().prop_map(|partition| Op::Lose { partition }),
        2 => partition.clone().prop_map(|partition| Op::Acquire { partition }),
        1 => partition.clone().prop_map(|partition| Op::Reclaim { partition }),
        1 => (partition, 0u64..3000).prop_map(|(partition, wait_ms)| Op::Release { partition, wait_ms }),
        2 => (0u64..2000).prop_map(|advance_ms| Op::FinishReleases { advance_ms }),
        3 => Just(Op::Marks),
    ]
}

/// How a slot of the model ended, or that it has not yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Unsent,
    Sent(u64),
    Published,
    Missed(MissReason),
    Forgotten,
    /// Left with its partition (lost or released) to the next owner.
    Abandoned,
}

/// The model's view of a held partition.
#[derive(Debug, Clone)]
struct Held {
    epoch: i64,
    upto: i64,
    release_by: Option<Duration>,
    /// The watermark the writer last got for this claim (or read at the claim).
    written: Option<i64>,
    /// The least watermark seen for this claim so far: it never goes back.
    seen: i64,
}

/// The same rules as the ledger, spelled plainly.
struct Model {
    now: i64,
    clock: Duration,
    held: HashMap<u32, Held>,
    /// The latest watermark written for a partition, by any claim.
    stored: HashMap<u32, i64>,
    epochs: HashMap<u32, i64>,
    fates: BTreeMap<(u32, i64, i64), Fate>,
    /// Tag → (partition, the (slot, check) of its message, first naming it).
    tags: BTreeMap<u64, (u32, Vec<(i64, i64)>)>,
    next_tag: u64,
    returned: HashSet<(i64, i64)>,
}

impl Model {
    fn pending(&self, partition: u32) -> impl Iterator<Item = i64> + '_ {
        self.fates
            .iter()
            .filter(move |((p, ..), fate)| *p == partition && matches!(fate, Fate::Unsent | Fate::Sent(_)))
            .map(|((_, slot, _), _)| *slot)
    }

    fn watermark(&self, partition: u32) -> Option<i64> {
        let held = self.held.get(&partition)?;
        Some(self.pending(partition).min().map_or(held.upto, |oldest| oldest.min(held.upto)))
    }

    fn keys(&self, wanted: impl Fn(&Fate) -> bool, dispatchable: bool) -> Vec<(u32, i64, i64)> {
        self.fates
            .iter()
            .filter(|((p, ..), fate)| {
                wanted(fate) && self.held.get(p).is_some_and(|h| !dispatchable || h.release_by.is_none())
            })
            .map(|(key, _)| *key)
            .collect()
    }

    /// The partition's slots still pending go to the next owner, which
    /// resumes at `mark`: none of them may be below it.
    fn abandon(&mut self, partition: u32, mark: Option<i64>) -> Result<(), TestCaseError> {
        for ((p, slot, _), fate) in self.fates.iter_mut() {
            if *p == partition && matches!(fate, Fate::Unsent | Fate::Sent(_)) {
                if let Some(mark) = mark {
                    prop_assert!(*slot >= mark, "slot {slot} left behind the watermark {mark}");
                }
                *fate = Fate::Abandoned;
            }
        }
        Ok(())
    }

    fn settle(&mut self, tag: u64, nack: bool, misses: &mut Vec<Miss>) {
        let Some((partition, keys)) = self.tags.remove(&tag) else { return };
        let returned = keys.first().is_some_and(|(slot, check)| self.returned.remove(&(*check, *slot)));
        if !self.held.contains_key(&partition) {
            return;
        }
        let fate = if returned {
            Fate::Missed(MissReason::Unroutable)
        } else if nack {
            Fate::Missed(MissReason::Rejected)
        } else {
            Fate::Published
        };
        for (slot, check) in keys {
            let key = (partition, slot, check);
            if self.fates.get(&key) != Some(&Fate::Sent(tag)) {
                continue;
            }
            if let Fate::Missed(reason) = fate {
                misses.push(Miss { partition, check_id: check, slot, reason });
            }
            self.fates.insert(key, fate);
        }
    }

    /// Slots in messages awaiting their confirm.
    fn awaiting(&self) -> usize {
        self.tags.values().map(|(_, keys)| keys.len()).sum()
    }
}

fn step(l: &mut Ledger, m: &mut Model, base: Instant, op: Op) -> Result<(), TestCaseError> {
    match op {
        Op::HandOut { partition, step, count, seed } => {
            m.now += step;
            let Some(h) = m.held.get(&partition).cloned() else { return Ok(()) };
            if h.release_by.is_some() {
                return Ok(());
            }
            // Due slots are never older than what was handed out before
            // (the schedule's promise), and each is handed out once. They
            // lie on a 100 ms grid near the start, so that a new owner,
            // resuming at the old one's watermark, hands out the very slots
            // still awaiting the old one's confirms.
            let first = (h.upto + 99).div_euclid(100) * 100;
            let mut due = Vec::new();
            for i in 0..count as u64 {
                let r =
                    seed.wrapping_mul(6364136223846793005).wrapping_add(i.wrapping_mul(1442695040888963407));
                let slot = first + 100 * ((r >> 33) % 4) as i64;
                let key = (partition, slot, (r % 2) as i64);
                if slot <= m.now && !matches!(m.fates.get(&key), Some(Fate::Unsent | Fate::Sent(_))) {
                    m.fates.insert(key, Fate::Unsent);
                    due.push((key.1, key.2));
                }
            }
            l.hand_out(partition, m.now, due);
            if let Some(h) = m.held.get_mut(&partition) {
                h.upto = h.upto.max(m.now + 1);
            }
        }
        Op::Send { pick, size } => {
            let unsent = m.keys(|f| *f == Fate::Unsent, true);
            if let Some(first) = unsent.get(pick % unsent.len().max(1)).copied() {
                // The picked slot first, then the next unsent ones of its
                // partition (wrapping): a message may start anywhere, not
                // only at the oldest, as after a partial republish.
                let start = pick % unsent.len();
                let keys: Vec<(i64, i64)> = unsent[start..]
                    .iter()
                    .chain(&unsent[..start])
                    .filter(|(p, ..)| *p == first.0)
                    .take(size.max(1))
                    .map(|(_, slot, check)| (*slot, *check))
                    .collect();
                let tag = m.next_tag;
                m.next_tag += 1;
                l.sent(first.0, keys.clone(), tag, base + m.clock);
                for (slot, check) in &keys {
                    m.fates.insert((first.0, *slot, *check), Fate::Sent(tag));
                }
                m.tags.insert(tag, (first.0, keys));
            }
        }
        Op::Answer { pick, any, multiple, nack } => {
            let outstanding: Vec<u64> = m.tags.keys().copied().collect();
            let tag = match any {
                Some(tag) => tag,
                None if outstanding.is_empty() => return Ok(()),
                None => outstanding[pick % outstanding.len()],
            };
            let answer = if nack { Confirm::Nack } else { Confirm::Ack };
            let got = l.confirm(tag, multiple, answer);
            let mut want = Vec::new();
            let settled: Vec<u64> =
                if multiple { m.tags.range(..=tag).map(|(t, _)| *t).collect() } else { vec![tag] };
            for t in settled {
                m.settle(t, nack, &mut want);
            }
            prop_assert_eq!(got, want);
        }
        Op::Return { pick } => {
            // The broker returns a whole message; its id names its first slot.
            let firsts: Vec<(i64, i64)> =
                m.tags.values().filter_map(|(_, keys)| keys.first().copied()).collect();
            if let Some((slot, check)) = firsts.get(pick % firsts.len().max(1)).copied() {
                l.returned(check, slot);
                m.returned.insert((check, slot));
            }
        }
        Op::ChannelLost => {
            l.channel_lost();
            for fate in m.fates.values_mut() {
                if let Fate::Sent(_) = fate {
                    *fate = Fate::Unsent;
                }
            }
            m.tags.clear();
            m.returned.clear();
            // A new channel numbers its deliveries from 1 again.
            m.next_tag = 1;
        }
        Op::Drop { pick, too_late } => {
            let unsent = m.keys(|f| *f == Fate::Unsent, true);
            if let Some(key) = unsent.get(pick % unsent.len().max(1)).copied() {
                if too_late {
                    let miss = l.give_up(key.0, key.1, key.2);
                    prop_assert_eq!(
                        miss,
                        Miss { partition: key.0, check_id: key.2, slot: key.1, reason: MissReason::CatchUp }
                    );
                    m.fates.insert(key, Fate::Missed(MissReason::CatchUp));
                } else {
                    l.forget(key.0, key.1, key.2);
                    m.fates.insert(key, Fate::Forgotten);
                }
            }
        }
        Op::Lose { partition } => {
            if let Some(h) = m.held.remove(&partition) {
                l.drop_partition(partition);
                m.abandon(partition, h.written)?;
            }
        }
        Op::Acquire { partition } => {
            if !m.held.contains_key(&partition) {
                let epoch = m.epochs.get(&partition).copied().unwrap_or(0) + 1;
                m.epochs.insert(partition, epoch);
                let written = m.stored.get(&partition).copied();
                let from = written.unwrap_or(m.now);
                l.acquire(partition, epoch, from, written);
                m.held.insert(partition, Held { epoch, upto: from, release_by: None, written, seen: from });
            }
        }
        Op::Reclaim { partition } => {
            step(l, m, base, Op::Lose { partition })?;
            step(l, m, base, Op::Acquire { partition })?;
        }
        Op::Release { partition, wait_ms } => {
            if let Some(h) = m.held.get_mut(&partition) {
                let deadline = m.clock + Duration::from_millis(wait_ms);
                l.start_release(partition, base + deadline);
                h.release_by = Some(deadline);
            }
        }
        Op::FinishReleases { advance_ms } => {
            m.clock += Duration::from_millis(advance_ms);
            let mut got = l.finish_releases(base + m.clock);
            got.sort();
            let mut want = Vec::new();
            for (partition, h) in &m.held {
                if let Some(deadline) = h.release_by {
                    if m.pending(*partition).next().is_none() || m.clock >= deadline {
                        want.push((*partition, m.watermark(*partition).unwrap_or_default()));
                    }
                }
            }
            want.sort();
            prop_assert_eq!(&got, &want);
            for (partition, watermark) in got {
                m.held.remove(&partition);
                m.stored.insert(partition, watermark);
                m.abandon(partition, Some(watermark))?;
            }
        }
        Op::Marks => {
            let mut got = l.marks_to_write();
            got.sort();
            let mut want = Vec::new();
            for (partition, h) in m.held.iter_mut() {
                if h.release_by.is_some() {
                    continue;
                }
                let mark = m
                    .fates
                    .iter()
                    .filter(|((p, ..), f)| p == partition && matches!(f, Fate::Unsent | Fate::Sent(_)))
                    .map(|((_, slot, _), _)| *slot)
                    .min()
                    .map_or(h.upto, |oldest| oldest.min(h.upto));
                if h.written != Some(mark) {
                    want.push((*partition, h.epoch, mark));
                    h.written = Some(mark);
                    m.stored.insert(*partition, mark);
                }
            }
            want.sort();
            prop_assert_eq!(got, want);
        }
    }
    check_invariants(l, m)
}

fn check_invariants(l: &Ledger, m: &mut Model) -> Result<(), TestCaseError> {
    let partitions: Vec<u32> = m.held.keys().copied().collect();
    for partition in 0..3 {
        prop_assert_eq!(l.watermark(partition).is_some(), m.held.contains_key(&partition));
    }
    for partition in partitions {
        let watermark = l.watermark(partition);
        prop_assert_eq!(watermark, m.watermark(partition), "partition {}", partition);
        let Some(watermark) = watermark else { continue };
        // Never past a slot not yet confirmed (or recorded missed).
        for slot in m.pending(partition) {
            prop_assert!(watermark <= slot, "watermark {} passes unsettled slot {}", watermark, slot);
        }
        // Never backwards within one claim.
        let h = m.held.get_mut(&partition).expect("held");
        prop_assert!(watermark >= h.seen, "watermark went back from {} to {}", h.seen, watermark);
        h.seen = watermark;
        prop_assert_eq!(l.releasing(partition), h.release_by.is_some());
        prop_assert!(l.holds(partition, h.epoch));
    }
    prop_assert_eq!(l.awaiting_confirm(), m.awaiting());
    let unsent = |p: u32| m.fates.iter().any(|((q, ..), f)| *q == p && *f == Fate::Unsent);
    for partition in 0..3 {
        prop_assert_eq!(l.has_unsent(partition), m.held.contains_key(&partition) && unsent(partition));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever the broker does, in whatever order, with messages of one or
    /// several slots, the ledger agrees with the plain model: the watermark
    /// never passes an unconfirmed slot and never goes back, each slot is
    /// settled once (by the latest message carrying it, with that
    /// message's answer), and once the broker has
    /// answered everything, every slot ended published, recorded missed,
    /// dropped with its deleted check, or left to the next owner at or
    /// after the watermark that owner resumes from.
    #[test]
    fn every_slot_ends_confirmed_missed_or_left_to_the_next_owner(
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let base = Instant::now();
        let mut l = Ledger::default();
        let mut m = Model {
            now: T0,
            clock: Duration::ZERO,
            held: HashMap::new(),
            stored: HashMap::new(),
            epochs: HashMap::new(),
            fates: BTreeMap::new(),
            tags: BTreeMap::new(),
            next_tag: 1,
            returned: HashSet::new(),
        };
        for partition in 0..3 {
            step(&mut l, &mut m, base, Op::Acquire { partition })?;
        }
        for op in ops {
            step(&mut l, &mut m, base, op)?;
        }
        // Drain: a fresh channel, everything unsent published, the broker
        // acks it all, releases finish, watermarks are written.
        step(&mut l, &mut m, base, Op::ChannelLost)?;
        loop {
            let before = m.tags.len();
            step(&mut l, &mut m, base, Op::Send { pick: 0, size: 3 })?;
            if m.tags.len() == before {
                break;
            }
        }
        if let Some(last) = m.tags.keys().next_back().copied() {
            step(&mut l, &mut m, base, Op::Answer { pick: 0, any: Some(last), multiple: true, nack: false })?;
        }
        step(&mut l, &mut m, base, Op::FinishReleases { advance_ms: 10_000 })?;
        step(&mut l, &mut m, base, Op::Marks)?;
        for (key, fate) in &m.fates {
            prop_assert!(
                matches!(fate, Fate::Published | Fate::Missed(_) | Fate::Forgotten | Fate::Abandoned),
                "{:?} ended {:?}", key, fate
            );
        }
        for (partition, h) in &m.held {
            prop_assert_eq!(l.watermark(*partition), Some(h.upto), "everything handed out is settled");
            prop_assert_eq!(h.written, Some(h.upto));
        }
    }
}
