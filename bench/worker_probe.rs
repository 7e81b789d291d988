//! Benchmark "worker probe cost": checks per second and CPU milliseconds per
//! check of one `sentryk8s worker` (release build) against a fast local
//! HTTP target, results persisted to PostgreSQL; then Prometheus'
//! blackbox_exporter probing the same target in the same run.
//!
//! Run: `cargo bench --bench worker_probe` (see README, "Benchmarks →
//! worker probe cost"). Needs PostgreSQL and RabbitMQ (scripts/services.sh),
//! and for the full comparison `apt-get install nginx-light
//! prometheus-blackbox-exporter`; without nginx a built-in hyper server is
//! the target, without the exporter its half is skipped (both said loudly).
//!
//! Knobs (environment): BENCH_JOBS (default 200000), BENCH_CONCURRENCY
//! (worker --concurrency, default 512), BENCH_BATCH (worker.batch_size,
//! default 1000), BENCH_PROBES (blackbox probes, default 30000),
//! BENCH_PROBE_CONCURRENCY (default 64).
//!
//! CPU is read from /proc/<pid>/stat (utime + stime) over the steady part of
//! the run (from 5 % to 95 % of the jobs done), so start-up and the tail do
//! not count.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use amqprs::channel::{BasicPublishArguments, QueueDeclareArguments};
use amqprs::BasicProperties;
use chrono::Utc;
use sentryk8s::model::{job::slot_from_millis, CheckJob, CheckSpec, JOB_SCHEMA_VERSION};
use sentryk8s::queue::{self, AmqpTarget, Topology};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

/// Ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// Stops a child with SIGTERM (nginx's master then stops its workers;
/// SIGKILL would orphan them), SIGKILL if it lingers.
struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU seconds of a process and its direct children (nginx's workers).
fn cpu_seconds_with_children(pid: u32) -> f64 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    cpu_seconds(pid)
        + children.split_whitespace().filter_map(|c| c.parse().ok()).map(cpu_seconds).sum::<f64>()
}

fn which(program: &str) -> Option<String> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin"] {
        let path = format!("{dir}/{program}");
        if std::path::Path::new(&path).exists() {
            return Some(path);
        }
    }
    None
}

/// nginx answering 200 "ok" with Connection: close, one worker process.
fn start_nginx(dir: &std::path::Path, port: u16) -> Option<Killer> {
    let nginx = which("nginx")?;
    let conf = dir.join("nginx.conf");
    let text = format!(
        "worker_processes 1;\ndaemon off;\npid {pid};\nerror_log stderr warn;\n\
         events {{ worker_connections 8192; }}\n\
         http {{ access_log off; keepalive_timeout 0;\n\
           client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
           server {{ listen 127.0.0.1:{port} backlog=4096; location / {{ return 200 \"ok\\n\"; }} }} }}\n",
        pid = dir.join("nginx.pid").display(),
        d = dir.display()
    );
    std::fs::write(&conf, text).ok()?;
    let child = Command::new(nginx)
        .args(["-c", &conf.display().to_string(), "-e", "stderr"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    Some(Killer(child))
}

/// The fallback target: a minimal hyper server, Connection: close.
async fn start_builtin_target(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind target");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    let mut r =
                        hyper::Response::new(http_body_util::Full::new(hyper::body::Bytes::from("ok\n")));
                    r.headers_mut().insert("connection", hyper::header::HeaderValue::from_static("close"));
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn wait_port(addr: SocketAddr) -> bool {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: b\r\n\r\n").as_bytes()).await.ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Sum of `sentryk8s_checks_total` over outcomes, from /metrics.
async fn checks_done(addr: SocketAddr) -> Option<(f64, f64)> {
    let text = http_get(addr, "/metrics").await?;
    let mut total = 0.0;
    let mut success = 0.0;
    for line in text.lines().filter(|l| l.starts_with("sentryk8s_checks_total{")) {
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        total += value;
        if line.contains("outcome=\"success\"") {
            success += value;
        }
    }
    Some((total, success))
}

#[tokio::main]
async fn main() {
    let jobs = env_or("BENCH_JOBS", 200_000);
    let concurrency = env_or("BENCH_CONCURRENCY", 512);
    let batch = env_or("BENCH_BATCH", 1000);
    let probes = env_or("BENCH_PROBES", 30_000);
    let probe_concurrency = env_or("BENCH_PROBE_CONCURRENCY", 64);
    let dir = std::env::temp_dir().join(format!("sentryk8s-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    // Target.
    let target_port = free_port();
    let target_addr: SocketAddr = ([127, 0, 0, 1], target_port).into();
    let nginx = start_nginx(&dir, target_port);
    let target_name = if nginx.is_some() {
        "nginx (1 worker process, keepalive_timeout 0)"
    } else {
        println!("!! nginx not found (apt-get install nginx-light): using the built-in hyper target");
        start_builtin_target(target_port).await;
        "built-in hyper server (Connection: close)"
    };
    assert!(wait_port(target_addr).await, "target did not start");

    // Database and broker.
    let admin = std::env::var("SENTRYK8S_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db_name = format!("sk_bench_{}", std::process::id());
    let (admin_client, conn) =
        tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.expect("PostgreSQL");
    tokio::spawn(conn);
    admin_client.batch_execute(&format!("CREATE DATABASE \"{db_name}\"")).await.expect("create db");
    let mut db_url = url::Url::parse(&admin).expect("url");
    db_url.set_path(&format!("/{db_name}"));
    let (mut client, conn) =
        tokio_postgres::connect(db_url.as_str(), tokio_postgres::NoTls).await.expect("db");
    tokio::spawn(conn);
    sentryk8s::migrate::run(&mut client, 16).await.expect("migrate");

    let checks = 1000.min(jobs.max(1));
    let url = format!("http://127.0.0.1:{target_port}/");
    let spec: CheckSpec =
        serde_json::from_value(serde_json::json!({"url": url, "timeout_ms": 5000})).expect("spec");
    let spec_json = serde_json::to_value(&spec).expect("spec json");
    let mut ids = Vec::new();
    for i in 0..checks {
        let row = client
            .query_one(
                "INSERT INTO checks (name, interval_ms, spec) VALUES ($1, 86400000, $2) RETURNING id",
                &[&format!("bench-{i}"), &spec_json],
            )
            .await
            .expect("insert check");
        ids.push(row.get::<_, i64>(0));
    }

    let amqp_url = std::env::var("SENTRYK8S_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let exchange = format!("sk-bench-{}", std::process::id());
    let mut amqp = sentryk8s::config::Config::defaults().expect("defaults").amqp;
    amqp.exchange = exchange.clone();
    amqp.queue = format!("{exchange}.checks");
    let topology = Topology::from_config(&amqp);
    let target = AmqpTarget::parse(&amqp_url).expect("amqp url");
    let connection =
        queue::connect(&target, "sentryk8s-bench", Duration::from_secs(30)).await.expect("RabbitMQ");
    let channel = connection.open_channel(None).await.expect("channel");
    queue::declare_topology(&channel, &topology).await.expect("topology");

    print!("publishing {jobs} jobs for {checks} checks … ");
    let _ = std::io::stdout().flush();
    let base = Utc::now().timestamp_millis() - 60_000;
    let published = Instant::now();
    for k in 0..jobs {
        let i = (k % checks) as usize;
        let job = CheckJob {
            v: JOB_SCHEMA_VERSION,
            check_id: ids[i],
            name: format!("bench-{i}"),
            slot: slot_from_millis(base + (k / checks) as i64),
            interval_ms: 86_400_000,
            version: 1,
            spec: spec.clone(),
        };
        let props =
            BasicProperties::default().with_message_id(&job.message_id()).with_persistence(true).finish();
        channel
            .basic_publish(props, job.encode(), BasicPublishArguments::new(&exchange, "check"))
            .await
            .expect("publish");
    }
    // A synchronous round trip: every publish before it has been routed.
    let depth = channel
        .queue_declare(QueueDeclareArguments::new(&topology.queue).passive(true).finish())
        .await
        .ok()
        .flatten()
        .map(|(_, n, _)| n)
        .unwrap_or(0);
    println!("done in {:.1} s (queue depth {depth})", published.elapsed().as_secs_f64());

    // The worker.
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let worker = Command::new(env!("CARGO_BIN_EXE_sentryk8s"))
        .arg("worker")
        .env("SENTRYK8S_DATABASE_URL", db_url.as_str())
        .env("SENTRYK8S_AMQP_URL", &amqp_url)
        .env("SENTRYK8S_AMQP__EXCHANGE", &amqp.exchange)
        .env("SENTRYK8S_AMQP__QUEUE", &amqp.queue)
        .env("SENTRYK8S_LISTEN", listen.to_string())
        .env("SENTRYK8S_WORKER__CONCURRENCY", concurrency.to_string())
        .env("SENTRYK8S_WORKER__BATCH_SIZE", batch.to_string())
        .env("SENTRYK8S_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn worker");
    let pid = worker.id();
    let worker = Killer(worker);
    let nginx_pid = nginx.as_ref().map(|k| k.0.id());

    let (lo, hi) = (jobs as f64 * 0.05, jobs as f64 * 0.95);
    let mut start: Option<(Instant, f64, f64, f64)> = None;
    let mut end: Option<(Instant, f64, f64, f64)> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = (0.0, 0.0);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some((done, ok)) = checks_done(listen).await else { continue };
        last = (done, ok);
        let sample =
            (Instant::now(), done, cpu_seconds(pid), nginx_pid.map(cpu_seconds_with_children).unwrap_or(0.0));
        if start.is_none() && done >= lo {
            start = Some(sample);
        }
        if end.is_none() && done >= hi {
            end = Some(sample);
        }
        if done >= jobs as f64 {
            break;
        }
    }
    let (Some(s), Some(e)) = (start, end) else {
        panic!("the worker did not get through the jobs: {last:?} of {jobs}");
    };
    // Everything persisted: wait for the last batch, count rows.
    let mut rows = 0i64;
    for _ in 0..100 {
        rows = client.query_one("SELECT count(*) FROM check_results", &[]).await.expect("count").get(0);
        if rows >= jobs as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = e.1 - s.1;
    let secs = e.0.duration_since(s.0).as_secs_f64();
    let worker_cpu_ms = (e.2 - s.2) * 1000.0 / n;
    let nginx_cpu_ms = (e.3 - s.3) * 1000.0 / n;
    drop(worker);

    println!();
    println!("target: {target_name} at {url}");
    println!(
        "sentryk8s worker (release, --concurrency {concurrency}, batch_size {batch}): {:.0} checks/s, {:.3} ms CPU per check (worker process){}",
        n / secs,
        worker_cpu_ms,
        if nginx_pid.is_some() { format!(", target {nginx_cpu_ms:.3} ms CPU per request") } else { String::new() }
    );
    println!(
        "  measured over {n:.0} checks in {secs:.2} s; {} of {jobs} succeeded; {rows} rows in check_results",
        last.1
    );

    // blackbox_exporter against the same target.
    match which("prometheus-blackbox-exporter") {
        None => println!("!! prometheus-blackbox-exporter not found (apt-get install prometheus-blackbox-exporter): comparison skipped"),
        Some(exporter) => {
            let conf = dir.join("blackbox.yml");
            std::fs::write(
                &conf,
                "modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n",
            )
            .expect("write blackbox config");
            let port = free_port();
            let child = Command::new(exporter)
                .args([
                    &format!("--config.file={}", conf.display()),
                    &format!("--web.listen-address=127.0.0.1:{port}"),
                    "--log.level=warn",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn blackbox_exporter");
            let exporter_pid = child.id();
            let exporter = Killer(child);
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            assert!(wait_port(addr).await, "blackbox_exporter did not start");
            let path = format!("/probe?module=http_2xx&target={url}");
            let warmup = probe_many(addr, &path, 1000, probe_concurrency).await;
            assert!(warmup.1 > 0, "blackbox_exporter probes fail");
            let cpu0 = cpu_seconds(exporter_pid);
            let nginx0 = nginx_pid.map(cpu_seconds_with_children).unwrap_or(0.0);
            let t0 = Instant::now();
            let (sent, succeeded) = probe_many(addr, &path, probes, probe_concurrency).await;
            let secs = t0.elapsed().as_secs_f64();
            let cpu_ms = (cpu_seconds(exporter_pid) - cpu0) * 1000.0 / sent as f64;
            let nginx_ms = (nginx_pid.map(cpu_seconds_with_children).unwrap_or(0.0) - nginx0) * 1000.0 / sent as f64;
            drop(exporter);
            println!(
                "blackbox_exporter (http_2xx, {probe_concurrency} concurrent /probe requests): {:.0} probes/s, {cpu_ms:.3} ms CPU per probe (exporter process){}",
                sent as f64 / secs,
                if nginx_pid.is_some() { format!(", target {nginx_ms:.3} ms CPU per request") } else { String::new() }
            );
            println!("  {succeeded} of {sent} probes succeeded");
            println!("ratio: the worker is {:.1}x cheaper per check than blackbox_exporter", cpu_ms / worker_cpu_ms);
        }
    }

    let _ = connection.close().await;
    let cleanup = async {
        let target = AmqpTarget::parse(&amqp_url).ok()?;
        let c = queue::connect(&target, "sentryk8s-bench-cleanup", Duration::from_secs(30)).await.ok()?;
        let ch = c.open_channel(None).await.ok()?;
        for q in [&topology.queue, &topology.dead_letter_queue] {
            let _ = ch.queue_delete(amqprs::channel::QueueDeleteArguments::new(q)).await;
        }
        for e in [&topology.exchange, &topology.dead_letter_exchange] {
            let _ = ch.exchange_delete(amqprs::channel::ExchangeDeleteArguments::new(e)).await;
        }
        let _ = c.close().await;
        Some(())
    };
    cleanup.await;
    drop(client);
    let _ = admin_client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)")).await;
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `total` GETs of `path` over `concurrency` keep-alive connections;
/// returns (sent, answered with probe_success 1).
async fn probe_many(addr: SocketAddr, path: &str, total: u64, concurrency: u64) -> (u64, u64) {
    let per = total / concurrency.max(1);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let path = path.to_string();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            let mut sent = 0u64;
            let Ok(stream) = TcpStream::connect(addr).await else { return (0, 0) };
            let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake::<
                _,
                http_body_util::Empty<hyper::body::Bytes>,
            >(hyper_util::rt::TokioIo::new(stream))
            .await
            else {
                return (0, 0);
            };
            tokio::spawn(conn);
            for _ in 0..per {
                let req = hyper::Request::get(path.as_str())
                    .header("host", "bench")
                    .body(http_body_util::Empty::new())
                    .expect("request");
                let Ok(resp) = sender.send_request(req).await else { break };
                sent += 1;
                use http_body_util::BodyExt;
                if let Ok(body) = resp.into_body().collect().await {
                    if String::from_utf8_lossy(&body.to_bytes()).contains("probe_success 1") {
                        ok += 1;
                    }
                }
            }
            (sent, ok)
        }));
    }
    let mut sent = 0;
    let mut ok = 0;
    for t in tasks {
        if let Ok((s, o)) = t.await {
            sent += s;
            ok += o;
        }
    }
    (sent, ok)
}
