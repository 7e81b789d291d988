//! The web role's door, through the real binary (and, where a route of its
//! own is needed, the same layers in-process): 401 with `WWW-Authenticate`
//! for missing, bad, unknown, expired and revoked tokens; 403 for too small
//! a scope; revocation seen by two replicas within a second; tokens never
//! in the logs; `web.public_read`; the rate limit (429 + Retry-After); the
//! body cap (413); slow clients and the connection cap; the request
//! timeout (503); ETag / If-None-Match and gzip.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::checks_cli::{sentryk8s, temp_dir};
use crate::support::{eventually, free_port, Binary, TestDb};

/// An answer, as read off the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked (still compressed when it was sent so).
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with
/// `headers` and `body`; the whole answer, or an error string after 10 s.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Answer, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        stream.write_all(body).await.map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
        parse(&raw)
    };
    tokio::time::timeout(Duration::from_secs(10), attempt).await.map_err(|_| "timed out".to_string())?
}

/// GET `path` with a bearer token (none when `token` is empty).
pub async fn get(addr: SocketAddr, path: &str, token: &str) -> Answer {
    let auth = format!("Bearer {token}");
    let headers: Vec<(&str, &str)> = if token.is_empty() { vec![] } else { vec![("Authorization", &auth)] };
    request(addr, "GET", path, &headers, b"").await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

fn parse(raw: &[u8]) -> Result<Answer, String> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no header end")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked")) {
        body = dechunk(&body)?;
    }
    Ok(Answer { status, headers, body })
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(raw.get(..size).ok_or("short chunk")?);
        raw = raw.get(size + 2..).ok_or("short chunk")?;
    }
}

/// A running `sentryk8s web`: the API's and the ops server's addresses.
pub struct Web {
    pub bin: Binary,
    pub api: SocketAddr,
    pub ops: SocketAddr,
}

impl Web {
    /// Starts `sentryk8s web` on `db` with extra environment and waits
    /// until it serves.
    pub async fn start(db: &TestDb, env: &[(&str, &str)]) -> Web {
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let ops: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut vars = vec![
            ("SENTRYK8S_DATABASE_URL".to_string(), db.url.clone()),
            ("SENTRYK8S_LISTEN".to_string(), ops.to_string()),
        ];
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let bin = Binary::spawn(&["web", "--listen", &api.to_string()], &vars);
        assert!(
            bin.wait_for_output("web: serving the API", Duration::from_secs(20)).await,
            "web did not start: {}",
            bin.output()
        );
        Web { bin, api, ops }
    }
}

/// Creates a token through the CLI; returns it.
pub fn create_token(db: &TestDb, name: &str, scope: &str) -> String {
    let run =
        sentryk8s(Some(db), &temp_dir(), &["tokens", "create", "--name", name, "--scope", scope], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    run.stdout.trim().to_string()
}

const INCIDENTS: &str = "/api/v1/incidents";

fn assert_401(answer: &Answer, why: &str) {
    assert_eq!(answer.status, 401, "{why}: {}", answer.text());
    assert!(answer.header("www-authenticate").is_some_and(|v| v.starts_with("Bearer")), "{why}: {answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/problem+json"), "{why}");
}

#[tokio::test]
async fn missing_bad_unknown_expired_and_revoked_tokens_get_401() {
    let db = TestDb::migrated(4).await;
    let read = create_token(&db, "reader", "read");
    let expiring = create_token(&db, "old", "read");
    let web = Web::start(&db, &[]).await;

    assert_eq!(get(web.api, INCIDENTS, &read).await.status, 200);
    assert_401(&get(web.api, INCIDENTS, "").await, "no token");
    assert_401(&get(web.api, INCIDENTS, "garbage").await, "malformed");
    let unknown = format!("sk8s_{}", "A".repeat(43));
    assert_401(&get(web.api, INCIDENTS, &unknown).await, "unknown");
    let basic =
        request(web.api, "GET", INCIDENTS, &[("Authorization", "Basic dXNlcjpwYXNz")], b"").await.unwrap();
    assert_401(&basic, "not a bearer token");

    assert_eq!(get(web.api, INCIDENTS, &expiring).await.status, 200);
    db.client()
        .await
        .execute("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'old'", &[])
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_millis(1500), || async {
            get(web.api, INCIDENTS, &expiring).await.status == 401
        })
        .await,
        "an expired token is refused within a second"
    );
    assert_401(&get(web.api, INCIDENTS, &expiring).await, "expired");

    let run = sentryk8s(Some(&db), &temp_dir(), &["tokens", "revoke", "reader"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_401(&get(web.api, INCIDENTS, &read).await, "revoked");

    // The openapi document needs no token: it holds no data.
    assert_eq!(get(web.api, "/api/v1/openapi.json", "").await.status, 200);
}

#[tokio::test]
async fn a_revocation_is_refused_by_two_replicas_within_a_second() {
    let db = TestDb::migrated(4).await;
    let token = create_token(&db, "ci", "read");
    let (a, b) = tokio::join!(Web::start(&db, &[]), Web::start(&db, &[]));
    // Both replicas have the token cached and keep using it, the worst
    // case for a revocation.
    let keep_busy = |addr| {
        let token = token.clone();
        async move {
            for _ in 0..10 {
                assert_eq!(get(addr, INCIDENTS, &token).await.status, 200);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    tokio::join!(keep_busy(a.api), keep_busy(b.api));

    let run = sentryk8s(Some(&db), &temp_dir(), &["tokens", "revoke", "ci"], &[], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    let revoked = Instant::now();
    let refused_by = |addr| {
        let token = token.clone();
        async move {
            loop {
                if get(addr, INCIDENTS, &token).await.status == 401 {
                    return revoked.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let (ta, tb) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(refused_by(a.api), refused_by(b.api))
    })
    .await
    .expect("both replicas refuse the revoked token");
    // A second from the commit, plus one polling step.
    let limit = Duration::from_millis(1000 + 60);
    assert!(ta <= limit && tb <= limit, "refused after {ta:?} and {tb:?}");
    // And stay refusing.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(a.api, INCIDENTS, &token).await.status, 401);
    assert_eq!(get(b.api, INCIDENTS, &token).await.status, 401);
}

#[tokio::test]
async fn tokens_never_reach_the_logs() {
    let db = TestDb::migrated(4).await;
    let token = create_token(&db, "ci", "read");
    let unknown = format!("sk8s_{}", "B".repeat(43));
    for filter in ["trace", "trace,hyper=trace,hyper_util=trace,axum=trace,tower_http=trace,h2=trace"] {
        let web = Web::start(&db, &[("RUST_LOG", filter)]).await;
        assert_eq!(get(web.api, INCIDENTS, &token).await.status, 200);
        assert_eq!(get(web.api, INCIDENTS, &unknown).await.status, 401);
        assert_eq!(get(web.api, "/nowhere", &token).await.status, 404);
        // A broken request head carrying a token, too.
        let _ = request(
            web.api,
            "GET",
            "/api/v1/incidents?x=%zz",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
        .await;
        web.bin.terminate();
        let mut bin = web.bin;
        assert!(bin.wait_exit(Duration::from_secs(10)).await.is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let logs = bin.output();
        // The filter took: every request has its debug line.
        assert!(logs.contains("DEBUG sentryk8s::web: request"), "{filter}: {logs}");
        for secret in [token.as_str(), unknown.as_str(), &token[5..], &unknown[5..]] {
            assert!(!logs.contains(secret), "{filter}: a token is in the logs:\n{logs}");
        }
    }
}

#[tokio::test]
async fn public_read_opens_the_gets_but_a_sent_token_must_be_valid() {
    let db = TestDb::migrated(4).await;
    let token = create_token(&db, "ci", "read");
    let web = Web::start(&db, &[("SENTRYK8S_WEB__PUBLIC_READ", "true")]).await;
    let open = get(web.api, INCIDENTS, "").await;
    assert_eq!(open.status, 200, "{}", open.text());
    assert_eq!(get(web.api, INCIDENTS, &token).await.status, 200);
    assert_401(&get(web.api, INCIDENTS, &format!("sk8s_{}", "C".repeat(43))).await, "a bad token sent");
    assert_401(&get(web.api, INCIDENTS, "nonsense").await, "a malformed token sent");

    // Private by default.
    let private = Web::start(&db, &[]).await;
    assert_401(&get(private.api, INCIDENTS, "").await, "private");
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after_per_token() {
    let db = TestDb::migrated(4).await;
    let a = create_token(&db, "a", "read");
    let b = create_token(&db, "b", "read");
    let web = Web::start(
        &db,
        &[("SENTRYK8S_WEB__RATE_LIMIT_PER_SECOND", "1"), ("SENTRYK8S_WEB__RATE_LIMIT_BURST", "2")],
    )
    .await;
    assert_eq!(get(web.api, INCIDENTS, &a).await.status, 200);
    assert_eq!(get(web.api, INCIDENTS, &a).await.status, 200);
    let limited = get(web.api, INCIDENTS, &a).await;
    assert_eq!(limited.status, 429, "{}", limited.text());
    let wait: u64 = limited.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(limited.header("content-type"), Some("application/problem+json"));
    // Another token has its own bucket.
    assert_eq!(get(web.api, INCIDENTS, &b).await.status, 200);
    // After Retry-After, the first may ask again.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(get(web.api, INCIDENTS, &a).await.status, 200);
}

#[tokio::test]
async fn a_body_over_one_mebibyte_is_413() {
    let db = TestDb::migrated(4).await;
    let token = create_token(&db, "ci", "write");
    let web = Web::start(&db, &[]).await;
    // Refused on its Content-Length, before any body is read or any route
    // (or token) is looked at.
    let mut stream = TcpStream::connect(web.api).await.unwrap();
    let head = format!(
        "PUT /api/v1/checks/big HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b' '; 4096]).await.unwrap();
    let mut raw = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut raw)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&raw[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

/// The layers of every route around routes of the test's own: a body the
/// size of the cap passes, one byte more (chunked, so no Content-Length
/// gives it away) is 413; a write route refuses a read token (403) and
/// answers an admin one; a slow handler is 503 after `web.request_timeout`.
#[tokio::test]
async fn in_process_body_cap_scopes_and_request_timeout() {
    use axum::routing::{get as route_get, put};
    use sentryk8s::web::access::{CanRead, CanWrite};

    let db = TestDb::migrated(4).await;
    let read = create_token(&db, "reader", "read");
    let admin = create_token(&db, "boss", "admin");
    let mut config = sentryk8s::config::Config::defaults().unwrap();
    config.database_url = db.url.clone();
    config.web.request_timeout = Duration::from_millis(300);
    let pool = sentryk8s::db::pool(&config, "test").unwrap();
    let state = sentryk8s::web::AppState::new(&config, pool);
    let router = axum::Router::new()
        .route("/echo", put(|_: CanWrite, body: axum::body::Bytes| async move { body.len().to_string() }))
        .route("/slow", route_get(|_: CanRead| async { tokio::time::sleep(Duration::from_secs(5)).await }))
        .layer(axum::extract::DefaultBodyLimit::max(sentryk8s::web::api::MAX_BODY_BYTES))
        .with_state(state);
    let app = sentryk8s::web::layered(router, &config.web);
    let listener = sentryk8s::web::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let limits =
        sentryk8s::web::server::Limits { max_connections: 16, header_read_timeout: Duration::from_secs(5) };
    let server = tokio::spawn(sentryk8s::web::serve(listener, app, limits, shutdown.clone()));

    let bearer = |t: &str| format!("Bearer {t}");
    let cap = sentryk8s::web::api::MAX_BODY_BYTES;
    let ok =
        request(addr, "PUT", "/echo", &[("Authorization", &bearer(&admin))], &vec![b'x'; cap]).await.unwrap();
    assert_eq!((ok.status, ok.text()), (200, cap.to_string()));
    let denied = request(addr, "PUT", "/echo", &[("Authorization", &bearer(&read))], b"{}").await.unwrap();
    assert_eq!(denied.status, 403, "{}", denied.text());
    assert!(denied.text().contains("scope is read"), "{}", denied.text());
    let anonymous = request(addr, "PUT", "/echo", &[], b"{}").await.unwrap();
    assert_401(&anonymous, "a write without a token");

    // One byte over the cap, chunked.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {admin}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let body = vec![b'y'; cap + 1];
    let _ = stream.write_all(format!("{:x}\r\n", body.len()).as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.write_all(b"\r\n0\r\n\r\n").await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await;
    let answer = String::from_utf8_lossy(&raw).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let started = Instant::now();
    let slow = get(addr, "/slow", &read).await;
    assert_eq!(slow.status, 503);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
}

#[tokio::test]
async fn a_request_waiting_on_the_database_is_503_after_the_request_timeout() {
    let db = TestDb::migrated(4).await;
    let token = create_token(&db, "ci", "read");
    let web = Web::start(&db, &[("SENTRYK8S_WEB__REQUEST_TIMEOUT", "500ms")]).await;
    // The token lookup waits behind a lock the test holds.
    let mut locker = db.client().await;
    let tx = locker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let started = Instant::now();
    let answer = get(web.api, INCIDENTS, &token).await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(3), "{took:?}");
    tx.rollback().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async { get(web.api, INCIDENTS, &token).await.status == 200 })
            .await,
        "serves again once the database answers"
    );
}

#[tokio::test]
async fn a_slow_or_silent_client_is_closed_after_the_header_read_timeout() {
    let db = TestDb::migrated(4).await;
    let web = Web::start(&db, &[("SENTRYK8S_WEB__HEADER_READ_TIMEOUT", "500ms")]).await;
    let closed_within = |mut stream: TcpStream, limit: Duration| async move {
        let started = Instant::now();
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(limit, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Some((started.elapsed(), got)),
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Err(_) => return None,
            }
        }
    };
    // Half a request head, then nothing.
    let mut half = TcpStream::connect(web.api).await.unwrap();
    half.write_all(b"GET /api/v1/incidents HTTP/1.1\r\nHost: t\r\n").await.unwrap();
    // Nothing at all.
    let silent = TcpStream::connect(web.api).await.unwrap();
    // A keep-alive connection, idle after its answer.
    let mut idle = TcpStream::connect(web.api).await.unwrap();
    idle.write_all(b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();

    for (name, stream) in [("half", half), ("silent", silent), ("idle", idle)] {
        let (after, _) = closed_within(stream, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("{name} stays open"));
        assert!(after < Duration::from_secs(2), "{name}: closed after {after:?}");
    }
    // And it still serves.
    assert_eq!(get(web.api, "/api/v1/openapi.json", "").await.status, 200);
}

#[tokio::test]
async fn at_the_connection_cap_new_connections_wait_until_one_closes() {
    let db = TestDb::migrated(4).await;
    let web = Web::start(
        &db,
        &[("SENTRYK8S_WEB__MAX_CONNECTIONS", "2"), ("SENTRYK8S_WEB__HEADER_READ_TIMEOUT", "60s")],
    )
    .await;
    let held_a = TcpStream::connect(web.api).await.unwrap();
    let held_b = TcpStream::connect(web.api).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The third is accepted by the kernel (backlog) but not served.
    let waiting = tokio::spawn(request(web.api, "GET", "/api/v1/openapi.json", &[], b""));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "served beyond the cap");
    drop(held_a);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a place is free")
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, 200);
    drop(held_b);
    for _ in 0..5 {
        assert_eq!(get(web.api, "/api/v1/openapi.json", "").await.status, 200);
    }
}

#[tokio::test]
async fn gets_carry_an_etag_answer_304_when_it_matches_and_gzip_on_request() {
    let db = TestDb::migrated(4).await;
    let token = create_token(&db, "ci", "read");
    let web = Web::start(&db, &[]).await;
    let doc = "/api/v1/openapi.json";

    let plain = get(web.api, doc, "").await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None, "identity unless asked");
    assert!(plain.body.len() > 1000 && plain.body.starts_with(b"{"));
    assert_eq!(plain.header("cache-control"), Some("private, no-cache"));
    let tag = plain.header("etag").expect("an ETag").to_string();
    assert!(tag.starts_with('"'), "a strong tag: {tag}");

    let again = request(web.api, "GET", doc, &[("If-None-Match", &tag)], b"").await.unwrap();
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(tag.as_str()));
    let changed =
        request(web.api, "GET", doc, &[("If-None-Match", "\"something-else\"")], b"").await.unwrap();
    assert_eq!(changed.status, 200);

    let gzip = request(web.api, "GET", doc, &[("Accept-Encoding", "gzip")], b"").await.unwrap();
    assert_eq!(gzip.status, 200);
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert!(gzip.body.starts_with(&[0x1f, 0x8b]) && gzip.body.len() < plain.body.len());
    assert!(gzip.header("vary").is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    let gzip_tag = gzip.header("etag").expect("tagged too").to_string();
    assert_ne!(gzip_tag, tag, "another representation, another strong tag");
    let gzip_again =
        request(web.api, "GET", doc, &[("Accept-Encoding", "gzip"), ("If-None-Match", &gzip_tag)], b"")
            .await
            .unwrap();
    assert_eq!(gzip_again.status, 304);

    // An authenticated GET: tagged; a matching tag without a token is
    // still 401 (a 304 tells nothing to whoever may not read).
    let list = get(web.api, INCIDENTS, &token).await;
    assert_eq!(list.status, 200);
    let list_tag = list.header("etag").expect("tagged").to_string();
    let anonymous = request(web.api, "GET", INCIDENTS, &[("If-None-Match", &list_tag)], b"").await.unwrap();
    assert_401(&anonymous, "a tag is no token");
    let auth = format!("Bearer {token}");
    let cached =
        request(web.api, "GET", INCIDENTS, &[("If-None-Match", &list_tag), ("Authorization", &auth)], b"")
            .await
            .unwrap();
    assert_eq!(cached.status, 304);
}

#[tokio::test]
async fn the_api_port_serves_no_metrics() {
    let db = TestDb::migrated(4).await;
    let web = Web::start(&db, &[]).await;
    let answer = get(web.api, "/metrics", "").await;
    assert_eq!(answer.status, 404);
    let ops = get(web.ops, "/metrics", "").await;
    assert_eq!(ops.status, 200);
}
