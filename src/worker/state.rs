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
//! - A result whose slot is not newer than the last applied slot leaves the
//!   state untouched: results arrive out of order (redeliveries, several
//!   workers) and an old result must never move the state backwards.

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
    /// The observation was older than the last applied slot: nothing changed.
    Ignored,
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
            return Transition::Ignored;
        }
    }
    state.last_slot = Some(observation.slot);
    let failure_threshold = thresholds.failure.max(1);
    let success_threshold = thresholds.success.max(1);
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
            // Apply results in an arbitrary order: the state must equal the
            // in-order application of exactly the results that were newest
            // when they arrived.
            let mut s = CheckState::unknown(t(0));
            let mut applied = Vec::new();
            let mut newest: Option<usize> = None;
            for k in &order {
                let i = *k as usize % history.len();
                let tr = apply(&mut s, obs(i as i64 + 1, history[i]), TH);
                if newest.is_some_and(|n| i <= n) {
                    prop_assert_eq!(tr, Transition::Ignored);
                } else {
                    newest = Some(i);
                    applied.push(history[i]);
                }
            }
            prop_assert_eq!(s.last_slot, newest.map(|n| t(n as i64 + 1)));
            prop_assert_eq!(s.status, model(&applied, TH).0);
        }
    }
}
