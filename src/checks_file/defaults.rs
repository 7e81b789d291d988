//! How a check inherits its document's `defaults:`. Both are read into a
//! `Partial` (a check entry as written, every field a `Slot`); the
//! check is then overlaid on the defaults field by field, and mappings
//! (headers, labels) entry by entry. Inherited values are marked, so that
//! a problem with one is reported once, not once per check.

use std::collections::HashSet;

use super::diagnostic::Pos;
use super::expect::PartialExpect;
use super::reader::{Pairs, Slot, F};
use crate::model::{DnsQuery, HeartbeatSpec, StartTls};

/// A check entry (or `defaults:`) as written: every field a [`Slot`].
#[derive(Debug, Clone)]
pub(super) struct Partial {
    pub(super) name: Slot<String>,
    pub(super) description: Slot<String>,
    pub(super) url: Slot<url::Url>,
    pub(super) enabled: Slot<bool>,
    pub(super) interval: Slot<u64>,
    pub(super) timeout: Slot<u64>,
    pub(super) method: Slot<String>,
    pub(super) headers: Slot<Pairs>,
    pub(super) body: Slot<String>,
    pub(super) follow_redirects: Slot<u32>,
    pub(super) tls_verify: Slot<bool>,
    pub(super) body_limit: Slot<u64>,
    pub(super) send: Slot<String>,
    pub(super) starttls: Slot<StartTls>,
    pub(super) server_name: Slot<String>,
    pub(super) dns: Slot<DnsQuery>,
    pub(super) packets: Slot<u32>,
    pub(super) grpc_service: Slot<String>,
    pub(super) heartbeat: Slot<HeartbeatSpec>,
    pub(super) expect: PartialExpect,
    pub(super) failure_threshold: Slot<u32>,
    pub(super) success_threshold: Slot<u32>,
    pub(super) labels: Slot<Pairs>,
    pub(super) alerts: Slot<Vec<F<String>>>,
    /// The fields this entry itself writes (`method`, `expect.rcode`) and
    /// where their keys are: a field of another kind than the check's is
    /// an error there (inherited ones are not: they apply where they fit).
    pub(super) written: Vec<(String, Pos)>,
}

impl Default for Partial {
    fn default() -> Self {
        Partial {
            name: Slot::Absent,
            description: Slot::Absent,
            url: Slot::Absent,
            enabled: Slot::Absent,
            interval: Slot::Absent,
            timeout: Slot::Absent,
            method: Slot::Absent,
            headers: Slot::Absent,
            body: Slot::Absent,
            follow_redirects: Slot::Absent,
            tls_verify: Slot::Absent,
            body_limit: Slot::Absent,
            send: Slot::Absent,
            starttls: Slot::Absent,
            server_name: Slot::Absent,
            dns: Slot::Absent,
            packets: Slot::Absent,
            grpc_service: Slot::Absent,
            heartbeat: Slot::Absent,
            expect: PartialExpect::default(),
            failure_threshold: Slot::Absent,
            success_threshold: Slot::Absent,
            labels: Slot::Absent,
            alerts: Slot::Absent,
            written: Vec::new(),
        }
    }
}

impl<T: Clone> Slot<T> {
    /// The check's own value, else the default's (marked inherited).
    fn or_default(self, default: &Slot<T>) -> Slot<T> {
        match (self, default) {
            (Slot::Absent, Slot::Set(f)) => Slot::Set(F { inherited: true, ..f.clone() }),
            (Slot::Absent, Slot::Invalid) => Slot::Invalid,
            (own, _) => own,
        }
    }
}

/// Overlays mappings entry by entry; `fold` says how keys compare (header
/// names ignore case).
fn overlay_pairs(own: Slot<Pairs>, default: &Slot<Pairs>, fold: fn(&str) -> String) -> Slot<Pairs> {
    match (own, default) {
        (Slot::Set(mut own), Slot::Set(default)) => {
            let mine: HashSet<String> = own.v.iter().map(|(k, _)| fold(&k.v)).collect();
            for (k, v) in &default.v {
                if !mine.contains(&fold(&k.v)) {
                    own.v.push((F { inherited: true, ..k.clone() }, F { inherited: true, ..v.clone() }));
                }
            }
            Slot::Set(own)
        }
        (own, default) => own.or_default(default),
    }
}

impl Partial {
    pub(super) fn overlay(self, d: &Partial) -> Partial {
        Partial {
            name: self.name,
            description: self.description.or_default(&d.description),
            url: self.url.or_default(&d.url),
            enabled: self.enabled.or_default(&d.enabled),
            interval: self.interval.or_default(&d.interval),
            timeout: self.timeout.or_default(&d.timeout),
            method: self.method.or_default(&d.method),
            headers: overlay_pairs(self.headers, &d.headers, |k| k.to_ascii_lowercase()),
            body: self.body.or_default(&d.body),
            follow_redirects: self.follow_redirects.or_default(&d.follow_redirects),
            tls_verify: self.tls_verify.or_default(&d.tls_verify),
            body_limit: self.body_limit.or_default(&d.body_limit),
            send: self.send.or_default(&d.send),
            starttls: self.starttls.or_default(&d.starttls),
            server_name: self.server_name.or_default(&d.server_name),
            dns: self.dns.or_default(&d.dns),
            packets: self.packets.or_default(&d.packets),
            grpc_service: self.grpc_service.or_default(&d.grpc_service),
            heartbeat: self.heartbeat.or_default(&d.heartbeat),
            expect: PartialExpect {
                status: self.expect.status.or_default(&d.expect.status),
                max_response_time: self.expect.max_response_time.or_default(&d.expect.max_response_time),
                body_contains: self.expect.body_contains.or_default(&d.expect.body_contains),
                body_not_contains: self.expect.body_not_contains.or_default(&d.expect.body_not_contains),
                body_regex: self.expect.body_regex.or_default(&d.expect.body_regex),
                json: self.expect.json.or_default(&d.expect.json),
                cert_days_left: self.expect.cert_days_left.or_default(&d.expect.cert_days_left),
                connected: self.expect.connected.or_default(&d.expect.connected),
                banner_contains: self.expect.banner_contains.or_default(&d.expect.banner_contains),
                banner_regex: self.expect.banner_regex.or_default(&d.expect.banner_regex),
                cert_issuer_contains: self
                    .expect
                    .cert_issuer_contains
                    .or_default(&d.expect.cert_issuer_contains),
                cert_fingerprint_sha256: self
                    .expect
                    .cert_fingerprint_sha256
                    .or_default(&d.expect.cert_fingerprint_sha256),
                tls_min_version: self.expect.tls_min_version.or_default(&d.expect.tls_min_version),
                rcode: self.expect.rcode.or_default(&d.expect.rcode),
                answers_include: self.expect.answers_include.or_default(&d.expect.answers_include),
                answers_exactly: self.expect.answers_exactly.or_default(&d.expect.answers_exactly),
                answers_in: self.expect.answers_in.or_default(&d.expect.answers_in),
                min_ttl: self.expect.min_ttl.or_default(&d.expect.min_ttl),
                max_loss: self.expect.max_loss.or_default(&d.expect.max_loss),
                serving: self.expect.serving.or_default(&d.expect.serving),
                written: self.expect.written,
            },
            failure_threshold: self.failure_threshold.or_default(&d.failure_threshold),
            success_threshold: self.success_threshold.or_default(&d.success_threshold),
            labels: overlay_pairs(self.labels, &d.labels, |k| k.to_string()),
            alerts: self.alerts.or_default(&d.alerts),
            written: self.written,
        }
    }
}
