//! The chaos run: the real binary (3 schedulers, 2 workers), PostgreSQL,
//! RabbitMQ and local targets, with one failure after another — `kill -9`
//! of a scheduler, `kill -9` of a worker, a rolling SIGTERM restart of every
//! scheduler, a RabbitMQ restart, a PostgreSQL restart, a 10 s network stall
//! between the workers and PostgreSQL. Then every slot due in the window is
//! accounted for: exactly one result row, or a recorded miss (catch-up,
//! stale, refused) inside an injected outage; no duplicate rows, no panics,
//! every check in its right state.
//!
//! It restarts the shared services, so it is its own serial binary:
//! `flock -o -x /tmp/sentryk8s-services.lock cargo test --test chaos`.

#[path = "../integration/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use support::fleet::{expected_slots, now_ms, Check, Fleet};
use support::services::{restart_postgres, restart_rabbitmq, Restore};
use support::{Behavior, TcpProxy, TestTarget};

const PARTITIONS: u32 = 32;
const TTL_MS: u64 = 5000;
/// How long after an injected failure misses and stale jobs are still its doing:
/// the takeover or recovery, then the backlog of jobs already too late.
const AFTERMATH_MS: i64 = 15_000;

/// An injected failure: [start, end] in unix ms.
struct Outage {
    what: &'static str,
    start: i64,
    end: i64,
}

struct Timeline(Vec<Outage>);

impl Timeline {
    fn record(&mut self, what: &'static str, start: i64) {
        self.0.push(Outage { what, start, end: now_ms() });
        eprintln!("chaos: {what} done ({} ms)", now_ms() - start);
    }

    /// The latest outage whose effects can reach `slot`.
    fn covering(&self, slot: i64) -> Option<&'static str> {
        self.0.iter().rev().find(|o| slot >= o.start - 1000 && slot <= o.end + AFTERMATH_MS).map(|o| o.what)
    }
}

#[test]
fn nothing_is_lost_or_doubled_whatever_fails() {
    let _restore = Restore;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(chaos());
}

async fn chaos() {
    let healthy = TestTarget::start(Behavior::default()).await;
    let failing = TestTarget::start(Behavior { status: 500, ..Behavior::default() }).await;
    let refused = support::free_port();

    let mut fleet = Fleet::new(PARTITIONS, 3, TTL_MS, 1000).await;
    fleet.env.push(("SENTRYK8S_DRAIN_TIMEOUT".into(), "10s".into()));
    // Workers reach PostgreSQL through a proxy the test can stall.
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().expect("address")).await;
    let mut worker_url = url::Url::parse(&fleet.db.url).expect("url");
    worker_url.set_port(Some(proxy.addr.port())).expect("port");
    fleet.worker_db_url = Some(worker_url.to_string());

    let spec = |url: String| format!("jsonb_build_object('url', '{url}', 'timeout_ms', 800)");
    let mut checks: Vec<(Check, &str)> = Vec::new();
    for (n, url, state) in [
        (240, healthy.url("/"), "up"),
        (30, failing.url("/"), "down"),
        (30, format!("http://127.0.0.1:{refused}/"), "down"),
    ] {
        let select = format!(
            "SELECT 'check-' || md5(random()::text), 1000 + (i % 5) * 1000, {} FROM generate_series(1, {n}) i",
            spec(url)
        );
        checks.extend(fleet.insert_checks(&select).await.into_iter().map(|c| (c, state)));
    }

    for ordinal in 0..3 {
        fleet.start_scheduler(ordinal);
    }
    fleet.start_worker(0, 64);
    fleet.start_worker(1, 64);
    fleet.wait_converged(Duration::from_secs(30)).await.expect("schedulers converge");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let window_start = now_ms();
    let mut timeline = Timeline(Vec::new());

    // 1. kill -9 a scheduler; it comes back under its name.
    let t = now_ms();
    fleet.schedulers.get_mut(&1).expect("scheduler 1").kill9();
    fleet.wait_owned_by(&[0, 2], Duration::from_secs(20)).await.expect("survivors take over");
    fleet.start_scheduler(1);
    fleet.wait_converged(Duration::from_secs(30)).await.expect("scheduler 1 back");
    timeline.record("kill -9 scheduler", t);
    settle().await;

    // 2. kill -9 a worker: its unacknowledged jobs go to the other one.
    let t = now_ms();
    fleet.workers.get_mut(&0).expect("worker 0").kill9();
    tokio::time::sleep(Duration::from_secs(5)).await;
    fleet.start_worker(0, 64);
    timeline.record("kill -9 worker", t);
    settle().await;

    // 3. Rolling SIGTERM restart of every scheduler.
    let t = now_ms();
    for ordinal in 0..3 {
        fleet.schedulers[&ordinal].terminate();
        let status =
            fleet.schedulers.get_mut(&ordinal).expect("scheduler").wait_exit(Duration::from_secs(20)).await;
        assert_eq!(status.and_then(|s| s.code()), Some(0), "scheduler {ordinal} drains and exits 0");
        fleet.start_scheduler(ordinal);
        fleet.wait_converged(Duration::from_secs(30)).await.expect("converged after a rolling restart step");
    }
    timeline.record("rolling SIGTERM restart of the schedulers", t);
    settle().await;

    // 4. RabbitMQ restart.
    let t = now_ms();
    restart_rabbitmq().await;
    timeline.record("RabbitMQ restart", t);
    settle().await;

    // 5. PostgreSQL restart.
    let t = now_ms();
    restart_postgres();
    timeline.record("PostgreSQL restart", t);
    settle().await;

    // 6. 10 s network stall between the workers and PostgreSQL.
    let t = now_ms();
    proxy.block();
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.unblock();
    timeline.record("10 s stall between workers and PostgreSQL", t);

    // Quiet time, then the window closes; what is due in it gets time to land.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let window_end = now_ms() - 10_000;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let exits = fleet.stop_all().await;

    // Accounting.
    let client = fleet.db.client().await;
    let rows = client
        .query(
            "SELECT check_id, (extract(epoch FROM slot) * 1000)::bigint, count(*)
               FROM check_results
              WHERE slot >= 'epoch'::timestamptz + $1 * interval '1 millisecond'
                AND slot < 'epoch'::timestamptz + $2 * interval '1 millisecond'
              GROUP BY 1, 2",
            &[&(window_start as f64), &(window_end as f64)],
        )
        .await
        .expect("results");
    let results: HashMap<(i64, i64), i64> = rows.iter().map(|r| ((r.get(0), r.get(1)), r.get(2))).collect();
    let plain: Vec<Check> = checks.iter().map(|(c, _)| c.clone()).collect();
    let missed = fleet.missed(&plain).await;
    let expected = expected_slots(&plain, window_start, window_end);

    let mut table: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_outage: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (id, slot) in &expected {
        *table.entry("slots due").or_default() += 1;
        match results.get(&(*id, *slot)) {
            Some(1) => *table.entry("results").or_default() += 1,
            Some(n) => {
                *table.entry("duplicates").or_default() += 1;
                problems.push(format!("check {id} slot {slot}: {n} result rows"));
            }
            None => match missed.get(id).and_then(|m| m.get(slot)) {
                Some(reason) => {
                    let key = if reason == "stale" { "stale" } else { "missed" };
                    *table.entry(key).or_default() += 1;
                    match timeline.covering(*slot) {
                        Some(what) => *by_outage.entry(format!("{key} during {what}")).or_default() += 1,
                        None => problems.push(format!(
                            "check {id} slot {slot} {reason} outside every injected outage ({} ms into the window)",
                            slot - window_start
                        )),
                    }
                }
                None => {
                    *table.entry("unaccounted").or_default() += 1;
                    problems.push(format!(
                        "check {id} slot {slot} has no result and no record ({} ms into the window, near {:?})",
                        slot - window_start,
                        timeline.covering(*slot)
                    ));
                }
            },
        }
    }
    // Results that no slot explains (off the grid) would be invented work.
    let grid: std::collections::HashSet<(i64, i64)> = expected.iter().copied().collect();
    let invented = results.keys().filter(|k| !grid.contains(k)).count();
    table.insert("results off the grid", invented);
    let duplicate_rows: i64 = client
        .query_one("SELECT count(*) FROM (SELECT 1 FROM check_results GROUP BY check_id, slot HAVING count(*) > 1) d", &[])
        .await
        .expect("duplicates")
        .get(0);
    table.insert("duplicate rows (whole run)", duplicate_rows as usize);

    println!("\nchaos accounting, window of {} s:", (window_end - window_start) / 1000);
    for (k, v) in &table {
        println!("  {k:<28} {v:>8}");
    }
    for (k, v) in &by_outage {
        println!("    {k:<60} {v:>6}");
    }
    for o in &timeline.0 {
        println!("  outage {:<45} {:>6} ms → {:>6} ms", o.what, o.start - window_start, o.end - window_start);
    }

    // Every check in its right state.
    let states = client
        .query("SELECT check_id, status FROM check_state", &[])
        .await
        .expect("states")
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
        .collect::<HashMap<_, _>>();
    for (check, want) in &checks {
        let got = states.get(&check.id).map(String::as_str).unwrap_or("none");
        if got != *want {
            problems.push(format!("check {} is {got}, expected {want}", check.id));
        }
    }

    let output = fleet.all_output();
    let panics: Vec<&str> = output.lines().filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "process panics: {panics:?}");
    for (name, code) in exits {
        assert_eq!(code, Some(0), "{name} exits 0 on SIGTERM");
    }
    assert!(expected.len() > 10_000, "{} slots in the window", expected.len());
    assert!(
        problems.is_empty(),
        "{} problems, e.g. {:#?}",
        problems.len(),
        &problems[..problems.len().min(15)]
    );
    assert_eq!(invented, 0);
    assert_eq!(duplicate_rows, 0);
}

/// Lets the system reach steady state between failures.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(8)).await;
}
