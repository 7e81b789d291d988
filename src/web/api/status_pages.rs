//! `/api/v1/status-pages`: list, read, create or update (`PUT`) and
//! delete status pages (docs/status-pages.md).
//!
//! A `PUT` body is one page in the checks-file schema (JSON or YAML, `slug`
//! may be left out), validated by the validator of `checks apply` as the
//! entry `status_pages[0]`: every problem comes back as a 422 with a JSON
//! pointer to its field, and so do check names that no stored check has
//! and label selectors that select no check. Ownership is that of checks:
//! the API changes only the pages it owns; a page declared in a checks
//! file answers 409 unless an admin token sends `?force=true` (the page
//! then belongs to the API and `checks apply` leaves it alone).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::checks_file::declared::Validator;
use crate::checks_file::diagnostic::{pointer, Diagnostic};
use crate::checks_file::env;
use crate::checks_file::status_pages::DeclaredPage;
use crate::status_pages::store::{self, StoredPage};
use crate::status_pages::{PageOwner, PageSpec};
use crate::tokens::Scope;
use crate::web::access::{Caller, CanRead, CanWrite};
use crate::web::problem::{FieldProblem, Problem};
use crate::web::state::AppState;

/// This file's routes, with their OpenAPI descriptions.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(get_page, put_page, delete_page))
}

/// A stored page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageDoc {
    pub slug: String,
    /// file | api.
    pub owner: String,
    /// Where it is shown: `/status/{slug}`.
    pub url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(flatten)]
    pub spec: PageSpec,
}

fn doc(p: StoredPage) -> Result<PageDoc, Problem> {
    let spec: PageSpec = serde_json::from_value(p.spec).map_err(|e| Problem::internal(&e))?;
    Ok(PageDoc {
        url: format!("/status/{}", p.slug),
        slug: p.slug,
        owner: p.owner.as_str().to_string(),
        created_at: p.created_at,
        updated_at: p.updated_at,
        spec,
    })
}

fn not_found(slug: &str) -> Problem {
    Problem::not_found(format!("no status page \"{slug}\""))
}

#[utoipa::path(
    get,
    path = "/status-pages",
    tag = "status-pages",
    operation_id = "listStatusPages",
    responses(
        (status = 200, description = "Every status page, by slug", body = [PageDoc]),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    CanRead(_caller): CanRead,
) -> Result<Json<Vec<PageDoc>>, Problem> {
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let pages = store::pages(&**client).await.map_err(|e| Problem::unavailable(&e))?;
    Ok(Json(pages.into_iter().map(doc).collect::<Result<_, _>>()?))
}

#[utoipa::path(
    get,
    path = "/status-pages/{slug}",
    tag = "status-pages",
    operation_id = "getStatusPage",
    params(("slug" = String, Path, description = "The page's slug")),
    responses(
        (status = 200, description = "The page", body = PageDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such page", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_page(
    State(state): State<AppState>,
    CanRead(_caller): CanRead,
    Path(slug): Path<String>,
) -> Result<Json<PageDoc>, Problem> {
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let page = store::page_by_slug(&**client, &slug).await.map_err(|e| Problem::unavailable(&e))?;
    Ok(Json(doc(page.ok_or_else(|| not_found(&slug))?)?))
}

/// `?force=true`: an admin takes a file-owned page over.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WriteQuery {
    /// Change or delete a page owned by a checks file (admin scope only;
    /// a forced PUT makes the page the API's).
    #[serde(default)]
    pub force: bool,
}

fn forced(caller: &Caller, query: &WriteQuery) -> Result<bool, Problem> {
    if query.force && !caller.is(Scope::Admin) {
        return Err(Problem::forbidden("?force=true needs a token with the admin scope"));
    }
    Ok(query.force)
}

fn conflict(slug: &str) -> Problem {
    Problem {
        owner: Some("file".into()),
        ..Problem::new(
            StatusCode::CONFLICT,
            format!("status page \"{slug}\" is owned by file: change it in its checks file and run `checks apply`, or send ?force=true with an admin token (the page then belongs to the API)"),
        )
    }
}

/// 422 listing every problem, each with its JSON pointer in the body.
fn invalid(diags: &[Diagnostic]) -> Problem {
    let errors: Vec<FieldProblem> = diags
        .iter()
        .map(|d| FieldProblem { pointer: pointer(&d.path, "status_pages[0]"), detail: d.message.clone() })
        .collect();
    let n = errors.len();
    Problem::invalid(format!("{n} problem{} in the status page", if n == 1 { "" } else { "s" }), errors)
}

/// The body validated as the page `slug`.
fn validate(state: &AppState, slug: &str, headers: &HeaderMap, body: &[u8]) -> Result<DeclaredPage, Problem> {
    let whole = |detail: String| {
        Problem::invalid(detail.clone(), vec![FieldProblem { pointer: String::new(), detail }])
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let text = std::str::from_utf8(body).map_err(|e| whole(format!("the body is not UTF-8: {e}")))?;
    let source = match essence.as_str() {
        // JSON is YAML; written out again so the YAML reader sees one style.
        "application/json" => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| whole(format!("the body is not valid JSON: {e}")))?;
            serde_json::to_string_pretty(&value).map_err(|e| Problem::internal(&e))?
        }
        "application/yaml" | "text/yaml" | "application/x-yaml" | "text/x-yaml" => {
            text.strip_prefix('\u{feff}').unwrap_or(text).to_string()
        }
        _ => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the page as application/json, application/yaml or text/yaml",
            ))
        }
    };
    let allow = env::AllowList::new(&state.allow_env).map_err(|e| Problem::internal(&e))?;
    let mut validator = Validator::with_allow(&env::process_env, &allow);
    match validator.validate_page("body", &source, slug) {
        (Some(page), diags) if diags.is_empty() => Ok(page),
        (_, diags) => Err(invalid(&diags)),
    }
}

/// Check names no stored check has, and selectors selecting none.
async fn unresolved(
    db: &impl tokio_postgres::GenericClient,
    page: &DeclaredPage,
) -> Result<Vec<Diagnostic>, Problem> {
    let names: Vec<String> = page.check_refs.iter().map(|r| r.name.clone()).collect();
    let unknown = store::unknown_checks(db, &names).await.map_err(|e| Problem::unavailable(&e))?;
    let mut out: Vec<Diagnostic> = page
        .check_refs
        .iter()
        .filter(|r| unknown.contains(&r.name))
        .map(|r| Diagnostic {
            file: r.file.clone(),
            pos: Some(r.pos),
            path: r.path.clone(),
            message: format!("unknown check `{}`", r.name),
        })
        .collect();
    for s in &page.selectors {
        if !store::selector_matches(db, &s.labels).await.map_err(|e| Problem::unavailable(&e))? {
            out.push(Diagnostic {
                file: s.file.clone(),
                pos: Some(s.pos),
                path: s.path.clone(),
                message: "the selector selects no check: no stored check carries these labels".into(),
            });
        }
    }
    Ok(out)
}

#[utoipa::path(
    put,
    path = "/status-pages/{slug}",
    tag = "status-pages",
    operation_id = "putStatusPage",
    params(("slug" = String, Path, description = "The page's slug"), WriteQuery),
    request_body(
        description = "One page in the checks-file schema (docs/status-pages.md); `slug` may be left out",
        content((PageSpec = "application/json"), (String = "application/yaml"), (String = "text/yaml"))
    ),
    responses(
        (status = 200, description = "Updated", body = PageDoc),
        (status = 201, description = "Created", body = PageDoc),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token, or ?force=true without admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The page is owned by a checks file", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON or YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every problem of the page, each with a JSON pointer", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn put_page(
    State(state): State<AppState>,
    CanWrite(caller): CanWrite,
    Path(slug): Path<String>,
    Query(query): Query<WriteQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let force = forced(&caller, &query)?;
    let page = validate(&state, &slug, &headers, &body)?;
    let mut client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let tx = client.transaction().await.map_err(|e| Problem::unavailable(&e))?;
    let problems = unresolved(&*tx, &page).await?;
    if !problems.is_empty() {
        return Err(invalid(&problems));
    }
    let existing = store::page_by_slug(&*tx, &page.slug).await.map_err(|e| Problem::unavailable(&e))?;
    if existing.as_ref().is_some_and(|p| p.owner == PageOwner::File) && !force {
        return Err(conflict(&page.slug));
    }
    let spec = serde_json::to_value(&page.spec).map_err(|e| Problem::internal(&e))?;
    let created = store::put_page(&*tx, &page.slug, &spec, PageOwner::Api)
        .await
        .map_err(|e| Problem::unavailable(&e))?;
    let stored = store::page_by_slug(&*tx, &page.slug).await.map_err(|e| Problem::unavailable(&e))?;
    tx.commit().await.map_err(|e| Problem::unavailable(&e))?;
    let stored = stored.ok_or_else(|| Problem::internal(&"the page just written is gone"))?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(doc(stored)?)).into_response())
}

#[utoipa::path(
    delete,
    path = "/status-pages/{slug}",
    tag = "status-pages",
    operation_id = "deleteStatusPage",
    params(("slug" = String, Path, description = "The page's slug"), WriteQuery),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A read token, or ?force=true without admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such page", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The page is owned by a checks file", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_page(
    State(state): State<AppState>,
    CanWrite(caller): CanWrite,
    Path(slug): Path<String>,
    Query(query): Query<WriteQuery>,
) -> Result<StatusCode, Problem> {
    let force = forced(&caller, &query)?;
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    let existing = store::page_by_slug(&**client, &slug).await.map_err(|e| Problem::unavailable(&e))?;
    match existing {
        None => Err(not_found(&slug)),
        Some(p) if p.owner == PageOwner::File && !force => Err(conflict(&slug)),
        Some(_) => {
            store::delete_page(&**client, &slug).await.map_err(|e| Problem::unavailable(&e))?;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
