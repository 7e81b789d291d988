//! Running one check, whichever role asks for it (the worker today):
//! build a [`Prober`] once from the worker's settings, then
//! [`Prober::run`] a spec to its [`CheckOutcome`].
//!
//! One file per kind of check, each timing its phases under the check's
//! hard deadline on a fresh connection made through `net/`:
//!
//! - `http.rs` — the HTTP check (phases, deadline, redirects with the deny
//!   list on every hop, body limit);
//! - `assertions.rs` — what "up" means, evaluated on a response (pure);
//! - `run.rs` — the clock, deadline and outcome every other kind shares;
//! - `tcp.rs` — connect, `send`, banner; or assert a port is closed;
//! - `tls.rs` — STARTTLS, handshake, certificate and protocol version;
//! - `dns.rs` — one question, every answer judged;
//! - `icmp.rs` — echo requests, their loss and round trips;
//! - `grpc.rs` — the gRPC health call on a fresh HTTP/2 connection.
//!
//! It knows nothing of queues, batches or state: those stay with the role.

pub mod assertions;
pub mod dns;
pub mod grpc;
pub mod http;
pub mod icmp;
pub mod run;
pub mod tcp;
pub mod tls;

use std::future::Future;

use crate::model::{CheckKind, CheckOutcome, CheckSpec};
use crate::net::deny::DenyList;
use crate::net::tls::TlsSetupError;

pub use http::Report;

/// Settings shared by every check a process runs.
#[derive(Debug, Clone)]
pub struct ProberOptions {
    /// Body bytes read when the spec sets no limit.
    pub body_limit: u64,
    /// User-Agent of checks that do not set one.
    pub user_agent: String,
    /// Addresses never connected to (`worker.deny_targets`); empty is off.
    pub deny: DenyList,
}

/// What one worker's checks may hold in memory, all of them together.
#[derive(Debug, Clone)]
pub struct MemoryLimits {
    /// Bytes the kept bodies of every check in flight may hold at once
    /// (`worker.body_budget`). A check that cannot get more fails.
    pub body_budget: u64,
    /// Body bytes one check reads at most, whatever it sets
    /// (`worker.body_limit_max`).
    pub body_limit_max: u64,
    /// Largest body JSON assertions parse (`worker.json_max_bytes`).
    pub json_max_bytes: u64,
    /// Checks run at once at most (`worker.concurrency`): each keeps a
    /// small floor of the budget for itself.
    pub checks_in_flight: usize,
}

impl Default for MemoryLimits {
    fn default() -> MemoryLimits {
        MemoryLimits {
            body_budget: default_body_budget(),
            body_limit_max: DEFAULT_BODY_LIMIT_MAX,
            json_max_bytes: DEFAULT_JSON_MAX_BYTES,
            checks_in_flight: 256,
        }
    }
}

/// Default of `worker.body_limit_max`.
pub const DEFAULT_BODY_LIMIT_MAX: u64 = 8 << 20;
/// Default of `worker.json_max_bytes`.
pub const DEFAULT_JSON_MAX_BYTES: u64 = 1 << 20;
/// Body budget when the process has no cgroup memory limit.
pub const FALLBACK_BODY_BUDGET: u64 = 256 << 20;
/// Smallest derived body budget (a tiny limit still runs a few checks).
const MIN_BODY_BUDGET: u64 = 8 << 20;

/// The body budget when `worker.body_budget` is 0: a quarter of the cgroup
/// (v2) memory limit when one is set (`/sys/fs/cgroup/memory.max`), else
/// [`FALLBACK_BODY_BUDGET`]. A quarter leaves room for the runtime, the
/// connections, the result batches and JSON parses.
pub fn default_body_budget() -> u64 {
    let limit = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok();
    budget_from_cgroup(limit.as_deref())
}

fn budget_from_cgroup(memory_max: Option<&str>) -> u64 {
    match memory_max.map(str::trim).and_then(|m| m.parse::<u64>().ok()) {
        Some(limit) => (limit / 4).max(MIN_BODY_BUDGET),
        None => FALLBACK_BODY_BUDGET,
    }
}

/// Runs checks of every kind. Cheap to share behind an `Arc`: built once,
/// it holds the TLS configurations and the compiled-regex cache.
pub struct Prober {
    http: http::HttpProbe,
    tcp: tcp::TcpProbe,
    tls: tls::TlsProbe,
    dns: dns::DnsProbe,
    icmp: icmp::IcmpProbe,
    grpc: grpc::GrpcProbe,
}

impl Prober {
    /// A prober with the default [`MemoryLimits`].
    pub fn new(options: ProberOptions) -> Result<Prober, TlsSetupError> {
        Prober::with_memory(options, &MemoryLimits::default())
    }

    /// A prober whose checks together stay within `memory`.
    pub fn with_memory(options: ProberOptions, memory: &MemoryLimits) -> Result<Prober, TlsSetupError> {
        let http =
            http::HttpProbe::new(options.body_limit, &options.user_agent, options.deny.clone(), memory)?;
        let tcp = tcp::TcpProbe::new(options.deny.clone());
        let tls = tls::TlsProbe::new(options.deny.clone())?;
        let dns = dns::DnsProbe::new(options.deny.clone());
        let icmp = icmp::IcmpProbe::new(options.deny.clone());
        let grpc = grpc::GrpcProbe::new(options.deny.clone())?;
        Ok(Prober { http, tcp, tls, dns, icmp, grpc })
    }

    /// Runs one check to its outcome; never panics, never outlives the
    /// spec's timeout by more than scheduling jitter. Returns the kind's
    /// own future (not an `async fn` around it): no extra state per check.
    pub fn run<'a>(&'a self, spec: &'a CheckSpec) -> impl Future<Output = CheckOutcome> + Send + 'a {
        // The one place a kind picks its probe. HTTP, by far the most
        // common, stays unboxed; the other kinds' futures differ in type
        // and are boxed (one allocation beside a socket).
        use futures_util::future::Either;
        let other: std::pin::Pin<Box<dyn Future<Output = CheckOutcome> + Send + 'a>> = match spec.kind {
            CheckKind::Http => return Either::Left(self.http.run(spec)),
            CheckKind::Tcp => Box::pin(self.tcp.run(spec)),
            CheckKind::Tls => Box::pin(self.tls.run(spec)),
            CheckKind::Dns => Box::pin(self.dns.run(spec)),
            CheckKind::Icmp => Box::pin(self.icmp.run(spec)),
            CheckKind::Grpc => Box::pin(self.grpc.run(spec)),
            other => Box::pin(not_run(other)),
        };
        Either::Right(other)
    }

    /// Like [`run`](Self::run) for an HTTP check, also reporting what only
    /// tests and diagnostics need (the HTTP version). HTTP checks only.
    pub fn probe<'a>(&'a self, spec: &'a CheckSpec) -> impl Future<Output = Report> + Send + 'a {
        self.http.probe(spec)
    }
}

/// The outcome of a check of a kind this worker cannot run.
async fn not_run(kind: CheckKind) -> CheckOutcome {
    CheckOutcome {
        started_at: chrono::Utc::now(),
        success: false,
        error_class: Some(crate::model::ErrorClass::Unsupported),
        error_message: Some(format!("{kind} checks are not run by this worker")),
        status_code: None,
        timings: crate::model::Timings::default(),
        bytes_read: 0,
        cert_expires_at: None,
        failed_assertions: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_a_quarter_of_the_cgroup_limit() {
        assert_eq!(budget_from_cgroup(Some("1073741824\n")), 256 << 20);
        assert_eq!(budget_from_cgroup(Some("max\n")), FALLBACK_BODY_BUDGET);
        assert_eq!(budget_from_cgroup(None), FALLBACK_BODY_BUDGET);
        assert_eq!(budget_from_cgroup(Some("1048576")), MIN_BODY_BUDGET);
    }
}
