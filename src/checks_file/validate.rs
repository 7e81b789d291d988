//! From the positioned YAML tree to normalised checks, or to every problem:
//! the public paths of validation. The steps live in their own files:
//!
//! - `reader.rs`: typed accessors over YAML nodes that report diagnostics;
//! - `names.rs`: valid names, "did you mean", references;
//! - `fields.rs`: name, URL, headers and labels (checks, channels, windows);
//! - `expect.rs`: a check's assertions;
//! - `defaults.rs`: how a check inherits `defaults:`;
//! - `check.rs`: one check entry, its cross-field rules, [`DeclaredCheck`];
//! - `declared.rs`: a whole file into one [`Declared`] ([`Validator`]);
//! - `alerts.rs`, `maintenance.rs`: the `alerts:` and `maintenance:` sections.

pub use super::check::{
    DeclaredCheck, DEFAULT_INTERVAL_MS, DEFAULT_REDIRECTS, DEFAULT_TIMEOUT_MS, MAX_BODY_LIMIT, MAX_REDIRECTS,
    MAX_THRESHOLD, METHODS,
};
pub use super::declared::{Declared, Validator};
pub use super::names::{valid_name, CheckName, Ref, MAX_NAME_LEN};
pub use super::reader::{format_ms, parse_size};
/// Interval bounds (the `checks.interval_ms` column enforces them too).
pub use crate::model::bounds::{MAX_INTERVAL_MS, MIN_INTERVAL_MS};
