//! Sending one delivery: an HTTPS POST (webhook, Slack, Discord, Teams,
//! PagerDuty) or an SMTP session (email).
//!
//! HTTP requests go through the worker's own [`HttpChecker`] (fresh
//! connection, rustls, hard deadline, bounded response read): a receiver
//! that never answers costs `alerts.send_timeout`, not a stuck task, and a
//! 2xx status is the only success. Mail goes through lettre over rustls
//! (the runtime image has no OpenSSL); STARTTLS is required unless the
//! channel says otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;

use super::channel::{ChannelKind, ChannelSpec, EmailSpec, SmtpTls};
use super::render::{self, Mail, Rendered};
use super::signature;
use crate::model::{CheckSpec, Expect, StatusMatch};
use crate::worker::{CheckerOptions, HttpChecker};

/// Response bytes read from a receiver at most (its body is only shown in
/// an error message).
const RESPONSE_LIMIT: u64 = 64 * 1024;

/// Header carrying a delivery's idempotency key (the same on every attempt).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Header naming the event (down, up, reminder).
pub const EVENT_HEADER: &str = "X-SentryK8s-Event";

pub struct Sender {
    http: HttpChecker,
    timeout: Duration,
    /// Also applied to SMTP hosts, which lettre would otherwise connect to directly.
    deny: crate::net::deny::DenyList,
}

impl Sender {
    /// `deny` is the workers' target deny-list: a channel URL is a target a
    /// tenant chooses too, and must not reach the metadata service either.
    pub fn new(
        timeout: Duration,
        user_agent: &str,
        deny: crate::net::deny::DenyList,
    ) -> Result<Sender, crate::net::tls::TlsSetupError> {
        let http = HttpChecker::new(CheckerOptions {
            body_limit: RESPONSE_LIMIT,
            user_agent: user_agent.to_string(),
            deny: deny.clone(),
        })?;
        Ok(Sender { http, timeout, deny })
    }

    /// Sends `doc` to `channel`; `Err` carries why, for `last_error`.
    pub async fn send(&self, channel: &ChannelSpec, doc: &Value, key: &str) -> Result<(), String> {
        match (&channel.kind, render::render(&channel.kind, doc)) {
            (ChannelKind::Email(spec), Rendered::Mail(mail)) => self.mail(spec, mail).await,
            (kind, Rendered::Json(body)) => self.post(kind, &body, doc, key).await,
            (_, Rendered::Mail(_)) => Err("internal error: a mail rendered for an HTTP channel".into()),
        }
    }

    async fn post(&self, kind: &ChannelKind, body: &Value, doc: &Value, key: &str) -> Result<(), String> {
        let text = body.to_string();
        let mut headers = BTreeMap::new();
        let url = match kind {
            ChannelKind::Webhook { url, secret, headers: extra } => {
                headers.extend(extra.clone());
                if let Some(secret) = secret {
                    let now = chrono::Utc::now().timestamp();
                    headers
                        .insert(signature::HEADER.to_string(), signature::sign(secret, now, text.as_bytes()));
                }
                url
            }
            ChannelKind::Slack { url }
            | ChannelKind::Discord { url }
            | ChannelKind::Teams { url }
            | ChannelKind::Pagerduty { url, .. } => url,
            ChannelKind::Email(_) => return Err("internal error: email is not sent over HTTP".into()),
        };
        headers.insert("Content-Type".into(), "application/json".into());
        headers.insert(IDEMPOTENCY_HEADER.into(), key.to_string());
        headers.insert(EVENT_HEADER.into(), doc["event"].as_str().unwrap_or("down").to_string());
        let spec = CheckSpec {
            url: url.clone(),
            method: "POST".into(),
            headers,
            body: Some(text),
            timeout_ms: self.timeout.as_millis() as u64,
            max_redirects: 0,
            tls_verify: true,
            body_limit: Some(RESPONSE_LIMIT),
            expect: Expect { status: vec![StatusMatch::Class(2)], ..Expect::default() },
            failure_threshold: 1,
            success_threshold: 1,
            labels: BTreeMap::new(),
            alerts: Vec::new(),
            description: None,
        };
        let outcome = self.http.run(&spec).await;
        if outcome.success {
            return Ok(());
        }
        let why = outcome.error_message.unwrap_or_else(|| "the request failed".into());
        // The URL may hold a token (Slack, Discord): name the host only.
        Err(match url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)) {
            Some(host) => format!("{host}: {why}"),
            None => why,
        })
    }

    async fn mail(&self, spec: &EmailSpec, mail: Mail) -> Result<(), String> {
        let message = build_message(spec, mail)?;
        let server = self.smtp_address(spec).await?;
        let transport = transport(spec, &server, self.timeout)?;
        match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("{}:{}: {}", spec.smtp_host, spec.smtp_port, error_text(&e))),
            Err(_) => Err(format!(
                "{}:{}: no answer within {}",
                spec.smtp_host,
                spec.smtp_port,
                humantime::format_duration(self.timeout)
            )),
        }
    }
}

impl Sender {
    /// The address to reach the SMTP server at: resolved here, not by
    /// lettre, so the deny-list judges the address actually connected to
    /// (the host name still serves TLS verification).
    async fn smtp_address(&self, spec: &EmailSpec) -> Result<String, String> {
        let host = spec.smtp_host.trim_start_matches('[').trim_end_matches(']');
        let resolved = tokio::time::timeout(self.timeout, tokio::net::lookup_host((host, spec.smtp_port)))
            .await
            .map_err(|_| {
                format!("{host}: no DNS answer within {}", humantime::format_duration(self.timeout))
            })?
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        let allowed = self.deny.filter(resolved.collect()).map_err(|(ip, range)| {
            format!("blocked: {ip} is in {range}, on the deny-list (worker.deny_targets); not connecting")
        })?;
        allowed.first().map(|a| a.ip().to_string()).ok_or_else(|| format!("{host} has no address"))
    }
}

/// lettre's error with its causes on one line.
fn error_text(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn build_message(spec: &EmailSpec, mail: Mail) -> Result<Message, String> {
    let from: Mailbox = spec.from.parse().map_err(|e| format!("invalid from address: {e}"))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject)
        .message_id(Some(format!("<{}>", mail.message_id)))
        .header(ContentType::TEXT_PLAIN);
    for to in &spec.to {
        builder = builder.to(to.parse::<Mailbox>().map_err(|e| format!("invalid address {to}: {e}"))?);
    }
    if let Some(first) = mail.in_reply_to {
        builder = builder.in_reply_to(format!("<{first}>")).references(format!("<{first}>"));
    }
    builder.body(mail.text).map_err(|e| format!("cannot build the mail: {e}"))
}

/// `server` is the address to connect to; TLS verifies `spec.smtp_host`.
fn transport(
    spec: &EmailSpec,
    server: &str,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server)
        .port(spec.smtp_port)
        .timeout(Some(timeout));
    let parameters = || {
        TlsParameters::builder(spec.smtp_host.clone())
            .dangerous_accept_invalid_certs(!spec.tls_verify)
            .dangerous_accept_invalid_hostnames(!spec.tls_verify)
            .build_rustls()
            .map_err(|e| format!("TLS setup for {}: {e}", spec.smtp_host))
    };
    builder = builder.tls(match spec.tls {
        SmtpTls::Starttls => Tls::Required(parameters()?),
        SmtpTls::Implicit => Tls::Wrapper(parameters()?),
        SmtpTls::None => Tls::None,
    });
    if let (Some(user), Some(password)) = (&spec.username, &spec.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}
