//! `sentryk8s standalone -f FILE`: the whole system in one process — the
//! way to try SentryK8s on a laptop and to run small installs.
//!
//! Migrates, applies the checks file (with `--prune`: the file is the truth),
//! then runs one scheduler, one worker and the web role (the REST API on
//! `--web-listen`) side by side on the shared modules, with notification delivery beside them and the live status table
//! on the terminal (a summary log line every ten seconds otherwise). Served,
//! drained and mapped to an exit status by [`serve_role_with_metrics`], like
//! every role (the web role's per-check metrics on the ops server's /metrics).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::serve::serve_role_with_metrics;
use super::{checks, delivery, status};
use crate::checks_file::apply::Options;
use crate::cli::{StandaloneArgs, StatusFormat};
use crate::config::Config;
use crate::health::ReadinessProbe;
use crate::queue::{AmqpLink, AmqpProbe};
use crate::scheduler::clock::{ClockProbe, DbClock};
use crate::scheduler::identity;
use crate::{db, migrate, scheduler, shutdown, worker};

/// How long to wait for PostgreSQL at start (the services may still be coming up).
const START_WAIT: Duration = Duration::from_secs(30);

pub async fn run(args: StandaloneArgs, config: Config) -> anyhow::Result<ExitCode> {
    let token = shutdown::on_signals().context("installing signal handlers")?;

    let mut client = db::connect_with_wait(&config, "standalone", START_WAIT, &token).await?;
    let report = migrate::run(&mut client, config.partitions).await?;
    for name in &report.applied {
        eprintln!("applied migration {name}");
    }
    drop(client);
    if let Some(line) = super::migrate::backfill_history(&report, &config).await? {
        eprintln!("{line}");
    }
    let applied = checks::apply_files(
        &args.files,
        Options { prune: true, dry_run: false },
        &config,
        START_WAIT,
        &token,
    )
    .await?;
    if applied != ExitCode::SUCCESS {
        return Ok(applied);
    }

    // One pool per role, as in a cluster: a worker's batch commits must not
    // make a lease renewal wait for a connection.
    let pool = db::pool(&config, "standalone-worker")?;
    let scheduler_pool = db::pool(&config, "standalone-scheduler")?;
    let deny = delivery::deny_list(&config)?;
    let worker_link = AmqpLink::default();
    let scheduler_link = AmqpLink::default();
    // Dispatch reads PostgreSQL's clock; too far off, it halts and /readyz says so.
    let clock = DbClock::new(config.scheduler.max_clock_skew);
    let probes: Vec<Arc<dyn ReadinessProbe>> = vec![
        Arc::new(db::PostgresProbe::dedicated(&config, "standalone")?),
        Arc::new(AmqpProbe(worker_link.clone())),
        Arc::new(AmqpProbe(scheduler_link.clone())),
        Arc::new(ClockProbe(clock.clone())),
    ];

    // Bound before the roles start: a busy port is a startup error.
    let web_listener = crate::web::bind(config.web.listen)
        .await
        .with_context(|| format!("binding the web listener {} (--web-listen)", config.web.listen))?;
    let web_addr =
        web_listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| config.web.listen.to_string());
    eprintln!("REST API on http://{web_addr}/api/v1 (tokens: `sentryk8s tokens create`)");
    let web_pool = db::pool(&config, "standalone-web")?;
    // The web role's per-check metrics, served on the ops server's /metrics.
    let check_metrics = crate::web::metrics::CheckMetrics::new();
    let extra = {
        let check_metrics = check_metrics.clone();
        Arc::new(move || check_metrics.text()) as crate::ops_server::ExtraMetrics
    };

    let me = identity::generated(&identity::hostname().unwrap_or_else(|_| "standalone".into()));
    let roles = {
        let config = config.clone();
        let token = token.clone();
        async move {
            // A role that stops stops the others too: half a system that
            // looks alive is worse than a clear exit.
            let scheduler = async {
                let r =
                    scheduler::run(config.clone(), me, scheduler_pool, scheduler_link, clock, token.clone())
                        .await;
                token.cancel();
                r.context("scheduler")
            };
            let delivery = delivery::run(&config, pool.clone(), deny, &token);
            let worker = async {
                let r = worker::run(&config, pool, worker_link, token.clone()).await;
                token.cancel();
                r.context("worker")
            };
            let web = async {
                crate::web::run(&config, web_pool, web_listener, check_metrics, token.clone()).await;
                token.cancel();
                anyhow::Ok(())
            };
            let (scheduler, worker, delivered, web) = tokio::join!(scheduler, worker, delivery, web);
            scheduler?;
            worker?;
            web?;
            delivered
        }
    };
    let display = async {
        if std::io::stdout().is_terminal() {
            status::watch(&config, StatusFormat::Table, &token).await;
        } else {
            log_summaries(&config, &token).await;
        }
    };
    let all = async {
        // The roles on their own task, as the two would be in a cluster; the
        // display returns once the token is cancelled, the roles once drained.
        let roles = tokio::spawn(roles);
        let roles = async { roles.await.context("the roles' task")? };
        tokio::pin!(roles);
        tokio::select! {
            done = &mut roles => done,
            () = display => roles.await,
        }
    };
    serve_role_with_metrics("standalone", &config, probes, Some(extra), &token, all).await
}

/// Without a terminal: one "n up, n down, n unknown" log line every ten seconds.
async fn log_summaries(config: &Config, token: &CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = token.cancelled() => return,
        }
        let Ok(client) = db::connect_with_wait(config, "standalone-status", Duration::ZERO, token).await
        else {
            continue;
        };
        match crate::status::fetch(&client).await {
            Ok(rows) => tracing::info!(summary = %crate::status::summary_line(&rows), "status"),
            Err(e) => tracing::warn!(error = %e, "cannot read the status"),
        }
    }
}
