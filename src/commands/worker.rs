//! `sentryk8s worker [--concurrency N]`: the worker role and notification
//! delivery side by side, served and drained by [`serve_role`].

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::delivery;
use super::serve::{serve_role, stop_all_on_error};
use crate::config::Config;
use crate::health::ReadinessProbe;
use crate::queue::{AmqpLink, AmqpProbe};
use crate::{db, shutdown, worker};

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let pool = db::pool(&config, "worker")?;
    let deny = delivery::deny_list(&config)?;
    let link = AmqpLink::default();
    // Readiness has its own connection: a /readyz flood cannot queue for
    // the role's pool (ops_server.rs).
    let probes: Vec<Arc<dyn ReadinessProbe>> =
        vec![Arc::new(db::PostgresProbe::dedicated(&config, "worker")?), Arc::new(AmqpProbe(link.clone()))];

    let role = async {
        let checks = stop_all_on_error(&token, worker::run(&config, pool.clone(), link, token.clone()));
        let (checks, delivered) = tokio::join!(checks, delivery::run(&config, pool, deny, &token));
        checks?;
        delivered
    };
    serve_role("worker", &config, probes, &token, role).await
}
