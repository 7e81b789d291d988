//! `sentryk8s worker [--concurrency N]`: the ops server, then the worker
//! role under the drain deadline.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::ops_server::ReadinessProbe;
use crate::queue::{AmqpLink, AmqpProbe};
use crate::shutdown::{self, Drain};
use crate::{db, ops_server, telemetry, worker};

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let pool = db::pool(&config, "worker")?;
    let link = AmqpLink::default();
    let probes: Vec<Arc<dyn ReadinessProbe>> =
        vec![Arc::new(db::PostgresProbe(pool.clone())), Arc::new(AmqpProbe(link.clone()))];
    let (addr, server) = ops_server::start(config.listen, probes, token.clone())
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", config.listen))?;
    tokio::spawn(telemetry::metrics_upkeep(token.clone()));
    tracing::info!(%addr, concurrency = config.worker.concurrency, "worker starting");

    let role = worker::run(&config, pool, link, token.clone());
    let (drain, result) = shutdown::run_with_deadline(role, &token, config.drain_timeout).await;
    if drain == Drain::TimedOut {
        tracing::warn!(
            deadline = %humantime::format_duration(config.drain_timeout),
            "drain deadline passed; unfinished jobs return to the queue"
        );
    }
    if let Some(result) = result {
        result.context("worker failed")?;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), server).await;
    tracing::info!("worker stopped");
    Ok(ExitCode::SUCCESS)
}
