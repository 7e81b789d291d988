//! Credentials written into a URL (`https://user:pass@host/`): they become
//! an HTTP basic `Authorization` header, marked sensitive, and the userinfo
//! itself is never sent or shown.

use hyper::header::HeaderValue;
use url::Url;

/// `https://user:pass@host/` means basic auth (the checks file documents
/// it); the userinfo itself is never sent or shown.
pub fn basic_auth(url: &Url) -> Option<HeaderValue> {
    use base64::Engine;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let credentials =
        format!("{}:{}", percent_decode(url.username()), percent_decode(url.password().unwrap_or("")));
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Userinfo is percent-encoded in a URL; malformed sequences are kept as
/// written, invalid UTF-8 replaced.
fn percent_decode(text: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_userinfo_becomes_basic_auth() {
        let url = |s: &str| Url::parse(s).unwrap();
        let value = basic_auth(&url("https://al%40ice:s%3Acret@example.test/")).unwrap();
        // base64("al@ice:s:cret")
        assert_eq!(value.to_str().unwrap(), "Basic YWxAaWNlOnM6Y3JldA==");
        assert!(value.is_sensitive());
        assert!(basic_auth(&url("https://example.test/")).is_none());
        assert_eq!(percent_decode("a%2"), "a%2");
    }
}
