//! Checks that stay down: reminders (channels with `remind_every`) and
//! alerts a maintenance window held back once it has ended. Pure planning;
//! the scan that feeds it is in `store.rs`.
//!
//! A reminder's idempotency key numbers it (`…-reminder2-<channel>`), so
//! workers that scan at the same moment insert it once.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::channel::ChannelSpec;
use super::fanout::NewDelivery;
use super::render::{self, Event};
use crate::model::maintenance::{self, WindowSpec};

/// A check that is down now, with what its alerts need.
#[derive(Debug, Clone)]
pub struct DownCheck {
    pub check_id: i64,
    pub name: String,
    pub incident_id: i64,
    pub labels: BTreeMap<String, String>,
    pub alerts: Vec<String>,
    /// The outbox payload of the flip that opened the incident, refreshed
    /// with the latest error.
    pub payload: Value,
}

/// What was already done for an incident on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// When its newest delivery (trigger or reminder) was created.
    pub last_at: DateTime<Utc>,
    pub reminders: u32,
    /// The trigger's status and `suppressed_by`.
    pub trigger: Option<(String, Option<String>)>,
}

/// What to do for one down check.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub reminders: Vec<NewDelivery>,
    /// Channels whose trigger was held back by a window that has ended:
    /// the trigger is to be sent now.
    pub release: Vec<String>,
}

pub fn plan(
    down: &DownCheck,
    channels: &HashMap<String, ChannelSpec>,
    windows: &[(String, WindowSpec)],
    history: &HashMap<String, History>,
    default_attempts: u32,
    now: DateTime<Utc>,
) -> Plan {
    let mut out = Plan::default();
    let window = maintenance::suppressing(windows, &down.name, &down.labels, now);
    for name in &down.alerts {
        let (Some(channel), Some(h)) = (channels.get(name), history.get(name)) else { continue };
        let held_by_window = matches!(&h.trigger, Some((status, Some(by))) if status == "suppressed"
            && windows.iter().any(|(w, _)| w == by));
        if held_by_window {
            if window.is_none() {
                out.release.push(name.clone());
            }
            continue;
        }
        let Some(every) = channel.remind_every_ms else { continue };
        if (now - h.last_at).num_milliseconds() < every as i64 {
            continue;
        }
        let n = h.reminders + 1;
        let key = render::idempotency_key(down.check_id, down.incident_id, &format!("reminder{n}"), name);
        let document = render::document(Event::Reminder, &down.payload, name, &key, Some(n), now);
        out.reminders.push(NewDelivery {
            notification_id: None,
            check_id: down.check_id,
            check_name: down.name.clone(),
            channel: name.clone(),
            incident_id: down.incident_id,
            event: Event::Reminder,
            key,
            document,
            status: if window.is_some() { "suppressed" } else { "pending" },
            max_attempts: channel.max_attempts.unwrap_or(default_attempts).max(1),
            suppressed_by: window.map(str::to_string),
            last_error: None,
        });
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

    fn setup() -> (DownCheck, HashMap<String, ChannelSpec>) {
        let spec = |remind: Option<u64>| ChannelSpec {
            kind: ChannelKind::Slack { url: "http://x/".into() },
            send_on_resolved: true,
            remind_every_ms: remind,
            max_attempts: None,
        };
        let down = DownCheck {
            check_id: 3,
            name: "api".into(),
            incident_id: 9,
            labels: BTreeMap::new(),
            alerts: vec!["hourly".into(), "never".into(), "new".into()],
            payload: serde_json::json!({"check": "api", "check_id": 3, "incident_id": 9, "since": "2024-06-01T10:00:00Z"}),
        };
        let channels = HashMap::from([
            ("hourly".to_string(), spec(Some(3_600_000))),
            ("never".to_string(), spec(None)),
            ("new".to_string(), spec(Some(60_000))),
        ]);
        (down, channels)
    }

    fn history(last: &str, reminders: u32, trigger: (&str, Option<&str>)) -> History {
        History {
            last_at: t(last),
            reminders,
            trigger: Some((trigger.0.to_string(), trigger.1.map(str::to_string))),
        }
    }

    #[test]
    fn reminds_at_the_interval_only() {
        let (down, channels) = setup();
        let h = HashMap::from([
            ("hourly".to_string(), history("2024-06-01T10:00:00Z", 0, ("sent", None))),
            ("never".to_string(), history("2024-06-01T10:00:00Z", 0, ("sent", None))),
        ]);
        assert!(plan(&down, &channels, &[], &h, 10, t("2024-06-01T10:59:00Z")).reminders.is_empty());
        let p = plan(&down, &channels, &[], &h, 10, t("2024-06-01T11:00:00Z"));
        assert_eq!(p.reminders.len(), 1, "`never` has no interval, `new` has no trigger yet");
        assert_eq!(p.reminders[0].key, "sentryk8s-3-9-reminder1-hourly");
        assert_eq!(p.reminders[0].document["down_for_seconds"], 3600.0);
        let h = HashMap::from([("hourly".to_string(), history("2024-06-01T11:00:00Z", 1, ("sent", None)))]);
        let p = plan(&down, &channels, &[], &h, 10, t("2024-06-01T12:00:01Z"));
        assert_eq!(p.reminders[0].key, "sentryk8s-3-9-reminder2-hourly");
    }

    #[test]
    fn a_trigger_held_by_a_window_is_released_when_it_ends() {
        let (down, channels) = setup();
        let windows = vec![(
            "deploy".to_string(),
            WindowSpec {
                time_zone: "UTC".into(),
                schedule: Schedule::Once { start: t("2024-06-01T09:00:00Z"), end: t("2024-06-01T11:00:00Z") },
                checks: Vec::new(),
                labels: BTreeMap::new(),
                description: None,
            },
        )];
        let h = HashMap::from([(
            "hourly".to_string(),
            history("2024-06-01T10:00:00Z", 0, ("suppressed", Some("deploy"))),
        )]);
        let during = plan(&down, &channels, &windows, &h, 10, t("2024-06-01T10:59:00Z"));
        assert_eq!(during, Plan::default());
        let after = plan(&down, &channels, &windows, &h, 10, t("2024-06-01T11:00:00Z"));
        assert_eq!(after.release, vec!["hourly".to_string()]);
        assert!(after.reminders.is_empty());
    }
}
