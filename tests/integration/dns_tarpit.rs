//! A tenant whose DNS never answers costs only its own checks: each ends
//! at its own deadline with a DNS timeout, no blocking-pool thread outlives
//! it, and other checks resolving and connecting at the same time are on
//! time.
//!
//! The tarpit is a real DNS server (UDP that reads and drops queries, TCP
//! that accepts and stalls), and the checks are the worker's own
//! (`probe::Prober`), pointed at the tarpit through `net::resolve::scoped`.
//! The runtime is given two blocking threads, as a worker's pool is
//! bounded: resolution that held a pool thread per lookup (getaddrinfo)
//! would queue the honest `localhost` check behind fifty stuck lookups, and
//! leave the threads running after the checks ended. A slow but honest
//! server shows the answer path: used, timed, and cut by the deadline.

use std::time::{Duration, Instant};

use sentryk8s::model::{CheckSpec, ErrorClass};
use sentryk8s::net::resolve::{self, Resolver};
use sentryk8s::probe::{Prober, ProberOptions};
use serde_json::json;

use crate::support::servers::{DnsTarpit, Reply, RoutedServer};

/// Name of the runtime's threads (workers and blocking pool alike), to
/// count them in /proc; at most 15 bytes, the kernel's limit.
const THREADS: &str = "sk-dns-tarpit";
const WORKERS: usize = 2;
const TARPIT_CHECKS: usize = 50;
const TIMEOUT: Duration = Duration::from_millis(1500);
/// What a check may take beyond its deadline (scheduling on a busy
/// machine, the error's formatting).
const MARGIN: Duration = Duration::from_millis(600);

fn spec(url: &str, timeout: Duration) -> CheckSpec {
    let value = json!({"url": url, "timeout_ms": timeout.as_millis() as u64});
    serde_json::from_value(value).expect("a valid spec")
}

/// Threads of this test's runtime alive now.
fn runtime_threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == THREADS))
        .count()
}

#[test]
fn a_tarpit_dns_server_times_out_its_own_checks_and_slows_no_other() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .max_blocking_threads(2)
        .thread_name(THREADS)
        // Idle pool threads leave quickly, so the count below sees only
        // the ones still busy.
        .thread_keep_alive(Duration::from_millis(100))
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let tarpit = DnsTarpit::start().await;
        let target = RoutedServer::start(|_| Reply::ok("up")).await;
        let port = target.addr.port();
        let prober = Prober::new(ProberOptions {
            body_limit: 1 << 20,
            user_agent: "sentryk8s-test".into(),
            deny: Default::default(),
        })
        .expect("prober");
        let prober = &prober;

        let tarpit_specs: Vec<CheckSpec> =
            (0..TARPIT_CHECKS).map(|i| spec(&format!("http://t{i}.tarpit.test:{port}/"), TIMEOUT)).collect();
        // Honest checks: an IP literal and a name /etc/hosts answers.
        let honest_specs = [
            spec(&format!("http://127.0.0.1:{port}/"), TIMEOUT),
            spec(&format!("http://localhost:{port}/"), TIMEOUT),
        ];

        let timed = |spec: &CheckSpec| {
            let spec = spec.clone();
            async move {
                let started = Instant::now();
                let outcome = prober.run(&spec).await;
                (spec.url.to_string(), outcome, started.elapsed())
            }
        };
        let work = async {
            let stuck = futures_util::future::join_all(tarpit_specs.iter().map(timed));
            let honest = async {
                // Start once the tarpit lookups are all under way.
                tokio::time::sleep(Duration::from_millis(300)).await;
                futures_util::future::join_all(honest_specs.iter().map(timed)).await
            };
            tokio::join!(stuck, honest)
        };
        let (stuck, honest) = resolve::scoped(Resolver::with_servers(&[tarpit.addr]), work).await;

        for (url, outcome, took) in &honest {
            assert!(outcome.success, "{url}: {outcome:?}");
            assert!(*took < Duration::from_millis(500), "{url} took {took:?} beside the tarpit");
        }
        for (url, outcome, took) in &stuck {
            let message = outcome.error_message.as_deref().unwrap_or("");
            assert_eq!(outcome.error_class, Some(ErrorClass::Timeout), "{url}: {outcome:?}");
            assert!(message.contains("resolving the name"), "{url}: not a DNS timeout: {message}");
            assert!(
                *took >= TIMEOUT - Duration::from_millis(50),
                "{url} ended early, after {took:?}: {message}"
            );
            assert!(*took <= TIMEOUT + MARGIN, "{url} took {took:?}, past its deadline: {message}");
        }
        assert!(tarpit.queries() >= TARPIT_CHECKS, "the tarpit was asked {} times", tarpit.queries());

        // No lookup keeps a thread once its check has ended.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let threads = runtime_threads();
        assert!(threads <= WORKERS, "{threads} threads of the runtime alive, {WORKERS} workers");
    });
}

/// A slow but honest DNS server: its answer is used, its delay counts in
/// `dns_ms` and against the check's deadline.
#[tokio::test]
async fn a_slow_dns_answer_is_used_and_counts_against_the_deadline() {
    let dns = DnsTarpit::answering(Duration::from_millis(300), std::net::Ipv4Addr::LOCALHOST).await;
    let target = RoutedServer::start(|_| Reply::ok("up")).await;
    let port = target.addr.port();
    let prober = Prober::new(ProberOptions {
        body_limit: 1 << 20,
        user_agent: "sentryk8s-test".into(),
        deny: Default::default(),
    })
    .expect("prober");
    let url = format!("http://svc.slow.test:{port}/");
    let work = async {
        let answered = prober.run(&spec(&url, Duration::from_millis(2000))).await;
        let cut =
            prober.run(&spec(&format!("http://other.slow.test:{port}/"), Duration::from_millis(150))).await;
        (answered, cut)
    };
    let (answered, cut) = resolve::scoped(Resolver::with_servers(&[dns.addr]), work).await;
    assert!(answered.success, "{answered:?}");
    let dns_ms = answered.timings.dns_ms.unwrap_or(0.0);
    assert!((250.0..1500.0).contains(&dns_ms), "dns_ms {dns_ms}: {answered:?}");
    assert_eq!(cut.error_class, Some(ErrorClass::Timeout), "{cut:?}");
    assert_eq!(cut.error_message.as_deref(), Some("timed out after 150 ms resolving the name"), "{cut:?}");
}
