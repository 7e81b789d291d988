//! Keeping secrets out of everything SentryK8s prints.
//!
//! A declared check carries secrets in three places: header values
//! (tokens), the URL (a password, or a token in the query) and the request
//! body (a login form). Output shows `***` instead; [`scrub`] also removes
//! them from free text such as a stored error message, in case a target
//! echoed one back.

use crate::model::CheckSpec;

pub use crate::redact::{mask_userinfo, redact_url, secret_param, MASK};

/// The spec as it may be shown: header values, URL secrets and the body
/// masked.
pub fn redact_spec(spec: &CheckSpec) -> CheckSpec {
    let mut shown = spec.clone();
    shown.url = redact_url(&spec.url);
    for value in shown.headers.values_mut() {
        *value = MASK.to_string();
    }
    if shown.body.as_deref().is_some_and(|b| !b.is_empty()) {
        shown.body = Some(MASK.to_string());
    }
    shown
}

/// The secret strings of a spec (for [`scrub`]).
pub fn secrets(spec: &CheckSpec) -> Vec<String> {
    let mut out: Vec<String> = spec.headers.values().cloned().collect();
    if let Some(body) = &spec.body {
        out.push(body.clone());
    }
    if let Ok(url) = url::Url::parse(&spec.url) {
        // The password, or a user name standing alone (a token), as written
        // and decoded.
        let secret = url.password().or((!url.username().is_empty()).then(|| url.username()));
        if let Some(p) = secret {
            out.push(p.to_string());
            if let Ok(decoded) = urlencoding_decode(p) {
                out.push(decoded);
            }
        }
        out.extend(url.query_pairs().filter(|(k, _)| secret_param(k)).map(|(_, v)| v.into_owned()));
    }
    // Masking a 1–2 character value would garble text without protecting
    // anything.
    out.retain(|s| s.chars().count() >= 3);
    // Longest first, so a secret containing another is masked whole.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

fn urlencoding_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

/// `text` with every secret of `secrets` replaced by `***`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CheckSpec {
        serde_json::from_value(serde_json::json!({
            "url": "https://bob:hunter22@example.com/x?token=abc123&page=2",
            "timeout_ms": 1000,
            "headers": {"Authorization": "Bearer t0ken-value"},
            "body": "{\"password\":\"pw-secret\"}"
        }))
        .unwrap()
    }

    #[test]
    fn masks_every_secret() {
        let shown = redact_spec(&spec());
        let text = serde_json::to_string(&shown).unwrap();
        for secret in ["hunter22", "abc123", "t0ken-value", "pw-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(shown.url, "https://bob:***@example.com/x?token=***&page=2");
        assert_eq!(shown.headers["Authorization"], "***");
    }

    #[test]
    fn scrubs_free_text() {
        let s = secrets(&spec());
        let text = scrub("GET https://bob:hunter22@example.com/x?token=abc123 said Bearer t0ken-value", &s);
        assert_eq!(text, "GET https://bob:***@example.com/x?token=*** said ***");
    }
}
