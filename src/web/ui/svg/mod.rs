//! Inline SVG drawings of the pages: numbers in, markup out, no `style=`
//! (the Content-Security-Policy forbids inline styles; colours come from
//! classes in the pages' CSS).
//!
//! - `sparkline.rs` — the dashboard's 24 h response-time line;
//! - `phases.rs` — one run's phase timings as a stacked bar.

pub mod phases;
pub mod sparkline;
