//! `GET /status/{slug}`: the status page, rendered on the server from
//! `status_pages::view` with the askama templates of `templates/status/`
//! (compiled into the binary). Every figure is in the HTML and the bars
//! and charts are inline SVG (`web/ui/svg/`); `status.js` only adds the
//! hover and tap details. A public page is cacheable for 30 s
//! (`Cache-Control: public, max-age=30`, with the `ETag` every GET gets);
//! a private one stays `private, no-cache`. An embeddable page may be
//! framed anywhere (`ui::Embeddable`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;

use super::visibility::{self, privileged, when, Refusal};
use super::PUBLIC_CACHE;
use crate::status_pages::view::{self, CheckView, IncidentView, PageView, UPTIME_WINDOWS};
use crate::web::session::Viewer;
use crate::web::state::AppState;
use crate::web::ui::svg::bars::{compact_bars, DayBar};
use crate::web::ui::svg::response::{response_chart, Point, Step};
use crate::web::ui::svg::{duration_text, percent_text};
use crate::web::ui::Embeddable;

/// One uptime figure of a check row.
pub struct UptimeCell {
    pub window: &'static str,
    /// "99.95 %" or "no data".
    pub text: String,
}

/// One check row.
pub struct CheckRow {
    pub name: String,
    /// The state's class (base.css `state-…`) and words.
    pub class: &'static str,
    pub state: &'static str,
    pub since: String,
    pub bars: String,
    pub uptime: Vec<UptimeCell>,
    pub chart: Option<String>,
}

pub struct GroupRow {
    pub name: String,
    pub class: &'static str,
    pub state: &'static str,
    pub checks: Vec<CheckRow>,
}

/// One step of an incident's timeline.
pub struct TimelineStep {
    pub at: String,
    pub datetime: String,
    pub what: String,
}

pub struct IncidentRow {
    pub title: String,
    pub summary: String,
    pub steps: Vec<TimelineStep>,
}

pub struct MaintenanceRow {
    pub name: String,
    pub description: Option<String>,
    pub when: String,
    pub ongoing: bool,
    pub checks: String,
}

#[derive(Template)]
#[template(path = "status/page.html")]
pub struct PageTemplate {
    pub slug: String,
    pub title: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub banner_class: &'static str,
    pub banner: &'static str,
    pub updated: String,
    pub groups: Vec<GroupRow>,
    pub active: Vec<IncidentRow>,
    pub past: Vec<IncidentRow>,
    pub maintenance: Vec<MaintenanceRow>,
    pub incident_days: i64,
}

fn uptime_text(p: Option<f64>) -> String {
    p.map(|p| format!("{} %", percent_text(p))).unwrap_or_else(|| "no data".to_string())
}

fn check_row(c: &CheckView) -> CheckRow {
    let days: Vec<DayBar> = c
        .days
        .iter()
        .map(|d| DayBar { day: d.day, durations: d.durations, incidents: d.incidents })
        .collect();
    let chart = c.hours.as_ref().map(|hours| {
        let points: Vec<Point> =
            hours.iter().map(|h| Point { at: h.at, p50_ms: h.p50_ms, p95_ms: h.p95_ms }).collect();
        response_chart(&points, Step::Hour, &format!("{} response time, last 24 hours", c.name))
    });
    CheckRow {
        name: c.name.clone(),
        class: c.current.class(),
        state: c.current.text(),
        since: when(c.since),
        bars: compact_bars(&days, &c.name),
        uptime: UPTIME_WINDOWS
            .iter()
            .zip(c.uptime)
            .map(|(window, p)| UptimeCell { window, text: uptime_text(p) })
            .collect(),
        chart,
    }
}

fn incident_row(i: &IncidentView, now: chrono::DateTime<Utc>) -> IncidentRow {
    let step = |at: chrono::DateTime<Utc>, what: &str| TimelineStep {
        at: when(at),
        datetime: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        what: what.to_string(),
    };
    let mut steps = vec![step(i.opened_at, "First failed check")];
    if i.confirmed_at > i.opened_at {
        steps.push(step(i.confirmed_at, "Outage confirmed"));
    }
    let lasted = (i.resolved_at.unwrap_or(now) - i.opened_at).num_milliseconds();
    match (i.resolved_at, i.resolution.as_deref()) {
        (Some(at), Some("paused")) => steps.push(step(at, "Check paused")),
        (Some(at), Some("deleted")) => steps.push(step(at, "Check removed")),
        (Some(at), _) => steps.push(step(at, "Resolved: the check passes again")),
        (None, _) => {}
    }
    let maintenance = if i.in_maintenance { ", during maintenance" } else { "" };
    let summary = match i.resolved_at {
        None => format!("Ongoing for {}{maintenance}", duration_text(lasted)),
        Some(_) => format!("Lasted {}{maintenance}", duration_text(lasted)),
    };
    IncidentRow { title: format!("{} is down", i.check), summary, steps }
}

/// The template's data for `v`.
pub fn template(v: &PageView) -> PageTemplate {
    let groups = v
        .groups
        .iter()
        .map(|g| GroupRow {
            name: g.name.clone(),
            class: g.banner.class(),
            state: g.banner.text(),
            checks: g.checks.iter().map(check_row).collect(),
        })
        .collect();
    let maintenance = v
        .maintenance
        .iter()
        .map(|m| MaintenanceRow {
            name: m.name.clone(),
            description: m.description.clone(),
            when: format!("{} to {}", when(m.start), when(m.end)),
            ongoing: m.ongoing,
            checks: m.checks.join(", "),
        })
        .collect();
    PageTemplate {
        slug: v.slug.clone(),
        title: v.spec.title.clone(),
        description: v.spec.description.clone(),
        logo_url: v.spec.logo_url.clone(),
        banner_class: v.banner.class(),
        banner: v.banner.text(),
        updated: when(v.updated_at),
        groups,
        active: v.open_incidents().map(|i| incident_row(i, v.now)).collect(),
        past: v.past_incidents().map(|i| incident_row(i, v.now)).collect(),
        maintenance,
        incident_days: view::INCIDENT_DAYS,
    }
}

/// Renders `page` into one buffer sized for it up front: the bars and
/// charts are most of a page (2 MB for 200 checks), and a buffer grown by
/// doubling would copy them several times.
pub fn render(page: &PageTemplate) -> askama::Result<String> {
    let drawings: usize = page
        .groups
        .iter()
        .flat_map(|g| &g.checks)
        .map(|c| c.bars.len() + c.chart.as_ref().map_or(0, String::len) + CHECK_ROW_BYTES)
        .sum();
    let incidents = (page.active.len() + page.past.len()) * INCIDENT_BYTES;
    let mut html = String::with_capacity(drawings + incidents + PAGE_BYTES);
    page.render_into(&mut html)?;
    Ok(html)
}

/// The markup around a check's drawings, an incident, and the rest of a
/// page, in bytes (generous estimates: the page test checks them).
const CHECK_ROW_BYTES: usize = 1_000;
const INCIDENT_BYTES: usize = 1_000;
const PAGE_BYTES: usize = 8_192;

/// `GET /status/{slug}`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
) -> Result<Response, Refusal> {
    let client = state.pool.get().await?;
    let (stored, spec) = visibility::page(&**client, &slug, privileged(&state, &viewer)).await?;
    let (public, embeddable) = (spec.public, spec.embeddable);
    let v = view::load(&**client, &stored, spec, Utc::now()).await?;
    drop(client);
    let html = render(&template(&v)).map_err(|e| Refusal::Unavailable(format!("rendering the page: {e}")))?;
    let mut response = Html(html).into_response();
    if public {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(PUBLIC_CACHE));
    }
    if embeddable {
        response.extensions_mut().insert(Embeddable);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::uptime::Durations;
    use crate::status_pages::banner::{Banner, Current};
    use crate::status_pages::view::{Day, GroupView};
    use crate::status_pages::{GroupSpec, PageSpec};
    use chrono::{DateTime, NaiveDate};

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn view(title: &str, group: &str) -> PageView {
        let first = NaiveDate::from_ymd_opt(2026, 9, 1).unwrap();
        let days = (0..90)
            .map(|i| Day {
                day: first + chrono::Days::new(i),
                durations: Durations { up_ms: 86_400_000, ..Durations::default() },
                incidents: 0,
            })
            .collect();
        let check = CheckView {
            id: 1,
            name: "api".into(),
            current: Current::Up,
            since: t("2026-11-01T00:00:00Z"),
            created_at: t("2026-11-01T00:00:00Z"),
            updated_at: t("2026-11-01T00:00:00Z"),
            days,
            uptime: [Some(100.0), Some(99.999), None, Some(50.0)],
            hours: None,
        };
        PageView {
            slug: "main".into(),
            spec: PageSpec {
                title: title.into(),
                description: None,
                logo_url: None,
                public: true,
                show_response_times: false,
                embeddable: false,
                groups: vec![GroupSpec {
                    name: group.into(),
                    checks: vec!["api".into()],
                    labels: Default::default(),
                }],
            },
            created_at: t("2026-11-01T00:00:00Z"),
            updated_at: t("2026-11-29T10:00:00Z"),
            now: t("2026-11-29T10:00:00Z"),
            banner: Banner::Operational,
            groups: vec![GroupView { name: group.into(), banner: Banner::Operational, checks: vec![check] }],
            incidents: vec![],
            maintenance: vec![],
        }
    }

    #[test]
    fn a_page_renders_its_hooks_and_figures_and_escapes_what_people_wrote() {
        let html = template(&view("Shop <script>alert(1)</script>", "Web & \"APIs\"")).render().unwrap();
        assert!(html.contains("data-check=\"api\""));
        assert_eq!(html.matches("data-day=\"").count(), 90);
        assert!(html.contains("<dd data-window=\"24h\">100.00 %</dd>"));
        assert!(html.contains("<dd data-window=\"7d\">99.99 %</dd>"));
        assert!(html.contains("<dd data-window=\"30d\">no data</dd>"));
        assert!(html.contains("All Systems Operational"));
        assert!(html.contains("No incidents in the last 14 days."));
        assert!(!html.contains("<script>alert"), "the title is escaped");
        assert!(html.contains("Shop &#60;script&#62;") || html.contains("Shop &lt;script&gt;"), "{html}");
        assert!(!html.contains("Web & \"APIs\""), "the group name is escaped");
        assert!(!html.contains(" style=") && !html.contains("<script>"), "nothing inline for the CSP");
        assert!(html.contains("<script src=\"/assets/status.js\" defer></script>"));
    }

    #[test]
    fn the_buffer_is_sized_for_the_page_and_the_render_is_the_same() {
        let page = template(&view("Shop", "Web"));
        let html = render(&page).unwrap();
        assert_eq!(html, page.render().unwrap());
        let estimate = page.groups[0].checks[0].bars.len() + CHECK_ROW_BYTES + PAGE_BYTES;
        assert!(html.len() <= estimate, "{} > {estimate}", html.len());
        assert!(html.capacity() <= estimate + 64, "no second buffer: {}", html.capacity());
    }
}
