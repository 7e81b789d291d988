//! Reports over any window: which data answers it (raw results, hourly or
//! daily rollups), time by state, incidents and response times per check;
//! the per-bucket bars of status pages; the incident list. The CLI's
//! `report` and `incidents` and the web role read history through here.
//!
//! Which data answers a window ([`choose`]):
//! - **raw** results when the window is at most [`RAW_MAX`] long and lies
//!   inside the raw retention: each slot's time is clipped to the window
//!   exactly, counted by `rollup.rs` like the rollups are;
//! - else **hourly** rollups when it is at most [`HOURLY_MAX`] long and
//!   inside the hourly retention;
//! - else **daily** rollups (kept for ever).
//!
//! Rollups answer whole buckets: the window's start is floored to its
//! bucket and its end rounded up to one ([`Window`] is what was answered);
//! a window reaching now ends in the live bucket, still filling.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::buckets::{from_ms, to_ms, Granularity, DAY_MS};
use super::rollup::{self, ResultFact, Tally};
use super::store;
use super::uptime::{self, Durations};
use crate::model::redact::{scrub, secrets};
use crate::model::CheckSpec;

/// Longest window answered from raw results (3 hours: 10,800 slots per
/// check at a 1-second interval, still one quick read).
pub const RAW_MAX: Duration = Duration::from_secs(3 * 3600);
/// Longest window answered from hourly rollups (7 days: 168 rows per check).
pub const HOURLY_MAX: Duration = Duration::from_secs(7 * 86_400);

/// The data a report is answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Raw,
    Hour,
    Day,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Raw => "raw",
            Source::Hour => "hour",
            Source::Day => "day",
        }
    }

    /// The rollup granularity, `None` for raw results.
    pub fn granularity(self) -> Option<Granularity> {
        match self {
            Source::Raw => None,
            Source::Hour => Some(Granularity::Hour),
            Source::Day => Some(Granularity::Day),
        }
    }

    /// "raw results", "hourly rollups", "daily rollups".
    pub fn describe(self) -> &'static str {
        match self {
            Source::Raw => "raw results",
            Source::Hour => "hourly rollups",
            Source::Day => "daily rollups",
        }
    }
}

/// How long each kind of data is kept, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `results.retention_days`.
    pub raw_days: u32,
    /// `history.hourly_retention_days`.
    pub hourly_days: u32,
}

impl Retention {
    /// The default of `history.hourly_retention_days`.
    pub const DEFAULT_HOURLY_DAYS: u32 = 90;
}

/// Which data answers `[from, to)` at `now` (see the module's rules).
/// Retention is counted back from `now`: data is dropped by age.
pub fn choose(from: DateTime<Utc>, to: DateTime<Utc>, now: DateTime<Utc>, retention: Retention) -> Source {
    let (from, to, now) = (to_ms(from), to_ms(to), to_ms(now));
    let span = to.saturating_sub(from);
    let kept_since = |days: u32| now.saturating_sub(i64::from(days).saturating_mul(DAY_MS));
    if span <= RAW_MAX.as_millis() as i64 && from >= kept_since(retention.raw_days) {
        Source::Raw
    } else if span <= HOURLY_MAX.as_millis() as i64
        && Granularity::Hour.floor(from) >= kept_since(retention.hourly_days)
    {
        Source::Hour
    } else {
        Source::Day
    }
}

/// The window a report answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub source: Source,
    pub from: DateTime<Utc>,
    /// Never after now.
    pub to: DateTime<Utc>,
    /// Whether the window reaches now (its last bucket still fills).
    pub live: bool,
}

/// The window `source` answers for `[from, to)` at `now`: exact for raw
/// results, whole buckets for rollups; its end is at most `now`.
pub fn answered(source: Source, from: DateTime<Utc>, to: DateTime<Utc>, now: DateTime<Utc>) -> Window {
    let (from, to) = match source.granularity() {
        None => (from, to),
        Some(g) => (from_ms(g.floor(to_ms(from))), from_ms(g.ceil(to_ms(to)))),
    };
    Window { source, from, to: to.min(now), live: to >= now }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{flag}: \"{text}\" is not an RFC 3339 time ({why}); write it like 2026-11-01T00:00:00Z")]
    BadTime { flag: &'static str, text: String, why: String },
    #[error("{flag}: {why}")]
    BadDuration { flag: &'static str, why: String },
    #[error("the window is empty: it must start before it ends ({from} is not before {to})")]
    EmptyWindow { from: String, to: String },
    #[error("--label: \"{0}\" is not key=value")]
    BadLabel(String),
    #[error("no check named {}", .0.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", "))]
    UnknownChecks(Vec<String>),
    #[error("database error: {0}")]
    Db(String),
}

impl HistoryError {
    /// Whether the caller asked for something that cannot be answered (bad
    /// input: exit status 2, HTTP 400) rather than the database failing.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, HistoryError::Db(_))
    }
}

impl From<tokio_postgres::Error> for HistoryError {
    fn from(e: tokio_postgres::Error) -> Self {
        HistoryError::Db(crate::db::error_chain(&e))
    }
}

/// Parses a `--from`/`--to` value.
pub fn parse_time(flag: &'static str, text: &str) -> Result<DateTime<Utc>, HistoryError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| HistoryError::BadTime { flag, text: text.to_string(), why: e.to_string() })
}

/// The window `[now - since, now)` of a `--since` value ("30d", "24h", "90m").
pub fn since(flag: &'static str, text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, HistoryError> {
    let bad = |why: String| HistoryError::BadDuration { flag, why };
    let d = crate::config::parse_duration(text).map_err(bad)?;
    let d = chrono::Duration::from_std(d).map_err(|_| bad(format!("\"{text}\" is too long")))?;
    if d.is_zero() {
        return Err(bad(format!("\"{text}\" is an empty window")));
    }
    now.checked_sub_signed(d).ok_or_else(|| bad(format!("\"{text}\" reaches before any time")))
}

/// Checks that `[from, to)` is not empty.
pub fn check_window(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), HistoryError> {
    if from < to {
        Ok(())
    } else {
        Err(HistoryError::EmptyWindow { from: timestamp(&from), to: timestamp(&to) })
    }
}

/// Parses a `-l key=value` selector.
pub fn parse_label(text: &str) -> Result<(String, String), HistoryError> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(HistoryError::BadLabel(text.to_string())),
    }
}

/// RFC 3339 in UTC, with fractions only when there are some.
pub fn timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Which checks a report covers: all declared checks, or those named, and
/// only those carrying every label given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub checks: Vec<String>,
    pub labels: Vec<(String, String)>,
}

impl Selection {
    fn is_all(&self) -> bool {
        self.checks.is_empty() && self.labels.is_empty()
    }

    fn labels_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.labels.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect(),
        )
    }
}

/// One check's line of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub name: String,
    pub check_id: i64,
    pub durations: Durations,
    /// up / (up + down) in percent; `None` without up or down time.
    pub uptime_percent: Option<f64>,
    /// Incidents open at some time in the window.
    pub incidents: i64,
    /// Mean time to recovery of those resolved (whole incidents, not
    /// clipped to the window).
    pub mttr_seconds: Option<f64>,
    /// The longest of them; one still open counts until the window's end.
    pub longest_outage_seconds: Option<f64>,
    /// Response time percentiles of the successful runs, from the latency
    /// histogram (raw windows build one with the same buckets, so a raw and
    /// a rollup answer agree).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Mean response time of the successful runs.
    pub mean_ms: Option<f64>,
    pub runs: i64,
    pub failures: i64,
}

impl ReportRow {
    fn new(check_id: i64, name: String, tally: &Tally, incidents: Option<store::IncidentSums>) -> ReportRow {
        let successes = tally.runs - tally.failures;
        ReportRow {
            name,
            check_id,
            durations: tally.durations,
            uptime_percent: tally.durations.uptime_percent(),
            incidents: incidents.map_or(0, |i| i.count),
            mttr_seconds: incidents.and_then(|i| i.mttr_seconds),
            longest_outage_seconds: incidents.and_then(|i| i.longest_seconds),
            p50_ms: tally.quantile_ms(0.5),
            p95_ms: tally.quantile_ms(0.95),
            p99_ms: tally.quantile_ms(0.99),
            mean_ms: (successes > 0).then(|| tally.total_us_sum as f64 / 1000.0 / successes as f64),
            runs: tally.runs,
            failures: tally.failures,
        }
    }
}

/// A report: one row per selected check (declared now), by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub source: Source,
    /// The window answered (see [`answered`]).
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Whether the window reaches now.
    pub live: bool,
    pub rows: Vec<ReportRow>,
}

/// The report of `[from, to)` at `now`, from the data [`choose`] picks.
pub async fn report(
    client: &impl tokio_postgres::GenericClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    retention: Retention,
    selection: &Selection,
) -> Result<Report, HistoryError> {
    check_window(from, to)?;
    report_from(client, choose(from, to, now, retention), from, to, now, selection).await
}

/// The report of `[from, to)` at `now` from `source` (whatever the
/// retention: data already dropped simply counts as none).
pub async fn report_from(
    client: &impl tokio_postgres::GenericClient,
    source: Source,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    selection: &Selection,
) -> Result<Report, HistoryError> {
    check_window(from, to)?;
    let unknown = store::unknown_names(client, &selection.checks, false).await?;
    if !unknown.is_empty() {
        return Err(HistoryError::UnknownChecks(unknown));
    }
    let window = answered(source, from, to, now);
    let checks = store::select_checks(client, &selection.checks, &selection.labels_json()).await?;
    let ids: Vec<i64> = checks.iter().map(|c| c.id).collect();
    // Every check when nothing narrows the selection: no id list to send.
    let scope = (!selection.is_all()).then_some(ids.as_slice());
    // The sums and the incidents are read at once: tokio-postgres pipelines
    // the two statements on the one connection, so the second is not held
    // back while the first's rows are sent and decoded.
    let sums = async {
        if window.from >= window.to || checks.is_empty() {
            Ok(HashMap::new())
        } else {
            match source.granularity() {
                Some(g) => Ok(store::sum_rollups(client, g, scope, window.from, window.to).await?),
                None => raw_tallies(client, &checks, window.from, window.to).await,
            }
        }
    };
    let incidents = async {
        if checks.is_empty() {
            Ok(HashMap::new())
        } else {
            store::incident_sums(client, scope, window.from, window.to, window.to)
                .await
                .map_err(HistoryError::from)
        }
    };
    let (mut tallies, incidents) = tokio::try_join!(sums, incidents)?;
    let rows = checks
        .into_iter()
        .map(|c| {
            let tally = tallies.remove(&c.id).unwrap_or_default();
            ReportRow::new(c.id, c.name, &tally, incidents.get(&c.id).copied())
        })
        .collect();
    Ok(Report { source, from: window.from, to: window.to, live: window.live, rows })
}

/// Raw results and missed slots of `checks` counted exactly inside
/// `[from, to)`, by `rollup.rs` (the categories and maintenance rule of
/// live upkeep: a slot is in maintenance when a window covering the check
/// is active at its start).
async fn raw_tallies(
    client: &impl tokio_postgres::GenericClient,
    checks: &[store::CheckRef],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashMap<i64, Tally>, HistoryError> {
    let ids: Vec<i64> = checks.iter().map(|c| c.id).collect();
    let windows = store::read_windows(client).await?;
    let covering: HashMap<i64, Vec<&crate::model::maintenance::WindowSpec>> =
        checks.iter().map(|c| (c.id, windows.for_check(&c.name, &c.labels))).collect();
    let covered = |check_id: i64, slot_ms: i64| {
        covering.get(&check_id).is_some_and(|w| w.iter().any(|w| w.active_at(from_ms(slot_ms))))
    };
    let (from_ms_, to_ms_) = (to_ms(from), to_ms(to));
    let mut tallies: HashMap<i64, Tally> = HashMap::new();
    for r in store::raw_results(client, &ids, from, to).await? {
        let slot_ms = to_ms(r.slot);
        let fact = ResultFact {
            check_id: r.check_id,
            slot_ms,
            interval_ms: r.interval_ms,
            category: uptime::of_result(r.state.as_deref(), r.success, covered(r.check_id, slot_ms)),
            success: r.success,
            total_ms: r.total_ms,
        };
        rollup::add_result_in(tallies.entry(r.check_id).or_default(), &fact, from_ms_, to_ms_);
    }
    for fact in store::raw_missed(client, &ids, from, to).await? {
        let check_id = fact.check_id;
        let slot_covered = |slot: i64| covered(check_id, slot);
        let any_window = covering.get(&check_id).is_some_and(|w| !w.is_empty());
        rollup::add_missed_in(
            tallies.entry(check_id).or_default(),
            &fact,
            any_window.then_some(&slot_covered as &dyn Fn(i64) -> bool),
            from_ms_,
            to_ms_,
        );
    }
    Ok(tallies)
}

/// The rollup rows of `check_ids` per bucket of `by` from the bucket
/// holding `from` up to `to` (exclusive), for bars on a status page: every
/// bucket is present, zero where no row exists (no data), in time order.
/// Unknown ids get all-zero buckets.
pub async fn bars(
    client: &impl tokio_postgres::GenericClient,
    check_ids: &[i64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    by: Granularity,
) -> Result<BTreeMap<i64, Vec<(DateTime<Utc>, Tally)>>, HistoryError> {
    check_window(from, to)?;
    let buckets = bucket_starts(to_ms(from), to_ms(to), by);
    let start = buckets.first().copied().unwrap_or_else(|| by.floor(to_ms(from)));
    let mut rows: HashMap<(i64, i64), Tally> = store::rollup_rows(client, by, check_ids, from_ms(start), to)
        .await?
        .into_iter()
        .map(|(id, bucket, t)| ((id, to_ms(bucket)), t))
        .collect();
    Ok(check_ids
        .iter()
        .map(|id| {
            let bars =
                buckets.iter().map(|b| (from_ms(*b), rows.remove(&(*id, *b)).unwrap_or_default())).collect();
            (*id, bars)
        })
        .collect())
}

/// The starts of the buckets of `by` from the one holding `from` up to `to`
/// (exclusive).
fn bucket_starts(from: i64, to: i64, by: Granularity) -> Vec<i64> {
    std::iter::successors(Some(by.floor(from)), |b| b.checked_add(by.width_ms()))
        .take_while(|b| *b < to)
        .collect()
}

/// Which incidents to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    /// Only those of the check of this name (declared now or not).
    pub check: Option<String>,
    /// Only those not resolved yet.
    pub open_only: bool,
    /// Only those open at some time since then.
    pub since: Option<DateTime<Utc>>,
}

/// An incident as shown: errors with the check's secrets masked.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub check: String,
    pub check_id: i64,
    pub opened_at: DateTime<Utc>,
    pub confirmed_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// "recovered", "paused" or "deleted"; `None` while open.
    pub resolution: Option<String>,
    pub first_error: Option<String>,
    pub last_error: Option<String>,
    pub in_maintenance: bool,
    pub alerts_sent: i32,
}

impl Incident {
    /// From opened to resolved (or to `now` while open), in seconds.
    pub fn duration_seconds(&self, now: DateTime<Utc>) -> f64 {
        let end = self.resolved_at.unwrap_or(now);
        ((end - self.opened_at).num_milliseconds().max(0)) as f64 / 1000.0
    }
}

/// What a stored error becomes when shown. A target may echo a request's
/// token back into an error message: it is scrubbed with the secrets of
/// the check's spec; without a readable spec (the check was deleted),
/// nothing is known to be safe, so the text is hidden.
fn shown_error(error: Option<String>, secrets: Option<&[String]>) -> Option<String> {
    match (error, secrets) {
        (None, _) => None,
        (Some(e), Some(s)) => Some(scrub(&e, s)),
        (Some(_), None) => Some("(hidden: the check is no longer declared)".to_string()),
    }
}

/// The incidents `filter` selects, newest first.
pub async fn incidents(
    client: &impl tokio_postgres::GenericClient,
    filter: &IncidentFilter,
) -> Result<Vec<Incident>, HistoryError> {
    if let Some(name) = &filter.check {
        let unknown = store::unknown_names(client, std::slice::from_ref(name), true).await?;
        if !unknown.is_empty() {
            return Err(HistoryError::UnknownChecks(unknown));
        }
    }
    let rows = store::incident_rows(client, filter.check.as_deref(), filter.open_only, filter.since).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let spec: Option<CheckSpec> = r.spec.and_then(|s| serde_json::from_value(s).ok());
            let secrets = spec.as_ref().map(secrets);
            Incident {
                id: r.id,
                check: r.check_name,
                check_id: r.check_id,
                opened_at: r.opened_at,
                confirmed_at: r.confirmed_at,
                resolved_at: r.resolved_at,
                resolution: r.resolution,
                first_error: shown_error(r.first_error, secrets.as_deref()),
                last_error: shown_error(r.last_error, secrets.as_deref()),
                in_maintenance: r.in_maintenance,
                alerts_sent: r.alerts_sent,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests;
