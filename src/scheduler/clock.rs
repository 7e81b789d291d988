//! The dispatch clock: PostgreSQL's time, carried forward on the monotonic
//! clock between membership heartbeats.
//!
//! Slots are wall-clock times shared by every member, so they must be read
//! against one clock. The local wall clock can be stepped (NTP, a VM
//! resume, an operator): stepped forward, slots that were never due look
//! late and are recorded missed, and the watermark runs ahead of real time;
//! stepped back, time already dispatched is replayed or stalls. So each
//! heartbeat anchors "PostgreSQL said `db_ms` at this `Instant`" (the
//! midpoint of the round trip), and the dispatcher reads `db_ms + elapsed`
//! on `Instant`, which no step of the wall clock moves.
//!
//! The skew between the local wall clock and PostgreSQL is still measured:
//! past `scheduler.max_clock_skew` the host is broken enough (workers judge
//! staleness on their own clocks, logs lie) that dispatch halts loudly
//! until it is back under the threshold. Slots due meanwhile stay due and
//! are then published within catch-up or recorded missed, as after any
//! outage. Everything here takes its time as an argument: pure, tested.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::health::{BoxFuture, ReadinessProbe};

/// PostgreSQL's clock in unix ms as of a local monotonic instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub db_ms: i64,
    pub at: Instant,
}

impl Anchor {
    /// Database time at `now`; an instant before the anchor reads earlier.
    pub fn read(&self, now: Instant) -> i64 {
        match now.checked_duration_since(self.at) {
            Some(after) => self.db_ms + after.as_millis() as i64,
            None => self.db_ms - self.at.duration_since(now).as_millis() as i64,
        }
    }
}

/// What the dispatcher may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// No heartbeat has answered yet: no reference, dispatch nothing.
    Unknown,
    /// Dispatch with this database time (unix ms).
    At(i64),
    /// The local clock is off by `skew_ms` (local − database), beyond the
    /// limit: dispatch nothing; `db_ms` is still the database time.
    Halted { db_ms: i64, skew_ms: i64 },
}

#[derive(Debug, Default)]
struct State {
    anchor: Option<Anchor>,
    /// Local wall clock minus PostgreSQL's, at the last heartbeat.
    skew_ms: i64,
}

/// Shared between the coordinator (which anchors it) and the dispatcher
/// and the readiness probe (which read it).
#[derive(Debug, Clone)]
pub struct DbClock {
    state: Arc<Mutex<State>>,
    max_skew: Duration,
}

/// The default limit of `scheduler.max_clock_skew`.
impl Default for DbClock {
    fn default() -> DbClock {
        DbClock::new(Duration::from_secs(300))
    }
}

impl DbClock {
    pub fn new(max_skew: Duration) -> DbClock {
        DbClock { state: Arc::default(), max_skew }
    }

    pub fn max_skew(&self) -> Duration {
        self.max_skew
    }

    /// Records a heartbeat: PostgreSQL said `db_ms` at about `mid` (the
    /// middle of the round trip), when the local wall clock read
    /// `local_ms`. Returns the skew (local − database) in ms.
    pub fn anchor(&self, db_ms: i64, mid: Instant, local_ms: i64) -> i64 {
        let skew_ms = local_ms - db_ms;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.anchor = Some(Anchor { db_ms, at: mid });
        state.skew_ms = skew_ms;
        skew_ms
    }

    /// Whether a skew is beyond the limit.
    pub fn too_skewed(&self, skew_ms: i64) -> bool {
        skew_ms.unsigned_abs() as u128 > self.max_skew.as_millis()
    }

    /// The clock as of `now`.
    pub fn reading(&self, now: Instant) -> Reading {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.anchor {
            None => Reading::Unknown,
            Some(anchor) if self.too_skewed(state.skew_ms) => {
                Reading::Halted { db_ms: anchor.read(now), skew_ms: state.skew_ms }
            }
            Some(anchor) => Reading::At(anchor.read(now)),
        }
    }

    /// Database time for dispatching now; `None` while dispatch must wait.
    pub fn dispatch_now(&self) -> Option<i64> {
        match self.reading(Instant::now()) {
            Reading::At(ms) => Some(ms),
            Reading::Unknown | Reading::Halted { .. } => None,
        }
    }

    /// Database time now even while halted (to place a schedule); the local
    /// wall clock only before the first heartbeat, which the coordinator
    /// waits for before it claims or reloads anything.
    pub fn now_ms(&self) -> i64 {
        match self.reading(Instant::now()) {
            Reading::At(ms) | Reading::Halted { db_ms: ms, .. } => ms,
            Reading::Unknown => chrono::Utc::now().timestamp_millis(),
        }
    }

    /// Why dispatch is halted, for `/readyz` and logs; `None` when it is not.
    pub fn halt_reason(&self) -> Option<String> {
        match self.reading(Instant::now()) {
            Reading::Halted { skew_ms, .. } => Some(describe_skew(skew_ms, self.max_skew)),
            _ => None,
        }
    }
}

/// `/readyz` fails on "clock" while dispatch is halted for skew: a
/// scheduler that publishes nothing must not look healthy.
pub struct ClockProbe(pub DbClock);

impl ReadinessProbe for ClockProbe {
    fn name(&self) -> &'static str {
        "clock"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let outcome = match self.0.halt_reason() {
            Some(why) => Err(why),
            None => Ok(()),
        };
        Box::pin(async move { outcome })
    }
}

pub fn describe_skew(skew_ms: i64, max: Duration) -> String {
    let direction = if skew_ms > 0 { "ahead of" } else { "behind" };
    format!(
        "this host's clock is {:.1}s {direction} PostgreSQL's, more than scheduler.max_clock_skew ({}): dispatch halted; fix NTP",
        skew_ms.unsigned_abs() as f64 / 1000.0,
        humantime::format_duration(max)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn nothing_before_the_first_anchor() {
        let clock = DbClock::new(5 * MIN);
        assert_eq!(clock.reading(Instant::now()), Reading::Unknown);
        assert_eq!(clock.dispatch_now(), None);
    }

    #[test]
    fn reads_the_database_time_carried_on_the_monotonic_clock() {
        let clock = DbClock::new(5 * MIN);
        let t0 = Instant::now();
        clock.anchor(1_000_000, t0, 1_000_200);
        assert_eq!(clock.reading(t0), Reading::At(1_000_000));
        assert_eq!(clock.reading(t0 + Duration::from_millis(1500)), Reading::At(1_001_500));
        let anchor = Anchor { db_ms: 1_000_000, at: t0 + Duration::from_secs(1) };
        assert_eq!(anchor.read(t0), 999_000);
    }

    #[test]
    fn a_local_step_within_the_limit_moves_nothing() {
        // The local wall clock jumps +2 min, then −2 min: the readings stay
        // on the database's time, evenly spaced, never ahead of it.
        let clock = DbClock::new(5 * MIN);
        let t0 = Instant::now();
        clock.anchor(10_000, t0, 10_000);
        let second = Duration::from_secs(1);
        clock.anchor(11_000, t0 + second, 11_000 + 120_000);
        assert_eq!(clock.reading(t0 + 2 * second), Reading::At(12_000));
        clock.anchor(12_000, t0 + 2 * second, 12_000 - 120_000);
        assert_eq!(clock.reading(t0 + 3 * second), Reading::At(13_000));
    }

    #[test]
    fn a_skew_beyond_the_limit_halts_until_it_is_back() {
        let clock = DbClock::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(clock.anchor(50_000, t0, 50_000 + 60_000), 60_000);
        assert_eq!(clock.reading(t0), Reading::Halted { db_ms: 50_000, skew_ms: 60_000 });
        assert_eq!(clock.dispatch_now(), None);
        let why = clock.halt_reason().unwrap_or_default();
        assert!(why.contains("60.0s ahead of") && why.contains("scheduler.max_clock_skew (30s)"), "{why}");
        clock.anchor(51_000, t0 + Duration::from_secs(1), 51_000 - 31_000);
        assert!(clock.halt_reason().unwrap_or_default().contains("behind"));
        clock.anchor(52_000, t0 + Duration::from_secs(2), 52_000 + 30_000);
        assert_eq!(clock.reading(t0 + Duration::from_secs(2)), Reading::At(52_000));
        assert_eq!(clock.halt_reason(), None);
    }
}
