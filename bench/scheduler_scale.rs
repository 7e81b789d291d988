//! Scheduler scale benchmark, at 100,000 and 1,000,000 checks (every
//! 60 s) against the local PostgreSQL and RabbitMQ. For each size:
//!
//! 1. one `sentryk8s scheduler` (release build, "A") dispatches everything
//!    alone: resident memory, CPU, dispatch lateness as seen by a consumer
//!    (receive time − slot, an upper bound of publish − slot) and from the
//!    scheduler's own histogram, time from start to all 256 partitions
//!    owned and dispatching;
//! 2. a second scheduler ("B") joins: A hands B its share (rendezvous
//!    hashing); time until the partitions settle;
//! 3. B is killed with SIGKILL (no hand-back): time from its leases'
//!    expiry (PostgreSQL's clock) to A's first job published for one of
//!    B's partitions, time until A owns them all, per-partition load time,
//!    and every slot of B's checks around the failover accounted for as
//!    received by the consumer (none lost; duplicates counted).
//!
//! Leases: TTL 6 s, renewal every 2 s (`SK_BENCH_LEASE_TTL_S`), so the
//! failover is short; the default TTL is 15 s.
//!
//! ```sh
//! bench/run.sh scheduler                                      # both sizes, about 6 minutes
//! SK_BENCH_SIZES=100000 SK_BENCH_SECONDS=30 cargo bench --bench scheduler_scale
//! ```
//!
//! Writes bench/results/scheduler_scale.md and scheduler_scale.csv.

#[path = "common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqprs::channel::BasicConsumeArguments;
use common::{env_list, env_or};
use nix::sys::signal::Signal;
use sentryk8s::scheduler::slots;

const PARTITIONS: u32 = 256;

#[derive(Default)]
struct Consumed {
    received: u64,
    measuring: bool,
    lateness: Vec<i64>,
    recording: bool,
    /// (receive ms, check id, slot ms) while recording the failover.
    messages: Vec<(i64, i64, i64)>,
}

struct SizeReport {
    checks: u64,
    interval_ms: u64,
    insert_s: f64,
    measured_s: f64,
    received_per_s: f64,
    rss_end_mb: f64,
    rss_peak_mb: f64,
    cores: f64,
    published_p50_p99: String,
    consumer_p50: i64,
    consumer_p99: i64,
    consumer_max: i64,
    all_owned_s: f64,
    initial_load: String,
    handover_s: f64,
    b_partitions: usize,
    b_checks: usize,
    kill_to_expiry_ms: i64,
    expiry_to_first_job_ms: i64,
    expiry_to_all_owned_ms: i64,
    takeover_load: String,
    failover_expected: u64,
    failover_lost: u64,
    failover_duplicates: u64,
    failover_max_lateness_ms: i64,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let sizes = env_list("SK_BENCH_SIZES", "100000,1000000");
    let seconds = env_or("SK_BENCH_SECONDS", 60);
    let interval_ms = env_or("SK_BENCH_INTERVAL_MS", 60_000);
    let ttl_s = env_or("SK_BENCH_LEASE_TTL_S", 6).max(3);
    let header = common::report_header("Scheduler scale", "bench/run.sh scheduler");
    println!("{header}");
    let scratch = common::Scratch::new("scheduler-scale");
    let mut reports = Vec::new();
    for checks in sizes {
        reports.push(run_size(checks, seconds, interval_ms, ttl_s, &scratch.0).await);
    }
    report(&header, ttl_s, &reports);
}

async fn metrics(addr: SocketAddr) -> String {
    common::http_get(addr, "/metrics").await.unwrap_or_default()
}

/// (count, sum seconds) of the partition load histogram.
fn loads(text: &str) -> (f64, f64) {
    (
        common::metric_sum(text, "sentryk8s_partition_load_seconds_count"),
        common::metric_sum(text, "sentryk8s_partition_load_seconds_sum"),
    )
}

async fn owners(db: &common::BenchDb) -> HashMap<String, Vec<i32>> {
    let mut out: HashMap<String, Vec<i32>> = HashMap::new();
    for r in db
        .client
        .query("SELECT coalesce(owner, ''), partition FROM partition_leases", &[])
        .await
        .expect("leases")
    {
        out.entry(r.get(0)).or_default().push(r.get(1));
    }
    out
}

fn owned_by(owners: &HashMap<String, Vec<i32>>, prefix: &str) -> Vec<i32> {
    owners.iter().filter(|(o, _)| o.starts_with(prefix)).flat_map(|(_, p)| p.iter().copied()).collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn run_size(
    checks: u64,
    seconds: u64,
    interval_ms: u64,
    ttl_s: u64,
    dir: &std::path::Path,
) -> SizeReport {
    println!("\n== {checks} checks every {interval_ms} ms");
    let db = common::BenchDb::create("skbench_sched", PARTITIONS).await;
    let started = Instant::now();
    db.client
        .execute(
            "INSERT INTO checks (name, interval_ms, spec)
             SELECT 'bench-' || i, $2::int,
                    jsonb_build_object('url', 'http://127.0.0.1:9/check/' || i, 'timeout_ms', 5000)
               FROM generate_series(1, $1::int) i",
            &[&(checks as i32), &(interval_ms as i32)],
        )
        .await
        .expect("insert checks");
    let insert_s = started.elapsed().as_secs_f64();
    println!("inserted {checks} checks in {insert_s:.1} s");

    let queue = common::BenchQueue::declare("sk-bench-sched").await;
    let env = queue.role_env(&db, dir);
    // A consumer that records lateness and, around the failover, every job.
    let target = sentryk8s::queue::AmqpTarget::parse(&common::amqp_url()).expect("amqp url");
    let connection =
        sentryk8s::queue::connect(&target, "bench", Duration::from_secs(30)).await.expect("RabbitMQ");
    let channel = connection.open_channel(None).await.expect("channel");
    let mut args = BasicConsumeArguments::new(&queue.topology.queue, "bench");
    args.no_ack = true;
    let (_, mut rx) = channel.basic_consume_rx(args).await.expect("consume");
    let consumed = Arc::new(Mutex::new(Consumed::default()));
    {
        let consumed = consumed.clone();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let now = now_ms();
                let key = m
                    .basic_properties
                    .as_ref()
                    .and_then(|p| p.message_id())
                    .and_then(|id| id.split_once(':'))
                    .and_then(|(c, s)| Some((c.parse::<i64>().ok()?, s.parse::<i64>().ok()?)));
                let Ok(mut c) = consumed.lock() else { continue };
                c.received += 1;
                if let Some((check, slot)) = key {
                    if c.measuring {
                        c.lateness.push(now - slot);
                    }
                    if c.recording {
                        c.messages.push((now, check, slot));
                    }
                }
            }
        });
    }
    let received = || consumed.lock().map(|c| c.received).unwrap_or(0);
    let lease_env = [
        ("SENTRYK8S_SCHEDULER__LEASE_TTL", format!("{ttl_s}s")),
        ("SENTRYK8S_SCHEDULER__RENEW_INTERVAL", format!("{}ms", ttl_s * 1000 / 3)),
    ];
    let spawn = |name: &str, addr: SocketAddr| {
        let mut extra: Vec<(&str, String)> = lease_env.to_vec();
        extra.push(("SENTRYK8S_LISTEN", addr.to_string()));
        extra.push(("HOSTNAME", format!("bench-sched-{name}")));
        common::spawn_sentryk8s(&env, &["scheduler"], &extra, &format!("scheduler-{checks}-{name}"))
    };

    // 1. A alone.
    let a_addr: SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
    let spawned = Instant::now();
    let a = spawn("a", a_addr);
    let pid = a.pid();
    let mut all_owned = None;
    while spawned.elapsed() < Duration::from_secs(180) {
        let owned: i64 = db
            .client
            .query_one("SELECT count(*) FROM partition_leases WHERE owner IS NOT NULL", &[])
            .await
            .expect("leases")
            .get(0);
        // Claimed, every chunk of partitions loaded, and jobs flowing.
        let (chunks, _) = loads(&metrics(a_addr).await);
        if owned == PARTITIONS as i64 && chunks >= (PARTITIONS as f64 / 16.0).ceil() && received() > 0 {
            all_owned = Some(spawned.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_owned = all_owned.expect("the scheduler took all partitions");
    let (n0, s0) = loads(&metrics(a_addr).await);
    let initial_load = format!(
        "{n0:.0} chunk loads (≤ 16 partitions each), {:.0} ms each on average",
        s0 / n0.max(1.0) * 1000.0
    );
    println!("all {PARTITIONS} partitions owned, loaded and dispatching {all_owned:.2?} after start; {initial_load}");
    tokio::time::sleep(Duration::from_millis(interval_ms.min(20_000))).await;
    if let Ok(mut c) = consumed.lock() {
        c.measuring = true;
    }
    let received_before = received();
    let buckets_before =
        common::histogram_buckets(&metrics(a_addr).await, "sentryk8s_dispatch_lateness_seconds");
    let cpu_before = common::cpu_seconds(pid);
    let measure_started = Instant::now();
    let mut peak_rss = 0;
    while measure_started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak_rss = peak_rss.max(common::rss_bytes(pid));
    }
    let measured_s = measure_started.elapsed().as_secs_f64();
    let cores = (common::cpu_seconds(pid) - cpu_before) / measured_s;
    let rss_end = common::rss_bytes(pid);
    let got = received() - received_before;
    let mut buckets =
        common::histogram_buckets(&metrics(a_addr).await, "sentryk8s_dispatch_lateness_seconds");
    common::add_buckets(&mut buckets, &buckets_before, -1.0);
    let mut late = consumed
        .lock()
        .map(|mut c| {
            c.measuring = false;
            std::mem::take(&mut c.lateness)
        })
        .unwrap_or_default();
    late.sort_unstable();
    let pct = |p: f64| late.get(((late.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0);
    println!(
        "A alone: {cores:.3} cores, RSS {:.0} MB, {:.0} jobs/s",
        rss_end as f64 / 1e6,
        got as f64 / measured_s
    );

    // 2. B joins; A hands over B's share.
    let b_addr: SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
    let b_started = Instant::now();
    let b = spawn("b", b_addr);
    let mut stable_since = Instant::now();
    let mut last_count = 0;
    let mut handover = Duration::ZERO;
    while b_started.elapsed() < Duration::from_secs(90) {
        let o = owners(&db).await;
        let count = owned_by(&o, "bench-sched-b").len();
        let total: usize = o.iter().filter(|(k, _)| !k.is_empty()).map(|(_, v)| v.len()).sum();
        if count != last_count || total != PARTITIONS as usize {
            last_count = count;
            stable_since = Instant::now();
            handover = b_started.elapsed();
        } else if count > 0 && stable_since.elapsed() > Duration::from_secs(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("B owns {last_count} partitions, settled {handover:.2?} after its start");
    tokio::time::sleep(Duration::from_secs(5)).await;

    // 3. kill -9 B.
    let b_parts: Vec<i32> = owned_by(&owners(&db).await, "bench-sched-b");
    let b_set: HashSet<i64> = b_parts.iter().map(|p| *p as i64).collect();
    if let Ok(mut c) = consumed.lock() {
        c.recording = true;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (l0, ls0) = loads(&metrics(a_addr).await);
    let t_kill = now_ms();
    b.signal(Signal::SIGKILL);
    drop(b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expiry: i64 = db
        .client
        .query_one(
            "SELECT (extract(epoch FROM max(expires_at)) * 1000)::bigint FROM partition_leases
              WHERE partition = ANY($1)",
            &[&b_parts],
        )
        .await
        .expect("expiry")
        .get(0);
    let mut t_owned = None;
    let deadline = Instant::now() + Duration::from_secs(ttl_s + 60);
    while Instant::now() < deadline {
        let o = owners(&db).await;
        let a_parts: HashSet<i32> = owned_by(&o, "bench-sched-a").into_iter().collect();
        if b_parts.iter().all(|p| a_parts.contains(p)) {
            t_owned = Some(now_ms());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t_owned = t_owned.expect("A took over B's partitions");
    // Keep recording until A has loaded B's partitions and its catch-up of
    // the slots due meanwhile has reached the consumer: the count of
    // received jobs for B's partitions stops growing for 2 s.
    let chunks = (b_parts.len() as f64 / 16.0).ceil();
    let (w0, w1) = (t_kill - 2000, t_owned + 2000);
    let in_window_count = || {
        consumed
            .lock()
            .map(|c| {
                c.messages
                    .iter()
                    .filter(|(_, ch, s)| *s >= w0 && *s < w1 && b_set.contains(&(ch % PARTITIONS as i64)))
                    .count()
            })
            .unwrap_or(0)
    };
    let settle_deadline = Instant::now() + Duration::from_secs(30);
    let (mut last_seen, mut steady_since) = (usize::MAX, Instant::now());
    while Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if now_ms() < w1 || loads(&metrics(a_addr).await).0 - l0 < chunks {
            continue;
        }
        let n = in_window_count();
        if n != last_seen {
            (last_seen, steady_since) = (n, Instant::now());
        } else if steady_since.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let (l1, ls1) = loads(&metrics(a_addr).await);
    let messages = consumed
        .lock()
        .map(|mut c| {
            c.recording = false;
            std::mem::take(&mut c.messages)
        })
        .unwrap_or_default();
    let first_job = messages
        .iter()
        .filter(|(recv, check, _)| *recv > t_kill + 100 && b_set.contains(&(check % PARTITIONS as i64)))
        .map(|(recv, _, _)| *recv)
        .min()
        .unwrap_or(i64::MAX);
    // Every slot of B's checks from 2 s before the kill to 2 s after the takeover.
    let b_checks: Vec<i64> = db
        .client
        .query("SELECT id FROM checks WHERE partition = ANY($1)", &[&b_parts])
        .await
        .expect("checks")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let interval = interval_ms as i64;
    let mut expected: HashSet<(i64, i64)> = HashSet::new();
    for id in &b_checks {
        let p = slots::phase(*id, interval);
        let mut s = slots::slot_at_or_after(w0, interval, p);
        while s < w1 {
            expected.insert((*id, s));
            s += interval;
        }
    }
    let in_window: Vec<&(i64, i64, i64)> = messages
        .iter()
        .filter(|(_, c, s)| *s >= w0 && *s < w1 && b_set.contains(&(c % PARTITIONS as i64)))
        .collect();
    let distinct: HashSet<(i64, i64)> = in_window.iter().map(|(_, c, s)| (*c, *s)).collect();
    let lost = expected.difference(&distinct).count() as u64;
    let max_late = in_window.iter().map(|(r, _, s)| r - s).max().unwrap_or(0);
    let takeover_load = format!(
        "{:.0} chunk loads, {:.0} ms each; {:.1} ms per partition",
        l1 - l0,
        (ls1 - ls0) / (l1 - l0).max(1.0) * 1000.0,
        (ls1 - ls0) / b_parts.len().max(1) as f64 * 1000.0
    );
    println!(
        "kill → expiry {} ms, expiry → first job {} ms, expiry → all owned {} ms; {takeover_load}; slots {} expected, {lost} lost, {} duplicates",
        expiry - t_kill,
        first_job - expiry,
        t_owned - expiry,
        expected.len(),
        in_window.len() as u64 - distinct.len() as u64
    );

    drop(a);
    let _ = connection.close().await;
    queue.delete().await;
    db.drop_db().await;
    SizeReport {
        checks,
        interval_ms,
        insert_s,
        measured_s,
        received_per_s: got as f64 / measured_s,
        rss_end_mb: rss_end as f64 / 1e6,
        rss_peak_mb: peak_rss as f64 / 1e6,
        cores,
        published_p50_p99: format!(
            "{} / {}",
            common::bucket_quantile(&buckets, 0.5),
            common::bucket_quantile(&buckets, 0.99)
        ),
        consumer_p50: pct(0.5),
        consumer_p99: pct(0.99),
        consumer_max: late.last().copied().unwrap_or(0),
        all_owned_s: all_owned.as_secs_f64(),
        initial_load,
        handover_s: handover.as_secs_f64(),
        b_partitions: b_parts.len(),
        b_checks: b_checks.len(),
        kill_to_expiry_ms: expiry - t_kill,
        expiry_to_first_job_ms: first_job - expiry,
        expiry_to_all_owned_ms: t_owned - expiry,
        takeover_load,
        failover_expected: expected.len() as u64,
        failover_lost: lost,
        failover_duplicates: in_window.len() as u64 - distinct.len() as u64,
        failover_max_lateness_ms: max_late,
    }
}

fn report(header: &str, ttl_s: u64, reports: &[SizeReport]) {
    let mut md = String::from(header);
    let _ = writeln!(
        md,
        "- one release `sentryk8s scheduler` (A), then a second (B) that is killed with SIGKILL; \
         lease TTL {ttl_s} s, renewal every {} ms; 256 partitions; PostgreSQL and RabbitMQ shared with other work\n",
        ttl_s * 1000 / 3
    );
    md.push_str("| figure |");
    for r in reports {
        let _ = write!(md, " {} checks |", r.checks);
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(reports.len()));
    md.push('\n');
    let row = |md: &mut String, name: &str, f: &dyn Fn(&SizeReport) -> String| {
        let _ = write!(md, "| {name} |");
        for r in reports {
            let _ = write!(md, " {} |", f(r));
        }
        md.push('\n');
    };
    row(&mut md, "interval, due slots per second", &|r| {
        format!("{} s, {:.0}/s", r.interval_ms / 1000, r.checks as f64 * 1000.0 / r.interval_ms as f64)
    });
    row(&mut md, "inserting the checks (one INSERT … generate_series)", &|r| {
        format!("{:.1} s", r.insert_s)
    });
    row(&mut md, "A alone: measured for", &|r| format!("{:.0} s", r.measured_s));
    row(&mut md, "A alone: jobs received per second", &|r| format!("{:.0}", r.received_per_s));
    row(&mut md, "A alone: resident memory (end / peak)", &|r| {
        format!("{:.0} MB / {:.0} MB", r.rss_end_mb, r.rss_peak_mb)
    });
    row(&mut md, "A alone: CPU", &|r| format!("{:.3} cores", r.cores));
    row(&mut md, "A alone: publish − slot p50 / p99 (scheduler histogram)", &|r| {
        r.published_p50_p99.clone()
    });
    row(&mut md, "A alone: receive − slot at a consumer p50 / p99 / max", &|r| {
        format!("{} / {} / {} ms", r.consumer_p50, r.consumer_p99, r.consumer_max)
    });
    row(&mut md, "A start → all 256 partitions owned, loaded and dispatching", &|r| {
        format!("{:.2} s", r.all_owned_s)
    });
    row(&mut md, "A's initial load", &|r| r.initial_load.clone());
    row(&mut md, "B joins: partitions handed to B / settled after", &|r| {
        format!("{} ({} checks) / {:.2} s", r.b_partitions, r.b_checks, r.handover_s)
    });
    row(&mut md, "kill -9 B → its leases expire (TTL left)", &|r| format!("{} ms", r.kill_to_expiry_ms));
    row(&mut md, "**lease expiry → A's first job for a taken-over partition**", &|r| {
        format!("**{} ms**", r.expiry_to_first_job_ms)
    });
    row(&mut md, "lease expiry → A owns all of B's partitions", &|r| {
        format!("{} ms", r.expiry_to_all_owned_ms)
    });
    row(&mut md, "takeover load of B's partitions (from A's histogram)", &|r| r.takeover_load.clone());
    row(
        &mut md,
        "B's slots from 2 s before the kill to 2 s after the takeover: expected / lost / duplicates",
        &|r| format!("{} / {} / {}", r.failover_expected, r.failover_lost, r.failover_duplicates),
    );
    row(&mut md, "latest of those jobs (receive − slot)", &|r| {
        format!("{:.1} s", r.failover_max_lateness_ms as f64 / 1000.0)
    });
    md.push_str(
        "\nThe time from the kill to the lease expiry is whatever was left of B's TTL; a SIGTERM instead hands \
         partitions back at once. The first job for a taken-over partition is published after A's rebalance \
         (every second) claims the expired lease and loads the partition's checks; the slots due meanwhile are \
         published late (catch-up from the watermark), not lost. Duplicates are slots B published but whose \
         watermark it had not yet written: harmless downstream (one result row per check and slot).\n",
    );
    common::write_result("scheduler_scale.md", &md);
    println!("\n{md}");
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.checks.to_string(),
                r.interval_ms.to_string(),
                format!("{:.1}", r.received_per_s),
                format!("{:.1}", r.rss_end_mb),
                format!("{:.1}", r.rss_peak_mb),
                format!("{:.4}", r.cores),
                r.consumer_p50.to_string(),
                r.consumer_p99.to_string(),
                format!("{:.3}", r.all_owned_s),
                r.expiry_to_first_job_ms.to_string(),
                r.expiry_to_all_owned_ms.to_string(),
                r.failover_expected.to_string(),
                r.failover_lost.to_string(),
                r.failover_duplicates.to_string(),
            ]
        })
        .collect();
    common::write_csv(
        "scheduler_scale.csv",
        &[
            "checks",
            "interval_ms",
            "jobs_per_s",
            "rss_end_mb",
            "rss_peak_mb",
            "cores",
            "consumer_p50_ms",
            "consumer_p99_ms",
            "all_owned_s",
            "expiry_to_first_job_ms",
            "expiry_to_all_owned_ms",
            "failover_expected_slots",
            "failover_lost",
            "failover_duplicates",
        ],
        &rows,
    );
}
