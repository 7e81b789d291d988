//! `sentryk8s migrate [--wait DURATION]`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::MigrateArgs;
use crate::config::Config;
use crate::{db, migrate, shutdown};

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
    Ok(ExitCode::SUCCESS)
}
