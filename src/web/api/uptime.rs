//! `GET /api/v1/checks/{name}/uptime`: time up, down, with no data and in
//! maintenance, and uptime %, over a window, in total and per hour or day,
//! from the history layer (`history::report`).
//!
//! - The **total** is a report of the window from the data
//!   [`choose`](crate::history::report::choose) picks: raw results (exact)
//!   for a short recent window, else hourly or daily rollups, which answer
//!   whole buckets; the answer names the data (`granularity`) and the
//!   window it covered (`from`, `to`).
//! - The **buckets** (`by=hour|day`) are the rollup rows of that
//!   granularity from the bucket holding the window's start up to now or
//!   the window's end, every bucket present (no row: all zero).

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::history::buckets::{from_ms, to_ms, Granularity, DAY_MS};
use crate::history::report::{self as history, HistoryError, Selection};
use crate::history::rollup::Tally;
use crate::history::uptime::Durations;
use crate::web::access::CanRead;
use crate::web::api::results::{bad_path, bad_query};
use crate::web::problem::Problem;
use crate::web::state::AppState;

/// The most buckets one answer holds (about 416 days by hour).
pub const MAX_BUCKETS: i64 = 10_000;

/// This file's routes, with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get))
}

/// The named windows, each ending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub enum Window {
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
    #[serde(rename = "90d")]
    Quarter,
    #[serde(rename = "365d")]
    Year,
}

impl Window {
    const ALL: [Window; 5] = [Window::Day, Window::Week, Window::Month, Window::Quarter, Window::Year];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Day => "24h",
            Window::Week => "7d",
            Window::Month => "30d",
            Window::Quarter => "90d",
            Window::Year => "365d",
        }
    }

    fn length(self) -> chrono::Duration {
        chrono::Duration::days(match self {
            Window::Day => 1,
            Window::Week => 7,
            Window::Month => 30,
            Window::Quarter => 90,
            Window::Year => 365,
        })
    }

    fn parse(text: &str) -> Result<Window, Problem> {
        Window::ALL.into_iter().find(|w| w.as_str() == text.trim()).ok_or_else(|| {
            Problem::bad_request(format!("window: \"{text}\" is not one of 24h, 7d, 30d, 90d, 365d"))
        })
    }
}

/// A bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum By {
    Hour,
    Day,
}

impl By {
    fn parse(text: &str) -> Result<By, Problem> {
        match text.trim() {
            "hour" => Ok(By::Hour),
            "day" => Ok(By::Day),
            _ => Err(Problem::bad_request(format!("by: \"{text}\" is not hour or day"))),
        }
    }

    fn granularity(self) -> Granularity {
        match self {
            By::Hour => Granularity::Hour,
            By::Day => Granularity::Day,
        }
    }
}

/// The data a total was counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Raw results: the window exactly.
    Raw,
    /// Hourly rollups: whole hours.
    Hour,
    /// Daily rollups: whole days.
    Day,
}

impl From<history::Source> for Source {
    fn from(s: history::Source) -> Source {
        match s {
            history::Source::Raw => Source::Raw,
            history::Source::Hour => Source::Hour,
            history::Source::Day => Source::Day,
        }
    }
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UptimeQuery {
    /// A window ending now; 24h unless `from` is given. Not with `from`/`to`.
    #[param(value_type = Option<Window>)]
    pub window: Option<String>,
    /// The window's start (RFC 3339), instead of `window`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// The window's end (RFC 3339, exclusive); now by default. Needs `from`.
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Also answer per bucket of this width (hourly buckets reach back as
    /// far as `history.hourly_retention_days`).
    #[param(value_type = Option<By>)]
    pub by: Option<String>,
}

/// Time by state and uptime, over a window or a bucket.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Uptime {
    pub up_seconds: f64,
    pub down_seconds: f64,
    /// Missed or stale slots, and results before the first state was known.
    pub no_data_seconds: f64,
    /// Slots inside a maintenance window covering the check.
    pub maintenance_seconds: f64,
    /// up / (up + down) × 100; null when there was neither (nothing to judge).
    #[schema(required = true)]
    pub uptime_percent: Option<f64>,
    /// Runs counted, and how many failed.
    pub runs: i64,
    pub failures: i64,
}

impl Uptime {
    fn new(durations: &Durations, runs: i64, failures: i64) -> Uptime {
        let s = |ms: i64| ms as f64 / 1000.0;
        Uptime {
            up_seconds: s(durations.up_ms),
            down_seconds: s(durations.down_ms),
            no_data_seconds: s(durations.no_data_ms),
            maintenance_seconds: s(durations.maintenance_ms),
            uptime_percent: durations.uptime_percent(),
            runs,
            failures,
        }
    }

    fn of(tally: &Tally) -> Uptime {
        Uptime::new(&tally.durations, tally.runs, tally.failures)
    }
}

/// One bucket of `by`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    /// The next bucket's start.
    pub end: DateTime<Utc>,
    #[serde(flatten)]
    pub uptime: Uptime,
}

/// A check's uptime over a window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UptimeReport {
    pub check: String,
    /// The named window asked for; null for `from`/`to`.
    #[schema(required = true)]
    pub window: Option<Window>,
    /// The data the total was counted from.
    pub granularity: Source,
    /// The window the total covers: exactly the one asked for from raw
    /// results; widened to whole hours or days from rollups; never past now.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Whether the window reaches now (its last bucket still fills).
    pub live: bool,
    pub total: Uptime,
    /// The bucket width asked for; null without `by`.
    #[schema(required = true)]
    pub by: Option<By>,
    /// Per bucket, in time order; empty without `by`.
    pub buckets: Vec<Bucket>,
}

/// What was asked: the window `[from, to)`, by name or by times, and the buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Asked {
    window: Option<Window>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    by: Option<By>,
}

fn bad(e: HistoryError) -> Problem {
    Problem::bad_request(e.to_string())
}

/// `query` checked, at `now`.
fn asked(query: &UptimeQuery, now: DateTime<Utc>) -> Result<Asked, Problem> {
    let by = query.by.as_deref().map(By::parse).transpose()?;
    let (window, from, to) = match (&query.window, &query.from, &query.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(Problem::bad_request("window: give either `window` or `from`/`to`, not both"))
        }
        (None, None, Some(_)) => return Err(Problem::bad_request("from: `to` needs `from`")),
        (Some(w), None, None) => {
            let w = Window::parse(w)?;
            (Some(w), now - w.length(), now)
        }
        (None, None, None) => (Some(Window::Day), now - Window::Day.length(), now),
        (None, Some(from), to) => {
            let from = history::parse_time("from", from).map_err(bad)?;
            let to = to.as_deref().map(|t| history::parse_time("to", t)).transpose().map_err(bad)?;
            (None, from, to.unwrap_or(now))
        }
    };
    history::check_window(from, to).map_err(bad)?;
    Ok(Asked { window, from, to, by })
}

/// A span of buckets: the first one's start, and where the last one stops.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// The buckets of `by` for `[from, to)` at `now`: from the bucket holding
/// `from` up to `to` or now. `None` when there are none (a window in the
/// future). Hourly buckets must lie within the hourly retention (the
/// oldest may be partly dropped already).
fn bucket_span(
    by: By,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    hourly_days: u32,
) -> Result<Option<Span>, Problem> {
    let g = by.granularity();
    let (start, end) = (g.floor(to_ms(from)), to_ms(to.min(now)));
    if start >= end {
        return Ok(None);
    }
    let count = (end - start + g.width_ms() - 1) / g.width_ms();
    if count > MAX_BUCKETS {
        return Err(Problem::bad_request(format!(
            "by: {count} buckets of a {} are too many (at most {MAX_BUCKETS}); use a shorter window or by=day",
            g.as_str()
        )));
    }
    if by == By::Hour {
        let kept_since = to_ms(now).saturating_sub(i64::from(hourly_days).saturating_mul(DAY_MS));
        if start.saturating_add(g.width_ms()) < kept_since {
            return Err(Problem::bad_request(format!(
                "by: hourly rollups are kept for {hourly_days} days (history.hourly_retention_days); \
                 use by=day for this window"
            )));
        }
    }
    Ok(Some((from_ms(start), from_ms(end))))
}

/// A check's uptime over a window, in total and per bucket.
#[utoipa::path(
    get,
    path = "/checks/{name}/uptime",
    tag = "uptime",
    operation_id = "getUptime",
    params(("name" = String, Path, description = "The check's name"), UptimeQuery),
    responses(
        (status = 200, description = "Time by state and uptime, in total and per bucket", body = UptimeReport),
        (status = 400, description = "A bad `window`, `from`, `to` or `by` (the detail names it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token (and `web.public_read` is off)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No check of this name", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit reached: see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    CanRead(_caller): CanRead,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<UptimeQuery>, QueryRejection>,
) -> Result<Json<UptimeReport>, Problem> {
    let Path(name) = name.map_err(bad_path)?;
    let Query(query) = query.map_err(bad_query)?;
    let now = Utc::now();
    let asked = asked(&query, now)?;
    let span = match asked.by {
        Some(by) => bucket_span(by, asked.from, asked.to, now, state.retention.hourly_days)?,
        None => None,
    };
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let selection = Selection { checks: vec![name.clone()], labels: Vec::new() };
    let report = history::report(&**client, asked.from, asked.to, now, state.retention, &selection)
        .await
        .map_err(|e| match e {
            HistoryError::UnknownChecks(_) => Problem::not_found(format!("no check named \"{name}\"")),
            HistoryError::Db(_) => Problem::unavailable(&e),
            e => bad(e),
        })?;
    // Deleted between the two statements of the report.
    let Some(row) = report.rows.into_iter().find(|r| r.name == name) else {
        return Err(Problem::not_found(format!("no check named \"{name}\"")));
    };
    let buckets = match (asked.by, span) {
        (Some(by), Some((start, end))) => {
            let g = by.granularity();
            let mut bars =
                history::bars(&**client, &[row.check_id], start, end, g).await.map_err(|e| {
                    match e.is_invalid_input() {
                        true => bad(e),
                        false => Problem::unavailable(&e),
                    }
                })?;
            bars.remove(&row.check_id)
                .unwrap_or_default()
                .into_iter()
                .map(|(start, tally)| Bucket {
                    start,
                    end: from_ms(to_ms(start).saturating_add(g.width_ms())),
                    uptime: Uptime::of(&tally),
                })
                .collect()
        }
        _ => Vec::new(),
    };
    Ok(Json(UptimeReport {
        check: name,
        window: asked.window,
        granularity: report.source.into(),
        from: report.from,
        to: report.to,
        live: report.live,
        total: Uptime::new(&row.durations, row.runs, row.failures),
        by: asked.by,
        buckets,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    const NOW: &str = "2026-11-29T14:30:00Z";

    fn q(window: Option<&str>, from: Option<&str>, to: Option<&str>, by: Option<&str>) -> UptimeQuery {
        UptimeQuery {
            window: window.map(Into::into),
            from: from.map(Into::into),
            to: to.map(Into::into),
            by: by.map(Into::into),
        }
    }

    #[test]
    fn named_windows_end_now_and_24h_is_the_default() {
        let now = t(NOW);
        let a = asked(&UptimeQuery::default(), now).unwrap();
        assert_eq!((a.window, a.from, a.to, a.by), (Some(Window::Day), t("2026-11-28T14:30:00Z"), now, None));
        for (name, days) in [("24h", 1), ("7d", 7), ("30d", 30), ("90d", 90), ("365d", 365)] {
            let a = asked(&q(Some(name), None, None, Some("day")), now).unwrap();
            assert_eq!(a.from, now - chrono::Duration::days(days), "{name}");
            assert_eq!(a.window.map(Window::as_str), Some(name));
            assert_eq!(a.by, Some(By::Day));
        }
    }

    #[test]
    fn from_and_to_give_the_window_and_to_defaults_to_now() {
        let now = t(NOW);
        let a =
            asked(&q(None, Some("2026-11-01T00:00:00Z"), Some("2026-11-02T00:00:00Z"), None), now).unwrap();
        assert_eq!((a.window, a.from, a.to), (None, t("2026-11-01T00:00:00Z"), t("2026-11-02T00:00:00Z")));
        let a = asked(&q(None, Some("2026-11-01T00:00:00+01:00"), None, Some("hour")), now).unwrap();
        assert_eq!((a.from, a.to, a.by), (t("2026-10-31T23:00:00Z"), now, Some(By::Hour)));
    }

    #[test]
    fn bad_input_names_the_parameter() {
        let now = t(NOW);
        let detail = |query: UptimeQuery| {
            let p = asked(&query, now).unwrap_err();
            assert_eq!(p.status, 400);
            p.detail.unwrap()
        };
        assert!(detail(q(Some("1w"), None, None, None)).starts_with("window: "));
        assert!(detail(q(Some("24h"), Some("2026-11-01T00:00:00Z"), None, None)).starts_with("window: "));
        assert!(detail(q(None, None, Some("2026-11-01T00:00:00Z"), None)).starts_with("from: "));
        assert!(detail(q(None, Some("monday"), None, None)).starts_with("from: "));
        assert!(detail(q(None, Some("2026-11-01T00:00:00Z"), Some("soon"), None)).starts_with("to: "));
        assert!(detail(q(None, None, None, Some("week"))).starts_with("by: "));
        let empty = detail(q(None, Some("2026-11-02T00:00:00Z"), Some("2026-11-01T00:00:00Z"), None));
        assert!(empty.contains("window is empty"), "{empty}");
    }

    #[test]
    fn buckets_start_at_the_bucket_holding_the_start_and_stop_at_now() {
        let now = t(NOW);
        let span = bucket_span(By::Hour, t("2026-11-28T14:30:00Z"), now, now, 90).unwrap();
        assert_eq!(span, Some((t("2026-11-28T14:00:00Z"), now)));
        let span =
            bucket_span(By::Day, t("2026-11-01T05:00:00Z"), t("2026-11-03T00:00:00Z"), now, 90).unwrap();
        assert_eq!(span, Some((t("2026-11-01T00:00:00Z"), t("2026-11-03T00:00:00Z"))));
        assert_eq!(
            bucket_span(By::Day, t("2026-12-01T00:00:00Z"), t("2026-12-02T00:00:00Z"), now, 90).unwrap(),
            None
        );
    }

    #[test]
    fn hourly_buckets_stay_within_the_retention_and_the_bucket_cap() {
        let now = t(NOW);
        let day = chrono::Duration::days(1);
        assert!(bucket_span(By::Hour, now - day * 90, now, now, 90).is_ok(), "90d by hour at 90 days kept");
        let p = bucket_span(By::Hour, now - day * 91, now, now, 90).unwrap_err();
        assert!(p.detail.unwrap().starts_with("by: hourly rollups are kept for 90 days"));
        assert!(bucket_span(By::Day, now - day * 365, now, now, 90).is_ok());
        assert!(bucket_span(By::Hour, now - day * 365, now, now, u32::MAX).is_ok(), "8,760 buckets");
        let p = bucket_span(By::Hour, now - day * 420, now, now, u32::MAX).unwrap_err();
        assert!(p.detail.unwrap().contains("too many"));
    }
}
