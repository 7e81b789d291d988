//! `sentryk8s status [-o table|json] [--watch]`: what is up or down now.
//!
//! `--watch` redraws every two seconds until SIGINT/SIGTERM, clearing the
//! screen only on a terminal; a lost database connection is shown and
//! retried instead of ending the watch.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio_postgres::Client;

use crate::checks_file::apply::ensure_migrated;
use crate::cli::{StatusArgs, StatusFormat};
use crate::config::Config;
use crate::{db, shutdown, status};

/// How often `--watch` refreshes.
const WATCH_PERIOD: Duration = Duration::from_secs(2);

pub async fn run(args: StatusArgs, config: Config) -> anyhow::Result<ExitCode> {
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let tty = std::io::stdout().is_terminal();
    let color = tty && std::env::var_os("NO_COLOR").is_none();
    if !args.watch {
        let client = db::connect_with_wait(&config, "status", Duration::ZERO, &token).await?;
        ensure_migrated(&client).await?;
        let frame = render(&client, args.output, color, true).await?;
        std::io::stdout().lock().write_all(frame.as_bytes()).context("writing the status")?;
        return Ok(ExitCode::SUCCESS);
    }
    watch(&config, args.output, &token).await;
    Ok(ExitCode::SUCCESS)
}

/// Redraws the status every [`WATCH_PERIOD`] until `token` is cancelled
/// (or stdout closes). Also the live view of `standalone`.
pub(super) async fn watch(
    config: &Config,
    output: StatusFormat,
    token: &tokio_util::sync::CancellationToken,
) {
    let tty = std::io::stdout().is_terminal();
    let color = tty && std::env::var_os("NO_COLOR").is_none();
    let mut client: Option<Client> = None;
    loop {
        if client.as_ref().is_none_or(Client::is_closed) {
            client = db::connect_with_wait(config, "status", Duration::ZERO, token).await.ok();
        }
        let frame = match &client {
            Some(c) => match ensure_migrated(c).await {
                Ok(()) => render(c, output, color, false).await.unwrap_or_else(|e| format!("error: {e:#}\n")),
                Err(e) => format!("error: {e}\n"),
            },
            None => "error: cannot reach PostgreSQL; retrying\n".to_string(),
        };
        let mut out = std::io::stdout().lock();
        let shown = if tty && output == StatusFormat::Table {
            let now = chrono::Local::now().format("%H:%M:%S");
            // Clear, home, then the frame: no scrolling history of tables.
            format!(
                "\x1b[2J\x1b[H sentryk8s status · every {}s · {now} · Ctrl-C to stop\n\n{frame}",
                WATCH_PERIOD.as_secs()
            )
        } else {
            frame
        };
        if out.write_all(shown.as_bytes()).and_then(|_| out.flush()).is_err() {
            // stdout closed (piped into `head`): nothing left to do.
            return;
        }
        drop(out);
        tokio::select! {
            _ = tokio::time::sleep(WATCH_PERIOD) => {}
            _ = token.cancelled() => return,
        }
    }
}

async fn render(client: &Client, format: StatusFormat, color: bool, pretty: bool) -> anyhow::Result<String> {
    let rows = status::fetch(client).await?;
    Ok(match format {
        StatusFormat::Table if rows.is_empty() => {
            "no checks declared: `sentryk8s checks apply -f checks.yaml` declares some\n".to_string()
        }
        StatusFormat::Table => status::table(&rows, chrono::Utc::now(), color),
        StatusFormat::Json => status::json(&rows, pretty)? + "\n",
    })
}
