//! What every probe of the kinds beyond HTTP does around its protocol:
//! start the clock, give the work one hard deadline, and turn what
//! happened (a failure, failed assertions, or none) into the
//! [`CheckOutcome`] stored, with the phase timings observed so far, even
//! when the deadline cut the work short.
//!
//! A probe reads:
//! ```ignore
//! let mut run = Run::start(spec);
//! let verdict = tokio::time::timeout_at(run.deadline(), self.execute(spec, &mut run.progress)).await.ok();
//! run.finish(verdict, spec.expect.max_response_time_ms)
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::model::bounds::MAX_TIMEOUT;
use crate::model::{CheckOutcome, CheckSpec, ErrorClass};
use crate::net::http::{excerpt, Failure, Progress};

/// Longest error message stored.
const MAX_MESSAGE_CHARS: usize = 240;

/// What a probe's work returns: the failed assertions (empty: up), or why
/// the check could not be judged at all.
pub type Verdict = Result<Vec<String>, Failure>;

/// One check being run: its clock, deadline and the phases seen so far.
pub struct Run {
    started_at: DateTime<Utc>,
    start: Instant,
    timeout: Duration,
    /// Timed into by the work; read after the deadline too.
    pub progress: Progress,
}

impl Run {
    pub fn start(spec: &CheckSpec) -> Run {
        let start = Instant::now();
        let timeout = Duration::from_millis(spec.timeout_ms).min(MAX_TIMEOUT);
        Run { started_at: Utc::now(), start, timeout, progress: Progress::new(start + timeout) }
    }

    /// When the work must have ended.
    pub fn deadline(&self) -> Instant {
        self.progress.deadline
    }

    /// The outcome: `verdict` is `None` when the deadline passed first.
    /// `max_response_time_ms`, when given, is checked against the whole
    /// run (ICMP passes `None`: it judges its average round trip itself).
    pub fn finish(self, verdict: Option<Verdict>, max_response_time_ms: Option<u64>) -> CheckOutcome {
        let mut timings = self.progress.timings;
        timings.total_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let mut outcome = CheckOutcome {
            started_at: self.started_at,
            success: false,
            error_class: None,
            error_message: None,
            status_code: None,
            timings,
            bytes_read: self.progress.bytes_read,
            cert_expires_at: self.progress.cert_expires_at,
            failed_assertions: Vec::new(),
        };
        let verdict = verdict.unwrap_or_else(|| Err(Failure::timed_out(self.timeout, self.progress.phase)));
        match verdict {
            Err(failure) => {
                outcome.error_class = Some(failure.class);
                outcome.error_message = Some(short(&failure.message));
            }
            Ok(mut failed) => {
                if let Some(max) = max_response_time_ms {
                    if outcome.timings.total_ms > max as f64 {
                        failed.push(format!("response time {:.0} ms > {max} ms", outcome.timings.total_ms));
                    }
                }
                if failed.is_empty() {
                    outcome.success = true;
                } else {
                    outcome.error_class = Some(ErrorClass::Assertion);
                    outcome.error_message = Some(short(&failed.join("; ")));
                    outcome.failed_assertions = failed;
                }
            }
        }
        outcome
    }
}

/// A stored message: at most [`MAX_MESSAGE_CHARS`].
pub fn short(message: &str) -> String {
    excerpt(message, MAX_MESSAGE_CHARS)
}

/// `text` (something a peer sent) quoted for a message: printable, short.
pub fn quote_peer(text: &[u8], max: usize) -> String {
    let lossy = String::from_utf8_lossy(text);
    let printable: String = lossy.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    format!("\"{}\"", excerpt(printable.trim(), max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CheckSpec {
        serde_json::from_str(r#"{"kind":"tcp","url":"tcp://x:1","timeout_ms":1000}"#).unwrap()
    }

    #[test]
    fn verdicts_become_outcomes() {
        let up = Run::start(&spec()).finish(Some(Ok(vec![])), None);
        assert!(up.success && up.error_class.is_none());
        let failed = Run::start(&spec()).finish(Some(Ok(vec!["a".into(), "b".into()])), None);
        assert_eq!(
            (failed.error_class, failed.error_message.as_deref()),
            (Some(ErrorClass::Assertion), Some("a; b"))
        );
        assert_eq!(failed.failed_assertions, ["a", "b"]);
        let refused = Run::start(&spec()).finish(Some(Err(Failure::new(ErrorClass::Refused, "no"))), Some(0));
        assert_eq!((refused.error_class, refused.failed_assertions.len()), (Some(ErrorClass::Refused), 0));
        let timed_out = Run::start(&spec()).finish(None, None);
        assert_eq!(timed_out.error_class, Some(ErrorClass::Timeout));
        assert_eq!(timed_out.error_message.as_deref(), Some("timed out after 1000 ms resolving the name"));
        let mut slow = Run::start(&spec());
        slow.start -= Duration::from_millis(50);
        let slow = slow.finish(Some(Ok(vec![])), Some(10));
        assert!(slow.error_message.unwrap().starts_with("response time "));
        assert_eq!(quote_peer(b"220 mail\r\n\x00ok", 80), "\"220 mail   ok\"");
    }
}
