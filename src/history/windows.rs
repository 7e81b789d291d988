//! The maintenance windows as the writers of history see them: loaded from
//! `maintenance_windows` and cached for a few seconds per process, so a
//! batch of results does not read the table every time. A window declared
//! a moment ago may be missed by live upkeep for that long;
//! `sentryk8s rollups rebuild` recounts with the windows as stored.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::model::maintenance::WindowSpec;

/// How long a loaded set of windows is used before it is read again.
pub const REFRESH: Duration = Duration::from_secs(5);

/// The declared windows, by name.
#[derive(Debug, Clone, Default)]
pub struct Windows(Vec<(String, WindowSpec)>);

impl Windows {
    pub fn new(list: Vec<(String, WindowSpec)>) -> Windows {
        Windows(list)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The windows that cover check `name` with `labels` (any time).
    pub fn for_check(&self, name: &str, labels: &BTreeMap<String, String>) -> Vec<&WindowSpec> {
        self.0.iter().filter(|(_, w)| w.applies_to(name, labels)).map(|(_, w)| w).collect()
    }

    /// Whether `t` falls in a window covering check `name` with `labels`.
    pub fn covers(&self, name: &str, labels: &BTreeMap<String, String>, t: DateTime<Utc>) -> bool {
        self.0.iter().any(|(_, w)| w.applies_to(name, labels) && w.active_at(t))
    }
}

/// A per-process cache of [`Windows`], refreshed every [`REFRESH`].
#[derive(Debug, Default)]
pub struct Cache(Mutex<Option<(Instant, Arc<Windows>)>>);

impl Cache {
    /// The cached windows, if loaded less than [`REFRESH`] ago.
    pub fn fresh(&self) -> Option<Arc<Windows>> {
        let guard = self.0.lock().ok()?;
        guard.as_ref().filter(|(at, _)| at.elapsed() < REFRESH).map(|(_, w)| Arc::clone(w))
    }

    pub fn put(&self, windows: Windows) -> Arc<Windows> {
        let windows = Arc::new(windows);
        if let Ok(mut guard) = self.0.lock() {
            *guard = Some((Instant::now(), Arc::clone(&windows)));
        }
        windows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::maintenance::Schedule;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn once(checks: &[&str]) -> WindowSpec {
        WindowSpec {
            time_zone: "UTC".into(),
            schedule: Schedule::Once { start: utc("2026-01-01T00:00:00Z"), end: utc("2026-01-01T01:00:00Z") },
            checks: checks.iter().map(|c| c.to_string()).collect(),
            labels: BTreeMap::new(),
            description: None,
        }
    }

    #[test]
    fn covers_only_the_checks_it_names_inside_its_time() {
        let w = Windows::new(vec![("deploy".into(), once(&["api"]))]);
        let none = BTreeMap::new();
        assert!(w.covers("api", &none, utc("2026-01-01T00:30:00Z")));
        assert!(!w.covers("api", &none, utc("2026-01-01T01:00:00Z")));
        assert!(!w.covers("web", &none, utc("2026-01-01T00:30:00Z")));
        assert_eq!(w.for_check("api", &none).len(), 1);
        assert!(w.for_check("web", &none).is_empty());
    }

    #[test]
    fn the_cache_is_fresh_only_after_a_put() {
        let c = Cache::default();
        assert!(c.fresh().is_none());
        c.put(Windows::default());
        assert!(c.fresh().is_some());
    }
}
