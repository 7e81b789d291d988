//! Alerting: notification channels and the delivery of the `notifications`
//! outbox. Maintenance windows (which mute alerts, and which history counts
//! as maintenance time) are pure domain facts in `model/maintenance.rs`.
//!
//! - `channel.rs` — a channel as stored (webhook, Slack, Discord, Teams,
//!   PagerDuty, email);
//! - `backoff.rs` — retry delays with jitter (pure);
//! - `signature.rs` — the webhook HMAC signature (pure);
//! - `render.rs` — what each kind of channel receives (pure);
//! - `fanout.rs` — outbox row → deliveries per channel (pure);
//! - `reminders.rs` — checks that stay down (pure);
//! - `store.rs` — every SQL statement of delivery;
//! - `send.rs` — HTTP POST (through `net::http`) and SMTP;
//! - `deliver.rs` — the loop any worker process (and `standalone`) runs: [`run`].
//!
//! To deliver from a process: `alerting::run(&config, pool, me, deny, shutdown)`,
//! started by the role wiring in `commands/` beside the worker role. It
//! reaches receivers through `net/` (deny list, TLS, the HTTP exchange) and
//! never through the worker or `probe/`.

pub mod backoff;
pub mod channel;
pub mod deliver;
pub mod fanout;
pub mod metrics;
pub mod reminders;
pub mod render;
pub mod send;
pub mod signature;
pub mod store;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Delivers notifications until `shutdown` (what `worker` and `standalone`
/// call; does nothing when `alerts.deliver` is false). `me` names this
/// process in claims (the pod name).
pub async fn run(
    config: &Config,
    pool: Pool,
    me: String,
    deny: crate::net::deny::DenyList,
    shutdown: CancellationToken,
) -> Result<(), crate::net::tls::TlsSetupError> {
    if !config.alerts.deliver {
        tracing::info!("alerts.deliver is false: this process sends no notifications");
        return Ok(());
    }
    deliver::run(deliver::Options::from_config(config, me, deny), pool, shutdown).await
}
