//! Web API benchmark: the real `sentryk8s web` (release build) in front of
//! a database holding 10,000 checks (`SK_BENCH_CHECKS`), measured by
//! keep-alive HTTP/1.1 clients (hyper's client connection, one per client
//! task) on 127.0.0.1.
//!
//! The data:
//! - the checks are declared in a generated checks file and stored by the
//!   real `sentryk8s checks apply`, so every spec is exactly what the
//!   planner writes (an unchanged `PUT` of the same check then compares
//!   equal); a quarter of them (`id % 4 = 0`) are then made API-owned with
//!   SQL, as if created by `PUT`;
//! - `check_state` for every check (5 % down, 2 % never run), hourly
//!   rollups for the last 48 hours and daily rollups for the last 31 days,
//!   inserted with SQL (what the list's 24 h and 30 d uptimes read);
//! - a read token and a write token made with `tokens::{generate, digest}`
//!   and `tokens::store::create`.
//!
//! The server gets `SENTRYK8S_WEB__RATE_LIMIT_PER_SECOND` and `…_BURST` of
//! 1,000,000, so the per-token rate limit (50/s by default) is not what is
//! measured. The phases:
//! 1. `GET /api/v1/checks`: the default page (100 checks of 10,000), one
//!    client in turn, then `SK_BENCH_LIST_CLIENTS` (4) at once, then with
//!    gzip; the largest page (`?limit=1000`); two filters that look at every
//!    check (`?label=team=team-7`, `?q=svc-01&state=up`): p50/p90/p99;
//! 2. cached reads: `GET /api/v1/checks/{name}` and `GET /api/v1/checks`
//!    with `If-None-Match` set to the ETag the server gave for it — what a
//!    polling client or a cache in front revalidating its copy sends. The
//!    answer is `304 Not Modified` with no body (when the route has no
//!    ETag, a plain 200 is what gets measured and the report says so);
//!    `SK_BENCH_CLIENTS` (16) clients for `SK_BENCH_SECONDS` (10) each;
//! 3. unchanged `PUT /api/v1/checks/{name}`: the body is the API-owned
//!    check exactly as stored, so the answer is `200 {"result":
//!    "unchanged"}` and nothing is written (the run checks afterwards that
//!    no check's `version` moved); same clients and duration.
//!
//! For every phase it records the web process's CPU and PostgreSQL's
//! (backends of the bench database), per request.
//!
//! ```sh
//! bench/run.sh web                                   # about 2 minutes after the build
//! SK_BENCH_SECONDS=5 cargo bench --bench web
//! ```
//!
//! Knobs: `SK_BENCH_CHECKS` (10000), `SK_BENCH_SECONDS` (10),
//! `SK_BENCH_CLIENTS` (16), `SK_BENCH_LIST_CLIENTS` (4),
//! `SK_BENCH_LIST_REQUESTS` (200); `SK_BENCH_KEEP_DB=1` keeps the database
//! (for EXPLAIN) and prints its URL.
//!
//! Writes bench/results/web.md and web.csv.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::env_or;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const TARGET_LIST_P99_MS: f64 = 50.0;
const TARGET_READS_PER_S: f64 = 2_000.0;
const TARGET_PUTS_PER_S: f64 = 500.0;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

// ------------------------------------------------------------------ data

fn check_name(i: u64) -> String {
    format!("svc-{i:05}")
}

/// Check `i` in the checks-file schema: an HTTP check as teams write them,
/// with a description, labels, status and body assertions; one in ten a
/// POST with a JSON assertion. The same value is the `PUT` body.
fn check_spec(i: u64) -> Value {
    let intervals = ["30s", "60s", "60s", "5m"];
    let mut check = json!({
        "name": check_name(i),
        "description": format!("Health of service {i} of team {}", i % 40),
        "url": format!("https://svc-{i:05}.team-{}.example.com/health", i % 40),
        "interval": intervals[(i % 4) as usize],
        "timeout": "5s",
        "expect": { "status": [200] },
        "labels": {
            "team": format!("team-{}", i % 40),
            "env": if i.is_multiple_of(3) { "staging" } else { "production" },
            "tier": format!("{}", i % 3),
        },
    });
    if i % 10 >= 6 {
        check["headers"] = json!({ "Accept": "application/json" });
        check["expect"]["body_contains"] = json!("ok");
        check["expect"]["max_response_time"] = json!("2s");
    }
    if i % 10 == 9 {
        check["method"] = json!("POST");
        check["body"] = json!("{\"probe\": true}");
        check["expect"]["json"] = json!({ "/status": "UP" });
    }
    check
}

/// The checks file: one JSON flow mapping per check (JSON is YAML).
fn checks_file(n: u64) -> String {
    let mut text = String::from("checks:\n");
    for i in 0..n {
        let _ = writeln!(text, "  - {}", check_spec(i));
    }
    text
}

/// `checks apply` with the release binary, then state, rollups and owners with SQL.
async fn load(db: &common::BenchDb, n: u64, dir: &std::path::Path) -> f64 {
    let started = Instant::now();
    let file = dir.join("checks.yaml");
    std::fs::write(&file, checks_file(n)).expect("write checks file");
    let out = Command::new(env!("CARGO_BIN_EXE_sentryk8s"))
        .args(["checks", "apply", "-f"])
        .arg(&file)
        .env("SENTRYK8S_DATABASE_URL", &db.url)
        .env("SENTRYK8S_LOG_LEVEL", "warn")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run checks apply");
    assert!(out.status.success(), "checks apply failed: {}", String::from_utf8_lossy(&out.stderr));
    let statements = [
        // A quarter of the checks were created through the API.
        "UPDATE checks SET owner = 'api' WHERE id % 4 = 0",
        // Current state: 5 % down (with an error), 2 % never run yet.
        "INSERT INTO check_state (check_id, status, since, last_slot, last_checked_at, last_success,
                                  last_duration_ms, last_status_code, last_error,
                                  consecutive_failures, consecutive_successes, streak_start)
         SELECT id,
                CASE WHEN id % 50 = 7 THEN 'unknown' WHEN id % 20 = 3 THEN 'down' ELSE 'up' END,
                now() - (id % 1000) * interval '1 minute',
                CASE WHEN id % 50 = 7 THEN NULL ELSE now() - (id % 60) * interval '1 second' END,
                CASE WHEN id % 50 = 7 THEN NULL ELSE now() - (id % 60) * interval '1 second' END,
                CASE WHEN id % 50 = 7 THEN NULL ELSE id % 20 <> 3 END,
                CASE WHEN id % 50 = 7 THEN NULL ELSE 20 + (id % 300) END,
                CASE WHEN id % 50 = 7 THEN NULL WHEN id % 20 = 3 THEN 503 ELSE 200 END,
                CASE WHEN id % 20 = 3 AND id % 50 <> 7 THEN 'expected status 200, got 503' END,
                CASE WHEN id % 20 = 3 THEN 3 ELSE 0 END,
                CASE WHEN id % 20 = 3 THEN 0 ELSE 100 END,
                now() - (id % 1000) * interval '1 minute'
           FROM checks",
        // Hourly rollups for the last 48 hours: mostly up, a little down.
        "INSERT INTO rollup_hours (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms,
                                   runs, failures, total_us_sum, latency_histogram)
         SELECT c.id, date_trunc('hour', now()) - h * interval '1 hour',
                3600000 - CASE WHEN (c.id + h) % 97 = 0 THEN 120000 ELSE 0 END,
                CASE WHEN (c.id + h) % 97 = 0 THEN 120000 ELSE 0 END, 0, 0,
                3600000 / c.interval_ms, CASE WHEN (c.id + h) % 97 = 0 THEN 2 ELSE 0 END,
                (3600000 / c.interval_ms) * 45000,
                array_fill(0, ARRAY[12]) || ARRAY[3600000 / c.interval_ms] || array_fill(0, ARRAY[27])
           FROM checks c, generate_series(0, 47) h",
        // Daily rollups for the last 31 days.
        "INSERT INTO rollup_days (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms,
                                  runs, failures, total_us_sum, latency_histogram)
         SELECT c.id, date_trunc('day', now()) - d * interval '1 day',
                86400000 - CASE WHEN (c.id + d) % 13 = 0 THEN 300000 ELSE 0 END,
                CASE WHEN (c.id + d) % 13 = 0 THEN 300000 ELSE 0 END, 0, 0,
                86400000 / c.interval_ms, CASE WHEN (c.id + d) % 13 = 0 THEN 5 ELSE 0 END,
                (86400000::bigint / c.interval_ms) * 45000,
                array_fill(0, ARRAY[12]) || ARRAY[86400000 / c.interval_ms] || array_fill(0, ARRAY[27])
           FROM checks c, generate_series(0, 30) d",
        "ANALYZE",
    ];
    for sql in statements {
        db.client.batch_execute(sql).await.unwrap_or_else(|e| panic!("loading: {e}\n{sql}"));
    }
    started.elapsed().as_secs_f64()
}

async fn count(db: &common::BenchDb, sql: &str) -> i64 {
    db.client.query_one(sql, &[]).await.map(|r| r.get::<_, i64>(0)).unwrap_or(-1)
}

// ---------------------------------------------------------------- client

/// One keep-alive HTTP/1.1 connection.
async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the web role");
    let _ = stream.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("HTTP handshake");
    tokio::spawn(connection);
    sender
}

struct Answer {
    status: u16,
    etag: Option<String>,
    body: Bytes,
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> Result<Answer, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request.body(Full::new(body.unwrap_or_default())).map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Answer { status, etag, body })
}

/// What one request of a phase is: method, path, extra headers, body.
#[derive(Clone)]
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Bytes>,
}

/// Latencies (ms), statuses and bytes of one phase.
#[derive(Default)]
struct Tally {
    latencies: Vec<f64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    bytes: u64,
    sample: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.errors += other.errors;
        self.bytes += other.bytes;
        if self.sample.is_none() {
            self.sample = other.sample;
        }
    }
}

/// One client: its own connection, requests in turn from `make(k)` until
/// `limit` requests or the deadline.
async fn client(
    addr: SocketAddr,
    token: String,
    make: std::sync::Arc<dyn Fn(u64) -> Req + Send + Sync>,
    first: u64,
    step: u64,
    limit: u64,
    deadline: Instant,
) -> Tally {
    let mut sender = connect(addr).await;
    let mut tally = Tally::default();
    let mut k = first;
    let mut done = 0;
    while done < limit && Instant::now() < deadline {
        let req = make(k);
        let headers: Vec<(&str, &str)> = req.headers.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let started = Instant::now();
        match send(&mut sender, req.method, &req.path, &token, &headers, req.body.clone()).await {
            Ok(answer) => {
                tally.latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                *tally.statuses.entry(answer.status).or_default() += 1;
                tally.bytes += answer.body.len() as u64;
                if tally.sample.is_none() || answer.status >= 400 && tally.errors == 0 {
                    tally.sample =
                        Some(String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)]).into());
                }
            }
            Err(e) => {
                tally.errors += 1;
                if tally.errors == 1 {
                    eprintln!("!! request failed: {e}");
                }
                sender = connect(addr).await;
            }
        }
        k += step;
        done += 1;
    }
    tally
}

/// A measured phase: what it was, the tally, wall time, CPU of the web
/// process and of PostgreSQL.
struct Phase {
    name: String,
    what: String,
    clients: u64,
    tally: Tally,
    seconds: f64,
    web_cpu_s: f64,
    pg_cpu_s: f64,
    target: Option<(&'static str, bool)>,
}

impl Phase {
    fn requests(&self) -> u64 {
        self.tally.latencies.len() as u64
    }
    fn per_s(&self) -> f64 {
        self.requests() as f64 / self.seconds.max(1e-9)
    }
    fn pct(&self, p: f64) -> f64 {
        let mut sorted = self.tally.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        common::percentile(&sorted, p)
    }
    fn statuses(&self) -> String {
        let mut parts: Vec<String> = self.tally.statuses.iter().map(|(s, n)| format!("{n}× {s}")).collect();
        if self.tally.errors > 0 {
            parts.push(format!("{} errors", self.tally.errors));
        }
        parts.join(", ")
    }
    fn ms_per_request(&self, cpu_s: f64) -> f64 {
        cpu_s * 1000.0 / (self.requests().max(1)) as f64
    }
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    name: &str,
    what: &str,
    addr: SocketAddr,
    web_pid: u32,
    token: &str,
    clients: u64,
    per_client: u64,
    seconds: f64,
    make: std::sync::Arc<dyn Fn(u64) -> Req + Send + Sync>,
) -> Phase {
    // Warm-up: each connection's first requests (and the token cache) are not measured.
    for c in 0..clients.min(4) {
        client(
            addr,
            token.to_string(),
            make.clone(),
            c,
            clients,
            3,
            Instant::now() + Duration::from_secs(10),
        )
        .await;
    }
    let pg_before = common::cpu_by_comm("postgres");
    let web_before = common::cpu_seconds(web_pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..clients {
        tasks.push(tokio::spawn(client(
            addr,
            token.to_string(),
            make.clone(),
            c,
            clients,
            per_client,
            deadline,
        )));
    }
    let mut tally = Tally::default();
    for t in tasks {
        if let Ok(part) = t.await {
            tally.merge(part);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let web_cpu_s = common::cpu_seconds(web_pid) - web_before;
    let pg_cpu_s = common::cpu_delta(&pg_before, &common::cpu_by_comm("postgres"));
    let phase = Phase {
        name: name.into(),
        what: what.into(),
        clients,
        tally,
        seconds: elapsed,
        web_cpu_s,
        pg_cpu_s,
        target: None,
    };
    println!(
        "{name}: {} requests in {:.1} s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, web CPU {:.3} ms/req, PostgreSQL {:.3} ms/req; {}",
        phase.requests(),
        phase.seconds,
        phase.per_s(),
        phase.pct(0.5),
        phase.pct(0.99),
        phase.ms_per_request(phase.web_cpu_s),
        phase.ms_per_request(phase.pg_cpu_s),
        phase.statuses()
    );
    phase
}

// ------------------------------------------------------------------- run

async fn run() {
    let n = env_or("SK_BENCH_CHECKS", 10_000);
    let seconds = env_or("SK_BENCH_SECONDS", 10) as f64;
    let clients = env_or("SK_BENCH_CLIENTS", 16);
    let list_clients = env_or("SK_BENCH_LIST_CLIENTS", 4);
    let list_requests = env_or("SK_BENCH_LIST_REQUESTS", 200);
    let header = common::report_header("Web API", "bench/run.sh web");
    println!("{header}");
    let scratch = common::Scratch::new("web");

    let db = common::BenchDb::create("skbench_web", 256).await;
    let load_s = load(&db, n, &scratch.0).await;
    let api_owned = count(&db, "SELECT count(*) FROM checks WHERE owner = 'api'").await;
    let hourly = count(&db, "SELECT count(*) FROM rollup_hours").await;
    let daily = count(&db, "SELECT count(*) FROM rollup_days").await;
    println!("loaded {n} checks ({api_owned} API-owned), {hourly} hourly and {daily} daily rollups in {load_s:.1} s");

    let mut tokens = Vec::new();
    for (name, scope) in
        [("bench-read", sentryk8s::tokens::Scope::Read), ("bench-write", sentryk8s::tokens::Scope::Write)]
    {
        let token = sentryk8s::tokens::generate().expect("token");
        sentryk8s::tokens::store::create(&db.client, name, scope, &sentryk8s::tokens::digest(&token), None)
            .await
            .expect("create token");
        tokens.push(token);
    }
    let (read_token, write_token) = (tokens[0].clone(), tokens[1].clone());

    let port = common::free_port();
    let ops_port = common::free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let ops: SocketAddr = ([127, 0, 0, 1], ops_port).into();
    let log = std::fs::File::create(scratch.0.join("web.log")).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_sentryk8s"))
        .args(["web", "--listen", &addr.to_string()])
        .env("SENTRYK8S_DATABASE_URL", &db.url)
        .env("SENTRYK8S_LISTEN", ops.to_string())
        .env("SENTRYK8S_LOG_LEVEL", "warn")
        // The per-token rate limit (50/s by default) is not what is measured.
        .env("SENTRYK8S_WEB__RATE_LIMIT_PER_SECOND", "1000000")
        .env("SENTRYK8S_WEB__RATE_LIMIT_BURST", "1000000")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn sentryk8s web");
    let web = common::Killer::new(child);
    let mut ready = false;
    for _ in 0..200 {
        if let Ok((200, _)) = common::http::get_within(ops, "/readyz", Duration::from_secs(2)).await {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "sentryk8s web never became ready: see {}", scratch.0.join("web.log").display());
    assert!(common::wait_port(addr).await, "the API port {addr} does not answer");
    let pid = web.pid();

    // What the list and one check answer, and their ETags.
    let mut probe = connect(addr).await;
    let list = send(&mut probe, "GET", "/api/v1/checks", &read_token, &[], None).await.expect("GET /checks");
    let list_rows = serde_json::from_slice::<Value>(&list.body)
        .ok()
        .map(|v| match v {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.values().find_map(|x| x.as_array().map(Vec::len)).unwrap_or(0),
            _ => 0,
        })
        .unwrap_or(0);
    let gz = send(&mut probe, "GET", "/api/v1/checks", &read_token, &[("accept-encoding", "gzip")], None)
        .await
        .expect("GET /checks gzip");
    let one_name = check_name(4);
    let one = send(&mut probe, "GET", &format!("/api/v1/checks/{one_name}"), &read_token, &[], None)
        .await
        .expect("GET /checks/{name}");
    println!(
        "GET /api/v1/checks: {} with {} rows, {} bytes ({} gzipped), ETag {:?}; GET /api/v1/checks/{one_name}: {}, ETag {:?}",
        list.status,
        list_rows,
        list.body.len(),
        gz.body.len(),
        list.etag,
        one.status,
        one.etag
    );
    let body_of = |status: u16, body: &Bytes| {
        if status >= 400 {
            format!(" ({})", String::from_utf8_lossy(&body[..body.len().min(200)]).replace('\n', " "))
        } else {
            String::new()
        }
    };
    let route_notes = vec![
        format!(
            "`GET /api/v1/checks` answered {}{} with {} checks, {} bytes ({} with gzip); ETag: {}",
            list.status,
            body_of(list.status, &list.body),
            list_rows,
            list.body.len(),
            gz.body.len(),
            list.etag.as_deref().map(|e| format!("`{e}`")).unwrap_or_else(|| "none".into())
        ),
        format!(
            "`GET /api/v1/checks/{one_name}` answered {}{}; ETag: {}",
            one.status,
            body_of(one.status, &one.body),
            one.etag.as_deref().map(|e| format!("`{e}`")).unwrap_or_else(|| "none".into())
        ),
    ];

    let mut phases = Vec::new();
    // The list: the default page (100 checks), the largest page (1,000), and
    // two filters that look at every check (a label, a name substring with
    // a state); one client in turn, then several at once on the default page.
    let lists: [(&str, &str); 4] = [
        ("list", "/api/v1/checks"),
        ("list ?limit=1000", "/api/v1/checks?limit=1000"),
        ("list ?label=team=team-7", "/api/v1/checks?label=team%3Dteam-7"),
        ("list ?q=svc-01&state=up", "/api/v1/checks?q=svc-01&state=up"),
    ];
    for (k, (label, path)) in lists.iter().enumerate() {
        let path = path.to_string();
        let make: std::sync::Arc<dyn Fn(u64) -> Req + Send + Sync> = std::sync::Arc::new(move |_| Req {
            method: "GET",
            path: path.clone(),
            headers: vec![],
            body: None,
        });
        let mut p = measure(
            &format!("{label}, 1 client"),
            &format!("`GET {}`, one client, requests in turn", lists[k].1),
            addr,
            pid,
            &read_token,
            1,
            if k == 0 { list_requests } else { list_requests / 2 },
            120.0,
            make.clone(),
        )
        .await;
        if k == 0 {
            p.target = Some((
                "p99 < 50 ms",
                p.pct(0.99) < TARGET_LIST_P99_MS && p.tally.statuses.keys().all(|s| *s == 200),
            ));
        }
        phases.push(p);
        if k == 0 {
            let mut p = measure(
                &format!("list, {list_clients} clients"),
                &format!("`GET /api/v1/checks`, {list_clients} clients at once"),
                addr,
                pid,
                &read_token,
                list_clients,
                list_requests / list_clients.max(1),
                120.0,
                make,
            )
            .await;
            p.target = Some((
                "p99 < 50 ms",
                p.pct(0.99) < TARGET_LIST_P99_MS && p.tally.statuses.keys().all(|s| *s == 200),
            ));
            phases.push(p);
            let gzip: std::sync::Arc<dyn Fn(u64) -> Req + Send + Sync> = std::sync::Arc::new(|_| Req {
                method: "GET",
                path: "/api/v1/checks".into(),
                headers: vec![("accept-encoding".into(), "gzip".into())],
                body: None,
            });
            phases.push(
                measure(
                    "list gzip, 1 client",
                    "`GET /api/v1/checks` with `Accept-Encoding: gzip`, one client",
                    addr,
                    pid,
                    &read_token,
                    1,
                    list_requests / 2,
                    120.0,
                    gzip,
                )
                .await,
            );
        }
    }

    // Cached reads: revalidation with the ETag of each check (fetched once
    // per check by the client, as a cache would hold them).
    let names: Vec<u64> = (0..n).step_by((n / 500).max(1) as usize).collect();
    // A fresh connection: the server closes keep-alive connections idle for
    // longer than web.header_read_timeout, as the first one now is.
    let mut probe = connect(addr).await;
    let mut etags = Vec::new();
    for i in &names {
        let a =
            send(&mut probe, "GET", &format!("/api/v1/checks/{}", check_name(*i)), &read_token, &[], None)
                .await
                .expect("GET one");
        etags.push(a.etag.unwrap_or_default());
    }
    let have_etags = etags.iter().all(|e| !e.is_empty());
    let one_req: std::sync::Arc<dyn Fn(u64) -> Req + Send + Sync> = {
        let names = names.clone();
        let etags = etags.clone();
        std::sync::Arc::new(move |k| {
            let j = (k as usize) % names.len();
            let mut headers = vec![];
            if !etags[j].is_empty() {
                headers.push(("if-none-match".to_string(), etags[j].clone()));
            }
            Req {
                method: "GET",
                path: format!("/api/v1/checks/{}", check_name(names[j])),
                headers,
                body: None,
            }
        })
    };
    let what = if have_etags {
        format!("`GET /api/v1/checks/{{name}}` with `If-None-Match: <its ETag>` over {} checks, {clients} keep-alive clients", names.len())
    } else {
        format!("`GET /api/v1/checks/{{name}}` over {} checks (no ETag served: plain 200s), {clients} keep-alive clients", names.len())
    };
    let mut p =
        measure("cached read: one check", &what, addr, pid, &read_token, clients, u64::MAX, seconds, one_req)
            .await;
    p.target = Some((
        "> 2,000/s",
        p.per_s() > TARGET_READS_PER_S && p.tally.statuses.keys().all(|s| *s == 200 || *s == 304),
    ));
    phases.push(p);
    if let Some(etag) = list.etag.clone() {
        let list_cached: std::sync::Arc<dyn Fn(u64) -> Req + Send + Sync> =
            std::sync::Arc::new(move |_| Req {
                method: "GET",
                path: "/api/v1/checks".into(),
                headers: vec![("if-none-match".into(), etag.clone())],
                body: None,
            });
        let p = measure(
            "cached read: list",
            &format!("`GET /api/v1/checks` with `If-None-Match: <its ETag>`, {clients} keep-alive clients"),
            addr,
            pid,
            &read_token,
            clients,
            u64::MAX,
            seconds,
            list_cached,
        )
        .await;
        // No target: a 304 of the list costs the list's query (the ETag
        // hashes the answer the handler built); it is here for scale.
        phases.push(p);
    }

    // Unchanged PUTs of the API-owned checks (id % 4 = 0), exactly as stored.
    let version_before = count(&db, "SELECT coalesce(sum(version), 0)::bigint FROM checks").await;
    let owned: Vec<u64> = db
        .client
        .query("SELECT name FROM checks WHERE owner = 'api' ORDER BY id LIMIT 1000", &[])
        .await
        .expect("api-owned checks")
        .iter()
        .filter_map(|r| r.get::<_, String>(0).strip_prefix("svc-").and_then(|v| v.parse().ok()))
        .collect();
    assert!(!owned.is_empty(), "no API-owned check");
    let bodies: Vec<(String, Bytes)> =
        owned.iter().map(|i| (check_name(*i), Bytes::from(check_spec(*i).to_string()))).collect();
    let put_req: std::sync::Arc<dyn Fn(u64) -> Req + Send + Sync> = std::sync::Arc::new(move |k| {
        let (name, body) = &bodies[(k as usize) % bodies.len()];
        Req {
            method: "PUT",
            path: format!("/api/v1/checks/{name}"),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body.clone()),
        }
    });
    let mut p = measure(
        "unchanged PUT",
        &format!("`PUT /api/v1/checks/{{name}}` of {} API-owned checks, body as stored, {clients} keep-alive clients", owned.len()),
        addr,
        pid,
        &write_token,
        clients,
        u64::MAX,
        seconds,
        put_req,
    )
    .await;
    let version_after = count(&db, "SELECT coalesce(sum(version), 0)::bigint FROM checks").await;
    let unchanged = p.tally.sample.as_deref().is_some_and(|s| s.contains("unchanged"));
    p.target = Some((
        "> 500/s",
        p.per_s() > TARGET_PUTS_PER_S
            && p.tally.statuses.keys().all(|s| *s == 200)
            && unchanged
            && version_before == version_after,
    ));
    phases.push(p);
    let put_note = format!(
        "sum of `checks.version` before the PUTs {version_before}, after {version_after} ({}); a sample answer: `{}`",
        if version_before == version_after { "nothing written" } else { "CHECKS WERE WRITTEN" },
        phases.last().and_then(|p| p.tally.sample.clone()).unwrap_or_default().replace('\n', " ")
    );

    let rss_mb = common::rss_bytes(pid) as f64 / 1048576.0;
    drop(web);
    if std::env::var_os("SK_BENCH_KEEP_DB").is_some() {
        // For EXPLAIN and perf afterwards; drop it by hand (its name is printed).
        println!("kept database {} ({})", db.name, db.url);
        std::mem::forget(db);
    } else {
        db.drop_db().await;
    }
    report(&header, n, api_owned, hourly, daily, load_s, rss_mb, &route_notes, &put_note, &phases);
}

#[allow(clippy::too_many_arguments)]
fn report(
    header: &str,
    n: u64,
    api_owned: i64,
    hourly: i64,
    daily: i64,
    load_s: f64,
    rss_mb: f64,
    route_notes: &[String],
    put_note: &str,
    phases: &[Phase],
) {
    let mut md = String::from(header);
    let _ = writeln!(
        md,
        "- data: {n} checks stored by `sentryk8s checks apply` ({api_owned} made API-owned), `check_state` for each, {hourly} hourly and {daily} daily rollups (loaded in {load_s:.1} s)"
    );
    let _ = writeln!(
        md,
        "- server: `sentryk8s web` (release build), one process, default config (pool 16 connections) but the rate limit raised to 1,000,000/s; clients: hyper HTTP/1.1 keep-alive connections, in the bench process, on 127.0.0.1\n"
    );
    md.push_str("| phase | clients | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | web CPU ms/req | PostgreSQL CPU ms/req | answers | target |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut rows = Vec::new();
    for p in phases {
        let target = p
            .target
            .map(|(t, ok)| format!("{t}: {}", if ok { "met" } else { "**missed**" }))
            .unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {} | {} |",
            p.name,
            p.clients,
            p.requests(),
            p.per_s(),
            p.pct(0.5),
            p.pct(0.9),
            p.pct(0.99),
            p.pct(1.0),
            p.ms_per_request(p.web_cpu_s),
            p.ms_per_request(p.pg_cpu_s),
            p.statuses(),
            target
        );
        rows.push(vec![
            p.name.clone(),
            p.clients.to_string(),
            p.requests().to_string(),
            format!("{:.1}", p.per_s()),
            format!("{:.3}", p.pct(0.5)),
            format!("{:.3}", p.pct(0.9)),
            format!("{:.3}", p.pct(0.99)),
            format!("{:.3}", p.pct(1.0)),
            format!("{:.4}", p.ms_per_request(p.web_cpu_s)),
            format!("{:.4}", p.ms_per_request(p.pg_cpu_s)),
            p.statuses().replace(", ", " "),
            p.target.map(|(_, ok)| if ok { "met" } else { "missed" }).unwrap_or("").to_string(),
        ]);
    }
    md.push_str("\nWhat each phase sends:\n\n");
    for p in phases {
        let _ = writeln!(md, "- {}: {}", p.name, p.what);
    }
    md.push_str("\nNotes:\n\n");
    for note in route_notes {
        let _ = writeln!(md, "- {note}");
    }
    let _ = writeln!(md, "- unchanged PUT: {put_note}");
    let _ = writeln!(md, "- web process resident memory at the end: {rss_mb:.0} MiB");
    md.push_str(
        "- \"Cached read\" is a conditional GET: the client holds the answer and its ETag and sends \
         `If-None-Match`; the server authenticates the token, runs the handler (its queries \
         included), hashes the answer and, as the tag matches, sends `304 Not Modified` without \
         a body (src/web/etag.rs): a 304 saves the transfer, not the query. Nothing is cached in \
         front of the server. The target (> 2,000/s) is judged on the one-check read; the list's \
         304 costs a list query and is shown for scale.\n\
         - CPU is user + system time from /proc: the web process's, and PostgreSQL's backends' \
         (all `postgres` processes, so other users of the shared machine count too). Client and \
         server share the machine's 2 cores, so throughput is a lower bound of what a web pod \
         on its own core does.\n",
    );
    println!("\n{md}");
    common::write_result("web.md", &md);
    common::write_csv(
        "web.csv",
        &[
            "phase",
            "clients",
            "requests",
            "per_s",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "max_ms",
            "web_cpu_ms_per_req",
            "pg_cpu_ms_per_req",
            "answers",
            "target",
        ],
        &rows,
    );
}
