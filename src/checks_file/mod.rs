//! The declarative checks file: parse YAML with positions, expand
//! `${VAR}`, validate into normalised [`crate::model::CheckSpec`]s, plan
//! the difference with the database, and apply it in one transaction; or,
//! for the API, one check at a time (`one.rs`), respecting who owns it
//! (`owner.rs`).
//!
//! Pure stages (everything but `apply`) never touch the database, so a bad
//! file is rejected before a connection is even opened.

pub mod alerts;
pub mod apply;
pub mod check;
pub mod declared;
pub mod defaults;
pub mod diagnostic;
pub mod env;
pub mod expect;
pub mod export;
pub mod fields;
pub mod kinds;
pub mod load;
pub mod maintenance;
pub mod names;
pub mod one;
pub mod owner;
pub mod plan;
pub mod reader;
pub mod schema;
pub mod status_pages;
pub mod store;
pub mod validate;
pub mod yaml;

pub use alerts::DeclaredChannel;
pub use check::DeclaredCheck;
pub use declared::Declared;
pub use diagnostic::{Diagnostic, Diagnostics, Pos};
pub use load::{load, read_sources, validate_all, Source};
pub use maintenance::DeclaredWindow;
pub use names::Ref;
pub use owner::Owner;
