//! The layering of `src/`, enforced: imports point down only.
//!
//! Reads every file under `src/`, collects the paths it uses inside this
//! crate (`use crate::…`, `use super::…`, `use self::…`, groups such as
//! `use crate::{a, b::c}`, and `crate::x::…` / `super::x::…` paths in code),
//! and fails, naming the file, line and import, on:
//!
//! 1. an import cycle between top-level modules of `src/`;
//! 2. an import cycle between the files of one module folder (`a.rs` uses
//!    `b.rs` and `b.rs` uses `a.rs`, directly or through other siblings);
//! 3. a role (`scheduler`, `worker`, `web`) importing another role;
//! 4. a module importing one of a higher layer ([`LAYERS`]);
//! 5. a top-level module that [`LAYERS`] does not place.
//!
//! What is not counted, and why:
//! - `#[cfg(test)]` items (the `mod tests` blocks): test code may reach
//!   where production code must not, and is not part of the build.
//! - A folder's `mod.rs` using its own children (`pub use child::X`,
//!   `child::run()`): that is the folder's facade declaring its parts. A
//!   child using an item *defined* in `mod.rs` is an edge to the folder
//!   itself, which is not one of the siblings; a child using an item that
//!   `mod.rs` re-exports from another child is an edge to that child.
//! - `main.rs` and `lib.rs`: the roots wire everything.
//!
//! The layer table is docs/development.md's; keep both in step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Layers, lowest first. A module may import its own layer and those
/// below; roles ([`ROLES`]) may not import each other.
const LAYERS: &[&[&str]] = &[
    &["model"],
    &["net"],
    &["config"],
    &["health", "shutdown"],
    &["telemetry"],
    &["ops_server"],
    &["db", "queue", "migrate"],
    &["probe"],
    &["checks_file", "alerting", "status", "status_pages", "history", "tokens", "heartbeat"],
    &["scheduler", "worker", "web"],
    &["cli", "commands"],
];

/// The roles: the loops of one subcommand each; never import each other.
const ROLES: &[&str] = &["scheduler", "worker", "web"];

// ------------------------------------------------------------------ model

/// A module path inside the crate: `[]` is the root, `["worker", "consumer"]`
/// is `src/worker/consumer.rs`.
type ModPath = Vec<String>;

/// One path a file uses, as written, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    /// Line in the file (1-based).
    line: usize,
    /// The path as written (`crate::worker::tls::TlsConfig`; one leaf of a
    /// `use` group: `crate::{db, shutdown}` gives `crate::db` and
    /// `crate::shutdown`).
    written: String,
    /// The path made absolute from the crate root (`crate`, `super`, `self`
    /// resolved), without the leading `crate`.
    absolute: Vec<String>,
    /// A `pub use` (or `pub(crate) use`): a re-export of its module.
    reexport: bool,
    /// The name it is re-exported under (`as` alias or last segment).
    alias: Option<String>,
}

/// What one source file says about the crate's modules.
#[derive(Debug, Default)]
struct FileFacts {
    imports: Vec<Import>,
    /// Out-of-line modules declared under `#[cfg(test)]` (`mod tests;`):
    /// their files are test code.
    test_modules: Vec<String>,
    /// The whole file is `#![cfg(test)]`.
    test_only: bool,
}

// ------------------------------------------------------------------ lexer

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
}

/// Tokens of Rust source with comments, string and character literals
/// removed, each with its line. Just enough lexing for paths.
fn tokenize(source: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let count_lines = |from: usize, to: usize| chars[from..to].iter().filter(|c| **c == '\n').count();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += count_lines(start, i.min(chars.len()));
        } else if let Some(end) = raw_string_end(&chars, i) {
            line += count_lines(i, end);
            i = end;
        } else if c == '"' || (c == 'b' && next == Some('"')) {
            let start = i;
            i += if c == 'b' { 2 } else { 1 };
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            line += count_lines(start, i.min(chars.len()));
        } else if c == '\'' {
            // A character literal ('a', '\n', '\u{1F600}', '\'') or a
            // lifetime ('a, 'static): only the former closes with a quote.
            if next == Some('\\') {
                i += 3; // the quote, the backslash and the escaped character
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), line));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
        } else if c == ':' && next == Some(':') {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// End (exclusive) of a raw string literal starting at `i` (`r"…"`,
/// `r#"…"#`, `br#"…"#`), if one starts there.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    // Not the tail of an identifier such as `bar"`.
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

// ----------------------------------------------------------------- parser

fn ident(tokens: &[(Tok, usize)], i: usize) -> Option<&str> {
    match tokens.get(i) {
        Some((Tok::Ident(name), _)) => Some(name),
        _ => None,
    }
}

fn is_punct(tokens: &[(Tok, usize)], i: usize, c: char) -> bool {
    matches!(tokens.get(i), Some((Tok::Punct(p), _)) if *p == c)
}

fn is_sep(tokens: &[(Tok, usize)], i: usize) -> bool {
    matches!(tokens.get(i), Some((Tok::PathSep, _)))
}

/// Index just past the bracket that closes the one at `open`.
fn skip_balanced(tokens: &[(Tok, usize)], open: usize) -> usize {
    let mut depth = 0i32;
    let mut i = open;
    while i < tokens.len() {
        match tokens[i].0 {
            Tok::Punct('{') | Tok::Punct('(') | Tok::Punct('[') => depth += 1,
            Tok::Punct('}') | Tok::Punct(')') | Tok::Punct(']') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    tokens.len()
}

/// Index just past the item starting at `i`: its `;`, or its `{…}` body.
fn skip_item(tokens: &[(Tok, usize)], mut i: usize) -> usize {
    while i < tokens.len() {
        match tokens[i].0 {
            Tok::Punct(';') => return i + 1,
            Tok::Punct('{') => return skip_balanced(tokens, i),
            Tok::Punct('(') | Tok::Punct('[') => i = skip_balanced(tokens, i),
            _ => i += 1,
        }
    }
    i
}

/// A leaf of a `use` tree: its segments as written, and its `as` alias.
#[derive(Debug, PartialEq, Eq)]
struct UseLeaf {
    segments: Vec<String>,
    alias: Option<String>,
    line: usize,
}

/// Parses one use tree at `i` (after `use`, or inside a group) under
/// `prefix`; returns the index after it.
fn parse_use_tree(tokens: &[(Tok, usize)], mut i: usize, prefix: &[String], out: &mut Vec<UseLeaf>) -> usize {
    let line = tokens.get(i).map(|t| t.1).unwrap_or(0);
    let mut segments: Vec<String> = prefix.to_vec();
    if is_sep(tokens, i) {
        i += 1; // a leading `::`
    }
    loop {
        if let Some(name) = ident(tokens, i) {
            if name == "as" {
                break;
            }
            // `self` inside a group names the group's prefix itself.
            if !(name == "self" && !segments.is_empty() && segments.len() == prefix.len()) {
                segments.push(name.to_string());
            }
            i += 1;
            if is_sep(tokens, i) {
                i += 1;
                continue;
            }
            break;
        } else if is_punct(tokens, i, '{') {
            i += 1;
            while i < tokens.len() && !is_punct(tokens, i, '}') {
                i = parse_use_tree(tokens, i, &segments, out);
                if is_punct(tokens, i, ',') {
                    i += 1;
                }
            }
            return i + 1;
        } else if is_punct(tokens, i, '*') {
            out.push(UseLeaf { segments, alias: None, line });
            return i + 1;
        } else {
            break;
        }
    }
    let mut alias = None;
    if ident(tokens, i) == Some("as") {
        alias = ident(tokens, i + 1).map(str::to_string);
        i += 2;
    }
    if !segments.is_empty() {
        out.push(UseLeaf { segments, alias, line });
    }
    i
}

/// Makes `segments` (as written, in module `scope`) absolute from the crate
/// root; None for a path that does not start at `crate`, `super` or
/// `self` (an external crate, or a name in scope).
fn absolute(scope: &[String], segments: &[String]) -> Option<Vec<String>> {
    let first = segments.first()?;
    match first.as_str() {
        "crate" => Some(segments[1..].to_vec()),
        "self" => Some(scope.iter().chain(&segments[1..]).cloned().collect()),
        "super" => {
            let mut base = scope.to_vec();
            let mut rest = segments;
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
            Some(base.into_iter().chain(rest.iter().cloned()).collect())
        }
        _ => None,
    }
}

/// Reads one file of module `module`.
fn parse_file(source: &str, module: &[String]) -> FileFacts {
    let tokens = tokenize(source);
    let mut facts = FileFacts::default();
    // Inline modules (`mod name { … }`) we are inside: name, brace depth.
    let mut scopes: Vec<(String, i32)> = Vec::new();
    let mut depth = 0i32;
    let mut cfg_test = false;
    let mut i = 0;
    while i < tokens.len() {
        let scope: Vec<String> = module.iter().cloned().chain(scopes.iter().map(|s| s.0.clone())).collect();
        // Attributes: `#[cfg(test)]` marks the next item as test code.
        if is_punct(&tokens, i, '#') {
            let inner = is_punct(&tokens, i + 1, '!');
            let open = if inner { i + 2 } else { i + 1 };
            if is_punct(&tokens, open, '[') {
                let end = skip_balanced(&tokens, open);
                let attr: Vec<&Tok> = tokens[open + 1..end - 1].iter().map(|t| &t.0).collect();
                let is_cfg_test = attr.len() == 4
                    && attr[0] == &Tok::Ident("cfg".into())
                    && attr[1] == &Tok::Punct('(')
                    && attr[2] == &Tok::Ident("test".into())
                    && attr[3] == &Tok::Punct(')');
                if is_cfg_test && inner && depth == 0 {
                    facts.test_only = true;
                    return facts;
                }
                cfg_test |= is_cfg_test;
                i = end;
                continue;
            }
        }
        if cfg_test {
            cfg_test = false;
            let mut j = i;
            while matches!(ident(&tokens, j), Some("pub")) || is_punct(&tokens, j, '(') {
                j = if is_punct(&tokens, j, '(') { skip_balanced(&tokens, j) } else { j + 1 };
            }
            if ident(&tokens, j) == Some("mod") && is_punct(&tokens, j + 2, ';') {
                if let Some(name) = ident(&tokens, j + 1) {
                    facts.test_modules.push(name.to_string());
                }
            }
            i = skip_item(&tokens, i);
            continue;
        }
        // Visibility `pub(in crate::x)` names a module but imports nothing.
        if ident(&tokens, i) == Some("pub") && is_punct(&tokens, i + 1, '(') {
            let end = skip_balanced(&tokens, i + 1);
            let reexport = ident(&tokens, end) == Some("use");
            if reexport {
                i = parse_use(&tokens, end, &scope, true, &mut facts);
            } else {
                i = end;
            }
            continue;
        }
        match &tokens[i].0 {
            Tok::Ident(word) if word == "pub" && ident(&tokens, i + 1) == Some("use") => {
                i = parse_use(&tokens, i + 1, &scope, true, &mut facts);
            }
            Tok::Ident(word) if word == "use" => {
                i = parse_use(&tokens, i, &scope, false, &mut facts);
            }
            Tok::Ident(word)
                if word == "mod" && ident(&tokens, i + 1).is_some() && is_punct(&tokens, i + 2, '{') =>
            {
                let name = ident(&tokens, i + 1).unwrap_or_default().to_string();
                depth += 1;
                scopes.push((name, depth));
                i += 3;
            }
            Tok::Ident(word)
                if matches!(word.as_str(), "crate" | "super" | "self")
                    && is_sep(&tokens, i + 1)
                    && !(i > 0 && is_punct(&tokens, i - 1, '$')) =>
            {
                // A path in code: `crate::a::b::f()`, `super::x::Y`.
                let line = tokens[i].1;
                let mut segments = vec![word.clone()];
                let mut j = i + 1;
                while is_sep(&tokens, j) {
                    match ident(&tokens, j + 1) {
                        Some(name) => segments.push(name.to_string()),
                        None => break,
                    }
                    j += 2;
                }
                if let Some(abs) = absolute(&scope, &segments) {
                    facts.imports.push(Import {
                        line,
                        written: segments.join("::"),
                        absolute: abs,
                        reexport: false,
                        alias: None,
                    });
                }
                i = j;
            }
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                if scopes.last().is_some_and(|s| s.1 == depth) {
                    scopes.pop();
                }
                depth -= 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    facts
}

/// Parses `use …;` at `i` (the `use` keyword); returns the index after it.
fn parse_use(
    tokens: &[(Tok, usize)],
    i: usize,
    scope: &[String],
    reexport: bool,
    facts: &mut FileFacts,
) -> usize {
    let mut leaves = Vec::new();
    let mut end = parse_use_tree(tokens, i + 1, &[], &mut leaves);
    while end < tokens.len() && !is_punct(tokens, end, ';') {
        end += 1;
    }
    for leaf in leaves {
        let written = leaf.segments.join("::");
        // A bare first segment names a child module of this one (in
        // `mod.rs`: `use consumer::X`) or an external crate.
        let abs = absolute(scope, &leaf.segments)
            .unwrap_or_else(|| scope.iter().chain(&leaf.segments).cloned().collect());
        let alias = leaf.alias.clone().or_else(|| leaf.segments.last().cloned());
        facts.imports.push(Import { line: leaf.line, written, absolute: abs, reexport, alias });
    }
    end + 1
}

// ------------------------------------------------------------------ crate

/// One file of `src/`.
struct SourceFile {
    /// Path shown in messages (`src/worker/consumer.rs`).
    display: String,
    module: ModPath,
    facts: FileFacts,
}

/// The module path of a file under `src/` (`worker/mod.rs` → `worker`);
/// None for the crate roots.
fn module_of(relative: &Path) -> Option<ModPath> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop()?;
    let stem = file.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn read_crate(src: &Path) -> Vec<SourceFile> {
    let mut paths = Vec::new();
    rust_files(src, &mut paths);
    let mut files = Vec::new();
    for path in paths {
        let Ok(relative) = path.strip_prefix(src) else { continue };
        let Some(module) = module_of(relative) else { continue };
        let source =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let display = format!("src/{}", relative.display());
        files.push(SourceFile { display, facts: parse_file(&source, &module), module });
    }
    // Files of `#[cfg(test)] mod x;` declarations, and `#![cfg(test)]`
    // files, are test code.
    let test_modules: BTreeSet<ModPath> = files
        .iter()
        .flat_map(|f| {
            f.facts.test_modules.iter().map(|m| f.module.iter().cloned().chain([m.clone()]).collect())
        })
        .collect();
    files.retain(|f| !f.facts.test_only && !test_modules.iter().any(|t| f.module.starts_with(t)));
    files
}

/// Where an import leads: the module (file) that defines what it names.
struct Resolver {
    modules: BTreeSet<ModPath>,
    /// Folder module → name it re-exports → the child module it comes from.
    reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
}

impl Resolver {
    fn new(files: &[SourceFile]) -> Resolver {
        let modules: BTreeSet<ModPath> = files.iter().map(|f| f.module.clone()).collect();
        let mut resolver = Resolver { modules, reexports: BTreeMap::new() };
        for file in files {
            for import in file.facts.imports.iter().filter(|i| i.reexport) {
                let target = resolver.module_prefix(&import.absolute);
                let is_child = target.len() > file.module.len() && target.starts_with(&file.module);
                if let (true, Some(alias)) = (is_child, &import.alias) {
                    resolver.reexports.entry(file.module.clone()).or_default().insert(alias.clone(), target);
                }
            }
        }
        resolver
    }

    /// The longest prefix of `path` that is a module with a file.
    fn module_prefix(&self, path: &[String]) -> ModPath {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| self.modules.contains(p))
            .unwrap_or_default()
    }

    /// The module defining what `path` names, following re-exports of
    /// folder modules (`super::Consumer` re-exported from `consumer.rs`).
    fn resolve(&self, path: &[String]) -> ModPath {
        let mut module = self.module_prefix(path);
        for _ in 0..8 {
            let Some(name) = path.get(module.len()) else { break };
            match self.reexports.get(&module).and_then(|m| m.get(name)) {
                Some(child) if child != &module => module = child.clone(),
                _ => break,
            }
        }
        module
    }
}

/// An edge between two siblings of one folder (or two top-level modules),
/// with the imports that make it.
#[derive(Default)]
struct Graph {
    edges: BTreeMap<(String, String), Vec<String>>,
}

/// Import graphs: folder module (`[]` for `src/` itself) → edges between
/// its children.
fn graphs(files: &[SourceFile], resolver: &Resolver) -> BTreeMap<ModPath, Graph> {
    let mut graphs: BTreeMap<ModPath, Graph> = BTreeMap::new();
    for file in files {
        for import in &file.facts.imports {
            let target = resolver.resolve(&import.absolute);
            let common = file.module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            // Within one module, or down into its own parts, or up to an
            // item of an enclosing folder's mod.rs: no edge between siblings.
            if common >= file.module.len() || common >= target.len() {
                continue;
            }
            let folder = file.module[..common].to_vec();
            let (from, to) = (file.module[common].clone(), target[common].clone());
            let evidence = format!("{}:{}: {}", file.display, import.line, import.written);
            graphs.entry(folder).or_default().edges.entry((from, to)).or_default().push(evidence);
        }
    }
    graphs
}

/// Strongly connected components of more than one node (the cycles),
/// each sorted, by Tarjan's algorithm.
fn cycles(edges: &BTreeMap<(String, String), Vec<String>>) -> Vec<Vec<String>> {
    let mut nodes: BTreeSet<&str> = BTreeSet::new();
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        nodes.insert(a.as_str());
        nodes.insert(b.as_str());
        next.entry(a.as_str()).or_default().push(b.as_str());
    }
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, next: &BTreeMap<&'a str, Vec<&'a str>>, s: &mut State<'a>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in next.get(v).map(Vec::as_slice).unwrap_or(&[]) {
            if !s.index.contains_key(w) {
                visit(w, next, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut state = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in nodes {
        if !state.index.contains_key(v) {
            visit(v, &next, &mut state);
        }
    }
    state.out.sort();
    state.out
}

/// Describes each cycle of `graph` with the imports on its edges.
fn describe_cycles(folder: &str, graph: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for component in cycles(&graph.edges) {
        let mut text = format!("import cycle between {folder}: {}\n", component.join(", "));
        for ((a, b), evidence) in &graph.edges {
            if component.contains(a) && component.contains(b) {
                let _ = writeln!(text, "    {a} -> {b}:");
                for e in evidence {
                    let _ = writeln!(text, "        {e}");
                }
            }
        }
        out.push(text);
    }
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every check on the crate in `src`: problems by kind.
#[derive(Default, Debug)]
struct Report {
    top_cycles: Vec<String>,
    folder_cycles: Vec<String>,
    roles: Vec<String>,
    layers: Vec<String>,
    unplaced: Vec<String>,
}

fn check(files: &[SourceFile]) -> Report {
    let resolver = Resolver::new(files);
    let graphs = graphs(files, &resolver);
    let mut report = Report::default();
    for (folder, graph) in &graphs {
        if folder.is_empty() {
            report.top_cycles.extend(describe_cycles("top-level modules of src/", graph));
        } else {
            let name = format!("files of src/{}/", folder.join("/"));
            report.folder_cycles.extend(describe_cycles(&name, graph));
        }
    }
    let top: BTreeSet<&str> = files.iter().filter_map(|f| f.module.first().map(String::as_str)).collect();
    for module in &top {
        if layer_of(module).is_none() {
            report.unplaced.push(format!(
                "module `{module}` has no layer: place it in LAYERS (tests/layering.rs) and in \
                 docs/development.md's table, at the lowest layer whose modules it may import"
            ));
        }
    }
    if let Some(graph) = graphs.get(&Vec::new()) {
        for ((from, to), evidence) in &graph.edges {
            let list = evidence.iter().map(|e| format!("\n    {e}")).collect::<String>();
            if ROLES.contains(&from.as_str()) && ROLES.contains(&to.as_str()) {
                report.roles.push(format!(
                    "role `{from}` imports role `{to}` (roles never import each other; move what both \
                     need down to a shared layer):{list}"
                ));
                continue;
            }
            if let (Some(lf), Some(lt)) = (layer_of(from), layer_of(to)) {
                if lf < lt {
                    report.layers.push(format!(
                        "`{from}` (layer {lf}: {}) imports `{to}` (layer {lt}: {}), a higher layer; \
                         imports must point down:{list}",
                        LAYERS[lf].join(", "),
                        LAYERS[lt].join(", ")
                    ));
                }
            }
        }
    }
    report
}

fn crate_report() -> Report {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_crate(&src);
    assert!(files.len() > 10, "found only {} files under {}", files.len(), src.display());
    check(&files)
}

fn fail_if_any(what: &str, problems: &[String]) {
    if !problems.is_empty() {
        panic!("{what} ({}):\n\n{}\n", problems.len(), problems.join("\n"));
    }
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    fail_if_any("import cycles between top-level modules of src/", &crate_report().top_cycles);
}

#[test]
fn no_import_cycle_between_files_of_one_module() {
    fail_if_any("import cycles between the files of one module folder", &crate_report().folder_cycles);
}

#[test]
fn no_role_imports_another_role() {
    fail_if_any("roles importing other roles", &crate_report().roles);
}

#[test]
fn imports_point_down_the_layers() {
    fail_if_any("imports of a higher layer", &crate_report().layers);
}

#[test]
fn every_top_level_module_has_a_layer() {
    fail_if_any("top-level modules missing from LAYERS", &crate_report().unplaced);
}

// ------------------------------------------------- the checker's own tests

#[cfg(test)]
mod checker {
    use super::*;

    fn m(path: &str) -> ModPath {
        path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect()
    }

    fn written(source: &str, module: &str) -> Vec<String> {
        parse_file(source, &m(module)).imports.into_iter().map(|i| i.written).collect()
    }

    fn absolutes(source: &str, module: &str) -> Vec<String> {
        parse_file(source, &m(module)).imports.into_iter().map(|i| i.absolute.join("::")).collect()
    }

    /// A file of `module` (`worker/mod` is the folder `worker`'s mod.rs).
    fn file(module: &str, source: &str) -> SourceFile {
        let path = m(module.strip_suffix("/mod").unwrap_or(module));
        SourceFile { display: format!("src/{module}.rs"), facts: parse_file(source, &path), module: path }
    }

    #[test]
    fn simple_and_grouped_uses() {
        let src = "use crate::config::Config;\nuse crate::{db, b::c};\nuse std::fmt;\n";
        assert_eq!(
            written(src, "worker/consumer"),
            ["crate::config::Config", "crate::db", "crate::b::c", "std::fmt"]
        );
        assert_eq!(
            absolutes(src, "worker/consumer"),
            ["config::Config", "db", "b::c", "worker::consumer::std::fmt"]
        );
    }

    #[test]
    fn nested_groups_self_alias_and_glob() {
        let src = "pub use crate::a::{self, b::{c as d, e::*}, f};";
        let facts = parse_file(src, &m("x"));
        let got: Vec<(String, Option<String>, bool)> =
            facts.imports.iter().map(|i| (i.absolute.join("::"), i.alias.clone(), i.reexport)).collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), Some("a".to_string()), true),
                ("a::b::c".to_string(), Some("d".to_string()), true),
                ("a::b::e".to_string(), Some("e".to_string()), true),
                ("a::f".to_string(), Some("f".to_string()), true),
            ]
        );
    }

    #[test]
    fn super_and_self_resolve_from_the_file() {
        assert_eq!(
            absolutes("use super::validate::Ctx;", "checks_file/alerts"),
            ["checks_file::validate::Ctx"]
        );
        assert_eq!(absolutes("use super::super::model::X;", "a/b/c"), ["a::model::X"]);
        // In mod.rs the module is the folder: super is its parent.
        assert_eq!(absolutes("use super::db;", "worker"), ["db"]);
        assert_eq!(absolutes("use self::inner::X;", "worker"), ["worker::inner::X"]);
    }

    #[test]
    fn paths_in_code_count_but_not_comments_strings_or_macros() {
        let src = r##"
            // use crate::commented::Out;
            /* crate::block /* nested crate::x */ still comment */
            fn f() {
                let s = "crate::in_string::X";
                let r = r#"crate::raw::X"#;
                let c = '"';
                let l: &'static str = "";
                crate::worker::run();
                let _ = super::sibling::Y;
                macro_rules! m { () => { $crate::macro_path::Z } }
            }
        "##;
        assert_eq!(written(src, "a/b"), ["crate::worker::run", "super::sibling::Y"]);
    }

    #[test]
    fn test_code_is_ignored() {
        let src = "use crate::kept::A;\n#[cfg(test)]\nmod tests {\n    use crate::dropped::B;\n    fn f() { crate::dropped::c(); }\n}\n#[cfg(test)]\nuse crate::also_dropped::C;\nfn g() { crate::kept::d(); }\n";
        assert_eq!(written(src, "x"), ["crate::kept::A", "crate::kept::d"]);
        let facts = parse_file("#[cfg(test)]\nmod tests;\n", &m("x"));
        assert_eq!(facts.test_modules, ["tests"]);
        assert!(parse_file("#![cfg(test)]\nuse crate::a::B;", &m("x")).test_only);
    }

    #[test]
    fn inline_modules_shift_super() {
        let src = "mod inner {\n    use super::helper::X;\n}\nuse super::other::Y;\n";
        assert_eq!(absolutes(src, "a/b"), ["a::b::helper::X", "a::other::Y"]);
    }

    #[test]
    fn visibility_is_not_an_import() {
        assert!(written("pub(crate) fn f() {}\npub(in crate::a) struct S;", "x").is_empty());
        assert_eq!(written("pub(crate) use crate::a::B;", "x"), ["crate::a::B"]);
    }

    #[test]
    fn lines_are_reported() {
        let facts = parse_file("\n\n/* two\nlines */\nuse crate::a::B;\n", &m("x"));
        assert_eq!(facts.imports[0].line, 5);
    }

    #[test]
    fn a_top_level_cycle_is_found_with_its_imports() {
        let files = vec![
            file("worker/mod", "use crate::alerting::run;"),
            file("alerting/send", "use crate::worker::tls::Config;"),
            file("worker/tls", ""),
            file("alerting/mod", ""),
            file("model/mod", ""),
        ];
        let report = check(&files);
        assert_eq!(report.top_cycles.len(), 1, "{report:?}");
        let text = &report.top_cycles[0];
        assert!(text.contains("alerting, worker"), "{text}");
        assert!(text.contains("src/alerting/send.rs:1: crate::worker::tls::Config"), "{text}");
        // And alerting (layer 8) importing worker (layer 9) is a layering error.
        assert!(report.layers.iter().any(|l| l.contains("`alerting` (layer 8") && l.contains("`worker`")));
    }

    #[test]
    fn a_cycle_between_sibling_files_is_found_but_mod_rs_is_the_facade() {
        let files = vec![
            file("checks_file/mod", "pub use validate::Declared; fn f() { alerts::check(); }"),
            file("checks_file/validate", "use super::alerts::check;"),
            file("checks_file/alerts", "use super::Declared;"),
            file("checks_file/plan", "use super::validate::X;"),
        ];
        let report = check(&files);
        assert!(report.top_cycles.is_empty());
        // alerts -> (mod.rs re-export of) validate -> alerts.
        assert_eq!(report.folder_cycles.len(), 1, "{report:?}");
        let text = &report.folder_cycles[0];
        assert!(text.contains("files of src/checks_file/: alerts, validate"), "{text}");
        assert!(!text.contains("plan"), "{text}");
    }

    #[test]
    fn roles_and_unplaced_modules() {
        let files = vec![
            file("scheduler/dispatch", "use crate::worker::acks::Ack;"),
            file("worker/acks", ""),
            file("gadgets", "use crate::model::X;"),
            file("model/check", ""),
        ];
        let report = check(&files);
        assert_eq!(report.roles.len(), 1);
        assert!(report.roles[0].contains("role `scheduler` imports role `worker`"));
        assert!(report.roles[0].contains("src/scheduler/dispatch.rs:1: crate::worker::acks::Ack"));
        assert_eq!(report.unplaced.len(), 1);
        assert!(report.unplaced[0].contains("module `gadgets` has no layer"));
        // Down the layers is fine.
        assert!(report.layers.is_empty(), "{report:?}");
    }

    #[test]
    fn cycles_are_strongly_connected_components() {
        let mut edges = BTreeMap::new();
        for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "f"), ("f", "e")] {
            edges.insert((a.to_string(), b.to_string()), vec![]);
        }
        assert_eq!(cycles(&edges), [vec!["a", "b", "c"], vec!["e", "f"]]);
    }

    #[test]
    fn module_paths_of_files() {
        assert_eq!(module_of(Path::new("worker/mod.rs")), Some(m("worker")));
        assert_eq!(module_of(Path::new("worker/consumer.rs")), Some(m("worker/consumer")));
        assert_eq!(module_of(Path::new("cli.rs")), Some(m("cli")));
        assert_eq!(module_of(Path::new("lib.rs")), None);
        assert_eq!(module_of(Path::new("main.rs")), None);
    }
}
