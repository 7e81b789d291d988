//! The one home of domain facts, shared by every role: the declared check
//! and its bounds, the job message that carries it from scheduler to worker
//! (encode and decode), results, maintenance windows, and what counts as a secret. Pure data: no
//! I/O, and nothing else of this crate is imported.

pub mod bounds;
pub mod check;
pub mod job;
pub mod kinds;
pub mod maintenance;
pub mod redact;
pub mod result;

pub use check::{CheckKind, CheckSpec, DnsQuery, Expect, HeartbeatSpec, StartTls, StatusMatch, TlsVersion};
pub use job::{CheckJob, DecodeError, JOB_SCHEMA_VERSION};
pub use result::{CheckOutcome, ErrorClass, Timings};
