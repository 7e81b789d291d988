//! What every HTML page of the web role shares (placeholder until the
//! lead's `ui/` lands: then this file is theirs plus `pub mod svg;`).

pub mod svg;
