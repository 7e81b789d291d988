//! The limits of a check, in one place. The schema mirrors them in CHECK
//! constraints (`migrations/0001_init.sql`: `interval_ms BETWEEN 1000 AND
//! 86400000`); `model::bounds_match_the_schema` keeps the two in step.

use std::ops::RangeInclusive;
use std::time::Duration;

/// The shortest interval a check may run at: 1 s.
pub const MIN_INTERVAL_MS: u64 = 1_000;
/// The longest interval a check may run at: one day.
pub const MAX_INTERVAL_MS: u64 = 86_400_000;
/// Every interval a check may have, as a range.
pub const INTERVAL_MS: RangeInclusive<u64> = MIN_INTERVAL_MS..=MAX_INTERVAL_MS;

/// The longest a single check may take, whatever its spec says.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_match_the_schema() {
        let schema = include_str!("../../migrations/0001_init.sql");
        let expected = format!("interval_ms BETWEEN {MIN_INTERVAL_MS} AND {MAX_INTERVAL_MS}");
        assert!(schema.contains(&expected), "the schema no longer says {expected:?}");
        assert!(MAX_TIMEOUT.as_millis() as u64 <= MAX_INTERVAL_MS);
    }
}
