//! `sentryk8s worker` against targets the test starts: every kind of
//! outcome, error class and phase timing, through the real binary, broker
//! and database (issue 4, acceptance 1 and 2).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::servers::{refused_addr, Hostile, HostileServer, Reply, RoutedServer, TlsServer};
use crate::support::worker_bed::{now_ms, Stored};
use crate::support::WorkerBed;

struct Case {
    name: &'static str,
    spec: serde_json::Value,
    expect: fn(&Stored),
}

fn success(r: &Stored) {
    assert!(r.success, "{r:?}");
    assert_eq!(r.error_class, None, "{r:?}");
    assert!(r.connect_ms.unwrap_or(0.0) > 0.0 && r.first_byte_ms.unwrap_or(0.0) > 0.0, "{r:?}");
    assert!(r.total_ms > 0.0, "{r:?}");
}

fn failed(r: &Stored, class: &str) {
    assert!(!r.success, "{r:?}");
    assert_eq!(r.error_class.as_deref(), Some(class), "{r:?}");
    assert!(r.error_message.as_deref().is_some_and(|m| !m.is_empty()), "{r:?}");
}

#[tokio::test]
async fn every_outcome_through_the_real_worker() {
    let bed = WorkerBed::new().await;
    let web = RoutedServer::start(|path| match path {
        "/ok" => Reply::ok("hello world"),
        "/boom" => Reply::status(500),
        "/gone" => Reply::status(404),
        "/slow" => Reply::ok("late").delayed(Duration::from_secs(5)),
        "/r1" => Reply::redirect(302, "/r2"),
        "/r2" => Reply::redirect(301, "/r3"),
        "/r3" => Reply::redirect(307, "/ok"),
        "/loop-a" => Reply::redirect(302, "/loop-b"),
        "/loop-b" => Reply::redirect(302, "/loop-a"),
        "/health" => Reply::json(json!({"status": "ok", "db": {"up": true}})),
        _ => Reply::status(404),
    })
    .await;
    let tls = TlsServer::start(false, |_| Reply::ok("secure")).await;
    let refused = refused_addr().await;
    let port = web.addr.port();

    let cases = vec![
        Case {
            name: "ok-200",
            spec: json!({"url": web.url("/ok"), "timeout_ms": 2000}),
            expect: |r| {
                success(r);
                assert_eq!(r.status_code, Some(200));
                assert_eq!(r.dns_ms, None, "an IP literal needs no DNS");
                assert_eq!(r.tls_ms, None);
                assert_eq!(r.bytes_read, Some(11));
            },
        },
        Case {
            name: "localhost-by-name",
            spec: json!({"url": format!("http://localhost:{port}/ok"), "timeout_ms": 2000}),
            expect: |r| {
                success(r);
                assert!(r.dns_ms.unwrap_or(0.0) > 0.0, "resolved by name: {r:?}");
            },
        },
        Case {
            name: "error-500",
            spec: json!({"url": web.url("/boom"), "timeout_ms": 2000}),
            expect: |r| {
                failed(r, "assertion");
                assert_eq!(r.status_code, Some(500));
                assert_eq!(r.failed_assertions, Some(vec!["status 500 not in [200-399]".to_string()]));
            },
        },
        Case {
            name: "expected-404",
            spec: json!({"url": web.url("/gone"), "timeout_ms": 2000, "expect": {"status": [404]}}),
            expect: |r| {
                success(r);
                assert_eq!(r.status_code, Some(404));
            },
        },
        Case {
            name: "slow-beyond-timeout",
            spec: json!({"url": web.url("/slow"), "timeout_ms": 500}),
            expect: |r| {
                failed(r, "timeout");
                assert!(r.total_ms >= 450.0 && r.total_ms < 1500.0, "{r:?}");
                assert!(r.connect_ms.unwrap_or(0.0) > 0.0, "{r:?}");
                assert_eq!(r.first_byte_ms, None, "{r:?}");
            },
        },
        Case {
            name: "refused",
            spec: json!({"url": format!("http://{refused}/"), "timeout_ms": 2000}),
            expect: |r| {
                failed(r, "refused");
                assert!(r.error_message.as_deref().unwrap_or("").contains("refused"), "{r:?}");
                assert!(r.connect_ms.unwrap_or(0.0) > 0.0, "{r:?}");
            },
        },
        Case {
            name: "unresolvable",
            spec: json!({"url": "http://no-such-host.invalid/", "timeout_ms": 3000}),
            expect: |r| {
                failed(r, "dns");
                assert!(r.dns_ms.unwrap_or(0.0) > 0.0, "{r:?}");
                assert_eq!(r.connect_ms, None, "{r:?}");
            },
        },
        Case {
            name: "redirect-chain",
            spec: json!({"url": web.url("/r1"), "timeout_ms": 2000, "max_redirects": 5}),
            expect: |r| {
                success(r);
                assert_eq!(r.status_code, Some(200));
            },
        },
        Case {
            name: "redirect-not-followed",
            spec: json!({"url": web.url("/r1"), "timeout_ms": 2000}),
            expect: |r| {
                success(r);
                assert_eq!(r.status_code, Some(302), "max_redirects 0: the redirect is the response");
            },
        },
        Case {
            name: "redirect-too-many",
            spec: json!({"url": web.url("/r1"), "timeout_ms": 2000, "max_redirects": 2}),
            expect: |r| {
                failed(r, "protocol");
                assert!(r.error_message.as_deref().unwrap_or("").contains("more than 2 redirects"), "{r:?}");
            },
        },
        Case {
            name: "redirect-loop",
            spec: json!({"url": web.url("/loop-a"), "timeout_ms": 2000, "max_redirects": 10}),
            expect: |r| {
                failed(r, "protocol");
                assert!(r.error_message.as_deref().unwrap_or("").contains("redirect loop"), "{r:?}");
            },
        },
        Case {
            name: "tls-self-signed-verified",
            spec: json!({"url": tls.url("/"), "timeout_ms": 2000}),
            expect: |r| {
                failed(r, "tls");
                assert!(r.tls_ms.unwrap_or(0.0) > 0.0, "{r:?}");
                assert!(r.error_message.as_deref().unwrap_or("").contains("certificate"), "{r:?}");
            },
        },
        Case {
            name: "tls-self-signed-unverified",
            spec: json!({"url": tls.url("/"), "timeout_ms": 2000, "tls_verify": false,
                         "expect": {"cert_days_left": 30}}),
            expect: |r| {
                success(r);
                assert!(r.tls_ms.unwrap_or(0.0) > 0.0, "{r:?}");
                assert_eq!(
                    r.cert_expires_at.map(|t| t.to_rfc3339()).as_deref(),
                    Some("2036-01-02T00:00:00+00:00")
                );
            },
        },
        Case {
            name: "body-keyword-present",
            spec: json!({"url": web.url("/ok"), "timeout_ms": 2000,
                         "expect": {"body_contains": ["world"], "body_regex": ["^hel+o"]}}),
            expect: success,
        },
        Case {
            name: "body-keyword-absent",
            spec: json!({"url": web.url("/ok"), "timeout_ms": 2000,
                         "expect": {"body_contains": ["goodbye"], "body_not_contains": ["hello"]}}),
            expect: |r| {
                failed(r, "assertion");
                assert_eq!(
                    r.failed_assertions,
                    Some(vec![
                        "body does not contain \"goodbye\"".to_string(),
                        "body contains \"hello\"".to_string()
                    ])
                );
            },
        },
        Case {
            name: "json-match",
            spec: json!({"url": web.url("/health"), "timeout_ms": 2000,
                         "expect": {"json": {"/status": "ok", "/db/up": true}}}),
            expect: success,
        },
        Case {
            name: "json-mismatch",
            spec: json!({"url": web.url("/health"), "timeout_ms": 2000,
                         "expect": {"json": {"/status": "degraded"}}}),
            expect: |r| {
                failed(r, "assertion");
                assert_eq!(
                    r.failed_assertions,
                    Some(vec![r#"json /status: expected "degraded", got "ok""#.to_string()])
                );
            },
        },
    ];

    let slot = now_ms();
    let mut ids = Vec::new();
    for case in &cases {
        let id = bed.add_check(case.name, &case.spec).await;
        bed.publish(&WorkerBed::job(id, case.name, &case.spec, slot)).await;
        ids.push(id);
    }
    let mut worker = bed.spawn_worker(&[]);
    let all = bed
        .wait_for_count("SELECT count(*) FROM check_results", cases.len() as i64, Duration::from_secs(30))
        .await;
    assert!(all, "not every check produced a result\n{}", worker.output());
    for (case, id) in cases.iter().zip(&ids) {
        let results = bed.results(*id).await;
        assert_eq!(results.len(), 1, "{}", case.name);
        eprintln!("{}: {:?}", case.name, results[0]);
        (case.expect)(&results[0]);
    }
    // Every result advanced its check's state; nothing is left in the queue.
    assert_eq!(
        bed.count("SELECT count(*) FROM check_state WHERE last_slot IS NOT NULL").await,
        cases.len() as i64
    );
    assert_eq!(bed.depth(&bed.broker.queue).await, 0);

    let (status, metrics) = crate::support::http::get(bed.listen, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    for needle in [
        "sentryk8s_checks_total{outcome=\"success\"}",
        "sentryk8s_checks_total{outcome=\"timeout\"}",
        "sentryk8s_check_duration_seconds_bucket{phase=\"tls\"",
        "sentryk8s_queue_delay_seconds_count",
        "sentryk8s_result_batch_size_count",
        "sentryk8s_result_batch_commit_seconds_count",
        "sentryk8s_checks_in_flight",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics:\n{metrics}");
    }
    worker.terminate();
    let status = worker.wait_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", worker.output());
}

#[tokio::test]
async fn hostile_targets_end_by_their_deadline_with_bounded_memory() {
    let bed = WorkerBed::new().await;
    let kinds = [
        (Hostile::NeverAnswers, "timeout"),
        (Hostile::Trickle, "timeout"),
        (Hostile::EndlessBody, "assertion"),
        (Hostile::Garbage, "protocol"),
        (Hostile::Reset, "protocol"),
    ];
    let mut servers = Vec::new();
    let mut checks = Vec::new();
    let slot = now_ms();
    for (kind, class) in kinds {
        let server = HostileServer::start(kind).await;
        // The endless body is read by many checks at once, keeping the body
        // (an assertion needs it): memory must stay bounded by the limit.
        let copies = if matches!(kind, Hostile::EndlessBody) { 40 } else { 1 };
        for copy in 0..copies {
            let name = format!("{kind:?}-{copy}");
            let spec = json!({"url": server.url("/"), "timeout_ms": 2500,
                              "expect": {"body_contains": ["never there"]}});
            let id = bed.add_check(&name, &spec).await;
            bed.publish(&WorkerBed::job(id, &name, &spec, slot)).await;
            checks.push((id, kind, class));
        }
        servers.push(server);
    }
    let started = Instant::now();
    let worker = bed.spawn_worker(&[]);
    let pid = worker.pid();
    let mut peak_rss = 0;
    let sampler = async {
        loop {
            peak_rss = peak_rss.max(WorkerBed::rss_kib(pid));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let done = bed.wait_for_count(
        "SELECT count(*) FROM check_results",
        checks.len() as i64,
        Duration::from_secs(20),
    );
    let all = tokio::select! {
        all = done => all,
        _ = sampler => unreachable!(),
    };
    assert!(all, "hostile targets left checks unfinished\n{}", worker.output());
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    for (id, kind, class) in &checks {
        let r = &bed.results(*id).await[0];
        assert!(!r.success, "{kind:?}: {r:?}");
        assert_eq!(r.error_class.as_deref(), Some(*class), "{kind:?}: {r:?}");
        assert!(r.total_ms < 2900.0, "{kind:?} outlived its 2.5 s deadline: {r:?}");
        if matches!(kind, Hostile::EndlessBody) {
            assert_eq!(r.bytes_read, Some(1 << 20), "{r:?}");
            assert!(
                r.failed_assertions.as_ref().is_some_and(|f| f.iter().any(|a| a.contains("limit"))),
                "{r:?}"
            );
        }
    }
    // 40 concurrent 1 MiB bodies plus the runtime: far below what an
    // unbounded read of endless bodies would take.
    assert!(peak_rss > 0 && peak_rss < 200 * 1024, "peak RSS {peak_rss} KiB");
    let output = worker.output();
    assert!(!output.contains("panicked"), "{output}");
}
