//! Types shared by every role: the declared check, the job message that
//! carries it from scheduler to worker, and slot times.

pub mod check;
pub mod job;
pub mod result;

pub use check::{CheckSpec, Expect, StatusMatch};
pub use job::{CheckJob, DecodeError, JOB_SCHEMA_VERSION};
pub use result::{CheckOutcome, ErrorClass, Timings};
