//! Configuration: one model for every role, layered with figment.
//!
//! Precedence, lowest first: the documented built-in defaults
//! (`default.toml`, embedded), a TOML file (`--config` or `SENTRYK8S_CONFIG`),
//! `SENTRYK8S_*` environment variables (sections joined by `__`), then
//! command-line flags. [`load`] reports *every* problem at once, each naming
//! the key and the layer it came from, because a configuration that fails
//! one error at a time costs a deploy per typo.
//!
//! The files, each one seam: `types.rs` is the model (what a key means),
//! `load.rs` the layering and the wording of its errors, `validate.rs` the
//! range and format checks types alone cannot express, `duration.rs` the
//! human durations and `urls.rs` the two connection URLs. Imports point one
//! way: `load` → `validate` → `types`.

mod duration;
mod load;
mod types;
pub mod urls;
mod validate;

pub use duration::parse as parse_duration;
pub use load::{load, ConfigError, FlagValues, Problem, DEFAULT_CONFIG, ENV_PREFIX};
pub use types::{
    AlertsConfig, AmqpConfig, Config, DatabaseConfig, LogFormat, ResultsConfig, SchedulerConfig, WebConfig,
    WorkerConfig,
};

pub use crate::model::redact::redact_url;
