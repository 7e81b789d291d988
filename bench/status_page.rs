//! Status page benchmark: the real `sentryk8s web` (release build)
//! rendering `/status/{slug}` on the server, over HTTP on 127.0.0.1, for a
//! page of 200 checks with 90 days of history (`SK_BENCH_CHECKS`).
//!
//! The data:
//! - 200 checks and three pages declared in one generated checks file and
//!   stored by the real `sentryk8s checks apply`: `bench` (every check, in
//!   four groups by label), `bench-rt` (the same with response-time charts)
//!   and `fifty` (the first 50 checks: the issue's page-weight budget);
//! - with SQL: `check_state` (3 % down, 2 % degraded), 90 days of daily
//!   rollups per check (some days with downtime, some without data, some
//!   maintenance), 25 hours of hourly rollups with latency histograms, and
//!   incidents over the last 20 days (some still open).
//!
//! The phases, each `SK_BENCH_REQUESTS` (300) requests one after the other
//! on one keep-alive connection, after 20 unmeasured ones:
//! 1. `GET /status/bench` without compression: p50/p90/p99/max and bytes;
//! 2. the same with `Accept-Encoding: gzip` (what browsers send): bytes
//!    transferred;
//! 3. `GET /status/bench-rt` (200 response-time charts too), gzip;
//! 4. `GET /status/fifty`, gzip: the page weight of 50 checks.
//!
//! Targets: p99 under 50 ms for the 200-check page (issue 16); under
//! 200 KB transferred for 50 checks.
//!
//! ```sh
//! bench/run.sh status-page          # about a minute after the build
//! ```
//!
//! Writes bench/results/status_page.md and status_page.csv.

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use common::env_or;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

const TARGET_P99_MS: f64 = 50.0;
const TARGET_FIFTY_BYTES: usize = 200 * 1024;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

/// The checks file: `n` checks in four label groups, and the three pages.
fn checks_file(n: u64) -> String {
    let mut text = String::from("checks:\n");
    for i in 0..n {
        let fifty = if i < 50 { ", fifty: \"yes\"" } else { "" };
        let _ = writeln!(
            text,
            "  - {{ name: svc-{i:03}, url: \"https://svc-{i:03}.example.com/health\", interval: 60s, labels: {{ group: g{}{fifty} }} }}",
            i % 4
        );
    }
    let groups = "\n      - { name: Frontends, labels: { group: g0 } }\n      - { name: APIs, labels: { group: g1 } }\n      - { name: Data, labels: { group: g2 } }\n      - { name: Internal, labels: { group: g3 } }";
    let _ = write!(
        text,
        "status_pages:\n  - slug: bench\n    title: Bench status\n    public: true\n    groups:{groups}\n  - slug: bench-rt\n    title: Bench status with response times\n    public: true\n    show_response_times: true\n    groups:{groups}\n  - slug: fifty\n    title: Fifty checks\n    public: true\n    groups:\n      - {{ name: All, labels: {{ fifty: \"yes\" }} }}\n"
    );
    text
}

async fn load(db: &common::BenchDb, n: u64, dir: &std::path::Path) -> f64 {
    let started = Instant::now();
    let file = dir.join("checks.yaml");
    std::fs::write(&file, checks_file(n)).expect("write checks file");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sentryk8s"))
        .args(["checks", "apply", "-f"])
        .arg(&file)
        .env("SENTRYK8S_DATABASE_URL", &db.url)
        .env("SENTRYK8S_LOG_LEVEL", "warn")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run checks apply");
    assert!(out.status.success(), "checks apply failed: {}", String::from_utf8_lossy(&out.stderr));
    let statements = [
        "INSERT INTO check_state (check_id, status, since, last_slot, last_checked_at, last_success,
                                  last_duration_ms, consecutive_failures, consecutive_successes, streak_start)
         SELECT id, CASE WHEN id % 33 = 5 THEN 'down' ELSE 'up' END, now() - (id % 500) * interval '1 minute',
                now(), now(), id % 33 <> 5, 40 + id % 200,
                CASE WHEN id % 33 = 5 THEN 4 WHEN id % 50 = 9 THEN 1 ELSE 0 END,
                CASE WHEN id % 33 = 5 OR id % 50 = 9 THEN 0 ELSE 100 END, now()
           FROM checks",
        "INSERT INTO rollup_days (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms,
                                  runs, failures, total_us_sum, latency_histogram)
         SELECT c.id, date_trunc('day', now()) - d * interval '1 day',
                CASE WHEN (c.id + d) % 41 = 0 THEN 82800000 WHEN (c.id + d) % 11 = 0 THEN 86100000 ELSE 86400000 END,
                CASE WHEN (c.id + d) % 41 = 0 THEN 0 WHEN (c.id + d) % 11 = 0 THEN 300000 ELSE 0 END,
                0, CASE WHEN (c.id + d) % 41 = 0 THEN 3600000 ELSE 0 END,
                1440, CASE WHEN (c.id + d) % 11 = 0 THEN 5 ELSE 0 END, 1440 * 45000,
                array_fill(0, ARRAY[12]) || ARRAY[1300, 140] || array_fill(0, ARRAY[26])
           FROM checks c, generate_series(0, 89) d
          WHERE NOT (c.id % 7 = 0 AND d > 60)",
        "INSERT INTO rollup_hours (check_id, bucket, up_ms, down_ms, no_data_ms, maintenance_ms,
                                   runs, failures, total_us_sum, latency_histogram)
         SELECT c.id, date_trunc('hour', now()) - h * interval '1 hour', 3600000, 0, 0, 0, 60, 0, 60 * 45000,
                array_fill(0, ARRAY[11 + (c.id + h)::int % 3]) || ARRAY[54, 6] || array_fill(0, ARRAY[27 - (c.id + h)::int % 3])
           FROM checks c, generate_series(0, 24) h",
        "INSERT INTO incidents (id, check_id, check_name, opened_at, confirmed_at, resolved_at, resolution,
                                first_error, last_error, in_maintenance, alerts_sent)
         SELECT nextval('incident_id_seq'), c.id, c.name, now() - (c.id % 20) * interval '1 day',
                now() - (c.id % 20) * interval '1 day' + interval '2 minutes',
                CASE WHEN c.id % 33 = 5 THEN NULL ELSE now() - (c.id % 20) * interval '1 day' + interval '14 minutes' END,
                CASE WHEN c.id % 33 = 5 THEN NULL ELSE 'recovered' END, 'timeout', 'timeout', false, 1
           FROM checks c WHERE c.id % 9 = 0 OR c.id % 33 = 5",
        "ANALYZE",
    ];
    for sql in statements {
        db.client.batch_execute(sql).await.unwrap_or_else(|e| panic!("loading: {e}\n{sql}"));
    }
    started.elapsed().as_secs_f64()
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the web role");
    let _ = stream.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("HTTP handshake");
    tokio::spawn(connection);
    sender
}

/// One GET: (status, body bytes as transferred).
async fn get(sender: &mut SendRequest<Full<Bytes>>, path: &str, gzip: bool) -> (u16, Bytes) {
    sender.ready().await.expect("connection ready");
    let mut request = hyper::Request::builder().uri(path).header("host", "127.0.0.1");
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response =
        sender.send_request(request.body(Full::new(Bytes::new())).expect("request")).await.expect("answer");
    let status = response.status().as_u16();
    (status, response.into_body().collect().await.expect("body").to_bytes())
}

/// One phase's figures.
struct Phase {
    name: String,
    latencies: Vec<f64>,
    bytes: usize,
}

impl Phase {
    fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(index).copied().unwrap_or(f64::NAN)
    }
}

async fn phase(addr: SocketAddr, name: &str, path: &str, gzip: bool, requests: u64) -> Phase {
    let mut sender = connect(addr).await;
    for _ in 0..20 {
        let (status, _) = get(&mut sender, path, gzip).await;
        assert_eq!(status, 200, "{path}");
    }
    let mut latencies = Vec::with_capacity(requests as usize);
    let mut bytes = 0;
    for _ in 0..requests {
        let started = Instant::now();
        let (status, body) = get(&mut sender, path, gzip).await;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{path}");
        bytes = body.len();
    }
    Phase { name: name.to_string(), latencies, bytes }
}

async fn run() {
    let n = env_or("SK_BENCH_CHECKS", 200);
    let requests = env_or("SK_BENCH_REQUESTS", 300);
    let db = common::BenchDb::create("sk_bench_status", 16).await;
    let dir = std::env::temp_dir().join(format!("sk-bench-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let load_s = load(&db, n, &dir).await;
    println!("loaded {n} checks with 90 days of history in {load_s:.1} s");

    let port = common::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let env = common::RoleEnv {
        database_url: db.url.clone(),
        exchange: "unused".into(),
        queue: "unused".into(),
        log_dir: dir.clone(),
    };
    let ops = common::free_port();
    let web = common::spawn_sentryk8s(
        &env,
        &["web", "--listen", &addr.to_string()],
        &[("SENTRYK8S_LISTEN", format!("127.0.0.1:{ops}"))],
        "web",
    );
    assert!(common::wait_port(addr).await, "the web role did not start (log in {dir:?})");

    let cpu_before = common::cpu_seconds(web.pid());
    let started = Instant::now();
    let phases = vec![
        phase(addr, &format!("/status/bench ({n} checks), identity"), "/status/bench", false, requests).await,
        phase(addr, &format!("/status/bench ({n} checks), gzip"), "/status/bench", true, requests).await,
        phase(
            addr,
            &format!("/status/bench-rt ({n} checks + response charts), gzip"),
            "/status/bench-rt",
            true,
            requests,
        )
        .await,
        phase(addr, "/status/fifty (50 checks), gzip", "/status/fifty", true, requests).await,
    ];
    let wall = started.elapsed().as_secs_f64();
    let cpu = common::cpu_seconds(web.pid()) - cpu_before;
    let total_requests = requests as f64 * phases.len() as f64;

    let mut report = common::report_header("Status page rendering (issue 16)", "bench/run.sh status-page");
    let _ = writeln!(
        report,
        "- data: {n} checks, 90 days of daily rollups each, 25 hours of hourly rollups, incidents over 20 days (loaded in {load_s:.1} s)\n\
         - each phase: {requests} sequential requests on one keep-alive connection after 20 unmeasured\n\
         - web role CPU: {:.2} ms per request ({cpu:.1} s over {total_requests} requests in {wall:.1} s)\n",
        cpu * 1000.0 / total_requests
    );
    let _ = writeln!(report, "| phase | p50 ms | p90 ms | p99 ms | max ms | bytes transferred |");
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for p in &phases {
        let max = p.latencies.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            report,
            "| {} | {:.1} | {:.1} | {:.1} | {max:.1} | {} ({:.1} KB) |",
            p.name,
            p.quantile(0.5),
            p.quantile(0.9),
            p.quantile(0.99),
            p.bytes,
            p.bytes as f64 / 1024.0
        );
        rows.push(vec![
            p.name.clone(),
            format!("{:.2}", p.quantile(0.5)),
            format!("{:.2}", p.quantile(0.9)),
            format!("{:.2}", p.quantile(0.99)),
            format!("{max:.2}"),
            p.bytes.to_string(),
        ]);
    }
    let p99 = phases[0].quantile(0.99);
    let fifty = phases[3].bytes;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let _ = writeln!(
        report,
        "\nTargets:\n- p99 of the {n}-check page under {TARGET_P99_MS} ms: {p99:.1} ms, {}\n- a page of 50 checks under {} KB transferred: {:.1} KB (gzip), {}",
        verdict(p99 < TARGET_P99_MS),
        TARGET_FIFTY_BYTES / 1024,
        fifty as f64 / 1024.0,
        verdict(fifty < TARGET_FIFTY_BYTES)
    );
    print!("{report}");
    common::write_result("status_page.md", &report);
    common::write_csv("status_page.csv", &["phase", "p50_ms", "p90_ms", "p99_ms", "max_ms", "bytes"], &rows);
    drop(web);
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(&dir);
}
