//! `GET /`: every check in a table — state, since, last run, its
//! duration, uptime over 24 h and 30 days, a 24-hour sparkline, labels —
//! filtered by state, label and name with GET parameters (a plain form,
//! so filters work without JavaScript): `state=up|down|unknown|paused`,
//! `label=key=value` (several separated by commas), `q=` (part of the
//! name). `GET /partials/checks` with the same parameters answers the
//! table's rows alone: `dashboard.js` fetches them every 10 s and swaps
//! them in, so the table refreshes without a full reload.
//!
//! A page holds at most [`PAGE`] checks by name, with a link to the next.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};

use super::format::{ago, iso, percent, segment, state_class, state_label};
use super::{render, Nav, SignedIn};
use crate::history::buckets::{from_ms, to_ms, Granularity};
use crate::history::report;
use crate::history::uptime::Durations;
use crate::model::CheckSpec;
use crate::web::problem::Problem;
use crate::web::state::AppState;
use crate::web::store::{self, ListFilter, ListRow};
use crate::web::ui::svg::phases::format_ms;
use crate::web::ui::svg::sparkline::{self, Hour};

/// Checks per page.
pub const PAGE: i64 = 500;

/// The filters as the form shows them back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub state: String,
    pub label: String,
    pub q: String,
    /// The last name of the previous page.
    pub after: String,
}

impl Filters {
    /// The query string of these filters (for the refresh and the next page).
    pub fn query(&self, after: Option<&str>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("state", &self.state), ("label", &self.label), ("q", &self.q)] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        if let Some(after) = after {
            q.append_pair("after", after);
        }
        q.finish()
    }
}

/// Reads the filters; `Err` names the one that is wrong and why.
pub fn parse_filters(raw: Option<&str>) -> Result<Filters, String> {
    let mut f = Filters::default();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let v = v.trim().to_string();
        match k.as_ref() {
            "state" => f.state = v,
            "label" => f.label = v,
            "q" => f.q = v,
            "after" => f.after = v,
            _ => {}
        }
    }
    if !matches!(f.state.as_str(), "" | "up" | "down" | "unknown" | "paused") {
        return Err(format!("state: \"{}\" is not one of up, down, unknown, paused", f.state));
    }
    labels(&f.label)?;
    Ok(f)
}

/// `key=value` pairs separated by commas.
fn labels(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut out = serde_json::Map::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.insert(k.trim().to_string(), serde_json::Value::String(v.trim().to_string()));
            }
            _ => return Err(format!("label: \"{pair}\" is not key=value")),
        }
    }
    Ok(out)
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub href: String,
    pub state: String,
    pub state_class: &'static str,
    pub since: String,
    pub since_iso: String,
    pub last: String,
    pub last_iso: String,
    pub duration: String,
    pub uptime_24h: String,
    pub uptime_30d: String,
    /// Inline SVG (built by `ui::svg::sparkline`, no input text in it).
    pub sparkline: String,
    pub labels: Vec<String>,
}

#[derive(Template)]
#[template(path = "dashboard/checks.html")]
pub struct ChecksPage {
    pub nav: Nav,
    pub filters: Filters,
    pub error: Option<String>,
    pub rows: Vec<Row>,
    /// The query of the next page, when there is one.
    pub next: Option<String>,
    /// The query the refresh repeats.
    pub query: String,
}

#[derive(Template)]
#[template(path = "dashboard/rows.html")]
pub struct RowsFragment {
    pub rows: Vec<Row>,
}

/// `GET /`: the table, or `/login` when signed out.
pub async fn page(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    RawQuery(raw): RawQuery,
) -> Response {
    let nav = Nav::new(&session, "checks");
    let (filters, error) = match parse_filters(raw.as_deref()) {
        Ok(f) => (f, None),
        Err(e) => (Filters::default(), Some(e)),
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    match rows_of(&state, &filters, Utc::now()).await {
        Ok((rows, next)) => {
            let query = filters.query(None);
            render(status, &ChecksPage { nav, filters, error, rows, next, query })
        }
        Err(p) => p.into_response(),
    }
}

/// `GET /partials/checks`: the rows alone (`dashboard.js`).
pub async fn rows(State(state): State<AppState>, SignedIn(_): SignedIn, RawQuery(raw): RawQuery) -> Response {
    let filters = match parse_filters(raw.as_deref()) {
        Ok(f) => f,
        Err(e) => return Problem::bad_request(e).into_response(),
    };
    match rows_of(&state, &filters, Utc::now()).await {
        Ok((rows, _)) => render(StatusCode::OK, &RowsFragment { rows }),
        Err(p) => p.into_response(),
    }
}

/// The rows `filters` select (one page), and the next page's query.
async fn rows_of(
    state: &AppState,
    filters: &Filters,
    now: DateTime<Utc>,
) -> Result<(Vec<Row>, Option<String>), Problem> {
    let list_filter = ListFilter {
        after: (!filters.after.is_empty()).then(|| filters.after.clone()),
        labels: serde_json::Value::Object(labels(&filters.label).unwrap_or_default()),
        q: (!filters.q.is_empty()).then(|| filters.q.to_lowercase()),
        state: (!filters.state.is_empty()).then(|| filters.state.clone()),
        // One more than a page: whether another follows.
        limit: PAGE + 1,
        hours_from: from_ms(Granularity::Hour.floor(to_ms(now - Duration::hours(24)))),
        days_from: from_ms(Granularity::Day.floor(to_ms(now - Duration::days(30)))),
    };
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let mut listed =
        store::list_checks(&**client, &list_filter).await.map_err(|e| Problem::unavailable(&e))?;
    let next = if listed.len() as i64 > PAGE {
        listed.truncate(PAGE as usize);
        listed.last().map(|last| filters.query(Some(&last.name)))
    } else {
        None
    };
    let ids: Vec<i64> = listed.iter().map(|r| r.id).collect();
    let mut hours = if ids.is_empty() {
        BTreeMap::new()
    } else {
        report::bars(&**client, &ids, now - Duration::hours(24), now, Granularity::Hour)
            .await
            .map_err(|e| Problem::unavailable(&e))?
    };
    let rows = listed
        .into_iter()
        .map(|r| {
            let bars = hours.remove(&r.id).unwrap_or_default();
            // The bucket holding "24 h ago" is the 25th: the last 24 hours.
            let skip = bars.len().saturating_sub(24);
            let spark: Vec<Hour> = bars[skip..]
                .iter()
                .map(|(_, t)| Hour { p50_ms: t.quantile_ms(0.5), down: t.durations.down_ms > 0 })
                .collect();
            row(r, &spark, now)
        })
        .collect();
    Ok((rows, next))
}

fn row(r: ListRow, spark: &[Hour], now: DateTime<Utc>) -> Row {
    let uptime = |(up_ms, down_ms): (i64, i64)| {
        percent(Durations { up_ms, down_ms, ..Durations::default() }.uptime_percent())
    };
    let labels = serde_json::from_value::<CheckSpec>(r.spec)
        .map(|s| s.labels.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    Row {
        href: format!("/checks/{}", segment(&r.name)),
        state: state_label(&r.state).to_string(),
        state_class: state_class(&r.state),
        since: ago(r.since, now),
        since_iso: iso(r.since),
        last: r.last_checked_at.map_or_else(|| "never".to_string(), |t| ago(t, now)),
        last_iso: r.last_checked_at.map(iso).unwrap_or_default(),
        duration: r.last_duration_ms.map_or_else(|| "—".to_string(), format_ms),
        uptime_24h: uptime(r.hours),
        uptime_30d: uptime(r.days),
        sparkline: sparkline::svg(spark),
        labels,
        name: r.name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_say_what_is_wrong() {
        let f = parse_filters(Some("state=down&label=team%3Dweb%2C+env%3Dprod&q=Shop&after=b&x=1")).unwrap();
        assert_eq!((f.state.as_str(), f.q.as_str(), f.after.as_str()), ("down", "Shop", "b"));
        assert_eq!(labels(&f.label).unwrap().len(), 2);
        assert_eq!(parse_filters(None).unwrap(), Filters::default());
        assert_eq!(parse_filters(Some("state=")).unwrap().state, "", "the form's \"any state\"");
        let e = parse_filters(Some("state=sleeping")).unwrap_err();
        assert!(e.starts_with("state: \"sleeping\""), "{e}");
        let e = parse_filters(Some("label=team")).unwrap_err();
        assert_eq!(e, "label: \"team\" is not key=value");
    }

    #[test]
    fn the_query_repeats_the_filters() {
        let f = Filters { state: "up".into(), label: "team=web".into(), q: String::new(), after: "x".into() };
        assert_eq!(f.query(None), "state=up&label=team%3Dweb");
        assert_eq!(f.query(Some("api 2")), "state=up&label=team%3Dweb&after=api+2");
    }
}
