//! The reader primitives: typed accessors over the positioned YAML tree
//! (strings, booleans, whole numbers, durations, sizes, lists, mappings)
//! that report every problem as a `file:line:col` diagnostic.
//!
//! Each field is read into a `Slot`: absent, invalid (already reported)
//! or set (with where it was written). `Ctx` is the state of reading one
//! file; the other files of the module add readers for their own fields
//! and sections on top of these, and this file imports none of them.

use std::collections::{HashMap, HashSet};

use super::diagnostic::{join_index, join_key, Diagnostic, Pos};
use super::env::{expand, AllowList, Lookup};
use super::names::CheckName;
use super::schema;
use super::yaml::{plain_type, Kind, Node, PlainType, Style};

/// A field's value and where it came from.
#[derive(Debug, Clone)]
pub(super) struct F<T> {
    pub(super) v: T,
    pub(super) pos: Pos,
    /// As written in the file (before `${VAR}` expansion): what messages show.
    pub(super) written: String,
    /// Inherited from `defaults`.
    pub(super) inherited: bool,
}

#[derive(Debug, Clone)]
pub(super) enum Slot<T> {
    Absent,
    /// Wrong, and already reported.
    Invalid,
    Set(F<T>),
}

impl<T: Clone> Slot<T> {
    pub(super) fn set(&self) -> Option<&F<T>> {
        match self {
            Slot::Set(f) => Some(f),
            _ => None,
        }
    }

    pub(super) fn is_invalid(&self) -> bool {
        matches!(self, Slot::Invalid)
    }
}

/// Key → value mappings (headers, labels) whose entries overlay one by one.
pub(super) type Pairs = Vec<(F<String>, F<String>)>;

/// A scalar after `${VAR}` expansion and YAML typing.
pub(super) struct Scalar {
    pub(super) text: String,
    pub(super) ty: PlainType,
    /// As written, before expansion.
    pub(super) written: String,
}

pub(super) enum Bad {
    /// Not a scalar: the caller says what it expected.
    NotScalar,
    /// Already reported.
    Reported,
}

/// The state of reading one file: where messages point, what has been
/// reported, and the names written so far.
pub(super) struct Ctx<'c> {
    pub(super) file: &'c str,
    source: &'c str,
    lookup: Lookup<'c>,
    /// The names `${VAR}` may read.
    allow: &'c AllowList,
    /// Byte offset where each line of `source` starts.
    line_starts: Vec<usize>,
    /// Regular expressions already compiled once (shared across files).
    pub(super) regexes_ok: &'c mut HashSet<String>,
    pub(super) diags: Vec<Diagnostic>,
    /// Channel and check names written in the file, valid or not: a
    /// reference to one that failed validation is not "unknown" too.
    pub(super) written_channels: Vec<String>,
    pub(super) written_checks: Vec<String>,
    pub(super) named_checks: Vec<CheckName>,
    /// A problem with a value inherited from `defaults` is reported once,
    /// for the first check, with a count of the others: (place, message)
    /// → (index in `diags`, further checks).
    pub(super) inherited: HashMap<(Pos, String), (usize, usize)>,
}

impl<'c> Ctx<'c> {
    /// The state of reading `source` (named `file` in messages).
    pub(super) fn new(
        file: &'c str,
        source: &'c str,
        lookup: Lookup<'c>,
        allow: &'c AllowList,
        regexes_ok: &'c mut HashSet<String>,
    ) -> Ctx<'c> {
        let line_starts = std::iter::once(0).chain(source.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Ctx {
            file,
            source,
            line_starts,
            lookup,
            allow,
            regexes_ok,
            diags: Vec::new(),
            inherited: HashMap::new(),
            written_channels: Vec::new(),
            written_checks: Vec::new(),
            named_checks: Vec::new(),
        }
    }
}

impl Ctx<'_> {
    /// Line `n` (from 1) of the source, without its end: found through the
    /// index of line starts, not by walking the text from the top each time
    /// (a file of many bad `${VAR}`s made that quadratic).
    fn line(&self, n: usize) -> Option<&str> {
        let start = *self.line_starts.get(n.checked_sub(1)?)?;
        let end = self.line_starts.get(n).copied().unwrap_or(self.source.len());
        let line = self.source.get(start..end)?;
        Some(line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(line))
    }
}

/// Formats milliseconds the way a person writes a duration in the file.
pub fn format_ms(ms: u64) -> String {
    if ms == 0 || !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

pub(super) fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

impl Ctx<'_> {
    pub(super) fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            pos: Some(pos),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// [`Ctx::error`] for a problem with a value that may come from
    /// `defaults` (then reported once, not once per check).
    pub(super) fn field_error(&mut self, inherited: bool, pos: Pos, path: &str, message: String) {
        if !inherited {
            return self.error(pos, path, message);
        }
        match self.inherited.get_mut(&(pos, message.clone())) {
            Some((_, more)) => *more += 1,
            None => {
                self.inherited.insert((pos, message.clone()), (self.diags.len(), 0));
                self.error(pos, path, message);
            }
        }
    }

    pub(super) fn type_error<T>(&mut self, node: &Node, path: &str, expected: &str) -> Slot<T> {
        self.error(node.pos, path, format!("expected {expected}, found {}", node.describe()));
        Slot::Invalid
    }

    /// The column of `written` (a `${…}`) on the scalar's first line, so
    /// an unset variable is pointed at, not just its field.
    fn locate(&self, at: Pos, written: &str) -> Pos {
        let Some(line) = self.line(at.line) else { return at };
        let skip: usize = line.chars().take(at.col.saturating_sub(1)).map(char::len_utf8).sum();
        match line.get(skip..).and_then(|rest| rest.find(written)) {
            Some(i) => Pos { line: at.line, col: line[..skip + i].chars().count() + 1 },
            None => at,
        }
    }

    pub(super) fn scalar(&mut self, node: &Node, path: &str) -> Result<Scalar, Bad> {
        let Kind::Scalar { text, style, tag } = &node.kind else { return Err(Bad::NotScalar) };
        let forced_string = match tag.as_deref() {
            None => false,
            Some("!!str") => true,
            Some("!!int" | "!!bool" | "!!float" | "!!null") => false,
            Some(other) => {
                self.error(node.pos, path, format!("unsupported YAML tag `{other}`"));
                return Err(Bad::Reported);
            }
        };
        let expanded = match expand(text, self.lookup, self.allow) {
            Ok(e) => e,
            Err(errors) => {
                for e in errors {
                    let at = self.locate(node.pos, &e.written);
                    self.error(at, path, e.message);
                }
                return Err(Bad::Reported);
            }
        };
        let ty = if forced_string || *style == Style::Quoted {
            PlainType::Str
        } else {
            plain_type(&expanded.text)
        };
        Ok(Scalar { text: expanded.text, ty, written: text.clone() })
    }

    pub(super) fn string(&mut self, node: &Node, path: &str) -> Slot<String> {
        match self.scalar(node, path) {
            Ok(s) => match s.ty {
                PlainType::Str | PlainType::Int | PlainType::Float => {
                    Slot::Set(F { v: s.text, pos: node.pos, written: s.written, inherited: false })
                }
                PlainType::Bool => {
                    self.error(
                        node.pos,
                        path,
                        format!("expected a string, found the boolean {} (quote it: \"{}\")", s.text, s.text),
                    );
                    Slot::Invalid
                }
                PlainType::Null => self.type_error(node, path, "a string"),
            },
            Err(Bad::Reported) => Slot::Invalid,
            Err(Bad::NotScalar) => self.type_error(node, path, "a string"),
        }
    }

    /// A string that must not be empty.
    pub(super) fn text(&mut self, node: &Node, path: &str, what: &str) -> Slot<String> {
        match self.string(node, path) {
            Slot::Set(f) if f.v.trim().is_empty() => {
                self.error(node.pos, path, format!("{what} must not be empty"));
                Slot::Invalid
            }
            other => other,
        }
    }

    pub(super) fn boolean(&mut self, node: &Node, path: &str) -> Slot<bool> {
        match self.scalar(node, path) {
            Ok(s) => {
                let value = match (s.ty, s.text.to_ascii_lowercase().as_str()) {
                    (PlainType::Bool | PlainType::Str, "true") => Some(true),
                    (PlainType::Bool | PlainType::Str, "false") => Some(false),
                    _ => None,
                };
                match value {
                    Some(v) => Slot::Set(F { v, pos: node.pos, written: s.written, inherited: false }),
                    None => {
                        let hint = if matches!(
                            s.text.to_ascii_lowercase().as_str(),
                            "yes" | "no" | "on" | "off" | "y" | "n"
                        ) {
                            " (YAML 1.2 booleans are only true and false)"
                        } else {
                            ""
                        };
                        self.error(
                            node.pos,
                            path,
                            format!("expected true or false, found {}{hint}", node.describe()),
                        );
                        Slot::Invalid
                    }
                }
            }
            Err(Bad::Reported) => Slot::Invalid,
            Err(Bad::NotScalar) => self.type_error(node, path, "true or false"),
        }
    }

    pub(super) fn integer(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Slot<i64> {
        match self.scalar(node, path) {
            Ok(s) => {
                let parsed = match s.ty {
                    PlainType::Int | PlainType::Str => parse_int(&s.text),
                    _ => None,
                };
                match parsed {
                    Some(v) if (min..=max).contains(&v) => {
                        Slot::Set(F { v, pos: node.pos, written: s.written, inherited: false })
                    }
                    Some(v) => {
                        self.error(node.pos, path, format!("{v} is out of range: use {min} to {max}"));
                        Slot::Invalid
                    }
                    None => self.type_error(node, path, "a whole number"),
                }
            }
            Err(Bad::Reported) => Slot::Invalid,
            Err(Bad::NotScalar) => self.type_error(node, path, "a whole number"),
        }
    }

    pub(super) fn small_int(&mut self, node: &Node, path: &str, min: i64, max: i64) -> Slot<u32> {
        match self.integer(node, path, min, max) {
            Slot::Set(f) => Slot::Set(F { v: f.v as u32, pos: f.pos, written: f.written, inherited: false }),
            Slot::Invalid => Slot::Invalid,
            Slot::Absent => Slot::Absent,
        }
    }

    /// A duration in whole milliseconds, at least `min_ms`.
    pub(super) fn duration(&mut self, node: &Node, path: &str, min_ms: u64, max_ms: u64) -> Slot<u64> {
        let expected = "a duration like \"500ms\", \"30s\" or \"2m\"";
        let s = match self.scalar(node, path) {
            Ok(s) => s,
            Err(Bad::Reported) => return Slot::Invalid,
            Err(Bad::NotScalar) => return self.type_error(node, path, expected),
        };
        match s.ty {
            PlainType::Int => {
                self.error(
                    node.pos,
                    path,
                    format!("{} has no unit: write \"{}s\" or \"{}ms\"", s.text, s.text, s.text),
                );
                return Slot::Invalid;
            }
            PlainType::Str => {}
            _ => return self.type_error(node, path, expected),
        }
        let d = match humantime::parse_duration(s.text.trim()) {
            Ok(d) => d,
            Err(e) => {
                self.error(
                    node.pos,
                    path,
                    format!(
                        "invalid duration {} ({e}): write it like \"500ms\", \"30s\" or \"2m\"",
                        quoted(&s.text)
                    ),
                );
                return Slot::Invalid;
            }
        };
        if d.subsec_nanos() % 1_000_000 != 0 {
            self.error(node.pos, path, format!("{} is not a whole number of milliseconds", s.text.trim()));
            return Slot::Invalid;
        }
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if ms < min_ms || ms > max_ms {
            self.error(
                node.pos,
                path,
                format!(
                    "{} is out of range: use {} to {}",
                    s.text.trim(),
                    format_ms(min_ms),
                    format_ms(max_ms)
                ),
            );
            return Slot::Invalid;
        }
        Slot::Set(F { v: ms, pos: node.pos, written: s.text.trim().to_string(), inherited: false })
    }

    /// One string or a list of them, none empty.
    pub(super) fn string_list(&mut self, node: &Node, path: &str, what: &str) -> Slot<Vec<F<String>>> {
        let items: Vec<(&Node, String)> = match &node.kind {
            Kind::Seq(items) => items.iter().enumerate().map(|(i, n)| (n, join_index(path, i))).collect(),
            Kind::Scalar { .. } if !node.is_null() => vec![(node, path.to_string())],
            _ => return self.type_error(node, path, &format!("{what} or a list of them")),
        };
        if items.is_empty() {
            self.error(node.pos, path, "the list is empty: remove the field or add an entry");
            return Slot::Invalid;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (item, item_path) in items {
            match self.text(item, &item_path, "an entry") {
                Slot::Set(f) => out.push(f),
                _ => ok = false,
            }
        }
        if ok {
            Slot::Set(F { v: out, pos: node.pos, written: String::new(), inherited: false })
        } else {
            Slot::Invalid
        }
    }

    /// The entries of a mapping whose keys are strings, each once. With
    /// `known`, other keys are reported as unknown fields.
    pub(super) fn entries<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: Option<(&[&str], &str)>,
        expected: &str,
    ) -> Option<Vec<(String, &'n Node, Pos)>> {
        let Kind::Map(entries) = &node.kind else {
            self.type_error::<()>(node, path, expected);
            return None;
        };
        // Keys seen, with where: a map, so a mapping of n keys is checked
        // in n steps, not n² (a hostile file may have a million keys).
        let mut seen: HashMap<String, Pos> = HashMap::new();
        let mut out = Vec::new();
        for entry in entries {
            let key = match &entry.key.kind {
                Kind::Scalar { text, .. } if !entry.key.is_null() => text.clone(),
                _ => {
                    self.error(
                        entry.key.pos,
                        path,
                        format!("keys must be strings, found {}", entry.key.describe()),
                    );
                    continue;
                }
            };
            let key_path = join_key(path, &key);
            if let Some(first) = seen.get(&key) {
                let first = *first;
                self.error(
                    entry.key.pos,
                    &key_path,
                    format!("`{key}` is set twice (first at line {})", first.line),
                );
                continue;
            }
            seen.insert(key.clone(), entry.key.pos);
            if let Some((known, section)) = known {
                if !known.contains(&key.as_str()) {
                    self.error(entry.key.pos, &key_path, schema::unknown_field(&key, known, section));
                    continue;
                }
            }
            out.push((key, &entry.value, entry.key.pos));
        }
        Some(out)
    }

    /// A mapping of string → string.
    pub(super) fn pairs(&mut self, node: &Node, path: &str, expected: &str) -> Slot<Pairs> {
        let Some(entries) = self.entries(node, path, None, expected) else { return Slot::Invalid };
        let mut out = Vec::new();
        let mut ok = true;
        for (key, value, key_pos) in entries {
            let vp = join_key(path, &key);
            match self.string(value, &vp) {
                Slot::Set(v) => {
                    out.push((F { v: key.clone(), pos: key_pos, written: key, inherited: false }, v))
                }
                _ => ok = false,
            }
        }
        if ok {
            Slot::Set(F { v: out, pos: node.pos, written: String::new(), inherited: false })
        } else {
            Slot::Invalid
        }
    }
}

/// The path of a list entry: `field[i]`, or `field` when a single value
/// stands for the list.
pub(super) fn item_path(node: &Node, path: &str, index: usize) -> String {
    match node.kind {
        Kind::Seq(_) => join_index(path, index),
        _ => path.to_string(),
    }
}

pub(super) fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = t.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    t.parse().ok()
}

/// "65536", "64KiB", "1MiB", "1MB", "512B".
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        _ => return None,
    };
    number.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_formats() {
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("1MB"), Some(1_000_000));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1 GiB"), None);
        assert_eq!(format_ms(60_000), "1m");
        assert_eq!(format_ms(90_000), "90s");
        assert_eq!(format_ms(1500), "1500ms");
        assert_eq!(format_ms(7_200_000), "2h");
    }
}
