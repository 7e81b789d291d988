//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! served at `/api/v1/openapi.json` (no token needed: it describes the API,
//! it holds no data).

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::web::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "SentryK8s API", description = "Checks, results, uptime and incidents of SentryK8s."),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    components(schemas(crate::web::problem::Problem, crate::web::problem::FieldProblem))
)]
struct Api;

/// `Authorization: Bearer <token>` (tokens come from `sentryk8s tokens create`).
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document the routes are added to.
pub fn document() -> Document {
    let mut doc = Api::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// `GET /api/v1/openapi.json`.
pub fn route(document: Document) -> Router<AppState> {
    let document = Arc::new(document);
    Router::new()
        .route("/api/v1/openapi.json", get(move || std::future::ready(Json(document.as_ref().clone()))))
}
