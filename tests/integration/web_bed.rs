//! The bed of the API tests: the real binary serving `sentryk8s web` on a
//! free port against a test database, tokens of each scope, a small HTTP
//! client (hyper's, one connection per request), and history written the
//! way the worker and the scheduler write it: the timeline of
//! `history_cli.rs` (docs/history.md's worked example), with every result
//! column filled on some rows and secrets in errors to scrub.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, DurationRound, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::checks_cli::{sentryk8s, temp_dir};
use crate::support::{eventually, free_port, Binary, TestDb};
use sentryk8s::history::buckets::{from_ms, to_ms};
use sentryk8s::history::rollup::{self, MissedFact, ResultFact, Rollups};
use sentryk8s::history::{store, uptime};
use sentryk8s::tokens::{self, Scope};

/// The secret `private` and `api` send (as `${API_TOKEN}`), which targets
/// echo back in errors.
pub const SECRET: &str = "tok-S3CRET-9";

/// The checks: `api` (the timeline; its header carries the secret),
/// `idle` (no data), and a maintenance window over slots 28 and 29.
fn checks_file(base: DateTime<Utc>) -> String {
    let at = |m: i64| (base + Span::minutes(m)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    format!(
        "checks:
  - name: api
    url: http://127.0.0.1:18080/health
    interval: 60s
    labels: {{ team: web }}
    headers:
      X-Api-Key: \"${{API_TOKEN}}\"
  - name: idle
    url: http://127.0.0.1:18080/idle
maintenance:
  - name: deploy
    start: {}
    end: {}
    checks: [api]
",
        at(28),
        at(30)
    )
}

/// A running `sentryk8s web`.
pub struct Web {
    pub addr: SocketAddr,
    pub bin: Binary,
}

impl Web {
    /// Starts `sentryk8s web` on `db` with `env` (e.g. `SENTRYK8S_WEB__PUBLIC_READ`)
    /// and waits until it answers.
    pub async fn start(db: &TestDb, env: &[(&str, &str)]) -> Web {
        let (port, ops) = (free_port(), free_port());
        let listen = format!("127.0.0.1:{port}");
        let mut vars: Vec<(String, String)> = vec![
            ("SENTRYK8S_DATABASE_URL".into(), db.url.clone()),
            ("SENTRYK8S_LISTEN".into(), format!("127.0.0.1:{ops}")),
        ];
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let bin = Binary::spawn(&["web", "--listen", &listen], &vars);
        let addr: SocketAddr = listen.parse().expect("address");
        let up = eventually(Duration::from_secs(20), || async move {
            matches!(request(addr, "GET", "/api/v1/openapi.json", None, None).await, Ok(a) if a.status == 200)
        })
        .await;
        assert!(up, "sentryk8s web did not answer on {addr}:\n{}", bin.output());
        Web { addr, bin }
    }

    /// `GET path` with `token`; panics when the server does not answer.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.call("GET", path, token, None).await
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        request(self.addr, method, path, token, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.bin.output()))
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The media type (without parameters).
    pub fn content_type(&self) -> String {
        let value = self.headers.get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics, showing it, when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// Asserts a problem+json answer of `status` whose detail starts with
    /// `detail_prefix`.
    pub fn assert_problem(&self, status: u16, detail_prefix: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.content_type(), "application/problem+json", "{}", self.text());
        let p = self.json();
        assert_eq!(p["status"], status, "{p}");
        let detail = p["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with(detail_prefix), "detail {detail:?} should start with {detail_prefix:?}");
    }
}

/// One request on a fresh connection, answered within 20 s.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<Answer, String> {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut builder = Request::builder().method(method).uri(path).header("host", addr.to_string());
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let bytes = match &body {
            Some(v) => {
                builder = builder.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(v).map_err(|e| e.to_string())?)
            }
            None => Bytes::new(),
        };
        let request = builder.body(Full::new(bytes)).map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let (parts, incoming) = response.into_parts();
        let body = incoming.collect().await.map_err(|e| e.to_string())?.to_bytes().to_vec();
        Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body })
    };
    tokio::time::timeout(Duration::from_secs(20), exchange).await.map_err(|_| "timed out".to_string())?
}

/// A new token of `scope`, stored as `tokens create` stores it.
pub async fn token(db: &TestDb, name: &str, scope: Scope) -> String {
    let token = tokens::generate().expect("random bytes");
    let client = db.client().await;
    tokens::store::create(&client, name, scope, &tokens::digest(&token), None).await.expect("create token");
    token
}

/// Tokens of each scope.
pub struct Tokens {
    pub read: String,
    pub write: String,
    pub admin: String,
}

impl Tokens {
    pub async fn new(db: &TestDb) -> Tokens {
        Tokens {
            read: token(db, "reader", Scope::Read).await,
            write: token(db, "writer", Scope::Write).await,
            admin: token(db, "admin", Scope::Admin).await,
        }
    }
}

/// A database with history (see [`history`]).
pub struct History {
    pub db: TestDb,
    /// Slot 0 of the timeline: 10:00 UTC two days ago.
    pub base: DateTime<Utc>,
    pub api: i64,
}

impl History {
    /// RFC 3339 of base + `minutes`.
    pub fn at(&self, minutes: i64) -> String {
        (self.base + Span::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }
}

/// Declares the checks and writes the timeline of `api` (slot k at base +
/// k minutes, a 1-minute interval), as the worker and scheduler would:
/// - 0..20 up (100 ms), 20..25 down (HTTP 401 echoing the secret),
///   25..28 missed (one range), 28..30 down inside the maintenance
///   window, 30..60 up;
/// - slot 0 has every column filled;
/// - the rollups counted by `history::rollup` from the same facts:
///   one hour of 3,000 s up, 300 s down, 180 s no data, 120 s maintenance,
///   57 runs, 7 failures;
/// - an incident of `api` (slots 20 to 25) whose errors echo the secret,
///   resolved, and an open one.
pub async fn history() -> History {
    let db = TestDb::migrated(8).await;
    let dir = temp_dir();
    let base = Utc::now().duration_trunc(Span::days(1)).expect("a day") - Span::days(2) + Span::hours(10);
    std::fs::write(dir.join("c.yaml"), checks_file(base)).expect("write checks file");
    let run = sentryk8s(Some(&db), &dir, &["checks", "apply", "-f", "c.yaml"], &[("API_TOKEN", SECRET)], "");
    assert_eq!(run.code, Some(0), "{}", run.all());
    let client = db.client().await;
    let api: i64 =
        client.query_one("SELECT id FROM checks WHERE name = 'api'", &[]).await.expect("api").get(0);
    client
        .execute("SELECT sentryk8s_ensure_result_partitions(($1::timestamptz)::date, 2)", &[&base])
        .await
        .expect("partitions");

    let mut config = sentryk8s::config::Config::defaults().expect("defaults");
    config.database_url = db.url.clone();
    let pool = sentryk8s::db::pool(&config, "test").expect("pool");
    let pooled = pool.get().await.expect("pooled client");
    let windows = store::load_windows(&pooled).await.expect("windows");
    let labels = [("team".to_string(), "web".to_string())].into_iter().collect();
    let mut rollups = Rollups::new();
    for k in (0..60).filter(|k| !(25..28).contains(k)) {
        let slot = base + Span::minutes(k);
        let success = !(20..30).contains(&k);
        let state = if success { "up" } else { "down" };
        let total_ms: f32 = if success { 100.0 } else { 5000.0 };
        let error = (!success).then(|| format!("HTTP 401 for key {SECRET}"));
        let class = (!success).then_some("assertion");
        let failed: Option<Vec<String>> = (!success).then(|| vec![format!("header X-Echo == {SECRET}")]);
        let status: i16 = if success { 200 } else { 401 };
        client
            .execute(
                "INSERT INTO check_results (check_id, slot, started_at, success, error_class, error_message,
                                            status_code, total_ms, state, interval_ms, failed_assertions,
                                            worker)
                 VALUES ($1, $2, $2::timestamptz + interval '5 milliseconds', $3, $4, $5, $6, $7, $8, 60000, $9, 'worker-0')",
                &[&api, &slot, &success, &class, &error, &status, &total_ms, &state, &failed],
            )
            .await
            .expect("insert result");
        let category = uptime::of_result(Some(state), success, windows.covers("api", &labels, slot));
        let fact = ResultFact {
            check_id: api,
            slot_ms: to_ms(slot),
            interval_ms: 60_000,
            category,
            success,
            total_ms,
        };
        rollup::add_result(&mut rollups, &fact);
    }
    // Slot 0: every phase column filled (those of the other kinds too, so
    // the API test sees each one mapped), a certificate, bytes read.
    client
        .execute(
            "UPDATE check_results SET dns_ms = 1.5, connect_ms = 2.5, tls_ms = 3.5, first_byte_ms = 50,
                    query_ms = 4.5, rtt_min_ms = 0.25, rtt_avg_ms = 0.5, rtt_max_ms = 0.75, run_ms = 60,
                    bytes_read = 1234, cert_expires_at = '2027-01-01T00:00:00Z'
              WHERE check_id = $1 AND slot = $2",
            &[&api, &base],
        )
        .await
        .expect("fill slot 0");
    let (first, last) = (base + Span::minutes(25), base + Span::minutes(27));
    client
        .execute(
            "INSERT INTO missed_slots (check_id, first_slot, last_slot, slots, reason, interval_ms)
             VALUES ($1, $2, $3, 3, 'catch_up', 60000)",
            &[&api, &first, &last],
        )
        .await
        .expect("missed");
    let fact = MissedFact {
        check_id: api,
        first_ms: to_ms(first),
        last_ms: to_ms(last),
        slots: 3,
        interval_ms: 60_000,
    };
    let covered = |slot: i64| windows.covers("api", &labels, from_ms(slot));
    rollup::add_missed(&mut rollups, &fact, Some(&covered));
    store::upsert_rollups(&pooled, &rollups).await.expect("rollups");

    let now = Utc::now();
    client
        .execute(
            "INSERT INTO incidents (id, check_id, check_name, opened_at, confirmed_at, resolved_at, resolution,
                                    first_error, last_error, in_maintenance, alerts_sent)
             VALUES (1, $1, 'api', $2, $2, $3, 'recovered', $4, $4, false, 2),
                    (2, $1, 'api', $5, $5, NULL, NULL, 'timeout', 'timeout', false, 1)",
            &[
                &api,
                &(base + Span::minutes(20)),
                &(base + Span::minutes(25)),
                &format!("HTTP 401 for key {SECRET}"),
                &(now - Span::minutes(5)),
            ],
        )
        .await
        .expect("incidents");
    History { db, base, api }
}
