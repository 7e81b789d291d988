//! Fields that checks, channels and windows share, read with their own
//! rules on top of the reader primitives: a name (with "did you mean"), a
//! URL (never shown with its password), HTTP headers and labels.

use std::collections::HashMap;

use super::diagnostic::{join_key, Pos};
use super::names::{slug, valid_name, CheckName, MAX_NAME_LEN};
use super::reader::{quoted, Ctx, Pairs, Slot, F};
use super::yaml::Node;

impl Ctx<'_> {
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
            Ok(u) => match super::kinds::url_problem(&u, &shown) {
                Some(problem) => Some(problem),
                None => return Slot::Set(F { v: u, pos: f.pos, written: f.written, inherited: false }),
            },
        };
        if let Some(message) = problem {
            self.error(node.pos, path, message);
        }
        Slot::Invalid
    }

    pub(super) fn headers(&mut self, node: &Node, path: &str) -> Slot<Pairs> {
        let Slot::Set(f) = self.pairs(node, path, "a mapping of header names to values") else {
            return Slot::Invalid;
        };
        let mut ok = true;
        // Header names seen (lower-cased), with where: a map keeps this linear.
        let mut seen: HashMap<String, Pos> = HashMap::new();
        for (k, v) in &f.v {
            let kp = join_key(path, &k.v);
            if hyper::header::HeaderName::from_bytes(k.v.as_bytes()).is_err() {
                self.error(k.pos, &kp, format!("invalid header name {}", quoted(&k.v)));
                ok = false;
                continue;
            }
            let lower = k.v.to_ascii_lowercase();
            if let Some(first) = seen.get(&lower) {
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
            seen.insert(lower, k.pos);
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
}
