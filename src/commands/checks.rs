//! `sentryk8s checks apply` and `sentryk8s checks list`.
//!
//! apply validates every file before it opens a connection: a bad file
//! prints every problem, exits 2 and writes nothing. Output never carries
//! a secret (header values, URL passwords and tokens, request bodies),
//! except heartbeat ping URLs when `--show-ping-urls` asks for them.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use super::EXIT_INVALID;
use crate::checks_file::apply::{self, Options};
use crate::checks_file::export::{to_file, StoredCheck};
use crate::checks_file::store;
use crate::checks_file::validate::format_ms;
use crate::checks_file::{self, env};
use crate::cli::{ApplyArgs, ChecksArgs, ChecksCommand, ListArgs, ListFormat};
use crate::config::Config;
use crate::model::redact::{redact_spec, redact_url};
use crate::model::CheckSpec;
use crate::status::query::timestamp;
use crate::{db, heartbeat, shutdown};

pub async fn run(args: ChecksArgs, config: Config) -> anyhow::Result<ExitCode> {
    match args.command {
        ChecksCommand::Apply(a) => apply(a, config).await,
        ChecksCommand::List(l) => list(l, config).await,
    }
}

async fn apply(args: ApplyArgs, config: Config) -> anyhow::Result<ExitCode> {
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let options = Options { prune: args.prune, dry_run: args.dry_run };
    apply_files(&args.files, options, &config, Duration::ZERO, &token).await
}

/// Validates `files` (every problem printed, exit 2, nothing written), then
/// applies them in one transaction and prints the plan. Shared by
/// `checks apply` and `standalone`.
pub(super) async fn apply_files(
    files: &[std::path::PathBuf],
    options: Options,
    config: &Config,
    wait: Duration,
    token: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<ExitCode> {
    // Nothing outside the files survives --prune: references must resolve
    // within them, which is known before connecting. Without it, they may
    // also name what is stored, which apply checks in its transaction.
    // checks.allow_env (or --allow-env, layered into it) was checked for
    // syntax with the configuration; a reserved name written without a
    // wildcard is refused here, before anything is read.
    let allow = match env::AllowList::new(&config.checks.allow_env) {
        Ok(allow) => allow,
        Err(e) => {
            eprintln!("error: checks.allow_env: {e}; nothing was applied");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let stdin = &mut std::io::stdin().lock();
    let declared = match checks_file::load(
        files,
        stdin,
        &env::process_env,
        &allow,
        config.checks.max_file_bytes,
        options.prune,
    ) {
        Ok(declared) => declared,
        Err(diags) => return Ok(invalid(&diags)),
    };
    let mut client = db::connect_with_wait(config, "checks-apply", wait, token).await?;
    let dry_run = options.dry_run;
    let plan = match apply::apply(&mut client, &declared, options, || {
        eprintln!("waiting for another `sentryk8s checks apply` to finish…");
    })
    .await
    {
        Ok(plan) => plan,
        Err(apply::ApplyError::Unresolved(problems) | apply::ApplyError::Owned(problems)) => {
            return Ok(invalid(&problems))
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(plan.render(&declared, dry_run).as_bytes()).context("writing the plan")?;
    Ok(ExitCode::SUCCESS)
}

/// Prints every problem and the closing line; the exit status of bad input.
fn invalid(diags: &checks_file::Diagnostics) -> ExitCode {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "{diags}");
    let n = diags.len();
    let _ = writeln!(
        err,
        "error: {n} problem{} in the checks files; nothing was applied",
        if n == 1 { "" } else { "s" }
    );
    ExitCode::from(EXIT_INVALID)
}

/// One entry of `checks list -o json` (a stable shape: fields are only
/// ever added).
#[derive(Debug, Serialize)]
struct Listed {
    name: String,
    enabled: bool,
    interval_ms: i32,
    version: i64,
    created_at: String,
    updated_at: String,
    /// Who owns the check: "file" (`checks apply`) or "api".
    owner: &'static str,
    /// The stored spec (src/model/check.rs), secrets masked.
    spec: CheckSpec,
    /// A heartbeat's ping URL, with its key: only with `--show-ping-urls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    ping_url: Option<String>,
}

async fn list(args: ListArgs, config: Config) -> anyhow::Result<ExitCode> {
    let token = shutdown::on_signals().context("installing signal handlers")?;
    let client = db::connect_with_wait(&config, "checks-list", Duration::ZERO, &token).await?;
    apply::ensure_migrated(&client).await?;
    let rows = store::list(&client)
        .await
        .map_err(|e| anyhow::anyhow!("reading the checks: {}", db::error_chain(&e)))?;
    let keys = if args.show_ping_urls {
        heartbeat::store::keys_by_name(&client, &[])
            .await
            .map_err(|e| anyhow::anyhow!("reading the ping keys: {}", db::error_chain(&e)))?
    } else {
        Default::default()
    };
    let base = config.web.public_base();
    let mut listed = Vec::with_capacity(rows.len());
    for r in rows {
        let ping_url = keys.get(&r.name).map(|key| heartbeat::ping_url(&base, key));
        let spec: CheckSpec = serde_json::from_value(r.spec)
            .with_context(|| format!("check `{}` has a stored spec this version cannot read", r.name))?;
        listed.push(Listed {
            name: r.name,
            enabled: r.enabled,
            interval_ms: r.interval_ms,
            version: r.version,
            created_at: timestamp(&r.created_at),
            updated_at: timestamp(&r.updated_at),
            owner: r.owner.as_str(),
            spec: redact_spec(&spec),
            ping_url,
        });
    }
    let text = match args.output {
        ListFormat::Json => serde_json::to_string_pretty(&listed)? + "\n",
        ListFormat::Yaml => {
            let stored: Vec<StoredCheck> = listed
                .iter()
                .map(|l| StoredCheck {
                    name: l.name.clone(),
                    enabled: l.enabled,
                    interval_ms: l.interval_ms,
                    spec: l.spec.clone(),
                })
                .collect();
            // The YAML stays a checks file (an `owner:` key would make it
            // one no apply accepts): who owns what is said in a comment.
            let api: Vec<&str> =
                listed.iter().filter(|l| l.owner == "api").map(|l| l.name.as_str()).collect();
            let owners = if api.is_empty() {
                String::new()
            } else {
                format!(
                    "# owner: api (created through the API; `checks apply` refuses a file declaring them): {}\n",
                    api.join(", ")
                )
            };
            format!(
                "# sentryk8s checks list: {} checks. Secrets are shown as \"***\":\n# put them back (with ${{VAR}}) before applying this file.\n{owners}{}",
                stored.len(),
                to_file(&stored).map_err(|e| anyhow::anyhow!("writing YAML: {e:?}"))?
            )
        }
        ListFormat::Table => list_table(&listed),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).context("writing the list")?;
    Ok(ExitCode::SUCCESS)
}

fn list_table(listed: &[Listed]) -> String {
    let header = ["NAME", "ENABLED", "OWNER", "INTERVAL", "TIMEOUT", "METHOD", "URL", "LABELS"];
    let rows: Vec<[String; 8]> = listed
        .iter()
        .map(|l| {
            [
                l.name.clone(),
                if l.enabled { "yes".into() } else { "no".into() },
                l.owner.to_string(),
                format_ms(l.interval_ms.max(0) as u64),
                format_ms(l.spec.timeout_ms),
                l.spec.method.clone(),
                // Already redacted; redacting twice is harmless. A
                // heartbeat has no URL: its ping URL when asked for.
                l.ping_url.clone().unwrap_or_else(|| redact_url(&l.spec.url)),
                l.spec.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
            text.push_str(&" ".repeat(widths[i].saturating_sub(cell.chars().count()) + 2));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    let n = listed.len();
    out.push_str(&format!("{n} check{} declared\n", if n == 1 { "" } else { "s" }));
    out
}
