//! Alerting: notification channels, maintenance windows and the delivery
//! of the `notifications` outbox.
//!
//! - `channel.rs` — a channel as stored (webhook, Slack, Discord, Teams,
//!   PagerDuty, email);
//! - `maintenance.rs` — when alerts are suppressed (pure);
//! - `backoff.rs` — retry delays with jitter (pure);
//! - `signature.rs` — the webhook HMAC signature (pure);

pub mod backoff;
pub mod channel;
pub mod fanout;
pub mod maintenance;
pub mod reminders;
pub mod render;
pub mod send;
pub mod signature;
pub mod store;
