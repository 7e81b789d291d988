//! Where an HTTP check is timed: one request on a fresh connection, phase by
//! phase, under one hard deadline, following redirects.
//!
//! Every hop is one `net::http` exchange (which resolves, judges the
//! addresses by the deny list, connects, shakes hands and reads with a
//! cap), all of them under the check's timeout: resolution, every redirect
//! hop and the body read, so a server that trickles a byte a second ends
//! at the deadline like one that never answers. The body is read up to a
//! limit and no further, and only kept in memory when an assertion needs
//! it. What the response must look like is `assertions.rs`.
//!
//! Phase times are summed over redirect hops; `total_ms` is wall time.

use std::time::Duration;

use chrono::Utc;
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Version};
use tokio::time::Instant;
use url::Url;

use super::assertions::{self, Observed, RegexCache};
use crate::model::bounds::MAX_TIMEOUT;
use crate::model::{CheckOutcome, CheckSpec, ErrorClass};
use crate::net::budget::BodyBudget;
use crate::net::deny::DenyList;
use crate::net::http::{self as exchange, Client, Failure, Outgoing, Progress};
use crate::net::tls::TlsSetupError;

/// Longest error message stored.
const MAX_MESSAGE_CHARS: usize = 240;

/// Runs HTTP checks. Cheap to share: holds the TLS configurations, the
/// deny list and the compiled-regex cache.
pub struct HttpProbe {
    client: Client,
    /// Body bytes read when the spec sets no limit.
    body_limit: u64,
    /// Body bytes read at most, whatever the spec sets.
    body_limit_max: u64,
    /// Largest body JSON assertions parse.
    json_max_bytes: usize,
    /// User-Agent of checks that do not set one.
    user_agent: HeaderValue,
    regexes: RegexCache,
}

/// A check's outcome plus what only tests and diagnostics need.
#[derive(Debug, Clone)]
pub struct Report {
    pub outcome: CheckOutcome,
    /// HTTP version of the final response.
    pub version: Option<Version>,
}

/// The final response of a check.
struct Response {
    body: Option<Vec<u8>>,
    body_exceeded: bool,
    /// The body's share of the worker's body budget, held until the
    /// assertions are done with it.
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

fn short(message: String) -> String {
    exchange::excerpt(&message, MAX_MESSAGE_CHARS)
}

impl HttpProbe {
    pub fn new(
        body_limit: u64,
        user_agent: &str,
        deny: DenyList,
        memory: &super::MemoryLimits,
    ) -> Result<HttpProbe, TlsSetupError> {
        let user_agent =
            HeaderValue::from_str(user_agent).unwrap_or_else(|_| HeaderValue::from_static("sentryk8s"));
        Ok(HttpProbe {
            client: Client::with_body_budget(
                deny,
                BodyBudget::new(memory.body_budget, memory.checks_in_flight),
            )?,
            body_limit,
            body_limit_max: memory.body_limit_max.max(1),
            json_max_bytes: usize::try_from(memory.json_max_bytes).unwrap_or(usize::MAX),
            user_agent,
            regexes: RegexCache::default(),
        })
    }

    /// Runs one check to its outcome; never panics, never outlives the
    /// spec's timeout by more than scheduling jitter.
    pub async fn run(&self, spec: &CheckSpec) -> CheckOutcome {
        self.probe(spec).await.outcome
    }

    /// Like [`run`](Self::run), also reporting the HTTP version.
    pub async fn probe(&self, spec: &CheckSpec) -> Report {
        let started_at = Utc::now();
        let start = Instant::now();
        let timeout = Duration::from_millis(spec.timeout_ms).min(MAX_TIMEOUT);
        let mut progress = Progress::new(start + timeout);
        let deadline = progress.deadline;
        // Boxed: the whole exchange is a state machine of several KiB, and
        // an unboxed one is copied each time the check's future moves.
        let result = tokio::time::timeout_at(deadline, Box::pin(self.execute(spec, &mut progress))).await;
        progress.timings.total_ms = start.elapsed().as_secs_f64() * 1000.0;
        let mut outcome = CheckOutcome {
            started_at,
            success: false,
            error_class: None,
            error_message: None,
            status_code: progress.status,
            timings: progress.timings,
            bytes_read: progress.bytes_read,
            cert_expires_at: progress.cert_expires_at,
            failed_assertions: Vec::new(),
        };
        let fail = |outcome: &mut CheckOutcome, failure: Failure| {
            outcome.error_class = Some(failure.class);
            outcome.error_message = Some(short(failure.message));
        };
        match result {
            Err(_) => fail(&mut outcome, Failure::timed_out(timeout, progress.phase)),
            Ok(Err(failure)) => fail(&mut outcome, failure),
            Ok(Ok(response)) => {
                let observed = Observed {
                    status: progress.status.unwrap_or(0),
                    total_ms: outcome.timings.total_ms,
                    body: response.body.as_deref(),
                    cert_expires_at: progress.cert_expires_at,
                    now: Utc::now(),
                    json_max_bytes: self.json_max_bytes,
                };
                let mut failed = assertions::evaluate(&spec.expect, &observed, &self.regexes);
                if response.body_exceeded {
                    failed.push(format!("body larger than the {}-byte limit", self.body_limit(spec)));
                }
                if failed.is_empty() {
                    outcome.success = true;
                } else {
                    outcome.error_class = Some(ErrorClass::Assertion);
                    outcome.error_message = Some(short(failed.join("; ")));
                    outcome.failed_assertions = failed;
                }
            }
        }
        Report { outcome, version: progress.version }
    }

    /// The check's limit, or the worker's default, clamped by the worker's
    /// maximum (`worker.body_limit_max`): a check author never raises what
    /// one check may read past what the operator allows.
    fn body_limit(&self, spec: &CheckSpec) -> u64 {
        spec.body_limit.unwrap_or(self.body_limit).clamp(1, self.body_limit_max)
    }

    /// The request, following redirects.
    async fn execute(&self, spec: &CheckSpec, p: &mut Progress) -> Result<Response, Failure> {
        let mut url = Url::parse(&spec.url)
            .map_err(|e| Failure::new(ErrorClass::Protocol, format!("invalid URL: {e}")))?;
        let mut method = Method::from_bytes(spec.method.as_bytes())
            .map_err(|_| Failure::new(ErrorClass::Protocol, "invalid HTTP method"))?;
        let mut headers = exchange::request_headers(&spec.headers, &self.user_agent, &url)?;
        let spec_header_names: Vec<HeaderName> =
            spec.headers.keys().filter_map(|k| HeaderName::from_bytes(k.as_bytes()).ok()).collect();
        let mut body = Bytes::from(spec.body.clone().unwrap_or_default());
        let keep_body = assertions::needs_body(&spec.expect);
        let limit = self.body_limit(spec);
        let mut visited: Vec<Url> = Vec::new();
        loop {
            let out = Outgoing {
                method: &method,
                headers: &headers,
                body: &body,
                keep_body,
                limit,
                tls_verify: spec.tls_verify,
            };
            let hop = self.client.exchange(&url, &out, p).await?;
            let follow = spec.max_redirects > 0 && matches!(hop.status, 301 | 302 | 303 | 307 | 308);
            let Some(location) = hop.location.filter(|_| follow) else {
                return Ok(Response {
                    body: hop.body,
                    body_exceeded: hop.body_exceeded,
                    _permit: hop.body_permit,
                });
            };
            if visited.len() >= spec.max_redirects as usize {
                return Err(Failure::new(
                    ErrorClass::Protocol,
                    format!("more than {} redirects", spec.max_redirects),
                ));
            }
            let next = url.join(&location).map_err(|_| {
                Failure::new(ErrorClass::Protocol, format!("redirect {} has an invalid Location", hop.status))
            })?;
            visited.push(url.clone());
            if visited.contains(&next) {
                return Err(Failure::new(
                    ErrorClass::Protocol,
                    format!("redirect loop: hop {} leads back to an earlier URL", visited.len()),
                ));
            }
            if next.origin() != url.origin() {
                // Headers declared for one origin never travel to another:
                // any of them may be a credential (X-Api-Key, Private-Token),
                // and Host names the first origin's virtual host. The
                // defaults (User-Agent, Accept) are put back.
                for name in &spec_header_names {
                    headers.remove(name);
                }
                headers.remove(hyper::header::AUTHORIZATION);
                headers.remove(hyper::header::COOKIE);
                headers.remove(hyper::header::PROXY_AUTHORIZATION);
                headers.entry(hyper::header::USER_AGENT).or_insert_with(|| self.user_agent.clone());
                headers.entry(hyper::header::ACCEPT).or_insert_with(|| HeaderValue::from_static("*/*"));
            }
            if matches!(hop.status, 301..=303) && method != Method::HEAD {
                method = Method::GET;
                body = Bytes::new();
                headers.remove(hyper::header::CONTENT_TYPE);
            }
            url = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::MemoryLimits;

    #[test]
    fn a_checks_body_limit_is_clamped_by_the_workers_maximum() {
        let memory = MemoryLimits { body_limit_max: 4096, ..MemoryLimits::default() };
        let probe = HttpProbe::new(1024, "sentryk8s-test", DenyList::default(), &memory).unwrap();
        let spec = |limit: serde_json::Value| -> CheckSpec {
            serde_json::from_value(
                serde_json::json!({"url": "http://127.0.0.1/", "timeout_ms": 1000, "body_limit": limit}),
            )
            .unwrap()
        };
        assert_eq!(probe.body_limit(&spec(serde_json::json!(64 << 20))), 4096);
        assert_eq!(probe.body_limit(&spec(serde_json::json!(2000))), 2000);
        assert_eq!(probe.body_limit(&spec(serde_json::Value::Null)), 1024);
    }
}
