//! Routes of `/api/v1` for checks: being built (issue 15).

use utoipa_axum::router::OpenApiRouter;

use crate::web::state::AppState;

/// This file's routes, with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
