//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! served at `/api/v1/openapi.json` (no token needed: it describes the API,
//! it holds no data). This file holds what no handler says: the title and
//! the description (authentication, errors, paging), the bearer scheme
//! every operation needs unless it says otherwise, the tags, and the
//! problem+json schemas.

use std::sync::Arc;

use axum::extract::Extension;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::web::state::AppState;

/// The document's description: what every operation shares.
const DESCRIPTION: &str = "Checks, results, uptime and incidents of SentryK8s.

**Authentication.** Send `Authorization: Bearer <token>`; tokens come from \
`sentryk8s tokens create --name NAME --scope read|write|admin`. Scopes nest: `admin` \
includes `write`, which includes `read`. A missing, unknown, expired or revoked token gets \
401 with `WWW-Authenticate: Bearer`; too small a scope gets 403. With `web.public_read: true` \
the `GET` operations answer without a token.

**Errors** are RFC 9457 problem details (`application/problem+json`): `type`, `title`, \
`status`, `detail`, and for invalid input `errors`, each with a JSON `pointer` to the field.

**Limits.** Each token (or, without one, each client address) has a rate limit: 429 with \
`Retry-After`. Request bodies are capped at 1 MiB.

**Paging.** Results are paged by cursor, newest first: pass the `next_cursor` of a page as \
`cursor` to get the next one.";

#[derive(OpenApi)]
#[openapi(
    info(title = "SentryK8s API", description = DESCRIPTION, license(name = "Apache-2.0", identifier = "Apache-2.0")),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    paths(openapi_json),
    tags(
        (name = "checks", description = "Checks: list, read, create or update, delete, pause and resume"),
        (name = "results", description = "Every stored result of a check, paged"),
        (name = "uptime", description = "Time up, down, with no data and in maintenance, over a window"),
        (name = "incidents", description = "Incidents, open and resolved"),
        (name = "status-pages", description = "Status pages: list, read, create or update, delete"),
        (name = "meta", description = "This document"),
    ),
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
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token of `sentryk8s tokens create`"))
                    .build(),
            ),
        );
    }
}

/// The document the routes are added to.
pub fn document() -> Document {
    let mut doc = Api::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// This document (OpenAPI 3.1), generated from the handlers that answer.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "getOpenApi",
    security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object, content_type = "application/json"))
)]
async fn openapi_json(Extension(document): Extension<Arc<Document>>) -> Json<Document> {
    Json(document.as_ref().clone())
}

/// `GET /api/v1/openapi.json`.
pub fn route(document: Document) -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(openapi_json)).layer(Extension(Arc::new(document)))
}
