//! Names in a checks file: what makes a check or channel name valid, the
//! "did you mean" spelling of an invalid one, and a name written in a file
//! together with where (a check's own name, or a reference to a channel or
//! check declared elsewhere). A leaf: every other file may read names
//! through it, and it imports nothing of theirs.

use super::diagnostic::Pos;

pub const MAX_NAME_LEN: usize = 63;

/// A valid check name (after `${VAR}` expansion) and where it is written.
#[derive(Debug, Clone)]
pub struct CheckName {
    pub name: String,
    pub file: String,
    pub pos: Pos,
    /// The entry's path (`checks[3]`).
    pub entry: String,
}

/// A name that must resolve to something declared elsewhere (a channel, a
/// check), and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Ref {
    pub name: String,
    pub file: String,
    pub pos: Pos,
    pub path: String,
    /// Written in `defaults` (reported once, not once per check).
    pub inherited: bool,
}

/// `name` as a valid check name would be, for "did you mean".
pub(super) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(MAX_NAME_LEN).collect::<String>().trim_end_matches('-').to_string()
}

pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_slugs() {
        assert!(valid_name("shop-home-2") && !valid_name("-a") && !valid_name("a_b") && !valid_name(""));
        assert_eq!(slug("Shop Home!"), "shop-home");
    }
}
