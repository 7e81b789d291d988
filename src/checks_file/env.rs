//! `${VAR}` expansion from the environment.
//!
//! `${NAME}` is replaced by the variable's value; an unset variable is an
//! error (a check silently sending `Authorization: Bearer ` is worse than a
//! failed apply). `${NAME:-fallback}` uses the fallback when the variable is
//! unset or empty, as in the shell and Compose. `$${` writes a literal `${`;
//! any other `$` is kept as is.
//!
//! Who may read what: a checks file's author is not trusted with the
//! deployment's secrets. A name SentryK8s uses for its own configuration
//! or credentials ([`reserved`]) is never read, whatever the operator
//! allows; any other name is read only when it matches the operator's
//! [`AllowList`] (`--allow-env`, `checks.allow_env`), empty by default. A
//! refused name is an error, even with a `:-fallback`: a file that quietly
//! behaves differently on another install is worse than one that says why.

/// Reads a variable; the environment in production, a map in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Why `name` can never be read by a checks file, when it is one of the
/// variables SentryK8s itself reads (or that carry the credentials of its
/// database and broker). Compared without case: figment matches the
/// `SENTRYK8S_` prefix without case, and Windows names have none.
pub fn reserved(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("SENTRYK8S_") {
        return Some("it is reserved for SentryK8s's own configuration (SENTRYK8S_*: the database and broker URLs, passwords included)");
    }
    // libpq's PG* (PGPASSWORD, PGHOST, …), the conventional URL names, and
    // RabbitMQ's own variables: credentials of the services SentryK8s uses.
    if upper.starts_with("PG")
        || upper.starts_with("AMQP_")
        || upper.starts_with("RABBITMQ_")
        || matches!(upper.as_str(), "DATABASE_URL" | "AMQP_URL")
    {
        return Some("it is reserved: database and broker credentials (PG*, DATABASE_URL, AMQP_*, RABBITMQ_*) are never readable by a checks file");
    }
    // What the process reads for its own behaviour: logging, identity,
    // trusted certificates.
    if upper.starts_with("RUST_")
        || matches!(upper.as_str(), "HOSTNAME" | "SSL_CERT_FILE" | "SSL_CERT_DIR" | "NO_COLOR")
    {
        return Some("it is reserved for the process's own settings (RUST_*, HOSTNAME, SSL_CERT_FILE, SSL_CERT_DIR, NO_COLOR)");
    }
    None
}

/// The names a checks file may read: globs where `*` stands for any run of
/// characters and `?` for one (`CHECK_*`, `API_TOKEN`). Reserved names stay
/// refused even when a pattern matches them (`*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<String>,
}

/// A pattern the operator gave that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allow-env pattern `{pattern}`: {why}")]
pub struct PatternError {
    pub pattern: String,
    pub why: String,
}

impl AllowList {
    /// The operator's patterns, each checked: letters, digits, `_`, `*` and
    /// `?` only; a name without wildcards must not be reserved (it would
    /// never be readable, which is surely not what was meant).
    pub fn new(patterns: &[String]) -> Result<AllowList, PatternError> {
        for p in patterns {
            if let Some(why) = pattern_problem(p) {
                return Err(PatternError { pattern: p.clone(), why });
            }
        }
        Ok(AllowList { patterns: patterns.to_vec() })
    }

    /// Every name not reserved: for callers whose [`Lookup`] is itself the
    /// allow list (tests, the fuzzer).
    pub fn everything() -> AllowList {
        AllowList { patterns: vec!["*".into()] }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether some pattern matches `name` (reserved or not).
    pub fn allows(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| glob(p.as_bytes(), name.as_bytes()))
    }

    /// Why `name` may not be read, or `None` when it may.
    fn refusal(&self, name: &str) -> Option<String> {
        if let Some(why) = reserved(name) {
            return Some(format!("environment variable `{name}` cannot be read: {why}"));
        }
        if self.allows(name) {
            return None;
        }
        let now = if self.patterns.is_empty() {
            "the allow list is empty, so no variable may be read".to_string()
        } else {
            format!("allowed: {}", self.patterns.join(", "))
        };
        Some(format!(
            "environment variable `{name}` is not in the allow list ({now}); the operator allows it with `--allow-env {name}` (globs like `CHECK_*`) or the config key checks.allow_env"
        ))
    }
}

/// What is wrong with an allow-list pattern, if anything. Public so the
/// configuration can check `checks.allow_env` with the same rule.
pub fn pattern_problem(pattern: &str) -> Option<String> {
    if pattern.is_empty() {
        return Some("empty: write a variable name or a glob like `CHECK_*`".into());
    }
    if let Some(c) = pattern.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '*' | '?'))) {
        return Some(format!(
            "`{c}` is not allowed: use letters, digits, `_`, and the wildcards `*` and `?`"
        ));
    }
    if !pattern.contains(['*', '?']) {
        if let Some(why) = reserved(pattern) {
            return Some(format!("it can never be allowed: {why}"));
        }
    }
    None
}

/// `*` matches any run of bytes, `?` one byte, anything else itself. The
/// classic two-pointer walk: linear in practice, never exponential.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

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

/// Expands every `${…}` of `text` with what `allow` lets it read,
/// collecting every problem.
pub fn expand(text: &str, lookup: Lookup<'_>, allow: &AllowList) -> Result<Expanded, Vec<EnvError>> {
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
        } else if let Some(message) = allow.refusal(name) {
            errors.push(EnvError { offset: at, written: written.to_string(), message });
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
        expand(text, &env, &AllowList::everything()).unwrap()
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
        let errs = expand("${A} and ${TOKEN} and ${1X} and ${B", &env, &AllowList::everything()).unwrap_err();
        assert_eq!(errs.len(), 3);
        assert_eq!(errs[0].offset, 0);
        assert!(errs[0].message.starts_with("environment variable `A` is not set"), "{}", errs[0].message);
        assert_eq!(errs[1].offset, 22);
        assert!(errs[1].message.starts_with("invalid variable name `1X`"));
        assert_eq!(errs[2].written, "${B");
        assert!(errs[2].message.starts_with("unterminated"));
    }

    fn everything(name: &str) -> Option<String> {
        Some(format!("value-of-{name}"))
    }

    #[test]
    fn reserved_names_are_refused_whatever_the_allow_list() {
        for allow in [AllowList::everything(), AllowList::new(&["SENTRYK8S_*".into(), "PG*".into()]).unwrap()]
        {
            let errs = expand("${SENTRYK8S_DATABASE_URL} ${sentryk8s_amqp_url:-x} ${PGPASSWORD} ${DATABASE_URL} ${RUST_LOG}", &everything, &allow).unwrap_err();
            assert_eq!(errs.len(), 5, "{errs:?}");
            assert!(errs[0].message.starts_with("environment variable `SENTRYK8S_DATABASE_URL` cannot be read: it is reserved for SentryK8s's own configuration"), "{}", errs[0].message);
            assert_eq!(
                errs[1].written, "${sentryk8s_amqp_url:-x}",
                "a fallback does not make a reserved name readable"
            );
            assert!(errs[2].message.contains("database and broker credentials"), "{}", errs[2].message);
            assert!(errs[4].message.contains("process's own settings"), "{}", errs[4].message);
        }
    }

    #[test]
    fn only_allowed_names_are_read() {
        let allow = AllowList::new(&["CHECK_*".into(), "API_TOKEN".into(), "K?Y".into()]).unwrap();
        assert_eq!(
            expand("${CHECK_A}/${API_TOKEN}/${KEY}", &everything, &allow).unwrap().text,
            "value-of-CHECK_A/value-of-API_TOKEN/value-of-KEY"
        );
        let errs = expand("${HOME} ${API_TOKEN2:-x} ${CHECK}", &everything, &allow).unwrap_err();
        assert_eq!(errs.len(), 3);
        assert_eq!(
            errs[0].message,
            "environment variable `HOME` is not in the allow list (allowed: CHECK_*, API_TOKEN, K?Y); the operator allows it with `--allow-env HOME` (globs like `CHECK_*`) or the config key checks.allow_env"
        );
        let errs = expand("${TOKEN}", &env, &AllowList::default()).unwrap_err();
        assert!(
            errs[0].message.contains("the allow list is empty, so no variable may be read"),
            "{}",
            errs[0].message
        );
        assert_eq!(
            expand("$${TOKEN} costs $5", &env, &AllowList::default()).unwrap().text,
            "${TOKEN} costs $5"
        );
    }

    #[test]
    fn patterns_are_checked_and_globs_match() {
        assert!(AllowList::new(&["SENTRYK8S_DATABASE_URL".into()])
            .unwrap_err()
            .to_string()
            .contains("can never be allowed"));
        assert!(AllowList::new(&["A-B".into()]).is_err());
        assert!(AllowList::new(&[String::new()]).is_err());
        for (p, n, m) in [
            ("*", "ANY", true),
            ("A*B*C", "AXXBYYC", true),
            ("A*B*C", "AXXBYY", false),
            ("*_TOKEN", "API_TOKEN", true),
            ("*_TOKEN", "API_TOKENS", false),
            ("A?C", "ABC", true),
            ("A?C", "AC", false),
            ("**", "", true),
            ("abc", "ABC", false),
        ] {
            assert_eq!(glob(p.as_bytes(), n.as_bytes()), m, "{p} {n}");
        }
    }
}
