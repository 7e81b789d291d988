//! Reading the inputs of `checks apply` (files, directories, stdin) and
//! validating all of them together: every problem of every file, then
//! names declared twice anywhere.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Diagnostics};
use super::env::Lookup;
use super::validate::{DeclaredCheck, Validator};

/// One checks file's text and the name messages use for it.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
}

fn problem(file: impl Into<String>, message: impl Into<String>) -> Diagnostic {
    Diagnostic { file: file.into(), pos: None, path: String::new(), message: message.into() }
}

/// Reads `-f` arguments: a file, a directory (its `*.yaml` and `*.yml`
/// files, sorted, not recursive) or `-` (stdin, at most once).
pub fn read_sources(paths: &[PathBuf], stdin: &mut dyn Read) -> Result<Vec<Source>, Diagnostics> {
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
            let mut bytes = Vec::new();
            match stdin.read_to_end(&mut bytes) {
                Ok(_) => push_text(&mut sources, &mut diags, "<stdin>".into(), bytes),
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
                        read_file(&file, &mut sources, &mut diags);
                    }
                }
                Err(e) => diags.push(problem(shown, format!("cannot list the directory: {e}"))),
            }
        } else {
            read_file(path, &mut sources, &mut diags);
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

fn read_file(path: &Path, sources: &mut Vec<Source>, diags: &mut Diagnostics) {
    let shown = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => push_text(sources, diags, shown, bytes),
        Err(e) => diags.push(problem(shown, format!("cannot read the file: {e}"))),
    }
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

/// Validates every source; the checks when all of them are valid, else
/// every problem. Names must be unique across all sources.
pub fn validate_all(sources: &[Source], lookup: Lookup<'_>) -> Result<Vec<DeclaredCheck>, Diagnostics> {
    let mut validator = Validator::new(lookup);
    let mut diags = Diagnostics::default();
    let mut checks: Vec<DeclaredCheck> = Vec::new();
    for source in sources {
        let (found, problems) = validator.validate(&source.name, &source.text);
        checks.extend(found);
        for p in problems {
            diags.push(p);
        }
    }
    let mut first: HashMap<&str, &DeclaredCheck> = HashMap::with_capacity(checks.len());
    for check in &checks {
        match first.get(check.name.as_str()) {
            Some(earlier) => diags.push(Diagnostic {
                file: check.file.clone(),
                pos: Some(check.pos),
                path: format!("{}.name", check.path),
                message: format!(
                    "duplicate check name \"{}\": already declared at {}:{} ({}); names must be unique across all files",
                    check.name, earlier.file, earlier.pos, earlier.path
                ),
            }),
            None => {
                first.insert(&check.name, check);
            }
        }
    }
    if diags.is_empty() {
        Ok(checks)
    } else {
        Err(diags)
    }
}

/// [`read_sources`] then [`validate_all`]: what `checks apply` and
/// `standalone` call.
pub fn load(
    paths: &[PathBuf],
    stdin: &mut dyn Read,
    lookup: Lookup<'_>,
) -> Result<Vec<DeclaredCheck>, Diagnostics> {
    let sources = read_sources(paths, stdin)?;
    validate_all(&sources, lookup)
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
        let mut input: &[u8] = b"\xff\xfe";
        assert!(read_sources(&[PathBuf::from("-")], &mut input).unwrap_err().0[0].message.contains("UTF-8"));
    }
}
