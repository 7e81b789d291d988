//! Who is calling, and may they: `Authorization: Bearer <token>`, scopes
//! and the rate limit, as extractors (`CanRead`, `CanWrite`) a handler
//! names in its arguments. The rules are in `auth.rs`'s documentation.

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::auth::Peer;
use super::problem::Problem;
use super::state::AppState;
use crate::tokens::{self, store, Scope};

/// An authenticated (or, for public reads, anonymous) caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name; `None` for an anonymous public read.
    pub token: Option<String>,
    /// `None` for an anonymous public read.
    pub scope: Option<Scope>,
}

impl Caller {
    pub fn is(&self, scope: Scope) -> bool {
        self.scope.is_some_and(|s| s.allows(scope))
    }
}

/// The bearer token of a request: `Ok(None)` when there is no
/// `Authorization` header, `Err` when there is one that is not a bearer token.
fn bearer(parts: &Parts) -> Result<Option<&str>, Problem> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let text = value.to_str().map_err(|_| Problem::unauthorized("the Authorization header is not text"))?;
    let (kind, token) = text.split_once(' ').unwrap_or((text, ""));
    if !kind.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Problem::unauthorized("send the token as `Authorization: Bearer <token>`"));
    }
    Ok(Some(token.trim()))
}

/// Authenticates the request and checks it may do what `needed` allows.
pub async fn authorize(parts: &Parts, state: &AppState, needed: Scope) -> Result<Caller, Problem> {
    let now = Instant::now();
    let token = bearer(parts)?;
    let caller = match token {
        None if needed == Scope::Read && state.web.public_read => Caller { token: None, scope: None },
        None => {
            return Err(Problem::unauthorized("this route needs a token: `Authorization: Bearer <token>`"))
        }
        Some(token) => {
            if !tokens::well_formed(token) {
                return Err(Problem::unauthorized("the token is not valid"));
            }
            let digest = tokens::digest(token);
            let found = match state.auth.cached(&digest, now) {
                Some(found) => found,
                None => {
                    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
                    let found =
                        store::lookup(&**client, &digest).await.map_err(|e| Problem::unavailable(&e))?;
                    state.auth.remember(digest, found.clone(), now);
                    found
                }
            };
            let Some((name, scope)) = found else {
                return Err(Problem::unauthorized("the token is unknown, expired or revoked"));
            };
            if state.auth.touch_due(&name, now) {
                let pool = state.pool.clone();
                let touched = name.clone();
                tokio::spawn(async move {
                    if let Ok(client) = pool.get().await {
                        if let Err(e) = store::touch(&**client, &touched).await {
                            tracing::debug!(token = %touched, error = %e, "cannot record token use");
                        }
                    }
                });
            }
            Caller { token: Some(name), scope: Some(scope) }
        }
    };
    let key = match (&caller.token, parts.extensions.get::<Peer>()) {
        (Some(name), _) => format!("token:{name}"),
        (None, Some(peer)) => format!("peer:{}", peer.0.ip()),
        (None, None) => "peer:unknown".to_string(),
    };
    state.auth.take(&key, now).map_err(Problem::too_many)?;
    if let Some(scope) = caller.scope {
        if !scope.allows(needed) {
            return Err(Problem::forbidden(format!(
                "this token's scope is {scope}; this route needs {needed} (or more)"
            )));
        }
    }
    Ok(caller)
}

/// A caller allowed to read.
pub struct CanRead(pub Caller);
/// A caller allowed to write.
pub struct CanWrite(pub Caller);

impl FromRequestParts<AppState> for CanRead {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        authorize(parts, state, Scope::Read).await.map(CanRead)
    }
}

impl FromRequestParts<AppState> for CanWrite {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        authorize(parts, state, Scope::Write).await.map(CanWrite)
    }
}
