//! `GET /api/v1/checks/{name}/results`: a check's stored results, newest
//! first, a page at a time, with every stored field (phase timings
//! included) and error texts scrubbed of the check's secrets.
//!
//! Paging is by cursor, not offset: `next_cursor` encodes the last slot of
//! the page, and the next page is the slots before it (a keyset page, see
//! `results_store.rs`). Results stored while a caller pages are newer than
//! any cursor, so pages neither repeat nor skip a row.
//!
//! Also here: query-string and path rejections as problem+json (axum's
//! own are plain text), for every route of `/api/v1`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::history::report::parse_time;
use crate::model::redact::{scrub, secrets};
use crate::model::CheckSpec;
use crate::web::access::CanRead;
use crate::web::problem::Problem;
use crate::web::results_store::{self as store, PageQuery, ResultRow};
use crate::web::state::AppState;

/// Rows per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit`.
pub const MAX_LIMIT: i64 = 1000;

/// This file's routes, with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// A query string that does not parse (a number that is not one, a
/// repeated field) as a 400 problem naming what is wrong (axum's own
/// rejection is plain text). A function, not a `From` impl, so that no
/// other file's impl can conflict with it.
pub(crate) fn bad_query(rejection: QueryRejection) -> Problem {
    Problem::bad_request(rejection.body_text())
}

/// A path segment that does not decode (invalid UTF-8) as a 400 problem.
pub(crate) fn bad_path(rejection: PathRejection) -> Problem {
    Problem::bad_request(rejection.body_text())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    /// Only slots at or after this time (RFC 3339, e.g. `2026-11-01T00:00:00Z`).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Only slots before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Rows per page: 1 to 1000, 100 by default.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page; absent for the first (newest) page.
    pub cursor: Option<String>,
}

/// One stored result of a check: one executed slot.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CheckResult {
    /// The slot this run was due at (the result's key).
    pub slot: DateTime<Utc>,
    /// When the worker started it.
    pub started_at: DateTime<Utc>,
    pub success: bool,
    /// dns | refused | timeout | tls | protocol | assertion | blocked | …; null on success.
    #[schema(required = true)]
    pub error_class: Option<String>,
    /// The error, with the check's secrets masked as `***`.
    #[schema(required = true)]
    pub error_message: Option<String>,
    /// The HTTP (or gRPC) status received, if any.
    #[schema(required = true)]
    pub status_code: Option<i16>,
    /// Phase timings in milliseconds; null for a phase the check did not go through.
    #[schema(required = true)]
    pub dns_ms: Option<f32>,
    #[schema(required = true)]
    pub connect_ms: Option<f32>,
    #[schema(required = true)]
    pub tls_ms: Option<f32>,
    #[schema(required = true)]
    pub first_byte_ms: Option<f32>,
    /// DNS checks: the query, from sending the question to the answer.
    #[schema(required = true)]
    pub query_ms: Option<f32>,
    /// ICMP checks: the round trips of the echo requests answered.
    #[schema(required = true)]
    pub rtt_min_ms: Option<f32>,
    #[schema(required = true)]
    pub rtt_avg_ms: Option<f32>,
    #[schema(required = true)]
    pub rtt_max_ms: Option<f32>,
    /// Heartbeats: the run, from its `start` ping to its success.
    #[schema(required = true)]
    pub run_ms: Option<f32>,
    /// The whole run, in milliseconds.
    pub total_ms: f32,
    /// Bytes of the answer read.
    #[schema(required = true)]
    pub bytes_read: Option<i64>,
    /// When the target's certificate expires (TLS checks).
    #[schema(required = true)]
    pub cert_expires_at: Option<DateTime<Utc>>,
    /// The assertions that failed, secrets masked.
    #[schema(required = true)]
    pub failed_assertions: Option<Vec<String>>,
    /// The worker that ran it.
    #[schema(required = true)]
    pub worker: Option<String>,
    /// The check's state after this result: up | down | unknown; null for
    /// results stored before history existed.
    #[schema(required = true)]
    pub state: Option<String>,
    /// The check's interval when this slot ran, in milliseconds.
    #[schema(required = true)]
    pub interval_ms: Option<i32>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ResultsPage {
    pub check: String,
    /// Newest first.
    pub results: Vec<CheckResult>,
    /// Pass as `cursor` to get the next (older) page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A cursor: the last slot of a page, in microseconds (PostgreSQL's
/// precision), as base64url. Opaque to callers: its form may change.
fn encode_cursor(slot: DateTime<Utc>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1.{}", slot.timestamp_micros()))
}

fn decode_cursor(text: &str) -> Option<DateTime<Utc>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
    let micros = std::str::from_utf8(&bytes).ok()?.strip_prefix("v1.")?.parse::<i64>().ok()?;
    DateTime::from_timestamp_micros(micros)
}

/// What `query` asks for, checked: the page to read (less the check).
fn page_query(query: &ResultsQuery) -> Result<PageQuery, Problem> {
    let bad = |e: crate::history::report::HistoryError| Problem::bad_request(e.to_string());
    let from = query.from.as_deref().map(|t| parse_time("from", t)).transpose().map_err(bad)?;
    let to = query.to.as_deref().map(|t| parse_time("to", t)).transpose().map_err(bad)?;
    if let (Some(from), Some(to)) = (from, to) {
        crate::history::report::check_window(from, to).map_err(bad)?;
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(format!("limit: {limit} is out of range: give 1 to {MAX_LIMIT}")));
    }
    let before = match query.cursor.as_deref() {
        None => None,
        Some(text) => Some(decode_cursor(text).ok_or_else(|| {
            Problem::bad_request(
                "cursor: not a cursor this API gave; pass `next_cursor` of the previous page",
            )
        })?),
    };
    Ok(PageQuery { check_id: 0, from, to, before, limit })
}

/// A stored row as served: free texts scrubbed with `secrets`, or hidden
/// when the spec cannot be read (nothing is known to be safe then).
fn shown(row: ResultRow, secrets: Option<&[String]>) -> CheckResult {
    let text = |t: String| match secrets {
        Some(s) => scrub(&t, s),
        None => "(hidden: the check's spec cannot be read)".to_string(),
    };
    CheckResult {
        slot: row.slot,
        started_at: row.started_at,
        success: row.success,
        error_class: row.error_class,
        error_message: row.error_message.map(text),
        status_code: row.status_code,
        dns_ms: row.dns_ms,
        connect_ms: row.connect_ms,
        tls_ms: row.tls_ms,
        first_byte_ms: row.first_byte_ms,
        query_ms: row.query_ms,
        rtt_min_ms: row.rtt_min_ms,
        rtt_avg_ms: row.rtt_avg_ms,
        rtt_max_ms: row.rtt_max_ms,
        run_ms: row.run_ms,
        total_ms: row.total_ms,
        bytes_read: row.bytes_read,
        cert_expires_at: row.cert_expires_at,
        failed_assertions: row.failed_assertions.map(|list| list.into_iter().map(text).collect()),
        worker: row.worker,
        state: row.state,
        interval_ms: row.interval_ms,
    }
}

/// A check's results, newest first.
#[utoipa::path(
    get,
    path = "/checks/{name}/results",
    tag = "results",
    operation_id = "listResults",
    params(("name" = String, Path, description = "The check's name"), ResultsQuery),
    responses(
        (status = 200, description = "A page of results, newest first", body = ResultsPage),
        (status = 400, description = "A bad `from`, `to`, `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token (and `web.public_read` is off)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No check of this name", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit reached: see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    CanRead(_caller): CanRead,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<ResultsQuery>, QueryRejection>,
) -> Result<Json<ResultsPage>, Problem> {
    let Path(name) = name.map_err(bad_path)?;
    let Query(query) = query.map_err(bad_query)?;
    let mut page = page_query(&query)?;
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let Some(check) = store::check(&**client, &name).await.map_err(|e| Problem::unavailable(&e))? else {
        return Err(Problem::not_found(format!("no check named \"{name}\"")));
    };
    page.check_id = check.id;
    // One row more than asked tells whether an older page exists.
    let asked = page.limit;
    page.limit += 1;
    let mut rows = store::page(&**client, &page).await.map_err(|e| Problem::unavailable(&e))?;
    let more = rows.len() as i64 > asked;
    rows.truncate(asked as usize);
    let next_cursor = match more {
        true => rows.last().map(|r| encode_cursor(r.slot)),
        false => None,
    };
    let spec: Option<CheckSpec> = serde_json::from_value(check.spec).ok();
    let secrets = spec.as_ref().map(secrets);
    let results = rows.into_iter().map(|r| shown(r, secrets.as_deref())).collect();
    Ok(Json(ResultsPage { check: name, results, next_cursor }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cursors_round_trip_to_the_microsecond_and_reject_anything_else() {
        for slot in [t("2026-11-29T14:30:00Z"), t("2026-11-29T14:30:00.123456Z"), t("1969-12-31T23:59:59Z")] {
            assert_eq!(decode_cursor(&encode_cursor(slot)), Some(slot));
        }
        for bad in ["", "xyz", "djEu", "djEuMTIzYQ", "%%%", "MTIz"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn limits_default_to_100_and_stay_within_1_to_1000() {
        assert_eq!(page_query(&ResultsQuery::default()).unwrap().limit, 100);
        let q = |limit| ResultsQuery { limit: Some(limit), ..Default::default() };
        assert_eq!(page_query(&q(1)).unwrap().limit, 1);
        assert_eq!(page_query(&q(1000)).unwrap().limit, 1000);
        for bad in [0, -1, 1001] {
            let p = page_query(&q(bad)).unwrap_err();
            assert_eq!(p.status, 400);
            assert!(p.detail.unwrap().starts_with("limit: "));
        }
    }

    #[test]
    fn bad_times_and_cursors_name_their_parameter() {
        let q = ResultsQuery { from: Some("yesterday".into()), ..Default::default() };
        assert!(page_query(&q).unwrap_err().detail.unwrap().starts_with("from: "));
        let q = ResultsQuery { to: Some("2026-13-01T00:00:00Z".into()), ..Default::default() };
        assert!(page_query(&q).unwrap_err().detail.unwrap().starts_with("to: "));
        let q = ResultsQuery { cursor: Some("nope".into()), ..Default::default() };
        assert!(page_query(&q).unwrap_err().detail.unwrap().starts_with("cursor: "));
        let q = ResultsQuery {
            from: Some("2026-11-02T00:00:00Z".into()),
            to: Some("2026-11-01T00:00:00Z".into()),
            ..Default::default()
        };
        assert_eq!(page_query(&q).unwrap_err().status, 400);
    }

    #[test]
    fn errors_and_assertions_are_scrubbed_or_hidden() {
        let row = ResultRow {
            slot: t("2026-11-29T14:30:00Z"),
            started_at: t("2026-11-29T14:30:00.01Z"),
            success: false,
            error_class: Some("assertion".into()),
            error_message: Some("401 for S3CRET".into()),
            status_code: Some(401),
            dns_ms: None,
            connect_ms: Some(1.0),
            tls_ms: None,
            first_byte_ms: Some(2.0),
            query_ms: None,
            rtt_min_ms: None,
            rtt_avg_ms: None,
            rtt_max_ms: None,
            run_ms: None,
            total_ms: 3.0,
            bytes_read: Some(10),
            cert_expires_at: None,
            failed_assertions: Some(vec!["body contains S3CRET".into()]),
            worker: Some("w1".into()),
            state: Some("down".into()),
            interval_ms: Some(60_000),
        };
        let s = vec!["S3CRET".to_string()];
        let r = shown(row.clone(), Some(&s));
        assert_eq!(r.error_message.as_deref(), Some("401 for ***"));
        assert_eq!(r.failed_assertions, Some(vec!["body contains ***".to_string()]));
        assert_eq!((r.status_code, r.total_ms, r.state.as_deref()), (Some(401), 3.0, Some("down")));
        let hidden = shown(row, None);
        assert!(!hidden.error_message.unwrap().contains("S3CRET"));
        assert!(!hidden.failed_assertions.unwrap()[0].contains("S3CRET"));
    }
}
