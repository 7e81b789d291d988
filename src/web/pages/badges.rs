//! Badges of a check, as SVG or as a shields.io endpoint JSON
//! (`{"schemaVersion":1,"label":…,"message":…,"color":…}`), chosen by the
//! file's extension:
//! - `/badge/{check}/status.svg|json` — up, down, degraded, maintenance,
//!   paused or no data;
//! - `/badge/{check}/uptime/{24h|7d|30d|90d|365d}.svg|json` — uptime over
//!   that window (history's report: raw results, hourly or daily rollups);
//! - `/badge/{check}/response-time/{window}.svg|json` — the median (p50)
//!   response time of successful runs over that window.
//!
//! A check on some public status page has public badges (cacheable for
//! 30 s); any other check's badges answer 404 without a read token or a
//! session (`visibility.rs`).

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use serde_json::json;

use super::visibility::{self, privileged, Refusal};
use super::PUBLIC_CACHE;
use crate::history::report::{self, Selection};
use crate::status_pages::banner::Current;
use crate::status_pages::store::PageCheck;
use crate::web::session::Viewer;
use crate::web::state::AppState;
use crate::web::ui::svg::badge::{badge, Color};
use crate::web::ui::svg::percent_text;

/// SVG or shields.io endpoint JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Json,
}

/// `status.svg` → ("status", Svg).
pub fn split_file(file: &str) -> Option<(&str, Format)> {
    let (stem, ext) = file.rsplit_once('.')?;
    match ext {
        "svg" => Some((stem, Format::Svg)),
        "json" => Some((stem, Format::Json)),
        _ => None,
    }
}

/// The windows a badge may cover, in days.
pub fn window_days(text: &str) -> Option<i64> {
    match text {
        "24h" => Some(1),
        "7d" => Some(7),
        "30d" => Some(30),
        "90d" => Some(90),
        "365d" => Some(365),
        _ => None,
    }
}

/// The colour of an uptime percent.
pub fn uptime_color(p: f64) -> Color {
    match p {
        p if p >= 99.9 => Color::BrightGreen,
        p if p >= 99.0 => Color::Green,
        p if p >= 97.0 => Color::YellowGreen,
        p if p >= 95.0 => Color::Yellow,
        p if p >= 90.0 => Color::Orange,
        _ => Color::Red,
    }
}

/// The colour of a median response time in ms.
pub fn latency_color(ms: f64) -> Color {
    match ms {
        ms if ms < 200.0 => Color::BrightGreen,
        ms if ms < 500.0 => Color::Green,
        ms if ms < 1000.0 => Color::Yellow,
        ms if ms < 2000.0 => Color::Orange,
        _ => Color::Red,
    }
}

/// The status badge's message and colour.
pub fn status_of(current: Current) -> (&'static str, Color) {
    match current {
        Current::Up => ("up", Color::BrightGreen),
        Current::Degraded => ("degraded", Color::Yellow),
        Current::Down => ("down", Color::Red),
        Current::Maintenance => ("maintenance", Color::Blue),
        Current::Paused => ("paused", Color::LightGrey),
        Current::Unknown => ("no data", Color::LightGrey),
    }
}

fn answer(format: Format, label: &str, message: &str, color: Color, public: bool) -> Response {
    let mut response = match format {
        Format::Svg => {
            ([(header::CONTENT_TYPE, "image/svg+xml")], badge(label, message, color)).into_response()
        }
        Format::Json => axum::Json(json!({
            "schemaVersion": 1,
            "label": label,
            "message": message,
            "color": color.name(),
        }))
        .into_response(),
    };
    if public {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(PUBLIC_CACHE));
    }
    response
}

/// The check of a badge request, if this caller may see it.
async fn visible(state: &AppState, viewer: &Viewer, name: &str) -> Result<(PageCheck, bool), Refusal> {
    let client = state.pool.get().await?;
    visibility::check(&**client, name, privileged(state, viewer)).await
}

/// `GET /badge/{check}/status.svg|json`.
pub async fn status(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let Some(("status", format)) = split_file(&file) else { return Err(Refusal::NotFound) };
    let (check, public) = visible(&state, &viewer, &name).await?;
    let in_maintenance = {
        let client = state.pool.get().await?;
        let windows = crate::status_pages::store::windows(&**client).await?;
        let now = Utc::now();
        windows.iter().any(|(_, w)| w.applies_to(&check.name, &check.labels) && w.active_at(now))
    };
    let current = Current::of(&check.state, check.consecutive_failures, in_maintenance);
    let (message, color) = status_of(current);
    Ok(answer(format, &check.name, message, color, public))
}

/// The report row of `check` over the last `days` days.
async fn report_row(state: &AppState, check: &PageCheck, days: i64) -> Result<report::ReportRow, Refusal> {
    let now = Utc::now();
    let client = state.pool.get().await?;
    let selection = Selection { checks: vec![check.name.clone()], labels: Vec::new() };
    let r =
        report::report(&**client, now - Duration::days(days), now, now, state.retention, &selection).await?;
    r.rows.into_iter().next().ok_or(Refusal::NotFound)
}

/// `GET /badge/{check}/uptime/{window}.svg|json`.
pub async fn uptime(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let Some((window, format)) = split_file(&file) else { return Err(Refusal::NotFound) };
    let Some(days) = window_days(window) else { return Err(Refusal::NotFound) };
    let (check, public) = visible(&state, &viewer, &name).await?;
    let row = report_row(&state, &check, days).await?;
    let label = format!("uptime {window}");
    let (message, color) = match row.uptime_percent {
        Some(p) => (format!("{}%", percent_text(p)), uptime_color(p)),
        None => ("no data".to_string(), Color::LightGrey),
    };
    Ok(answer(format, &label, &message, color, public))
}

/// `GET /badge/{check}/response-time/{window}.svg|json`.
pub async fn response_time(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let Some((window, format)) = split_file(&file) else { return Err(Refusal::NotFound) };
    let Some(days) = window_days(window) else { return Err(Refusal::NotFound) };
    let (check, public) = visible(&state, &viewer, &name).await?;
    let row = report_row(&state, &check, days).await?;
    let label = format!("response time {window}");
    let (message, color) = match row.p50_ms {
        Some(ms) => (format!("{ms:.0} ms"), latency_color(ms)),
        None => ("no data".to_string(), Color::LightGrey),
    };
    Ok(answer(format, &label, &message, color, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_a_name_and_svg_or_json() {
        assert_eq!(split_file("status.svg"), Some(("status", Format::Svg)));
        assert_eq!(split_file("30d.json"), Some(("30d", Format::Json)));
        assert_eq!(split_file("30d.png"), None);
        assert_eq!(split_file("30d"), None);
        for w in ["24h", "7d", "30d", "90d", "365d"] {
            assert!(window_days(w).is_some(), "{w}");
        }
        assert_eq!(window_days("1y"), None);
    }

    #[test]
    fn colours_step_down_with_uptime_and_up_with_latency() {
        assert_eq!(uptime_color(100.0), Color::BrightGreen);
        assert_eq!(uptime_color(99.9), Color::BrightGreen);
        assert_eq!(uptime_color(99.5), Color::Green);
        assert_eq!(uptime_color(98.0), Color::YellowGreen);
        assert_eq!(uptime_color(96.0), Color::Yellow);
        assert_eq!(uptime_color(91.0), Color::Orange);
        assert_eq!(uptime_color(10.0), Color::Red);
        assert_eq!(latency_color(50.0), Color::BrightGreen);
        assert_eq!(latency_color(300.0), Color::Green);
        assert_eq!(latency_color(700.0), Color::Yellow);
        assert_eq!(latency_color(1500.0), Color::Orange);
        assert_eq!(latency_color(5000.0), Color::Red);
        assert_eq!(status_of(Current::Down), ("down", Color::Red));
        assert_eq!(status_of(Current::Unknown).0, "no data");
    }
}
