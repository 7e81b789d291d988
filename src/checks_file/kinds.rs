//! The checks-file side of the kinds beyond HTTP: which kind a check is
//! (its URL scheme, or `heartbeat:` without a URL), what each kind's URL
//! must look like, the readers of the kinds' own fields (`starttls`,
//! `dns`, `heartbeat`, the TLS and DNS assertions), and the rule that a
//! field of one kind written on a check of another is an error naming the
//! kinds it belongs to (`schema::kinds_of`). A field inherited from
//! `defaults:` applies to the checks of its kinds only, silently.

use url::Url;

use crate::model::kinds::{DnsTransport, RCODES, RECORD_TYPES};
use crate::model::{CheckKind, CheckSpec, DnsQuery, HeartbeatSpec, StartTls, TlsVersion};
use crate::net::deny::IpRange;

use super::defaults::Partial;
use super::diagnostic::{join_key, Pos};
use super::reader::{item_path, quoted, Bad, Ctx, Slot, F};
use super::schema;
use super::yaml::{Node, PlainType};

/// Longest `send:` of a TCP check.
pub const MAX_SEND_BYTES: usize = 4096;

/// The kind of a check whose URL is `url` (already valid), or which has
/// no URL and a `heartbeat:`.
pub(super) fn kind_of(url: Option<&Url>, has_heartbeat: bool) -> Option<CheckKind> {
    match url {
        Some(u) => CheckKind::from_scheme(u.scheme()),
        None if has_heartbeat => Some(CheckKind::Heartbeat),
        None => None,
    }
}

/// What is wrong with `u` as the URL of its scheme's kind; `shown` is the
/// URL as it may be printed (its password masked).
pub(super) fn url_problem(u: &Url, shown: &str) -> Option<String> {
    let Some(kind) = CheckKind::from_scheme(u.scheme()) else {
        return Some(format!(
            "unsupported URL scheme `{}` in {shown}: use {}",
            u.scheme(),
            CheckKind::SCHEMES
        ));
    };
    if u.host_str().is_none_or(str::is_empty) {
        return Some(format!("URL {shown} has no host"));
    }
    if kind == CheckKind::Http {
        return None;
    }
    let example = match kind {
        CheckKind::Tcp => "tcp://host:port",
        CheckKind::Tls => "tls://host:port",
        CheckKind::Dns => "dns://server[:port] or dns://system",
        CheckKind::Icmp => "icmp://host",
        _ => "grpc://host:port",
    };
    let extra = !matches!(u.path(), "" | "/") || u.query().is_some() || u.fragment().is_some();
    if extra || !u.username().is_empty() || u.password().is_some() {
        return Some(format!("URL {shown}: a {kind} URL is only a host and port, like {example}"));
    }
    let needs_port = matches!(kind, CheckKind::Tcp | CheckKind::Tls | CheckKind::Grpc);
    match (u.port(), kind) {
        (None, _) if needs_port => Some(format!("URL {shown} has no port: write {example}")),
        (Some(_), CheckKind::Icmp) => Some(format!("URL {shown}: ICMP has no ports; write {example}")),
        (Some(0), _) => Some(format!("URL {shown}: port 0 is not a port")),
        _ => None,
    }
}

/// `spec` without the fields of kinds other than its own: what a check
/// inherits from `defaults:` applies to the checks of its kinds only (a
/// fleet-wide `method: HEAD` does not follow a TCP check).
pub(super) fn keep_own_fields(spec: &mut CheckSpec) {
    let kind = spec.kind;
    let mine = |field: &str| schema::kinds_of(field).is_none_or(|owners| owners.contains(&kind));
    let e = &mut spec.expect;
    if !mine("method") {
        spec.method = "GET".into();
        spec.headers.clear();
        spec.body = None;
        spec.max_redirects = 0;
        spec.body_limit = None;
        e.status.clear();
        e.body_contains.clear();
        e.body_not_contains.clear();
        e.body_regex.clear();
        e.json.clear();
    }
    if !mine("tls_verify") {
        spec.tls_verify = true;
    }
    if !mine("send") {
        spec.send = None;
        e.connected = None;
        e.banner_contains.clear();
        e.banner_regex.clear();
    }
    if !mine("starttls") {
        spec.starttls = None;
        e.cert_issuer_contains.clear();
        e.cert_fingerprint_sha256.clear();
        e.tls_min_version = None;
    }
    if !mine("server_name") {
        spec.server_name = None;
    }
    if !mine("dns") {
        spec.dns = None;
        e.rcode = None;
        e.answers_include.clear();
        e.answers_exactly.clear();
        e.answers_in.clear();
        e.min_ttl_s = None;
    }
    if !mine("packets") {
        spec.packets = None;
        e.max_loss_percent = None;
    }
    if !mine("grpc_service") {
        spec.grpc_service = None;
        e.serving = None;
    }
    if !mine("heartbeat") {
        spec.heartbeat = None;
    }
    if !mine("expect.cert_days_left") {
        e.cert_days_left = None;
    }
    if !mine("expect.max_response_time") {
        e.max_response_time_ms = None;
    }
}

impl Ctx<'_> {
    /// Reports every field the check itself writes (not inherited) that
    /// its kind does not have; `written` holds (field, where its key is).
    pub(super) fn wrong_kind_fields(&mut self, kind: CheckKind, written: &[(String, Pos)], path: &str) {
        for (field, pos) in written {
            if let Some(owners) = schema::kinds_of(field).filter(|owners| !owners.contains(&kind)) {
                // `field` is a dotted path (`expect.rcode`), not one key.
                self.error(*pos, &format!("{path}.{field}"), schema::wrong_kind(field, kind, owners));
            }
        }
    }

    /// The cross-field rules of the kinds beyond HTTP.
    pub(super) fn kind_rules(&mut self, p: &Partial, kind: CheckKind, node: &Node, path: &str) {
        let field = |name: &str| format!("{path}.{name}");
        if kind == CheckKind::Dns && p.dns.set().is_none() && !p.dns.is_invalid() {
            self.error(node.pos, &field("dns"), "missing: a dns check needs `dns: {name: …, type: …}`");
        }
        if let (Some(q), Some(a)) = (p.dns.set(), p.expect.answers_in.set()) {
            if !matches!(q.v.record_type.as_str(), "A" | "AAAA") && !a.inherited {
                self.error(
                    a.pos,
                    &field("expect.answers_in"),
                    format!("needs an A or AAAA question (this one asks for {})", q.v.record_type),
                );
            }
        }
    }

    pub(super) fn send(&mut self, node: &Node, path: &str) -> Slot<String> {
        match self.text(node, path, "send") {
            Slot::Set(f) if f.v.len() > MAX_SEND_BYTES => {
                self.error(node.pos, path, format!("longer than {MAX_SEND_BYTES} bytes"));
                Slot::Invalid
            }
            other => other,
        }
    }

    pub(super) fn starttls(&mut self, node: &Node, path: &str) -> Slot<StartTls> {
        let Slot::Set(f) = self.text(node, path, "starttls") else { return Slot::Invalid };
        match StartTls::parse(&f.v) {
            Some(v) => Slot::Set(F { v, pos: f.pos, written: f.written, inherited: false }),
            None => {
                let names: Vec<&str> = StartTls::ALL.iter().map(|(n, _)| *n).collect();
                self.error(
                    f.pos,
                    path,
                    format!("unknown protocol {}: use {}", quoted(&f.v), names.join(", ")),
                );
                Slot::Invalid
            }
        }
    }

    /// A host name (`server_name`), as TLS sends it.
    pub(super) fn host_name(&mut self, node: &Node, path: &str) -> Slot<String> {
        let Slot::Set(f) = self.text(node, path, "the name") else { return Slot::Invalid };
        match rustls::pki_types::ServerName::try_from(f.v.trim()) {
            Ok(_) => Slot::Set(F { v: f.v.trim().to_string(), ..f }),
            Err(_) => {
                self.error(f.pos, path, format!("{} is not a host name or IP address", quoted(&f.v)));
                Slot::Invalid
            }
        }
    }

    pub(super) fn dns_query(&mut self, node: &Node, path: &str) -> Slot<DnsQuery> {
        let Some(entries) = self.entries(
            node,
            path,
            Some((schema::DNS, "dns")),
            "a mapping like {name: example.com, type: A}",
        ) else {
            return Slot::Invalid;
        };
        let (mut name, mut record_type, mut transport) = (None, None, Some(DnsTransport::Udp));
        let written: Vec<&str> = entries.iter().map(|(k, _, _)| k.as_str()).collect();
        let (saw_name, saw_type) = (written.contains(&"name"), written.contains(&"type"));
        for (key, value, _) in &entries {
            let (key, value) = (key.clone(), *value);
            let fp = join_key(path, &key);
            match key.as_str() {
                "name" => name = self.host_name(value, &fp).set().map(|f| f.v.clone()),
                "type" => {
                    record_type = self.one_of(value, &fp, RECORD_TYPES, "record type");
                }
                "transport" => {
                    transport = match self.one_of(value, &fp, &["UDP", "TCP"], "transport").as_deref() {
                        Some("TCP") => Some(DnsTransport::Tcp),
                        Some(_) => Some(DnsTransport::Udp),
                        None => None,
                    }
                }
                _ => {}
            }
        }
        let missing = |what: &str| format!("missing: `dns` needs `{what}`");
        let Some(name) = name else {
            if !saw_name {
                self.error(node.pos, &join_key(path, "name"), missing("name"));
            }
            return Slot::Invalid;
        };
        let Some(record_type) = record_type else {
            if !saw_type {
                self.error(node.pos, &join_key(path, "type"), missing("type (A, AAAA, MX, …)"));
            }
            return Slot::Invalid;
        };
        let Some(transport) = transport else { return Slot::Invalid };
        Slot::Set(F {
            v: DnsQuery { name, record_type, transport },
            pos: node.pos,
            written: String::new(),
            inherited: false,
        })
    }

    /// One of `allowed` (upper case), ignoring case; reported otherwise.
    fn one_of(&mut self, node: &Node, path: &str, allowed: &[&str], what: &str) -> Option<String> {
        let Slot::Set(f) = self.text(node, path, what) else { return None };
        let upper = f.v.trim().to_ascii_uppercase();
        if allowed.contains(&upper.as_str()) {
            return Some(upper);
        }
        self.error(f.pos, path, format!("unknown {what} {}: use {}", quoted(&f.v), allowed.join(", ")));
        None
    }

    pub(super) fn heartbeat(&mut self, node: &Node, path: &str) -> Slot<HeartbeatSpec> {
        let Some(entries) = self.entries(
            node,
            path,
            Some((schema::HEARTBEAT, "heartbeat")),
            "a mapping like {period: 1h, grace: 10m} or {cron: \"0 3 * * *\", time_zone: Europe/Paris}",
        ) else {
            return Slot::Invalid;
        };
        let mut h = HeartbeatSpec {
            period_ms: None,
            cron: None,
            time_zone: None,
            grace_ms: 0,
            max_run_ms: None,
            key: None,
        };
        let mut ok = true;
        let keep = |slot: Slot<u64>, ok: &mut bool| {
            *ok &= !slot.is_invalid();
            slot.set().map(|f| f.v)
        };
        for (key, value, _) in entries {
            let fp = join_key(path, &key);
            match key.as_str() {
                "period" => h.period_ms = keep(self.duration(value, &fp, 60_000, 366 * 86_400_000), &mut ok),
                "grace" => {
                    h.grace_ms = keep(self.duration(value, &fp, 0, 30 * 86_400_000), &mut ok).unwrap_or(0)
                }
                "max_run" => h.max_run_ms = keep(self.duration(value, &fp, 1000, 30 * 86_400_000), &mut ok),
                "cron" => match self.cron(value, &fp) {
                    Some(c) => h.cron = Some(c),
                    None => ok = false,
                },
                "time_zone" => match self.text(value, &fp, "time_zone") {
                    Slot::Set(f) if f.v.trim().parse::<chrono_tz::Tz>().is_ok() => {
                        h.time_zone = Some(f.v.trim().to_string())
                    }
                    Slot::Set(f) => {
                        self.error(
                            f.pos,
                            &fp,
                            format!("unknown time zone {}: use an IANA name like Europe/Paris", quoted(&f.v)),
                        );
                        ok = false;
                    }
                    _ => ok = false,
                },
                // The key is a secret: its value is never shown.
                "key" => match self.text(value, &fp, "key") {
                    Slot::Set(f) => {
                        let k = f.v.trim();
                        if (8..=128).contains(&k.len())
                            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                        {
                            h.key = Some(k.to_string());
                        } else {
                            self.error(f.pos, &fp, "the key must be 8 to 128 letters, digits, `-` or `_`");
                            ok = false;
                        }
                    }
                    _ => ok = false,
                },
                _ => {}
            }
        }
        match (h.period_ms.is_some(), h.cron.is_some()) {
            (true, true) => {
                self.error(node.pos, path, "set `period` or `cron`, not both");
                ok = false;
            }
            (false, false) if ok => {
                self.error(node.pos, path, "missing: a heartbeat needs `period` (e.g. 1h) or `cron`");
                ok = false;
            }
            _ => {}
        }
        if h.time_zone.is_some() && h.period_ms.is_some() {
            self.error(node.pos, &join_key(path, "time_zone"), "applies to `cron` only");
            ok = false;
        }
        if ok {
            Slot::Set(F { v: h, pos: node.pos, written: String::new(), inherited: false })
        } else {
            Slot::Invalid
        }
    }

    /// A cron schedule of five fields (minute hour day month weekday).
    /// The schedule itself is computed where heartbeats are judged.
    fn cron(&mut self, node: &Node, path: &str) -> Option<String> {
        let Slot::Set(f) = self.text(node, path, "cron") else { return None };
        let fields: Vec<&str> = f.v.split_whitespace().collect();
        let allowed = |c: char| c.is_ascii_alphanumeric() || "*,-/?".contains(c);
        if fields.len() == 5 && fields.iter().all(|x| x.chars().all(allowed)) {
            let pattern = fields.join(" ");
            // The judge's own parser: a field out of range (minute 61) or
            // a date that never comes (30 February) is refused here, not
            // found at every slot.
            return match crate::heartbeat::schedule::Schedule::cron(&pattern, "UTC") {
                Ok(_) => Some(pattern),
                Err(e) => {
                    self.error(f.pos, path, e.to_string());
                    None
                }
            };
        }
        self.error(
            f.pos,
            path,
            format!("invalid cron schedule {}: write five fields, minute hour day month weekday, e.g. \"0 3 * * *\"", quoted(&f.v)),
        );
        None
    }

    pub(super) fn tls_version(&mut self, node: &Node, path: &str) -> Slot<TlsVersion> {
        let s = match self.scalar(node, path) {
            Ok(s) => s,
            Err(Bad::Reported) => return Slot::Invalid,
            Err(Bad::NotScalar) => return self.type_error(node, path, "\"1.2\" or \"1.3\""),
        };
        match (s.ty, TlsVersion::parse(&s.text)) {
            (PlainType::Str | PlainType::Float, Some(v)) => {
                Slot::Set(F { v, pos: node.pos, written: s.written, inherited: false })
            }
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!("unsupported TLS version {}: use \"1.2\" or \"1.3\"", quoted(&s.text)),
                );
                Slot::Invalid
            }
        }
    }

    pub(super) fn rcode(&mut self, node: &Node, path: &str) -> Slot<String> {
        match self.one_of(node, path, RCODES, "response code") {
            Some(v) => Slot::Set(F { v, pos: node.pos, written: String::new(), inherited: false }),
            None => Slot::Invalid,
        }
    }

    /// SHA-256 fingerprints, as hex with or without colons; stored as
    /// lower-case hex.
    pub(super) fn fingerprints(&mut self, node: &Node, path: &str) -> Slot<Vec<String>> {
        self.each(node, path, "a SHA-256 fingerprint", |text| {
            let hex: String = text.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
            if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                Ok(hex)
            } else {
                Err(format!("{} is not a SHA-256 fingerprint (64 hex digits, colons allowed)", quoted(text)))
            }
        })
    }

    /// Networks (`10.0.0.0/8`, `2001:db8::/32`) or single addresses.
    pub(super) fn cidrs(&mut self, node: &Node, path: &str) -> Slot<Vec<String>> {
        self.each(node, path, "a network like 10.0.0.0/8", |text| IpRange::parse(text).map(|r| r.to_string()))
    }

    /// A string or list of them, each mapped by `check` (or reported).
    fn each(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        check: impl Fn(&str) -> Result<String, String>,
    ) -> Slot<Vec<String>> {
        let Slot::Set(f) = self.string_list(node, path, what) else { return Slot::Invalid };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in f.v.iter().enumerate() {
            match check(item.v.trim()) {
                Ok(v) => out.push(v),
                Err(message) => {
                    self.error(item.pos, &item_path(node, path, i), message);
                    ok = false;
                }
            }
        }
        if ok {
            Slot::Set(F { v: out, pos: f.pos, written: String::new(), inherited: false })
        } else {
            Slot::Invalid
        }
    }
}

#[cfg(test)]
#[path = "kinds_tests.rs"]
mod tests;
