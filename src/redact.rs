//! Hiding secrets in URLs and connection strings before anything is
//! printed or logged: the one place that knows what a secret looks like in
//! a URL (a password, a token in the query, libpq's `password=`).

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
}
