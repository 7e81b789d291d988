//! Running one check, whichever role asks for it (the worker today):
//! build a [`Prober`] once from the worker's settings, then
//! [`Prober::run`] a spec to its [`CheckOutcome`].
//!
//! One file per kind of check, each timing its phases under the check's
//! hard deadline on a fresh connection made through `net/`:
//!
//! - `http.rs` — the HTTP check (phases, deadline, redirects with the deny
//!   list on every hop, body limit);
//! - `assertions.rs` — what "up" means, evaluated on a response (pure).
//!
//! It knows nothing of queues, batches or state: those stay with the role.

pub mod assertions;
pub mod http;

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

/// Runs checks of every kind. Cheap to share behind an `Arc`: built once,
/// it holds the TLS configurations and the compiled-regex cache.
pub struct Prober {
    http: http::HttpProbe,
}

impl Prober {
    pub fn new(options: ProberOptions) -> Result<Prober, TlsSetupError> {
        Ok(Prober { http: http::HttpProbe::new(options.body_limit, &options.user_agent, options.deny)? })
    }

    /// Runs one check to its outcome; never panics, never outlives the
    /// spec's timeout by more than scheduling jitter. Returns the kind's
    /// own future (not an `async fn` around it): no extra state per check.
    pub fn run<'a>(&'a self, spec: &'a CheckSpec) -> impl Future<Output = CheckOutcome> + Send + 'a {
        // The one place a kind picks its probe; the next kinds add arms.
        match spec.kind {
            CheckKind::Http => self.http.run(spec),
        }
    }

    /// Like [`run`](Self::run), also reporting what only tests and
    /// diagnostics need (the HTTP version).
    pub fn probe<'a>(&'a self, spec: &'a CheckSpec) -> impl Future<Output = Report> + Send + 'a {
        self.http.probe(spec)
    }
}
