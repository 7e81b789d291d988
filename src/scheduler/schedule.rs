//! The in-memory schedule of one owned partition: its checks, each with its
//! next unhandled slot, in a min-heap by slot time.
//!
//! Memory is what lets one scheduler hold a million checks, so a check is
//! a slab entry of fixed size plus one allocation holding its name (already
//! JSON-quoted) and its spec exactly as `checks.spec` stores it; the job
//! message is assembled around them when a slot is due
//! ([`crate::model::job::encode_prepared`]), which costs a couple of
//! copies, not a JSON encoding.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::slots;
use crate::model::job::{encode_prepared, quote_name, version_of_spec_json, JOB_SCHEMA_BATCH};

/// A check as loaded from the `checks` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    pub id: i64,
    pub name: String,
    pub interval_ms: i64,
    pub version: i64,
    /// `checks.spec` as JSON text.
    pub spec_json: String,
}

struct Entry {
    id: i64,
    version: i64,
    /// First slot not yet handled (published or counted missed).
    next: i64,
    /// At most 24 h, so it fits.
    interval_ms: u32,
    /// Bumped when `next` is rescheduled; heap entries of older generations are stale.
    generation: u32,
    /// The job schema version of this check's kind, read once at load.
    job_v: u8,
    /// Byte length of the JSON-quoted name at the start of `text`.
    name_len: u32,
    /// JSON-quoted name, then the spec JSON.
    text: Box<[u8]>,
}

impl Entry {
    fn new(row: CheckRow, next: i64, generation: u32) -> Entry {
        let name = quote_name(&row.name);
        let mut text = Vec::with_capacity(name.len() + row.spec_json.len());
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(row.spec_json.as_bytes());
        Entry {
            id: row.id,
            version: row.version,
            next,
            interval_ms: row.interval_ms.clamp(1, u32::MAX as i64) as u32,
            generation,
            job_v: version_of_spec_json(row.spec_json.as_bytes()).min(u8::MAX as u32) as u8,
            name_len: name.len() as u32,
            text: text.into_boxed_slice(),
        }
    }

    fn interval(&self) -> i64 {
        self.interval_ms as i64
    }
}

/// A slot to publish now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueSlot {
    pub check_id: i64,
    pub slot: i64,
}

/// A run of slots of one check that will never be published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissedRange {
    pub check_id: i64,
    pub first: i64,
    pub last: i64,
    pub count: i64,
}

#[derive(Default)]
pub struct PartitionSchedule {
    /// Slab of checks; `None` slots are free and listed in `free`.
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// check id → index in `entries`.
    index: HashMap<i64, u32>,
    /// (next slot, index, generation), earliest first.
    heap: BinaryHeap<Reverse<(i64, u32, u32)>>,
}

impl PartitionSchedule {
    /// Loads `rows` resuming at `from`: every slot at or after it is still to
    /// be handled (a watermark, or "now" on a fresh install).
    pub fn load(rows: Vec<CheckRow>, from: i64) -> PartitionSchedule {
        let mut schedule = PartitionSchedule {
            entries: Vec::with_capacity(rows.len()),
            index: HashMap::with_capacity(rows.len()),
            heap: BinaryHeap::with_capacity(rows.len()),
            ..PartitionSchedule::default()
        };
        for row in rows {
            let next = slots::slot_at_or_after(from, row.interval_ms, slots::phase(row.id, row.interval_ms));
            schedule.insert(row, next);
        }
        schedule
    }

    /// Adds or replaces the check of `row`, due next at `next`.
    fn insert(&mut self, row: CheckRow, next: i64) {
        let index = match self.index.get(&row.id) {
            Some(i) => *i,
            None => {
                let i = match self.free.pop() {
                    Some(i) => i,
                    None => {
                        self.entries.push(None);
                        (self.entries.len() - 1) as u32
                    }
                };
                self.index.insert(row.id, i);
                i
            }
        };
        let slot = &mut self.entries[index as usize];
        let generation = slot.as_ref().map(|e| e.generation.wrapping_add(1)).unwrap_or(0);
        *slot = Some(Entry::new(row, next, generation));
        self.heap.push(Reverse((next, index, generation)));
    }

    fn remove(&mut self, id: i64) {
        if let Some(i) = self.index.remove(&id) {
            self.entries[i as usize] = None;
            self.free.push(i);
        }
    }

    fn get(&self, id: i64) -> Option<&Entry> {
        self.index.get(&id).and_then(|i| self.entries[*i as usize].as_ref())
    }

    /// Replaces the partition's checks with `rows` (a reload). New checks
    /// start at their first slot after `now`; removed ones are dropped;
    /// changed ones keep their place in time. A changed interval starts
    /// its new grid at [`slots::regrid`]: the first new slot at or after
    /// the change (so shortening 1 h to 1 min neither publishes late nor
    /// records missed the new slots of the hour before the change, and
    /// lengthening skips no new slot), never at or before the last handled
    /// slot (a check never runs twice in a row), and from the first
    /// unhandled slot when dispatch was behind (a broker outage): that gap
    /// is still handed out by the bounded catch-up, published or recorded
    /// missed.
    pub fn reload(&mut self, rows: Vec<CheckRow>, now: i64) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        let mut seen = std::collections::HashSet::with_capacity(rows.len());
        for row in rows {
            seen.insert(row.id);
            let phase = slots::phase(row.id, row.interval_ms);
            match self.get(row.id).map(|e| (e.version, e.next, e.interval())) {
                Some((version, _, _)) if version == row.version => {}
                Some((_, next, interval)) => {
                    let next = if interval == row.interval_ms {
                        next
                    } else {
                        slots::regrid(next, interval, now, row.interval_ms, phase)
                    };
                    self.insert(row, next);
                    summary.changed += 1;
                }
                None => {
                    let next = slots::slot_at_or_after(now, row.interval_ms, phase);
                    self.insert(row, next);
                    summary.added += 1;
                }
            }
        }
        let gone: Vec<i64> = self.index.keys().filter(|id| !seen.contains(id)).copied().collect();
        summary.removed = gone.len();
        for id in gone {
            self.remove(id);
        }
        if summary.removed > 0 || self.heap.len() > 2 * self.index.len() + 64 {
            self.compact();
        }
        summary
    }

    /// Drops stale heap entries (after removals and reschedules).
    fn compact(&mut self) {
        let entries = &self.entries;
        self.heap.retain(|Reverse((next, i, gen))| {
            matches!(&entries[*i as usize], Some(e) if e.generation == *gen && e.next == *next)
        });
    }

    /// Hands out everything due at `now`: slots to publish into `due`, slots
    /// too late to publish into `missed` (bounded catch-up).
    pub fn take_due(
        &mut self,
        now: i64,
        catch_up_ms: i64,
        due: &mut Vec<DueSlot>,
        missed: &mut Vec<MissedRange>,
    ) {
        while let Some(Reverse((next, index, gen))) = self.heap.peek().copied() {
            if next > now {
                break;
            }
            self.heap.pop();
            let Some(entry) = self.entries[index as usize].as_mut() else { continue };
            if entry.generation != gen || entry.next != next {
                continue;
            }
            let interval = entry.interval();
            let d = slots::take_due(next, now, interval, catch_up_ms);
            if let Some((first, last, count)) = d.missed {
                missed.push(MissedRange { check_id: entry.id, first, last, count });
            }
            if let Some((first, last)) = d.publish {
                let mut slot = first;
                while slot <= last {
                    due.push(DueSlot { check_id: entry.id, slot });
                    slot += interval;
                }
            }
            entry.next = d.next;
            entry.generation = entry.generation.wrapping_add(1);
            self.heap.push(Reverse((entry.next, index, entry.generation)));
        }
    }

    /// When the earliest check is due (a wake-up hint; may be a stale entry).
    pub fn next_due(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse((next, _, _))| *next)
    }

    /// The job message of `check_id` for `slot`, if the check is still here.
    pub fn message(&self, check_id: i64, slot: i64) -> Option<Vec<u8>> {
        let e = self.get(check_id)?;
        let (name, spec) = e.text.split_at(e.name_len as usize);
        Some(encode_prepared(e.job_v.into(), e.id, e.interval_ms, e.version, name, spec, slot))
    }

    /// The job of `check_id` for `slot` as one element of a version-3
    /// message ([`crate::model::job::encode_batch`]), if the check is still here.
    pub fn batch_slot(&self, check_id: i64, slot: i64) -> Option<Vec<u8>> {
        let e = self.get(check_id)?;
        let (name, spec) = e.text.split_at(e.name_len as usize);
        Some(encode_prepared(JOB_SCHEMA_BATCH, e.id, e.interval_ms, e.version, name, spec, slot))
    }

    /// Whether `slot` of `check_id` is no longer worth publishing: later
    /// than the catch-up window, and not the check's latest due slot.
    pub fn too_late(&self, check_id: i64, slot: i64, now: i64, catch_up_ms: i64) -> bool {
        match self.get(check_id) {
            Some(e) => now - slot > catch_up_ms && slot + e.interval() <= now,
            None => true,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Test and diagnostics view: the next slot of a check.
    pub fn next_slot(&self, check_id: i64) -> Option<i64> {
        self.get(check_id).map(|e| e.next)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CheckJob;

    fn row(id: i64, interval_ms: i64, version: i64) -> CheckRow {
        CheckRow {
            id,
            name: format!("check-\"{id}\""),
            interval_ms,
            version,
            spec_json: r#"{"url": "http://127.0.0.1:1/", "timeout_ms": 500}"#.into(),
        }
    }

    #[test]
    fn messages_decode_as_the_documented_job() {
        let s = PartitionSchedule::load(vec![row(7, 1000, 3)], 1_700_000_000_000);
        let slot = s.next_slot(7).unwrap();
        let job = CheckJob::decode(&s.message(7, slot).unwrap()).unwrap();
        assert_eq!((job.check_id, job.version, job.interval_ms), (7, 3, 1000));
        assert_eq!(job.name, "check-\"7\"");
        assert_eq!(job.slot.timestamp_millis(), slot);
        assert_eq!(job.spec.timeout_ms, 500);
        assert_eq!(job.message_id(), format!("7:{slot}"));
    }

    #[test]
    fn due_slots_come_in_order_and_once() {
        let start = 1_700_000_000_000;
        let mut s = PartitionSchedule::load((1..=50).map(|i| row(i, 1000 + i * 10, 1)).collect(), start);
        let mut seen = std::collections::HashSet::new();
        let (mut due, mut missed) = (Vec::new(), Vec::new());
        for step in 1..=100 {
            due.clear();
            s.take_due(start + step * 100, 0, &mut due, &mut missed);
            for d in &due {
                assert!(seen.insert((d.check_id, d.slot)), "slot handed out twice");
                assert!(d.slot <= start + step * 100);
            }
        }
        assert!(missed.is_empty(), "ticks every 100 ms never fall an interval behind");
        // Every check ran about 10 s / interval times.
        assert!(seen.len() > 350, "{}", seen.len());
    }

    #[test]
    fn reload_adds_changes_and_removes() {
        let start = 1_700_000_000_000;
        let mut s = PartitionSchedule::load(vec![row(1, 1000, 1), row(2, 1000, 1)], start);
        let next1 = s.next_slot(1).unwrap();
        let sum = s.reload(vec![row(1, 1000, 2), row(3, 5000, 1)], start + 10);
        assert_eq!(sum, ReloadSummary { added: 1, changed: 1, removed: 1 });
        assert_eq!(s.next_slot(1), Some(next1), "same interval: same place in time");
        assert_eq!(s.next_slot(2), None);
        let phase3 = slots::phase(3, 5000);
        assert_eq!(s.next_slot(3), Some(slots::slot_at_or_after(start + 10, 5000, phase3)));
        // Interval change: the next slot comes after the last handled one.
        let (mut due, mut missed) = (Vec::new(), Vec::new());
        s.take_due(next1, 0, &mut due, &mut missed);
        assert_eq!(due.len(), 1);
        s.reload(vec![row(1, 60_000, 3), row(3, 5000, 1)], next1 + 1);
        assert!(s.next_slot(1).unwrap() > next1);
        due.clear();
        s.take_due(next1 + 59_999, 0, &mut due, &mut missed);
        assert!(due.iter().all(|d| d.check_id != 1 || d.slot > next1));
        assert!(s.message(2, next1).is_none());
    }

    proptest::proptest! {
        /// Changing a check's interval while dispatch is in step: the new
        /// grid's slots before the change are neither published nor
        /// recorded missed, and its first slot after the change is not
        /// skipped.
        #[test]
        fn an_interval_change_hands_out_nothing_from_before_it(
            id in 1i64..1_000_000,
            old in 1i64..7_200_000,
            new in 1i64..7_200_000,
            start in 1_700_000_000_000i64..1_800_000_000_000,
            before in 0i64..20_000_000,
            catch_up in 0i64..60_000,
        ) {
            proptest::prop_assume!(old != new);
            let mut s = PartitionSchedule::load(vec![row(id, old, 1)], start);
            let now = start + before;
            let (mut due, mut missed) = (Vec::new(), Vec::new());
            s.take_due(now, catch_up, &mut due, &mut missed);
            let bound = due.iter().map(|d| d.slot + 1).max().unwrap_or(now).max(now);
            s.reload(vec![row(id, new, 2)], now);
            due.clear();
            missed.clear();
            s.take_due(now, catch_up, &mut due, &mut missed);
            proptest::prop_assert!(missed.is_empty(), "missed {:?}", missed);
            proptest::prop_assert!(due.iter().all(|d| d.slot >= now), "published from before the change: {:?}", due);
            let next = due.first().map(|d| d.slot).or(s.next_slot(id)).unwrap_or(i64::MAX);
            proptest::prop_assert_eq!((next - slots::phase(id, new)).rem_euclid(new), 0);
            proptest::prop_assert!(next - new < bound, "the first slot after the change was skipped");
        }
    }

    #[test]
    fn an_interval_change_while_behind_still_accounts_for_the_gap() {
        let start = 1_700_000_000_000;
        let mut s = PartitionSchedule::load(vec![row(1, 60_000, 1)], start);
        let unhandled = s.next_slot(1).unwrap();
        // A broker outage: nothing handed out for 5 min, then a change to 10 s.
        let now = unhandled + 300_000;
        s.reload(vec![row(1, 10_000, 2)], now);
        let (mut due, mut missed) = (Vec::new(), Vec::new());
        s.take_due(now, 30_000, &mut due, &mut missed);
        let first = missed.first().map(|m| m.first).or(due.first().map(|d| d.slot)).unwrap();
        assert!(
            first >= unhandled && first - 10_000 < unhandled,
            "the gap since {unhandled} starts at {first}"
        );
        let handled: i64 = missed.iter().map(|m| m.count).sum::<i64>() + due.len() as i64;
        let in_gap = (now - first) / 10_000 + 1;
        assert_eq!(handled, in_gap, "every 10 s slot of the 5 min gap is published or recorded missed");
    }

    #[test]
    fn far_behind_publishes_only_the_catch_up_window() {
        let start = 1_700_000_000_000;
        let mut s = PartitionSchedule::load(vec![row(1, 1000, 1)], start);
        let first = s.next_slot(1).unwrap();
        let (mut due, mut missed) = (Vec::new(), Vec::new());
        s.take_due(first + 5_500, 2_000, &mut due, &mut missed);
        let slots: Vec<i64> = due.iter().map(|d| d.slot - first).collect();
        assert_eq!(slots, vec![4000, 5000], "slots within the 2 s catch-up window, late");
        assert_eq!(missed, vec![MissedRange { check_id: 1, first, last: first + 3000, count: 4 }]);
    }
}
