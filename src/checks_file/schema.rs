//! The vocabulary of a checks file: which fields exist where, and what to
//! suggest for a field that does not ("did you mean `timeout`?").
//!
//! Kept apart from validation so that the field table of docs/checks-file.md, the unknown-
//! field messages and the validator agree on one list.

/// Keys of a document (one YAML document of a checks file).
pub const TOP_LEVEL: &[&str] = &["defaults", "checks", "alerts", "maintenance", "status_pages"];

/// Keys of a status page (`status_pages[i]`).
pub const PAGE: &[&str] =
    &["slug", "title", "description", "logo_url", "public", "show_response_times", "embeddable", "groups"];

/// Keys of a status page's group.
pub const PAGE_GROUP: &[&str] = &["name", "checks", "labels"];

/// Keys of a notification channel (`alerts.<name>`); which apply depends
/// on its `type` (see [`channel_fields`]).
pub const CHANNEL: &[&str] = &[
    "type",
    "url",
    "secret",
    "headers",
    "routing_key",
    "severity",
    "smtp_host",
    "smtp_port",
    "tls",
    "tls_verify",
    "username",
    "password",
    "from",
    "to",
    "send_on_resolved",
    "remind_every",
    "max_attempts",
];

/// Fields every channel accepts.
pub const CHANNEL_COMMON: &[&str] = &["type", "send_on_resolved", "remind_every", "max_attempts"];

/// The fields specific to a channel `type`.
pub fn channel_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "webhook" => &["url", "secret", "headers"],
        "slack" | "discord" | "teams" => &["url"],
        "pagerduty" => &["url", "routing_key", "severity"],
        "email" => &["smtp_host", "smtp_port", "tls", "tls_verify", "username", "password", "from", "to"],
        _ => &[],
    }
}

/// Keys of a maintenance window (`maintenance[i]`).
pub const WINDOW: &[&str] =
    &["name", "description", "time_zone", "start", "end", "duration", "every", "at", "checks", "labels"];

/// Keys of one check. `defaults` accepts the same keys except `name`.
pub const CHECK: &[&str] = &[
    "name",
    "description",
    "url",
    "enabled",
    "interval",
    "timeout",
    "method",
    "headers",
    "body",
    "follow_redirects",
    "tls_verify",
    "body_limit",
    "expect",
    "failure_threshold",
    "success_threshold",
    "labels",
    "alerts",
];

/// Keys of `expect`.
pub const EXPECT: &[&str] = &[
    "status",
    "max_response_time",
    "body_contains",
    "body_not_contains",
    "body_regex",
    "json",
    "cert_days_left",
];

/// Names people bring from Gatus, Uptime Kuma, Kubernetes probes or habit,
/// and what they mean here.
const HINTS: &[(&str, &str)] = &[
    ("conditions", "use `expect` (status, body_contains, json, …)"),
    ("keyword", "use `expect.body_contains`"),
    ("accepted_status_codes", "use `expect.status`"),
    ("accepted_statuscodes", "use `expect.status`"),
    ("max_redirects", "use `follow_redirects: <number>`"),
    ("maxredirects", "use `follow_redirects: <number>`"),
    ("ignore_tls", "use `tls_verify: false`"),
    ("ignoretls", "use `tls_verify: false`"),
    ("insecure", "use `tls_verify: false`"),
    ("insecure_skip_verify", "use `tls_verify: false`"),
    ("retries", "use `failure_threshold` (consecutive failures before DOWN)"),
    ("maxretries", "use `failure_threshold` (consecutive failures before DOWN)"),
    ("tags", "use `labels`"),
    ("notifications", "use `alerts`"),
    ("paused", "use `enabled: false`"),
    ("active", "use `enabled`"),
    ("disabled", "use `enabled: false`"),
    ("period", "use `interval`"),
    ("period_seconds", "use `interval` with a unit, e.g. `interval: 30s`"),
    ("timeout_seconds", "use `timeout` with a unit, e.g. `timeout: 5s`"),
    ("endpoints", "use `checks`"),
    ("monitors", "use `checks`"),
];

/// The message for an unknown key `key` where `known` are allowed.
/// `section` names where `known` applies ("a check", "expect").
pub fn unknown_field(key: &str, known: &[&str], section: &str) -> String {
    let lower = key.to_ascii_lowercase();
    if section == "defaults" && lower == "name" {
        return "`name` cannot have a default: every check needs its own".to_string();
    }
    if section != "expect" && EXPECT.contains(&lower.as_str()) {
        return format!("unknown field `{key}`: it belongs under `expect:` (expect.{lower})");
    }
    if let Some((_, hint)) = HINTS.iter().find(|(name, _)| *name == lower) {
        return format!("unknown field `{key}`: {hint}");
    }
    match closest(key, known) {
        Some(best) => format!("unknown field `{key}`, did you mean `{best}`?"),
        None => format!("unknown field `{key}` in {section} (known fields: {})", known.join(", ")),
    }
}

/// The known name closest to `key`, when it is close enough to be a typo.
pub fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase().replace(['-', ' '], "_");
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, k), *k))
        .filter(|(distance, k)| {
            *distance <= (k.len() / 3).max(2) || lower.replace('_', "") == k.replace('_', "")
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            unknown_field("timout", CHECK, "a check"),
            "unknown field `timout`, did you mean `timeout`?"
        );
        assert_eq!(closest("Interval", CHECK), Some("interval"));
        assert_eq!(closest("followRedirects", CHECK), Some("follow_redirects"));
        assert_eq!(closest("follow-redirects", CHECK), Some("follow_redirects"));
        assert_eq!(closest("bodycontains", EXPECT), Some("body_contains"));
        assert_eq!(closest("zzz", CHECK), None);
        assert_eq!(
            unknown_field("status", CHECK, "a check"),
            "unknown field `status`: it belongs under `expect:` (expect.status)"
        );
        assert!(unknown_field("conditions", CHECK, "a check").contains("use `expect`"));
        assert!(unknown_field("name", &CHECK[1..], "defaults").starts_with("`name` cannot have a default"));
        assert!(unknown_field("zzz", EXPECT, "expect").contains("known fields: status, "));
    }
}
