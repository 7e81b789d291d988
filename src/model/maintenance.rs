//! Maintenance windows: when alerts are suppressed (and history counts
//! maintenance time), and for which checks.
//! Pure, so windows are unit-tested across daylight-saving changes.
//!
//! A window is either one-off (a start and an end, resolved to UTC instants
//! when the checks file is validated) or recurring (a local start time on
//! some weekdays, or every day, lasting a fixed duration), in an IANA time
//! zone. A recurring start is local wall-clock time, so "02:00 Europe/Paris"
//! is 02:00 in summer and in winter. Around the changes:
//!
//! - a start that falls in the spring-forward gap (02:30 when clocks jump
//!   from 02:00 to 03:00) is read with the offset in force before the gap,
//!   so it starts the same elapsed time after the gap began (03:30), as
//!   POSIX `mktime` does;
//! - a start that occurs twice (the autumn repeat) is the first occurrence;
//! - the duration is elapsed time: a two-hour window across a change lasts
//!   two real hours.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A window as stored in `maintenance_windows.spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// IANA name ("Europe/Paris"); "UTC" when the file sets none.
    pub time_zone: String,
    #[serde(flatten)]
    pub schedule: Schedule,
    /// Checks by name; with `labels` empty too, the window covers every check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    /// Checks whose labels include all of these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "schedule", rename_all = "lowercase")]
pub enum Schedule {
    /// From `start` (inclusive) to `end` (exclusive).
    Once { start: DateTime<Utc>, end: DateTime<Utc> },
    /// Starts at local time `at` on `days` (lower-case three-letter names;
    /// empty = every day) and lasts `duration_ms`.
    Recurring { days: Vec<String>, at: NaiveTime, duration_ms: u64 },
}

/// Weekday names as written in checks files, Monday first.
pub const DAYS: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Parses an IANA time zone name.
pub fn parse_tz(name: &str) -> Option<Tz> {
    Tz::from_str(name).ok()
}

/// The UTC instant of local wall-clock time `naive` in `tz`, with the
/// gap and repeat rules of the module documentation.
pub fn resolve_local(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // In a gap: use the offset in force a day before (before the jump).
            let before = naive.and_utc() - Duration::days(1);
            let offset = tz.offset_from_utc_datetime(&before.naive_utc());
            let seconds = chrono::Offset::fix(&offset).local_minus_utc();
            (naive - Duration::seconds(i64::from(seconds))).and_utc()
        }
    }
}

impl WindowSpec {
    fn tz(&self) -> Tz {
        parse_tz(&self.time_zone).unwrap_or(Tz::UTC)
    }

    /// Whether instant `t` falls inside the window.
    pub fn active_at(&self, t: DateTime<Utc>) -> bool {
        self.occurrence_at(t).is_some()
    }

    /// The occurrence (start, end) that contains `t`, if any.
    pub fn occurrence_at(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match &self.schedule {
            Schedule::Once { start, end } => (*start <= t && t < *end).then_some((*start, *end)),
            Schedule::Recurring { days, at, duration_ms } => {
                let tz = self.tz();
                let duration = Duration::milliseconds(i64::try_from(*duration_ms).unwrap_or(i64::MAX / 2));
                let local_date = t.with_timezone(&tz).date_naive();
                // An occurrence that started up to `duration` (+ a day of
                // slack for offsets) before `t` may still cover it.
                let back = duration.num_days() + 2;
                for days_back in 0..=back {
                    let Some(date) = local_date.checked_sub_signed(Duration::days(days_back)) else { break };
                    if !runs_on(days, date) {
                        continue;
                    }
                    let start = resolve_local(tz, date.and_time(*at));
                    let end = start + duration;
                    if start <= t && t < end {
                        return Some((start, end));
                    }
                }
                None
            }
        }
    }

    /// Whether the window covers the check `name` with `labels`: listed by
    /// name, or carrying every label of the selector; a window that selects
    /// nothing covers every check.
    pub fn applies_to(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.checks.is_empty() && self.labels.is_empty() {
            return true;
        }
        self.checks.iter().any(|c| c == name)
            || (!self.labels.is_empty() && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

fn runs_on(days: &[String], date: NaiveDate) -> bool {
    days.is_empty() || days.iter().any(|d| *d == DAYS[date.weekday().num_days_from_monday() as usize])
}

/// The first window (by name) that suppresses alerts of check `name` at `t`.
pub fn suppressing<'a>(
    windows: &'a [(String, WindowSpec)],
    name: &str,
    labels: &BTreeMap<String, String>,
    t: DateTime<Utc>,
) -> Option<&'a str> {
    windows.iter().find(|(_, w)| w.applies_to(name, labels) && w.active_at(t)).map(|(n, _)| n.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn recurring(tz: &str, days: &[&str], at: &str, minutes: u64) -> WindowSpec {
        WindowSpec {
            time_zone: tz.into(),
            schedule: Schedule::Recurring {
                days: days.iter().map(|d| d.to_string()).collect(),
                at: NaiveTime::parse_from_str(at, "%H:%M").unwrap(),
                duration_ms: minutes * 60_000,
            },
            checks: Vec::new(),
            labels: BTreeMap::new(),
            description: None,
        }
    }

    #[test]
    fn daily_window_follows_local_time_across_dst() {
        // 02:00–04:00 Paris every day: 00:00Z in summer (UTC+2), 01:00Z in winter (UTC+1).
        let w = recurring("Europe/Paris", &[], "02:00", 120);
        assert!(w.active_at(utc("2024-07-10T00:00:00Z")));
        assert!(w.active_at(utc("2024-07-10T01:59:59Z")));
        assert!(!w.active_at(utc("2024-07-10T02:00:00Z")));
        assert!(!w.active_at(utc("2024-01-10T00:30:00Z")));
        assert!(w.active_at(utc("2024-01-10T01:00:00Z")));
        assert!(w.active_at(utc("2024-01-10T02:59:59Z")));
        assert!(!w.active_at(utc("2024-01-10T03:00:00Z")));
    }

    #[test]
    fn start_in_the_spring_gap_and_the_autumn_repeat() {
        // 2024-03-31: Paris jumps from 02:00 to 03:00 (01:00Z). 02:30 does not exist:
        // the window starts at 03:30 local = 01:30Z and lasts one real hour.
        let w = recurring("Europe/Paris", &[], "02:30", 60);
        assert_eq!(
            w.occurrence_at(utc("2024-03-31T02:00:00Z")),
            Some((utc("2024-03-31T01:30:00Z"), utc("2024-03-31T02:30:00Z")))
        );
        assert!(!w.active_at(utc("2024-03-31T01:29:59Z")));
        // 2024-10-27: 02:30 happens twice (00:30Z and 01:30Z): the first one counts.
        assert_eq!(
            w.occurrence_at(utc("2024-10-27T01:00:00Z")),
            Some((utc("2024-10-27T00:30:00Z"), utc("2024-10-27T01:30:00Z")))
        );
        assert!(!w.active_at(utc("2024-10-27T01:30:00Z")));
    }

    #[test]
    fn duration_is_elapsed_time_across_a_change() {
        // 01:00 Paris for 3 h on the spring-forward night: 00:00Z → 03:00Z (05:00 local).
        let w = recurring("Europe/Paris", &[], "01:00", 180);
        assert_eq!(
            w.occurrence_at(utc("2024-03-31T02:59:00Z")),
            Some((utc("2024-03-31T00:00:00Z"), utc("2024-03-31T03:00:00Z")))
        );
    }

    #[test]
    fn weekdays_and_windows_past_midnight() {
        // Saturdays 23:00–01:00 New York: covers early Sunday, not early Saturday.
        let w = recurring("America/New_York", &["sat"], "23:00", 120);
        // Saturday 2024-06-08 23:30 EDT = Sunday 03:30Z.
        assert!(w.active_at(utc("2024-06-09T03:30:00Z")));
        // Sunday 23:30 EDT: not a Saturday start.
        assert!(!w.active_at(utc("2024-06-10T03:30:00Z")));
        // Sunday 00:30 EDT (04:30Z): still inside Saturday's occurrence.
        assert!(w.active_at(utc("2024-06-09T04:30:00Z")));
        assert!(!w.active_at(utc("2024-06-09T05:00:00Z")));
    }

    #[test]
    fn long_recurring_windows_look_back_far_enough() {
        // Fridays 18:00 for 63 hours (weekend freeze), UTC.
        let w = recurring("UTC", &["fri"], "18:00", 63 * 60);
        assert!(w.active_at(utc("2024-06-09T12:00:00Z")), "Sunday noon");
        assert!(w.active_at(utc("2024-06-10T08:59:00Z")), "Monday 08:59");
        assert!(!w.active_at(utc("2024-06-10T09:00:00Z")), "Monday 09:00");
    }

    #[test]
    fn one_off_and_selection() {
        let mut w = WindowSpec {
            time_zone: "UTC".into(),
            schedule: Schedule::Once { start: utc("2024-06-01T22:00:00Z"), end: utc("2024-06-02T02:00:00Z") },
            checks: vec!["api".into()],
            labels: BTreeMap::from([("team".to_string(), "web".to_string())]),
            description: None,
        };
        assert!(w.active_at(utc("2024-06-01T22:00:00Z")));
        assert!(!w.active_at(utc("2024-06-02T02:00:00Z")));
        let none = BTreeMap::new();
        let web = BTreeMap::from([("team".to_string(), "web".to_string()), ("x".into(), "y".into())]);
        assert!(w.applies_to("api", &none));
        assert!(w.applies_to("shop", &web));
        assert!(!w.applies_to("shop", &none));
        w.checks.clear();
        w.labels.clear();
        assert!(w.applies_to("anything", &none));
        let windows = vec![("m".to_string(), w)];
        assert_eq!(suppressing(&windows, "x", &none, utc("2024-06-01T23:00:00Z")), Some("m"));
        assert_eq!(suppressing(&windows, "x", &none, utc("2024-06-03T23:00:00Z")), None);
    }

    #[test]
    fn round_trips_through_json() {
        let w = recurring("Europe/Paris", &["sat", "sun"], "02:00", 90);
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v["schedule"], "recurring");
        assert_eq!(serde_json::from_value::<WindowSpec>(v).unwrap(), w);
    }
}
