//! Sign-in sessions of the pages (the dashboard; private status pages).
//!
//! - **Sign-in.** A person posts an API token to `/login`. It is checked
//!   as a bearer token is (shape first, then its digest against the live
//!   tokens); on success a new session gets 256 random bits as its id. The
//!   browser keeps the id in the cookie [`COOKIE`] (`HttpOnly`,
//!   `SameSite=Strict`, `Path=/`, `Secure` when the request came over TLS,
//!   see [`over_tls`]); the database keeps only its SHA-256, the token it
//!   was made with, and a CSRF secret (`session_store.rs`).
//! - **Lifetime.** A session lasts [`LIFETIME`], or until its token
//!   expires if sooner. Revoking the token deletes its sessions; an expired
//!   token's sessions are refused. Lookups are cached for at most
//!   [`CACHE_TTL`] (one second) like token lookups, so every replica sees a
//!   revocation or a sign-out within a second.
//! - **CSRF.** A form that changes something carries the session's CSRF
//!   secret in a hidden field; the handler compares it in constant time
//!   ([`Session::csrf_ok`]) and answers 403 when it differs. `SameSite=Strict`
//!   already keeps the cookie off cross-site requests; the secret is the
//!   second lock.
//! - **Who is looking.** [`Viewer`] is the caller's scope from EITHER the
//!   session cookie OR an `Authorization: Bearer` token, `None` for an
//!   anonymous caller (a private status page answers 404 to it).
//!
//! Neither the session id nor the token is ever logged; only the token's name.

use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;

use super::access;
use super::auth::Peer;
use super::problem::Problem;
use super::session_store::{self as store, SessionRow};
use super::state::AppState;
use crate::tokens::{self, Scope};

/// The name of the session cookie.
pub const COOKIE: &str = "sentryk8s_session";
/// Longest a session lasts (a working day and then some): signing in again
/// costs pasting the token, and a forgotten browser does not stay signed in.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Longest a session lookup is trusted (the cache is `auth.rs`'s, beside
/// the token cache).
pub use super::auth::SESSION_CACHE_TTL as CACHE_TTL;

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// SHA-256 of the session id (hex): what is stored and cached.
    pub digest: String,
    /// The name of the token it was made with.
    pub token: String,
    pub scope: Scope,
    /// What its forms must send back in the field `csrf`.
    pub csrf: String,
}

impl Session {
    fn from_row(digest: String, row: SessionRow) -> Session {
        Session { digest, token: row.token, scope: row.scope, csrf: row.csrf_secret }
    }

    /// Whether `sent` is this session's CSRF secret (compared in constant
    /// time: the comparison must not tell how much of a guess was right).
    pub fn csrf_ok(&self, sent: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), sent.as_bytes())
    }

    pub fn can(&self, needed: Scope) -> bool {
        self.scope.allows(needed)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("paste an API token (it starts with \"sk8s_\")")]
    Empty,
    #[error("that is not an API token: a token is \"sk8s_\" followed by 43 letters, digits, '-' or '_'")]
    Malformed,
    #[error("this token is unknown, expired or revoked")]
    Refused,
    #[error("too many attempts; retry in {0} s")]
    TooMany(u64),
    #[error("the database is unavailable; retry later")]
    Unavailable(String),
    #[error("the system random generator failed")]
    Random,
}

/// The session cookie's value among the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether the browser reached us over TLS. The web role itself speaks
/// plain HTTP behind an ingress or gateway that terminates TLS and says so
/// in `X-Forwarded-Proto: https` (or `Forwarded: proto=https`). Trusting
/// the header without a list of proxies is safe here: it can only add
/// `Secure` to the sender's own cookie, which then travels over TLS only.
pub fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https")));
    let forwarded = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').next().is_some_and(|first| {
            first.split(';').any(|pair| {
                pair.trim().split_once('=').is_some_and(|(k, val)| {
                    k.trim().eq_ignore_ascii_case("proto")
                        && val.trim().trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        })
    });
    forwarded_proto || forwarded
}

/// The `Set-Cookie` value that stores session `id` in the browser.
pub fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", LIFETIME.as_secs())
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}")
}

fn random_text() -> Result<String, SignInError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| SignInError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The rate-limit key of an anonymous caller: its address.
fn peer_key(parts_peer: Option<&Peer>) -> String {
    match parts_peer {
        Some(peer) => format!("peer:{}", peer.0.ip()),
        None => "peer:unknown".to_string(),
    }
}

/// Signs in with the pasted `token`: the new session and the `Set-Cookie`
/// value to send. Each attempt takes one request from the caller's
/// rate-limit bucket.
pub async fn sign_in(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<&Peer>,
    token: &str,
) -> Result<(Session, String), SignInError> {
    state.auth.take(&peer_key(peer), Instant::now()).map_err(SignInError::TooMany)?;
    let token = token.trim();
    if token.is_empty() {
        return Err(SignInError::Empty);
    }
    if !tokens::well_formed(token) {
        return Err(SignInError::Malformed);
    }
    let id = random_text()?;
    let csrf = random_text()?;
    let digest = tokens::digest(&id);
    let client = state.pool.get().await.map_err(|e| SignInError::Unavailable(e.to_string()))?;
    let row = store::create(&**client, &digest, &tokens::digest(token), &csrf, LIFETIME)
        .await
        .map_err(|e| SignInError::Unavailable(crate::db::error_chain(&e)))?;
    let Some(row) = row else { return Err(SignInError::Refused) };
    tracing::info!(token = %row.token, scope = %row.scope, "web: signed in");
    let cookie = set_cookie(&id, over_tls(headers));
    Ok((Session::from_row(digest, row), cookie))
}

/// Ends `session` (sign-out): deleted, and forgotten by this replica's
/// cache at once (other replicas within [`CACHE_TTL`]).
pub async fn sign_out(state: &AppState, session: &Session) -> Result<(), Problem> {
    let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
    store::delete(&**client, &session.digest).await.map_err(|e| Problem::unavailable(&e))?;
    state.sessions.forget(&session.digest);
    tracing::info!(token = %session.token, "web: signed out");
    Ok(())
}

/// The request's live session, if its cookie names one. A cookie that
/// names no live session is the same as none.
pub async fn current(headers: &HeaderMap, state: &AppState) -> Result<Option<Session>, Problem> {
    let Some(id) = cookie_value(headers) else { return Ok(None) };
    let now = Instant::now();
    let digest = tokens::digest(id);
    let row = match state.sessions.get(&digest, now) {
        Some(row) => row,
        None => {
            let client = state.pool.get().await.map_err(|e| Problem::unavailable(&e))?;
            let row = store::lookup(&**client, &digest).await.map_err(|e| Problem::unavailable(&e))?;
            state.sessions.put(digest.clone(), row.clone(), now);
            row
        }
    };
    let Some(row) = row else { return Ok(None) };
    state.auth.take(&format!("token:{}", row.token), now).map_err(Problem::too_many)?;
    Ok(Some(Session::from_row(digest, row)))
}

/// Who is looking at a page: the scope of the session cookie or of the
/// bearer token, `None` for an anonymous caller (or one whose cookie or
/// token is not valid: to a page, that is the same as none). A database
/// outage is 503 and an empty rate-limit bucket 429, not "anonymous".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer(pub Option<Scope>);

impl Viewer {
    pub fn can(&self, needed: Scope) -> bool {
        self.0.is_some_and(|s| s.allows(needed))
    }
}

/// The caller's scope from EITHER a bearer token OR the session cookie.
pub async fn scope_of(parts: &Parts, state: &AppState) -> Result<Option<Scope>, Problem> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return match access::authorize(parts, state, Scope::Read).await {
            Ok(caller) => Ok(caller.scope),
            Err(p) if p.status == 401 || p.status == 403 => Ok(None),
            Err(p) => Err(p),
        };
    }
    Ok(current(&parts.headers, state).await?.map(|s| s.scope))
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        scope_of(parts, state).await.map(Viewer)
    }
}

/// A `Location` header value for a redirect to `path` (a path of ours).
pub fn location(path: &str) -> HeaderValue {
    HeaderValue::from_str(path).unwrap_or(HeaderValue::from_static("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; sentryk8s_session=abc ; b=2")]);
        assert_eq!(cookie_value(&h), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "sentryk8s_session=xyz")]);
        assert_eq!(cookie_value(&h), Some("xyz"));
        for none in ["a=1", "sentryk8s_session=", "sentryk8s_sessionx=1", "xsentryk8s_session=1"] {
            assert_eq!(cookie_value(&headers(&[("cookie", none)])), None, "{none}");
        }
        assert_eq!(cookie_value(&HeaderMap::new()), None);
    }

    #[test]
    fn tls_is_what_the_proxy_says() {
        assert!(over_tls(&headers(&[("x-forwarded-proto", "https")])));
        assert!(over_tls(&headers(&[("x-forwarded-proto", "HTTPS, http")])));
        assert!(!over_tls(&headers(&[("x-forwarded-proto", "http")])));
        assert!(over_tls(&headers(&[("forwarded", "for=1.2.3.4;proto=https;host=x")])));
        assert!(over_tls(&headers(&[("forwarded", "proto=\"https\"")])));
        assert!(!over_tls(&headers(&[("forwarded", "proto=http, proto=https")])));
        assert!(!over_tls(&HeaderMap::new()));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_tls() {
        let c = set_cookie("id1", false);
        assert_eq!(
            c,
            format!("sentryk8s_session=id1; HttpOnly; SameSite=Strict; Path=/; Max-Age={}", 12 * 3600)
        );
        assert!(set_cookie("id1", true).ends_with("; Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
        assert!(clear_cookie(true).ends_with("; Secure"));
    }

    #[test]
    fn csrf_compares_whole_secrets() {
        let s = Session { digest: "d".into(), token: "t".into(), scope: Scope::Write, csrf: "s3cret".into() };
        assert!(s.csrf_ok("s3cret"));
        for bad in ["", "s3cre", "s3cret!", "S3cret", "x3cret"] {
            assert!(!s.csrf_ok(bad), "{bad}");
        }
        assert!(s.can(Scope::Read) && s.can(Scope::Write) && !s.can(Scope::Admin));
    }

    #[test]
    fn session_ids_are_random_and_url_safe() {
        let (a, b) = (random_text().unwrap(), random_text().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
