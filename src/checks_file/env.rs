//! `${VAR}` expansion from the environment.
//!
//! `${NAME}` is replaced by the variable's value; an unset variable is an
//! error (a check silently sending `Authorization: Bearer ` is worse than a
//! failed apply). `${NAME:-fallback}` uses the fallback when the variable is
//! unset or empty, as in the shell and Compose. `$${` writes a literal `${`;
//! any other `$` is kept as is.

/// Reads a variable; the environment in production, a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as a [`Lookup`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    pub text: String,
    /// Whether a variable was substituted: the value may then hold a secret
    /// and is never echoed in messages.
    pub substituted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    /// Byte offset of the `${` in the text.
    pub offset: usize,
    /// The `${…}` as written (for locating it in the source).
    pub written: String,
    pub message: String,
}

/// Expands every `${…}` of `text`, collecting every problem.
pub fn expand(text: &str, lookup: Lookup<'_>) -> Result<Expanded, Vec<EnvError>> {
    if !text.contains('$') {
        return Ok(Expanded { text: text.to_string(), substituted: false });
    }
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut substituted = false;
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            offset += i + 3;
            continue;
        }
        if !after.starts_with("${") {
            out.push('$');
            rest = &after[1..];
            offset += i + 1;
            continue;
        }
        let at = offset + i;
        let Some(end) = after.find('}') else {
            errors.push(EnvError {
                offset: at,
                written: after.to_string(),
                message: "unterminated `${`: write `${NAME}`, or `$${` for a literal `${`".into(),
            });
            out.push_str(after);
            rest = "";
            break;
        };
        let written = &after[..=end];
        let inner = &after[2..end];
        let (name, fallback) = match inner.split_once(":-") {
            Some((n, f)) => (n, Some(f)),
            None => (inner, None),
        };
        if !valid_name(name) {
            errors.push(EnvError {
                offset: at,
                written: written.to_string(),
                message: format!(
                    "invalid variable name `{name}` in `{written}`: use letters, digits and _ (not starting with a digit), or `$${{` for a literal `${{`"
                ),
            });
        } else {
            match (lookup(name), fallback) {
                (Some(value), Some(fallback)) if value.is_empty() => out.push_str(fallback),
                (Some(value), _) => {
                    out.push_str(&value);
                    substituted = true;
                }
                (None, Some(fallback)) => out.push_str(fallback),
                (None, None) => errors.push(EnvError {
                    offset: at,
                    written: written.to_string(),
                    message: format!(
                        "environment variable `{name}` is not set (write `${{{name}:-default}}` for a fallback, or `$${{` for a literal `${{`)"
                    ),
                }),
            }
        }
        rest = &after[end + 1..];
        offset = at + end + 1;
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(Expanded { text: out, substituted })
    } else {
        Err(errors)
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn ok(text: &str) -> Expanded {
        expand(text, &env).unwrap()
    }

    #[test]
    fn substitutes_and_escapes() {
        assert_eq!(ok("Bearer ${TOKEN}"), Expanded { text: "Bearer s3cret".into(), substituted: true });
        assert_eq!(ok("plain"), Expanded { text: "plain".into(), substituted: false });
        assert_eq!(ok("cost $5 and $${TOKEN}").text, "cost $5 and ${TOKEN}");
        assert!(!ok("$${TOKEN}").substituted);
        assert_eq!(ok("${MISSING:-x}${EMPTY:-y}${EMPTY}").text, "xy");
        assert_eq!(ok("a${TOKEN}b${TOKEN}$").text, "as3cretbs3cret$");
        assert_eq!(ok("ünï${TOKEN}").text, "ünïs3cret");
    }

    #[test]
    fn reports_every_problem() {
        let errs = expand("${A} and ${TOKEN} and ${1X} and ${B", &env).unwrap_err();
        assert_eq!(errs.len(), 3);
        assert_eq!(errs[0].offset, 0);
        assert!(errs[0].message.starts_with("environment variable `A` is not set"), "{}", errs[0].message);
        assert_eq!(errs[1].offset, 22);
        assert!(errs[1].message.starts_with("invalid variable name `1X`"));
        assert_eq!(errs[2].written, "${B");
        assert!(errs[2].message.starts_with("unterminated"));
    }
}
