//! The autoscaling experiment: does scaling workers on the RabbitMQ
//! backlog (what the chart's HPA does) track this workload better than
//! scaling on worker CPU?
//!
//! One command (see docs/performance.md, "Autoscaling experiment"):
//! `bench/run.sh autoscale`, i.e. `cargo bench --bench autoscale`.
//!
//! Per policy (CPU, then backlog) a fresh database and queue, one
//! scheduler, a delay target (this binary re-executed: `GET /d/<ms>`
//! answers after <ms>), and real `sentryk8s worker` processes that a small
//! controller starts and stops (SIGTERM: they drain) by the Kubernetes HPA
//! algorithm: every 15 s `desired = ceil(current × metric / target)`, 10 %
//! tolerance, the chart's scale-up policies (+100 % or +4 pods per 30 s,
//! whichever is more), a scale-down stabilization window and the chart's
//! scale-down policies (−25 % or −2 pods per 60 s, whichever is less),
//! clamped to the chart's 2..20 replicas.
//!
//! - backlog policy: the JOBS waiting or in flight, as the chart's
//!   prometheus-adapter rule and KEDA query count them
//!   (`common::backlog`): ready + unacked messages of every job queue, read
//!   from RabbitMQ's own Prometheus endpoint
//!   (`:15692/metrics/detailed?family=queue_coarse_metrics`), times the
//!   slots per message the scheduler published over the last 2 minutes
//!   (its `sentryk8s_slots_published_total` /
//!   `sentryk8s_job_messages_published_total`; 1 without publishes);
//!   AverageValue target 200 jobs per worker
//!   (`worker.autoscaling.targetBacklogPerWorker`);
//! - CPU policy: average worker CPU over the last sync period relative to
//!   the chart's CPU request (250m), target 70 % (`SK_AS_CPU_TARGET`).
//!
//! Load: checks every 10 s against targets answering in 50 ms – 2 s
//! (log-uniform) and 3 % that never answer in time (3 s timeout); batches
//! of checks are enabled and disabled over time: base 400/s, a step to
//! 1,600/s, back, a step to 1,000/s, back. Recorded every second: backlog,
//! replicas, CPU of every process; afterwards from PostgreSQL per slot
//! second: checks run, dispatch-to-start delay (started_at − slot) and
//! slots missed. Writes bench/results/autoscale.md, autoscale_*.csv and
//! autoscale.svg.
//!
//! Knobs (environment): SK_AS_CPU_TARGET (70), SK_AS_DOWN_WINDOW (scale-down
//! stabilization, 60 s), SK_AS_BASE_RATE / SK_AS_MID_RATE / SK_AS_PEAK_RATE
//! (400 / 1000 / 1600 checks/s), SK_AS_SECONDS (225; the plan's steps are at
//! fixed times), SK_AS_POLICIES (cpu,backlog), SK_AS_REPORT (file name
//! stem, default autoscale), SK_AS_QUEUES (`amqp.queues`, 1) and
//! SK_AS_SLOTS_PER_MESSAGE (`scheduler.slots_per_message`, the binary's
//! default), both passed to the scheduler and the workers.

#[path = "common/mod.rs"]
mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::svg::{Figure, Panel, Series};
use common::{env_f64, env_or, Killer, RoleEnv};
use nix::sys::signal::Signal;

const INTERVAL_MS: i64 = 10_000;
const TIMEOUT_MS: u64 = 3_000;
const SYNC_S: u64 = 15;
const CPU_REQUEST_CORES: f64 = 0.25;
const BACKLOG_TARGET: f64 = 200.0;
const MIN_REPLICAS: usize = 2;
const MAX_REPLICAS: usize = 20;
const CONCURRENCY: u64 = 256;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Policy {
    Cpu,
    Backlog,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::Cpu => "cpu",
            Policy::Backlog => "backlog",
        }
    }
    fn color(self) -> &'static str {
        match self {
            Policy::Cpu => common::svg::COLORS[0],
            Policy::Backlog => common::svg::COLORS[1],
        }
    }
}

/// One load phase: from `at` seconds, these check groups are enabled.
struct Phase {
    at: u64,
    label: &'static str,
    groups: &'static [&'static str],
}

/// base, step up, back, smaller step, back.
const PLAN: [Phase; 5] = [
    Phase { at: 0, label: "base", groups: &["base"] },
    Phase { at: 20, label: "peak", groups: &["base", "g1", "g2"] },
    Phase { at: 95, label: "base", groups: &["base"] },
    Phase { at: 140, label: "mid", groups: &["base", "g1"] },
    Phase { at: 190, label: "base", groups: &["base"] },
];

struct Settings {
    seconds: u64,
    base_rate: u64,
    mid_rate: u64,
    peak_rate: u64,
    cpu_target_pct: f64,
    down_window_s: u64,
    /// `amqp.queues` of the scheduler and workers.
    queues: u32,
    /// `scheduler.slots_per_message`.
    slots_per_message: u32,
}

/// The HPA's memory: recommendations (for stabilization) and scale events
/// (for the rate policies).
#[derive(Default)]
struct Hpa {
    recommendations: Vec<(f64, usize)>,
    events: Vec<(f64, i64)>,
}

impl Hpa {
    /// The replica count the HPA would set at time `now` (seconds), given
    /// `current` replicas and the metric's usage ratio (metric / target).
    /// Follows kube-controller-manager's replica calculator and
    /// `normalizeDesiredReplicasWithBehaviors`.
    fn decide(&mut self, now: f64, current: usize, ratio: f64, down_window: f64) -> (usize, usize) {
        let raw = if (ratio - 1.0).abs() <= 0.1 {
            current
        } else {
            (ratio * current as f64).ceil().max(0.0) as usize
        };
        // Stabilization: scale-up window 0 (the chart), scale-down window W.
        self.recommendations.retain(|(t, _)| now - t < down_window.max(0.0));
        let up = raw;
        let down = self.recommendations.iter().map(|(_, r)| *r).fold(raw, usize::max);
        self.recommendations.push((now, raw));
        let mut stabilized = current;
        if stabilized < up {
            stabilized = up;
        }
        if stabilized > down {
            stabilized = down;
        }
        // Rate policies.
        let changed = |period: f64, up: bool| -> i64 {
            self.events
                .iter()
                .filter(|(t, d)| now - t < period && ((*d > 0) == up))
                .map(|(_, d)| d.abs())
                .sum()
        };
        let mut desired = stabilized;
        if desired > current {
            let start = current as i64 - changed(30.0, true);
            let limit = ((start as f64 * 2.0).ceil() as i64).max(start + 4);
            desired = desired.min(limit.max(0) as usize);
        } else if desired < current {
            let start = current as i64 + changed(60.0, false);
            let limit = ((start as f64 * 0.75).ceil() as i64).max(start - 2);
            desired = desired.max(limit.max(0) as usize);
        }
        let desired = desired.clamp(MIN_REPLICAS, MAX_REPLICAS);
        if desired != current {
            self.events.push((now, desired as i64 - current as i64));
        }
        (raw, desired)
    }
}

/// The HPA model against hand-worked cases of the Kubernetes algorithm;
/// run before every experiment (a bench binary has no test harness), so a
/// wrong model never produces a report.
fn check_hpa_model() {
    // Within the 10 % tolerance: no change.
    assert_eq!(Hpa::default().decide(0.0, 4, 1.05, 60.0), (4, 4));
    // Scale-up: raw 38, limited to max(2 × 2, 2 + 4) = 6 per 30 s.
    let mut up = Hpa::default();
    assert_eq!(up.decide(0.0, 2, 18.7, 60.0), (38, 6));
    // 15 s later the +4 still counts: period start 2, limit 6.
    assert_eq!(up.decide(15.0, 6, 1.33, 60.0), (8, 6));
    // 30 s later it no longer does: limit max(12, 10).
    assert_eq!(up.decide(30.0, 6, 1.33, 60.0), (8, 8));
    // Scale-down: held by the stabilization window, then −25 % / −2 per 60 s (the smaller step).
    let mut down = Hpa::default();
    assert_eq!(down.decide(0.0, 9, 1.0, 60.0), (9, 9));
    assert_eq!(down.decide(15.0, 9, 0.5, 60.0), (5, 9));
    assert_eq!(down.decide(75.0, 9, 0.5, 60.0), (5, 7));
    // Never below the minimum.
    assert_eq!(Hpa::default().decide(0.0, 2, 0.1, 60.0), (1, MIN_REPLICAS));
}

struct WorkerProc {
    killer: Killer,
    terminating: bool,
    last_cpu: f64,
    sync_cpu: f64,
    sync_at: Instant,
}

#[derive(Default, Clone)]
struct Sample {
    t: u64,
    /// Messages, summed over the job queues.
    ready: f64,
    unacked: f64,
    /// Measured slots per message (2-minute window) and the job count the
    /// backlog policy scales on: (ready + unacked) × slots_per_message.
    slots_per_message: f64,
    jobs: f64,
    replicas: usize,
    terminating: usize,
    worker_cores: f64,
    scheduler_cores: f64,
    target_cores: f64,
    postgres_cores: f64,
    beam_cores: f64,
    machine_busy_cores: f64,
}

struct Decision {
    t: u64,
    metric: f64,
    ratio: f64,
    current: usize,
    raw: usize,
    desired: usize,
}

#[derive(Default, Clone)]
struct SecondStats {
    run: u64,
    missed: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

struct RunResult {
    policy: Policy,
    samples: Vec<Sample>,
    decisions: Vec<Decision>,
    seconds: BTreeMap<i64, SecondStats>,
    all_delays: Vec<f64>,
    total_run: u64,
    total_missed: u64,
    load_avg: String,
    worker_cpu_s: f64,
}

fn main() {
    if common::run_delay_target_if_child() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    check_hpa_model();
    let settings = Settings {
        seconds: env_or("SK_AS_SECONDS", 225),
        base_rate: env_or("SK_AS_BASE_RATE", 400),
        mid_rate: env_or("SK_AS_MID_RATE", 1000),
        peak_rate: env_or("SK_AS_PEAK_RATE", 1600),
        cpu_target_pct: env_f64("SK_AS_CPU_TARGET", 70.0),
        down_window_s: env_or("SK_AS_DOWN_WINDOW", 60),
        queues: env_or("SK_AS_QUEUES", 1).clamp(1, 64) as u32,
        slots_per_message: env_or("SK_AS_SLOTS_PER_MESSAGE", default_slots_per_message()).clamp(1, 500)
            as u32,
    };
    let policies: Vec<Policy> = std::env::var("SK_AS_POLICIES")
        .unwrap_or_else(|_| "cpu,backlog".into())
        .split(',')
        .filter_map(|p| match p.trim() {
            "cpu" => Some(Policy::Cpu),
            "backlog" => Some(Policy::Backlog),
            _ => None,
        })
        .collect();
    // The command as run, with the knobs that were set.
    let knobs: Vec<String> =
        std::env::vars().filter(|(k, _)| k.starts_with("SK_AS_")).map(|(k, v)| format!("{k}={v}")).collect();
    let command =
        format!("{}{}bench/run.sh autoscale", knobs.join(" "), if knobs.is_empty() { "" } else { " " });
    let header = common::report_header("Autoscaling experiment: worker CPU vs RabbitMQ backlog", &command);
    println!("{header}");
    let scratch = common::Scratch::new("autoscale");
    let target_port = common::free_port();
    let target = common::spawn_delay_target(target_port);
    assert!(common::wait_port(([127, 0, 0, 1], target_port).into()).await, "target did not start");

    let mut results = Vec::new();
    for policy in policies {
        results.push(run_policy(policy, &settings, target_port, target.pid(), &scratch.0).await);
    }
    drop(target);
    if results.is_empty() {
        println!("no policy to run (SK_AS_POLICIES: cpu, backlog); HPA model checked, no report written");
        return;
    }
    report(&header, &settings, &results);
}

/// The binary's default `scheduler.slots_per_message`.
fn default_slots_per_message() -> u64 {
    sentryk8s::config::Config::defaults().map(|c| u64::from(c.scheduler.slots_per_message)).unwrap_or(1)
}

/// Latency of check `i` of a group: 3 % never answer in time, the rest
/// log-uniform over 50 ms – 2 s. Deterministic, so both runs see the same.
fn latency_ms(i: u64) -> u64 {
    let u = (sentryk8s::scheduler::slots::mix64(i) % 1_000_000) as f64 / 1e6;
    if u < 0.03 {
        10_000
    } else {
        let v = (u - 0.03) / 0.97;
        (50.0 * 40f64.powf(v)).round() as u64
    }
}

async fn insert_checks(db: &common::BenchDb, settings: &Settings, port: u16) -> HashMap<&'static str, u64> {
    let per = |rate: u64| rate * INTERVAL_MS as u64 / 1000;
    let groups = [
        ("base", per(settings.base_rate)),
        ("g1", per(settings.mid_rate.saturating_sub(settings.base_rate))),
        ("g2", per(settings.peak_rate.saturating_sub(settings.mid_rate))),
    ];
    let mut names = Vec::new();
    let mut specs = Vec::new();
    let mut enabled = Vec::new();
    let mut i = 0u64;
    for (group, n) in groups {
        for k in 0..n {
            names.push(format!("{group}-{k}"));
            specs.push(serde_json::json!({
                "url": format!("http://127.0.0.1:{port}/d/{}", latency_ms(i)),
                "timeout_ms": TIMEOUT_MS,
            }));
            enabled.push(group == "base");
            i += 1;
        }
    }
    db.client
        .execute(
            "INSERT INTO checks (name, interval_ms, spec, enabled)
             SELECT n, $4, s, e FROM unnest($1::text[], $2::jsonb[], $3::bool[]) AS t(n, s, e)",
            &[&names, &specs, &enabled, &(INTERVAL_MS as i32)],
        )
        .await
        .expect("insert checks");
    groups.into_iter().collect()
}

async fn set_phase(db: &common::BenchDb, phase: &Phase) {
    for group in ["g1", "g2"] {
        let on = phase.groups.contains(&group);
        db.client
            .execute(
                "UPDATE checks SET enabled = $1 WHERE name LIKE $2 AND enabled <> $1",
                &[&on, &format!("{group}-%")],
            )
            .await
            .expect("switch checks");
    }
}

/// `amqp`: the queue settings every role gets (`BenchQueue::amqp_env`).
fn start_worker(env: &RoleEnv, amqp: &[(&'static str, String)], n: usize) -> WorkerProc {
    let listen: SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
    let mut vars = vec![
        ("SENTRYK8S_LISTEN", listen.to_string()),
        ("SENTRYK8S_WORKER__CONCURRENCY", CONCURRENCY.to_string()),
        ("SENTRYK8S_DATABASE__POOL_SIZE", "4".into()),
        ("HOSTNAME", format!("bench-worker-{n}")),
    ];
    vars.extend(amqp.iter().cloned());
    let killer = common::spawn_sentryk8s(env, &["worker"], &vars, &format!("worker-{n}"));
    WorkerProc { killer, terminating: false, last_cpu: 0.0, sync_cpu: 0.0, sync_at: Instant::now() }
}

async fn run_policy(
    policy: Policy,
    settings: &Settings,
    target_port: u16,
    target_pid: u32,
    dir: &std::path::Path,
) -> RunResult {
    println!("\n== policy {}: preparing", policy.name());
    let db = common::BenchDb::create("skbench_as", 256).await;
    let queue = common::BenchQueue::declare_queues("sk-bench-as", settings.queues).await;
    let env = queue.role_env(&db, dir);
    let amqp = queue.amqp_env();
    // RabbitMQ publishes a new queue's figures at its next statistics
    // emission (every 5 s by default).
    for name in queue.job_queue_names() {
        let mut visible = false;
        for _ in 0..40 {
            if common::rabbitmq_queue_depth(&name).await.is_some() {
                visible = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(
            visible,
            "queue {name} not in RabbitMQ's :15692/metrics/detailed (rabbitmq-plugins enable rabbitmq_prometheus)"
        );
    }
    let groups = insert_checks(&db, settings, target_port).await;
    println!("checks: {groups:?} every {INTERVAL_MS} ms");
    let sched_listen: SocketAddr = ([127, 0, 0, 1], common::free_port()).into();
    let mut sched_vars = vec![
        ("SENTRYK8S_LISTEN", sched_listen.to_string()),
        ("SENTRYK8S_SCHEDULER__SLOTS_PER_MESSAGE", settings.slots_per_message.to_string()),
    ];
    sched_vars.extend(amqp.iter().cloned());
    let scheduler =
        common::spawn_sentryk8s(&env, &["scheduler"], &sched_vars, &format!("scheduler-{}", policy.name()));
    // The signal the chart's autoscalers read: jobs, not messages.
    let mut backlog = common::backlog::JobBacklog::new(
        queue.job_queue_names(),
        vec![sched_listen],
        settings.slots_per_message,
    );
    let mut workers: Vec<WorkerProc> = Vec::new();
    let mut started = 0usize;
    for _ in 0..MIN_REPLICAS {
        workers.push(start_worker(&env, &amqp, started));
        started += 1;
    }
    // Warm up: one interval and a half of base load.
    for _ in 0..300 {
        let owned: i64 = db
            .client
            .query_one("SELECT count(*) FROM partition_leases WHERE owner IS NOT NULL", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if owned == 256 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Warm-up, read every second so the slots-per-message window has history.
    let warm_up = Instant::now() + Duration::from_millis(INTERVAL_MS as u64 * 3 / 2);
    while Instant::now() < warm_up {
        backlog.read().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let load_avg = common::loadavg();
    println!("== policy {}: running {} s (load average {load_avg})", policy.name(), settings.seconds);

    let t0_ms = chrono::Utc::now().timestamp_millis();
    let start = Instant::now();
    let mut hpa = Hpa::default();
    let mut samples = Vec::new();
    let mut decisions = Vec::new();
    let mut worker_cpu_done = 0.0;
    let mut last = Instant::now();
    let mut prev_sched = common::cpu_seconds(scheduler.pid());
    let mut prev_target = common::cpu_seconds(target_pid);
    let mut prev_pg = common::cpu_by_comm("postgres");
    let mut prev_beam = common::cpu_by_comm("beam.smp");
    let mut prev_machine = common::machine_jiffies();
    for w in workers.iter_mut() {
        w.last_cpu = common::cpu_seconds(w.killer.pid());
        w.sync_cpu = w.last_cpu;
        w.sync_at = Instant::now();
    }
    let mut phase_index = 0;
    for tick in 0..=settings.seconds {
        tokio::time::sleep_until((start + Duration::from_secs(tick)).into()).await;
        while phase_index < PLAN.len() && PLAN[phase_index].at <= tick {
            set_phase(&db, &PLAN[phase_index]).await;
            println!("t={tick:>3}s load → {}", PLAN[phase_index].label);
            phase_index += 1;
        }
        // Sample.
        let elapsed = last.elapsed().as_secs_f64().max(1e-3);
        last = Instant::now();
        let mut worker_cores = 0.0;
        for w in workers.iter_mut() {
            let cpu = common::cpu_seconds(w.killer.pid());
            if cpu > 0.0 {
                worker_cores += (cpu - w.last_cpu).max(0.0);
                w.last_cpu = cpu;
            }
        }
        worker_cores /= elapsed;
        let sched = common::cpu_seconds(scheduler.pid());
        let tgt = common::cpu_seconds(target_pid);
        let pg = common::cpu_by_comm("postgres");
        let beam = common::cpu_by_comm("beam.smp");
        let machine = common::machine_jiffies();
        let reading = backlog.read().await;
        let sample = Sample {
            t: tick,
            ready: reading.ready,
            unacked: reading.unacked,
            slots_per_message: reading.slots_per_message,
            jobs: reading.jobs,
            replicas: workers.iter().filter(|w| !w.terminating).count(),
            terminating: workers.iter().filter(|w| w.terminating).count(),
            worker_cores,
            scheduler_cores: (sched - prev_sched) / elapsed,
            target_cores: (tgt - prev_target) / elapsed,
            postgres_cores: common::cpu_delta(&prev_pg, &pg) / elapsed,
            beam_cores: common::cpu_delta(&prev_beam, &beam) / elapsed,
            machine_busy_cores: (machine.0 - prev_machine.0) / (machine.1 - prev_machine.1).max(1.0)
                * std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(2.0),
        };
        (prev_sched, prev_target, prev_pg, prev_beam, prev_machine) = (sched, tgt, pg, beam, machine);

        // The HPA's sync.
        if tick % SYNC_S == 0 && tick > 0 {
            let current = sample.replicas;
            let (metric, ratio) = match policy {
                Policy::Backlog => {
                    let total = sample.jobs;
                    if total.is_finite() {
                        (total / current as f64, total / (BACKLOG_TARGET * current as f64))
                    } else {
                        (f64::NAN, 1.0)
                    }
                }
                Policy::Cpu => {
                    let now = Instant::now();
                    let utils: Vec<f64> = workers
                        .iter()
                        .filter(|w| !w.terminating)
                        .map(|w| {
                            let secs = now.duration_since(w.sync_at).as_secs_f64().max(1.0);
                            (w.last_cpu - w.sync_cpu).max(0.0) / secs / CPU_REQUEST_CORES * 100.0
                        })
                        .collect();
                    let avg = utils.iter().sum::<f64>() / utils.len().max(1) as f64;
                    (avg, avg / settings.cpu_target_pct)
                }
            };
            let (raw, desired) = hpa.decide(tick as f64, current, ratio, settings.down_window_s as f64);
            println!(
                "t={tick:>3}s {}: metric {metric:.1} (ratio {ratio:.2}), replicas {current} → {desired}; messages ready {}, unacked {}, {:.2} slots per message",
                policy.name(),
                sample.ready,
                sample.unacked,
                sample.slots_per_message
            );
            decisions.push(Decision { t: tick, metric, ratio, current, raw, desired });
            if desired > current {
                for _ in current..desired {
                    let mut w = start_worker(&env, &amqp, started);
                    started += 1;
                    w.sync_at = Instant::now();
                    workers.push(w);
                }
            } else if desired < current {
                // Like a ReplicaSet scaling down: the newest pods go first.
                for w in workers.iter_mut().rev().filter(|w| !w.terminating).take(current - desired) {
                    w.killer.signal(Signal::SIGTERM);
                    w.terminating = true;
                }
            }
            for w in workers.iter_mut() {
                w.sync_cpu = w.last_cpu;
                w.sync_at = Instant::now();
            }
        }
        samples.push(sample);
        // Reap the workers that finished draining.
        let mut kept = Vec::with_capacity(workers.len());
        for mut w in workers.drain(..) {
            if w.terminating && w.killer.exited() {
                worker_cpu_done += w.last_cpu;
            } else {
                kept.push(w);
            }
        }
        workers = kept;
    }
    let worker_cpu_s = worker_cpu_done + workers.iter().map(|w| w.last_cpu).sum::<f64>();
    println!("== policy {}: stopping", policy.name());
    // Stop dispatching first, then let the workers finish what they hold.
    drop(scheduler);
    for w in workers.iter() {
        w.killer.signal(Signal::SIGTERM);
    }
    drop(workers);

    let (seconds, all_delays, total_run, total_missed) = analyse(&db, t0_ms, settings.seconds).await;
    let _ = std::fs::write(dir.join("ok"), "");
    queue.delete().await;
    db.drop_db().await;
    RunResult {
        policy,
        samples,
        decisions,
        seconds,
        all_delays,
        total_run,
        total_missed,
        load_avg,
        worker_cpu_s,
    }
}

/// Per slot second (from t0): checks run, delay percentiles, slots missed.
async fn analyse(
    db: &common::BenchDb,
    t0_ms: i64,
    seconds: u64,
) -> (BTreeMap<i64, SecondStats>, Vec<f64>, u64, u64) {
    let from = sentryk8s::model::job::slot_from_millis(t0_ms);
    let to = sentryk8s::model::job::slot_from_millis(t0_ms + seconds as i64 * 1000);
    let rows = db
        .client
        .query(
            "SELECT (extract(epoch FROM slot) * 1000)::bigint,
                    (extract(epoch FROM started_at - slot) * 1000)::float8
               FROM check_results WHERE slot >= $1 AND slot < $2",
            &[&from, &to],
        )
        .await
        .expect("results");
    let mut per: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    let mut all = Vec::with_capacity(rows.len());
    for r in &rows {
        let slot: i64 = r.get(0);
        let delay: f64 = r.get(1);
        per.entry((slot - t0_ms) / 1000).or_default().push(delay);
        all.push(delay);
    }
    let missed_rows = db
        .client
        .query(
            "SELECT (extract(epoch FROM first_slot) * 1000)::bigint, slots FROM missed_slots
              WHERE first_slot >= $1 AND first_slot < $2",
            &[&from, &to],
        )
        .await
        .expect("missed");
    let mut missed: BTreeMap<i64, u64> = BTreeMap::new();
    let mut total_missed = 0;
    for r in &missed_rows {
        let slot: i64 = r.get(0);
        let n = r.get::<_, i32>(1) as u64;
        *missed.entry((slot - t0_ms) / 1000).or_default() += n;
        total_missed += n;
    }
    let mut out = BTreeMap::new();
    for s in 0..seconds as i64 {
        let mut d = per.remove(&s).unwrap_or_default();
        d.sort_by(f64::total_cmp);
        out.insert(
            s,
            SecondStats {
                run: d.len() as u64,
                missed: missed.get(&s).copied().unwrap_or(0),
                p50_ms: common::percentile(&d, 0.5),
                p99_ms: common::percentile(&d, 0.99),
                max_ms: d.last().copied().unwrap_or(f64::NAN),
            },
        );
    }
    all.sort_by(f64::total_cmp);
    (out, all, rows.len() as u64, total_missed)
}

/// Figures of one load step of one run.
struct StepFigures {
    label: &'static str,
    at: u64,
    until: u64,
    backlog_clear_s: Option<u64>,
    delay_ok_s: Option<u64>,
    peak_p99_ms: f64,
    max_delay_ms: f64,
    missed: u64,
    run: u64,
    max_replicas: usize,
}

fn step_figures(r: &RunResult, at: u64, until: u64, label: &'static str) -> StepFigures {
    const STREAK: usize = 10;
    let in_step: Vec<&Sample> = r.samples.iter().filter(|s| s.t >= at && s.t < until).collect();
    // Backlog cleared: ready jobs (ready messages × slots per message) ≤ 100
    // for STREAK consecutive seconds.
    let mut backlog_clear_s = None;
    for (i, s) in in_step.iter().enumerate() {
        let window = &in_step[i..(i + STREAK).min(in_step.len())];
        if window.len() == STREAK && window.iter().all(|w| w.ready * w.slots_per_message <= 100.0) && s.t > at
        {
            backlog_clear_s = Some(s.t - at);
            break;
        }
    }
    let secs: Vec<(i64, &SecondStats)> =
        r.seconds.range(at as i64..until as i64).map(|(k, v)| (*k, v)).collect();
    let mut delay_ok_s = None;
    for i in 0..secs.len() {
        let window = &secs[i..(i + STREAK).min(secs.len())];
        if window.len() == STREAK && window.iter().all(|(_, s)| s.p99_ms <= 1000.0 && s.missed == 0) {
            delay_ok_s = Some((secs[i].0 as u64).saturating_sub(at));
            break;
        }
    }
    StepFigures {
        label,
        at,
        until,
        backlog_clear_s,
        delay_ok_s,
        peak_p99_ms: secs.iter().map(|(_, s)| s.p99_ms).filter(|v| v.is_finite()).fold(0.0, f64::max),
        max_delay_ms: secs.iter().map(|(_, s)| s.max_ms).filter(|v| v.is_finite()).fold(0.0, f64::max),
        missed: secs.iter().map(|(_, s)| s.missed).sum(),
        run: secs.iter().map(|(_, s)| s.run).sum(),
        max_replicas: in_step.iter().map(|s| s.replicas).max().unwrap_or(0),
    }
}

fn fmt_s(v: Option<u64>, span: u64) -> String {
    match v {
        Some(s) => format!("{s} s"),
        None => format!("not within the {span} s step"),
    }
}

fn report(header: &str, settings: &Settings, results: &[RunResult]) {
    let name = std::env::var("SK_AS_REPORT").unwrap_or_else(|_| "autoscale".into());
    let mut md = String::from(header);
    let _ = write!(
        md,
        "\n## Setup\n\n\
         - checks every {} s; targets answer in 50 ms – 2 s (log-uniform) and 3 % never answer in time \
           (check timeout {} s); mean check duration ≈ 0.6 s\n\
         - load plan (due checks per second): base {} → peak {} at t=20 s → base at t=95 s → mid {} at t=140 s → base at t=190 s; run length {} s per policy\n\
         - workers: `sentryk8s worker --concurrency {CONCURRENCY}` (the chart's), one scheduler, PostgreSQL and RabbitMQ shared\n\
         - HPA model: sync every {SYNC_S} s, tolerance 10 %, min {MIN_REPLICAS} / max {MAX_REPLICAS} replicas, \
           scale-up +100 % or +4 pods per 30 s (max), scale-down −25 % or −2 pods per 60 s (min), \
           scale-down stabilization window {} s (the chart has 300 s; shortened so that a {} s run shows scale-down)\n\
         - job queues (`amqp.queues`): {}; `scheduler.slots_per_message`: {}\n\
         - backlog policy: jobs / replicas, AverageValue target {BACKLOG_TARGET} jobs, where jobs = (ready + unacked messages \
           of every job queue, from `:15692/metrics/detailed?family=queue_coarse_metrics`) × slots per message (the \
           scheduler's `sentryk8s_slots_published_total` / `sentryk8s_job_messages_published_total` over 2 minutes, 1 \
           without publishes), as the chart's prometheus-adapter rule and KEDA query count them; measured slots per \
           message over the run: {}\n\
         - CPU policy: average worker CPU over the last sync period / request {CPU_REQUEST_CORES} cores (the chart's 250m), target {} %\n\
         - not modelled: pod start-up time (a worker process is ready in well under a second here, a pod takes \
           seconds to minutes), Prometheus' scrape interval (the backlog is read at sync time; RabbitMQ itself \
           refreshes the numbers every 5 s), metrics-server's CPU window\n",
        INTERVAL_MS / 1000,
        TIMEOUT_MS / 1000,
        settings.base_rate,
        settings.peak_rate,
        settings.mid_rate,
        settings.seconds,
        settings.down_window_s,
        settings.seconds,
        settings.queues,
        settings.slots_per_message,
        slots_per_message_summary(results),
        settings.cpu_target_pct,
    );

    let mut steps: Vec<(Policy, Vec<StepFigures>)> = Vec::new();
    md.push_str("\n## Results\n\n| figure | ");
    md.push_str(
        &results.iter().map(|r| format!("{} policy", r.policy.name())).collect::<Vec<_>>().join(" | "),
    );
    md.push_str(" |\n|---|");
    md.push_str(&"---|".repeat(results.len()));
    md.push('\n');
    for r in results {
        let mut figs = Vec::new();
        for (i, p) in PLAN.iter().enumerate() {
            if p.label == "base" {
                continue;
            }
            let until = PLAN.get(i + 1).map(|n| n.at).unwrap_or(settings.seconds);
            figs.push(step_figures(r, p.at, until, p.label));
        }
        steps.push((r.policy, figs));
    }
    let row = |md: &mut String, name: &str, f: &dyn Fn(&RunResult, &[StepFigures]) -> String| {
        let _ = write!(md, "| {name} |");
        for (r, (_, figs)) in results.iter().zip(&steps) {
            let _ = write!(md, " {} |", f(r, figs));
        }
        md.push('\n');
    };
    for (k, label) in [(0usize, "peak"), (1, "mid")] {
        row(
            &mut md,
            &format!("{label} step: backlog cleared (ready jobs ≤ 100 for 10 s) after"),
            &|_, f| f.get(k).map(|s| fmt_s(s.backlog_clear_s, s.until - s.at)).unwrap_or_default(),
        );
        row(
            &mut md,
            &format!("{label} step: p99 delay back ≤ 1 s, nothing missed (10 s) after"),
            &|_, f| f.get(k).map(|s| fmt_s(s.delay_ok_s, s.until - s.at)).unwrap_or_default(),
        );
        row(&mut md, &format!("{label} step: peak p99 / max dispatch-to-start delay"), &|_, f| {
            f.get(k)
                .map(|s| format!("{:.1} s / {:.1} s", s.peak_p99_ms / 1000.0, s.max_delay_ms / 1000.0))
                .unwrap_or_default()
        });
        row(&mut md, &format!("{label} step: slots missed (stale) / run"), &|_, f| {
            f.get(k).map(|s| format!("{} / {}", s.missed, s.run)).unwrap_or_default()
        });
        row(&mut md, &format!("{label} step: most replicas"), &|_, f| {
            f.get(k).map(|s| s.max_replicas.to_string()).unwrap_or_default()
        });
    }
    row(&mut md, "replica-seconds (running workers, whole run)", &|r, _| {
        format!("{:.0}", r.samples.iter().map(|s| s.replicas as f64).sum::<f64>())
    });
    row(&mut md, "worker CPU-seconds (whole run)", &|r, _| format!("{:.1}", r.worker_cpu_s));
    row(&mut md, "checks run / slots missed (whole run)", &|r, _| {
        format!(
            "{} / {} ({:.1} %)",
            r.total_run,
            r.total_missed,
            r.total_missed as f64 * 100.0 / (r.total_run + r.total_missed).max(1) as f64
        )
    });
    row(&mut md, "dispatch-to-start delay p50 / p99 (whole run)", &|r, _| {
        format!(
            "{:.2} s / {:.2} s",
            common::percentile(&r.all_delays, 0.5) / 1000.0,
            common::percentile(&r.all_delays, 0.99) / 1000.0
        )
    });
    row(
        &mut md,
        "worker CPU, % of the 250m request per replica, 15 s averages: lowest / highest",
        &|r, _| {
            let u = utilization_windows(r);
            format!(
                "{:.0} % / {:.0} %",
                u.iter().copied().fold(f64::INFINITY, f64::min),
                u.iter().copied().fold(0.0, f64::max)
            )
        },
    );
    row(
        &mut md,
        "mean CPU cores: workers / scheduler / target / postgres (all) / beam.smp / whole machine",
        &|r, _| {
            let n = r.samples.len().max(1) as f64;
            let m = |f: &dyn Fn(&Sample) -> f64| r.samples.iter().map(f).sum::<f64>() / n;
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} / {:.2} / {:.2}",
                m(&|s| s.worker_cores),
                m(&|s| s.scheduler_cores),
                m(&|s| s.target_cores),
                m(&|s| s.postgres_cores),
                m(&|s| s.beam_cores),
                m(&|s| s.machine_busy_cores)
            )
        },
    );
    row(&mut md, "load average before the run", &|r, _| r.load_avg.clone());
    row(&mut md, "HPA decisions (t: replicas current→desired, metric)", &|r, _| {
        let changes: Vec<String> = r
            .decisions
            .iter()
            .filter(|d| d.desired != d.current)
            .map(|d| format!("{}s: {}→{} ({:.0})", d.t, d.current, d.desired, d.metric))
            .collect();
        if changes.is_empty() {
            format!("none: {MIN_REPLICAS} replicas throughout")
        } else {
            changes.join("; ")
        }
    });

    md.push_str("\n## Verdict\n\n");
    md.push_str(&verdict(results, &steps, settings.cpu_target_pct));
    md.push_str(
        &format!("\nPlot: [{name}.svg]({name}.svg). Per-second data: {name}_timeseries.csv, HPA decisions: \
         {name}_hpa.csv. \"Delay\" is the dispatch-to-start delay of each executed check (started_at − slot, \
         from check_results); a job still queued when its slot + interval passes is not run but recorded in \
         missed_slots (reason stale), so the delay of executed checks is capped near 10 s and the misses \
         count the rest.\n\nNoise: the machine is shared; PostgreSQL and beam.smp CPU include other engineers' \
         tests. Each policy ran once in this command; rerun it to see the spread.\n"),
    );
    common::write_result(&format!("{name}.md"), &md);
    println!("\n{md}");

    // CSVs.
    let mut rows = Vec::new();
    for r in results {
        for s in &r.samples {
            let st = r.seconds.get(&(s.t as i64)).cloned().unwrap_or_default();
            rows.push(vec![
                r.policy.name().to_string(),
                s.t.to_string(),
                format!("{}", s.ready),
                format!("{}", s.unacked),
                format!("{:.3}", s.slots_per_message),
                format!("{}", s.jobs),
                s.replicas.to_string(),
                s.terminating.to_string(),
                format!("{:.3}", s.worker_cores),
                format!("{:.3}", s.scheduler_cores),
                format!("{:.3}", s.target_cores),
                format!("{:.3}", s.postgres_cores),
                format!("{:.3}", s.beam_cores),
                format!("{:.3}", s.machine_busy_cores),
                st.run.to_string(),
                st.missed.to_string(),
                format!("{:.0}", st.p50_ms),
                format!("{:.0}", st.p99_ms),
                format!("{:.0}", st.max_ms),
            ]);
        }
    }
    common::write_csv(
        &format!("{name}_timeseries.csv"),
        &[
            "policy",
            "t_s",
            "ready",
            "unacked",
            "slots_per_message",
            "jobs",
            "replicas",
            "terminating",
            "worker_cores",
            "scheduler_cores",
            "target_cores",
            "postgres_cores",
            "beam_cores",
            "machine_busy_cores",
            "run_in_slot_second",
            "missed_in_slot_second",
            "delay_p50_ms",
            "delay_p99_ms",
            "delay_max_ms",
        ],
        &rows,
    );
    let hpa_rows: Vec<Vec<String>> = results
        .iter()
        .flat_map(|r| {
            r.decisions.iter().map(move |d| {
                vec![
                    r.policy.name().to_string(),
                    d.t.to_string(),
                    format!("{:.2}", d.metric),
                    format!("{:.3}", d.ratio),
                    d.current.to_string(),
                    d.raw.to_string(),
                    d.desired.to_string(),
                ]
            })
        })
        .collect();
    common::write_csv(
        &format!("{name}_hpa.csv"),
        &["policy", "t_s", "metric", "ratio", "current", "raw_desired", "desired"],
        &hpa_rows,
    );

    // Plot.
    let series = |f: &dyn Fn(&RunResult) -> Vec<(f64, f64)>| -> Vec<Series> {
        results
            .iter()
            .map(|r| Series::new(format!("{} policy", r.policy.name()), r.policy.color(), f(r)))
            .collect()
    };
    let mut load_series = series(&|r| r.seconds.iter().map(|(t, s)| (*t as f64, s.run as f64)).collect());
    if let Some(r) = results.first() {
        load_series.push(
            Series::new(
                "due (run + missed), first run",
                "#777",
                r.seconds.iter().map(|(t, s)| (*t as f64, (s.run + s.missed) as f64)).collect(),
            )
            .dashed(),
        );
    }
    let figure = Figure {
        title: "Autoscaling: worker CPU vs RabbitMQ backlog (same load, one run each)".into(),
        x_label: "seconds since the start of the run (slot time for checks and delay)".into(),
        panels: vec![
            Panel {
                title: "checks run per second (by slot)".into(),
                series: load_series,
                hlines: vec![],
                y_max: None,
            },
            Panel {
                title: "backlog: jobs = (ready + unacked messages of the job queues) × slots per message"
                    .into(),
                series: series(&|r| r.samples.iter().map(|s| (s.t as f64, s.jobs)).collect()),
                hlines: vec![],
                y_max: None,
            },
            Panel {
                title: "worker replicas (running)".into(),
                series: series(&|r| r.samples.iter().map(|s| (s.t as f64, s.replicas as f64)).collect()),
                hlines: vec![],
                y_max: None,
            },
            Panel {
                title: "dispatch-to-start delay p99 (s), by slot second".into(),
                series: series(&|r| r.seconds.iter().map(|(t, s)| (*t as f64, s.p99_ms / 1000.0)).collect()),
                hlines: vec![(1.0, "1 s".into())],
                y_max: None,
            },
            Panel {
                title: "slots missed (stale) per second".into(),
                series: series(&|r| r.seconds.iter().map(|(t, s)| (*t as f64, s.missed as f64)).collect()),
                hlines: vec![],
                y_max: None,
            },
            Panel {
                title: "worker CPU: % of the 250m request, average per replica".into(),
                series: series(&|r| {
                    r.samples
                        .iter()
                        .map(|s| {
                            (
                                s.t as f64,
                                s.worker_cores
                                    / (s.replicas + s.terminating).max(1) as f64
                                    / CPU_REQUEST_CORES
                                    * 100.0,
                            )
                        })
                        .collect()
                }),
                hlines: vec![(settings.cpu_target_pct, format!("CPU target {} %", settings.cpu_target_pct))],
                y_max: None,
            },
        ],
        vlines: PLAN.iter().skip(1).map(|p| (p.at as f64, format!("→ {}", p.label))).collect(),
        width: 900.0,
        panel_height: 130.0,
    };
    common::write_result(&format!("{name}.svg"), &figure.render());
}

/// Measured slots per message per run: lowest / median / highest of the
/// 1 s readings while the load ran (1.00 means every message held one slot).
fn slots_per_message_summary(results: &[RunResult]) -> String {
    results
        .iter()
        .map(|r| {
            let mut v: Vec<f64> =
                r.samples.iter().map(|s| s.slots_per_message).filter(|v| v.is_finite()).collect();
            v.sort_by(f64::total_cmp);
            format!(
                "{} run {:.2} / {:.2} / {:.2} (lowest / median / highest)",
                r.policy.name(),
                v.first().copied().unwrap_or(f64::NAN),
                common::percentile(&v, 0.5),
                v.last().copied().unwrap_or(f64::NAN)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Worker CPU utilization (% of the request per replica) over each HPA
/// sync period, from the 1 s samples.
fn utilization_windows(r: &RunResult) -> Vec<f64> {
    r.samples
        .chunks(SYNC_S as usize)
        .filter(|w| w.len() == SYNC_S as usize)
        .map(|w| {
            let cores: f64 = w.iter().map(|s| s.worker_cores).sum();
            let pods: f64 = w.iter().map(|s| (s.replicas + s.terminating) as f64).sum();
            cores / pods.max(1.0) / CPU_REQUEST_CORES * 100.0
        })
        .collect()
}

/// The verdict, in words, from the numbers (whichever way they fall).
fn verdict(results: &[RunResult], steps: &[(Policy, Vec<StepFigures>)], cpu_target: f64) -> String {
    let get = |p: Policy| results.iter().zip(steps).find(|(r, _)| r.policy == p);
    let (Some((cpu, (_, cpu_steps))), Some((backlog, (_, bl_steps)))) =
        (get(Policy::Cpu), get(Policy::Backlog))
    else {
        return "Only one policy ran: no comparison.\n".into();
    };
    let replica_s = |r: &RunResult| r.samples.iter().map(|s| s.replicas as f64).sum::<f64>();
    let missed_pct =
        |r: &RunResult| r.total_missed as f64 * 100.0 / (r.total_run + r.total_missed).max(1) as f64;
    let mut out = String::new();
    for (c, b) in cpu_steps.iter().zip(bl_steps) {
        let _ = writeln!(
            out,
            "- {} step ({} s long): backlog policy cleared the backlog in {}, p99 delay back under 1 s in {}, peak p99 {:.1} s, {} slots missed, up to {} replicas; \
             CPU policy: {}, {}, peak p99 {:.1} s, {} slots missed, up to {} replicas.",
            b.label,
            b.until - b.at,
            fmt_s(b.backlog_clear_s, b.until - b.at),
            fmt_s(b.delay_ok_s, b.until - b.at),
            b.peak_p99_ms / 1000.0,
            b.missed,
            b.max_replicas,
            fmt_s(c.backlog_clear_s, c.until - c.at),
            fmt_s(c.delay_ok_s, c.until - c.at),
            c.peak_p99_ms / 1000.0,
            c.missed,
            c.max_replicas,
        );
    }
    let _ = writeln!(
        out,
        "- whole run: backlog policy {:.0} replica-seconds, {:.1} % of due slots missed; CPU policy {:.0} replica-seconds, {:.1} % missed.",
        replica_s(backlog),
        missed_pct(backlog),
        replica_s(cpu),
        missed_pct(cpu)
    );
    // How sensitive is the CPU result to the chosen target? The CPU run's
    // own sync-period utilizations at base load and at the saturated peak.
    let cpu_metrics: Vec<(u64, f64)> = cpu.decisions.iter().map(|d| (d.t, d.metric)).collect();
    let in_phase = |label: &str| -> Vec<f64> {
        PLAN.iter()
            .enumerate()
            .filter(|(_, p)| p.label == label)
            .flat_map(|(i, p)| {
                let until = PLAN.get(i + 1).map(|n| n.at).unwrap_or(u64::MAX);
                // A sync reflects the 15 s before it.
                cpu_metrics.iter().filter(move |(t, _)| *t >= p.at + SYNC_S && *t <= until).map(|(_, m)| *m)
            })
            .collect()
    };
    let base_util = in_phase("base");
    let peak_util = in_phase("peak");
    if missed_pct(cpu) <= missed_pct(backlog) {
        // Nothing to explain: CPU scaling served as well.
    } else if let (Some(base_max), Some(peak_max)) =
        (base_util.iter().copied().reduce(f64::max), peak_util.iter().copied().reduce(f64::max))
    {
        let base_min = base_util.iter().copied().fold(f64::INFINITY, f64::min);
        let _ = writeln!(
            out,
            "- CPU signal: in the CPU run the workers' utilization over each 15 s sync was {base_min:.0}–{base_max:.0} % of \
             the request at base load and at most {peak_max:.0} % at the peak, when every worker had all {CONCURRENCY} slots \
             busy and the queue held the rest; {:.0} % of due slots were missed. A saturated worker's CPU is bounded by \
             its throughput (CPU per check × checks it can hold in flight ÷ check duration), not by the backlog behind \
             it, so against a {:.0} % target the ratio stayed ≤ {:.2} and no sync asked for more replicas. Only a target \
             below the saturated level ({peak_max:.0} % here, lower with slower targets) can react at all.",
            missed_pct(cpu),
            cpu_target,
            cpu.decisions.iter().map(|d| d.ratio).fold(0.0, f64::max),
        );
    }
    let better_service = missed_pct(backlog) < missed_pct(cpu)
        && bl_steps.iter().zip(cpu_steps).all(|(b, c)| b.peak_p99_ms <= c.peak_p99_ms);
    let worse_service = missed_pct(backlog) > missed_pct(cpu);
    let extra = replica_s(backlog) - replica_s(cpu);
    let _ = writeln!(
        out,
        "\n{}",
        if better_service {
            format!(
                "On this run the backlog policy tracked the load and the CPU policy did not: it missed fewer slots and had the lower peak delay at every step, for {:+.0} replica-seconds ({:+.0} %) against the CPU policy.",
                extra,
                extra * 100.0 / replica_s(cpu).max(1.0)
            )
        } else if worse_service {
            "On this run the CPU policy served the load better than the backlog policy (fewer missed slots): the seed's claim is not supported by this run.".to_string()
        } else if bl_steps.iter().zip(cpu_steps).all(|(b, c)| b.peak_p99_ms <= c.peak_p99_ms) {
            let peak = bl_steps.first().zip(cpu_steps.first());
            format!(
                "On this run both policies ran every due slot ({:.1} % and {:.1} % missed). The backlog \
                 policy reacted faster{}; the CPU policy spent {:.0} replica-seconds against the backlog policy's {:.0} \
                 ({:+.0} %).",
                missed_pct(backlog),
                missed_pct(cpu),
                peak.map(|(b, c)| format!(
                    " (after the {} step: backlog cleared in {} vs {}, peak p99 delay {:.1} s vs {:.1} s)",
                    b.label,
                    fmt_s(b.backlog_clear_s, b.until - b.at),
                    fmt_s(c.backlog_clear_s, c.until - c.at),
                    b.peak_p99_ms / 1000.0,
                    c.peak_p99_ms / 1000.0
                ))
                .unwrap_or_default(),
                replica_s(cpu),
                replica_s(backlog),
                -extra * 100.0 / replica_s(backlog).max(1.0)
            )
        } else {
            "On this run neither policy was clearly better on both missed slots and peak delay.".to_string()
        }
    );
    out
}
