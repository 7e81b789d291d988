//! Unit tests of `rebuild.rs`: the range rules and the corrections.

use super::*;
use crate::history::buckets::HOUR_MS;
use crate::history::uptime::Category;
use crate::model::maintenance::{Schedule, WindowSpec};
use std::collections::BTreeMap;

fn utc(text: &str) -> DateTime<Utc> {
    parse_time(text).unwrap()
}

fn info(id: i64, name: &str, interval_ms: i64) -> CheckInfo {
    CheckInfo { id, name: name.into(), labels: BTreeMap::new(), interval_ms }
}

fn result(check_id: i64, slot_ms: i64, state: Option<&str>, interval_ms: Option<i64>) -> StoredResult {
    StoredResult {
        check_id,
        slot_ms,
        state: state.map(str::to_string),
        interval_ms,
        success: state != Some("down"),
        total_ms: 12.5,
    }
}

fn whole_days(days: i64) -> Range {
    Range { from: from_ms(0), to: from_ms(days * DAY_MS) }
}

#[test]
fn times_parse_as_rfc3339_or_utc_dates() {
    assert_eq!(utc("2026-01-31"), utc("2026-01-31T00:00:00Z"));
    assert_eq!(utc("2026-01-31T02:00:00+02:00"), utc("2026-01-31T00:00:00Z"));
    assert!(matches!(parse_time("yesterday"), Err(RebuildError::BadTime(_))));
    assert!(matches!(parse_time("2026-02-30"), Err(RebuildError::BadTime(_))));
}

#[test]
fn the_default_range_starts_at_the_first_complete_day_and_ends_now() {
    let now = utc("2026-03-31T10:30:00Z");
    let r = range(None, None, now, 30).unwrap();
    assert_eq!(r, Range { from: utc("2026-03-02"), to: now });
    // Exactly at midnight, that midnight's day is complete.
    assert_eq!(oldest_complete_day(utc("2026-03-31T00:00:00Z"), 30), utc("2026-03-01"));
}

#[test]
fn a_from_before_the_raw_data_is_refused_as_bad_input() {
    let now = utc("2026-03-31T10:30:00Z");
    let e = range(Some(utc("2026-03-01")), None, now, 30).unwrap_err();
    assert!(matches!(e, RebuildError::BeforeRawData { .. }), "{e}");
    assert!(e.is_bad_input());
    assert!(e.to_string().contains("2026-03-02"), "{e}");
    assert!(range(Some(utc("2026-03-02")), None, now, 30).is_ok());
    let e = range(Some(utc("2026-03-20")), Some(utc("2026-03-20")), now, 30).unwrap_err();
    assert!(matches!(e, RebuildError::EmptyRange { .. }));
    assert!(!RebuildError::Db("x".into()).is_bad_input());
}

#[test]
fn the_raw_window_reaches_one_interval_back_and_to_the_end_of_the_last_day() {
    let r = Range { from: from_ms(10 * DAY_MS), to: from_ms(12 * DAY_MS + 5) };
    assert_eq!(r.raw_window(), (9 * DAY_MS, 13 * DAY_MS));
}

#[test]
fn right_rows_need_no_correction() {
    let mut expected = Rollups::new();
    let windows = Windows::default();
    let mut c = Counter::new(vec![info(1, "a", 60_000)], &windows);
    c.result(&result(1, HOUR_MS, Some("up"), Some(60_000)));
    expected.extend(c.finish(whole_days(1)));
    let fix = corrections(&expected, &expected.clone());
    assert!(fix.is_empty());
    assert_eq!((fix.compared, fix.created, fix.updated, fix.deleted), (2, 0, 0, 0));
}

#[test]
fn corrections_create_correct_and_empty_rows() {
    let key = |b: i64| (1, Granularity::Hour, b);
    let mut one = Tally::default();
    one.durations.add(Category::Up, 1_000);
    one.runs = 1;
    let mut two = one.clone();
    two.merge(&one);
    let expected: Rollups = [(key(0), two.clone()), (key(HOUR_MS), one.clone())].into_iter().collect();
    let stored: Rollups =
        [(key(0), one.clone()), (key(2 * HOUR_MS), one.clone()), (key(3 * HOUR_MS), Tally::default())]
            .into_iter()
            .collect();
    let fix = corrections(&expected, &stored);
    assert_eq!((fix.compared, fix.created, fix.updated, fix.deleted), (4, 1, 1, 2));
    assert_eq!(fix.deltas[&key(0)], one, "the difference is added");
    assert_eq!(fix.deltas[&key(HOUR_MS)], one, "a missing row is created whole");
    assert_eq!(fix.deltas[&key(2 * HOUR_MS)], Tally::default().minus(&one), "a spurious row is zeroed");
    assert!(!fix.deltas.contains_key(&key(3 * HOUR_MS)), "an all-zero row needs no increment");
    assert_eq!(fix.emptied, vec![key(2 * HOUR_MS), key(3 * HOUR_MS)]);
    // Applying the deltas gives the expected rows, and the emptied are zero.
    let mut applied = stored.clone();
    for (k, d) in &fix.deltas {
        applied.entry(*k).or_default().merge(d);
    }
    for k in &fix.emptied {
        assert!(applied.remove(k).unwrap().is_zero());
    }
    assert_eq!(applied, expected);
}

#[test]
fn old_rows_use_the_checks_interval_and_are_skipped_when_it_is_gone() {
    let windows = Windows::default();
    let mut c = Counter::new(vec![info(1, "a", 30_000)], &windows);
    c.result(&result(1, 0, None, None));
    c.result(&result(2, 0, None, None));
    c.result(&result(3, 0, Some("down"), Some(10_000)));
    c.missed(&StoredMissed { check_id: 1, first_ms: 60_000, last_ms: 60_000, slots: 1, interval_ms: None });
    c.missed(&StoredMissed { check_id: 9, first_ms: 0, last_ms: 0, slots: 1, interval_ms: None });
    let rows = c.finish(whole_days(1));
    let day = |id| &rows[&(id, Granularity::Day, 0)];
    assert_eq!((day(1).durations.up_ms, day(1).durations.no_data_ms), (30_000, 30_000));
    assert!(!rows.contains_key(&(2, Granularity::Day, 0)), "no interval anywhere: skipped");
    assert!(!rows.contains_key(&(9, Granularity::Day, 0)));
    // A deleted check's result with its interval counts, as live upkeep counted it.
    assert_eq!(day(3).durations.down_ms, 10_000);
}

#[test]
fn only_buckets_in_range_are_kept_with_the_overlap_of_an_earlier_slot() {
    let windows = Windows::default();
    let mut c = Counter::new(vec![info(1, "a", 3_600_000)], &windows);
    // Starts 15 minutes before the range: 45 minutes fall inside.
    c.result(&result(1, DAY_MS - 15 * 60_000, Some("up"), Some(HOUR_MS)));
    let rows = c.finish(Range { from: from_ms(DAY_MS), to: from_ms(2 * DAY_MS) });
    assert_eq!(rows.len(), 2);
    let hour = &rows[&(1, Granularity::Hour, DAY_MS)];
    assert_eq!((hour.durations.up_ms, hour.runs), (45 * 60_000, 0), "the run stays with its slot");
    assert_eq!(rows[&(1, Granularity::Day, DAY_MS)].durations.up_ms, 45 * 60_000);
}

#[test]
fn maintenance_follows_the_windows_covering_the_check() {
    let spec = WindowSpec {
        time_zone: "UTC".into(),
        schedule: Schedule::Once { start: from_ms(0), end: from_ms(120_000) },
        checks: vec!["a".into()],
        labels: BTreeMap::new(),
        description: None,
    };
    let windows = Windows::new(vec![("w".into(), spec)]);
    let mut c = Counter::new(vec![info(1, "a", 60_000), info(2, "b", 60_000)], &windows);
    c.result(&result(1, 0, Some("down"), Some(60_000)));
    c.result(&result(1, 120_000, Some("down"), Some(60_000)));
    c.result(&result(2, 0, Some("down"), Some(60_000)));
    c.missed(&StoredMissed {
        check_id: 1,
        first_ms: 60_000,
        last_ms: 180_000,
        slots: 3,
        interval_ms: Some(60_000),
    });
    let rows = c.finish(whole_days(1));
    let a = &rows[&(1, Granularity::Hour, 0)].durations;
    // Result at 0 and missed slot at 60 s inside; 120 s and 180 s outside.
    assert_eq!((a.maintenance_ms, a.down_ms, a.no_data_ms), (120_000, 60_000, 120_000));
    assert_eq!(rows[&(2, Granularity::Hour, 0)].durations.down_ms, 60_000, "b is not covered");
}
