//! What every benchmark harness shares: process CPU and memory from /proc,
//! child processes that are always stopped, a fresh database and a unique
//! RabbitMQ topology per run, the local targets (nginx or a built-in hyper
//! server with per-path delays), metric scraping, percentiles, the machine
//! description every report opens with, CSV files and the tiny SVG writer
//! (`svg.rs`) that draws the plots.
//!
//! Included by each bench binary with `#[path = "common/mod.rs"] mod common;`;
//! not every binary uses every helper.
//!
//! What is the same as in the integration tests is not repeated here: the
//! fresh database and unique names (`db.rs`), the per-run RabbitMQ topology
//! (`broker.rs`), the HTTP/1.0 GET (`http.rs`) and free ports (`binary.rs`)
//! are the test support's own files, included with `#[path]`. What differs
//! stays here: children that log to files and drain on SIGTERM (`Killer`,
//! where tests keep output in memory), the bench's handles on the database
//! (an admin connection for backend PIDs) and queue, and the measuring.
#![allow(dead_code, unused_imports)]

pub mod backlog;
pub mod svg;

#[path = "../../tests/integration/support/binary.rs"]
mod binary;
#[path = "../../tests/integration/support/broker.rs"]
pub mod broker;
#[path = "../../tests/integration/support/db.rs"]
pub mod db;
#[path = "../../tests/integration/support/http.rs"]
pub mod http;

pub use binary::free_port;
pub use broker::amqp_url;
pub use db::admin_url;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::net::TcpStream;

pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

/// bench/results of the source tree, whatever the working directory.
pub fn results_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

pub fn write_result(name: &str, text: &str) {
    let path = results_dir().join(name);
    match std::fs::write(&path, text) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("!! cannot write {}: {e}", path.display()),
    }
}

/// A CSV file: a header and rows of already formatted cells.
pub fn write_csv(name: &str, header: &[&str], rows: &[Vec<String>]) {
    let mut text = header.join(",");
    text.push('\n');
    for row in rows {
        text.push_str(&row.join(","));
        text.push('\n');
    }
    write_result(name, &text);
}

// ---------------------------------------------------------------- /proc

/// Ticks per second of /proc's CPU times (USER_HZ).
pub fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime of a process in seconds (0 when it is gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after ')'.
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// CPU seconds of a process and its direct children (nginx's workers).
pub fn cpu_seconds_with_children(pid: u32) -> f64 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    cpu_seconds(pid)
        + children.split_whitespace().filter_map(|c| c.parse().ok()).map(cpu_seconds).sum::<f64>()
}

/// pid → CPU seconds of every process whose command name is `comm`.
pub fn cpu_by_comm(comm: &str) -> HashMap<u32, f64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if name.trim() == comm {
            out.insert(pid, cpu_seconds(pid));
        }
    }
    out
}

/// CPU seconds spent between two `cpu_by_comm` snapshots (a process born
/// in between counts whole; one that died is lost, which is rare for
/// PostgreSQL backends of a pool and for beam.smp).
pub fn cpu_delta(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after.iter().map(|(pid, t)| t - before.get(pid).copied().unwrap_or(0.0)).filter(|d| *d > 0.0).sum()
}

/// (busy, total) jiffies of the whole machine from /proc/stat.
pub fn machine_jiffies() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else { return (0.0, 0.0) };
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// "2 × AMD EPYC …, 24 GiB" for the report header.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    format!("{cores} cores ({model}), {:.0} GiB RAM", mem_kb as f64 / 1024.0 / 1024.0)
}

/// The lines every report opens with.
pub fn report_header(title: &str, command: &str) -> String {
    format!(
        "# {title}\n\n\
         - command: `{command}`\n\
         - date: {}\n\
         - machine: {} (shared with other engineers' builds and tests)\n\
         - load average at start (1/5/15 min): {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine(),
        loadavg()
    )
}

// ------------------------------------------------------------ children

/// A child that is stopped when dropped: SIGTERM (nginx's master then
/// stops its workers, a worker drains), SIGKILL if it lingers.
pub struct Killer {
    pub child: Child,
    pub grace: Duration,
}

impl Killer {
    pub fn new(child: Child) -> Killer {
        Killer { child, grace: Duration::from_secs(25) }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal);
    }

    /// Exited already (reaped here)?
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + self.grace;
        while std::time::Instant::now() < deadline {
            if self.exited() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn which(program: &str) -> Option<String> {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/sbin", "/bin", "/usr/lib/nagios/plugins"] {
        let path = format!("{dir}/{program}");
        if Path::new(&path).exists() {
            return Some(path);
        }
    }
    None
}

/// Database and broker settings of one sentryk8s child process.
#[derive(Clone)]
pub struct RoleEnv {
    pub database_url: String,
    pub exchange: String,
    pub queue: String,
    pub log_dir: PathBuf,
}

/// Starts `sentryk8s <args>` (release build) with the run's database and
/// queue; its stderr goes to `<log_dir>/<log_name>.log`.
pub fn spawn_sentryk8s(env: &RoleEnv, args: &[&str], extra: &[(&str, String)], log_name: &str) -> Killer {
    let log = std::fs::File::create(env.log_dir.join(format!("{log_name}.log"))).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sentryk8s"));
    command
        .args(args)
        .env("SENTRYK8S_DATABASE_URL", &env.database_url)
        .env("SENTRYK8S_AMQP_URL", amqp_url())
        .env("SENTRYK8S_AMQP__EXCHANGE", &env.exchange)
        .env("SENTRYK8S_AMQP__QUEUE", &env.queue)
        .env("SENTRYK8S_LOG_LEVEL", "warn")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    for (k, v) in extra {
        command.env(k, v);
    }
    Killer::new(command.spawn().expect("spawn sentryk8s"))
}

// --------------------------------------------------------- services

/// A fresh database with the schema (the tests' `TestDb`), a client on it
/// and an admin connection; dropped by `drop_db`.
pub struct BenchDb {
    pub name: String,
    pub url: String,
    pub client: tokio_postgres::Client,
    admin: tokio_postgres::Client,
    db: db::TestDb,
}

impl BenchDb {
    pub async fn create(prefix: &str, partitions: u32) -> BenchDb {
        let db = db::TestDb::migrated_named(prefix, partitions).await;
        let client = db.client().await;
        let admin = db::connect(&admin_url()).await;
        BenchDb { name: db.name.clone(), url: db.url.clone(), client, admin, db }
    }

    /// Closes the bench's connections, then drops the database (`TestDb`'s
    /// drop, `WITH (FORCE)`).
    pub async fn drop_db(self) {
        let BenchDb { client, admin, db, .. } = self;
        drop(client);
        drop(admin);
        drop(db);
    }

    /// Closes the bench's connections and leaves the database in place (to
    /// EXPLAIN by hand; drop it yourself).
    pub fn keep(self) {
        let BenchDb { client, admin, db, .. } = self;
        drop(client);
        drop(admin);
        std::mem::forget(db);
    }

    /// PIDs of PostgreSQL backends serving this database.
    pub async fn backend_pids(&self) -> Vec<u32> {
        self.admin
            .query("SELECT pid FROM pg_stat_activity WHERE datname = $1", &[&self.name])
            .await
            .map(|rows| rows.iter().map(|r| r.get::<_, i32>(0) as u32).collect())
            .unwrap_or_default()
    }
}

/// A unique exchange and job queue(s) on the shared broker (the tests'
/// `TestBroker` names), declared at once and deleted by `delete`.
pub struct BenchQueue {
    pub topology: sentryk8s::queue::Topology,
    broker: broker::TestBroker,
}

impl BenchQueue {
    pub async fn declare(prefix: &str) -> BenchQueue {
        BenchQueue::declare_queues(prefix, 1).await
    }

    /// With `queues` job queues (`amqp.queues`): "<queue>", "<queue>.1" …,
    /// declared as the binary declares them. Its children need
    /// `SENTRYK8S_AMQP__QUEUES` = `queues` too (`amqp_env`).
    pub async fn declare_queues(prefix: &str, queues: u32) -> BenchQueue {
        let broker = broker::TestBroker::named(prefix);
        let mut amqp = sentryk8s::config::Config::defaults().expect("default config").amqp;
        amqp.exchange = broker.exchange.clone();
        amqp.queue = broker.queue.clone();
        amqp.queues = queues.max(1);
        let topology = sentryk8s::queue::Topology::from_config(&amqp);
        let connection = broker.connect().await;
        let channel = connection.open_channel(None).await.expect("open channel");
        sentryk8s::queue::declare_topology(&channel, &topology).await.expect("declare topology");
        let _ = connection.close().await;
        BenchQueue { topology, broker }
    }

    /// The job queues' names, the first (`amqp.queue`) first.
    pub fn job_queue_names(&self) -> Vec<String> {
        self.topology.job_queues.iter().map(|q| q.name.clone()).collect()
    }

    /// Environment for a child so that it routes to (scheduler) and consumes
    /// (worker) every job queue of this topology.
    pub fn amqp_env(&self) -> Vec<(&'static str, String)> {
        vec![("SENTRYK8S_AMQP__QUEUES", self.topology.job_queues.len().max(1).to_string())]
    }

    pub fn role_env(&self, db: &BenchDb, log_dir: &Path) -> RoleEnv {
        RoleEnv {
            database_url: db.url.clone(),
            exchange: self.topology.exchange.clone(),
            queue: self.topology.queue.clone(),
            log_dir: log_dir.to_path_buf(),
        }
    }

    /// Deletes the queues and exchanges: "<queue>.1" … here, the first job
    /// queue, the dead letters and the exchanges in `TestBroker`'s drop.
    pub async fn delete(self) {
        if self.topology.job_queues.len() > 1 {
            let connection = self.broker.connect().await;
            if let Ok(channel) = connection.open_channel(None).await {
                for q in self.topology.job_queues.iter().skip(1) {
                    let _ = channel.queue_delete(amqprs::channel::QueueDeleteArguments::new(&q.name)).await;
                }
            }
            let _ = connection.close().await;
        }
        drop(self.broker);
    }
}

/// (ready, unacked) of `queue` from RabbitMQ's own Prometheus endpoint,
/// the per-queue family prometheus-adapter's rule reads
/// (helm/sentryk8s/examples/prometheus-adapter-values.yaml).
pub async fn rabbitmq_queue_depth(queue: &str) -> Option<(f64, f64)> {
    rabbitmq_queue_depths(&[queue.to_string()]).await
}

/// (ready, unacked) summed over `queues`, from one scrape. Like PromQL's
/// `sum`, a queue RabbitMQ does not show yet adds nothing; None when it
/// shows none of them.
pub async fn rabbitmq_queue_depths(queues: &[String]) -> Option<(f64, f64)> {
    let addr: SocketAddr = ([127, 0, 0, 1], 15692).into();
    let text = http_get(addr, "/metrics/detailed?family=queue_coarse_metrics").await?;
    let value = |metric: &str, queue: &str| {
        let needle = format!("queue=\"{queue}\"}}");
        text.lines()
            .find(|l| l.starts_with(metric) && l.contains(&needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let mut found = None;
    for queue in queues {
        let ready = value("rabbitmq_detailed_queue_messages_ready{", queue);
        let unacked = value("rabbitmq_detailed_queue_messages_unacked{", queue);
        if let (Some(r), Some(u)) = (ready, unacked) {
            let (sr, su) = found.unwrap_or((0.0, 0.0));
            found = Some((sr + r, su + u));
        }
    }
    found
}

// ------------------------------------------------------------ HTTP

pub async fn wait_port(addr: SocketAddr) -> bool {
    for _ in 0..400 {
        if TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Body of a GET over HTTP/1.0 (the ops server and RabbitMQ's exporter),
/// whatever its status; None after 5 s or on any error.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    http::get_within(addr, path, Duration::from_secs(5)).await.ok().map(|(_, body)| body)
}

/// Sum of every sample of `name` (all label sets) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' ')))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.trim().parse::<f64>().ok()))
        .sum()
}

/// Cumulative buckets (upper bound in seconds, count) of a histogram.
pub fn histogram_buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else { continue };
        let Some((le, count)) = rest.split_once("\"} ") else { continue };
        let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::INFINITY) };
        out.push((le, count.trim().parse().unwrap_or(0.0)));
    }
    out
}

/// Adds histogram bucket lists (several processes) or subtracts (`sign` −1).
pub fn add_buckets(into: &mut Vec<(f64, f64)>, other: &[(f64, f64)], sign: f64) {
    for (le, n) in other {
        match into.iter_mut().find(|(l, _)| l == le) {
            Some(slot) => slot.1 += sign * n,
            None => into.push((*le, sign * n)),
        }
    }
    into.sort_by(|a, b| a.0.total_cmp(&b.0));
}

/// The upper bound of the bucket holding quantile `q`, as text.
pub fn bucket_quantile(buckets: &[(f64, f64)], q: f64) -> String {
    let total = buckets.last().map(|(_, n)| *n).unwrap_or(0.0);
    if total <= 0.0 {
        return "n/a".into();
    }
    buckets
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map(|(le, _)| if le.is_finite() { format!("≤ {} ms", le * 1000.0) } else { "> last bucket".into() })
        .unwrap_or_else(|| "n/a".into())
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

// ----------------------------------------------------------- targets

/// nginx answering 200 "ok" with Connection: close, one worker process.
pub fn start_nginx(dir: &Path, port: u16) -> Option<Killer> {
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
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .ok()?;
    let mut k = Killer::new(child);
    k.grace = Duration::from_secs(5);
    Some(k)
}

/// Environment variable that turns a bench binary into the delay target.
pub const TARGET_ROLE: &str = "SK_BENCH_ROLE_TARGET_PORT";

/// Starts this same bench binary as a separate target process (so its CPU
/// is counted apart): `GET /d/<ms>` answers 200 after `<ms>` milliseconds,
/// on a new connection each time.
pub fn spawn_delay_target(port: u16) -> Killer {
    let exe = std::env::current_exe().expect("current exe");
    let child = Command::new(exe)
        .env(TARGET_ROLE, port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn target");
    let mut k = Killer::new(child);
    k.grace = Duration::from_secs(2);
    k
}

/// In the child started by `spawn_delay_target`: serve until killed.
/// Returns false (do nothing) in the harness itself.
pub fn run_delay_target_if_child() -> bool {
    let Some(port) = std::env::var(TARGET_ROLE).ok().and_then(|p| p.parse::<u16>().ok()) else {
        return false;
    };
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    runtime.block_on(serve_delays(port));
    true
}

async fn serve_delays(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind target");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let ms: u64 =
                        req.uri().path().strip_prefix("/d/").and_then(|v| v.parse().ok()).unwrap_or(0);
                    if ms > 0 {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
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
}

/// A scratch directory for configs and logs, removed on drop unless the
/// run failed (then its logs help).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("sentryk8s-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
