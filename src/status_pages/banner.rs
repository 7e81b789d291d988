//! What a status page says about its checks (pure): each check's current
//! state, a group's or the page's overall banner, and their names in
//! Atlassian Statuspage's vocabulary (`summary.json`). The rules are
//! documented for page readers in docs/status-pages.md; they are:
//!
//! A check's **current state**, first rule that applies:
//! 1. paused (disabled) → *paused*;
//! 2. inside an active maintenance window covering it → *maintenance*;
//! 3. down (the failure threshold was reached) → *down*;
//! 4. up, but its latest run(s) failed below the threshold → *degraded*;
//! 5. up → *up*; no result yet → *unknown*.
//!
//! The **banner** of a set of checks (a group or the whole page) counts
//! the checks neither paused nor unknown nor in maintenance ("active"):
//! 1. some are down: half of the active ones or more → *major outage*,
//!    fewer → *partial outage*;
//! 2. else some are degraded → *degraded*;
//! 3. else some are in maintenance → *under maintenance*;
//! 4. else → *all operational* (also when nothing has data yet).
//!
//! An outage outranks maintenance: a check down outside its window is
//! news even while another is being worked on.

use serde::Serialize;

/// A check's state now, as a page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Current {
    Up,
    Degraded,
    Down,
    Maintenance,
    Paused,
    Unknown,
}

impl Current {
    /// From the stored facts: `state` is up, down, unknown or paused (the
    /// web store's STATE expression); `failing` is the number of
    /// consecutive failed runs; `in_maintenance` whether a window covering
    /// the check is active now.
    pub fn of(state: &str, failing: i32, in_maintenance: bool) -> Current {
        match state {
            "paused" => Current::Paused,
            _ if in_maintenance => Current::Maintenance,
            "down" => Current::Down,
            "up" if failing > 0 => Current::Degraded,
            "up" => Current::Up,
            _ => Current::Unknown,
        }
    }

    /// In words, for the page (never colour alone).
    pub fn text(self) -> &'static str {
        match self {
            Current::Up => "Operational",
            Current::Degraded => "Degraded",
            Current::Down => "Down",
            Current::Maintenance => "Maintenance",
            Current::Paused => "Paused",
            Current::Unknown => "No data",
        }
    }

    /// The CSS class and the icon's name.
    pub fn class(self) -> &'static str {
        match self {
            Current::Up => "up",
            Current::Degraded => "degraded",
            Current::Down => "down",
            Current::Maintenance => "maintenance",
            Current::Paused => "paused",
            Current::Unknown => "unknown",
        }
    }

    /// A Statuspage component status. Statuspage has no "unknown" nor
    /// "paused": a check without data or paused claims nothing and reads
    /// `operational`, as a component nobody has flagged does.
    pub fn component_status(self) -> &'static str {
        match self {
            Current::Up | Current::Paused | Current::Unknown => "operational",
            Current::Degraded => "degraded_performance",
            Current::Down => "major_outage",
            Current::Maintenance => "under_maintenance",
        }
    }
}

/// The overall state of a group or a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Banner {
    Operational,
    Degraded,
    PartialOutage,
    MajorOutage,
    Maintenance,
}

impl Banner {
    /// The banner of `checks` (the module's rules).
    pub fn of(checks: &[Current]) -> Banner {
        let count = |c: Current| checks.iter().filter(|x| **x == c).count();
        let (down, degraded, maintenance) =
            (count(Current::Down), count(Current::Degraded), count(Current::Maintenance));
        let active = count(Current::Up) + degraded + down;
        if down > 0 {
            if down * 2 >= active {
                Banner::MajorOutage
            } else {
                Banner::PartialOutage
            }
        } else if degraded > 0 {
            Banner::Degraded
        } else if maintenance > 0 {
            Banner::Maintenance
        } else {
            Banner::Operational
        }
    }

    /// The banner's sentence (Statuspage's `status.description`).
    pub fn text(self) -> &'static str {
        match self {
            Banner::Operational => "All Systems Operational",
            Banner::Degraded => "Degraded Performance",
            Banner::PartialOutage => "Partial System Outage",
            Banner::MajorOutage => "Major System Outage",
            Banner::Maintenance => "Service Under Maintenance",
        }
    }

    /// The CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Banner::Operational => "operational",
            Banner::Degraded => "degraded",
            Banner::PartialOutage => "partial",
            Banner::MajorOutage => "major",
            Banner::Maintenance => "maint",
        }
    }

    /// Statuspage's `status.indicator`.
    pub fn indicator(self) -> &'static str {
        match self {
            Banner::Operational => "none",
            Banner::Degraded => "minor",
            Banner::PartialOutage => "major",
            Banner::MajorOutage => "critical",
            Banner::Maintenance => "maintenance",
        }
    }

    /// A group's Statuspage component status.
    pub fn component_status(self) -> &'static str {
        match self {
            Banner::Operational => "operational",
            Banner::Degraded => "degraded_performance",
            Banner::PartialOutage => "partial_outage",
            Banner::MajorOutage => "major_outage",
            Banner::Maintenance => "under_maintenance",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Current::*;

    #[test]
    fn a_checks_state_follows_the_first_rule_that_applies() {
        // (state, failing, in maintenance) → current
        let cases = [
            ("paused", 0, false, Paused),
            ("paused", 3, true, Paused),
            ("down", 5, true, Maintenance),
            ("up", 0, true, Maintenance),
            ("unknown", 0, true, Maintenance),
            ("down", 5, false, Down),
            ("down", 0, false, Down),
            ("up", 1, false, Degraded),
            ("up", 0, false, Up),
            ("unknown", 0, false, Unknown),
            ("unknown", 2, false, Unknown),
            ("something else", 0, false, Unknown),
        ];
        for (state, failing, maint, want) in cases {
            assert_eq!(Current::of(state, failing, maint), want, "{state} {failing} {maint}");
        }
    }

    /// Every multiset of up to 4 checks over the six states: the banner
    /// against the rules written out independently.
    #[test]
    fn the_banner_follows_its_rules_for_every_mix_of_states() {
        let all = [Up, Degraded, Down, Maintenance, Paused, Unknown];
        let mut mixes: Vec<Vec<Current>> = vec![vec![]];
        let mut frontier: Vec<Vec<Current>> = vec![vec![]];
        for _ in 0..4 {
            frontier = frontier
                .iter()
                .flat_map(|m| all.iter().map(move |s| [m.as_slice(), &[*s]].concat()))
                .collect();
            mixes.extend(frontier.iter().cloned());
        }
        assert_eq!(mixes.len(), 1 + 6 + 36 + 216 + 1296);
        for mix in mixes {
            let n = |s: Current| mix.iter().filter(|c| **c == s).count();
            let active = n(Up) + n(Degraded) + n(Down);
            let want = if n(Down) > 0 && 2 * n(Down) >= active {
                Banner::MajorOutage
            } else if n(Down) > 0 {
                Banner::PartialOutage
            } else if n(Degraded) > 0 {
                Banner::Degraded
            } else if n(Maintenance) > 0 {
                Banner::Maintenance
            } else {
                Banner::Operational
            };
            assert_eq!(Banner::of(&mix), want, "{mix:?}");
        }
    }

    #[test]
    fn examples_people_check_by_hand() {
        assert_eq!(Banner::of(&[]), Banner::Operational);
        assert_eq!(Banner::of(&[Unknown, Paused]), Banner::Operational);
        assert_eq!(Banner::of(&[Down]), Banner::MajorOutage);
        assert_eq!(Banner::of(&[Down, Up]), Banner::MajorOutage, "half is major");
        assert_eq!(Banner::of(&[Down, Up, Up]), Banner::PartialOutage);
        assert_eq!(
            Banner::of(&[Down, Maintenance, Maintenance]),
            Banner::MajorOutage,
            "outage outranks maintenance"
        );
        assert_eq!(Banner::of(&[Up, Maintenance]), Banner::Maintenance);
        assert_eq!(Banner::of(&[Degraded, Maintenance]), Banner::Degraded);
    }

    #[test]
    fn statuspage_names_are_from_its_enums() {
        let components =
            ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"];
        let indicators = ["none", "minor", "major", "critical", "maintenance"];
        for c in [Up, Degraded, Down, Maintenance, Paused, Unknown] {
            assert!(components.contains(&c.component_status()));
            assert!(!c.text().is_empty() && !c.class().is_empty());
        }
        for b in [
            Banner::Operational,
            Banner::Degraded,
            Banner::PartialOutage,
            Banner::MajorOutage,
            Banner::Maintenance,
        ] {
            assert!(components.contains(&b.component_status()));
            assert!(indicators.contains(&b.indicator()));
        }
    }
}
