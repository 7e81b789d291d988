//! One check entry: its fields read into a `Partial` (the same reader
//! serves `defaults:`), then, once overlaid on the defaults, the
//! cross-field rules (timeout shorter than the interval, …) run only on
//! fields that are themselves valid, so one mistake produces one message,
//! not a cascade, and the result is a normalised [`DeclaredCheck`].

use std::collections::{BTreeMap, HashSet};

use crate::model::bounds::{MAX_INTERVAL_MS, MIN_INTERVAL_MS};
use crate::model::check::MAX_PACKETS;
use crate::model::{CheckSpec, Expect};

use super::defaults::Partial;
use super::diagnostic::{join_key, Pos};
use super::kinds::{keep_own_fields, kind_of};
use super::names::{valid_name, Ref};
use super::reader::{format_ms, item_path, parse_size, quoted, Bad, Ctx, Pairs, Slot, F};
use super::schema;
use super::yaml::{Node, PlainType};

/// Interval when neither the check nor `defaults` sets one.
pub const DEFAULT_INTERVAL_MS: u64 = 60_000;
/// Timeout when none is set: this, or 80% of a shorter interval.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Redirects followed for `follow_redirects: true`.
pub const DEFAULT_REDIRECTS: u32 = 10;
pub const MAX_REDIRECTS: u32 = 30;
pub const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;
pub const MAX_THRESHOLD: i64 = 100;
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// One valid check, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredCheck {
    pub name: String,
    pub interval_ms: u32,
    pub enabled: bool,
    pub spec: CheckSpec,
    /// Where its name is written, for duplicate-name messages.
    pub file: String,
    pub pos: Pos,
    /// Its field path (`checks[3]`).
    pub path: String,
    /// Where each channel of `spec.alerts` is named (resolved across files).
    pub alert_refs: Vec<Ref>,
}

impl Ctx<'_> {
    /// A check entry's fields, or `defaults:` (every field but `name`).
    pub(super) fn partial(&mut self, node: &Node, path: &str, in_defaults: bool) -> Partial {
        let mut p = Partial::default();
        let known: &[&str] = if in_defaults { &schema::CHECK[1..] } else { schema::CHECK };
        let section = if in_defaults { "defaults" } else { "a check" };
        let expected =
            if in_defaults { "a mapping of check fields" } else { "a check (a mapping with name, url, …)" };
        let Some(entries) = self.entries(node, path, Some((known, section)), expected) else {
            // Not a mapping: mark what cross-field rules need as invalid.
            p.name = Slot::Invalid;
            p.url = Slot::Invalid;
            return p;
        };
        for (key, value, key_pos) in entries {
            let fp = join_key(path, &key);
            if key != "expect" {
                p.written.push((key.clone(), key_pos));
            }
            match key.as_str() {
                "name" => p.name = self.name(value, &fp),
                "description" => p.description = self.text(value, &fp, "description"),
                "url" => p.url = self.url(value, &fp),
                "enabled" => p.enabled = self.boolean(value, &fp),
                "interval" => p.interval = self.duration(value, &fp, MIN_INTERVAL_MS, MAX_INTERVAL_MS),
                // The worker's hard ceiling on a check's deadline: a longer
                // timeout would be cut short silently at run time.
                "timeout" => {
                    p.timeout =
                        self.duration(value, &fp, 1, crate::model::bounds::MAX_TIMEOUT.as_millis() as u64)
                }
                "method" => p.method = self.method(value, &fp),
                "headers" => p.headers = self.headers(value, &fp),
                "body" => p.body = self.string(value, &fp),
                "follow_redirects" => p.follow_redirects = self.redirects(value, &fp),
                "tls_verify" => p.tls_verify = self.boolean(value, &fp),
                "body_limit" => p.body_limit = self.body_limit(value, &fp),
                "send" => p.send = self.send(value, &fp),
                "starttls" => p.starttls = self.starttls(value, &fp),
                "server_name" => p.server_name = self.host_name(value, &fp),
                "dns" => p.dns = self.dns_query(value, &fp),
                "packets" => p.packets = self.small_int(value, &fp, 1, MAX_PACKETS as i64),
                "grpc_service" => p.grpc_service = self.string(value, &fp),
                "heartbeat" => p.heartbeat = self.heartbeat(value, &fp),
                "expect" => {
                    p.expect = self.expect(value, &fp);
                    p.written.append(&mut p.expect.written);
                }
                "failure_threshold" => p.failure_threshold = self.small_int(value, &fp, 1, MAX_THRESHOLD),
                "success_threshold" => p.success_threshold = self.small_int(value, &fp, 1, MAX_THRESHOLD),
                "labels" => p.labels = self.labels(value, &fp),
                "alerts" => p.alerts = self.alerts(value, &fp),
                _ => {}
            }
        }
        p
    }
    fn method(&mut self, node: &Node, path: &str) -> Slot<String> {
        match self.text(node, path, "method") {
            Slot::Set(f) => {
                let upper = f.v.trim().to_ascii_uppercase();
                if METHODS.contains(&upper.as_str()) {
                    Slot::Set(F { v: upper, ..f })
                } else {
                    self.error(
                        node.pos,
                        path,
                        format!("unsupported method {}: use one of {}", quoted(&f.v), METHODS.join(", ")),
                    );
                    Slot::Invalid
                }
            }
            other => other,
        }
    }

    fn alerts(&mut self, node: &Node, path: &str) -> Slot<Vec<F<String>>> {
        let Slot::Set(f) = self.string_list(node, path, "a notification channel name") else {
            return Slot::Invalid;
        };
        // A set: `alerts:` may list many names, each checked once.
        let mut names: HashSet<String> = HashSet::new();
        let mut items: Vec<F<String>> = Vec::new();
        let mut ok = true;
        for (i, item) in f.v.iter().enumerate() {
            let item_path = item_path(node, path, i);
            if !valid_name(&item.v) {
                self.error(
                    item.pos,
                    &item_path,
                    format!(
                        "invalid channel name {}: use lower-case letters, digits and `-`",
                        quoted(&item.v)
                    ),
                );
                ok = false;
            } else if names.contains(&item.v) {
                self.error(item.pos, &item_path, format!("channel `{}` is listed twice", item.v));
                ok = false;
            } else {
                names.insert(item.v.clone());
                items.push(F { written: item_path.clone(), ..item.clone() });
            }
        }
        if ok {
            Slot::Set(F { v: items, pos: f.pos, written: String::new(), inherited: false })
        } else {
            Slot::Invalid
        }
    }

    fn redirects(&mut self, node: &Node, path: &str) -> Slot<u32> {
        let expected = format!("true, false or a number of redirects (0 to {MAX_REDIRECTS})");
        match self.scalar(node, path) {
            Ok(s) if s.ty == PlainType::Bool => {
                let v = if s.text.eq_ignore_ascii_case("true") { DEFAULT_REDIRECTS } else { 0 };
                Slot::Set(F { v, pos: node.pos, written: s.written, inherited: false })
            }
            Ok(s) if s.ty == PlainType::Int => self.small_int(node, path, 0, MAX_REDIRECTS as i64),
            Ok(_) | Err(Bad::NotScalar) => self.type_error(node, path, &expected),
            Err(Bad::Reported) => Slot::Invalid,
        }
    }

    fn body_limit(&mut self, node: &Node, path: &str) -> Slot<u64> {
        let expected = "a size in bytes (65536) or with a unit (\"64KiB\", \"1MiB\", \"1MB\")";
        let s = match self.scalar(node, path) {
            Ok(s) => s,
            Err(Bad::Reported) => return Slot::Invalid,
            Err(Bad::NotScalar) => return self.type_error(node, path, expected),
        };
        let bytes = match s.ty {
            PlainType::Int | PlainType::Str => parse_size(&s.text),
            _ => None,
        };
        match bytes {
            Some(b) if (1..=MAX_BODY_LIMIT).contains(&b) => {
                Slot::Set(F { v: b, pos: node.pos, written: s.written, inherited: false })
            }
            Some(_) => {
                self.error(node.pos, path, format!("{} is out of range: use 1 byte to 64MiB", s.text.trim()));
                Slot::Invalid
            }
            None => self.type_error(node, path, expected),
        }
    }

    /// Cross-field rules and defaults; the normalised check.
    pub(super) fn finish(&mut self, p: Partial, node: &Node, path: &str) -> Option<DeclaredCheck> {
        let field = |name: &str| format!("{path}.{name}");
        let from = |f: &F<u64>| if f.inherited { " (set in defaults)" } else { "" };
        let name = match &p.name {
            Slot::Set(f) => Some(f.clone()),
            Slot::Invalid => None,
            Slot::Absent => {
                self.error(node.pos, &field("name"), "missing: every check needs a unique `name`");
                None
            }
        };
        let url = match &p.url {
            Slot::Set(f) => Some(f.clone()),
            Slot::Invalid => None,
            Slot::Absent if p.heartbeat.set().is_some() || p.heartbeat.is_invalid() => None,
            Slot::Absent => {
                self.error(
                    node.pos,
                    &field("url"),
                    "missing: every check needs a `url` (or, for a heartbeat, `heartbeat:`)",
                );
                None
            }
        };
        let kind = kind_of(url.as_ref().map(|u| &u.v), p.heartbeat.set().is_some());
        if let Some(kind) = kind {
            self.wrong_kind_fields(kind, &p.written, path);
            self.kind_rules(&p, kind, node, path);
        }
        let interval_ms = p.interval.set().map_or(DEFAULT_INTERVAL_MS, |f| f.v);
        let timeout_ms = p.timeout.set().map_or(DEFAULT_TIMEOUT_MS.min(interval_ms * 4 / 5), |f| f.v);
        if let (Some(t), false) = (p.timeout.set(), p.interval.is_invalid()) {
            if t.v >= interval_ms {
                let interval_text =
                    p.interval.set().map_or_else(|| format_ms(interval_ms), |f| f.written.clone());
                let default_note = if p.interval.set().is_none() { ", the default" } else { "" };
                self.field_error(
                    t.inherited && p.interval.set().is_none_or(|i| i.inherited),
                    t.pos,
                    &field("timeout"),
                    format!(
                        "{}{} must be shorter than the interval ({interval_text}{default_note})",
                        t.written,
                        from(t)
                    ),
                );
            }
        }
        if let (Some(m), false) = (p.expect.max_response_time.set(), p.timeout.is_invalid()) {
            if m.v > timeout_ms {
                self.field_error(
                    m.inherited && p.timeout.set().is_none_or(|t| t.inherited),
                    m.pos,
                    &field("expect.max_response_time"),
                    format!(
                        "{}{} is longer than the timeout ({}): the check would time out first",
                        m.written,
                        from(m),
                        format_ms(timeout_ms)
                    ),
                );
            }
        }
        // Every URL but a plain http:// one leads to a certificate (a kind
        // without one is refused the field by its kind's rule above).
        let has_cert = url.as_ref().is_none_or(|u| u.v.scheme() != "http");
        let mut cert_days_left = p.expect.cert_days_left.set().map(|f| f.v);
        if let (Some(c), Some(_), false) = (p.expect.cert_days_left.set(), &url, has_cert) {
            if c.inherited {
                // A fleet-wide default applies to the https checks only.
                cert_days_left = None;
            } else {
                self.error(
                    c.pos,
                    &field("expect.cert_days_left"),
                    "needs an https URL (a plain http check has no certificate)",
                );
            }
        }
        let (name, kind) = (name?, kind?);
        let pairs = |s: &Slot<Pairs>| -> BTreeMap<String, String> {
            s.set().map(|f| f.v.iter().map(|(k, v)| (k.v.clone(), v.v.clone())).collect()).unwrap_or_default()
        };
        let list = |s: &Slot<Vec<String>>| s.set().map(|f| f.v.clone()).unwrap_or_default();
        let text = |s: &Slot<String>| s.set().map(|f| f.v.clone());
        let mut spec = CheckSpec {
            kind,
            url: url.map(|u| u.v.to_string()).unwrap_or_default(),
            method: p.method.set().map_or_else(|| "GET".to_string(), |f| f.v.clone()),
            headers: pairs(&p.headers),
            body: p.body.set().map(|f| f.v.clone()),
            timeout_ms,
            max_redirects: p.follow_redirects.set().map_or(DEFAULT_REDIRECTS, |f| f.v),
            tls_verify: p.tls_verify.set().is_none_or(|f| f.v),
            body_limit: p.body_limit.set().map(|f| f.v),
            send: text(&p.send),
            starttls: p.starttls.set().map(|f| f.v),
            server_name: text(&p.server_name),
            dns: p.dns.set().map(|f| f.v.clone()),
            packets: p.packets.set().map(|f| f.v),
            grpc_service: text(&p.grpc_service),
            heartbeat: p.heartbeat.set().map(|f| f.v.clone()),
            expect: Expect {
                status: p.expect.status.set().map(|f| f.v.clone()).unwrap_or_default(),
                max_response_time_ms: p.expect.max_response_time.set().map(|f| f.v),
                body_contains: list(&p.expect.body_contains),
                body_not_contains: list(&p.expect.body_not_contains),
                body_regex: list(&p.expect.body_regex),
                json: p.expect.json.set().map(|f| f.v.clone()).unwrap_or_default(),
                cert_days_left,
                connected: p.expect.connected.set().map(|f| f.v),
                banner_contains: list(&p.expect.banner_contains),
                banner_regex: list(&p.expect.banner_regex),
                cert_issuer_contains: list(&p.expect.cert_issuer_contains),
                cert_fingerprint_sha256: list(&p.expect.cert_fingerprint_sha256),
                tls_min_version: p.expect.tls_min_version.set().map(|f| f.v),
                rcode: text(&p.expect.rcode),
                answers_include: list(&p.expect.answers_include),
                answers_exactly: list(&p.expect.answers_exactly),
                answers_in: list(&p.expect.answers_in),
                min_ttl_s: p.expect.min_ttl.set().map(|f| f.v),
                max_loss_percent: p.expect.max_loss.set().map(|f| f.v as u8),
                serving: p.expect.serving.set().map(|f| f.v),
            },
            failure_threshold: p.failure_threshold.set().map_or(1, |f| f.v),
            success_threshold: p.success_threshold.set().map_or(1, |f| f.v),
            labels: pairs(&p.labels),
            alerts: p.alerts.set().map(|f| f.v.iter().map(|i| i.v.clone()).collect()).unwrap_or_default(),
            description: p.description.set().map(|f| f.v.clone()),
        };
        keep_own_fields(&mut spec);
        Some(DeclaredCheck {
            name: name.v,
            // At most MAX_INTERVAL_MS, which fits.
            interval_ms: interval_ms as u32,
            enabled: p.enabled.set().is_none_or(|f| f.v),
            spec,
            file: self.file.to_string(),
            pos: name.pos,
            path: path.to_string(),
            alert_refs: p
                .alerts
                .set()
                .map(|f| {
                    f.v.iter()
                        .map(|i| Ref {
                            name: i.v.clone(),
                            file: self.file.to_string(),
                            pos: i.pos,
                            // `written` holds the entry's field path where it is
                            // written (`checks[3].alerts[1]`, `defaults.alerts[0]`).
                            path: i.written.clone(),
                            inherited: f.inherited,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}
