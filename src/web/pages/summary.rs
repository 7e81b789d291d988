//! `GET /status/{slug}/summary.json`: the page in the shape of Atlassian
//! Statuspage's `summary.json` (API v2), so tools that read Statuspage
//! pages read ours: `page`, `status` (`indicator`: none, minor, major,
//! critical, maintenance), `components` (each group is a component with
//! `group: true` and the ids of its checks; each check a component whose
//! `group_id` is its group's), `incidents` (the open ones) and
//! `scheduled_maintenances` (in progress or starting within a week).
//!
//! Ids: a check's component id is its name; a group's is `group.{n}` (no
//! check name has a dot); an incident's is its number; a maintenance's is
//! `{window}.{start}`. Visibility and caching are the HTML page's.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::visibility::{self, privileged, Refusal};
use super::PUBLIC_CACHE;
use crate::status_pages::view::{self, PageView};
use crate::web::session::{over_tls, Viewer};
use crate::web::state::AppState;

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The summary of `v`, whose HTML page is at `url`.
pub fn summary_json(v: &PageView, url: &str) -> Value {
    let page_id = v.slug.as_str();
    let mut components = Vec::new();
    let mut position = 0;
    let mut component_of: std::collections::HashMap<&str, Value> = std::collections::HashMap::new();
    for (n, g) in v.groups.iter().enumerate() {
        position += 1;
        let group_id = format!("group.{n}");
        let children: Vec<&str> = g.checks.iter().map(|c| c.name.as_str()).collect();
        let updated = g.checks.iter().map(|c| c.updated_at).max().unwrap_or(v.updated_at);
        components.push(json!({
            "id": group_id,
            "name": g.name,
            "status": g.banner.component_status(),
            "created_at": time(v.created_at),
            "updated_at": time(updated),
            "position": position,
            "description": null,
            "showcase": false,
            "start_date": null,
            "group_id": null,
            "page_id": page_id,
            "group": true,
            "only_show_if_degraded": false,
            "components": children,
        }));
        for c in &g.checks {
            position += 1;
            let component = json!({
                "id": c.name,
                "name": c.name,
                "status": c.current.component_status(),
                "created_at": time(c.created_at),
                "updated_at": time(c.updated_at),
                "position": position,
                "description": null,
                "showcase": true,
                "start_date": c.created_at.format("%Y-%m-%d").to_string(),
                "group_id": group_id,
                "page_id": page_id,
                "group": false,
                "only_show_if_degraded": false,
            });
            component_of.insert(c.name.as_str(), component.clone());
            components.push(component);
        }
    }
    let incidents: Vec<Value> = v
        .open_incidents()
        .map(|i| {
            let id = i.id.to_string();
            let status = if i.confirmed_at > i.opened_at { "identified" } else { "investigating" };
            let body =
                format!("{} is failing its checks since {}.", i.check, super::visibility::when(i.opened_at));
            json!({
                "id": id,
                "name": format!("{} is down", i.check),
                "status": status,
                "created_at": time(i.opened_at),
                "updated_at": time(i.confirmed_at),
                "monitoring_at": null,
                "resolved_at": null,
                "impact": "major",
                "shortlink": url,
                "started_at": time(i.opened_at),
                "page_id": page_id,
                "incident_updates": [{
                    "id": format!("{id}.1"),
                    "status": status,
                    "body": body,
                    "incident_id": id,
                    "created_at": time(i.confirmed_at),
                    "updated_at": time(i.confirmed_at),
                    "display_at": time(i.confirmed_at),
                    "affected_components": null,
                }],
                "components": component_of.get(i.check.as_str()).into_iter().collect::<Vec<_>>(),
            })
        })
        .collect();
    let maintenances: Vec<Value> = v
        .maintenance
        .iter()
        .map(|m| {
            let id = format!("{}.{}", m.name, m.start.timestamp());
            let status = if m.ongoing { "in_progress" } else { "scheduled" };
            json!({
                "id": id,
                "name": m.name,
                "status": status,
                "created_at": time(m.start),
                "updated_at": time(m.start),
                "monitoring_at": null,
                "resolved_at": null,
                "impact": "maintenance",
                "shortlink": url,
                "started_at": time(m.start),
                "page_id": page_id,
                "incident_updates": m.description.as_ref().map(|d| vec![json!({
                    "id": format!("{id}.1"),
                    "status": status,
                    "body": d,
                    "incident_id": id,
                    "created_at": time(m.start),
                    "updated_at": time(m.start),
                    "display_at": time(m.start),
                    "affected_components": null,
                })]).unwrap_or_default(),
                "components": m.checks.iter().filter_map(|c| component_of.get(c.as_str())).collect::<Vec<_>>(),
                "scheduled_for": time(m.start),
                "scheduled_until": time(m.end),
            })
        })
        .collect();
    json!({
        "page": {
            "id": page_id,
            "name": v.spec.title,
            "url": url,
            "time_zone": "Etc/UTC",
            "updated_at": time(v.updated_at),
        },
        "status": { "indicator": v.banner.indicator(), "description": v.banner.text() },
        "components": components,
        "incidents": incidents,
        "scheduled_maintenances": maintenances,
    })
}

/// The page's own URL as this request reached it.
fn page_url(headers: &HeaderMap, slug: &str) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if over_tls(headers) { "https" } else { "http" };
    format!("{scheme}://{host}/status/{slug}")
}

/// `GET /status/{slug}/summary.json`.
pub async fn summary(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let client = state.pool.get().await?;
    let (stored, spec) = visibility::page(&**client, &slug, privileged(&state, &viewer)).await?;
    let public = spec.public;
    let v = view::load(&**client, &stored, spec, Utc::now()).await?;
    drop(client);
    let mut response = Json(summary_json(&v, &page_url(&headers, &slug))).into_response();
    if public {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(PUBLIC_CACHE));
    }
    Ok(response)
}
