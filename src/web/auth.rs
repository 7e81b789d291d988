//! The state behind authentication: the token cache and the per-caller
//! rate limit (`access.rs` decides, per request, with them).
//!
//! - A missing, malformed, unknown, expired or revoked token is 401 with
//!   `WWW-Authenticate: Bearer`; a token whose scope is too small is 403.
//!   With `web.public_read`, read routes need no token (a token that is
//!   sent must still be valid).
//! - Lookups are cached for at most [`CACHE_TTL`] (one second), so a
//!   revocation is seen by every replica within a second and a busy client
//!   costs one query a second, not one per request. Negative answers are
//!   cached too: a flood of one bad token costs one query a second.
//! - Every caller (a token, or an anonymous peer address) has a token
//!   bucket of `web.rate_limit_per_second`, burst `web.rate_limit_burst`;
//!   an empty bucket is 429 with `Retry-After`.
//! - `last_used_at` is written at most once a minute per token and replica.
//! - Tokens never reach a log line: only the token's name does.
//! - Sign-in sessions (`session.rs`) are cached likewise, for at most
//!   [`SESSION_CACHE_TTL`]: a revoked token's sessions, or a signed-out
//!   one, are refused by every replica within a second.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::session_store::SessionRow;
use crate::tokens::Scope;

/// Longest a token lookup is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Entries kept at most (of the cache and of the limiter); beyond it the
/// maps are cleared, which costs a lookup per caller, not correctness.
const MAX_ENTRIES: usize = 10_000;
/// How often `last_used_at` is written per token and replica.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Longest a session lookup is trusted.
pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);

/// The peer's address, set by the server on every request.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub(super) type Lookup = Option<(String, Scope)>;

pub struct Auth {
    cache: Mutex<HashMap<String, (Instant, Lookup)>>,
    touched: Mutex<HashMap<String, Instant>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    rate: f64,
    burst: f64,
}

impl Auth {
    pub fn new(rate_per_second: u32, burst: u32) -> Auth {
        Auth {
            cache: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
            rate: f64::from(rate_per_second.max(1)),
            burst: f64::from(burst.max(1)),
        }
    }

    /// Takes one request from `key`'s bucket; `Err(seconds to wait)` when empty.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        if buckets.len() >= MAX_ENTRIES && !buckets.contains_key(key) {
            buckets.clear();
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: self.burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }

    pub(super) fn cached(&self, digest: &str, now: Instant) -> Option<Lookup> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(digest)
            .filter(|(at, _)| now.saturating_duration_since(*at) < CACHE_TTL)
            .map(|(_, l)| l.clone())
    }

    pub(super) fn remember(&self, digest: String, lookup: Lookup, now: Instant) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_ENTRIES {
                cache.retain(|_, (at, _)| now.saturating_duration_since(*at) < CACHE_TTL);
                if cache.len() >= MAX_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(digest, (now, lookup));
        }
    }

    /// Whether `last_used_at` of `name` is due for a write.
    pub(super) fn touch_due(&self, name: &str, now: Instant) -> bool {
        let Ok(mut touched) = self.touched.lock() else { return false };
        match touched.get(name) {
            Some(at) if now.saturating_duration_since(*at) < TOUCH_EVERY => false,
            _ => {
                if touched.len() >= MAX_ENTRIES {
                    touched.clear();
                }
                touched.insert(name.to_string(), now);
                true
            }
        }
    }
}

/// The per-replica cache of session lookups (positive and negative).
#[derive(Default)]
pub struct SessionCache(Mutex<HashMap<String, (Instant, Option<SessionRow>)>>);

impl SessionCache {
    pub(super) fn get(&self, digest: &str, now: Instant) -> Option<Option<SessionRow>> {
        let map = self.0.lock().ok()?;
        map.get(digest)
            .filter(|(at, _)| now.saturating_duration_since(*at) < SESSION_CACHE_TTL)
            .map(|(_, r)| r.clone())
    }

    pub(super) fn put(&self, digest: String, row: Option<SessionRow>, now: Instant) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= MAX_ENTRIES {
                map.retain(|_, (at, _)| now.saturating_duration_since(*at) < SESSION_CACHE_TTL);
                if map.len() >= MAX_ENTRIES {
                    map.clear();
                }
            }
            map.insert(digest, (now, row));
        }
    }

    pub(super) fn forget(&self, digest: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_paces() {
        let auth = Auth::new(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(auth.take("a", t0), Ok(()));
        }
        assert_eq!(auth.take("a", t0), Err(1));
        // Another caller has its own bucket.
        assert_eq!(auth.take("b", t0), Ok(()));
        // Half a second later, one more (2 per second).
        assert_eq!(auth.take("a", t0 + Duration::from_millis(500)), Ok(()));
        assert!(auth.take("a", t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn lookups_expire_after_a_second() {
        let auth = Auth::new(1, 1);
        let t0 = Instant::now();
        auth.remember("d".into(), Some(("ci".into(), Scope::Read)), t0);
        assert!(auth.cached("d", t0 + Duration::from_millis(999)).is_some());
        assert!(auth.cached("d", t0 + CACHE_TTL).is_none());
    }

    #[test]
    fn last_use_is_written_once_a_minute() {
        let auth = Auth::new(1, 1);
        let t0 = Instant::now();
        assert!(auth.touch_due("ci", t0));
        assert!(!auth.touch_due("ci", t0 + Duration::from_secs(59)));
        assert!(auth.touch_due("ci", t0 + TOUCH_EVERY));
    }

    #[test]
    fn the_cache_forgets_after_a_second_and_on_sign_out() {
        let cache = SessionCache::default();
        let t0 = Instant::now();
        let row = SessionRow { token: "ci".into(), scope: Scope::Read, csrf_secret: "x".into() };
        cache.put("d".into(), Some(row.clone()), t0);
        assert_eq!(cache.get("d", t0 + Duration::from_millis(999)), Some(Some(row)));
        assert_eq!(cache.get("d", t0 + SESSION_CACHE_TTL), None);
        cache.put("n".into(), None, t0);
        assert_eq!(cache.get("n", t0), Some(None), "negative answers are cached too");
        cache.forget("n");
        assert_eq!(cache.get("n", t0), None);
    }
}
