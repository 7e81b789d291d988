//! The probe bench's rows for the network kinds beyond HTTP (TCP, TLS,
//! DNS): checks per second and CPU milliseconds per check of the prober
//! (`probe::Prober`, the code the worker runs for each job) against a
//! local server of each kind, in the same run as the HTTP rows.
//!
//! The prober runs in process, on a runtime of its own whose threads are
//! named `kind-prober`, and its CPU is the sum of those threads' (from
//! `/proc/self/task/*/stat`); the local servers run on another runtime
//! (`kind-target` threads), counted apart. No queue and no database: the
//! HTTP row's worker figure adds those, the same for every kind.
//!
//! Knobs: BENCH_KIND_CHECKS (per kind, default 20000),
//! BENCH_KIND_CONCURRENCY (checks at once, default 64).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sentryk8s::model::CheckSpec;
use sentryk8s::probe::{Prober, ProberOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The report's section for the kinds' rows.
pub fn section(rows: &[KindRow]) -> String {
    let mut md = String::from(
        "\n## Network kinds (the prober in process, against a local server of each kind)\n\n\
         | kind | checks/s | CPU ms per check (prober) | target CPU ms per check | up |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {:.0} | {:.3} | {:.3} | {} of {} |\n",
            r.kind, r.per_second, r.cpu_ms, r.target_cpu_ms, r.ok, r.total
        ));
    }
    md.push_str(
        "\nEach check on a new connection (a new UDP socket for DNS), the prober on one runtime thread, \
         the servers on another; CPU from /proc/self/task of each runtime's threads. No queue and no \
         database: the worker row above adds those, the same for every kind.\n",
    );
    md
}

/// One kind's figures.
pub struct KindRow {
    pub kind: &'static str,
    pub per_second: f64,
    pub cpu_ms: f64,
    pub target_cpu_ms: f64,
    pub ok: u64,
    pub total: u64,
}

/// CPU seconds of this process's threads named `name`.
fn threads_cpu(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    tasks
        .filter_map(Result::ok)
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
            (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0))
                / super::common::clock_ticks()
        })
        .sum()
}

/// The local servers: TCP (greets), TLS (self-signed), DNS (one A record).
async fn targets() -> (SocketAddr, SocketAddr, SocketAddr) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
    let tcp_at = tcp.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"+OK ready\r\n").await;
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let tls = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind tls");
    let tls_at = tls.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = tls.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut t) = acceptor.accept(s).await {
                    let _ = t.shutdown().await;
                }
            });
        }
    });
    let dns = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
    let dns_at = dns.local_addr().expect("addr");
    tokio::spawn(async move {
        use hickory_resolver::proto::op::Message;
        use hickory_resolver::proto::rr::{rdata::A, RData, Record};
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = dns.recv_from(&mut buf).await {
            let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
            let Some(query) = request.queries.first().cloned() else { continue };
            let mut response = Message::response(request.metadata.id, request.metadata.op_code);
            response.add_query(query.clone());
            response.add_answer(Record::from_rdata(
                query.name().clone(),
                300,
                RData::A(A([127, 0, 0, 1].into())),
            ));
            if let Ok(bytes) = response.to_vec() {
                let _ = dns.send_to(&bytes, peer).await;
            }
        }
    });
    (tcp_at, tls_at, dns_at)
}

/// Measures every kind, one after the other. Blocking: runs its own
/// runtimes (call it from `spawn_blocking`).
pub fn measure() -> Vec<KindRow> {
    let total = super::common::env_or("BENCH_KIND_CHECKS", 20_000);
    let concurrency = super::common::env_or("BENCH_KIND_CONCURRENCY", 64).max(1);
    let target_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kind-target")
        .enable_all()
        .build()
        .expect("target runtime");
    let prober_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("kind-prober")
        .enable_all()
        .build()
        .expect("prober runtime");
    let (tcp, tls, dns) = target_rt.block_on(targets());
    let prober = Arc::new(
        Prober::new(ProberOptions {
            body_limit: 1 << 20,
            user_agent: "bench".into(),
            deny: Default::default(),
        })
        .expect("prober"),
    );
    let kinds: [(&'static str, serde_json::Value); 3] = [
        (
            "tcp (connect, banner)",
            json!({"kind": "tcp", "url": format!("tcp://{tcp}"), "timeout_ms": 5000,
            "expect": {"banner_contains": ["+OK"]}}),
        ),
        (
            "tls (handshake, certificate)",
            json!({"kind": "tls", "url": format!("tls://{tls}"), "timeout_ms": 5000,
            "tls_verify": false, "expect": {"cert_days_left": 1}}),
        ),
        (
            "dns (udp question, answers)",
            json!({"kind": "dns", "url": format!("dns://{dns}"), "timeout_ms": 5000,
            "dns": {"name": "bench.test", "type": "A"}, "expect": {"answers_include": ["127.0.0.1"]}}),
        ),
    ];
    let mut rows = Vec::new();
    for (kind, spec) in kinds {
        let spec: Arc<CheckSpec> = Arc::new(serde_json::from_value(spec).expect("spec"));
        let (cpu0, target0, t0) = (threads_cpu("kind-prober"), threads_cpu("kind-target"), Instant::now());
        let ok = prober_rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
            for _ in 0..concurrency {
                let (prober, spec, next) = (prober.clone(), spec.clone(), next.clone());
                tasks.spawn(async move {
                    let mut ok = 0u64;
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                        ok += u64::from(prober.run(&spec).await.success);
                    }
                    ok
                });
            }
            let mut ok = 0;
            while let Some(done) = tasks.join_next().await {
                ok += done.unwrap_or(0);
            }
            ok
        });
        let secs = t0.elapsed().as_secs_f64();
        let row = KindRow {
            kind,
            per_second: total as f64 / secs,
            cpu_ms: (threads_cpu("kind-prober") - cpu0) * 1000.0 / total as f64,
            target_cpu_ms: (threads_cpu("kind-target") - target0) * 1000.0 / total as f64,
            ok,
            total,
        };
        println!(
            "{kind}: {:.0} checks/s, {:.3} ms CPU per check ({ok} of {total} up)",
            row.per_second, row.cpu_ms
        );
        rows.push(row);
    }
    rows
}
