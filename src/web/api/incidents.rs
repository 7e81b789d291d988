//! `GET /api/v1/incidents`: incidents, newest first, from the history layer.
//! Their error texts are scrubbed of the check's secrets (hidden when the
//! check is no longer declared): `history::report::incidents`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::history::report::{self as history, HistoryError, IncidentFilter};
use crate::web::access::CanRead;
use crate::web::api::results::bad_query;
use crate::web::problem::Problem;
use crate::web::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentsQuery {
    /// Only incidents of this check (declared now, or deleted with incidents kept).
    pub check: Option<String>,
    /// Only incidents not resolved yet (`true`); all by default.
    #[serde(default)]
    #[param(default = false)]
    pub open: bool,
    /// Only incidents open at some time in this window ending now, e.g. `7d`.
    pub since: Option<String>,
}

/// One incident.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Incident {
    pub id: i64,
    pub check: String,
    /// The first failing slot.
    pub opened_at: DateTime<Utc>,
    /// The slot whose failure reached the threshold.
    pub confirmed_at: DateTime<Utc>,
    /// The first passing slot; null while open.
    #[schema(required = true)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// recovered | paused | deleted; null while open.
    #[schema(required = true)]
    pub resolution: Option<String>,
    /// The error that opened it, with the check's secrets masked as `***`.
    #[schema(required = true)]
    pub first_error: Option<String>,
    /// The latest error of the incident, masked likewise.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// Whether it opened inside a maintenance window covering the check.
    pub in_maintenance: bool,
    /// Alert deliveries sent for it (trigger, reminders, recovery).
    pub alerts_sent: i32,
    /// From opened to resolved, or to now while open.
    pub duration_seconds: f64,
}

/// Incidents, newest first.
#[utoipa::path(
    get,
    path = "/incidents",
    tag = "incidents",
    operation_id = "listIncidents",
    params(IncidentsQuery),
    responses(
        (status = 200, description = "Incidents, newest first", body = [Incident]),
        (status = 400, description = "A bad `since` or `open`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token (and `web.public_read` is off)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`check` names no check, declared or with incidents kept", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limit reached: see `Retry-After`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    CanRead(_caller): CanRead,
    query: Result<Query<IncidentsQuery>, QueryRejection>,
) -> Result<Json<Vec<Incident>>, Problem> {
    let Query(query) = query.map_err(bad_query)?;
    let now = Utc::now();
    let since = match &query.since {
        Some(text) => {
            Some(history::since("since", text, now).map_err(|e| Problem::bad_request(e.to_string()))?)
        }
        None => None,
    };
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let filter = IncidentFilter { check: query.check.clone(), open_only: query.open, since };
    let found = history::incidents(&**client, &filter).await.map_err(|e| match e {
        HistoryError::UnknownChecks(_) => Problem::not_found(e.to_string()),
        HistoryError::Db(_) => Problem::unavailable(&e),
        e => Problem::bad_request(e.to_string()),
    })?;
    Ok(Json(
        found
            .into_iter()
            .map(|i| Incident {
                duration_seconds: i.duration_seconds(now),
                id: i.id,
                check: i.check,
                opened_at: i.opened_at,
                confirmed_at: i.confirmed_at,
                resolved_at: i.resolved_at,
                resolution: i.resolution,
                first_error: i.first_error,
                last_error: i.last_error,
                in_maintenance: i.in_maintenance,
                alerts_sent: i.alerts_sent,
            })
            .collect(),
    ))
}
