//! What is up or down now: reading `check_state` joined with the declared
//! checks, and showing it as a table or as JSON. Used by `sentryk8s
//! status` and by `standalone`'s live view.

pub mod query;
pub mod render;
pub mod store;

pub use query::{fetch, CheckStatus, StatusError};
pub use render::{json, summary_line, table, Counts};
