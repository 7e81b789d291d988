//! Where a DNS check is timed: one question to the check's server (or
//! the system's, `dns://system`), the server judged by the deny list like
//! any target, and every answer of the asked type checked, not only the
//! first: the response code, values that must be present, the exact set,
//! networks every address must be in, and the smallest TTL.
//!
//! Phases: dns (only when the server is written as a name), query.
//! Values compare as DNS means them: addresses as addresses (`::1` is
//! `0:0::1`), names without case or the final dot; TXT data exactly.

use std::net::IpAddr;

use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::RecordType;
use tokio::time::Instant;
use url::Host;

use super::run::{Run, Verdict};
use crate::model::{CheckOutcome, CheckSpec, DnsQuery, ErrorClass, Expect};
use crate::net::deny::{DenyList, IpRange};
use crate::net::dial::{host_port, ms_since, resolve_allowed};
use crate::net::dns_query::{self, QueryError};
use crate::net::http::{Failure, Phase, Progress};

/// Runs DNS checks. Cheap to share.
pub struct DnsProbe {
    deny: DenyList,
}

/// One answer, as the assertions see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Normalised value (see [`normalise`]).
    pub value: String,
    pub ttl: u32,
}

impl DnsProbe {
    pub fn new(deny: DenyList) -> DnsProbe {
        DnsProbe { deny }
    }

    pub async fn run(&self, spec: &CheckSpec) -> CheckOutcome {
        let mut run = Run::start(spec);
        let verdict =
            tokio::time::timeout_at(run.deadline(), self.execute(spec, &mut run.progress)).await.ok();
        run.finish(verdict, spec.expect.max_response_time_ms)
    }

    async fn execute(&self, spec: &CheckSpec, p: &mut Progress) -> Verdict {
        let question = spec
            .dns
            .as_ref()
            .ok_or_else(|| Failure::new(ErrorClass::Protocol, "a dns check needs `dns: {name, type}`"))?;
        let (host, port) = host_port(&spec.url, 53)?;
        let host = match host {
            Host::Domain(d) if d.eq_ignore_ascii_case("system") => match dns_query::system_server() {
                Some(IpAddr::V4(ip)) => Host::Ipv4(ip),
                Some(IpAddr::V6(ip)) => Host::Ipv6(ip),
                None => {
                    return Err(Failure::new(ErrorClass::Dns, "no DNS server in the system configuration"))
                }
            },
            other => other,
        };
        // The server counts as a target: a DNS check must not reach a
        // resolver on a denied network either.
        let server = resolve_allowed(&host, port, &self.deny, p).await?[0];
        p.phase = Phase::Query;
        let started = Instant::now();
        let response =
            dns_query::ask(server, &question.name, &question.record_type, question.transport).await;
        p.timings.query_ms = Some(ms_since(started));
        let response = response.map_err(|e| match e {
            QueryError::Io(why) if why.contains("refused") => {
                Failure::new(ErrorClass::Refused, format!("{server}: {why}"))
            }
            other => Failure::new(ErrorClass::Protocol, format!("{server}: {other}")),
        })?;
        let (rcode, answers) = read(&response, question);
        Ok(judge(&spec.expect, question, &rcode, &answers))
    }
}

/// The response code's name and the answers of the asked type.
fn read(response: &Message, question: &DnsQuery) -> (String, Vec<Answer>) {
    let asked: Option<RecordType> = question.record_type.parse().ok();
    let answers = response
        .answers
        .iter()
        .filter(|r| Some(r.record_type()) == asked)
        .map(|r| Answer { value: normalise(&question.record_type, &r.data.to_string()), ttl: r.ttl })
        .collect();
    (rcode_name(u16::from(response.metadata.response_code)), answers)
}

/// The name `expect.rcode` uses for a response code.
pub fn rcode_name(code: u16) -> String {
    match code {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => format!("RCODE{other}"),
    }
}

/// A value as compared: an address in its canonical form, TXT as is,
/// anything else lower case with each name's final dot removed.
pub fn normalise(record_type: &str, text: &str) -> String {
    let text = text.trim();
    match record_type {
        "A" | "AAAA" => text.parse::<IpAddr>().map_or_else(|_| text.to_string(), |ip| ip.to_string()),
        "TXT" => text.to_string(),
        _ => text
            .split_whitespace()
            .map(|token| token.strip_suffix('.').unwrap_or(token).to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The assertions that fail on a response.
pub fn judge(e: &Expect, q: &DnsQuery, rcode: &str, answers: &[Answer]) -> Vec<String> {
    let mut failed = Vec::new();
    let expected_rcode = e.rcode.as_deref().unwrap_or("NOERROR");
    if rcode != expected_rcode {
        failed.push(format!("rcode {rcode}, expected {expected_rcode}"));
    }
    let values: Vec<&str> = answers.iter().map(|a| a.value.as_str()).collect();
    let shown = || format!("[{}]", crate::net::http::excerpt(&values.join(", "), 120));
    let wanted =
        |list: &[String]| -> Vec<String> { list.iter().map(|v| normalise(&q.record_type, v)).collect() };
    for want in wanted(&e.answers_include) {
        if !values.contains(&want.as_str()) {
            failed.push(format!("{} answer {want} missing (got {})", q.record_type, shown()));
        }
    }
    if !e.answers_exactly.is_empty() {
        let mut want = wanted(&e.answers_exactly);
        want.sort();
        want.dedup();
        let mut got: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        got.sort();
        got.dedup();
        if want != got {
            failed.push(format!(
                "{} answers {} are not exactly [{}]",
                q.record_type,
                shown(),
                want.join(", ")
            ));
        }
    }
    if !e.answers_in.is_empty() {
        let ranges: Vec<IpRange> = e.answers_in.iter().filter_map(|r| IpRange::parse(r).ok()).collect();
        if answers.is_empty() {
            failed.push(format!("no {} answers to check against answers_in", q.record_type));
        }
        for value in &values {
            let inside = value.parse::<IpAddr>().is_ok_and(|ip| ranges.iter().any(|r| r.contains(ip)));
            if !inside {
                failed.push(format!("answer {value} is not in [{}]", e.answers_in.join(", ")));
            }
        }
    }
    if let Some(min) = e.min_ttl_s {
        for a in answers.iter().filter(|a| a.ttl < min) {
            failed.push(format!("answer {} has TTL {} s (< {min} s)", a.value, a.ttl));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kinds::DnsTransport;

    fn q(record_type: &str) -> DnsQuery {
        DnsQuery {
            name: "example.test".into(),
            record_type: record_type.into(),
            transport: DnsTransport::Udp,
        }
    }

    fn answers(values: &[(&str, u32)]) -> Vec<Answer> {
        values.iter().map(|(v, ttl)| Answer { value: v.to_string(), ttl: *ttl }).collect()
    }

    #[test]
    fn values_normalise_as_dns_means_them() {
        assert_eq!(normalise("AAAA", "0:0::1"), "::1");
        assert_eq!(normalise("A", " 10.0.0.1 "), "10.0.0.1");
        assert_eq!(normalise("MX", "10 Mail.Example.COM."), "10 mail.example.com");
        assert_eq!(normalise("CNAME", "www.example.com."), "www.example.com");
        assert_eq!(normalise("TXT", "v=spf1 -ALL"), "v=spf1 -ALL");
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(9), "RCODE9");
    }

    #[test]
    fn every_answer_is_checked_not_only_the_first() {
        let a = answers(&[("10.0.0.1", 300), ("192.168.1.1", 30)]);
        let e = Expect {
            answers_in: vec!["10.0.0.0/8".into()],
            min_ttl_s: Some(60),
            answers_include: vec!["10.0.0.1".into(), "10.0.0.2".into()],
            ..Expect::default()
        };
        assert_eq!(
            judge(&e, &q("A"), "NOERROR", &a),
            [
                "A answer 10.0.0.2 missing (got [10.0.0.1, 192.168.1.1])",
                "answer 192.168.1.1 is not in [10.0.0.0/8]",
                "answer 192.168.1.1 has TTL 30 s (< 60 s)",
            ]
        );
    }

    #[test]
    fn exact_sets_ignore_order_and_rcodes_default_to_noerror() {
        let a = answers(&[("10 b.test", 60), ("20 a.test", 60)]);
        let exactly = |list: &[&str]| Expect {
            answers_exactly: list.iter().map(|s| s.to_string()).collect(),
            ..Expect::default()
        };
        assert!(judge(&exactly(&["20 A.test.", "10 b.test"]), &q("MX"), "NOERROR", &a).is_empty());
        assert_eq!(
            judge(&exactly(&["10 b.test"]), &q("MX"), "NOERROR", &a),
            ["MX answers [10 b.test, 20 a.test] are not exactly [10 b.test]"]
        );
        assert_eq!(judge(&Expect::default(), &q("A"), "NXDOMAIN", &[]), ["rcode NXDOMAIN, expected NOERROR"]);
        let nx = Expect { rcode: Some("NXDOMAIN".into()), ..Expect::default() };
        assert!(judge(&nx, &q("A"), "NXDOMAIN", &[]).is_empty());
        let in_nothing = Expect { answers_in: vec!["10.0.0.0/8".into()], ..Expect::default() };
        assert_eq!(judge(&in_nothing, &q("A"), "NOERROR", &[]), ["no A answers to check against answers_in"]);
    }
}
