//! The declared check, as stored in `checks.spec` and carried in every job.
//!
//! This is the normalised form: the checks file's conveniences (`${VAR}`,
//! `follow_redirects: true`, a single string where a list is allowed,
//! defaults) are resolved before a spec is stored, so the worker reads
//! exactly what it runs.
//!
//! Every spec has a [`CheckKind`] (`kinds.rs`). HTTP is the default and is
//! not written: specs stored and jobs queued before kinds existed read as
//! HTTP, and an HTTP spec serialises exactly as it did, so `checks apply`
//! of an unchanged file stays a no-op (it compares the stored JSON with
//! the declared spec's, key by key). The fields of the other kinds are
//! flat and optional, each left out when unset, for the same reason: one
//! spec shape, and an HTTP spec that does not change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::kinds::{CheckKind, DnsQuery, HeartbeatSpec, StartTls, TlsVersion};

/// `Debug` is written by hand (in `redact.rs`): header values, the body and a password in
/// the URL are secrets, and a `{:?}` in a log line must not reveal them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// The probe that runs the check. Absent means HTTP (specs stored and
    /// jobs queued before kinds existed), and HTTP is left out when
    /// serialising, so an HTTP spec's JSON is what it always was.
    #[serde(default, skip_serializing_if = "CheckKind::is_http")]
    pub kind: CheckKind,
    /// The target: http(s)://, tcp://, tls://, dns://, icmp://, grpc(s)://.
    /// Empty for a heartbeat (it has no target: it is pinged).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// HTTP method, upper case.
    #[serde(default = "default_method", skip_serializing_if = "is_get")]
    pub method: String,
    /// Request headers (values may be secrets: never print them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Hard deadline of the whole check, in milliseconds.
    pub timeout_ms: u64,
    /// Redirects followed at most; 0 means a redirect is the response.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_redirects: u32,
    /// Verify the server's TLS certificate and name.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub tls_verify: bool,
    /// Response body bytes read at most; `None` uses the worker's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<u64>,
    /// TCP: bytes written once connected, before the banner is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// TLS: the plain-text protocol spoken before the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starttls: Option<StartTls>,
    /// TLS and gRPC: the name sent (SNI) and verified, instead of the URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// DNS: the question asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsQuery>,
    /// ICMP: echo requests sent (`None`: [`DEFAULT_PACKETS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets: Option<u32>,
    /// gRPC: the service asked about; empty asks about the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_service: Option<String>,
    /// Heartbeat: when pings are due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatSpec>,
    /// What "up" means.
    #[serde(default, skip_serializing_if = "Expect::is_default")]
    pub expect: Expect,
    /// Consecutive failures before the check is DOWN.
    #[serde(default = "default_one", skip_serializing_if = "is_one")]
    pub failure_threshold: u32,
    /// Consecutive successes before a DOWN check is UP again.
    #[serde(default = "default_one", skip_serializing_if = "is_one")]
    pub success_threshold: u32,
    /// Free-form labels, shown in status and alerts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Names of notification channels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<String>,
    /// What the check watches, in words, for people (status, alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Assertions on the response; all must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Expect {
    /// Accepted status codes; empty means 200–399.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<StatusMatch>,
    /// Slowest acceptable total time, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_time_ms: Option<u64>,
    /// Substrings the body must contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_contains: Vec<String>,
    /// Substrings the body must not contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_not_contains: Vec<String>,
    /// Regular expressions the body must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub body_regex: Vec<String>,
    /// JSON pointer (RFC 6901) → expected value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub json: BTreeMap<String, serde_json::Value>,
    /// Fewest days the TLS certificate may have left (HTTPS, TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_days_left: Option<u32>,
    /// TCP: whether the port must accept (`None`: true); false asserts it is closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    /// TCP: substrings the banner (the first bytes read) must contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banner_contains: Vec<String>,
    /// TCP: regular expressions the banner must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub banner_regex: Vec<String>,
    /// TLS: substrings the certificate's issuer (its RFC 4514 text) must contain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cert_issuer_contains: Vec<String>,
    /// TLS: SHA-256 fingerprints (lower-case hex, no colons) of which the
    /// leaf certificate's must be one (pinning).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cert_fingerprint_sha256: Vec<String>,
    /// TLS: the oldest protocol version accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_min_version: Option<TlsVersion>,
    /// DNS: the response code (`None`: NOERROR), upper case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    /// DNS: values that must all be among the answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers_include: Vec<String>,
    /// DNS: the answers must be exactly this set, in any order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers_exactly: Vec<String>,
    /// DNS (A, AAAA): networks every answer must be in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers_in: Vec<String>,
    /// DNS: the smallest TTL any answer may have, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ttl_s: Option<u32>,
    /// ICMP: the largest share of echo requests that may go unanswered,
    /// in percent (`None`: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_loss_percent: Option<u8>,
    /// gRPC: whether the health service must answer SERVING (`None`: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
}

/// Echo requests an ICMP check sends when it sets none.
pub const DEFAULT_PACKETS: u32 = 3;
/// Most echo requests one ICMP check may send.
pub const MAX_PACKETS: u32 = 100;

/// One accepted status: a code (`200`), a class (`"2xx"`) or a range
/// (`"200-299"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    Class(u8),
    Range(u16, u16),
}

impl StatusMatch {
    pub fn matches(&self, status: u16) -> bool {
        match *self {
            StatusMatch::Code(c) => status == c,
            StatusMatch::Class(c) => status / 100 == c as u16,
            StatusMatch::Range(lo, hi) => (lo..=hi).contains(&status),
        }
    }

    /// Parses `"2xx"`, `"200-299"` or `"200"`.
    pub fn parse(text: &str) -> Result<StatusMatch, String> {
        let t = text.trim();
        let bad = || {
            format!("invalid status \"{text}\": use a code (200), a class (\"2xx\") or a range (\"200-299\")")
        };
        if let Some(d) = t.strip_suffix("xx").or_else(|| t.strip_suffix("XX")) {
            return match d.parse::<u8>() {
                Ok(c @ 1..=5) if d.len() == 1 => Ok(StatusMatch::Class(c)),
                _ => Err(bad()),
            };
        }
        if let Some((lo, hi)) = t.split_once('-') {
            let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
            let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
            if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
                return Err(bad());
            }
            return Ok(StatusMatch::Range(lo, hi));
        }
        match t.parse::<u16>() {
            Ok(c @ 100..=599) => Ok(StatusMatch::Code(c)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusMatch::Code(c) => write!(f, "{c}"),
            StatusMatch::Class(c) => write!(f, "{c}xx"),
            StatusMatch::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

impl Serialize for StatusMatch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StatusMatch::Code(c) => s.serialize_u16(*c),
            other => s.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for StatusMatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Code(c) => StatusMatch::parse(&c.to_string()).map_err(serde::de::Error::custom),
            Raw::Text(t) => StatusMatch::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Expect {
    /// Whether `status` is accepted (200–399 when nothing is declared).
    pub fn status_ok(&self, status: u16) -> bool {
        if self.status.is_empty() {
            (200..=399).contains(&status)
        } else {
            self.status.iter().any(|m| m.matches(status))
        }
    }
}

impl Expect {
    fn is_default(&self) -> bool {
        self == &Expect::default()
    }
}

// Defaults are left out when serialising: a spec is stored once per check
// and copied into every job, and the scheduler keeps a million of them in
// memory, so the common case should cost a URL and a timeout, not a page.
fn is_get(method: &str) -> bool {
    method == "GET"
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn default_method() -> String {
    "GET".to_string()
}

fn default_true() -> bool {
    true
}

fn default_one() -> u32 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_matchers() {
        assert_eq!(StatusMatch::parse("2xx"), Ok(StatusMatch::Class(2)));
        assert_eq!(StatusMatch::parse("200-204"), Ok(StatusMatch::Range(200, 204)));
        assert_eq!(StatusMatch::parse("404"), Ok(StatusMatch::Code(404)));
        for bad in ["6xx", "0xx", "22xx", "abc", "99", "600", "300-200", ""] {
            assert!(StatusMatch::parse(bad).is_err(), "{bad}");
        }
        let e = Expect::default();
        assert!(e.status_ok(200) && e.status_ok(302) && !e.status_ok(404) && !e.status_ok(500));
        let e = Expect { status: vec![StatusMatch::Code(404), StatusMatch::Class(5)], ..Expect::default() };
        assert!(e.status_ok(404) && e.status_ok(503) && !e.status_ok(200));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let spec: CheckSpec = serde_json::from_str(
            r#"{"url":"https://u:pa55word@x/","timeout_ms":1,"headers":{"Authorization":"Bearer t0ken"},"body":"b0dy"}"#,
        )
        .unwrap();
        let text = format!("{spec:?}");
        for secret in ["pa55word", "t0ken", "b0dy"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("Authorization"), "{text}");
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec: CheckSpec = serde_json::from_str(
            r#"{"url":"http://x/","timeout_ms":1000,"expect":{"status":[200,"3xx"],"json":{"/a":1}}}"#,
        )
        .unwrap();
        assert_eq!(spec.method, "GET");
        assert!(spec.tls_verify);
        assert_eq!(spec.failure_threshold, 1);
        let again: CheckSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(spec, again);
        let minimal: CheckSpec = serde_json::from_str(r#"{"url":"http://x/","timeout_ms":1000}"#).unwrap();
        assert_eq!(serde_json::to_string(&minimal).unwrap(), r#"{"url":"http://x/","timeout_ms":1000}"#);
    }

    #[test]
    fn a_spec_without_a_kind_is_http() {
        // As stored in checks.spec before kinds existed.
        let old: CheckSpec = serde_json::from_str(r#"{"url":"http://x/","timeout_ms":1000}"#).unwrap();
        assert_eq!(old.kind, CheckKind::Http);
        let explicit: CheckSpec =
            serde_json::from_str(r#"{"kind":"http","url":"http://x/","timeout_ms":1000}"#).unwrap();
        assert_eq!(explicit, old);
        assert_eq!(CheckKind::Http.to_string(), "http");
        assert_eq!(serde_json::to_value(CheckKind::Http).unwrap(), "http");
        assert!(
            serde_json::from_str::<CheckSpec>(r#"{"kind":"HTTP","url":"http://x/","timeout_ms":1}"#).is_err()
        );
        assert!(serde_json::from_str::<CheckSpec>(r#"{"kind":"carrier-pigeon","url":"u","timeout_ms":1}"#)
            .is_err());
    }

    #[test]
    fn an_http_spec_serialises_as_before_kinds() {
        // `checks apply` compares the stored JSON with the declared spec's
        // key by key: an unchanged file must plan no update after the
        // upgrade, so the default kind is not written.
        let stored = serde_json::json!({
            "url": "https://x/", "timeout_ms": 1000, "method": "POST",
            "headers": {"A": "1"}, "expect": {"status": [200, "3xx"]}, "labels": {"team": "web"}
        });
        let spec: CheckSpec = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(spec.kind, CheckKind::Http);
        assert_eq!(serde_json::to_value(&spec).unwrap(), stored);
        let again: CheckSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
    }
}
