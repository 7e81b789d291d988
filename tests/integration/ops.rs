//! The ops server against real dependencies: /metrics, /healthz, /readyz;
//! through the real binary, the one drain policy of every role
//! (`commands/serve.rs`): the ops server answers until the drain is over;
//! and a running worker under a flood of idle connections and `/readyz`
//! requests: liveness, readiness and result writes keep their pace.

use std::sync::Arc;
use std::time::Duration;

use sentryk8s::ops_server;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::worker_bed::now_ms;
use crate::support::{http, Behavior, TcpProxy, TestDb, TestTarget, WorkerBed};

#[tokio::test]
async fn readyz_follows_postgres_and_metrics_render() {
    let db = TestDb::migrated(4).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();

    let mut config = sentryk8s::config::Config::defaults().unwrap();
    config.database_url = url.to_string();
    config.database.connect_timeout = Duration::from_secs(1);
    let pool = sentryk8s::db::pool(&config, "test").unwrap();
    let shutdown = CancellationToken::new();
    let (addr, server) = ops_server::start(
        "127.0.0.1:0".parse().unwrap(),
        vec![Arc::new(sentryk8s::db::PostgresProbe(pool))], // the probe's own pool
        shutdown.clone(),
    )
    .await
    .unwrap();

    metrics::counter!("sentryk8s_test_probe_total").increment(3);
    let (status, body) = http::get(addr, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("sentryk8s_test_probe_total 3"), "{body}");
    assert_eq!(http::get(addr, "/healthz").await.unwrap().0, 200);
    let (status, body) = http::get(addr, "/readyz").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("postgres: ok"), "{body}");

    proxy.block();
    // Readiness is a cached probe result, refreshed every second, each probe
    // bounded by 2 s: it follows within a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    let (status, body) = loop {
        let answer = http::get(addr, "/readyz").await.unwrap_or_default();
        if answer.0 == 503 || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("postgres:") && !body.contains("postgres: ok"), "{body}");
    // Liveness does not depend on PostgreSQL: restarting the pod would not help.
    assert_eq!(http::get(addr, "/healthz").await.unwrap().0, 200);

    proxy.unblock();
    let ready_again = crate::support::eventually(Duration::from_secs(10), || async {
        http::get(addr, "/readyz").await.map(|(s, _)| s == 200).unwrap_or(false)
    })
    .await;
    assert!(ready_again, "ready again once PostgreSQL answers");
    assert_eq!(http::get(addr, "/nope").await.unwrap().0, 404);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_draining_worker_still_serves_metrics_and_liveness() {
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior { delay: Duration::from_secs(3), ..Behavior::default() }).await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 10_000});
    let id = bed.add_check("slow", &spec).await;
    bed.publish(&WorkerBed::job(id, "slow", &spec, now_ms())).await;
    let mut worker = bed.spawn_worker(&[]);
    let running =
        crate::support::eventually(Duration::from_secs(20), || async { target.requests() == 1 }).await;
    assert!(running, "{}", worker.output());

    worker.terminate();
    // Let the signal land: the check still has seconds to run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = http::get(bed.listen, "/metrics").await.expect("/metrics during the drain");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sentryk8s_checks_in_flight 1"), "the last scrape sees the drain\n{body}");
    assert_eq!(http::get(bed.listen, "/healthz").await.map(|(s, _)| s), Ok(200));

    let exit = worker.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{}", worker.output());
    assert_eq!(bed.count("SELECT count(*) FROM check_results").await, 1, "the drained check was stored");
}

/// Lets this test process hold thousands of sockets (the flood's client
/// ends); the worker's own limit is what it inherits.
fn raise_open_files(wanted: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < wanted {
        setrlimit(Resource::RLIMIT_NOFILE, wanted.min(hard), hard).expect("setrlimit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_connections_and_readyz_starves_neither_liveness_nor_the_worker() {
    raise_open_files(8192);
    let bed = WorkerBed::new().await;
    let target = TestTarget::start(Behavior::default()).await;
    let spec = json!({"url": target.url("/"), "timeout_ms": 2_000});
    let id = bed.add_check("steady", &spec).await;
    let mut worker = bed.spawn_worker(&[]);
    // 1024 open files: the soft limit systemd gives a service and many
    // hosts a process. The connection cap must keep the ops server far
    // below it, or idle peers take the descriptors the worker needs for
    // PostgreSQL, RabbitMQ and its targets, and the kubelet's own probe.
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &worker.pid().to_string(), "--nofile=1024:1024"])
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(limited.success(), "prlimit failed");
    let listen = bed.listen;
    let ready = crate::support::eventually(Duration::from_secs(20), || async {
        http::get(listen, "/readyz").await.map(|(s, _)| s == 200).unwrap_or(false)
    })
    .await;
    assert!(ready, "{}", worker.output());

    // 2,000 connections that never send a byte, all at once, while a
    // prober asks /healthz. The server must keep accepting: a full listen
    // backlog is a dead liveness probe.
    let mut failures = Vec::new();
    let connect = || async {
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(listen)).await
    };
    let burst = futures_util::future::join_all((0..2_000).map(|_| connect()));
    // As a kubelet probes: a failure counts only after three in a row
    // (failureThreshold 3). The test's own client shares two starved
    // threads with the burst, so between its connect and its write the
    // server may rightly see a silent peer; three tries in the burst must
    // not all fail.
    let prober = async {
        let mut last = Err("not tried".to_string());
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            last = http::get_within(listen, "/healthz", Duration::from_secs(2)).await;
            if last.as_ref().map(|(s, _)| *s) == Ok(200) {
                break;
            }
        }
        last
    };
    let (opened, during_burst) = tokio::join!(burst, prober);
    if during_burst.as_ref().map(|(s, _)| *s) != Ok(200) {
        failures.push(format!("/healthz during the burst: {during_burst:?}"));
    }
    let mut idle = Vec::new();
    for (i, attempt) in opened.into_iter().enumerate() {
        match attempt {
            Ok(Ok(stream)) => idle.push(stream),
            other => failures.push(format!("connection {i} not accepted: {other:?}")),
        }
    }
    failures.truncate(5);
    // And 64 clients asking /readyz back to back.
    let stop = CancellationToken::new();
    let flood: Vec<_> = (0..64)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut asked = 0u64;
                while !stop.is_cancelled() {
                    let _ = http::get_within(listen, "/readyz", Duration::from_secs(5)).await;
                    asked += 1;
                }
                asked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The oldest idle connection is closed by now (evicted at the cap, or
    // at the header-read timeout): peers that never ask hold nothing.
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(6), idle[0].peek(&mut byte)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        other => failures.push(format!("an idle connection was still open: {other:?}")),
    }
    let mut stored_within = Vec::new();
    for round in 0..6 {
        let started = std::time::Instant::now();
        match http::get_within(listen, "/healthz", Duration::from_secs(2)).await {
            Ok((200, _)) => {}
            other => {
                failures.push(format!("round {round}: /healthz {other:?} after {:?}", started.elapsed()))
            }
        }
        match http::get_within(listen, "/readyz", Duration::from_secs(2)).await {
            Ok((200, body)) if body.contains("postgres: ok") && body.contains("amqp: ok") => {}
            other => failures.push(format!("round {round}: /readyz {other:?}")),
        }
        // A result written now must not queue behind the flood.
        let published = std::time::Instant::now();
        bed.publish(&WorkerBed::job(id, "steady", &spec, now_ms())).await;
        let sql = format!("SELECT count(*) FROM check_results WHERE check_id = {id}");
        if bed.wait_for_count(&sql, round as i64 + 1, Duration::from_secs(3)).await {
            stored_within.push(published.elapsed());
        } else {
            failures.push(format!("round {round}: the result was not stored within 3 s"));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.cancel();
    let mut asked = 0;
    for client in flood {
        asked += client.await.unwrap_or(0);
    }
    eprintln!(
        "flood: {} idle connections, {asked} /readyz requests; results stored within {stored_within:?}",
        idle.len()
    );
    assert!(failures.is_empty(), "{failures:#?}\n{}", worker.output());
    assert!(asked > 100, "the flood really ran ({asked} requests)");
    let probes = bed
        .count("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sentryk8s-worker-readiness' AND datname = current_database()")
        .await;
    assert!(probes <= 1, "readiness holds at most one connection of its own, found {probes}");
    drop(idle);

    worker.terminate();
    let exit = worker.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{}", worker.output());
}

/// Counts the checks of the real PostgreSQL probe it wraps.
struct Counted(sentryk8s::db::PostgresProbe, Arc<std::sync::atomic::AtomicUsize>);

impl ops_server::ReadinessProbe for Counted {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn check(&self) -> ops_server::BoxFuture<'_, Result<(), String>> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.check()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_requests_read_a_cached_probe_result() {
    let db = TestDb::migrated(4).await;
    let mut config = sentryk8s::config::Config::defaults().unwrap();
    config.database_url = db.url.clone();
    let probe = sentryk8s::db::PostgresProbe::dedicated(&config, "test").unwrap();
    let checks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let shutdown = CancellationToken::new();
    let (addr, server) = ops_server::start(
        "127.0.0.1:0".parse().unwrap(),
        vec![Arc::new(Counted(probe, checks.clone()))],
        shutdown.clone(),
    )
    .await
    .unwrap();

    let started = std::time::Instant::now();
    // 100 at once (below the connection cap, so none is closed to make room).
    let answers = futures_util::future::join_all((0..100).map(|_| http::get(addr, "/readyz"))).await;
    let elapsed = started.elapsed();
    for answer in answers {
        let (status, body) = answer.unwrap();
        assert_eq!((status, body.as_str()), (200, "ready\npostgres: ok\n"), "the format the chart reads");
    }
    let probed = checks.load(std::sync::atomic::Ordering::SeqCst);
    // One round per second at most, whatever the number of requests.
    let rounds = elapsed.as_secs() as usize + 2;
    assert!(probed <= rounds, "100 requests ran {probed} probes in {elapsed:?}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_peer_that_never_finishes_its_request_head_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let shutdown = CancellationToken::new();
    let (addr, server) =
        ops_server::start("127.0.0.1:0".parse().unwrap(), Vec::new(), shutdown.clone()).await.unwrap();
    // Slowloris: a head that never ends.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let closed =
        tokio::time::timeout(ops_server::HEADER_READ_TIMEOUT * 2, stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "still open after {:?}", started.elapsed());
    assert!(
        started.elapsed() >= ops_server::HEADER_READ_TIMEOUT - Duration::from_millis(500),
        "closed too early: {:?}",
        started.elapsed()
    );
    // Meanwhile, and after, a prober is answered at once.
    assert_eq!(http::get_within(addr, "/healthz", Duration::from_secs(2)).await.map(|(s, _)| s), Ok(200));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
}
