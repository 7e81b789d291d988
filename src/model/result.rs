//! What one executed check produced: the row of `check_results`.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Why a check failed, as stored in `check_results.error_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorClass {
    /// The name did not resolve.
    Dns,
    /// Every address refused or was unreachable.
    Refused,
    /// The check's deadline passed.
    Timeout,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// The peer did not speak valid HTTP, reset the connection, or looped redirects.
    Protocol,
    /// The response arrived but an assertion failed.
    Assertion,
    /// The target is on the configured deny-list.
    Blocked,
    /// The check could not run on this worker (no ICMP socket allowed).
    Unsupported,
    /// A heartbeat: no success ping in time.
    Missed,
    /// A heartbeat: the job reported failure (a fail ping, a non-zero exit code).
    Failed,
    /// A heartbeat: a run started and did not end within max_run.
    Overrun,
}

impl ErrorClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorClass::Dns => "dns",
            ErrorClass::Refused => "refused",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Tls => "tls",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Assertion => "assertion",
            ErrorClass::Blocked => "blocked",
            ErrorClass::Unsupported => "unsupported",
            ErrorClass::Missed => "missed",
            ErrorClass::Failed => "failed",
            ErrorClass::Overrun => "overrun",
        }
    }
}

/// Time spent in each phase of a check, in milliseconds. A phase that did
/// not happen (no DNS for an IP literal, no TLS for http://) is `None`.
/// Which phases a kind goes through: docs/checks-file.md.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    pub dns_ms: Option<f64>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    /// From sending the request to the first response byte (HTTP, gRPC),
    /// or from connecting to the first banner byte (TCP).
    pub first_byte_ms: Option<f64>,
    /// DNS: from sending the question to the answer.
    pub query_ms: Option<f64>,
    /// ICMP: the fastest, average and slowest round trip of the answered
    /// echo requests.
    pub rtt_min_ms: Option<f64>,
    pub rtt_avg_ms: Option<f64>,
    pub rtt_max_ms: Option<f64>,
    /// Heartbeat: from the `start` ping to the run's success.
    pub run_ms: Option<f64>,
    /// The whole check, including redirects and the body read.
    pub total_ms: f64,
}

/// The outcome of running one check once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckOutcome {
    pub started_at: DateTime<Utc>,
    pub success: bool,
    pub error_class: Option<ErrorClass>,
    /// Short, safe to show: never the response body in full, never a header value.
    pub error_message: Option<String>,
    /// Status of the final response (after redirects).
    pub status_code: Option<u16>,
    pub timings: Timings,
    /// Body bytes read (at most the body limit).
    pub bytes_read: u64,
    /// notAfter of the server certificate (https only).
    pub cert_expires_at: Option<DateTime<Utc>>,
    /// One entry per failed assertion, naming it ("status 500 not in [200-399]").
    pub failed_assertions: Vec<String>,
}
