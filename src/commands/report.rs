//! `sentryk8s report [--since 30d | --from T --to T] [--check NAME]...
//! [-l key=value]... [-o table|json|csv]`: uptime, time by state,
//! incidents and response times per check over a window (docs/history.md).
//!
//! Bad input (a window, a label, a check name) exits with 2 and names what
//! was wrong; the table says which data answered which window.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;

use super::EXIT_INVALID;
use crate::checks_file::apply::ensure_migrated;
use crate::cli::{ReportArgs, ReportFormat};
use crate::config::Config;
use crate::history::render;
use crate::history::report::{self, HistoryError, Retention, Selection};
use crate::{db, shutdown};

/// The window when none is given.
const DEFAULT_SINCE: &str = "30d";

pub async fn run(args: ReportArgs, config: Config) -> anyhow::Result<ExitCode> {
    let now = Utc::now();
    let request = match request(&args, now) {
        Ok(r) => r,
        Err(e) => return Ok(invalid(&e)),
    };
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let client = db::connect_with_wait(&config, "report", Duration::ZERO, &token).await?;
    ensure_migrated(&client).await?;
    // `history.hourly_retention_days` is not a configuration key yet: its
    // default until it is.
    let retention =
        Retention { raw_days: config.results.retention_days, hourly_days: Retention::DEFAULT_HOURLY_DAYS };
    let (from, to, selection) = request;
    let report = match report::report(&client, from, to, now, retention, &selection).await {
        Ok(r) => r,
        Err(e) if e.is_invalid_input() => return Ok(invalid(&e)),
        Err(e) => return Err(e.into()),
    };
    let text = match args.output {
        ReportFormat::Table => render::report_table(&report),
        ReportFormat::Json => render::report_json(&report)? + "\n",
        ReportFormat::Csv => render::report_csv(&report),
    };
    std::io::stdout().lock().write_all(text.as_bytes()).context("writing the report")?;
    Ok(ExitCode::SUCCESS)
}

type Request = (chrono::DateTime<Utc>, chrono::DateTime<Utc>, Selection);

/// The window and selection the flags ask for.
fn request(args: &ReportArgs, now: chrono::DateTime<Utc>) -> Result<Request, HistoryError> {
    let (from, to) = match (&args.from, &args.to) {
        (Some(from), Some(to)) => (report::parse_time("--from", from)?, report::parse_time("--to", to)?),
        // clap requires --from and --to together and refuses them with --since.
        _ => (report::since("--since", args.since.as_deref().unwrap_or(DEFAULT_SINCE), now)?, now),
    };
    report::check_window(from, to)?;
    let labels = args.labels.iter().map(|l| report::parse_label(l)).collect::<Result<Vec<_>, _>>()?;
    Ok((from, to, Selection { checks: args.checks.clone(), labels }))
}

fn invalid(e: &HistoryError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_INVALID)
}
