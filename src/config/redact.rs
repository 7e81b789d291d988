//! Hiding secrets in connection strings before they are printed or logged.

/// Replaces the password of a URL (`scheme://user:password@host/…`) and any
/// `password=` parameter (URL query or libpq key/value form) with `***`.
///
/// Unparseable input is redacted wholesale after the scheme: printing a
/// malformed URL that may hold a password is worse than printing nothing.
pub fn redact_url(input: &str) -> String {
    if let Ok(mut url) = url::Url::parse(input) {
        if url.password().is_some() {
            // Cannot fail on a URL that already has a host and a password.
            let _ = url.set_password(Some("***"));
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let secret = k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("pass");
                    (k.into_owned(), if secret { "***".to_string() } else { v.into_owned() })
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return url.to_string();
    }
    if input.contains("://") {
        let scheme = input.split("://").next().unwrap_or("");
        return format!("{scheme}://***");
    }
    // libpq key/value form: host=… password=secret dbname=…
    input
        .split_whitespace()
        .map(|part| match part.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("postgres://db/x?user=a&password=s3cret"),
            "postgres://db/x?user=a&password=***"
        );
        assert_eq!(redact_url("host=db password=s3cret dbname=x"), "host=db password=*** dbname=x");
        assert!(!redact_url("postgres://a:s3cret@[bad").contains("s3cret"));
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    }
}
