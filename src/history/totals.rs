//! Cumulative daily totals ("an odometer", docs/history.md): row (c, D)
//! of `rollup_day_totals` holds the sum of every daily rollup row of check
//! c with a bucket at or before day D, plus the check's baseline (what
//! retention pruned). Rows exist for closed days only (housekeeping closes
//! each ended day, `store::close_day_totals`); a check's value before day
//! X is its latest totals row before X plus the daily rows after it and
//! before X. A window of days is then the difference of two values per
//! check (~2 totals rows and today's daily row), whatever its length,
//! instead of a sum over one row per day.
//!
//! Pure: what one batch of daily rollup increments does to the totals
//! rows ([`steps`]). The SQL that applies the steps is in
//! `store/mod.rs` (`UPSERT_ROLLUPS`), the close and the window read in
//! `store/totals.rs`.

use super::buckets::Granularity;
use super::rollup::{Rollups, Tally};

/// What one batch adds to the totals rows of one check whose bucket is in
/// `[from, until)` (`until` `None`: every later day): the sum of the
/// batch's daily increments of that check with a bucket at or before
/// `from`. The steps of one check cover disjoint ranges, so every stored
/// totals row gets exactly one of them; a check's first step starts at its
/// earliest day in the batch, and rows before it are unchanged. Steps
/// never create rows: a day not closed yet has none, and a closed day
/// the check had no daily row on is read from the rows around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub check_id: i64,
    /// Start of the first day (ms) the step applies to.
    pub from: i64,
    /// Start of the first day it no longer applies to.
    pub until: Option<i64>,
    /// The running sum of the batch's daily increments up to `from`.
    pub added: Tally,
}

/// The steps of the daily rows of `rollups` (hourly rows do not count),
/// in (check, day) order: the order the totals rows are locked and
/// written in.
pub fn steps(rollups: &Rollups) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    // `Rollups` is ordered by (check, granularity, bucket): a check's
    // daily rows come one after another, oldest first.
    for ((check_id, granularity, bucket), delta) in rollups {
        if *granularity != Granularity::Day {
            continue;
        }
        let mut added = delta.clone();
        if let Some(last) = out.last_mut().filter(|s| s.check_id == *check_id) {
            last.until = Some(*bucket);
            added.merge(&last.added);
        }
        out.push(Step { check_id: *check_id, from: *bucket, until: None, added });
    }
    out
}

/// The sums of a window of days from the totals rows at its two ends: the
/// latest row before the window's end (`hi`) minus the latest row before
/// its start (`lo`; none when the check had no row then).
pub fn window(hi: &Tally, lo: Option<&Tally>) -> Tally {
    match lo {
        Some(lo) => hi.minus(lo),
        None => hi.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::buckets::{DAY_MS, HOUR_MS};
    use crate::history::histogram::BUCKETS;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Totals rows: (check, day) → value; the anchor is day `i64::MIN`.
    type Totals = BTreeMap<(i64, i64), Tally>;

    fn tally(seed: i64) -> Tally {
        let mut t = Tally::default();
        t.durations.up_ms = seed * 1_000;
        t.durations.down_ms = seed % 7;
        t.durations.no_data_ms = seed % 5;
        t.durations.maintenance_ms = seed % 3;
        t.runs = seed % 11;
        t.failures = seed % 2;
        t.total_us_sum = seed * 17;
        t.histogram[(seed.unsigned_abs() as usize) % BUCKETS] = seed;
        t
    }

    /// The value of totals at `day`: the latest row at or before it.
    fn at(totals: &Totals, check: i64, day: i64) -> Tally {
        totals.range((check, i64::MIN)..=(check, day)).next_back().map(|(_, t)| t.clone()).unwrap_or_default()
    }

    /// The definition: every daily row's running sum per check.
    fn totals_of(days: &BTreeMap<(i64, i64), Tally>) -> Totals {
        let mut out = Totals::new();
        let mut running: BTreeMap<i64, Tally> = BTreeMap::new();
        for ((check, day), t) in days {
            let sum = running.entry(*check).or_default();
            sum.merge(t);
            out.insert((*check, *day), sum.clone());
        }
        out
    }

    /// What `UPSERT_ROLLUPS` does with the steps: add each step to the
    /// stored rows in its range; create none.
    fn apply(totals: &mut Totals, steps: &[Step]) {
        for s in steps {
            let upper = s.until.unwrap_or(i64::MAX);
            for (_, t) in totals.range_mut((s.check_id, s.from)..(s.check_id, upper)) {
                t.merge(&s.added);
            }
        }
    }

    /// What the SQL's value before day `x` reads: the latest totals row
    /// before `x` plus the daily rows after it and before `x`.
    fn value_before(totals: &Totals, days: &BTreeMap<(i64, i64), Tally>, check: i64, x: i64) -> Tally {
        let latest = totals.range((check, i64::MIN)..(check, x)).next_back();
        let (mut value, after) = match latest {
            Some(((_, day), t)) => (t.clone(), day + 1),
            None => (Tally::default(), i64::MIN),
        };
        for (_, t) in days.range((check, after)..(check, x)) {
            value.merge(t);
        }
        value
    }

    /// What the close of `day` does: a totals row for each check with a
    /// daily row that day, its value before the day plus that row.
    fn close(totals: &mut Totals, days: &BTreeMap<(i64, i64), Tally>, day: i64) {
        for ((check, d), t) in days {
            if *d == day {
                let mut value = value_before(totals, days, *check, day);
                value.merge(t);
                totals.insert((*check, day), value);
            }
        }
    }

    #[test]
    fn one_daily_row_is_one_step_to_the_end() {
        let mut rollups = Rollups::new();
        rollups.insert((7, Granularity::Hour, 3 * HOUR_MS), tally(4));
        rollups.insert((7, Granularity::Day, 0), tally(5));
        assert_eq!(steps(&rollups), vec![Step { check_id: 7, from: 0, until: None, added: tally(5) }]);
    }

    #[test]
    fn several_days_of_one_check_add_up_from_one_day_to_the_next() {
        let mut rollups = Rollups::new();
        rollups.insert((1, Granularity::Day, 0), tally(2));
        rollups.insert((1, Granularity::Day, 2 * DAY_MS), tally(3));
        rollups.insert((2, Granularity::Day, DAY_MS), tally(4));
        let mut both = tally(2);
        both.merge(&tally(3));
        assert_eq!(
            steps(&rollups),
            vec![
                Step { check_id: 1, from: 0, until: Some(2 * DAY_MS), added: tally(2) },
                Step { check_id: 1, from: 2 * DAY_MS, until: None, added: both },
                Step { check_id: 2, from: DAY_MS, until: None, added: tally(4) },
            ]
        );
    }

    #[test]
    fn hourly_rows_alone_make_no_step() {
        let mut rollups = Rollups::new();
        rollups.insert((1, Granularity::Hour, 0), tally(2));
        assert!(steps(&rollups).is_empty());
    }

    #[test]
    fn a_window_is_the_difference_of_its_two_ends() {
        let mut hi = tally(9);
        hi.merge(&tally(4));
        assert_eq!(window(&hi, Some(&tally(4))), tally(9));
        assert_eq!(window(&tally(9), None), tally(9));
    }

    proptest! {
        /// Stored daily rows with days closed up to `closed`, a batch of
        /// increments (negative ones too, as a rebuild sends; new days
        /// before, between and after stored ones, on closed days and open
        /// ones), then days closed up to `closed_after`: at every day the
        /// value read equals the running sum of the daily rows, so every
        /// window of days is the sum of its daily rows.
        #[test]
        fn steps_and_closes_keep_values_equal_to_running_sums(
            stored in proptest::collection::btree_map((0i64..3, 0i64..12), -50i64..50, 0..30),
            batch in proptest::collection::btree_map((0i64..3, 0i64..12), -50i64..50, 0..12),
            closed in 0i64..13,
            closed_more in 0i64..13,
            from in 0i64..13,
            len in 0i64..13,
        ) {
            let mut days: BTreeMap<(i64, i64), Tally> =
                stored.iter().map(|((c, d), s)| ((*c, d * DAY_MS), tally(*s))).collect();
            let mut totals = Totals::new();
            for d in 0..closed {
                close(&mut totals, &days, d * DAY_MS);
            }
            let mut rollups = Rollups::new();
            for ((c, d), s) in &batch {
                rollups.insert((*c, Granularity::Day, d * DAY_MS), tally(*s));
                rollups.insert((*c, Granularity::Hour, d * DAY_MS + HOUR_MS), tally(s + 1));
            }
            apply(&mut totals, &steps(&rollups));
            for ((c, d), s) in &batch {
                days.entry((*c, d * DAY_MS)).or_default().merge(&tally(*s));
            }
            for d in closed..closed.max(closed_more) {
                close(&mut totals, &days, d * DAY_MS);
            }

            let want = totals_of(&days);
            for c in 0..3 {
                for d in -1..13 {
                    prop_assert_eq!(
                        value_before(&totals, &days, c, (d + 1) * DAY_MS),
                        at(&want, c, d * DAY_MS),
                        "check {} day {}", c, d
                    );
                }
                // A window [from, from + len) of days.
                let (a, b) = (from * DAY_MS, (from + len) * DAY_MS);
                let mut summed = Tally::default();
                for (_, t) in days.range((c, a)..(c, b)) {
                    summed.merge(t);
                }
                let hi = value_before(&totals, &days, c, b);
                let lo = value_before(&totals, &days, c, a);
                prop_assert_eq!(window(&hi, Some(&lo)), summed);
            }
            // Rows exist for closed days only.
            let last_closed = closed.max(closed_more) * DAY_MS;
            prop_assert!(totals.keys().all(|(_, d)| *d < last_closed));
        }
    }
}
