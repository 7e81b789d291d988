//! YAML into a small tree whose every node knows its line and column.
//!
//! yaml-rust2's event parser gives positions (its `Yaml` tree does not), so
//! this builds our own tree from the events. Scalars keep their source text
//! and style: typing ("is `5` a number?") is the validator's job, because
//! only it knows what the field expects. Anchors and aliases are resolved
//! here, and so are `<<` merge keys, which people who template Compose
//! files use.
//!
//! Memory is bounded by the file's size: every node is charged what it
//! costs in memory (its struct and its text) against a byte budget of
//! [`BYTES_PER_SOURCE_BYTE`] per byte of source plus [`BASE_BUDGET`]. An
//! alias is charged what its target costs *before* the target is copied, so
//! "billion laughs" files and a few KB of aliases to one large anchor (once
//! quadratic: 3,000 aliases to a 20 KB anchor took 248 MB) fail fast, at
//! the alias that crosses the budget.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::diagnostic::Pos;

/// Nesting deeper than this is refused (the tree is built recursively).
const MAX_DEPTH: usize = 64;

/// Bytes of parsed tree allowed per byte of source: real files (short
/// keys and values, one node every 8-10 bytes) need about 10. With this, a
/// 16 MiB file of 84,000 real checks is parsed and validated in 350 MB.
pub const BYTES_PER_SOURCE_BYTE: usize = 12;

/// Bytes of parsed tree every file may use whatever its size, so small
/// files may use anchors freely.
pub const BASE_BUDGET: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted: may be a number, boolean or null.
    Plain,
    /// Quoted or a block scalar (`|`, `>`): always a string.
    Quoted,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Scalar { text: String, style: Style, tag: Option<String> },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: Node,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    /// The scalar's text when this is a scalar.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// `~`, `null` or nothing at all, unquoted.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, style: Style::Plain, tag: None }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What the node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a mapping".into(),
            Kind::Scalar { .. } if self.is_null() => "nothing (null)".into(),
            Kind::Scalar { text, style, .. } => {
                let shown = shorten(text);
                match (style, plain_type(text)) {
                    (Style::Plain, PlainType::Bool) => format!("the boolean {shown}"),
                    (Style::Plain, PlainType::Int | PlainType::Float) => format!("the number {shown}"),
                    _ => format!("the string {}", serde_json::Value::String(shown)),
                }
            }
        }
    }

    /// What the node and everything under it take in memory, about.
    fn cost(&self) -> usize {
        std::mem::size_of::<Node>()
            + match &self.kind {
                Kind::Scalar { text, tag, .. } => text.len() + tag.as_ref().map_or(0, String::len),
                Kind::Seq(items) => items.iter().map(Node::cost).sum::<usize>(),
                Kind::Map(entries) => entries.iter().map(|e| e.key.cost() + e.value.cost()).sum::<usize>(),
            }
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text.to_string()
    }
}

/// What an unquoted scalar means under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainType {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

pub fn plain_type(text: &str) -> PlainType {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return PlainType::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return PlainType::Bool,
        ".inf" | ".Inf" | ".INF" | "-.inf" | "+.inf" | ".nan" | ".NaN" | ".NAN" => return PlainType::Float,
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let digits = |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
    if digits(unsigned, 10)
        || text.strip_prefix("0o").is_some_and(|s| digits(s, 8))
        || text.strip_prefix("0x").is_some_and(|s| digits(s, 16))
    {
        return PlainType::Int;
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => (a.is_empty() || digits(a, 10)) && (digits(b, 10) || (b.is_empty() && !a.is_empty())),
        None => false,
    } || (exponent.is_some() && digits(mantissa, 10));
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e), 10));
    if mantissa_ok && exponent_ok {
        PlainType::Float
    } else {
        PlainType::Str
    }
}

fn pos(mark: &Marker) -> Pos {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Pos { line: mark.line(), col: mark.col() + 1 }
}

fn tag_name(tag: Option<Tag>) -> Option<String> {
    tag.map(|t| {
        if t.handle == "tag:yaml.org,2002:" {
            format!("!!{}", t.suffix)
        } else {
            format!("{}{}", t.handle, t.suffix)
        }
    })
}

/// Parses every document of `source`. An empty stream has no documents.
pub fn parse(source: &str) -> Result<Vec<Node>, SyntaxError> {
    let budget = source.len().saturating_mul(BYTES_PER_SOURCE_BYTE).saturating_add(BASE_BUDGET);
    let mut builder =
        Builder { parser: Parser::new_from_str(source), anchors: HashMap::new(), budget, limit: budget };
    let mut documents = Vec::new();
    loop {
        let (event, mark) = builder.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => return Ok(documents),
            Event::DocumentStart => {
                builder.anchors.clear();
                let (event, mark) = builder.next()?;
                documents.push(builder.node(event, mark, 0)?);
            }
            other => {
                return Err(SyntaxError {
                    pos: pos(&mark),
                    message: format!("unexpected YAML event {other:?}"),
                })
            }
        }
    }
}

struct Builder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    /// Anchored nodes by id, with what each costs (charged again per alias).
    anchors: HashMap<usize, (Node, usize)>,
    /// Bytes of tree still allowed.
    budget: usize,
    /// The whole budget, for the message.
    limit: usize,
}

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Marker), SyntaxError> {
        self.parser
            .next_token()
            .map_err(|e| SyntaxError { pos: pos(e.marker()), message: format!("invalid YAML: {}", e.info()) })
    }

    /// Charges `bytes` of tree, or says where the budget ran out.
    fn spend(&mut self, bytes: usize, at: Pos, what: &str) -> Result<(), SyntaxError> {
        self.budget = self.budget.checked_sub(bytes).ok_or_else(|| SyntaxError {
            pos: at,
            message: format!(
                "the file expands to more than {} MiB once parsed ({what}); a file may take {} bytes per byte of its size plus {} MiB: use fewer or smaller aliases, or split the file",
                self.limit >> 20,
                BYTES_PER_SOURCE_BYTE,
                BASE_BUDGET >> 20
            ),
        })?;
        Ok(())
    }

    fn node(&mut self, event: Event, mark: Marker, depth: usize) -> Result<Node, SyntaxError> {
        let at = pos(&mark);
        if depth > MAX_DEPTH {
            return Err(SyntaxError { pos: at, message: format!("nesting deeper than {MAX_DEPTH} levels") });
        }
        if !matches!(event, Event::Alias(_)) {
            self.spend(std::mem::size_of::<Node>(), at, "too many values")?;
        }
        let (node, anchor) = match event {
            Event::Scalar(mut text, style, anchor, tag) => {
                let style = if style == TScalarStyle::Plain { Style::Plain } else { Style::Quoted };
                let tag = tag_name(tag);
                // The scanner grows strings by doubling; the tree keeps
                // what the text needs (a file's tree is mostly small strings).
                text.shrink_to_fit();
                self.spend(text.len() + tag.as_ref().map_or(0, String::len), at, "too much text")?;
                (Node { pos: at, kind: Kind::Scalar { text, style, tag } }, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                self.refuse_tag(tag, at)?;
                let mut items = Vec::new();
                loop {
                    let (event, mark) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(event, mark, depth + 1)?);
                }
                items.shrink_to_fit();
                (Node { pos: at, kind: Kind::Seq(items) }, anchor)
            }
            Event::MappingStart(anchor, tag) => {
                self.refuse_tag(tag, at)?;
                let node = self.mapping(at, depth)?;
                (node, anchor)
            }
            Event::Alias(id) => {
                let cost = match self.anchors.get(&id) {
                    Some((_, cost)) => *cost,
                    None => {
                        return Err(SyntaxError { pos: at, message: "alias to an unknown anchor".into() })
                    }
                };
                // Charged before the copy is made: a refused alias costs nothing.
                self.spend(cost, at, &format!("this alias repeats {cost} bytes"))?;
                let kind = self.anchors.get(&id).map(|(target, _)| target.kind.clone());
                let Some(kind) = kind else {
                    return Err(SyntaxError { pos: at, message: "alias to an unknown anchor".into() });
                };
                // The alias's own place is where it is used.
                return Ok(Node { pos: at, kind });
            }
            other => {
                return Err(SyntaxError { pos: at, message: format!("unexpected YAML event {other:?}") })
            }
        };
        if anchor > 0 {
            // The kept copy costs what the node does.
            let cost = node.cost();
            self.spend(cost, node.pos, "anchors inside anchors")?;
            self.anchors.insert(anchor, (node.clone(), cost));
        }
        Ok(node)
    }

    fn refuse_tag(&self, tag: Option<Tag>, at: Pos) -> Result<(), SyntaxError> {
        match tag_name(tag) {
            None => Ok(()),
            Some(t) if t == "!!map" || t == "!!seq" => Ok(()),
            Some(t) => Err(SyntaxError { pos: at, message: format!("unsupported YAML tag `{t}`") }),
        }
    }

    fn mapping(&mut self, start: Pos, depth: usize) -> Result<Node, SyntaxError> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut merges: Vec<Node> = Vec::new();
        loop {
            let (event, mark) = self.next()?;
            if event == Event::MappingEnd {
                break;
            }
            let key = self.node(event, mark, depth + 1)?;
            let (event, mark) = self.next()?;
            let mut value = self.node(event, mark, depth + 1)?;
            // An empty value is reported by yaml-rust2 at the next token,
            // often on a later line; its key is the useful place.
            if matches!(&value.kind, Kind::Scalar { text, style: Style::Plain, tag: None } if text.is_empty())
            {
                value.pos = key.pos;
            }
            let is_merge =
                matches!(&key.kind, Kind::Scalar { text, style: Style::Plain, .. } if text == "<<");
            let mergeable = match &value.kind {
                Kind::Map(_) => true,
                Kind::Seq(items) => items.iter().all(|i| matches!(i.kind, Kind::Map(_))),
                Kind::Scalar { .. } => false,
            };
            if is_merge && mergeable {
                merges.push(value);
            } else {
                entries.push(Entry { key, value });
            }
        }
        // `<<: *base` (or a list of them, earlier wins): keys written in the
        // mapping itself always win over merged ones. A set of the keys
        // present keeps this linear (it was a scan per merged key).
        if merges.is_empty() {
            entries.shrink_to_fit();
            let pos = entries.first().map(|e| e.key.pos).unwrap_or(start);
            return Ok(Node { pos, kind: Kind::Map(entries) });
        }
        let mut present: HashSet<Option<String>> =
            entries.iter().map(|e| e.key.scalar_text().map(str::to_string)).collect();
        for merge in merges {
            let sources = match merge.kind {
                Kind::Map(entries) => vec![entries],
                Kind::Seq(items) => items
                    .into_iter()
                    .filter_map(|i| match i.kind {
                        Kind::Map(e) => Some(e),
                        _ => None,
                    })
                    .collect(),
                Kind::Scalar { .. } => Vec::new(),
            };
            for entry in sources.into_iter().flatten() {
                if present.insert(entry.key.scalar_text().map(str::to_string)) {
                    entries.push(entry);
                }
            }
        }
        let pos = entries.first().map(|e| e.key.pos).unwrap_or(start);
        entries.shrink_to_fit();
        Ok(Node { pos, kind: Kind::Map(entries) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(node: &Node) -> &[Entry] {
        match &node.kind {
            Kind::Map(e) => e,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based() {
        let docs = parse("checks:\n  - name: a\n    url: \"http://x\"\n").unwrap();
        assert_eq!(docs.len(), 1);
        let top = map(&docs[0]);
        assert_eq!(top[0].key.pos, Pos { line: 1, col: 1 });
        let Kind::Seq(items) = &top[0].value.kind else { panic!() };
        let check = map(&items[0]);
        assert_eq!(check[0].key.pos, Pos { line: 2, col: 5 });
        assert_eq!(check[0].value.pos, Pos { line: 2, col: 11 });
        assert_eq!(check[1].value.pos, Pos { line: 3, col: 10 });
        assert_eq!(
            check[1].value.kind,
            Kind::Scalar { text: "http://x".into(), style: Style::Quoted, tag: None }
        );
    }

    #[test]
    fn empty_value_points_at_its_key() {
        let docs = parse("a:\n  b:\nc: 1\n").unwrap();
        let Kind::Map(inner) = &map(&docs[0])[0].value.kind else { panic!() };
        assert!(inner[0].value.is_null());
        assert_eq!(inner[0].value.pos, Pos { line: 2, col: 3 });
    }

    #[test]
    fn aliases_and_merge_keys() {
        let docs = parse("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n").unwrap();
        let top = map(&docs[0]);
        let used = map(&top[1].value);
        let pairs: Vec<(&str, &str)> =
            used.iter().map(|e| (e.key.scalar_text().unwrap(), e.value.scalar_text().unwrap())).collect();
        assert_eq!(pairs, vec![("y", "3"), ("x", "1")]);
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut src = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in "bcdefghijk".chars() {
            src.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = name;
        }
        let err = parse(&src).unwrap_err();
        assert!(err.message.starts_with("the file expands to more than 16 MiB once parsed"), "{err:?}");
    }

    #[test]
    fn aliases_are_charged_their_bytes_before_they_are_copied() {
        // 3,000 aliases to a 20 KB anchor in 73 KB: 60 MB once expanded,
        // refused at the alias that crosses the budget.
        let mut src = format!("a: &a \"{}\"\nb: [", "x".repeat(20_000));
        src.push_str(&"*a, ".repeat(3_000));
        src.push_str("]\n");
        let err = parse(&src).unwrap_err();
        assert_eq!(err.pos.line, 2, "{err:?}");
        assert!(err.message.contains("(this alias repeats 20072 bytes)"), "{err:?}");
        // The same anchor used a few hundred times is fine.
        let small = format!("a: &a \"{}\"\nb: [{}]\n", "x".repeat(20_000), "*a, ".repeat(300));
        assert!(parse(&small).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&src).unwrap_err().message.contains("nesting"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("invalid YAML"), "{err:?}");
        assert!(err.pos.line >= 1);
        assert!(parse("").unwrap().is_empty());
        assert_eq!(parse("---\n---\n").unwrap().len(), 2);
    }

    #[test]
    fn core_schema() {
        for (t, k) in [
            ("", PlainType::Null),
            ("~", PlainType::Null),
            ("true", PlainType::Bool),
            ("yes", PlainType::Str),
            ("12", PlainType::Int),
            ("-3", PlainType::Int),
            ("0x1F", PlainType::Int),
            ("1.5", PlainType::Float),
            ("1e3", PlainType::Float),
            (".5", PlainType::Float),
            ("30s", PlainType::Str),
            ("1.2.3", PlainType::Str),
            ("2xx", PlainType::Str),
        ] {
            assert_eq!(plain_type(t), k, "{t}");
        }
    }
}
