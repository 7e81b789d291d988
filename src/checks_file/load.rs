//! Reading the inputs of `checks apply` (files, directories, stdin) and
//! validating all of them together: every problem of every file, then
//! names declared twice anywhere.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::declared::{Declared, Validator};
use super::diagnostic::{Diagnostic, Diagnostics, Pos};
use super::env::{AllowList, Lookup};

/// One checks file's text and the name messages use for it.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

fn problem(file: impl Into<String>, message: impl Into<String>) -> Diagnostic {
    Diagnostic { file: file.into(), pos: None, path: String::new(), message: message.into() }
}

/// The default of `checks.max_file_bytes`: 16 MiB.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads `-f` arguments: a file, a directory (its `*.yaml` and `*.yml`
/// files, sorted, not recursive) or `-` (stdin, at most once); each at
/// most [`MAX_FILE_BYTES`].
pub fn read_sources(paths: &[PathBuf], stdin: &mut dyn Read) -> Result<Vec<Source>, Diagnostics> {
    read_sources_limited(paths, stdin, MAX_FILE_BYTES)
}

/// [`read_sources`], refusing any input larger than `max_bytes` before
/// reading more of it than that: what a file may cost once parsed grows
/// with its size (src/checks_file/yaml.rs), so the cap bounds it all.
pub fn read_sources_limited(
    paths: &[PathBuf],
    stdin: &mut dyn Read,
    max_bytes: u64,
) -> Result<Vec<Source>, Diagnostics> {
    let mut sources = Vec::new();
    let mut diags = Diagnostics::default();
    let mut stdin_used = false;
    for path in paths {
        if path.as_os_str() == "-" {
            if stdin_used {
                diags.push(problem("<stdin>", "`-f -` is given more than once"));
                continue;
            }
            stdin_used = true;
            match read_capped(stdin, max_bytes) {
                Ok(Some(bytes)) => push_text(&mut sources, &mut diags, "<stdin>".into(), bytes),
                Ok(None) => diags.push(too_large("<stdin>", max_bytes)),
                Err(e) => diags.push(problem("<stdin>", format!("cannot read standard input: {e}"))),
            }
            continue;
        }
        let shown = path.display().to_string();
        if path.is_dir() {
            match yaml_files(path) {
                Ok(files) if files.is_empty() => {
                    diags.push(problem(shown, "the directory has no *.yaml or *.yml file"));
                }
                Ok(files) => {
                    for file in files {
                        read_file(&file, max_bytes, &mut sources, &mut diags);
                    }
                }
                Err(e) => diags.push(problem(shown, format!("cannot list the directory: {e}"))),
            }
        } else {
            read_file(path, max_bytes, &mut sources, &mut diags);
        }
    }
    if diags.is_empty() {
        Ok(sources)
    } else {
        Err(diags)
    }
}

fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        // Editors' and Kubernetes ConfigMaps' dot-files are not checks.
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if yaml && !hidden && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path, max_bytes: u64, sources: &mut Vec<Source>, diags: &mut Diagnostics) {
    let shown = path.display().to_string();
    match std::fs::File::open(path).and_then(|mut f| read_capped(&mut f, max_bytes)) {
        Ok(Some(bytes)) => push_text(sources, diags, shown, bytes),
        Ok(None) => diags.push(too_large(shown, max_bytes)),
        Err(e) => diags.push(problem(shown, format!("cannot read the file: {e}"))),
    }
}

/// All of `input` when it holds at most `max_bytes`, else `None` (having
/// read one byte more than allowed, never the rest).
fn read_capped(input: &mut dyn Read, max_bytes: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    input.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max_bytes).then_some(bytes))
}

fn too_large(file: impl Into<String>, max_bytes: u64) -> Diagnostic {
    problem(
        file,
        format!(
            "larger than {max_bytes} bytes, the most a checks file may hold (checks.max_file_bytes): split it into several files"
        ),
    )
}

fn push_text(sources: &mut Vec<Source>, diags: &mut Diagnostics, name: String, bytes: Vec<u8>) {
    match String::from_utf8(bytes) {
        Ok(text) => sources
            .push(Source { name, text: text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text) }),
        Err(e) => {
            diags.push(problem(name, format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to())))
        }
    }
}

/// Validates every source; what they declare when all of them are valid,
/// else every problem. Names (of checks, channels, windows) must be unique
/// across all sources. References (a check's `alerts`, a window's
/// `checks`) are resolved later by [`unresolved`], because a name may also
/// be declared in the database. `lookup` is itself the allow list here
/// (tests, the fuzzer): every name it knows may be read, except the
/// reserved ones.
pub fn validate_all(sources: &[Source], lookup: Lookup<'_>) -> Result<Declared, Diagnostics> {
    validate_resolving(sources, lookup, &AllowList::everything(), false)
}

/// [`validate_all`] reading only the names `allow` lets through; with
/// `resolve`, references must also resolve within the files themselves
/// (what `--prune` needs), reported with the rest.
pub fn validate_resolving(
    sources: &[Source],
    lookup: Lookup<'_>,
    allow: &AllowList,
    resolve: bool,
) -> Result<Declared, Diagnostics> {
    let mut validator = Validator::with_allow(lookup, allow);
    let mut diags = Diagnostics::default();
    let mut all = Declared::default();
    for source in sources {
        let (found, problems) = validator.validate(&source.name, &source.text);
        all.checks.extend(found.checks);
        all.channels.extend(found.channels);
        all.windows.extend(found.windows);
        all.pages.extend(found.pages);
        all.written_channels.extend(found.written_channels);
        all.written_checks.extend(found.written_checks);
        all.named_checks.extend(found.named_checks);
        for p in problems {
            diags.push(p);
        }
    }
    let checks = all
        .named_checks
        .iter()
        .map(|c| (c.name.as_str(), c.file.as_str(), c.pos, format!("{}.name", c.entry), c.entry.as_str()));
    duplicates("check", checks, &mut diags);
    let channels = all
        .channels
        .iter()
        .map(|c| (c.name.as_str(), c.file.as_str(), c.pos, c.path.clone(), c.path.as_str()));
    duplicates("channel", channels, &mut diags);
    let windows = all
        .windows
        .iter()
        .map(|w| (w.name.as_str(), w.file.as_str(), w.pos, format!("{}.name", w.path), w.path.as_str()));
    duplicates("maintenance window", windows, &mut diags);
    let pages = all
        .pages
        .iter()
        .map(|p| (p.slug.as_str(), p.file.as_str(), p.pos, format!("{}.slug", p.path), p.path.as_str()));
    duplicates("status page", pages, &mut diags);
    same_ping_keys(&all, &mut diags);
    if resolve {
        let none = HashSet::new();
        diags.0.extend(unresolved(&all, &none, &none).0);
    }
    // In the order of the files as given, then by line.
    let order: HashMap<&str, usize> = sources.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
    diags.0.sort_by_key(|d| (order.get(d.file.as_str()).copied().unwrap_or(usize::MAX), d.pos));
    if diags.is_empty() {
        Ok(all)
    } else {
        Err(diags)
    }
}

/// Reports heartbeats declaring one ping key: their pings could not be
/// told apart (and the database refuses it). The key is a secret: the
/// message names the other check, never the key.
fn same_ping_keys(all: &Declared, diags: &mut Diagnostics) {
    let mut first: HashMap<&str, &super::check::DeclaredCheck> = HashMap::new();
    for check in &all.checks {
        let Some(key) = check.spec.heartbeat.as_ref().and_then(|h| h.key.as_deref()) else { continue };
        match first.get(key) {
            Some(earlier) => diags.push(Diagnostic {
                file: check.file.clone(),
                pos: Some(check.pos),
                path: format!("{}.heartbeat.key", check.path),
                message: format!(
                    "the same ping key as check \"{}\" ({}:{}): each heartbeat needs its own key",
                    earlier.name, earlier.file, earlier.pos
                ),
            }),
            None => {
                first.insert(key, check);
            }
        }
    }
}

/// Reports every name declared twice: (name, file, position, field path, entry path).
fn duplicates<'a>(
    what: &str,
    items: impl Iterator<Item = (&'a str, &'a str, Pos, String, &'a str)>,
    diags: &mut Diagnostics,
) {
    let mut first: HashMap<&str, (&str, Pos, &str)> = HashMap::new();
    for (name, file, pos, field, entry) in items {
        match first.get(name) {
            Some((earlier_file, earlier_pos, earlier_path)) => diags.push(Diagnostic {
                file: file.to_string(),
                pos: Some(pos),
                path: field,
                message: format!(
                    "duplicate {what} name \"{name}\": already declared at {earlier_file}:{earlier_pos} ({earlier_path}); names must be unique across all files"
                ),
            }),
            None => {
                first.insert(name, (file, pos, entry));
            }
        }
    }
}

/// The references of `declared` that name nothing: channels neither
/// declared in the files nor in `stored_channels`, checks neither declared
/// nor in `stored_checks` (pass empty sets with `--prune`: what the files
/// do not declare is about to be deleted). A reference written in
/// `defaults` is reported once, with the number of checks inheriting it.
pub fn unresolved(
    declared: &Declared,
    stored_channels: &HashSet<String>,
    stored_checks: &HashSet<String>,
) -> Diagnostics {
    let channels: Vec<&str> = declared.written_channels.iter().map(String::as_str).collect();
    let written_channels: HashSet<&str> = declared.written_channels.iter().map(String::as_str).collect();
    let written_checks: HashSet<&str> = declared.written_checks.iter().map(String::as_str).collect();
    let mut diags = Diagnostics::default();
    let mut inherited: HashMap<(String, Pos), (usize, usize)> = HashMap::new();
    for r in declared.checks.iter().flat_map(|c| &c.alert_refs) {
        if written_channels.contains(r.name.as_str()) || stored_channels.contains(&r.name) {
            continue;
        }
        if r.inherited {
            if let Some((_, more)) = inherited.get_mut(&(r.file.clone(), r.pos)) {
                *more += 1;
                continue;
            }
            inherited.insert((r.file.clone(), r.pos), (diags.len(), 0));
        }
        let hint = match super::schema::closest(&r.name, &channels) {
            Some(best) => format!(", did you mean `{best}`?"),
            None if channels.is_empty() => ": declare it under a top-level `alerts:` section".to_string(),
            None => format!(" (declared: {})", channels.join(", ")),
        };
        diags.push(Diagnostic {
            file: r.file.clone(),
            pos: Some(r.pos),
            path: r.path.clone(),
            message: format!("unknown channel `{}`{hint}", r.name),
        });
    }
    for (index, more) in inherited.values() {
        if *more > 0 {
            let s = if *more == 1 { "" } else { "s" };
            diags.0[*index].message.push_str(&format!(" (and {more} more check{s} that inherit it)"));
        }
    }
    let mut check_names: Vec<&str> = written_checks.iter().copied().collect();
    check_names.sort_unstable();
    let window_refs = declared.windows.iter().flat_map(|w| &w.check_refs);
    let page_refs = declared.pages.iter().flat_map(|p| &p.check_refs);
    for r in window_refs.chain(page_refs) {
        if written_checks.contains(r.name.as_str()) || stored_checks.contains(&r.name) {
            continue;
        }
        let hint = match super::schema::closest(&r.name, &check_names) {
            Some(best) => format!(", did you mean `{best}`?"),
            None => String::new(),
        };
        diags.push(Diagnostic {
            file: r.file.clone(),
            pos: Some(r.pos),
            path: r.path.clone(),
            message: format!("unknown check `{}`{hint}", r.name),
        });
    }
    diags.0.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    diags
}

/// [`read_sources`] then [`validate_all`]: what `checks apply` and
/// `standalone` call.
pub fn load(
    paths: &[PathBuf],
    stdin: &mut dyn Read,
    lookup: Lookup<'_>,
    allow: &AllowList,
    max_file_bytes: u64,
    resolve: bool,
) -> Result<Declared, Diagnostics> {
    let sources = read_sources_limited(paths, stdin, max_file_bytes)?;
    validate_resolving(&sources, lookup, allow, resolve)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn duplicate_names_across_files_name_both_places() {
        let sources = vec![
            Source { name: "a.yaml".into(), text: "checks:\n  - name: api\n    url: http://x\n".into() },
            Source {
                name: "b.yaml".into(),
                text: "checks:\n  - name: web\n    url: http://x\n  - name: api\n    url: http://y\n".into(),
            },
        ];
        let err = validate_all(&sources, &none).unwrap_err();
        assert_eq!(
            err.to_string(),
            "b.yaml:4:11: checks[1].name: duplicate check name \"api\": already declared at a.yaml:2:11 (checks[0]); names must be unique across all files\n"
        );
    }

    #[test]
    fn a_duplicate_is_reported_beside_the_other_problems_of_either_entry() {
        let sources = vec![
            Source { name: "z.yaml".into(), text: "checks:\n  - name: api\n    url: ftp://x\n".into() },
            Source {
                name: "a.yaml".into(),
                text: "checks:\n  - name: api\n    url: http://y\n    interval: 0s\n  - name: Bad Name\n    url: http://z\n  - name: Bad Name\n    url: http://z\n".into(),
            },
        ];
        let err = validate_all(&sources, &none).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        // The files' order as given, then by line; an invalid name is not
        // also called a duplicate.
        assert_eq!(lines.len(), 5, "{err}");
        assert!(lines[0].starts_with("z.yaml:3:10: checks[0].url: unsupported URL scheme"), "{err}");
        assert_eq!(
            lines[1],
            "a.yaml:2:11: checks[0].name: duplicate check name \"api\": already declared at z.yaml:2:11 (checks[0]); names must be unique across all files"
        );
        assert!(lines[2].starts_with("a.yaml:4:15: checks[0].interval:"), "{err}");
        assert!(lines[3].starts_with("a.yaml:5:11: checks[1].name: invalid name \"Bad Name\""), "{err}");
        assert!(lines[4].starts_with("a.yaml:7:11: checks[2].name: invalid name \"Bad Name\""), "{err}");
    }

    #[test]
    fn names_are_compared_after_expansion() {
        let sources = vec![Source {
            name: "a.yaml".into(),
            text: "checks:\n  - name: ${A}\n    url: http://x\n  - name: ${B}\n    url: ftp://y\n".into(),
        }];
        let lookup = |v: &str| (v == "A" || v == "B").then(|| "api".to_string());
        let err = validate_all(&sources, &lookup).unwrap_err().to_string();
        assert!(err.contains("a.yaml:4:11: checks[1].name: duplicate check name \"api\""), "{err}");
        assert!(err.contains("checks[1].url: unsupported URL scheme"), "{err}");
    }

    #[test]
    fn stdin_and_errors() {
        let mut input: &[u8] = b"checks:\n  - name: a\n    url: http://x\n";
        let sources = read_sources(&[PathBuf::from("-")], &mut input).unwrap();
        assert_eq!(sources[0].name, "<stdin>");
        let mut input: &[u8] = b"";
        let err = read_sources(
            &[PathBuf::from("/nonexistent/x.yaml"), PathBuf::from("-"), PathBuf::from("-")],
            &mut input,
        )
        .unwrap_err();
        assert_eq!(err.len(), 2);
        assert!(err.0[0].to_string().starts_with("/nonexistent/x.yaml: cannot read the file: "));
        let mut input: &[u8] = b"checks: []\n";
        let err = read_sources_limited(&[PathBuf::from("-")], &mut input, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "<stdin>: larger than 10 bytes, the most a checks file may hold (checks.max_file_bytes): split it into several files\n"
        );
        let mut input: &[u8] = b"checks: []";
        assert!(read_sources_limited(&[PathBuf::from("-")], &mut input, 10).is_ok());
        let mut input: &[u8] = b"\xff\xfe";
        assert!(read_sources(&[PathBuf::from("-")], &mut input).unwrap_err().0[0].message.contains("UTF-8"));
    }
}
