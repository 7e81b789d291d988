//! The declared aggregate: everything one file (or all files) declare,
//! and how a whole file becomes one. [`Validator`] parses a file, reads
//! each YAML document's `defaults`, `checks`, `alerts` and `maintenance`,
//! and returns every valid entry together with every problem, in source
//! order.

use std::collections::HashSet;

use super::alerts::DeclaredChannel;
use super::check::DeclaredCheck;
use super::defaults::Partial;
use super::diagnostic::{join_index, Diagnostic};
use super::env::{AllowList, Lookup};
use super::maintenance::DeclaredWindow;
use super::names::{valid_name, CheckName};
use super::reader::{Ctx, Slot, F};
use super::schema;
use super::status_pages::DeclaredPage;
use super::yaml::{self, Kind, Node};

/// Everything one file (or all files) declare.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    pub checks: Vec<DeclaredCheck>,
    pub channels: Vec<DeclaredChannel>,
    pub windows: Vec<DeclaredWindow>,
    /// Status pages (`status_pages:`).
    pub pages: Vec<DeclaredPage>,
    /// Every channel and check name written, including those of entries
    /// that failed validation.
    pub written_channels: Vec<String>,
    pub written_checks: Vec<String>,
    /// Every valid check name, whether or not the rest of its entry is
    /// valid: a second entry of the same name is reported even when either
    /// entry has other problems.
    pub named_checks: Vec<CheckName>,
}

/// Validates files one after the other, sharing what is worth sharing
/// (compiled regular expressions: 100,000 checks often use one pattern).
pub struct Validator<'a> {
    lookup: Lookup<'a>,
    allow: &'a AllowList,
    regexes_ok: HashSet<String>,
}

/// What [`Validator::new`] lets `${VAR}` read: whatever its lookup knows.
static EVERYTHING: std::sync::LazyLock<AllowList> = std::sync::LazyLock::new(AllowList::everything);

impl<'a> Validator<'a> {
    /// A validator whose `lookup` is itself the allow list (tests, the
    /// fuzzer); reserved names stay refused.
    pub fn new(lookup: Lookup<'a>) -> Validator<'a> {
        Validator::with_allow(lookup, &EVERYTHING)
    }

    /// A validator reading only the names `allow` lets through.
    pub fn with_allow(lookup: Lookup<'a>, allow: &'a AllowList) -> Validator<'a> {
        Validator { lookup, allow, regexes_ok: HashSet::new() }
    }

    /// Every valid check, channel and window of `source`, and every problem in it.
    pub fn validate(&mut self, file: &str, source: &str) -> (Declared, Vec<Diagnostic>) {
        let mut ctx = Ctx::new(file, source, self.lookup, self.allow, &mut self.regexes_ok);
        let mut documents = match yaml::parse(source) {
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
        for document in &mut documents {
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

impl Validator<'_> {
    /// A reading context over `source` sharing this validator's settings.
    pub(super) fn ctx<'c>(&'c mut self, file: &'c str, source: &'c str) -> Ctx<'c> {
        Ctx::new(file, source, self.lookup, self.allow, &mut self.regexes_ok)
    }

    /// One check entry on its own: the body of the API's
    /// `PUT /checks/{name}`. `source` is one YAML document (JSON is YAML),
    /// a mapping of check fields, validated exactly as the entry
    /// `checks[0]` of a file without `defaults` (so every diagnostic's path
    /// starts with `checks[0]`). `name` is the check's name when the body
    /// has none; a body naming another check is a problem at its `name`.
    pub fn validate_entry(&mut self, file: &str, source: &str, name: &str) -> (Declared, Vec<Diagnostic>) {
        const PATH: &str = "checks[0]";
        let mut ctx = Ctx::new(file, source, self.lookup, self.allow, &mut self.regexes_ok);
        let mut declared = Declared::default();
        let whole =
            |message: String| Diagnostic { file: file.to_string(), pos: None, path: String::new(), message };
        let documents = match yaml::parse(source) {
            Ok(docs) => docs,
            Err(e) => {
                let d = Diagnostic {
                    file: file.to_string(),
                    pos: Some(e.pos),
                    path: String::new(),
                    message: e.message,
                };
                return (declared, vec![d]);
            }
        };
        let mut documents: Vec<Node> = documents.into_iter().filter(|d| !d.is_null()).collect();
        let node = match documents.len() {
            1 => documents.remove(0),
            0 => {
                return (
                    declared,
                    vec![whole("the body is empty: send one check (a mapping with url, interval, …)".into())],
                )
            }
            n => {
                return (
                    declared,
                    vec![whole(format!("the body holds {n} YAML documents: send one check, one document"))],
                )
            }
        };
        let errors_before = ctx.diags.len();
        let mut own = ctx.partial(&node, PATH, false);
        let name_path = format!("{PATH}.name");
        match &own.name {
            Slot::Absent if valid_name(name) => {
                let f = F { v: name.to_string(), pos: node.pos, written: name.to_string(), inherited: false };
                ctx.written_checks.push(name.to_string());
                ctx.named_checks.push(CheckName {
                    name: name.to_string(),
                    file: file.to_string(),
                    pos: node.pos,
                    entry: PATH.to_string(),
                });
                own.name = Slot::Set(f);
            }
            Slot::Absent => {
                ctx.error(
                    node.pos,
                    &name_path,
                    format!(
                        "invalid name {}: use lower-case letters, digits and `-`, starting and ending with a letter or digit, at most {} characters",
                        serde_json::Value::String(name.to_string()),
                        super::names::MAX_NAME_LEN
                    ),
                );
                own.name = Slot::Invalid;
            }
            Slot::Set(f) if f.v != name => {
                let pos = f.pos;
                let message = format!(
                    "the body names the check {} but the path names {}: they must be the same (or leave `name` out)",
                    serde_json::Value::String(f.v.clone()),
                    serde_json::Value::String(name.to_string())
                );
                ctx.error(pos, &name_path, message);
            }
            _ => {}
        }
        let check = ctx.finish(own.overlay(&Partial::default()), &node, PATH);
        if let Some(check) = check {
            if ctx.diags.len() == errors_before {
                declared.checks.push(check);
            }
        }
        declared.written_checks = std::mem::take(&mut ctx.written_checks);
        declared.named_checks = std::mem::take(&mut ctx.named_checks);
        ctx.diags.sort_by_key(|d| d.pos);
        (declared, ctx.diags)
    }
}

impl Ctx<'_> {
    /// One YAML document: its `defaults` overlaid under each of its checks.
    ///
    /// Each check's part of the tree is dropped once it is validated, so
    /// the tree and what it becomes are not both held whole at once (what
    /// keeps a file at the size cap within memory).
    fn document(&mut self, doc: &mut Node, declared: &mut Declared) {
        let Some(entries) = self.entries(
            doc,
            "",
            Some((schema::TOP_LEVEL, "a checks file")),
            "a mapping with `checks:` (and optionally `defaults:`, `alerts:`, `maintenance:`, `status_pages:`)",
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
                "status_pages" if !value.is_null() => self.pages(value, "status_pages", &mut declared.pages),
                _ => {}
            }
        }
        let checks = &mut declared.checks;
        let Some(list) = list else { return };
        match &list.kind {
            Kind::Seq(_) => {}
            _ if list.is_null() => return,
            _ => {
                self.type_error::<()>(list, "checks", "a list of checks");
                return;
            }
        }
        // The first `checks` key is the one `entries` read (a second is
        // reported as set twice): take its list out of the tree.
        let items = match &mut doc.kind {
            Kind::Map(all) => all
                .iter_mut()
                .find(|e| e.key.scalar_text() == Some("checks"))
                .map(|e| match &mut e.value.kind {
                    Kind::Seq(items) => std::mem::take(items),
                    _ => Vec::new(),
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for (i, item) in items.into_iter().enumerate() {
            let path = join_index("checks", i);
            let errors_before = self.diags.len();
            let own = self.partial(&item, &path, false);
            let merged = own.overlay(&defaults);
            let check = self.finish(merged, &item, &path);
            if let Some(check) = check {
                if self.diags.len() == errors_before {
                    checks.push(check);
                }
            }
        }
    }
}

impl Validator<'_> {
    /// One page on its own: the body of the API's `PUT
    /// /status-pages/{slug}`, validated as the entry `status_pages[0]` of
    /// a file (every diagnostic's path starts with it). `slug` is the
    /// page's when the body has none; a body naming another is a problem
    /// at its `slug`.
    pub fn validate_page(
        &mut self,
        file: &str,
        source: &str,
        slug: &str,
    ) -> (Option<DeclaredPage>, Vec<Diagnostic>) {
        const PATH: &str = "status_pages[0]";
        let whole =
            |message: String| Diagnostic { file: file.to_string(), pos: None, path: String::new(), message };
        let documents = match yaml::parse(source) {
            Ok(docs) => docs,
            Err(e) => {
                return (
                    None,
                    vec![Diagnostic {
                        file: file.to_string(),
                        pos: Some(e.pos),
                        path: String::new(),
                        message: e.message,
                    }],
                )
            }
        };
        let mut documents: Vec<Node> = documents.into_iter().filter(|d| !d.is_null()).collect();
        let node = match documents.len() {
            1 => documents.remove(0),
            0 => {
                return (
                    None,
                    vec![whole("the body is empty: send one status page (title, groups, …)".into())],
                )
            }
            n => {
                return (
                    None,
                    vec![whole(format!("the body holds {n} YAML documents: send one page, one document"))],
                )
            }
        };
        let mut ctx = self.ctx(file, source);
        let page = ctx.page(&node, PATH, Some(slug));
        let mut diags = std::mem::take(&mut ctx.diags);
        diags.sort_by_key(|d| d.pos);
        (if diags.is_empty() { page } else { None }, diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks_file::diagnostic::Pos;
    use crate::model::StatusMatch;

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
                "c.yaml:4:10: checks[0].url: unsupported URL scheme `ftp` in \"ftp://x\": use http, https, tcp, tls, dns, icmp, grpc or grpcs",
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

    fn entry(source: &str, name: &str) -> (Vec<DeclaredCheck>, Vec<(String, String)>) {
        let mut v = Validator::new(&env);
        let (declared, diags) = v.validate_entry("body", source, name);
        (declared.checks, diags.into_iter().map(|d| (d.path, d.message)).collect())
    }

    #[test]
    fn one_entry_is_validated_as_the_first_check_of_a_file() {
        // The name comes from the path when the body has none.
        let (checks, diags) = entry("url: https://example.com\ninterval: 30s\n", "api");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!((checks[0].name.as_str(), checks[0].interval_ms), ("api", 30_000));
        // JSON is YAML.
        let (checks, diags) =
            entry(r#"{"name": "api", "url": "http://x", "headers": {"A": "${TOKEN}"}}"#, "api");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(checks[0].spec.headers["A"], "s3cret");
        // Every problem, with its path under checks[0].
        let (checks, diags) = entry("url: ftp://x\ninterval: 0s\nexpect: { status: [200, 6xx] }\n", "api");
        assert!(checks.is_empty());
        let paths: Vec<&str> = diags.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["checks[0].url", "checks[0].interval", "checks[0].expect.status[1]"]);
        // Another name in the body, an invalid name in the path, two documents, nothing.
        let (_, diags) = entry("name: other\nurl: http://x\n", "api");
        assert_eq!(diags[0].0, "checks[0].name");
        assert!(diags[0].1.contains("\"other\"") && diags[0].1.contains("\"api\""), "{diags:?}");
        let (_, diags) = entry("url: http://x\n", "Bad_Name");
        assert_eq!(diags[0].0, "checks[0].name");
        assert_eq!(entry("url: http://x\n---\nurl: http://y\n", "a").1.len(), 1);
        assert_eq!(entry("", "a").1.len(), 1);
        assert_eq!(entry("[1]", "a").1[0].0, "checks[0]");
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
}
