//! The configuration model: every key, its type and its meaning. Pure data
//! plus redaction; how values are layered is `load.rs`, what ranges they
//! may take is `validate.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;
use crate::model::redact::redact_url;

/// `Debug` prints the redacted TOML: the URLs hold passwords.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// PostgreSQL connection URL.
    pub database_url: String,
    /// RabbitMQ connection URL.
    pub amqp_url: String,
    /// Ops HTTP server address.
    pub listen: SocketAddr,
    /// Log line format.
    pub log_format: LogFormat,
    /// tracing filter used when `RUST_LOG` is not set.
    pub log_level: String,
    /// Longest drain after SIGTERM.
    #[serde(with = "duration")]
    pub drain_timeout: Duration,
    /// Partition count used when the cluster is first initialised.
    pub partitions: u32,
    pub database: DatabaseConfig,
    pub amqp: AmqpConfig,
    pub scheduler: SchedulerConfig,
    pub worker: WorkerConfig,
    pub results: ResultsConfig,
    pub history: HistoryConfig,
    pub alerts: AlertsConfig,
    pub checks: ChecksConfig,
    pub web: WebConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connections per process.
    pub pool_size: u32,
    /// Limit on one connection attempt.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// PEM file of CA certificates trusted for `sslmode=require`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpConfig {
    /// Exchange the scheduler publishes jobs to.
    pub exchange: String,
    /// Quorum queue the workers consume (the first of `queues`).
    pub queue: String,
    /// Number of job queues: `queue`, then `queue.1` … `queue.{n-1}`.
    pub queues: u32,
    /// Deliveries of one message before the broker dead-letters it.
    pub delivery_limit: u32,
    /// Backlog bound of the job queue.
    pub max_queue_length: u64,
    /// AMQP heartbeat.
    #[serde(with = "duration")]
    pub heartbeat: Duration,
    /// Longest wait between reconnection attempts.
    #[serde(with = "duration")]
    pub reconnect_max_backoff: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Take the shard ordinal from the host name.
    pub shard_from_hostname: bool,
    /// Number of scheduler replicas (with `shard_from_hostname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    /// Lifetime of a partition lease without renewal.
    #[serde(with = "duration")]
    pub lease_ttl: Duration,
    /// Period of lease and membership renewal.
    #[serde(with = "duration")]
    pub renew_interval: Duration,
    /// Period of the fallback full reload of owned checks.
    #[serde(with = "duration")]
    pub reload_interval: Duration,
    /// How late a slot may still be published after an outage.
    #[serde(with = "duration")]
    pub catch_up: Duration,
    /// Longest sleep of the dispatch loop.
    #[serde(with = "duration")]
    pub tick: Duration,
    /// Most slots one job message carries (1: the one-slot format of
    /// versions 1 and 2, which workers from before batches read).
    pub slots_per_message: u32,
    /// How long a due slot may wait for others of its partition to share
    /// its message (with `slots_per_message` > 1).
    #[serde(with = "duration")]
    pub batch_linger: Duration,
    /// Largest difference between this host's clock and PostgreSQL's
    /// before dispatch halts (and `/readyz` fails).
    #[serde(with = "duration")]
    pub max_clock_skew: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Checks in flight at once.
    pub concurrency: u32,
    /// Results per transaction at most.
    pub batch_size: u32,
    /// Longest wait of a result before its batch is written.
    #[serde(with = "duration")]
    pub batch_max_delay: Duration,
    /// Response body bytes read at most, for checks that set no limit.
    pub body_limit: u64,
    /// Body bytes one check reads at most, whatever it sets.
    pub body_limit_max: u64,
    /// Bytes the kept bodies of all checks in flight may hold at once;
    /// 0 derives it from the cgroup memory limit.
    pub body_budget: u64,
    /// Largest body JSON assertions parse.
    pub json_max_bytes: u64,
    /// Default User-Agent of checks.
    pub user_agent: String,
    /// Target addresses checks may not connect to (ranges or named sets).
    pub deny_targets: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsConfig {
    /// Days of results kept.
    pub retention_days: u32,
}

/// How long history's own rows are kept (raw results: [`ResultsConfig`]).
/// 0 means forever.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Days of hourly rollup rows kept.
    pub hourly_retention_days: u32,
    /// Days of daily rollup rows kept.
    pub daily_retention_days: u32,
    /// Days a resolved incident is kept (open ones always are).
    pub incident_retention_days: u32,
}

/// The web role (`sentryk8s web`, and `standalone`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Address of the REST API.
    pub listen: SocketAddr,
    /// The URL jobs reach the web role at (heartbeat ping URLs); empty:
    /// derived from `listen` ([`WebConfig::public_base`]).
    pub public_url: String,
    /// Whether GET routes answer without a token.
    pub public_read: bool,
    pub max_connections: u32,
    #[serde(with = "duration")]
    pub header_read_timeout: Duration,
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    #[serde(with = "duration")]
    pub metrics_refresh: Duration,
    /// Check labels copied onto per-check metrics.
    pub metrics_labels: Vec<String>,
}

impl WebConfig {
    /// The base of ping URLs: `public_url`, or `http://` and `listen` with
    /// an unspecified address shown as loopback.
    pub fn public_base(&self) -> String {
        if !self.public_url.trim().is_empty() {
            return self.public_url.trim().trim_end_matches('/').to_string();
        }
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// Whether this process delivers notifications (worker, standalone).
    pub deliver: bool,
    /// Period of the delivery loop when idle.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Outbox rows fanned out, and deliveries claimed, per round at most.
    pub batch_size: u32,
    /// Deliveries in flight at once per process.
    pub concurrency: u32,
    /// Limit on one attempt (an HTTP request, an SMTP session).
    #[serde(with = "duration")]
    pub send_timeout: Duration,
    /// How long a claimed delivery stays reserved to its process.
    #[serde(with = "duration")]
    pub lease: Duration,
    /// Attempts before a delivery is failed (a channel may set its own).
    pub max_attempts: u32,
    /// Wait after the first failed attempt (doubled each time, jittered).
    #[serde(with = "duration")]
    pub retry_initial: Duration,
    /// Longest wait between two attempts.
    #[serde(with = "duration")]
    pub retry_max: Duration,
    /// Period of the reminder scan.
    #[serde(with = "duration")]
    pub reminder_scan_interval: Duration,
    /// Days a notification (outbox row) and its deliveries are kept once
    /// settled; rows still to be sent or of an open incident are kept.
    pub retention_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksConfig {
    /// Environment variables `${VAR}` in checks files may read (globs);
    /// empty: none. Reserved names are refused whatever this says.
    pub allow_env: Vec<String>,
    /// Largest checks file (or standard input) read, in bytes.
    pub max_file_bytes: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_redacted_toml())
    }
}

impl Config {
    /// The configuration with every secret (passwords in URLs) replaced.
    pub fn redacted(&self) -> Config {
        let mut copy = self.clone();
        copy.database_url = redact_url(&copy.database_url);
        copy.amqp_url = redact_url(&copy.amqp_url);
        copy
    }

    /// Renders the effective, redacted configuration as TOML.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted())
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}
