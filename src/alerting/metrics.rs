//! Delivery metrics.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sentryk8s_notifications_total` | counter | `channel` (its name), `outcome`: sent, retry, failed, suppressed |
//! | `sentryk8s_notification_delivery_seconds` | histogram | `channel`: time of one attempt |
//! | `sentryk8s_notifications_pending` | gauge | outbox rows not fanned out + deliveries waiting to be sent (cluster-wide, as seen by this process) |

/// One delivery outcome on `channel`.
pub fn outcome(channel: &str, outcome: &'static str) {
    metrics::counter!("sentryk8s_notifications_total", "channel" => channel.to_string(), "outcome" => outcome)
        .increment(1);
}

/// Time of one attempt.
pub fn attempt(channel: &str, seconds: f64) {
    metrics::histogram!("sentryk8s_notification_delivery_seconds", "channel" => channel.to_string())
        .record(seconds);
}

pub fn pending(n: i64) {
    metrics::gauge!("sentryk8s_notifications_pending").set(n as f64);
}
