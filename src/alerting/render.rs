//! What each kind of channel receives: pure functions from the alert
//! document to a request body (or a mail), so every payload is unit-tested
//! and docs/alerting.md documents exactly these.
//!
//! The alert document is built once, when a delivery row is created (from
//! the outbox row the worker wrote on the state flip), and stored with it:
//! every attempt of a delivery sends the same body.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::channel::ChannelKind;

/// Version of the generic webhook body (bumped only for incompatible changes).
pub const DOCUMENT_VERSION: u32 = 1;

/// What happened to the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The check went down: a new incident.
    Down,
    /// The check recovered: the incident is resolved.
    Up,
    /// The check is still down (a reminder).
    Reminder,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Down => "down",
            Event::Up => "up",
            Event::Reminder => "reminder",
        }
    }

    pub fn parse(text: &str) -> Option<Event> {
        match text {
            "down" => Some(Event::Down),
            "up" => Some(Event::Up),
            "reminder" => Some(Event::Reminder),
            _ => None,
        }
    }
}

/// The key shared by an incident's trigger, reminders and resolve: the
/// PagerDuty `dedup_key`, and what `incident_key` carries in webhooks.
pub fn incident_key(check_id: i64, incident_id: i64) -> String {
    format!("sentryk8s-{check_id}-{incident_id}")
}

/// The idempotency key of one delivery: the same on every attempt.
pub fn idempotency_key(check_id: i64, incident_id: i64, event: &str, channel: &str) -> String {
    format!("{}-{event}-{channel}", incident_key(check_id, incident_id))
}

/// The alert document (the generic webhook's body) from an outbox payload
/// (written by the worker: `worker/outbox.rs`). `reminder` numbers reminders from 1;
/// `now` is when a reminder is created (its `down_for_seconds`).
pub fn document(
    event: Event,
    outbox: &Value,
    channel: &str,
    idempotency_key: &str,
    reminder: Option<u32>,
    now: DateTime<Utc>,
) -> Value {
    let check_id = outbox["check_id"].as_i64().unwrap_or(0);
    let incident_id = outbox["incident_id"].as_i64().unwrap_or(0);
    let mut doc = json!({
        "version": DOCUMENT_VERSION,
        "event": event.as_str(),
        "check": outbox["check"],
        "check_id": check_id,
        "state": if event == Event::Up { "up" } else { "down" },
        "since": outbox["since"],
        "last_error": outbox["last_error"],
        "error_class": outbox["error_class"],
        "status_code": outbox["status_code"],
        "duration_ms": outbox["duration_ms"],
        "host": outbox["host"],
        "labels": if outbox["labels"].is_object() { outbox["labels"].clone() } else { json!({}) },
        "incident_id": incident_id,
        "incident_key": incident_key(check_id, incident_id),
        "idempotency_key": idempotency_key,
        "channel": channel,
        "slot": outbox["slot"],
    });
    match event {
        Event::Up => doc["down_for_seconds"] = outbox["down_for_seconds"].clone(),
        Event::Reminder => {
            let since = outbox["since"].as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok());
            let down_for = since.map(|s| (now - s.with_timezone(&Utc)).num_milliseconds() as f64 / 1000.0);
            doc["down_for_seconds"] = down_for.map_or(Value::Null, Value::from);
            doc["reminder"] = reminder.unwrap_or(1).into();
        }
        Event::Down => {}
    }
    doc
}

/// What is sent for one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// A JSON POST.
    Json(Value),
    /// A plain-text mail.
    Mail(Mail),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    /// `Message-ID` (without angle brackets): the delivery's idempotency
    /// key, so a mail sent twice after a crash is recognisably the same.
    pub message_id: String,
    /// The incident's first mail, for threading resolves and reminders.
    pub in_reply_to: Option<String>,
}

fn s<'a>(doc: &'a Value, key: &str) -> &'a str {
    doc[key].as_str().unwrap_or("")
}

fn event_of(doc: &Value) -> Event {
    Event::parse(s(doc, "event")).unwrap_or(Event::Down)
}

/// "1h2m", "3m5s", "42s" from seconds.
pub fn human_duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (d, h, m, sec) = (total / 86_400, (total % 86_400) / 3600, (total % 3600) / 60, total % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// "DOWN: api", "RESOLVED: api", "STILL DOWN: api".
pub fn title(doc: &Value) -> String {
    let verb = match event_of(doc) {
        Event::Down => "DOWN",
        Event::Up => "RESOLVED",
        Event::Reminder => "STILL DOWN",
    };
    format!("{verb}: {}", s(doc, "check"))
}

/// One sentence for chat messages.
pub fn summary(doc: &Value) -> String {
    let check = s(doc, "check");
    let error = doc["last_error"].as_str().filter(|e| !e.is_empty());
    let down_for = doc["down_for_seconds"].as_f64().map(human_duration);
    match event_of(doc) {
        Event::Down => match error {
            Some(e) => format!("{check} is DOWN: {e}"),
            None => format!("{check} is DOWN"),
        },
        Event::Up => match down_for {
            Some(d) => format!("{check} is UP again after {d} down"),
            None => format!("{check} is UP again"),
        },
        Event::Reminder => {
            let d = down_for.map(|d| format!(" (for {d})")).unwrap_or_default();
            match error {
                Some(e) => format!("{check} is still DOWN{d}: {e}"),
                None => format!("{check} is still DOWN{d}"),
            }
        }
    }
}

/// `name: value` lines shown by chats and mails, in a fixed order.
pub fn facts(doc: &Value) -> Vec<(&'static str, String)> {
    let mut out = vec![("Check", s(doc, "check").to_string()), ("State", s(doc, "state").to_string())];
    out.push(("Since", s(doc, "since").to_string()));
    if let Some(d) = doc["down_for_seconds"].as_f64() {
        out.push(("Down for", human_duration(d)));
    }
    if let Some(e) = doc["last_error"].as_str().filter(|e| !e.is_empty()) {
        out.push(("Last error", e.to_string()));
    }
    if let Some(code) = doc["status_code"].as_i64() {
        out.push(("Status code", code.to_string()));
    }
    if let Some(ms) = doc["duration_ms"].as_f64() {
        out.push(("Duration", format!("{ms:.0} ms (last check)")));
    }
    if let Some(host) = doc["host"].as_str() {
        out.push(("Host", host.to_string()));
    }
    if let Some(labels) = doc["labels"].as_object().filter(|l| !l.is_empty()) {
        let text: Vec<String> =
            labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
        out.push(("Labels", text.join(", ")));
    }
    out.push(("Incident", s(doc, "incident_key").to_string()));
    out
}

fn color(doc: &Value) -> (&'static str, u32) {
    match event_of(doc) {
        Event::Up => ("#2EB67D", 0x2EB67D),
        Event::Down | Event::Reminder => ("#E01E5A", 0xE01E5A),
    }
}

fn emoji(doc: &Value) -> &'static str {
    match event_of(doc) {
        Event::Down => "🔴",
        Event::Up => "✅",
        Event::Reminder => "🔁",
    }
}

/// Cuts `text` to `max` characters (chat services refuse longer fields).
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max - 1).collect::<String>())
    }
}

/// The body (or mail) a channel of `kind` receives for `doc`.
pub fn render(kind: &ChannelKind, doc: &Value) -> Rendered {
    match kind {
        ChannelKind::Webhook { .. } => Rendered::Json(doc.clone()),
        ChannelKind::Slack { .. } => {
            let facts: Vec<String> = facts(doc).iter().map(|(k, v)| format!("*{k}:* {v}")).collect();
            Rendered::Json(json!({
                "text": cut(&format!("{} {}", emoji(doc), summary(doc)), 3000),
                "attachments": [{
                    "color": color(doc).0,
                    "title": title(doc),
                    "text": cut(&facts.join("\n"), 3000),
                    "fallback": cut(&summary(doc), 300),
                }],
            }))
        }
        ChannelKind::Discord { .. } => Rendered::Json(json!({
            "username": "SentryK8s",
            "content": cut(&format!("{} {}", emoji(doc), summary(doc)), 2000),
            "embeds": [{
                "title": cut(&title(doc), 256),
                "color": color(doc).1,
                "fields": facts(doc).iter().map(|(k, v)| json!({"name": k, "value": cut(v, 1024), "inline": false})).collect::<Vec<_>>(),
            }],
        })),
        ChannelKind::Teams { .. } => Rendered::Json(json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true,
                         "color": if event_of(doc) == Event::Up { "Good" } else { "Attention" },
                         "text": title(doc)},
                        {"type": "TextBlock", "wrap": true, "text": summary(doc)},
                        {"type": "FactSet", "facts": facts(doc).iter().map(|(k, v)| json!({"title": k, "value": v})).collect::<Vec<_>>()},
                    ],
                },
            }],
        })),
        ChannelKind::Pagerduty { routing_key, severity, .. } => {
            let dedup_key = s(doc, "incident_key");
            if event_of(doc) == Event::Up {
                Rendered::Json(json!({
                    "routing_key": routing_key,
                    "event_action": "resolve",
                    "dedup_key": dedup_key,
                }))
            } else {
                let source = doc["host"].as_str().unwrap_or_else(|| s(doc, "check"));
                Rendered::Json(json!({
                    "routing_key": routing_key,
                    "event_action": "trigger",
                    "dedup_key": dedup_key,
                    "client": "SentryK8s",
                    "payload": {
                        "summary": cut(&summary(doc), 1024),
                        "source": source,
                        "severity": severity,
                        "timestamp": doc["since"],
                        "component": doc["check"],
                        "class": doc["error_class"],
                        "custom_details": doc,
                    },
                }))
            }
        }
        ChannelKind::Email(_) => {
            let mut text = format!("{}\n\n", summary(doc));
            let width = facts(doc).iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
            for (k, v) in facts(doc) {
                text.push_str(&format!("{:<width$} {v}\n", format!("{k}:")));
            }
            text.push_str("\n-- \nSentryK8s\n");
            let first = format!("{}-down-{}@sentryk8s", s(doc, "incident_key"), s(doc, "channel"));
            Rendered::Mail(Mail {
                subject: format!("[SentryK8s] {}", title(doc)),
                text,
                message_id: format!("{}@sentryk8s", s(doc, "idempotency_key")),
                in_reply_to: (event_of(doc) != Event::Down).then_some(first),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::channel::{EmailSpec, SmtpTls};

    fn outbox(state: &str) -> Value {
        json!({
            "check": "api", "check_id": 12, "state": state, "since": "2024-05-01T12:00:00.000Z",
            "incident_id": 7, "slot": "2024-05-01T12:00:00.000Z", "host": "shop.example",
            "status_code": 500, "duration_ms": 12.4, "error_class": "assertion",
            "last_error": if state == "down" { json!("HTTP 500: expected status 200-399") } else { Value::Null },
            "labels": {"team": "web"}, "alerts": ["ops"],
            "down_for_seconds": if state == "up" { json!(95.0) } else { Value::Null },
        })
    }

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn doc(event: Event) -> Value {
        let state = if event == Event::Up { "up" } else { "down" };
        let key = idempotency_key(12, 7, event.as_str(), "ops");
        document(event, &outbox(state), "ops", &key, Some(2), t("2024-05-01T13:02:00Z"))
    }

    #[test]
    fn webhook_body_is_the_document() {
        let d = doc(Event::Down);
        let Rendered::Json(body) =
            render(&ChannelKind::Webhook { url: "x".into(), secret: None, headers: Default::default() }, &d)
        else {
            panic!()
        };
        assert_eq!(
            body,
            json!({
                "version": 1, "event": "down", "check": "api", "check_id": 12, "state": "down",
                "since": "2024-05-01T12:00:00.000Z", "last_error": "HTTP 500: expected status 200-399",
                "error_class": "assertion", "status_code": 500, "duration_ms": 12.4, "host": "shop.example",
                "labels": {"team": "web"}, "incident_id": 7, "incident_key": "sentryk8s-12-7",
                "idempotency_key": "sentryk8s-12-7-down-ops", "channel": "ops", "slot": "2024-05-01T12:00:00.000Z",
            })
        );
        let up = doc(Event::Up);
        assert_eq!((up["state"].as_str(), up["down_for_seconds"].as_f64()), (Some("up"), Some(95.0)));
        let r = doc(Event::Reminder);
        assert_eq!((r["event"].as_str(), r["state"].as_str()), (Some("reminder"), Some("down")));
        assert_eq!((r["down_for_seconds"].as_f64(), r["reminder"].as_u64()), (Some(3720.0), Some(2)));
    }

    #[test]
    fn pagerduty_trigger_and_resolve_share_the_dedup_key() {
        let pd = ChannelKind::Pagerduty {
            url: "x".into(),
            routing_key: "R0UT1NG".into(),
            severity: "critical".into(),
        };
        let Rendered::Json(trigger) = render(&pd, &doc(Event::Down)) else { panic!() };
        let Rendered::Json(resolve) = render(&pd, &doc(Event::Up)) else { panic!() };
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["payload"]["summary"], "api is DOWN: HTTP 500: expected status 200-399");
        assert_eq!(trigger["payload"]["source"], "shop.example");
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(
            resolve,
            json!({"routing_key": "R0UT1NG", "event_action": "resolve", "dedup_key": "sentryk8s-12-7"})
        );
        assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
    }

    #[test]
    fn chats_and_mail() {
        let Rendered::Json(slack) = render(&ChannelKind::Slack { url: "x".into() }, &doc(Event::Up)) else {
            panic!()
        };
        assert_eq!(slack["text"], "✅ api is UP again after 1m35s down");
        assert_eq!(slack["attachments"][0]["title"], "RESOLVED: api");
        let Rendered::Json(discord) = render(&ChannelKind::Discord { url: "x".into() }, &doc(Event::Down))
        else {
            panic!()
        };
        assert_eq!(discord["content"], "🔴 api is DOWN: HTTP 500: expected status 200-399");
        assert_eq!(discord["embeds"][0]["color"], 0xE01E5A);
        let Rendered::Json(teams) = render(&ChannelKind::Teams { url: "x".into() }, &doc(Event::Reminder))
        else {
            panic!()
        };
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["body"][0]["text"], "STILL DOWN: api");
        assert_eq!(
            card["body"][1]["text"],
            "api is still DOWN (for 1h2m): HTTP 500: expected status 200-399"
        );
        let email = ChannelKind::Email(EmailSpec {
            smtp_host: "h".into(),
            smtp_port: 25,
            tls: SmtpTls::None,
            tls_verify: true,
            username: None,
            password: None,
            from: "a@b.c".into(),
            to: vec!["d@e.f".into()],
        });
        let Rendered::Mail(mail) = render(&email, &doc(Event::Down)) else { panic!() };
        assert_eq!(mail.subject, "[SentryK8s] DOWN: api");
        assert_eq!(mail.message_id, "sentryk8s-12-7-down-ops@sentryk8s");
        assert_eq!(mail.in_reply_to, None);
        assert!(
            mail.text.starts_with("api is DOWN: HTTP 500: expected status 200-399\n\nCheck:       api\n"),
            "{}",
            mail.text
        );
        assert!(mail.text.contains("\nLast error:  HTTP 500: expected status 200-399\n"), "{}", mail.text);
        let Rendered::Mail(resolved) = render(&email, &doc(Event::Up)) else { panic!() };
        assert_eq!(resolved.in_reply_to.as_deref(), Some("sentryk8s-12-7-down-ops@sentryk8s"));
        assert!(resolved.text.contains("\nDown for:    1m35s\n"), "{}", resolved.text);
    }

    #[test]
    fn long_texts_are_cut_and_durations_read_well() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(human_duration(42.4), "42s");
        assert_eq!(human_duration(3725.0), "1h2m");
        assert_eq!(human_duration(90_000.0), "1d1h");
    }
}
