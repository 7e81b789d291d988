//! `/api/v1`: one file per resource. Each file's handlers carry their
//! OpenAPI description (`#[utoipa::path]`) and are registered here with
//! `routes!`, so the document served at `/api/v1/openapi.json` is generated
//! from the very routes that answer.

pub mod checks;
pub mod incidents;
pub mod openapi;
pub mod results;
pub mod status_pages;
pub mod uptime;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::state::AppState;

/// Largest request body accepted (a check is far smaller).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API's routes and their OpenAPI document.
pub fn router(state: AppState) -> Router {
    // One merge per file: each file registers its own handlers.
    let api = OpenApiRouter::new()
        .merge(checks::routes())
        .merge(results::routes())
        .merge(uptime::routes())
        .merge(status_pages::routes())
        .routes(routes!(incidents::list));
    let (api, document) =
        OpenApiRouter::with_openapi(openapi::document()).nest("/api/v1", api).split_for_parts();
    api.merge(openapi::route(document)).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)).with_state(state)
}
