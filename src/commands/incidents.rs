//! `sentryk8s incidents [--check NAME] [--open] [--since 7d] [-o table|json]`:
//! the incidents, newest first, errors with secrets masked
//! (docs/history.md).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;

use super::EXIT_INVALID;
use crate::checks_file::apply::ensure_migrated;
use crate::cli::{IncidentsArgs, StatusFormat};
use crate::config::Config;
use crate::history::render;
use crate::history::report::{self, HistoryError, IncidentFilter};
use crate::{db, shutdown};

pub async fn run(args: IncidentsArgs, config: Config) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let since = match args.since.as_deref().map(|s| report::since("--since", s, now)).transpose() {
        Ok(s) => s,
        Err(e) => return Ok(invalid(&e)),
    };
    let filter = IncidentFilter { check: args.check.clone(), open_only: args.open, since };
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let client = db::connect_with_wait(&config, "incidents", Duration::ZERO, &token).await?;
    ensure_migrated(&client).await?;
    let list = match report::incidents(&client, &filter).await {
        Ok(list) => list,
        Err(e) if e.is_invalid_input() => return Ok(invalid(&e)),
        Err(e) => return Err(e.into()),
    };
    let text = match args.output {
        StatusFormat::Table => render::incidents_table(&list, now),
        StatusFormat::Json => render::incidents_json(&list, now)? + "\n",
    };
    std::io::stdout().lock().write_all(text.as_bytes()).context("writing the incidents")?;
    Ok(ExitCode::SUCCESS)
}

fn invalid(e: &HistoryError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_INVALID)
}
