//! `sentryk8s migrate [--wait DURATION]`.
//!
//! The run that applies the history migration (0005) also fills the new
//! rollups from the results and missed slots already stored
//! ([`backfill_history`]), so history starts with everything retained.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::history::rebuild;
use crate::{db, migrate, shutdown};

/// The migration that creates the rollups: the run that applies it fills them.
const HISTORY_MIGRATION: &str = "0005_history.sql";

pub async fn run(args: MigrateArgs, config: Config) -> anyhow::Result<ExitCode> {
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let wait = args.wait.unwrap_or(Duration::ZERO);
    let mut client = db::connect_with_wait(&config, "migrate", wait, &token).await?;
    let report = migrate::run(&mut client, config.partitions).await?;
    for name in &report.applied {
        println!("applied {name}");
    }
    if report.applied.is_empty() {
        println!(
            "database is up to date ({} migration{} already applied); nothing changed",
            report.already_applied,
            if report.already_applied == 1 { "" } else { "s" }
        );
    }
    if let Some(p) = report.initialised_partitions {
        println!("cluster initialised with {p} partitions");
    }
    drop(client);
    if let Some(line) = backfill_history(&report, &config).await? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// When `report` applied the history migration, counts the raw data
/// already stored into the rollups (a recount of every retained day; there
/// were no rollups before). Returns the line to print, if it ran.
/// A failure here leaves the schema migrated and is an error: running
/// `migrate` again does not refill (the migration is applied), so the
/// message names `sentryk8s rollups rebuild`, which does.
pub(super) async fn backfill_history(
    report: &migrate::Report,
    config: &Config,
) -> anyhow::Result<Option<String>> {
    if !report.applied.iter().any(|name| name == HISTORY_MIGRATION) {
        return Ok(None);
    }
    tracing::info!("filling the rollups from the results already stored");
    let pool = db::pool(config, "migrate")?;
    let done = rebuild::backfill(&pool)
        .await
        .context("filling the rollups from the stored results; run `sentryk8s rollups rebuild` to finish")?;
    tracing::info!(checks = done.checks, rows = done.created, "rollups filled");
    if done.checks == 0 {
        // A first install: nothing stored yet, nothing to say.
        return Ok(None);
    }
    Ok(Some(format!(
        "rollups filled from the stored results: {} rows for {} checks",
        done.created, done.checks
    )))
}
