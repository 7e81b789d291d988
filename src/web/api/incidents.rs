//! `GET /api/v1/incidents`: incidents, newest first, from the history layer.

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::history::report::{self as history, IncidentFilter};
use crate::web::access::CanRead;
use crate::web::problem::Problem;
use crate::web::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentsQuery {
    /// Only incidents of this check.
    pub check: Option<String>,
    /// Only incidents not resolved yet.
    #[serde(default)]
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
    pub resolved_at: Option<DateTime<Utc>>,
    /// recovered | paused | deleted; null while open.
    pub resolution: Option<String>,
    pub first_error: Option<String>,
    pub last_error: Option<String>,
    pub in_maintenance: bool,
    pub alerts_sent: i32,
    pub duration_seconds: f64,
}

#[utoipa::path(
    get,
    path = "/incidents",
    tag = "incidents",
    operation_id = "listIncidents",
    params(IncidentsQuery),
    responses(
        (status = 200, description = "Incidents, newest first", body = [Incident]),
        (status = 400, description = "A bad `since`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    CanRead(_caller): CanRead,
    Query(query): Query<IncidentsQuery>,
) -> Result<Json<Vec<Incident>>, Problem> {
    let now = Utc::now();
    let since = match &query.since {
        Some(text) => {
            Some(history::since("since", text, now).map_err(|e| Problem::bad_request(e.to_string()))?)
        }
        None => None,
    };
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let filter = IncidentFilter { check: query.check.clone(), open_only: query.open, since };
    let found = history::incidents(&**client, &filter).await.map_err(|e| match e.is_invalid_input() {
        true => Problem::not_found(e.to_string()),
        false => Problem::unavailable(&e),
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
