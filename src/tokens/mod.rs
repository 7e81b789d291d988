//! API tokens: what a token is, its scopes, and how it is stored.
//!
//! A token is `sk8s_` followed by 43 characters of base64url (256 random
//! bits). It is shown once, when created; the database keeps only its
//! SHA-256 (`api_tokens.token_sha256`), which is what a request's token is
//! looked up by. Scopes nest: `admin` includes `write`, which includes
//! `read`.
//!
//! - `store.rs` — every SQL statement on `api_tokens`.

pub mod store;

use std::fmt;
use std::str::FromStr;

use base64::Engine;
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
}
