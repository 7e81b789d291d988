//! Configuration: one model for every role, layered with figment.
//!
//! Precedence, lowest first: the documented built-in defaults
//! (`default.toml`, embedded), a TOML file (`--config` or `SENTRYK8S_CONFIG`),
//! `SENTRYK8S_*` environment variables (sections joined by `__`), then
//! command-line flags. [`load`] reports *every* problem at once, each naming
//! the key and the layer it came from, because a configuration that fails
//! one error at a time costs a deploy per typo.

mod duration;
pub mod urls;
pub use duration::parse as parse_duration;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

pub use crate::model::redact::redact_url;

/// The built-in defaults, also the reference documentation of every key.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Environment variable prefix of every configuration key.
pub const ENV_PREFIX: &str = "SENTRYK8S_";

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
    pub alerts: AlertsConfig,
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
    /// Quorum queue the workers consume.
    pub queue: String,
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
    /// Response body bytes read at most.
    pub body_limit: u64,
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
}

/// Values given on the command line; `None` means "not given".
///
/// Each field is named after its key path so that one table maps flags to
/// keys, and error messages can name the flag back.
#[derive(Debug, Default, Clone)]
pub struct FlagValues {
    values: Vec<(&'static str, &'static str, Value)>,
}

impl FlagValues {
    /// Records `--flag` as the value of `key` (a dotted path) when given.
    pub fn set<V: Into<Value>>(&mut self, key: &'static str, flag: &'static str, value: Option<V>) {
        if let Some(v) = value {
            self.values.push((key, flag, v.into()));
        }
    }

    fn flag_for(&self, key: &str) -> Option<&'static str> {
        self.values.iter().find(|(k, _, _)| *k == key).map(|(_, f, _)| *f)
    }
}

impl Provider for FlagValues {
    fn metadata(&self) -> Metadata {
        Metadata::named(FLAGS_SOURCE)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut root = Dict::new();
        for (key, _, value) in &self.values {
            insert_path(&mut root, key, value.clone());
        }
        Ok(Profile::Default.collect(root))
    }
}

const DEFAULTS_SOURCE: &str = "built-in defaults";
const FLAGS_SOURCE: &str = "command-line flags";

/// One configuration problem, already phrased for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `scheduler.lease_ttl`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// Where the value came from: a file, an environment variable or a flag.
    pub source: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (from {})", self.key, self.message, self.source)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<Problem>);

/// Loads the configuration from every layer, validates it, and returns it or
/// every problem found.
pub fn load(file: Option<&PathBuf>, flags: &FlagValues) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError(vec![Problem {
                key: "config".into(),
                message: format!("config file {} does not exist or is not a file", path.display()),
                source: "--config or SENTRYK8S_CONFIG".into(),
            }]));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let figment = figment.merge(environment()).merge(flags.clone());
    extract_all(&figment, flags)
}

/// Keys that are never configuration even though they carry our prefix.
///
/// Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT`, … for every
/// Service in the namespace; a Service called `sentryk8s-…` would otherwise
/// turn into "unknown key" errors and a crash loop. `CONFIG` names the file.
fn is_ignored_env_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "config"
        || key == "port"
        || key.starts_with("port_")
        || key.contains("_service_")
        || key.ends_with("_service_host")
        || key.ends_with("_port")
        || key.contains("_port_")
}

/// `SENTRYK8S_*` variables, renamed so errors can name the real variable
/// (Env's own metadata interpolates `A.B`, not `SENTRYK8S_A__B`).
fn environment() -> impl Provider {
    let env = Env::prefixed(ENV_PREFIX).split("__").filter(|key| !is_ignored_env_key(key.as_str()));
    struct Named(Env);
    impl Provider for Named {
        fn metadata(&self) -> Metadata {
            Metadata::named("environment")
        }
        fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
            self.0.data()
        }
    }
    Named(env)
}

/// Deserializes, collecting every problem instead of stopping at the first.
///
/// serde stops at the first error, so after each one the offending key is
/// put back to its default (or removed, when unknown) and extraction runs
/// again. `figment` keeps the original layering to say where each value
/// came from.
fn extract_all(figment: &Figment, flags: &FlagValues) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut data: Dict = match figment.data() {
        Ok(map) => map.get(&Profile::Default).cloned().unwrap_or_default(),
        Err(err) => {
            // A file that is not valid TOML, or unreadable.
            return Err(ConfigError(
                err.into_iter()
                    .map(|e| Problem {
                        key: if e.path.is_empty() { "config".into() } else { e.path.join(".") },
                        message: e.kind.to_string(),
                        source: e
                            .metadata
                            .as_ref()
                            .map(|m| describe_metadata(m, ""))
                            .unwrap_or_else(|| "config file".into()),
                    })
                    .collect(),
            ));
        }
    };
    let defaults: Dict = Figment::from(Toml::string(DEFAULT_CONFIG))
        .data()
        .ok()
        .and_then(|m| m.get(&Profile::Default).cloned())
        .unwrap_or_default();

    // Each round removes at least one key, so this ends; the bound is a guard.
    for _ in 0..256 {
        let candidate = Figment::from(figment::providers::Serialized::defaults(&data));
        match candidate.extract::<Config>() {
            Ok(config) => {
                problems.extend(validate(&config).into_iter().map(|(key, message)| Problem {
                    source: describe_source(figment, flags, &key),
                    key,
                    message,
                }));
                if problems.is_empty() {
                    return Ok(config);
                }
                return Err(ConfigError(problems));
            }
            Err(errors) => {
                let mut progressed = false;
                for error in errors {
                    let (key, message) = describe_error(&error);
                    problems.push(Problem {
                        source: describe_source(figment, flags, &key),
                        key: key.clone(),
                        message,
                    });
                    progressed |= reset_key(&mut data, &defaults, &key);
                }
                if !progressed {
                    break;
                }
            }
        }
    }
    Err(ConfigError(problems))
}

/// Puts `key` back to its default value, or removes it when it has none.
/// Returns whether anything changed.
fn reset_key(data: &mut Dict, defaults: &Dict, key: &str) -> bool {
    match lookup_path(defaults, key) {
        Some(default) if lookup_path(data, key) != Some(default) => {
            insert_path(data, key, default.clone());
            true
        }
        Some(_) => false,
        None => remove_path(data, key),
    }
}

fn lookup_path<'a>(dict: &'a Dict, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut current = dict.get(parts.next()?)?;
    for part in parts {
        current = current.as_dict()?.get(part)?;
    }
    Some(current)
}

fn insert_path(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        None => {
            dict.insert(key.to_string(), value);
        }
        Some((head, rest)) => {
            let entry = dict.entry(head.to_string()).or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

fn remove_path(dict: &mut Dict, key: &str) -> bool {
    match key.split_once('.') {
        None => dict.remove(key).is_some(),
        Some((head, rest)) => match dict.get_mut(head) {
            Some(Value::Dict(_, inner)) => remove_path(inner, rest),
            // The parent is not a table (e.g. `scheduler = 3`): drop it whole.
            Some(_) => dict.remove(head).is_some(),
            None => false,
        },
    }
}

/// Turns a figment error into (key path, message).
fn describe_error(error: &figment::Error) -> (String, String) {
    use figment::error::Kind;
    let mut path: Vec<String> = error.path.clone();
    // Serialized::defaults puts everything under the default profile name.
    if path.first().map(|p| p == "default").unwrap_or(false) {
        path.remove(0);
    }
    match &error.kind {
        Kind::UnknownField(field, _) => {
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            (path.join("."), "unknown key".to_string())
        }
        Kind::MissingField(field) => {
            path.push(field.to_string());
            (path.join("."), "missing".to_string())
        }
        Kind::InvalidType(actual, expected) => {
            (path.join("."), format!("wrong type: found {}, expected {expected}", shown(actual)))
        }
        Kind::InvalidValue(actual, expected) => {
            (path.join("."), format!("invalid value: found {}, expected {expected}", shown(actual)))
        }
        Kind::UnknownVariant(actual, expected) => {
            (path.join("."), format!("unknown value \"{actual}\", expected one of: {}", expected.join(", ")))
        }
        other => (path.join("."), other.to_string()),
    }
}

/// A rejected value as the error shows it. Strings are not echoed: a
/// misspelt key may well hold a URL with a password (`SENTRYK8S_DATABASE=…`).
fn shown(actual: &figment::error::Actual) -> String {
    match actual {
        figment::error::Actual::Str(_) => "a string".to_string(),
        other => other.to_string(),
    }
}

/// Names the layer that supplied `key`: a file, an environment variable, a flag.
fn describe_source(figment: &Figment, flags: &FlagValues, key: &str) -> String {
    // An unknown key's parent may be what figment knows; walk up until found.
    let mut probe = key.to_string();
    loop {
        if let Some(meta) = figment.find_metadata(&probe) {
            if meta.name == FLAGS_SOURCE {
                if let Some(flag) = flags.flag_for(&probe) {
                    return format!("command-line flag {flag}");
                }
            }
            return describe_metadata(meta, key);
        }
        match probe.rsplit_once('.') {
            Some((parent, _)) => probe = parent.to_string(),
            None => return DEFAULTS_SOURCE.to_string(),
        }
    }
}

fn describe_metadata(meta: &Metadata, key: &str) -> String {
    if meta.name == "environment" {
        return format!("environment variable {ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase());
    }
    match &meta.source {
        Some(figment::Source::File(path)) => format!("config file {}", path.display()),
        Some(figment::Source::Code(_)) | None if meta.name.contains("TOML") => DEFAULTS_SOURCE.to_string(),
        _ => meta.name.to_string(),
    }
}

/// Range and format checks that types alone do not express.
/// Returns (key, message) pairs.
fn validate(config: &Config) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, key: &str, message: String| {
        if !ok {
            problems.push((key.to_string(), message));
        }
    };

    if let Err(e) = urls::parse_database_url(&config.database_url) {
        check(false, "database_url", e.to_string());
    }
    if let Err(e) = urls::AmqpTarget::parse(&config.amqp_url) {
        check(false, "amqp_url", e.to_string());
    }
    if let Err(e) = config.log_level.parse::<tracing_subscriber::EnvFilter>() {
        check(false, "log_level", format!("invalid log filter: {e}"));
    }
    range(&mut check, "drain_timeout", config.drain_timeout, secs(0), secs(3600));
    check(
        (1..=4096).contains(&config.partitions),
        "partitions",
        format!("{} is out of range 1..=4096", config.partitions),
    );
    check(
        (1..=1000).contains(&config.database.pool_size),
        "database.pool_size",
        format!("{} is out of range 1..=1000", config.database.pool_size),
    );
    range(&mut check, "database.connect_timeout", config.database.connect_timeout, ms(100), secs(300));
    if let Some(path) = &config.database.ca_file {
        let mut roots = rustls::RootCertStore::empty();
        if let Err(e) = crate::net::tls::add_pem_file(&mut roots, path) {
            check(false, "database.ca_file", e);
        }
    }
    // AMQP names are short strings (255 bytes); ".dlx" and ".dead" are added.
    for (key, name) in [("amqp.exchange", &config.amqp.exchange), ("amqp.queue", &config.amqp.queue)] {
        check(
            !name.is_empty() && name.len() <= 200,
            key,
            format!("must be 1 to 200 bytes long (it is {})", name.len()),
        );
    }
    if let Ok(target) = urls::AmqpTarget::parse(&config.amqp_url) {
        check(target.vhost.len() <= 255, "amqp_url", "the vhost must be at most 255 bytes".into());
    }
    check(
        (1..=1000).contains(&config.amqp.delivery_limit),
        "amqp.delivery_limit",
        format!("{} is out of range 1..=1000", config.amqp.delivery_limit),
    );
    check(config.amqp.max_queue_length >= 1, "amqp.max_queue_length", "must be at least 1".into());
    range(&mut check, "amqp.heartbeat", config.amqp.heartbeat, secs(0), secs(600));
    check(
        config.amqp.heartbeat.subsec_nanos() == 0,
        "amqp.heartbeat",
        "is negotiated in whole seconds (0 keeps the broker's default)".into(),
    );
    range(&mut check, "amqp.reconnect_max_backoff", config.amqp.reconnect_max_backoff, ms(100), secs(600));

    let s = &config.scheduler;
    if let Some(shards) = s.shards {
        check((1..=1024).contains(&shards), "scheduler.shards", format!("{shards} is out of range 1..=1024"));
    }
    check(
        !s.shard_from_hostname || s.shards.is_some(),
        "scheduler.shards",
        "must be set when scheduler.shard_from_hostname is true (the chart passes --shards)".into(),
    );
    range(&mut check, "scheduler.lease_ttl", s.lease_ttl, secs(1), secs(600));
    range(&mut check, "scheduler.renew_interval", s.renew_interval, ms(100), secs(200));
    check(
        s.renew_interval * 3 <= s.lease_ttl,
        "scheduler.renew_interval",
        format!(
            "{} must be at most a third of scheduler.lease_ttl ({}) so a lease survives a missed renewal",
            humantime::format_duration(s.renew_interval),
            humantime::format_duration(s.lease_ttl)
        ),
    );
    range(&mut check, "scheduler.reload_interval", s.reload_interval, secs(1), secs(86400));
    range(&mut check, "scheduler.tick", s.tick, ms(1), secs(1));
    range(&mut check, "scheduler.catch_up", s.catch_up, secs(0), secs(86400));

    let w = &config.worker;
    check(
        (1..=100_000).contains(&w.concurrency),
        "worker.concurrency",
        format!("{} is out of range 1..=100000", w.concurrency),
    );
    check(
        (1..=100_000).contains(&w.batch_size),
        "worker.batch_size",
        format!("{} is out of range 1..=100000", w.batch_size),
    );
    check(
        w.concurrency as u64 + w.batch_size as u64 <= u16::MAX as u64,
        "worker.concurrency",
        format!(
            "concurrency + worker.batch_size must be at most 65535 (the AMQP prefetch window), not {}",
            w.concurrency as u64 + w.batch_size as u64
        ),
    );
    range(&mut check, "worker.batch_max_delay", w.batch_max_delay, ms(1), secs(60));
    check(
        (1..=1 << 30).contains(&w.body_limit),
        "worker.body_limit",
        format!("{} is out of range 1..=1073741824", w.body_limit),
    );
    if let Err(e) = crate::net::deny::DenyList::parse(&w.deny_targets) {
        check(false, "worker.deny_targets", e);
    }
    check(
        (1..=36_500).contains(&config.results.retention_days),
        "results.retention_days",
        format!("{} is out of range 1..=36500", config.results.retention_days),
    );
    let a = &config.alerts;
    range(&mut check, "alerts.poll_interval", a.poll_interval, ms(10), secs(60));
    check(
        (1..=10_000).contains(&a.batch_size),
        "alerts.batch_size",
        format!("{} is out of range 1..=10000", a.batch_size),
    );
    check(
        (1..=1_000).contains(&a.concurrency),
        "alerts.concurrency",
        format!("{} is out of range 1..=1000", a.concurrency),
    );
    range(&mut check, "alerts.send_timeout", a.send_timeout, ms(100), secs(300));
    range(&mut check, "alerts.lease", a.lease, secs(1), secs(3600));
    check(
        a.lease >= a.send_timeout * 2,
        "alerts.lease",
        format!(
            "{} must be at least twice alerts.send_timeout ({}): a delivery still being sent must not be claimed again",
            humantime::format_duration(a.lease),
            humantime::format_duration(a.send_timeout)
        ),
    );
    check(
        (1..=100).contains(&a.max_attempts),
        "alerts.max_attempts",
        format!("{} is out of range 1..=100", a.max_attempts),
    );
    range(&mut check, "alerts.retry_initial", a.retry_initial, ms(10), secs(3600));
    range(&mut check, "alerts.retry_max", a.retry_max, ms(10), secs(86_400));
    check(a.retry_max >= a.retry_initial, "alerts.retry_max", "must be at least alerts.retry_initial".into());
    range(&mut check, "alerts.reminder_scan_interval", a.reminder_scan_interval, ms(100), secs(3600));
    problems
}

fn range(
    check: &mut impl FnMut(bool, &str, String),
    key: &str,
    value: Duration,
    min: Duration,
    max: Duration,
) {
    check(
        value >= min && value <= max,
        key,
        format!(
            "{} is out of range {}..={}",
            humantime::format_duration(value),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ),
    );
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
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

    /// The built-in defaults alone (used by tests and by `config --defaults`).
    pub fn defaults() -> Result<Config, ConfigError> {
        load(None, &FlagValues::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(text: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("sentryk8s-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        let figment = Figment::from(Toml::string(DEFAULT_CONFIG)).merge(Toml::file_exact(&path));
        extract_all(&figment, &FlagValues::default())
    }

    #[test]
    fn defaults_are_valid() {
        let figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        let config = extract_all(&figment, &FlagValues::default()).expect("defaults load");
        assert_eq!(config.scheduler.lease_ttl, Duration::from_secs(15));
        assert_eq!(config.worker.body_limit, 1 << 20);
    }

    #[test]
    fn every_problem_is_reported_with_key_and_file() {
        let err = load_toml(
            "bogus = 1\n[scheduler]\nrenew_interval = \"ten\"\nlease_ttl = 5\n[worker]\nconcurency = 3\n",
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"bogus"), "{err}");
        assert!(keys.contains(&"scheduler.renew_interval"), "{err}");
        assert!(keys.contains(&"scheduler.lease_ttl"), "{err}");
        assert!(keys.contains(&"worker.concurency"), "{err}");
        for p in &err.0 {
            assert!(p.source.starts_with("config file "), "{p}");
        }
    }

    #[test]
    fn range_problems_name_the_key() {
        let err = load_toml("[scheduler]\nlease_ttl = \"2s\"\n").unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].key, "scheduler.renew_interval");
    }

    #[test]
    fn flags_win_and_are_named() {
        let mut flags = FlagValues::default();
        flags.set("scheduler.lease_ttl", "--lease-ttl", Some("ten"));
        let figment = Figment::from(Toml::string(DEFAULT_CONFIG)).merge(flags.clone());
        let err = extract_all(&figment, &flags).unwrap_err();
        assert_eq!(err.0[0].source, "command-line flag --lease-ttl", "{err}");
    }

    #[test]
    fn kubernetes_service_links_are_not_config() {
        assert!(is_ignored_env_key("SCHEDULER_SERVICE_HOST"));
        assert!(is_ignored_env_key("port"));
        assert!(is_ignored_env_key("WORKER_PORT_9090_TCP_ADDR"));
        assert!(!is_ignored_env_key("database_url"));
        assert!(!is_ignored_env_key("scheduler__lease_ttl"));
    }
}
