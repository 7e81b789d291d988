//! The command line: subcommands are the roles of the system.
//!
//! Flags that are configuration keys are collected into [`FlagValues`] and
//! layered over file and environment by `config::load`, so that a bad flag
//! value is reported exactly like a bad file value.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{FlagValues, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "sentryk8s",
    version,
    about = "Distributed, self-healing uptime monitor for web services",
    long_about = "Distributed, self-healing uptime monitor for web services.\n\n\
        One binary, several roles: `migrate` prepares PostgreSQL, `scheduler` \
        publishes every due check slot to RabbitMQ, `worker` runs the checks and \
        records results, `web` serves the REST API, `checks`, `status`, `report`, \
        `incidents` and `tokens` are for people. Configuration: \
        built-in defaults < --config FILE < SENTRYK8S_* environment < flags; \
        `sentryk8s config` prints the effective configuration."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML configuration file.
    #[arg(long, global = true, env = "SENTRYK8S_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PostgreSQL URL [config: database_url].
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// RabbitMQ URL [config: amqp_url].
    #[arg(long, global = true, value_name = "URL")]
    pub amqp_url: Option<String>,
    /// Ops HTTP server address, e.g. 0.0.0.0:9090 [config: listen].
    #[arg(long, global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Log format [config: log_format].
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. "info" or "sentryk8s=debug" (RUST_LOG wins) [config: log_level].
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the embedded schema migrations (run by the Helm hook Job).
    Migrate(MigrateArgs),
    /// Own a share of the partitions and publish every due check slot.
    Scheduler(SchedulerArgs),
    /// Consume check jobs, run them, store results and derive state.
    Worker(WorkerArgs),
    /// Manage the declared checks.
    Checks(ChecksArgs),
    /// Show what is up or down now.
    Status(StatusArgs),
    /// Uptime, time by state, incidents and response times per check over a window.
    Report(ReportArgs),
    /// List incidents: when each opened, was confirmed and resolved, and why.
    Incidents(IncidentsArgs),
    /// Maintain the hourly and daily rollups history is read from.
    Rollups(RollupsArgs),
    /// Serve the REST API (--listen is the API's address; the ops server stays on `listen`).
    Web,
    /// Create, list and revoke API tokens.
    Tokens(TokensArgs),
    /// Print the effective configuration (secrets redacted).
    Config,
    /// Migrate, apply a checks file and run a scheduler and a worker in one process.
    Standalone(StandaloneArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Keep retrying the connection this long (e.g. "60s") while PostgreSQL starts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<std::time::Duration>,
    /// Partitions at first install [config: partitions].
    #[arg(long)]
    pub partitions: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// Take the shard ordinal from HOSTNAME (sentryk8s-scheduler-2 → 2) [config: scheduler.shard_from_hostname].
    #[arg(long)]
    pub shard_from_hostname: bool,
    /// Number of scheduler replicas [config: scheduler.shards].
    #[arg(long)]
    pub shards: Option<u32>,
    /// Partition lease lifetime, e.g. "15s" [config: scheduler.lease_ttl].
    #[arg(long, value_name = "DURATION")]
    pub lease_ttl: Option<String>,
    /// Lease renewal period, e.g. "5s" [config: scheduler.renew_interval].
    #[arg(long, value_name = "DURATION")]
    pub renew_interval: Option<String>,
    /// Partitions at first install (stored in the database) [config: partitions].
    #[arg(long)]
    pub partitions: Option<u32>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Checks in flight at once [config: worker.concurrency].
    #[arg(long)]
    pub concurrency: Option<u32>,
}

#[derive(Debug, Args)]
pub struct ChecksArgs {
    #[command(subcommand)]
    pub command: ChecksCommand,
}

#[derive(Debug, Subcommand)]
pub enum ChecksCommand {
    /// Make the database match one or more checks files.
    Apply(ApplyArgs),
    /// List the declared checks.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Checks file, directory of *.yaml files, or "-" for stdin; repeatable.
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Delete checks that are in the database but in none of the files.
    #[arg(long)]
    pub prune: bool,
    /// Print the plan without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Environment variable ${VAR} may read: a name or a glob like "CHECK_*";
    /// repeatable, replaces the configured list. None by default [config: checks.allow_env].
    #[arg(long = "allow-env", value_name = "PATTERN")]
    pub allow_env: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ListFormat::Table)]
    pub output: ListFormat,
    /// Show heartbeat checks' ping URLs (their keys are secrets) [base URL: web.public_url].
    #[arg(long = "show-ping-urls")]
    pub show_ping_urls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusFormat::Table)]
    pub output: StatusFormat,
    /// Refresh every two seconds until interrupted.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Window ending now, e.g. "30d", "24h", "90m" (default 30d).
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["from", "to"])]
    pub since: Option<String>,
    /// Window start, RFC 3339 (e.g. 2026-11-01T00:00:00Z); with --to.
    #[arg(long, value_name = "TIME", requires = "to")]
    pub from: Option<String>,
    /// Window end, RFC 3339; with --from.
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<String>,
    /// Only this check (repeatable).
    #[arg(long = "check", value_name = "NAME")]
    pub checks: Vec<String>,
    /// Only checks carrying this label, key=value (repeatable: all must match).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// Only incidents of this check.
    #[arg(long = "check", value_name = "NAME")]
    pub check: Option<String>,
    /// Only incidents not resolved yet.
    #[arg(long)]
    pub open: bool,
    /// Only incidents open at some time in this window ending now, e.g. "7d" (default: all).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusFormat::Table)]
    pub output: StatusFormat,
}

#[derive(Debug, Args)]
pub struct RollupsArgs {
    #[command(subcommand)]
    pub command: RollupsCommand,
}

#[derive(Debug, Subcommand)]
pub enum RollupsCommand {
    /// Recount the rollups from the raw results and missed slots; writes only what differs.
    Rebuild(RebuildArgs),
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// First UTC day to recount, RFC 3339 time or date (default: the oldest day whose raw data is complete).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End of the recount, exclusive (default: now).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Only this check (repeatable).
    #[arg(long = "check", value_name = "NAME")]
    pub checks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; it is printed once, alone on standard output.
    Create(TokenCreateArgs),
    /// List tokens: name, scope, created, last used, expiry (never the token).
    List(TokenListArgs),
    /// Revoke a token: every web replica refuses it within a second.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Unique name, shown in `tokens list` and in logs instead of the token.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// What the token may do; admin includes write, which includes read.
    #[arg(long, value_name = "SCOPE")]
    pub scope: String,
    /// Lifetime, e.g. "90d" (default: no expiry).
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// Output: the token alone (text) or {"name","scope","expires_at","token"} (json).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = TokenFormat::Text)]
    pub output: TokenFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusFormat::Table)]
    pub output: StatusFormat,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Checks file or directory to apply (with --prune) before starting.
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Checks in flight at once [config: worker.concurrency].
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Environment variable ${VAR} may read: a name or a glob like "CHECK_*";
    /// repeatable, replaces the configured list. None by default [config: checks.allow_env].
    #[arg(long = "allow-env", value_name = "PATTERN")]
    pub allow_env: Vec<String>,
    /// Address of the REST API [config: web.listen].
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub web_listen: String,
}

/// `--allow-env` values as the `checks.allow_env` key, when any is given.
fn allow_env(patterns: &[String]) -> Option<Vec<String>> {
    (!patterns.is_empty()).then(|| patterns.to_vec())
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
}

impl Cli {
    /// The flags that are configuration keys, for the highest config layer.
    pub fn flag_values(&self) -> FlagValues {
        let mut flags = FlagValues::default();
        let g = &self.global;
        flags.set("database_url", "--database-url", g.database_url.clone());
        flags.set("amqp_url", "--amqp-url", g.amqp_url.clone());
        // For `web`, --listen is the API's address; the ops server keeps
        // `listen` from the file or the environment.
        if matches!(self.command, Command::Web) {
            flags.set("web.listen", "--listen", g.listen.clone());
        } else {
            flags.set("listen", "--listen", g.listen.clone());
        }
        flags.set(
            "log_format",
            "--log-format",
            g.log_format.map(|f| if f == LogFormat::Json { "json" } else { "text" }),
        );
        flags.set("log_level", "--log-level", g.log_level.clone());
        match &self.command {
            Command::Migrate(a) => flags.set("partitions", "--partitions", a.partitions),
            Command::Scheduler(a) => {
                flags.set(
                    "scheduler.shard_from_hostname",
                    "--shard-from-hostname",
                    a.shard_from_hostname.then_some(true),
                );
                flags.set("scheduler.shards", "--shards", a.shards);
                flags.set("scheduler.lease_ttl", "--lease-ttl", a.lease_ttl.clone());
                flags.set("scheduler.renew_interval", "--renew-interval", a.renew_interval.clone());
                flags.set("partitions", "--partitions", a.partitions);
            }
            Command::Worker(a) => flags.set("worker.concurrency", "--concurrency", a.concurrency),
            Command::Standalone(a) => {
                flags.set("web.listen", "--web-listen", Some(a.web_listen.clone()));
                flags.set("worker.concurrency", "--concurrency", a.concurrency);
                flags.set("checks.allow_env", "--allow-env", allow_env(&a.allow_env));
            }
            Command::Checks(ChecksArgs { command: ChecksCommand::Apply(a) }) => {
                flags.set("checks.allow_env", "--allow-env", allow_env(&a.allow_env));
            }
            Command::Checks(_)
            | Command::Status(_)
            | Command::Report(_)
            | Command::Incidents(_)
            | Command::Rollups(_)
            | Command::Web
            | Command::Tokens(_)
            | Command::Config => {}
        }
        flags
    }
}
