//! `sentryk8s scheduler [--shard-from-hostname --shards N]`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::EXIT_INVALID;
use crate::config::Config;
use crate::queue::{AmqpLink, AmqpProbe};
use crate::scheduler::{self, identity};
use crate::shutdown::{self, Drain};
use crate::{db, ops_server};

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let me = match resolve_identity(&config) {
        Ok(me) => me,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let pool = db::pool(&config, "scheduler")?;
    let link = AmqpLink::default();
    let ops_token = CancellationToken::new();
    let (_, ops) = ops_server::start(
        config.listen,
        vec![Arc::new(db::PostgresProbe(pool.clone())), Arc::new(AmqpProbe(link.clone()))],
        ops_token.clone(),
    )
    .await
    .with_context(|| format!("starting the ops server on {}", config.listen))?;

    let drain = config.drain_timeout;
    let (outcome, result) =
        shutdown::run_with_deadline(scheduler::run(config, me, pool, link, token.clone()), &token, drain)
            .await;
    ops_token.cancel();
    let _ = ops.await;
    match (outcome, result) {
        (Drain::Finished, Some(Ok(()))) => Ok(ExitCode::SUCCESS),
        (Drain::Finished, Some(Err(e))) => Err(e.into()),
        _ => {
            tracing::error!(?drain, "drain deadline passed; exiting with work unfinished");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn resolve_identity(config: &Config) -> Result<identity::Identity, identity::IdentityError> {
    if config.scheduler.shard_from_hostname {
        identity::from_hostname(&identity::hostname()?, config.scheduler.shards)
    } else {
        Ok(identity::generated(&identity::hostname().unwrap_or_else(|_| "scheduler".into())))
    }
}
