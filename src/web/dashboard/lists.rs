//! The dashboard's lists: `GET /incidents` (the last 30 days, or only the
//! open ones with `?open=1`), `GET /maintenance` (the declared windows,
//! which of them is active now, and what each covers) and
//! `GET /status-pages` (every status page, with a link to it).

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};

use super::format::{ago, iso, segment, span};
use super::{render, Nav, SignedIn};
use crate::history::report::{self as history, IncidentFilter};
use crate::model::maintenance::{Schedule, WindowSpec};
use crate::status_pages::model::PageSpec;
use crate::status_pages::store;
use crate::web::problem::Problem;
use crate::web::state::AppState;

/// Incidents listed at most.
pub const INCIDENTS: usize = 500;

#[derive(Debug, Clone)]
pub struct IncidentLine {
    pub check: String,
    pub href: String,
    pub opened: String,
    pub opened_iso: String,
    pub lasted: String,
    pub open: bool,
    pub outcome: String,
    pub error: String,
    pub in_maintenance: bool,
    pub alerts_sent: i32,
}

#[derive(Template)]
#[template(path = "dashboard/incidents.html")]
pub struct IncidentsPage {
    pub nav: Nav,
    pub open_only: bool,
    pub incidents: Vec<IncidentLine>,
    /// More than [`INCIDENTS`] matched.
    pub cut: bool,
}

/// `GET /incidents`.
pub async fn incidents(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    RawQuery(raw): RawQuery,
) -> Response {
    let open_only = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "open" && matches!(v.as_ref(), "1" | "true" | "on"));
    let now = Utc::now();
    let filter =
        IncidentFilter { check: None, open_only, since: (!open_only).then(|| now - Duration::days(30)) };
    let found = match state.pool.get().await {
        Ok(client) => history::incidents(&**client, &filter).await.map_err(|e| Problem::unavailable(&e)),
        Err(e) => Err(Problem::unavailable(&e)),
    };
    let found = match found {
        Ok(f) => f,
        Err(p) => return p.into_response(),
    };
    let cut = found.len() > INCIDENTS;
    let incidents = found
        .into_iter()
        .take(INCIDENTS)
        .map(|i| IncidentLine {
            href: format!("/checks/{}", segment(&i.check)),
            opened: ago(i.opened_at, now),
            opened_iso: iso(i.opened_at),
            lasted: span(i.duration_seconds(now)),
            open: i.resolved_at.is_none(),
            outcome: i.resolution.clone().unwrap_or_else(|| "open".to_string()),
            error: i.first_error.clone().unwrap_or_default(),
            in_maintenance: i.in_maintenance,
            alerts_sent: i.alerts_sent,
            check: i.check,
        })
        .collect();
    render(StatusCode::OK, &IncidentsPage { nav: Nav::new(&session, "incidents"), open_only, incidents, cut })
}

#[derive(Debug, Clone)]
pub struct WindowLine {
    pub name: String,
    /// When, in words: "once, from … to …" or "mon, tue at 02:00 for 2 h (Europe/Paris)".
    pub when: String,
    /// What it covers: "every check", "checks: a, b", "labels: team=web".
    pub covers: String,
    /// "active until …", or empty.
    pub active: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "dashboard/maintenance.html")]
pub struct MaintenancePage {
    pub nav: Nav,
    pub windows: Vec<WindowLine>,
}

/// A window in words, and whether it is active at `now`.
pub fn window_line(name: String, spec: &WindowSpec, now: chrono::DateTime<Utc>) -> WindowLine {
    let when = match &spec.schedule {
        Schedule::Once { start, end } => format!("once, from {} to {}", iso(*start), iso(*end)),
        Schedule::Recurring { days, at, duration_ms } => {
            let days = if days.is_empty() { "every day".to_string() } else { days.join(", ") };
            format!(
                "{days} at {} for {} ({})",
                at.format("%H:%M"),
                span(*duration_ms as f64 / 1000.0),
                spec.time_zone
            )
        }
    };
    let mut covers = Vec::new();
    if !spec.checks.is_empty() {
        covers.push(format!("checks: {}", spec.checks.join(", ")));
    }
    if !spec.labels.is_empty() {
        let labels: Vec<String> = spec.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        covers.push(format!("labels: {}", labels.join(", ")));
    }
    WindowLine {
        name,
        when,
        covers: if covers.is_empty() { "every check".to_string() } else { covers.join("; ") },
        active: spec
            .occurrence_at(now)
            .map(|(_, end)| format!("active until {}", iso(end)))
            .unwrap_or_default(),
        description: spec.description.clone().unwrap_or_default(),
    }
}

/// `GET /maintenance`.
pub async fn maintenance(State(state): State<AppState>, SignedIn(session): SignedIn) -> Response {
    let windows = match state.pool.get().await {
        Ok(client) => store::windows(&**client).await.map_err(|e| Problem::unavailable(&e)),
        Err(e) => Err(Problem::unavailable(&e)),
    };
    let now = Utc::now();
    match windows {
        Ok(list) => {
            let windows = list.into_iter().map(|(name, spec)| window_line(name, &spec, now)).collect();
            render(StatusCode::OK, &MaintenancePage { nav: Nav::new(&session, "maintenance"), windows })
        }
        Err(p) => p.into_response(),
    }
}

#[derive(Debug, Clone)]
pub struct PageLine {
    pub slug: String,
    pub title: String,
    pub href: String,
    pub public: bool,
}

#[derive(Template)]
#[template(path = "dashboard/status_pages.html")]
pub struct StatusPagesPage {
    pub nav: Nav,
    pub pages: Vec<PageLine>,
}

/// `GET /status-pages`.
pub async fn status_pages(State(state): State<AppState>, SignedIn(session): SignedIn) -> Response {
    let pages = match state.pool.get().await {
        Ok(client) => store::pages(&**client).await.map_err(|e| Problem::unavailable(&e)),
        Err(e) => Err(Problem::unavailable(&e)),
    };
    match pages {
        Ok(list) => {
            let pages = list
                .into_iter()
                .map(|stored| {
                    // A page this version cannot read is still listed, by its slug.
                    let spec: Option<PageSpec> = serde_json::from_value(stored.spec).ok();
                    PageLine {
                        href: format!("/status/{}", segment(&stored.slug)),
                        title: spec.as_ref().map_or_else(|| stored.slug.clone(), |s| s.title.clone()),
                        public: spec.is_some_and(|s| s.public),
                        slug: stored.slug,
                    }
                })
                .collect();
            render(StatusCode::OK, &StatusPagesPage { nav: Nav::new(&session, "status-pages"), pages })
        }
        Err(p) => p.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> chrono::DateTime<Utc> {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_read_in_words() {
        let once: WindowSpec = serde_json::from_value(serde_json::json!({
            "time_zone": "UTC", "schedule": "once",
            "start": "2026-11-29T10:00:00Z", "end": "2026-11-29T12:00:00Z", "checks": ["api", "web"]
        }))
        .unwrap();
        let line = window_line("deploy".into(), &once, t("2026-11-29T11:00:00Z"));
        assert_eq!(line.when, "once, from 2026-11-29T10:00:00Z to 2026-11-29T12:00:00Z");
        assert_eq!(line.covers, "checks: api, web");
        assert_eq!(line.active, "active until 2026-11-29T12:00:00Z");
        assert_eq!(window_line("deploy".into(), &once, t("2026-11-29T12:00:00Z")).active, "");

        let weekly: WindowSpec = serde_json::from_value(serde_json::json!({
            "time_zone": "Europe/Paris", "schedule": "recurring", "days": ["sun"], "at": "02:00:00",
            "duration_ms": 7_200_000, "labels": {"team": "web"}, "description": "backups"
        }))
        .unwrap();
        let line = window_line("backups".into(), &weekly, t("2026-11-30T12:00:00Z"));
        assert_eq!(line.when, "sun at 02:00 for 2 h (Europe/Paris)");
        assert_eq!((line.covers.as_str(), line.description.as_str()), ("labels: team=web", "backups"));
        let everything = WindowSpec { checks: vec![], labels: Default::default(), ..weekly };
        assert_eq!(window_line("x".into(), &everything, t("2026-11-30T12:00:00Z")).covers, "every check");
    }
}
