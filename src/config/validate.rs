//! Range and format checks that types alone do not express: bounds, the
//! relations between keys (a lease outlives a missed renewal), and the
//! values parsed without connecting (URLs, the log filter, the CA file, the
//! deny list). Each problem is a (key, message) pair; `load.rs` adds the
//! layer it came from.

use std::time::Duration;

use super::types::Config;
use super::urls;

/// Range and format checks that types alone do not express.
/// Returns (key, message) pairs.
pub(super) fn validate(config: &Config) -> Vec<(String, String)> {
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
    check(
        (1..=64).contains(&config.amqp.queues),
        "amqp.queues",
        format!("{} is out of range 1..=64", config.amqp.queues),
    );
    range(&mut check, "amqp.heartbeat", config.amqp.heartbeat, secs(0), secs(600));
    check(
        config.amqp.heartbeat.subsec_nanos() == 0,
        "amqp.heartbeat",
        "is negotiated in whole seconds (0 keeps the broker's default)".into(),
    );
    range(&mut check, "amqp.reconnect_max_backoff", config.amqp.reconnect_max_backoff, ms(100), secs(600));

    let s = &config.scheduler;
    check(
        (1..=500).contains(&s.slots_per_message),
        "scheduler.slots_per_message",
        format!("{} is out of range 1..=500", s.slots_per_message),
    );
    range(&mut check, "scheduler.batch_linger", s.batch_linger, ms(0), secs(1));
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
    // Under a few seconds, ordinary NTP error and a slow heartbeat would halt dispatch.
    range(&mut check, "scheduler.max_clock_skew", s.max_clock_skew, secs(5), secs(86400));

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
    check(
        (1..=1 << 30).contains(&w.body_limit_max),
        "worker.body_limit_max",
        format!("{} is out of range 1..=1073741824", w.body_limit_max),
    );
    check(
        w.body_budget <= 1 << 40,
        "worker.body_budget",
        format!("{} is out of range 0..=1099511627776 (0 derives it from the memory limit)", w.body_budget),
    );
    check(
        (1..=1 << 30).contains(&w.json_max_bytes),
        "worker.json_max_bytes",
        format!("{} is out of range 1..=1073741824", w.json_max_bytes),
    );
    if let Err(e) = crate::net::deny::DenyList::parse(&w.deny_targets) {
        check(false, "worker.deny_targets", e);
    }
    check(
        (1..=36_500).contains(&config.results.retention_days),
        "results.retention_days",
        format!("{} is out of range 1..=36500", config.results.retention_days),
    );
    let h = &config.history;
    for (key, days) in [
        ("history.hourly_retention_days", h.hourly_retention_days),
        ("history.daily_retention_days", h.daily_retention_days),
        ("history.incident_retention_days", h.incident_retention_days),
    ] {
        check(days <= 36_500, key, format!("{days} is out of range 0..=36500 (0 keeps forever)"));
    }
    // Reports past the hourly rows read the daily ones: daily rows going
    // before hourly ones would leave a hole. (Hourly rows shorter-lived
    // than raw results are allowed: raw results answer those windows.)
    check(
        h.daily_retention_days == 0
            || (h.hourly_retention_days != 0 && h.daily_retention_days >= h.hourly_retention_days),
        "history.daily_retention_days",
        format!(
            "{} must be 0 (forever) or at least history.hourly_retention_days ({}, which must not be 0 then)",
            h.daily_retention_days, h.hourly_retention_days
        ),
    );
    let web = &config.web;
    check(
        (1..=100_000).contains(&web.max_connections),
        "web.max_connections",
        format!("{} is out of range 1..=100000", web.max_connections),
    );
    range(&mut check, "web.header_read_timeout", web.header_read_timeout, ms(100), secs(600));
    range(&mut check, "web.request_timeout", web.request_timeout, ms(100), secs(600));
    range(&mut check, "web.metrics_refresh", web.metrics_refresh, secs(1), secs(3600));
    check(
        (1..=1_000_000).contains(&web.rate_limit_per_second),
        "web.rate_limit_per_second",
        format!("{} is out of range 1..=1000000", web.rate_limit_per_second),
    );
    check(
        web.rate_limit_burst >= 1 && web.rate_limit_burst <= 1_000_000,
        "web.rate_limit_burst",
        format!("{} is out of range 1..=1000000", web.rate_limit_burst),
    );
    check(
        web.public_url.trim().is_empty()
            || url::Url::parse(web.public_url.trim()).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.query().is_none()
            }),
        "web.public_url",
        format!(
            "\"{}\" is not an http(s) URL without a query (e.g. https://uptime.example.com)",
            web.public_url
        ),
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
    check(
        (1..=36_500).contains(&a.retention_days),
        "alerts.retention_days",
        format!("{} is out of range 1..=36500", a.retention_days),
    );
    for pattern in &config.checks.allow_env {
        if let Some(why) = env_pattern_problem(pattern) {
            check(false, "checks.allow_env", format!("`{pattern}`: {why}"));
        }
    }
    check(
        (1024..=1 << 30).contains(&config.checks.max_file_bytes),
        "checks.max_file_bytes",
        format!("{} is out of range 1024..=1073741824", config.checks.max_file_bytes),
    );
    problems
}

/// The syntax of an allow-list pattern: a variable name, with `*` and `?`
/// as wildcards. (Whether a name is reserved is the checks file's rule,
/// src/checks_file/env.rs, a layer above this one; it is applied when the
/// list is used.)
fn env_pattern_problem(pattern: &str) -> Option<String> {
    if pattern.is_empty() {
        return Some("empty: write a variable name or a glob like `CHECK_*`".into());
    }
    pattern
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '*' | '?')))
        .map(|c| format!("`{c}` is not allowed: use letters, digits, `_`, and the wildcards `*` and `?`"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_each_bound_names_its_key() {
        let mut config = Config::defaults().expect("defaults load");
        assert!(validate(&config).is_empty());
        config.partitions = 0;
        config.alerts.lease = config.alerts.send_timeout;
        let keys: Vec<String> = validate(&config).into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["partitions", "alerts.lease"]);
    }

    #[test]
    fn durations_out_of_range_show_both_bounds() {
        let mut config = Config::defaults().expect("defaults load");
        config.scheduler.tick = secs(2);
        let problems = validate(&config);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "scheduler.tick");
        assert_eq!(problems[0].1, "2s is out of range 1ms..=1s");
    }

    #[test]
    fn daily_rollups_may_not_go_before_hourly_ones() {
        let mut config = Config::defaults().expect("defaults load");
        config.history.daily_retention_days = 365;
        assert!(validate(&config).is_empty());
        config.history.daily_retention_days = 30;
        config.history.incident_retention_days = 40_000;
        let keys: Vec<String> = validate(&config).into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["history.incident_retention_days", "history.daily_retention_days"]);
        config.history.incident_retention_days = 0;
        config.history.hourly_retention_days = 0;
        config.history.daily_retention_days = 365;
        let keys: Vec<String> = validate(&config).into_iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["history.daily_retention_days"], "hourly forever, daily not");
    }
}
