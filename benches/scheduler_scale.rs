//! Scheduler scale benchmark: one `sentryk8s scheduler` (release build)
//! dispatching N checks at a fixed interval, against the local PostgreSQL
//! and RabbitMQ. Reports resident memory, CPU use, dispatch lateness as
//! seen by a consumer (receive time − slot, an upper bound of publish time
//! − slot), and how long taking over all partitions took.
//!
//! ```sh
//! cargo bench --bench scheduler_scale                      # 1,000,000 checks at 60 s, 180 s
//! SK_BENCH_CHECKS=100000 SK_BENCH_SECONDS=120 cargo bench --bench scheduler_scale
//! ```
//!
//! Writes a markdown summary to bench/results/scheduler_scale.md.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqprs::channel::{BasicConsumeArguments, ExchangeDeleteArguments, QueueDeleteArguments};
use tokio_postgres::NoTls;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn admin_url() -> String {
    std::env::var("SENTRYK8S_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn amqp_url() -> String {
    std::env::var("SENTRYK8S_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// (utime + stime in clock ticks, RSS in bytes) of a process.
fn proc_stats(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 =
        status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((utime + stime, rss_kb * 1024))
}

fn ticks_per_second() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux we run on.
    100.0
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let checks = env_or("SK_BENCH_CHECKS", 1_000_000);
    let seconds = env_or("SK_BENCH_SECONDS", 180);
    let interval_ms = env_or("SK_BENCH_INTERVAL_MS", 60_000);
    let id = format!("skbench_{}", std::process::id());
    println!("scheduler scale: {checks} checks every {interval_ms} ms, {seconds} s");

    // A fresh database with the schema and the checks.
    let (admin, conn) = tokio_postgres::connect(&admin_url(), NoTls).await.expect("PostgreSQL");
    tokio::spawn(conn);
    admin.batch_execute(&format!("CREATE DATABASE {id}")).await.expect("create database");
    let mut db_url = url::Url::parse(&admin_url()).expect("url");
    db_url.set_path(&format!("/{id}"));
    let (mut client, conn) = tokio_postgres::connect(db_url.as_str(), NoTls).await.expect("connect");
    tokio::spawn(conn);
    sentryk8s::migrate::run(&mut client, 256).await.expect("migrate");
    let started = Instant::now();
    client
        .execute(
            "INSERT INTO checks (name, interval_ms, spec)
             SELECT 'bench-' || i, $2::int,
                    jsonb_build_object('url', 'http://127.0.0.1:8080/check/' || i, 'timeout_ms', 5000)
               FROM generate_series(1, $1::int) i",
            &[&(checks as i32), &(interval_ms as i32)],
        )
        .await
        .expect("insert checks");
    println!("inserted {checks} checks in {:.1?}", started.elapsed());

    // A consumer that records lateness per received job.
    let target = sentryk8s::queue::AmqpTarget::parse(&amqp_url()).expect("amqp url");
    let connection =
        sentryk8s::queue::connect(&target, "bench", Duration::from_secs(30)).await.expect("RabbitMQ");
    let channel = connection.open_channel(None).await.expect("channel");
    let mut amqp = sentryk8s::config::Config::defaults().expect("defaults").amqp;
    amqp.exchange = id.clone();
    amqp.queue = format!("{id}.checks");
    let topology = sentryk8s::queue::Topology::from_config(&amqp);
    sentryk8s::queue::declare_topology(&channel, &topology).await.expect("topology");
    let mut args = BasicConsumeArguments::new(&topology.queue, "bench");
    args.no_ack = true;
    let (_, mut rx) = channel.basic_consume_rx(args).await.expect("consume");
    let lateness: Arc<Mutex<Vec<i64>>> = Arc::new(Mutex::new(Vec::with_capacity(4_000_000)));
    let received = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (lateness, received, measuring) = (lateness.clone(), received.clone(), measuring.clone());
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                received.fetch_add(1, Ordering::Relaxed);
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                let now = chrono::Utc::now().timestamp_millis();
                let slot = m
                    .basic_properties
                    .as_ref()
                    .and_then(|p| p.message_id())
                    .and_then(|id| id.split_once(':'))
                    .and_then(|(_, s)| s.parse::<i64>().ok());
                if let (Some(slot), Ok(mut l)) = (slot, lateness.lock()) {
                    l.push(now - slot);
                }
            }
        });
    }

    let listen = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port");
    let spawned = Instant::now();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_sentryk8s"))
        .args(["scheduler", "--listen", &listen.to_string(), "--log-format", "json"])
        .env("SENTRYK8S_DATABASE_URL", db_url.as_str())
        .env("SENTRYK8S_AMQP_URL", amqp_url())
        .env("SENTRYK8S_AMQP__EXCHANGE", &topology.exchange)
        .env("SENTRYK8S_AMQP__QUEUE", &topology.queue)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn scheduler");
    let pid = child.id();

    // Takeover: until every partition is leased and its checks dispatched.
    let mut owned_after = None;
    while spawned.elapsed() < Duration::from_secs(120) {
        let owned: i64 = client
            .query_one("SELECT count(*) FROM partition_leases WHERE owner IS NOT NULL", &[])
            .await
            .expect("leases")
            .get(0);
        if owned == 256 && received.load(Ordering::Relaxed) > 0 {
            owned_after = Some(spawned.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let owned_after = owned_after.expect("scheduler took all partitions");
    println!("all 256 partitions owned and dispatching {:.2?} after start", owned_after);

    // Warm up for one interval, then measure.
    tokio::time::sleep(Duration::from_millis(interval_ms.min(30_000))).await;
    measuring.store(true, Ordering::Relaxed);
    let received_before = received.load(Ordering::Relaxed);
    let buckets_before = lateness_buckets(&sentryk8s_metrics(&listen).await);
    let (cpu_before, _) = proc_stats(pid).expect("stats");
    let measure_started = Instant::now();
    let mut peak_rss = 0;
    let mut samples = Vec::new();
    while measure_started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some((cpu, rss)) = proc_stats(pid) {
            peak_rss = peak_rss.max(rss);
            samples.push((measure_started.elapsed().as_secs_f64(), cpu, rss));
        }
    }
    let elapsed = measure_started.elapsed().as_secs_f64();
    let (cpu_after, rss_end) = proc_stats(pid).expect("stats");
    let cores = (cpu_after - cpu_before) as f64 / ticks_per_second() / elapsed;
    let got = received.load(Ordering::Relaxed) - received_before;
    let metrics_text = sentryk8s_metrics(&listen).await;
    let buckets_after = lateness_buckets(&metrics_text);
    let published_lateness = bucket_percentiles(&buckets_before, &buckets_after);

    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = child.wait();

    let mut late = lateness.lock().map(|l| l.clone()).unwrap_or_default();
    late.sort_unstable();
    let report = format!(
        "# Scheduler scale\n\n\
         | figure | value |\n|---|---|\n\
         | checks | {checks} at {interval_ms} ms ({:.0} slots/s expected) |\n\
         | measured for | {elapsed:.0} s |\n\
         | jobs received | {got} ({:.0}/s) |\n\
         | resident memory (end / peak) | {:.0} MB / {:.0} MB |\n\
         | CPU | {:.3} cores |\n\
         | dispatch lateness (publish − slot, scheduler histogram) p50 / p99 | {published_lateness} |\n\
         | lateness at the consumer (receive − slot) p50 / p99 / max | {} / {} / {} ms |\n\
         | start → all 256 partitions owned and dispatching | {:.2} s |\n\
         | partition load (claim → checks in memory), from /metrics | {} |\n",
        checks as f64 * 1000.0 / interval_ms as f64,
        got as f64 / elapsed,
        rss_end as f64 / 1e6,
        peak_rss as f64 / 1e6,
        cores,
        percentile(&late, 0.50),
        percentile(&late, 0.99),
        late.last().copied().unwrap_or(0),
        owned_after.as_secs_f64(),
        load_summary(&metrics_text),
    );
    println!("{report}");
    let _ = std::fs::create_dir_all("bench/results");
    if let Ok(mut f) = std::fs::File::create(format!("bench/results/scheduler_scale_{checks}.md")) {
        let _ = f.write_all(report.as_bytes());
    }

    let _ = channel.queue_delete(QueueDeleteArguments::new(&topology.queue)).await;
    let _ = channel.queue_delete(QueueDeleteArguments::new(&topology.dead_letter_queue)).await;
    let _ = channel.exchange_delete(ExchangeDeleteArguments::new(&topology.exchange)).await;
    let _ = channel.exchange_delete(ExchangeDeleteArguments::new(&topology.dead_letter_exchange)).await;
    drop(client);
    let _ = admin.batch_execute(&format!("DROP DATABASE {id} WITH (FORCE)")).await;
}

async fn sentryk8s_metrics(addr: &std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return String::new() };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// Cumulative bucket counts (upper bound in seconds → count) of the dispatch lateness histogram.
fn lateness_buckets(metrics: &str) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("sentryk8s_dispatch_lateness_seconds_bucket{le=\"") else {
            continue;
        };
        let Some((le, count)) = rest.split_once("\"} ") else { continue };
        let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
        out.push((le, count.trim().parse().unwrap_or(0.0)));
    }
    out
}

/// p50 and p99 upper bounds ("≤ X ms") from the difference of two histogram scrapes.
fn bucket_percentiles(before: &[(f64, f64)], after: &[(f64, f64)]) -> String {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| (*le, n - before.iter().find(|(l, _)| l == le).map(|(_, b)| *b).unwrap_or(0.0)))
        .collect();
    let total = diff.last().map(|(_, n)| *n).unwrap_or(0.0);
    let at = |q: f64| {
        diff.iter()
            .find(|(_, n)| *n >= q * total)
            .map(|(le, _)| if le.is_finite() { format!("≤ {} ms", le * 1000.0) } else { "> 60 s".into() })
            .unwrap_or_else(|| "n/a".into())
    };
    format!("{} / {}", at(0.5), at(0.99))
}

/// "count N, mean X ms" of sentryk8s_partition_load_seconds.
fn load_summary(metrics: &str) -> String {
    let mut values: HashMap<&str, f64> = HashMap::new();
    for line in metrics.lines() {
        for key in ["sentryk8s_partition_load_seconds_sum", "sentryk8s_partition_load_seconds_count"] {
            if let Some(rest) = line.strip_prefix(key) {
                if let Ok(v) = rest.trim().parse() {
                    values.insert(key, v);
                }
            }
        }
    }
    match (
        values.get("sentryk8s_partition_load_seconds_sum"),
        values.get("sentryk8s_partition_load_seconds_count"),
    ) {
        (Some(sum), Some(count)) if *count > 0.0 => {
            format!("{count} loads, {:.1} ms each on average", sum / count * 1000.0)
        }
        _ => "n/a".into(),
    }
}
