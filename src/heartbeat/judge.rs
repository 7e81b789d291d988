//! Judging one slot of a heartbeat check from the pings received before
//! it. Pure: the worker loads the pings (`store.rs`) and calls [`judge`];
//! the same pings and slot always give the same verdict, so a redelivered
//! job stores what the first delivery would have.
//!
//! A slot at time `t` sees only pings received at or before `t` (and not
//! before the check was watched), and is:
//! 1. **failed** when the latest run that ended reported failure (a `fail`
//!    ping, or an exit code other than 0): the first slot after it is down
//!    at once, whatever the schedule, until a success;
//! 2. **overrun** when a `start` has had no end for longer than `max_run`
//!    (an end pairs with the start carrying the same `rid`; a start without
//!    a rid is ended by any end ping): down from `start + max_run` until it
//!    ends or a later success is received;
//! 3. **missed** when no success ping arrived since the schedule's due time
//!    ([`Schedule::due_since`]: within period + grace before the slot, or
//!    since the cron time whose grace ran out); a deadline from before the
//!    check was watched (`watched_since`) is not held against it;
//! 4. **up** otherwise, with the run's duration (from its start to the
//!    success) when the success that satisfied it has a start.

use chrono::{DateTime, Duration, Utc};

use super::schedule::{human, Schedule};
use crate::model::{CheckOutcome, ErrorClass, Timings};

/// What a ping said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingKind {
    /// `/ping/{key}`.
    Success,
    /// `/ping/{key}/start`.
    Start,
    /// `/ping/{key}/fail`.
    Fail,
    /// `/ping/{key}/{code}`: 0 is a success, anything else a failure.
    Exit(u8),
}

impl PingKind {
    /// The stored `kind` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            PingKind::Success => "success",
            PingKind::Start => "start",
            PingKind::Fail => "fail",
            PingKind::Exit(_) => "exit",
        }
    }

    /// The stored `exit_code` column.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            PingKind::Exit(code) => Some(i32::from(*code)),
            _ => None,
        }
    }

    /// From the stored columns; `None` for a row no writer makes.
    pub fn from_row(kind: &str, exit_code: Option<i32>) -> Option<PingKind> {
        match (kind, exit_code) {
            ("success", None) => Some(PingKind::Success),
            ("start", None) => Some(PingKind::Start),
            ("fail", None) => Some(PingKind::Fail),
            ("exit", Some(code)) => u8::try_from(code).ok().map(PingKind::Exit),
            _ => None,
        }
    }

    /// `Some(true)` for a successful end, `Some(false)` for a failed one,
    /// `None` for a start.
    fn ended_well(&self) -> Option<bool> {
        match self {
            PingKind::Success | PingKind::Exit(0) => Some(true),
            PingKind::Fail | PingKind::Exit(_) => Some(false),
            PingKind::Start => None,
        }
    }
}

/// One received ping, as the judgement needs it (no body, no address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub at: DateTime<Utc>,
    pub kind: PingKind,
    /// The run id (`?rid=`).
    pub rid: Option<String>,
}

/// What is expected of a heartbeat check.
#[derive(Debug, Clone)]
pub struct Rules {
    pub schedule: Schedule,
    /// How late a ping may be.
    pub grace: Duration,
    /// Longest a run may take from its start ping; `None`: not watched.
    pub max_run: Option<Duration>,
}

impl Rules {
    /// The earliest ping the judgement of `slot` needs, besides the latest
    /// end before it ([`crate::heartbeat::store::pings_before`] loads both):
    /// a start older than `due_since − max_run` either ended or was
    /// cleared by the success the slot needs (or the slot is missed anyway).
    pub fn reads_since(&self, slot: DateTime<Utc>) -> DateTime<Utc> {
        let due = self.schedule.due_since(slot, self.grace).unwrap_or(slot).min(slot);
        due - self.max_run.unwrap_or_else(Duration::zero)
    }
}

/// The judgement of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The schedule is kept; `run` is the start-to-success duration of the
    /// run that satisfied it, when it sent a start.
    Up { run: Option<Duration> },
    /// The latest run that ended reported failure.
    Failed { at: DateTime<Utc>, exit_code: Option<u8> },
    /// A run started and has not ended within `max_run`.
    Overrun { started_at: DateTime<Utc>, max_run: Duration },
    /// No success ping since `due_since`.
    Missed { due_since: DateTime<Utc>, last_success: Option<DateTime<Utc>> },
}

/// Judges the slot at `slot` from `pings` (any order, except that pings
/// received at the same instant count in their order here, as the store
/// gives them: received order; those after the slot are ignored).
/// `watched_since`: when the check became a heartbeat.
pub fn judge(rules: &Rules, watched_since: DateTime<Utc>, pings: &[Ping], slot: DateTime<Utc>) -> Verdict {
    // Pings from before the check was watched belong to an earlier life
    // of it (it stopped being a heartbeat and became one again).
    let mut seen: Vec<&Ping> = pings.iter().filter(|p| p.at <= slot && p.at >= watched_since).collect();
    seen.sort_by_key(|p| p.at);

    // 1. The latest run that ended, failed.
    let last_end = seen.iter().rev().find(|p| p.kind.ended_well().is_some());
    if let Some(end) = last_end {
        if end.kind.ended_well() == Some(false) {
            let exit_code = match end.kind {
                PingKind::Exit(code) => Some(code),
                _ => None,
            };
            return Verdict::Failed { at: end.at, exit_code };
        }
    }

    // 2. A start without an end past max_run.
    if let Some(max_run) = rules.max_run {
        for (i, start) in seen.iter().enumerate() {
            if start.kind != PingKind::Start || slot - start.at <= max_run {
                continue;
            }
            let later = &seen[i + 1..];
            let ended = later.iter().any(|p| p.kind.ended_well().is_some() && pairs(start, p));
            let cleared =
                later.iter().any(|p| p.kind.ended_well() == Some(true) && p.at >= start.at + max_run);
            if !ended && !cleared {
                return Verdict::Overrun { started_at: start.at, max_run };
            }
        }
    }

    // 3. The schedule.
    let last_success = seen.iter().rev().find(|p| p.kind.ended_well() == Some(true));
    if let Some(due_since) = rules.schedule.due_since(slot, rules.grace) {
        let kept = last_success.is_some_and(|p| p.at >= due_since);
        if !kept && due_since > watched_since {
            return Verdict::Missed { due_since, last_success: last_success.map(|p| p.at) };
        }
    }

    // 4. Up, timed by the start of the run that succeeded.
    let run = last_success.and_then(|end| run_start(&seen, end).map(|start| end.at - start));
    Verdict::Up { run }
}

/// When the run that `end` ended started: walking back from `end`, the
/// first start it pairs with, unless an earlier end of that run (same rid,
/// or any end without rids) comes first.
fn run_start(seen: &[&Ping], end: &Ping) -> Option<DateTime<Utc>> {
    let i = seen.iter().position(|p| std::ptr::eq(*p, end))?;
    for p in seen[..i].iter().rev() {
        let same_run = p.rid == end.rid;
        if p.kind == PingKind::Start && pairs(p, end) {
            return Some(p.at);
        }
        if p.kind.ended_well().is_some() && (same_run || end.rid.is_none()) {
            return None;
        }
    }
    None
}

/// Whether `end` ends the run `start` began: the same rid, or no rid on
/// the start (then any end does).
fn pairs(start: &Ping, end: &Ping) -> bool {
    match &start.rid {
        Some(rid) => end.rid.as_deref() == Some(rid.as_str()),
        None => true,
    }
}

/// The result row of a verdict. The run duration is the result's time
/// (`run_ms`, and `total_ms`, so latency charts show how long the job ran).
pub fn outcome(verdict: &Verdict, rules: &Rules, started_at: DateTime<Utc>) -> CheckOutcome {
    let ms = |d: Duration| d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
    let (success, class, message, run_ms) = match verdict {
        Verdict::Up { run } => (true, None, None, run.map(ms)),
        Verdict::Failed { at, exit_code } => {
            let what = match exit_code {
                Some(code) => format!("exit code {code}"),
                None => "a fail ping".to_string(),
            };
            let message = format!("the last run reported failure ({what} at {})", stamp(*at));
            (false, Some(ErrorClass::Failed), Some(message), None)
        }
        Verdict::Overrun { started_at, max_run } => {
            let message = format!(
                "a run started at {} and has not ended within max_run {}",
                stamp(*started_at),
                human(*max_run)
            );
            (false, Some(ErrorClass::Overrun), Some(message), None)
        }
        Verdict::Missed { due_since, last_success } => {
            let last = match last_success {
                Some(at) => format!("last success ping at {}", stamp(*at)),
                None => "no success ping yet".to_string(),
            };
            let expected = match &rules.schedule {
                Schedule::Period(p) => {
                    format!("no success ping within {} + grace {}", human(*p), human(rules.grace))
                }
                cron @ Schedule::Cron { .. } => format!(
                    "the run due at {} ({}) did not report success within grace {}",
                    stamp(*due_since),
                    cron.describe(),
                    human(rules.grace)
                ),
            };
            (false, Some(ErrorClass::Missed), Some(format!("{expected}; {last}")), None)
        }
    };
    CheckOutcome {
        started_at,
        success,
        error_class: class,
        error_message: message,
        status_code: None,
        timings: Timings { run_ms, total_ms: run_ms.unwrap_or(0.0), ..Timings::default() },
        bytes_read: 0,
        cert_expires_at: None,
        failed_assertions: Vec::new(),
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    fn min(m: i64) -> DateTime<Utc> {
        t0() + Duration::minutes(m)
    }

    fn ping(m: i64, kind: PingKind) -> Ping {
        Ping { at: min(m), kind, rid: None }
    }

    fn with_rid(m: i64, kind: PingKind, rid: &str) -> Ping {
        Ping { at: min(m), kind, rid: Some(rid.to_string()) }
    }

    /// Every hour, 10 minutes' grace, runs may take 30 minutes.
    fn hourly() -> Rules {
        Rules {
            schedule: Schedule::period(Duration::hours(1)).unwrap(),
            grace: Duration::minutes(10),
            max_run: Some(Duration::minutes(30)),
        }
    }

    fn since() -> DateTime<Utc> {
        min(-1000)
    }

    #[test]
    fn on_time_late_within_grace_and_missed() {
        let r = hourly();
        let pings = [ping(0, PingKind::Success)];
        assert_eq!(judge(&r, since(), &pings, min(30)), Verdict::Up { run: None }, "on time");
        assert_eq!(judge(&r, since(), &pings, min(65)), Verdict::Up { run: None }, "late, within grace");
        assert_eq!(
            judge(&r, since(), &pings, min(70)),
            Verdict::Up { run: None },
            "the last instant of grace"
        );
        assert_eq!(
            judge(&r, since(), &pings, min(71)),
            Verdict::Missed { due_since: min(1), last_success: Some(min(0)) },
            "missed"
        );
        // A ping late within grace keeps the next period going from itself.
        let pings = [ping(0, PingKind::Success), ping(68, PingKind::Success)];
        assert_eq!(judge(&r, since(), &pings, min(71)), Verdict::Up { run: None });
        assert_eq!(judge(&r, since(), &pings, min(138)), Verdict::Up { run: None });
        assert!(matches!(judge(&r, since(), &pings, min(139)), Verdict::Missed { .. }));
    }

    #[test]
    fn pings_after_the_slot_do_not_count() {
        let r = hourly();
        let pings = [ping(100, PingKind::Success)];
        assert!(matches!(judge(&r, since(), &pings, min(99)), Verdict::Missed { last_success: None, .. }));
        assert_eq!(judge(&r, since(), &pings, min(100)), Verdict::Up { run: None }, "at the slot it counts");
    }

    #[test]
    fn a_new_check_is_not_late_before_its_first_deadline() {
        let r = hourly();
        let watched = min(0);
        assert_eq!(judge(&r, watched, &[], min(70)), Verdict::Up { run: None });
        assert_eq!(
            judge(&r, watched, &[], min(71)),
            Verdict::Missed { due_since: min(1), last_success: None }
        );
    }

    #[test]
    fn a_fail_ping_makes_the_next_slot_down_until_a_success() {
        let r = hourly();
        let pings = [ping(0, PingKind::Success), ping(5, PingKind::Fail)];
        assert_eq!(judge(&r, since(), &pings, min(4)), Verdict::Up { run: None });
        assert_eq!(judge(&r, since(), &pings, min(5)), Verdict::Failed { at: min(5), exit_code: None });
        assert_eq!(judge(&r, since(), &pings, min(500)), Verdict::Failed { at: min(5), exit_code: None });
        let mut pings = pings.to_vec();
        pings.push(ping(20, PingKind::Success));
        assert_eq!(judge(&r, since(), &pings, min(21)), Verdict::Up { run: None });
    }

    #[test]
    fn exit_codes_zero_is_success_else_failure() {
        let r = hourly();
        let ok = [ping(0, PingKind::Exit(0))];
        assert_eq!(judge(&r, since(), &ok, min(1)), Verdict::Up { run: None });
        for code in [1u8, 2, 127, 255] {
            let bad = [ping(0, PingKind::Success), ping(1, PingKind::Exit(code))];
            assert_eq!(
                judge(&r, since(), &bad, min(2)),
                Verdict::Failed { at: min(1), exit_code: Some(code) }
            );
        }
    }

    #[test]
    fn a_start_without_an_end_past_max_run_is_down() {
        let r = hourly();
        let pings = [ping(0, PingKind::Success), ping(10, PingKind::Start)];
        assert_eq!(judge(&r, since(), &pings, min(40)), Verdict::Up { run: None }, "within max_run");
        let over = Verdict::Overrun { started_at: min(10), max_run: Duration::minutes(30) };
        assert_eq!(judge(&r, since(), &pings, min(41)), over);
        // It ends (late): up again, timed.
        let mut ended = pings.to_vec();
        ended.push(ping(50, PingKind::Success));
        assert_eq!(judge(&r, since(), &ended, min(49)), over);
        assert_eq!(judge(&r, since(), &ended, min(51)), Verdict::Up { run: Some(Duration::minutes(40)) });
        // Without max_run a start is not watched.
        let unwatched = Rules { max_run: None, ..hourly() };
        assert_eq!(judge(&unwatched, since(), &pings, min(41)), Verdict::Up { run: None });
    }

    #[test]
    fn run_ids_pair_a_start_with_its_own_end() {
        let r = hourly();
        // Run a starts and hangs; run b starts and ends well while a is open.
        let pings = [
            with_rid(0, PingKind::Start, "a"),
            with_rid(5, PingKind::Start, "b"),
            with_rid(12, PingKind::Success, "b"),
        ];
        assert_eq!(judge(&r, since(), &pings, min(13)), Verdict::Up { run: Some(Duration::minutes(7)) });
        assert_eq!(
            judge(&r, since(), &pings, min(31)),
            Verdict::Overrun { started_at: min(0), max_run: Duration::minutes(30) },
            "b's end does not end a"
        );
        // Without rids, b's end would have ended a as well.
        let plain = [ping(0, PingKind::Start), ping(5, PingKind::Start), ping(12, PingKind::Success)];
        assert_eq!(judge(&r, since(), &plain, min(31)), Verdict::Up { run: Some(Duration::minutes(7)) });
        // A later success after a's max_run clears the hung run.
        let mut later = pings.to_vec();
        later.push(with_rid(40, PingKind::Start, "c"));
        later.push(with_rid(45, PingKind::Success, "c"));
        assert_eq!(judge(&r, since(), &later, min(46)), Verdict::Up { run: Some(Duration::minutes(5)) });
    }

    #[test]
    fn failure_outranks_overrun_which_outranks_missed() {
        let r = hourly();
        let pings = [ping(0, PingKind::Start), ping(1, PingKind::Start), ping(2, PingKind::Fail)];
        assert!(matches!(judge(&r, since(), &pings, min(200)), Verdict::Failed { .. }));
        let pings = [ping(0, PingKind::Start)];
        assert!(matches!(judge(&r, since(), &pings, min(200)), Verdict::Overrun { .. }));
    }

    #[test]
    fn cron_slots_across_the_autumn_change() {
        // 03:00 Europe/Paris daily, 30 minutes' grace. On 2026-10-25 03:00
        // CET is 02:00 UTC, an hour later in UTC than the day before.
        let r = Rules {
            schedule: Schedule::cron("0 3 * * *", "Europe/Paris").unwrap(),
            grace: Duration::minutes(30),
            max_run: None,
        };
        let utc = |d, h, m| Utc.with_ymd_and_hms(2026, 10, d, h, m, 0).unwrap();
        let watched = utc(1, 0, 0);
        let yesterday = Ping { at: utc(24, 1, 0) + Duration::seconds(5), kind: PingKind::Success, rid: None };
        // At 01:40 UTC a fixed-UTC reading would call the run missed (01:00 + 30m);
        // in Paris it is not even due yet.
        assert_eq!(
            judge(&r, watched, std::slice::from_ref(&yesterday), utc(25, 1, 40)),
            Verdict::Up { run: None }
        );
        assert_eq!(
            judge(&r, watched, std::slice::from_ref(&yesterday), utc(25, 2, 31)),
            Verdict::Missed { due_since: utc(25, 2, 0), last_success: Some(yesterday.at) }
        );
        let today = Ping { at: utc(25, 2, 10), kind: PingKind::Success, rid: None };
        assert_eq!(judge(&r, watched, &[yesterday, today], utc(25, 2, 31)), Verdict::Up { run: None });
    }

    #[test]
    fn cron_slots_across_the_spring_change() {
        // 02:30 Europe/Paris daily: on 2026-03-29 02:30 does not exist; the
        // run is due at 03:00 CEST (01:00 UTC).
        let r = Rules {
            schedule: Schedule::cron("30 2 * * *", "Europe/Paris").unwrap(),
            grace: Duration::minutes(15),
            max_run: None,
        };
        let utc = |d, h, m| Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap();
        let watched = utc(1, 0, 0);
        let yesterday = Ping { at: utc(28, 1, 31), kind: PingKind::Success, rid: None };
        assert_eq!(
            judge(&r, watched, std::slice::from_ref(&yesterday), utc(29, 1, 15)),
            Verdict::Up { run: None }
        );
        assert_eq!(
            judge(&r, watched, std::slice::from_ref(&yesterday), utc(29, 1, 16)),
            Verdict::Missed { due_since: utc(29, 1, 0), last_success: Some(yesterday.at) }
        );
    }

    #[test]
    fn the_outcome_says_why_and_times_the_run() {
        let r = hourly();
        let up = outcome(&Verdict::Up { run: Some(Duration::milliseconds(1500)) }, &r, t0());
        assert!(up.success && up.error_class.is_none());
        assert_eq!((up.timings.run_ms, up.timings.total_ms), (Some(1500.0), 1500.0));
        let failed = outcome(&Verdict::Failed { at: t0(), exit_code: Some(3) }, &r, t0());
        assert_eq!(failed.error_class, Some(ErrorClass::Failed));
        assert_eq!(
            failed.error_message.as_deref(),
            Some("the last run reported failure (exit code 3 at 2026-06-01T12:00:00Z)")
        );
        let over = outcome(&Verdict::Overrun { started_at: t0(), max_run: Duration::minutes(30) }, &r, t0());
        assert_eq!(over.error_class, Some(ErrorClass::Overrun));
        assert!(over.error_message.unwrap().contains("within max_run 30m"));
        let missed = outcome(&Verdict::Missed { due_since: t0(), last_success: None }, &r, t0());
        assert_eq!(missed.error_class, Some(ErrorClass::Missed));
        assert_eq!(
            missed.error_message.as_deref(),
            Some("no success ping within 1h + grace 10m; no success ping yet")
        );
    }

    #[test]
    fn stored_rows_read_back() {
        for kind in
            [PingKind::Success, PingKind::Start, PingKind::Fail, PingKind::Exit(0), PingKind::Exit(255)]
        {
            assert_eq!(PingKind::from_row(kind.as_str(), kind.exit_code()), Some(kind));
        }
        assert_eq!(PingKind::from_row("exit", None), None);
        assert_eq!(PingKind::from_row("exit", Some(256)), None);
        assert_eq!(PingKind::from_row("success", Some(0)), None);
    }

    fn any_ping() -> impl proptest::strategy::Strategy<Value = Ping> {
        use proptest::prelude::*;
        let kind = prop_oneof![
            Just(PingKind::Success),
            Just(PingKind::Start),
            Just(PingKind::Fail),
            any::<u8>().prop_map(PingKind::Exit),
        ];
        let rid = proptest::option::of(prop_oneof![Just("a".to_string()), Just("b".to_string())]);
        (-300i64..60, kind, rid).prop_map(|(m, kind, rid)| Ping { at: min(m), kind, rid })
    }

    proptest::proptest! {
        /// The verdict depends on the pings up to the slot only, in any
        /// order; a failed last run is always down; up means the
        /// schedule was kept (or was not yet due); the pings the store
        /// reads ([`Rules::reads_since`] plus the last end before it)
        /// give the same up/down as all of them.
        #[test]
        fn verdicts_follow_the_rules(
            mut pings in proptest::collection::vec(any_ping(), 0..12),
            later in proptest::collection::vec(any_ping(), 0..4),
            slot in 0i64..60,
            watched in -400i64..0,
        ) {
            let r = hourly();
            let (slot, watched) = (min(slot), min(watched));
            // Ties keep their input order (see `judge`): distinct instants here.
            pings.sort_by_key(|p| p.at);
            pings.dedup_by_key(|p| p.at);
            let verdict = judge(&r, watched, &pings, slot);
            let mut reversed = pings.clone();
            reversed.reverse();
            proptest::prop_assert_eq!(&judge(&r, watched, &reversed, slot), &verdict);
            let mut with_later = pings.clone();
            with_later.extend(later.into_iter().map(|p| Ping { at: slot + Duration::minutes(1) + (p.at - min(-300)), ..p }));
            proptest::prop_assert_eq!(&judge(&r, watched, &with_later, slot), &verdict);

            pings.retain(|p| p.at <= slot && p.at >= watched);
            pings.sort_by_key(|p| p.at);
            let last_end = pings.iter().rev().find(|p| p.kind != PingKind::Start);
            if last_end.is_some_and(|p| matches!(p.kind, PingKind::Fail) || matches!(p.kind, PingKind::Exit(c) if c != 0)) {
                proptest::prop_assert!(matches!(verdict, Verdict::Failed { .. }), "{:?}", verdict);
            }
            if let Verdict::Up { .. } = verdict {
                let due = r.schedule.due_since(slot, r.grace).unwrap();
                let kept = pings.iter().any(|p| p.at >= due && matches!(p.kind, PingKind::Success | PingKind::Exit(0)));
                proptest::prop_assert!(kept || due <= watched);
            }

            let since = r.reads_since(slot);
            let mut read: Vec<Ping> = pings.iter().filter(|p| p.at > since).cloned().collect();
            read.extend(pings.iter().rev().find(|p| p.at <= since && p.kind != PingKind::Start).cloned());
            let up = |v: &Verdict| matches!(v, Verdict::Up { .. });
            proptest::prop_assert_eq!(up(&judge(&r, watched, &read, slot)), up(&verdict));
        }
    }

    #[test]
    fn reads_since_covers_the_due_time_and_max_run() {
        let r = hourly();
        assert_eq!(r.reads_since(min(100)), min(100 - 70 - 30));
    }
}
