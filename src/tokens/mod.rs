//! API tokens: what a token is, its scopes, and how it is stored.
//!
//! A token is `sk8s_` followed by 43 characters of base64url (256 random
//! bits). It is shown once, when created; the database keeps only its
//! SHA-256 (`api_tokens.token_sha256`), which is what a request's token is
//! looked up by. Scopes nest: `admin` includes `write`, which includes
//! `read`.
//!
//! A token's name is what logs, `tokens list` and the rate limiter show
//! instead of the token: 1–64 characters of letters, digits, `.`, `_`, `-`,
//! `@` and `:` ([`check_name`]). An expiry is a duration from now
//! ([`expiry`]), at most [`MAX_LIFETIME`].
//!
//! - `store.rs` — every SQL statement on `api_tokens`.

pub mod store;

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// What a token may do; ordered so that `scope >= Scope::Write` means
/// "write or more".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what `needed` allows.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Scope, String> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            other => Err(format!("unknown scope \"{other}\": expected read, write or admin")),
        }
    }
}

/// The prefix every token starts with: recognisable in a leaked config or
/// a secret scanner, and never a valid anything else.
pub const PREFIX: &str = "sk8s_";

#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed: {0}")]
pub struct RandomError(String);

/// A new random token.
pub fn generate() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    Ok(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// What is stored and looked up: the token's SHA-256, hex.
pub fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` has the shape of a token (checked before any lookup, so
/// garbage never reaches the database).
pub fn well_formed(text: &str) -> bool {
    text.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Longest name of a token.
pub const MAX_NAME: usize = 64;

/// Longest lifetime `--expires` accepts (ten years: longer is "never",
/// which is what leaving `--expires` out says).
pub const MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10 * 366 * 86_400);

/// Bad input to `tokens create`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenInputError {
    #[error("--name: {0}")]
    Name(String),
    #[error("--scope: {0}")]
    Scope(String),
    #[error("--expires: {0}")]
    Expires(String),
}

/// Checks a token's name: it is shown in logs and tables, so plain
/// characters only.
pub fn check_name(name: &str) -> Result<(), TokenInputError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(TokenInputError::Name(format!("a name has 1 to {MAX_NAME} characters")));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || ".-_@:".contains(*c))) {
        return Err(TokenInputError::Name(format!(
            "{c:?} is not allowed in \"{}\": use letters, digits, '.', '_', '-', '@' and ':'",
            name.escape_default()
        )));
    }
    Ok(())
}

/// When a token created at `now` with `--expires text` (e.g. "90d") expires.
pub fn expiry(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, TokenInputError> {
    let bad = TokenInputError::Expires;
    let d = crate::config::parse_duration(text).map_err(bad)?;
    if d.is_zero() {
        return Err(bad(format!(
            "\"{text}\" is no time at all; leave --expires out for a token that never expires"
        )));
    }
    if d > MAX_LIFETIME {
        return Err(bad(format!(
            "\"{text}\" is longer than ten years; leave --expires out for a token that never expires"
        )));
    }
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| bad(format!("\"{text}\" is too long")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest() {
        assert!(Scope::Admin.allows(Scope::Write) && Scope::Admin.allows(Scope::Read));
        assert!(Scope::Write.allows(Scope::Read) && !Scope::Write.allows(Scope::Admin));
        assert!(!Scope::Read.allows(Scope::Write));
        for s in ["read", "write", "admin"] {
            assert_eq!(s.parse::<Scope>().unwrap().as_str(), s);
        }
        assert!("root".parse::<Scope>().unwrap_err().contains("read, write or admin"));
    }

    #[test]
    fn tokens_are_random_well_formed_and_hashed() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(well_formed(&a) && well_formed(&b), "{a}");
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), digest(&b));
        assert!(!well_formed("sk8s_short"));
        assert!(!well_formed(&a.replace(PREFIX, "xx8s_")));
        assert!(!well_formed(&format!("{a}=")));
    }

    #[test]
    fn names_are_plain_and_short() {
        for ok in ["ci", "grafana-read", "team.web@prod:1", &"x".repeat(MAX_NAME)] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "with space", "tab\t", "é", &"x".repeat(MAX_NAME + 1), "a/b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn expiries_are_from_now_and_bounded() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(expiry("90d", now).unwrap().to_rfc3339(), "2026-04-01T00:00:00+00:00");
        assert_eq!(expiry("1h", now).unwrap().to_rfc3339(), "2026-01-01T01:00:00+00:00");
        for bad in ["0s", "forever", "-1d", "", "20000d"] {
            assert!(matches!(expiry(bad, now), Err(TokenInputError::Expires(_))), "{bad:?}");
        }
    }
}
