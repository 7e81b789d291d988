//! `GET /checks/{name}`: one check — its state, its spec as in a checks
//! file with every secret masked (`model::redact`), the latest runs with
//! their phase timings as a stacked bar (DNS, connect, TLS, first byte,
//! rest), its incidents of the last 90 days, the 90 daily uptime bars
//! and the response-time charts (p50 and p95 per hour over 24 h, per day
//! over 30 days; drawn by `ui::svg`, shared with the status pages) — and
//! the pause and resume buttons.
//!
//! Pause and resume (`POST /checks/{name}/pause|resume`, field `csrf`) go
//! through `checks_file::one::set_enabled`, the path of the API's
//! `/pause` and `/resume`, with the same ownership rule:
//! - a `write` session pauses and resumes the checks the API owns;
//! - a check declared in a checks file needs `admin`: it is an operator's
//!   override of the file, and it lasts until the next `checks apply`
//!   that declares the check enabled (the file stays the source of
//!   truth); the page says so beside the button;
//! - a `read` session sees no buttons, and its POST is 403, as is a POST
//!   without the session's CSRF secret.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::format::{ago, iso, segment, span, state_class, state_label};
use super::{csrf_checked, form_fields, message, render, see_other, Nav, SignedIn};
use crate::checks_file::export::{to_file, StoredCheck};
use crate::checks_file::one::{self, OneError};
use crate::checks_file::Owner;
use crate::history::buckets::Granularity;
use crate::history::report::{self as history, IncidentFilter};
use crate::history::rollup::Tally;
use crate::model::redact::{redact_spec, scrub, secrets};
use crate::model::CheckSpec;
use crate::tokens::Scope;
use crate::web::problem::Problem;
use crate::web::results_store::{self, PageQuery, ResultRow};
use crate::web::session::Session;
use crate::web::state::AppState;
use crate::web::store;
use crate::web::ui::svg::bars::{daily_bars, DayBar};
use crate::web::ui::svg::phases::{self, format_ms};
use crate::web::ui::svg::response::{response_chart, Point, Step};

/// Latest runs shown.
pub const RESULTS: i64 = 20;
/// Incidents shown (the newest of the last 90 days).
pub const INCIDENTS: usize = 20;

/// One phase as text beside the bar.
#[derive(Debug, Clone)]
pub struct PhaseText {
    pub key: &'static str,
    pub label: &'static str,
    pub ms: String,
}

/// The phase breakdown of one run.
#[derive(Debug, Clone)]
pub struct Breakdown {
    pub at: String,
    pub at_iso: String,
    pub total: String,
    /// Inline SVG (`ui::svg::phases`: numbers and fixed names only).
    pub bar: String,
    pub phases: Vec<PhaseText>,
}

/// One run in the table of latest runs.
#[derive(Debug, Clone)]
pub struct Run {
    pub at: String,
    pub at_iso: String,
    pub ok: bool,
    pub status: String,
    pub duration: String,
    pub bar: String,
    /// Scrubbed of the check's secrets.
    pub error: String,
}

/// One incident of the check.
#[derive(Debug, Clone)]
pub struct IncidentRow {
    pub opened: String,
    pub opened_iso: String,
    pub lasted: String,
    /// "open", or how it ended (recovered, paused, deleted).
    pub outcome: String,
    pub open: bool,
    pub error: String,
}

/// What the pause/resume area shows.
#[derive(Debug, Clone)]
pub struct Control {
    /// `pause` or `resume`.
    pub action: &'static str,
    pub label: &'static str,
    /// A note beside the button (a file-owned check's override).
    pub note: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/check.html")]
pub struct CheckPage {
    pub nav: Nav,
    pub name: String,
    pub href: String,
    pub state: String,
    pub state_class: &'static str,
    pub since: String,
    pub since_iso: String,
    pub owner: String,
    pub interval: String,
    pub labels: Vec<String>,
    /// The check in the checks-file schema, secrets as `***`.
    pub spec: String,
    /// The pause/resume button, when this session may use it.
    pub control: Option<Control>,
    /// Why there is no button (a read session, a file-owned check).
    pub no_control: Option<String>,
    pub breakdown: Option<Breakdown>,
    pub runs: Vec<Run>,
    pub incidents: Vec<IncidentRow>,
    /// Inline SVG: the 90 daily bars, and the response-time charts.
    pub bars: String,
    pub chart_24h: String,
    pub chart_30d: String,
}

/// The history drawings of a check (empty drawings without history).
struct Drawings {
    bars: String,
    chart_24h: String,
    chart_30d: String,
}

/// The 90 daily bars (today last) and the two response-time charts of the
/// check `id`, whose incidents of the last 90 days are `incidents`.
async fn drawings(
    client: &impl tokio_postgres::GenericClient,
    id: i64,
    name: &str,
    incidents: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
    now: DateTime<Utc>,
) -> Result<Drawings, Problem> {
    let today = now.date_naive();
    let first_day = today - Duration::days(89);
    let from = first_day.and_hms_opt(0, 0, 0).map_or(now - Duration::days(90), |t| t.and_utc());
    let unavailable = |e: history::HistoryError| Problem::unavailable(&e);
    let days = history::bars(client, &[id], from, now, Granularity::Day).await.map_err(unavailable)?;
    let days = days.get(&id).cloned().unwrap_or_default();
    let hours = history::bars(client, &[id], now - Duration::hours(24), now, Granularity::Hour)
        .await
        .map_err(unavailable)?;
    let hours = hours.get(&id).cloned().unwrap_or_default();
    let per_day = incidents_per_day(incidents, now);
    let day_bars: Vec<DayBar> = days
        .iter()
        .map(|(at, tally)| DayBar {
            day: at.date_naive(),
            durations: tally.durations,
            incidents: per_day.get(&at.date_naive()).copied().unwrap_or(0),
        })
        .collect();
    // The bucket holding "24 h ago" is the 25th: the last 24 hours.
    let last_hours = &hours[hours.len().saturating_sub(24)..];
    let last_days = &days[days.len().saturating_sub(30)..];
    Ok(Drawings {
        bars: daily_bars(&day_bars, name),
        chart_24h: response_chart(
            &points(last_hours),
            Step::Hour,
            &format!("{name} response time, last 24 hours"),
        ),
        chart_30d: response_chart(
            &points(last_days),
            Step::Day,
            &format!("{name} response time, last 30 days"),
        ),
    })
}

/// p50 and p95 of each bucket's successful runs.
fn points(buckets: &[(DateTime<Utc>, Tally)]) -> Vec<Point> {
    buckets
        .iter()
        .map(|(at, t)| Point { at: *at, p50_ms: t.quantile_ms(0.5), p95_ms: t.quantile_ms(0.95) })
        .collect()
}

/// How many incidents were open at some time of each UTC day, up to
/// today (an incident still open counts until now).
pub fn incidents_per_day(
    incidents: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
    now: DateTime<Utc>,
) -> HashMap<NaiveDate, u32> {
    let mut out = HashMap::new();
    for (opened, resolved) in incidents {
        let mut day = opened.date_naive();
        let last = resolved.unwrap_or(now).date_naive().min(now.date_naive());
        while day <= last {
            *out.entry(day).or_default() += 1;
            let Some(next) = day.succ_opt() else { break };
            day = next;
        }
    }
    out
}

/// `GET /checks/{name}`.
pub async fn page_of(state: &AppState, session: &Session, name: &str) -> Result<Response, Problem> {
    let now = Utc::now();
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let Some(row) = store::check(&**client, name).await.map_err(|e| Problem::unavailable(&e))? else {
        return Ok(message(
            StatusCode::NOT_FOUND,
            "No such check",
            &format!("No check is named \"{name}\"."),
        ));
    };
    let spec: CheckSpec = serde_json::from_value(row.spec.clone()).map_err(|e| {
        Problem::internal(&format!("check `{name}` has a stored spec this version cannot read: {e}"))
    })?;
    let masked = redact_spec(&spec);
    let shown = to_file(&[StoredCheck {
        name: row.name.clone(),
        enabled: row.enabled,
        interval_ms: row.interval_ms,
        spec: masked,
    }])
    .map_err(|e| Problem::internal(&e))?;
    let hidden = secrets(&spec);

    let id = results_store::check(&**client, name).await.map_err(|e| Problem::unavailable(&e))?.map(|c| c.id);
    let latest = match id {
        Some(check_id) => {
            let query = PageQuery { check_id, from: None, to: None, before: None, limit: RESULTS };
            results_store::page(&**client, &query).await.map_err(|e| Problem::unavailable(&e))?
        }
        None => Vec::new(),
    };
    let filter = IncidentFilter {
        check: Some(name.to_string()),
        open_only: false,
        since: Some(now - Duration::days(90)),
    };
    let incidents = history::incidents(&**client, &filter).await.map_err(|e| Problem::unavailable(&e))?;
    let drawn = match id {
        Some(id) => {
            let spans: Vec<_> = incidents.iter().map(|i| (i.opened_at, i.resolved_at)).collect();
            Some(drawings(&**client, id, name, &spans, now).await?)
        }
        None => None,
    };
    let drawn =
        drawn.unwrap_or(Drawings { bars: String::new(), chart_24h: String::new(), chart_30d: String::new() });
    drop(client);

    let (control, no_control) = control(session, row.enabled, row.owner);
    let view = CheckPage {
        nav: Nav::new(session, "checks"),
        href: format!("/checks/{}", segment(&row.name)),
        state: state_label(&row.state).to_string(),
        state_class: state_class(&row.state),
        since: ago(row.since, now),
        since_iso: iso(row.since),
        owner: row.owner.as_str().to_string(),
        interval: span(f64::from(row.interval_ms) / 1000.0),
        labels: spec.labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        spec: shown,
        control,
        no_control,
        breakdown: breakdown(&latest, now),
        runs: latest.iter().map(|r| run(r, &hidden, now)).collect(),
        incidents: incidents
            .into_iter()
            .take(INCIDENTS)
            .map(|i| IncidentRow {
                opened: ago(i.opened_at, now),
                opened_iso: iso(i.opened_at),
                lasted: span(i.duration_seconds(now)),
                open: i.resolved_at.is_none(),
                outcome: i.resolution.clone().unwrap_or_else(|| "open".to_string()),
                error: i.first_error.clone().unwrap_or_default(),
            })
            .collect(),
        bars: drawn.bars,
        chart_24h: drawn.chart_24h,
        chart_30d: drawn.chart_30d,
        name: row.name,
    };
    Ok(render(StatusCode::OK, &view))
}

pub async fn page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(name): Path<String>,
) -> Response {
    page_of(&state, &session, &name).await.unwrap_or_else(IntoResponse::into_response)
}

/// The button this session gets for a check, or why it gets none.
pub fn control(session: &Session, enabled: bool, owner: Owner) -> (Option<Control>, Option<String>) {
    let (action, label) = if enabled { ("pause", "Pause") } else { ("resume", "Resume") };
    if !session.can(Scope::Write) {
        return (None, Some(format!("Your token's scope is {}: pausing needs write.", session.scope)));
    }
    match owner {
        Owner::File if !session.can(Scope::Admin) => (
            None,
            Some(
                "This check is declared in a checks file: change `enabled` there, or ask an admin."
                    .to_string(),
            ),
        ),
        Owner::File => (
            Some(Control {
                action,
                label,
                note: Some(
                    "Declared in a checks file: this overrides the file until the next `checks apply`."
                        .to_string(),
                ),
            }),
            None,
        ),
        _ => (Some(Control { action, label, note: None }), None),
    }
}

/// The phase breakdown of the newest run that timed any phase (the newest
/// run when none did: its bar then says "no phase timings").
fn breakdown(latest: &[ResultRow], now: DateTime<Utc>) -> Option<Breakdown> {
    let timed = |r: &&ResultRow| {
        r.dns_ms.is_some() || r.connect_ms.is_some() || r.tls_ms.is_some() || r.first_byte_ms.is_some()
    };
    let r = latest.iter().find(timed).or_else(|| latest.first())?;
    let segments = segments_of(r);
    Some(Breakdown {
        at: ago(r.started_at, now),
        at_iso: iso(r.started_at),
        total: format_ms(f64::from(r.total_ms)),
        bar: phases::svg(&segments, 600, 24),
        phases: segments
            .iter()
            .map(|s| PhaseText { key: s.key, label: s.label, ms: format_ms(s.ms) })
            .collect(),
    })
}

fn segments_of(r: &ResultRow) -> Vec<phases::Segment> {
    phases::segments(
        r.dns_ms.map(f64::from),
        r.connect_ms.map(f64::from),
        r.tls_ms.map(f64::from),
        r.first_byte_ms.map(f64::from),
        f64::from(r.total_ms),
    )
}

fn run(r: &ResultRow, secrets: &[String], now: DateTime<Utc>) -> Run {
    Run {
        at: ago(r.started_at, now),
        at_iso: iso(r.started_at),
        ok: r.success,
        status: r.status_code.map(|c| c.to_string()).unwrap_or_else(|| "—".to_string()),
        duration: format_ms(f64::from(r.total_ms)),
        bar: phases::svg(&segments_of(r), 120, 10),
        error: r.error_message.as_deref().map(|e| scrub(e, secrets)).unwrap_or_default(),
    }
}

/// `POST /checks/{name}/pause`.
pub async fn pause(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    set_enabled(&state, &session, &name, &body, false).await
}

/// `POST /checks/{name}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    set_enabled(&state, &session, &name, &body, true).await
}

async fn set_enabled(
    state: &AppState,
    session: &Session,
    name: &str,
    body: &[u8],
    enabled: bool,
) -> Response {
    if let Err(refused) = csrf_checked(session, &form_fields(body)) {
        return refused;
    }
    if !session.can(Scope::Write) {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            &format!("Your token's scope is {}: pausing and resuming need write (or more).", session.scope),
        );
    }
    let mut client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return Problem::unavailable(&e).into_response(),
    };
    // An admin may override a file's check (see the module documentation).
    let force = session.can(Scope::Admin);
    match one::set_enabled(&mut client, name, enabled, force).await {
        Ok(changed) => {
            if changed {
                let what = if enabled { "resumed" } else { "paused" };
                tracing::info!(check = %name.escape_debug(), token = %session.token, "web: check {what} from the dashboard");
            }
            see_other(&format!("/checks/{}", segment(name)))
        }
        Err(OneError::NotFound(_)) => {
            message(StatusCode::NOT_FOUND, "No such check", &format!("No check is named \"{name}\"."))
        }
        Err(OneError::Owned { .. }) => message(
            StatusCode::CONFLICT,
            "Declared in a checks file",
            &format!(
                "\"{name}\" is declared in a checks file: change `enabled` there and run `checks apply`, \
                 or ask someone with an admin token."
            ),
        ),
        Err(OneError::Busy) => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "A `checks apply` or another change is running; retry in a moment.",
        ),
        Err(e) => Problem::unavailable(&e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_incident_counts_on_every_day_it_was_open() {
        let now = t("2026-11-29T12:00:00Z");
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let map = incidents_per_day(
            &[
                (t("2026-11-26T23:00:00Z"), Some(t("2026-11-27T01:00:00Z"))),
                (t("2026-11-27T10:00:00Z"), Some(t("2026-11-27T10:05:00Z"))),
                (t("2026-11-28T20:00:00Z"), None),
            ],
            now,
        );
        assert_eq!(map[&day("2026-11-26")], 1);
        assert_eq!(map[&day("2026-11-27")], 2);
        assert_eq!(map[&day("2026-11-28")], 1);
        assert_eq!(map[&day("2026-11-29")], 1, "still open today");
        assert_eq!(map.len(), 4);
        // A resolution stamped after now (clock skew) stops at today.
        let skewed = incidents_per_day(&[(t("2026-11-29T11:00:00Z"), Some(t("2026-12-02T00:00:00Z")))], now);
        assert_eq!(skewed.len(), 1);
    }

    fn session(scope: Scope) -> Session {
        Session { digest: "d".into(), token: "t".into(), scope, csrf: "c".into() }
    }

    #[test]
    fn buttons_follow_scope_and_owner() {
        let (c, why) = control(&session(Scope::Read), true, Owner::Api);
        assert!(c.is_none() && why.unwrap().contains("scope is read"));
        let (c, _) = control(&session(Scope::Write), true, Owner::Api);
        let c = c.unwrap();
        assert_eq!((c.action, c.label, c.note.is_none()), ("pause", "Pause", true));
        let (c, _) = control(&session(Scope::Write), false, Owner::Api);
        assert_eq!(c.unwrap().action, "resume");
        let (c, why) = control(&session(Scope::Write), true, Owner::File);
        assert!(c.is_none() && why.unwrap().contains("checks file"));
        let (c, _) = control(&session(Scope::Admin), true, Owner::File);
        assert!(c.unwrap().note.unwrap().contains("until the next `checks apply`"));
    }
}
