//! From the `notifications` outbox to deliveries: one row per channel of
//! the check, decided in the transaction that marks the outbox row
//! dispatched, so each flip is fanned out exactly once whichever worker
//! gets there first (`FOR UPDATE SKIP LOCKED`: the others take other rows).
//!
//! The decision is pure ([`plan`]): which channels, with which event, and
//! whether a maintenance window suppresses it. The rules:
//!
//! - the channels are the check's `alerts` as they were when it flipped
//!   (carried by the outbox row); one that is no longer declared gets a
//!   failed delivery saying so, visible in `status`;
//! - a recovery is not sent to a channel with `send_on_resolved: false`;
//! - a trigger whose flip happened inside a window covering the check is
//!   stored `suppressed` (with the window's name) and not sent;
//! - a recovery follows its trigger: suppressed when the trigger was, sent
//!   when the trigger was delivered (even inside a window, so nothing stays
//!   open in PagerDuty).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::channel::ChannelSpec;
use super::render::{self, Event};
use crate::model::maintenance::{self, WindowSpec};

/// One outbox row, as read for fan-out.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub id: i64,
    pub check_id: i64,
    pub check_name: String,
    pub incident_id: i64,
    pub event: Event,
    pub slot: DateTime<Utc>,
    pub payload: Value,
}

/// A delivery row to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub notification_id: Option<i64>,
    pub check_id: i64,
    pub check_name: String,
    pub channel: String,
    pub incident_id: i64,
    pub event: Event,
    pub key: String,
    pub document: Value,
    pub status: &'static str,
    pub max_attempts: u32,
    pub suppressed_by: Option<String>,
    pub last_error: Option<String>,
}

/// What became of an incident's trigger on one channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Sent, or still being sent.
    Delivered,
    /// Suppressed (by this window, or for this reason).
    Suppressed(String),
}

/// Decides the deliveries of one outbox row. `trigger(channel)` tells what
/// became of the incident's trigger (for recoveries); `default_attempts` is
/// `alerts.max_attempts`.
pub fn plan(
    n: &Outbox,
    channels: &HashMap<String, ChannelSpec>,
    windows: &[(String, WindowSpec)],
    trigger: &dyn Fn(&str) -> Option<Trigger>,
    default_attempts: u32,
    now: DateTime<Utc>,
) -> Vec<NewDelivery> {
    let names: Vec<String> = match n.payload["alerts"].as_array() {
        Some(list) => list.iter().filter_map(|a| a.as_str().map(str::to_string)).collect(),
        None => Vec::new(),
    };
    let labels: BTreeMap<String, String> = n.payload["labels"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    let window = maintenance::suppressing(windows, &n.check_name, &labels, n.slot);
    let mut out = Vec::new();
    for name in names {
        let key = render::idempotency_key(n.check_id, n.incident_id, n.event.as_str(), &name);
        let document = render::document(n.event, &n.payload, &name, &key, None, now);
        let mut d = NewDelivery {
            notification_id: Some(n.id),
            check_id: n.check_id,
            check_name: n.check_name.clone(),
            channel: name.clone(),
            incident_id: n.incident_id,
            event: n.event,
            key,
            document,
            status: "pending",
            max_attempts: default_attempts,
            suppressed_by: None,
            last_error: None,
        };
        let Some(channel) = channels.get(&name) else {
            d.status = "failed";
            d.max_attempts = 1;
            d.last_error =
                Some(format!("channel `{name}` is not declared (it was removed after the check flipped)"));
            out.push(d);
            continue;
        };
        d.max_attempts = channel.max_attempts.unwrap_or(default_attempts).max(1);
        match n.event {
            Event::Up if !channel.send_on_resolved => continue,
            Event::Up => match trigger(&name) {
                Some(Trigger::Delivered) => {}
                Some(Trigger::Suppressed(why)) => {
                    d.status = "suppressed";
                    d.suppressed_by = Some(why);
                }
                // The trigger went nowhere (the channel was added during
                // the incident): a resolve of nothing is not worth sending.
                None => {
                    d.status = "suppressed";
                    d.suppressed_by = Some("no alert was sent for this incident".into());
                }
            },
            Event::Down | Event::Reminder => {
                if let Some(w) = window {
                    d.status = "suppressed";
                    d.suppressed_by = Some(w.to_string());
                }
            }
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::channel::ChannelKind;
    use crate::model::maintenance::Schedule;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn outbox(event: Event, at: &str) -> Outbox {
        Outbox {
            id: 1,
            check_id: 3,
            check_name: "api".into(),
            incident_id: 9,
            event,
            slot: t(at),
            payload: serde_json::json!({
                "check": "api", "check_id": 3, "incident_id": 9, "since": at, "labels": {"team": "web"},
                "alerts": ["hook", "quiet", "gone"],
            }),
        }
    }

    fn channels() -> HashMap<String, ChannelSpec> {
        let hook = ChannelSpec {
            kind: ChannelKind::Webhook { url: "http://x/".into(), secret: None, headers: Default::default() },
            send_on_resolved: true,
            remind_every_ms: None,
            max_attempts: Some(3),
        };
        let quiet = ChannelSpec { send_on_resolved: false, max_attempts: None, ..hook.clone() };
        HashMap::from([("hook".to_string(), hook), ("quiet".to_string(), quiet)])
    }

    fn window() -> Vec<(String, WindowSpec)> {
        vec![(
            "deploy".into(),
            WindowSpec {
                time_zone: "UTC".into(),
                schedule: Schedule::Once { start: t("2024-06-01T10:00:00Z"), end: t("2024-06-01T11:00:00Z") },
                checks: Vec::new(),
                labels: BTreeMap::from([("team".to_string(), "web".to_string())]),
                description: None,
            },
        )]
    }

    #[test]
    fn a_trigger_goes_to_every_channel_with_its_key() {
        let now = t("2024-06-01T12:00:00Z");
        let d =
            plan(&outbox(Event::Down, "2024-06-01T12:00:00Z"), &channels(), &window(), &|_| None, 10, now);
        let got: Vec<(&str, &str, u32, &str)> =
            d.iter().map(|d| (d.channel.as_str(), d.status, d.max_attempts, d.key.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("hook", "pending", 3, "sentryk8s-3-9-down-hook"),
                ("quiet", "pending", 10, "sentryk8s-3-9-down-quiet"),
                ("gone", "failed", 1, "sentryk8s-3-9-down-gone"),
            ]
        );
        assert!(d[2].last_error.as_deref().is_some_and(|e| e.contains("not declared")));
        assert_eq!(d[0].document["channel"], "hook");
    }

    #[test]
    fn maintenance_suppresses_triggers_and_their_resolves() {
        let now = t("2024-06-01T10:30:00Z");
        let d =
            plan(&outbox(Event::Down, "2024-06-01T10:30:00Z"), &channels(), &window(), &|_| None, 10, now);
        assert_eq!(d[0].status, "suppressed");
        assert_eq!(d[0].suppressed_by.as_deref(), Some("deploy"));
        // The resolve of a suppressed trigger is suppressed too; `quiet` sends no resolves.
        let suppressed = |_: &str| Some(Trigger::Suppressed("deploy".into()));
        let up =
            plan(&outbox(Event::Up, "2024-06-01T10:40:00Z"), &channels(), &window(), &suppressed, 10, now);
        let got: Vec<(&str, &str)> = up.iter().map(|d| (d.channel.as_str(), d.status)).collect();
        assert_eq!(got, vec![("hook", "suppressed"), ("gone", "failed")]);
        // The resolve of a delivered trigger is sent, window or not.
        let delivered = |_: &str| Some(Trigger::Delivered);
        let up =
            plan(&outbox(Event::Up, "2024-06-01T10:40:00Z"), &channels(), &window(), &delivered, 10, now);
        assert_eq!(up[0].status, "pending");
        assert_eq!(up[0].key, "sentryk8s-3-9-up-hook");
    }
}
