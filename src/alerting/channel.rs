//! A notification channel as stored in `alert_channels.spec`: the
//! normalised form the checks file's `alerts:` section is validated into,
//! and what the sender reads. Secrets (webhook URLs, signing secrets,
//! routing keys, SMTP passwords) are in here after `${VAR}` expansion, so a
//! spec is never printed: plans name changed fields only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// PagerDuty's Events API v2 endpoint, used when a channel sets no `url`.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSpec {
    #[serde(flatten)]
    pub kind: ChannelKind,
    /// Whether the recovery ("resolved") is sent too.
    #[serde(default = "default_true")]
    pub send_on_resolved: bool,
    /// Remind while the check stays down, every this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remind_every_ms: Option<u64>,
    /// Attempts before a delivery is marked failed; `None` uses
    /// `alerts.max_attempts` of the worker's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

/// The kinds of channel, tagged by `type` as in the checks file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelKind {
    /// A JSON POST of the documented body, optionally HMAC-signed.
    Webhook {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
    /// A Slack incoming webhook.
    Slack { url: String },
    /// A Discord webhook.
    Discord { url: String },
    /// A Microsoft Teams webhook (Workflows or a legacy connector).
    Teams { url: String },
    /// PagerDuty Events API v2.
    Pagerduty { url: String, routing_key: String, severity: String },
    /// Mail over SMTP.
    Email(EmailSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailSpec {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: SmtpTls,
    /// Verify the server's certificate (a private relay may need false).
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

/// How an SMTP session is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// No encryption at all: only for a relay on the same host or in tests.
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        }
    }

    pub fn parse(text: &str) -> Option<SmtpTls> {
        match text {
            "starttls" => Some(SmtpTls::Starttls),
            "implicit" => Some(SmtpTls::Implicit),
            "none" => Some(SmtpTls::None),
            _ => None,
        }
    }
}

impl ChannelKind {
    /// The `type` as written in the checks file (also the metric label).
    pub fn name(&self) -> &'static str {
        match self {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Discord { .. } => "discord",
            ChannelKind::Teams { .. } => "teams",
            ChannelKind::Pagerduty { .. } => "pagerduty",
            ChannelKind::Email(_) => "email",
        }
    }
}

/// Every `type` a channel may have.
pub const KINDS: &[&str] = &["webhook", "slack", "discord", "teams", "pagerduty", "email"];

/// PagerDuty's severities.
pub const SEVERITIES: &[&str] = &["critical", "error", "warning", "info"];

fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let spec = ChannelSpec {
            kind: ChannelKind::Email(EmailSpec {
                smtp_host: "smtp.example.com".into(),
                smtp_port: 587,
                tls: SmtpTls::Starttls,
                tls_verify: true,
                username: None,
                password: Some("pw".into()),
                from: "a@example.com".into(),
                to: vec!["b@example.com".into()],
            }),
            send_on_resolved: false,
            remind_every_ms: Some(3_600_000),
            max_attempts: None,
        };
        let value = serde_json::to_value(&spec).unwrap();
        assert_eq!(value["type"], "email");
        assert_eq!(value["tls"], "starttls");
        assert_eq!(serde_json::from_value::<ChannelSpec>(value).unwrap(), spec);
        let hook: ChannelSpec =
            serde_json::from_value(serde_json::json!({"type": "webhook", "url": "http://x/"})).unwrap();
        assert!(hook.send_on_resolved);
        assert_eq!(hook.kind.name(), "webhook");
    }
}
