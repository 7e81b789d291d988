//! Who may see what: a public page is anyone's; a private page only a
//! caller with a read token or a signed-in session (or anyone when
//! `web.public_read` is set); to anyone else it does not exist (404, not
//! 401: its slug is not confirmed). A check's badges follow the pages: a
//! check on some public page has public badges, any other check's badges
//! are private in the same way.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::history::report::HistoryError;
use crate::status_pages::store::{self, PageCheck, StoredPage};
use crate::status_pages::PageSpec;
use crate::tokens::Scope;
use crate::web::problem::Problem;
use crate::web::session::Viewer;
use crate::web::state::AppState;

/// Why a page or badge is not shown.
#[derive(Debug)]
pub enum Refusal {
    /// Absent, or not visible to this caller: the same answer.
    NotFound,
    /// PostgreSQL did not answer.
    Unavailable(String),
}

impl From<tokio_postgres::Error> for Refusal {
    fn from(e: tokio_postgres::Error) -> Self {
        Refusal::Unavailable(crate::db::error_chain(&e))
    }
}

impl From<deadpool_postgres::PoolError> for Refusal {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Refusal::Unavailable(e.to_string())
    }
}

impl From<HistoryError> for Refusal {
    fn from(e: HistoryError) -> Self {
        // A check deleted between the visibility check and the report.
        if e.is_invalid_input() {
            Refusal::NotFound
        } else {
            Refusal::Unavailable(e.to_string())
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotFound => (StatusCode::NOT_FOUND, "not found\n").into_response(),
            Refusal::Unavailable(cause) => Problem::unavailable(&cause).into_response(),
        }
    }
}

/// Whether this caller sees private pages and badges.
pub fn privileged(state: &AppState, viewer: &Viewer) -> bool {
    state.web.public_read || viewer.can(Scope::Read)
}

/// The page `slug` with its spec, if this caller may see it.
pub async fn page(
    db: &impl tokio_postgres::GenericClient,
    slug: &str,
    privileged: bool,
) -> Result<(StoredPage, PageSpec), Refusal> {
    let Some(stored) = store::page_by_slug(db, slug).await? else { return Err(Refusal::NotFound) };
    let spec: PageSpec = match serde_json::from_value(stored.spec.clone()) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::error!(page = %slug, error = %e, "stored status page cannot be read");
            return Err(Refusal::NotFound);
        }
    };
    if spec.public || privileged {
        Ok((stored, spec))
    } else {
        Err(Refusal::NotFound)
    }
}

/// The check `name` for a badge, with whether its badges are public, if
/// this caller may see it.
pub async fn check(
    db: &impl tokio_postgres::GenericClient,
    name: &str,
    privileged: bool,
) -> Result<(PageCheck, bool), Refusal> {
    let Some(check) = store::badge_check(db, name).await? else { return Err(Refusal::NotFound) };
    let public = store::public_specs(db)
        .await?
        .into_iter()
        .filter_map(|v| serde_json::from_value::<PageSpec>(v).ok())
        .any(|spec| spec.groups.iter().any(|g| g.selects(&check.name, &check.labels)));
    if public || privileged {
        Ok((check, public))
    } else {
        Err(Refusal::NotFound)
    }
}

/// A time as pages show it: "2026-11-29 14:05 UTC".
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}
