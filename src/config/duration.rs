//! Durations in configuration are human strings ("500ms", "15s", "2m").
//!
//! A bare number is refused: "15" could mean seconds or milliseconds, and a
//! wrong guess on a lease TTL is an outage.

use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*value).to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(de::Error::custom)
}

/// Parses a duration as written in configuration and on the command line.
pub fn parse(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration \"{text}\" ({e}); write it like \"500ms\", \"15s\" or \"2m\""))
}
