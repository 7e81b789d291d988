//! Status pages: pages declared in checks files (`status_pages:`) or
//! through the API, each showing groups of checks with their state, 90
//! daily bars, uptime, incidents and maintenance (docs/status-pages.md).
//! The web role renders them (`web/pages/`); this concern decides what a
//! page holds and says. Not to be confused with `status/`, the `sentryk8s
//! status` subcommand's concern.
//!
//! - `model.rs` — a page as declared and stored, and who owns it;
//! - `banner.rs` — a check's state now and the banner of a group or page,
//!   with their Statuspage names (pure);
//! - `view.rs` — everything one page shows, read and assembled;
//! - `store.rs` — every SQL statement of status pages.

pub mod banner;
pub mod model;
pub mod store;
pub mod view;

pub use model::{GroupSpec, PageOwner, PageSpec};
