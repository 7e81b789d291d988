//! The declarative checks file: parse YAML with positions, expand
//! `${VAR}`, validate into normalised [`crate::model::CheckSpec`]s, plan
//! the difference with the database, and apply it in one transaction.
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
pub mod load;
pub mod maintenance;
pub mod names;
pub mod plan;
pub mod reader;
pub mod schema;
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
