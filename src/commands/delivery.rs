//! Notification delivery as the roles that send notifications (worker,
//! standalone) wire it: the outbox loop of `alerting`, run beside the role
//! under the same shutdown token and drain. Started here rather than inside
//! the worker so that alerting and the worker never import each other.

use std::future::Future;

use anyhow::Context;
use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::net::deny::DenyList;

/// The deny list delivery connects under, from `worker.deny_targets`: the
/// same targets are off limits to checks and to webhooks. Parsed before
/// anything starts, so a bad entry is a startup error naming its key.
pub fn deny_list(config: &Config) -> anyhow::Result<DenyList> {
    DenyList::parse(&config.worker.deny_targets)
        .map_err(|e| anyhow::anyhow!("worker.deny_targets: {e}"))
        .context("cannot start alert delivery")
}

/// The delivery loop, until `shutdown` and the end of its drain; a failure
/// cancels `shutdown` so the role beside it stops too.
pub fn run<'a>(
    config: &'a Config,
    pool: Pool,
    deny: DenyList,
    shutdown: &CancellationToken,
) -> impl Future<Output = anyhow::Result<()>> + 'a {
    let shutdown = shutdown.clone();
    async move {
        let delivery =
            crate::alerting::run(config, pool, crate::worker::worker_name(), deny, shutdown.clone());
        super::serve::stop_all_on_error(&shutdown, delivery).await.context("alert delivery")
    }
}
