//! Everything one status page shows, read and assembled: its checks in
//! their groups (each check once, in the first group selecting it), each
//! with its state now, 90 daily bars, uptime over 24 h, 7 d, 30 d and 90
//! d and, when the page asks, p50/p95 per hour over 24 h; the banner; the
//! incidents of the last 14 days and those still open; maintenance going
//! on or starting within a week. The web role renders it as HTML
//! (`/status/{slug}`) and as Statuspage's `summary.json`.
//!
//! What a page may reveal is decided here: only the checks its groups
//! select, only their incidents (times, never errors) and only the
//! windows covering them (their names and descriptions, and of their
//! checks only those on the page).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::banner::{Banner, Current};
use super::model::{GroupSpec, PageSpec};
use super::store::{self, PageCheck, PageIncident, StoredPage};
use crate::history::buckets::{from_ms, to_ms, Granularity, DAY_MS};
use crate::history::report::{self, HistoryError};
use crate::history::uptime::Durations;
use crate::model::maintenance::{parse_tz, resolve_local, Schedule, WindowSpec};

/// Daily bars on a page.
pub const DAYS: usize = 90;
/// How far back the incident history goes.
pub const INCIDENT_DAYS: i64 = 14;
/// How far ahead upcoming maintenance is shown.
pub const MAINTENANCE_AHEAD_DAYS: i64 = 7;

/// One day of one check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Day {
    pub day: NaiveDate,
    pub durations: Durations,
    /// Incidents open at some time that day.
    pub incidents: u32,
}

/// One hour's response-time percentiles (successful runs), in ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hour {
    pub at: DateTime<Utc>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// The uptime windows of a check row, in this order.
pub const UPTIME_WINDOWS: [&str; 4] = ["24h", "7d", "30d", "90d"];

#[derive(Debug, Clone, PartialEq)]
pub struct CheckView {
    pub id: i64,
    pub name: String,
    pub current: Current,
    /// Since when the state (up, down, …) holds.
    pub since: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// [`DAYS`] days, oldest first, the last one today (still filling).
    pub days: Vec<Day>,
    /// Uptime percent over [`UPTIME_WINDOWS`]; `None` without up or down time.
    pub uptime: [Option<f64>; 4],
    /// The last 24 hours, when the page shows response times.
    pub hours: Option<Vec<Hour>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub name: String,
    pub banner: Banner,
    pub checks: Vec<CheckView>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IncidentView {
    pub id: i64,
    pub check: String,
    pub opened_at: DateTime<Utc>,
    pub confirmed_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub in_maintenance: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceView {
    pub name: String,
    pub description: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Going on now (else upcoming).
    pub ongoing: bool,
    /// The checks of this page it covers.
    pub checks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PageView {
    pub slug: String,
    pub spec: PageSpec,
    pub created_at: DateTime<Utc>,
    /// The latest change of the page or of one of its checks' states.
    pub updated_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub banner: Banner,
    pub groups: Vec<GroupView>,
    /// Open ones first, then the last [`INCIDENT_DAYS`] days, newest first.
    pub incidents: Vec<IncidentView>,
    /// Ongoing first, then upcoming, by start.
    pub maintenance: Vec<MaintenanceView>,
}

impl PageView {
    pub fn checks(&self) -> impl Iterator<Item = &CheckView> {
        self.groups.iter().flat_map(|g| &g.checks)
    }

    pub fn open_incidents(&self) -> impl Iterator<Item = &IncidentView> {
        self.incidents.iter().filter(|i| i.resolved_at.is_none())
    }

    pub fn past_incidents(&self) -> impl Iterator<Item = &IncidentView> {
        self.incidents.iter().filter(|i| i.resolved_at.is_some())
    }
}

/// Each check once, in the first group that selects it; the checks of a
/// group in the order named, then the label-selected ones by name.
pub fn assign<'c>(groups: &[GroupSpec], checks: &'c [PageCheck]) -> Vec<Vec<&'c PageCheck>> {
    let mut placed: HashSet<i64> = HashSet::new();
    groups
        .iter()
        .map(|g| {
            let mut members: Vec<&PageCheck> = Vec::new();
            for name in &g.checks {
                if let Some(c) = checks.iter().find(|c| &c.name == name) {
                    if placed.insert(c.id) {
                        members.push(c);
                    }
                }
            }
            if !g.labels.is_empty() {
                for c in checks.iter().filter(|c| g.selects(&c.name, &c.labels)) {
                    if placed.insert(c.id) {
                        members.push(c);
                    }
                }
            }
            members
        })
        .collect()
}

/// The occurrence of `w` going on at `now`, and those starting after it
/// within `ahead`, in start order.
pub fn occurrences(
    w: &WindowSpec,
    now: DateTime<Utc>,
    ahead: Duration,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let horizon = now + ahead;
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = w.occurrence_at(now).into_iter().collect();
    match &w.schedule {
        Schedule::Once { start, end } => {
            if *start > now && *start < horizon {
                out.push((*start, *end));
            }
        }
        Schedule::Recurring { at, duration_ms, .. } => {
            let tz = parse_tz(&w.time_zone).unwrap_or(chrono_tz::Tz::UTC);
            let duration = Duration::milliseconds(i64::try_from(*duration_ms).unwrap_or(0));
            let today = now.with_timezone(&tz).date_naive();
            for offset in 0..=ahead.num_days() + 1 {
                let Some(date) = today.checked_add_signed(Duration::days(offset)) else { break };
                let start = resolve_local(tz, date.and_time(*at));
                // A recurring window runs on its days only: the start must
                // be an occurrence (occurrence_at judges that).
                if start > now && start < horizon && w.occurrence_at(start) == Some((start, start + duration))
                {
                    out.push((start, start + duration));
                }
            }
        }
    }
    out
}

/// Sums the durations of `days` whose day is at or after `from`.
fn uptime_since(days: &[Day], from: NaiveDate) -> Option<f64> {
    let mut total = Durations::default();
    for d in days.iter().filter(|d| d.day >= from) {
        total.merge(&d.durations);
    }
    total.uptime_percent()
}

/// Incidents per (check, day) for the bars: an incident counts on every
/// day it was open.
fn incidents_by_day(incidents: &[PageIncident], now: DateTime<Utc>) -> HashMap<(i64, NaiveDate), u32> {
    let mut out: HashMap<(i64, NaiveDate), u32> = HashMap::new();
    for i in incidents {
        let mut day = i.opened_at.date_naive();
        let last = i.resolved_at.unwrap_or(now).date_naive();
        // Bounded by the read (90 days back) and today.
        while day <= last && day <= now.date_naive() {
            *out.entry((i.check_id, day)).or_default() += 1;
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
    }
    out
}

/// Reads and assembles the page `page` (whose spec is `spec`) at `now`.
pub async fn load(
    db: &impl tokio_postgres::GenericClient,
    page: &StoredPage,
    spec: PageSpec,
    now: DateTime<Utc>,
) -> Result<PageView, HistoryError> {
    let names: Vec<String> = spec.groups.iter().flat_map(|g| g.checks.iter().cloned()).collect();
    let selectors: Vec<serde_json::Value> = spec
        .groups
        .iter()
        .filter(|g| !g.labels.is_empty())
        .map(|g| serde_json::to_value(&g.labels).unwrap_or(serde_json::Value::Null))
        .collect();
    let checks = store::page_checks(db, &names, &selectors).await?;
    let grouped = assign(&spec.groups, &checks);
    let ids: Vec<i64> = grouped.iter().flatten().map(|c| c.id).collect();

    let today = Granularity::Day.floor(to_ms(now));
    let first_ms = today - (DAYS as i64 - 1) * DAY_MS;
    let first_day = from_ms(first_ms);
    let hour_from = from_ms(Granularity::Hour.floor(to_ms(now - Duration::hours(24))));
    // The days of every check in one grid (row = the check's place in
    // `ids`, column = the day), filled straight from the rows: a page of
    // 200 checks reads 18,000 of them, so no map keyed by (check, day).
    let row_of: HashMap<i64, usize> = ids.iter().enumerate().map(|(row, id)| (*id, row)).collect();
    let mut grid = vec![Durations::default(); ids.len() * DAYS];
    let mut hours: HashMap<i64, Durations> = HashMap::new();
    let mut hourly: BTreeMap<i64, Vec<(DateTime<Utc>, crate::history::rollup::Tally)>> = BTreeMap::new();
    let mut incidents = Vec::new();
    let mut windows = Vec::new();
    if !ids.is_empty() {
        for (id, buckets) in store::durations(db, Granularity::Day, &ids, first_day, now).await? {
            let Some(row) = row_of.get(&id) else { continue };
            for (bucket, d) in buckets {
                let offset = to_ms(bucket) - first_ms;
                // Day buckets start at midnight UTC; anything else is no day of ours.
                if offset % DAY_MS != 0 {
                    continue;
                }
                if let Ok(day @ 0..DAYS) = usize::try_from(offset / DAY_MS) {
                    grid[row * DAYS + day] = d;
                }
            }
        }
        if spec.show_response_times {
            hourly = report::bars(db, &ids, hour_from, now, Granularity::Hour).await?;
            for (id, bars) in &hourly {
                let total = hours.entry(*id).or_default();
                for (_, t) in bars {
                    total.merge(&t.durations);
                }
            }
        } else {
            for (id, buckets) in store::durations(db, Granularity::Hour, &ids, hour_from, now).await? {
                let total = hours.entry(id).or_default();
                for (_, d) in buckets {
                    total.merge(&d);
                }
            }
        }
        incidents = store::incidents(db, &ids, first_day).await?;
        windows = store::windows(db).await?;
    }
    // The 90 dates, once for the page.
    let dates: Vec<NaiveDate> =
        (0..DAYS as i64).map(|i| from_ms(first_ms + i * DAY_MS).date_naive()).collect();
    let mut incident_grid = vec![0u32; ids.len() * DAYS];
    for ((id, day), n) in incidents_by_day(&incidents, now) {
        let column = dates.binary_search(&day);
        if let (Some(row), Ok(column)) = (row_of.get(&id), column) {
            incident_grid[row * DAYS + column] = n;
        }
    }

    let maintenance_now =
        |c: &PageCheck| windows.iter().any(|(_, w)| w.applies_to(&c.name, &c.labels) && w.active_at(now));
    let today_date = from_ms(today).date_naive();
    let mut groups = Vec::with_capacity(grouped.len());
    let mut updated_at = page.updated_at;
    for (g, members) in spec.groups.iter().zip(&grouped) {
        let mut views = Vec::with_capacity(members.len());
        for c in members {
            updated_at = updated_at.max(c.updated_at);
            let row = row_of.get(&c.id).copied().unwrap_or_default() * DAYS;
            let bars: Vec<Day> = dates
                .iter()
                .zip(&grid[row..row + DAYS])
                .zip(&incident_grid[row..row + DAYS])
                .map(|((day, durations), incidents)| Day {
                    day: *day,
                    durations: *durations,
                    incidents: *incidents,
                })
                .collect();
            let since = |n: i64| today_date - Duration::days(n - 1);
            let uptime = [
                hours.get(&c.id).and_then(Durations::uptime_percent),
                uptime_since(&bars, since(7)),
                uptime_since(&bars, since(30)),
                uptime_since(&bars, since(90)),
            ];
            let response = spec.show_response_times.then(|| {
                hourly
                    .get(&c.id)
                    .map(|b| {
                        b.iter()
                            .map(|(at, t)| Hour {
                                at: *at,
                                p50_ms: t.quantile_ms(0.5),
                                p95_ms: t.quantile_ms(0.95),
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            });
            views.push(CheckView {
                id: c.id,
                name: c.name.clone(),
                current: Current::of(&c.state, c.consecutive_failures, maintenance_now(c)),
                since: c.since,
                created_at: c.created_at,
                updated_at: c.updated_at,
                days: bars,
                uptime,
                hours: response,
            });
        }
        let states: Vec<Current> = views.iter().map(|v| v.current).collect();
        groups.push(GroupView { name: g.name.clone(), banner: Banner::of(&states), checks: views });
    }
    let all: Vec<Current> = groups.iter().flat_map(|g| g.checks.iter().map(|c| c.current)).collect();

    let names_by_id: HashMap<i64, &str> = grouped.iter().flatten().map(|c| (c.id, c.name.as_str())).collect();
    let history_from = now - Duration::days(INCIDENT_DAYS);
    let mut shown: Vec<IncidentView> = incidents
        .iter()
        .filter(|i| i.resolved_at.is_none_or(|r| r > history_from))
        .map(|i| IncidentView {
            id: i.id,
            check: names_by_id.get(&i.check_id).copied().unwrap_or_default().to_string(),
            opened_at: i.opened_at,
            confirmed_at: i.confirmed_at,
            resolved_at: i.resolved_at,
            resolution: i.resolution.clone(),
            in_maintenance: i.in_maintenance,
        })
        .collect();
    shown.sort_by_key(|i| (i.resolved_at.is_some(), std::cmp::Reverse(i.opened_at), std::cmp::Reverse(i.id)));

    let on_page: Vec<&PageCheck> = grouped.iter().flatten().copied().collect();
    let mut maintenance: Vec<MaintenanceView> = Vec::new();
    for (name, w) in &windows {
        let covered: Vec<String> =
            on_page.iter().filter(|c| w.applies_to(&c.name, &c.labels)).map(|c| c.name.clone()).collect();
        if covered.is_empty() {
            continue;
        }
        for (start, end) in occurrences(w, now, Duration::days(MAINTENANCE_AHEAD_DAYS)) {
            maintenance.push(MaintenanceView {
                name: name.clone(),
                description: w.description.clone(),
                start,
                end,
                ongoing: start <= now && now < end,
                checks: covered.clone(),
            });
        }
    }
    maintenance.sort_by_key(|m| (!m.ongoing, m.start));

    Ok(PageView {
        slug: page.slug.clone(),
        spec,
        created_at: page.created_at,
        updated_at,
        now,
        banner: Banner::of(&all),
        groups,
        incidents: shown,
        maintenance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveTime;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn check(id: i64, name: &str, labels: &[(&str, &str)]) -> PageCheck {
        PageCheck {
            id,
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            state: "up".into(),
            since: t("2026-11-01T00:00:00Z"),
            consecutive_failures: 0,
            created_at: t("2026-11-01T00:00:00Z"),
            updated_at: t("2026-11-01T00:00:00Z"),
        }
    }

    #[test]
    fn each_check_lands_once_in_the_first_group_that_selects_it() {
        let checks = [
            check(1, "api", &[("team", "web")]),
            check(2, "db", &[("team", "data")]),
            check(3, "shop", &[("team", "web")]),
        ];
        let groups = [
            GroupSpec {
                name: "Named".into(),
                checks: vec!["shop".into(), "missing".into()],
                labels: BTreeMap::new(),
            },
            GroupSpec {
                name: "Web".into(),
                checks: vec![],
                labels: [("team".to_string(), "web".to_string())].into_iter().collect(),
            },
            GroupSpec {
                name: "Again".into(),
                checks: vec!["api".into(), "db".into()],
                labels: BTreeMap::new(),
            },
        ];
        let placed = assign(&groups, &checks);
        let names: Vec<Vec<&str>> =
            placed.iter().map(|g| g.iter().map(|c| c.name.as_str()).collect()).collect();
        assert_eq!(names, vec![vec!["shop"], vec!["api"], vec!["db"]]);
    }

    #[test]
    fn maintenance_shows_what_goes_on_and_what_starts_within_the_horizon() {
        let now = t("2026-11-29T14:30:00Z"); // a Sunday
        let once = |start: &str, end: &str| WindowSpec {
            time_zone: "UTC".into(),
            schedule: Schedule::Once { start: t(start), end: t(end) },
            checks: vec![],
            labels: BTreeMap::new(),
            description: None,
        };
        let week = Duration::days(7);
        assert_eq!(
            occurrences(&once("2026-11-29T14:00:00Z", "2026-11-29T15:00:00Z"), now, week),
            vec![(t("2026-11-29T14:00:00Z"), t("2026-11-29T15:00:00Z"))],
            "ongoing"
        );
        assert_eq!(occurrences(&once("2026-12-01T00:00:00Z", "2026-12-01T01:00:00Z"), now, week).len(), 1);
        assert!(
            occurrences(&once("2026-12-07T00:00:00Z", "2026-12-07T01:00:00Z"), now, week).is_empty(),
            "too far"
        );
        assert!(
            occurrences(&once("2026-11-28T00:00:00Z", "2026-11-28T01:00:00Z"), now, week).is_empty(),
            "past"
        );
        let nightly = WindowSpec {
            time_zone: "UTC".into(),
            schedule: Schedule::Recurring {
                days: vec!["mon".into(), "wed".into()],
                at: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
                duration_ms: 3_600_000,
            },
            checks: vec![],
            labels: BTreeMap::new(),
            description: None,
        };
        assert_eq!(
            occurrences(&nightly, now, week),
            vec![
                (t("2026-11-30T02:00:00Z"), t("2026-11-30T03:00:00Z")),
                (t("2026-12-02T02:00:00Z"), t("2026-12-02T03:00:00Z")),
            ]
        );
        let during = t("2026-11-30T02:30:00Z");
        let got = occurrences(&nightly, during, Duration::days(1));
        assert_eq!(got, vec![(t("2026-11-30T02:00:00Z"), t("2026-11-30T03:00:00Z"))]);
    }

    #[test]
    fn an_incident_counts_on_every_day_it_was_open() {
        let now = t("2026-11-29T14:30:00Z");
        let i = |opened: &str, resolved: Option<&str>| PageIncident {
            id: 1,
            check_id: 7,
            opened_at: t(opened),
            confirmed_at: t(opened),
            resolved_at: resolved.map(t),
            resolution: None,
            in_maintenance: false,
        };
        let map = incidents_by_day(
            &[i("2026-11-27T23:00:00Z", Some("2026-11-28T01:00:00Z")), i("2026-11-28T10:00:00Z", None)],
            now,
        );
        let day = |d: &str| (7, NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap());
        assert_eq!(map.get(&day("2026-11-27")), Some(&1));
        assert_eq!(map.get(&day("2026-11-28")), Some(&2));
        assert_eq!(map.get(&day("2026-11-29")), Some(&1), "open until now");
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn uptime_over_days_sums_time_before_dividing() {
        let d = |day: u32, up: i64, down: i64| Day {
            day: NaiveDate::from_ymd_opt(2026, 11, day).unwrap(),
            durations: Durations { up_ms: up, down_ms: down, no_data_ms: 0, maintenance_ms: 0 },
            incidents: 0,
        };
        let days = [d(27, 100, 100), d(28, 1000, 0), d(29, 0, 0)];
        assert_eq!(uptime_since(&days, NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()), Some(100.0));
        let all = uptime_since(&days, NaiveDate::from_ymd_opt(2026, 11, 1).unwrap()).unwrap();
        assert!((all - 1100.0 / 12.0).abs() < 1e-9);
        assert_eq!(uptime_since(&days, NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()), None);
    }
}
