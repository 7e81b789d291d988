//! Keeping secrets out of everything SentryK8s prints, logs or serves: the
//! one place that knows what a secret looks like.
//!
//! - In a URL or connection string: a password, a user name standing alone
//!   (a token), a token in the query, libpq's `password=`.
//! - In a declared check: header values (tokens), the URL and the request
//!   body (a login form). Output shows `***` instead; [`scrub`] also removes
//!   them from free text such as a stored error message, in case a target
//!   echoed one back.

use std::collections::BTreeMap;

use super::CheckSpec;

pub const MASK: &str = "***";

/// Query parameters whose values are treated as secrets.
const SECRET_PARAMS: &[&str] = &[
    "password",
    "pass",
    "passwd",
    "pwd",
    "token",
    "access_token",
    "auth",
    "api_key",
    "apikey",
    "key",
    "secret",
    "client_secret",
    "signature",
    "sig",
    "code",
];

/// Whether a query parameter (or libpq key) holds a secret.
pub fn secret_param(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_PARAMS.contains(&k.as_str())
        || k.ends_with("_token")
        || k.ends_with("_key")
        || k.ends_with("secret")
}

/// The URL with its password and secret-looking query values masked.
pub fn redact_url(input: &str) -> String {
    let Ok(mut url) = url::Url::parse(input) else {
        return redact_unparsed(input);
    };
    // A user name alone is usually a token (https://ghp_xxx@api.example/).
    if url.password().is_none() && !url.username().is_empty() {
        let _ = url.set_username(MASK);
    }
    if url.password().is_some() {
        // Cannot fail: the URL has a host, or it would have no password.
        let _ = url.set_password(Some(MASK));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_param(&k) { MASK.to_string() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// Text that should be a URL but may not parse: whatever sits between
/// `://` and the last `@` of the authority (user and password) is masked.
pub fn mask_userinfo(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else { return text.to_string() };
    let authority_end = text[start..].find(['/', '?', '#']).map_or(text.len(), |i| start + i);
    match text[start..authority_end].rfind('@') {
        Some(at) => format!("{}{MASK}{}", &text[..start], &text[start + at..]),
        None => text.to_string(),
    }
}

/// A connection string that is not a URL: libpq's key/value form
/// (`host=db password=secret`) has its password masked; anything else that
/// looks like a URL is masked wholesale after the scheme, because printing
/// a malformed URL that may hold a password is worse than printing nothing.
fn redact_unparsed(input: &str) -> String {
    if let Some((scheme, _)) = input.split_once("://") {
        return format!("{scheme}://{MASK}");
    }
    input
        .split_whitespace()
        .map(|part| match part.split_once('=') {
            Some((k, _)) if secret_param(k) => format!("{k}={MASK}"),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

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
    if let Some(key) = shown.heartbeat.as_mut().and_then(|h| h.key.as_mut()) {
        *key = MASK.to_string();
    }
    shown
}

/// `Debug` of a spec is redacted like every other output: a spec in a log
/// line or a panic message shows no header value, body or URL secret.
impl std::fmt::Debug for CheckSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: BTreeMap<&str, &str> = self.headers.keys().map(|k| (k.as_str(), "***")).collect();
        f.debug_struct("CheckSpec")
            .field("kind", &self.kind)
            .field("url", &redact_url(&self.url))
            .field("method", &self.method)
            .field("headers", &headers)
            .field("body", &self.body.as_ref().map(|_| "***"))
            .field("timeout_ms", &self.timeout_ms)
            .field("max_redirects", &self.max_redirects)
            .field("tls_verify", &self.tls_verify)
            .field("body_limit", &self.body_limit)
            .field("send", &self.send)
            .field("starttls", &self.starttls)
            .field("server_name", &self.server_name)
            .field("dns", &self.dns)
            .field("packets", &self.packets)
            .field("grpc_service", &self.grpc_service)
            .field(
                "heartbeat",
                &self.heartbeat.as_ref().map(|h| {
                    let mut shown = h.clone();
                    shown.key = shown.key.map(|_| MASK.to_string());
                    shown
                }),
            )
            .field("expect", &self.expect)
            .field("failure_threshold", &self.failure_threshold)
            .field("success_threshold", &self.success_threshold)
            .field("labels", &self.labels)
            .field("alerts", &self.alerts)
            .field("description", &self.description)
            .finish()
    }
}

/// The secret strings of a spec (for [`scrub`]).
pub fn secrets(spec: &CheckSpec) -> Vec<String> {
    let mut out: Vec<String> = spec.headers.values().cloned().collect();
    if let Some(body) = &spec.body {
        out.push(body.clone());
    }
    if let Some(key) = spec.heartbeat.as_ref().and_then(|h| h.key.as_ref()) {
        out.push(key.clone());
    }
    if let Ok(url) = url::Url::parse(&spec.url) {
        // The password, or a user name standing alone (a token), as written
        // and decoded.
        let secret = url.password().or((!url.username().is_empty()).then(|| url.username()));
        if let Some(p) = secret {
            out.push(p.to_string());
            if let Ok(decoded) = percent_encoding::percent_decode_str(p).decode_utf8() {
                out.push(decoded.into_owned());
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

    #[test]
    fn passwords_and_tokens_are_hidden() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("postgres://db/x?user=a&password=s3cret"),
            "postgres://db/x?user=a&password=***"
        );
        assert_eq!(redact_url("https://x/y?token=abc&page=2"), "https://x/y?token=***&page=2");
        assert_eq!(redact_url("host=db password=s3cret dbname=x"), "host=db password=*** dbname=x");
        assert!(!redact_url("postgres://a:s3cret@[bad").contains("s3cret"));
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact_url("https://ghp_t0ken@api.example/x"), "https://***@api.example/x");
    }

    #[test]
    fn masks_userinfo_of_unparseable_urls() {
        assert_eq!(mask_userinfo("http://admin:hunter2@exa mple.com/x@y"), "http://***@exa mple.com/x@y");
        assert_eq!(mask_userinfo("http://example.com/a@b"), "http://example.com/a@b");
        assert_eq!(mask_userinfo("not a url"), "not a url");
    }

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

    #[test]
    fn a_heartbeat_key_is_a_secret() {
        let spec: CheckSpec = serde_json::from_value(serde_json::json!({
            "kind": "heartbeat", "timeout_ms": 1000,
            "heartbeat": {"period_ms": 3600000, "key": "k3y-secret"}
        }))
        .unwrap();
        for text in [serde_json::to_string(&redact_spec(&spec)).unwrap(), format!("{spec:?}")] {
            assert!(!text.contains("k3y-secret"), "{text}");
        }
        assert_eq!(scrub("ping /ping/k3y-secret", &secrets(&spec)), "ping /ping/***");
    }
}
