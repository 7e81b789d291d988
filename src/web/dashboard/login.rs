//! Signing in and out: `GET /login` shows the form, `POST /login` takes
//! the pasted API token (field `token`) and, when it is a live token,
//! answers `303` to `/` with the session cookie; a bad token is `401` with
//! the form and a message saying what was wrong. `POST /logout` (with the
//! session's CSRF secret) ends the session and clears the cookie.
//!
//! A sign-in posted from another site (`Sec-Fetch-Site: cross-site`, which
//! browsers send) is refused: a page elsewhere must not sign a visitor in
//! with a token of its choosing (login CSRF). The form has no CSRF secret
//! of its own because there is no session yet to bind one to.

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::{csrf_checked, form_fields, message, render, see_other, SignedIn};
use crate::web::auth::Peer;
use crate::web::session::{self, SignInError};
use crate::web::state::AppState;

#[derive(Template)]
#[template(path = "dashboard/login.html")]
pub struct LoginPage {
    /// Why the last attempt was refused.
    pub error: Option<String>,
}

/// `GET /login`: the form, or `/` when already signed in.
pub async fn form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session::current(&headers, &state).await {
        Ok(Some(_)) => see_other("/"),
        Ok(None) => render(StatusCode::OK, &LoginPage { error: None }),
        Err(p) => p.into_response(),
    }
}

/// `POST /login`.
pub async fn submit(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")) {
        return message(StatusCode::FORBIDDEN, "Refused", "A sign-in must come from this site's own form.");
    }
    let fields = form_fields(&body);
    let token = fields.get("token").map(String::as_str).unwrap_or("");
    match session::sign_in(&state, &headers, peer.as_ref().map(|p| &p.0), token).await {
        Ok((_, cookie)) => {
            let mut response = see_other("/");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(e) => {
            let status = match &e {
                SignInError::Empty | SignInError::Malformed | SignInError::Refused => {
                    StatusCode::UNAUTHORIZED
                }
                SignInError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
                SignInError::Unavailable(cause) => {
                    tracing::warn!(error = %cause, "web: sign-in failed: database unavailable");
                    StatusCode::SERVICE_UNAVAILABLE
                }
                SignInError::Random => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let mut response = render(status, &LoginPage { error: Some(e.to_string()) });
            if let SignInError::TooMany(seconds) = e {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
    }
}

/// `POST /logout`: ends the session, clears the cookie, back to `/login`.
pub async fn sign_out(
    State(state): State<AppState>,
    SignedIn(session): SignedIn,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = csrf_checked(&session, &form_fields(&body)) {
        return refused;
    }
    if let Err(p) = session::sign_out(&state, &session).await {
        return p.into_response();
    }
    let mut response = see_other("/login");
    if let Ok(value) = HeaderValue::from_str(&session::clear_cookie(session::over_tls(&headers))) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
