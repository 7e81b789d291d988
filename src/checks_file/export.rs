//! Stored checks back into checks-file form, for `checks list -o yaml`
//! and, as JSON, for the API's `GET /checks/{name}` ([`to_json`]).
//!
//! The output is itself a valid checks file (apply it and nothing changes),
//! except that secrets are masked: fill them in (with `${VAR}`) before
//! applying it elsewhere. Fields at their default are left out.

use yaml_rust2::yaml::{Hash, Yaml};
use yaml_rust2::YamlEmitter;

use super::check::DEFAULT_REDIRECTS;
use super::reader::format_ms;
use crate::model::kinds::DnsTransport;
use crate::model::{CheckKind, CheckSpec, Expect, StatusMatch};

/// One stored check, as `checks list` reads it.
#[derive(Debug, Clone)]
pub struct StoredCheck {
    pub name: String,
    pub enabled: bool,
    pub interval_ms: i32,
    pub spec: CheckSpec,
}

fn s(text: &str) -> Yaml {
    // A stored "${" came from "$${" in a file: write it back escaped so
    // that applying the export does not expand it.
    Yaml::String(text.replace("${", "$${"))
}

fn strings(list: &[String]) -> Yaml {
    Yaml::Array(list.iter().map(|x| s(x)).collect())
}

fn json(value: &serde_json::Value) -> Yaml {
    match value {
        serde_json::Value::Null => Yaml::Null,
        serde_json::Value::Bool(b) => Yaml::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        serde_json::Value::String(text) => s(text),
        serde_json::Value::Array(items) => Yaml::Array(items.iter().map(json).collect()),
        serde_json::Value::Object(map) => {
            let mut hash = Hash::new();
            for (k, v) in map {
                hash.insert(s(k), json(v));
            }
            Yaml::Hash(hash)
        }
    }
}

fn map_of(pairs: &std::collections::BTreeMap<String, String>) -> Yaml {
    let mut hash = Hash::new();
    for (k, v) in pairs {
        hash.insert(s(k), s(v));
    }
    Yaml::Hash(hash)
}

/// The check as a checks-file entry (the spec should be redacted first).
pub fn to_yaml(check: &StoredCheck) -> Yaml {
    let spec = &check.spec;
    let mut h = Hash::new();
    let mut put = |k: &str, v: Yaml| {
        h.insert(Yaml::String(k.to_string()), v);
    };
    put("name", s(&check.name));
    if let Some(d) = &spec.description {
        put("description", s(d));
    }
    if !spec.url.is_empty() {
        put("url", s(&spec.url));
    }
    if !check.enabled {
        put("enabled", Yaml::Boolean(false));
    }
    put("interval", Yaml::String(format_ms(check.interval_ms.max(0) as u64)));
    put("timeout", Yaml::String(format_ms(spec.timeout_ms)));
    if spec.method != "GET" {
        put("method", s(&spec.method));
    }
    if !spec.headers.is_empty() {
        put("headers", map_of(&spec.headers));
    }
    if let Some(body) = &spec.body {
        put("body", s(body));
    }
    if spec.kind == CheckKind::Http && spec.max_redirects != DEFAULT_REDIRECTS {
        put(
            "follow_redirects",
            if spec.max_redirects == 0 {
                Yaml::Boolean(false)
            } else {
                Yaml::Integer(spec.max_redirects.into())
            },
        );
    }
    if !spec.tls_verify {
        put("tls_verify", Yaml::Boolean(false));
    }
    if let Some(limit) = spec.body_limit {
        put("body_limit", Yaml::Integer(limit.min(i64::MAX as u64) as i64));
    }
    put_kind_fields(spec, &mut put);
    let e = &spec.expect;
    let mut x = Hash::new();
    let mut putx = |k: &str, v: Yaml| {
        x.insert(Yaml::String(k.to_string()), v);
    };
    put_kind_expect(e, &mut putx);
    if !e.status.is_empty() {
        putx(
            "status",
            Yaml::Array(
                e.status
                    .iter()
                    .map(|m| match m {
                        StatusMatch::Code(c) => Yaml::Integer((*c).into()),
                        other => Yaml::String(other.to_string()),
                    })
                    .collect(),
            ),
        );
    }
    if let Some(ms) = e.max_response_time_ms {
        putx("max_response_time", Yaml::String(format_ms(ms)));
    }
    if !e.body_contains.is_empty() {
        putx("body_contains", strings(&e.body_contains));
    }
    if !e.body_not_contains.is_empty() {
        putx("body_not_contains", strings(&e.body_not_contains));
    }
    if !e.body_regex.is_empty() {
        putx("body_regex", strings(&e.body_regex));
    }
    if !e.json.is_empty() {
        let mut j = Hash::new();
        for (k, v) in &e.json {
            j.insert(s(k), json(v));
        }
        putx("json", Yaml::Hash(j));
    }
    if let Some(days) = e.cert_days_left {
        putx("cert_days_left", Yaml::Integer(days.into()));
    }
    if !x.is_empty() {
        put("expect", Yaml::Hash(x));
    }
    if spec.failure_threshold != 1 {
        put("failure_threshold", Yaml::Integer(spec.failure_threshold.into()));
    }
    if spec.success_threshold != 1 {
        put("success_threshold", Yaml::Integer(spec.success_threshold.into()));
    }
    if !spec.labels.is_empty() {
        put("labels", map_of(&spec.labels));
    }
    if !spec.alerts.is_empty() {
        put("alerts", strings(&spec.alerts));
    }
    Yaml::Hash(h)
}

/// The fields of the kinds beyond HTTP.
fn put_kind_fields(spec: &CheckSpec, put: &mut impl FnMut(&str, Yaml)) {
    let text = |t: &Option<String>| t.as_deref().map(s);
    for (key, value) in [
        ("send", text(&spec.send)),
        ("starttls", spec.starttls.map(|t| Yaml::String(t.as_str().into()))),
        ("server_name", text(&spec.server_name)),
        ("packets", spec.packets.map(|n| Yaml::Integer(n.into()))),
        ("grpc_service", text(&spec.grpc_service)),
    ] {
        if let Some(v) = value {
            put(key, v);
        }
    }
    if let Some(q) = &spec.dns {
        let mut d = Hash::new();
        d.insert(Yaml::String("name".into()), s(&q.name));
        d.insert(Yaml::String("type".into()), Yaml::String(q.record_type.clone()));
        if q.transport == DnsTransport::Tcp {
            d.insert(Yaml::String("transport".into()), Yaml::String("tcp".into()));
        }
        put("dns", Yaml::Hash(d));
    }
    if let Some(hb) = &spec.heartbeat {
        let mut d = Hash::new();
        let mut add = |k: &str, v: Yaml| {
            d.insert(Yaml::String(k.into()), v);
        };
        if let Some(p) = hb.period_ms {
            add("period", Yaml::String(format_ms(p)));
        }
        if let Some(c) = &hb.cron {
            add("cron", s(c));
        }
        if let Some(tz) = &hb.time_zone {
            add("time_zone", s(tz));
        }
        if hb.grace_ms > 0 {
            add("grace", Yaml::String(format_ms(hb.grace_ms)));
        }
        if let Some(m) = hb.max_run_ms {
            add("max_run", Yaml::String(format_ms(m)));
        }
        if let Some(k) = &hb.key {
            add("key", s(k));
        }
        put("heartbeat", Yaml::Hash(d));
    }
}

/// The assertions of the kinds beyond HTTP.
fn put_kind_expect(e: &Expect, putx: &mut impl FnMut(&str, Yaml)) {
    let lists = [
        ("banner_contains", &e.banner_contains),
        ("banner_regex", &e.banner_regex),
        ("cert_issuer_contains", &e.cert_issuer_contains),
        ("cert_fingerprint_sha256", &e.cert_fingerprint_sha256),
        ("answers_include", &e.answers_include),
        ("answers_exactly", &e.answers_exactly),
        ("answers_in", &e.answers_in),
    ];
    for (key, list) in lists {
        if !list.is_empty() {
            putx(key, strings(list));
        }
    }
    let flags = [("connected", e.connected), ("serving", e.serving)];
    for (key, flag) in flags {
        if let Some(b) = flag {
            putx(key, Yaml::Boolean(b));
        }
    }
    if let Some(v) = e.tls_min_version {
        putx("tls_min_version", Yaml::String(v.as_str().into()));
    }
    if let Some(r) = &e.rcode {
        putx("rcode", Yaml::String(r.clone()));
    }
    if let Some(t) = e.min_ttl_s {
        putx("min_ttl", Yaml::Integer(t.into()));
    }
    if let Some(l) = e.max_loss_percent {
        putx("max_loss", Yaml::Integer(l.into()));
    }
}

/// The check as a checks-file entry in JSON: the very entry [`to_yaml`]
/// builds (one shape, written twice), so `PUT` of a `GET` applies back to
/// the same check (secrets aside).
pub fn to_json(check: &StoredCheck) -> serde_json::Value {
    yaml_to_json(&to_yaml(check))
}

fn yaml_to_json(y: &Yaml) -> serde_json::Value {
    use serde_json::Value;
    match y {
        Yaml::Integer(i) => Value::from(*i),
        // Written from a finite f64 (`json` above), so it parses back.
        Yaml::Real(text) => text.parse::<f64>().ok().map_or(Value::Null, Value::from),
        Yaml::String(text) => Value::String(text.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Hash(hash) => Value::Object(
            hash.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(text) => text.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// A whole checks file (`checks:` and the list).
pub fn to_file(checks: &[StoredCheck]) -> Result<String, yaml_rust2::EmitError> {
    let mut doc = Hash::new();
    doc.insert(Yaml::String("checks".into()), Yaml::Array(checks.iter().map(to_yaml).collect()));
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(&Yaml::Hash(doc))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks_file::declared::Validator;

    #[test]
    fn export_applies_back_to_the_same_checks() {
        let source = r#"
checks:
  - name: a
    description: "Shop: home page"
    url: https://example.com/?q=1
    interval: 90s
    timeout: 1500ms
    method: POST
    headers: { X-A: "1" }
    body: "cost $${NOT_A_VAR}"
    follow_redirects: false
    tls_verify: false
    body_limit: 64KiB
    enabled: false
    expect:
      status: [200, "3xx", "400-404"]
      max_response_time: 1s
      body_contains: ["true", "Welcome"]
      body_not_contains: error
      body_regex: "v[0-9]+"
      json: { "/status": "UP", "/n": 1, "/f": 1.5, "/ok": true, "/x": null, "/l": [1, "a"] }
      cert_days_left: 14
    failure_threshold: 3
    success_threshold: 2
    labels: { team: web, tier: "1" }
    alerts: [ops, "on-call"]
  - name: tcp
    url: tcp://db:5432
    send: "PING\r\n"
    expect: { connected: true, banner_contains: PONG, banner_regex: "^P", max_response_time: 1s }
  - name: tls
    url: tls://mail:25
    starttls: smtp
    server_name: mail.example.com
    tls_verify: false
    expect:
      cert_days_left: 7
      cert_issuer_contains: R3
      cert_fingerprint_sha256: ["0000000000000000000000000000000000000000000000000000000000000000"]
      tls_min_version: "1.2"
  - name: dns
    url: dns://10.0.0.53:5353
    dns: { name: example.com, type: AAAA, transport: tcp }
    expect: { rcode: NXDOMAIN, answers_include: "::1", answers_exactly: ["::1"], answers_in: "::1/128", min_ttl: 30 }
  - name: icmp
    url: icmp://127.0.0.1
    packets: 4
    expect: { max_loss: 25 }
  - name: grpc
    url: grpc://api:50051
    grpc_service: x.Y
    expect: { serving: false }
  - name: beat
    heartbeat: { cron: "0 3 * * *", time_zone: Europe/Paris, grace: 30m, max_run: 2h, key: abcdefgh12 }
  - name: beat2
    heartbeat: { period: 1h }
"#;
        let none = |_: &str| None;
        let mut v = Validator::new(&none);
        let (declared, diags) = v.validate("a.yaml", source);
        let checks = declared.checks;
        assert!(diags.is_empty(), "{diags:?}");
        let stored: Vec<StoredCheck> = checks
            .iter()
            .map(|c| StoredCheck {
                name: c.name.clone(),
                enabled: c.enabled,
                interval_ms: c.interval_ms as i32,
                spec: c.spec.clone(),
            })
            .collect();
        let text = to_file(&stored).unwrap();
        let (again, diags) = v.validate("export.yaml", &text);
        let again = again.checks;
        assert!(diags.is_empty(), "{diags:?}\n{text}");
        assert_eq!(again[0].spec, checks[0].spec, "{text}");
        for (a, c) in again.iter().zip(&checks) {
            assert_eq!(a.spec, c.spec, "{text}");
        }
        assert_eq!(again.len(), checks.len());
        assert_eq!((again[0].interval_ms, again[0].enabled), (checks[0].interval_ms, checks[0].enabled));
    }
}
