//! The checks file's kinds: each kind read from its URL, its own fields
//! normalised, and every field of another kind refused where it is written.

use crate::checks_file::declared::Validator;
use crate::checks_file::DeclaredCheck;
use crate::model::kinds::DnsTransport;
use crate::model::{CheckKind, StartTls, TlsVersion};

fn env(name: &str) -> Option<String> {
    (name == "PING_KEY").then(|| "k3y-from-env-123".to_string())
}

fn run(source: &str) -> (Vec<DeclaredCheck>, Vec<String>) {
    let mut v = Validator::new(&env);
    let (declared, diags) = v.validate("c.yaml", source);
    (declared.checks, diags.iter().map(|d| d.to_string()).collect())
}

fn ok(source: &str) -> Vec<DeclaredCheck> {
    let (checks, diags) = run(source);
    assert!(diags.is_empty(), "{diags:#?}");
    checks
}

#[test]
fn every_kind_reads_from_its_url() {
    let checks = ok(r#"
checks:
  - name: web
    url: https://example.com
  - name: pg
    url: tcp://db.internal:5432
    send: "PING\r\n"
    expect: { banner_contains: PONG, banner_regex: "^P.NG", max_response_time: 2s }
  - name: closed
    url: tcp://10.0.0.1:23
    expect: { connected: false }
  - name: mail
    url: tls://mail.example.com:587
    starttls: SMTP
    server_name: smtp.example.com
    expect:
      cert_days_left: 14
      cert_issuer_contains: "Let's Encrypt"
      cert_fingerprint_sha256: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
      tls_min_version: "1.3"
  - name: dns
    url: dns://1.1.1.1
    dns: { name: example.com, type: a, transport: tcp }
    expect: { answers_in: [93.184.0.0/16], answers_include: 93.184.215.14, min_ttl: 60, rcode: noerror }
  - name: dns-system
    url: dns://system
    dns: { name: example.com, type: MX }
    expect: { answers_exactly: ["10 mail.example.com"], min_ttl: 5m }
  - name: ping
    url: icmp://127.0.0.1
    packets: 5
    expect: { max_loss: 20, max_response_time: 100ms }
  - name: grpc
    url: grpcs://api.example.com:443
    grpc_service: shop.Cart
    expect: { serving: true }
  - name: backup
    heartbeat: { period: 1h, grace: 10m, max_run: 2h, key: "${PING_KEY}" }
  - name: nightly
    heartbeat: { cron: "0 3 * * *", time_zone: Europe/Paris, grace: 30m }
"#);
    let kinds: Vec<CheckKind> = checks.iter().map(|c| c.spec.kind).collect();
    use CheckKind::*;
    assert_eq!(kinds, [Http, Tcp, Tcp, Tls, Dns, Dns, Icmp, Grpc, Heartbeat, Heartbeat]);
    let pg = &checks[1].spec;
    assert_eq!(pg.url, "tcp://db.internal:5432");
    assert_eq!(pg.send.as_deref(), Some("PING\r\n"));
    assert_eq!(pg.expect.banner_contains, ["PONG"]);
    assert_eq!(pg.expect.max_response_time_ms, Some(2000));
    assert_eq!(pg.max_redirects, 0, "no HTTP defaults on a TCP check");
    assert_eq!(checks[2].spec.expect.connected, Some(false));
    let mail = &checks[3].spec;
    assert_eq!(mail.starttls, Some(StartTls::Smtp));
    assert_eq!(mail.server_name.as_deref(), Some("smtp.example.com"));
    assert_eq!(mail.expect.cert_days_left, Some(14));
    assert_eq!(mail.expect.cert_fingerprint_sha256, ["abcdef0123456789".repeat(4)]);
    assert_eq!(mail.expect.tls_min_version, Some(TlsVersion::V1_3));
    let dns = &checks[4].spec;
    let q = dns.dns.as_ref().unwrap();
    assert_eq!(
        (q.name.as_str(), q.record_type.as_str(), q.transport),
        ("example.com", "A", DnsTransport::Tcp)
    );
    assert_eq!(dns.expect.answers_in, ["93.184.0.0/16"]);
    assert_eq!(dns.expect.rcode.as_deref(), Some("NOERROR"));
    assert_eq!(dns.expect.min_ttl_s, Some(60));
    assert_eq!(checks[5].spec.expect.min_ttl_s, Some(300));
    assert_eq!(checks[6].spec.packets, Some(5));
    assert_eq!(checks[6].spec.expect.max_loss_percent, Some(20));
    assert_eq!(checks[7].spec.grpc_service.as_deref(), Some("shop.Cart"));
    assert_eq!(checks[7].spec.expect.serving, Some(true));
    let backup = checks[8].spec.heartbeat.as_ref().unwrap();
    assert_eq!(checks[8].spec.url, "");
    assert_eq!(
        (backup.period_ms, backup.grace_ms, backup.max_run_ms),
        (Some(3_600_000), 600_000, Some(7_200_000))
    );
    assert_eq!(backup.key.as_deref(), Some("k3y-from-env-123"));
    let nightly = checks[9].spec.heartbeat.as_ref().unwrap();
    assert_eq!(nightly.cron.as_deref(), Some("0 3 * * *"));
    assert_eq!(nightly.time_zone.as_deref(), Some("Europe/Paris"));
    // Every spec survives the job message.
    for c in &checks {
        let json = serde_json::to_string(&c.spec).unwrap();
        assert_eq!(serde_json::from_str::<crate::model::CheckSpec>(&json).unwrap(), c.spec, "{json}");
    }
}

#[test]
fn a_field_of_another_kind_names_the_kinds_it_belongs_to() {
    let (checks, diags) = run(r#"
checks:
  - name: tcp
    url: tcp://x:1
    method: POST
    expect: { status: 200, cert_days_left: 3, rcode: NOERROR }
  - name: web
    url: https://x
    packets: 3
    expect:
      banner_contains: x
      serving: true
  - name: beat
    heartbeat: { period: 1h }
    expect: { max_response_time: 1s }
"#);
    assert!(checks.is_empty());
    assert_eq!(
        diags,
        [
            "c.yaml:5:5: checks[0].method: `method` does not apply to a tcp check: it belongs to http checks",
            "c.yaml:6:15: checks[0].expect.status: `status` does not apply to a tcp check: it belongs to http checks",
            "c.yaml:6:28: checks[0].expect.cert_days_left: `cert_days_left` does not apply to a tcp check: it belongs to http and tls checks",
            "c.yaml:6:47: checks[0].expect.rcode: `rcode` does not apply to a tcp check: it belongs to dns checks",
            "c.yaml:9:5: checks[1].packets: `packets` does not apply to an http check: it belongs to icmp checks",
            "c.yaml:11:7: checks[1].expect.banner_contains: `banner_contains` does not apply to an http check: it belongs to tcp checks",
            "c.yaml:12:7: checks[1].expect.serving: `serving` does not apply to an http check: it belongs to grpc checks",
            "c.yaml:15:15: checks[2].expect.max_response_time: `max_response_time` does not apply to a heartbeat check: it belongs to http, tcp, tls, dns, icmp and grpc checks",
        ]
    );
}

#[test]
fn defaults_apply_to_the_checks_of_their_kinds_only() {
    let checks = ok(r#"
defaults:
  method: HEAD
  headers: { X-Env: prod }
  send: "hello\n"
  expect: { status: 204, cert_days_left: 10, max_response_time: 1s, connected: true }
checks:
  - name: web
    url: https://x
  - name: tcp
    url: tcp://x:1
  - name: tls
    url: tls://x:443
  - name: beat
    heartbeat: { period: 1h }
"#);
    let (web, tcp, tls, beat) = (&checks[0].spec, &checks[1].spec, &checks[2].spec, &checks[3].spec);
    assert_eq!((web.method.as_str(), web.expect.status.len(), web.send.as_deref()), ("HEAD", 1, None));
    assert_eq!(web.expect.connected, None);
    assert_eq!((tcp.method.as_str(), tcp.headers.len(), tcp.expect.status.len()), ("GET", 0, 0));
    assert_eq!((tcp.send.as_deref(), tcp.expect.connected), (Some("hello\n"), Some(true)));
    assert_eq!((tcp.expect.cert_days_left, tcp.expect.max_response_time_ms), (None, Some(1000)));
    assert_eq!((tls.expect.cert_days_left, tls.send.as_deref()), (Some(10), None));
    assert_eq!(beat.expect, crate::model::Expect::default());
    // An HTTP spec is what it was before kinds: no kind, no new key.
    let json = serde_json::to_value(web).unwrap();
    assert!(json.get("kind").is_none() && json.get("send").is_none(), "{json}");
}

#[test]
fn urls_and_kind_fields_are_checked() {
    let (_, diags) = run(r#"
checks:
  - name: a
    url: tcp://x
  - name: b
    url: icmp://x:7
  - name: c
    url: tcp://x:1/path
  - name: d
    url: dns://1.1.1.1
  - name: e
    url: dns://1.1.1.1
    dns: { name: x, type: PTR, transport: quic }
  - name: f
    url: dns://1.1.1.1
    dns: { type: MX }
    expect: { answers_in: 10.0.0.0/33, rcode: OK }
  - name: g
    url: tls://x:1
    starttls: ldap
    expect: { tls_min_version: "1.1", cert_fingerprint_sha256: abc }
  - name: h
    heartbeat: { period: 1h, cron: "* * * * *" }
  - name: i
    heartbeat: { cron: "0 3 * *", time_zone: Mars/Olympus, key: "no" }
  - name: j
    heartbeat: { grace: 1m }
  - name: k
"#);
    assert_eq!(
        diags,
        [
            "c.yaml:4:10: checks[0].url: URL \"tcp://x\" has no port: write tcp://host:port",
            "c.yaml:6:10: checks[1].url: URL \"icmp://x:7\": ICMP has no ports; write icmp://host",
            "c.yaml:8:10: checks[2].url: URL \"tcp://x:1/path\": a tcp URL is only a host and port, like tcp://host:port",
            "c.yaml:9:5: checks[3].dns: missing: a dns check needs `dns: {name: …, type: …}`",
            "c.yaml:13:27: checks[4].dns.type: unknown record type \"PTR\": use A, AAAA, CNAME, MX, TXT, NS, SOA, SRV, CAA",
            "c.yaml:13:43: checks[4].dns.transport: unknown transport \"quic\": use UDP, TCP",
            "c.yaml:16:12: checks[5].dns.name: missing: `dns` needs `name`",
            "c.yaml:17:27: checks[5].expect.answers_in: \"10.0.0.0/33\": the prefix length must be 0..=32",
            "c.yaml:17:47: checks[5].expect.rcode: unknown response code \"OK\": use NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED",
            "c.yaml:20:15: checks[6].starttls: unknown protocol \"ldap\": use smtp, imap, pop3, ftp, postgres",
            "c.yaml:21:32: checks[6].expect.tls_min_version: unsupported TLS version \"1.1\": use \"1.2\" or \"1.3\"",
            "c.yaml:21:64: checks[6].expect.cert_fingerprint_sha256: \"abc\" is not a SHA-256 fingerprint (64 hex digits, colons allowed)",
            "c.yaml:23:18: checks[7].heartbeat: set `period` or `cron`, not both",
            "c.yaml:25:24: checks[8].heartbeat.cron: invalid cron schedule \"0 3 * *\": write five fields, minute hour day month weekday, e.g. \"0 3 * * *\"",
            "c.yaml:25:46: checks[8].heartbeat.time_zone: unknown time zone \"Mars/Olympus\": use an IANA name like Europe/Paris",
            "c.yaml:25:65: checks[8].heartbeat.key: the key must be 8 to 128 letters, digits, `-` or `_`",
            "c.yaml:27:18: checks[9].heartbeat: missing: a heartbeat needs `period` (e.g. 1h) or `cron`",
            "c.yaml:28:5: checks[10].url: missing: every check needs a `url` (or, for a heartbeat, `heartbeat:`)",
        ]
    );
}

#[test]
fn gatus_names_get_a_hint() {
    let (_, diags) = run(r#"
checks:
  - name: a
    url: dns://8.8.8.8
    conditions: ["[CONNECTED] == true"]
    dns: { query-name: example.com, query-type: A }
"#);
    assert_eq!(
        diags,
        [
            "c.yaml:5:5: checks[0].conditions: unknown field `conditions`: use `expect` (status, body_contains, json, connected, rcode, serving, …)",
            "c.yaml:6:12: checks[0].dns.query-name: unknown field `query-name`: use `dns: {name: …}`",
            "c.yaml:6:12: checks[0].dns.name: missing: `dns` needs `name`",
            "c.yaml:6:37: checks[0].dns.query-type: unknown field `query-type`: use `dns: {type: …}`",
        ]
    );
}
