//! Benchmark "probe cost": checks per second and CPU milliseconds per check
//! of three probers against the same local HTTP target (nginx, one worker
//! process, every request on a new connection), measured in one run:
//!
//! 1. one `sentryk8s worker` (release build) consuming pre-published jobs,
//!    results persisted to PostgreSQL; CPU from /proc/<pid>/stat over the
//!    steady part (5 % → 95 % of the jobs), and the CPU of the PostgreSQL
//!    backends serving it over the same part; the rows it made PostgreSQL
//!    write per check (inserted + updated tuples of every table of the
//!    bench database, from `pg_stat_user_tables`, over the whole run);
//! 2. Prometheus' blackbox_exporter (`http_2xx` module) driven through
//!    `/probe` by concurrent keep-alive clients; the exporter's CPU;
//! 3. the Nagios / monitoring-plugins `check_http`, many processes at once
//!    as a Nagios or Icinga core runs it: its CPU is that of every
//!    check_http process from exec to exit (getrusage(RUSAGE_CHILDREN) of
//!    the harness, which starts and reaps them), process start-up included,
//!    because that is what each check costs; the harness's own spawning
//!    CPU is reported apart.
//!
//! Run: `bench/run.sh probe` (installs nginx-light,
//! prometheus-blackbox-exporter and monitoring-plugins-basic, starts the
//! services), i.e. `cargo bench --bench worker_probe`. Without nginx a
//! built-in hyper server is the target, without the exporter or
//! check_http their part is skipped (said loudly).
//!
//! The jobs are those of BENCH_CHECKS distinct checks (default 1000, each
//! a row of `checks`, as the worker's state and history need), interval
//! 60 s, published round by round: consecutive jobs are of different
//! checks, so a batch of 1000 results touches 1000 state rows and 1000
//! hourly + 1000 daily rollup rows, as a real batch does (one check's
//! results would make the upserts artificially cheap, or contended). The
//! worker takes slots from one interval back to five minutes ahead only,
//! so a check's rounds are 1 ms apart (not 60 s: 200 rounds would span
//! 200 minutes), its phase i × 60 ms spreads the checks over the interval
//! as the scheduler does, and the slots start 75 s ahead (none goes stale
//! while the queue fills) and never let a slot's 60 s straddle an hour
//! boundary (a real 60 s check's does 1 time in 60, adding 0.017 hourly
//! rows per check that this figure leaves out).
//!
//! Knobs (environment): BENCH_JOBS (default 200000), BENCH_CONCURRENCY
//! (worker --concurrency, default 512), BENCH_BATCH (worker.batch_size,
//! default 1000), BENCH_PROBES (blackbox probes, default 30000),
//! BENCH_PROBE_CONCURRENCY (default 64), BENCH_CHECK_HTTP (check_http runs,
//! default 6000), BENCH_CHECK_HTTP_CONCURRENCY (processes at once, default 32),
//! BENCH_WORKER_ONLY=1 (measure the worker alone, for before/after runs),
//! BENCH_KINDS_ONLY=1 (only the network kinds' rows, to
//! bench/results/worker_probe_kinds.md).
//!
//! In the same run, `probe_kinds.rs` measures the TCP, TLS, DNS, ICMP and
//! gRPC probes against local servers (one row per kind).
//!
//! Writes bench/results/worker_probe.md, worker_probe.csv and
//! worker_probe.svg.

#[path = "common/mod.rs"]
mod common;
mod probe_kinds;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amqprs::channel::{BasicPublishArguments, QueueDeclareArguments};
use amqprs::BasicProperties;
use chrono::Utc;
use common::{
    cpu_delta, cpu_seconds, cpu_seconds_with_children, env_or, free_port, http_get, wait_port, which, Killer,
};
use sentryk8s::model::{job::slot_from_millis, CheckJob, CheckSpec, JOB_SCHEMA_VERSION};
use sentryk8s::queue::{self, AmqpTarget, Topology};
use tokio::net::TcpStream;

/// One prober's figures.
struct Measured {
    name: String,
    per_second: f64,
    cpu_ms: f64,
    target_cpu_ms: f64,
    detail: String,
}

/// CPU seconds (user + system) of the children this process has reaped.
fn children_cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(0.0)
}

/// Runs `check_http` `total` times, `concurrency` processes at once.
async fn check_http_runs(
    program: &str,
    port: u16,
    total: u64,
    concurrency: u64,
    nginx_pid: Option<u32>,
) -> Measured {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let cpu0 = children_cpu_seconds();
    let own0 = cpu_seconds(std::process::id());
    let nginx0 = nginx_pid.map(cpu_seconds_with_children).unwrap_or(0.0);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let program = program.to_string();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut runs) = (0u64, 0u64);
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let status = tokio::process::Command::new(&program)
                    .args(["-I", "127.0.0.1", "-H", "bench", "-p", &port.to_string(), "-u", "/", "-t", "10"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await;
                runs += 1;
                if matches!(status, Ok(s) if s.success()) {
                    ok += 1;
                }
            }
            (runs, ok)
        }));
    }
    let (mut runs, mut ok) = (0, 0);
    for t in tasks {
        if let Ok((r, o)) = t.await {
            runs += r;
            ok += o;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu_ms = (children_cpu_seconds() - cpu0) * 1000.0 / runs.max(1) as f64;
    let spawn_ms = (cpu_seconds(std::process::id()) - own0) * 1000.0 / runs.max(1) as f64;
    let target_cpu_ms =
        (nginx_pid.map(cpu_seconds_with_children).unwrap_or(0.0) - nginx0) * 1000.0 / runs.max(1) as f64;
    Measured {
        name: format!("check_http, {concurrency} processes at once"),
        per_second: runs as f64 / secs,
        cpu_ms,
        target_cpu_ms,
        detail: format!(
            "{ok} of {runs} runs exited OK in {secs:.1} s; the harness spent another {spawn_ms:.3} ms CPU per run starting and reaping them (not counted)"
        ),
    }
}

/// Tuples written to one table (a partitioned table's partitions summed
/// under its name), from `pg_stat_user_tables`.
#[derive(Debug, Clone, Default)]
struct TableWrites {
    inserted: i64,
    updated: i64,
    deleted: i64,
}

/// Tuples inserted, updated and deleted so far in the bench database, by
/// table. Stats reach `pg_stat_user_tables` when a backend flushes them: at
/// exit (the worker's, stopped before the last reading) or, for this
/// connection, when forced.
async fn table_writes(client: &tokio_postgres::Client) -> BTreeMap<String, TableWrites> {
    let _ = client.execute("SELECT pg_stat_force_next_flush()", &[]).await;
    let rows = client
        .query(
            "SELECT coalesce(p.relname, s.relname)::text, sum(s.n_tup_ins)::int8, sum(s.n_tup_upd)::int8,
                    sum(s.n_tup_del)::int8
               FROM pg_stat_user_tables s
               LEFT JOIN pg_inherits i ON i.inhrelid = s.relid
               LEFT JOIN pg_class p ON p.oid = i.inhparent
              GROUP BY 1",
            &[],
        )
        .await
        .expect("read pg_stat_user_tables");
    rows.iter()
        .map(|r| (r.get(0), TableWrites { inserted: r.get(1), updated: r.get(2), deleted: r.get(3) }))
        .collect()
}

/// What the worker made PostgreSQL write: by table, over `checks` stored.
struct RowsWritten {
    tables: Vec<(String, TableWrites)>,
    checks: i64,
}

impl RowsWritten {
    fn between(
        before: &BTreeMap<String, TableWrites>,
        after: &BTreeMap<String, TableWrites>,
        checks: i64,
    ) -> RowsWritten {
        let tables = after
            .iter()
            .map(|(name, a)| {
                let b = before.get(name).cloned().unwrap_or_default();
                let d = TableWrites {
                    inserted: a.inserted - b.inserted,
                    updated: a.updated - b.updated,
                    deleted: a.deleted - b.deleted,
                };
                (name.clone(), d)
            })
            .filter(|(_, d)| d.inserted + d.updated + d.deleted != 0)
            .collect();
        RowsWritten { tables, checks }
    }

    /// Inserted + updated rows per stored check.
    fn per_check(&self) -> f64 {
        let rows: i64 = self.tables.iter().map(|(_, d)| d.inserted + d.updated).sum();
        rows as f64 / self.checks.max(1) as f64
    }
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
    let check_http_total = env_or("BENCH_CHECK_HTTP", 6_000);
    let check_http_concurrency = env_or("BENCH_CHECK_HTTP_CONCURRENCY", 32);
    let checks = env_or("BENCH_CHECKS", 1000).clamp(1, jobs.max(1));
    let interval_ms: u64 = 60_000;
    let worker_only = env_or("BENCH_WORKER_ONLY", 0) == 1;
    if env_or("BENCH_KINDS_ONLY", 0) == 1 {
        // The network kinds' rows alone (no nginx, broker or database).
        let kinds = tokio::task::spawn_blocking(probe_kinds::rows).await.expect("kind rows");
        common::write_result("worker_probe_kinds.md", &probe_kinds::markdown(&kinds));
        return;
    }
    let header = common::report_header(
        "Probe cost: sentryk8s worker vs blackbox_exporter vs check_http",
        "bench/run.sh probe",
    );
    println!("{header}");
    let scratch = common::Scratch::new("probe");
    let dir = scratch.0.clone();

    // Target.
    let target_port = free_port();
    let target_addr: SocketAddr = ([127, 0, 0, 1], target_port).into();
    let nginx = common::start_nginx(&dir, target_port);
    let _builtin;
    let target_name = if nginx.is_some() {
        "nginx (1 worker process, `return 200`, keepalive_timeout 0)"
    } else {
        println!("!! nginx not found (apt-get install nginx-light): using the built-in hyper target");
        _builtin = common::spawn_delay_target(target_port);
        "built-in hyper server (Connection: close)"
    };
    assert!(wait_port(target_addr).await, "target did not start");
    let nginx_pid = nginx.as_ref().map(Killer::pid);

    // Database and broker.
    let db = common::BenchDb::create("skbench_probe", 16).await;
    let url = format!("http://127.0.0.1:{target_port}/");
    let spec: CheckSpec =
        serde_json::from_value(serde_json::json!({"url": url, "timeout_ms": 5000})).expect("spec");
    let spec_json = serde_json::to_value(&spec).expect("spec json");
    let ids: Vec<i64> = db
        .client
        .query(
            "INSERT INTO checks (name, interval_ms, spec)
             SELECT 'bench-' || i, $3, $2 FROM generate_series(1, $1::int) i ORDER BY i RETURNING id",
            &[&(checks as i32), &spec_json, &(interval_ms as i32)],
        )
        .await
        .expect("insert checks")
        .iter()
        .map(|r| r.get(0))
        .collect();

    let bench_queue = common::BenchQueue::declare("sk-bench-probe").await;
    let topology: Topology = bench_queue.topology.clone();
    let amqp_url = common::amqp_url();
    let target = AmqpTarget::parse(&amqp_url).expect("amqp url");
    let connection =
        queue::connect(&target, "sentryk8s-bench", Duration::from_secs(30)).await.expect("RabbitMQ");
    let channel = connection.open_channel(None).await.expect("channel");

    print!("publishing {jobs} jobs for {checks} checks … ");
    let _ = std::io::stdout().flush();
    // Round r of check i: base + r ms + i × interval / checks. `base` is
    // 75 s ahead, moved to the next hour when the slots' time would
    // straddle one: the last slot is then at most 4.3 minutes ahead,
    // inside the worker's 5, and the first goes stale 135 s after now.
    let (every, n_checks, rounds) = (interval_ms as i64, checks as i64, (jobs / checks) as i64 + 1);
    let mut base = Utc::now().timestamp_millis() + 75_000;
    let next_hour = (base / 3_600_000 + 1) * 3_600_000;
    if base + 2 * every + rounds >= next_hour {
        base = next_hour;
    }
    let published = Instant::now();
    for k in 0..jobs {
        let i = (k % checks) as usize;
        let job = CheckJob {
            v: JOB_SCHEMA_VERSION,
            check_id: ids[i],
            name: format!("bench-{}", i + 1),
            slot: slot_from_millis(base + (k / checks) as i64 + i as i64 * every / n_checks),
            interval_ms,
            version: 1,
            spec: spec.clone(),
        };
        let props =
            BasicProperties::default().with_message_id(&job.message_id()).with_persistence(true).finish();
        channel
            .basic_publish(props, job.encode(), BasicPublishArguments::new(&topology.exchange, "check"))
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
    let _ = connection.close().await;

    // The worker.
    let writes_before = table_writes(&db.client).await;
    let own_pid: i32 = db.client.query_one("SELECT pg_backend_pid()", &[]).await.expect("backend pid").get(0);
    let own_pid = own_pid as u32;
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let env = bench_queue.role_env(&db, &dir);
    let worker = common::spawn_sentryk8s(
        &env,
        &["worker"],
        &[
            ("SENTRYK8S_LISTEN", listen.to_string()),
            ("SENTRYK8S_WORKER__CONCURRENCY", concurrency.to_string()),
            ("SENTRYK8S_WORKER__BATCH_SIZE", batch.to_string()),
        ],
        "worker",
    );
    let pid = worker.pid();

    let (lo, hi) = (jobs as f64 * 0.05, jobs as f64 * 0.95);
    let mut start: Option<(Instant, f64, f64, f64)> = None;
    let mut end: Option<(Instant, f64, f64, f64)> = None;
    // CPU of the PostgreSQL backends serving the worker (not this harness).
    let db_ref = &db;
    let backends = move || async move {
        let pids = db_ref.backend_pids().await;
        pids.into_iter().filter(|p| *p != own_pid).map(|p| (p, cpu_seconds(p))).collect::<HashMap<_, _>>()
    };
    let (mut pg_start, mut pg_end) = (HashMap::new(), HashMap::new());
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut last = (0.0, 0.0);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some((done, ok)) = checks_done(listen).await else { continue };
        last = (done, ok);
        let sample =
            (Instant::now(), done, cpu_seconds(pid), nginx_pid.map(cpu_seconds_with_children).unwrap_or(0.0));
        if start.is_none() && done >= lo {
            start = Some(sample);
            pg_start = backends().await;
        }
        if end.is_none() && done >= hi {
            end = Some(sample);
            pg_end = backends().await;
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
        rows = db.client.query_one("SELECT count(*) FROM check_results", &[]).await.expect("count").get(0);
        if rows >= jobs as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = e.1 - s.1;
    let secs = e.0.duration_since(s.0).as_secs_f64();
    drop(worker);
    // The worker's backends flush their statistics as they exit.
    for _ in 0..100 {
        if db.backend_pids().await.iter().all(|p| *p == own_pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let written = RowsWritten::between(&writes_before, &table_writes(&db.client).await, rows);
    let pg_ms = cpu_delta(&pg_start, &pg_end) * 1000.0 / n;
    let mut measured = vec![Measured {
        name: format!("sentryk8s worker --concurrency {concurrency}"),
        per_second: n / secs,
        cpu_ms: (e.2 - s.2) * 1000.0 / n,
        target_cpu_ms: (e.3 - s.3) * 1000.0 / n,
        detail: format!(
            "measured over {n:.0} checks in {secs:.2} s (5 % → 95 % of {jobs} jobs for {checks} checks, interval {interval_ms} ms, batch_size {batch}); {} of {jobs} succeeded; {rows} rows in check_results; the PostgreSQL backends serving it spent {pg_ms:.3} ms CPU per check; PostgreSQL wrote {:.2} rows per check",
            last.1,
            written.per_check()
        ),
    }];
    println!(
        "{}: {:.0} checks/s, {:.3} ms CPU per check (PostgreSQL backends {pg_ms:.3} ms), {:.2} rows written per check",
        measured[0].name,
        measured[0].per_second,
        measured[0].cpu_ms,
        written.per_check()
    );

    // blackbox_exporter against the same target.
    match which("prometheus-blackbox-exporter") {
        _ if worker_only => println!("BENCH_WORKER_ONLY=1: blackbox_exporter skipped"),
        None => println!("!! prometheus-blackbox-exporter not found (apt-get install prometheus-blackbox-exporter): skipped"),
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
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn blackbox_exporter");
            let exporter = Killer::new(child);
            let exporter_pid = exporter.pid();
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
            let nginx_ms =
                (nginx_pid.map(cpu_seconds_with_children).unwrap_or(0.0) - nginx0) * 1000.0 / sent as f64;
            drop(exporter);
            measured.push(Measured {
                name: format!("blackbox_exporter, {probe_concurrency} concurrent /probe"),
                per_second: sent as f64 / secs,
                cpu_ms,
                target_cpu_ms: nginx_ms,
                detail: format!("{succeeded} of {sent} probes succeeded (probe_success 1) in {secs:.1} s"),
            });
            println!("blackbox_exporter: {:.0} probes/s, {cpu_ms:.3} ms CPU per probe", sent as f64 / secs);
        }
    }

    // check_http against the same target.
    match which("check_http") {
        _ if worker_only => println!("BENCH_WORKER_ONLY=1: check_http skipped"),
        None => println!("!! check_http not found (apt-get install monitoring-plugins-basic): skipped"),
        Some(program) => {
            let m =
                check_http_runs(&program, target_port, check_http_total, check_http_concurrency, nginx_pid)
                    .await;
            println!("check_http: {:.0} checks/s, {:.3} ms CPU per check", m.per_second, m.cpu_ms);
            measured.push(m);
        }
    }

    bench_queue.delete().await;
    db.drop_db().await;
    drop(nginx);
    // The other check kinds, the prober alone (bench/probe_kinds.rs); on a
    // blocking thread: it builds runtimes of its own.
    let kinds = match worker_only {
        true => Vec::new(),
        false => tokio::task::spawn_blocking(probe_kinds::rows).await.expect("kind rows"),
    };
    report(&header, target_name, &url, &measured, &written, pg_ms, &kinds);
}

fn report(
    header: &str,
    target: &str,
    url: &str,
    measured: &[Measured],
    written: &RowsWritten,
    pg_ms: f64,
    kinds: &[probe_kinds::KindRow],
) {
    let mut md = String::from(header);
    let _ = writeln!(md, "- target: {target} at {url}, the same for every prober, in one run\n");
    let worker = &measured[0];
    md.push_str("| prober | checks/s | CPU ms per check (prober) | target CPU ms per request | CPU per check vs the worker | checks/s vs the worker |\n|---|---|---|---|---|---|\n");
    for m in measured {
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.3} | {:.3} | {:.1}× | {:.2}× |",
            m.name,
            m.per_second,
            m.cpu_ms,
            m.target_cpu_ms,
            m.cpu_ms / worker.cpu_ms,
            m.per_second / worker.per_second
        );
    }
    md.push('\n');
    for m in measured {
        let _ = writeln!(md, "- {}: {}", m.name, m.detail);
    }
    md.push_str(
        "\nCPU is user + system time of the prober's processes over the measured part: the worker's from \
         /proc/<pid>/stat (it also writes every result to PostgreSQL, whose CPU is not counted here; \
         blackbox_exporter and check_http store nothing), the exporter's likewise, check_http's from \
         getrusage(RUSAGE_CHILDREN) (exec, dynamic loading and the check itself, per process). The target's \
         CPU per request is given for scale. Throughput depends on the free CPU of the shared 2-core machine; \
         the CPU per check is the steadier figure.\n\nPlot: [worker_probe.svg](worker_probe.svg).\n",
    );
    let _ = writeln!(
        md,
        "\n## What the worker made PostgreSQL do\n\n\
         - CPU of the PostgreSQL backends serving the worker, over the measured part: {pg_ms:.3} ms per check\n\
         - rows written (inserted + updated) per stored check: **{:.2}**, over the whole run ({} checks stored)\n\n\
         | table | inserted | updated | deleted | rows written per check |\n|---|---|---|---|---|",
        written.per_check(),
        written.checks
    );
    for (table, d) in &written.tables {
        let _ = writeln!(
            md,
            "| {table} | {} | {} | {} | {:.3} |",
            d.inserted,
            d.updated,
            d.deleted,
            (d.inserted + d.updated) as f64 / written.checks.max(1) as f64
        );
    }
    md.push_str(
        "\nTuples from `pg_stat_user_tables` of the bench database (a partitioned table's partitions summed \
         under its name), read before the worker starts and after it has stopped (its backends flush their \
         statistics as they exit); an upsert that updates counts as updated.\n",
    );
    md.push_str(&probe_kinds::markdown(kinds));
    common::write_csv(
        "worker_probe_kinds.csv",
        &["kind", "checks_per_s", "cpu_ms_per_check", "up", "checks"],
        &probe_kinds::csv_rows(kinds),
    );
    common::write_result("worker_probe.md", &md);
    println!("\n{md}");
    let rows: Vec<Vec<String>> = measured
        .iter()
        .map(|m| {
            vec![
                format!("\"{}\"", m.name),
                format!("{:.1}", m.per_second),
                format!("{:.4}", m.cpu_ms),
                format!("{:.4}", m.target_cpu_ms),
            ]
        })
        .collect();
    common::write_csv(
        "worker_probe.csv",
        &["prober", "checks_per_s", "cpu_ms_per_check", "target_cpu_ms_per_request"],
        &rows,
    );
    let mut table_rows: Vec<Vec<String>> = written
        .tables
        .iter()
        .map(|(table, d)| {
            vec![
                table.clone(),
                d.inserted.to_string(),
                d.updated.to_string(),
                d.deleted.to_string(),
                format!("{:.4}", (d.inserted + d.updated) as f64 / written.checks.max(1) as f64),
            ]
        })
        .collect();
    table_rows.push(vec![
        "all".into(),
        String::new(),
        String::new(),
        String::new(),
        format!("{:.4}", written.per_check()),
    ]);
    common::write_csv(
        "worker_probe_rows.csv",
        &["table", "inserted", "updated", "deleted", "rows_written_per_check"],
        &table_rows,
    );
    let bars: Vec<(String, f64)> = measured.iter().map(|m| (m.name.clone(), m.cpu_ms)).collect();
    common::write_result(
        "worker_probe.svg",
        &common::svg::bar_chart("CPU per check against the same local nginx (lower is better)", "ms", &bars),
    );
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
