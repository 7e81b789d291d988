//! Sending one delivery: an HTTPS POST (webhook, Slack, Discord, Teams,
//! PagerDuty) or an SMTP session (email).
//!
//! HTTP requests are one `net::http` exchange, the same connection code the
//! checks use (fresh connection, deny list on the resolved address, rustls,
//! hard deadline, bounded response read): a receiver that never answers
//! costs `alerts.send_timeout`, not a stuck task, and a 2xx status is the
//! only success. Mail goes through lettre over rustls (the runtime image
//! has no OpenSSL); STARTTLS is required unless the channel says otherwise.
//! Either way one attempt, from name resolution to the end of the session,
//! ends within `alerts.send_timeout`.

use std::collections::BTreeMap;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::Method;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::channel::{ChannelKind, ChannelSpec, EmailSpec, SmtpTls};
use super::render::{self, Mail, Rendered};
use super::signature;
use crate::model::bounds::MAX_TIMEOUT;
use crate::net::deny::{self, DenyList};
use crate::net::http::{self, Client, Outgoing};
use crate::net::resolve;
use crate::net::tls::TlsSetupError;

/// Response bytes read from a receiver at most (its body is only shown in
/// an error message).
const RESPONSE_LIMIT: u64 = 64 * 1024;
/// Longest reason kept for `last_error` (before the host is put in front).
const MAX_ERROR_CHARS: usize = 240;

/// Header carrying a delivery's idempotency key (the same on every attempt).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Header naming the event (down, up, reminder).
pub const EVENT_HEADER: &str = "X-SentryK8s-Event";

pub struct Sender {
    http: Client,
    /// User-Agent of webhook requests.
    user_agent: HeaderValue,
    timeout: Duration,
    /// Also applied to SMTP hosts, which lettre would otherwise connect to directly.
    deny: DenyList,
}

impl Sender {
    /// `deny` is the workers' target deny-list: a channel URL is a target a
    /// tenant chooses too, and must not reach the metadata service either.
    pub fn new(timeout: Duration, user_agent: &str, deny: DenyList) -> Result<Sender, TlsSetupError> {
        let user_agent =
            HeaderValue::from_str(user_agent).unwrap_or_else(|_| HeaderValue::from_static("sentryk8s"));
        Ok(Sender { http: Client::new(deny.clone())?, user_agent, timeout, deny })
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
        let Err(why) = self.exchange(url, &headers, text).await else { return Ok(()) };
        // The URL may hold a token (Slack, Discord): name the host only.
        Err(match Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)) {
            Some(host) => format!("{host}: {why}"),
            None => why,
        })
    }

    /// One POST, no redirect followed, under `alerts.send_timeout`; a 2xx
    /// status with a body within the limit is the only success.
    async fn exchange(
        &self,
        url: &str,
        headers: &BTreeMap<String, String>,
        body: String,
    ) -> Result<(), String> {
        let short = |message: String| http::excerpt(&message, MAX_ERROR_CHARS);
        let timeout = Duration::from_millis(self.timeout.as_millis() as u64).min(MAX_TIMEOUT);
        let url = Url::parse(url).map_err(|e| short(format!("invalid URL: {e}")))?;
        let headers = http::request_headers(headers, &self.user_agent, &url).map_err(|f| short(f.message))?;
        let body = Bytes::from(body);
        let out = Outgoing {
            method: &Method::POST,
            headers: &headers,
            body: &body,
            keep_body: false,
            limit: RESPONSE_LIMIT,
            tls_verify: true,
        };
        let reply = self.http.send(&url, &out, timeout).await.map_err(|f| short(f.message))?;
        let mut failed = Vec::new();
        if reply.status / 100 != 2 {
            failed.push(format!("status {} not in [2xx]", reply.status));
        }
        if reply.body_exceeded {
            failed.push(format!("body larger than the {RESPONSE_LIMIT}-byte limit"));
        }
        match failed.is_empty() {
            true => Ok(()),
            false => Err(short(failed.join("; "))),
        }
    }

    /// One SMTP attempt: resolving the host, connecting, STARTTLS, AUTH,
    /// the mail and QUIT all share one deadline, `alerts.send_timeout` from
    /// now. Each phase bounded on its own would let their sum outlast
    /// `alerts.lease` (twice the timeout), and another worker would claim
    /// the delivery while this attempt still runs.
    async fn mail(&self, spec: &EmailSpec, mail: Mail) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let place = format!("{}:{}", spec.smtp_host, spec.smtp_port);
        let message = build_message(spec, mail)?;
        let session = async {
            let server = self.smtp_address(spec).await?;
            // lettre's own timeout (connect, each command) gets what is left,
            // so it never reaches past the deadline either.
            let left = deadline.saturating_duration_since(Instant::now());
            let transport = transport(spec, &server, left)?;
            transport.send(message).await.map(|_| ()).map_err(|e| error_text(&e))
        };
        match tokio::time::timeout_at(deadline, session).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(format!("{place}: {why}")),
            Err(_) => Err(format!(
                "{place}: timed out: resolving, connecting and the SMTP session took longer than alerts.send_timeout ({}) in total",
                humantime::format_duration(self.timeout)
            )),
        }
    }
}

impl Sender {
    /// The address to reach the SMTP server at: resolved here, not by
    /// lettre, so the deny-list judges the address actually connected to
    /// (the host name still serves TLS verification). The caller bounds it
    /// by the attempt's deadline.
    async fn smtp_address(&self, spec: &EmailSpec) -> Result<String, String> {
        let host = spec.smtp_host.trim_start_matches('[').trim_end_matches(']');
        let resolved = resolve::lookup(host, spec.smtp_port).await.map_err(|e| e.to_string())?;
        let allowed = self.deny.filter(resolved).map_err(|(ip, range)| deny::blocked_message(ip, &range))?;
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
