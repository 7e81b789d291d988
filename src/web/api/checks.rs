//! `/api/v1/checks`: list, read, create or update (`PUT`), delete, pause
//! and resume checks.
//!
//! A `PUT` body is one check in the checks-file schema (JSON or YAML),
//! validated by the very validator of `checks apply` (as the entry
//! `checks[0]` of a file; every problem comes back with a JSON pointer),
//! then planned and written by `checks_file::one` under the apply lock.
//! Ownership: the API changes only the checks it owns; a file-owned check
//! answers 409 unless an admin token sends `?force=true`.
//!
//! Secrets never leave: specs are shown masked (`model::redact`), errors
//! scrubbed of the spec's secrets. `checks/body.rs` reads and validates a
//! `PUT` body.
//!
//! The list is paged by name: `?limit=` (default 100, at most 1,000) and
//! `?after=<name>`; a page followed by more has a `Link: <?…>; rel="next"`
//! header (a query-only reference: this path, the next page's query).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::checks_file::export::{to_json, StoredCheck};
use crate::checks_file::one::{self, OneError, Outcome};
use crate::checks_file::Owner;
use crate::heartbeat;
use crate::history::buckets::{from_ms, to_ms, Granularity};
use crate::history::uptime::Durations;
use crate::model::redact::{redact_spec, scrub, secrets};
use crate::model::CheckSpec;
use crate::tokens::Scope;
use crate::web::access::{Caller, CanRead, CanWrite};
use crate::web::problem::Problem;
use crate::web::state::AppState;
use crate::web::store::{self, ListFilter};

mod body;

use body::{format_of, invalid, validate};

/// Rows of a list page when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest page.
pub const MAX_LIMIT: i64 = 1000;

/// This file's routes, with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_check, put_check, delete_check))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

// ------------------------------------------------------------------ list

/// The filters of `GET /checks` (documentation: the query is parsed by
/// hand, because `label` repeats).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQuery {
    /// `key=value`; repeat it: a check must carry every label given.
    pub label: Option<Vec<String>>,
    /// up | down | unknown | paused.
    pub state: Option<String>,
    /// Only names containing this text (case-insensitive).
    pub q: Option<String>,
    /// Rows per page, 1 to 1000 (default 100). When more rows follow, the
    /// response has a `Link: <…>; rel="next"` header.
    pub limit: Option<i64>,
    /// The cursor: only checks whose name sorts after this one (the last
    /// name of the previous page; the `next` link carries it).
    pub after: Option<String>,
}

/// The last result of a check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LastResult {
    pub time: DateTime<Utc>,
    pub duration_ms: Option<f64>,
    pub status_code: Option<i32>,
    /// Why it failed (secrets of the spec masked); null after a success.
    pub error: Option<String>,
}

/// One row of the list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckSummary {
    pub name: String,
    /// up | down | unknown | paused.
    pub state: String,
    /// When the state last changed (paused: when the check was paused;
    /// without results: when it was declared).
    pub since: DateTime<Utc>,
    pub labels: BTreeMap<String, String>,
    /// file | api.
    pub owner: String,
    /// Null before the first result.
    pub last_result: Option<LastResult>,
    /// Up / (up + down) over the last 24 hours (hourly rollups), percent;
    /// null when there was neither up nor down time.
    pub uptime_24h: Option<f64>,
    /// The same over the last 30 days (daily rollups).
    pub uptime_30d: Option<f64>,
}

fn bad(detail: impl Into<String>) -> Problem {
    Problem::bad_request(detail)
}

/// The list's filters from the raw query.
fn list_filter(
    raw: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(ListFilter, Vec<(String, String)>), Problem> {
    let mut labels = serde_json::Map::new();
    let mut filter = ListFilter {
        after: None,
        labels: serde_json::Value::Null,
        q: None,
        state: None,
        limit: DEFAULT_LIMIT,
        hours_from: from_ms(Granularity::Hour.floor(to_ms(now - chrono::Duration::hours(24)))),
        days_from: from_ms(Granularity::Day.floor(to_ms(now - chrono::Duration::days(30)))),
    };
    // What the `next` link repeats (every filter but the cursor).
    let mut kept = Vec::new();
    for (key, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let (key, value) = (key.into_owned(), value.into_owned());
        match key.as_str() {
            "label" => match value.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    labels.insert(k.trim().to_string(), serde_json::Value::String(v.trim().to_string()));
                }
                _ => return Err(bad(format!("label: \"{value}\" is not key=value"))),
            },
            "state" => match value.as_str() {
                "up" | "down" | "unknown" | "paused" => filter.state = Some(value.clone()),
                _ => return Err(bad(format!("state: \"{value}\" is not one of up, down, unknown, paused"))),
            },
            "q" => filter.q = (!value.is_empty()).then(|| value.to_lowercase()),
            // The `next` link writes the limit and the cursor itself.
            "limit" => match value.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => {
                    filter.limit = n;
                    continue;
                }
                _ => return Err(bad(format!("limit: \"{value}\" is not a number from 1 to {MAX_LIMIT}"))),
            },
            "after" => {
                filter.after = Some(value);
                continue;
            }
            // Unknown parameters are ignored, as most APIs do.
            _ => continue,
        }
        kept.push((key, value));
    }
    filter.labels = serde_json::Value::Object(labels);
    Ok((filter, kept))
}

#[utoipa::path(
    get,
    path = "/checks",
    tag = "checks",
    operation_id = "listChecks",
    params(ListQuery),
    responses(
        (status = 200, description = "Checks by name, one page", body = [CheckSummary],
            headers(("Link" = String, description = "`<…>; rel=\"next\"` when more checks follow"))),
        (status = 400, description = "A bad filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    CanRead(_caller): CanRead,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    let (mut filter, kept) = list_filter(raw.as_deref(), Utc::now())?;
    let limit = filter.limit;
    // One more than asked: whether another page follows.
    filter.limit = limit + 1;
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let mut rows = store::list_checks(&**client, &filter).await.map_err(|e| Problem::unavailable(&e))?;
    drop(client);
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = match (more, rows.last()) {
        (true, Some(last)) => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.extend_pairs(kept.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            query.append_pair("limit", &limit.to_string());
            query.append_pair("after", &last.name);
            // A reference of a query only (RFC 3986 §5.2): this path, the
            // next page's query, wherever the API is mounted.
            Some(format!("<?{}>; rel=\"next\"", query.finish()))
        }
        _ => None,
    };
    let body: Vec<CheckSummary> = rows.into_iter().map(summary).collect();
    let mut response = Json(body).into_response();
    if let Some(link) = next.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

fn summary(r: store::ListRow) -> CheckSummary {
    let spec: Option<CheckSpec> = serde_json::from_value(r.spec).ok();
    // A target may echo a request's token back into an error message;
    // without the spec, nothing is known to be safe.
    let error = match (&spec, r.last_error) {
        (Some(spec), Some(e)) => Some(scrub(&e, &secrets(spec))),
        (None, Some(_)) => Some("(hidden: the stored check could not be decoded)".to_string()),
        (_, None) => None,
    };
    let uptime =
        |(up_ms, down_ms): (i64, i64)| Durations { up_ms, down_ms, ..Durations::default() }.uptime_percent();
    CheckSummary {
        last_result: r.last_checked_at.map(|time| LastResult {
            time,
            duration_ms: r.last_duration_ms,
            status_code: r.last_status_code,
            error,
        }),
        uptime_24h: uptime(r.hours),
        uptime_30d: uptime(r.days),
        labels: spec.map(|s| s.labels).unwrap_or_default(),
        name: r.name,
        state: r.state,
        since: r.since,
        owner: r.owner.as_str().to_string(),
    }
}

// ------------------------------------------------------------------ one check

/// A check as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    pub name: String,
    /// The check in the checks-file schema (what a `PUT` takes, and what
    /// `checks list -o yaml` writes), secrets shown as `***`.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// up | down | unknown | paused.
    pub state: String,
    pub since: DateTime<Utc>,
    /// file | api.
    pub owner: String,
    /// Bumped by every change; null only in a dry run that would create the check.
    pub version: Option<i64>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// A heartbeat's ping URL, with its secret key: to write scopes only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_url: Option<String>,
}

fn shown_spec(name: &str, enabled: bool, interval_ms: i32, spec: &CheckSpec) -> serde_json::Value {
    to_json(&StoredCheck { name: name.to_string(), enabled, interval_ms, spec: redact_spec(spec) })
}

fn view(row: store::CheckRow) -> Result<CheckView, Problem> {
    let spec: CheckSpec = serde_json::from_value(row.spec).map_err(|e| {
        Problem::internal(&format!("check `{}` has a stored spec this version cannot read: {e}", row.name))
    })?;
    Ok(CheckView {
        spec: shown_spec(&row.name, row.enabled, row.interval_ms, &spec),
        name: row.name,
        state: row.state,
        since: row.since,
        owner: row.owner.as_str().to_string(),
        version: Some(row.version),
        created_at: Some(row.created_at),
        updated_at: Some(row.updated_at),
        ping_url: None,
    })
}

fn not_found(name: &str) -> Problem {
    Problem::not_found(format!("no check is named \"{name}\""))
}

/// The check `name`; with its ping URL when `caller` may write (the key is
/// a secret that only writers may see).
async fn read_view(state: &AppState, name: &str, caller: &Caller) -> Result<Option<CheckView>, Problem> {
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let row = store::check(&**client, name).await.map_err(|e| Problem::unavailable(&e))?;
    let Some(mut view) = row.map(view).transpose()? else { return Ok(None) };
    if caller.is(Scope::Write) {
        let keys = heartbeat::store::keys_by_name(&**client, &[name.to_string()])
            .await
            .map_err(|e| Problem::unavailable(&e))?;
        view.ping_url = keys.get(name).map(|key| heartbeat::ping_url(&state.web.public_base(), key));
    }
    Ok(Some(view))
}

#[utoipa::path(
    get,
    path = "/checks/{name}",
    tag = "checks",
    operation_id = "getCheck",
    params(("name" = String, Path, description = "The check's name")),
    responses(
        (status = 200, description = "The check, secrets masked", body = CheckView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such check", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_check(
    State(state): State<AppState>,
    CanRead(caller): CanRead,
    Path(name): Path<String>,
) -> Result<Json<CheckView>, Problem> {
    read_view(&state, &name, &caller).await?.map(Json).ok_or_else(|| not_found(&name))
}

/// The options of the write routes.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteQuery {
    /// Plan only: answer what would happen (same status and result), write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Change a check owned by the checks files (needs an admin token; a
    /// forced PUT makes the check the API's).
    #[serde(default)]
    pub force: bool,
}

/// What a `PUT` did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PutResult {
    /// created | updated | unchanged.
    pub result: String,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// Changed fields, named as in the checks file (`interval`, `expect.status`, `owner`).
    pub changed: Vec<String>,
    /// The check as stored (in a dry run: as it would be).
    pub check: CheckView,
}

/// Whether `force` may be used: only by an admin token.
fn forced(caller: &Caller, query: &WriteQuery) -> Result<bool, Problem> {
    if query.force && !caller.is(Scope::Admin) {
        return Err(Problem::forbidden("?force=true needs a token with the admin scope"));
    }
    Ok(query.force)
}

/// The problem answered for a check another side owns.
fn conflict(name: &str, owner: Owner) -> Problem {
    let how = match owner {
        Owner::File => "change it in its checks file and run `checks apply`, or send ?force=true with an admin token (the check then belongs to the API)",
        Owner::Api => "it belongs to the API",
    };
    Problem {
        owner: Some(owner.as_str().to_string()),
        ..Problem::new(StatusCode::CONFLICT, format!("check \"{name}\" is owned by {owner}: {how}"))
    }
}

fn one_problem(e: OneError) -> Problem {
    match e {
        OneError::NotFound(name) => not_found(&name),
        OneError::Owned { name, owner } => conflict(&name, owner),
        OneError::Unresolved(diags) => invalid(&diags.0, false),
        OneError::Busy => {
            Problem { retry_after: Some(1), ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()) }
        }
        OneError::Encode(..) => Problem::internal(&e),
        OneError::Db(_) => Problem::unavailable(&e),
    }
}

#[utoipa::path(
    put,
    path = "/checks/{name}",
    tag = "checks",
    operation_id = "putCheck",
    params(("name" = String, Path, description = "The check's name"), WriteQuery),
    request_body(
        description = "One check in the checks-file schema (docs/checks-file.md); `name` may be left out",
        content(
            (Object = "application/json"),
            (String = "application/yaml"),
            (String = "text/yaml"),
        )
    ),
    responses(
        (status = 200, description = "Updated, or unchanged (nothing written)", body = PutResult),
        (status = 201, description = "Created", body = PutResult),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token, or ?force=true without admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The check is owned by the checks files", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON or YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every problem of the check, each with a JSON pointer", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "An apply held the lock too long, or the database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_check(
    State(state): State<AppState>,
    CanWrite(caller): CanWrite,
    Path(name): Path<String>,
    Query(query): Query<WriteQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let force = forced(&caller, &query)?;
    let format = format_of(&headers)?;
    let declared = validate(&state, &name, format, &body)?;
    let mut client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let planned = one::put(&mut client, &declared, force, query.dry_run).await.map_err(one_problem)?;
    drop(client);
    // Cannot be empty: validate() returned one check.
    let Some(check) = declared.checks.first() else { return Err(Problem::internal(&"no check")) };
    let stored = read_view(&state, &name, &caller).await?;
    let shown = match (query.dry_run, stored) {
        (false, Some(view)) => view,
        // Written meanwhile by nobody else (the lock): only a concurrent
        // DELETE can get here; say what was written.
        (false, None) => return Err(not_found(&name)),
        // A dry run shows the check as it would be.
        (true, stored) => CheckView {
            name: check.name.clone(),
            spec: shown_spec(&check.name, check.enabled, check.interval_ms as i32, &check.spec),
            state: match (&stored, check.enabled) {
                (_, false) => "paused".to_string(),
                (Some(v), true) if v.state != "paused" => v.state.clone(),
                _ => "unknown".to_string(),
            },
            since: stored.as_ref().map_or_else(Utc::now, |v| v.since),
            owner: Owner::Api.as_str().to_string(),
            version: stored.as_ref().and_then(|v| v.version),
            created_at: stored.as_ref().and_then(|v| v.created_at),
            updated_at: stored.as_ref().and_then(|v| v.updated_at),
            ping_url: stored.as_ref().and_then(|v| v.ping_url.clone()),
        },
    };
    let status = if planned.outcome == Outcome::Created { StatusCode::CREATED } else { StatusCode::OK };
    let body = PutResult {
        result: planned.outcome.as_str().to_string(),
        dry_run: query.dry_run,
        changed: planned.fields,
        check: shown,
    };
    Ok((status, Json(body)).into_response())
}

#[utoipa::path(
    delete,
    path = "/checks/{name}",
    tag = "checks",
    operation_id = "deleteCheck",
    params(("name" = String, Path, description = "The check's name"), WriteQuery),
    responses(
        (status = 204, description = "Deleted (an open incident is resolved as \"deleted\")"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token, or ?force=true without admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such check", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The check is owned by the checks files", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_check(
    State(state): State<AppState>,
    CanWrite(caller): CanWrite,
    Path(name): Path<String>,
    Query(query): Query<WriteQuery>,
) -> Result<StatusCode, Problem> {
    let force = forced(&caller, &query)?;
    let mut client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    one::delete(&mut client, &name, force).await.map_err(one_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause or resume, then the check as it is.
async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    name: &str,
    query: &WriteQuery,
    enabled: bool,
) -> Result<Json<CheckView>, Problem> {
    let force = forced(caller, query)?;
    let mut client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    one::set_enabled(&mut client, name, enabled, force).await.map_err(one_problem)?;
    drop(client);
    read_view(state, name, caller).await?.map(Json).ok_or_else(|| not_found(name))
}

#[utoipa::path(
    post,
    path = "/checks/{name}/pause",
    tag = "checks",
    operation_id = "pauseCheck",
    params(("name" = String, Path, description = "The check's name"), WriteQuery),
    responses(
        (status = 200, description = "Paused (a down check's incident is resolved as \"paused\"); the check", body = CheckView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token, or ?force=true without admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such check", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The check is owned by the checks files", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    CanWrite(caller): CanWrite,
    Path(name): Path<String>,
    Query(query): Query<WriteQuery>,
) -> Result<Json<CheckView>, Problem> {
    set_enabled(&state, &caller, &name, &query, false).await
}

#[utoipa::path(
    post,
    path = "/checks/{name}/resume",
    tag = "checks",
    operation_id = "resumeCheck",
    params(("name" = String, Path, description = "The check's name"), WriteQuery),
    responses(
        (status = 200, description = "Resumed; the check", body = CheckView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token, or ?force=true without admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such check", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The check is owned by the checks files", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    CanWrite(caller): CanWrite,
    Path(name): Path<String>,
    Query(query): Query<WriteQuery>,
) -> Result<Json<CheckView>, Problem> {
    set_enabled(&state, &caller, &name, &query, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filters_parse_and_refuse() {
        let now = Utc::now();
        let (f, kept) =
            list_filter(Some("label=team%3Dweb&label=env=prod&state=down&q=Shop&limit=5&after=b&x=1"), now)
                .unwrap();
        assert_eq!(f.labels, serde_json::json!({"team": "web", "env": "prod"}));
        assert_eq!(
            (f.state.as_deref(), f.q.as_deref(), f.limit, f.after.as_deref()),
            (Some("down"), Some("shop"), 5, Some("b"))
        );
        assert_eq!(kept.len(), 4, "{kept:?}");
        assert!(
            f.hours_from <= now - chrono::Duration::hours(24)
                && f.days_from <= now - chrono::Duration::days(30)
        );
        for bad in ["label=x", "state=sleeping", "limit=0", "limit=1001", "limit=x"] {
            assert_eq!(list_filter(Some(bad), now).unwrap_err().status, 400, "{bad}");
        }
        assert_eq!(list_filter(None, now).unwrap().0.limit, DEFAULT_LIMIT);
    }
}
