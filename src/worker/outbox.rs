//! What a batch's new results do to the checks' states, planned without
//! I/O: each check's results applied in slot order through the state
//! machine (`state.rs`), the incidents they open and close, and the
//! `notifications` outbox rows and their payloads. `store.rs` reads the
//! states, draws the incident ids and writes what this plans.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::item::ResultRow;
use super::state::{self, CheckState, Observation, Status, Thresholds, Transition};
use crate::history::incidents::IncidentOp;
use crate::model::redact::{scrub, secrets};

/// PostgreSQL text cannot hold NUL; a hostile job or response must not
/// make a batch unwritable.
pub fn clean(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_string()
    }
}

/// A state write and the flips it caused, planned without I/O.
#[derive(Debug)]
pub struct Planned<'a> {
    pub check_id: i64,
    pub state: CheckState,
    /// The newest result applied (its details become `last_*`); `None`
    /// when only late results cut the streak (the `last_*` details stay).
    pub latest: Option<&'a ResultRow>,
    pub notices: Vec<Notice<'a>>,
    /// The status after each result that moved something, by slot (what
    /// history counts its time as). A result not listed left the status
    /// as it was.
    pub after: Vec<(DateTime<Utc>, Status)>,
    /// What the results did to the check's incident rows, in order.
    /// `in_maintenance` of an opening is left false for the caller, which
    /// holds the maintenance windows.
    pub incidents: Vec<IncidentOp>,
}

/// A result's error as history and alerts may show it: no NUL, and no
/// secret of the check's spec (a target may echo a request header).
pub fn safe_error(row: &ResultRow) -> Option<String> {
    row.outcome.error_message.as_deref().map(|e| clean(&scrub(e, &secrets(&row.job.spec))))
}

/// One outbox row.
#[derive(Debug)]
pub struct Notice<'a> {
    pub event: Transition,
    pub incident_id: i64,
    pub row: &'a ResultRow,
    /// When the check went down (for a recovery: how long it was down).
    pub down_since: Option<DateTime<Utc>>,
    pub since: DateTime<Utc>,
}

/// Applies each check's new results in slot order to its current state.
/// `incident_ids` supplies an id per check that goes down.
pub fn plan<'a>(
    states: &BTreeMap<i64, CheckState>,
    results: &BTreeMap<i64, Vec<&'a ResultRow>>,
    incident_ids: &mut dyn Iterator<Item = i64>,
) -> Vec<Planned<'a>> {
    let mut planned = Vec::new();
    for (check_id, rows) in results {
        let Some(current) = states.get(check_id) else { continue };
        let mut state = current.clone();
        let mut sorted: Vec<&ResultRow> = rows.clone();
        sorted.sort_by_key(|r| r.job.slot);
        let mut latest = None;
        let mut cut = false;
        let mut notices = Vec::new();
        let mut after = Vec::new();
        let mut incidents = Vec::new();
        for (i, row) in sorted.iter().copied().enumerate() {
            let thresholds = Thresholds {
                failure: row.job.spec.failure_threshold,
                success: row.job.spec.success_threshold,
            };
            let down_since = (state.status == Status::Down).then_some(state.since);
            let observation =
                Observation { slot: row.job.slot, at: row.outcome.started_at, success: row.outcome.success };
            let transition = state::apply(&mut state, observation, thresholds);
            match transition {
                Transition::Ignored => continue,
                // A late result: the streak shrank, nothing else moved.
                Transition::StreakCut => {
                    cut = true;
                    continue;
                }
                _ => {}
            }
            latest = Some(row);
            after.push((row.job.slot, state.status));
            if transition == Transition::WentDown {
                state.incident_id = incident_ids.next();
            }
            let slot = row.job.slot;
            match (transition, state.incident_id) {
                (Transition::WentDown, Some(id)) => {
                    let opened_at = state.streak_start.unwrap_or(slot).min(slot);
                    // The first failing result, when this batch holds it.
                    let first = sorted[..=i].iter().find(|r| r.job.slot == opened_at).copied();
                    incidents.push(IncidentOp::Open {
                        id,
                        check_id: *check_id,
                        check_name: clean(&row.job.name),
                        opened_at,
                        confirmed_at: slot,
                        first_error: first.and_then(safe_error),
                        error: safe_error(row),
                        in_maintenance: false,
                    });
                }
                (Transition::Recovered, Some(id)) => incidents.push(IncidentOp::Resolve {
                    id,
                    resolved_at: state.streak_start.unwrap_or(slot).min(slot),
                }),
                (Transition::Unchanged, Some(id)) if state.status == Status::Down && !row.outcome.success => {
                    incidents.push(IncidentOp::Failing { id, error: safe_error(row) })
                }
                _ => {}
            }
            if transition.notifies() {
                notices.push(Notice {
                    event: transition,
                    incident_id: state.incident_id.unwrap_or(0),
                    row,
                    down_since,
                    since: state.since,
                });
            }
        }
        if latest.is_some() || cut {
            planned.push(Planned { check_id: *check_id, state, latest, notices, after, incidents });
        }
    }
    planned
}

/// The outbox payload: what a notifier needs, nothing secret (no headers,
/// no URL path or query, no body).
pub fn payload(notice: &Notice<'_>) -> serde_json::Value {
    let job = &notice.row.job;
    let o = &notice.row.outcome;
    let host = url::Url::parse(&job.spec.url).ok().and_then(|u| u.host_str().map(str::to_string));
    let state = if notice.event == Transition::WentDown { "down" } else { "up" };
    let mut value = serde_json::json!({
        "check": clean(&job.name),
        "description": job.spec.description.as_deref().map(clean),
        "check_id": job.check_id,
        "state": state,
        "since": notice.since,
        "incident_id": notice.incident_id,
        "slot": job.slot,
        "host": host,
        "status_code": o.status_code,
        "duration_ms": o.timings.total_ms,
        "error_class": o.error_class.map(|c| c.as_str()),
        // A target may echo a request header into what the error quotes;
        // the receiver (a chat room, a mailbox) must not see it.
        "last_error": safe_error(notice.row),
        "labels": job.spec.labels.iter().map(|(k, v)| (clean(k), serde_json::Value::from(clean(v)))).collect::<serde_json::Map<_, _>>(),
        "alerts": job.spec.alerts.iter().map(|a| clean(a)).collect::<Vec<_>>(),
    });
    if let (Transition::Recovered, Some(down_since)) = (notice.event, notice.down_since) {
        value["down_for_seconds"] = ((notice.since - down_since).num_milliseconds() as f64 / 1000.0).into();
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CheckJob, CheckOutcome, Timings, JOB_SCHEMA_VERSION};

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap_or_default()
    }

    fn row(check_id: i64, slot: i64, success: bool) -> ResultRow {
        let spec = serde_json::from_value(serde_json::json!({
            "url": "https://user:pw@shop.example:8443/private?token=x",
            "timeout_ms": 1000,
            "failure_threshold": 2,
            "success_threshold": 2,
            "headers": {"Authorization": "Bearer secret"},
            "labels": {"team": "web"},
        }))
        .unwrap();
        ResultRow {
            job: CheckJob {
                v: JOB_SCHEMA_VERSION,
                check_id,
                name: format!("check-{check_id}"),
                slot: t(slot),
                interval_ms: 10_000,
                version: 1,
                spec,
            },
            outcome: CheckOutcome {
                started_at: t(slot),
                success,
                error_class: (!success).then_some(crate::model::ErrorClass::Timeout),
                error_message: (!success).then(|| "timed out".to_string()),
                status_code: success.then_some(200),
                timings: Timings { total_ms: 5.0, ..Timings::default() },
                bytes_read: 2,
                cert_expires_at: None,
                failed_assertions: Vec::new(),
            },
        }
    }

    #[test]
    fn plans_one_down_and_one_up_with_the_same_incident() {
        let rows: Vec<ResultRow> = [(1, true), (2, false), (3, false), (4, false), (5, true), (6, true)]
            .iter()
            .map(|(s, ok)| row(7, *s, *ok))
            .collect();
        let mut results = BTreeMap::new();
        // Out of order on purpose: the planner sorts by slot.
        results.insert(7, rows.iter().rev().collect::<Vec<_>>());
        let mut states = BTreeMap::new();
        states.insert(7, CheckState::unknown(t(0)));
        let planned = plan(&states, &results, &mut [41].into_iter());
        assert_eq!(planned.len(), 1);
        let p = &planned[0];
        let events: Vec<(Transition, i64)> = p.notices.iter().map(|n| (n.event, n.incident_id)).collect();
        assert_eq!(events, vec![(Transition::WentDown, 41), (Transition::Recovered, 41)]);
        assert_eq!(p.state.status, Status::Up);
        assert_eq!(p.latest.map(|r| r.job.slot), Some(t(6)));
        let up = payload(&p.notices[1]);
        assert_eq!(up["state"], "up");
        assert_eq!(up["down_for_seconds"], 3.0);
        assert_eq!(up["host"], "shop.example");
        let text = up.to_string();
        assert!(!text.contains("secret") && !text.contains("token") && !text.contains("pw"), "{text}");
    }

    #[test]
    fn older_results_and_unknown_checks_change_nothing() {
        let old = row(7, 1, false);
        let mut results = BTreeMap::new();
        results.insert(7, vec![&old]);
        let other = row(8, 1, false);
        results.insert(8, vec![&other]);
        let mut states = BTreeMap::new();
        let mut s = CheckState::unknown(t(0));
        s.last_slot = Some(t(5));
        states.insert(7, s);
        assert!(plan(&states, &results, &mut std::iter::empty()).is_empty());
    }

    #[test]
    fn a_late_contradicting_result_writes_the_cut_streak_without_details() {
        let late = row(7, 2, true);
        let mut results = BTreeMap::new();
        results.insert(7, vec![&late]);
        let mut states = BTreeMap::new();
        let mut s = CheckState::unknown(t(0));
        (s.last_slot, s.streak_start, s.consecutive_failures) = (Some(t(3)), Some(t(1)), 2);
        states.insert(7, s);
        let planned = plan(&states, &results, &mut std::iter::empty());
        assert_eq!(planned.len(), 1);
        let p = &planned[0];
        assert!(p.latest.is_none() && p.notices.is_empty());
        assert_eq!((p.state.consecutive_failures, p.state.last_slot), (1, Some(t(3))));
    }

    #[test]
    fn nul_bytes_are_replaced() {
        assert_eq!(clean("a\0b"), "a\u{FFFD}b");
        assert_eq!(clean("ab"), "ab");
    }
}
