//! The checks file's `alerts:` section: notification channels by name,
//! validated into [`ChannelSpec`]s with every problem positioned like the
//! checks' own. A field that belongs to another `type` is an error naming
//! the fields that do apply, so a Slack channel with a `routing_key` is
//! caught before anything is stored.

use std::collections::BTreeMap;

use super::diagnostic::{join_key, Pos};
use super::names::valid_name;
use super::reader::{item_path, quoted, Ctx, Slot};
use super::schema;
use super::yaml::Node;
use crate::alerting::channel::{
    ChannelKind, ChannelSpec, EmailSpec, SmtpTls, KINDS, PAGERDUTY_EVENTS_URL, SEVERITIES,
};

/// Shortest and longest reminder interval.
pub const MIN_REMIND_MS: u64 = 60_000;
pub const MAX_REMIND_MS: u64 = 30 * 86_400_000;
/// Most delivery attempts a channel may ask for.
pub const MAX_ATTEMPTS: i64 = 100;

const ADDRESS_HINT: &str = "write it like \"ops@example.com\" or \"SentryK8s <ops@example.com>\"";

/// One valid channel, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredChannel {
    pub name: String,
    pub spec: ChannelSpec,
    pub file: String,
    /// Where its name is written.
    pub pos: Pos,
    pub path: String,
}

/// The fields of one channel mapping, taken one by one.
pub(super) struct Fields<'n> {
    pub(super) entries: Vec<(String, &'n Node, Pos)>,
    pub(super) path: String,
}

impl<'n> Fields<'n> {
    pub(super) fn take(&mut self, key: &str) -> Option<(&'n Node, String)> {
        let i = self.entries.iter().position(|(k, _, _)| k == key)?;
        let (k, node, _) = self.entries.remove(i);
        Some((node, join_key(&self.path, &k)))
    }
}

impl Ctx<'_> {
    /// `alerts:`: a mapping of channel names to channels.
    pub(super) fn channels(&mut self, node: &Node, path: &str, out: &mut Vec<DeclaredChannel>) {
        let Some(entries) = self.entries(node, path, None, "a mapping of channel names to channels") else {
            return;
        };
        for (name, value, key_pos) in entries {
            let channel_path = join_key(path, &name);
            let before = self.diags.len();
            self.written_channels.push(name.clone());
            if !valid_name(&name) {
                self.error(
                    key_pos,
                    &channel_path,
                    format!(
                        "invalid channel name {}: use lower-case letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters",
                        quoted(&name)
                    ),
                );
            }
            let spec = self.channel(value, &channel_path);
            if let (Some(spec), true) = (spec, self.diags.len() == before) {
                out.push(DeclaredChannel {
                    name,
                    spec,
                    file: self.file.to_string(),
                    pos: key_pos,
                    path: channel_path,
                });
            }
        }
    }

    fn channel(&mut self, node: &Node, path: &str) -> Option<ChannelSpec> {
        let entries = self.entries(
            node,
            path,
            Some((schema::CHANNEL, "a channel")),
            "a channel (a mapping with `type:` and its settings)",
        )?;
        let mut fields = Fields { entries, path: path.to_string() };
        let Some((type_node, type_path)) = fields.take("type") else {
            self.error(
                node.pos,
                &join_key(path, "type"),
                format!("missing: every channel needs a `type` ({})", KINDS.join(", ")),
            );
            return None;
        };
        let kind = match self.text(type_node, &type_path, "type") {
            Slot::Set(f) => f.v,
            _ => return None,
        };
        if !KINDS.contains(&kind.as_str()) {
            let hint = match kind.to_ascii_lowercase().as_str() {
                "msteams" | "microsoft-teams" | "ms-teams" => " (Microsoft Teams is `teams`)".to_string(),
                "smtp" | "mail" => " (mail over SMTP is `email`)".to_string(),
                "pager-duty" | "pager_duty" => " (use `pagerduty`)".to_string(),
                _ => String::new(),
            };
            self.error(
                type_node.pos,
                &type_path,
                format!("unknown channel type {}{hint}: use one of {}", quoted(&kind), KINDS.join(", ")),
            );
            return None;
        }
        let own = schema::channel_fields(&kind);
        let mut misplaced = Vec::new();
        fields.entries.retain(|(key, _, pos)| {
            let ok = schema::CHANNEL_COMMON.contains(&key.as_str()) || own.contains(&key.as_str());
            if !ok {
                misplaced.push((key.clone(), *pos));
            }
            ok
        });
        for (key, pos) in misplaced {
            self.error(
                pos,
                &join_key(path, &key),
                format!("`{key}` does not apply to a {kind} channel (its fields: {})", own.join(", ")),
            );
        }

        let send_on_resolved = match fields.take("send_on_resolved") {
            Some((n, p)) => self.boolean(n, &p).set().map(|f| f.v),
            None => Some(true),
        };
        let remind_every_ms = match fields.take("remind_every") {
            Some((n, p)) => match self.duration(n, &p, MIN_REMIND_MS, MAX_REMIND_MS) {
                Slot::Set(f) => Some(Some(f.v)),
                _ => None,
            },
            None => Some(None),
        };
        let max_attempts = match fields.take("max_attempts") {
            Some((n, p)) => match self.small_int(n, &p, 1, MAX_ATTEMPTS) {
                Slot::Set(f) => Some(Some(f.v)),
                _ => None,
            },
            None => Some(None),
        };
        let kind = self.kind(&kind, &mut fields, node, path);
        Some(ChannelSpec {
            kind: kind?,
            send_on_resolved: send_on_resolved?,
            remind_every_ms: remind_every_ms?,
            max_attempts: max_attempts?,
        })
    }

    fn required_url(
        &mut self,
        fields: &mut Fields<'_>,
        node: &Node,
        path: &str,
        kind: &str,
    ) -> Option<String> {
        match fields.take("url") {
            Some((n, p)) => self.url(n, &p).set().map(|f| f.v.to_string()),
            None => {
                self.error(
                    node.pos,
                    &join_key(path, "url"),
                    format!("missing: a {kind} channel needs a `url`"),
                );
                None
            }
        }
    }

    fn required_text(
        &mut self,
        fields: &mut Fields<'_>,
        key: &str,
        node: &Node,
        path: &str,
        kind: &str,
    ) -> Option<String> {
        match fields.take(key) {
            Some((n, p)) => self.text(n, &p, key).set().map(|f| f.v.trim().to_string()),
            None => {
                self.error(
                    node.pos,
                    &join_key(path, key),
                    format!("missing: a {kind} channel needs `{key}`"),
                );
                None
            }
        }
    }

    pub(super) fn optional_text(&mut self, fields: &mut Fields<'_>, key: &str) -> Option<Option<String>> {
        match fields.take(key) {
            Some((n, p)) => self.text(n, &p, key).set().map(|f| Some(f.v.clone())),
            None => Some(None),
        }
    }

    fn kind(&mut self, kind: &str, fields: &mut Fields<'_>, node: &Node, path: &str) -> Option<ChannelKind> {
        match kind {
            "webhook" => {
                let url = self.required_url(fields, node, path, kind);
                let secret = self.optional_text(fields, "secret");
                let headers = match fields.take("headers") {
                    Some((n, p)) => match self.headers(n, &p) {
                        Slot::Set(f) => Some(
                            f.v.iter().map(|(k, v)| (k.v.clone(), v.v.clone())).collect::<BTreeMap<_, _>>(),
                        ),
                        _ => None,
                    },
                    None => Some(BTreeMap::new()),
                };
                Some(ChannelKind::Webhook { url: url?, secret: secret?, headers: headers? })
            }
            "slack" => Some(ChannelKind::Slack { url: self.required_url(fields, node, path, kind)? }),
            "discord" => Some(ChannelKind::Discord { url: self.required_url(fields, node, path, kind)? }),
            "teams" => Some(ChannelKind::Teams { url: self.required_url(fields, node, path, kind)? }),
            "pagerduty" => {
                let url = match fields.take("url") {
                    Some((n, p)) => self.url(n, &p).set().map(|f| f.v.to_string()),
                    None => Some(PAGERDUTY_EVENTS_URL.to_string()),
                };
                let routing_key = self.required_text(fields, "routing_key", node, path, kind);
                let severity = match fields.take("severity") {
                    Some((n, p)) => match self.text(n, &p, "severity") {
                        Slot::Set(f) if SEVERITIES.contains(&f.v.as_str()) => Some(f.v.clone()),
                        Slot::Set(f) => {
                            self.error(
                                n.pos,
                                &p,
                                format!(
                                    "unknown severity {}: use one of {}",
                                    quoted(&f.v),
                                    SEVERITIES.join(", ")
                                ),
                            );
                            None
                        }
                        _ => None,
                    },
                    None => Some("critical".to_string()),
                };
                Some(ChannelKind::Pagerduty { url: url?, routing_key: routing_key?, severity: severity? })
            }
            "email" => self.email(fields, node, path).map(ChannelKind::Email),
            _ => None,
        }
    }

    fn email(&mut self, fields: &mut Fields<'_>, node: &Node, path: &str) -> Option<EmailSpec> {
        let host_pos = fields.entries.iter().find(|(k, _, _)| k == "smtp_host").map(|(_, n, _)| n.pos);
        let host = self.required_text(fields, "smtp_host", node, path, "email");
        let host = match host {
            Some(h) if h.contains("://") || h.contains(char::is_whitespace) || h.contains('/') => {
                self.error(
                    host_pos.unwrap_or(node.pos),
                    &join_key(path, "smtp_host"),
                    format!("invalid smtp_host {}: write a host name or address, without scheme or port (the port is `smtp_port`)", quoted(&h)),
                );
                None
            }
            other => other,
        };
        let tls = match fields.take("tls") {
            Some((n, p)) => match self.text(n, &p, "tls") {
                Slot::Set(f) => match SmtpTls::parse(f.v.trim()) {
                    Some(t) => Some(t),
                    None => {
                        self.error(
                            n.pos,
                            &p,
                            format!(
                                "unknown tls mode {}: use starttls (the default: the connection must be upgraded), implicit (SMTPS, port 465) or none",
                                quoted(&f.v)
                            ),
                        );
                        None
                    }
                },
                _ => None,
            },
            None => Some(SmtpTls::Starttls),
        };
        let port = match fields.take("smtp_port") {
            Some((n, p)) => self.small_int(n, &p, 1, 65_535).set().map(|f| Some(f.v as u16)),
            None => Some(None),
        };
        let tls_verify = match fields.take("tls_verify") {
            Some((n, p)) => self.boolean(n, &p).set().map(|f| f.v),
            None => Some(true),
        };
        let username = self.optional_text(fields, "username");
        let password = self.optional_text(fields, "password");
        if let (Some(Some(_)), Some(None)) = (&username, &password) {
            self.error(
                node.pos,
                &join_key(path, "password"),
                "missing: `username` is set, so `password` is needed too",
            );
            return None;
        }
        if let (Some(None), Some(Some(_))) = (&username, &password) {
            self.error(
                node.pos,
                &join_key(path, "username"),
                "missing: `password` is set, so `username` is needed too",
            );
            return None;
        }
        let from = match fields.take("from") {
            Some((n, p)) => self.mailbox(n, &p),
            None => {
                self.error(
                    node.pos,
                    &join_key(path, "from"),
                    "missing: an email channel needs `from` (the sender address)",
                );
                None
            }
        };
        let to = match fields.take("to") {
            Some((n, p)) => match self.string_list(n, &p, "an address") {
                Slot::Set(f) => {
                    let mut out = Vec::new();
                    let mut ok = true;
                    for (i, item) in f.v.iter().enumerate() {
                        let item_path = item_path(n, &p, i);
                        match item.v.trim().parse::<lettre::message::Mailbox>() {
                            Ok(_) => out.push(item.v.trim().to_string()),
                            Err(_) => {
                                self.error(
                                    item.pos,
                                    &item_path,
                                    format!("invalid address {}: {ADDRESS_HINT}", quoted(&item.v)),
                                );
                                ok = false;
                            }
                        }
                    }
                    ok.then_some(out)
                }
                _ => None,
            },
            None => {
                self.error(
                    node.pos,
                    &join_key(path, "to"),
                    "missing: an email channel needs `to` (one address or a list)",
                );
                None
            }
        };
        let tls = tls?;
        Some(EmailSpec {
            smtp_host: host?,
            smtp_port: port?.unwrap_or(tls.default_port()),
            tls,
            tls_verify: tls_verify?,
            username: username?,
            password: password?,
            from: from?,
            to: to?,
        })
    }

    fn mailbox(&mut self, node: &Node, path: &str) -> Option<String> {
        let f = self.text(node, path, "the address").set()?.v.trim().to_string();
        match f.parse::<lettre::message::Mailbox>() {
            Ok(_) => Some(f),
            Err(_) => {
                self.error(node.pos, path, format!("invalid address {}: {ADDRESS_HINT}", quoted(&f)));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::checks_file::load::{unresolved, validate_all, Source};

    fn env(name: &str) -> Option<String> {
        (name == "PD_KEY").then(|| "r0ut1ng".to_string())
    }

    fn run(text: &str) -> Result<crate::checks_file::Declared, Vec<String>> {
        validate_all(&[Source { name: "a.yaml".into(), text: text.into() }], &env)
            .map_err(|d| d.iter().map(|x| x.to_string()).collect())
    }

    #[test]
    fn every_kind_is_normalised() {
        let d = run("
alerts:
  hook: { type: webhook, url: http://127.0.0.1:9/h, secret: s3, headers: { X-Team: ops }, max_attempts: 3 }
  chat: { type: slack, url: https://hooks.example/x, send_on_resolved: false, remind_every: 1h }
  pd: { type: pagerduty, routing_key: '${PD_KEY}' }
  mail: { type: email, smtp_host: mail.example, from: 'SentryK8s <a@example.com>', to: b@example.com }
checks: []
")
        .unwrap();
        let by = |n: &str| d.channels.iter().find(|c| c.name == n).unwrap().spec.clone();
        assert_eq!(by("hook").max_attempts, Some(3));
        assert!(
            matches!(by("hook").kind, ChannelKind::Webhook { ref secret, .. } if secret.as_deref() == Some("s3"))
        );
        assert_eq!((by("chat").send_on_resolved, by("chat").remind_every_ms), (false, Some(3_600_000)));
        assert_eq!(
            by("pd").kind,
            ChannelKind::Pagerduty {
                url: PAGERDUTY_EVENTS_URL.into(),
                routing_key: "r0ut1ng".into(),
                severity: "critical".into()
            }
        );
        let ChannelKind::Email(mail) = by("mail").kind else { panic!() };
        assert_eq!(
            (mail.tls, mail.smtp_port, mail.to.clone()),
            (SmtpTls::Starttls, 587, vec!["b@example.com".to_string()])
        );
    }

    #[test]
    fn problems_are_positioned() {
        let errors = run("
alerts:
  Bad_Name: { type: slack, url: http://x/ }
  a: { type: slak, url: http://x/ }
  b: { type: slack, url: http://x/, routing_key: k }
  c: { type: pagerduty, severity: high }
  d: { type: email, smtp_host: 'smtp://x', from: nobody, to: [ok@x.y, bad], tls: ssl, username: u }
  e: { url: http://x/ }
  f: { type: webhook, remind_every: 5s }
checks: []
")
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                "a.yaml:3:3: alerts.Bad_Name: invalid channel name \"Bad_Name\": use lower-case letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters",
                "a.yaml:4:14: alerts.a.type: unknown channel type \"slak\": use one of webhook, slack, discord, teams, pagerduty, email",
                "a.yaml:5:37: alerts.b.routing_key: `routing_key` does not apply to a slack channel (its fields: url)",
                "a.yaml:6:8: alerts.c.routing_key: missing: a pagerduty channel needs `routing_key`",
                "a.yaml:6:35: alerts.c.severity: unknown severity \"high\": use one of critical, error, warning, info",
                "a.yaml:7:8: alerts.d.password: missing: `username` is set, so `password` is needed too",
                "a.yaml:7:32: alerts.d.smtp_host: invalid smtp_host \"smtp://x\": write a host name or address, without scheme or port (the port is `smtp_port`)",
                "a.yaml:7:82: alerts.d.tls: unknown tls mode \"ssl\": use starttls (the default: the connection must be upgraded), implicit (SMTPS, port 465) or none",
                "a.yaml:8:8: alerts.e.type: missing: every channel needs a `type` (webhook, slack, discord, teams, pagerduty, email)",
                "a.yaml:9:8: alerts.f.url: missing: a webhook channel needs a `url`",
                "a.yaml:9:37: alerts.f.remind_every: 5s is out of range: use 1m to 720h",
            ]
        );
    }

    #[test]
    fn references_resolve_across_files_and_the_database() {
        let sources = [
            Source { name: "a.yaml".into(), text: "alerts:\n  ops: { type: slack, url: http://x/ }\n".into() },
            Source {
                name: "b.yaml".into(),
                text: "defaults:\n  alerts: [pager]\nchecks:\n  - { name: a, url: http://x/, alerts: [ops, opz] }\n  - { name: b, url: http://x/ }\n  - { name: c, url: http://x/ }\n".into(),
            },
        ];
        let d = validate_all(&sources, &env).unwrap();
        let none = HashSet::new();
        let text: Vec<String> = unresolved(&d, &none, &none).iter().map(|x| x.to_string()).collect();
        assert_eq!(
            text,
            vec![
                "b.yaml:2:12: defaults.alerts[0]: unknown channel `pager` (declared: ops) (and 1 more check that inherit it)",
                "b.yaml:4:46: checks[0].alerts[1]: unknown channel `opz`, did you mean `ops`?",
            ]
        );
        let stored: HashSet<String> = ["pager".to_string(), "opz".to_string()].into();
        assert!(unresolved(&d, &stored, &none).is_empty());
    }
}
