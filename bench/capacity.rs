//! End-to-end capacity on this one machine: two schedulers, workers,
//! PostgreSQL, RabbitMQ and a local target (nginx, one worker process;
//! without nginx the built-in target), with the number of checks raised in
//! steps until the system no longer keeps up.
//!
//! One command (see docs/performance.md, "End-to-end capacity"):
//! `bench/run.sh capacity`, i.e. `cargo bench --bench capacity`.
//!
//! Each step adds checks (interval 10 s) so that `rate` slots fall due per
//! second, lets the schedulers load them (12 s), then measures a 30 s
//! window of slots [a, b):
//! - every due slot of the window is accounted for: it has a result row or
//!   a missed_slots record (the expected slots per check are computed from
//!   the same phase function the scheduler uses); a slot with neither
//!   after a grace period is lost;
//! - dispatch lateness: started_at − slot of the executed checks (what a
//!   user sees: scheduler, broker and worker queueing together), p50 / p90
//!   / p99 / max, and the schedulers' own publish − slot histogram;
//! - CPU by process over the window: the sentryk8s schedulers and workers,
//!   the target, PostgreSQL (the backends of this run's database, and all
//!   postgres processes), beam.smp, and the whole machine.
//!
//! A step is sustained when p99 ≤ 1 s and no slot is lost or missed; the
//! run stops at the first step that is not (or after the last one).
//! Knobs: SK_CAP_RATES (checks/s per step, default
//! 1000,2000,3000,3500,4000,4500,5000,6000,8000), SK_CAP_WORKERS (default 2),
//! SK_CAP_SCHEDULERS (default 2), SK_CAP_MEASURE_S (default 30),
//! SK_CAP_SLOTS_PER_MESSAGE (`scheduler.slots_per_message` of the
//! schedulers, default the binary's) and SK_CAP_QUEUES (`amqp.queues` of
//! every process, default 1). The report gives the slots per message
//! configured and, per step, measured (slots / job messages published).
//! Writes bench/results/capacity.md, capacity.csv and capacity.svg.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::svg::{Figure, Panel, Series, COLORS};
use common::{env_list, env_or, Killer};
use sentryk8s::scheduler::slots;

const INTERVAL_MS: i64 = 10_000;
const SETTLE_S: u64 = 12;
const BUDGET: Duration = Duration::from_secs(480);

struct Step {
    rate: u64,
    checks: u64,
    expected: u64,
    run: u64,
    missed: u64,
    lost: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    publish_p50: String,
    publish_p99: String,
    /// Slots / job messages the schedulers published in the window (NaN
    /// when they published no message or do not count messages).
    slots_per_message: f64,
    cpu: Vec<(&'static str, f64)>,
    sustained: bool,
}

fn main() {
    if common::run_delay_target_if_child() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

/// Processes whose CPU is accounted: name → pids (or the whole machine).
struct Accounting {
    schedulers: Vec<u32>,
    workers: Vec<u32>,
    target: u32,
}

struct CpuSnapshot {
    at: Instant,
    schedulers: f64,
    workers: f64,
    target: f64,
    backends: HashMap<u32, f64>,
    postgres: HashMap<u32, f64>,
    beam: HashMap<u32, f64>,
    harness: f64,
    machine: (f64, f64),
}

async fn snapshot(acc: &Accounting, db: &common::BenchDb) -> CpuSnapshot {
    let backend_pids = db.backend_pids().await;
    CpuSnapshot {
        at: Instant::now(),
        schedulers: acc.schedulers.iter().map(|p| common::cpu_seconds(*p)).sum(),
        workers: acc.workers.iter().map(|p| common::cpu_seconds(*p)).sum(),
        target: common::cpu_seconds_with_children(acc.target),
        backends: backend_pids.iter().map(|p| (*p, common::cpu_seconds(*p))).collect(),
        postgres: common::cpu_by_comm("postgres"),
        beam: common::cpu_by_comm("beam.smp"),
        harness: common::cpu_seconds(std::process::id()),
        machine: common::machine_jiffies(),
    }
}

fn cpu_split(a: &CpuSnapshot, b: &CpuSnapshot) -> Vec<(&'static str, f64)> {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
    let cores = std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(2.0);
    let machine = (b.machine.0 - a.machine.0) / (b.machine.1 - a.machine.1).max(1.0) * cores;
    vec![
        ("sentryk8s schedulers", (b.schedulers - a.schedulers) / secs),
        ("sentryk8s workers", (b.workers - a.workers) / secs),
        ("target", (b.target - a.target) / secs),
        ("postgres (this run's backends)", common::cpu_delta(&a.backends, &b.backends) / secs),
        ("postgres (all processes)", common::cpu_delta(&a.postgres, &b.postgres) / secs),
        ("beam.smp (RabbitMQ)", common::cpu_delta(&a.beam, &b.beam) / secs),
        ("bench harness", (b.harness - a.harness) / secs),
        ("whole machine", machine),
    ]
}

async fn metrics_of(addrs: &[SocketAddr]) -> Vec<(f64, f64)> {
    let mut buckets = Vec::new();
    for addr in addrs {
        if let Some(text) = common::http_get(*addr, "/metrics").await {
            common::add_buckets(
                &mut buckets,
                &common::histogram_buckets(&text, "sentryk8s_dispatch_lateness_seconds"),
                1.0,
            );
        }
    }
    buckets
}

/// (slots, job messages) the schedulers have published so far.
async fn published_of(addrs: &[SocketAddr]) -> (f64, f64) {
    let (mut slots, mut messages) = (0.0, 0.0);
    for addr in addrs {
        if let Some(text) = common::http_get(*addr, "/metrics").await {
            slots += common::metric_sum(&text, "sentryk8s_slots_published_total");
            messages += common::metric_sum(&text, "sentryk8s_job_messages_published_total");
        }
    }
    (slots, messages)
}

/// The binary's default `scheduler.slots_per_message`.
fn default_slots_per_message() -> u64 {
    sentryk8s::config::Config::defaults().map(|c| u64::from(c.scheduler.slots_per_message)).unwrap_or(1)
}

/// How the job messages are cut: `scheduler.slots_per_message` and `amqp.queues`.
#[derive(Clone, Copy)]
struct Format {
    slots_per_message: u64,
    queues: u32,
}

async fn run() {
    let rates = env_list("SK_CAP_RATES", "1000,2000,3000,3500,4000,4500,5000,6000,8000");
    let n_workers = env_or("SK_CAP_WORKERS", 2) as usize;
    let n_schedulers = env_or("SK_CAP_SCHEDULERS", 2) as usize;
    let measure_s = env_or("SK_CAP_MEASURE_S", 30);
    let format = Format {
        slots_per_message: env_or("SK_CAP_SLOTS_PER_MESSAGE", default_slots_per_message()).clamp(1, 500),
        queues: env_or("SK_CAP_QUEUES", 1).clamp(1, 64) as u32,
    };
    // The command as run, with the knobs that were set.
    let knobs: Vec<String> =
        std::env::vars().filter(|(k, _)| k.starts_with("SK_CAP_")).map(|(k, v)| format!("{k}={v}")).collect();
    let command =
        format!("{}{}bench/run.sh capacity", knobs.join(" "), if knobs.is_empty() { "" } else { " " });
    let header = common::report_header("End-to-end capacity", &command);
    println!("{header}");
    let began = Instant::now();
    let scratch = common::Scratch::new("capacity");

    let target_port = common::free_port();
    let (target, target_name): (Killer, &str) = match common::start_nginx(&scratch.0, target_port) {
        Some(k) => (k, "nginx 1 worker process, `return 200`, keepalive_timeout 0"),
        None => {
            println!("!! nginx not found (apt-get install nginx-light): using the built-in target");
            (common::spawn_delay_target(target_port), "built-in hyper target (nginx not installed)")
        }
    };
    assert!(common::wait_port(([127, 0, 0, 1], target_port).into()).await, "target did not start");
    let db = common::BenchDb::create("skbench_cap", 256).await;
    let queue = common::BenchQueue::declare_queues("sk-bench-cap", format.queues).await;
    let env = queue.role_env(&db, &scratch.0);
    let amqp = queue.amqp_env();

    let mut scheds = Vec::new();
    let mut sched_addrs = Vec::new();
    for i in 0..n_schedulers {
        let addr: SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
        let mut vars = vec![
            ("SENTRYK8S_LISTEN", addr.to_string()),
            ("HOSTNAME", format!("bench-scheduler-{i}")),
            ("SENTRYK8S_SCHEDULER__SLOTS_PER_MESSAGE", format.slots_per_message.to_string()),
        ];
        vars.extend(amqp.iter().cloned());
        scheds.push(common::spawn_sentryk8s(&env, &["scheduler"], &vars, &format!("scheduler-{i}")));
        sched_addrs.push(addr);
    }
    let mut workers = Vec::new();
    for i in 0..n_workers {
        let mut vars = vec![
            ("SENTRYK8S_LISTEN", format!("127.0.0.1:{}", common::free_port())),
            ("SENTRYK8S_DATABASE__POOL_SIZE", "4".into()),
            ("HOSTNAME", format!("bench-worker-{i}")),
        ];
        vars.extend(amqp.iter().cloned());
        workers.push(common::spawn_sentryk8s(&env, &["worker"], &vars, &format!("worker-{i}")));
    }
    let acc = Accounting {
        schedulers: scheds.iter().map(Killer::pid).collect(),
        workers: workers.iter().map(Killer::pid).collect(),
        target: target.pid(),
    };
    let url = format!("http://127.0.0.1:{target_port}/");
    let mut steps: Vec<Step> = Vec::new();
    let mut inserted = 0u64;
    for rate in rates {
        if began.elapsed() > BUDGET {
            println!("time budget reached; stopping before {rate}/s");
            break;
        }
        let checks = rate * INTERVAL_MS as u64 / 1000;
        if checks > inserted {
            db.client
                .execute(
                    "INSERT INTO checks (name, interval_ms, spec)
                     SELECT 'cap-' || i, $3, jsonb_build_object('url', $4::text, 'timeout_ms', 5000)
                       FROM generate_series($1::bigint, $2::bigint - 1) i",
                    &[&(inserted as i64), &(checks as i64), &(INTERVAL_MS as i32), &url],
                )
                .await
                .expect("insert checks");
            inserted = checks;
        }
        println!("step {rate} checks/s: {checks} checks; settling {SETTLE_S} s");
        tokio::time::sleep(Duration::from_secs(SETTLE_S)).await;
        let a = chrono::Utc::now().timestamp_millis();
        let cpu_a = snapshot(&acc, &db).await;
        let lat_a = metrics_of(&sched_addrs).await;
        let published_a = published_of(&sched_addrs).await;
        tokio::time::sleep(Duration::from_secs(measure_s)).await;
        let b = chrono::Utc::now().timestamp_millis();
        let cpu_b = snapshot(&acc, &db).await;
        let mut lat = metrics_of(&sched_addrs).await;
        let published_b = published_of(&sched_addrs).await;
        common::add_buckets(&mut lat, &lat_a, -1.0);
        let mut step = evaluate(&db, rate, checks, a, b, cpu_split(&cpu_a, &cpu_b), &lat).await;
        let messages = published_b.1 - published_a.1;
        step.slots_per_message =
            if messages > 0.0 { (published_b.0 - published_a.0) / messages } else { f64::NAN };
        println!(
            "  run {}/{} expected, missed {}, lost {}; started−slot p50 {:.0} ms p99 {:.0} ms max {:.0} ms; {:.2} slots per message; {}",
            step.run,
            step.expected,
            step.missed,
            step.lost,
            step.p50,
            step.p99,
            step.max,
            step.slots_per_message,
            if step.sustained { "sustained" } else { "NOT sustained" }
        );
        let stop = !step.sustained;
        steps.push(step);
        if stop {
            break;
        }
    }
    drop(workers);
    drop(scheds);
    drop(target);
    queue.delete().await;
    db.drop_db().await;
    report(&header, target_name, n_schedulers, n_workers, measure_s, format, &steps, began.elapsed());
}

/// Accounts for every due slot of [a, b) and measures lateness.
async fn evaluate(
    db: &common::BenchDb,
    rate: u64,
    checks: u64,
    a: i64,
    b: i64,
    cpu: Vec<(&'static str, f64)>,
    publish: &[(f64, f64)],
) -> Step {
    let ids: Vec<i64> = db
        .client
        .query("SELECT id FROM checks WHERE enabled", &[])
        .await
        .expect("checks")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected: HashMap<i64, u64> = HashMap::new();
    for id in &ids {
        let p = slots::phase(*id, INTERVAL_MS);
        let first = slots::slot_at_or_after(a, INTERVAL_MS, p);
        if first < b {
            expected.insert(*id, ((b - 1 - first) / INTERVAL_MS + 1) as u64);
        }
    }
    let total_expected: u64 = expected.values().sum();
    let (from, to) = (sentryk8s::model::job::slot_from_millis(a), sentryk8s::model::job::slot_from_millis(b));
    // Wait for stragglers: a job is run or recorded stale within about
    // one interval plus a batch commit.
    let deadline = Instant::now() + Duration::from_secs(25);
    let (mut found, mut missed);
    loop {
        found = HashMap::<i64, u64>::new();
        missed = HashMap::<i64, u64>::new();
        for r in db
            .client
            .query(
                "SELECT check_id, count(*) FROM check_results WHERE slot >= $1 AND slot < $2 GROUP BY check_id",
                &[&from, &to],
            )
            .await
            .expect("results")
        {
            found.insert(r.get(0), r.get::<_, i64>(1) as u64);
        }
        for r in db
            .client
            .query(
                "SELECT check_id, (extract(epoch FROM first_slot) * 1000)::bigint,
                        (extract(epoch FROM last_slot) * 1000)::bigint
                   FROM missed_slots WHERE last_slot >= $1 AND first_slot < $2",
                &[&from, &to],
            )
            .await
            .expect("missed")
        {
            let (id, first, last): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
            let mut s = first.max(slots::slot_at_or_after(a, INTERVAL_MS, first.rem_euclid(INTERVAL_MS)));
            while s <= last && s < b {
                *missed.entry(id).or_default() += 1;
                s += INTERVAL_MS;
            }
        }
        let accounted: u64 = expected
            .iter()
            .map(|(id, n)| {
                (found.get(id).copied().unwrap_or(0) + missed.get(id).copied().unwrap_or(0)).min(*n)
            })
            .sum();
        if accounted >= total_expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lost: u64 = expected
        .iter()
        .map(|(id, n)| {
            n.saturating_sub(found.get(id).copied().unwrap_or(0) + missed.get(id).copied().unwrap_or(0))
        })
        .sum();
    let mut delays: Vec<f64> = db
        .client
        .query(
            "SELECT (extract(epoch FROM started_at - slot) * 1000)::float8 FROM check_results
              WHERE slot >= $1 AND slot < $2",
            &[&from, &to],
        )
        .await
        .expect("delays")
        .iter()
        .map(|r| r.get(0))
        .collect();
    delays.sort_by(f64::total_cmp);
    let run = delays.len() as u64;
    let total_missed: u64 = missed.values().sum();
    let p99 = common::percentile(&delays, 0.99);
    Step {
        rate,
        checks,
        expected: total_expected,
        run,
        missed: total_missed,
        lost,
        p50: common::percentile(&delays, 0.5),
        p90: common::percentile(&delays, 0.9),
        p99,
        max: delays.last().copied().unwrap_or(f64::NAN),
        publish_p50: common::bucket_quantile(publish, 0.5),
        publish_p99: common::bucket_quantile(publish, 0.99),
        slots_per_message: f64::NAN,
        cpu,
        sustained: p99 <= 1000.0 && lost == 0 && total_missed == 0 && run > 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    header: &str,
    target: &str,
    n_schedulers: usize,
    n_workers: usize,
    measure_s: u64,
    format: Format,
    steps: &[Step],
    took: Duration,
) {
    let mut md = String::from(header);
    let _ = write!(
        md,
        "\n## Setup\n\n\
         - {n_schedulers} `sentryk8s scheduler` and {n_workers} `sentryk8s worker` (concurrency 256, batch 500) processes, release build\n\
         - PostgreSQL 15 and RabbitMQ 3.10 (quorum queues) of this machine, a fresh database and queue(s)\n\
         - job messages: `scheduler.slots_per_message` = {}, `amqp.queues` = {}; the steps table gives the slots per message \
           measured (slots / job messages the schedulers published in the window)\n\
         - target: {target}\n\
         - checks every 10 s; each step adds checks, settles {SETTLE_S} s, then measures the slots of a {measure_s} s window\n\
         - a step is sustained when p99 of (started_at − slot) ≤ 1 s and every due slot of the window has a result row (none lost, none missed)\n\
         - whole run took {:.0} s\n",
        format.slots_per_message,
        format.queues,
        took.as_secs_f64()
    );
    let best = steps.iter().filter(|s| s.sustained).max_by_key(|s| s.rate);
    let _ = writeln!(
        md,
        "\n## Headline\n\n{}\n",
        match best {
            Some(s) => format!(
                "Highest sustained load: **{} checks/s** ({} checks every 10 s): {} of {} due slots run, none lost; \
                 dispatch-to-start p50 {:.0} ms, p99 {:.0} ms.",
                s.rate, s.checks, s.run, s.expected, s.p50, s.p99
            ),
            None => "No step was sustained.".into(),
        }
    );
    md.push_str(
        "## Steps\n\n| due checks/s | checks | due slots | run | missed | lost | run/s | started − slot p50 / p90 / p99 / max (ms) | publish − slot p50 / p99 (scheduler histogram) | slots per message | sustained |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in steps {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.0} / {:.0} / {:.0} / {:.0} | {} / {} | {} | {} |",
            s.rate,
            s.checks,
            s.expected,
            s.run,
            s.missed,
            s.lost,
            s.run as f64 / measure_s as f64,
            s.p50,
            s.p90,
            s.p99,
            s.max,
            s.publish_p50,
            s.publish_p99,
            fmt_ratio(s.slots_per_message),
            if s.sustained { "yes" } else { "**no**" }
        );
    }
    md.push_str("\n## CPU by process (cores, mean over each window)\n\n| due checks/s |");
    if let Some(first) = steps.first() {
        for (name, _) in &first.cpu {
            let _ = write!(md, " {name} |");
        }
        md.push_str(" CPU ms per check (ours: sentryk8s + target + this run's backends + beam.smp) |\n|---|");
        md.push_str(&"---|".repeat(first.cpu.len() + 1));
        md.push('\n');
    }
    for s in steps {
        let _ = write!(md, "| {} |", s.rate);
        for (_, v) in &s.cpu {
            let _ = write!(md, " {v:.2} |");
        }
        let get = |n: &str| s.cpu.iter().find(|(k, _)| k.starts_with(n)).map(|(_, v)| *v).unwrap_or(0.0);
        let ours = get("sentryk8s schedulers")
            + get("sentryk8s workers")
            + get("target")
            + get("postgres (this")
            + get("beam");
        let _ = writeln!(md, " {:.3} |", ours * 1000.0 / (s.run as f64 / measure_s as f64).max(1.0));
    }
    md.push_str(
        "\nNotes: PostgreSQL and RabbitMQ are shared with other engineers' tests on this machine: \"postgres (all \
         processes)\" and beam.smp include their load, \"this run's backends\" excludes PostgreSQL's shared \
         background processes (WAL writer, checkpointer). \"whole machine\" shows how much of the 2 cores was busy, \
         whoever used it; when it nears 2.0 the step measured the machine, not SentryK8s' headroom.\n",
    );
    md.push_str(&before_and_after(steps));
    common::write_result("capacity.md", &md);
    println!("\n{md}");

    let header_row: Vec<&str> = vec![
        "due_checks_per_s",
        "checks",
        "due_slots",
        "run",
        "missed",
        "lost",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "max_ms",
        "slots_per_message",
    ];
    let mut cols: Vec<String> = header_row.iter().map(|s| s.to_string()).collect();
    if let Some(first) = steps.first() {
        cols.extend(
            first.cpu.iter().map(|(n, _)| format!("cores_{}", n.replace([' ', '(', ')', '\'', '.'], "_"))),
        );
    }
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            let mut r = vec![
                s.rate.to_string(),
                s.checks.to_string(),
                s.expected.to_string(),
                s.run.to_string(),
                s.missed.to_string(),
                s.lost.to_string(),
                format!("{:.1}", s.p50),
                format!("{:.1}", s.p90),
                format!("{:.1}", s.p99),
                format!("{:.1}", s.max),
                format!("{:.3}", s.slots_per_message),
            ];
            r.extend(s.cpu.iter().map(|(_, v)| format!("{v:.3}")));
            r
        })
        .collect();
    let col_refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    common::write_csv("capacity.csv", &col_refs, &rows);

    let x = |f: &dyn Fn(&Step) -> f64| steps.iter().map(|s| (s.rate as f64, f(s))).collect::<Vec<_>>();
    let cpu_series: Vec<Series> = steps
        .first()
        .map(|first| {
            first
                .cpu
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| !n.starts_with("bench"))
                .map(|(i, (name, _))| {
                    Series::new(
                        *name,
                        COLORS[i % COLORS.len()],
                        x(&|s| s.cpu.get(i).map(|c| c.1).unwrap_or(0.0)),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let figure = Figure {
        title: "End-to-end capacity: load steps".into(),
        x_label: "due checks per second".into(),
        panels: vec![
            Panel {
                title: "checks run per second vs due".into(),
                series: vec![
                    Series::new("run/s", COLORS[1], x(&|s| s.run as f64 / measure_s as f64)),
                    Series::new("due/s", "#777", x(&|s| s.expected as f64 / measure_s as f64)).dashed(),
                ],
                hlines: vec![],
                y_max: None,
            },
            Panel {
                title: "started_at − slot (ms)".into(),
                series: vec![
                    Series::new("p50", COLORS[2], x(&|s| s.p50)),
                    Series::new("p99", COLORS[0], x(&|s| s.p99)),
                ],
                hlines: vec![(1000.0, "1 s".into())],
                y_max: None,
            },
            Panel { title: "CPU cores by process".into(), series: cpu_series, hlines: vec![], y_max: None },
        ],
        vlines: vec![],
        width: 900.0,
        panel_height: 160.0,
    };
    common::write_result("capacity.svg", &figure.render());
}

/// A measured slots-per-message ratio, or why there is none.
fn fmt_ratio(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "n/a (no job message counted)".into()
    }
}

/// The processes of the CPU-per-check comparison: (label, CSV column).
const COMPARED: [(&str, &str); 5] = [
    ("RabbitMQ (beam.smp)", "cores_beam_smp__RabbitMQ_"),
    ("workers", "cores_sentryk8s_workers"),
    ("PostgreSQL (this run's backends)", "cores_postgres__this_run_s_backends_"),
    ("schedulers", "cores_sentryk8s_schedulers"),
    ("target (nginx)", "cores_target"),
];

/// CPU ms per check by process, this run beside the baseline in
/// bench/results/capacity_before.csv (a run of the code before job format
/// 3, kept for this comparison), at the rates both measured (3,000/s and
/// up) and at this run's highest sustained rate. Empty without a baseline.
fn before_and_after(steps: &[Step]) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results/capacity_before.csv");
    let Ok(text) = std::fs::read_to_string(&path) else { return String::new() };
    let mut lines = text.lines();
    let Some(header) = lines.next() else { return String::new() };
    let columns: Vec<&str> = header.split(',').collect();
    let at = |name: &str| columns.iter().position(|c| *c == name);
    // rate → ms per check of each compared process, from the baseline.
    let mut before: std::collections::BTreeMap<u64, Vec<f64>> = std::collections::BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let cell = |i: Option<usize>| i.and_then(|i| cells.get(i)).and_then(|v| v.parse::<f64>().ok());
        let Some(rate) = cell(at("due_checks_per_s")) else { continue };
        let per_check: Option<Vec<f64>> =
            COMPARED.iter().map(|(_, c)| cell(at(c)).map(|cores| cores * 1000.0 / rate.max(1.0))).collect();
        if let Some(v) = per_check {
            before.insert(rate as u64, v);
        }
    }
    let after_ms = |s: &Step| -> Vec<f64> {
        let get = |n: &str| s.cpu.iter().find(|(k, _)| k.starts_with(n)).map(|(_, v)| *v).unwrap_or(0.0);
        let cores = [
            get("beam"),
            get("sentryk8s workers"),
            get("postgres (this"),
            get("sentryk8s schedulers"),
            get("target"),
        ];
        cores.iter().map(|c| c * 1000.0 / (s.rate as f64).max(1.0)).collect()
    };
    let mut pairs: Vec<(String, Vec<f64>)> = Vec::new();
    for s in steps.iter().filter(|s| s.rate >= 3000) {
        if let Some(b) = before.get(&s.rate) {
            pairs.push((format!("{}/s before", s.rate), b.clone()));
            pairs.push((format!("{}/s after", s.rate), after_ms(s)));
        }
    }
    if let Some(top) = steps.iter().filter(|s| s.sustained).max_by_key(|s| s.rate) {
        if !before.contains_key(&top.rate) {
            pairs.push((format!("{}/s after (highest sustained)", top.rate), after_ms(top)));
        }
    }
    if pairs.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n## CPU ms per check by process: before and after job format 3\n\n\
         \"before\": bench/results/capacity_before.csv (one job message per slot, the code before issue 18, \
         measured on this machine); \"after\": this run. Cores ÷ due checks per second.\n\n| process |",
    );
    for (name, _) in &pairs {
        let _ = write!(md, " {name} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(pairs.len()));
    md.push('\n');
    for (i, (label, _)) in COMPARED.iter().enumerate() {
        let _ = write!(md, "| {label} |");
        for (_, v) in &pairs {
            let _ = write!(md, " {:.3} |", v[i]);
        }
        md.push('\n');
    }
    md.push_str("| **total** |");
    for (_, v) in &pairs {
        let _ = write!(md, " **{:.3}** |", v.iter().sum::<f64>());
    }
    md.push('\n');
    md
}
