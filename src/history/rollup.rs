//! What results and missed slots add to the hourly and daily rollup rows.
//! Pure: the worker, the scheduler, `rollups rebuild` and the raw-window
//! report all count through here, so they cannot disagree.
//!
//! A slot at `s` with interval `I` accounts for `[s, s + I)`, split exactly
//! at hour and day boundaries; its run, failure, latency and duration sum
//! go to the bucket holding `s`. Latency counts successful runs only: a
//! failure's duration measures the failure (a timeout, a refusal), not the
//! response time.

use std::collections::BTreeMap;

use super::buckets::{overlap, split, Granularity};
use super::histogram::{self, BUCKETS};
use super::uptime::{Category, Durations};

/// The sums of one rollup row (or of any set of slots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub durations: Durations,
    pub runs: i64,
    pub failures: i64,
    /// Sum of total_ms of successful runs, in microseconds.
    pub total_us_sum: i64,
    pub histogram: [i64; BUCKETS],
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            durations: Durations::default(),
            runs: 0,
            failures: 0,
            total_us_sum: 0,
            histogram: [0; BUCKETS],
        }
    }
}

impl Tally {
    pub fn merge(&mut self, other: &Tally) {
        self.durations.merge(&other.durations);
        self.runs += other.runs;
        self.failures += other.failures;
        self.total_us_sum += other.total_us_sum;
        for (a, b) in self.histogram.iter_mut().zip(other.histogram.iter()) {
            *a += b;
        }
    }

    /// `self - other`, element by element (what a rebuild adds to fix a row).
    pub fn minus(&self, other: &Tally) -> Tally {
        let mut out = self.clone();
        out.durations.up_ms -= other.durations.up_ms;
        out.durations.down_ms -= other.durations.down_ms;
        out.durations.no_data_ms -= other.durations.no_data_ms;
        out.durations.maintenance_ms -= other.durations.maintenance_ms;
        out.runs -= other.runs;
        out.failures -= other.failures;
        out.total_us_sum -= other.total_us_sum;
        for (a, b) in out.histogram.iter_mut().zip(other.histogram.iter()) {
            *a -= b;
        }
        out
    }

    pub fn is_zero(&self) -> bool {
        *self == Tally::default()
    }

    /// Percentile `q` of the successful runs, in ms.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        histogram::quantile(&self.histogram, q)
    }

    /// Counts one run (not its time).
    fn run(&mut self, success: bool, total_ms: f32) {
        self.runs += 1;
        if success {
            self.total_us_sum += micros(total_ms);
            self.histogram[histogram::index(f64::from(total_ms))] += 1;
        } else {
            self.failures += 1;
        }
    }
}

/// total_ms as stored (`real`) in integer microseconds: the live writer and
/// a rebuild reading the stored value get the same number.
pub fn micros(total_ms: f32) -> i64 {
    let us = (f64::from(total_ms) * 1000.0).round();
    if us.is_finite() {
        us.clamp(0.0, i64::MAX as f64 / 4.0) as i64
    } else {
        0
    }
}

/// One stored result, as history counts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResultFact {
    pub check_id: i64,
    pub slot_ms: i64,
    pub interval_ms: i64,
    pub category: Category,
    pub success: bool,
    /// As stored (`real`).
    pub total_ms: f32,
}

/// One stored missed range: `slots` slots from `first_ms` to `last_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissedFact {
    pub check_id: i64,
    pub first_ms: i64,
    pub last_ms: i64,
    pub slots: i64,
    /// The interval recorded with the range (or the check's, for old rows).
    pub interval_ms: i64,
}

impl MissedFact {
    /// The spacing of the range's slots: (last − first) / (slots − 1) when
    /// the range has several, else the recorded interval.
    pub fn step_ms(&self) -> i64 {
        if self.slots > 1 && self.last_ms > self.first_ms {
            (self.last_ms - self.first_ms) / (self.slots - 1)
        } else {
            self.interval_ms
        }
    }

    /// The slots of the range, in order.
    pub fn slots(&self) -> impl Iterator<Item = i64> + '_ {
        let step = self.step_ms().max(1);
        (0..self.slots.max(0)).map(move |k| self.first_ms + k * step)
    }
}

/// Rollup rows keyed by (check, granularity, bucket start in ms).
pub type Rollups = BTreeMap<(i64, Granularity, i64), Tally>;

/// Adds a result to its hourly and daily rows.
pub fn add_result(rollups: &mut Rollups, fact: &ResultFact) {
    for g in Granularity::ALL {
        for (bucket, ms) in split(fact.slot_ms, fact.interval_ms, g) {
            rollups.entry((fact.check_id, g, bucket)).or_default().durations.add(fact.category, ms);
        }
        let home = g.floor(fact.slot_ms);
        rollups.entry((fact.check_id, g, home)).or_default().run(fact.success, fact.total_ms);
    }
}

/// Adds a missed range: no data, or maintenance for the slots `covered`
/// says are inside a window (`None`: no window covers the check).
pub fn add_missed(rollups: &mut Rollups, fact: &MissedFact, covered: Option<&dyn Fn(i64) -> bool>) {
    missed_spans(fact, covered, &mut |start, len, category| {
        add_span(rollups, fact.check_id, start, len, category)
    });
}

/// The spans `(start, len, category)` a missed range accounts for: one
/// span of no data when no window covers the check (the common case, and a
/// long outage: split once), else slot by slot.
fn missed_spans(
    fact: &MissedFact,
    covered: Option<&dyn Fn(i64) -> bool>,
    out: &mut dyn FnMut(i64, i64, Category),
) {
    let step = fact.step_ms();
    match covered {
        None => out(fact.first_ms, (fact.slots.max(0) - 1).max(0) * step + step, Category::NoData),
        Some(covered) => {
            for slot in fact.slots() {
                out(slot, step, super::uptime::of_missed(covered(slot)));
            }
        }
    }
}

/// Adds to `tally` what a result accounts for inside `[from, to)`: its
/// slot's time clipped to the window, and its run when the slot starts in
/// it (as [`add_result`] gives a run to the bucket holding the slot). Over
/// a window of whole buckets this is exactly the sum of those buckets' rows.
pub fn add_result_in(tally: &mut Tally, fact: &ResultFact, from: i64, to: i64) {
    tally.durations.add(fact.category, overlap(fact.slot_ms, fact.interval_ms, from, to));
    if (from..to).contains(&fact.slot_ms) {
        tally.run(fact.success, fact.total_ms);
    }
}

/// Adds to `tally` what a missed range accounts for inside `[from, to)`
/// (see [`add_missed`] and [`add_result_in`]).
pub fn add_missed_in(
    tally: &mut Tally,
    fact: &MissedFact,
    covered: Option<&dyn Fn(i64) -> bool>,
    from: i64,
    to: i64,
) {
    missed_spans(fact, covered, &mut |start, len, category| {
        tally.durations.add(category, overlap(start, len, from, to))
    });
}

fn add_span(rollups: &mut Rollups, check_id: i64, start: i64, len: i64, category: Category) {
    for g in Granularity::ALL {
        for (bucket, ms) in split(start, len, g) {
            rollups.entry((check_id, g, bucket)).or_default().durations.add(category, ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::buckets::{DAY_MS, HOUR_MS};
    use proptest::prelude::*;

    fn result(slot_ms: i64, category: Category, success: bool) -> ResultFact {
        ResultFact { check_id: 1, slot_ms, interval_ms: 60_000, category, success, total_ms: 100.0 }
    }

    #[test]
    fn a_result_adds_its_interval_to_its_state_and_one_run() {
        let mut r = Rollups::new();
        add_result(&mut r, &result(HOUR_MS + 5_000, Category::Up, true));
        let hour = &r[&(1, Granularity::Hour, HOUR_MS)];
        assert_eq!(hour.durations.up_ms, 60_000);
        assert_eq!((hour.runs, hour.failures, hour.total_us_sum), (1, 0, 100_000));
        assert_eq!(hour.histogram.iter().sum::<i64>(), 1);
        let day = &r[&(1, Granularity::Day, 0)];
        assert_eq!(day.durations.up_ms, 60_000);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn a_failure_counts_as_failure_and_not_as_latency() {
        let mut r = Rollups::new();
        add_result(&mut r, &result(0, Category::Up, false));
        let hour = &r[&(1, Granularity::Hour, 0)];
        assert_eq!((hour.runs, hour.failures, hour.total_us_sum), (1, 1, 0));
        assert_eq!(hour.histogram.iter().sum::<i64>(), 0);
        // Up: one failure under the threshold leaves the check up.
        assert_eq!(hour.durations.up_ms, 60_000);
    }

    #[test]
    fn a_slot_across_midnight_splits_its_time_and_keeps_its_run_at_its_start() {
        let mut r = Rollups::new();
        add_result(&mut r, &result(DAY_MS - 20_000, Category::Down, false));
        assert_eq!(r[&(1, Granularity::Day, 0)].durations.down_ms, 20_000);
        assert_eq!(r[&(1, Granularity::Day, 0)].runs, 1);
        assert_eq!(r[&(1, Granularity::Day, DAY_MS)].durations.down_ms, 40_000);
        assert_eq!(r[&(1, Granularity::Day, DAY_MS)].runs, 0);
        assert_eq!(r[&(1, Granularity::Hour, DAY_MS - HOUR_MS)].durations.down_ms, 20_000);
        assert_eq!(r[&(1, Granularity::Hour, DAY_MS)].durations.down_ms, 40_000);
    }

    #[test]
    fn a_missed_range_is_no_data_for_all_its_slots() {
        let mut r = Rollups::new();
        let fact =
            MissedFact { check_id: 1, first_ms: 0, last_ms: 9 * 60_000, slots: 10, interval_ms: 60_000 };
        add_missed(&mut r, &fact, None);
        assert_eq!(r[&(1, Granularity::Hour, 0)].durations.no_data_ms, 600_000);
        assert_eq!(r[&(1, Granularity::Hour, 0)].runs, 0);
    }

    #[test]
    fn a_single_stale_slot_uses_the_recorded_interval() {
        let mut r = Rollups::new();
        let fact = MissedFact { check_id: 1, first_ms: 0, last_ms: 0, slots: 1, interval_ms: 30_000 };
        add_missed(&mut r, &fact, None);
        assert_eq!(r[&(1, Granularity::Day, 0)].durations.no_data_ms, 30_000);
    }

    #[test]
    fn missed_slots_inside_maintenance_are_maintenance() {
        let mut r = Rollups::new();
        let fact =
            MissedFact { check_id: 1, first_ms: 0, last_ms: 3 * 60_000, slots: 4, interval_ms: 60_000 };
        let covered = |slot: i64| slot >= 2 * 60_000;
        add_missed(&mut r, &fact, Some(&covered));
        let hour = &r[&(1, Granularity::Hour, 0)];
        assert_eq!((hour.durations.no_data_ms, hour.durations.maintenance_ms), (120_000, 120_000));
    }

    #[test]
    fn micros_is_exact_for_stored_reals() {
        assert_eq!(micros(12.345), 12_345);
        assert_eq!(micros(f32::NAN), 0);
        assert_eq!(micros(-1.0), 0);
    }

    #[test]
    fn minus_undoes_merge() {
        let mut a = Rollups::new();
        add_result(&mut a, &result(0, Category::Up, true));
        let one = a[&(1, Granularity::Hour, 0)].clone();
        let mut two = one.clone();
        two.merge(&one);
        assert_eq!(two.minus(&one), one);
        assert!(one.minus(&one).is_zero());
    }

    fn category(i: u8) -> Category {
        [Category::Up, Category::Down, Category::NoData, Category::Maintenance][usize::from(i % 4)]
    }

    proptest! {
        /// Hourly rows of a day add up to its daily row, and the time of
        /// every slot is counted once.
        #[test]
        fn hours_add_up_to_days_and_time_is_conserved(
            slots in proptest::collection::vec((0i64..3 * DAY_MS, 1_000i64..DAY_MS, 0u8..4, any::<bool>()), 1..40),
            missed in proptest::collection::vec((0i64..3 * DAY_MS, 1i64..50, 1_000i64..600_000), 0..5),
        ) {
            let mut r = Rollups::new();
            let mut expected = 0i64;
            for (slot, interval, c, ok) in &slots {
                add_result(&mut r, &ResultFact { check_id: 7, slot_ms: *slot, interval_ms: *interval, category: category(*c), success: *ok, total_ms: 3.5 });
                expected += interval;
            }
            for (first, n, step) in &missed {
                let fact = MissedFact { check_id: 7, first_ms: *first, last_ms: first + (n - 1) * step, slots: *n, interval_ms: *step };
                let half = |s: i64| s % 2 == 0;
                add_missed(&mut r, &fact, if n % 2 == 0 { Some(&half) } else { None });
                expected += n * step;
            }
            let mut by_day: BTreeMap<i64, Tally> = BTreeMap::new();
            let mut total = [0i64; 2];
            for ((_, g, bucket), t) in &r {
                let d = &t.durations;
                let ms = d.up_ms + d.down_ms + d.no_data_ms + d.maintenance_ms;
                match g {
                    Granularity::Hour => {
                        by_day.entry(Granularity::Day.floor(*bucket)).or_default().merge(t);
                        total[0] += ms;
                    }
                    Granularity::Day => total[1] += ms,
                }
            }
            prop_assert_eq!(total, [expected, expected]);
            for (day, t) in by_day {
                prop_assert_eq!(&r[&(7, Granularity::Day, day)], &t);
            }
        }

        /// The raw-window report counts like the rollups: over a window of
        /// whole hours, the clipped tally is the sum of those hours' rows.
        #[test]
        fn a_clipped_window_of_whole_hours_equals_the_sum_of_its_rows(
            slots in proptest::collection::vec((0i64..DAY_MS, 1_000i64..3 * HOUR_MS, 0u8..4, any::<bool>()), 1..40),
            missed in proptest::collection::vec((0i64..DAY_MS, 1i64..50, 1_000i64..600_000, any::<bool>()), 0..5),
            first_hour in 0i64..24, hours in 1i64..6,
        ) {
            let (from, to) = (first_hour * HOUR_MS, (first_hour + hours) * HOUR_MS);
            let mut r = Rollups::new();
            let mut clipped = Tally::default();
            for (slot, interval, c, ok) in &slots {
                let fact = ResultFact { check_id: 7, slot_ms: *slot, interval_ms: *interval, category: category(*c), success: *ok, total_ms: 42.0 };
                add_result(&mut r, &fact);
                add_result_in(&mut clipped, &fact, from, to);
            }
            let half = |s: i64| (s / 1000) % 2 == 0;
            for (first, n, step, windowed) in &missed {
                let fact = MissedFact { check_id: 7, first_ms: *first, last_ms: first + (n - 1) * step, slots: *n, interval_ms: *step };
                let covered = windowed.then_some(&half as &dyn Fn(i64) -> bool);
                add_missed(&mut r, &fact, covered);
                add_missed_in(&mut clipped, &fact, covered, from, to);
            }
            let mut sum = Tally::default();
            for ((_, g, bucket), t) in &r {
                if *g == Granularity::Hour && (from..to).contains(bucket) {
                    sum.merge(t);
                }
            }
            prop_assert_eq!(clipped, sum);
        }
    }
}
