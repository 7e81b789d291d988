//! The heartbeat ping API, shaped like healthchecks.io's so existing cron
//! lines keep working with another base URL:
//! - `GET|POST /ping/{key}`: the job succeeded;
//! - `/ping/{key}/start`: it started;
//! - `/ping/{key}/fail`: it failed;
//! - `/ping/{key}/{exit-code}` (0–255): 0 is success, anything else failure;
//! - `?rid=` (up to 64 characters) pairs a start with its end;
//! - the request body, up to [`MAX_BODY_BYTES`](crate::heartbeat::MAX_BODY_BYTES)
//!   (longer bodies are cut), is stored as the run's log.
//!
//! No token: the key in the path is the credential. A key that no check
//! has is 404 and nothing is recorded. Every caller address has the API's
//! rate limit (its own bucket, so pings and API calls do not starve each
//! other). The key never reaches a log line: the request log of `mod.rs`
//! writes the path, so this router logs nothing itself and `log_request`
//! masks `/ping/` paths ([`loggable_path`]). Pings are counted by outcome
//! in `sentryk8s_heartbeat_pings_total` (the ops server's `/metrics`).

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;

use super::auth::Peer;
use super::problem::Problem;
use super::state::AppState;
use crate::heartbeat::judge::PingKind;
use crate::heartbeat::store::{self, NewPing};
use crate::heartbeat::MAX_BODY_BYTES;

/// Longest key looked up; longer ones cannot exist (the schema says 200).
const MAX_KEY_CHARS: usize = 200;
/// Longest run id.
const MAX_RID_CHARS: usize = 64;

/// The ping routes (outside `/api/v1`: the path is what cron lines call).
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/ping/{key}", get(success).post(success))
        .route("/ping/{key}/{what}", get(other).post(other))
        .with_state(state)
}

#[derive(Debug, Default, Deserialize)]
pub struct PingQuery {
    rid: Option<String>,
}

async fn success(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    Path(key): Path<String>,
    Query(query): Query<PingQuery>,
    body: Bytes,
) -> Response {
    record(&state, peer.map(|p| p.0), &key, PingKind::Success, query.rid.as_deref(), &body).await
}

async fn other(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    Path((key, what)): Path<(String, String)>,
    Query(query): Query<PingQuery>,
    body: Bytes,
) -> Response {
    let kind = match parse_kind(&what) {
        Ok(kind) => kind,
        Err(why) => {
            counted("invalid");
            return Problem::bad_request(why).into_response();
        }
    };
    record(&state, peer.map(|p| p.0), &key, kind, query.rid.as_deref(), &body).await
}

/// `start`, `fail` or an exit code 0–255.
pub fn parse_kind(what: &str) -> Result<PingKind, String> {
    match what {
        "start" => Ok(PingKind::Start),
        "fail" => Ok(PingKind::Fail),
        code => match code.parse::<u8>() {
            Ok(c) if !code.starts_with('+') => Ok(PingKind::Exit(c)),
            _ => Err(format!(
                "unknown ping \"{}\": use /ping/{{key}}, /ping/{{key}}/start, /ping/{{key}}/fail or /ping/{{key}}/{{exit code 0-255}}",
                what.escape_debug()
            )),
        },
    }
}

/// A run id: 1–64 visible characters.
pub fn check_rid(rid: &str) -> Result<(), String> {
    let n = rid.chars().count();
    if n == 0 || n > MAX_RID_CHARS || rid.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("rid: a run id is 1 to {MAX_RID_CHARS} visible characters without spaces"));
    }
    Ok(())
}

async fn record(
    state: &AppState,
    peer: Option<Peer>,
    key: &str,
    kind: PingKind,
    rid: Option<&str>,
    body: &[u8],
) -> Response {
    let ip = peer.map(|p| p.0.ip());
    let bucket = match ip {
        Some(ip) => format!("ping:{ip}"),
        None => "ping:unknown".to_string(),
    };
    if let Err(wait) = state.auth.take(&bucket, Instant::now()) {
        counted("limited");
        return Problem {
            retry_after: Some(wait.max(1)),
            ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "too many pings from this address; retry later")
        }
        .into_response();
    }
    if let Some(rid) = rid {
        if let Err(why) = check_rid(rid) {
            counted("invalid");
            return Problem::bad_request(why).into_response();
        }
    }
    let not_found = || {
        counted("unknown_key");
        Problem::not_found("no check has this ping key").into_response()
    };
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return not_found();
    }
    let body = &body[..body.len().min(MAX_BODY_BYTES)];
    let ping = NewPing { kind, rid, body: (!body.is_empty()).then_some(body), source_ip: ip };
    let client = match state.pool.get().await {
        Ok(c) => c,
        Err(e) => return Problem::unavailable(&e).into_response(),
    };
    match store::record(&**client, key, &ping).await {
        Ok(true) => {
            counted("recorded");
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK\n").into_response()
        }
        Ok(false) => not_found(),
        Err(e) => Problem::unavailable(&crate::db::error_chain(&e)).into_response(),
    }
}

/// Counts a ping by outcome (`recorded`, `unknown_key`, `invalid`,
/// `limited`): many unknown keys from one place is someone guessing.
fn counted(outcome: &'static str) {
    metrics::counter!("sentryk8s_heartbeat_pings_total", "outcome" => outcome).increment(1);
}

/// The path as the request log may write it: a ping path's key masked.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/ping/") {
        Some(rest) => {
            let tail = rest.split_once('/').map(|(_, t)| t);
            match tail {
                Some(t) => format!("/ping/***/{t}").into(),
                None => "/ping/***".into(),
            }
        }
        None => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_kinds_parse() {
        assert_eq!(parse_kind("start"), Ok(PingKind::Start));
        assert_eq!(parse_kind("fail"), Ok(PingKind::Fail));
        assert_eq!(parse_kind("0"), Ok(PingKind::Exit(0)));
        assert_eq!(parse_kind("255"), Ok(PingKind::Exit(255)));
        for bad in ["256", "-1", "+1", "log", "", "Start"] {
            let e = parse_kind(bad).unwrap_err();
            assert!(e.contains("unknown ping"), "{bad}: {e}");
        }
    }

    #[test]
    fn run_ids_are_short_and_visible() {
        assert!(check_rid("3f1c-77aa").is_ok());
        assert!(check_rid(&"x".repeat(64)).is_ok());
        for bad in ["", "a b", "a\nb", &"x".repeat(65)] {
            assert!(check_rid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn logged_paths_hide_the_key() {
        assert_eq!(loggable_path("/ping/s3cret"), "/ping/***");
        assert_eq!(loggable_path("/ping/s3cret/start"), "/ping/***/start");
        assert_eq!(loggable_path("/api/v1/checks"), "/api/v1/checks");
    }
}
