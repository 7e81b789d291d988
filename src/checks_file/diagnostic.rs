//! A problem found in a checks file, printed the way compilers do:
//! `file:line:column: field.path: message`.
//!
//! Every stage (reading, YAML, `${VAR}` expansion, validation, duplicate
//! names across files) produces these instead of stopping at the first, so
//! one run shows every problem.

use std::fmt;

/// A place in a source file; line and column count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as named on the command line (`<stdin>` for `-f -`).
    pub file: String,
    /// Where in the file; `None` for problems with the file as a whole.
    pub pos: Option<Pos>,
    /// The field, e.g. `checks[3].timeout`; empty when no field is concerned.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(pos) = self.pos {
            write!(f, ":{pos}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Problems of one run, in the order they were found per file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Appends `.key` to a field path, or `["key"]` when the key is not a plain
/// word (JSON pointers, header names with dots), so paths stay unambiguous.
pub fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", serde_json::Value::String(key.to_string())),
    }
}

/// Appends `[index]` to a field path.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// The JSON pointer (RFC 6901) of a field path inside the entry `entry`:
/// `checks[0].expect.status[1]` within `checks[0]` is `/expect/status/1`,
/// `checks[0].headers["X.Y"]` is `/headers/X.Y`. The entry itself (or a
/// path outside it) is `""`, the whole document. Paths are what
/// [`join_key`] and [`join_index`] build.
pub fn pointer(path: &str, entry: &str) -> String {
    let Some(mut rest) = path.strip_prefix(entry) else { return String::new() };
    let mut out = String::new();
    let mut push = |segment: &str| {
        out.push('/');
        out.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    };
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            push(&after[..end]);
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("[\"") {
            // A quoted key is a JSON string: read it as one, escapes and all.
            let mut de = serde_json::Deserializer::from_str(&rest[1..]).into_iter::<String>();
            match de.next() {
                Some(Ok(key)) => {
                    let used = 1 + de.byte_offset();
                    push(&key);
                    rest = rest[used..].strip_prefix(']').unwrap_or(&rest[used..]);
                }
                _ => {
                    push(after.trim_end_matches(['"', ']']));
                    break;
                }
            }
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').unwrap_or(after.len());
            push(&after[..end]);
            rest = after.get(end + 1..).unwrap_or("");
        } else {
            // Not a path this module builds: the rest as one segment.
            push(rest);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_a_compiler() {
        let d = Diagnostic {
            file: "checks.yaml".into(),
            pos: Some(Pos { line: 12, col: 15 }),
            path: "checks[3].timeout".into(),
            message: "90s must be shorter than the interval (60s)".into(),
        };
        assert_eq!(
            d.to_string(),
            "checks.yaml:12:15: checks[3].timeout: 90s must be shorter than the interval (60s)"
        );
        let d = Diagnostic { file: "x.yaml".into(), pos: None, path: String::new(), message: "m".into() };
        assert_eq!(d.to_string(), "x.yaml: m");
    }

    #[test]
    fn paths() {
        assert_eq!(join_key("", "checks"), "checks");
        assert_eq!(join_key("checks[0]", "expect"), "checks[0].expect");
        assert_eq!(join_key("checks[0].expect.json", "/a/b"), "checks[0].expect.json[\"/a/b\"]");
        assert_eq!(join_index("checks", 3), "checks[3]");
    }

    #[test]
    fn pointers() {
        let e = "checks[0]";
        assert_eq!(pointer("checks[0].expect.status[1]", e), "/expect/status/1");
        assert_eq!(pointer("checks[0].name", e), "/name");
        assert_eq!(pointer("checks[0]", e), "");
        assert_eq!(pointer("", e), "");
        assert_eq!(pointer(&join_key("checks[0].expect.json", "/a/b~"), e), "/expect/json/~1a~1b~0");
        assert_eq!(pointer(&join_key("checks[0].headers", "X.Y"), e), "/headers/X.Y");
        assert_eq!(pointer(&join_key("checks[0].headers", "a\"]b"), e), "/headers/a\"]b");
        assert_eq!(pointer(&format!("{}[2]", join_key("checks[0].labels", "x y")), e), "/labels/x y/2");
        assert_eq!(pointer("checks[0].alerts[1]", e), "/alerts/1");
    }
}
