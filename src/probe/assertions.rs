//! What "up" means: the check's `expect` evaluated against a response.
//!
//! Pure functions over what the HTTP check observed, so every rule is
//! unit-tested. Each failed assertion is named in the result
//! (`status 500 not in [200-399]`), and messages quote the expectation, never
//! the response body beyond a short excerpt of one JSON value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use regex::{Regex, RegexBuilder};

use crate::model::Expect;
use crate::net::http::excerpt;

/// What the assertions look at.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub status: u16,
    pub total_ms: f64,
    /// The body read (at most the body limit); `None` when not kept because
    /// no assertion needs it.
    pub body: Option<&'a [u8]>,
    pub cert_expires_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
    /// Largest body JSON assertions parse: a parsed document takes many
    /// times its text (`[0,0,…]` about 16 bytes per input byte), so larger
    /// bodies fail instead of being parsed.
    pub json_max_bytes: usize,
}

/// Whether any assertion needs the response body kept in memory.
pub fn needs_body(expect: &Expect) -> bool {
    !expect.body_contains.is_empty()
        || !expect.body_not_contains.is_empty()
        || !expect.body_regex.is_empty()
        || !expect.json.is_empty()
}

/// Compiled regular expressions, shared by every check of a worker: the same
/// pattern arrives with every run of a check, and compiling costs far more
/// than matching. Bounded by bytes: each entry is charged what it may hold
/// (see [`RegexCache::cost`]), and past [`REGEX_CACHE_BYTES`] the cache
/// starts over (patterns come from declared checks, so only a pathological
/// set gets there).
#[derive(Default)]
pub struct RegexCache {
    entries: Mutex<CacheEntries>,
}

#[derive(Default)]
struct CacheEntries {
    map: HashMap<String, Result<Arc<Regex>, String>>,
    /// Sum of the costs of the entries in `map`.
    bytes: usize,
}

/// Bytes the cached regexes may hold at most.
pub const REGEX_CACHE_BYTES: usize = 64 << 20;
/// Compiled size limit of one pattern: bounds the memory a hostile pattern
/// can take (matching is linear-time in the `regex` crate regardless).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Lazy-DFA cache of one regex per thread using it (the crate's default is
/// 2 MiB): bounded so the byte charge of an entry holds.
const REGEX_DFA_LIMIT: usize = 256 << 10;
/// Compiled size tiers tried in turn; an entry is charged its tier.
const REGEX_TIERS: [usize; 3] = [16 << 10, 128 << 10, REGEX_SIZE_LIMIT];

impl RegexCache {
    pub fn get(&self, pattern: &str) -> Result<Arc<Regex>, String> {
        if let Ok(entries) = self.entries.lock() {
            if let Some(found) = entries.map.get(pattern) {
                return found.clone();
            }
        }
        let (compiled, cost) = compile(pattern);
        if let Ok(mut entries) = self.entries.lock() {
            if entries.bytes + cost > REGEX_CACHE_BYTES {
                entries.map.clear();
                entries.bytes = 0;
            }
            entries.bytes += cost;
            entries.map.insert(pattern.to_string(), compiled.clone());
        }
        compiled
    }

    /// Bytes the cached entries are charged (tests and diagnostics).
    pub fn bytes(&self) -> usize {
        self.entries.lock().map(|e| e.bytes).unwrap_or(0)
    }
}

/// Compiles under the smallest size tier that fits; returns the regex (or
/// the error) and the bytes it is charged: the key, the tier and one lazy
/// DFA cache per runtime thread that may use it at once.
fn compile(pattern: &str) -> (Result<Arc<Regex>, String>, usize) {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let overhead = pattern.len() + REGEX_DFA_LIMIT * threads;
    let mut last = Err("invalid".to_string());
    for tier in REGEX_TIERS {
        match RegexBuilder::new(pattern).size_limit(tier).dfa_size_limit(REGEX_DFA_LIMIT).build() {
            Ok(re) => return (Ok(Arc::new(re)), overhead + tier),
            Err(e @ regex::Error::CompiledTooBig(_)) => last = Err(first_line(&e.to_string())),
            Err(e) => return (Err(first_line(&e.to_string())), pattern.len()),
        }
    }
    // An error holds only its message.
    (last, pattern.len())
}

fn first_line(text: &str) -> String {
    text.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("invalid").to_string()
}

/// Evaluates every assertion; returns one entry per failure (empty = up).
pub fn evaluate(expect: &Expect, observed: &Observed<'_>, regexes: &RegexCache) -> Vec<String> {
    let mut failed = Vec::new();
    if !expect.status_ok(observed.status) {
        let accepted = if expect.status.is_empty() {
            "200-399".to_string()
        } else {
            expect.status.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        };
        failed.push(format!("status {} not in [{accepted}]", observed.status));
    }
    if let Some(max) = expect.max_response_time_ms {
        if observed.total_ms > max as f64 {
            failed.push(format!("response time {:.0} ms > {max} ms", observed.total_ms));
        }
    }
    if needs_body(expect) {
        let body = observed.body.unwrap_or_default();
        let text = String::from_utf8_lossy(body);
        for needle in &expect.body_contains {
            if !text.contains(needle.as_str()) {
                failed.push(format!("body does not contain {}", quote(needle)));
            }
        }
        for needle in &expect.body_not_contains {
            if text.contains(needle.as_str()) {
                failed.push(format!("body contains {}", quote(needle)));
            }
        }
        for pattern in &expect.body_regex {
            match regexes.get(pattern) {
                Ok(re) if re.is_match(&text) => {}
                Ok(_) => failed.push(format!("body does not match /{}/", excerpt(pattern, 80))),
                Err(e) => failed.push(format!("body regex /{}/ is invalid: {e}", excerpt(pattern, 80))),
            }
        }
        if !expect.json.is_empty() && body.len() > observed.json_max_bytes {
            failed.push(format!(
                "json: body of {} bytes is larger than the {}-byte JSON limit (worker.json_max_bytes)",
                body.len(),
                observed.json_max_bytes
            ));
        } else if !expect.json.is_empty() {
            match serde_json::from_slice::<serde_json::Value>(body) {
                Err(_) => failed.push("json: body is not valid JSON".to_string()),
                Ok(document) => {
                    for (pointer, expected) in &expect.json {
                        match document.pointer(pointer) {
                            Some(actual) if actual == expected => {}
                            Some(actual) => failed.push(format!(
                                "json {pointer}: expected {}, got {}",
                                excerpt(&expected.to_string(), 60),
                                excerpt(&actual.to_string(), 60)
                            )),
                            None => failed.push(format!("json {pointer}: missing")),
                        }
                    }
                }
            }
        }
    }
    if let Some(min_days) = expect.cert_days_left {
        match observed.cert_expires_at {
            None => failed.push(format!("certificate days left >= {min_days}: no TLS certificate")),
            Some(not_after) => {
                let left = (not_after - observed.now).num_days();
                if left < min_days as i64 {
                    failed.push(format!("certificate expires in {left} days (< {min_days})"));
                }
            }
        }
    }
    failed
}

fn quote(text: &str) -> String {
    format!("\"{}\"", excerpt(text, 80))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StatusMatch;

    fn observed(status: u16, body: &[u8]) -> Observed<'_> {
        Observed {
            status,
            total_ms: 12.0,
            body: Some(body),
            cert_expires_at: None,
            now: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
            json_max_bytes: 1 << 20,
        }
    }

    fn eval(expect: &Expect, o: &Observed<'_>) -> Vec<String> {
        evaluate(expect, o, &RegexCache::default())
    }

    #[test]
    fn default_status_range_is_200_to_399() {
        let e = Expect::default();
        assert!(eval(&e, &observed(200, b"")).is_empty());
        assert!(eval(&e, &observed(399, b"")).is_empty());
        assert_eq!(eval(&e, &observed(500, b"")), vec!["status 500 not in [200-399]"]);
        assert_eq!(eval(&e, &observed(199, b"")).len(), 1);
    }

    #[test]
    fn status_lists_and_classes() {
        let e = Expect { status: vec![StatusMatch::Code(404), StatusMatch::Class(5)], ..Expect::default() };
        assert!(eval(&e, &observed(404, b"")).is_empty());
        assert!(eval(&e, &observed(503, b"")).is_empty());
        assert_eq!(eval(&e, &observed(200, b"")), vec!["status 200 not in [404, 5xx]"]);
    }

    #[test]
    fn response_time() {
        let e = Expect { max_response_time_ms: Some(10), ..Expect::default() };
        assert_eq!(eval(&e, &observed(200, b"")), vec!["response time 12 ms > 10 ms"]);
        let e = Expect { max_response_time_ms: Some(12), ..Expect::default() };
        assert!(eval(&e, &observed(200, b"")).is_empty());
    }

    #[test]
    fn body_contains_not_contains_and_regex() {
        let e = Expect {
            body_contains: vec!["hello".into(), "world".into()],
            body_not_contains: vec!["error".into()],
            body_regex: vec![r"^he\w+o".into(), "[".into()],
            ..Expect::default()
        };
        let failed = eval(&e, &observed(200, b"hello there, error"));
        assert_eq!(failed.len(), 3, "{failed:?}");
        assert!(failed[0].contains("does not contain \"world\""));
        assert!(failed[1].contains("body contains \"error\""));
        assert!(failed[2].starts_with("body regex /[/ is invalid"), "{failed:?}");
        assert!(eval(
            &Expect { body_regex: vec!["wor.d".into()], ..Expect::default() },
            &observed(200, b"hello world")
        )
        .is_empty());
    }

    #[test]
    fn json_pointer_equals() {
        let mut json = std::collections::BTreeMap::new();
        json.insert("/status".to_string(), serde_json::json!("ok"));
        json.insert("/db/connections".to_string(), serde_json::json!(3));
        let e = Expect { json, ..Expect::default() };
        assert!(eval(&e, &observed(200, br#"{"status":"ok","db":{"connections":3}}"#)).is_empty());
        let failed = eval(&e, &observed(200, br#"{"status":"degraded"}"#));
        assert_eq!(
            failed,
            vec!["json /db/connections: missing", r#"json /status: expected "ok", got "degraded""#]
        );
        assert_eq!(eval(&e, &observed(200, b"<html>")), vec!["json: body is not valid JSON"]);
    }

    #[test]
    fn certificate_days_left() {
        let e = Expect { cert_days_left: Some(10), ..Expect::default() };
        let mut o = observed(200, b"");
        assert!(eval(&e, &o)[0].contains("no TLS certificate"));
        o.cert_expires_at = Some(o.now + chrono::Duration::days(30));
        assert!(eval(&e, &o).is_empty());
        o.cert_expires_at = Some(o.now + chrono::Duration::days(3));
        assert_eq!(eval(&e, &o), vec!["certificate expires in 3 days (< 10)"]);
    }

    #[test]
    fn every_failure_is_listed() {
        let e = Expect {
            status: vec![StatusMatch::Code(200)],
            max_response_time_ms: Some(1),
            body_contains: vec!["x".into()],
            cert_days_left: Some(1),
            ..Expect::default()
        };
        assert_eq!(eval(&e, &observed(500, b"")).len(), 4);
    }

    #[test]
    fn regexes_are_cached() {
        let cache = RegexCache::default();
        let a = cache.get("a+").unwrap();
        let b = cache.get("a+").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(cache.get("(").is_err());
    }

    #[test]
    fn json_above_the_cap_fails_without_parsing() {
        let mut json = std::collections::BTreeMap::new();
        json.insert("/0".to_string(), serde_json::json!(0));
        let e = Expect { json, ..Expect::default() };
        let mut o = observed(200, b"[0,0,0]");
        assert!(eval(&e, &o).is_empty());
        o.json_max_bytes = 6;
        assert_eq!(
            eval(&e, &o),
            vec!["json: body of 7 bytes is larger than the 6-byte JSON limit (worker.json_max_bytes)"]
        );
    }

    #[test]
    fn the_regex_cache_is_bounded_by_bytes() {
        let cache = RegexCache::default();
        // A repeated Unicode word class compiles to a large program: each
        // such entry is charged over 1 MiB, so a few dozen fill the byte
        // bound long before the count of patterns matters.
        let _ = cache.get(r"\w{8}x0");
        let one = cache.bytes();
        assert!(one > 1 << 20, "{one}");
        let mut reset = false;
        for i in 1..(REGEX_CACHE_BYTES / one + 2) {
            let before = cache.bytes();
            let _ = cache.get(&format!(r"\w{{8}}x{i}"));
            reset |= cache.bytes() < before;
            assert!(cache.bytes() <= REGEX_CACHE_BYTES, "{} bytes after {i}", cache.bytes());
        }
        assert!(reset, "the cache never started over");
        let small = RegexCache::default();
        let _ = small.get("a+");
        assert!(small.bytes() < 1 << 20, "{}", small.bytes());
    }
}
