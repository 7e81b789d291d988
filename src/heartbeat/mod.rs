//! Heartbeats (push monitoring): a job pings the web role when it runs, and
//! every slot of the check is judged from the pings received before it, so
//! a silent, failing or hung job goes down through the same results,
//! incidents and alerts as any probed check.
//!
//! - `schedule.rs` — when pings are expected: a period, or a cron pattern
//!   in an IANA time zone following its daylight-saving changes (pure);
//! - `judge.rs` — one slot's verdict from its pings, and the result row it
//!   becomes (pure);
//! - `store.rs` — every SQL statement on ping keys and pings.
//!
//! The web role receives pings (`web/ping.rs`); the worker judges slots
//! (`worker/heartbeat.rs`); the keys are made by a trigger on `checks`
//! (migrations/0010_heartbeats.sql).

pub mod judge;
pub mod schedule;
pub mod store;

use chrono::Duration;

use self::judge::Rules;
use self::schedule::{Schedule, ScheduleError};
use crate::model::HeartbeatSpec;

/// The rules of a stored heartbeat spec.
pub fn rules(spec: &HeartbeatSpec) -> Result<Rules, ScheduleError> {
    let ms = |v: u64| Duration::milliseconds(v.min(i64::MAX as u64) as i64);
    let schedule = match (&spec.cron, spec.period_ms) {
        (Some(cron), _) => Schedule::cron(cron, spec.time_zone.as_deref().unwrap_or("UTC"))?,
        (None, Some(period)) => Schedule::period(ms(period))?,
        (None, None) => return Err(ScheduleError::Missing),
    };
    Ok(Rules { schedule, grace: ms(spec.grace_ms), max_run: spec.max_run_ms.map(ms) })
}

/// Bytes of a ping's body kept as the run's log; the rest is cut.
pub const MAX_BODY_BYTES: usize = 100 * 1024;

/// The ping URL of `key` under the web role's public base URL.
pub fn ping_url(public_url: &str, key: &str) -> String {
    format!("{}/ping/{key}", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> HeartbeatSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn rules_come_from_the_stored_spec() {
        let r = rules(&spec(serde_json::json!({"period_ms": 3_600_000, "grace_ms": 60_000}))).unwrap();
        assert!(matches!(r.schedule, Schedule::Period(p) if p == Duration::hours(1)));
        assert_eq!((r.grace, r.max_run), (Duration::minutes(1), None));
        let r = rules(&spec(serde_json::json!({"cron": "0 3 * * *", "max_run_ms": 7_200_000}))).unwrap();
        assert_eq!(r.schedule.describe(), "\"0 3 * * *\" in UTC", "UTC without a time zone");
        assert_eq!(r.max_run, Some(Duration::hours(2)));
        let r = rules(&spec(serde_json::json!({"cron": "0 3 * * *", "time_zone": "Europe/Paris"}))).unwrap();
        assert_eq!(r.schedule.describe(), "\"0 3 * * *\" in Europe/Paris");
        assert_eq!(rules(&spec(serde_json::json!({}))).unwrap_err(), ScheduleError::Missing);
        assert!(rules(&spec(serde_json::json!({"cron": "0 3 * * *", "time_zone": "Nowhere/Land"}))).is_err());
    }

    #[test]
    fn ping_urls_join_without_a_double_slash() {
        assert_eq!(ping_url("https://up.example/", "k"), "https://up.example/ping/k");
        assert_eq!(ping_url("http://127.0.0.1:8080", "k"), "http://127.0.0.1:8080/ping/k");
    }
}
