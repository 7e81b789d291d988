//! What the kinds of check other than HTTP declare besides the common
//! fields: which URL scheme picks which kind, and the per-kind settings
//! a [`CheckSpec`](super::CheckSpec) carries (STARTTLS protocol, DNS
//! question, heartbeat schedule). Pure data, shared by the checks file
//! (which reads them), the scheduler and the worker (which run them).

use serde::{Deserialize, Serialize};

/// What kind of probe runs a check. Serialised in lower case (`"http"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// An HTTP(S) request and assertions on its response.
    #[default]
    Http,
    /// A TCP connection (optionally a line sent and a banner read).
    Tcp,
    /// A TLS handshake (optionally after STARTTLS) and its certificate.
    Tls,
    /// One DNS question to a server and assertions on every answer.
    Dns,
    /// ICMP echo requests and their loss and round-trip times.
    Icmp,
    /// The gRPC health protocol (`grpc.health.v1.Health/Check`).
    Grpc,
    /// Pings pushed to the web role by the job being watched.
    Heartbeat,
}

/// Every kind, in the order the docs list them.
pub const ALL_KINDS: &[CheckKind] = &[
    CheckKind::Http,
    CheckKind::Tcp,
    CheckKind::Tls,
    CheckKind::Dns,
    CheckKind::Icmp,
    CheckKind::Grpc,
    CheckKind::Heartbeat,
];

impl CheckKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Http => "http",
            CheckKind::Tcp => "tcp",
            CheckKind::Tls => "tls",
            CheckKind::Dns => "dns",
            CheckKind::Icmp => "icmp",
            CheckKind::Grpc => "grpc",
            CheckKind::Heartbeat => "heartbeat",
        }
    }

    /// The kind a URL scheme declares (as in Gatus: the scheme is the
    /// kind); `None` for a scheme no kind uses. A heartbeat has no URL.
    pub fn from_scheme(scheme: &str) -> Option<CheckKind> {
        Some(match scheme {
            "http" | "https" => CheckKind::Http,
            "tcp" => CheckKind::Tcp,
            "tls" => CheckKind::Tls,
            "dns" => CheckKind::Dns,
            "icmp" => CheckKind::Icmp,
            "grpc" | "grpcs" => CheckKind::Grpc,
            _ => return None,
        })
    }

    /// The URL schemes accepted, for messages.
    pub const SCHEMES: &'static str = "http, https, tcp, tls, dns, icmp, grpc or grpcs";

    pub(super) fn is_http(&self) -> bool {
        *self == CheckKind::Http
    }
}

impl std::fmt::Display for CheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The plain-text protocol a TLS check speaks before asking for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartTls {
    Smtp,
    Imap,
    Pop3,
    Ftp,
    Postgres,
}

impl StartTls {
    pub const ALL: &'static [(&'static str, StartTls)] = &[
        ("smtp", StartTls::Smtp),
        ("imap", StartTls::Imap),
        ("pop3", StartTls::Pop3),
        ("ftp", StartTls::Ftp),
        ("postgres", StartTls::Postgres),
    ];

    pub fn parse(text: &str) -> Option<StartTls> {
        StartTls::ALL.iter().find(|(name, _)| name.eq_ignore_ascii_case(text.trim())).map(|(_, s)| *s)
    }

    pub fn as_str(&self) -> &'static str {
        StartTls::ALL.iter().find(|(_, s)| s == self).map_or("", |(name, _)| name)
    }
}

/// The oldest TLS version a TLS check accepts (`expect.tls_min_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

impl TlsVersion {
    pub fn parse(text: &str) -> Option<TlsVersion> {
        match text.trim().trim_start_matches("TLS").trim_start_matches("tls").trim() {
            "1.2" => Some(TlsVersion::V1_2),
            "1.3" => Some(TlsVersion::V1_3),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }
}

/// DNS record types a DNS check may ask for.
pub const RECORD_TYPES: &[&str] = &["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA"];

/// Response codes `expect.rcode` may name.
pub const RCODES: &[&str] = &["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

/// How a DNS check reaches its server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsTransport {
    #[default]
    Udp,
    Tcp,
}

impl DnsTransport {
    fn is_udp(&self) -> bool {
        *self == DnsTransport::Udp
    }
}

/// The question a DNS check asks (`dns:` in the checks file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsQuery {
    /// The name asked about, as written (`example.com`).
    pub name: String,
    /// The record type, upper case (one of [`RECORD_TYPES`]).
    #[serde(rename = "type")]
    pub record_type: String,
    #[serde(default, skip_serializing_if = "DnsTransport::is_udp")]
    pub transport: DnsTransport,
}

/// When a heartbeat's pings are due (`heartbeat:` in the checks file).
/// Exactly one of `period_ms` and `cron` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatSpec {
    /// A success ping is due every period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_ms: Option<u64>,
    /// A success ping is due at each time of this cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The IANA time zone the cron schedule reads in (UTC when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// How late a ping may be before the slot is down.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grace_ms: u64,
    /// Longest a run may take from its `start` ping to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_run_ms: Option<u64>,
    /// The ping URL's key when the file sets one (`${VAR}`); a secret.
    /// Absent: one is generated once per check and kept across applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_pick_kinds() {
        for (scheme, kind) in [
            ("http", CheckKind::Http),
            ("https", CheckKind::Http),
            ("tcp", CheckKind::Tcp),
            ("tls", CheckKind::Tls),
            ("dns", CheckKind::Dns),
            ("icmp", CheckKind::Icmp),
            ("grpc", CheckKind::Grpc),
            ("grpcs", CheckKind::Grpc),
        ] {
            assert_eq!(CheckKind::from_scheme(scheme), Some(kind), "{scheme}");
        }
        for other in ["ftp", "HTTP", "", "heartbeat", "udp"] {
            assert_eq!(CheckKind::from_scheme(other), None, "{other}");
        }
        for kind in ALL_KINDS {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
            assert_eq!(kind.to_string(), kind.as_str());
        }
    }

    #[test]
    fn starttls_and_tls_versions_parse() {
        assert_eq!(StartTls::parse("SMTP"), Some(StartTls::Smtp));
        assert_eq!(StartTls::parse("postgres"), Some(StartTls::Postgres));
        assert_eq!(StartTls::parse("ldap"), None);
        for (name, s) in StartTls::ALL {
            assert_eq!(s.as_str(), *name);
            assert_eq!(serde_json::to_value(s).unwrap(), *name);
        }
        assert_eq!(TlsVersion::parse("1.2"), Some(TlsVersion::V1_2));
        assert_eq!(TlsVersion::parse("TLS1.3"), Some(TlsVersion::V1_3));
        assert_eq!(TlsVersion::parse("1.1"), None);
        assert!(TlsVersion::V1_2 < TlsVersion::V1_3);
        assert_eq!(serde_json::to_value(TlsVersion::V1_3).unwrap(), "1.3");
    }

    #[test]
    fn a_dns_query_serialises_compactly() {
        let q =
            DnsQuery { name: "example.com".into(), record_type: "A".into(), transport: DnsTransport::Udp };
        assert_eq!(serde_json::to_string(&q).unwrap(), r#"{"name":"example.com","type":"A"}"#);
        let tcp: DnsQuery = serde_json::from_str(r#"{"name":"x","type":"MX","transport":"tcp"}"#).unwrap();
        assert_eq!(tcp.transport, DnsTransport::Tcp);
    }
}
