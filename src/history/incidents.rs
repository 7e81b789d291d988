//! Incidents as rows: what a batch of results does to them, planned by the
//! worker from its state machine and written by [`super::store`].
//!
//! An incident is opened at the first failing slot of the streak that took
//! the check down (not the confirming slot), confirmed at the slot that
//! reached the failure threshold, and resolved at the first passing slot of
//! the streak that brought it back up — or when the check is paused or
//! deleted while down. Its id is the one `check_state`, the outbox, the
//! deliveries and every alert payload carry.

use chrono::{DateTime, Utc};

/// Why an incident ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Recovered,
    Paused,
    Deleted,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Recovered => "recovered",
            Resolution::Paused => "paused",
            Resolution::Deleted => "deleted",
        }
    }
}

/// One change to the `incidents` table, in the order a batch made them.
#[derive(Debug, Clone, PartialEq)]
pub enum IncidentOp {
    /// The check went down.
    Open {
        id: i64,
        check_id: i64,
        check_name: String,
        opened_at: DateTime<Utc>,
        confirmed_at: DateTime<Utc>,
        /// The error of the result at `opened_at` when it is in the same
        /// batch; `None` reads it back from the stored result.
        first_error: Option<String>,
        /// The confirming result's error (the last one so far).
        error: Option<String>,
        in_maintenance: bool,
    },
    /// A newer failing result of an open incident: its error is the last one.
    Failing { id: i64, error: Option<String> },
    /// The check came back up.
    Resolve { id: i64, resolved_at: DateTime<Utc> },
}

impl IncidentOp {
    pub fn id(&self) -> i64 {
        match self {
            IncidentOp::Open { id, .. } | IncidentOp::Failing { id, .. } | IncidentOp::Resolve { id, .. } => {
                *id
            }
        }
    }
}

/// Keeps, per incident, only the newest `Failing` (one row update each),
/// and drops those of an incident the same batch resolves after its error
/// was recorded by an earlier one (order is kept otherwise).
pub fn compact(ops: Vec<IncidentOp>) -> Vec<IncidentOp> {
    let mut out: Vec<IncidentOp> = Vec::with_capacity(ops.len());
    for op in ops {
        if let IncidentOp::Failing { id, .. } = &op {
            out.retain(|o| !matches!(o, IncidentOp::Failing { id: other, .. } if other == id));
        }
        out.push(op);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap_or_default()
    }

    #[test]
    fn compact_keeps_the_newest_error_per_incident() {
        let ops = vec![
            IncidentOp::Failing { id: 1, error: Some("a".into()) },
            IncidentOp::Failing { id: 2, error: Some("x".into()) },
            IncidentOp::Failing { id: 1, error: Some("b".into()) },
            IncidentOp::Resolve { id: 1, resolved_at: t(5) },
        ];
        assert_eq!(
            compact(ops),
            vec![
                IncidentOp::Failing { id: 2, error: Some("x".into()) },
                IncidentOp::Failing { id: 1, error: Some("b".into()) },
                IncidentOp::Resolve { id: 1, resolved_at: t(5) },
            ]
        );
    }

    #[test]
    fn resolutions_read_as_stored() {
        assert_eq!(Resolution::Recovered.as_str(), "recovered");
        assert_eq!(Resolution::Paused.as_str(), "paused");
        assert_eq!(Resolution::Deleted.as_str(), "deleted");
    }
}
