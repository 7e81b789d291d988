//! When a failed delivery is tried again: exponential backoff with jitter.
//!
//! Pure: the random part is a parameter, so the schedule is unit-tested and
//! the caller decides where randomness comes from.

use std::time::Duration;

/// The wait after failed attempt number `attempt` (1 for the first try):
/// `initial · 2^(attempt-1)`, capped at `max`, of which a random half is
/// taken off ("equal jitter": at least half the step, never more than the
/// step), so receivers that failed together are not retried in lockstep.
/// `random` is uniform in [0, 1).
pub fn delay(attempt: u32, initial: Duration, max: Duration, random: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(32);
    let step = initial.saturating_mul(1u32 << exponent.min(31)).min(max);
    let step = if exponent > 31 { max } else { step };
    let half = step / 2;
    half + half.mul_f64(random.clamp(0.0, 1.0))
}

/// A uniform number in [0, 1) without a random-number crate: the standard
/// library seeds every `RandomState` from the operating system.
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_until_the_cap() {
        let max = Duration::from_secs(60);
        let full: Vec<u64> = (1..=8).map(|a| delay(a, S, max, 0.999_999).as_millis() as u64).collect();
        assert_eq!(full, vec![999, 1999, 3999, 7999, 15999, 31999, 59999, 59999]);
        let low: Vec<u64> = (1..=8).map(|a| delay(a, S, max, 0.0).as_millis() as u64).collect();
        assert_eq!(low, vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    }

    #[test]
    fn jitter_stays_within_half_a_step() {
        for attempt in 1..40 {
            for r in [0.0, 0.25, 0.5, 0.75, 0.999] {
                let d = delay(attempt, S, Duration::from_secs(300), r);
                let step = delay(attempt, S, Duration::from_secs(300), 1.0);
                assert!(d >= step / 2 && d <= step, "attempt {attempt} r {r}: {d:?} of {step:?}");
            }
        }
        assert_eq!(delay(0, S, Duration::from_secs(300), 1.0), S);
        assert_eq!(delay(u32::MAX, S, Duration::from_secs(300), 1.0), Duration::from_secs(300));
    }

    #[test]
    fn random_units_are_in_range_and_vary() {
        let draws: Vec<f64> = (0..64).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|r| (0.0..1.0).contains(r)));
        let first = draws[0];
        assert!(draws.iter().any(|r| (*r - first).abs() > f64::EPSILON));
    }
}
