//! Slot arithmetic: when a check runs, and what to do when we are behind.
//!
//! A check with interval `I` runs at slots `k·I + phase` (unix milliseconds),
//! where `phase` is a stable hash of its id: load spreads evenly over the
//! interval, nothing piles up at :00, and any shard computes the same slots.
//! Pure functions only; the property tests below are the specification.

/// A stable 64-bit mix (splitmix64's finaliser). Not `std`'s hasher, whose
/// output may change between Rust releases: phases must never move.
pub fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The check's offset within its interval, in `0..interval_ms`.
pub fn phase(check_id: i64, interval_ms: i64) -> i64 {
    debug_assert!(interval_ms > 0);
    (mix64(check_id as u64) % interval_ms.max(1) as u64) as i64
}

/// The first slot at or after `t`.
pub fn slot_at_or_after(t: i64, interval_ms: i64, phase: i64) -> i64 {
    let k = (t - phase + interval_ms - 1).div_euclid(interval_ms);
    k * interval_ms + phase
}

/// The first slot of a new grid (`interval_ms`, `phase`) when a check's
/// interval changes at `now`, its next unhandled slot on the old grid
/// being `next` (`old_interval_ms` after the last handled one).
///
/// - In step (`next > now`): the first new slot at or after `now`. New
///   slots before the change were never due (the old interval ruled), so
///   none is published late or counted missed, and none after it is
///   skipped.
/// - Behind (`next <= now`, dispatch was held up): from `next`, so the time
///   nobody was served is still caught up or recorded missed.
/// - Never at or before the last handled slot: no slot runs twice.
pub fn regrid(next: i64, old_interval_ms: i64, now: i64, interval_ms: i64, phase: i64) -> i64 {
    let last_handled = next - old_interval_ms;
    slot_at_or_after(next.min(now).max(last_handled + 1), interval_ms, phase)
}

/// What to do with a check whose next unhandled slot is `next` at time `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Slots to publish now: `first, first + interval, …, last` (none when `None`).
    pub publish: Option<(i64, i64)>,
    /// Slots too late to be worth running: (first, last, count).
    pub missed: Option<(i64, i64, i64)>,
    /// The next unhandled slot afterwards.
    pub next: i64,
}

/// Bounded catch-up. Every due slot at most `catch_up` late is published
/// (a failover or a short broker outage loses nothing); older ones are
/// counted missed, because after a long outage running a check a hundred
/// times in a burst tells nobody anything. A check's latest due slot is
/// always published, however late, so a long interval (hourly) check is
/// never skipped for a whole interval by a short outage.
pub fn take_due(next: i64, now: i64, interval_ms: i64, catch_up_ms: i64) -> Due {
    if next > now {
        return Due { publish: None, missed: None, next };
    }
    let latest = next + (now - next).div_euclid(interval_ms) * interval_ms;
    let oldest_in_window = slot_at_or_after(now - catch_up_ms, interval_ms, next.rem_euclid(interval_ms));
    let first = oldest_in_window.clamp(next, latest);
    let missed = (first > next).then(|| (next, first - interval_ms, (first - next) / interval_ms));
    Due { publish: Some((first, latest)), missed, next: latest + interval_ms }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(slot_at_or_after(1000, 300, 100), 1000);
        assert_eq!(slot_at_or_after(1001, 300, 100), 1300);
        assert_eq!(slot_at_or_after(0, 300, 100), 100);
        assert_eq!(take_due(1000, 999, 100, 0), Due { publish: None, missed: None, next: 1000 });
        assert_eq!(
            take_due(1000, 1000, 100, 0),
            Due { publish: Some((1000, 1000)), missed: None, next: 1100 }
        );
        // Far behind: only the latest slot.
        assert_eq!(
            take_due(1000, 1350, 100, 0),
            Due { publish: Some((1300, 1300)), missed: Some((1000, 1200, 3)), next: 1400 }
        );
        // Within catch-up: everything, late.
        assert_eq!(
            take_due(1000, 1350, 100, 500),
            Due { publish: Some((1000, 1300)), missed: None, next: 1400 }
        );
        // Partly: the slots inside the window.
        assert_eq!(
            take_due(1000, 1350, 100, 200),
            Due { publish: Some((1200, 1300)), missed: Some((1000, 1100, 2)), next: 1400 }
        );
        // A long interval's latest slot is published however late.
        assert_eq!(
            take_due(1000, 5000, 10_000, 100),
            Due { publish: Some((1000, 1000)), missed: None, next: 11_000 }
        );
    }

    #[test]
    fn an_interval_change_starts_the_new_grid_at_the_change() {
        let hour = 3_600_000;
        // Last handled 10:00 (phase 0), next 11:00; changed to 1 min at 10:40:30.
        let now = 40 * 60_000 + 30_000;
        assert_eq!(regrid(hour, hour, now, 60_000, 5), 41 * 60_000 + 5, "shortened: from the change");
        // Lengthened from 1 min to 1 h at 10:40:30: the 10:50 slot is kept.
        assert_eq!(regrid(41 * 60_000, 60_000, now, hour, 50 * 60_000), 50 * 60_000);
        // Behind (next 10:35 unhandled at 10:40:30): from the first unhandled slot.
        assert_eq!(regrid(35 * 60_000, 60_000, now, 10_000, 0), 35 * 60_000);
        // Never again the last handled slot, even on both grids.
        assert_eq!(regrid(2000, 1000, 1000, 500, 0), 1500);
    }

    proptest! {
        /// The new grid's first slot: on the grid, not before the change
        /// when in step (never before the first unhandled slot when behind),
        /// no new slot skipped between, never at or before the last handled.
        #[test]
        fn regrid_starts_at_the_first_due_slot_of_the_new_grid(
            last in 1_700_000_000_000i64..1_800_000_000_000,
            old in 1i64..86_400_000,
            new in 1i64..86_400_000,
            after in 0i64..100_000_000,
            id in any::<i64>(),
        ) {
            let next = last + old;
            let now = last + after;
            let p = phase(id, new);
            let first = regrid(next, old, now, new, p);
            prop_assert_eq!((first - p).rem_euclid(new), 0);
            prop_assert!(first > last);
            let from = if next > now { now } else { next };
            prop_assert!(first >= from);
            prop_assert!(first - new < from.max(last + 1), "a new slot after the change skipped");
        }

        #[test]
        fn phase_is_inside_the_interval(id in any::<i64>(), interval in 1i64..86_400_000) {
            let p = phase(id, interval);
            prop_assert!((0..interval).contains(&p));
            prop_assert_eq!(p, phase(id, interval));
        }

        #[test]
        fn slots_lie_on_the_grid(t in 0i64..4_000_000_000_000, interval in 1i64..86_400_000, id in any::<i64>()) {
            let p = phase(id, interval);
            let s = slot_at_or_after(t, interval, p);
            prop_assert!(s >= t && s - t < interval);
            prop_assert_eq!((s - p).rem_euclid(interval), 0);
        }

        /// Cutting time anywhere (a watermark, a tick, a takeover) never
        /// skips or repeats a slot: every grid slot in the window is handled
        /// exactly once, published or counted missed.
        #[test]
        fn every_slot_is_handled_exactly_once(
            start in 1_700_000_000_000i64..1_800_000_000_000,
            interval in 1i64..10_000,
            id in any::<i64>(),
            catch_up in 0i64..20_000,
            cuts in proptest::collection::vec(1i64..30_000, 1..40),
        ) {
            let p = phase(id, interval);
            let mut next = slot_at_or_after(start, interval, p);
            let first = next;
            let mut now = start;
            let mut handled: Vec<i64> = Vec::new();
            for step in cuts {
                now += step;
                let due = take_due(next, now, interval, catch_up);
                if let Some((a, b, n)) = due.missed {
                    prop_assert_eq!((b - a) / interval + 1, n);
                    prop_assert!(now - b > catch_up, "only slots older than the catch-up window are missed");
                    let mut s = a;
                    while s <= b { handled.push(s); s += interval; }
                }
                if let Some((a, b)) = due.publish {
                    prop_assert!(b <= now && now - b < interval, "the latest due slot is always published");
                    prop_assert!(a == b || now - a <= catch_up, "late slots only within the catch-up window");
                    let mut s = a;
                    while s <= b { handled.push(s); s += interval; }
                }
                prop_assert!(due.next > now);
                next = due.next;
            }
            let expected: Vec<i64> = (0..).map(|k| first + k * interval).take_while(|s| *s < next).collect();
            prop_assert_eq!(handled, expected);
        }
    }
}
