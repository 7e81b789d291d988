//! From the positioned YAML tree to normalised checks, or to every problem.
//!
//! Each field is read into a [`Slot`]: absent, invalid (already reported)
//! or set (with where it was written). A check is overlaid on its
//! document's `defaults`, then the cross-field rules run (timeout shorter
//! than the interval, …) only on fields that are themselves valid, so one
//! mistake produces one message, not a cascade.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::{CheckSpec, Expect, StatusMatch};

use super::alerts::DeclaredChannel;
use super::diagnostic::{join_index, join_key, Diagnostic, Pos};
use super::env::{expand, Lookup};
use super::maintenance::DeclaredWindow;
use super::schema;
use super::yaml::{self, plain_type, Kind, Node, PlainType, Style};

/// Interval bounds (the `checks.interval_ms` column enforces them too).
pub use crate::model::bounds::{MAX_INTERVAL_MS, MIN_INTERVAL_MS};
/// Interval when neither the check nor `defaults` sets one.
pub const DEFAULT_INTERVAL_MS: u64 = 60_000;
/// Timeout when none is set: this, or 80% of a shorter interval.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Redirects followed for `follow_redirects: true`.
pub const DEFAULT_REDIRECTS: u32 = 10;
pub const MAX_REDIRECTS: u32 = 30;
pub const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;
pub const MAX_THRESHOLD: i64 = 100;
pub const MAX_NAME_LEN: usize = 63;
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// Compiled-size bound of one `body_regex`, so a hostile pattern cannot
/// make apply (or a worker) allocate without bound.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// One valid check, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredCheck {
    pub name: String,
    pub interval_ms: u32,
    pub enabled: bool,
    pub spec: CheckSpec,
    /// Where its name is written, for duplicate-name messages.
    pub file: String,
    pub pos: Pos,
    /// Its field path (`checks[3]`).
    pub path: String,
    /// Where each channel of `spec.alerts` is named (resolved across files).
    pub alert_refs: Vec<Ref>,
}

/// Everything one file (or all files) declare.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub checks: Vec<DeclaredCheck>,
    pub channels: Vec<DeclaredChannel>,
    pub windows: Vec<DeclaredWindow>,
    /// Every channel and check name written, including those of entries
    /// that failed validation.
    pub written_channels: Vec<String>,
    pub written_checks: Vec<String>,
    /// Every valid check name, whether or not the rest of its entry is
    /// valid: a second entry of the same name is reported even when either
    /// entry has other problems.
    pub named_checks: Vec<CheckName>,
}

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

/// Validates files one after the other, sharing what is worth sharing
/// (compiled regular expressions: 100,000 checks often use one pattern).
pub struct Validator<'a> {
    lookup: Lookup<'a>,
    regexes_ok: HashSet<String>,
}

impl<'a> Validator<'a> {
    pub fn new(lookup: Lookup<'a>) -> Validator<'a> {
        Validator { lookup, regexes_ok: HashSet::new() }
    }

    /// Every valid check, channel and window of `source`, and every problem in it.
    pub fn validate(&mut self, file: &str, source: &str) -> (Declared, Vec<Diagnostic>) {
        let mut ctx = Ctx {
            file,
            source,
            lookup: self.lookup,
            regexes_ok: &mut self.regexes_ok,
            diags: Vec::new(),
            inherited: HashMap::new(),
            written_channels: Vec::new(),
            written_checks: Vec::new(),
            named_checks: Vec::new(),
        };
        let documents = match yaml::parse(source) {
            Ok(docs) => docs,
            Err(e) => {
                ctx.diags.push(Diagnostic {
                    file: file.to_string(),
                    pos: Some(e.pos),
                    path: String::new(),
                    message: e.message,
                });
                return (Declared::default(), ctx.diags);
            }
        };
        if documents.iter().all(Node::is_null) {
            ctx.diags.push(Diagnostic {
                file: file.to_string(),
                pos: None,
                path: String::new(),
                message: "the file declares nothing; write `checks: []` to declare no checks on purpose"
                    .into(),
            });
            return (Declared::default(), ctx.diags);
        }
        let mut declared = Declared::default();
        for document in &documents {
            if !document.is_null() {
                ctx.document(document, &mut declared);
            }
        }
        declared.written_channels = std::mem::take(&mut ctx.written_channels);
        declared.written_checks = std::mem::take(&mut ctx.written_checks);
        declared.named_checks = std::mem::take(&mut ctx.named_checks);
        for (index, more) in ctx.inherited.values() {
            if *more > 0 {
                let s = if *more == 1 { "" } else { "s" };
                ctx.diags[*index].message.push_str(&format!(" (and {more} more check{s} that inherit it)"));
            }
        }
        // In source order, like a compiler (cross-field rules run after the
        // fields they relate).
        ctx.diags.sort_by_key(|d| d.pos);
        (declared, ctx.diags)
    }
}

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
    /// The check's own value, else the default's (marked inherited).
    fn or_default(self, default: &Slot<T>) -> Slot<T> {
        match (self, default) {
            (Slot::Absent, Slot::Set(f)) => Slot::Set(F { inherited: true, ..f.clone() }),
            (Slot::Absent, Slot::Invalid) => Slot::Invalid,
            (own, _) => own,
        }
    }

    pub(super) fn set(&self) -> Option<&F<T>> {
        match self {
            Slot::Set(f) => Some(f),
            _ => None,
        }
    }

    fn is_invalid(&self) -> bool {
        matches!(self, Slot::Invalid)
    }
}

/// Key → value mappings (headers, labels) whose entries overlay one by one.
pub(super) type Pairs = Vec<(F<String>, F<String>)>;

#[derive(Debug, Clone)]
struct Partial {
    name: Slot<String>,
    description: Slot<String>,
    url: Slot<url::Url>,
    enabled: Slot<bool>,
    interval: Slot<u64>,
    timeout: Slot<u64>,
    method: Slot<String>,
    headers: Slot<Pairs>,
    body: Slot<String>,
    follow_redirects: Slot<u32>,
    tls_verify: Slot<bool>,
    body_limit: Slot<u64>,
    expect: PartialExpect,
    failure_threshold: Slot<u32>,
    success_threshold: Slot<u32>,
    labels: Slot<Pairs>,
    alerts: Slot<Vec<F<String>>>,
}

#[derive(Debug, Clone)]
struct PartialExpect {
    status: Slot<Vec<StatusMatch>>,
    max_response_time: Slot<u64>,
    body_contains: Slot<Vec<String>>,
    body_not_contains: Slot<Vec<String>>,
    body_regex: Slot<Vec<String>>,
    json: Slot<BTreeMap<String, serde_json::Value>>,
    cert_days_left: Slot<u32>,
}

impl Default for PartialExpect {
    fn default() -> Self {
        PartialExpect {
            status: Slot::Absent,
            max_response_time: Slot::Absent,
            body_contains: Slot::Absent,
            body_not_contains: Slot::Absent,
            body_regex: Slot::Absent,
            json: Slot::Absent,
            cert_days_left: Slot::Absent,
        }
    }
}

impl Default for Partial {
    fn default() -> Self {
        Partial {
            name: Slot::Absent,
            description: Slot::Absent,
            url: Slot::Absent,
            enabled: Slot::Absent,
            interval: Slot::Absent,
            timeout: Slot::Absent,
            method: Slot::Absent,
            headers: Slot::Absent,
            body: Slot::Absent,
            follow_redirects: Slot::Absent,
            tls_verify: Slot::Absent,
            body_limit: Slot::Absent,
            expect: PartialExpect::default(),
            failure_threshold: Slot::Absent,
            success_threshold: Slot::Absent,
            labels: Slot::Absent,
            alerts: Slot::Absent,
        }
    }
}

/// Overlays mappings entry by entry; `fold` says how keys compare (header
/// names ignore case).
fn overlay_pairs(own: Slot<Pairs>, default: &Slot<Pairs>, fold: fn(&str) -> String) -> Slot<Pairs> {
    match (own, default) {
        (Slot::Set(mut own), Slot::Set(default)) => {
            let mine: HashSet<String> = own.v.iter().map(|(k, _)| fold(&k.v)).collect();
            for (k, v) in &default.v {
                if !mine.contains(&fold(&k.v)) {
                    own.v.push((F { inherited: true, ..k.clone() }, F { inherited: true, ..v.clone() }));
                }
            }
            Slot::Set(own)
        }
        (own, default) => own.or_default(default),
    }
}

impl Partial {
    fn overlay(self, d: &Partial) -> Partial {
        Partial {
            name: self.name,
            description: self.description.or_default(&d.description),
            url: self.url.or_default(&d.url),
            enabled: self.enabled.or_default(&d.enabled),
            interval: self.interval.or_default(&d.interval),
            timeout: self.timeout.or_default(&d.timeout),
            method: self.method.or_default(&d.method),
            headers: overlay_pairs(self.headers, &d.headers, |k| k.to_ascii_lowercase()),
            body: self.body.or_default(&d.body),
            follow_redirects: self.follow_redirects.or_default(&d.follow_redirects),
            tls_verify: self.tls_verify.or_default(&d.tls_verify),
            body_limit: self.body_limit.or_default(&d.body_limit),
            expect: PartialExpect {
                status: self.expect.status.or_default(&d.expect.status),
                max_response_time: self.expect.max_response_time.or_default(&d.expect.max_response_time),
                body_contains: self.expect.body_contains.or_default(&d.expect.body_contains),
                body_not_contains: self.expect.body_not_contains.or_default(&d.expect.body_not_contains),
                body_regex: self.expect.body_regex.or_default(&d.expect.body_regex),
                json: self.expect.json.or_default(&d.expect.json),
                cert_days_left: self.expect.cert_days_left.or_default(&d.expect.cert_days_left),
            },
            failure_threshold: self.failure_threshold.or_default(&d.failure_threshold),
            success_threshold: self.success_threshold.or_default(&d.success_threshold),
            labels: overlay_pairs(self.labels, &d.labels, |k| k.to_string()),
            alerts: self.alerts.or_default(&d.alerts),
        }
    }
}

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

pub(super) struct Ctx<'c> {
    pub(super) file: &'c str,
    source: &'c str,
    lookup: Lookup<'c>,
    regexes_ok: &'c mut HashSet<String>,
    pub(super) diags: Vec<Diagnostic>,
    /// Channel and check names written in the file, valid or not: a
    /// reference to one that failed validation is not "unknown" too.
    pub(super) written_channels: Vec<String>,
    pub(super) written_checks: Vec<String>,
    pub(super) named_checks: Vec<CheckName>,
    /// A problem with a value inherited from `defaults` is reported once,
    /// for the first check, with a count of the others: (place, message)
    /// → (index in `diags`, further checks).
    inherited: HashMap<(Pos, String), (usize, usize)>,
}

/// Formats milliseconds the way a person writes a duration in the file.
pub fn format_ms(ms: u64) -> String {
    if ms == 0 || ms % 1000 != 0 {
        format!("{ms}ms")
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

pub(super) fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// `name` as a valid check name would be, for "did you mean".
fn slug(name: &str) -> String {
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
        let Some(line) = self.source.lines().nth(at.line.saturating_sub(1)) else { return at };
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
        let expanded = match expand(text, self.lookup) {
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
        let mut seen: Vec<(String, Pos)> = Vec::new();
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
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                let first = *first;
                self.error(
                    entry.key.pos,
                    &key_path,
                    format!("`{key}` is set twice (first at line {})", first.line),
                );
                continue;
            }
            seen.push((key.clone(), entry.key.pos));
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

    fn document(&mut self, doc: &Node, declared: &mut Declared) {
        let Some(entries) = self.entries(
            doc,
            "",
            Some((schema::TOP_LEVEL, "a checks file")),
            "a mapping with `checks:` (and optionally `defaults:`, `alerts:`, `maintenance:`)",
        ) else {
            return;
        };
        let mut defaults = Partial::default();
        let mut list = None;
        for (key, value, _) in &entries {
            match key.as_str() {
                "defaults" if !value.is_null() => defaults = self.partial(value, "defaults", true),
                "checks" => list = Some(*value),
                "alerts" if !value.is_null() => self.channels(value, "alerts", &mut declared.channels),
                "maintenance" if !value.is_null() => {
                    self.windows(value, "maintenance", &mut declared.windows)
                }
                _ => {}
            }
        }
        let checks = &mut declared.checks;
        let Some(list) = list else { return };
        let items = match &list.kind {
            Kind::Seq(items) => items,
            _ if list.is_null() => return,
            _ => {
                self.type_error::<()>(list, "checks", "a list of checks");
                return;
            }
        };
        for (i, item) in items.iter().enumerate() {
            let path = join_index("checks", i);
            let errors_before = self.diags.len();
            let own = self.partial(item, &path, false);
            let merged = own.overlay(&defaults);
            let check = self.finish(merged, item, &path);
            if let Some(check) = check {
                if self.diags.len() == errors_before {
                    checks.push(check);
                }
            }
        }
    }

    fn partial(&mut self, node: &Node, path: &str, in_defaults: bool) -> Partial {
        let mut p = Partial::default();
        let known: &[&str] = if in_defaults { &schema::CHECK[1..] } else { schema::CHECK };
        let section = if in_defaults { "defaults" } else { "a check" };
        let expected =
            if in_defaults { "a mapping of check fields" } else { "a check (a mapping with name, url, …)" };
        let Some(entries) = self.entries(node, path, Some((known, section)), expected) else {
            // Not a mapping: mark what cross-field rules need as invalid.
            p.name = Slot::Invalid;
            p.url = Slot::Invalid;
            return p;
        };
        for (key, value, _) in entries {
            let fp = join_key(path, &key);
            match key.as_str() {
                "name" => p.name = self.name(value, &fp),
                "description" => p.description = self.text(value, &fp, "description"),
                "url" => p.url = self.url(value, &fp),
                "enabled" => p.enabled = self.boolean(value, &fp),
                "interval" => p.interval = self.duration(value, &fp, MIN_INTERVAL_MS, MAX_INTERVAL_MS),
                // The worker's hard ceiling on a check's deadline: a longer
                // timeout would be cut short silently at run time.
                "timeout" => {
                    p.timeout =
                        self.duration(value, &fp, 1, crate::model::bounds::MAX_TIMEOUT.as_millis() as u64)
                }
                "method" => p.method = self.method(value, &fp),
                "headers" => p.headers = self.headers(value, &fp),
                "body" => p.body = self.string(value, &fp),
                "follow_redirects" => p.follow_redirects = self.redirects(value, &fp),
                "tls_verify" => p.tls_verify = self.boolean(value, &fp),
                "body_limit" => p.body_limit = self.body_limit(value, &fp),
                "expect" => p.expect = self.expect(value, &fp),
                "failure_threshold" => p.failure_threshold = self.small_int(value, &fp, 1, MAX_THRESHOLD),
                "success_threshold" => p.success_threshold = self.small_int(value, &fp, 1, MAX_THRESHOLD),
                "labels" => p.labels = self.labels(value, &fp),
                "alerts" => p.alerts = self.alerts(value, &fp),
                _ => {}
            }
        }
        p
    }

    pub(super) fn name(&mut self, node: &Node, path: &str) -> Slot<String> {
        if let (Some(text), true) = (node.scalar_text(), path.starts_with("checks[")) {
            self.written_checks.push(text.trim().to_string());
        }
        match self.string(node, path) {
            Slot::Set(f) if valid_name(&f.v) => {
                if path.starts_with("checks[") {
                    self.named_checks.push(CheckName {
                        name: f.v.clone(),
                        file: self.file.to_string(),
                        pos: f.pos,
                        entry: path.strip_suffix(".name").unwrap_or(path).to_string(),
                    });
                }
                Slot::Set(f)
            }
            Slot::Set(f) => {
                let suggestion = slug(&f.v);
                let hint = if suggestion.is_empty() || suggestion == f.v {
                    String::new()
                } else {
                    format!(", e.g. {}", quoted(&suggestion))
                };
                self.error(
                    node.pos,
                    path,
                    format!(
                        "invalid name {}: use lower-case letters, digits and `-`, starting and ending with a letter or digit, at most {MAX_NAME_LEN} characters{hint}",
                        quoted(&f.v)
                    ),
                );
                Slot::Invalid
            }
            other => other,
        }
    }

    pub(super) fn url(&mut self, node: &Node, path: &str) -> Slot<url::Url> {
        let f = match self.text(node, path, "url") {
            Slot::Set(f) => f,
            Slot::Invalid => return Slot::Invalid,
            Slot::Absent => return Slot::Absent,
        };
        // `written` keeps `${VAR}`s: an expanded URL may hold a password,
        // and one written in the file is masked too.
        let shown = match url::Url::parse(&f.written) {
            Ok(u) if u.password().is_some() => quoted(&crate::model::redact::redact_url(&f.written)),
            _ => quoted(&crate::model::redact::mask_userinfo(&f.written)),
        };
        let problem = match url::Url::parse(f.v.trim()) {
            Err(e) => Some(format!("invalid URL {shown}: {e}")),
            Ok(u) if u.scheme() != "http" && u.scheme() != "https" => {
                Some(format!("unsupported URL scheme `{}` in {shown}: use http or https", u.scheme()))
            }
            Ok(u) if u.host_str().is_none_or(str::is_empty) => Some(format!("URL {shown} has no host")),
            Ok(u) => return Slot::Set(F { v: u, pos: f.pos, written: f.written, inherited: false }),
        };
        if let Some(message) = problem {
            self.error(node.pos, path, message);
        }
        Slot::Invalid
    }

    fn method(&mut self, node: &Node, path: &str) -> Slot<String> {
        match self.text(node, path, "method") {
            Slot::Set(f) => {
                let upper = f.v.trim().to_ascii_uppercase();
                if METHODS.contains(&upper.as_str()) {
                    Slot::Set(F { v: upper, ..f })
                } else {
                    self.error(
                        node.pos,
                        path,
                        format!("unsupported method {}: use one of {}", quoted(&f.v), METHODS.join(", ")),
                    );
                    Slot::Invalid
                }
            }
            other => other,
        }
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

    pub(super) fn headers(&mut self, node: &Node, path: &str) -> Slot<Pairs> {
        let Slot::Set(f) = self.pairs(node, path, "a mapping of header names to values") else {
            return Slot::Invalid;
        };
        let mut ok = true;
        let mut seen: Vec<(String, Pos)> = Vec::new();
        for (k, v) in &f.v {
            let kp = join_key(path, &k.v);
            if hyper::header::HeaderName::from_bytes(k.v.as_bytes()).is_err() {
                self.error(k.pos, &kp, format!("invalid header name {}", quoted(&k.v)));
                ok = false;
                continue;
            }
            let lower = k.v.to_ascii_lowercase();
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == lower) {
                let first = *first;
                self.error(
                    k.pos,
                    &kp,
                    format!(
                        "header `{}` is set twice (names ignore case; first at line {})",
                        k.v, first.line
                    ),
                );
                ok = false;
                continue;
            }
            seen.push((lower, k.pos));
            // The value is never shown: it is often a token.
            if hyper::header::HeaderValue::from_str(&v.v).is_err() {
                self.error(v.pos, &kp, "the header value contains characters HTTP does not allow (line breaks or control characters)");
                ok = false;
            }
        }
        if ok {
            Slot::Set(f)
        } else {
            Slot::Invalid
        }
    }

    pub(super) fn labels(&mut self, node: &Node, path: &str) -> Slot<Pairs> {
        let Slot::Set(f) = self.pairs(node, path, "a mapping of label names to values") else {
            return Slot::Invalid;
        };
        let mut ok = true;
        for (k, _) in &f.v {
            let valid = !k.v.is_empty()
                && k.v.len() <= 100
                && k.v.chars().all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
            if !valid {
                self.error(
                    k.pos,
                    &join_key(path, &k.v),
                    format!(
                        "invalid label name {}: use letters, digits, `_`, `.`, `-` and `/` (at most 100)",
                        quoted(&k.v)
                    ),
                );
                ok = false;
            }
        }
        if ok {
            Slot::Set(f)
        } else {
            Slot::Invalid
        }
    }

    fn alerts(&mut self, node: &Node, path: &str) -> Slot<Vec<F<String>>> {
        let Slot::Set(f) = self.string_list(node, path, "a notification channel name") else {
            return Slot::Invalid;
        };
        let mut names: Vec<String> = Vec::new();
        let mut items: Vec<F<String>> = Vec::new();
        let mut ok = true;
        for (i, item) in f.v.iter().enumerate() {
            let item_path = item_path(node, path, i);
            if !valid_name(&item.v) {
                self.error(
                    item.pos,
                    &item_path,
                    format!(
                        "invalid channel name {}: use lower-case letters, digits and `-`",
                        quoted(&item.v)
                    ),
                );
                ok = false;
            } else if names.contains(&item.v) {
                self.error(item.pos, &item_path, format!("channel `{}` is listed twice", item.v));
                ok = false;
            } else {
                names.push(item.v.clone());
                items.push(F { written: item_path.clone(), ..item.clone() });
            }
        }
        if ok {
            Slot::Set(F { v: items, pos: f.pos, written: String::new(), inherited: false })
        } else {
            Slot::Invalid
        }
    }

    fn redirects(&mut self, node: &Node, path: &str) -> Slot<u32> {
        let expected = format!("true, false or a number of redirects (0 to {MAX_REDIRECTS})");
        match self.scalar(node, path) {
            Ok(s) if s.ty == PlainType::Bool => {
                let v = if s.text.eq_ignore_ascii_case("true") { DEFAULT_REDIRECTS } else { 0 };
                Slot::Set(F { v, pos: node.pos, written: s.written, inherited: false })
            }
            Ok(s) if s.ty == PlainType::Int => self.small_int(node, path, 0, MAX_REDIRECTS as i64),
            Ok(_) | Err(Bad::NotScalar) => self.type_error(node, path, &expected),
            Err(Bad::Reported) => Slot::Invalid,
        }
    }

    fn body_limit(&mut self, node: &Node, path: &str) -> Slot<u64> {
        let expected = "a size in bytes (65536) or with a unit (\"64KiB\", \"1MiB\", \"1MB\")";
        let s = match self.scalar(node, path) {
            Ok(s) => s,
            Err(Bad::Reported) => return Slot::Invalid,
            Err(Bad::NotScalar) => return self.type_error(node, path, expected),
        };
        let bytes = match s.ty {
            PlainType::Int | PlainType::Str => parse_size(&s.text),
            _ => None,
        };
        match bytes {
            Some(b) if (1..=MAX_BODY_LIMIT).contains(&b) => {
                Slot::Set(F { v: b, pos: node.pos, written: s.written, inherited: false })
            }
            Some(_) => {
                self.error(node.pos, path, format!("{} is out of range: use 1 byte to 64MiB", s.text.trim()));
                Slot::Invalid
            }
            None => self.type_error(node, path, expected),
        }
    }

    fn expect(&mut self, node: &Node, path: &str) -> PartialExpect {
        let mut e = PartialExpect::default();
        let Some(entries) =
            self.entries(node, path, Some((schema::EXPECT, "expect")), "a mapping of assertions")
        else {
            e.status = Slot::Invalid;
            return e;
        };
        for (key, value, _) in entries {
            let fp = join_key(path, &key);
            match key.as_str() {
                "status" => e.status = self.status(value, &fp),
                "max_response_time" => e.max_response_time = self.duration(value, &fp, 1, MAX_INTERVAL_MS),
                "body_contains" => e.body_contains = plain_list(self.string_list(value, &fp, "a string")),
                "body_not_contains" => {
                    e.body_not_contains = plain_list(self.string_list(value, &fp, "a string"))
                }
                "body_regex" => e.body_regex = self.regexes(value, &fp),
                "json" => e.json = self.json(value, &fp),
                "cert_days_left" => e.cert_days_left = self.small_int(value, &fp, 0, 3650),
                _ => {}
            }
        }
        e
    }

    fn status(&mut self, node: &Node, path: &str) -> Slot<Vec<StatusMatch>> {
        let items: Vec<(&Node, String)> = match &node.kind {
            Kind::Seq(items) => items.iter().enumerate().map(|(i, n)| (n, join_index(path, i))).collect(),
            Kind::Scalar { .. } if !node.is_null() => vec![(node, path.to_string())],
            _ => {
                return self.type_error(node, path, "a status (200, \"2xx\", \"200-299\") or a list of them")
            }
        };
        if items.is_empty() {
            self.error(node.pos, path, "the list is empty: remove the field or add an entry");
            return Slot::Invalid;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (item, item_path) in items {
            match self.scalar(item, &item_path) {
                Ok(s) if matches!(s.ty, PlainType::Int | PlainType::Str) => match StatusMatch::parse(&s.text)
                {
                    Ok(m) => out.push(m),
                    Err(message) => {
                        self.error(item.pos, &item_path, message);
                        ok = false;
                    }
                },
                Err(Bad::Reported) => ok = false,
                Ok(_) | Err(Bad::NotScalar) => {
                    self.type_error::<()>(item, &item_path, "a status (200, \"2xx\", \"200-299\")");
                    ok = false;
                }
            }
        }
        if ok {
            Slot::Set(F { v: out, pos: node.pos, written: String::new(), inherited: false })
        } else {
            Slot::Invalid
        }
    }

    fn regexes(&mut self, node: &Node, path: &str) -> Slot<Vec<String>> {
        let Slot::Set(f) = self.string_list(node, path, "a regular expression") else { return Slot::Invalid };
        let mut ok = true;
        for (i, item) in f.v.iter().enumerate() {
            if self.regexes_ok.contains(&item.v) {
                continue;
            }
            let item_path = item_path(node, path, i);
            match regex::RegexBuilder::new(&item.v).size_limit(REGEX_SIZE_LIMIT).build() {
                Ok(_) => {
                    self.regexes_ok.insert(item.v.clone());
                }
                Err(e) => {
                    self.error(
                        item.pos,
                        &item_path,
                        format!("invalid regular expression {}: {}", quoted(&item.written), regex_error(&e)),
                    );
                    ok = false;
                }
            }
        }
        if ok {
            Slot::Set(F {
                v: f.v.into_iter().map(|i| i.v).collect(),
                pos: f.pos,
                written: String::new(),
                inherited: false,
            })
        } else {
            Slot::Invalid
        }
    }

    fn json(&mut self, node: &Node, path: &str) -> Slot<BTreeMap<String, serde_json::Value>> {
        let Some(entries) =
            self.entries(node, path, None, "a mapping of JSON pointers (\"/status\") to expected values")
        else {
            return Slot::Invalid;
        };
        if entries.is_empty() {
            self.error(node.pos, path, "the mapping is empty: remove the field or add a pointer");
            return Slot::Invalid;
        }
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (pointer, value, key_pos) in entries {
            let vp = join_key(path, &pointer);
            if let Err(message) = check_pointer(&pointer) {
                self.error(key_pos, &vp, message);
                ok = false;
                continue;
            }
            match self.json_value(value, &vp) {
                Some(v) => {
                    out.insert(pointer, v);
                }
                None => ok = false,
            }
        }
        if ok {
            Slot::Set(F { v: out, pos: node.pos, written: String::new(), inherited: false })
        } else {
            Slot::Invalid
        }
    }

    fn json_value(&mut self, node: &Node, path: &str) -> Option<serde_json::Value> {
        use serde_json::Value;
        match &node.kind {
            Kind::Seq(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.json_value(item, &join_index(path, i)) {
                        Some(v) => out.push(v),
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Array(out))
            }
            Kind::Map(_) => {
                let entries = self.entries(node, path, None, "a mapping")?;
                let mut out = serde_json::Map::new();
                let mut ok = true;
                for (key, value, _) in entries {
                    match self.json_value(value, &join_key(path, &key)) {
                        Some(v) => {
                            out.insert(key, v);
                        }
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Object(out))
            }
            Kind::Scalar { .. } => {
                let s = self.scalar(node, path).ok()?;
                Some(match s.ty {
                    PlainType::Null => Value::Null,
                    PlainType::Bool => Value::Bool(s.text.eq_ignore_ascii_case("true")),
                    PlainType::Int => match parse_int(&s.text) {
                        Some(i) => Value::from(i),
                        None => Value::String(s.text),
                    },
                    PlainType::Float => match s
                        .text
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                    {
                        Some(n) => Value::Number(n),
                        None => {
                            self.error(node.pos, path, format!("{} cannot be represented in JSON", s.text));
                            return None;
                        }
                    },
                    PlainType::Str => Value::String(s.text),
                })
            }
        }
    }

    /// Cross-field rules and defaults; the normalised check.
    fn finish(&mut self, p: Partial, node: &Node, path: &str) -> Option<DeclaredCheck> {
        let field = |name: &str| format!("{path}.{name}");
        let from = |f: &F<u64>| if f.inherited { " (set in defaults)" } else { "" };
        let name = match &p.name {
            Slot::Set(f) => Some(f.clone()),
            Slot::Invalid => None,
            Slot::Absent => {
                self.error(node.pos, &field("name"), "missing: every check needs a unique `name`");
                None
            }
        };
        let url = match &p.url {
            Slot::Set(f) => Some(f.clone()),
            Slot::Invalid => None,
            Slot::Absent => {
                self.error(node.pos, &field("url"), "missing: every check needs a `url`");
                None
            }
        };
        let interval_ms = p.interval.set().map_or(DEFAULT_INTERVAL_MS, |f| f.v);
        let timeout_ms = p.timeout.set().map_or(DEFAULT_TIMEOUT_MS.min(interval_ms * 4 / 5), |f| f.v);
        if let (Some(t), false) = (p.timeout.set(), p.interval.is_invalid()) {
            if t.v >= interval_ms {
                let interval_text =
                    p.interval.set().map_or_else(|| format_ms(interval_ms), |f| f.written.clone());
                let default_note = if p.interval.set().is_none() { ", the default" } else { "" };
                self.field_error(
                    t.inherited && p.interval.set().is_none_or(|i| i.inherited),
                    t.pos,
                    &field("timeout"),
                    format!(
                        "{}{} must be shorter than the interval ({interval_text}{default_note})",
                        t.written,
                        from(t)
                    ),
                );
            }
        }
        if let (Some(m), false) = (p.expect.max_response_time.set(), p.timeout.is_invalid()) {
            if m.v > timeout_ms {
                self.field_error(
                    m.inherited && p.timeout.set().is_none_or(|t| t.inherited),
                    m.pos,
                    &field("expect.max_response_time"),
                    format!(
                        "{}{} is longer than the timeout ({}): the check would time out first",
                        m.written,
                        from(m),
                        format_ms(timeout_ms)
                    ),
                );
            }
        }
        let https = url.as_ref().is_some_and(|u| u.v.scheme() == "https");
        let mut cert_days_left = p.expect.cert_days_left.set().map(|f| f.v);
        if let (Some(c), Some(_), false) = (p.expect.cert_days_left.set(), &url, https) {
            if c.inherited {
                // A fleet-wide default applies to the https checks only.
                cert_days_left = None;
            } else {
                self.error(
                    c.pos,
                    &field("expect.cert_days_left"),
                    "needs an https URL (a plain http check has no certificate)",
                );
            }
        }
        let (name, url) = (name?, url?);
        let pairs = |s: &Slot<Pairs>| -> BTreeMap<String, String> {
            s.set().map(|f| f.v.iter().map(|(k, v)| (k.v.clone(), v.v.clone())).collect()).unwrap_or_default()
        };
        let list = |s: &Slot<Vec<String>>| s.set().map(|f| f.v.clone()).unwrap_or_default();
        let spec = CheckSpec {
            url: url.v.to_string(),
            method: p.method.set().map_or_else(|| "GET".to_string(), |f| f.v.clone()),
            headers: pairs(&p.headers),
            body: p.body.set().map(|f| f.v.clone()),
            timeout_ms,
            max_redirects: p.follow_redirects.set().map_or(DEFAULT_REDIRECTS, |f| f.v),
            tls_verify: p.tls_verify.set().is_none_or(|f| f.v),
            body_limit: p.body_limit.set().map(|f| f.v),
            expect: Expect {
                status: p.expect.status.set().map(|f| f.v.clone()).unwrap_or_default(),
                max_response_time_ms: p.expect.max_response_time.set().map(|f| f.v),
                body_contains: list(&p.expect.body_contains),
                body_not_contains: list(&p.expect.body_not_contains),
                body_regex: list(&p.expect.body_regex),
                json: p.expect.json.set().map(|f| f.v.clone()).unwrap_or_default(),
                cert_days_left,
            },
            failure_threshold: p.failure_threshold.set().map_or(1, |f| f.v),
            success_threshold: p.success_threshold.set().map_or(1, |f| f.v),
            labels: pairs(&p.labels),
            alerts: p.alerts.set().map(|f| f.v.iter().map(|i| i.v.clone()).collect()).unwrap_or_default(),
            description: p.description.set().map(|f| f.v.clone()),
        };
        Some(DeclaredCheck {
            name: name.v,
            // At most MAX_INTERVAL_MS, which fits.
            interval_ms: interval_ms as u32,
            enabled: p.enabled.set().is_none_or(|f| f.v),
            spec,
            file: self.file.to_string(),
            pos: name.pos,
            path: path.to_string(),
            alert_refs: p
                .alerts
                .set()
                .map(|f| {
                    f.v.iter()
                        .map(|i| Ref {
                            name: i.v.clone(),
                            file: self.file.to_string(),
                            pos: i.pos,
                            // `written` holds the entry's field path where it is
                            // written (`checks[3].alerts[1]`, `defaults.alerts[0]`).
                            path: i.written.clone(),
                            inherited: f.inherited,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
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

fn plain_list(slot: Slot<Vec<F<String>>>) -> Slot<Vec<String>> {
    match slot {
        Slot::Set(f) => Slot::Set(F {
            v: f.v.into_iter().map(|i| i.v).collect(),
            pos: f.pos,
            written: f.written,
            inherited: false,
        }),
        Slot::Invalid => Slot::Invalid,
        Slot::Absent => Slot::Absent,
    }
}

fn parse_int(text: &str) -> Option<i64> {
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

/// RFC 6901: "/a/b", "~0" is "~" and "~1" is "/".
fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.starts_with('/') {
        let hint = if pointer.is_empty() {
            String::new()
        } else {
            format!(" (did you mean \"/{}\"?)", pointer.replace('.', "/"))
        };
        return Err(format!("{} is not a JSON pointer: it must start with \"/\"{hint}", quoted(pointer)));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!("{}: `~` must be followed by 0 (for ~) or 1 (for /)", quoted(pointer)));
        }
    }
    Ok(())
}

/// The regex crate's multi-line message, on one line.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.lines().last().unwrap_or("").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TOKEN").then(|| "s3cret".to_string())
    }

    fn run(source: &str) -> (Vec<DeclaredCheck>, Vec<String>) {
        let mut v = Validator::new(&env);
        let (declared, diags) = v.validate("c.yaml", source);
        (declared.checks, diags.iter().map(|d| d.to_string()).collect())
    }

    fn ok(source: &str) -> Vec<DeclaredCheck> {
        let (checks, diags) = run(source);
        assert!(diags.is_empty(), "{diags:#?}");
        checks
    }

    #[test]
    fn defaults_and_normalisation() {
        let checks = ok("
defaults:
  interval: 30s
  headers: { User-Agent: probe, X-Env: prod }
  labels: { env: prod }
  expect: { status: [200, 3xx], cert_days_left: 14 }
checks:
  - name: a
    url: https://example.com
    headers: { x-env: staging, Authorization: \"Bearer ${TOKEN}\" }
    follow_redirects: false
    expect: { body_contains: Welcome }
  - name: b
    url: http://example.com/x
    interval: 5s
    method: post
    follow_redirects: 3
    enabled: false
    labels: { team: web }
");
        assert_eq!(checks.len(), 2);
        let a = &checks[0];
        assert_eq!((a.name.as_str(), a.interval_ms, a.enabled), ("a", 30_000, true));
        assert_eq!(a.spec.url, "https://example.com/");
        assert_eq!(a.spec.timeout_ms, 10_000);
        assert_eq!(a.spec.max_redirects, 0);
        assert_eq!(a.spec.headers.get("Authorization").map(String::as_str), Some("Bearer s3cret"));
        assert_eq!(a.spec.headers.get("x-env").map(String::as_str), Some("staging"));
        assert!(!a.spec.headers.contains_key("X-Env"), "check's header wins whatever its case");
        assert_eq!(a.spec.headers.get("User-Agent").map(String::as_str), Some("probe"));
        assert_eq!(a.spec.expect.status, vec![StatusMatch::Code(200), StatusMatch::Class(3)]);
        assert_eq!(a.spec.expect.body_contains, vec!["Welcome"]);
        assert_eq!(a.spec.expect.cert_days_left, Some(14));
        assert_eq!(a.pos, Pos { line: 8, col: 11 });
        let b = &checks[1];
        assert_eq!((b.interval_ms, b.enabled, b.spec.method.as_str()), (5_000, false, "POST"));
        assert_eq!(b.spec.timeout_ms, 4_000, "default timeout shrinks to 80% of a short interval");
        assert_eq!(b.spec.max_redirects, 3);
        assert_eq!(b.spec.expect.cert_days_left, None, "inherited cert_days_left skips http checks");
        assert_eq!(b.spec.labels.len(), 2);
    }

    #[test]
    fn every_problem_with_its_place() {
        let (checks, diags) = run("
checks:
  - name: Shop_Home
    url: ftp://x
    interval: 0s
    timout: 5s
  - name: ok
    url: http://x
    interval: 60s
    timeout: 90s
    tls_verify: yes
    expect:
      status: [200, 6xx]
      json: { status: UP }
      body_regex: \"v[0-9\"
    headers: { Authorization: \"${NOPE}\" }
");
        assert!(checks.is_empty());
        assert_eq!(
            diags,
            vec![
                "c.yaml:3:11: checks[0].name: invalid name \"Shop_Home\": use lower-case letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters, e.g. \"shop-home\"",
                "c.yaml:4:10: checks[0].url: unsupported URL scheme `ftp` in \"ftp://x\": use http or https",
                "c.yaml:5:15: checks[0].interval: 0s is out of range: use 1s to 24h",
                "c.yaml:6:5: checks[0].timout: unknown field `timout`, did you mean `timeout`?",
                "c.yaml:10:14: checks[1].timeout: 90s must be shorter than the interval (60s)",
                "c.yaml:11:17: checks[1].tls_verify: expected true or false, found the string \"yes\" (YAML 1.2 booleans are only true and false)",
                "c.yaml:13:21: checks[1].expect.status[1]: invalid status \"6xx\": use a code (200), a class (\"2xx\") or a range (\"200-299\")",
                "c.yaml:14:15: checks[1].expect.json.status: \"status\" is not a JSON pointer: it must start with \"/\" (did you mean \"/status\"?)",
                "c.yaml:15:19: checks[1].expect.body_regex: invalid regular expression \"v[0-9\": unclosed character class",
                "c.yaml:16:32: checks[1].headers.Authorization: environment variable `NOPE` is not set (write `${NOPE:-default}` for a fallback, or `$${` for a literal `${`)",
            ]
        );
    }

    #[test]
    fn types_and_empties() {
        let (_, diags) = run("
defaults:
  timeout: 2m
checks:
  - name: a
    url: http://x
    failure_threshold: two
    body_limit: 10GB
    alerts: [ops, ops]
    labels: { team: true }
  - url: http://x
  - name: c
    url: [http://x]
  - just a string
");
        assert_eq!(
            diags,
            vec![
                "c.yaml:3:12: checks[0].timeout: 2m (set in defaults) must be shorter than the interval (1m, the default) (and 3 more checks that inherit it)",
                "c.yaml:7:24: checks[0].failure_threshold: expected a whole number, found the string \"two\"",
                "c.yaml:8:17: checks[0].body_limit: expected a size in bytes (65536) or with a unit (\"64KiB\", \"1MiB\", \"1MB\"), found the string \"10GB\"",
                "c.yaml:9:19: checks[0].alerts[1]: channel `ops` is listed twice",
                "c.yaml:10:21: checks[0].labels.team: expected a string, found the boolean true (quote it: \"true\")",
                "c.yaml:11:5: checks[1].name: missing: every check needs a unique `name`",
                "c.yaml:13:10: checks[2].url: expected a string, found a list",
                "c.yaml:14:5: checks[3]: expected a check (a mapping with name, url, …), found the string \"just a string\"",
            ]
        );
    }

    #[test]
    fn empty_file_and_syntax_error() {
        assert_eq!(
            run("# nothing\n").1,
            vec!["c.yaml: the file declares nothing; write `checks: []` to declare no checks on purpose"]
        );
        assert!(ok("checks: []\n").is_empty());
        let (_, diags) = run("checks:\n  - name: a\n   url: x\n");
        assert_eq!(diags.len(), 1);
        assert!(diags[0].starts_with("c.yaml:3:"), "{diags:?}");
    }

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
        assert!(valid_name("shop-home-2") && !valid_name("-a") && !valid_name("a_b") && !valid_name(""));
        assert_eq!(slug("Shop Home!"), "shop-home");
    }
}
