//! The worker's Prometheus metrics, registered once.
//!
//! Handles are looked up at start and kept: the `metrics` macros hash the
//! name and labels on every call, which at ten thousand checks a second is
//! measurable.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sentryk8s_checks_total` | counter | `outcome`: success, dns, refused, timeout, tls, protocol, assertion, blocked |
//! | `sentryk8s_check_duration_seconds` | histogram | `phase`: dns, connect, tls, first_byte, total |
//! | `sentryk8s_checks_in_flight` | gauge | |
//! | `sentryk8s_queue_delay_seconds` | histogram | start of the check − its slot |
//! | `sentryk8s_jobs_stale_total` | counter | jobs acked without running (slot + interval passed) |
//! | `sentryk8s_jobs_dead_lettered_total` | counter | `reason`: undecodable, unsupported_version, invalid, unwritable |
//! | `sentryk8s_result_batch_size` | histogram | results + stale records per transaction |
//! | `sentryk8s_result_batch_commit_seconds` | histogram | time of one batch transaction |
//! | `sentryk8s_result_batch_failures_total` | counter | failed batch attempts (database unavailable) |
//! | `sentryk8s_worker_job_messages_total` | counter | job messages received (each one or more slots) |
//! | `sentryk8s_worker_consuming` | gauge | `queue`: 1 while this worker has a consumer on that job queue, else 0 |
//! | `sentryk8s_worker_invalid_slots_total` | counter | `recorded`: true (missed, reason `invalid`), false (check or slot unreadable: only counted) |
//! | `sentryk8s_worker_redelivered_slots_skipped_total` | counter | slots of redelivered messages already accounted, not run again |

use metrics::{Counter, Gauge, Histogram};

use crate::model::{CheckOutcome, ErrorClass};

pub struct WorkerMetrics {
    success: Counter,
    failures: [Counter; CLASSES.len()],
    dns: Histogram,
    connect: Histogram,
    tls: Histogram,
    first_byte: Histogram,
    total: Histogram,
    pub in_flight: Gauge,
    pub queue_delay: Histogram,
    pub stale: Counter,
    pub batch_size: Histogram,
    pub batch_commit: Histogram,
    pub batch_failures: Counter,
    pub job_messages: Counter,
    pub invalid_recorded: Counter,
    pub invalid_unrecorded: Counter,
    pub redelivered_skipped: Counter,
}

const CLASSES: [ErrorClass; 11] = [
    ErrorClass::Dns,
    ErrorClass::Refused,
    ErrorClass::Timeout,
    ErrorClass::Tls,
    ErrorClass::Protocol,
    ErrorClass::Assertion,
    ErrorClass::Blocked,
    ErrorClass::Unsupported,
    ErrorClass::Missed,
    ErrorClass::Failed,
    ErrorClass::Overrun,
];

/// Why a job went to the dead-letter queue.
#[derive(Debug, Clone, Copy)]
pub enum DeadLetterReason {
    Undecodable,
    UnsupportedVersion,
    Invalid,
    Unwritable,
}

impl DeadLetterReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Undecodable => "undecodable",
            DeadLetterReason::UnsupportedVersion => "unsupported_version",
            DeadLetterReason::Invalid => "invalid",
            DeadLetterReason::Unwritable => "unwritable",
        }
    }
}

impl WorkerMetrics {
    pub fn new() -> WorkerMetrics {
        // Handles bind to the recorder installed when they are created.
        let _ = crate::telemetry::metrics();
        let phase = |p: &'static str| metrics::histogram!("sentryk8s_check_duration_seconds", "phase" => p);
        WorkerMetrics {
            success: metrics::counter!("sentryk8s_checks_total", "outcome" => "success"),
            failures: CLASSES.map(|c| metrics::counter!("sentryk8s_checks_total", "outcome" => c.as_str())),
            dns: phase("dns"),
            connect: phase("connect"),
            tls: phase("tls"),
            first_byte: phase("first_byte"),
            total: phase("total"),
            in_flight: metrics::gauge!("sentryk8s_checks_in_flight"),
            queue_delay: metrics::histogram!("sentryk8s_queue_delay_seconds"),
            stale: metrics::counter!("sentryk8s_jobs_stale_total"),
            batch_size: metrics::histogram!("sentryk8s_result_batch_size"),
            batch_commit: metrics::histogram!("sentryk8s_result_batch_commit_seconds"),
            batch_failures: metrics::counter!("sentryk8s_result_batch_failures_total"),
            job_messages: metrics::counter!("sentryk8s_worker_job_messages_total"),
            invalid_recorded: metrics::counter!("sentryk8s_worker_invalid_slots_total", "recorded" => "true"),
            invalid_unrecorded: metrics::counter!("sentryk8s_worker_invalid_slots_total", "recorded" => "false"),
            redelivered_skipped: metrics::counter!("sentryk8s_worker_redelivered_slots_skipped_total"),
        }
    }

    /// Whether this worker consumes `queue` now (set when a session starts
    /// or ends, so looking the handle up each time costs nothing).
    pub fn consuming(&self, queue: &str, on: bool) {
        metrics::gauge!("sentryk8s_worker_consuming", "queue" => queue.to_string()).set(if on {
            1.0
        } else {
            0.0
        });
    }

    /// Counts and times one finished check.
    pub fn record(&self, outcome: &CheckOutcome) {
        match outcome.error_class {
            None => self.success.increment(1),
            Some(class) => {
                if let Some(i) = CLASSES.iter().position(|c| *c == class) {
                    self.failures[i].increment(1);
                }
            }
        }
        let t = &outcome.timings;
        for (histogram, value) in [
            (&self.dns, t.dns_ms),
            (&self.connect, t.connect_ms),
            (&self.tls, t.tls_ms),
            (&self.first_byte, t.first_byte_ms),
            (&self.total, Some(t.total_ms)),
        ] {
            if let Some(ms) = value {
                histogram.record(ms / 1000.0);
            }
        }
    }

    pub fn dead_lettered(&self, reason: DeadLetterReason) {
        metrics::counter!("sentryk8s_jobs_dead_lettered_total", "reason" => reason.as_str()).increment(1);
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        WorkerMetrics::new()
    }
}
