//! Rollup buckets: UTC hours and UTC days, and a slot's time split exactly
//! at their boundaries. Times are Unix milliseconds.

use chrono::{DateTime, Utc};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// The two rollup granularities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub const ALL: [Granularity; 2] = [Granularity::Hour, Granularity::Day];

    pub fn width_ms(self) -> i64 {
        match self {
            Granularity::Hour => HOUR_MS,
            Granularity::Day => DAY_MS,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    /// The table holding this granularity's rows.
    pub fn table(self) -> &'static str {
        match self {
            Granularity::Hour => "rollup_hours",
            Granularity::Day => "rollup_days",
        }
    }

    /// Start of the bucket holding `t_ms` (floor, also before 1970).
    pub fn floor(self, t_ms: i64) -> i64 {
        t_ms.div_euclid(self.width_ms()) * self.width_ms()
    }

    /// Start of the first bucket at or after `t_ms`.
    pub fn ceil(self, t_ms: i64) -> i64 {
        let f = self.floor(t_ms);
        if f == t_ms {
            f
        } else {
            f.saturating_add(self.width_ms())
        }
    }
}

/// Splits `[start, start + len)` at the boundaries of `granularity`:
/// `(bucket start, milliseconds inside it)` in time order. Empty for
/// `len <= 0`.
pub fn split(start: i64, len: i64, granularity: Granularity) -> impl Iterator<Item = (i64, i64)> {
    let end = start.saturating_add(len.max(0));
    let mut at = start;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let bucket = granularity.floor(at);
        let next = bucket.saturating_add(granularity.width_ms()).min(end);
        let piece = (bucket, next - at);
        at = next;
        Some(piece)
    })
}

/// Milliseconds of `[start, start + len)` inside `[from, to)`.
pub fn overlap(start: i64, len: i64, from: i64, to: i64) -> i64 {
    let end = start.saturating_add(len.max(0));
    (end.min(to) - start.max(from)).max(0)
}

pub fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_slot_inside_one_hour_stays_whole() {
        let pieces: Vec<_> = split(HOUR_MS + 10_000, 60_000, Granularity::Hour).collect();
        assert_eq!(pieces, vec![(HOUR_MS, 60_000)]);
    }

    #[test]
    fn a_slot_across_an_hour_boundary_is_split_exactly() {
        let pieces: Vec<_> = split(HOUR_MS - 15_000, 60_000, Granularity::Hour).collect();
        assert_eq!(pieces, vec![(0, 15_000), (HOUR_MS, 45_000)]);
        let days: Vec<_> = split(HOUR_MS - 15_000, 60_000, Granularity::Day).collect();
        assert_eq!(days, vec![(0, 60_000)]);
    }

    #[test]
    fn a_daily_slot_spans_twenty_five_hours_when_it_starts_mid_hour() {
        let pieces: Vec<_> = split(30 * 60_000, DAY_MS, Granularity::Hour).collect();
        assert_eq!(pieces.len(), 25);
        assert_eq!(pieces[0], (0, 30 * 60_000));
        assert_eq!(pieces[24], (DAY_MS, 30 * 60_000));
        assert_eq!(pieces.iter().map(|p| p.1).sum::<i64>(), DAY_MS);
    }

    #[test]
    fn an_empty_or_negative_span_adds_nothing() {
        assert_eq!(split(5, 0, Granularity::Hour).count(), 0);
        assert_eq!(split(5, -3, Granularity::Day).count(), 0);
    }

    #[test]
    fn floor_and_ceil_before_the_epoch() {
        assert_eq!(Granularity::Hour.floor(-1), -HOUR_MS);
        assert_eq!(Granularity::Hour.ceil(-1), 0);
        assert_eq!(Granularity::Day.ceil(DAY_MS), DAY_MS);
        assert_eq!(Granularity::Day.ceil(DAY_MS + 1), 2 * DAY_MS);
    }

    #[test]
    fn overlap_clips_to_the_window() {
        assert_eq!(overlap(0, 100, 50, 200), 50);
        assert_eq!(overlap(0, 100, 100, 200), 0);
        assert_eq!(overlap(0, 100, -50, 20), 20);
        assert_eq!(overlap(10, 10, 0, 100), 10);
    }

    proptest! {
        #[test]
        fn pieces_add_up_lie_in_their_bucket_and_are_contiguous(
            start in -10 * DAY_MS..10 * DAY_MS, len in 0i64..3 * DAY_MS, day in any::<bool>()
        ) {
            let g = if day { Granularity::Day } else { Granularity::Hour };
            let pieces: Vec<_> = split(start, len, g).collect();
            prop_assert_eq!(pieces.iter().map(|p| p.1).sum::<i64>(), len);
            let mut at = start;
            for (bucket, ms) in pieces {
                prop_assert_eq!(g.floor(at), bucket);
                prop_assert!(ms > 0 && at + ms <= bucket + g.width_ms());
                at += ms;
            }
        }

        #[test]
        fn overlaps_of_adjacent_windows_add_up(start in -DAY_MS..DAY_MS, len in 0i64..DAY_MS, cut in -DAY_MS..DAY_MS) {
            let lo = -2 * DAY_MS;
            let hi = 3 * DAY_MS;
            prop_assert_eq!(overlap(start, len, lo, cut) + overlap(start, len, cut, hi), len);
        }
    }
}
