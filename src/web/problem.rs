//! Errors as RFC 9457 problem details (`application/problem+json`): a
//! type, a title, the HTTP status, a detail for people, and for invalid
//! input every problem found, each with a JSON pointer (RFC 6901) to the
//! field.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldProblem {
    /// JSON pointer to the field in the request body, e.g. `/expect/status/0`.
    pub pointer: String,
    pub detail: String,
}

/// A problem+json body.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Every invalid field (422).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
    /// Who owns a check the caller may not change (409).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Seconds to wait (429).
    #[serde(skip)]
    pub retry_after: Option<u64>,
    /// The `WWW-Authenticate` challenge (401).
    #[serde(skip)]
    pub challenge: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: Some(detail.into()),
            errors: Vec::new(),
            owner: None,
            retry_after: None,
            challenge: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, detail)
    }

    /// 422 with every invalid field.
    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldProblem>) -> Problem {
        Problem { errors, ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, detail) }
    }

    /// 401: no token, or one that is unknown, expired or revoked.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem {
            challenge: Some("Bearer realm=\"sentryk8s\"".into()),
            ..Problem::new(StatusCode::UNAUTHORIZED, detail)
        }
    }

    /// 403: a valid token whose scope is too small.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, detail)
    }

    /// 429 with `Retry-After`.
    pub fn too_many(retry_after: u64) -> Problem {
        Problem {
            retry_after: Some(retry_after.max(1)),
            ..Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded for this token; retry later")
        }
    }

    /// 500 without the cause (logged instead: it may name internals).
    pub fn internal(cause: &dyn std::fmt::Display) -> Problem {
        tracing::error!(error = %cause, "request failed");
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; the server log has the cause")
    }

    /// 503: PostgreSQL did not answer.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Problem {
        tracing::warn!(error = %cause, "request failed: database unavailable");
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; retry later")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_problem_json_with_its_headers() {
        let r = Problem::unauthorized("no token").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert!(r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Bearer"));
        let r = Problem::too_many(3).into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn invalid_input_lists_pointers() {
        let p = Problem::invalid(
            "3 problems",
            vec![FieldProblem { pointer: "/url".into(), detail: "required".into() }],
        );
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["status"], 422);
        assert_eq!(v["errors"][0]["pointer"], "/url");
        assert!(v.get("retry_after").is_none());
    }
}
