//! The body of a `PUT /checks/{name}`: its format (`Content-Type`: JSON or
//! YAML, else 415), and its validation by the checks file's own validator
//! (`Validator::validate_entry`), every problem answered as a 422 with the
//! JSON pointer of its field.

use axum::http::{header, HeaderMap, StatusCode};

use crate::checks_file::declared::Validator;
use crate::checks_file::diagnostic::pointer;
use crate::checks_file::{env, Declared, Diagnostic};
use crate::web::problem::{FieldProblem, Problem};
use crate::web::state::AppState;

/// 422 listing every problem, each with its JSON pointer in the body.
pub(super) fn invalid(diags: &[Diagnostic], positions: bool) -> Problem {
    let errors: Vec<FieldProblem> = diags
        .iter()
        .map(|d| FieldProblem {
            pointer: pointer(&d.path, "checks[0]"),
            detail: match (positions, d.pos) {
                (true, Some(pos)) => format!("{} (line {}, column {})", d.message, pos.line, pos.col),
                _ => d.message.clone(),
            },
        })
        .collect();
    let n = errors.len();
    Problem::invalid(format!("{n} problem{} in the check", if n == 1 { "" } else { "s" }), errors)
}

/// The body's format, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Yaml,
}

pub(super) fn format_of(headers: &HeaderMap) -> Result<Format, Problem> {
    let unsupported = || {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the check as application/json, application/yaml or text/yaml",
        )
    };
    let value = headers.get(header::CONTENT_TYPE).ok_or_else(unsupported)?;
    let text = value.to_str().map_err(|_| unsupported())?;
    let essence = text.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Format::Json),
        "application/yaml" | "text/yaml" | "application/x-yaml" | "text/x-yaml" => Ok(Format::Yaml),
        _ => Err(unsupported()),
    }
}

/// The body validated as one check named `name`, as `checks apply` would
/// validate it (with the web role's `checks.allow_env` for `${VAR}`).
pub(super) fn validate(
    state: &AppState,
    name: &str,
    format: Format,
    body: &[u8],
) -> Result<Declared, Problem> {
    let whole = |detail: String| {
        Problem::invalid(detail.clone(), vec![FieldProblem { pointer: String::new(), detail }])
    };
    let text = std::str::from_utf8(body).map_err(|e| whole(format!("the body is not UTF-8: {e}")))?;
    let source = match format {
        Format::Yaml => text.strip_prefix('\u{feff}').unwrap_or(text).to_string(),
        // JSON is YAML; written out again by serde_json so that what the
        // YAML reader sees is plain (no tabs, one style).
        Format::Json => {
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|e| whole(format!("the body is not valid JSON: {e}")))?;
            serde_json::to_string_pretty(&value).map_err(|e| Problem::internal(&e))?
        }
    };
    let allow = env::AllowList::new(&state.allow_env).map_err(|e| Problem::internal(&e))?;
    let mut validator = Validator::with_allow(&env::process_env, &allow);
    let (declared, diags) = validator.validate_entry("body", &source, name);
    if !diags.is_empty() || declared.checks.is_empty() {
        return Err(invalid(&diags, format == Format::Yaml));
    }
    Ok(declared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(format_of(&h).unwrap_err().status, 415);
        for (ct, f) in [
            ("application/json; charset=utf-8", Format::Json),
            ("application/yaml", Format::Yaml),
            ("Text/YAML", Format::Yaml),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(format_of(&h).unwrap(), f, "{ct}");
        }
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(format_of(&h).unwrap_err().status, 415);
    }
}
