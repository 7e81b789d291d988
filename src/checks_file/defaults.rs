//! How a check inherits its document's `defaults:`. Both are read into a
//! `Partial` (a check entry as written, every field a `Slot`); the
//! check is then overlaid on the defaults field by field, and mappings
//! (headers, labels) entry by entry. Inherited values are marked, so that
//! a problem with one is reported once, not once per check.

use std::collections::HashSet;

use super::expect::PartialExpect;
use super::reader::{Pairs, Slot, F};

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
    pub(super) expect: PartialExpect,
    pub(super) failure_threshold: Slot<u32>,
    pub(super) success_threshold: Slot<u32>,
    pub(super) labels: Slot<Pairs>,
    pub(super) alerts: Slot<Vec<F<String>>>,
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
            expect: PartialExpect::default(),
            failure_threshold: Slot::Absent,
            success_threshold: Slot::Absent,
            labels: Slot::Absent,
            alerts: Slot::Absent,
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
            expect: PartialExpect {
                status: self.expect.status.or_default(&d.expect.status),
                max_response_time: self.expect.max_response_time.or_default(&d.expect.max_response_time),
                body_contains: self.expect.body_contains.or_default(&d.expect.body_contains),
                body_not_contains: self.expect.body_not_contains.or_default(&d.expect.body_not_contains),
                body_regex: self.expect.body_regex.or_default(&d.expect.body_regex),
                json: self.expect.json.or_default(&d.expect.json),
                cert_days_left: self.expect.cert_days_left.or_default(&d.expect.cert_days_left),
            },
            failure_threshold: self.failure_threshold.or_default(&d.failure_threshold),
            success_threshold: self.success_threshold.or_default(&d.success_threshold),
            labels: overlay_pairs(self.labels, &d.labels, |k| k.to_string()),
            alerts: self.alerts.or_default(&d.alerts),
        }
    }
}
