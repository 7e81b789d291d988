//! The webhook signature: `X-SentryK8s-Signature: t=<unix seconds>,v1=<hex>`
//! where `<hex>` is HMAC-SHA256 over `"<t>.<body>"` keyed with the
//! channel's `secret`. The timestamp is inside the signed text so a
//! receiver can refuse old replays (compare `t` with its clock), and the
//! body is signed byte for byte as sent.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the signature.
pub const HEADER: &str = "X-SentryK8s-Signature";

/// The header value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex(&mac(secret, timestamp, body)))
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return Vec::new() };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Checks a header value the way a receiver should (constant-time compare,
/// timestamp within `tolerance_secs` of `now`). Used by the tests and shown
/// in docs/alerting.md as the reference.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => signature = Some(v.to_string()),
            _ => {}
        }
    }
    let (Some(t), Some(sig)) = (timestamp, signature) else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return false };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    match unhex(&sig) {
        Some(bytes) => mac.verify_slice(&bytes).is_ok(),
        None => false,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_reference_vector() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"s3cret",b"1700000000.{\"a\":1}",hashlib.sha256).hexdigest())'
        assert_eq!(
            sign("s3cret", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    #[test]
    fn verifies_and_refuses() {
        let body = br#"{"check":"api"}"#;
        let header = sign("k", 1000, body);
        assert!(verify("k", &header, body, 1010, 300));
        assert!(!verify("other", &header, body, 1010, 300), "wrong secret");
        assert!(!verify("k", &header, br#"{"check":"apj"}"#, 1010, 300), "tampered body");
        assert!(!verify("k", &header, body, 2000, 300), "too old");
        assert!(!verify("k", "t=1000", body, 1000, 300));
        assert!(!verify("k", "garbage", body, 1000, 300));
        let forged = header.replace("t=1000", "t=1001");
        assert!(!verify("k", &forged, body, 1001, 300), "timestamp is signed");
    }
}
