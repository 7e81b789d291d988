//! What a slot's time counts as, and where uptime is computed.
//!
//! Every slot of a check accounts for its interval's time (docs/history.md):
//! - inside a maintenance window that covers the check: **maintenance**;
//! - else, with a result: the state the check was in after that result
//!   (**up** or **down**; still `unknown`, before the first threshold is
//!   reached, is **no data**);
//! - missed or stale: **no data**.
//!
//! Uptime = up / (up + down). No data and maintenance are shown beside it
//! and never counted as down.

/// Where a slot's time goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Up,
    Down,
    NoData,
    Maintenance,
}

/// A result's category. `state` is the state after the result as the
/// worker stored it (`check_results.state`); `None` for rows stored before
/// history existed, or for a result of a check paused or deleted while its
/// job was in flight: those count by their own outcome.
pub fn of_result(state: Option<&str>, success: bool, in_maintenance: bool) -> Category {
    if in_maintenance {
        return Category::Maintenance;
    }
    match state {
        Some("up") => Category::Up,
        Some("down") => Category::Down,
        Some(_) => Category::NoData,
        None if success => Category::Up,
        None => Category::Down,
    }
}

/// A missed (never run) slot's category.
pub fn of_missed(in_maintenance: bool) -> Category {
    if in_maintenance {
        Category::Maintenance
    } else {
        Category::NoData
    }
}

/// Time by category, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durations {
    pub up_ms: i64,
    pub down_ms: i64,
    pub no_data_ms: i64,
    pub maintenance_ms: i64,
}

impl Durations {
    pub fn add(&mut self, category: Category, ms: i64) {
        match category {
            Category::Up => self.up_ms += ms,
            Category::Down => self.down_ms += ms,
            Category::NoData => self.no_data_ms += ms,
            Category::Maintenance => self.maintenance_ms += ms,
        }
    }

    pub fn merge(&mut self, other: &Durations) {
        self.up_ms += other.up_ms;
        self.down_ms += other.down_ms;
        self.no_data_ms += other.no_data_ms;
        self.maintenance_ms += other.maintenance_ms;
    }

    /// Uptime in percent: up / (up + down) × 100; `None` when there was
    /// neither up nor down time (only no data or maintenance: nothing to
    /// judge, which is not 0 % and not 100 %).
    pub fn uptime_percent(&self) -> Option<f64> {
        let judged = self.up_ms.max(0) + self.down_ms.max(0);
        (judged > 0).then(|| self.up_ms.max(0) as f64 * 100.0 / judged as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_wins_over_every_state() {
        for state in [Some("up"), Some("down"), Some("unknown"), None] {
            for success in [true, false] {
                assert_eq!(of_result(state, success, true), Category::Maintenance);
            }
        }
        assert_eq!(of_missed(true), Category::Maintenance);
    }

    #[test]
    fn the_state_after_the_result_decides_not_the_result() {
        // A failure below the threshold leaves the check up: up time.
        assert_eq!(of_result(Some("up"), false, false), Category::Up);
        // A success below the recovery threshold leaves it down.
        assert_eq!(of_result(Some("down"), true, false), Category::Down);
        assert_eq!(of_result(Some("unknown"), false, false), Category::NoData);
        assert_eq!(of_result(None, true, false), Category::Up);
        assert_eq!(of_result(None, false, false), Category::Down);
    }

    #[test]
    fn missed_slots_are_no_data_never_down() {
        assert_eq!(of_missed(false), Category::NoData);
    }

    #[test]
    fn uptime_ignores_no_data_and_maintenance() {
        let mut d = Durations::default();
        assert_eq!(d.uptime_percent(), None);
        d.add(Category::NoData, 1_000);
        d.add(Category::Maintenance, 1_000);
        assert_eq!(d.uptime_percent(), None);
        d.add(Category::Up, 3_000);
        assert_eq!(d.uptime_percent(), Some(100.0));
        d.add(Category::Down, 1_000);
        assert_eq!(d.uptime_percent(), Some(75.0));
        assert_eq!((d.no_data_ms, d.maintenance_ms), (1_000, 1_000));
    }

    #[test]
    fn the_worked_example_of_the_docs() {
        // docs/history.md: one hour at a 1-minute interval: 50 slots up,
        // 5 down, 3 missed, 2 in maintenance → 50/55 = 90.909… %.
        let mut d = Durations::default();
        for _ in 0..50 {
            d.add(of_result(Some("up"), true, false), 60_000);
        }
        for _ in 0..5 {
            d.add(of_result(Some("down"), false, false), 60_000);
        }
        for _ in 0..3 {
            d.add(of_missed(false), 60_000);
        }
        for _ in 0..2 {
            d.add(of_result(Some("down"), false, true), 60_000);
        }
        assert_eq!(
            d,
            Durations { up_ms: 3_000_000, down_ms: 300_000, no_data_ms: 180_000, maintenance_ms: 120_000 }
        );
        let uptime = d.uptime_percent().unwrap();
        assert!((uptime - 90.909_090_909).abs() < 1e-6);
    }
}
