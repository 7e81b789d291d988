//! The up/down state machine of one check: pure, so every transition is
//! unit-tested without a database.
//!
//! Rules (thresholds below 1 count as 1):
//! - `unknown` (a check never seen, or just created) becomes `up` on its
//!   first success, silently: there is no incident to resolve and a fresh
//!   check should not page anyone for coming up. It becomes `down` after
//!   `failure_threshold` consecutive failures, like an `up` check would, so a
//!   single blip right after deploy does not raise an alert either.
//! - `up` becomes `down` after `failure_threshold` consecutive failures; the
//!   flip opens an incident and is notified.
//! - `down` becomes `up` after `success_threshold` consecutive successes; the
//!   flip resolves the incident (same id) and is notified.
//! - Streaks follow slot order, not the order results are committed in.
//!   Results arrive out of order (redeliveries, a slow job, several
//!   workers), so a result whose slot is not newer than the last applied
//!   slot is *late*: it never advances a streak nor flips the status, and
//!   `last_slot` stays. It can only shorten a streak: a late result of the
//!   other outcome that falls inside the current streak (after
//!   `streak_start`) proves that, in slot order, the streak was broken
//!   there. The machine keeps one counter, not the history, so all it knows
//!   is that the newest result lies after the break: the streak becomes 1,
//!   starting at `last_slot`. The streak therefore never runs ahead of the
//!   streak in slot order (no page for failures that were not consecutive)
//!   and is exact when results arrive in slot order.

use chrono::{DateTime, Utc};

/// Current status of a check, as stored in `check_state.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unknown,
    Up,
    Down,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Up => "up",
            Status::Down => "down",
        }
    }

    /// Reads the database's text; anything unexpected is `unknown`, the
    /// state that re-derives itself from the next results.
    pub fn parse(text: &str) -> Status {
        match text {
            "up" => Status::Up,
            "down" => Status::Down,
            _ => Status::Unknown,
        }
    }
}

/// The part of `check_state` the machine reads and writes.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckState {
    pub status: Status,
    /// When `status` last changed.
    pub since: DateTime<Utc>,
    /// Newest slot applied; older results are ignored.
    pub last_slot: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// Slot of the oldest result counted in the current streak (the
    /// non-zero one of the two counters): a late result of the other
    /// outcome after it breaks the streak.
    pub streak_start: Option<DateTime<Utc>>,
    /// Open incident (set while down, kept by the recovery that resolves it).
    pub incident_id: Option<i64>,
}

impl CheckState {
    /// A check nothing is known about yet.
    pub fn unknown(since: DateTime<Utc>) -> CheckState {
        CheckState {
            status: Status::Unknown,
            since,
            last_slot: None,
            consecutive_failures: 0,
            consecutive_successes: 0,
            streak_start: None,
            incident_id: None,
        }
    }
}

/// One result, reduced to what the machine needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub slot: DateTime<Utc>,
    /// When the check ran: becomes `since` when the status flips.
    pub at: DateTime<Utc>,
    pub success: bool,
}

/// Thresholds from the check's spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub failure: u32,
    pub success: u32,
}

/// What applying an observation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The observation was not newer than the last applied slot and did
    /// not contradict the current streak: nothing changed.
    Ignored,
    /// A late observation of the other outcome inside the current streak:
    /// the streak was cut to the newest result; the status did not move.
    StreakCut,
    /// Counters moved, status did not.
    Unchanged,
    /// `unknown` → `up`: recorded, not notified.
    FirstUp,
    /// → `down`: a new incident that needs an id, notified.
    WentDown,
    /// `down` → `up`: the incident is resolved, notified.
    Recovered,
}

impl Transition {
    /// Whether this flip writes a notification outbox row.
    pub fn notifies(self) -> bool {
        matches!(self, Transition::WentDown | Transition::Recovered)
    }
}

/// Applies one observation. `WentDown` leaves `incident_id` to the caller,
/// which draws it from the database sequence.
pub fn apply(state: &mut CheckState, observation: Observation, thresholds: Thresholds) -> Transition {
    if let Some(last) = state.last_slot {
        if observation.slot <= last {
            return late(state, observation, last);
        }
    }
    state.last_slot = Some(observation.slot);
    let failure_threshold = thresholds.failure.max(1);
    let success_threshold = thresholds.success.max(1);
    // A result of the other outcome than the streak (or the first after a
    // reset) starts a new streak at its slot.
    let streak = if observation.success { state.consecutive_successes } else { state.consecutive_failures };
    if streak == 0 {
        state.streak_start = Some(observation.slot);
    }
    if observation.success {
        state.consecutive_failures = 0;
        state.consecutive_successes = state.consecutive_successes.saturating_add(1);
        match state.status {
            Status::Unknown => {
                state.status = Status::Up;
                state.since = observation.at;
                state.incident_id = None;
                Transition::FirstUp
            }
            Status::Down if state.consecutive_successes >= success_threshold => {
                state.status = Status::Up;
                state.since = observation.at;
                Transition::Recovered
            }
            Status::Up | Status::Down => Transition::Unchanged,
        }
    } else {
        state.consecutive_successes = 0;
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        match state.status {
            Status::Unknown | Status::Up if state.consecutive_failures >= failure_threshold => {
                state.status = Status::Down;
                state.since = observation.at;
                state.incident_id = None;
                Transition::WentDown
            }
            _ => Transition::Unchanged,
        }
    }
}

/// A result for a slot at or before `last`: it never advances a streak nor
/// flips the status; one of the other outcome strictly inside the current
/// streak cuts the streak to the newest result (see the module comment).
fn late(state: &mut CheckState, observation: Observation, last: DateTime<Utc>) -> Transition {
    let contradicts =
        if observation.success { state.consecutive_failures > 1 } else { state.consecutive_successes > 1 };
    let inside = state.streak_start.is_some_and(|start| observation.slot > start) && observation.slot < last;
    if !(contradicts && inside) {
        return Transition::Ignored;
    }
    if observation.success {
        state.consecutive_failures = 1;
    } else {
        state.consecutive_successes = 1;
    }
    state.streak_start = Some(last);
    Transition::StreakCut
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap_or_default()
    }

    fn obs(slot: i64, success: bool) -> Observation {
        Observation { slot: t(slot), at: t(slot), success }
    }

    const TH: Thresholds = Thresholds { failure: 2, success: 2 };

    #[test]
    fn unknown_comes_up_silently_on_first_success() {
        let mut s = CheckState::unknown(t(0));
        assert_eq!(apply(&mut s, obs(1, true), TH), Transition::FirstUp);
        assert_eq!(s.status, Status::Up);
        assert_eq!(s.since, t(1));
        assert!(!Transition::FirstUp.notifies());
    }

    #[test]
    fn unknown_goes_down_only_at_the_failure_threshold() {
        let mut s = CheckState::unknown(t(0));
        assert_eq!(apply(&mut s, obs(1, false), TH), Transition::Unchanged);
        assert_eq!(s.status, Status::Unknown);
        assert_eq!(apply(&mut s, obs(2, false), TH), Transition::WentDown);
        assert_eq!((s.status, s.since), (Status::Down, t(2)));
    }

    #[test]
    fn failing_twice_with_threshold_two_goes_down_once_then_up_once() {
        let mut s = CheckState::unknown(t(0));
        apply(&mut s, obs(1, true), TH);
        let flips: Vec<Transition> = [false, false, false, false, true, false, true, true, true]
            .iter()
            .enumerate()
            .map(|(i, ok)| apply(&mut s, obs(2 + i as i64, *ok), TH))
            .filter(|tr| tr.notifies())
            .collect();
        assert_eq!(flips, vec![Transition::WentDown, Transition::Recovered]);
        assert_eq!(s.status, Status::Up);
    }

    #[test]
    fn one_failure_between_successes_does_not_go_down() {
        let mut s = CheckState::unknown(t(0));
        for (i, ok) in [true, false, true, false, true].iter().enumerate() {
            assert!(!apply(&mut s, obs(i as i64 + 1, *ok), TH).notifies());
        }
        assert_eq!(s.status, Status::Up);
    }

    #[test]
    fn older_and_equal_slots_are_ignored() {
        let mut s = CheckState::unknown(t(0));
        apply(&mut s, obs(10, true), TH);
        let before = s.clone();
        assert_eq!(apply(&mut s, obs(5, false), TH), Transition::Ignored);
        assert_eq!(apply(&mut s, obs(10, false), TH), Transition::Ignored);
        assert_eq!(s, before);
    }

    #[test]
    fn a_late_success_inside_a_failure_streak_cuts_it() {
        let th = Thresholds { failure: 3, success: 1 };
        let mut s = CheckState::unknown(t(0));
        apply(&mut s, obs(1, false), th);
        apply(&mut s, obs(3, false), th);
        assert_eq!(s.consecutive_failures, 2);
        // Slot 2 succeeded: in slot order the failures are not consecutive.
        assert_eq!(apply(&mut s, obs(2, true), th), Transition::StreakCut);
        assert_eq!((s.consecutive_failures, s.consecutive_successes, s.last_slot), (1, 0, Some(t(3))));
        assert_eq!(s.streak_start, Some(t(3)));
        // Slot order F S F F: two consecutive failures, not three.
        assert_eq!(apply(&mut s, obs(4, false), th), Transition::Unchanged);
        assert_eq!(s.status, Status::Unknown);
        assert_eq!(apply(&mut s, obs(5, false), th), Transition::WentDown);
    }

    #[test]
    fn late_results_outside_the_streak_or_agreeing_with_it_change_nothing() {
        let th = Thresholds { failure: 3, success: 1 };
        let mut s = CheckState::unknown(t(0));
        apply(&mut s, obs(1, true), th);
        apply(&mut s, obs(4, false), th);
        apply(&mut s, obs(6, false), th);
        let before = s.clone();
        // Before the streak began, agreeing with it, or a duplicate of the newest.
        for late in [obs(2, true), obs(3, true), obs(5, false), obs(6, true), obs(0, false)] {
            assert_eq!(apply(&mut s, late, th), Transition::Ignored, "{late:?}");
        }
        assert_eq!(s, before);
    }

    #[test]
    fn a_late_failure_inside_a_recovery_delays_it() {
        let th = Thresholds { failure: 1, success: 3 };
        let mut s = CheckState::unknown(t(0));
        assert_eq!(apply(&mut s, obs(1, false), th), Transition::WentDown);
        apply(&mut s, obs(2, true), th);
        apply(&mut s, obs(4, true), th);
        assert_eq!(apply(&mut s, obs(3, false), th), Transition::StreakCut);
        assert_eq!(apply(&mut s, obs(5, true), th), Transition::Unchanged);
        assert_eq!(apply(&mut s, obs(6, true), th), Transition::Recovered);
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let th = Thresholds { failure: 0, success: 0 };
        let mut s = CheckState::unknown(t(0));
        assert_eq!(apply(&mut s, obs(1, false), th), Transition::WentDown);
        assert_eq!(apply(&mut s, obs(2, true), th), Transition::Recovered);
    }

    #[test]
    fn status_text_round_trips() {
        for st in [Status::Unknown, Status::Up, Status::Down] {
            assert_eq!(Status::parse(st.as_str()), st);
        }
        assert_eq!(Status::parse("garbage"), Status::Unknown);
    }

    /// A reference model written differently: recompute the status from the
    /// whole history of applied results.
    fn model(history: &[bool], th: Thresholds) -> (Status, usize, usize) {
        let (f, s) = (th.failure.max(1) as usize, th.success.max(1) as usize);
        let mut status = Status::Unknown;
        let (mut downs, mut ups) = (0, 0);
        for i in 0..history.len() {
            let trailing = |want: bool| history[..=i].iter().rev().take_while(|x| **x == want).count();
            if history[i] {
                if status == Status::Unknown || (status == Status::Down && trailing(true) >= s) {
                    if status == Status::Down {
                        ups += 1;
                    }
                    status = Status::Up;
                }
            } else if status != Status::Down && trailing(false) >= f {
                status = Status::Down;
                downs += 1;
            }
        }
        (status, downs, ups)
    }

    proptest! {
        #[test]
        fn matches_the_reference_model(
            history in proptest::collection::vec(any::<bool>(), 0..60),
            failure in 0u32..5,
            success in 0u32..5,
        ) {
            let th = Thresholds { failure, success };
            let mut s = CheckState::unknown(t(0));
            let (mut downs, mut ups) = (0, 0);
            for (i, ok) in history.iter().enumerate() {
                match apply(&mut s, obs(i as i64 + 1, *ok), th) {
                    Transition::WentDown => downs += 1,
                    Transition::Recovered => ups += 1,
                    _ => {}
                }
            }
            prop_assert_eq!((s.status, downs, ups), model(&history, th));
            // Flips alternate: never two downs without an up in between.
            prop_assert!(downs == ups || downs == ups + 1);
        }

        #[test]
        fn shuffled_delivery_never_moves_backwards(
            history in proptest::collection::vec(any::<bool>(), 1..40),
            order in proptest::collection::vec(any::<u8>(), 1..40),
        ) {
            // Apply results in an arbitrary order: a late result never
            // flips nor moves `last_slot`; unless one cut a streak, the
            // state equals the in-order application of exactly the results
            // that were newest when they arrived.
            let mut s = CheckState::unknown(t(0));
            let mut applied = Vec::new();
            let mut newest: Option<usize> = None;
            let mut cut = false;
            for k in &order {
                let i = *k as usize % history.len();
                let tr = apply(&mut s, obs(i as i64 + 1, history[i]), TH);
                if newest.is_some_and(|n| i <= n) {
                    prop_assert!(matches!(tr, Transition::Ignored | Transition::StreakCut), "{tr:?}");
                    cut |= tr == Transition::StreakCut;
                } else {
                    newest = Some(i);
                    applied.push(history[i]);
                }
            }
            prop_assert_eq!(s.last_slot, newest.map(|n| t(n as i64 + 1)));
            if !cut {
                prop_assert_eq!(s.status, model(&applied, TH).0);
            }
        }

        /// Slot order, not arrival order: whatever order the results of a
        /// check arrive in, the streak the machine holds never runs ahead
        /// of the streak the same results have in slot order, and every
        /// flip is backed by `threshold` consecutive results in slot order.
        /// (What the machine cannot know it does not claim: it keeps one
        /// counter, so a late result can shorten a streak but never lengthen
        /// it; in-order delivery is exact, see `matches_the_reference_model`.)
        #[test]
        fn streaks_follow_slot_order_whatever_the_arrival_order(
            history in proptest::collection::vec(any::<bool>(), 1..40),
            order in proptest::collection::vec(any::<u8>(), 1..60),
            failure in 1u32..5,
            success in 1u32..5,
        ) {
            let th = Thresholds { failure, success };
            let mut s = CheckState::unknown(t(0));
            let mut delivered = std::collections::BTreeSet::new();
            for k in &order {
                let i = *k as usize % history.len();
                delivered.insert(i);
                let tr = apply(&mut s, obs(i as i64 + 1, history[i]), th);
                // The run, in slot order, that ends at the newest result delivered.
                let newest = *delivered.iter().next_back().unwrap_or(&i);
                let outcome = history[newest];
                let run = delivered.iter().rev().take_while(|j| history[**j] == outcome).count() as u32;
                let held = if outcome { s.consecutive_successes } else { s.consecutive_failures };
                prop_assert!(held <= run, "streak {held} ahead of slot order {run}: {history:?} {order:?}");
                prop_assert_eq!(
                    if outcome { s.consecutive_failures } else { s.consecutive_successes }, 0,
                    "the counter of the other outcome is zero"
                );
                match tr {
                    Transition::WentDown => prop_assert!(!outcome && run >= failure),
                    Transition::Recovered => prop_assert!(outcome && run >= success),
                    _ => {}
                }
            }
        }
    }
}
