//! When a heartbeat's pings are expected: every `period`, or at the times
//! of a cron pattern read in an IANA time zone (croner with chrono-tz), so
//! the expected times follow the zone's daylight-saving changes as the
//! job's own cron daemon does:
//! - spring forward: a fixed time inside the skipped hour (02:30 in
//!   Europe/Paris on the last Sunday of March) runs at the first instant
//!   after the gap (03:00 CEST);
//! - fall back: a fixed time inside the repeated hour runs once; a pattern
//!   that fires every few minutes fires in both halves.
//!
//! Pure: no clock is read; every answer is a function of its arguments.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// When pings are expected.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// One success ping at least every `period`.
    Period(Duration),
    /// A success ping after every time the pattern fires in `zone`.
    Cron {
        /// The pattern as written, for messages.
        pattern: String,
        cron: Box<Cron>,
        zone: Tz,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("period must be at least one second")]
    Period,
    #[error("set `period` or `cron`")]
    Missing,
    #[error("invalid cron pattern \"{pattern}\": {reason} (five fields: minute hour day-of-month month day-of-week)")]
    Pattern { pattern: String, reason: String },
    #[error("the cron pattern \"{0}\" never fires")]
    Never(String),
    #[error("unknown time zone \"{0}\": use an IANA name such as Europe/Paris or UTC")]
    Zone(String),
}

impl Schedule {
    /// A success ping at least every `period`.
    pub fn period(period: Duration) -> Result<Schedule, ScheduleError> {
        if period < Duration::seconds(1) {
            return Err(ScheduleError::Period);
        }
        Ok(Schedule::Period(period))
    }

    /// A five-field cron `pattern` (minute granularity, as crontab) read in
    /// the IANA time zone `zone` (`UTC` when none is given).
    pub fn cron(pattern: &str, zone: &str) -> Result<Schedule, ScheduleError> {
        let zone = Tz::from_str(zone.trim()).map_err(|_| ScheduleError::Zone(zone.to_string()))?;
        let cron =
            CronParser::builder().seconds(Seconds::Disallowed).build().parse(pattern).map_err(|e| {
                ScheduleError::Pattern { pattern: pattern.to_string(), reason: e.to_string() }
            })?;
        let schedule = Schedule::Cron { pattern: pattern.to_string(), cron: Box::new(cron), zone };
        // A valid pattern may still never fire (30 February): refuse it
        // here, or every slot would be judged against nothing.
        let from = DateTime::<Utc>::UNIX_EPOCH + Duration::days(365 * 56);
        if schedule.next_after(from).is_none() {
            return Err(ScheduleError::Never(pattern.to_string()));
        }
        Ok(schedule)
    }

    /// The latest expected ping time at or before `at` (cron only: a period
    /// has no fixed times).
    pub fn previous(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Period(_) => None,
            Schedule::Cron { cron, zone, .. } => cron
                .find_previous_occurrence(&at.with_timezone(zone), true)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// The first expected ping time after `at` (cron only).
    pub fn next_after(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Period(_) => None,
            Schedule::Cron { cron, zone, .. } => {
                cron.find_next_occurrence(&at.with_timezone(zone), false).ok().map(|t| t.with_timezone(&Utc))
            }
        }
    }

    /// The earliest time a success ping must have arrived at for a slot at
    /// `slot` to be up, given `grace`:
    /// - a period: `slot − period − grace` ("a success ping within period
    ///   + grace before it");
    /// - cron: the latest expected time whose grace has run out by `slot`
    ///   (the run due then must have reported).
    ///
    /// `None` when nothing is due yet (a cron pattern that has not fired).
    pub fn due_since(&self, slot: DateTime<Utc>, grace: Duration) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Period(period) => Some(slot - *period - grace),
            // Strictly before: at `time + grace` exactly the run is late
            // by nothing yet, as with a period.
            Schedule::Cron { .. } => self.previous(slot - grace - Duration::milliseconds(1)),
        }
    }

    /// What the schedule says, for messages: "every 1h", or
    /// "\"0 3 * * *\" in Europe/Paris".
    pub fn describe(&self) -> String {
        match self {
            Schedule::Period(p) => format!("every {}", human(*p)),
            Schedule::Cron { pattern, zone, .. } => format!("\"{pattern}\" in {zone}"),
        }
    }
}

/// A duration for messages: `1h`, `90s`, `2h 30m`.
pub fn human(d: Duration) -> String {
    humantime::format_duration(d.to_std().unwrap_or_default()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn fires(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = from;
        while let Some(next) = s.next_after(t) {
            if next > to {
                break;
            }
            out.push(next);
            t = next;
        }
        out
    }

    #[test]
    fn spring_forward_a_time_in_the_skipped_hour_runs_after_the_gap() {
        // Europe/Paris, Sunday 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
        let s = Schedule::cron("30 2 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            fires(&s, utc(2026, 3, 27, 12, 0), utc(2026, 3, 30, 12, 0)),
            vec![
                utc(2026, 3, 28, 1, 30), // 02:30 CET
                utc(2026, 3, 29, 1, 0),  // 02:30 does not exist: 03:00 CEST
                utc(2026, 3, 30, 0, 30), // 02:30 CEST
            ]
        );
        let s = Schedule::cron("0 3 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            fires(&s, utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 12, 0)),
            vec![utc(2026, 3, 28, 2, 0), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 1, 0)],
            "a 23-hour day: 03:00 CET, then 03:00 CEST"
        );
    }

    #[test]
    fn fall_back_a_time_in_the_repeated_hour_runs_once() {
        // Europe/Paris, Sunday 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC).
        let s = Schedule::cron("30 2 * * *", "Europe/Paris").unwrap();
        let got = fires(&s, utc(2026, 10, 24, 12, 0), utc(2026, 10, 26, 12, 0));
        assert_eq!(got.len(), 2, "once on the day the hour repeats: {got:?}");
        assert_eq!(got[0], utc(2026, 10, 25, 0, 30), "the first 02:30 (CEST)");
        assert_eq!(got[1], utc(2026, 10, 26, 1, 30), "02:30 CET");
        let s = Schedule::cron("0 3 * * *", "Europe/Paris").unwrap();
        assert_eq!(
            fires(&s, utc(2026, 10, 24, 0, 0), utc(2026, 10, 26, 12, 0)),
            vec![utc(2026, 10, 24, 1, 0), utc(2026, 10, 25, 2, 0), utc(2026, 10, 26, 2, 0)],
            "a 25-hour day: 03:00 CEST, then 03:00 CET"
        );
    }

    #[test]
    fn a_frequent_pattern_fires_in_both_halves_of_the_repeated_hour() {
        let s = Schedule::cron("*/30 * * * *", "Europe/Paris").unwrap();
        let got = fires(&s, utc(2026, 10, 24, 23, 50), utc(2026, 10, 25, 2, 10));
        // 01:00 CEST .. 03:00 CET, every 30 minutes of real time.
        let expected: Vec<_> = (0..5).map(|k| utc(2026, 10, 25, 0, 0) + Duration::minutes(30 * k)).collect();
        assert_eq!(got, expected);
        // And none is lost when the clock jumps forward.
        let got = fires(&s, utc(2026, 3, 28, 23, 50), utc(2026, 3, 29, 2, 10));
        let expected: Vec<_> = (0..5).map(|k| utc(2026, 3, 29, 0, 0) + Duration::minutes(30 * k)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn previous_is_inclusive_and_follows_the_zone() {
        let s = Schedule::cron("0 3 * * *", "Europe/Paris").unwrap();
        assert_eq!(s.previous(utc(2026, 10, 25, 2, 0)), Some(utc(2026, 10, 25, 2, 0)));
        assert_eq!(s.previous(utc(2026, 10, 25, 1, 59)), Some(utc(2026, 10, 24, 1, 0)));
        assert_eq!(s.previous(utc(2026, 3, 29, 1, 0)), Some(utc(2026, 3, 29, 1, 0)));
        assert_eq!(s.previous(utc(2026, 3, 29, 0, 59)), Some(utc(2026, 3, 28, 2, 0)));
        // The same pattern in UTC does not move.
        let u = Schedule::cron("0 3 * * *", "UTC").unwrap();
        assert_eq!(u.previous(utc(2026, 3, 29, 12, 0)), Some(utc(2026, 3, 29, 3, 0)));
        assert_eq!(u.previous(utc(2026, 10, 25, 12, 0)), Some(utc(2026, 10, 25, 3, 0)));
    }

    #[test]
    fn due_since_is_the_last_deadline_that_ran_out() {
        let grace = Duration::minutes(30);
        let s = Schedule::cron("0 3 * * *", "Europe/Paris").unwrap();
        // 25 October: the run is due at 02:00 UTC (03:00 CET), by 02:30 UTC.
        assert_eq!(s.due_since(utc(2026, 10, 25, 2, 30), grace), Some(utc(2026, 10, 24, 1, 0)));
        assert_eq!(s.due_since(utc(2026, 10, 25, 2, 31), grace), Some(utc(2026, 10, 25, 2, 0)));
        // 29 March: due at 01:00 UTC (03:00 CEST), by 01:30 UTC.
        assert_eq!(s.due_since(utc(2026, 3, 29, 1, 30), grace), Some(utc(2026, 3, 28, 2, 0)));
        assert_eq!(s.due_since(utc(2026, 3, 29, 1, 31), grace), Some(utc(2026, 3, 29, 1, 0)));
        let p = Schedule::period(Duration::hours(1)).unwrap();
        assert_eq!(p.due_since(utc(2026, 1, 1, 12, 0), grace), Some(utc(2026, 1, 1, 10, 30)));
        assert_eq!(p.previous(utc(2026, 1, 1, 12, 0)), None);
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let e = Schedule::cron("0 3 * *", "UTC").unwrap_err().to_string();
        assert!(e.contains("invalid cron pattern \"0 3 * *\""), "{e}");
        let e = Schedule::cron("0 0 3 * * *", "UTC").unwrap_err().to_string();
        assert!(e.contains("invalid cron pattern"), "seconds are not crontab: {e}");
        let e = Schedule::cron("61 * * * *", "UTC").unwrap_err().to_string();
        assert!(e.contains("invalid cron pattern"), "{e}");
        let e = Schedule::cron("0 3 * * *", "Europe/Pariss").unwrap_err();
        assert_eq!(e, ScheduleError::Zone("Europe/Pariss".into()));
        let e = Schedule::cron("0 0 30 2 *", "UTC").unwrap_err();
        assert_eq!(e, ScheduleError::Never("0 0 30 2 *".into()));
        assert_eq!(Schedule::period(Duration::milliseconds(999)).unwrap_err(), ScheduleError::Period);
        assert_eq!(
            Schedule::cron("0 3 * * *", "Europe/Paris").unwrap().describe(),
            "\"0 3 * * *\" in Europe/Paris"
        );
        assert_eq!(Schedule::period(Duration::minutes(90)).unwrap().describe(), "every 1h 30m");
    }
}
