//! `sentryk8s scheduler [--shard-from-hostname --shards N]`: the scheduler
//! role, served and drained by [`serve_role`].

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::serve::serve_role;
use super::EXIT_INVALID;
use crate::config::Config;
use crate::health::ReadinessProbe;
use crate::queue::{AmqpLink, AmqpProbe};
use crate::scheduler::clock::{ClockProbe, DbClock};
use crate::scheduler::{self, identity};
use crate::{db, shutdown};

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
    // Readiness has its own connection: a /readyz flood cannot queue for
    // the role's pool (ops_server.rs).
    // Dispatch reads PostgreSQL's clock; too far off, it halts and /readyz says so.
    let clock = DbClock::new(config.scheduler.max_clock_skew);
    let probes: Vec<Arc<dyn ReadinessProbe>> = vec![
        Arc::new(db::PostgresProbe::dedicated(&config, "scheduler")?),
        Arc::new(AmqpProbe(link.clone())),
        Arc::new(ClockProbe(clock.clone())),
    ];

    let role = async {
        scheduler::run(config.clone(), me, pool, link, clock, token.clone()).await?;
        Ok(())
    };
    serve_role("scheduler", &config, probes, &token, role).await
}

fn resolve_identity(config: &Config) -> Result<identity::Identity, identity::IdentityError> {
    if config.scheduler.shard_from_hostname {
        identity::from_hostname(&identity::hostname()?, config.scheduler.shards)
    } else {
        Ok(identity::generated(&identity::hostname().unwrap_or_else(|_| "scheduler".into())))
    }
}
