//! `sentryk8s rollups rebuild [--from T] [--to T] [--check NAME]...`:
//! recounts the hourly and daily rollups from the raw results and missed
//! slots (history/rebuild.rs) and prints what it compared and changed.
//!
//! Exit status: 0 done (whether or not anything was written), 2 bad input
//! (a time that does not parse, an unknown check, a `--from` before the
//! raw data), 1 a failure (PostgreSQL).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::EXIT_INVALID;
use crate::checks_file::apply::ensure_migrated;
use crate::cli::{RebuildArgs, RollupsArgs, RollupsCommand};
use crate::config::Config;
use crate::history::rebuild::{self, RebuildError, RebuildReport};
use crate::{db, shutdown};

pub async fn run(args: RollupsArgs, config: Config) -> anyhow::Result<ExitCode> {
    match args.command {
        RollupsCommand::Rebuild(args) => rebuild_command(args, config).await,
    }
}

async fn rebuild_command(args: RebuildArgs, config: Config) -> anyhow::Result<ExitCode> {
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let client = db::connect_with_wait(&config, "rollups", Duration::ZERO, &token).await?;
    ensure_migrated(&client).await?;
    drop(client);
    let pool = db::pool(&config, "rollups")?;
    match rebuild_with(&args, &config, &pool).await {
        Ok(report) => {
            let mut out = std::io::stdout().lock();
            out.write_all(summary(&report).as_bytes()).context("writing the summary")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_bad_input() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_INVALID))
        }
        Err(e) => Err(e).context("rebuilding the rollups"),
    }
}

async fn rebuild_with(
    args: &RebuildArgs,
    config: &Config,
    pool: &deadpool_postgres::Pool,
) -> Result<RebuildReport, RebuildError> {
    let from = args.from.as_deref().map(rebuild::parse_time).transpose()?;
    let to = args.to.as_deref().map(rebuild::parse_time).transpose()?;
    let range = rebuild::range(from, to, chrono::Utc::now(), config.results.retention_days)?;
    let checks =
        if args.checks.is_empty() { None } else { Some(rebuild::resolve_checks(pool, &args.checks).await?) };
    eprintln!(
        "recounting the rollups of buckets from {} to {}",
        range.from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        range.to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    rebuild::rebuild(pool, range, checks).await
}

/// The closing lines: what was compared, then what was written (or that
/// nothing was).
pub(super) fn summary(r: &RebuildReport) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut s = format!(
        "{} compared across {}\n",
        plural(r.compared, "rollup row", "rollup rows"),
        plural(r.checks as u64, "check", "checks")
    );
    if r.nothing_written() {
        s.push_str("already right: nothing written\n");
    } else {
        s.push_str(&format!(
            "fixed {}: {} created, {} corrected, {} deleted\n",
            plural(r.created + r.updated + r.deleted, "row", "rows"),
            r.created,
            r.updated,
            r.deleted
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_when_nothing_was_written() {
        let r = RebuildReport { checks: 1, compared: 2, ..RebuildReport::default() };
        assert_eq!(summary(&r), "2 rollup rows compared across 1 check\nalready right: nothing written\n");
        let r = RebuildReport { checks: 3, compared: 10, created: 4, updated: 1, deleted: 1 };
        assert_eq!(
            summary(&r),
            "10 rollup rows compared across 3 checks\nfixed 6 rows: 4 created, 1 corrected, 1 deleted\n"
        );
    }
}
