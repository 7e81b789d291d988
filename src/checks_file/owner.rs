//! Who owns a stored check: the checks files (`checks apply`) or the API
//! (`PUT /api/v1/checks/{name}`). Neither side silently overwrites or
//! prunes the other's: apply refuses a file declaring an API-owned check
//! and never prunes one; the API answers 409 for a file-owned check unless
//! an admin token forces it (and a forced PUT hands the check to the API).
//! Stored in `checks.owner` (migration 0006).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// Declared in a checks file (the column's default: every check stored
    /// before ownership existed came from files).
    File,
    /// Created or taken over through the API.
    Api,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::File => "file",
            Owner::Api => "api",
        }
    }

    /// The stored text; anything else reads as `file`, the column's
    /// default and the side that cannot be overwritten silently by apply
    /// (the column's CHECK constraint allows no other value anyway).
    pub fn from_stored(text: &str) -> Owner {
        match text {
            "api" => Owner::Api,
            _ => Owner::File,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
