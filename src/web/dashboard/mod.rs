//! The operator dashboard: server-rendered pages for people signed in with
//! an API token (`session.rs`). Every page works without JavaScript;
//! `dashboard.js` only refreshes the checks table in place.
//!
//! | route | what | file |
//! |---|---|---|
//! | `GET /login`, `POST /login`, `POST /logout` | sign in with a token, sign out | `login.rs` |
//! | `GET /` | every check: state, since, last run, uptime, 24 h sparkline, labels; filters | `checks.rs` |
//! | `GET /partials/checks` | the table's rows alone, for the in-place refresh | `checks.rs` |
//! | `GET /checks/{name}` | one check: masked spec, latest runs and their phases, incidents | `check.rs` |
//! | `POST /checks/{name}/pause`, `…/resume` | pause and resume (write scope, CSRF) | `check.rs` |
//! | `GET /incidents`, `/maintenance`, `/status-pages` | the lists | `lists.rs` |
//!
//! Scopes: every signed-in token sees every page (as every token reads
//! every check through the API); pause and resume need `write`, and a
//! check owned by a checks file needs `admin` (see `check.rs`). Signed
//! out, a page redirects to `/login`; a form posted without a session, or
//! without its session's CSRF secret, is 403.
//!
//! - `format.rs` — how times, percents and states read (pure).
//!
//! The dashboard has no SQL of its own: checks and results are read
//! through `web::store` and `web::results_store` (as the API reads them),
//! history through `history::report`, maintenance windows and status pages
//! through `status_pages::store`.

pub mod check;
pub mod checks;
pub mod format;
pub mod lists;
pub mod login;

use std::collections::HashMap;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::session::{self, Session};
use super::state::AppState;

/// The dashboard's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(checks::page))
        .route("/partials/checks", get(checks::rows))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::sign_out))
        .route("/checks/{name}", get(check::page))
        .route("/checks/{name}/pause", post(check::pause))
        .route("/checks/{name}/resume", post(check::resume))
        .route("/incidents", get(lists::incidents))
        .route("/maintenance", get(lists::maintenance))
        .route("/status-pages", get(lists::status_pages))
        .with_state(state)
}

/// What the header of every signed-in page shows.
#[derive(Debug, Clone)]
pub struct Nav {
    /// The name of the session's token.
    pub token: String,
    pub scope: String,
    /// For the sign-out form.
    pub csrf: String,
    /// Which tab is current: `checks`, `incidents`, `maintenance`, `status-pages`.
    pub active: &'static str,
}

impl Nav {
    pub fn new(session: &Session, active: &'static str) -> Nav {
        Nav {
            token: session.token.clone(),
            scope: session.scope.to_string(),
            csrf: session.csrf.clone(),
            active,
        }
    }
}

/// A request with a live session. Without one, a page (GET) redirects to
/// `/login` and a form (POST) is 403: a cross-site forgery carries no
/// cookie (`SameSite=Strict`) and must not be followed anywhere.
pub struct SignedIn(pub Session);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match session::current(&parts.headers, state).await {
            Ok(Some(s)) => Ok(SignedIn(s)),
            Ok(None) if parts.method == Method::GET || parts.method == Method::HEAD => {
                Err(see_other("/login"))
            }
            Ok(None) => Err(message(
                StatusCode::FORBIDDEN,
                "Not signed in",
                "This form needs a signed-in session. Sign in again, then retry.",
            )),
            Err(p) => Err(p.into_response()),
        }
    }
}

/// A rendered page with `status`; a template that fails to render (it
/// cannot, short of a bug) is 500 with the cause logged.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => super::problem::Problem::internal(&e).into_response(),
    }
}

/// A page that says one thing (an error, a refusal), with a link home.
#[derive(Template)]
#[template(path = "dashboard/message.html")]
pub struct Message<'a> {
    pub title: &'a str,
    pub text: &'a str,
}

pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    render(status, &Message { title, text })
}

/// `303 See Other` to `path`: after a form, the browser GETs the result.
pub fn see_other(path: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, session::location(path))]).into_response()
}

/// The fields of a form (`application/x-www-form-urlencoded`); a field
/// given twice keeps its first value.
pub fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        fields.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    fields
}

/// Whether a posted form carries `session`'s CSRF secret; the 403 page
/// when it does not.
pub fn csrf_checked(session: &Session, fields: &HashMap<String, String>) -> Result<(), Response> {
    match fields.get("csrf") {
        Some(sent) if session.csrf_ok(sent) => Ok(()),
        _ => {
            tracing::warn!(token = %session.token, "web: a form without its session's CSRF secret was refused");
            Err(message(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form did not come from this session's page (its CSRF token is missing or wrong). \
                 Reload the page and retry.",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_keep_the_first_value() {
        let f = form_fields(b"token=sk8s_a%2Bb&csrf=x+y&csrf=z");
        assert_eq!(f["token"], "sk8s_a+b");
        assert_eq!(f["csrf"], "x y");
        assert!(form_fields(b"").is_empty());
    }

    #[test]
    fn a_form_without_the_secret_is_refused() {
        let s = Session {
            digest: "d".into(),
            token: "t".into(),
            scope: crate::tokens::Scope::Write,
            csrf: "good".into(),
        };
        assert!(csrf_checked(&s, &form_fields(b"csrf=good")).is_ok());
        for bad in [&b""[..], b"csrf=", b"csrf=bad", b"x=good"] {
            let refused = csrf_checked(&s, &form_fields(bad)).unwrap_err();
            assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        }
    }
}
